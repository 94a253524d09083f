# Sourced by scripts/install_*.sh: apt_install NAME SKIPPED SERVICE PACKAGE...
# Installs Debian PACKAGEs without recommends (apt-get update only when the first try fails), then stops
# SERVICE if Debian started it (the tests run their own instances on their own ports; "-": none). Without
# root or apt-get, or when apt-get fails, it says that SKIPPED happens instead, and never fails the caller.
apt_install() {
  local name=$1 skipped=$2 service=$3
  shift 3
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "$name: not root or no apt-get; $skipped" >&2
    return 0
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "$@" >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends "$@" >/dev/null 2>&1; } \
    || echo "$name: apt-get could not install $*; $skipped" >&2
  if [ "$service" != - ] && command -v service >/dev/null; then
    service "$service" stop >/dev/null 2>&1
  fi
  return 0
}
