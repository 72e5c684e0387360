#!/usr/bin/env bash
# Runs every receiver in gst-launch-examples/ for a few seconds against its sender, as written,
# and fails if one does not start or stops early, prints an ERROR (or a GLib CRITICAL, or a
# pipeline that does not parse), or plays no received audio (its last stats line must show
# received > 0 and played-ms > 0). Makes sure an audio server runs for autoaudiosink first.
#   scripts/check-examples.sh [plugin dir, default target/release or target/debug]
# EXAMPLE_SECONDS (default 3) is how long each receiver runs.
set -euo pipefail
if [ $# -gt 0 ]; then
  [ -e "$1/libgstnetaudio.so" ] || { echo "check-examples: no libgstnetaudio.so in $1" >&2; exit 1; }
  # Only this directory (the examples keep a GST_PLUGIN_PATH that holds the plugin).
  GST_PLUGIN_PATH=$(cd "$1" && pwd)
  export GST_PLUGIN_PATH
fi
cd "$(dirname "$0")/.."
examples=gst-launch-examples
seconds=${EXAMPLE_SECONDS:-3}

scripts/pulse-null-sink.sh
# The same plugin the examples will use, and a private registry so that no stale cache of the
# plugin is used; building it now keeps the scan out of the first receiver's seconds.
# shellcheck source=../gst-launch-examples/common.sh
source $examples/common.sh
sender_pid=
tmp=$(mktemp -d)
cleanup() {
  if [ -n "$sender_pid" ]; then
    kill "$sender_pid" 2>/dev/null || true
    wait "$sender_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
export GST_REGISTRY=$tmp/registry.bin
gst-inspect-1.0 plcjitterbuffer >"$tmp/inspect.log" 2>&1 || {
  cat "$tmp/inspect.log"
  echo "check-examples: plcjitterbuffer not found (GST_PLUGIN_PATH=${GST_PLUGIN_PATH:-})" >&2
  exit 1
}
echo "plugin: $(gst-inspect-1.0 plcjitterbuffer | awk '/^  Filename/ {print $2}')"

free_port() {
  python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 0)); print(s.getsockname()[1])'
}

failed=0
# check <name> <sender command> -- <receiver command>; "PORT" in either is replaced by a free port.
check() {
  local name=$1 port
  shift
  port=$(free_port)
  local sender=() receiver=()
  while [ "$1" != "--" ]; do sender+=("${1//PORT/$port}"); shift; done
  shift
  for a in "$@"; do receiver+=("${a//PORT/$port}"); done
  local slog=$tmp/$name.sender.log rlog=$tmp/$name.receiver.log

  "${sender[@]}" >"$slog" 2>&1 &
  sender_pid=$!
  local rc=0
  # SIGINT, like Ctrl-C: gst-launch stops the pipeline cleanly. 124: it ran until stopped.
  timeout -s INT -k 5 "$seconds" "${receiver[@]}" >"$rlog" 2>&1 || rc=$?
  local sender_alive=1
  kill -0 "$sender_pid" 2>/dev/null || sender_alive=0
  kill "$sender_pid" 2>/dev/null || true
  wait "$sender_pid" 2>/dev/null || true
  sender_pid=

  local why=() stats
  stats=$(grep '^plcjitterbuffer stats:' "$rlog" | tail -n 1 || true)
  [ "$rc" -eq 124 ] || why+=("receiver exited with $rc before ${seconds} s")
  [ "$sender_alive" -eq 1 ] || why+=("sender stopped early")
  if grep -Eq 'ERROR|CRITICAL|erroneous pipeline' "$slog" "$rlog"; then
    why+=("ERROR/CRITICAL printed")
  fi
  if ! echo "$stats" | grep -Eq 'received=[1-9]' || ! echo "$stats" | grep -Eq 'played-ms=[1-9]'; then
    why+=("no received audio played")
  fi
  if [ ${#why[@]} -eq 0 ]; then
    echo "ok   $name: ${stats#plcjitterbuffer stats: }"
  else
    failed=1
    echo "FAIL $name: $(IFS=';'; echo "${why[*]}")"
    echo "--- sender: ${sender[*]}"
    cat "$slog"
    echo "--- receiver: ${receiver[*]}"
    cat "$rlog"
    echo "---"
  fi
}

check rawudpaudiosrc $examples/send-raw-tone.sh 127.0.0.1 PORT \
  -- $examples/receive-rawudpaudiosrc.sh PORT
check rawudpaudiosrc-lossy $examples/send-raw-lossy.sh 127.0.0.1 PORT \
  -- $examples/receive-rawudpaudiosrc.sh PORT
check udpsrc $examples/send-raw-tone.sh 127.0.0.1 PORT \
  -- $examples/receive-udpsrc.sh PORT
check rtp-opus $examples/send-rtp-opus.sh 127.0.0.1 PORT \
  -- $examples/receive-rtp-opus.sh PORT
check rtp-pcmu $examples/send-rtp-pcmu.sh 127.0.0.1 PORT \
  -- $examples/receive-rtp-pcmu.sh PORT
# Multicast through the loopback interface only: nothing leaves the machine.
check multicast $examples/send-raw-tone.sh 239.255.12.34 PORT lo \
  -- $examples/receive-multicast.sh 239.255.12.34 PORT lo

exit $failed
