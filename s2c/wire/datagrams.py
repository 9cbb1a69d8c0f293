"""Media over QUIC DATAGRAM frames (RFC 9221), sans-I/O: packing, fragments, repair, redundancy.

Owns: how one hop (client -> relay or relay -> client) carries VIDEO/AUDIO frames as unreliable
datagrams — ``DatagramSender`` turns serialized s2c frames into datagrams (video split into
fragments that fit, kept a short while for repair; audio bundled with the previous audio frame
of the same stream as redundancy) and answers NACKs; ``DatagramReceiver`` turns datagrams back
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
"""

from __future__ import annotations

import struct
from collections import deque

from .frames import AUDIO, HEADER, HEADER_BYTES, VERSION, VIDEO

__all__ = ["DatagramSender", "DatagramReceiver", "FRAG", "NACK", "MAX_DATAGRAM_BYTES"]

FRAG = 0xD1
NACK = 0xD3
FRAG_HDR = struct.Struct(">BBBBHBBI")   # kind, count, index, 0, sender, stream, 0, msg
NACK_HDR = struct.Struct(">BB")
NACK_ENTRY = struct.Struct(">HBBIQ")     # sender, stream, 0, msg, mask
MAX_FRAGMENTS = 64
ALL = (1 << 64) - 1
#: DATAGRAM payload that fits a 1200-byte QUIC packet with room for the packet and frame headers
MAX_DATAGRAM_BYTES = 1100
FLAG_PARITY = 0x01      # fragment flags byte: this is the XOR of the message's chunks
_M32 = 0xFFFFFFFF


def _xor(chunks: list) -> bytes:
    """XOR of ``chunks``, each zero-padded to the longest."""
    n = max(len(c) for c in chunks)
    acc = 0
    for c in chunks:
        acc ^= int.from_bytes(bytes(c).ljust(n, b"\0"), "big")
    return acc.to_bytes(n, "big")


def _ahead(a: int, b: int) -> int:
    """How far u32 ``a`` is ahead of ``b`` (negative: behind), modulo 2**32."""
    d = (a - b) & _M32
    return d - (1 << 32) if d >= 1 << 31 else d


