"""Per-receiver pacing state of the relay, sans-I/O: delivery rate, queue budget, socket hints,
and the per-sender REFRESH limiter.

Owns: ``DeliveryRate`` (a receiver's measured delivery rate: bytes that actually left the
relay's socket per unit time while the connection was backlogged, over the last ~2 s of
backlogged time; a max filter over 250 ms samples overestimated it ~2x: the congestion
window opens in bursts), the
time budget it gives the receiver's queue (~150 ms of media, less what already waits in the
socket), the TCP_NOTSENT_LOWAT / write-buffer size and the in-flight gate (``gate_bytes``) the adapter
should use for it, and
``RefreshLimiter`` (at most one keyframe request per sender per interval; requests over the
limit are held and sent when the interval has passed, never lost).
Must not: touch sockets, read the clock (``now_ms`` comes in), or look at payloads.

Why not a relay-side keyframe cache answering one receiver's REFRESH: the cached keyframe is the
SFrame ciphertext that receiver has already opened (the relay drops deltas, not keyframes, so the
broken chain started with a keyframe it received); its replay window (s2c.crypto.sframe,
per KID) refuses the same counter again and raises a "replayed" security alert. A relay cannot
make a fresh ciphertext (end-to-end keys), so the sender has to encode the keyframe: the relay
rate-limits those requests per sender instead, so one slow receiver costs the others at most one
extra keyframe per ``REFRESH_INTERVAL_MS``.
"""

from __future__ import annotations

from collections import deque

QUEUE_TIME_MS = 150.0          # media a receiver's queue + socket may hold, at its delivery rate
MIN_BUDGET_BYTES = 8 * 1024    # a keyframe (~7 KB) must fit through
DEFAULT_BUDGET_BYTES = 64 * 1024   # before the first rate sample
LOWAT_TIME_MS = 25.0           # unsent bytes in the kernel, and the transport's buffer, in time
MIN_LOWAT_BYTES = 1024
MAX_LOWAT_BYTES = 16 * 1024    # also the value before any measurement
BACKLOGGED_BYTES = 2 * 1024    # unsent in the socket above this: the path, not we, sets the pace
SNDBUF_TIME_MS = 30.0          # a slow receiver's socket holds (in flight + unsent) about min RTT + this
MIN_SNDBUF_BYTES = 2 * 1024   # the kernel doubles it and keeps its own minimum (~4.6 KB)
SNDBUF_MAX_RATE = 500_000      # bytes/s: above this the kernel's own autotuning is left alone
GATE_TIME_MS = 30.0            # a slow receiver's kernel may hold about min RTT + this (in flight + unsent)
MIN_GATE_BYTES = 1500          # ... but at least one full segment
RATE_SAMPLES = 8               # the rate is the mean over this many samples (~2 s at 4 ticks/s)
REFRESH_INTERVAL_MS = 1000.0   # keyframe requests forwarded to one sender at most this often


