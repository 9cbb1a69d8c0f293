"""Forward error correction for one QUIC hop's video fragments, sans-I/O: XOR parity over groups.

Owns: the FEC datagram format (``pack_fec`` / ``unpack_fec``), ``FecGroup`` (the sending side:
consecutive video fragments of any stream on the hop, one XOR parity per ``k`` of them, and on
a lossy path also at the end of each batch of frames (``end_batch``) or once the oldest has
waited ``wait_us``), ``group_size`` (``k`` from the hop's measured
loss: more parity on a lossier path, a little all the time), ``LossMeter`` (the packet loss of
the hop from cumulative sent / lost counts) and ``rebuild`` (the one missing chunk of a group).
Why across frames and streams rather than per frame: a 1.6 KB delta is two fragments, so a
parity per frame costs 50%; over groups of 4 fragments it costs 25% at 1% loss, 12% on a clean
path, and a single loss is rebuilt on arrival of the batch's parity, not a round trip later (at 150 ms RTT
a NACK's repair comes too late for a 250 ms p99).
Must not: do I/O, read the clock, or look inside the chunks (they stay opaque ciphertext).

FEC datagram (docs/protocol.md "QUIC transport"): ``kind u8 (0xD5), n u8, xlen u16`` then n ×
``sender u16, stream u8, count u8, index u8, msg u32`` (the fragments it covers, as in their FRAG
headers) then the XOR of their n chunks, each zero-padded to the longest; ``xlen`` is the XOR of
the n chunk lengths (so the rebuilt chunk's length is known).
"""

from __future__ import annotations

import struct

FEC = 0xD5
FEC_HDR = struct.Struct(">BBH")
FEC_ENTRY = struct.Struct(">HBBBI")   # sender, stream, count, index, msg
MAX_GROUP = 8
#: bytes a fragment's chunk leaves free in a datagram so that the parity over it fits one too
FEC_ROOM = FEC_HDR.size + MAX_GROUP * FEC_ENTRY.size
WAIT_US = 20_000            # the parity of a partial group goes this long after its first fragment


def xor_bytes(chunks) -> bytes:
    """XOR of ``chunks``, each zero-padded to the longest."""
    n = max(len(c) for c in chunks)
    acc = 0
    for c in chunks:
        acc ^= int.from_bytes(bytes(c).ljust(n, b"\0"), "big")
    return acc.to_bytes(n, "big")


def group_size(loss: float) -> int:
    """Fragments per parity for a hop losing ``loss`` (0..1) of its packets: a single loss in
    a group of k + 1 is rebuilt, so k shrinks as two losses in one group get likely."""
    if loss < 0.006:
        return 8
    if loss < 0.02:
        return 4
    if loss < 0.05:
        return 3
    return 2


def flush_wait_us(loss: float, srtt_s: float) -> int | None:
    """How long a partial group waits for its parity: on a lossy path a fraction of the RTT
    (the repair a NACK would bring takes a whole one), on a clean one it waits to be full."""
    if loss < 0.002:
        return None
    return int(min(60_000, max(10_000, 0.4 * srtt_s * 1e6)))


def pack_fec(entries: list[tuple], chunks: list[bytes]) -> bytes:
    """``entries``: (sender, stream, count, index, msg) of each chunk in ``chunks``."""
    xlen = 0
    for c in chunks:
        xlen ^= len(c)
    return (FEC_HDR.pack(FEC, len(entries), xlen) + b"".join(FEC_ENTRY.pack(*e) for e in entries)
            + xor_bytes(chunks))


def unpack_fec(d: bytes):
    """(xlen, entries, parity) or None if ``d`` is not a well-formed FEC datagram."""
    if len(d) < FEC_HDR.size or d[0] != FEC:
        return None
    _k, n, xlen = FEC_HDR.unpack_from(d)
    body = FEC_HDR.size + n * FEC_ENTRY.size
    if not 1 <= n <= MAX_GROUP or len(d) <= body:
        return None
    entries = [FEC_ENTRY.unpack_from(d, FEC_HDR.size + i * FEC_ENTRY.size) for i in range(n)]
    for _s, _st, count, index, _m in entries:
        if not 1 <= count <= 64 or index >= count:
            return None
    return xlen, entries, d[body:]


