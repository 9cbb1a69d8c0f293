"""A QUIC participant whose process dies is noticed in ~1-2 s, as over TCP (s2c.relay.quic_dead):
the two-hit rule on its own, the twin socket catching a real ICMP port unreachable on loopback, and
a whole call -- a real s2c-server and three real headless clients over --transport quic, one
killed with SIGKILL."""

from __future__ import annotations

import socket
import time

import pytest

pytest.importorskip("aioquic")

from s2c.relay.quic_dead import ARM_AFTER_MS, HIT_GAP_MS, DeadWatch, UnreachableRule, open_udp_socket  # noqa: E402

from _call_fixtures import HeadlessClient  # noqa: E402
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
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return pred()


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

def _frames_from(client, name):
    try:
        p = client.peer_by_name(name)
    except AssertionError:
        return 0
    return p["video_frames"] if p else 0


def _wait(pred, timeout_s, step=0.1):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return bool(pred())


def test_kill9_of_a_quic_client_is_noticed_within_3s(tmp_path):
    srv = ServerProc()
    made = []
    try:
        a, b, c = (HeadlessClient(srv.port, n, tmp_path, extra=("--transport", "quic")) for n in ("ana", "ben", "cy"))
        made += [a, b, c]
        for x in (a, b, c):
            others = {"ana", "ben", "cy"} - {x.name}
            assert _wait(lambda: all(_frames_from(x, o) >= 20 for o in others), 30), \
                f"{x.name} did not receive video from {others}: {x.stats()['peers']}"
            assert x.stats()["transport"] == "quic"
        t_kill = time.monotonic()
        c.proc.kill()
        for x in (a, b):
            got = x.wait_event(lambda ev: ev.get("event") == "peer_left" and ev.get("name") == "cy", 20)
            assert got is not None, f"{x.name} never saw cy leave"
            print(f"{x.name} saw cy leave {got[0] - t_kill:.2f} s after the kill")
            # main's code: the relay's 10 s silence timeout + its linger (~15 s); now ICMP + 1.2 s grace
            assert got[0] - t_kill <= 3.0, f"{x.name} saw cy leave after {got[0] - t_kill:.2f} s"
        # the survivors still exchange video
        before_a, before_b = _frames_from(a, "ben"), _frames_from(b, "ana")
        assert _wait(lambda: _frames_from(a, "ben") > before_a + 10 and _frames_from(b, "ana") > before_b + 10, 10)
        srv.proc.kill()
        srv.proc.wait(5)
        log = srv.proc.stderr.read()
        assert log.count("quic_unreachable") == 1, log[-2000:]
    finally:
        for x in made:
            x.stop()
        srv.stop()
