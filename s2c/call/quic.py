"""The QUIC connection to the relay (aioquic): the datagram twin of s2c.call.transport.

Owns: one QUIC connection (UDP, ALPN ``s2c/3``, the relay's certificate not verified: s2c's
security is end to end, docs/security.md), the one reliable stream that carries the same framed
bytes as TCP (JOIN, control, KEY, CHAT, STATE, REFRESH), VIDEO/AUDIO as DATAGRAM frames through
s2c.wire.datagrams (fragments, NACK repair, audio redundancy), and the same surface
RelayConnection uses of RelayProtocol: ``transport`` (write/close/abort/is_closing), ``welcome``,
``lost``, ``error``, ``last_rx_s``, ``enqueue``, ``_flush``, ``backlog_bytes``.
Must not: interpret frames (the RelayConnection does), reconnect, or keep call state.
"""

from __future__ import annotations

import asyncio
import socket
import ssl

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.quic import events
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection

from .. import wire as P
from ..clock import now_s, now_us
from ..quic_common import (ALPN, ack_with_data, CONGESTION_CONTROL, backlog_bytes, min_rtt_ms, repair_timing,
                           send_media_datagram, tune, tune_redundancy, unsent_bytes)
from ..errors import JoinRefused, ProtocolError
from ..wire.datagrams import NACK, DatagramReceiver, DatagramSender
from ..wire.fec import LossMeter
from .. import quic_trace as QT

POLL_S = 0.01
_MEDIA = (P.VIDEO, P.AUDIO)


class _Shim:
    """The ``transport`` RelayConnection writes JOIN/LEAVE to and closes."""

    def __init__(self, owner: "QuicRelayProtocol"):
        self.o = owner

    def write(self, data: bytes) -> None:
        self.o.stream_write(data)

    def close(self) -> None:
        self.o.end(abort=False)

    def abort(self) -> None:
        self.o.end(abort=True)

    def is_closing(self) -> bool:
        return self.o.ended

    def get_write_buffer_size(self) -> int:
        return unsent_bytes(self.o.q_conn._quic, self.o.stream_id)


class _Quic(QuicConnectionProtocol):
    def __init__(self, quic, owner: "QuicRelayProtocol"):
        super().__init__(quic)
        self.owner = owner
        self.udp_error: BaseException | None = None
        # our own: aioquic's wait_connected() misses a handshake completed before it is awaited
        self.handshake: asyncio.Future = asyncio.get_running_loop().create_future()
        self.handshake.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved

    def datagram_received(self, data, addr) -> None:
        # as aioquic's, but one transmit per loop turn for the packets that arrived in it
        self._quic.receive_datagram(data, addr, now=self._loop.time())
        self._process_events()
        o = self.owner
        if o.ended or o.q_conn is None:
            self.transmit()
        else:
            o._transmit_soon()

    def quic_event_received(self, ev) -> None:
        h = self.handshake
        if not h.done():
            if isinstance(ev, events.HandshakeCompleted):
                h.set_result(None)
            elif isinstance(ev, events.ConnectionTerminated):
                why = ev.reason_phrase or "QUIC handshake refused"
                if "ALPN" in why:    # the relay speaks another datagram format (docs/protocol.md)
                    why = (f"its QUIC speaks another version of s2c's datagram format (we offer ALPN "
                           f"{ALPN}: {why}); use --transport tcp or auto, or the same s2c version")
                h.set_exception(ConnectionResetError(why))
        self.owner.event(ev)

    def error_received(self, exc) -> None:   # ICMP port unreachable: nobody serves UDP there
        self.udp_error = exc
        if not self.handshake.done():
            self.handshake.set_exception(exc)


