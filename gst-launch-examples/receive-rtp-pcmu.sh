#!/usr/bin/env bash
# G.711 mu-law over RTP from the stock udpsrc into plcjitterbuffer (which depayloads and
# expands it; missing packets are concealed). Prints the stats once per second of output.
#   receive-rtp-pcmu.sh [port, default 5004]
set -eo pipefail
source "$(dirname "$0")/common.sh"
port=${1:-5004}
stdbuf -oL gst-launch-1.0 -m udpsrc port="$port" \
    caps="application/x-rtp,media=audio,encoding-name=PCMU,clock-rate=8000,payload=0" \
  ! plcjitterbuffer stats-interval=1000 \
  ! audioconvert ! audioresample ! autoaudiosink \
  | filter_messages
