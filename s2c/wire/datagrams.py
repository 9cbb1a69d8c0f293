"""Media over QUIC DATAGRAM frames (RFC 9221), sans-I/O: packing, fragments, repair, redundancy.

Owns: how one hop (client -> relay or relay -> client) carries VIDEO/AUDIO frames as unreliable
datagrams — ``DatagramSender`` turns serialized s2c frames into datagrams (video split into
fragments that fit, kept a short while for repair, XOR parity over groups of fragments
(s2c.wire.fec); audio bundled with the previous audio frame
of the same stream as redundancy) and answers NACKs; ``DatagramReceiver`` (s2c.wire.reassembly,
re-exported here) turns datagrams back
into whole serialized frames, in order per (sender, stream) for video, drops duplicates, asks
for missing fragments (NACK datagrams) and gives a frame up after a deadline.
Must not: do I/O, read the clock (``now_us`` comes in), look inside payloads (frames stay the
opaque, end-to-end protected bytes; only the 24-byte s2c header is read), or trust its input:
garbage is counted in ``stats`` and dropped, never raised.

Datagram kinds (first byte; docs/protocol.md "QUIC transport"):
- ``0x01`` (= the s2c header version): one or more whole s2c frames back to back (audio: the
  frame, then the previous frame of its stream as redundancy).
- ``0xD1`` fragment: ``kind u8, count u8, index u8, 0 u8, sender u16, stream u8, 0 u8, msg u32``
  then a chunk; the chunks 0..count-1 of message ``msg`` of (sender, stream), concatenated, are
  one serialized VIDEO frame. ``msg`` counts +1 per video frame on this hop per (sender, stream).
- ``0xD3`` NACK: ``kind u8, n u8`` then n × ``sender u16, stream u8, 0 u8, msg u32, mask u64``
  (bit i set: fragment i is missing; all 64 bits: the whole message).
- ``0xD5`` FEC: XOR parity over a group of fragments of any streams (s2c.wire.fec).
"""

from __future__ import annotations

import struct
from collections import deque

from .fec import FEC, FEC_ROOM, FecGroup
from .frames import AUDIO, HEADER, HEADER_BYTES, VERSION, VIDEO

__all__ = ["DatagramSender", "DatagramReceiver", "FRAG", "NACK", "FEC", "MAX_DATAGRAM_BYTES"]

# the receiving half lives in s2c.wire.reassembly (imported at the end: it uses the constants here)

FRAG = 0xD1
NACK = 0xD3
FRAG_HDR = struct.Struct(">BBBBHBBI")   # kind, count, index, 0, sender, stream, 0, msg
NACK_HDR = struct.Struct(">BB")
NACK_ENTRY = struct.Struct(">HBBIQ")     # sender, stream, 0, msg, mask
MAX_FRAGMENTS = 64
ALL = (1 << 64) - 1
#: DATAGRAM payload that fits a 1200-byte QUIC packet with room for the packet and frame headers
MAX_DATAGRAM_BYTES = 1100
_M32 = 0xFFFFFFFF


def _ahead(a: int, b: int) -> int:
    """How far u32 ``a`` is ahead of ``b`` (negative: behind), modulo 2**32."""
    d = (a - b) & _M32
    return d - (1 << 32) if d >= 1 << 31 else d


