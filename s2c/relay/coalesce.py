"""Holding a receiver's lone audio frames a few milliseconds, so that what else arrives for it
meanwhile (the other talkers' audio, a picture) leaves in the same write — sans-I/O.

Owns: ``AudioHold`` (per connection: the time its held output is due) and ``AUDIO_HOLD_MS``.
Must not: do I/O, read the clock (``now_ms`` comes in), or look at frames.

Why: with TCP_NODELAY every 20 ms audio frame of every talker is its own TCP segment to each
receiver: ~100 B of frame under 52 B of TCP/IPv4 headers (and its own packet on QUIC). In a
4-party call a receiver gets 150 such segments per second; holding a lone audio frame up to
``AUDIO_HOLD_MS`` lets the others' frames (20 ms apart each) share its segment — a
few ms more mouth-to-ear for ~40% fewer segments. Measured on the LAN with 3 parties, the hold
cost ~10 ms of median mouth-to-ear (the mixer's 20 ms clock rounds the wait up), so only rooms
of 4 or more hold: where the wire into one receiver is the figure that matters (docs/network.md).
"""

from __future__ import annotations

AUDIO_HOLD_MS = 8.0   # at most this long a lone audio frame waits for company
HOLD_MIN_MEMBERS = 4  # hold only in rooms of this many or more (three other talkers at least)


class AudioHold:
    """Connections whose ready output is held, and when each is due."""

    __slots__ = ("hold_ms", "due")

    def __init__(self, hold_ms: float = AUDIO_HOLD_MS):
        self.hold_ms = hold_ms
        self.due: dict[int, float] = {}   # cid -> due time (ms)

    def hold(self, cid: int, now_ms: float) -> None:
        """Hold ``cid``'s output (its first held frame sets the due time)."""
        self.due.setdefault(cid, now_ms + self.hold_ms)

    def release(self, cids) -> None:
        """These connections' output is going out now (for another reason)."""
        d = self.due
        if d:
            for cid in cids:
                d.pop(cid, None)

    def pop_due(self, now_ms: float) -> list[int]:
        """Connections whose hold has run out (removed from the hold)."""
        d = self.due
        if not d:
            return []
        out = [cid for cid, t in d.items() if t <= now_ms]
        for cid in out:
            del d[cid]
        return out

    def next_due_ms(self) -> float | None:
        """The earliest due time, or None when nothing is held."""
        return min(self.due.values()) if self.due else None
