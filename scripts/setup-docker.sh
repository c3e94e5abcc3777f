#!/usr/bin/env bash
# Installs what the docker executor's integration tests need (Debian packages):
#   docker.io      - dockerd (and its containerd and runc); each test run starts
#                    a private daemon of its own, never the system one
#   busybox-static - one static binary from which the tests build their image
#                    locally (there is no registry to pull from)
#
# Idempotent and fast when everything is present. As root it installs what is
# missing and exits 1 when that fails; otherwise it only reports what is
# missing and exits 0: tests that need a missing piece skip themselves saying
# why (or fail under SWARMD_REQUIRE_PEERS=1).
set -u
. "$(dirname "$0")/apt-packages.sh"
NO_RECOMMENDS=1 ensure_packages setup-docker.sh 0 docker.io:dockerd busybox-static
