"""What the relay connection reports to the call, as plain records.

Owns: the event types RelayConnection emits (``PeerLeft`` is the wire's own record: id, name,
reason). Must not: import asyncio or anything that does I/O (the sans-I/O session reads these).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..wire import Peer, PeerLeft, Welcome

__all__ = ["PeerJoined", "PeerLeft", "Reconnecting", "Reconnected", "Resumed", "RelayErrorEvent", "Closed"]


@dataclass(slots=True)
class PeerJoined:
    peer: Peer


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


@dataclass(slots=True)
class RelayErrorEvent:
    code: int
    text: str


@dataclass(slots=True)
class Closed:
    """Final event: the connection is closed for good (``close()`` or reconnect disabled)."""
    reason: str


