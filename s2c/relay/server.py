"""``s2c-server``: the relay process, a thin uvloop/asyncio adapter around ``s2c.relay.core``.

Owns: sockets (asyncio.Protocol per connection, TCP_NODELAY, TCP_NOTSENT_LOWAT and write-buffer
limits and, for slow receivers, SO_SNDBUF and the in-flight gate (s2c.relay.gate) sized from the
core's delivery-rate estimate;
unacknowledged-byte figures (SIOCOUTQ) and min RTT (TCP_INFO) for backlogged receivers;
pause/resume), the clock, coalesced writes (one write per connection per loop iteration),
signals, logging, stats lines and the command line. Must not: make room/queue decisions
(those are s2c.relay.core's) or look inside payloads.

Ready line on stdout (flushed): ``s2c-server listening on HOST:PORT`` (the real port with -p 0).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys

from .. import wire as P
from ..clock import now_ms, now_s
from ..errors import ConfigError
from ..tcpsock import min_rtt_ms, set_notsent_lowat as _set_lowat, unacked_bytes
from .core import Relay, RelayConfig
from .gate import InflightGate
from .stats import _Log, _stats_loop_factory

HIGH_WATER_BYTES = 16 * 1024   # the transport's buffer; the core's queue holds the rest (in time)
LOW_WATER_BYTES = 4 * 1024
NOTSENT_LOWAT_BYTES = 16 * 1024  # the kernel's unsent bytes per socket (adapted per receiver)
TICK_S = 0.25


def unsent_bytes(transport, fd: int | None) -> int:
    """Bytes written to ``transport`` that the receiver has not acknowledged yet: its buffer
    plus (Linux) the kernel's send queue, in flight or unsent."""
    return transport.get_write_buffer_size() + unacked_bytes(fd)


class _ConnProtocol(asyncio.Protocol):
    __slots__ = ("srv", "cid", "transport", "sock", "fd", "lowat", "sndbuf", "gate", "paused")

    def __init__(self, srv: "RelayServer"):
        self.srv = srv
        self.cid = None
        self.transport = None
        self.sock = None
        self.fd = None
        self.lowat = NOTSENT_LOWAT_BYTES
        self.sndbuf = None
        self.gate = None      # in-flight gate bytes of a slow receiver (s2c.relay.gate)
        self.paused = False   # the transport's own pause_writing

    def connection_made(self, transport) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.fd = sock.fileno()
            except (OSError, ValueError):
                pass
            self.sock = sock
            _set_lowat(sock, self.lowat)
        transport.set_write_buffer_limits(high=HIGH_WATER_BYTES, low=LOW_WATER_BYTES)
        peer = transport.get_extra_info("peername")
        addr = str(peer[0]) if peer else "?"
        srv = self.srv
        cid = srv.relay.open(addr, now_ms())
        if cid is None:
            transport.abort()
            return
        self.cid = cid
        srv.transports[cid] = transport
        srv.protocols[cid] = self
        srv.kick()

    def data_received(self, data: bytes) -> None:
        srv = self.srv
        try:
            srv.relay.receive_data(self.cid, data, now_ms())
        except Exception as exc:  # noqa: BLE001 - a relay bug must cost one connection, logged once
            srv.internal_error(self.cid, exc)
        if not srv.flush_pending:
            srv.flush_pending = True
            srv.loop.call_soon(srv.flush)

    def eof_received(self):
        self.srv.relay.eof_received(self.cid, now_ms())
        self.srv.kick()
        return True  # keep the write side open so an ERROR can still go out

    def pause_writing(self) -> None:
        self.paused = True
        self.srv.relay.set_writable(self.cid, False, now_ms())

    def resume_writing(self) -> None:
        self.paused = False
        if not self.srv.gate.holds(self.cid):
            self.srv.relay.set_writable(self.cid, True, now_ms())
            self.srv.kick()

    def connection_lost(self, exc) -> None:
        srv = self.srv
        if self.cid is None:
            return
        srv.transports.pop(self.cid, None)
        srv.protocols.pop(self.cid, None)
        srv._logged_errors.discard(self.cid)
        srv.relay.connection_lost(self.cid, now_ms())
        srv.kick()


