#!/usr/bin/env bash
# The concealment quality benchmark: speech (espeak-ng, 3 voices) and a tonal signal at 8, 16
# and 48 kHz, 10 and 20 ms packets, 8 loss conditions, through the real plcjitterbuffer with
# every `plc` method; PESQ, STOI, SNR of the concealed stretches, edge pops, then the CPU time
# per concealed 10 ms. Writes bench-out/quality/results.{md,csv} and prints the tables.
#   scripts/quality-bench.sh [--quick] [--methods expand,appendix-i,...]
#   scripts/quality-bench.sh --direct --methods sample-constant,appendix-i,expand,expand+future \
#       --candidate expand+future
# --direct drives the concealer alone as the raw playout does (plc_bench direct; bit-identical to
# the element without +future), where NAME+future is also told what follows each hole as a
# jitter buffer at latency 40 knows it; --candidate names the method the targets are checked
# for. Also --rates 16000, --kinds speech for a faster loop.
#   scripts/quality-bench.sh --bounds
# --bounds scores oracle fills of the same losses (scripts/quality/bounds.py: what any concealer
# could reach, built from the reference itself) against the targets, from the last element run
# (run it after a run with sample-constant, appendix-i and expand at 16 and 48 kHz); writes
# bench-out/quality/bounds.md.
# Needs espeak-ng, python3-venv and a C compiler (scripts/setup-deps.sh); the Python packages
# come from scripts/python-env.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

# The project's Python (numpy, scipy, pesq, pystoi; a venv under target/pyenv on first use).
python=$(scripts/python-env.sh)

if [ "${1:-}" = "--bounds" ]; then
  exec "$python" scripts/quality/bounds.py --out bench-out/quality "${@:2}"
fi

target=${CARGO_TARGET_DIR:-target}
cargo build --release --example plc_bench >&2
out=bench-out/quality
mkdir -p "$out"
"$python" scripts/quality/bench.py --bench "$target/release/examples/plc_bench" --out "$out" "$@"

echo
echo "### CPU time per concealed 10 ms (pure concealer, release build, one core)"
echo
"$target/release/examples/plc_bench" cpu | tee "$out/cpu.tsv" | python3 -c '
import sys
rows = [l.rstrip("\n").split("\t") for l in sys.stdin]
print("| method | rate | channels | us per concealed 10 ms | % of the 10 ms budget | us per merge |")
print("|---|---:|---:|---:|---:|---:|")
for r in rows[1:]:
    print("| " + " | ".join(r) + " |")
' | tee "$out/cpu.md"
