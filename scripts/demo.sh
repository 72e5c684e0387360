#!/usr/bin/env bash
# The demo: a loopback sender with 10 % loss, 20 ms jitter and a clock 100 ppm fast, received
# by rawudpaudiosrc ! plcjitterbuffer ! audioconvert ! autoaudiosink, with live stats.
#   scripts/demo.sh [--seconds 20] [--loss 0.1] [--jitter-ms 20] [--skew-ppm 100] [--tone]
#                   [--latency-ms 40] [--rtp] [--mode fixed|adaptive|off] [--jitter-after S:MS]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-deps.sh
# Use the desktop's audio server when there is one; otherwise a PulseAudio null sink.
scripts/pulse-null-sink.sh
cargo build --release --locked --example demo
exec target/release/examples/demo "$@"
