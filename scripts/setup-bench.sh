#!/usr/bin/env bash
# Installs what `npm run bench:mesh` measures against (Debian packages):
#   haproxy      - the reference L4/L7 proxy
#   nginx-light  - the HTTP backend (a tiny static body, keep-alive)
#   wrk          - the HTTP load generator
#   iperf3       - bulk TCP throughput
#   conntrack    - the kernel rows empty the nodes' connection tracking between cases
#
# Idempotent and fast when everything is present. As root it installs what is
# missing, without starting the packages' nginx/haproxy services (the bench
# runs its own); otherwise it only reports it. Exits 1 when something is still
# missing, so the bench can refuse to run with a clear message.
set -u
. "$(dirname "$0")/apt-packages.sh"
NO_RECOMMENDS=1 ensure_packages setup-bench.sh 1 haproxy nginx-light wrk iperf3 conntrack
