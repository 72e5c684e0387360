#!/usr/bin/env bash
# Receives the raw datagrams of send-raw-tone.sh with rawudpaudiosrc (each buffer stamped with
# its arrival time), dejitters them and conceals losses with plcjitterbuffer (40 ms of
# latency), and plays them. Prints plcjitterbuffer's stats once per second of output.
#   receive-rawudpaudiosrc.sh [port, default 5004]
set -eo pipefail
source "$(dirname "$0")/common.sh"
port=${1:-5004}
stdbuf -oL gst-launch-1.0 -m rawudpaudiosrc port="$port" \
    caps="audio/x-raw,format=S16LE,rate=8000,channels=1,layout=interleaved" \
  ! plcjitterbuffer latency=40 stats-interval=1000 \
  ! audioconvert ! audioresample ! autoaudiosink \
  | filter_messages
