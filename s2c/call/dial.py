"""Choosing the transport to the relay: ``--transport auto|quic|tcp``.

Owns: making one connection of the chosen kind — TCP (s2c.call.transport.RelayProtocol) or QUIC
(s2c.call.quic.QuicRelayProtocol) — and ``auto``: QUIC first, TCP when UDP gets no answer within
``AUTO_QUIC_WAIT_S`` (or an ICMP error says nobody serves it); after a fallback, reconnects of
the same RelayConnection go straight to the kind that worked. Must not: join, read frames or
keep call state (s2c.call.connection does).
"""

from __future__ import annotations

import asyncio

from ..errors import LocalError
from .transport import RelayProtocol

TRANSPORTS = ("auto", "quic", "tcp")
AUTO_QUIC_WAIT_S = 1.0


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
            owner._auto_kind = "quic"
        except (OSError, asyncio.TimeoutError, ConnectionError):
            proto = await _tcp(owner, host, port, timeout_s)
            owner._auto_kind = "tcp"
    elif kind == "quic":
        proto = await _quic(owner, host, port, timeout_s)
    else:
        proto = await _tcp(owner, host, port, timeout_s)
    owner.transport_used = proto.kind
    return proto
