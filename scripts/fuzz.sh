#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/, one at a time, each for a set time, then minimizes
# their corpus (fuzz/corpus/<target>/). Crashes land in fuzz/artifacts/<target>/; keep them
# there once fixed: tests/fuzz_corpus.rs replays both directories in the normal test command.
#   scripts/fuzz.sh [seconds-per-target (default 600)] [target...]   (default: every target)
# Environment: FUZZ_SANITIZER (address; "none" if ASan cannot link), FUZZ_LOG_DIR (target/fuzz-logs), CARGO_TARGET_DIR (the fuzz build goes to its fuzz/ subdir).
# Only stable Rust exists here: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass -Zsanitizer to it.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

secs=${1:-600}
[ $# -gt 0 ] && shift
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(raw_datagram rtp_header pcm_payload opus_packet rtp_playout raw_playout)
fi
sanitizer=${FUZZ_SANITIZER:-address}
logs=${FUZZ_LOG_DIR:-$root/target/fuzz-logs}
export RUSTC_BOOTSTRAP=1
# Release builds with debug assertions (cargo fuzz -O --debug-assertions) and overflow checks.
export RUSTFLAGS="${RUSTFLAGS:-} -Coverflow-checks=on"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}/fuzz
mkdir -p "$logs"

if ! command -v cargo-fuzz >/dev/null; then
  nice -n 10 cargo install cargo-fuzz --locked
fi

# The scripts of the stateful targets are longer than single packets.
max_len() {
  case $1 in
    rtp_playout | raw_playout) echo 2048 ;;
    opus_packet) echo 8192 ;;
    *) echo 4096 ;;
  esac
}

fuzz() {
  (cd fuzz && nice -n 10 cargo fuzz "$@")
}

fuzz build -O --debug-assertions -s "$sanitizer"
failed=()
for t in "${targets[@]}"; do
  echo "== $t: ${secs}s ($sanitizer sanitizer)"
  mkdir -p "fuzz/corpus/$t"
  if ! fuzz run -O --debug-assertions -s "$sanitizer" "$t" -- \
    -max_total_time="$secs" -max_len="$(max_len "$t")" -timeout=30 \
    -print_final_stats=1 2>&1 | tee "$logs/$t.log" | grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|ERROR|SUMMARY|panicked'; then
    :
  fi
  if grep -qE '^(==[0-9]+==ERROR|SUMMARY: libFuzzer)|panicked at|deadly signal' "$logs/$t.log"; then
    failed+=("$t")
    echo "!! $t: finding saved in fuzz/artifacts/$t/ (log: $logs/$t.log)"
  fi
  grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)|^#[0-9]+[[:space:]]+DONE' "$logs/$t.log" || true
  echo "== $t: minimizing the corpus"
  fuzz cmin -O --debug-assertions -s "$sanitizer" "$t" -- -max_len="$(max_len "$t")" -timeout=30 \
    >"$logs/$t.cmin.log" 2>&1 || echo "cmin failed (see $logs/$t.cmin.log)"
  echo "   $(find "fuzz/corpus/$t" -type f | wc -l) files, $(cat "fuzz/corpus/$t"/* | wc -c) bytes"
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "findings in: ${failed[*]}"
  exit 1
fi
echo "no findings"
