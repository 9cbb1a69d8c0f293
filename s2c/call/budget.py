"""Per-peer decode budget: a participant that sends more video than its share is shed.

Owns: one token bucket of frames and one of bytes per sending participant, refilled from
``now_us`` the caller passes; ``admit()`` says whether a frame may be decrypted and decoded,
and counts what was shed. A peer that was shed in the last ``marker_hold_us`` is ``shedding``
(a marker for its tile). Sans-I/O: no clock reads, no I/O.

Must not: look inside frames or decide anything else about the call. The receiving client
calls ``admit(peer, nbytes, now_us)`` before it opens a VIDEO frame: a keyed participant
sending valid maximum-size key frames at 80 fps (issue 13, finding 7) costs the receiver only
its share, so the others' pictures keep their latency.

The defaults are well above what an s2c sender produces (``--fps`` 15, at most 30 pictures/s,
frames of up to 64 KiB, typically a few KiB) and well below what one core decodes.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_FRAMES_PER_S = 40.0
DEFAULT_BYTES_PER_S = 1_500_000.0
DEFAULT_BURST_S = 1.0
DEFAULT_MARKER_HOLD_US = 2_000_000


@dataclass
class PeerBudget:
    frames_tokens: float
    bytes_tokens: float
    last_us: int
    admitted: int = 0
    shed_frames: int = 0
    shed_bytes: int = 0
    last_shed_us: int | None = None


class DecodeBudget:
    """Token buckets per peer: ``frames_per_s`` and ``bytes_per_s``, each with ``burst_s`` of credit."""

    def __init__(self, frames_per_s: float = DEFAULT_FRAMES_PER_S, bytes_per_s: float = DEFAULT_BYTES_PER_S,
                 burst_s: float = DEFAULT_BURST_S, marker_hold_us: int = DEFAULT_MARKER_HOLD_US):
        if frames_per_s <= 0 or bytes_per_s <= 0 or burst_s <= 0:
            from .errors import ConfigError
            raise ConfigError("decode budget rates and burst must be positive")
        self.frames_per_s = float(frames_per_s)
        self.bytes_per_s = float(bytes_per_s)
        self.burst_s = float(burst_s)
        self.marker_hold_us = int(marker_hold_us)
        self.peers: dict[int, PeerBudget] = {}

    def _peer(self, peer_id: int, now_us: int) -> PeerBudget:
        b = self.peers.get(peer_id)
        if b is None:
            b = self.peers[peer_id] = PeerBudget(self.frames_per_s * self.burst_s,
                                                 self.bytes_per_s * self.burst_s, now_us)
        return b

    def admit(self, peer_id: int, nbytes: int, now_us: int) -> bool:
        """True if a frame of ``nbytes`` from ``peer_id`` may be decoded now; False: shed it."""
        b = self._peer(peer_id, now_us)
        dt = max(0, now_us - b.last_us) / 1e6
        b.last_us = max(b.last_us, now_us)
        b.frames_tokens = min(self.frames_per_s * self.burst_s, b.frames_tokens + dt * self.frames_per_s)
        b.bytes_tokens = min(self.bytes_per_s * self.burst_s, b.bytes_tokens + dt * self.bytes_per_s)
        if b.frames_tokens >= 1.0 and b.bytes_tokens >= nbytes:
            b.frames_tokens -= 1.0
            b.bytes_tokens -= nbytes
            b.admitted += 1
            return True
        b.shed_frames += 1
        b.shed_bytes += nbytes
        b.last_shed_us = now_us
        return False

    def shedding(self, peer_id: int, now_us: int) -> bool:
        """True if frames of ``peer_id`` were shed within the last ``marker_hold_us``."""
        b = self.peers.get(peer_id)
        return b is not None and b.last_shed_us is not None and now_us - b.last_shed_us < self.marker_hold_us

    def shed_frames(self, peer_id: int) -> int:
        b = self.peers.get(peer_id)
        return b.shed_frames if b is not None else 0

    def forget(self, peer_id: int) -> None:
        self.peers.pop(peer_id, None)
