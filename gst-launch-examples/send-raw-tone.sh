#!/usr/bin/env bash
# Sends a 440 Hz tone as raw PCM datagrams (no header): S16LE, 8 kHz, mono, 10 ms per
# datagram (80 frames = 160 bytes), paced in real time. The receivers here expect this format.
# The host may be a multicast group; the optional interface then picks the one it goes out of
# (e.g. lo, to try receive-multicast.sh on one machine).
#   send-raw-tone.sh [host, default 127.0.0.1] [port, default 5004] [multicast interface]
set -e
host=${1:-127.0.0.1}
port=${2:-5004}
iface=${3:-}
exec gst-launch-1.0 audiotestsrc is-live=true samplesperbuffer=80 freq=440 volume=0.5 \
  ! audio/x-raw,format=S16LE,rate=8000,channels=1 \
  ! udpsink host="$host" port="$port" ${iface:+multicast-iface="$iface"}
