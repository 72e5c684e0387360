#!/usr/bin/env bash
# Installs what building, testing and the demo need on Debian 12 (as root, or through sudo).
# Idempotent: does nothing when everything is installed already.
set -euo pipefail

packages=(
  pkg-config meson ninja-build cmake
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-pulseaudio pulseaudio pulseaudio-utils
  libopus-dev espeak-ng iproute2 util-linux
  python3-venv python3-dev build-essential
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup-deps: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v cargo >/dev/null || { echo "setup-deps: cargo not found (install Rust >= 1.95 with rustup)"; exit 1; }
