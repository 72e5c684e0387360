#!/usr/bin/env bash
# send-raw-tone.sh through a bad network: netsim (gst-plugins-bad) drops each datagram with
# probability 0.1 and delays each one by a uniform 0..20 ms. netsim's delay-probability
# defaults to 0 (no delay at all), so it is set to 1; allow-reordering=false keeps the order
# (netsim reorders delayed buffers by default, and raw datagrams carry no sequence number to
# put them back in order).
#   send-raw-lossy.sh [host, default 127.0.0.1] [port, default 5004] [loss, default 0.1] \
#       [max delay ms, default 20]
set -e
host=${1:-127.0.0.1}
port=${2:-5004}
loss=${3:-0.1}
jitter_ms=${4:-20}
exec gst-launch-1.0 audiotestsrc is-live=true samplesperbuffer=80 freq=440 volume=0.5 \
  ! audio/x-raw,format=S16LE,rate=8000,channels=1 \
  ! netsim drop-probability="$loss" delay-probability=1 delay-distribution=uniform \
      min-delay=0 max-delay="$jitter_ms" allow-reordering=false \
  ! udpsink host="$host" port="$port"
