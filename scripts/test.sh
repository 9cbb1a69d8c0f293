#!/usr/bin/env bash
# The whole test suite, in the environment scripts/setup.sh made. The audio tests start their
# own PulseAudio null sink; the network tests start their own s2c-server subprocesses.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
# Import the installed package (with its compiled extensions), not the source tree in the
# current directory: Python 3.11+ then leaves cwd off sys.path, here and in every subprocess.
export PYTHONSAFEPATH=1
exec .venv/bin/python -m pytest -q "$@"
