"""The relay's QUIC listener (aioquic), a thin adapter beside the TCP one in s2c.relay.server.

Owns: the UDP socket and QUIC connections on the same port number as TCP, the self-signed TLS
certificate made at start (in memory: s2c's end-to-end encryption does not rely on TLS, see
docs/security.md), one relay-core connection per QUIC connection (opened when the client's
first bidirectional stream brings bytes), the datagram path of each (s2c.wire.datagrams: video
fragments, NACK repair, audio redundancy) and its writability (aioquic's unsent bytes and the
backlog in flight, limited by the core's per-receiver delivery-rate figures, as TCP's socket is).
A peer whose process died (its host answers with ICMP port unreachable) is dropped as a TCP reset
is: s2c.relay.quic_dead watches for it (the UDP socket is bound with SO_REUSEPORT for that).
Must not: make room/queue decisions (s2c.relay.core's) or look inside payloads.

Each QUIC connection looks to s2c.relay.server.RelayServer like a TCP transport (``_Shim``:
write/close/abort/is_closing), so the server's flush loop is unchanged: ``write(data)`` splits the
core's frames into the reliable stream (control, CHAT, KEY, STATE, REFRESH) and datagrams
(VIDEO, AUDIO). Datagrams in are reassembled, de-duplicated and fed with ``Relay.receive_frame``.
"""

from __future__ import annotations

import asyncio
import datetime
import socket

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import QuicServer
from aioquic.quic import events
from aioquic.quic.configuration import QuicConfiguration

from .. import wire as P
from ..clock import now_ms, now_us
from ..quic_common import (ALPN, ack_with_data, CONGESTION_CONTROL, backlog_bytes, min_rtt_ms, repair_timing,
                           send_media_datagram, tune, tune_redundancy, unsent_bytes)
from ..wire.datagrams import NACK, DatagramReceiver, DatagramSender, split_media
from ..wire.fec import LossMeter
from .. import quic_trace as QT
from .quic_dead import DeadWatch, open_udp_socket

HIGH_WATER_BYTES = 16 * 1024   # unsent in aioquic before the first rate sample (then the core's lowat)
POLL_S = 0.01
PACE_EVERY_US = 250_000        # as the TCP adapter's tick: report the backlog to the core's pacing
MAX_DATAGRAM_FRAME = 65536