class DatagramSender:
    """One hop's sending side. ``pack(frame)`` -> datagrams to send now; ``on_nack(dgram)`` ->
    datagrams to send again. Video messages are kept ``keep_us`` for repair. ``redundancy``
    (the adapter clears it while the path is congested): audio redundancy and video parity."""

    def __init__(self, max_datagram_bytes: int = MAX_DATAGRAM_BYTES, keep_us: int = 1_000_000,
                 keep_msgs: int = 48, redundancy: bool = True, fec_hold_us: int = 10_000_000):
        self.max_datagram_bytes = max_datagram_bytes
        self.chunk_bytes = max_datagram_bytes - FRAG_HDR.size
        self.keep_us, self.keep_msgs, self.redundancy = keep_us, keep_msgs, redundancy
        self._msg: dict[tuple[int, int], int] = {}
        self._sent: dict[tuple[int, int], deque] = {}     # key -> deque of (msg, sent_us, [dgrams])
        self._last_audio: dict[tuple[int, int], bytes] = {}
        self.fec_hold_us = fec_hold_us     # parity on for this long after the last NACK (0: never)
        self._fec_until_us = -1 << 62
        self.stats = {"fragments": 0, "repaired": 0, "repair_too_late": 0, "bad_nacks": 0, "too_large": 0,
                      "parity": 0}

    def pack(self, frame: bytes, now_us: int) -> list[bytes]:
        """Datagrams for one serialized VIDEO or AUDIO frame (anything else: [] and counted)."""
        frame = bytes(frame)
        if len(frame) < HEADER_BYTES or frame[0] != VERSION:
            self.stats["too_large"] += 1
            return []
        _v, t, _f, stream, sender, _d, _q, _ts, _n = HEADER.unpack_from(frame)
        key = (sender, stream)
        if t == AUDIO:
            prev = self._last_audio.get(key) if self.redundancy else None
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
        cb = self.chunk_bytes
        count = -(-len(frame) // cb)
        if count > MAX_FRAGMENTS:
            self.stats["too_large"] += 1
            return []
        msg = self._msg.get(key, -1) + 1 & _M32
        self._msg[key] = msg
        chunks = [frame[i * cb:(i + 1) * cb] for i in range(count)]
        out = [FRAG_HDR.pack(FRAG, count, i, 0, sender, stream, 0, msg) + c for i, c in enumerate(chunks)]
        self.stats["fragments"] += count
        sent = self._sent.setdefault(key, deque())
        sent.append((msg, now_us, list(out)))
        if now_us < self._fec_until_us and self.redundancy:   # lossy, not congested: one XOR parity per frame
            out.append(FRAG_HDR.pack(FRAG, count, 0, FLAG_PARITY, sender, stream, 0, msg) + _xor(chunks))
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
        if self.fec_hold_us:
            self._fec_until_us = now_us + self.fec_hold_us
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


class _Partial:
    __slots__ = ("count", "chunks", "got", "seen_us", "nacked_us", "nacks", "parity", "nbytes")

    def __init__(self, count: int, seen_us: int):
        self.count = count              # 0: not known yet (nothing of this message arrived)
        self.chunks: list = [None] * count
        self.got = 0
        self.seen_us = seen_us
        self.nacked_us = -1 << 62
        self.nacks = 0
        self.parity: bytes | None = None
        self.nbytes = 0                 # datagram bytes held (the receiver's budget)

    def recover(self) -> bool:
        """With the parity and all chunks but one: rebuild that one (True if it did)."""
        if self.parity is None or self.got != self.count - 1:
            return False
        miss = self.chunks.index(None)
        full = len(self.parity)
        if miss < self.count - 1 or self.count == 1:
            size = full
        else:
            first = self.chunks[0]
            if len(first) < HEADER_BYTES:
                return False
            size = HEADER_BYTES + int.from_bytes(first[20:24], "big") - (self.count - 1) * full
            if not 0 < size <= full:
                return False
        self.chunks[miss] = _xor([self.parity] + [c for c in self.chunks if c is not None])[:size]
        self.got += 1
        return True

    def missing_mask(self) -> int:
        if not self.count:
            return ALL
        m = 0
        for i, c in enumerate(self.chunks):
            if c is None:
                m |= 1 << i
        return m


class _Stream:
    __slots__ = ("next", "pending", "started")

    def __init__(self, first: int):
        self.started = False                    # nothing delivered yet: an earlier message may come
        self.next = first                       # the message to deliver next
        self.pending: dict[int, _Partial] = {}  # msg -> partial (next and later)


class DatagramReceiver:
    """One hop's receiving side. ``receive(dgram, now_us)`` -> whole frames (bytes) in order;
    ``poll(now_us)`` -> (frames freed by a deadline, NACK datagram or None); call it every
    ~10-20 ms. ``deadline_us``: how long a video frame waits for its missing parts (the adapter
    may set it from the path's RTT); ``nack_retry_us``: how often a NACK is repeated."""

    def __init__(self, max_frame_bytes: int, deadline_us: int = 250_000, nack_retry_us: int = 60_000,
                 max_streams: int = 64, max_pending: int = 64, max_nacks: int = 3, settle_us: int = 15_000,
                 max_buffered_bytes: int = 2 * 1024 * 1024):
        self.max_buffered_bytes = max_buffered_bytes   # all partial frames together (hostile senders)
        self.buffered_bytes = 0
        self.max_frame_bytes = max_frame_bytes
        self.settle_us = settle_us
        self.deadline_us, self.nack_retry_us = deadline_us, nack_retry_us
        self.max_streams, self.max_pending, self.max_nacks = max_streams, max_pending, max_nacks
        self._streams: dict[tuple[int, int], _Stream] = {}
        self._audio_seen: dict[tuple[int, int], deque] = {}
        self.stats = {"frames": 0, "fragments": 0, "duplicates": 0, "garbage": 0, "late_dropped": 0,
                      "video_lost": 0, "audio_recovered": 0, "nacks_sent": 0, "resyncs": 0,
                      "fec_recovered": 0}

    # ---- input ----------------------------------------------------------------------------------

    def receive(self, dgram: bytes, now_us: int) -> list[bytes]:
        if not dgram:
            self.stats["garbage"] += 1
            return []
        kind = dgram[0]
        if kind == VERSION:
            return self._whole(bytes(dgram))
        if kind == FRAG:
            return self._fragment(bytes(dgram), now_us)
        self.stats["garbage"] += 1
        return []

    def _whole(self, d: bytes) -> list[bytes]:
        out: list[bytes] = []
        pos, n = 0, len(d)
        frames = []
        while pos < n:
            if n - pos < HEADER_BYTES or d[pos] != VERSION:
                self.stats["garbage"] += 1
                return []
            _v, t, _f, stream, sender, _d, seq, _ts, plen = HEADER.unpack_from(d, pos)
            end = pos + HEADER_BYTES + plen
            if end > n or t != AUDIO or end - pos > self.max_frame_bytes:
                self.stats["garbage"] += 1
                return []
            frames.append(((sender, stream), seq, d[pos:end]))
            pos = end
        for i, (key, seq, f) in enumerate(frames):
            seen = self._audio_seen.get(key)
            if seen is None:
                if len(self._audio_seen) >= self.max_streams:
                    self._audio_seen.pop(next(iter(self._audio_seen)))
                seen = self._audio_seen[key] = deque(maxlen=32)
            if seq in seen:
                self.stats["duplicates"] += 1
                continue
            seen.append(seq)
            if i:
                self.stats["audio_recovered"] += 1
            out.append(f)
        out.reverse() if len(out) > 1 else None   # the older (redundant) frame first
        self.stats["frames"] += len(out)
        return out

    def _fragment(self, d: bytes, now_us: int) -> list[bytes]:
        if len(d) <= FRAG_HDR.size:
            self.stats["garbage"] += 1
            return []
        _k, count, index, flags, sender, stream, _z2, msg = FRAG_HDR.unpack_from(d)
        if not 1 <= count <= MAX_FRAGMENTS or index >= count or flags & ~FLAG_PARITY:
            self.stats["garbage"] += 1
            return []
        self.stats["fragments"] += 1
        st = self._place((sender, stream), msg, now_us)
        if st is None:
            return []
        p = st.pending.get(msg)
        if p is None or not p.count:
            old = p
            p = st.pending[msg] = _Partial(count, now_us if old is None else old.seen_us)
            if old is not None:
                p.nacked_us, p.nacks = old.nacked_us, old.nacks
        if p.count != count:
            self.stats["garbage"] += 1
            return []
        if flags & FLAG_PARITY:
            if p.parity is not None or p.got == count:
                self.stats["duplicates"] += 1
                return []
            if not self._room(p, len(d)):
                return []
            p.parity = d[FRAG_HDR.size:]
        elif p.chunks[index] is not None:
            self.stats["duplicates"] += 1
            return []
        else:
            if not self._room(p, len(d)):
                return []
            p.chunks[index] = d[FRAG_HDR.size:]
            p.got += 1
        if p.recover():
            self.stats["fec_recovered"] += 1
        if p.got == count:
            total = sum(len(c) for c in p.chunks)
            if total > self.max_frame_bytes or total < HEADER_BYTES:
                self.stats["garbage"] += 1
                p.chunks = [b""] * count   # complete but useless: delivered as nothing
        return self._deliver(st, now_us)

    def _place(self, key: tuple[int, int], msg: int, now_us: int) -> "_Stream | None":
        """The stream ``msg`` belongs to, with ``msg`` and every message before it that is still
        owed entered as pending; None (counted) if ``msg`` is behind or there is no room."""
        st = self._streams.get(key)
        if st is None:
            if len(self._streams) >= self.max_streams:
                self.stats["garbage"] += 1
                return None
            # a hop's sender numbers from 0: a first message below max_pending means the ones
            # before it were sent too (and are late or lost)
            st = self._streams[key] = _Stream(0 if msg < self.max_pending else msg)
        ahead = _ahead(msg, st.next)
        if ahead < 0 and not st.started and -ahead < self.max_pending - len(st.pending):
            for k in range(1, -ahead):     # the ones between it and the old start: missing so far
                m = msg + k & _M32
                if m not in st.pending:
                    st.pending[m] = _Partial(0, now_us)
            st.next, ahead = msg, 0
        if ahead < 0:
            self.stats["duplicates"] += 1
            return None
        if ahead >= self.max_pending:   # far ahead: the sender restarted or we lost a lot
            self.stats["resyncs"] += 1
            self.stats["video_lost"] += sum(1 for p in st.pending.values() if p.got < p.count or not p.count)
            for p in st.pending.values():
                self._forget(p)
            st.pending.clear()
            st.next = msg
            ahead = 0
        for k in range(ahead):   # messages between next and this one: known missing from now on
            m = st.next + k & _M32
            if m not in st.pending:
                st.pending[m] = _Partial(0, now_us)
        return st

    def _room(self, p: _Partial, n: int) -> bool:
        if self.buffered_bytes + n > self.max_buffered_bytes:
            self.stats["garbage"] += 1
            return False
        self.buffered_bytes += n
        p.nbytes += n
        return True

    def _forget(self, p: _Partial) -> None:
        self.buffered_bytes -= p.nbytes

    def _deliver(self, st: _Stream, now_us: int) -> list[bytes]:
        out: list[bytes] = []
        while True:
            p = st.pending.get(st.next)
            if p is None:
                return out
            if p.count and p.got == p.count:
                self._forget(st.pending.pop(st.next))
                st.next = st.next + 1 & _M32
                st.started = True
                frame = b"".join(p.chunks)
                if self._valid_video(frame):
                    out.append(frame)
                    self.stats["frames"] += 1
                continue
            if now_us - p.seen_us >= self.deadline_us:
                self._forget(st.pending.pop(st.next))
                st.next = st.next + 1 & _M32
                st.started = True
                self.stats["video_lost"] += 1
                continue
            return out

    def _valid_video(self, f: bytes) -> bool:
        if len(f) < HEADER_BYTES or f[0] != VERSION:
            self.stats["garbage"] += 1 if f else 0
            return False
        _v, t, _f, _s, _snd, _d, _q, _ts, plen = HEADER.unpack_from(f)
        if t != VIDEO or HEADER_BYTES + plen != len(f):
            self.stats["garbage"] += 1
            return False
        return True

    # ---- time -----------------------------------------------------------------------------------

    def poll(self, now_us: int) -> tuple[list[bytes], bytes | None]:
        """Frames freed because what blocked them passed its deadline, and a NACK for what is
        still missing (each message asked at most ``max_nacks`` times, ``nack_retry_us`` apart)."""
        out: list[bytes] = []
        entries = []
        for (sender, stream), st in self._streams.items():
            out += self._deliver(st, now_us)
            for m, p in st.pending.items():
                if p.count and p.got == p.count:
                    continue
                if p.nacks >= self.max_nacks or now_us - p.nacked_us < self.nack_retry_us:
                    continue
                # missing for sure once a later message exists; else give the rest of its
                # fragments (sent back to back) ``settle_us`` to arrive
                if now_us - p.seen_us < self.settle_us and not any(_ahead(o, m) > 0 for o in st.pending):
                    continue
                p.nacked_us = now_us
                p.nacks += 1
                entries.append(NACK_ENTRY.pack(sender, stream, 0, m, p.missing_mask()))
                if len(entries) == 64:
                    break
        if not entries:
            return out, None
        self.stats["nacks_sent"] += 1
        return out, NACK_HDR.pack(NACK, len(entries)) + b"".join(entries)


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
