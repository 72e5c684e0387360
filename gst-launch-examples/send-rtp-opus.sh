#!/usr/bin/env bash
# An Opus RTP sender with in-band FEC, through a bad network: netsim drops each packet with
# probability 0.1 and delays each one by a uniform 0..20 ms, reordering some (RTP sequence
# numbers let plcjitterbuffer put them back). udpsink sync=false: netsim has already paced and
# delayed the packets, a syncing sink would wait them back to their timestamps.
#   send-rtp-opus.sh [host, default 127.0.0.1] [port, default 5004] [loss, default 0.1] \
#       [max delay ms, default 20]
set -e
host=${1:-127.0.0.1}
port=${2:-5004}
loss=${3:-0.1}
jitter_ms=${4:-20}
exec gst-launch-1.0 audiotestsrc is-live=true wave=sine freq=440 volume=0.5 \
  ! audio/x-raw,rate=48000,channels=1 \
  ! opusenc audio-type=voice inband-fec=true packet-loss-percentage=10 bitrate=32000 \
  ! rtpopuspay pt=96 \
  ! netsim drop-probability="$loss" delay-probability=1 delay-distribution=uniform \
      min-delay=0 max-delay="$jitter_ms" \
  ! udpsink host="$host" port="$port" sync=false
