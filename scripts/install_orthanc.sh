#!/usr/bin/env bash
# Installs the real PACS peer of the integration tests: Orthanc with its DICOMweb plugin, and
# dicom3tools (dciodvfy validates our DICOM output). Debian packages; needs root. Idempotent.
# The tests start their own Orthanc with their own config; the packaged service is not used.
set -uo pipefail
have() { command -v Orthanc >/dev/null && ls /usr/share/orthanc/plugins/libOrthancDicomWeb.so >/dev/null 2>&1 \
         && command -v dciodvfy >/dev/null; }
have && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "install_orthanc: not root or no apt-get; the Orthanc integration test will be skipped" >&2
  exit 0
fi
pkgs=(orthanc orthanc-dicomweb dicom3tools)
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q --no-install-recommends "${pkgs[@]}" >/dev/null 2>&1 \
  || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends "${pkgs[@]}" >/dev/null 2>&1; } \
  || echo "install_orthanc: apt-get could not install ${pkgs[*]}; the Orthanc integration test will be skipped" >&2
# Debian may start the packaged service; the tests run their own instance on their own ports.
command -v service >/dev/null && service orthanc stop >/dev/null 2>&1
exit 0
