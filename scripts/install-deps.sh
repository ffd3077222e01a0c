#!/usr/bin/env bash
# The one place system packages are named. Installs what building, the demo and
# the tests need on a fresh Debian machine (run as root). Idempotent.
set -euo pipefail

packages=(
  # building the XDP program and libxdp/libbpf (xsk-rs use_cc_build)
  clang llvm make gcc g++ pkg-config m4 libelf-dev zlib1g-dev libbpf-dev
  linux-libc-dev gcc-multilib libpcap-dev
  # the lab: namespaces, captures, inspection
  iproute2 ethtool tcpdump bpftool iputils-ping curl python3 procps util-linux
  # a real VRRP peer for interop tests (run VRRP-only, inside namespaces)
  keepalived
  # systemd-analyze, to verify the packaged unit
  systemd
  # the benchmark harness's userspace reference forwarder (dpdk-testpmd over net_af_xdp)
  dpdk-dev
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "install-deps: all system packages present"
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "install-deps: cargo not found; install a Rust toolchain (rustc >= 1.85)" >&2
  exit 1
fi
