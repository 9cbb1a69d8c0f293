"""The relay's room logic, sans-I/O: connections, rooms, roster, limits, bounded outgoing queues.

Owns: which bytes go to which connection and which connections must close, given bytes in
and ``now_ms``. Must not: touch sockets, read the clock, await, or decode media payloads
(VIDEO/AUDIO/CHAT/KEY/STATE/REFRESH/POSE are forwarded as the original bytes with only the
header's sender field patched to the id the relay assigned).

Use (what s2c.relay.server does)::

    relay = Relay(RelayConfig())
    cid = relay.open("10.0.0.5", now_ms)          # on accept (None: refuse, abort it)
    relay.receive_data(cid, data, now_ms)         # on bytes in
    relay.eof_received(cid, now_ms)               # on half-close
    relay.set_writable(cid, False/True, now_ms)   # on pause_writing / resume_writing
    relay.tick(now_ms)                            # every ~250 ms: heartbeats, stalls
    relay.connection_lost(cid, now_ms)            # on close
    then: for cid in relay.pop_dirty(): write(relay.data_to_send(cid))
          for cid, abort in relay.pop_closing(): write(relay.data_to_send(cid)); close/abort

Outgoing queues per receiver (used only when its socket is backed up; otherwise bytes go
straight to ``data_to_send``): one s2c.wire.queues.MediaQueue each (control and audio before
video; video bounded in time: ~150 ms at the receiver's measured delivery rate, which the
adapter feeds in with ``report_unsent`` for the ``backlogged()`` connections; a broken picture
chain drops that sender's deltas until its next keyframe, which the relay asks for). REFRESH to
a sender is rate-limited per sender (s2c.relay.pacing). A participant whose link died (not a
LEAVE) lingers ``linger_ms`` so that a reconnect with its resume token takes its place. Every
drop is counted in the room's stats. Header fields are read and patched at the offsets
s2c.wire.frames defines.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import dataclass

from .. import wire as P
from ..errors import LocalError, ProtocolError
from ..wire.queues import MediaQueue
from .pacing import BACKLOGGED_BYTES, DeliveryRate, RefreshLimiter

_HDR = P.HEADER
_unpack_hdr = _HDR.unpack_from
_HB = P.HEADER_BYTES
_SND, _SND_END = P.SENDER_OFFSET, P.SENDER_END
_LEN, _LEN_END = P.LENGTH_OFFSET, P.LENGTH_END
_FLG = P.FLAGS_OFFSET


@dataclass
class RelayConfig:
    max_participants: int = 16          # per room
    max_frame_bytes: int = P.DEFAULT_MAX_FRAME_BYTES  # header included
    max_fps: int = 250                  # frames/s accepted per client (all types); 0 = no limit
    max_conns_per_ip: int = 16
    max_connections: int = 1024         # all addresses together; 0 = no limit (E_SERVER_FULL)
    max_rooms: int = 256                # sessions at once; 0 = no limit (E_TOO_MANY_ROOMS)
    max_joins_per_s: int = 100          # JOINs accepted per second, all clients; 0 = no limit
    silence_timeout_ms: float = 10_000.0  # joined client silent this long -> gone
    join_timeout_ms: float = 10_000.0     # connected but no JOIN this long -> closed
    stall_timeout_ms: float = 5_000.0     # socket not writable this long -> disconnected
    max_audio_frames: int = 256           # per receiver
    max_control_frames: int = 256         # per receiver (relay control + chat/key/state/refresh)
    max_queued_bytes: int = 2 * 1024 * 1024  # per receiver, all queues together
    ready_cap_bytes: int = 256 * 1024     # per receiver per flush before bytes go via queues
    # participant ids this relay hands out (a cluster node gets its own slice; see docs/cluster.md)
    id_lo: int = 1
    id_hi: int = 0xFFFF
    resume_key: bytes | None = None       # HMAC key of resume tokens (None: random per process)
    # cluster mode (s2c.relay.cluster drives it): remote participants, roster ops, media outbox
    cluster_node: str = ""                # "" = single relay (no cluster code runs)
    remote_expiry_ms: float = 3_000.0     # a remote participant not in its node's heartbeat this long -> gone
    leave_grace_ms: float = 1_500.0       # cluster: a dropped connection may resume elsewhere this long
    linger_ms: float = 5_000.0            # single relay: a stalled/timed-out participant may resume this long
                                          # (at most half the stall/silence timeout that fired)
    linger_closed_ms: float = 1_200.0     # single relay: ... one whose connection closed/reset (kill -9: soon gone)
    cluster_down_grace_ms: float = 10_000.0  # bus unreachable: keep remote participants this long


class RoomStats:
    """Cumulative counters of one room (the server turns them into rates)."""

    __slots__ = ("frames_in", "bytes_in", "frames_out", "bytes_out", "video_replaced", "video_dropped",
                 "audio_dropped", "control_dropped", "rate_limited", "misrouted", "joins", "leaves",
                 "refresh_asked", "refresh_limited")

    def __init__(self):
        for k in self.__slots__:
            setattr(self, k, 0)

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__slots__}


_NO_ROOM = RoomStats()   # drops of a receiver not in a room (yet) are counted here, unseen


class Room:
    __slots__ = ("name", "members", "stats", "remote", "lingering", "synced", "parked", "publish")

    def __init__(self, name: str):
        self.name = name
        self.members: dict[int, _Conn] = {}   # local participants by participant id
        self.stats = RoomStats()
        # cluster mode only (empty / True otherwise)
        self.remote: dict[int, _Remote] = {}  # participants served by other relays
        self.lingering: dict[int, _Lingering] = {}  # dropped locally, may resume (cluster)
        self.synced = True                    # False until the other relays' rosters are in
        self.parked: list[tuple[_Conn, P.Join]] = []  # joins waiting for the sync
        self.publish = False                  # True while remote participants exist: media -> outbox


class _Remote:
    __slots__ = ("pid", "name", "caps", "node", "epoch", "seen_ms")

    def __init__(self, pid, name, caps, node, epoch, seen_ms):
        self.pid, self.name, self.caps, self.node, self.epoch, self.seen_ms = pid, name, caps, node, epoch, seen_ms


class _Lingering:
    __slots__ = ("pid", "name", "caps", "epoch", "until_ms", "reason")

    def __init__(self, pid, name, caps, epoch, until_ms, reason):
        self.pid, self.name, self.caps, self.epoch, self.until_ms, self.reason = pid, name, caps, epoch, until_ms, reason


class _Conn:
    __slots__ = ("id", "pid", "epoch", "addr", "sid", "room", "name", "caps", "inbuf", "opened_ms",
                 "last_rx_ms", "writable", "unwritable_since_ms", "ready", "ready_bytes", "q", "closing",
                 "abort", "win_start_ms", "win_frames", "rate_error_ms", "clock", "parked", "pace",
                 "want_keys")

    def __init__(self, cid: int, addr: str, now_ms: float, config: "RelayConfig"):
        self.id = cid     # connection handle (what the adapter knows)
        self.pid = cid    # participant id (differs from id only after a resume)
        self.epoch = 0    # +1 per resume (orders claims on one participant id across relays)
        self.addr = addr
        self.sid = cid.to_bytes(2, "big")
        self.room: Room | None = None
        self.name = ""
        self.caps: dict = {}
        self.inbuf = b""
        self.opened_ms = now_ms
        self.last_rx_ms = now_ms
        self.writable = True
        self.unwritable_since_ms = 0.0
        self.ready: list = []
        self.ready_bytes = 0
        self.q = MediaQueue(config.max_audio_frames, config.max_control_frames, config.max_queued_bytes)
        self.pace = DeliveryRate()
        self.want_keys: set[int] = set()   # broken chains to ask keyframes for once writable again
        self.closing = False
        self.abort = False
        self.win_start_ms = now_ms
        self.win_frames = 0
        self.rate_error_ms = -1e18
        self.clock: tuple[int, int] | None = None  # (offset_us, rtt_us) the client reported
        self.parked: Room | None = None  # cluster: JOIN waits for this room's sync


def _dump(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


_LINGER_REASONS = frozenset({"disconnected", "stalled", "timed out"})

_CTRL_QUEUE_TYPES = frozenset({P.WELCOME, P.PEER_JOINED, P.PEER_LEFT, P.ERROR, P.PONG,
                               P.CHAT, P.KEY, P.STATE, P.REFRESH, P.POSE})


class Relay:
    """All rooms of one relay process. Not thread-safe; one event loop drives it."""

    def __init__(self, config: RelayConfig | None = None):
        self.config = config or RelayConfig()
        self.conns: dict[int, _Conn] = {}
        self.rooms: dict[str, Room] = {}
        self._per_ip: dict[str, int] = {}
        cfg = self.config
        if not 1 <= cfg.id_lo <= cfg.id_hi <= 0xFFFF:
            raise ValueError(f"participant id range [{cfg.id_lo}, {cfg.id_hi}] is not within [1, 65535]")
        self._next_id = cfg.id_lo
        self._resume_key = cfg.resume_key or os.urandom(32)
        self._cluster = bool(cfg.cluster_node)
        self._cluster_out: list = []
        self._cluster_up = True
        self._cluster_down_ms = 0.0
        self._pids: dict[int, int] = {}  # resumed participant id -> connection id (see _alloc_id)
        self._dirty: set[int] = set()
        self._closing: list[tuple[int, bool]] = []
        self._shutting_down = False
        self._join_win_start_ms = -1e18
        self._join_win_count = 0
        self._now_ms = 0.0               # the latest now_ms any entry point was given
        self._refresh = RefreshLimiter()
        self.totals = {"connections": 0, "refused": 0, "bad_frames": 0, "ignored_frames": 0,
                       "timeouts": 0, "stalls": 0, "internal_errors": 0, "resumed": 0, "bad_remote": 0}

    # ---- connection life ------------------------------------------------------------------

    def open(self, addr: str, now_ms: float) -> int | None:
        """Register a new connection from ``addr``; returns its id (also its participant id),
        or None if no id is free (abort the socket). Over the per-address limit the
        connection is registered but answered with an ERROR and closed."""
        cid = self._alloc_id()
        if cid is None:
            self.totals["refused"] += 1
            return None
        c = _Conn(cid, addr, now_ms, self.config)
        self.conns[cid] = c
        self.totals["connections"] += 1
        n = self._per_ip.get(addr, 0) + 1
        self._per_ip[addr] = n
        limit = self.config.max_conns_per_ip
        total = self.config.max_connections
        if self._shutting_down:
            self._fatal(c, P.E_SHUTTING_DOWN, "server shutting down")
        elif total and len(self.conns) > total:
            self.totals["refused"] += 1
            self._fatal(c, P.E_SERVER_FULL, f"relay has {total} connections, its limit; try later")
        elif limit and n > limit:
            self.totals["refused"] += 1
            self._fatal(c, P.E_TOO_MANY_CONNECTIONS, f"{n} connections from {addr} exceed limit {limit}")
        return cid

    def _alloc_id(self) -> int | None:
        lo, hi = self.config.id_lo, self.config.id_hi
        pids = self._pids
        for _ in range(hi - lo + 1):
            cid = self._next_id
            self._next_id = cid + 1 if cid < hi else lo
            if cid not in self.conns and cid not in pids:
                return cid
        return None

    def connection_lost(self, cid: int, now_ms: float) -> None:
        self._now_ms = now_ms
        c = self.conns.pop(cid, None)
        if c is None:
            return
        n = self._per_ip.get(c.addr, 1) - 1
        if n > 0:
            self._per_ip[c.addr] = n
        else:
            self._per_ip.pop(c.addr, None)
        if self._pids.get(c.pid) == cid:
            del self._pids[c.pid]
        if c.room is not None:
            self._leave(c, "disconnected", linger_ms=now_ms)
        elif c.parked is not None:
            self._close(c, "disconnected")
        self._dirty.discard(cid)
        if c.pid not in self._pids:   # gone for good (not lingering): its held requests too
            self._refresh.forget(c.pid)
        c.ready.clear()
        c.q.clear()

    def eof_received(self, cid: int, now_ms: float) -> None:
        """The peer half-closed: a partial frame in the buffer earns an E_TRUNCATED error."""
        c = self.conns.get(cid)
        if c is None or c.closing:
            return
        if c.inbuf:
            self.totals["bad_frames"] += 1
            self._fatal(c, P.E_TRUNCATED, f"connection ended inside a frame ({len(c.inbuf)} bytes buffered)")
        else:
            self._close(c, "disconnected")

    def set_writable(self, cid: int, writable: bool, now_ms: float) -> None:
        self._now_ms = now_ms
        c = self.conns.get(cid)
        if c is None:
            return
        if writable:
            c.writable = True
            if c.ready or c.q.nbytes:
                self._dirty.add(cid)
            if c.want_keys and c.room is not None:
                self._ask_keyframes(c)
        elif c.writable:
            c.writable = False
            c.unwritable_since_ms = now_ms

    def tick(self, now_ms: float) -> None:
        """Heartbeat, join and stall timeouts, held keyframe requests, lingering participants.
        Call a few times per second."""
        self._now_ms = now_ms
        cfg = self.config
        for sender, stream, req in self._refresh.due(now_ms):
            self._send_refresh(sender, stream, req)
        for c in list(self.conns.values()):
            if not c.writable and now_ms - c.unwritable_since_ms > cfg.stall_timeout_ms:
                if not c.abort:
                    self.totals["stalls"] += 1
                    self._close(c, "stalled", abort=True)
                continue
            if c.closing:
                continue
            if c.room is None:
                if now_ms - c.opened_ms > cfg.join_timeout_ms:
                    self.totals["timeouts"] += 1
                    self._fatal(c, P.E_TIMEOUT, f"no join within {cfg.join_timeout_ms / 1000:.1f} s")
            elif now_ms - c.last_rx_ms > cfg.silence_timeout_ms:
                self.totals["timeouts"] += 1
                self._fatal(c, P.E_TIMEOUT, f"no frame for {(now_ms - c.last_rx_ms) / 1000:.1f} s "
                                            f"(limit {cfg.silence_timeout_ms / 1000:.1f} s)", "timed out")
        if self._cluster:
            self._cluster_tick(now_ms)
        else:
            self._linger_tick(now_ms)

    def shutdown(self, now_ms: float) -> None:
        """Tell every client the server is shutting down and close them all."""
        self._shutting_down = True
        for c in list(self.conns.values()):
            if not c.closing:
                self._fatal(c, P.E_SHUTTING_DOWN, "server shutting down")

    # ---- output -----------------------------------------------------------------------------

    def pop_dirty(self) -> list[int]:
        """Connections with bytes to send now (writable ones)."""
        d = self._dirty
        if not d:
            return []
        out = list(d)
        d.clear()
        return out

    def pop_closing(self) -> list[tuple[int, bool]]:
        """(cid, abort) of connections to close: write ``data_to_send(cid)`` first unless abort."""
        out = self._closing
        self._closing = []
        return out

    def has_output(self) -> bool:
        return bool(self._dirty or self._closing)

    def data_to_send(self, cid: int) -> bytes:
        """Bytes to write to ``cid`` now; drains queued frames up to the per-flush cap (and
        marks the connection dirty again if more remain)."""
        c = self.conns.get(cid)
        if c is None:
            return b""
        parts = c.ready
        q = c.q
        if q.nbytes and (c.writable or c.closing):
            # backlogged: hand out about one socket's worth at a time (the adapter asks again
            # while the transport stays writable), so the queue, not the socket, holds the rest
            cap = self.config.ready_cap_bytes - c.ready_bytes
            q.drain(cap if c.closing else min(cap, c.pace.lowat_bytes()), parts)
            if q.nbytes and c.writable:
                self._dirty.add(cid)
        if not parts:
            return b""
        out = b"".join(parts)
        parts.clear()
        c.ready_bytes = 0
        c.pace.handed_bytes += len(out)
        return out

    def backlogged(self) -> list[int]:
        """Connections whose queue holds frames or whose socket is not writable (or was backlogged
        at the last report): the adapter reports their unsent bytes (``report_unsent``) a few
        times per second, and those of every connection with unsent bytes in its socket (a
        backlog can sit entirely in the socket)."""
        return [cid for cid, c in self.conns.items() if c.q.nbytes or not c.writable or c.pace.prev]

    def report_unsent(self, cid: int, unsent_bytes: int, now_ms: float,
                      min_rtt_ms: float | None = None) -> tuple[int, int | None]:
        """The adapter's figure of bytes handed out but not yet delivered (its transport buffer
        plus the kernel's unacknowledged bytes) and the path's min RTT if known. Updates the receiver's
        delivery rate and queue budget; returns (TCP_NOTSENT_LOWAT / write-buffer size, SO_SNDBUF
        or None) to use for this socket (see s2c.relay.pacing)."""
        self._now_ms = now_ms
        c = self.conns.get(cid)
        if c is None:
            return 0, None
        p = c.pace
        if min_rtt_ms is not None:
            p.min_rtt_ms = min_rtt_ms
        queued = bool(c.q.nbytes) or not c.writable
        p.sample(now_ms, unsent_bytes, queued or unsent_bytes >= BACKLOGGED_BYTES, queued)
        c.q.budget_bytes = p.budget_bytes(unsent_bytes)
        return p.lowat_bytes(), p.sndbuf_bytes()

    # ---- input ------------------------------------------------------------------------------

    def receive_data(self, cid: int, data: bytes, now_ms: float) -> None:
        c = self.conns.get(cid)
        if c is None or c.closing:
            return
        if c.inbuf:
            data = c.inbuf + data
        n = len(data)
        if n < _HB:
            c.inbuf = data
            return
        self._now_ms = now_ms
        buf = bytearray(data)
        mv = memoryview(buf)
        pos = 0
        run_start = -1
        run_frames = 0
        fwd = P.FORWARDED_TABLE
        known = P.KNOWN_TABLE
        version = P.VERSION
        maxfb = self.config.max_frame_bytes
        maxfps = self.config.max_fps
        sid = c.sid
        while n - pos >= _HB:
            ver, t, _f, stream, _s, dest, _q, _ts, plen = _unpack_hdr(buf, pos)
            end = pos + _HB + plen
            if ver != version or not known[t] or end - pos > maxfb:
                if run_start >= 0:
                    self._forward_run(c, mv, run_start, pos, run_frames)
                self.totals["bad_frames"] += 1
                try:
                    P.check_header(ver, t, plen, maxfb)
                except ProtocolError as exc:
                    self._fatal(c, exc.code, str(exc))
                return
            if end > n:
                break
            c.last_rx_ms = now_ms
            if maxfps:
                if now_ms - c.win_start_ms >= 1000.0:
                    c.win_start_ms = now_ms
                    c.win_frames = 0
                c.win_frames += 1
                if c.win_frames > maxfps:
                    if run_start >= 0:
                        self._forward_run(c, mv, run_start, pos, run_frames)
                        run_start = -1
                        run_frames = 0
                    self._rate_limited(c, now_ms)
                    pos = end
                    continue
            if fwd[t] and c.room is not None:
                buf[pos + _SND:pos + _SND_END] = sid
                if dest == 0:
                    if run_start < 0:
                        run_start = pos
                    run_frames += 1
                else:
                    if run_start >= 0:
                        self._forward_run(c, mv, run_start, pos, run_frames)
                        run_start = -1
                        run_frames = 0
                    self._forward_to(c, dest, t, stream, mv[pos:end])
            else:
                if run_start >= 0:
                    self._forward_run(c, mv, run_start, pos, run_frames)
                    run_start = -1
                    run_frames = 0
                self._on_control(c, t, buf, pos, end, now_ms)
                if c.closing:
                    return
            pos = end
        if run_start >= 0:
            self._forward_run(c, mv, run_start, pos, run_frames)
        c.inbuf = bytes(buf[pos:]) if pos < n else b""

    def receive_frame(self, cid: int, frame: bytes, now_ms: float) -> bool:
        """One whole forwarded frame that arrived beside the connection's byte stream (a QUIC
        datagram, see s2c.relay.quic): forwarded exactly as if it had come in ``receive_data``.
        Anything else (a partial or padded frame, a control type, before JOIN) is counted in
        ``totals["bad_datagrams"]`` and dropped; the connection stays. Returns True if taken."""
        c = self.conns.get(cid)
        if c is None or c.closing:
            return False
        n = len(frame)
        if n < _HB or c.room is None:
            self.totals["bad_datagrams"] = self.totals.get("bad_datagrams", 0) + 1
            return False
        ver, t, _f, _st, _s, _d, _q, _ts, plen = _unpack_hdr(frame, 0)
        if ver != P.VERSION or not P.FORWARDED_TABLE[t] or _HB + plen != n or n > self.config.max_frame_bytes:
            self.totals["bad_datagrams"] = self.totals.get("bad_datagrams", 0) + 1
            return False
        held, c.inbuf = c.inbuf, b""   # the stream's partial frame waits aside
        try:
            self.receive_data(cid, frame, now_ms)
        finally:
            if self.conns.get(cid) is c and not c.closing:
                c.inbuf = held
        return True

    def _rate_limited(self, c: _Conn, now_ms: float) -> None:
        if c.room is not None:
            c.room.stats.rate_limited += 1
        if now_ms - c.rate_error_ms >= 1000.0:
            c.rate_error_ms = now_ms
            self._send_ctrl(c, P.ERROR, P.encode_error(
                P.E_RATE_LIMITED, f"more than {self.config.max_fps} frames/s; excess frames dropped"))

    def _forward_run(self, c: _Conn, mv: memoryview, start: int, end: int, nframes: int) -> None:
        """Forward frames [start, end) of ``mv`` (already patched) to everyone else in the room."""
        room = c.room
        st = room.stats
        nbytes = end - start
        st.frames_in += nframes
        st.bytes_in += nbytes
        cap = self.config.ready_cap_bytes
        dirty = self._dirty
        k = 0
        for r in room.members.values():
            if r is c:
                continue
            k += 1
            if r.writable and not r.q.nbytes and r.ready_bytes < cap and not r.q.broken:
                r.ready.append(mv[start:end])
                r.ready_bytes += nbytes
                dirty.add(r.id)
            else:
                p = start
                while p < end:
                    t = mv[p + 1]
                    e = p + _HB + int.from_bytes(mv[p + _LEN:p + _LEN_END], "big")
                    self._enqueue(r, t, mv[p + 3], c.pid, bytes(mv[p:e]))
                    p = e
        st.frames_out += nframes * k
        st.bytes_out += nbytes * k
        if room.publish:  # cluster: the other relays of this room get it once
            self._cluster_out.append(("media", room.name, bytes(mv[start:end])))

    def _forward_to(self, c: _Conn, dest: int, t: int, stream: int, frame: memoryview) -> None:
        room = c.room
        st = room.stats
        st.frames_in += 1
        st.bytes_in += len(frame)
        if t == P.REFRESH and not self._refresh.allow(dest, stream, c.pid, self._now_ms):
            st.refresh_limited += 1   # held: s2c.relay.pacing.RefreshLimiter sends it when due
            return
        r = room.members.get(dest)
        if r is None or r is c:
            if dest in room.remote:
                self._cluster_out.append(("media", room.name, bytes(frame)))
                return
            st.misrouted += 1
            return
        st.frames_out += 1
        st.bytes_out += len(frame)
        if r.writable and not r.q.nbytes and r.ready_bytes < self.config.ready_cap_bytes and not r.q.broken:
            r.ready.append(frame)
            r.ready_bytes += len(frame)
            self._dirty.add(r.id)
        else:
            self._enqueue(r, t, stream, c.pid, bytes(frame))

    def _enqueue(self, r: _Conn, t: int, stream: int, sender: int, data: bytes) -> None:
        """Queue one frame for a backed-up receiver under the drop policy (s2c.wire.queues);
        a picture chain it had to break is restarted by asking that sender for a keyframe."""
        key = t == P.VIDEO and bool(data[_FLG] & P.FLAG_KEYFRAME)
        broke = r.q.push(t, (sender << 8) | stream, data, r.room.stats if r.room is not None else _NO_ROOM, key)
        if broke:
            r.want_keys.update(broke)
            if r.writable:   # a receiver that is not draining at all (an outage) asks nobody
                self._ask_keyframes(r)
        if r.writable:
            self._dirty.add(r.id)

    def _ask_keyframes(self, r: _Conn) -> None:
        for k in r.want_keys:
            if self._refresh.allow(k >> 8, k & 0xFF, r.pid, self._now_ms):
                self._send_refresh(k >> 8, k & 0xFF, r.pid, r.room)
        r.want_keys.clear()

    def _send_refresh(self, sender: int, stream: int, requester: int, room: Room | None = None) -> None:
        """A REFRESH the relay makes: to ``sender`` (local or on another relay), from
        ``requester`` (the sender's session only honours REFRESH from a participant it knows)."""
        if room is None:
            r = self.conns.get(self._pids.get(requester, requester))
            room = r.room if r is not None else None
            if room is None:
                return
        data = _HDR.pack(P.VERSION, P.REFRESH, 0, stream, requester, sender, 0, 0, 0)
        room.stats.refresh_asked += 1
        s = room.members.get(sender)
        if s is not None:
            self._enqueue(s, P.REFRESH, stream, requester, data)
        elif sender in room.remote:
            self._cluster_out.append(("media", room.name, data))

    def _send_ctrl(self, c: _Conn, t: int, payload: bytes, seq: int = 0, ts_us: int = 0) -> None:
        data = _HDR.pack(P.VERSION, t, 0, 0, 0, 0, seq, ts_us, len(payload)) + payload
        if c.writable and not c.q.nbytes and c.ready_bytes < self.config.ready_cap_bytes:
            c.ready.append(data)
            c.ready_bytes += len(data)
            self._dirty.add(c.id)
        else:
            self._enqueue(c, t, 0, 0, data)

    # ---- control ----------------------------------------------------------------------------

    def _on_control(self, c: _Conn, t: int, buf: bytearray, pos: int, end: int, now_ms: float) -> None:
        payload = bytes(buf[pos + _HB:end])
        if t == P.JOIN:
            if c.room is not None or c.parked is not None:
                self.totals["ignored_frames"] += 1
                return
            try:
                join = P.parse_join(payload)
            except ProtocolError as exc:
                self.totals["bad_frames"] += 1
                self._fatal(c, exc.code, str(exc))
                return
            try:
                self._join(c, join, now_ms)
            except (ValueError, TypeError, LocalError) as exc:  # our own encoder refused it
                self.totals["bad_frames"] += 1
                self.totals["internal_errors"] += 1
                if c.room is not None:
                    self._leave(c, "bad join")
                self._fatal(c, P.E_BAD_CONTROL, f"join cannot be relayed: {str(exc)[:80]}")
        elif t == P.PING:
            try:
                clock = P.parse_ping(payload)
            except ProtocolError as exc:
                self.totals["bad_frames"] += 1
                self._fatal(c, exc.code, str(exc))
                return
            if clock is not None:
                c.clock = clock
            _v, _t, _f, _st, _s, _d, seq, ts_us, _n = _unpack_hdr(buf, pos)
            clocks = []
            if c.room is not None:
                clocks = [(m.pid, m.clock[0], m.clock[1]) for m in c.room.members.values() if m.clock]
            self._send_ctrl(c, P.PONG, P.encode_pong(int(now_ms * 1000), clocks), seq, ts_us)
        elif t == P.LEAVE:
            self._close(c, "left")
        elif P.FORWARDED_TABLE[t]:  # media before JOIN
            self.totals["bad_frames"] += 1
            self._fatal(c, P.E_NOT_JOINED, f"{P.TYPE_NAMES[t]} frame before JOIN")
        else:  # ERROR from a client, or relay-only types: count and drop
            self.totals["ignored_frames"] += 1

    def _join(self, c: _Conn, join: P.Join, now_ms: float = 0.0) -> None:
        cfg = self.config
        if cfg.max_joins_per_s:
            if now_ms - self._join_win_start_ms >= 1000.0:
                self._join_win_start_ms = now_ms
                self._join_win_count = 0
            self._join_win_count += 1
            if self._join_win_count > cfg.max_joins_per_s:
                self.totals["refused"] += 1
                self._fatal(c, P.E_JOINS_RATE_LIMITED,
                            f"relay accepts {cfg.max_joins_per_s} joins/s; try again in a second")
                return
        room = self.rooms.get(join.session)
        if room is None:
            if cfg.max_rooms and len(self.rooms) >= cfg.max_rooms:
                self.totals["refused"] += 1
                self._fatal(c, P.E_TOO_MANY_ROOMS, f"relay has {cfg.max_rooms} sessions, its limit")
                return
            room = self.rooms[join.session] = Room(join.session)
            if self._cluster:  # learn the other relays' roster of this room before admitting
                room.synced = False
                self._cluster_out.append(("sub", room.name))
        if not room.synced:
            c.parked = room
            room.parked.append((c, join))
            return
        self._admit(c, room, join)

    def _roster_of(self, room: Room, but: int = -1) -> list[P.Peer]:
        out = [P.Peer(m.pid, m.name, m.caps) for m in room.members.values() if m.pid != but]
        if room.remote or room.lingering:
            out += [P.Peer(r.pid, r.name, r.caps) for r in room.remote.values() if r.pid != but]
            out += [P.Peer(g.pid, g.name, g.caps) for g in room.lingering.values() if g.pid != but]
        return out

    def _admit(self, c: _Conn, room: Room, join: P.Join) -> None:
        cfg = self.config
        resumed = join.resume is not None and self._take_over(c, room, join)
        if not resumed:
            limit = self.config.max_participants
            if len(room.members) + len(room.remote) + len(room.lingering) >= limit:
                self._drop_room_if_empty(room)
                self._fatal(c, P.E_ROOM_FULL, f"session {join.session!r} is full ({limit} participants)")
                return
            taken = {p.name for p in self._roster_of(room)}
            name = join.name
            i = 2
            while name in taken:
                suffix = f" ({i})"
                name = join.name[: P.MAX_NAME_CHARS - len(suffix)] + suffix
                i += 1
            c.name = name
        c.caps = join.caps
        roster = self._roster_of(room, but=c.pid)
        c.room = room
        room.members[c.pid] = c
        room.stats.joins += 1
        limits = {"max_frame_bytes": cfg.max_frame_bytes, "max_fps": cfg.max_fps,
                  "max_participants": cfg.max_participants,
                  "silence_timeout_ms": int(cfg.silence_timeout_ms)}
        token = self._resume_token(room.name, c.pid, c.name, c.epoch)
        self._send_ctrl(c, P.WELCOME, P.encode_welcome(c.pid, c.name, room.name, roster, limits, token, resumed))
        if self._cluster:
            self._cluster_out.append(("roster", room.name, self._roster_msg("join", [c])))
        if resumed:
            return  # everyone already has this participant: no PEER_JOINED
        announce = P.encode_peer_joined(P.Peer(c.pid, c.name, c.caps))
        for m in room.members.values():
            if m is not c:
                self._send_ctrl(m, P.PEER_JOINED, announce)

    # ---- resume -----------------------------------------------------------------------------

    def _resume_mac(self, session: str, pid: int, name: str, epoch: int) -> bytes:
        msg = b"s2c resume v1\0" + session.encode() + b"\0" + name.encode() + b"\0" + \
            pid.to_bytes(2, "big") + epoch.to_bytes(4, "big")
        return hmac.new(self._resume_key, msg, hashlib.sha256).digest()[:16]

    def _resume_token(self, session: str, pid: int, name: str, epoch: int) -> str:
        """Unguessable (HMAC-SHA256 under the relay's or cluster's key), bound to session, id,
        name and epoch: ``<epoch hex>.<32 hex digits>``."""
        return f"{epoch:x}.{self._resume_mac(session, pid, name, epoch).hex()}"

    def _take_over(self, c: _Conn, room: Room, join: P.Join) -> bool:
        """A JOIN with a resume token: become participant ``join.resume[0]`` again if the token
        is valid and that participant is still in the room (a live or dropped local connection,
        or a participant another relay serves or served). False: join as a newcomer."""
        pid, token = join.resume
        epoch_s, _, mac_s = token.partition(".")
        try:
            epoch = int(epoch_s, 16)
            mac = bytes.fromhex(mac_s)
        except ValueError:
            return False
        if not 0 <= epoch < 0xFFFFFFFF or not hmac.compare_digest(
                mac, self._resume_mac(room.name, pid, join.name, epoch)):
            return False
        new_epoch = epoch + 1
        old = room.members.get(pid)
        if old is not None:
            if old is c or old.epoch >= new_epoch:
                return False
            old.room = None           # superseded: closed without PEER_LEFT
            del room.members[pid]
            self._close(old, "resumed")
        elif pid in room.lingering:
            if room.lingering[pid].epoch >= new_epoch:
                return False
            self._unlinger(room, pid)
        elif pid in room.remote:
            if room.remote[pid].epoch >= new_epoch:
                return False
            del room.remote[pid]
            room.publish = bool(room.remote)
        else:
            return False  # gone already (its leave was announced): a newcomer after all
        self._pids[pid] = c.id
        c.pid = pid
        c.sid = pid.to_bytes(2, "big")
        c.epoch = new_epoch
        c.name = join.name
        self.totals["resumed"] += 1
        return True

    def _leave(self, c: _Conn, reason: str, linger_ms: float | None = None) -> None:
        room = c.room
        if room is None:
            return
        c.room = None
        if room.members.get(c.pid) is c:
            del room.members[c.pid]
        room.stats.leaves += 1
        if linger_ms is not None and not self._shutting_down:
            # cluster: it may resume on another relay; announce the leave only after the grace
            cfg = self.config
            if self._cluster:
                grace = cfg.leave_grace_ms
            elif reason == "disconnected":
                grace = cfg.linger_closed_ms
            else:
                fired = cfg.stall_timeout_ms if reason == "stalled" else cfg.silence_timeout_ms
                grace = min(cfg.linger_ms, 0.5 * fired)
            if grace <= 0:
                self._announce_left(room, c.pid, c.name, reason, c.epoch)
                self._drop_room_if_empty(room)
                return
            room.lingering[c.pid] = _Lingering(c.pid, c.name, c.caps, c.epoch, linger_ms + grace, reason)
            self._pids.setdefault(c.pid, 0)  # reserved: no new connection gets this id meanwhile
            return
        if not self._shutting_down:
            self._announce_left(room, c.pid, c.name, reason, c.epoch)
        self._drop_room_if_empty(room)

    def _announce_left(self, room: Room, pid: int, name: str, reason: str, epoch: int) -> None:
        msg = P.encode_peer_left(pid, name, reason)
        for m in room.members.values():
            self._send_ctrl(m, P.PEER_LEFT, msg)
        if self._cluster:
            self._cluster_out.append(("roster", room.name, _dump({
                "op": "leave", "node": self.config.cluster_node, "id": pid, "epoch": epoch, "reason": reason})))

    def _drop_room_if_empty(self, room: Room) -> bool:
        if room.members or room.lingering or room.parked:
            return False
        if self.rooms.get(room.name) is room:
            del self.rooms[room.name]
            if self._cluster:
                self._cluster_out.append(("unsub", room.name))
        return True

    def _close(self, c: _Conn, reason: str, abort: bool = False) -> None:
        if c.room is not None:  # a link that died (not a LEAVE) may come back: it lingers
            self._leave(c, reason, linger_ms=self._now_ms if reason in _LINGER_REASONS else None)
        elif c.parked is not None:
            room, c.parked = c.parked, None
            room.parked = [(x, j) for x, j in room.parked if x is not c]
            self._drop_room_if_empty(room)
        if abort:
            c.abort = True
            c.ready.clear()
            c.q.clear()
            c.ready_bytes = 0
            self._closing.append((c.id, True))
        elif not c.closing:
            self._closing.append((c.id, False))
        c.closing = True
        c.inbuf = b""

    def _fatal(self, c: _Conn, code: int, text: str, reason: str | None = None) -> None:
        """Answer with an ERROR frame, then close (after the error is written)."""
        if c.closing:
            return
        self._send_ctrl(c, P.ERROR, P.encode_error(code, text))
        self._close(c, reason or P.ERROR_NAMES.get(code, "error"))

    # ---- cluster: remote participants (driven by s2c.relay.cluster; idle on a single relay) --------
    #
    # The adapter subscribes to a room when it sees ("sub", session), answers the core's
    # ("roster", session, bytes) and ("media", session, bytes) by publishing them once, feeds
    # what other relays publish to receive_roster / receive_remote, calls room_synced once the
    # other relays answered (or a deadline passed), heartbeat(session) every second for each of
    # cluster_rooms(), and cluster_state(up) when the bus goes away or comes back.

    def pop_cluster_out(self) -> list[tuple]:
        """("sub", session) | ("unsub", session) | ("roster", session, json bytes)
        | ("media", session, frames bytes), in the order they happened."""
        out = self._cluster_out
        self._cluster_out = []
        return out

    def cluster_rooms(self) -> list[str]:
        """Rooms this relay has local participants in (live or lingering)."""
        return [n for n, r in self.rooms.items() if r.members or r.lingering]

    def _roster_msg(self, op: str, conns=None, room: Room | None = None, seen: bool = False) -> bytes:
        if conns is None:
            peers = [[m.pid, m.name, m.caps, m.epoch] for m in room.members.values()]
            peers += [[g.pid, g.name, g.caps, g.epoch] for g in room.lingering.values()]
        else:
            peers = [[m.pid, m.name, m.caps, m.epoch] for m in conns]
        msg = {"op": op, "node": self.config.cluster_node, "peers": peers}
        if seen and room is not None:
            msg["seen"] = [[r.pid, r.name, r.caps, r.epoch, r.node] for r in room.remote.values()]
        return _dump(msg)

    def heartbeat(self, session: str) -> bytes:
        """This relay's full local roster of ``session`` (an "hb" roster message)."""
        room = self.rooms.get(session)
        if room is None:
            return _dump({"op": "hb", "node": self.config.cluster_node, "peers": []})
        return self._roster_msg("hb", room=room)

    def sync_reply(self, session: str) -> bytes:
        """Answer to another relay's sync request: the heartbeat plus the remote participants
        this relay knows of (so a relay that takes over a dead relay's participant knows it)."""
        room = self.rooms.get(session)
        if room is None:
            return _dump({"op": "hb", "node": self.config.cluster_node, "peers": []})
        return self._roster_msg("hb", room=room, seen=True)

    def room_synced(self, session: str, now_ms: float) -> None:
        """The other relays' rosters of ``session`` are in: admit the JOINs that waited."""
        room = self.rooms.get(session)
        if room is None or room.synced:
            return
        room.synced = True
        parked, room.parked = room.parked, []
        for c, join in parked:
            c.parked = None
            if not c.closing and self.conns.get(c.id) is c:
                self._admit(c, room, join)
        self._drop_room_if_empty(room)

    def cluster_state(self, up: bool, now_ms: float) -> None:
        """The bus went away (keep serving; remote participants kept for cluster_down_grace_ms)
        or came back (remote participants get one expiry period to show up in a heartbeat)."""
        if up and not self._cluster_up:
            for room in self.rooms.values():
                for r in room.remote.values():
                    r.seen_ms = now_ms
        elif not up and self._cluster_up:
            self._cluster_down_ms = now_ms
        self._cluster_up = up

    def receive_roster(self, session: str, data: bytes, now_ms: float) -> None:
        """A roster message another relay published (untrusted: bad ones are counted, dropped)."""
        room = self.rooms.get(session)
        if room is None:
            return
        try:
            msg = json.loads(bytes(data).decode("utf-8"))
            op, node = msg["op"], msg["node"]
            if not isinstance(node, str) or not node or node == self.config.cluster_node:
                raise ValueError("bad node")
            if op == "leave":
                pid, epoch = msg["id"], msg["epoch"]
                if type(pid) is not int or type(epoch) is not int:
                    raise ValueError("bad leave")
                r = room.remote.get(pid)
                if r is not None and r.node == node and r.epoch <= epoch:
                    self._drop_remote(room, r, P.sanitize_name(str(msg.get("reason", "left")), 40) or "left")
                return
            if op not in ("hb", "join"):
                raise ValueError(f"unknown op {op!r:.20}")
            peers = [self._parse_remote(x, node) for x in msg["peers"]]
            seen = [self._parse_remote(x[:4], x[4]) for x in msg.get("seen", ())
                    if isinstance(x, list) and len(x) == 5 and isinstance(x[4], str)]
        except (ValueError, KeyError, TypeError, IndexError, UnicodeDecodeError, RecursionError, ProtocolError):
            self.totals["bad_remote"] += 1
            return
        for p in peers:
            self._upsert_remote(room, p, now_ms)
        for p in seen:
            if p[4] != self.config.cluster_node and p[0] not in room.remote and p[0] not in room.members:
                self._upsert_remote(room, p, now_ms)
        if op == "hb":  # a heartbeat is that relay's whole roster: who is missing has left
            listed = {p[0] for p in peers}
            for r in [r for r in room.remote.values() if r.node == node and r.pid not in listed]:
                self._drop_remote(room, r, "left")

    @staticmethod
    def _parse_remote(x, node):
        pid, name, caps, epoch = x
        if type(pid) is not int or not 1 <= pid <= 0xFFFF or type(epoch) is not int or epoch < 0:
            raise ValueError("bad peer")
        if not isinstance(name, str) or not P.sanitize_name(name) or not isinstance(node, str):
            raise ValueError("bad peer name")
        return (pid, P.sanitize_name(name), P.check_caps(caps), epoch, node)

    def _upsert_remote(self, room: Room, p, now_ms: float) -> None:
        pid, name, caps, epoch, node = p
        me = self.config.cluster_node
        m = room.members.get(pid)
        if m is not None:   # the same participant claimed here and there: the later claim wins
            if (epoch, node) <= (m.epoch, me):
                return
            m.room = None
            del room.members[pid]
            self._close(m, "resumed elsewhere")
        elif pid in room.lingering:
            if (epoch, node) <= (room.lingering[pid].epoch, me):
                return
            self._unlinger(room, pid)
        else:
            r = room.remote.get(pid)
            if r is not None:
                if r.node != node and (epoch, node) < (r.epoch, r.node):
                    return
                r.name, r.caps, r.node, r.epoch, r.seen_ms = name, caps, node, epoch, now_ms
                return
            if room.synced or room.members:
                announce = P.encode_peer_joined(P.Peer(pid, name, caps))
                for x in room.members.values():
                    self._send_ctrl(x, P.PEER_JOINED, announce)
        room.remote[pid] = _Remote(pid, name, caps, node, epoch, now_ms)
        room.publish = True
        self._drop_room_if_empty(room)

    def _unlinger(self, room: Room, pid: int) -> None:
        del room.lingering[pid]
        if self._pids.get(pid) == 0:
            del self._pids[pid]

    def _drop_remote(self, room: Room, r: _Remote, reason: str) -> None:
        del room.remote[r.pid]
        room.publish = bool(room.remote)
        msg = P.encode_peer_left(r.pid, r.name, reason)
        for m in room.members.values():
            self._send_ctrl(m, P.PEER_LEFT, msg)

    def _linger_tick(self, now_ms: float) -> None:
        """Single relay: lingering participants whose grace ended have left."""
        for room in [r for r in self.rooms.values() if r.lingering]:
            for g in [g for g in room.lingering.values() if g.until_ms <= now_ms]:
                self._unlinger(room, g.pid)
                self._announce_left(room, g.pid, g.name, g.reason, g.epoch)
            self._drop_room_if_empty(room)

    def _cluster_tick(self, now_ms: float) -> None:
        expiry = self.config.remote_expiry_ms
        down_for = now_ms - self._cluster_down_ms if not self._cluster_up else 0.0
        for room in list(self.rooms.values()):
            for g in [g for g in room.lingering.values() if g.until_ms <= now_ms]:
                self._unlinger(room, g.pid)
                self._announce_left(room, g.pid, g.name, g.reason, g.epoch)
            if self._cluster_up:
                gone = [r for r in room.remote.values() if now_ms - r.seen_ms > expiry]
            else:
                gone = list(room.remote.values()) if down_for > self.config.cluster_down_grace_ms else []
            for r in gone:
                self._drop_remote(room, r, "timed out")
            self._drop_room_if_empty(room)

    def receive_remote(self, session: str, data: bytes, now_ms: float) -> None:
        """Frames another relay published for ``session`` (already checked and sender-stamped
        there; checked again here: a malformed message is counted and dropped whole). Delivered
        to this relay's participants through the same per-receiver queues as local frames."""
        room = self.rooms.get(session)
        if room is None or not room.members:
            return
        n = len(data)
        mv = memoryview(data)
        fwd = P.FORWARDED_TABLE
        maxfb = self.config.max_frame_bytes
        remote = room.remote
        pos = 0
        while pos < n:  # validate the whole message first
            if n - pos < _HB:
                self.totals["bad_remote"] += 1
                return
            ver, t, _f, _stream, sender, _dest, _q, _ts, plen = _unpack_hdr(data, pos)
            end = pos + _HB + plen
            if ver != P.VERSION or not fwd[t] or end > n or end - pos > maxfb or sender not in remote:
                self.totals["bad_remote"] += 1
                return
            pos = end
        st = room.stats
        cap = self.config.ready_cap_bytes
        dirty = self._dirty
        pos = 0
        while pos < n:
            _v, t, _f, stream, sender, dest, _q, _ts, plen = _unpack_hdr(data, pos)
            end = pos + _HB + plen
            frame = mv[pos:end]
            st.frames_in += 1
            st.bytes_in += end - pos
            targets = room.members.values() if dest == 0 else (
                (room.members[dest],) if dest in room.members else ())
            for r in targets:
                st.frames_out += 1
                st.bytes_out += end - pos
                if r.writable and not r.q.nbytes and r.ready_bytes < cap and not r.q.broken:
                    r.ready.append(frame)
                    r.ready_bytes += end - pos
                    dirty.add(r.id)
                else:
                    self._enqueue(r, t, stream, sender, bytes(frame))
            pos = end

    # ---- introspection ------------------------------------------------------------------------

    def stats(self) -> dict:
        """Snapshot: totals and, per room, participants + cumulative counters + queued bytes."""
        rooms = {}
        for name, room in self.rooms.items():
            d = room.stats.as_dict()
            d["participants"] = len(room.members)
            if room.remote or room.lingering:
                d["remote_participants"] = len(room.remote) + len(room.lingering)
            d["queued_bytes"] = sum(m.q.nbytes for m in room.members.values())
            pace = {str(m.pid): [round(m.pace.bytes_per_s * 8 / 1000, 1), m.q.budget_bytes]
                    for m in room.members.values() if m.pace.bytes_per_s is not None}
            if pace:
                d["pace"] = pace   # receivers with a measured rate: [kbit/s, queue budget bytes]
            rooms[name] = d
        return {"connections": len(self.conns), "totals": dict(self.totals), "rooms": rooms}

    def roster(self, session: str) -> list[P.Peer]:
        room = self.rooms.get(session)
        return [] if room is None else self._roster_of(room)
