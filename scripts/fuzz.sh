#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with the stable toolchain and runs
# each for SECONDS_PER_TARGET seconds (default 20) on a copy of its committed
# corpus, two at a time. Exits non-zero if any target crashes (an invariant
# broke or a panic): the input is saved under fuzz/artifacts/TARGET/ and
# printed in hex. See fuzz/README.md.
set -euo pipefail

seconds=${1:-20}
if ! [[ $seconds =~ ^[0-9]+$ ]] || ((seconds < 1)); then
  echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET]  (a whole number of seconds, default 20)" >&2
  exit 2
fi

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
fuzz=$root/fuzz
targets=(frame_verdict vrrp_decode arp_decode config_toml keepalived_import)
jobs=${FUZZ_JOBS:-2}

# libfuzzer-sys compiles libFuzzer itself, which is C++.
if ! command -v c++ >/dev/null 2>&1 && ! command -v g++ >/dev/null 2>&1; then
  echo "fuzz.sh: no C++ compiler (c++/g++): apt-get install g++" >&2
  exit 1
fi

host=$(rustc -vV | sed -n 's/^host: //p')
echo "== fuzz: $(rustc --version) on $host, ${seconds}s per target, $jobs at a time"

# The coverage instrumentation cargo-fuzz uses, all of it stable (no
# sanitizer: -Zsanitizer is nightly-only). With an explicit --target these
# flags reach the target crates only, not build scripts or proc macros, and
# fuzz/target keeps them away from the main build's cache.
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module \
-Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares"
unset CARGO_BUILD_RUSTFLAGS CARGO_ENCODED_RUSTFLAGS
cargo_args=(--manifest-path "$fuzz/Cargo.toml" --target-dir "$fuzz/target" --target "$host")

locked=(--locked)
if ! cargo metadata --format-version 1 --locked --manifest-path "$fuzz/Cargo.toml" >/dev/null 2>&1; then
  # dataplane or control gained a dependency the fuzz lock file lacks.
  echo "fuzz.sh: WARNING: fuzz/Cargo.lock is out of date; building without --locked" >&2
  echo "fuzz.sh: (refresh it: cp Cargo.lock fuzz/ && cargo fetch --manifest-path fuzz/Cargo.toml)" >&2
  locked=()
fi

start=$SECONDS
cargo build --release "${locked[@]}" "${cargo_args[@]}" --bins
echo "== fuzz: built in $((SECONDS - start))s"
bin_dir=$fuzz/target/$host/release

work=$(mktemp -d "${TMPDIR:-/tmp}/xdplb-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT

run_target() {
  local target=$1 dir=$work/$1
  mkdir -p "$dir/corpus" "$dir/artifacts"
  # A copy: what the run finds must not grow the committed corpus.
  cp -r "$fuzz/corpus/$target/." "$dir/corpus/"
  local args=(
    "$dir/corpus"
    -max_total_time="$seconds"
    -timeout=10
    -rss_limit_mb=2048
    -max_len=4096
    -print_final_stats=1
    -artifact_prefix="$dir/artifacts/"
  )
  if [[ -f $fuzz/dict/$target.dict ]]; then
    args+=(-dict="$fuzz/dict/$target.dict")
  fi
  local status=0
  "$bin_dir/$target" "${args[@]}" >"$dir/log" 2>&1 || status=$?
  echo "$status" >"$dir/status"
}

for target in "${targets[@]}"; do
  while (($(jobs -rp | wc -l) >= jobs)); do
    wait -n || true
  done
  run_target "$target" &
done
wait

failed=()
for target in "${targets[@]}"; do
  status=$(cat "$work/$target/status" 2>/dev/null || echo "no status")
  log=$work/$target/log
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
  per_sec=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n1 || true)
  printf '%-18s %10s runs %8s/s  %s\n' "$target" "${runs:-?}" "${per_sec:-?}" "${cov:-}"
  crashes=$(find "$work/$target/artifacts" -type f | sort)
  if [[ $status != 0 || -n $crashes ]]; then
    failed+=("$target")
    echo "---- $target FAILED (exit $status):"
    grep -A4 'panicked at' "$log" || true
    grep -E -v '^ +([0-9]+: |at )' "$log" | tail -n 15
    mkdir -p "$fuzz/artifacts/$target"
    for crash in $crashes; do
      cp "$crash" "$fuzz/artifacts/$target/"
      echo "---- input saved as fuzz/artifacts/$target/$(basename "$crash"):"
      od -An -tx1 -v "$crash" | head -n 40
      echo "     reproduce: $bin_dir/$target fuzz/artifacts/$target/$(basename "$crash")"
    done
  fi
done

if ((${#failed[@]})); then
  echo "== fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "== fuzz: ${#targets[@]} targets, no crash ($((SECONDS - start))s in all)"
