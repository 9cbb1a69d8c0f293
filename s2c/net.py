"""Client transport to an s2c relay: ``RelayConnection`` (asyncio, used by the client core).

Owns: the TCP connection to the relay, JOIN/WELCOME, the roster as the relay reports it,
the bounded send queue (VIDEO newest-wins per stream, everything else bounded FIFO),
the bounded receive queue, ping/pong (RTT, clock offsets to the relay and between peers),
and reconnect with backoff (0.2 s doubling to 2 s) that rejoins the same session — on the next
of several relays if it was given a list (``"host1,host2:port"``), as the same participant when
the relay honours the resume token of the last WELCOME (a ``Resumed`` event: same id, nobody
saw a leave or a join).
Must not: encode/decode or encrypt media (payloads are opaque bytes here), draw, or block.

Clock model: every process stamps ``ts_us`` with ``now_us()`` (its monotonic clock). A PONG
carries the relay's clock; from the PING send/receive times the client estimates
``offset_us = relay_clock - local_clock`` (NTP style, from the lowest-RTT recent sample) and
reports it in its next PING; the relay hands every member's report back in each PONG. So a
peer's timestamp in our clock is ``ts_us + peer_offset - my_offset``
(``peer_clock_offset_us(peer_id)``, ``to_local_us(peer_id, ts_us)``).

All methods must be called on the event loop's thread; ``send_threadsafe`` hands a frame
over from another thread.
"""

from __future__ import annotations

import asyncio
import errno
import statistics
import struct
import sys
import time
from collections import deque
from dataclasses import dataclass

from . import protocol as P
from .errors import JoinRefused, LocalError, ProtocolError, RelayUnreachable
from .protocol import Frame, Peer, Welcome

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None
# Linux ioctl: bytes in a TCP socket's send queue not yet sent (include/uapi/linux/sockios.h)
_SIOCOUTQNSD = 0x894B if (fcntl is not None and sys.platform.startswith("linux")) else None

__all__ = ["RelayConnection", "Frame", "Peer", "Welcome", "PeerJoined", "PeerLeft", "Reconnecting",
           "Reconnected", "Resumed", "RelayErrorEvent", "Closed", "now_us", "MEDIA_TYPES", "parse_relays"]

MEDIA_TYPES = P.FORWARDED_TYPES


def now_us() -> int:
    """The monotonic clock every s2c process stamps ``ts_us`` with (microseconds)."""
    return time.monotonic_ns() // 1000


# ---- events -------------------------------------------------------------------------------------


@dataclass(slots=True)
class PeerJoined:
    peer: Peer


@dataclass(slots=True)
class PeerLeft:
    id: int
    name: str
    reason: str


@dataclass(slots=True)
class Reconnecting:
    """The connection was lost; attempt ``attempt`` will start in ``delay_s``."""
    attempt: int
    delay_s: float
    reason: str


@dataclass(slots=True)
class Reconnected:
    """Back in the session (new id, new roster; the old roster was reported as PeerLeft)."""
    welcome: Welcome
    downtime_s: float
    attempts: int


@dataclass(slots=True)
class Resumed:
    """Back in the session as the same participant (same id; the relay, maybe another one of the
    cluster, honoured the resume token). Roster changes during the gap come as PeerJoined/PeerLeft
    right after this event."""
    welcome: Welcome
    downtime_s: float
    attempts: int
    relay: str


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


@dataclass(slots=True)
class RelayErrorEvent:
    code: int
    text: str


@dataclass(slots=True)
class Closed:
    """Final event: the connection is closed for good (``close()`` or reconnect disabled)."""
    reason: str


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError) or getattr(exc, "errno", None) == errno.ECONNREFUSED:
        return "connection refused"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


