#!/usr/bin/env bash
# Installs the real peers used by the integration tests (Debian packages):
#   serf                                  - serf agent (memberlist underneath)
#   golang-go                             - Go toolchain for integration/mlpeer
#   golang-github-hashicorp-memberlist-dev - memberlist 0.2.2 source (system GOPATH)
#   tcpdump                               - captures proving 2377, 7946 and 4789 carry no plaintext
#   nftables                              - packet loss on a host's link (this kernel has no netem)
#   conntrack                             - the kernel data plane deletes the UDP flows of removed tasks with it
#   etcd-server                           - etcd 3.4, the managers' replicated state once there are several
#   prometheus                            - promtool, which checks what --metrics-addr serves
#   chromium                              - headless Chromium, in which the cluster page is tested
#
# Idempotent and fast when everything is present. As root it installs what is
# missing and exits 1 when that fails; otherwise it only reports what is
# missing and exits 0: tests that need a missing peer skip themselves saying
# why (or fail under SWARMD_REQUIRE_PEERS=1).
set -u
. "$(dirname "$0")/apt-packages.sh"
ensure_packages setup.sh 0 serf golang-go golang-github-hashicorp-memberlist-dev tcpdump nftables conntrack etcd-server prometheus:promtool chromium || exit 1
# The package enables its own etcd.service on localhost:2379/2380 where systemd runs: swarmd starts its members itself.
if command -v systemctl >/dev/null 2>&1 && systemctl is-enabled etcd >/dev/null 2>&1; then systemctl disable --now etcd >/dev/null 2>&1 || true; fi
