"""The asyncio protocol of one TCP connection to the relay.

Owns: socket options (TCP_NODELAY, TCP_NOTSENT_LOWAT and the write-buffer limits, both small and
sized by the sender's pacer so that audio and control wait in our own priority queue, not
behind video in the kernel), parsing what arrives into frames and handing them to the
RelayConnection, coalescing writes (one write per loop iteration), the send queue under
backpressure (s2c.wire.queues.MediaQueue: control, then audio, then video; a picture chain is
never broken by replacing a queued delta), the in-flight gate of a slow uplink (write more only
while the kernel holds less than the pacer's gate, polled every GATE_POLL_S) and the backlog figure (queues, transport buffer and
the kernel's unacknowledged bytes, s2c.tcpsock) with the kernel's min RTT. Must not: interpret
frames, reconnect or keep call state.
"""

from __future__ import annotations

import asyncio
import errno

from .. import wire as P
from ..clock import now_s
from ..errors import JoinRefused, ProtocolError
from ..tcpsock import min_rtt_ms, path_bytes, set_notsent_lowat, unacked_bytes
from ..wire.queues import MediaQueue

LOWAT_BYTES = 16 * 1024   # unsent bytes the kernel may hold before the pacer measured the uplink
GATE_POLL_S = 0.004       # a gated socket (s2c.call.pacing.UplinkPacer.gate_bytes) is looked at this often


def reason_of(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError) or getattr(exc, "errno", None) == errno.ECONNREFUSED:
        return "connection refused"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


class RelayProtocol(asyncio.Protocol):
    """One TCP connection to the relay (a RelayConnection makes a new one per (re)connect)."""

    def __init__(self, owner):
        self.owner = owner
        self.transport = None
        self.parser = P.FrameParser(owner.max_frame_bytes)
        self.welcome: asyncio.Future = owner.loop.create_future()
        self.lost: asyncio.Future = owner.loop.create_future()
        self.writable = True
        self.pending: list[bytes] = []
        self.flush_scheduled = False
        self.q = MediaQueue(owner.max_send_frames, owner.max_send_frames)
        self.last_rx_s = now_s()
        self.error: P.ErrorInfo | None = None
        self.sock_fd: int | None = None
        self.sock = None
        self.gate: int | None = None   # in-flight gate of a slow uplink (s2c.call.pacing), bytes
        self.gated = False
        self._gate_handle = None

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
            self.sock = sock
        self.set_lowat(LOWAT_BYTES)

    def set_lowat(self, nbytes: int) -> None:
        """At most ``nbytes`` unsent in the kernel and in the transport's buffer; the rest waits
        in our queue (control, then audio, then video)."""
        set_notsent_lowat(self.sock, nbytes)
        if self.transport is not None:
            self.transport.set_write_buffer_limits(high=nbytes, low=nbytes // 4)

    def set_gate(self, nbytes: int | None) -> None:
        """Write more only while the kernel holds (in flight + unsent) less than ``nbytes``
        (None: no gate): the rest waits in our queue, audio and control first."""
        self.gate = nbytes
        if nbytes is None and self.gated:
            self.gated = False
            self._drain()

    def _check_gate(self) -> None:
        if self.gate is not None and not self.gated and path_bytes(self.sock_fd, self.sock) >= self.gate:
            self.gated = True
            if self._gate_handle is None:
                self._gate_handle = self.owner.loop.call_later(GATE_POLL_S, self._gate_poll)

    def _gate_poll(self) -> None:
        self._gate_handle = None
        if not self.gated or self.transport is None or self.transport.is_closing():
            self.gated = False
            return
        if self.gate is None or path_bytes(self.sock_fd, self.sock) < self.gate:
            self.gated = False
            self._drain()
        else:
            self._gate_handle = self.owner.loop.call_later(GATE_POLL_S, self._gate_poll)

    def data_received(self, data: bytes) -> None:
        self.last_rx_s = now_s()
        parser = self.parser
        owner = self.owner
        try:
            parser.receive_data(data)
            while True:
                f = parser.next_frame()
                if f is None:
                    break
                owner.frame_received(self, f)
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
        self.owner.lost_connection(self, exc)

    # sending
    def enqueue(self, ftype: int, stream: int, data: bytes) -> None:
        if self.writable and not self.gated and not self.q and len(self.pending) < self.owner.max_send_frames:
            self.pending.append(data)
            if not self.flush_scheduled:
                self.flush_scheduled = True
                self.owner.loop.call_soon(self._flush)
            return
        drops = self.owner.drops
        before = drops.total
        self.q.push(ftype, stream, data, drops, ftype == P.VIDEO and bool(data[P.FLAGS_OFFSET] & P.FLAG_KEYFRAME))
        self.owner.stats["send_dropped"] += drops.total - before

    def _flush(self) -> None:
        self.flush_scheduled = False
        if self.pending and self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(self.pending))
            self._check_gate()
        self.pending.clear()
        self._drain()

    def _drain(self) -> None:
        t = self.transport
        if t is None or t.is_closing():
            return
        while self.writable and not self.gated and self.q:
            parts: list[bytes] = []
            self.q.drain(1 << 62 if self.gate is None else self.gate, parts)
            t.write(b"".join(parts))
            self._check_gate()

    def min_rtt_ms(self) -> float | None:
        return min_rtt_ms(self.sock)

    def backlog_bytes(self) -> int:
        """This side's queues, the transport's buffer and (Linux) the kernel's send queue: bytes
        in flight or unsent, not yet acknowledged (SIOCOUTQ): on a slow link with a deep
        bottleneck buffer the standing queue is in flight."""
        if self.transport is None:
            return 0
        n = sum(len(x) for x in self.pending) + self.q.nbytes
        try:
            n += self.transport.get_write_buffer_size()
        except (AttributeError, RuntimeError):
            pass
        return n + unacked_bytes(self.sock_fd)
