"""Client transport to an s2c relay: ``RelayConnection``, the asyncio adapter of a call.

Owns: the connection to the relay (TCP, or QUIC per ``transport``: s2c.call.dial), JOIN/WELCOME,
the roster as the relay reports it, the send queue (s2c.wire.queues.OutQueue: the same policy as
the relay's), the bounded receive queue, PING/PONG timing (a PING every 0.5 s; the estimates are
s2c.call.clocksync's), dead-link detection (no byte from the relay for 1.5 s) and reconnect with
backoff (0.2 s, then 0.1 s with a 0.35 s + 2 RTT connect timeout for the first 15 s of an
outage, then to 2 s) that rejoins the same session — on the next of
several relays if it was given a list (``"host1,host2:port"``), as the same participant when the
relay honours the resume token of the last WELCOME (a ``Resumed`` event: same id, nobody saw a
leave or a join).
Must not: encode/decode or encrypt media (payloads are opaque bytes here), keep per-peer call
state (s2c.call.session does), draw, or block. All methods run on the event loop's thread.

Every process stamps ``ts_us`` with ``s2c.clock.now_us()``; ``clock`` (a ClockSync) turns a
peer's timestamp into ours (``clock.to_local_us(peer_id, ts_us)``).
"""

from __future__ import annotations

import asyncio
from collections import deque

from .. import wire as P
from ..clock import now_s, now_us
from ..errors import JoinRefused, LocalError, ProtocolError, RelayUnreachable
from ..wire import Frame, Welcome
from ..wire.queues import DropCounts
from .clocksync import ClockSync
from .roster import Roster
from .dial import dial
from .transport import RelayProtocol, reason_of
from .events import Closed, PeerJoined, PeerLeft, Reconnected, Reconnecting, RelayErrorEvent, Resumed

RETRY_FAST_FOR_S = 15.0          # reconnect attempts this long after the loss are quick:
RETRY_CONNECT_TIMEOUT_S = 0.35   # ... a connect (+ join) taking longer than this plus 2 RTTs
RETRY_FAST_BACKOFF_S = 0.1       # ... is retried with a new SYN after at most this pause

__all__ = ["RelayConnection", "PeerJoined", "PeerLeft", "Reconnecting", "Reconnected",
           "RelayErrorEvent", "Closed"]


def parse_relays(hosts: str, default_port: int) -> list[tuple[str, int]]:
    """``"a,b:1200,[::1]:1122"`` -> [("a", default_port), ("b", 1200), ("::1", 1122)]."""
    out = []
    for item in str(hosts).split(","):
        item = item.strip()
        if not item:
            continue
        port = default_port
        if item.startswith("["):
            host, _, rest = item[1:].partition("]")
            if rest.startswith(":"):
                port = int(rest[1:])
        elif item.count(":") == 1:
            host, _, p = item.partition(":")
            port = int(p)
        else:
            host = item
        if not 0 < port < 65536:
            raise LocalError(f"relay port {port} in {item!r} is out of range")
        out.append((host, port))
    if not out:
        raise LocalError(f"no relay address in {hosts!r}")
    return out


class Inbox:
    """The bounded queue behind ``async for item in conn``: oldest items dropped (and counted)
    when the reader is slow; iteration ends after ``close()``."""

    def __init__(self, max_items: int, stats: dict):
        self.max_items, self.stats = max_items, stats
        self.items: deque = deque()
        self.final = False
        self._waiter: asyncio.Future | None = None

    def push(self, item) -> None:
        self.items.append(item)
        if len(self.items) > self.max_items:
            self.items.popleft()
            self.stats["recv_dropped"] += 1
        self._wake()

    def close(self) -> None:
        self.final = True
        self._wake()

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def next(self, loop):
        while True:
            if self.items:
                return self.items.popleft()
            if self.final:
                raise StopAsyncIteration
            self._waiter = loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None


