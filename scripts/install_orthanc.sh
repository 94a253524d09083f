#!/usr/bin/env bash
# Installs the real PACS peer of the integration tests: Orthanc with its DICOMweb plugin, and
# dicom3tools (dciodvfy validates our DICOM output). Debian packages; needs root. Idempotent.
# The tests start their own Orthanc with their own config; the packaged service is not used.
set -uo pipefail
have() { command -v Orthanc >/dev/null && ls /usr/share/orthanc/plugins/libOrthancDicomWeb.so >/dev/null 2>&1 \
         && command -v dciodvfy >/dev/null; }
have && exit 0
. "$(dirname "$0")/apt_install.sh"
apt_install install_orthanc "the Orthanc integration test will be skipped" orthanc orthanc orthanc-dicomweb dicom3tools
