"""Non-device audio endpoints and the 20 ms clock that paces them.

Owns: ``tone:HZ`` and ``FILE.wav`` inputs (looped, converted to 48 kHz mono int16),
the ``FILE.wav`` output (exactly the mixed frames), ``parse_spec`` for ``--audio-in`` /
``--audio-out``, and ``FrameClock``, a thread calling a function every 20 ms on absolute
deadlines (no drift). Must not: encode, mix, or touch PortAudio.
"""

from __future__ import annotations

import os
import threading
import wave

import numpy as np

from ..clock import monotonic_ns
from ..errors import ConfigError
from . import FRAME_MS, FRAME_SAMPLES, SAMPLE_RATE_HZ

MAX_FILE_SECONDS = 600
TONE_AMPLITUDE = 0.3  # of full scale: about -13.5 dBFS RMS


def parse_spec(spec: str | None, kind: str) -> tuple[str, object]:
    """``None`` -> ("device", None); "none" -> ("none", None); "tone:440" -> ("tone", 440.0)
    (inputs only); anything else -> ("file", path). Raises ConfigError."""
    if spec is None:
        return "device", None
    s = spec.strip()
    if s.lower() in ("none", "off", ""):
        return "none", None
    if s.lower().startswith("tone:"):
        if kind != "input":
            raise ConfigError(f"audio output {spec!r}: tone: is an input only")
        try:
            hz = float(s[5:])
        except ValueError:
            raise ConfigError(f"audio input {spec!r}: expected tone:HZ, e.g. tone:440") from None
        if not 20.0 <= hz <= SAMPLE_RATE_HZ / 2 - 1:
            raise ConfigError(f"tone of {hz:g} Hz outside 20..{SAMPLE_RATE_HZ // 2 - 1} Hz")
        return "tone", hz
    return "file", s


class ToneSource:
    """A phase-continuous sine, one 20 ms frame per ``read_frame()``."""

    def __init__(self, freq_hz: float, amplitude: float = TONE_AMPLITUDE):
        self.freq_hz = freq_hz
        self.amplitude = amplitude
        self._n = 0

    def read_frame(self) -> np.ndarray:
        n = np.arange(self._n, self._n + FRAME_SAMPLES, dtype=np.float64)
        self._n = (self._n + FRAME_SAMPLES) % (SAMPLE_RATE_HZ * 1000)  # whole seconds: phase-safe
        x = self.amplitude * 32767.0 * np.sin(2.0 * np.pi * self.freq_hz * n / SAMPLE_RATE_HZ)
        return np.rint(x).astype(np.int16)


def load_audio_file(path: str) -> np.ndarray:
    """Any audio file FFmpeg reads (WAV of any width/rate/channels) -> 48 kHz mono int16."""
    if not os.path.isfile(path):
        raise ConfigError(f"audio input file {path!r} does not exist")
    try:
        import av

        chunks = []
        with av.open(path) as container:
            if not container.streams.audio:
                raise ConfigError(f"audio input file {path!r} has no audio stream")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE_HZ)
            total = 0
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    a = out.to_ndarray().reshape(-1)
                    chunks.append(a)
                    total += a.size
                if total > MAX_FILE_SECONDS * SAMPLE_RATE_HZ:
                    raise ConfigError(f"audio input file {path!r} is longer than {MAX_FILE_SECONDS} s")
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except ConfigError:
        raise
    except Exception as exc:  # PyAV raises many kinds for unreadable files
        raise ConfigError(f"cannot read audio input file {path!r}: {exc}") from None
    pcm = np.concatenate(chunks).astype(np.int16) if chunks else np.zeros(0, np.int16)
    if pcm.size == 0:
        raise ConfigError(f"audio input file {path!r} holds no samples")
    return pcm


class FileSource:
    """A whole file in memory, played in a loop, one 20 ms frame per ``read_frame()``."""

    def __init__(self, path: str):
        self.path = path
        pcm = load_audio_file(path)
        if pcm.size < FRAME_SAMPLES:
            pcm = np.resize(pcm, FRAME_SAMPLES)
        self._pcm = pcm
        self._pos = 0

    def read_frame(self) -> np.ndarray:
        end = self._pos + FRAME_SAMPLES
        if end <= self._pcm.size:
            out = self._pcm[self._pos:end]
            self._pos = end % self._pcm.size
            return out.copy()
        head = self._pcm[self._pos:]
        rest = FRAME_SAMPLES - head.size
        self._pos = rest
        return np.concatenate([head, self._pcm[:rest]])


class WavSink:
    """Writes 48 kHz mono int16 frames to a WAV file; the header stays valid after each write."""

    def __init__(self, path: str):
        self.path = path
        try:
            self._fh = open(path, "wb")  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise ConfigError(f"cannot write audio output file {path!r}: {exc.strerror or exc}") from None
        self._w = wave.open(self._fh, "wb")
        self._w.setnchannels(1)
        self._w.setsampwidth(2)
        self._w.setframerate(SAMPLE_RATE_HZ)
        self.frames_written = 0
        self._lock = threading.Lock()

    def write(self, frame: np.ndarray) -> None:
        with self._lock:
            if self._w is None:
                return
            self._w.writeframes(frame.astype("<i2", copy=False).tobytes())
            self.frames_written += 1

    def close(self) -> None:
        with self._lock:
            if self._w is not None:
                self._w.close()
                self._w = None
                self._fh.close()


class FrameClock:
    """Calls ``fn(now_us)`` every ``period_ms`` on absolute deadlines, in its own thread.

    If it falls more than ``max_lag_ms`` behind (machine stalled) it skips ahead instead of
    bursting; ``skips`` counts that. An exception in ``fn`` is counted, never kills the clock.
    """

    def __init__(self, fn, period_ms: int = FRAME_MS, name: str = "s2c-audio-clock", max_lag_ms: int = 200):
        self._fn = fn
        self.period_ns = period_ms * 1_000_000
        self.max_lag_ns = max_lag_ms * 1_000_000
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.ticks = 0
        self.skips = 0
        self.errors = 0
        self.last_error: str | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)

    def _run(self) -> None:
        clock = monotonic_ns
        deadline = clock() + self.period_ns
        while not self._stop.is_set():
            delay = deadline - clock()
            if delay > 0 and self._stop.wait(delay / 1e9):
                break
            now = clock()
            if now - deadline > self.max_lag_ns:
                deadline = now
                self.skips += 1
            try:
                self._fn(now // 1000)
            except Exception as exc:  # noqa: BLE001 - a clock must keep ticking
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
            self.ticks += 1
            deadline += self.period_ns
