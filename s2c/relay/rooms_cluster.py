"""The relay core's cluster interface: remote participants, roster ops, the media and roster
outbox, syncs and expiry, driven by s2c.relay.cluster; idle on a single relay.

Owns: ``ClusterRooms``, a base class of s2c.relay.core.Relay. Must not: do I/O, read the
clock, or decrypt (remote frames are ciphertext with a routing header).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os

from .. import wire as P
from ..errors import LocalError, ProtocolError
from .cluster_layers import ClusterDemand, parse_want
from .state import (_HDR, _unpack_hdr, _HB, _SND, _SND_END, _LEN, _LEN_END, _FLG, RelayConfig, RoomStats, _NO_ROOM, Room, _Remote, _Lingering, _Conn, _dump, _LINGER_REASONS, _CTRL_QUEUE_TYPES)  # noqa: F401


JOIN_RACE_MS = 2000.0   # joins this recent may lose the last place to a simultaneous join elsewhere


def _parse_remote(x, node):
    """One roster entry another relay published: (pid, name, caps, epoch), checked."""
    pid, name, caps, epoch = x
    if type(pid) is not int or not 1 <= pid <= 0xFFFF or type(epoch) is not int or epoch < 0:
        raise ValueError("bad peer")
    if not isinstance(name, str) or not P.sanitize_name(name) or not isinstance(node, str):
        raise ValueError("bad peer name")
    return (pid, P.sanitize_name(name), P.check_caps(caps), epoch, node)


def _race_losers(room: Room, limit: int, now_ms: float) -> list:
    """This relay's participants that lost a race for the last place(s) of ``room``."""
    excess = len(room.members) + len(room.remote) + len(room.lingering) - limit
    if excess <= 0:
        return []
    since = now_ms - JOIN_RACE_MS
    recent = [m.pid for m in room.members.values() if m.joined_ms >= since]
    recent += [r.pid for r in room.remote.values() if r.joined_ms >= since]
    return [room.members[pid] for pid in sorted(recent)[-excess:] if pid in room.members]


class ClusterRooms(ClusterDemand):
    """The cluster half of the relay core (see the module docstring)."""

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
        if op == "hb" and room is not None and room.remote:
            msg["want"] = self._demand_field(room)   # layers wanted of remote senders (cluster_layers)
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
        self._now_ms = max(self._now_ms, now_ms)
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
            want = parse_want(msg["want"]) if op in ("hb", "want") and "want" in msg else None
            if op == "want" and want is None or op not in ("hb", "join", "want"):
                raise ValueError(f"unknown op {op!r:.20}")
            peers = [_parse_remote(x, node) for x in msg.get("peers", ())]
            seen = [_parse_remote(x[:4], x[4]) for x in msg.get("seen", ())
                    if isinstance(x, list) and len(x) == 5 and isinstance(x[4], str)]
        except (ValueError, KeyError, TypeError, IndexError, UnicodeDecodeError, RecursionError, ProtocolError):
            self.totals["bad_remote"] += 1
            return
        if op == "want":
            self._take_demand(room, node, want)
            return
        for p in peers:
            self._upsert_remote(room, p, now_ms)
        if op == "join":
            self._settle_last_place(room, now_ms)
        for p in seen:
            if p[4] != self.config.cluster_node and p[0] not in room.remote and p[0] not in room.members:
                self._upsert_remote(room, p, now_ms)
        if op == "hb":  # a heartbeat is that relay's whole roster: who is missing has left
            listed = {p[0] for p in peers}
            for r in [r for r in room.remote.values() if r.node == node and r.pid not in listed]:
                self._drop_remote(room, r, "left")
            if want is not None:
                self._take_demand(room, node, want)

    def _settle_last_place(self, room: Room, now_ms: float) -> None:
        """Two relays admitted joins for the last place(s) at once (each before hearing of the
        other's): the room is over ``max_participants``. Every relay ranks the participants that
        joined within ``JOIN_RACE_MS`` by id and the highest ids lose; a relay closes its own
        losers with ROOM_FULL, so all relays settle on the same survivors without a round trip."""
        limit = self.config.max_participants
        for m in _race_losers(room, limit, now_ms):
            room.stats.race_lost += 1
            self._fatal(m, P.E_ROOM_FULL, f"session {room.name!r} is full ({limit} participants): "
                                          "another relay admitted a join for the last place at the same time")

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
        if isinstance(caps, dict) and caps.get(P.LAYERS_CAP):
            room.layered = True        # its layers are selected per receiver here too
        if room.layered:
            self._update_senders(room)  # a new relay counts as NORMAL until its demand arrives
        self._drop_room_if_empty(room)

    def _unlinger(self, room: Room, pid: int) -> None:
        del room.lingering[pid]
        if self._pids.get(pid) == 0:
            del self._pids[pid]

    def _drop_remote(self, room: Room, r: _Remote, reason: str) -> None:
        del room.remote[r.pid]
        room.publish = bool(room.remote)
        self._forget_demand(room, r.node)
        self._layers_left(room, r.pid)
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
            layered = t == P.VIDEO and dest == 0 and room.layered   # the same per-receiver layers
            for r in targets:
                if layered and not self._layer_pass(r, remote[sender], stream, _f, end - pos):
                    continue
                st.frames_out += 1
                st.bytes_out += end - pos
                if r.writable and not r.q.nbytes and r.ready_bytes < cap and not r.q.broken:
                    r.ready.append(frame)
                    r.ready_bytes += end - pos
                    dirty.add(r.id)
                else:
                    self._enqueue(r, t, stream, sender, bytes(frame))
            pos = end
