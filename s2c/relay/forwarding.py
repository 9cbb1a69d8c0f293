"""The relay core's forwarding: a run of frames to every other member, a frame to one member,
the drop policy for a backed-up receiver, rate limiting and keyframe requests for broken chains.

Owns: ``Forwarding``, a base class of s2c.relay.core.Relay (it works on the Relay's state).
Must not: do I/O, read the clock, or look inside forwarded payloads (header fields only).
"""

from __future__ import annotations

from .. import wire as P
from .coalesce import HOLD_MIN_MEMBERS
from .state import (_HDR, _unpack_hdr, _HB, _SND, _SND_END, _LEN, _LEN_END, _FLG, RelayConfig, RoomStats, _NO_ROOM, Room, _Remote, _Lingering, _Conn, _dump, _LINGER_REASONS, _CTRL_QUEUE_TYPES)  # noqa: F401


class Forwarding:
    """Forwarding half of the relay core (see the module docstring)."""

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

    def release_held(self, now_ms: float) -> None:
        """Held audio whose time is up becomes output (``pop_dirty``); the adapter calls this
        at ``next_hold_ms()`` (s2c.relay.coalesce)."""
        self._now_ms = now_ms
        for cid in self._hold.pop_due(now_ms):
            if cid in self.conns:
                self._dirty.add(cid)

    def next_hold_ms(self) -> float | None:
        """When the earliest held output is due (None: nothing held)."""
        return self._hold.next_due_ms()

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
        # a lone audio frame in a room of 4+ waits a few ms for company (s2c.relay.coalesce)
        hold = self._hold if (nframes == 1 and mv[start + 1] == P.AUDIO and self._hold.hold_ms > 0
                              and len(room.members) >= HOLD_MIN_MEMBERS) else None
        k = 0
        for r in room.members.values():
            if r is c:
                continue
            k += 1
            if r.writable and not r.q.nbytes and r.ready_bytes < cap and not r.q.broken:
                r.ready.append(mv[start:end])
                r.ready_bytes += nbytes
                if hold is not None and r.id not in dirty:
                    hold.hold(r.id, self._now_ms)
                else:
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
        f = data[_FLG] if t == P.VIDEO else 0
        st = r.room.stats if r.room is not None else _NO_ROOM
        lost = st.video_thinned + st.video_dropped
        broke = r.q.push(t, (sender << 8) | stream, data, st, bool(f & P.FLAG_KEYFRAME), bool(f & P.FLAG_DISCARDABLE))
        r.layers.loss += st.video_thinned + st.video_dropped - lost   # s2c.relay.layers steps on it
        if broke:
            r.want_keys.update(broke)
            if r.writable:   # a receiver that is not draining at all (an outage) asks nobody
                self._ask_keyframes(r)
        if r.writable:
            self._dirty.add(r.id)

    def _ask_keyframes(self, r: _Conn) -> None:
        for k in r.want_keys:
            if self._leaving_layer(r, k >> 8, k & 0xFF):
                continue   # r switches away from that layer at the target's keyframe (s2c.relay.layers)
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
