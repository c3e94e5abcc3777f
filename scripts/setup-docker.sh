#!/usr/bin/env bash
# Installs what the docker executor's integration tests need (Debian packages):
#   docker.io      - dockerd (and its containerd and runc); each test run starts
#                    a private daemon of its own, never the system one
#   busybox-static - one static binary from which the tests build their image
#                    locally (there is no registry to pull from)
#
# Idempotent and fast when everything is present. As root it installs what is
# missing (running `apt-get update` only if the first attempt fails); otherwise
# it only reports what is missing. It always exits 0: tests that need a missing
# piece skip themselves with a message (or fail under SWARMD_REQUIRE_PEERS=1).
# The package's service is not started: the tests need no system daemon.
set -u

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "setup-docker.sh: not a Debian-like system; install docker.io and busybox-static (or equivalents) yourself for the docker tests" >&2
  exit 0
fi

# Any dockerd will do (docker-ce's too); the image needs the static busybox.
missing_packages() {
  command -v dockerd >/dev/null 2>&1 || printf '%s\n' docker.io
  if [ "$(dpkg-query -W -f='${Status}' busybox-static 2>/dev/null)" != "install ok installed" ]; then
    printf '%s\n' busybox-static
  fi
}

mapfile -t missing < <(missing_packages)
[ "${#missing[@]}" -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "setup-docker.sh: missing packages (the docker tests will be skipped): ${missing[*]}" >&2
  echo "setup-docker.sh: as root run: apt-get install -y ${missing[*]}" >&2
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
install() {
  # policy-rc.d exit 101 keeps the maintainer scripts from starting docker's service.
  local policy=/usr/sbin/policy-rc.d created=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && created=1
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  local rc=$?
  [ "$created" -eq 1 ] && rm -f "$policy"
  return $rc
}

echo "setup-docker.sh: installing ${missing[*]}" >&2
if ! install; then
  echo "setup-docker.sh: install failed; running apt-get update and retrying" >&2
  apt-get update -qq >/dev/null && install
fi

mapfile -t missing < <(missing_packages)
if [ "${#missing[@]}" -ne 0 ]; then
  echo "setup-docker.sh: could not install: ${missing[*]} (the docker tests will be skipped)" >&2
fi
exit 0
