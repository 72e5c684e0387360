#!/usr/bin/env bash
# Runs the test suite under valgrind memcheck: any invalid read or write, use of uninitialised
# memory, bad free or definitely lost block fails the run.
#
#   scripts/valgrind.sh            # every test binary but e2e and drift_e2e (see below)
#   scripts/valgrind.sh rtp faults # only these test binaries ("gstnetaudio" is the unit tests)
#
# Valgrind runs code 30-100x slower, so two kinds of test are left out here, each for a stated
# reason (they all run in the normal test command, scripts/test.sh):
#  - tests/e2e.rs and tests/drift_e2e.rs play in real time through real sockets (e2e also through
#    PulseAudio): at that slowdown the 10 ms clock cannot be kept, and their memory paths are
#    those of the element tests.
#  - the long simulations in SKIP below (an hour of audio, 24 h of drift, 10 min placement
#    simulations): each takes 3-300 s natively, i.e. 5 min to hours under valgrind, and runs the
#    same code as the shorter tests of the same file, which do run here.
# The leak check of GStreamer objects is tests/leaks.rs (GStreamer's leaks tracer), part of the
# normal suite and of this run.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v valgrind >/dev/null || { sudo apt-get install -y valgrind 2>/dev/null || apt-get install -y valgrind; }

SKIP=(
  _for_an_hour                                   # tests/plcjitterbuffer.rs: 1 h of 10 ms buffers
  outages_from_20_ms_to_an_hour                  # tests/faults.rs: includes a 1 h outage
  for_24_hours                                   # drift: 24 h of simulated skew
  two_and_a_half_percent                         # drift: 10 min simulated at +-2.5 %
  stereo_48_khz_at_minus_1000_ppm                # tests/drift.rs: 2 min of 48 kHz stereo
  mode_off_drifts                                # tests/drift.rs: 2 min until the resync
  without_compensation_the_queue_drifts          # drift: 2 min until the resync
  jitter::playout::simulation::                  # placement: 10 min simulations
  all_rates_and_channel_counts_work              # conceal: every rate x channel count, long signals
  jitter::playout::drift_tests::                 # raw drift: 1-60 min simulations
  raw_input_                                     # tests/drift.rs: 5-10 min of raw input
)
# tests/fuzz_random.rs: 100 of its 3000 random scripts (the same code paths, 30x fewer).
export FUZZ_RANDOM_SCRIPTS=${FUZZ_RANDOM_SCRIPTS:-100}

echo "== building the tests"
mapfile -t BINARIES < <(cargo test --locked --no-run --message-format=json 2>/dev/null \
  | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("profile", {}).get("test") and m.get("executable"):
        name = m["target"]["name"]
        print(name + " " + m["executable"])
')

SUPP=(--suppressions=/usr/share/glib-2.0/valgrind/glib.supp --suppressions=scripts/valgrind.supp)
skip_args=()
for s in "${SKIP[@]}"; do skip_args+=(--skip "$s"); done

logs=${CARGO_TARGET_DIR:-target}/valgrind
mkdir -p "$logs"
failed=0
for entry in "${BINARIES[@]}"; do
  name=${entry%% *}
  exe=${entry#* }
  case "$name" in e2e | drift_e2e) continue ;; esac
  if [ $# -gt 0 ] && ! printf '%s\n' "$@" | grep -qx "$name"; then continue; fi
  log="$logs/$name.log"
  echo "== $name (log: $log)"
  start=$(date +%s)
  # The leaks binary re-runs itself with GST_TRACERS set: follow it into the child.
  status=0
  # Follow our own binaries into the children they start (the leaks test re-runs itself), not
  # system tools (`ip`, `unshare`, `sh` of the network-namespace tests; those run natively).
  G_SLICE=always-malloc G_DEBUG=gc-friendly valgrind --trace-children=yes \
    --trace-children-skip='/usr/*,/bin/*,/sbin/*' \
    --error-exitcode=99 --leak-check=full --show-leak-kinds=definite \
    --errors-for-leak-kinds=definite --num-callers=40 "${SUPP[@]}" \
    "$exe" --test-threads=2 "${skip_args[@]}" >"$log" 2>&1 || status=$?
  if [ "$status" = 0 ]; then
    echo "   ok in $(( $(date +%s) - start )) s: $(grep -E '^test result' "$log" | tail -1)"
  else
    echo "   FAILED (exit $status; 99 = a valgrind error): see $log"
    grep -E "ERROR SUMMARY|definitely lost|Invalid|uninitialised|panicked|FAILED" "$log" | head -20
    failed=1
  fi
done
exit $failed
