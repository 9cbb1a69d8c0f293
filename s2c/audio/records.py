"""Small records of the audio engine: a played frame, the state of one half, the hand-off
between a device thread and the loop, and a talker's receive state.

Owns: those data types. Must not: do I/O or read the clock.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

from . import FRAME_MS
from .catchup import CatchUp
from .jitter import JitterBuffer
from .opus import AudioDecoder

STALL_TARGET_MAX_MS = 200   # the jitter buffer may grow this far to ride out path stalls (issue 12)
CAPACITY_MS = 400           # a burst after a stall up to this is caught up by time-compression, not cut

@dataclass(frozen=True)
class PlayoutRecord:
    """One decoded frame that left the mixer: for ``audio.mouth_to_ear_ms``."""

    talker_id: object
    seq: int
    capture_us: int  # sender's clock_us() when the frame was complete at capture
    mixed_us: int  # receiver's clock_us() when the mixer emitted the frame

    @property
    def mouth_to_ear_ms(self) -> float:
        return (self.mixed_us - self.capture_us) / 1000.0


@dataclass(frozen=True)
class HalfState:
    """Whether one half (``"mic"`` = what we send, ``"speaker"`` = what we hear) runs.

    ``what``: the endpoint ("microphone 'default'", "tone:440", "file rx.wav", "none").
    ``reason``: short text for the status line when it does not run ("no device",
    "cannot open", "turned off", "not started"); ``detail``: the full one-line error.
    """

    half: str
    running: bool
    what: str
    reason: str = ""
    detail: str = ""

    @property
    def label(self) -> str:
        return f"{self.half} on" if self.running else f"{self.half} off: {self.reason}"


def _short_reason(exc: Exception) -> str:
    text = str(exc)
    if text.startswith(("no default", "no microphone", "no speaker", "PortAudio did not")):
        return "no device"
    if text.startswith("PyAudio is not installed"):
        return "no PyAudio"
    if text.startswith("cannot start"):
        return "cannot start"
    if text.startswith("cannot open"):
        return "cannot open"
    return text[:40]


class _Handoff:
    """Bounded, thread-safe, drop-oldest queue of (pcm, capture_us)."""

    def __init__(self, maxlen: int):
        self._q: deque = deque(maxlen=maxlen)
        self._lock = threading.Lock()
        self.dropped = 0
        self.pending = False  # a drain is scheduled

    def put(self, item) -> bool:
        """Append; True if the caller must schedule a drain."""
        with self._lock:
            if len(self._q) == self._q.maxlen:
                self.dropped += 1
            self._q.append(item)
            if self.pending:
                return False
            self.pending = True
            return True

    def take_all(self) -> list:
        with self._lock:
            items = list(self._q)
            self._q.clear()
            self.pending = False
            return items


class _Talker:
    __slots__ = ("jb", "dec", "cu", "last_rx_ms", "bad")

    def __init__(self, now_ms: float):
        self.jb = JitterBuffer(frame_ms=FRAME_MS, stall_target_max_ms=STALL_TARGET_MAX_MS,
                               capacity_ms=CAPACITY_MS, catchup=True)
        self.dec = AudioDecoder()
        self.cu = CatchUp()
        self.last_rx_ms = now_ms
        self.bad = 0
