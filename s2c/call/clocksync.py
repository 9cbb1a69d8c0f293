"""Clock offsets between this client, the relay and the other participants, sans-I/O.

Owns: the estimate of ``offset_us = relay clock - our clock`` from PING/PONG exchanges, RTT
figures, and the offsets the other members reported (handed back by the relay in each PONG).
Must not: read the clock, send anything, or know about sockets: times come in as arguments.

Queueing only ever adds delay, so a sample's RTT bounds its error: the estimate is the offset of
the lowest-RTT sample among the recent ones (NTP's minimum filter), which stays unbiased when
PINGs queue behind media on a congested path. The same samples give the queueing delay of our
uplink alone (``uplink_queue_ms``: the last PING's relay-arrival minus send time, over the
recent minimum; ``uplink_standing_queue_ms``: the same over the last two PINGs, for s2c.call.ratecontrol) and of the way back (``downlink_queue_ms``), which the sender's pacer uses. A peer's timestamp in our clock is
``ts_us + peer_offset - my_offset``.
"""

from __future__ import annotations

import statistics
from collections import deque

MAX_RTT_US = 60_000_000


class ClockSync:
    def __init__(self, window: int = 32):
        self._rtt_us: deque = deque(maxlen=window)
        self._samples: deque = deque(maxlen=window)   # (rtt_us, offset_us)
        self._peers: dict[int, tuple[int, int]] = {}  # id -> (offset_us, rtt_us) as reported
        self._up_us: deque = deque(maxlen=window)     # relay_us - sent_us: uplink one-way + offset
        self._down_us: deque = deque(maxlen=window)   # recv_us - relay_us: downlink one-way - offset

    def reset(self) -> None:
        """A new connection: offsets to the old relay mean nothing now."""
        self._samples.clear()
        self._peers.clear()
        self._up_us.clear()
        self._down_us.clear()

    def on_pong(self, sent_us: int, recv_us: int, relay_us: int, clocks, my_id: int | None) -> None:
        """A PONG for a PING sent at ``sent_us`` arrived at ``recv_us`` (our clock)."""
        rtt = recv_us - sent_us
        if 0 <= rtt < MAX_RTT_US:
            self._rtt_us.append(rtt)
            self._samples.append((rtt, relay_us - (sent_us + recv_us) // 2))
            self._up_us.append(relay_us - sent_us)
            self._down_us.append(recv_us - relay_us)
        for pid, off, r in clocks:
            if pid != my_id:
                self._peers[pid] = (off, r)

    def forget(self, peer_id: int) -> None:
        self._peers.pop(peer_id, None)

    @property
    def offset_us(self) -> int | None:
        """relay clock - our clock, from the lowest-RTT recent sample (None before the first)."""
        return min(self._samples)[1] if self._samples else None

    def report(self) -> tuple[int | None, int | None]:
        """(offset_us, rtt_us) to put in the next PING, for the others to use."""
        if not self._samples:
            return None, None
        rtt, off = min(self._samples)
        return off, rtt

    @property
    def uplink_queue_ms(self) -> float:
        """How much later than the recent best the last PING reached the relay: the queue on our
        uplink (its bottleneck's buffer included), whatever the offset is. 0 before two samples."""
        up = self._up_us
        return (up[-1] - min(up)) / 1000.0 if len(up) >= 2 else 0.0

    @property
    def uplink_standing_queue_ms(self) -> float:
        """The uplink's queue over the last two PINGs (the smaller of the two): a queue that
        stands, not one lost segment's head-of-line stall (the sender's rate control)."""
        up = self._up_us
        if len(up) < 3:
            return 0.0
        return (min(up[-1], up[-2]) - min(up)) / 1000.0

    @property
    def downlink_queue_ms(self) -> float:
        """The same for the way back, the worst of the last 4 PONGs: a queue towards us, which
        also delays the ACKs of what we send."""
        d = self._down_us
        if len(d) < 2:
            return 0.0
        recent = max(d[i] for i in range(max(0, len(d) - 4), len(d)))   # the last ~2 s: it comes and goes
        return (recent - min(d)) / 1000.0

    @property
    def rtt_ms_p50(self) -> float | None:
        return statistics.median(self._rtt_us) / 1000 if self._rtt_us else None

    def rtt_ms_samples(self) -> list[float]:
        return [r / 1000 for r in self._rtt_us]

    def peer_offset_us(self, peer_id: int) -> int | None:
        """Add to a timestamp from ``peer_id`` to get our clock (None until both estimates exist)."""
        mine = self.offset_us
        theirs = self._peers.get(peer_id)
        if mine is None or theirs is None:
            return None
        return theirs[0] - mine

    def to_local_us(self, peer_id: int, ts_us: int) -> int | None:
        off = self.peer_offset_us(peer_id)
        return None if off is None else ts_us + off
