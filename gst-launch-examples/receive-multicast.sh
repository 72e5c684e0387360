#!/usr/bin/env bash
# Joins a multicast group with rawudpaudiosrc and plays what send-raw-tone.sh sends to it,
# printing plcjitterbuffer's stats once per second of output. Without an interface the kernel
# picks the one its route to the group goes through. On one machine, use lo on both sides:
#   ./send-raw-tone.sh 239.255.12.34 5004 lo &
#   ./receive-multicast.sh 239.255.12.34 5004 lo
#   receive-multicast.sh [group, default 239.255.12.34] [port, default 5004] [interface]
set -eo pipefail
source "$(dirname "$0")/common.sh"
group=${1:-239.255.12.34}
port=${2:-5004}
iface=${3:-}
stdbuf -oL gst-launch-1.0 -m rawudpaudiosrc address="$group" port="$port" \
    ${iface:+multicast-iface="$iface"} \
    caps="audio/x-raw,format=S16LE,rate=8000,channels=1,layout=interleaved" \
  ! plcjitterbuffer latency=40 stats-interval=1000 \
  ! audioconvert ! audioresample ! autoaudiosink \
  | filter_messages
