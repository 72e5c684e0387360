#!/usr/bin/env bash
# Makes sure an audio server runs, so that autoaudiosink really plays (in real time, paced by
# the sink's clock) on a headless machine: when no PulseAudio-compatible server answers, starts
# a private PulseAudio with a null sink as its only (so default) sink. A running server (a
# desktop's) is left as it is. Tests record what plays from "@DEFAULT_MONITOR@".
set -euo pipefail
SINK=netaudio_null

if pactl info >/dev/null 2>&1; then
  exit 0
fi
# Running as root is fine for a private, per-user server on a headless machine.
pulseaudio --daemonize=yes --exit-idle-time=-1 -n \
  --load="module-native-protocol-unix" \
  --load="module-null-sink sink_name=$SINK" 2>/dev/null || true
for _ in $(seq 100); do
  pactl info >/dev/null 2>&1 && break
  sleep 0.1
done
pactl info >/dev/null 2>&1 || { echo "pulse-null-sink: could not start PulseAudio" >&2; exit 1; }
pactl set-default-sink $SINK
