#!/usr/bin/env bash
# The concealment quality benchmark: speech (espeak-ng, 3 voices) and a tonal signal at 8, 16
# and 48 kHz, 10 and 20 ms packets, 8 loss conditions, through the real plcjitterbuffer with
# every `plc` method; PESQ, STOI, SNR of the concealed stretches, edge pops, then the CPU time
# per concealed 10 ms. Writes bench-out/quality/results.{md,csv} and prints the tables.
#   scripts/quality-bench.sh [--quick] [--methods expand,appendix-i,...]
# Needs espeak-ng, python3-venv and a C compiler (scripts/setup-deps.sh); the Python packages
# (pesq, pystoi, numpy, scipy) go into .venv from PyPI on the first run.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${QUALITY_VENV:-.venv}
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import pesq, pystoi, numpy, scipy" 2>/dev/null; then
  echo "quality-bench: setting up $venv (pesq, pystoi, numpy, scipy from PyPI)" >&2
  /usr/bin/python3 -m venv "$venv"
  "$venv/bin/pip" install -q pesq pystoi numpy scipy
fi

target=${CARGO_TARGET_DIR:-target}
cargo build --release --example plc_bench >&2
out=bench-out/quality
mkdir -p "$out"
"$venv/bin/python" scripts/quality/bench.py --bench "$target/release/examples/plc_bench" --out "$out" "$@"

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
