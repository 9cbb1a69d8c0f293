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
straight to ``data_to_send``; VIDEO of a room with video layers goes to each receiver
in the layer s2c.relay.layers selects for it): one s2c.wire.queues.MediaQueue each (control and audio before
video; video bounded in time: ~150 ms at the receiver's measured delivery rate, which the
adapter feeds in with ``report_unsent`` for the ``backlogged()`` connections; a broken picture
chain drops that sender's deltas until its next keyframe, which the relay asks for). REFRESH to
a sender is rate-limited per sender (s2c.relay.pacing). A participant whose link died (not a
LEAVE) lingers ``linger_ms`` so that a reconnect with its resume token takes its place. Every
drop is counted in the room's stats. Header fields are read and patched at the offsets
s2c.wire.frames defines.

The Relay class is this module's connection life, output and input loop over three base
classes: s2c.relay.forwarding (fan-out, drop policy, keyframe asks), s2c.relay.rooms (control
frames, join/leave, resume), s2c.relay.rooms_cluster (the cluster interface) and s2c.relay.layers
(per-receiver video layers); its records
(RelayConfig, Room, the connection state) are s2c.relay.state's.
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
from .coalesce import AudioHold
from .forwarding import Forwarding
from .layers import LayerSelection
from .rooms import RoomControl
from .rooms_cluster import ClusterRooms
from .state import (_HDR, _unpack_hdr, _HB, _SND, _SND_END, _LEN, _LEN_END, _FLG, RelayConfig, RoomStats, _NO_ROOM, Room, _Remote, _Lingering, _Conn, _dump, _LINGER_REASONS, _CTRL_QUEUE_TYPES)  # noqa: F401


class Relay(Forwarding, RoomControl, ClusterRooms, LayerSelection):
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
        self._hold = AudioHold(cfg.audio_hold_ms)   # lone audio frames waiting for company
        self._closing: list[tuple[int, bool]] = []
        self._shutting_down = False
        self._join_win_start_ms = -1e18
        self._join_win_count = 0
        self._now_ms = 0.0               # the latest now_ms any entry point was given
        self._refresh = RefreshLimiter()
        self.totals = {"connections": 0, "refused": 0, "bad_frames": 0, "ignored_frames": 0,
                       "timeouts": 0, "stalls": 0, "internal_errors": 0, "resumed": 0, "bad_remote": 0,
                       "quic_unreachable": 0}

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
        self._hold.release((cid,))
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
        self._layers_tick(now_ms)

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
        self._hold.release(out)
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

    def gate_bytes(self, cid: int) -> int | None:
        """In-flight gate for ``cid``'s socket (s2c.relay.pacing.DeliveryRate.gate_bytes)."""
        c = self.conns.get(cid)
        return None if c is None else c.pace.gate_bytes()

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
        c.q.budget_bytes = p.budget_bytes(unsent_bytes, c.layers.budget_floor())
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
        video = P.VIDEO
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
                if dest == 0 and t == video and c.room.layered:   # per-receiver layers
                    if run_start >= 0:
                        self._forward_run(c, mv, run_start, pos, run_frames)
                        run_start = -1
                        run_frames = 0
                    self._forward_layered(c, stream, _f, mv[pos:end])
                elif dest == 0:
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
            if room.layered:       # per receiver: [layer cap (0 small .. 2 large), steps down, steps up]
                d["layers"] = {str(m.pid): [m.layers.cap_rank, m.layers.steps_down, m.layers.steps_up]
                               for m in room.members.values()}
            rooms[name] = d
        return {"connections": len(self.conns), "totals": dict(self.totals), "rooms": rooms}

    def roster(self, session: str) -> list[P.Peer]:
        room = self.rooms.get(session)
        return [] if room is None else self._roster_of(room)