class QuicRelayProtocol:
    """One QUIC connection to the relay; made by ``await open_quic(owner, host, port, timeout)``."""

    def __init__(self, owner):
        self.owner = owner
        loop = owner.loop
        self.welcome: asyncio.Future = loop.create_future()
        self.lost: asyncio.Future = loop.create_future()
        self.parser = P.FrameParser(owner.max_frame_bytes)
        self.transport = _Shim(self)
        self.q_conn: _Quic | None = None
        self.stream_id = 0
        self.ended = False
        self.error: P.ErrorInfo | None = None
        self.last_rx_s = now_s()
        self.tx = DatagramSender()
        self.loss = LossMeter()
        self.rx = DatagramReceiver(owner.max_frame_bytes)
        if QT.on():
            self.rx.trace = []
        self._tx_soon = False
        self.handed_bytes = 0       # s2c frame bytes given to this connection (backlog_bytes' units)
        self._poll = None
        self._stats_us = 0
        self.kind = "quic"

    # ---- QUIC events ------------------------------------------------------------------------------
    def event(self, ev) -> None:
        if isinstance(ev, events.StreamDataReceived):
            self.last_rx_s = now_s()
            if ev.stream_id == self.stream_id and ev.data:
                self._frames_in(ev.data)
            if ev.end_stream:
                self._lost(None)
        elif isinstance(ev, events.DatagramFrameReceived):
            self.last_rx_s = now_s()
            d = ev.data
            t = now_us()
            if d[:1] == bytes((NACK,)):
                rep = self.tx.on_nack(d, t)
                if QT.on():
                    QT.note("c_repair", e=QT.nack_entries(d), n=len(rep))
                for x in rep:
                    send_media_datagram(self.q_conn._quic, x, True)
                self._transmit_soon()
                return
            for f in self.rx.receive(d, t):
                self._frame_bytes_in(f)
        elif isinstance(ev, events.ConnectionTerminated):
            self._lost(ConnectionResetError(ev.reason_phrase or "QUIC connection closed"))

    def _frames_in(self, data: bytes) -> None:
        try:
            self.parser.receive_data(data)
            for f in self.parser.frames():
                self.owner.frame_received(self, f)
        except ProtocolError as exc:
            self.owner.stats["bad_frames"] += 1
            self.error = P.ErrorInfo(exc.code, f"relay sent a malformed frame: {exc}")
            self.end(abort=True)

    def _frame_bytes_in(self, b: bytes) -> None:
        QT.ev("c_in", b)
        if self.rx.trace:
            QT.msgs("c_msg", self.rx)
        _v, t, fl, s, snd, d, q, ts, n = P.HEADER.unpack_from(b)
        self.owner.frame_received(self, P.Frame(t, b[P.HEADER_BYTES:], fl, s, snd, d, q, ts))

    def _tick(self) -> None:
        self._poll = None
        if self.ended:
            return
        quic = self.q_conn._quic
        self.rx.deadline_us, self.rx.nack_retry_us = repair_timing(quic)
        t = now_us()
        for d in tune_redundancy(quic, self.tx, self.loss, False, t):
            send_media_datagram(quic, d, False)
            self._transmit_soon()
        frames, nack = self.rx.poll(t)
        if t - self._stats_us > 1_000_000:
            self._stats_us = t
            st = self.owner.stats
            st.update({f"quic_rx_{k}": v for k, v in self.rx.stats.items()})
            st.update({f"quic_tx_{k}": v for k, v in self.tx.stats.items()})
            st["quic_rtt_ms"] = round(quic._loss._rtt_smoothed * 1000, 1)
            st["quic_cwnd"] = quic._loss._cc.congestion_window
            st["quic_in_flight"] = quic._loss.bytes_in_flight
            st["quic_unsent"] = unsent_bytes(quic, self.stream_id)
            st["quic_backlog"] = self.backlog_bytes()
            st["quic_handed"] = self.handed_bytes
            st["quic_sent_bytes"] = getattr(quic._loss._cc, "bytes_sent", 0)
        for f in frames:
            self._frame_bytes_in(f)
        if nack is not None:
            if QT.on():
                QT.note("c_nack", e=QT.nack_entries(nack))
            send_media_datagram(quic, nack, True)
            self._transmit_soon()
        self._poll = self.owner.loop.call_later(POLL_S, self._tick)

    # ---- sending ----------------------------------------------------------------------------------
    def stream_write(self, data: bytes) -> None:
        if self.ended:
            return
        self.handed_bytes += len(data)
        self.q_conn._quic.send_stream_data(self.stream_id, data)
        self._transmit_soon()

    def enqueue(self, ftype: int, stream: int, data: bytes) -> None:
        if self.ended:
            return
        if ftype in _MEDIA:
            self.handed_bytes += len(data)
            quic = self.q_conn._quic
            QT.ev("c_enq", data, pend=len(quic._datagrams_pending), fl=quic._loss.bytes_in_flight,
                  cw=quic._loss._cc.congestion_window)
            for d in self.tx.pack(data, now_us()):
                send_media_datagram(quic, d, ftype == P.AUDIO)
            self._transmit_soon()
        else:
            self.stream_write(data)

    def _flush(self) -> None:
        if not self.ended and self.q_conn is not None:
            ack_with_data(self.q_conn._quic)
            self.q_conn.transmit()

    def _transmit_soon(self) -> None:
        if not self._tx_soon:
            self._tx_soon = True
            self.owner.loop.call_soon(self._do_transmit)

    def _do_transmit(self) -> None:
        self._tx_soon = False
        if not self.ended and self.q_conn is not None and self.q_conn._transport is not None:
            for d in self.tx.end_batch():   # this turn's frames' parity, right behind them
                send_media_datagram(self.q_conn._quic, d, False)
            ack_with_data(self.q_conn._quic)
            self.q_conn.transmit()
            if QT.on():
                q = self.q_conn._quic
                QT.ev("c_tx", b"\x01" * 24, pend=len(q._datagrams_pending), fl=q._loss.bytes_in_flight)

    def set_lowat(self, nbytes: int) -> None:
        """The pacer's unsent-byte limit is a TCP socket setting; QUIC has no kernel send buffer
        to limit (its own congestion controller paces), so there is nothing to set."""

    def min_rtt_ms(self) -> float | None:
        """The connection's min RTT as QUIC's loss recovery measured it (None before a sample)."""
        return None if self.q_conn is None else min_rtt_ms(self.q_conn._quic)

    def backlog_bytes(self) -> int:
        """As TCP's: bytes not yet delivered — datagrams unsent or in flight, stream bytes not
        acknowledged. The sender's pacer (s2c.call.pacing) measures the uplink on it and skips
        pictures while it exceeds ~100 ms + a min RTT, so the congestion window never fills a
        bottleneck's queue (a 500 ms drop-tail buffer on a 300 kbit/s uplink) with video."""
        if self.q_conn is None or self.ended:
            return 0
        return backlog_bytes(self.q_conn._quic, self.stream_id, self.handed_bytes)

    # ---- ending -----------------------------------------------------------------------------------
    def end(self, abort: bool) -> None:
        if self.ended:
            return
        q = self.q_conn
        if q is not None and not abort:
            q._quic.send_stream_data(self.stream_id, b"", end_stream=True)
            q.transmit()
            self.owner.loop.call_later(0.2, self._close_quic)
        else:
            self._close_quic()
        self.ended = True
        self._lost(None)

    def _close_quic(self) -> None:
        q = self.q_conn
        if q is not None and q._transport is not None:
            try:
                q.close()
            except Exception:  # noqa: BLE001 - the connection may be half gone already
                pass
            q._transport.close()

    def _lost(self, exc) -> None:
        if self.lost.done():
            return
        self.ended = True
        if self._poll is not None:
            self._poll.cancel()
            self._poll = None
        if not self.welcome.done():
            if self.error is not None:
                self.welcome.set_exception(JoinRefused(self.error.text, self.error.code))
            else:
                self.welcome.set_exception(ConnectionResetError("connection closed before welcome"))
            self.welcome.exception()
        self.lost.set_result(None)
        if self.q_conn is not None:
            self.owner.loop.call_later(0.3, self._close_quic)
        self.owner.lost_connection(self, exc)