class DatagramSender:
    """One hop's sending side. ``pack(frame)`` -> datagrams to send now; ``on_nack(dgram)`` ->
    datagrams to send again; ``poll(now_us)`` -> a partial group's parity when due. Video
    messages are kept ``keep_us`` for repair. ``redundancy`` (the adapter clears it while the
    path is congested): audio redundancy and video parity; ``audio_redundancy`` (the adapter
    clears it on a clean path): the audio part of it."""

    def __init__(self, max_datagram_bytes: int = MAX_DATAGRAM_BYTES, keep_us: int = 1_000_000,
                 keep_msgs: int = 48, redundancy: bool = True, fec_k: int = 0):
        self.max_datagram_bytes = max_datagram_bytes
        # room for a FEC datagram's header too: its parity is as long as the longest chunk, and
        # a datagram larger than a packet would block aioquic's datagram queue for good
        self.chunk_bytes = max_datagram_bytes - FRAG_HDR.size - FEC_ROOM
        self.keep_us, self.keep_msgs, self.redundancy = keep_us, keep_msgs, redundancy
        self.audio_redundancy = True
        self._msg: dict[tuple[int, int], int] = {}
        self._sent: dict[tuple[int, int], deque] = {}     # key -> deque of (msg, sent_us, [dgrams])
        self._last_audio: dict[tuple[int, int], bytes] = {}
        self.fec = FecGroup(fec_k)     # the adapter sets fec.k from the hop's loss (s2c.wire.fec)
        self.stats = {"fragments": 0, "repaired": 0, "repair_too_late": 0, "bad_nacks": 0, "too_large": 0,
                      "parity": 0}

    def poll(self, now_us: int) -> list[bytes]:
        """The parity of a partial group that has waited long enough (call every ~10 ms)."""
        d = self.fec.poll(now_us)
        if d is None:
            return []
        self.stats["parity"] += 1
        return [d]

    def end_batch(self) -> list[bytes]:
        """The parity of the fragments packed since the last full group, on a lossy path: the
        adapter calls it after handing over the frames of one loop turn (s2c.wire.fec)."""
        d = self.fec.end_batch()
        if d is None:
            return []
        self.stats["parity"] += 1
        return [d]

    def pack(self, frame: bytes, now_us: int) -> list[bytes]:
        """Datagrams for one serialized VIDEO or AUDIO frame (anything else: [] and counted)."""
        frame = bytes(frame)
        if len(frame) < HEADER_BYTES or frame[0] != VERSION:
            self.stats["too_large"] += 1
            return []
        _v, t, _f, stream, sender, _d, _q, _ts, _n = HEADER.unpack_from(frame)
        key = (sender, stream)
        if t == AUDIO:
            prev = self._last_audio.get(key) if self.redundancy and self.audio_redundancy else None
            self._last_audio[key] = frame
            if prev is not None and len(frame) + len(prev) <= self.max_datagram_bytes:
                return [frame + prev]
            if len(frame) <= self.max_datagram_bytes:
                return [frame]
            self.stats["too_large"] += 1
            return []
        if t != VIDEO:
            self.stats["too_large"] += 1
            return []
        count = -(-len(frame) // self.chunk_bytes)
        if count > MAX_FRAGMENTS:
            self.stats["too_large"] += 1
            return []
        msg = self._msg.get(key, -1) + 1 & _M32
        self._msg[key] = msg
        chunks = split_chunks(frame, count)
        out = [FRAG_HDR.pack(FRAG, count, i, 0, sender, stream, 0, msg) + c for i, c in enumerate(chunks)]
        self.stats["fragments"] += count
        sent = self._sent.setdefault(key, deque())
        sent.append((msg, now_us, list(out)))
        if self.redundancy:   # not congested: XOR parity over groups of fragments (s2c.wire.fec)
            fec = self.fec
            for i, c in enumerate(chunks):
                p = fec.add((sender, stream, count, i, msg), c, now_us)
                if p is not None:
                    out.append(p)
                    self.stats["parity"] += 1
        while len(sent) > self.keep_msgs or (sent and now_us - sent[0][1] > self.keep_us):
            sent.popleft()
        return out

    def on_nack(self, dgram: bytes, now_us: int) -> list[bytes]:
        """Fragments a NACK asks for that are still kept (young enough to be useful)."""
        if len(dgram) < NACK_HDR.size or dgram[0] != NACK:
            self.stats["bad_nacks"] += 1
            return []
        n = dgram[1]
        if len(dgram) != NACK_HDR.size + n * NACK_ENTRY.size:
            self.stats["bad_nacks"] += 1
            return []
        out: list[bytes] = []
        for k in range(n):
            sender, stream, _z, msg, mask = NACK_ENTRY.unpack_from(dgram, NACK_HDR.size + k * NACK_ENTRY.size)
            for m, sent_us, frags in self._sent.get((sender, stream), ()):
                if m != msg:
                    continue
                if now_us - sent_us > self.keep_us:
                    self.stats["repair_too_late"] += 1
                    break
                for i, d in enumerate(frags):
                    if mask >> i & 1:
                        out.append(d)
                self.stats["repaired"] += 1
                break
            else:
                self.stats["repair_too_late"] += 1
        return out


#: a fragment of a message in several never shares a QUIC packet with another of them: aioquic
#: fills a 1200-byte packet with as many pending datagrams as fit, so a 1.1 KB frame cut into
#: 1020 + 80 bytes went in one packet, and one lost packet lost the whole message — which the
#: parity over its fragments cannot rebuild (a NACK round trip, and the next message's arrival
#: first to show it was missing: at 150 ms RTT a ~250 ms freeze). Two datagrams of this size
#: never fit one packet together.
MIN_SPLIT_DGRAM = 600


def split_chunks(frame: bytes, count: int) -> list[bytes]:
    """``frame`` in ``count`` chunks of equal size (the parity is as long as the longest one),
    the last zero-padded to it; with 2+ chunks each is at least MIN_SPLIT_DGRAM as a datagram.
    The receiver drops the padding by the s2c header's length."""
    if count == 1:
        return [frame]
    size = max(-(-len(frame) // count), MIN_SPLIT_DGRAM - FRAG_HDR.size)
    frame = frame.ljust(size * count, b"\0")
    return [frame[i * size:(i + 1) * size] for i in range(count)]


def split_media(data: bytes) -> tuple[bytes, list[bytes]]:
    """Split serialized frames (our own output, well-formed) into the bytes that go on the
    reliable stream and the VIDEO/AUDIO frames that go as datagrams, order kept within each."""
    mv = memoryview(data)
    n = len(data)
    stream_parts: list = []
    media: list[bytes] = []
    pos = run = 0
    while n - pos >= HEADER_BYTES:
        t = data[pos + 1]
        end = pos + HEADER_BYTES + int.from_bytes(mv[pos + 20:pos + 24], "big")
        if t == VIDEO or t == AUDIO:
            if run < pos:
                stream_parts.append(mv[run:pos])
            media.append(bytes(mv[pos:end]))
            run = end
        pos = end
    if run < n:
        stream_parts.append(mv[run:n])
    return b"".join(stream_parts), media


from .reassembly import DatagramReceiver  # noqa: E402,F401 - re-exported
