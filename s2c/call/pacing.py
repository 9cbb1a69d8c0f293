"""Sender pacing by time, sans-I/O: how much of our own uplink backlog is too much.

Owns: ``UplinkPacer``, the estimate of the uplink's rate (bytes delivered per unit time while a
backlog stood: bytes handed to the connection minus what is not yet acknowledged, over ~3 s),
the in-flight gate of a slow uplink (``gate_bytes``), the periodic keyframe interval on a slow
uplink (``keyframe_interval_s``: a keyframe there delays the audio behind it), the picture-skip decision (skip while the backlog, in flight included, exceeds
``BACKLOG_TIME_MS`` at that rate beyond a min RTT and the way back's queueing delay, which
PINGs measure: ACKs that queue on a slow downlink are not a slow uplink; skipping before encoding lowers the frame rate and
costs nothing, where dropping an encoded delta would break every receiver's chain), and the
TCP_NOTSENT_LOWAT / write-buffer size that keeps audio from waiting behind video in the kernel.
Must not: read the clock (``now_us`` comes in), touch sockets or encode.
"""

from __future__ import annotations

from collections import deque

BACKLOG_TIME_MS = 100.0         # a picture is skipped while the backlog exceeds this, in time
MIN_BACKLOG_BYTES = 3 * 1024    # ... but never below this (about two deltas)
FALLBACK_BACKLOG_BYTES = 32 * 1024   # before the rate was ever measured
BACKLOGGED_BYTES = 1024         # unsent bytes above this: the link, not we, sets the pace
SAMPLE_MIN_US = 200_000
RATE_SAMPLES = 16
LOWAT_TIME_MS = 20.0
MIN_LOWAT_BYTES = 2 * 1024
MAX_LOWAT_BYTES = 16 * 1024
GATE_TIME_MS = 30.0             # a slow uplink's kernel socket may hold about min RTT + this
MIN_GATE_BYTES = 1500
GATE_MAX_RATE = 500_000         # bytes/s: above this no gate (the kernel's own queue is short)
KEY_AUDIO_DELAY_MS = 25.0       # a keyframe that holds a slow uplink longer than this (audio waits behind it) ...
SLOW_KEY_S = 12.0               # ... goes at most this often: beyond the jitter buffer's stall memory (10 s)


class UplinkPacer:
    __slots__ = ("samples", "prev")

    def __init__(self):
        self.samples: deque = deque(maxlen=RATE_SAMPLES)
        self.prev: tuple[int, int] | None = None   # (now_us, bytes that left the socket)

    def observe(self, now_us: int, handed_bytes: int, backlog_bytes: int) -> None:
        """``handed_bytes``: cumulative bytes given to the connection; ``backlog_bytes``: how
        many of them are not on the wire yet."""
        if backlog_bytes < BACKLOGGED_BYTES:
            self.prev = None
            return
        left = handed_bytes - backlog_bytes
        prev = self.prev
        if prev is None:
            self.prev = (now_us, left)
        elif now_us - prev[0] >= SAMPLE_MIN_US:
            self.samples.append((now_us - prev[0], max(0, left - prev[1])))
            self.prev = (now_us, left)

    @property
    def bytes_per_s(self) -> float | None:
        if not self.samples:
            return None
        return sum(b for _, b in self.samples) * 1e6 / sum(t for t, _ in self.samples)

    def limit_bytes(self, min_rtt_ms: float | None = None, ack_delay_ms: float = 0.0) -> int:
        """The backlog (unacknowledged bytes) allowed at the measured rate: BACKLOG_TIME_MS of
        queue plus what is in flight for a min RTT plus the delay of the way back (a slow
        downlink delays the ACKs: that is not a queue on our uplink)."""
        r = self.bytes_per_s
        if r is None:
            return FALLBACK_BACKLOG_BYTES
        t = BACKLOG_TIME_MS + (min_rtt_ms or 0.0) + max(0.0, ack_delay_ms)
        return max(MIN_BACKLOG_BYTES, int(r * t / 1000.0))

    def should_skip(self, backlog_bytes: int, min_rtt_ms: float | None = None,
                    ack_delay_ms: float = 0.0) -> bool:
        return backlog_bytes > self.limit_bytes(min_rtt_ms, ack_delay_ms)

    def gate_bytes(self, min_rtt_ms: float | None = None, ack_delay_ms: float = 0.0) -> int | None:
        """The in-flight gate of a slow uplink (None: none): the transport writes more only while
        the kernel holds (in flight + unsent) less than this, so the link's queue stays short
        and audio and control wait in our priority queue instead of behind video on the link.
        Like ``limit_bytes`` it counts the way back's queueing delay (``ack_delay_ms``): ACKs
        queued on a slow downlink keep bytes unacknowledged that are no longer on our uplink."""
        r = self.bytes_per_s
        if r is None or r > GATE_MAX_RATE:
            return None
        t = (min_rtt_ms or 0.0) + max(0.0, ack_delay_ms) + GATE_TIME_MS
        return max(MIN_GATE_BYTES, int(r * t / 1000.0))

    def keyframe_interval_s(self, interval_s: float, key_bytes: float | None) -> float:
        """The periodic keyframe interval on this uplink. On a slow one a keyframe takes the link
        for key_bytes / rate (60 ms for 2.2 KB at 300 kbit/s), and every audio frame captured
        meanwhile arrives that much late. Every ``interval_s`` (2 s) such a stall is often
        enough for the listeners' jitter buffers to keep a stall allowance the size of it, which
        is what their mouth-to-ear median then costs; at most every ``SLOW_KEY_S`` it is one
        stall the buffers ride out by concealing. A receiver that needs a keyframe (a join, a
        broken chain) still asks for one (REFRESH), so only the periodic ones are stretched."""
        r = self.bytes_per_s
        if not r or key_bytes is None or r > GATE_MAX_RATE:   # unmeasured (None) or 0 while stalled
            return interval_s
        if key_bytes * 1000.0 / r > KEY_AUDIO_DELAY_MS:
            return max(interval_s, SLOW_KEY_S)
        return interval_s

    def lowat_bytes(self) -> int:
        r = self.bytes_per_s
        if r is None:
            return MAX_LOWAT_BYTES
        return max(MIN_LOWAT_BYTES, min(MAX_LOWAT_BYTES, int(r * LOWAT_TIME_MS / 1000.0)))