class DeliveryRate:
    """What one receiver's path carries, from (bytes handed to the socket, bytes still unsent)."""

    __slots__ = ("samples", "prev", "handed_bytes", "min_rtt_ms", "queued")

    def __init__(self):
        self.samples: deque = deque(maxlen=RATE_SAMPLES)
        self.prev: tuple[float, int] | None = None   # (now_ms, bytes that left the socket)
        self.handed_bytes = 0                         # cumulative, counted by the relay core
        self.min_rtt_ms: float | None = None          # the kernel's figure, when the adapter has it
        self.queued: deque = deque(maxlen=RATE_SAMPLES)   # per report: did the relay's queue hold media?

    def sample(self, now_ms: float, unsent_bytes: int, backlogged: bool, queued: bool = False) -> None:
        """Called a few times per second while the receiver is backlogged (queue or socket
        not draining): a sample needs two consecutive backlogged observations. ``unsent_bytes``
        counts what the socket holds, not yet acknowledged (in flight or unsent), so ``left``
        is what was delivered; ``queued``: the relay's own queue held frames."""
        self.queued.append(queued)
        left = self.handed_bytes - max(0, unsent_bytes)
        if not backlogged:
            self.prev = None
            return
        prev = self.prev
        self.prev = (now_ms, left)
        if prev is not None and now_ms - prev[0] >= 50.0:
            self.samples.append((now_ms - prev[0], max(0, left - prev[1])))

    @property
    def bytes_per_s(self) -> float | None:
        if not self.samples:
            return None
        return sum(b for _, b in self.samples) * 1000.0 / sum(t for t, _ in self.samples)

    def budget_bytes(self, unsent_bytes: int, floor_bytes: int = MIN_BUDGET_BYTES) -> int:
        """The receiver's queue may hold this much media: ~QUEUE_TIME_MS at its rate, less what
        already waits in the socket, never below one keyframe (``floor_bytes``: the relay knows
        the keyframes of the layers this receiver gets, s2c.relay.layers; else ~7 KB, 160x96)."""
        r = self.bytes_per_s
        if r is None:
            return DEFAULT_BUDGET_BYTES
        t = QUEUE_TIME_MS + (self.min_rtt_ms or 0.0)   # what is in flight for a min RTT is not queueing
        return max(floor_bytes, int(r * t / 1000.0) - max(0, unsent_bytes))

    def sndbuf_bytes(self) -> int | None:
        """SO_SNDBUF for a slow receiver (None: leave the kernel's autotuning): the path's own
        queue (a bottleneck buffer, bufferbloat) fills with whatever the congestion control has
        in flight, so a slow receiver gets about a min RTT + SNDBUF_TIME_MS of socket at its rate."""
        r = self.bytes_per_s
        if r is None or r > SNDBUF_MAX_RATE or not any(self.queued):
            return None   # not measured, fast, or app-limited (the relay's queue stayed empty)
        rtt = self.min_rtt_ms or 0.0
        return max(MIN_SNDBUF_BYTES, int(r * (rtt + SNDBUF_TIME_MS) / 1000.0))

    def gate_bytes(self) -> int | None:
        """The in-flight gate of a slow receiver (None: no gate, as for ``sndbuf_bytes``): the
        relay hands this receiver's socket more bytes only while the kernel holds (in flight +
        unsent, SIOCOUTQ) less than this, so the path's bottleneck queue stays ~GATE_TIME_MS
        and audio and control wait in the relay's priority queue, not behind video on the link.
        Above a min RTT of bytes in flight the path still runs at its full rate, so the delivery
        rate measured under the gate can grow."""
        r = self.bytes_per_s
        if r is None or r > SNDBUF_MAX_RATE or not any(self.queued):
            return None
        rtt = self.min_rtt_ms or 0.0
        return max(MIN_GATE_BYTES, int(r * (rtt + GATE_TIME_MS) / 1000.0))

    def lowat_bytes(self) -> int:
        """TCP_NOTSENT_LOWAT (and the transport's high-water mark) for this receiver."""
        r = self.bytes_per_s
        if r is None or not any(self.queued):
            return MAX_LOWAT_BYTES
        return max(MIN_LOWAT_BYTES, min(MAX_LOWAT_BYTES, int(r * LOWAT_TIME_MS / 1000.0)))


class RefreshLimiter:
    """Keyframe requests to each sender: at most one per REFRESH_INTERVAL_MS (per sender and
    stream); the rest wait (one pending request per sender and stream) and go out when due."""

    __slots__ = ("interval_ms", "last_ms", "pending", "limited")

    def __init__(self, interval_ms: float = REFRESH_INTERVAL_MS):
        self.interval_ms = interval_ms
        self.last_ms: dict[tuple[int, int], float] = {}
        self.pending: dict[tuple[int, int], int] = {}   # (sender, stream) -> requester id
        self.limited = 0

    def allow(self, sender: int, stream: int, requester: int, now_ms: float) -> bool:
        """True: send the request now. False: it is held (sent by ``due`` later)."""
        k = (sender, stream)
        if now_ms - self.last_ms.get(k, -1e18) >= self.interval_ms:
            self.last_ms[k] = now_ms
            self.pending.pop(k, None)
            return True
        self.limited += 1
        self.pending.setdefault(k, requester)
        return False

    def due(self, now_ms: float) -> list[tuple[int, int, int]]:
        """(sender, stream, requester) of held requests whose interval has passed."""
        out = []
        for k, req in list(self.pending.items()):
            if now_ms - self.last_ms.get(k, -1e18) >= self.interval_ms:
                del self.pending[k]
                self.last_ms[k] = now_ms
                out.append((k[0], k[1], req))
        return out

    def forget(self, sender: int) -> None:
        for d in (self.last_ms, self.pending):
            for k in [k for k in d if k[0] == sender]:
                del d[k]