def rebuild(xlen: int, parity: bytes, known: list[bytes]) -> bytes | None:
    """The one missing chunk of a group from its parity and the other chunks (None: the
    lengths do not add up, i.e. garbage)."""
    n = xlen
    for c in known:
        n ^= len(c)
    if not 0 < n <= len(parity) or any(len(c) > len(parity) for c in known):
        return None
    return xor_bytes([parity, *known])[:n]


class FecGroup:
    """The sending side: ``add(entry, chunk, now_us)`` -> a FEC datagram when the group is full
    (else None); ``poll(now_us)`` -> the parity of a partial group that has waited ``wait_us``.
    ``k`` = 0: no parity; ``wait_us`` None: full groups only (a clean path: NACKs are cheap
    there, and a parity per lone frame would cost a third of the bytes)."""

    __slots__ = ("k", "wait_us", "entries", "chunks", "first_us", "sent")

    def __init__(self, k: int = 12, wait_us: int = WAIT_US):
        self.k, self.wait_us = k, wait_us
        self.entries: list[tuple] = []
        self.chunks: list[bytes] = []
        self.first_us = 0
        self.sent = 0

    def add(self, entry: tuple, chunk: bytes, now_us: int) -> bytes | None:
        if self.k <= 0:
            return None
        if not self.entries:
            self.first_us = now_us
        self.entries.append(entry)
        self.chunks.append(chunk)
        return self._emit() if len(self.entries) >= min(self.k, MAX_GROUP) else None

    def poll(self, now_us: int) -> bytes | None:
        if self.entries and self.wait_us is not None and now_us - self.first_us >= self.wait_us:
            return self._emit()
        return None

    def end_batch(self) -> bytes | None:
        """The parity of a partial group at the end of a batch (the frames one loop turn hands
        the hop), on a lossy path only (``wait_us`` set): the parity then travels right behind
        the fragments it covers, so a single loss is rebuilt on arrival instead of ``wait_us``
        later (at 20 fps a group rarely fills within a frame or two: waiting bought few bytes
        and cost every repaired picture ~0.4 RTT, and every picture behind it on its stream)."""
        if self.entries and self.wait_us is not None:
            return self._emit()
        return None

    def _emit(self) -> bytes:
        d = pack_fec(self.entries, self.chunks)
        self.entries, self.chunks = [], []
        self.sent += 1
        return d


DECAY = 0.8     # per window of LossMeter.window packets without more loss than measured
DECAY_UNTIL_LOSS = 0.5


class LossMeter:
    """The hop's packet loss from cumulative (sent, lost) packet counts (the congestion
    controller's): a loss fraction over windows of at least ``window`` packets, smoothed."""

    __slots__ = ("window", "base", "loss", "lost_any")

    def __init__(self, window: int = 200, initial: float = 0.01):
        self.window = window
        self.base: tuple[int, int] | None = None
        self.loss = initial      # assume a lossy path until measured: parity from the start
        self.lost_any = False    # until a first loss, clean windows bring the estimate down fast

    def update(self, sent: int, lost: int) -> float:
        if self.base is None:
            self.base = (sent, lost)
            return self.loss
        ds, dl = sent - self.base[0], lost - self.base[1]
        if ds >= self.window:
            self.base = (sent, lost)
            f = min(1.0, max(0.0, dl / ds))
            # up at once (a lossy path needs parity now), down slowly: at 1% loss a window of
            # 200 packets holds 0 or 1 loss a third of the time, and halving on each such window
            # took the parity rate down (k 8, then no partial groups) on a path that still lost 1%
            # (a path that has lost nothing yet is measured clean in ~3 windows, not ~8: the
            # starting guess is a guess, and redundancy costs a 4-party receiver a third of its video)
            self.lost_any = self.lost_any or dl > 0
            decay = DECAY if self.lost_any else DECAY_UNTIL_LOSS
            self.loss = f if f > self.loss else max(f, decay * self.loss + (1 - decay) * f)
        return self.loss
