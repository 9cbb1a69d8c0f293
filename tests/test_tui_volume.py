"""Per-person volume in a real terminal: a listener in tmux hears two tone senders through a real
s2c-server (into a WAV file), selects one with Tab and mutes it for itself with x, selects the
other and turns it down twice with -; the WAV shows the first tone gone and the second at half
its amplitude, while the tile labels say so."""

from __future__ import annotations

import os
import shutil
import sys
import time

import numpy as np
import pytest

from _call_fixtures import HeadlessClient
from _relay_fixtures import ServerProc
from _tmux import Pane, shell_command, tmux_missing

pytestmark = pytest.mark.skipif(tmux_missing or shutil.which("s2c") is None, reason="needs tmux and s2c")

RATE = 48_000
LOW_HZ, HIGH_HZ = 330, 770


def _tone_amplitude(samples: np.ndarray, hz: float) -> float:
    """Amplitude of one frequency, the median over 100 ms chunks (a chunk the jitter buffer had to
    conceal on a loaded machine does not pull it down)."""
    chunk = RATE // 10
    return float(np.median([_chunk_amplitude(samples[i:i + chunk], hz)
                            for i in range(0, len(samples) - chunk + 1, chunk)]))


def _chunk_amplitude(samples: np.ndarray, hz: float) -> float:
    """Amplitude of one frequency in a window (Hann-windowed DFT bin), in samples' units."""
    n = len(samples)
    t = np.arange(n) / RATE
    w = np.hanning(n)
    return float(2 * abs(np.sum(samples * w * np.exp(-2j * np.pi * hz * t))) / w.sum())


def _wav_samples(path) -> np.ndarray:
    raw = open(path, "rb").read()[44:]                 # the WAV header of s2c's WavSink is 44 bytes
    return np.frombuffer(raw[: len(raw) // 2 * 2], "<i2").astype(np.float64)


def _wait_samples(path, n: int, timeout_s: float) -> np.ndarray:
    deadline = time.monotonic() + timeout_s
    while True:
        s = _wav_samples(path) if os.path.exists(path) else np.zeros(0)
        if len(s) >= n or time.monotonic() > deadline:
            return s
        time.sleep(0.05)


def test_tab_x_and_minus_change_what_this_listener_hears(tmp_path):
    srv = ServerProc()
    heard = tmp_path / "heard.wav"
    senders = []
    try:
        listener = [shutil.which("s2c"), "-s", "vol", "-c", "ear", "-i", "127.0.0.1", "-p", str(srv.port),
                    "--no-video", "--audio-in", "none", "--audio-out", str(heard)]
        with Pane(shell_command(listener, stderr=str(tmp_path / "ear.err")), 140, 40) as pane:
            pane.wait_text("1 in call", 20)
            for name, hz in (("low", LOW_HZ), ("high", HIGH_HZ)):     # ids in this order
                senders.append(HeadlessClient(srv.port, name, tmp_path, session="vol", video=None,
                                              extra=("--audio-in", f"tone:{hz}", "--audio-out", "none")))
                pane.wait_text(f"{len(senders) + 1} in call", 20)
            # both tones are heard: a second of the mix with both at full level
            start = len(_wav_samples(heard))
            before = _wait_samples(heard, start + 3 * RATE, 20)[-2 * RATE:]
            low0, high0 = _tone_amplitude(before, LOW_HZ), _tone_amplitude(before, HIGH_HZ)
            assert low0 > 300 and high0 > 300, (low0, high0)
            pane.send_keys("Tab")
            pane.wait_text(">low", 5)
            pane.send_text("x")
            pane.wait_text("[muted for me]", 5)
            pane.send_keys("Tab")
            pane.wait_text(">high", 5)
            for _ in range(2):
                pane.send_keys("-l", "--", "-")      # after tmux's '--' the '-' is the text typed
            pane.wait_text("[vol 50%]", 5)
            mark = len(_wav_samples(heard))
            after = _wait_samples(heard, mark + 3 * RATE, 20)[-2 * RATE:]
            pane.send_text("q")
            done = pane.wait_text("DONE", 10)
        assert "EXIT=0" in done, done
    finally:
        for s in senders:
            s.stop()
        srv.stop()
    low1, high1 = _tone_amplitude(after, LOW_HZ), _tone_amplitude(after, HIGH_HZ)
    assert low1 < low0 / 30, (low0, low1)                 # muted for me: more than 30 dB down
    assert 0.35 < high1 / high0 < 0.7, (high0, high1)     # two steps of -25 %: half the amplitude
