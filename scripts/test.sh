#!/usr/bin/env bash
# The whole test suite, in the environment scripts/setup.sh made. The audio tests start their
# own PulseAudio null sink; the network tests start their own s2c-server subprocesses.
# S2C_VENV picks another virtual environment (default .venv), e.g. S2C_VENV=.venv-wheel for
# the one .ci/run installs from the wheelhouse.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${S2C_VENV:-.venv}"
case "$VENV" in /*) VENV_ABS="$VENV" ;; *) VENV_ABS="$PWD/$VENV" ;; esac
[ -x "$VENV/bin/python" ] || { echo "test.sh: no virtual environment at $VENV_ABS" >&2; exit 2; }
export PATH="$VENV_ABS/bin:$PATH"
# Import the installed package (with its compiled extensions), not the source tree in the
# current directory: Python 3.11+ then leaves cwd off sys.path, here and in every subprocess.
export PYTHONSAFEPATH=1
exec "$VENV/bin/python" -m pytest -q "$@"
