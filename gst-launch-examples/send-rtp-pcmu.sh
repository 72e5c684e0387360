#!/usr/bin/env bash
# A G.711 mu-law RTP sender (payload type 0, 8 kHz, 20 ms packets) of a test tone.
#   send-rtp-pcmu.sh [host, default 127.0.0.1] [port, default 5004]
set -e
host=${1:-127.0.0.1}
port=${2:-5004}
exec gst-launch-1.0 audiotestsrc is-live=true wave=sine freq=440 volume=0.5 \
  ! audio/x-raw,rate=8000,channels=1 ! mulawenc ! rtppcmupay \
  ! udpsink host="$host" port="$port"