def self_signed(host: str = "s2c-relay"):
    """A fresh EC P-256 key and a self-signed certificate for it (in memory, valid 30 days)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=30)).sign(key, hashes.SHA256()))
    return cert, key


class _Shim:
    """What RelayServer sees of a QUIC connection (the asyncio.Transport calls it makes)."""

    def __init__(self, proto: "_RelayQuic"):
        self.p = proto

    def write(self, data: bytes) -> None:
        self.p.send_frames(data)

    def close(self) -> None:
        self.p.end(abort=False)

    def abort(self) -> None:
        self.p.end(abort=True)

    def is_closing(self) -> bool:
        return self.p.ended

    def get_write_buffer_size(self) -> int:
        return unsent_bytes(self.p._quic, self.p.stream_id)


class _RelayQuic(QuicConnectionProtocol):
    def __init__(self, *args, owner: "QuicListener", **kw):
        super().__init__(*args, **kw)
        tune(self._quic)
        self.owner = owner
        self.srv = owner.srv
        self.cid: int | None = None
        self.stream_id: int | None = None
        self.ended = False
        self.writable = True
        self.high_water = HIGH_WATER_BYTES   # unsent bytes aioquic may hold (the core's lowat)
        self.window: int | None = None       # backlog (in flight + unsent) allowed (the core's sndbuf)
        self.handed_bytes = 0                # s2c frame bytes the core gave us (its units)
        self.slow = False                    # its delivery rate limits it: no redundancy
        self.tx = DatagramSender()
        self.loss = LossMeter()
        self.rx = DatagramReceiver(self.srv.relay.config.max_frame_bytes)
        if QT.on():
            self.rx.trace = []
        self._tx_soon = False
        self.dead: DeadWatch | None = None   # port-unreachable watch (s2c.relay.quic_dead)

    # ---- events in ----------------------------------------------------------------------------
    def datagram_received(self, data, addr) -> None:
        # as aioquic's, but one transmit per loop turn for the packets that arrived in it (aioquic
        # transmits after each one: a packet build attempt and a timer re-armed per packet)
        if self.dead is not None:
            self.dead.heard(now_ms())
        self._quic.receive_datagram(data, addr, now=self._loop.time())
        self._process_events()
        self._transmit_soon()

    def quic_event_received(self, ev) -> None:
        srv = self.srv
        try:
            if isinstance(ev, events.StreamDataReceived):
                self._stream_data(ev)
            elif isinstance(ev, events.DatagramFrameReceived):
                self._datagram(ev.data)
            elif isinstance(ev, events.ConnectionTerminated):
                self._gone()
        except Exception as exc:  # noqa: BLE001 - a relay bug costs one connection, logged once
            if self.cid is not None:
                srv.internal_error(self.cid, exc)
        srv.kick()

    def _stream_data(self, ev) -> None:
        if self.stream_id is None:
            if ev.stream_id % 4 != 0:   # only a client-initiated bidirectional stream carries s2c
                return
            self.stream_id = ev.stream_id
            addr = self._quic._network_paths[0].addr if self._quic._network_paths else ("?",)
            cid = self.srv.relay.open(str(addr[0]).removeprefix("::ffff:"), now_ms())
            if cid is None:
                self.end(abort=True)
                return
            self.cid = cid
            self.srv.transports[cid] = _Shim(self)
            self.dead = self.owner.watch()
            self.owner.conns.add(self)
        if ev.stream_id != self.stream_id or self.cid is None:
            return
        if ev.data:
            self.srv.relay.receive_data(self.cid, ev.data, now_ms())
        if ev.end_stream:
            self.srv.relay.eof_received(self.cid, now_ms())

    def _datagram(self, data: bytes) -> None:
        if self.cid is None:
            return
        t = now_us()
        if data[:1] == bytes((NACK,)):
            rep = self.tx.on_nack(data, t)
            if QT.on():
                QT.note("r_repair", cid=self.cid, e=QT.nack_entries(data), n=len(rep))
            for d in rep:
                send_media_datagram(self._quic, d, True)   # a repair unblocks a held picture
            self._transmit_soon()
            return
        relay = self.srv.relay
        for f in self.rx.receive(data, t):
            QT.ev("r_in", f, cid=self.cid)
            relay.receive_frame(self.cid, f, now_ms())
        if self.rx.trace:
            QT.msgs("r_msg", self.rx, cid=self.cid)

    def _gone(self) -> None:
        self.ended = True
        if self.dead is not None:
            self.dead.close()
        self.owner.conns.discard(self)
        if self.cid is not None:
            cid, self.cid = self.cid, None
            self.srv.transports.pop(cid, None)
            self.srv.relay.connection_lost(cid, now_ms())

    # ---- out -----------------------------------------------------------------------------------
    def send_frames(self, data: bytes) -> None:
        if self.ended or self.stream_id is None:
            return
        self.handed_bytes += len(data)
        stream, media = split_media(data)
        quic = self._quic
        if stream:
            quic.send_stream_data(self.stream_id, stream)
        t = now_us()
        for f in media:
            audio = f[1] == P.AUDIO
            QT.ev("r_out", f, cid=self.cid, pend=len(quic._datagrams_pending), fl=quic._loss.bytes_in_flight,
                  cw=quic._loss._cc.congestion_window)
            for d in self.tx.pack(f, t):
                send_media_datagram(quic, d, audio)
        for d in self.tx.end_batch():   # the parity of this batch's fragments, right behind them
            send_media_datagram(quic, d, False)
        # send at once (as a TCP write reaches the kernel at once): what the congestion window
        # holds back is then what counts against our limits, not the burst just handed over
        self.transmit()
        if QT.on():
            QT.ev("r_tx", b"\x01" * 24, cid=self.cid, pend=len(quic._datagrams_pending))

    def _transmit_soon(self) -> None:
        if not self._tx_soon:
            self._tx_soon = True
            self._loop.call_soon(self.transmit)

    def transmit(self) -> None:
        self._tx_soon = False
        if self._transport is None:
            return
        ack_with_data(self._quic)
        super().transmit()
        self._check_writable()

    def _check_writable(self) -> None:
        """Congestion-aware back-pressure, as TCP's: unwritable while aioquic holds more than
        ``high_water`` unsent or the backlog (in flight too) exceeds ``window``; then the
        core's per-receiver queue (bounded in time, chain-aware) holds and drops whole frames,
        so a slow path never queues seconds of datagrams below it."""
        if self.cid is None:
            return
        quic = self._quic
        n = unsent_bytes(quic, self.stream_id)
        w = self.window
        b = 0 if w is None else backlog_bytes(quic, self.stream_id, self.handed_bytes)
        if self.writable and (n > self.high_water or (w is not None and b > w)):
            self.writable = False
            self.srv.relay.set_writable(self.cid, False, now_ms())
        elif not self.writable and n <= self.high_water // 4 and (w is None or b <= w * 3 // 4):
            self.writable = True
            self.srv.relay.set_writable(self.cid, True, now_ms())
            self.srv.kick()

    def pace(self, t_us: int, backlogged: set) -> None:
        """Every PACE_EVERY_US (the listener's poll): the backlog to the core (it measures this receiver's delivery
        rate and sizes its queue), and the core's lowat / sndbuf figures back as our limits."""
        if self.cid is None:
            return
        quic = self._quic
        b = backlog_bytes(quic, self.stream_id, self.handed_bytes)
        if b < 2048 and self.cid not in backlogged:
            return
        lowat, sndbuf = self.srv.relay.report_unsent(self.cid, b, t_us / 1000.0, min_rtt_ms(quic))
        if lowat:
            self.high_water = lowat
        # no sndbuf (fast or unmeasured path): aioquic's congestion window alone limits the flight;
        # else twice it, as Linux doubles SO_SNDBUF (at 150 ms RTT one window is a min RTT + 100 ms
        # of media: a keyframe on top of what is in flight would wait a round trip, audio with it)
        self.window = None if sndbuf is None else max(2 * sndbuf, 2 * quic._max_datagram_size)
        # a slow receiver's in-flight gate, as over TCP (s2c.relay.gate): QUIC's bytes in flight
        # are the bytes still on the path, so the link's queue stays ~a min RTT + 30 ms of media
        # and audio waits in the core's priority queue instead of behind video on the link
        gate = self.srv.relay.gate_bytes(self.cid)
        if gate is not None:
            self.window = max(gate, 2 * quic._max_datagram_size)
        # rate-limited (not merely measured): backlogged in most of the last reports (~2 s)
        c = self.srv.relay.conns.get(self.cid)
        q = c.pace.queued if c is not None else ()
        self.slow = self.window is not None and sum(q) * 2 > len(q)
        self._check_writable()

    def end(self, abort: bool) -> None:
        if self.ended:
            return
        if not abort and self.stream_id is not None:
            self._quic.send_stream_data(self.stream_id, b"", end_stream=True)
            self.transmit()
            # give the FIN (and an ERROR before it) a moment to go out before the CONNECTION_CLOSE
            self._loop.call_later(0.2, self._close_now)
            self.ended = True
            return
        self._close_now()

    def _peer_addr(self):
        paths = self._quic._network_paths
        return paths[0].addr if paths else None

    def _close_now(self) -> None:
        self.ended = True
        try:
            self.close()
        except Exception:  # noqa: BLE001 - closing a half-dead connection may fail; it is gone anyway
            pass
        self._gone()

    def poll(self) -> None:
        """Deadlines and NACKs of the receiving side (every POLL_S)."""
        if self.cid is None:
            return
        if self.dead is not None and self.dead.poll(self._peer_addr(), now_ms()):
            self.owner.peer_dead(self)
            return
        self.rx.deadline_us, self.rx.nack_retry_us = repair_timing(self._quic)
        t = now_us()
        # a receiver whose delivery rate limits it gets no redundancy (it would crowd out media)
        for d in tune_redundancy(self._quic, self.tx, self.loss, self.slow, t):
            send_media_datagram(self._quic, d, False)
            self._transmit_soon()
        frames, nack = self.rx.poll(t)
        for f in frames:
            self.srv.relay.receive_frame(self.cid, f, now_ms())
        if self.rx.trace:
            QT.msgs("r_msg", self.rx, cid=self.cid)
        if nack is not None:
            if QT.on():
                QT.note("r_nack", cid=self.cid, e=QT.nack_entries(nack))
            send_media_datagram(self._quic, nack, True)
            self._transmit_soon()
        if frames:
            self.srv.kick()


