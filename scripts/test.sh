#!/usr/bin/env bash
# The whole test suite, in the environment scripts/setup.sh made. The audio tests start their
# own PulseAudio null sink; the network tests start their own s2c-server subprocesses.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
exec .venv/bin/python -m pytest -q "$@"
