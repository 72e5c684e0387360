#!/usr/bin/env bash
# Flood benchmark: 60 s at 50,000 datagrams/s over loopback into
# `rawudpaudiosrc ! plcjitterbuffer ! appsink`. Prints RSS, CPU, queue and output cadence every
# second and a summary; fails if the cadence breaks, the queue passes its caps, the ledger does
# not reconcile or memory keeps growing.
#   scripts/flood-bench.sh [--seconds 60] [--pps 50000] [--frames 240] [--latency 40]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked --release --example flood
exec "${CARGO_TARGET_DIR:-target}/release/examples/flood" "$@"
