"""A QUIC participant whose process dies is noticed in ~1-2 s, as over TCP (s2c.relay.quic_dead):
the two-hit rule on its own, the twin socket catching a real ICMP port unreachable on loopback, and
a whole call -- a real s2c-server and three real headless clients over --transport quic, one
killed with SIGKILL."""

from __future__ import annotations

import socket

import pytest

pytest.importorskip("aioquic")

from s2c.relay.quic_dead import ARM_AFTER_MS, HIT_GAP_MS, DeadWatch, UnreachableRule, open_udp_socket  # noqa: E402

from _call_fixtures import HeadlessClient, all_see_each_other, frames_from, kill9_seen_leaving, wait_until  # noqa: E402
from _relay_fixtures import ServerProc  # noqa: E402


# ---- the two-hit rule (times passed in) ---------------------------------------------------------

def test_one_port_unreachable_is_not_enough():
    r = UnreachableRule(0.0)
    assert not r.unreachable(1000.0)
    assert r.silent_ms(1500.0) == 1500.0


def test_two_hits_apart_with_silence_between_declare_it_gone():
    r = UnreachableRule(0.0)
    assert not r.unreachable(1000.0)
    assert not r.unreachable(1000.0 + HIT_GAP_MS - 1)   # too close: neither counts nor restarts
    assert r.unreachable(1000.0 + HIT_GAP_MS)


def test_a_datagram_from_the_peer_between_hits_resets_the_rule():
    r = UnreachableRule(0.0)
    assert not r.unreachable(1000.0)
    r.heard(1050.0)
    assert r.silent_ms(1060.0) == 10.0
    assert not r.unreachable(1200.0)                    # a first hit again
    assert not r.unreachable(1250.0)
    assert r.unreachable(1300.0)


# ---- the twin socket on a real loopback port --------------------------------------------------

class _Server:
    def __init__(self):
        self.got = []

    def datagram_received(self, data, addr):
        self.got.append((data, addr))


def _poll_until(pred, timeout_s):
    return wait_until(pred, timeout_s, step=0.01)


def _as_seen(listener, addr):
    """``addr`` as the relay's socket names it (v4-mapped on a dual-stack v6 socket)."""
    if listener.family == socket.AF_INET6 and "." in addr[0]:
        return ("::ffff:" + addr[0], addr[1], 0, 0)
    return addr


@pytest.mark.parametrize("listen,peer_host", [("127.0.0.1", "127.0.0.1"), ("::1", "::1"), ("::", "127.0.0.1")])
def test_watch_catches_port_unreachable_and_hands_on_datagrams(listen, peer_host):
    listener = open_udp_socket(listen, 0)
    fam = socket.AF_INET6 if ":" in peer_host else socket.AF_INET
    gone = socket.socket(fam, socket.SOCK_DGRAM)
    gone.bind((peer_host, 0))
    dead_addr = _as_seen(listener, gone.getsockname())
    gone.close()                     # nobody on this port now: its "host" answers port unreachable
    live = socket.socket(fam, socket.SOCK_DGRAM)
    live.bind((peer_host, 0))
    live_addr = _as_seen(listener, live.getsockname())
    to_listener = (peer_host, listener.getsockname()[1])
    srv = _Server()
    t0 = 0.0
    v6only = listener.family == socket.AF_INET6 and bool(listener.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY))
    dead = DeadWatch(srv, listener.family, listener.getsockname(), t0, v6only)
    alive = DeadWatch(srv, listener.family, listener.getsockname(), t0, v6only)
    try:
        t = t0 + ARM_AFTER_MS
        assert not dead.poll(dead_addr, t) and dead.twin is not None      # silent long enough: armed
        assert not alive.poll(live_addr, t) and alive.twin is not None
        # a live peer's datagram reaches its twin (not the listener) and is handed on
        live.sendto(b"hello", to_listener)
        assert _poll_until(lambda: (alive.poll(live_addr, t), srv.got)[1], 2)
        assert srv.got == [(b"hello", live_addr)]
        # the listener's datagram to the dead port: one hit, not yet gone
        listener.sendto(b"x", dead_addr)
        assert _poll_until(lambda: dead.hits == 1 or dead.poll(dead_addr, t), 2)
        assert not dead.gone
        # another one too soon counts for nothing; one >= HIT_GAP_MS after the first: gone
        listener.sendto(b"x", dead_addr)
        assert _poll_until(lambda: dead.hits == 2 or dead.poll(dead_addr, t + 1), 2)
        assert not dead.gone
        listener.sendto(b"x", dead_addr)
        assert _poll_until(lambda: dead.poll(dead_addr, t + HIT_GAP_MS), 2)
        assert dead.gone and dead.twin is None
        # the live peer was never hit; once heard, its twin goes at the next poll
        assert alive.hits == 0
        alive.heard(t + 300)
        assert not alive.poll(live_addr, t + 310) and alive.twin is None
        live.sendto(b"again", to_listener)     # now to the listener again, not a closed twin
        assert _poll_until(lambda: listener.recvfrom(100)[0] == b"again" if _readable(listener) else False, 2)
    finally:
        dead.close()
        alive.close()
        listener.close()
        live.close()


def _readable(sock):
    import select
    return bool(select.select([sock], [], [], 0)[0])


# ---- a whole call: kill -9 one of three QUIC clients ------------------------------------------

def test_kill9_of_a_quic_client_is_noticed_within_3s(tmp_path):
    srv = ServerProc()
    made = []
    try:
        a, b, c = (HeadlessClient(srv.port, n, tmp_path, extra=("--transport", "quic")) for n in ("ana", "ben", "cy"))
        made += [a, b, c]
        all_see_each_other([a, b, c], 20, 30)
        assert all(x.stats()["transport"] == "quic" for x in (a, b, c))
        for who, took_s in kill9_seen_leaving(c, [a, b], 20).items():
            print(f"{who} saw cy leave {took_s:.2f} s after the kill")
            # main's code: the relay's 10 s silence timeout + its linger (~15 s); now ICMP + 1.2 s grace
            assert took_s <= 3.0, f"{who} saw cy leave after {took_s:.2f} s"
        # the survivors still exchange video
        before_a, before_b = frames_from(a, "ben"), frames_from(b, "ana")
        assert wait_until(lambda: frames_from(a, "ben") > before_a + 10 and frames_from(b, "ana") > before_b + 10, 10)
        srv.proc.kill()
        srv.proc.wait(5)
        log = srv.proc.stderr.read()
        assert log.count("quic_unreachable") == 1, log[-2000:]
    finally:
        for x in made:
            x.stop()
        srv.stop()
