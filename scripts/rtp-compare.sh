#!/usr/bin/env bash
# Opus over RTP through a lossy, jittery loopback network: plcjitterbuffer against the stock
# chain (rtpjitterbuffer ! rtpopusdepay ! opusdec plc=true use-inband-fec=true) at the same
# latency, on the same packets, scored with PESQ-WB and STOI (see examples/rtp_compare.rs).
#   scripts/rtp-compare.sh [--loss 0.1] [--jitter-ms 20] [--latency-ms 60] [--runs 2]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-deps.sh
python=$(scripts/python-env.sh)
cargo build --release --locked --example rtp_compare
out=target/rtp-compare
rm -rf "$out"
target/release/examples/rtp_compare --out "$out" "$@" 2> >(grep -v WARN >&2)
"$python" scripts/rtp_quality.py "$out/pairs.txt"
