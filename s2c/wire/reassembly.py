"""The receiving half of media over QUIC DATAGRAM frames, sans-I/O.

Owns: ``DatagramReceiver``: datagrams back into whole serialized s2c frames — in order per
(sender, stream) for video, duplicates dropped, missing fragments asked for (NACK datagrams),
a single lost fragment of a FEC group rebuilt from its parity (s2c.wire.fec; NACKs wait for
that while the hop sends parity), a frame given up after a deadline.
The format is s2c.wire.datagrams'. Must not: do I/O, read the clock, look inside payloads, or
raise on garbage (it is counted in ``stats`` and dropped).
"""

from __future__ import annotations

from collections import OrderedDict, deque

from .datagrams import ALL, FRAG, FRAG_HDR, MAX_FRAGMENTS, NACK, NACK_ENTRY, NACK_HDR, _M32, _ahead
from .fec import FEC, rebuild, unpack_fec
from .frames import AUDIO, HEADER, HEADER_BYTES, VERSION, VIDEO

RECENT_CHUNKS_BYTES = 1024 * 1024   # chunks kept for FEC rebuilds (delivered ones too)
FEC_HOLD_US = 300_000               # a FEC datagram missing two chunks waits this long for one
FEC_SETTLE_US = 20_000              # with FEC on the hop, a missing fragment's NACK waits this long
                                    # (the parity comes right behind its batch: jitter, not a group wait)
FEC_REORDER_US = 8_000               # a parity missing two chunks this long after it came: they are lost
FEC_ACTIVE_US = 1_000_000           # ... while a FEC datagram came within this


class _Partial:
    __slots__ = ("count", "chunks", "got", "seen_us", "last_us", "nacked_us", "nacks", "nbytes", "certain")

    def __init__(self, count: int, seen_us: int):
        self.count = count              # 0: not known yet (nothing of this message arrived)
        self.chunks: list = [None] * count
        self.got = 0
        self.seen_us = seen_us
        self.last_us = seen_us          # its latest fragment's arrival
        self.nacked_us = -1 << 62
        self.nacks = 0
        self.nbytes = 0                 # datagram bytes held (the receiver's budget)
        self.certain = False            # a parity over it came and could not rebuild it: NACK now

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


class _FecReceive:
    """The FEC half of DatagramReceiver (s2c.wire.fec): recent chunks kept, a parity's one
    missing chunk rebuilt and fed back as that fragment, parities missing two kept a while."""

    def _fec(self, d: bytes, now_us: int) -> list[bytes]:
        parsed = unpack_fec(d)
        if parsed is None:
            self.stats["garbage"] += 1
            return []
        self._fec_seen_us = now_us
        out = self._fec_try(parsed, now_us)
        if out is None:
            self._fec_waiting.append((now_us, parsed))
            return []
        return out

    def _fec_try(self, parsed, now_us: int, settled: bool = False) -> "list[bytes] | None":
        """Frames a FEC datagram frees by rebuilding its one missing chunk ([] if nothing is
        missing or it is garbage; None: two or more still missing, keep it a while — and, once
        ``settled`` (it came FEC_REORDER_US ago), ask for them at once: ``_lost_for_sure``)."""
        xlen, entries, parity = parsed
        known, missing = [], []
        for e in entries:
            c = self._recent.get((e[0], e[1], e[4], e[3]))
            if c is not None:
                known.append(c)
            else:
                missing.append(e)
        if len(missing) > 1:
            if settled:
                self._lost_for_sure(missing, now_us)
            return None
        if not missing:
            return []
        missing = missing[0]
        chunk = rebuild(xlen, parity, known)
        if chunk is None:
            self.stats["garbage"] += 1
            return []
        sender, stream, count, index, msg = missing
        self.stats["fec_recovered"] += 1
        return self._fragment(FRAG_HDR.pack(FRAG, count, index, 0, sender, stream, 0, msg) + chunk, now_us)

    def _lost_for_sure(self, entries, now_us: int) -> None:
        """A parity came after its fragments (FEC_REORDER_US ago) and two or more of them are
        still missing: they are lost, not late, so their NACK goes now instead of after the
        settle time — including a message nothing else of has come yet (it would only show as
        missing when its stream's next message arrived, a frame interval later). Only within the
        stream's window: a parity does not move a stream on."""
        for sender, stream, count, _index, msg in entries:
            st = self._streams.get((sender, stream))
            if st is None or not 0 <= _ahead(msg, st.next) < self.max_pending:
                continue
            if _ahead(msg, st.next) > 0 and self._place((sender, stream), msg, now_us) is None:
                continue
            p = self._partial(st, msg, count, now_us)
            if p.count == count and p.got < count:
                p.certain = True

    def _remember(self, key: tuple, chunk: bytes) -> None:
        r = self._recent
        if key in r:
            return
        r[key] = chunk
        self._recent_bytes += len(chunk)
        while self._recent_bytes > RECENT_CHUNKS_BYTES or len(r) > 4096:
            self._recent_bytes -= len(r.popitem(last=False)[1])

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

    def _fec_retry(self, now_us: int) -> list[bytes]:
        """FEC datagrams that were missing two chunks: one may have come since."""
        out: list[bytes] = []
        w = self._fec_waiting
        for _ in range(len(w)):
            seen_us, parsed = w.popleft()
            r = self._fec_try(parsed, now_us, settled=now_us - seen_us >= FEC_REORDER_US)
            if r is None:
                if now_us - seen_us < FEC_HOLD_US:
                    w.append((seen_us, parsed))
            else:
                out += r
        return out


