#!/usr/bin/env bash
# Prints the path of a Python with numpy, scipy, pesq (ITU-T P.862) and pystoi, creating a venv
# under target/pyenv on first use (Debian 12: python3-venv, python3-dev and build-essential,
# which scripts/setup-deps.sh installs; the packages come from PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${PYENV_DIR:-target/pyenv}
if ! "$venv/bin/python" -c "import numpy, scipy, pesq, pystoi" 2>/dev/null; then
  rm -rf "$venv"
  /usr/bin/python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "numpy<3" "scipy<2" "pesq==0.0.4" "pystoi==0.4.1" >&2
fi
echo "$venv/bin/python"
