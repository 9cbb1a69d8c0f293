"""Choosing the transport to the relay: ``--transport auto|quic|tcp``.

Owns: making one connection of the chosen kind — TCP (s2c.call.transport.RelayProtocol) or QUIC
(s2c.call.quic.QuicRelayProtocol) — and ``auto``: QUIC first, TCP when UDP gets no answer within
``AUTO_QUIC_WAIT_S`` (or an ICMP error says nobody serves it), or when QUIC's handshake shows a
path shorter than ``AUTO_TCP_BELOW_RTT_MS``; reconnects of the same RelayConnection go straight to
the kind chosen. Must not: join, read frames or
keep call state (s2c.call.connection does).
"""

from __future__ import annotations

import asyncio

from ..errors import LocalError
from .transport import RelayProtocol

TRANSPORTS = ("auto", "quic", "tcp")
AUTO_QUIC_WAIT_S = 1.0
#: ``auto`` on a path this short goes on over TCP: there a lost segment's recovery costs less
#: than a round trip of ~this, while QUIC's per-packet CPU (aioquic is Python) costs every picture
#: a few ms at each hop (LAN, same-run: video p50 3 ms over TCP, 6-9 over QUIC). On longer paths
#: TCP's head-of-line recovery is what freezes pictures, and QUIC's parity and repair are worth it.
AUTO_TCP_BELOW_RTT_MS = 20.0


async def _tcp(owner, host: str, port: int, timeout_s: float):
    _t, proto = await asyncio.wait_for(
        owner.loop.create_connection(lambda: RelayProtocol(owner), host, port), timeout_s)
    proto.kind = "tcp"
    return proto


async def _quic(owner, host: str, port: int, timeout_s: float):
    try:
        from .quic import open_quic
    except ImportError as exc:
        raise OSError(f"QUIC needs aioquic ({exc})") from None
    return await open_quic(owner, host, port, timeout_s)


async def _short_path_tcp(owner, quic_proto, host: str, port: int, timeout_s: float):
    """``auto`` after QUIC's handshake: on a path shorter than AUTO_TCP_BELOW_RTT_MS, TCP instead
    (the QUIC connection, not joined yet, is closed); else the QUIC connection. Reconnects keep
    the choice (one made during an outage would be a guess); ``owner.auto_rtt_ms`` keeps the
    handshake's RTT."""
    rtt = quic_proto.min_rtt_ms()
    owner.auto_rtt_ms = None if rtt is None else round(rtt, 2)
    owner._auto_kind = "quic"
    if rtt is None or rtt >= AUTO_TCP_BELOW_RTT_MS:
        return quic_proto
    try:
        proto = await _tcp(owner, host, port, timeout_s)
    except (OSError, asyncio.TimeoutError, ConnectionError):
        return quic_proto            # TCP does not get through here: QUIC it is
    quic_proto.end(abort=True)       # CONNECTION_CLOSE, no stream FIN: the relay opened nothing
    owner._auto_kind = "tcp"
    return proto


async def dial(owner, kind: str, host: str, port: int, timeout_s: float):
    """A connected protocol object of ``kind``; raises asyncio.TimeoutError or OSError like
    ``loop.create_connection``. ``owner.transport_used`` is set to the kind that connected."""
    if kind not in TRANSPORTS:
        raise LocalError(f"transport {kind!r} is not one of {', '.join(TRANSPORTS)}")
    if kind == "auto":
        kind = getattr(owner, "_auto_kind", None) or "auto"
    if kind == "auto":
        try:
            proto = await _quic(owner, host, port, min(AUTO_QUIC_WAIT_S, timeout_s))
        except (OSError, asyncio.TimeoutError, ConnectionError):
            proto = await _tcp(owner, host, port, timeout_s)
            owner._auto_kind = "tcp"    # UDP does not get through: reconnects go straight to TCP
        else:
            proto = await _short_path_tcp(owner, proto, host, port, timeout_s)
    elif kind == "quic":
        proto = await _quic(owner, host, port, timeout_s)
    else:
        proto = await _tcp(owner, host, port, timeout_s)
    owner.transport_used = proto.kind
    return proto
