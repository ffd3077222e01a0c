#!/usr/bin/env bash
# Installs what is needed and runs every test: formatting, lints, unit and
# property tests, then the namespace integration tests (root needed: they
# build network namespaces and run the real binary in them).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $(id -u) -ne 0 ]]; then
  echo "scripts/test.sh: run as root (the integration tests create network namespaces)" >&2
  exit 1
fi

scripts/install-deps.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
cargo fmt --manifest-path fuzz/Cargo.toml -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy --manifest-path fuzz/Cargo.toml --target-dir target --all-targets --locked -- -D warnings
echo "== unit and property tests (the fuzz targets' properties too)"
cargo test --workspace --locked --lib --bins
cargo test --manifest-path fuzz/Cargo.toml --target-dir target --locked
echo "== fuzzing, briefly (libFuzzer on the committed corpora)"
scripts/fuzz.sh "${XDPLB_FUZZ_SECS:-10}"
echo "== namespace integration tests (serial: a 2-core machine stays calmer)"
cargo test --workspace --locked --test '*' -- --test-threads=1
echo "== the .deb builds, installs, verifies and removes cleanly"
scripts/deb-check.sh