class RelayServer:
    """The asyncio side: owns the listening socket and the transports."""

    def __init__(self, config: RelayConfig, log: _Log | None = None):
        self.relay = Relay(config)
        self.transports: dict[int, asyncio.Transport] = {}
        self.protocols: dict[int, _ConnProtocol] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.server: asyncio.AbstractServer | None = None
        self.flush_pending = False
        self.log = log or _Log("text")
        self._tick_handle = None
        self._hold_at_ms: float | None = None   # a flush is scheduled then for held audio
        self._logged_errors: set[int] = set()
        self.cluster = None  # s2c.relay.cluster.ClusterLink when --cluster is given
        self.gate = InflightGate(self)

    async def start(self, host: str, port: int) -> int:
        self.loop = asyncio.get_running_loop()
        self.server = await self.loop.create_server(
            lambda: _ConnProtocol(self), host, port, reuse_address=True, backlog=512)
        self._tick_handle = self.loop.call_later(TICK_S, self._tick)
        return self.server.sockets[0].getsockname()[1]

    def internal_error(self, cid: int, exc: BaseException) -> None:
        """The relay core raised on this connection's bytes: answer it with an ERROR, close it,
        log once per connection (not once per frame)."""
        if cid not in self._logged_errors:
            self._logged_errors.add(cid)
            self.log("error", "internal_error", conn=cid, error=f"{type(exc).__name__}: {str(exc)[:200]}")
        t = self.transports.get(cid)
        if t is not None and not t.is_closing():
            t.write(P.serialize(P.Frame(P.ERROR, P.encode_error(P.E_BAD_CONTROL, "frame could not be handled"))))
            t.close()
        self.relay.connection_lost(cid, now_ms())
        self.kick()

    def kick(self) -> None:
        if not self.flush_pending:
            self.flush_pending = True
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write everything the relay has ready: one write per connection per pass."""
        self.flush_pending = False
        relay = self.relay
        transports = self.transports
        if self.cluster is not None:
            self.cluster.drain()
        relay.release_held(now_ms())
        for _ in range(64):  # bounded passes; more work re-schedules itself
            for cid in relay.pop_dirty():
                t = transports.get(cid)
                if t is None:
                    relay.data_to_send(cid)
                    continue
                data = relay.data_to_send(cid)
                if data:
                    t.write(data)
                    self.gate.after_write(cid, self.protocols.get(cid))
            closing = relay.pop_closing()
            for cid, abort in closing:
                t = transports.get(cid)
                if t is None:
                    continue
                if abort:
                    t.abort()
                else:
                    data = relay.data_to_send(cid)
                    if data:
                        t.write(data)
                    t.close()
            if not relay.has_output():
                break
        else:
            self.kick()
        self._schedule_held()

    def _schedule_held(self) -> None:
        """Held audio (s2c.relay.coalesce) gets a flush at its due time."""
        due = self.relay.next_hold_ms()
        if due is None or (self._hold_at_ms is not None and self._hold_at_ms <= due):
            return
        self._hold_at_ms = due
        self.loop.call_later(max(0.0, due - now_ms()) / 1000.0, self._held_due, due)

    def _held_due(self, due: float) -> None:
        if self._hold_at_ms == due:
            self._hold_at_ms = None
        self.flush()

    def _tick(self) -> None:
        now = now_ms()
        self.relay.tick(now)
        self._pace(now)
        self.flush()
        self._tick_handle = self.loop.call_later(TICK_S, self._tick)

    def _pace(self, now: float) -> None:
        """Backlogged receivers: tell the core what is still unsent (it measures their delivery
        rate and sizes their queue from it) and size the kernel's and transport's buffers to it."""
        relay = self.relay
        backlogged = set(relay.backlogged())
        for cid, proto in list(self.protocols.items()):
            t = self.transports.get(cid)
            if t is None or t.is_closing():
                continue
            unsent = unsent_bytes(t, proto.fd)
            if not unsent and cid not in backlogged:
                continue
            lowat, sndbuf = relay.report_unsent(cid, unsent, now, min_rtt_ms(proto.sock))
            proto.gate = relay.gate_bytes(cid)
            if sndbuf is not None and (proto.sndbuf is None or abs(sndbuf - proto.sndbuf) > proto.sndbuf // 4):
                proto.sndbuf = sndbuf
                try:
                    proto.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
                except (OSError, AttributeError):
                    pass
            if lowat and lowat != proto.lowat:
                proto.lowat = lowat
                _set_lowat(proto.sock, lowat)
                t.set_write_buffer_limits(high=min(HIGH_WATER_BYTES, lowat), low=min(LOW_WATER_BYTES, lowat // 4))

    async def shutdown(self, grace_s: float = 1.0) -> None:
        if self.server is not None:
            self.server.close()
        self.relay.shutdown(now_ms())
        self.flush()
        deadline = now_s() + grace_s
        while self.transports and now_s() < deadline:
            await asyncio.sleep(0.02)
        for t in list(self.transports.values()):
            t.abort()
        self.gate.close()
        if self._tick_handle is not None:
            self._tick_handle.cancel()


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="s2c-server", description="s2c relay: forwards end-to-end "
                                 "encrypted media between the participants of named sessions")
    d = RelayConfig()
    ap.add_argument("-H", "--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    ap.add_argument("-p", "--port", type=int, default=1122, help="TCP port (default 1122; 0 = any free port)")
    ap.add_argument("--log-format", choices=("text", "json"), default="text")
    ap.add_argument("--stats-interval", type=float, default=0.0, metavar="S",
                    help="log per-room stats every S seconds (0 = off)")
    ap.add_argument("--max-participants", type=int, default=d.max_participants, help="per session")
    ap.add_argument("--max-frame-bytes", type=int, default=d.max_frame_bytes, help="header included")
    ap.add_argument("--max-fps", type=int, default=d.max_fps, help="frames/s accepted per client (0 = no limit)")
    ap.add_argument("--max-conns-per-ip", type=int, default=d.max_conns_per_ip, help="0 = no limit")
    ap.add_argument("--max-connections", type=int, default=d.max_connections,
                    help="connections from all addresses together (0 = no limit)")
    ap.add_argument("--max-rooms", type=int, default=d.max_rooms, help="sessions at once (0 = no limit)")
    ap.add_argument("--max-joins-per-s", type=int, default=d.max_joins_per_s,
                    help="JOINs accepted per second from all clients together (0 = no limit)")
    ap.add_argument("--stall-timeout-s", type=float, default=d.stall_timeout_ms / 1000,
                    help="disconnect a client that has not read for this long")
    ap.add_argument("--silence-timeout-s", type=float, default=d.silence_timeout_ms / 1000,
                    help="a client that sent nothing for this long is gone")
    ap.add_argument("--audio-hold-ms", type=float, default=d.audio_hold_ms, metavar="MS",
                    help="a lone audio frame may wait up to this (e.g. 8) for others to share its write: "
                         "fewer TCP/IP headers into 4-party receivers at that much more audio delay "
                         "(default 0 = off; docs/network.md)")
    ap.add_argument("--no-quic", action="store_true",
                    help="serve TCP only (default: QUIC on UDP at the same port number too; s2c.relay.quic)")
    ap.add_argument("--cluster", metavar="nats://HOST:PORT", default=None,
                    help="share rooms with the other relays on this NATS bus (needs nats-py and a "
                         "nats-server with JetStream, -js); see docs/cluster.md")
    ap.add_argument("--node", metavar="NAME", default=None,
                    help="this relay's name in the cluster (unique; default HOSTNAME:PORT)")
    ap.add_argument("--cluster-media", choices=("direct", "nats-py"), default="direct",
                    help="media between relays on a plain NATS connection read and written in the "
                         "relay's loop (direct, default) or through nats-py (for comparison)")
    return ap


def config_from_args(args) -> RelayConfig:
    if args.max_frame_bytes < P.HEADER_BYTES + 1024:
        raise ConfigError(f"--max-frame-bytes {args.max_frame_bytes} is below the minimum "
                         f"{P.HEADER_BYTES + 1024}")
    return RelayConfig(max_participants=args.max_participants, max_frame_bytes=args.max_frame_bytes,
                       max_fps=args.max_fps, max_conns_per_ip=args.max_conns_per_ip,
                       max_connections=args.max_connections, max_rooms=args.max_rooms,
                       max_joins_per_s=args.max_joins_per_s,
                       stall_timeout_ms=args.stall_timeout_s * 1000,
                       silence_timeout_ms=args.silence_timeout_s * 1000,
                       join_timeout_ms=max(args.silence_timeout_s, 1.0) * 1000,
                       audio_hold_ms=min(max(args.audio_hold_ms, 0.0), 20.0))


async def serve(args) -> int:
    log = _Log(args.log_format)
    try:
        config = config_from_args(args)
    except ConfigError as exc:
        print(f"s2c-server: {exc}", file=sys.stderr)
        return 2
    link = None
    if getattr(args, "cluster", None):
        from .cluster import ClusterError, ClusterLink
        node = args.node or f"{socket.gethostname()}:{args.port or os.getpid()}"
        link = ClusterLink(args.cluster, node, log, media=args.cluster_media)
        try:
            config.id_lo, config.id_hi, config.resume_key = await link.start()
        except ClusterError as exc:
            print(f"s2c-server: {exc}", file=sys.stderr)
            return 2
        config.cluster_node = node
    srv = RelayServer(config, log)
    if link is not None:
        await link.attach(srv)
        srv.cluster = link
    try:
        port = await srv.start(args.host, args.port)
    except OSError as exc:
        print(f"s2c-server: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    quic = await _start_quic(srv, args, port, log)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    stats_task = None
    if args.stats_interval and args.stats_interval > 0:
        stats_task = asyncio.ensure_future(_stats_loop_factory(srv, args.stats_interval)())
    print(f"s2c-server listening on {args.host}:{port}", flush=True)
    log("info", "listening", host=args.host, port=port)
    await stop.wait()
    log("info", "shutting_down", connections=len(srv.transports))
    if stats_task:
        stats_task.cancel()
    await srv.shutdown()
    if quic is not None:
        quic.close()
    if link is not None:
        await link.close()
    return 0


async def _start_quic(srv: RelayServer, args, port: int, log):
    """QUIC on UDP ``port`` beside TCP (s2c.relay.quic); a failure leaves TCP serving, logged."""
    if getattr(args, "no_quic", False):
        return None
    try:
        from .quic import QuicListener
        quic = QuicListener(srv)
        await quic.start(args.host, port)
    except (ImportError, OSError) as exc:
        log("warn", "quic_unavailable", error=f"{type(exc).__name__}: {exc}")
        return None
    log("info", "listening_quic", host=args.host, port=port)
    return quic


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        import uvloop
    except ImportError:
        uvloop = None
    if uvloop is not None:
        code = uvloop.run(serve(args))
    else:
        code = asyncio.run(serve(args))
    return code


if __name__ == "__main__":
    sys.exit(main())