class RelayConnection:
    """One participant's connection to a relay session.

    ``on_frame(frame)`` (media frames: VIDEO/AUDIO/CHAT/KEY/STATE/REFRESH, ``frame.sender`` is
    the peer id) and ``on_event(event)`` are called synchronously on the loop; whatever has
    no callback goes to a bounded queue read with ``async for item in conn`` (oldest items
    dropped and counted in ``stats["recv_dropped"]`` when the reader is slow). Iteration ends
    after the ``Closed`` event.
    """

    def __init__(self, *, on_frame=None, on_event=None, reconnect: bool = True,
                 ping_interval_s: float = 0.5, dead_after_s: float = 1.5,
                 max_send_frames: int = 256, max_recv_items: int = 1024,
                 max_frame_bytes: int = P.DEFAULT_MAX_FRAME_BYTES,
                 backoff_initial_s: float = 0.2, backoff_max_s: float = 2.0, transport: str = "tcp"):
        self.on_frame = on_frame
        self.transport = transport          # auto | quic | tcp (s2c.call.dial)
        self.transport_used = ""         # what the current connection speaks
        self.auto_rtt_ms = None          # auto: the QUIC handshake's RTT it chose by (s2c.call.dial)
        self.on_event = on_event
        self.reconnect = reconnect
        self.ping_interval_s = ping_interval_s
        self.dead_after_s = dead_after_s
        self.max_send_frames = max_send_frames
        self.max_recv_items = max_recv_items
        self.max_frame_bytes = max_frame_bytes
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.host = ""
        self.port = 0
        self.relays: list[tuple[str, int]] = []
        self._relay_index = 0
        self.session = ""
        self.name = ""
        self.caps: dict = {}
        self.on_layers = None     # LAYERS from the relay: called with the streams (s2c.wire.layers)
        self.timeout_s = 5.0
        self.welcome: Welcome | None = None
        self.roster = Roster()
        self.stats = {"sent_frames": 0, "sent_bytes": 0, "send_dropped": 0, "recv_frames": 0,
                      "recv_bytes": 0, "recv_dropped": 0, "bad_frames": 0, "reconnects": 0, "resumes": 0,
                      "relay_errors": 0}
        self.loop: asyncio.AbstractEventLoop | None = None
        self._proto: RelayProtocol | None = None
        self._closed = False
        self._inbox = Inbox(max_recv_items, self.stats)
        self._seq: dict[int, int] = {}
        self._ping_seq = 0
        self._ping_task: asyncio.Task | None = None
        self._reconnect_task: asyncio.Task | None = None
        self.clock = ClockSync()
        self.drops = DropCounts()
        self._lowat = 0   # 0: the transport's default until the sender's pacer measured the uplink
        self._gate = None  # the pacer's in-flight gate (TCP), None: none

    # ---- public API -------------------------------------------------------------------------

    @property
    def my_id(self) -> int | None:
        return self.welcome.id if self.welcome else None

    @property
    def connected(self) -> bool:
        p = self._proto
        return p is not None and p.welcome.done() and not p.lost.done()

    async def connect(self, host: str, port: int, session: str, name: str, caps: dict | None = None,
                      timeout_s: float = 5.0) -> Welcome:
        """Connect, join ``session`` as ``name`` and return the Welcome (id, name, roster).

        Raises RelayUnreachable (refused, timed out, closed) or JoinRefused (room full,
        bad name, ...); ``str(exc)`` is one line for the user."""
        if self._proto is not None or self._closed:
            raise LocalError("RelayConnection.connect() called twice")
        self.loop = asyncio.get_running_loop()
        self.relays = parse_relays(host, int(port))
        self.session, self.name = session, name
        self.caps = dict(caps or {})
        self.timeout_s = timeout_s
        for i in range(len(self.relays)):
            self._relay_index = i
            self.host, self.port = self.relays[i]
            try:
                welcome = await self._open()
                break
            except RelayUnreachable:
                if i == len(self.relays) - 1:
                    raise
        self._ping_task = self.loop.create_task(self._ping_loop())
        return welcome

    def send(self, frame: Frame) -> bool:
        """Queue ``frame`` (its sender is ignored by the relay). Never blocks; returns False
        if it was dropped because the connection is down. Under backpressure VIDEO frames
        replace the queued frame of the same stream and other frames are bounded FIFO."""
        p = self._proto
        if p is None or not p.welcome.done() or p.lost.done():
            self.stats["send_dropped"] += 1
            return False
        data = P.serialize(frame)
        if len(data) > self.max_frame_bytes:
            raise LocalError(f"frame of {len(data)} bytes exceeds limit {self.max_frame_bytes}")
        self.stats["sent_frames"] += 1
        self.stats["sent_bytes"] += len(data)
        p.enqueue(frame.type, frame.stream, data)
        return True

    def uplink_backlog_bytes(self) -> int:
        """Bytes written but not yet on the wire (see RelayProtocol.backlog_bytes). The sender
        checks it before encoding a picture: a backlog means the link carries less than we send,
        and skipping the picture costs nothing, where dropping an encoded one would break every
        receiver's chain."""
        p = self._proto
        return 0 if p is None else p.backlog_bytes()

    def uplink_min_rtt_ms(self) -> float | None:
        """The path's min RTT as the kernel measured it (None where unknown)."""
        p = self._proto
        return None if p is None else p.min_rtt_ms()   # TCP: tcp_info; QUIC: its own RTT figures

    def tune_uplink(self, lowat_bytes: int, gate_bytes: int | None = None) -> None:
        """The sender's pacer sized the socket's unsent-byte limit and in-flight gate (s2c.call.pacing)."""
        self._lowat = lowat_bytes
        self._gate = gate_bytes
        p = self._proto
        if p is not None and p.transport is not None:
            p.set_lowat(lowat_bytes)
            if hasattr(p, "set_gate"):   # TCP only
                p.set_gate(gate_bytes)

    def send_media(self, ftype: int, payload: bytes, *, stream: int = 0, flags: int = 0, dest: int = 0,
                   ts_us: int | None = None) -> bool:
        """``send`` with seq numbered per (type, stream) and ts_us defaulting to ``now_us()``."""
        key = (ftype << 8) | stream
        seq = self._seq.get(key, -1) + 1 & 0xFFFFFFFF
        self._seq[key] = seq
        return self.send(Frame(ftype, payload, flags, stream, 0, dest, seq,
                               now_us() if ts_us is None else ts_us))

    @property
    def queued_items(self) -> int:
        """Items waiting for ``async for`` (frames and events without a callback)."""
        return len(self._inbox.items)

    @property
    def rtt_ms_p50(self) -> float | None:
        return self.clock.rtt_ms_p50

    async def close(self) -> None:
        """Send LEAVE, close the socket, stop reconnecting; emits Closed."""
        if self._closed:
            return
        self._closed = True
        for task in (self._ping_task, self._reconnect_task):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        p = self._proto
        if p is not None and p.transport is not None and not p.transport.is_closing():
            p._flush()
            p.transport.write(P.serialize(Frame(P.LEAVE)))
            p.transport.close()
            try:
                await asyncio.wait_for(asyncio.shield(p.lost), 1.0)
            except asyncio.TimeoutError:
                p.transport.abort()
        self._finish("closed")

    def __aiter__(self):
        return self

    async def __anext__(self):
        return await self._inbox.next(self.loop)

    # ---- internals --------------------------------------------------------------------------

    def _unreachable(self, what: str) -> RelayUnreachable:
        hint = "" if "datagram format" in what else f" — start one with: s2c-server -p {self.port}"
        return RelayUnreachable(f"cannot reach relay {self.host}:{self.port}: {what}{hint}")

    async def _open(self, connect_timeout_s: float | None = None) -> Welcome:
        loop = self.loop
        deadline = loop.time() + self.timeout_s
        ct = self.timeout_s if connect_timeout_s is None else min(self.timeout_s, connect_timeout_s)
        try:
            proto = await dial(self, self.transport, self.host, self.port, ct)
        except asyncio.TimeoutError:
            raise self._unreachable(f"timed out after {ct:g} s") from None
        except OSError as exc:
            raise self._unreachable(reason_of(exc)) from None
        old = self.welcome
        resume = (old.id, old.resume) if old is not None and old.resume else None
        name = old.name if resume else self.name
        proto.transport.write(P.serialize(Frame(P.JOIN, P.encode_join(self.session, name, self.caps,
                                                                      resume=resume))))
        self._proto = proto
        if self._lowat:
            proto.set_lowat(self._lowat)
        if self._gate and hasattr(proto, "set_gate"):
            proto.set_gate(self._gate)
        try:
            welcome = await asyncio.wait_for(asyncio.shield(proto.welcome), max(0.01, deadline - loop.time()))
        except asyncio.TimeoutError:
            proto.transport.abort()
            raise self._unreachable(f"no welcome within {self.timeout_s:g} s") from None
        except JoinRefused as exc:
            raise JoinRefused(f"relay {self.host}:{self.port} refused to join session {self.session!r}: {exc}",
                              exc.code) from None
        except ConnectionError as exc:
            raise self._unreachable(str(exc)) from None
        self.welcome = welcome  # self.roster started when the WELCOME frame arrived
        limit = welcome.limits.get("max_frame_bytes")
        if isinstance(limit, int) and P.HEADER_BYTES < limit < self.max_frame_bytes:
            self.max_frame_bytes = limit
        self.clock.reset()
        self._send_ping()
        return welcome

    def _emit(self, event) -> None:
        if self.on_event is not None:
            self.on_event(event)
            if not isinstance(event, Closed):
                return
        self._inbox.push(event)

    def frame_received(self, proto: RelayProtocol, f: Frame) -> None:
        t = f.type
        if P.FORWARDED_TABLE[t]:
            if proto is not self._proto:
                return
            self.stats["recv_frames"] += 1
            self.stats["recv_bytes"] += P.HEADER_BYTES + len(f.payload)
            if self.on_frame is not None:
                self.on_frame(f)
            else:
                self._inbox.push(f)
            return
        try:
            if t == P.PONG:
                self._on_pong(f)
            elif t == P.WELCOME:
                if not proto.welcome.done():
                    welcome = P.parse_welcome(f.payload)
                    self.roster.start(welcome)   # in frame order: see s2c.call.roster
                    proto.welcome.set_result(welcome)
            elif t == P.LAYERS:
                if self.on_layers is not None and proto is self._proto:
                    self.on_layers(P.parse_layers(f.payload))
            elif t == P.ERROR:
                info = P.parse_error(f.payload)
                proto.error = info
                self.stats["relay_errors"] += 1
                if proto.welcome.done():
                    self._emit(RelayErrorEvent(info.code, info.text))
            else:
                ev = self.roster.apply(f)
                if ev is None:
                    self.stats["bad_frames"] += 1
                    return
                if isinstance(ev, PeerLeft):
                    self.clock.forget(ev.id)
                self._emit(ev)
        except ProtocolError:
            self.stats["bad_frames"] += 1

    def _on_pong(self, f: Frame) -> None:
        relay_us, clocks = P.parse_pong(f.payload)
        self.clock.on_pong(f.ts_us, now_us(), relay_us, clocks, self.my_id)

    def _send_ping(self) -> None:
        p = self._proto
        if p is None or p.transport is None or p.transport.is_closing():
            return
        off, rtt = self.clock.report()
        self._ping_seq = (self._ping_seq + 1) & 0xFFFFFFFF
        p.enqueue(P.PING, 0, P.serialize(Frame(P.PING, P.encode_ping(off, rtt), seq=self._ping_seq,
                                               ts_us=now_us())))

    async def _ping_loop(self) -> None:
        while not self._closed:
            await asyncio.sleep(self.ping_interval_s)
            p = self._proto
            if p is None or not self.connected:
                continue
            if now_s() - p.last_rx_s > self.dead_after_s:
                p.error = P.ErrorInfo(P.E_TIMEOUT, f"no data from relay for {self.dead_after_s:g} s")
                p.transport.abort()
                continue
            self._send_ping()

    def lost_connection(self, proto: RelayProtocol, exc) -> None:
        if proto is not self._proto or self._closed or not proto.welcome.done() or proto.welcome.exception():
            return
        if proto.error is not None:
            reason = proto.error.text
        elif exc is not None:
            reason = reason_of(exc)
        else:
            reason = "relay closed the connection"
        if self.reconnect:
            self._reconnect_task = self.loop.create_task(self._reconnect_loop(reason))
        else:
            self._finish(reason)

    async def _reconnect_loop(self, reason: str) -> None:
        t0 = now_s()
        old = list(self.roster.values())
        delay = self.backoff_initial_s
        attempt = 0
        old_id = self.my_id
        while not self._closed:
            attempt += 1
            self._emit(Reconnecting(attempt, delay, reason))
            await asyncio.sleep(delay)
            if self._closed:
                return
            if len(self.relays) > 1:  # the next relay of the list (the lost one last)
                self._relay_index = (self._relay_index + 1) % len(self.relays)
                self.host, self.port = self.relays[self._relay_index]
            # the first seconds of an outage: a fresh SYN at least every ~1 s (a lost one is only
            # retried by the kernel after 1 s, then 3 s), so the call is back soon after the link
            fresh = now_s() - t0 < RETRY_FAST_FOR_S
            try:
                welcome = await self._open(self._fast_timeout_s() if fresh else None)
            except (RelayUnreachable, JoinRefused) as exc:
                reason = str(exc)
                if len(self.relays) == 1 or self._relay_index == 0:
                    delay = min(delay * 2, RETRY_FAST_BACKOFF_S if fresh else self.backoff_max_s)
                continue
            self.stats["reconnects"] += 1
            if welcome.resumed and welcome.id == old_id:
                self._resumed(welcome, old, now_s() - t0, attempt)
                return
            for peer in old:
                self._emit(PeerLeft(peer.id, peer.name, "reconnect"))
            self._emit(Reconnected(welcome, now_s() - t0, attempt))
            for peer in welcome.roster:
                self._emit(PeerJoined(peer))
            return

    def _fast_timeout_s(self) -> float:
        """A connect + join that takes longer than this is retried: the PINGs' RTT (which
        outlives the connection) twice over the base, so a long path still gets through."""
        rtt_ms = self.clock.rtt_ms_p50
        return RETRY_CONNECT_TIMEOUT_S + (0.0 if rtt_ms is None else min(2.0, 2 * rtt_ms / 1000.0))

    def _resumed(self, welcome: Welcome, old: list, downtime_s: float, attempt: int) -> None:
        self.stats["resumes"] += 1
        self._emit(Resumed(welcome, downtime_s, attempt, f"{self.host}:{self.port}"))
        now = {p.id for p in welcome.roster}
        for peer in old:
            if peer.id not in now:
                self._emit(PeerLeft(peer.id, peer.name, "left while reconnecting"))
        before = {p.id for p in old}
        for peer in welcome.roster:
            if peer.id not in before:
                self._emit(PeerJoined(peer))

    def _finish(self, reason: str) -> None:
        if self._inbox.final:
            return
        self._closed = True
        self._emit(Closed(reason))
        self._inbox.close()
