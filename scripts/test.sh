#!/usr/bin/env bash
# The test command: installs what it needs, then runs every check and test.
#   scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup-deps.sh
# The end-to-end test plays through autoaudiosink into a real PulseAudio null sink.
scripts/pulse-null-sink.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --locked --all-targets -- -D warnings

echo "== meson: build the plugin, gst-inspect it, run every cargo test"
if [ ! -d builddir ]; then
  meson setup builddir >/dev/null
fi
meson compile -C builddir
# Tests run with GLib warnings fatal, so a g_warning anywhere fails the run.
G_DEBUG=fatal_warnings meson test -C builddir --print-errorlogs --verbose
