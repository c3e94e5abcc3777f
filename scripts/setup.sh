#!/usr/bin/env bash
# Installs the real peers used by the integration tests (Debian packages):
#   serf                                  - serf agent (memberlist underneath)
#   golang-go                             - Go toolchain for integration/mlpeer
#   golang-github-hashicorp-memberlist-dev - memberlist 0.2.2 source (system GOPATH)
#   tcpdump                               - captures proving 2377, 7946 and 4789 carry no plaintext
#   nftables                              - packet loss on a host's link (this kernel has no netem)
#
# Idempotent and fast when everything is present. As root it installs what is
# missing (running `apt-get update` only if the first attempt fails); otherwise
# it only reports what is missing. It always exits 0: tests that need a missing
# peer skip themselves with a message.
set -u

PACKAGES=(serf golang-go golang-github-hashicorp-memberlist-dev tcpdump nftables)

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "setup.sh: not a Debian-like system; install ${PACKAGES[*]} (or equivalents) yourself for the integration tests" >&2
  exit 0
fi

missing_packages() {
  local p
  for p in "${PACKAGES[@]}"; do
    if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]; then
      printf '%s\n' "$p"
    fi
  done
}

mapfile -t missing < <(missing_packages)
[ "${#missing[@]}" -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "setup.sh: missing packages (integration tests needing them will be skipped): ${missing[*]}" >&2
  echo "setup.sh: as root run: apt-get install -y ${missing[*]}" >&2
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
install() {
  apt-get install -y -qq "${missing[@]}" >/dev/null
}

echo "setup.sh: installing ${missing[*]}" >&2
if ! install; then
  echo "setup.sh: install failed; running apt-get update and retrying" >&2
  apt-get update -qq >/dev/null && install
fi

mapfile -t missing < <(missing_packages)
if [ "${#missing[@]}" -ne 0 ]; then
  echo "setup.sh: could not install: ${missing[*]} (integration tests needing them will be skipped)" >&2
fi
exit 0
