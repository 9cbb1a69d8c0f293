"""Microphone clean-up with WebRTC's audio processing module: echo cancellation (AEC3),
noise suppression and automatic gain (AGC2), sans-I/O.

Owns: ``AudioProcessing``, which pairs each captured frame with the far-end reference (what
the mixer actually sent to the speaker, fed through ``process_render``) and runs WebRTC's
APM over them in 10 ms steps; the bounded render FIFO that does the pairing; ``apm_available``.
Must not: read clocks, sleep, lock, or touch devices. The engine calls ``process_render``
(speaker thread) and ``process_capture`` (capture thread) under one lock of its own.

Library: ``pywebrtc-audio`` (Apache-2.0, manylinux wheels with WebRTC's APM linked in
statically: AEC3, NS, AGC2). Its ``AudioProcessor.process(near, far)`` takes capture and
render together and walks them in 10 ms frames (render first, then capture, per frame), so
the pairing below decides which far-end samples go with which microphone samples.

Pairing (why the FIFO is trimmed): the far-end samples handed in with a microphone frame
must not be *newer* than the echo in it, or the echo precedes its reference and cannot be
cancelled. Render frames are pushed when the mixer makes them (before they are played), so
a reference that is at most ``max_render_lag_ms`` older than the capture is always in time
for a device path (output latency + input latency ≥ 2 buffers). Before each capture frame
the FIFO is trimmed (oldest samples dropped) to that lag; AEC3's own delay estimator finds
the rest of the echo path delay (``stream_delay_ms`` is only a hint). A missing reference
(speaker stalled) is padded with zeros; both are counted.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from . import SAMPLE_RATE_HZ

APM_FRAME_MS = 10
APM_FRAME_SAMPLES = SAMPLE_RATE_HZ * APM_FRAME_MS // 1000  # 480
MAX_RENDER_FIFO_MS = 500
INSTALL_HINT = "pip install pywebrtc-audio"


def apm_available() -> tuple[bool, str]:
    """``(True, "")`` when WebRTC's APM can be loaded, else ``(False, reason)`` (one line)."""
    try:
        import pywebrtc_audio  # noqa: F401
    except ImportError as exc:
        return False, f"pywebrtc-audio is not installed ({exc}); {INSTALL_HINT}"
    except Exception as exc:  # noqa: BLE001 - a broken binary wheel
        return False, f"pywebrtc-audio did not load: {type(exc).__name__}: {exc}"
    return True, ""


class ApmUnavailable(Exception):
    """Raised by ``AudioProcessing`` when the library is missing (the engine then runs without)."""


class _RenderFifo:
    """int16 samples in arrival order, in a deque of arrays (no per-sample Python work)."""

    def __init__(self, max_samples: int):
        self.max_samples = max_samples
        self._chunks: deque[np.ndarray] = deque()
        self._head = 0  # samples already taken from _chunks[0]
        self.size = 0

    def push(self, x: np.ndarray) -> int:
        """Append; drops the oldest beyond ``max_samples``; returns samples dropped."""
        self._chunks.append(x)
        self.size += x.size
        over = self.size - self.max_samples
        if over > 0:
            self.drop(over)
            return over
        return 0

    def drop(self, n: int) -> None:
        while n > 0 and self._chunks:
            avail = self._chunks[0].size - self._head
            if avail <= n:
                self._chunks.popleft()
                self._head = 0
                self.size -= avail
                n -= avail
            else:
                self._head += n
                self.size -= n
                n = 0

    def take(self, n: int) -> np.ndarray:
        """The oldest ``n`` samples (zeros at the end when fewer are held)."""
        out = np.zeros(n, np.int16)
        pos = 0
        while pos < n and self._chunks:
            c = self._chunks[0]
            k = min(n - pos, c.size - self._head)
            out[pos:pos + k] = c[self._head:self._head + k]
            pos += k
            self._head += k
            self.size -= k
            if self._head >= c.size:
                self._chunks.popleft()
                self._head = 0
        return out


