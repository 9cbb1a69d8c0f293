"""The relay adapter's in-flight gate for slow receivers (TCP).

Owns: holding a slow receiver's connection "not writable" toward the core while its kernel
socket holds (in flight + unsent, SIOCOUTQ, less what a loss recovery keeps there that is
not on the path: s2c.tcpsock.path_bytes) more than the receiver's gate
(``Relay.gate_bytes``, sized by s2c.relay.pacing from the measured delivery rate), and polling
those sockets every ``POLL_S`` until they drained below it. While a connection is held the core
keeps its frames in the receiver's MediaQueue (control, then audio, then video), so an audio
frame waits behind at most the gate's bytes on the path, not behind every video frame the
kernel would have accepted up to SO_SNDBUF (TCP_NOTSENT_LOWAT only limits the socket's
writability signal, not what a write() accepts).
Must not: decide sizes (s2c.relay.pacing's), look at frames, or write to sockets.
"""

from __future__ import annotations

from ..clock import now_ms
from ..tcpsock import path_bytes

POLL_S = 0.004   # a gated socket is looked at this often (about 150 B at 300 kbit/s)


class InflightGate:
    __slots__ = ("srv", "gated", "_handle", "held_total")

    def __init__(self, srv):
        self.srv = srv          # s2c.relay.server.RelayServer: .relay, .protocols, .loop, .kick()
        self.gated: set[int] = set()
        self._handle = None
        self.held_total = 0     # times a connection was held (stats)

    def holds(self, cid: int) -> bool:
        return cid in self.gated

    def after_write(self, cid: int, proto) -> None:
        """Bytes went to ``cid``'s socket: hold it if its kernel is now over the gate."""
        gate = None if proto is None else proto.gate
        if gate is None or cid in self.gated or path_bytes(proto.fd, proto.sock) < gate:
            return
        self.gated.add(cid)
        self.held_total += 1
        self.srv.relay.set_writable(cid, False, now_ms())
        self._arm()

    def _arm(self) -> None:
        if self._handle is None and self.gated:
            self._handle = self.srv.loop.call_later(POLL_S, self._poll)

    def _poll(self) -> None:
        self._handle = None
        srv = self.srv
        released = False
        for cid in list(self.gated):
            proto = srv.protocols.get(cid)
            if proto is None:
                self.gated.discard(cid)
                continue
            if proto.gate is None or path_bytes(proto.fd, proto.sock) < proto.gate:
                self.gated.discard(cid)
                if not proto.paused:
                    srv.relay.set_writable(cid, True, now_ms())
                    released = True
        if released:
            srv.kick()
        self._arm()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.gated.clear()