async def open_quic(owner, host: str, port: int, timeout_s: float) -> QuicRelayProtocol:
    """Handshake with the relay's QUIC listener; raises OSError/asyncio.TimeoutError if UDP gets
    no answer in ``timeout_s`` (or an ICMP error says nobody listens)."""
    loop = owner.loop
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    family, _t, _p, _c, addr = infos[0]
    cfg = QuicConfiguration(is_client=True, alpn_protocols=[ALPN], max_datagram_frame_size=65536,
                            idle_timeout=20.0, verify_mode=ssl.CERT_NONE, server_name=host,
                            congestion_control_algorithm=CONGESTION_CONTROL)
    proto = QuicRelayProtocol(owner)
    conn = QuicConnection(configuration=cfg)
    tune(conn)
    transport, q = await loop.create_datagram_endpoint(
        lambda: _Quic(conn, proto), family=family, remote_addr=addr[:2])
    proto.q_conn = q
    try:
        q.connect(transport.get_extra_info("peername"))
        await asyncio.wait_for(asyncio.shield(q.handshake), timeout_s)
    except BaseException:
        proto.ended = True
        transport.close()
        raise
    proto.stream_id = q._quic.get_next_available_stream_id()
    proto._poll = loop.call_later(POLL_S, proto._tick)
    return proto
