#!/usr/bin/env bash
# Installs what `npm run bench:mesh` measures against (Debian packages):
#   haproxy      - the reference L4/L7 proxy
#   nginx-light  - the HTTP backend (a tiny static body, keep-alive)
#   wrk          - the HTTP load generator
#   iperf3       - bulk TCP throughput
#
# Idempotent and fast when everything is present. As root it installs what is
# missing (running `apt-get update` only if the first attempt fails) and stops
# the nginx/haproxy system services the packages start, since the bench runs
# its own instances; otherwise it only reports what is missing. Exits 1 when
# something is still missing, so the bench can refuse to run with a clear message.
set -u

PACKAGES=(haproxy nginx-light wrk iperf3)

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "setup-bench.sh: not a Debian-like system; install ${PACKAGES[*]} (or equivalents) yourself" >&2
  exit 1
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
  echo "setup-bench.sh: missing packages: ${missing[*]}; as root run: apt-get install -y ${missing[*]}" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# policy-rc.d 101 keeps the packages' own service units from starting: the bench starts its own.
policy=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && own_policy=1
fi
install() {
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

echo "setup-bench.sh: installing ${missing[*]}" >&2
if ! install; then
  echo "setup-bench.sh: install failed; running apt-get update and retrying" >&2
  apt-get update -qq >/dev/null && install
fi
[ "$own_policy" -eq 1 ] && rm -f "$policy"

mapfile -t missing < <(missing_packages)
if [ "${#missing[@]}" -ne 0 ]; then
  echo "setup-bench.sh: could not install: ${missing[*]}" >&2
  exit 1
fi
exit 0
