"""The relay core's room logic: control frames (JOIN, PING, LEAVE), joining and leaving rooms,
closing connections, and resuming a participant with its token.

Owns: ``RoomControl``, a base class of s2c.relay.core.Relay (it works on the Relay's state).
Must not: do I/O, read the clock, or look inside forwarded payloads.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os

from .. import wire as P
from ..errors import LocalError, ProtocolError
from .state import (_HDR, _unpack_hdr, _HB, _SND, _SND_END, _LEN, _LEN_END, _FLG, RelayConfig, RoomStats, _NO_ROOM, Room, _Remote, _Lingering, _Conn, _dump, _LINGER_REASONS, _CTRL_QUEUE_TYPES)  # noqa: F401


class RoomControl:
    """Control frames, rooms and resume (see the module docstring)."""

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
        elif t == P.SUBSCRIBE:
            self._on_subscribe(c, payload)
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
        c.joined_ms = self._now_ms
        room.members[c.pid] = c
        room.stats.joins += 1
        limits = {"max_frame_bytes": cfg.max_frame_bytes, "max_fps": cfg.max_fps,
                  "max_participants": cfg.max_participants,
                  "silence_timeout_ms": int(cfg.silence_timeout_ms)}
        token = self._resume_token(room.name, c.pid, c.name, c.epoch)
        self._send_ctrl(c, P.WELCOME, P.encode_welcome(c.pid, c.name, room.name, roster, limits, token, resumed))
        if self._cluster:
            self._cluster_out.append(("roster", room.name, self._roster_msg("join", [c])))
        if not resumed:  # (a resumed one everyone already has: no PEER_JOINED)
            announce = P.encode_peer_joined(P.Peer(c.pid, c.name, c.caps))
            for m in room.members.values():
                if m is not c:
                    self._send_ctrl(m, P.PEER_JOINED, announce)
        self._layers_joined(c)

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
        self._layers_left(room, c.pid)
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
