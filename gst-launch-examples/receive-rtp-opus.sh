#!/usr/bin/env bash
# Opus over RTP straight from the stock udpsrc: plcjitterbuffer reorders, drops duplicates,
# rebuilds single losses from the next packet's in-band FEC, conceals the rest with libopus'
# (neural) PLC, and plays 10 ms every 10 ms. Prints the stats once per second of output.
#   receive-rtp-opus.sh [port, default 5004]
set -eo pipefail
source "$(dirname "$0")/common.sh"
port=${1:-5004}
stdbuf -oL gst-launch-1.0 -m udpsrc port="$port" \
    caps="application/x-rtp,media=audio,encoding-name=OPUS,clock-rate=48000,payload=96" \
  ! plcjitterbuffer latency=60 stats-interval=1000 \
  ! audioconvert ! audioresample ! autoaudiosink \
  | filter_messages