class DatagramReceiver(_FecReceive):
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
        self._recent: OrderedDict = OrderedDict()    # (sender, stream, msg, index) -> chunk, for FEC
        self._recent_bytes = 0
        self._fec_waiting: deque = deque(maxlen=16)  # (seen_us, parsed FEC) missing 2+ chunks
        self._fec_seen_us = -1 << 62
        self.frag_gap_us = 0     # smoothed gap between a message's fragments on arrival
        self.trace: list | None = None   # a list: (msg, seen_us, nacks) of each video frame delivered (s2c.quic_trace)
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
            out = self._fragment(bytes(dgram), now_us)
            if self._fec_waiting:       # a parity missing two chunks may now rebuild the other
                out += self._fec_retry(now_us)
            return out
        if kind == FEC:
            return self._fec(bytes(dgram), now_us)
        self.stats["garbage"] += 1
        return []

    def _fragment(self, d: bytes, now_us: int) -> list[bytes]:
        if len(d) <= FRAG_HDR.size:
            self.stats["garbage"] += 1
            return []
        _k, count, index, flags, sender, stream, _z2, msg = FRAG_HDR.unpack_from(d)
        if not 1 <= count <= MAX_FRAGMENTS or index >= count or flags:
            self.stats["garbage"] += 1
            return []
        self.stats["fragments"] += 1
        st = self._place((sender, stream), msg, now_us)
        if st is None:
            return []
        p = self._partial(st, msg, count, now_us)
        if p.count != count:
            self.stats["garbage"] += 1
            return []
        if p.chunks[index] is not None:
            self.stats["duplicates"] += 1
            return []
        if not self._room(p, len(d)):
            return []
        p.chunks[index] = chunk = d[FRAG_HDR.size:]
        if p.got:   # how far apart one message's fragments come: the hop's pace (a slow link's)
            gap = min(now_us - p.last_us, 200_000)
            self.frag_gap_us = gap if not self.frag_gap_us else self.frag_gap_us + (gap - self.frag_gap_us) // 8
        p.got += 1
        p.last_us = now_us
        self._remember((sender, stream, msg, index), chunk)
        if p.got == count:
            total = sum(len(c) for c in p.chunks)
            if total > self.max_frame_bytes or total < HEADER_BYTES:
                self.stats["garbage"] += 1
                p.chunks = [b""] * count   # complete but useless: delivered as nothing
        return self._deliver(st, now_us)

    @staticmethod
    def _partial(st: _Stream, msg: int, count: int, now_us: int) -> _Partial:
        """Message ``msg``'s partial, made with ``count`` fragments if none (or one of unknown
        count, whose NACK timing it keeps) is there."""
        p = st.pending.get(msg)
        if p is None or not p.count:
            old = p
            p = st.pending[msg] = _Partial(count, now_us if old is None else old.seen_us)
            if old is not None:
                p.nacked_us, p.nacks = old.nacked_us, old.nacks
        return p

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
                frame = self._valid_video(b"".join(p.chunks))
                if frame is not None:
                    out.append(frame)
                    self.stats["frames"] += 1
                    if self.trace is not None:
                        self.trace.append((frame, st.next - 1 & _M32, p.seen_us, p.nacks))
                continue
            if now_us - p.seen_us >= self.deadline_us:
                self._forget(st.pending.pop(st.next))
                st.next = st.next + 1 & _M32
                st.started = True
                self.stats["video_lost"] += 1
                continue
            return out

    def _valid_video(self, f: bytes) -> "bytes | None":
        """The VIDEO frame in the joined chunks ``f`` without their zero padding (None: garbage)."""
        if len(f) < HEADER_BYTES or f[0] != VERSION:
            self.stats["garbage"] += 1 if f else 0
            return None
        _v, t, _f, _s, _snd, _d, _q, _ts, plen = HEADER.unpack_from(f)
        end = HEADER_BYTES + plen
        if t != VIDEO or end > len(f) or (end < len(f) and f.count(0, end) != len(f) - end):
            self.stats["garbage"] += 1
            return None
        return f if end == len(f) else f[:end]

    # ---- time -----------------------------------------------------------------------------------

    def _may_still_come(self, st: _Stream, m: int, p: _Partial, now_us: int, fec_on: bool) -> bool:
        """Whether message ``m``'s missing fragments may still be on their way (no NACK yet).
        With parity on the hop a single loss is rebuilt without a round trip: wait until the
        group's parity had time to come. Else it is missing for sure once a later message
        exists; until then its fragments get ``settle_us`` after the latest one, or longer on a
        slow link (at 300 kbit/s one fragment takes ~27 ms: a 15 ms wait asked for ones queued
        behind, and their repeats crowded the link further)."""
        if fec_on:
            return now_us - p.seen_us < max(self.settle_us, FEC_SETTLE_US)
        pace_us = max(self.settle_us, 3 * self.frag_gap_us, 2 * (p.last_us - p.seen_us) // max(1, p.got - 1))
        return now_us - p.last_us < pace_us and not any(_ahead(o, m) > 0 for o in st.pending)

    def poll(self, now_us: int) -> tuple[list[bytes], bytes | None]:
        """Frames freed because what blocked them passed its deadline, and a NACK for what is
        still missing (each message asked at most ``max_nacks`` times, ``nack_retry_us`` apart)."""
        out: list[bytes] = self._fec_retry(now_us)
        entries = []
        fec_on = now_us - self._fec_seen_us < FEC_ACTIVE_US
        for (sender, stream), st in self._streams.items():
            out += self._deliver(st, now_us)
            for m, p in st.pending.items():
                if p.count and p.got == p.count:
                    continue
                if p.nacks >= self.max_nacks or now_us - p.nacked_us < self.nack_retry_us:
                    continue
                if not p.certain and self._may_still_come(st, m, p, now_us, fec_on):
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
