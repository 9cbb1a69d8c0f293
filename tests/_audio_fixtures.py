"""A private PulseAudio daemon with a null sink, started by the tests themselves.

``pulse_null`` (session scope) runs ``scripts/pulse_null.sh start`` in a fresh directory
under /tmp, puts PULSE_SERVER / PULSE_SINK / PULSE_SOURCE / XDG_RUNTIME_DIR into this
process's environment (PortAudio reads them when a stream opens) and yields them as a dict
for subprocesses; afterwards it stops the daemon and its keep-alive stream by pid.
Skips only when the ``pulseaudio`` binary is absent; any other failure is an error.

Use: ``from _audio_fixtures import pulse_null  # noqa: F401`` in a test module (tests/ is on sys.path).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "pulse_null.sh"


def _parse_env(text: str) -> dict[str, str]:
    env = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("export ") and "=" in line:
            key, value = line[len("export "):].split("=", 1)
            env[key] = value.strip("'\"")
    return env


@pytest.fixture(scope="session")
def pulse_null():
    if shutil.which("pulseaudio") is None:
        pytest.skip("pulseaudio binary not installed (apt-get install pulseaudio pulseaudio-utils)")
    rt = tempfile.mkdtemp(prefix="s2c-pulse-", dir="/tmp")
    proc = subprocess.run(["bash", str(SCRIPT), "start", rt], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        log = Path(rt, "pulse.log")
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        subprocess.run(["bash", str(SCRIPT), "stop", rt], capture_output=True, timeout=10)
        pytest.fail(f"PulseAudio null sink did not start: {proc.stderr.strip()}\n{tail}")
    env = _parse_env(proc.stdout)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield env
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        subprocess.run(["bash", str(SCRIPT), "stop", rt], capture_output=True, timeout=10)
        shutil.rmtree(rt, ignore_errors=True)
