"""Private PulseAudio daemons that give PortAudio only one half of a sound card.

- ``speaker_only``: a null sink ("s2c_spk") and no microphone. PulseAudio always exposes a
  sink's monitor as a source (and makes it the default source when nothing else exists), so
  the client environment names a capture source that does not exist (PULSE_SOURCE): PortAudio
  still lists its 'pulse'/'default' devices but opening capture fails ("Unanticipated host
  error"), exactly as on a machine whose sound server has no usable source. Playback works;
  ``record_sink(env, seconds)`` reads what was played from the monitor with ``parec``.
- ``mic_only``: ``module-sine-source`` ("s2c_mic", a 660 Hz microphone) and no sink at all:
  opening playback fails, capture hears the sine.

Each fixture starts its own daemon in a fresh directory, puts its environment into
os.environ for the test (PortAudio reads it when a stream opens), yields the env dict for
subprocesses, and stops the daemon by pid. Skips only when ``pulseaudio`` is absent.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

MIC_TONE_HZ = 660


def _start(modules: list[str]) -> tuple[str, dict]:
    if shutil.which("pulseaudio") is None:
        pytest.skip("pulseaudio binary not installed (apt-get install pulseaudio pulseaudio-utils)")
    rt = tempfile.mkdtemp(prefix="s2c-pulse-half-", dir="/tmp")
    os.chmod(rt, 0o700)
    env = {"XDG_RUNTIME_DIR": rt, "PULSE_SERVER": f"unix:{rt}/pulse/native"}
    denv = dict(os.environ, HOME=rt, **env)
    cmd = ["pulseaudio", "--daemonize=yes", "--system=no", "--exit-idle-time=-1", "--realtime=no",
           "--high-priority=no", "--use-pid-file=yes", "-n",
           f"--load=module-native-protocol-unix auth-anonymous=1 socket={rt}/pulse/native",
           *[f"--load={m}" for m in modules], f"--log-target=file:{rt}/pulse.log"]
    subprocess.run(cmd, env=denv, capture_output=True, timeout=30)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if subprocess.run(["pactl", "info"], env=denv, capture_output=True, timeout=10).returncode == 0:
            return rt, env
        time.sleep(0.05)
    log = Path(rt, "pulse.log")
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    _stop(rt)
    pytest.fail(f"PulseAudio did not start with {modules}:\n{tail}")


def _stop(rt: str) -> None:
    pid_file = Path(rt, "pulse", "pid")
    if pid_file.exists():
        try:
            pid = int(pid_file.read_text().strip())
            os.kill(pid, 15)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                os.kill(pid, 0)
                time.sleep(0.05)
        except (ValueError, ProcessLookupError, PermissionError):
            pass
    shutil.rmtree(rt, ignore_errors=True)


def _use(env: dict):
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    return saved


def _restore(saved: dict) -> None:
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture
def speaker_only():
    rt, env = _start(["module-null-sink sink_name=s2c_spk rate=48000 channels=1"])
    env = dict(env, PULSE_SINK="s2c_spk", PULSE_SOURCE="s2c_no_such_microphone")
    saved = _use(env)
    try:
        yield env
    finally:
        _restore(saved)
        _stop(rt)


@pytest.fixture
def mic_only():
    rt, env = _start([f"module-sine-source source_name=s2c_mic rate=48000 frequency={MIC_TONE_HZ}"])
    env = dict(env, PULSE_SOURCE="s2c_mic")
    saved = _use(env)
    try:
        yield env
    finally:
        _restore(saved)
        _stop(rt)


def record_sink(env: dict, seconds: float, sink: str = "s2c_spk") -> np.ndarray:
    """What the null sink played during the next ``seconds``, via ``parec`` on its monitor."""
    n_bytes = int(seconds * 48_000) * 2
    penv = dict(os.environ, **env)
    penv.pop("PULSE_SOURCE", None)
    proc = subprocess.Popen(["parec", "-d", f"{sink}.monitor", "--raw", "--format=s16le", "--channels=1",
                             "--rate=48000", "--latency-msec=20"], env=penv, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    data = b""
    deadline = time.monotonic() + seconds + 10
    try:
        while len(data) < n_bytes and time.monotonic() < deadline:
            chunk = proc.stdout.read1(n_bytes - len(data)) if hasattr(proc.stdout, "read1") else proc.stdout.read(4096)
            if not chunk:
                break
            data += chunk
    finally:
        proc.kill()
        proc.wait(5)
        proc.stdout.close()
    return np.frombuffer(data[: len(data) // 2 * 2], np.int16)
