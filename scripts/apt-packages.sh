# Sourced by the setup scripts: which Debian packages are missing, and
# installing them as root (apt-get update only when the first attempt fails;
# policy-rc.d keeps the packages' own services from starting, since tests and
# benches start their own).
#
#   ensure_packages NAME FAIL PACKAGE[:COMMAND]...
# NAME names the caller in messages. FAIL is what it returns when something
# is missing and it cannot install it (not root, not Debian): 0 when the tests
# that need it skip themselves, 1 to refuse. As root a failed install always
# returns 1: such a machine is meant to have the packages (CI).
# PACKAGE:COMMAND counts as present when COMMAND is on the PATH (any dockerd
# will do, not only docker.io's). NO_RECOMMENDS=1 skips recommended packages.

missing_packages() {
  local spec p cmd
  for spec in "$@"; do
    p=${spec%%:*}
    cmd=${spec#*:}
    if [ "$cmd" != "$spec" ] && command -v "$cmd" >/dev/null 2>&1; then continue; fi
    [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || printf '%s\n' "$p"
  done
}

ensure_packages() {
  local name=$1 fail=$2
  shift 2
  if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "$name: not a Debian-like system; install ${*%%:*} (or equivalents) yourself" >&2
    return "$fail"
  fi
  local missing
  mapfile -t missing < <(missing_packages "$@")
  [ "${#missing[@]}" -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "$name: missing packages: ${missing[*]}; as root run: apt-get install -y ${missing[*]}" >&2
    return "$fail"
  fi
  export DEBIAN_FRONTEND=noninteractive
  local opts=(-y -qq) policy=/usr/sbin/policy-rc.d created=0
  [ "${NO_RECOMMENDS:-0}" = 1 ] && opts+=(--no-install-recommends)
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && created=1
  fi
  echo "$name: installing ${missing[*]}" >&2
  if ! apt-get install "${opts[@]}" "${missing[@]}" >/dev/null; then
    echo "$name: install failed; running apt-get update and retrying" >&2
    apt-get update -qq >/dev/null && apt-get install "${opts[@]}" "${missing[@]}" >/dev/null
  fi
  [ "$created" -eq 1 ] && rm -f "$policy"
  mapfile -t missing < <(missing_packages "$@")
  if [ "${#missing[@]}" -ne 0 ]; then
    echo "$name: could not install: ${missing[*]}" >&2
    return 1
  fi
  return 0
}