class _ClientProtocol(asyncio.Protocol):
    def __init__(self, owner: "RelayConnection"):
        self.owner = owner
        self.transport = None
        self.parser = P.FrameParser(owner.max_frame_bytes)
        self.welcome: asyncio.Future = owner._loop.create_future()
        self.lost: asyncio.Future = owner._loop.create_future()
        self.writable = True
        self.pending: list[bytes] = []
        self.flush_scheduled = False
        self.q_video: dict[int, bytes] = {}
        self.q_fifo: deque = deque()
        self.last_rx_s = time.monotonic()
        self.error: P.ErrorInfo | None = None
        self.sock_fd: int | None = None

    # asyncio callbacks
    def connection_made(self, transport) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            import socket
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
            try:
                self.sock_fd = sock.fileno()
            except (OSError, ValueError):
                self.sock_fd = None
        transport.set_write_buffer_limits(high=64 * 1024, low=16 * 1024)

    def data_received(self, data: bytes) -> None:
        self.last_rx_s = time.monotonic()
        parser = self.parser
        owner = self.owner
        try:
            parser.receive_data(data)
            while True:
                f = parser.next_frame()
                if f is None:
                    break
                owner._on_frame(self, f)
        except ProtocolError as exc:
            owner.stats["bad_frames"] += 1
            self.error = P.ErrorInfo(exc.code, f"relay sent a malformed frame: {exc}")
            self.transport.abort()

    def eof_received(self):
        return False

    def pause_writing(self) -> None:
        self.writable = False

    def resume_writing(self) -> None:
        self.writable = True
        self._drain()

    def connection_lost(self, exc) -> None:
        self.writable = False
        if not self.welcome.done():
            if self.error is not None:
                self.welcome.set_exception(JoinRefused(self.error.text, self.error.code))
            else:
                self.welcome.set_exception(ConnectionResetError("connection closed before welcome"))
            self.welcome.exception()  # mark retrieved
        if not self.lost.done():
            self.lost.set_result(None)
        self.owner._on_lost(self, exc)

    # sending
    def enqueue(self, ftype: int, stream: int, data: bytes) -> None:
        if self.writable and not self.q_fifo and not self.q_video and len(self.pending) < self.owner.max_send_frames:
            self.pending.append(data)
            if not self.flush_scheduled:
                self.flush_scheduled = True
                self.owner._loop.call_soon(self._flush)
            return
        stats = self.owner.stats
        if ftype == P.VIDEO:
            if stream in self.q_video:
                stats["send_dropped"] += 1
                del self.q_video[stream]
            self.q_video[stream] = data
        else:
            q = self.q_fifo
            q.append(data)
            if len(q) > self.owner.max_send_frames:
                q.popleft()
                stats["send_dropped"] += 1

    def _flush(self) -> None:
        self.flush_scheduled = False
        if self.pending and self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(self.pending))
        self.pending.clear()
        self._drain()

    def _drain(self) -> None:
        t = self.transport
        if t is None or t.is_closing():
            return
        while self.writable and (self.q_fifo or self.q_video):
            parts = list(self.q_fifo)
            self.q_fifo.clear()
            parts.extend(self.q_video.values())
            self.q_video.clear()
            t.write(b"".join(parts))


