#!/usr/bin/env bash
# The drift quality benchmark: clean speech (espeak-ng, 4 voices, 16 kHz) sent as RTP L16 by a
# sender whose clock is off by 0, +-100, +-1000 ppm and +-2.5 %, through the real
# plcjitterbuffer (mode=fixed; Harness with a test clock, examples/drift_quality.rs), scored
# against the input with PESQ-WB and STOI (scripts/quality/drift.py). Prints the table and fails
# when a +-1000 ppm file scores below PESQ-WB 4.0. Outputs: bench-out/drift-quality/.
#   scripts/drift-quality.sh [--jitter-ms 0] [--workers 2] [--mode off (the control: fails)]
# Needs espeak-ng (scripts/setup-deps.sh); the Python packages come from scripts/python-env.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

python=$(scripts/python-env.sh)
target=${CARGO_TARGET_DIR:-target}
cargo build --release --locked --example drift_quality >&2
out=bench-out/drift-quality
rm -rf "$out"
mkdir -p "$out"
"$python" scripts/quality/drift.py --bench "$target/release/examples/drift_quality" --out "$out" "$@"