class AudioProcessing:
    """WebRTC APM on 48 kHz mono int16, frames of any multiple of 10 ms.

    ``echo_cancel`` needs the far end: call ``process_render(frame)`` with every frame the
    mixer sends to the speaker, and ``process_capture(frame)`` with every microphone frame.
    ``stream_delay_ms``: hint for AEC3 (speaker buffer + microphone buffer latency).
    ``max_render_lag_ms``: how much older than the capture the paired reference may be (see
    the module docstring); 0 pairs strictly in lockstep (offline use, the bench).
    Raises ``ApmUnavailable`` when pywebrtc-audio cannot be loaded.
    """

    def __init__(self, *, echo_cancel: bool = True, noise_suppress: bool = True, auto_gain: bool = True,
                 ns_level: int = 1, agc_max_gain_db: float = 30.0, stream_delay_ms: int = 0,
                 max_render_lag_ms: int = 20, rate_hz: int = SAMPLE_RATE_HZ):
        ok, why = apm_available()
        if not ok:
            raise ApmUnavailable(why)
        from pywebrtc_audio import AudioProcessor

        if rate_hz % 100:
            raise ValueError(f"rate {rate_hz} Hz has no whole number of samples in 10 ms")
        self.rate_hz = rate_hz
        self.frame_samples = rate_hz // 100
        self.echo_cancel = bool(echo_cancel)
        self.noise_suppress = bool(noise_suppress)
        self.auto_gain = bool(auto_gain)
        self._ap = AudioProcessor(sample_rate=rate_hz, num_channels=1, echo_cancellation=self.echo_cancel,
                                  noise_suppression=self.noise_suppress, high_pass_filter=True,
                                  auto_gain_control=self.auto_gain, ns_level=int(ns_level),
                                  agc_max_gain_db=float(agc_max_gain_db), stream_delay_ms=int(stream_delay_ms))
        self.max_render_lag_samples = max(0, int(max_render_lag_ms)) * rate_hz // 1000
        self._fifo = _RenderFifo(MAX_RENDER_FIFO_MS * rate_hz // 1000)
        self.capture_frames = 0
        self.render_frames = 0
        self.render_trimmed_samples = 0  # reference older than max_render_lag dropped
        self.render_missing_samples = 0  # reference not there yet: zeros paired instead
        self.bad_frames = 0
        # the first call allocates AEC3's state (~15 ms here): pay it now, not in a capture callback
        if self.echo_cancel:
            self._ap.process(np.zeros(self.frame_samples, np.int16), np.zeros(self.frame_samples, np.int16))
        else:
            self._ap.process(np.zeros(self.frame_samples, np.int16))

    @property
    def enabled(self) -> str:
        """``"aec+ns+agc"`` and the like, for the status line and stats."""
        parts = [n for n, on in (("aec", self.echo_cancel), ("ns", self.noise_suppress), ("agc", self.auto_gain)) if on]
        return "+".join(parts) or "off"

    @property
    def stream_delay_ms(self) -> int:
        return int(self._ap.stream_delay_ms)

    @stream_delay_ms.setter
    def stream_delay_ms(self, value: int) -> None:
        self._ap.stream_delay_ms = max(0, min(500, int(value)))

    @property
    def speech_probability(self) -> float:
        return float(self._ap.speech_probability)

    @property
    def gain_db(self) -> float:
        return float(self._ap.gain_db) if self.auto_gain else 0.0

    def _check(self, frame: np.ndarray) -> np.ndarray:
        if frame.dtype != np.int16 or frame.ndim != 1 or frame.size == 0 or frame.size % self.frame_samples:
            self.bad_frames += 1
            raise ValueError(f"APM frame must be int16 mono, a multiple of {self.frame_samples} samples; "
                             f"got {frame.dtype} shape {frame.shape}")
        return frame

    def process_render(self, frame: np.ndarray) -> None:
        """The far end, exactly as it goes to the speaker (after mixing and volume)."""
        if not self.echo_cancel:
            return
        self._check(frame)
        self.render_frames += 1
        self._fifo.push(frame.copy())

    def process_capture(self, frame: np.ndarray) -> np.ndarray:
        """A microphone frame in, the cleaned frame (same length, int16) out."""
        self._check(frame)
        self.capture_frames += 1
        if not self.echo_cancel:
            return self._ap.process(frame)
        n = frame.size
        excess = self._fifo.size - n - self.max_render_lag_samples
        if excess > 0:
            self._fifo.drop(excess)
            self.render_trimmed_samples += excess
        short = n - self._fifo.size
        if short > 0:
            self.render_missing_samples += short
        far = self._fifo.take(n)
        return self._ap.process(frame, far)

    def reset(self) -> None:
        self._ap.reset()
        self._fifo.drop(self._fifo.size)

    def stats(self) -> dict:
        out = dict(enabled=self.enabled, capture_frames=self.capture_frames, render_frames=self.render_frames,
                   render_trimmed_samples=self.render_trimmed_samples,
                   render_missing_samples=self.render_missing_samples, render_fifo_samples=self._fifo.size,
                   stream_delay_ms=self.stream_delay_ms, bad_frames=self.bad_frames)
        if self.auto_gain:
            out["agc_gain_db"] = round(self.gain_db, 1)
        return out