class QuicListener:
    """``await QuicListener(srv).start(host, port)`` serves QUIC for the RelayServer ``srv``."""

    def __init__(self, srv):
        self.srv = srv
        self.server: QuicServer | None = None
        self.conns: set[_RelayQuic] = set()
        self.sock = None
        self.local = None
        self.v6only = False
        self._poll_handle = None
        self._paced_us = 0

    async def start(self, host: str, port: int) -> None:
        cert, key = self_signed()
        cfg = QuicConfiguration(is_client=False, alpn_protocols=[ALPN], max_datagram_frame_size=MAX_DATAGRAM_FRAME,
                                idle_timeout=20.0, congestion_control_algorithm=CONGESTION_CONTROL)
        cfg.certificate, cfg.private_key = cert, key
        # SO_REUSEPORT, so a dead peer's watch (s2c.relay.quic_dead) can bind a twin to this port
        self.sock = open_udp_socket(host, port)
        self.local = self.sock.getsockname()
        self.v6only = (self.sock.family == socket.AF_INET6
                       and bool(self.sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)))
        _, self.server = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: QuicServer(configuration=cfg, create_protocol=lambda *a, **kw: _RelayQuic(*a, owner=self, **kw)),
            sock=self.sock)
        self._poll_handle = asyncio.get_running_loop().call_later(POLL_S, self._poll)

    def _poll(self) -> None:
        t = now_us()
        backlogged = None
        if t - self._paced_us >= PACE_EVERY_US:
            self._paced_us = t
            backlogged = set(self.srv.relay.backlogged())
        for c in list(self.conns):
            try:
                c.poll()
                if backlogged is not None:
                    c.pace(t, backlogged)
            except Exception as exc:  # noqa: BLE001 - one connection's bug must not stop the others
                if c.cid is not None:
                    self.srv.internal_error(c.cid, exc)
        self._poll_handle = asyncio.get_running_loop().call_later(POLL_S, self._poll)

    def watch(self) -> DeadWatch:
        return DeadWatch(self.server, self.sock.family, self.local, now_ms(), self.v6only)

    def peer_dead(self, c: _RelayQuic) -> None:
        """Its host answers our datagrams with port unreachable (twice, >= 100 ms apart, silent
        between): as a TCP reset -- the core's connection_lost (it lingers "disconnected"), dropped."""
        self.srv.relay.totals["quic_unreachable"] += 1
        addr = c._peer_addr()
        self.srv.log("info", "quic_unreachable", id=c.cid, addr=addr[0] if addr else "?", hits=c.dead.hits)
        c._close_now()

    def close(self) -> None:
        if self._poll_handle is not None:
            self._poll_handle.cancel()
        for c in list(self.conns):
            c._close_now()
        if self.server is not None:
            self.server.close()


__all__ = ["QuicListener", "ALPN", "self_signed", "unsent_bytes"]
