#!/usr/bin/env bash
# The seed's experiment end to end: install what is missing, build, then build
# the namespace lab (pc - router - lb1/lb2/web1/web2), run xdplb on lb1 and
# lb2 with configs/seed-lab.toml (VRRP, both priority 120), show the router's
# ARP entry for the VIP (the master's own MAC), fetch http://192.168.10.110/
# ten times from the pc (both web servers answer), stop the master, show the
# entry move by GARP and the fetches keep working. Needs root.
# Extra arguments go to `xdplb-lab demo` (e.g. --config FILE).
set -euo pipefail

cd "$(dirname "$0")/.."

if [[ $EUID -ne 0 ]]; then
  echo "demo: needs root (network namespaces, veth, XDP); try: sudo $0" >&2
  exit 1
fi

scripts/install-deps.sh
cargo build --release --workspace
exec target/release/xdplb-lab demo --xdplb target/release/xdplb "$@"
