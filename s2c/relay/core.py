"""The relay's room logic, sans-I/O: connections, rooms, roster, limits, bounded outgoing queues.

Owns: which bytes go to which connection and which connections must close, given bytes in
and ``now_ms``. Must not: touch sockets, read the clock, await, or decode media payloads
(VIDEO/AUDIO/CHAT/KEY/STATE/REFRESH are forwarded as the original bytes with only the
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
straight to ``data_to_send``): one s2c.wire.queues.OutQueue each (VIDEO newest-frame-per-
(sender, stream) wins; AUDIO and control bounded FIFOs; one byte budget). Every drop is counted
in the room's stats. Header fields are read and patched at the offsets s2c.wire.frames defines.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import wire as P
from ..errors import LocalError, ProtocolError
from ..wire.queues import OutQueue

_HDR = P.HEADER
_unpack_hdr = _HDR.unpack_from
_HB = P.HEADER_BYTES
_SND, _SND_END = P.SENDER_OFFSET, P.SENDER_END
_LEN, _LEN_END = P.LENGTH_OFFSET, P.LENGTH_END


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


class RoomStats:
    """Cumulative counters of one room (the server turns them into rates)."""

    __slots__ = ("frames_in", "bytes_in", "frames_out", "bytes_out", "video_replaced",
                 "audio_dropped", "control_dropped", "rate_limited", "misrouted", "joins", "leaves")

    def __init__(self):
        for k in self.__slots__:
            setattr(self, k, 0)

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__slots__}


_NO_ROOM = RoomStats()   # drops of a receiver not in a room (yet) are counted here, unseen


class Room:
    __slots__ = ("name", "members", "stats")

    def __init__(self, name: str):
        self.name = name
        self.members: dict[int, _Conn] = {}
        self.stats = RoomStats()


class _Conn:
    __slots__ = ("id", "addr", "sid", "room", "name", "caps", "inbuf", "opened_ms", "last_rx_ms",
                 "writable", "unwritable_since_ms", "ready", "ready_bytes", "q", "closing", "abort", "win_start_ms", "win_frames",
                 "rate_error_ms", "clock")

    def __init__(self, cid: int, addr: str, now_ms: float, config: "RelayConfig"):
        self.id = cid
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
        self.q = OutQueue(config.max_audio_frames, config.max_control_frames, config.max_queued_bytes)
        self.closing = False
        self.abort = False
        self.win_start_ms = now_ms
        self.win_frames = 0
        self.rate_error_ms = -1e18
        self.clock: tuple[int, int] | None = None  # (offset_us, rtt_us) the client reported


_CTRL_QUEUE_TYPES = frozenset({P.WELCOME, P.PEER_JOINED, P.PEER_LEFT, P.ERROR, P.PONG,
                               P.CHAT, P.KEY, P.STATE, P.REFRESH})


class Relay:
    """All rooms of one relay process. Not thread-safe; one event loop drives it."""

    def __init__(self, config: RelayConfig | None = None):
        self.config = config or RelayConfig()
        self.conns: dict[int, _Conn] = {}
        self.rooms: dict[str, Room] = {}
        self._per_ip: dict[str, int] = {}
        self._next_id = 1
        self._dirty: set[int] = set()
        self._closing: list[tuple[int, bool]] = []
        self._shutting_down = False
        self._join_win_start_ms = -1e18
        self._join_win_count = 0
        self.totals = {"connections": 0, "refused": 0, "bad_frames": 0, "ignored_frames": 0,
                       "timeouts": 0, "stalls": 0, "internal_errors": 0}

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
        for _ in range(0xFFFF):
            cid = self._next_id
            self._next_id = cid % 0xFFFF + 1
            if cid not in self.conns:
                return cid
        return None

    def connection_lost(self, cid: int, now_ms: float) -> None:
        c = self.conns.pop(cid, None)
        if c is None:
            return
        n = self._per_ip.get(c.addr, 1) - 1
        if n > 0:
            self._per_ip[c.addr] = n
        else:
            self._per_ip.pop(c.addr, None)
        if c.room is not None:
            self._leave(c, "disconnected")
        self._dirty.discard(cid)
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
        c = self.conns.get(cid)
        if c is None:
            return
        if writable:
            c.writable = True
            if c.ready or c.q.nbytes:
                self._dirty.add(cid)
        elif c.writable:
            c.writable = False
            c.unwritable_since_ms = now_ms

    def tick(self, now_ms: float) -> None:
        """Heartbeat, join and stall timeouts. Call a few times per second."""
        cfg = self.config
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
            q.drain(self.config.ready_cap_bytes - c.ready_bytes, parts)
            if q.nbytes and c.writable:
                self._dirty.add(cid)
        if not parts:
            return b""
        out = b"".join(parts)
        parts.clear()
        c.ready_bytes = 0
        return out

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
            if r.writable and not r.q.nbytes and r.ready_bytes < cap:
                r.ready.append(mv[start:end])
                r.ready_bytes += nbytes
                dirty.add(r.id)
            else:
                p = start
                while p < end:
                    t = mv[p + 1]
                    e = p + _HB + int.from_bytes(mv[p + _LEN:p + _LEN_END], "big")
                    self._enqueue(r, t, mv[p + 3], c.id, bytes(mv[p:e]))
                    p = e
        st.frames_out += nframes * k
        st.bytes_out += nbytes * k

    def _forward_to(self, c: _Conn, dest: int, t: int, stream: int, frame: memoryview) -> None:
        room = c.room
        st = room.stats
        st.frames_in += 1
        st.bytes_in += len(frame)
        r = room.members.get(dest)
        if r is None or r is c:
            st.misrouted += 1
            return
        st.frames_out += 1
        st.bytes_out += len(frame)
        if r.writable and not r.q.nbytes and r.ready_bytes < self.config.ready_cap_bytes:
            r.ready.append(frame)
            r.ready_bytes += len(frame)
            self._dirty.add(r.id)
        else:
            self._enqueue(r, t, stream, c.id, bytes(frame))

    def _enqueue(self, r: _Conn, t: int, stream: int, sender: int, data: bytes) -> None:
        """Queue one frame for a backed-up receiver under the drop policy (s2c.wire.queues)."""
        r.q.push(t, (sender << 8) | stream, data, r.room.stats if r.room is not None else _NO_ROOM)
        if r.writable:
            self._dirty.add(r.id)

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
            if c.room is not None:
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
                clocks = [(m.id, m.clock[0], m.clock[1]) for m in c.room.members.values() if m.clock]
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
        limit = self.config.max_participants
        if len(room.members) >= limit:
            if not room.members:
                del self.rooms[join.session]
            self._fatal(c, P.E_ROOM_FULL, f"session {join.session!r} is full ({limit} participants)")
            return
        taken = {m.name for m in room.members.values()}
        name = join.name
        i = 2
        while name in taken:
            suffix = f" ({i})"
            name = join.name[: P.MAX_NAME_CHARS - len(suffix)] + suffix
            i += 1
        c.name = name
        c.caps = join.caps
        roster = [P.Peer(m.id, m.name, m.caps) for m in room.members.values()]
        c.room = room
        room.members[c.id] = c
        room.stats.joins += 1
        limits = {"max_frame_bytes": cfg.max_frame_bytes, "max_fps": cfg.max_fps,
                  "max_participants": cfg.max_participants,
                  "silence_timeout_ms": int(cfg.silence_timeout_ms)}
        self._send_ctrl(c, P.WELCOME, P.encode_welcome(c.id, name, room.name, roster, limits))
        announce = P.encode_peer_joined(P.Peer(c.id, name, c.caps))
        for m in room.members.values():
            if m is not c:
                self._send_ctrl(m, P.PEER_JOINED, announce)

    def _leave(self, c: _Conn, reason: str) -> None:
        room = c.room
        if room is None:
            return
        c.room = None
        room.members.pop(c.id, None)
        room.stats.leaves += 1
        if not room.members:
            self.rooms.pop(room.name, None)
            return
        if self._shutting_down:
            return
        msg = P.encode_peer_left(c.id, c.name, reason)
        for m in room.members.values():
            self._send_ctrl(m, P.PEER_LEFT, msg)

    def _close(self, c: _Conn, reason: str, abort: bool = False) -> None:
        if c.room is not None:
            self._leave(c, reason)
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

    # ---- introspection ------------------------------------------------------------------------

    def stats(self) -> dict:
        """Snapshot: totals and, per room, participants + cumulative counters + queued bytes."""
        rooms = {}
        for name, room in self.rooms.items():
            d = room.stats.as_dict()
            d["participants"] = len(room.members)
            d["queued_bytes"] = sum(m.q.nbytes for m in room.members.values())
            rooms[name] = d
        return {"connections": len(self.conns), "totals": dict(self.totals), "rooms": rooms}

    def roster(self, session: str) -> list[P.Peer]:
        room = self.rooms.get(session)
        return [] if room is None else [P.Peer(m.id, m.name, m.caps) for m in room.members.values()]
