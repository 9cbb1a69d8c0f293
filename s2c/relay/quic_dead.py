"""A QUIC client whose process died, noticed from the ICMP "port unreachable" its host answers with.

Owns: the two-hit rule (``UnreachableRule``, sans-I/O: times in), the per-connection watch
(``DeadWatch``: a connected "twin" UDP socket, opened while the peer is silent, that catches the
ICMP errors the relay's datagrams to it draw and hands on any datagram it gets), and the relay's
UDP socket made with SO_REUSEPORT so the twins can share its port (``open_udp_socket``).
Must not: decide anything about rooms (the listener calls the core's ``connection_lost``), send
anything itself, or block (the twins are read non-blocking from the listener's poll, bounded).

Why a twin and not IP_RECVERR on the relay's socket: with uvloop 0.23.0 (libuv 1.52) a queued
socket error crashes the relay. libuv reads the error queue itself on POLLERR and passes
``UV__ERR(serr->ee_errno)`` -- the negation of an unsigned 32-bit field, so 4294967185 for
ECONNREFUSED -- to the receive callback as a length; uvloop copies that many bytes from its
receive buffer: SIGSEGV (seen with gdb: ``__uv_udp_on_receive(nread=4294967185)`` from
``uv__udp_recvmsg_errqueue``). ``loop.add_reader`` on that fd is no way round: libuv's poll handle
stops itself with EBADF on POLLERR. Without IP_RECVERR, Linux reports ICMP errors only to a
*connected* UDP socket (as ECONNREFUSED on its next recv), and an ICMP error, like a datagram, goes
to the socket that best matches its addresses: a socket bound to the relay's address and port
(SO_REUSEPORT, same group) and connected to the peer takes it, and the unconnected listener sees
nothing. So the twin is read here, plain and non-blocking, every poll; while it exists the peer's
own datagrams reach it too and are handed to aioquic's server as if they came on the listener.
"""

from __future__ import annotations

import socket

ARM_AFTER_MS = 250.0       # peer silent this long: open its twin (clients send audio/ACKs every ~20 ms)
HIT_GAP_MS = 100.0         # two port-unreachables at least this far apart, peer silent between: gone
MAX_READS_PER_POLL = 64    # twin reads per poll (a flood costs one bounded turn, not a spin)


class UnreachableRule:
    """The two-hit rule: one stray or spoofed ICMP must not cost a participant their call.

    ``heard(now_ms)`` on every datagram from the peer; ``unreachable(now_ms)`` on each port
    unreachable: True once a second one comes >= HIT_GAP_MS after the first with nothing heard in
    between (hits closer together than that neither count nor restart the wait)."""

    __slots__ = ("first_hit_ms", "last_heard_ms")

    def __init__(self, now_ms: float):
        self.first_hit_ms: float | None = None
        self.last_heard_ms = now_ms

    def heard(self, now_ms: float) -> None:
        self.last_heard_ms = now_ms
        self.first_hit_ms = None

    def unreachable(self, now_ms: float) -> bool:
        if self.first_hit_ms is None:
            self.first_hit_ms = now_ms
            return False
        return now_ms - self.first_hit_ms >= HIT_GAP_MS

    def silent_ms(self, now_ms: float) -> float:
        return now_ms - self.last_heard_ms


def open_udp_socket(host: str, port: int) -> socket.socket:
    """The relay's UDP socket, bound with SO_REUSEPORT (twins join its group; Linux lets only
    sockets of the same user in)."""
    family, _, _, _, addr = socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM, 0, socket.AI_PASSIVE)[0]
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(addr)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class DeadWatch:
    """One QUIC connection's watch. ``heard`` per datagram in; ``poll(peer_addr, now_ms)`` every
    listener poll returns True when the peer is gone (then ``close``). ``server`` is aioquic's
    QuicServer (``datagram_received(data, addr)``); ``local`` the listener's bound address."""

    def __init__(self, server, family: int, local, now_ms: float, v6only: bool = False):
        self.server = server
        self.family = family
        self.local = local
        self.v6only = v6only
        self.rule = UnreachableRule(now_ms)
        self.twin: socket.socket | None = None
        self.failed = False          # the twin could not be made (e.g. a listener without reuseport)
        self.gone = False
        self.hits = 0                # port unreachables seen (for the log line)

    def heard(self, now_ms: float) -> None:
        self.rule.heard(now_ms)      # (its twin, if any, is drained and closed at the next poll)

    def poll(self, peer_addr, now_ms: float) -> bool:
        if self.gone:
            return True
        if self.twin is not None:
            if self._read_twin(now_ms):
                return True
            if self.twin is not None and self.rule.silent_ms(now_ms) < ARM_AFTER_MS:
                self._close_twin()   # the peer speaks again (what its twin held was handed on above)
            return False
        if not self.failed and peer_addr is not None and self.rule.silent_ms(now_ms) >= ARM_AFTER_MS:
            self._open_twin(peer_addr)
        return False

    def _open_twin(self, peer_addr) -> None:
        s = socket.socket(self.family, socket.SOCK_DGRAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if self.family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(self.v6only))
            s.setblocking(False)
            s.bind(self.local)
            s.connect(peer_addr)
        except OSError:
            s.close()
            self.failed = True
            return
        self.twin = s

    def _read_twin(self, now_ms: float) -> bool:
        s = self.twin
        for _ in range(MAX_READS_PER_POLL):
            try:
                data, addr = s.recvfrom(65536)
            except BlockingIOError:
                return False
            except ConnectionRefusedError:   # an ICMP port unreachable for a datagram we sent it
                self.hits += 1
                if self.rule.unreachable(now_ms):
                    self.gone = True
                    self.close()
                    return True
                continue
            except OSError:                  # host/net unreachable etc.: a path problem, not a death
                continue
            self.server.datagram_received(data, addr)   # the peer speaks: aioquic routes it (heard)
        return False

    def _close_twin(self) -> None:
        s, self.twin = self.twin, None
        try:
            s.close()
        except OSError:
            pass

    def close(self) -> None:
        if self.twin is not None:
            self._close_twin()


__all__ = ["UnreachableRule", "DeadWatch", "open_udp_socket", "ARM_AFTER_MS", "HIT_GAP_MS"]