class RelayConnection:
    """One participant's connection to a relay session.

    ``on_frame(frame)`` (media frames: VIDEO/AUDIO/CHAT/KEY/STATE/REFRESH, ``frame.sender`` is
    the peer id) and ``on_event(event)`` are called synchronously on the loop; whatever has
    no callback goes to a bounded queue read with ``async for item in conn`` (oldest items
    dropped and counted in ``stats["recv_dropped"]`` when the reader is slow). Iteration ends
    after the ``Closed`` event.
    """

    def __init__(self, *, on_frame=None, on_event=None, reconnect: bool = True,
                 ping_interval_s: float = 1.0, dead_after_s: float = 5.0,
                 max_send_frames: int = 256, max_recv_items: int = 1024,
                 max_frame_bytes: int = P.DEFAULT_MAX_FRAME_BYTES,
                 backoff_initial_s: float = 0.2, backoff_max_s: float = 2.0):
        self.on_frame = on_frame
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
        self.timeout_s = 5.0
        self.welcome: Welcome | None = None
        self.roster: dict[int, Peer] = {}
        self.stats = {"sent_frames": 0, "sent_bytes": 0, "send_dropped": 0, "recv_frames": 0,
                      "recv_bytes": 0, "recv_dropped": 0, "bad_frames": 0, "reconnects": 0, "resumes": 0,
                      "relay_errors": 0}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._proto: _ClientProtocol | None = None
        self._closed = False
        self._final = False
        self._queue: deque = deque()
        self._waiter: asyncio.Future | None = None
        self._seq: dict[int, int] = {}
        self._ping_seq = 0
        self._ping_task: asyncio.Task | None = None
        self._reconnect_task: asyncio.Task | None = None
        self._rtt_us: deque = deque(maxlen=32)
        self._clock_samples: deque = deque(maxlen=16)  # (rtt_us, offset_us)
        self._peer_clocks: dict[int, tuple[int, int]] = {}

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
        self._loop = asyncio.get_running_loop()
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
        self._ping_task = self._loop.create_task(self._ping_loop())
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
        """Bytes written but not yet on the wire: this side's queues, the transport's buffer and
        (Linux) the kernel's not-yet-sent bytes (SIOCOUTQNSD). The sender checks it before
        encoding a picture: a backlog means the link carries less than we send, and skipping the
        picture costs nothing, where dropping an encoded one would break every receiver's chain."""
        p = self._proto
        if p is None or p.transport is None:
            return 0
        n = sum(len(x) for x in p.pending) + sum(len(x) for x in p.q_fifo) + sum(len(x) for x in p.q_video.values())
        try:
            n += p.transport.get_write_buffer_size()
        except (AttributeError, RuntimeError):
            pass
        fd = p.sock_fd
        if fd is not None and _SIOCOUTQNSD is not None:
            try:
                n += struct.unpack("i", fcntl.ioctl(fd, _SIOCOUTQNSD, b"\0\0\0\0"))[0]
            except OSError:
                pass
        return n

    def send_media(self, ftype: int, payload: bytes, *, stream: int = 0, flags: int = 0, dest: int = 0,
                   ts_us: int | None = None) -> bool:
        """``send`` with seq numbered per (type, stream) and ts_us defaulting to ``now_us()``."""
        key = (ftype << 8) | stream
        seq = self._seq.get(key, -1) + 1 & 0xFFFFFFFF
        self._seq[key] = seq
        return self.send(Frame(ftype, payload, flags, stream, 0, dest, seq,
                               now_us() if ts_us is None else ts_us))

    def send_threadsafe(self, frame: Frame) -> None:
        """Hand a frame over from another thread (camera, audio callback)."""
        self._loop.call_soon_threadsafe(self.send, frame)

    @property
    def rtt_ms_p50(self) -> float | None:
        return statistics.median(self._rtt_us) / 1000 if self._rtt_us else None

    def rtt_ms_samples(self) -> list[float]:
        return [r / 1000 for r in self._rtt_us]

    @property
    def clock_offset_us(self) -> int | None:
        """relay clock - our clock, from the lowest-RTT recent PING/PONG."""
        if not self._clock_samples:
            return None
        return min(self._clock_samples)[1]

    def peer_clock_offset_us(self, peer_id: int) -> int | None:
        """Add to a timestamp from ``peer_id`` to get our clock (None until both estimates exist)."""
        mine = self.clock_offset_us
        theirs = self._peer_clocks.get(peer_id)
        if mine is None or theirs is None:
            return None
        return theirs[0] - mine

    def to_local_us(self, peer_id: int, ts_us: int) -> int | None:
        off = self.peer_clock_offset_us(peer_id)
        return None if off is None else ts_us + off

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
        while True:
            if self._queue:
                return self._queue.popleft()
            if self._final:
                raise StopAsyncIteration
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    # ---- internals --------------------------------------------------------------------------

    def _unreachable(self, what: str) -> RelayUnreachable:
        return RelayUnreachable(f"cannot reach relay {self.host}:{self.port}: {what} — "
                                f"start one with: s2c-server -p {self.port}")

    async def _open(self) -> Welcome:
        loop = self._loop
        deadline = loop.time() + self.timeout_s
        try:
            _t, proto = await asyncio.wait_for(
                loop.create_connection(lambda: _ClientProtocol(self), self.host, self.port), self.timeout_s)
        except asyncio.TimeoutError:
            raise self._unreachable(f"timed out after {self.timeout_s:g} s") from None
        except OSError as exc:
            raise self._unreachable(_reason(exc)) from None
        old = self.welcome
        resume = (old.id, old.resume) if old is not None and old.resume else None
        name = old.name if resume else self.name
        proto.transport.write(P.serialize(Frame(P.JOIN, P.encode_join(self.session, name, self.caps,
                                                                      resume=resume))))
        self._proto = proto
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
        self.welcome = welcome  # self.roster was set when the WELCOME frame arrived
        limit = welcome.limits.get("max_frame_bytes")
        if isinstance(limit, int) and P.HEADER_BYTES < limit < self.max_frame_bytes:
            self.max_frame_bytes = limit
        self._clock_samples.clear()
        self._peer_clocks.clear()
        self._send_ping()
        return welcome

    def _emit(self, event) -> None:
        if self.on_event is not None:
            self.on_event(event)
            if not isinstance(event, Closed):
                return
        self._push(event)

    def _push(self, item) -> None:
        q = self._queue
        q.append(item)
        if len(q) > self.max_recv_items:
            q.popleft()
            self.stats["recv_dropped"] += 1
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _on_frame(self, proto: _ClientProtocol, f: Frame) -> None:
        t = f.type
        if P.FORWARDED_TABLE[t]:
            if proto is not self._proto:
                return
            self.stats["recv_frames"] += 1
            self.stats["recv_bytes"] += P.HEADER_BYTES + len(f.payload)
            if self.on_frame is not None:
                self.on_frame(f)
            else:
                self._push(f)
            return
        try:
            if t == P.PONG:
                self._on_pong(f)
            elif t == P.WELCOME:
                if not proto.welcome.done():
                    welcome = P.parse_welcome(f.payload)
                    # the roster starts here, in frame order: a PEER_JOINED processed before
                    # _open() resumes must not be overwritten by the older welcome roster
                    self.roster = {p.id: p for p in welcome.roster}
                    proto.welcome.set_result(welcome)
            elif t == P.PEER_JOINED:
                peer = P.parse_peer_joined(f.payload)
                self.roster[peer.id] = peer
                self._emit(PeerJoined(peer))
            elif t == P.PEER_LEFT:
                left = P.parse_peer_left(f.payload)
                self.roster.pop(left.id, None)
                self._peer_clocks.pop(left.id, None)
                self._emit(PeerLeft(left.id, left.name, left.reason))
            elif t == P.ERROR:
                info = P.parse_error(f.payload)
                proto.error = info
                self.stats["relay_errors"] += 1
                if proto.welcome.done():
                    self._emit(RelayErrorEvent(info.code, info.text))
            else:
                self.stats["bad_frames"] += 1
        except ProtocolError:
            self.stats["bad_frames"] += 1

    def _on_pong(self, f: Frame) -> None:
        t3 = now_us()
        relay_us, clocks = P.parse_pong(f.payload)
        t0 = f.ts_us
        rtt = t3 - t0
        if 0 <= rtt < 60_000_000:
            self._rtt_us.append(rtt)
            self._clock_samples.append((rtt, relay_us - (t0 + t3) // 2))
        for pid, off, r in clocks:
            if pid != self.my_id:
                self._peer_clocks[pid] = (off, r)

    def _send_ping(self) -> None:
        p = self._proto
        if p is None or p.transport is None or p.transport.is_closing():
            return
        off = self.clock_offset_us
        rtt = min(self._clock_samples)[0] if self._clock_samples else None
        self._ping_seq = (self._ping_seq + 1) & 0xFFFFFFFF
        p.enqueue(P.PING, 0, P.serialize(Frame(P.PING, P.encode_ping(off, rtt), seq=self._ping_seq,
                                               ts_us=now_us())))

    async def _ping_loop(self) -> None:
        while not self._closed:
            await asyncio.sleep(self.ping_interval_s)
            p = self._proto
            if p is None or not self.connected:
                continue
            if time.monotonic() - p.last_rx_s > self.dead_after_s:
                p.error = P.ErrorInfo(P.E_TIMEOUT, f"no data from relay for {self.dead_after_s:g} s")
                p.transport.abort()
                continue
            self._send_ping()

    def _on_lost(self, proto: _ClientProtocol, exc) -> None:
        if proto is not self._proto or self._closed or not proto.welcome.done() or proto.welcome.exception():
            return
        if proto.error is not None:
            reason = proto.error.text
        elif exc is not None:
            reason = _reason(exc)
        else:
            reason = "relay closed the connection"
        if self.reconnect:
            self._reconnect_task = self._loop.create_task(self._reconnect_loop(reason))
        else:
            self._finish(reason)

    async def _reconnect_loop(self, reason: str) -> None:
        t0 = time.monotonic()
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
            try:
                welcome = await self._open()
            except (RelayUnreachable, JoinRefused) as exc:
                reason = str(exc)
                if len(self.relays) == 1 or self._relay_index == 0:
                    delay = min(delay * 2, self.backoff_max_s)
                continue
            self.stats["reconnects"] += 1
            if welcome.resumed and welcome.id == old_id:
                self.stats["resumes"] += 1
                self._emit(Resumed(welcome, time.monotonic() - t0, attempt, f"{self.host}:{self.port}"))
                now = {p.id for p in welcome.roster}
                for peer in old:
                    if peer.id not in now:
                        self._emit(PeerLeft(peer.id, peer.name, "left while reconnecting"))
                before = {p.id for p in old}
                for peer in welcome.roster:
                    if peer.id not in before:
                        self._emit(PeerJoined(peer))
                return
            for peer in old:
                self._emit(PeerLeft(peer.id, peer.name, "reconnect"))
            self._emit(Reconnected(welcome, time.monotonic() - t0, attempt))
            for peer in welcome.roster:
                self._emit(PeerJoined(peer))
            return

    def _finish(self, reason: str) -> None:
        if self._final:
            return
        self._closed = True
        self._final = True
        self._emit(Closed(reason))
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)
