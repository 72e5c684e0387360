#!/usr/bin/env bash
# The same with GStreamer's stock udpsrc, which also stamps each buffer with its arrival time:
# plcjitterbuffer works behind any source of raw audio datagrams. Prints the stats once per
# second of output.
#   receive-udpsrc.sh [port, default 5004]
set -eo pipefail
source "$(dirname "$0")/common.sh"
port=${1:-5004}
stdbuf -oL gst-launch-1.0 -m udpsrc port="$port" \
    caps="audio/x-raw,format=S16LE,rate=8000,channels=1,layout=interleaved" \
  ! plcjitterbuffer stats-interval=1000 \
  ! audioconvert ! audioresample ! autoaudiosink \
  | filter_messages
