# Sourced by the receiver scripts (the senders need nothing of this plugin).
#
# Makes GStreamer find the plugin built in this checkout, keeping an existing GST_PLUGIN_PATH:
# if one of its directories already holds libgstnetaudio.so, that one is used; otherwise
# target/release or target/debug (whichever holds it; the newer build if both do) is put in
# front of it. With no build at all, an installed plugin is used if GStreamer finds one.
_netaudio_target="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/target"
_netaudio_found=
IFS=: read -r -a _netaudio_dirs <<<"${GST_PLUGIN_PATH:-}"
for _d in "${_netaudio_dirs[@]}"; do
  [ -n "$_d" ] && [ -e "$_d/libgstnetaudio.so" ] && _netaudio_found=$_d && break
done
if [ -z "$_netaudio_found" ]; then
  _rel=$_netaudio_target/release/libgstnetaudio.so _dbg=$_netaudio_target/debug/libgstnetaudio.so
  if [ -e "$_rel" ] && { [ ! -e "$_dbg" ] || [ ! "$_dbg" -nt "$_rel" ]; }; then
    _netaudio_found=$_netaudio_target/release
  elif [ -e "$_dbg" ]; then
    _netaudio_found=$_netaudio_target/debug
  elif ! gst-inspect-1.0 plcjitterbuffer >/dev/null 2>&1; then
    echo "common.sh: no libgstnetaudio.so in $_netaudio_target/{release,debug} and none" \
      "installed; build it with: cargo build --release --lib" >&2
    exit 1
  fi
  if [ -n "$_netaudio_found" ]; then
    export GST_PLUGIN_PATH="$_netaudio_found${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"
  fi
fi
unset _netaudio_target _netaudio_found _netaudio_dirs _d _rel _dbg

# For `gst-launch-1.0 -m ... | filter_messages` (with line-buffered output: stdbuf -oL): keeps
# gst-launch's own lines, errors, warnings and plcjitterbuffer's stats, shortened. Ignores
# Ctrl-C, so that it prints what gst-launch prints while stopping.
filter_messages() {
  (
    trap '' INT
    exec awk '
      /^Got message #.*x-plcjitterbuffer-stats, / {
        sub(/^.*x-plcjitterbuffer-stats, /, "plcjitterbuffer stats: ")
        gsub(/\((guint64|double)\)/, ""); sub(/;$/, ""); print; fflush(); next
      }
      !/^Got message #/ || /\((error|warning)\):/ { print; fflush() }'
  )
}
