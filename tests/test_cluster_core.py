"""The relay core's cluster interface, sans-I/O: several ``Relay`` cores joined by an in-process
bus that delivers their cluster outboxes to each other (what s2c.relay.cluster does over NATS)."""

from __future__ import annotations

import json

from s2c import wire as P
from s2c.relay.core import Relay, RelayConfig


class Bus:
    def __init__(self, n: int, **cfg):
        self.relays = [Relay(RelayConfig(id_lo=i * 4096 + 1, id_hi=i * 4096 + 4095, resume_key=b"k" * 32,
                                         cluster_node=f"n{i}", max_fps=0, **cfg)) for i in range(n)]
        self.subs = [set() for _ in range(n)]
        self.media_published = [0] * n
        self.now = 0.0
        self.cut: set[int] = set()   # relays whose bus traffic is lost

    def pump(self) -> None:
        for _ in range(20):
            moved = False
            for i, r in enumerate(self.relays):
                for ev in r.pop_cluster_out():
                    moved = True
                    if ev[0] == "sub":
                        self.subs[i].add(ev[1])
                        for j, o in enumerate(self.relays):
                            if j != i and j not in self.cut:
                                r.receive_roster(ev[1], o.sync_reply(ev[1]), self.now)
                        r.room_synced(ev[1], self.now)
                    elif ev[0] == "unsub":
                        self.subs[i].discard(ev[1])
                    elif i not in self.cut:
                        if ev[0] == "media":
                            self.media_published[i] += 1
                        for j, o in enumerate(self.relays):
                            if j != i and ev[1] in self.subs[j] and j not in self.cut:
                                (o.receive_remote if ev[0] == "media" else o.receive_roster)(ev[1], ev[2], self.now)
            if not moved:
                return

    def heartbeat(self) -> None:
        for i, r in enumerate(self.relays):
            if i in self.cut:
                continue
            for s in r.cluster_rooms():
                for j, o in enumerate(self.relays):
                    if j != i and s in self.subs[j] and j not in self.cut:
                        o.receive_roster(s, r.heartbeat(s), self.now)

    def tick(self, dt_ms: float) -> None:
        self.now += dt_ms
        for r in self.relays:
            r.tick(self.now)
        self.pump()


class Client:
    def __init__(self, bus: Bus, i: int):
        self.bus, self.relay = bus, bus.relays[i]
        self.cid = self.relay.open("127.0.0.1", bus.now)
        self.parser = P.FrameParser()
        self.frames: list[P.Frame] = []

    def send(self, f: P.Frame) -> None:
        self.relay.receive_data(self.cid, P.serialize(f), self.bus.now)
        self.bus.pump()

    def join(self, session: str, name: str, resume=None) -> P.Welcome:
        self.send(P.Frame(P.JOIN, P.encode_join(session, name, {}, resume=resume)))
        w = [f for f in self.read() if f.type == P.WELCOME]
        assert w, self.frames
        return P.parse_welcome(w[0].payload)

    def read(self) -> list[P.Frame]:
        data = self.relay.data_to_send(self.cid)
        if data:
            self.parser.receive_data(data)
            self.frames.extend(self.parser.frames())
        out, self.frames = self.frames, []
        return out

    def lose(self) -> None:
        self.relay.connection_lost(self.cid, self.bus.now)
        self.bus.pump()


def types(frames):
    return [P.TYPE_NAMES[f.type] for f in frames]


def test_frames_cross_relays_once_and_are_never_republished():
    bus = Bus(3)
    a, b, c = Client(bus, 0), Client(bus, 1), Client(bus, 2)
    wa = a.join("r", "a")
    wb = b.join("r", "b")
    wc = c.join("r", "c")
    assert [p.id for p in wc.roster] == [wa.id, wb.id] and wb.id != wa.id != wc.id
    assert types(a.read()) == ["PEER_JOINED", "PEER_JOINED"]
    b.read()
    a.send(P.Frame(P.VIDEO, b"v" * 1000, seq=7))
    for x in (b, c):
        got = x.read()
        assert [(f.type, f.sender, f.seq, f.payload) for f in got] == [(P.VIDEO, wa.id, 7, b"v" * 1000)]
    assert bus.media_published == [1, 0, 0]   # published once, by the sender's relay only
    a.send(P.Frame(P.KEY, b"for c", dest=wc.id))
    assert b.read() == [] and [f.payload for f in c.read()] == [b"for c"]
    assert a.read() == []


def test_ids_are_unique_and_room_limits_hold_across_the_cluster():
    bus = Bus(2, max_participants=3)
    xs = [Client(bus, i % 2) for i in range(4)]
    ws = [x.join("full", f"p{i}") for i, x in enumerate(xs[:3])]
    assert len({w.id for w in ws}) == 3
    xs[3].send(P.Frame(P.JOIN, P.encode_join("full", "late", {})))
    errs = [P.parse_error(f.payload) for f in xs[3].read() if f.type == P.ERROR]
    assert errs and errs[0].code == P.E_ROOM_FULL
    # the same name on two relays gets a suffix
    y = Client(bus, 1)
    w = y.join("names", "same")
    z = Client(bus, 0)
    assert z.join("names", "same").name == "same (2)" and w.name == "same"


def test_a_race_for_the_last_place_across_relays_leaves_exactly_the_limit():
    bus = Bus(2, max_participants=3)
    first = [Client(bus, 0), Client(bus, 1)]
    for i, c in enumerate(first):
        c.join("race", f"early{i}")
    x, y = Client(bus, 0), Client(bus, 1)
    # both relays admit before either hears of the other's join (the bus's latency window)
    for c, name in ((x, "x"), (y, "y")):
        c.relay.receive_data(c.cid, P.serialize(P.Frame(P.JOIN, P.encode_join("race", name, {}))), bus.now)
    bus.pump()
    got = {name: c.read() for c, name in ((x, "x"), (y, "y"))}
    welcomed = {n: [P.parse_welcome(f.payload).id for f in fs if f.type == P.WELCOME] for n, fs in got.items()}
    full = {n: [P.parse_error(f.payload).code for f in fs if f.type == P.ERROR] for n, fs in got.items()}
    assert welcomed["x"] and welcomed["y"], got            # both got in at first ...
    loser = max(welcomed, key=lambda n: welcomed[n][0])     # ... the higher id loses, on every relay alike
    winner = "x" if loser == "y" else "y"
    assert full[loser] == [P.E_ROOM_FULL] and full[winner] == [], full
    bus.tick(10)
    for r in bus.relays:
        room = r.rooms["race"]
        assert len(room.members) + len(room.remote) == 3
        assert welcomed[loser][0] not in room.members and welcomed[loser][0] not in room.remote
    assert sum(r.rooms["race"].stats.race_lost for r in bus.relays) == 1


def test_resume_on_another_relay_is_seamless_for_the_others():
    bus = Bus(3)
    a, b, c = Client(bus, 0), Client(bus, 1), Client(bus, 2)
    wa = a.join("s", "alice")
    b.join("s", "bob")
    c.join("s", "carol")
    b.read(), c.read()
    a.lose()                           # alice's relay connection drops ...
    a2 = Client(bus, 1)                # ... and she comes back on bob's relay
    w = a2.join("s", wa.name, resume=(wa.id, wa.resume))
    assert w.resumed and w.id == wa.id and {p.name for p in w.roster} == {"bob", "carol"}
    for _ in range(20):                # well past the leave grace and the remote expiry
        bus.tick(250)
        bus.heartbeat()
    assert [t for t in types(b.read() + c.read()) if t.startswith("PEER")] == []
    a2.send(P.Frame(P.CHAT, b"back"))
    assert [(f.sender, f.payload) for f in c.read()] == [(wa.id, b"back")]
    assert [(f.sender, f.payload) for f in b.read()] == [(wa.id, b"back")]


def test_bad_or_foreign_tokens_join_as_a_newcomer():
    bus = Bus(2)
    a, b = Client(bus, 0), Client(bus, 1)
    wa = a.join("t", "alice")
    b.join("t", "bob")
    other = Client(bus, 1)
    wo = other.join("elsewhere", "alice")
    epoch, mac = wa.resume.split(".")
    flipped = f"{epoch}.{int(mac, 16) ^ 1:032x}"
    for resume in ((wa.id, flipped), (wa.id + 1, wa.resume), (wa.id, wo.resume), (wa.id, "zz.zz")):
        x = Client(bus, 1)
        w = x.join("t", "alice", resume=resume)
        assert not w.resumed and w.id != wa.id, resume


def test_dropped_participant_leaves_after_the_grace_and_ghosts_expire():
    bus = Bus(2, leave_grace_ms=1500, remote_expiry_ms=3000)
    a, a_ghost, b = Client(bus, 0), Client(bus, 0), Client(bus, 1)
    a.join("g", "a")
    wg = a_ghost.join("g", "ghost")
    b.join("g", "b")
    b.read(), a.read()
    a_ghost.lose()
    bus.tick(1000)
    assert b.read() == [] and a.read() == []        # within the grace: maybe resuming elsewhere
    bus.tick(600)
    for x in (a, b):
        left = [P.parse_peer_left(f.payload) for f in x.read() if f.type == P.PEER_LEFT]
        assert [(p.id, p.reason) for p in left] == [(wg.id, "disconnected")]
    # a relay that stops heartbeating (killed): its participants expire on the others
    bus.cut.add(0)
    for _ in range(13):
        bus.tick(250)
        bus.heartbeat()
    left = [P.parse_peer_left(f.payload) for f in b.read() if f.type == P.PEER_LEFT]
    assert [p.reason for p in left] == ["timed out"]


def test_bus_down_keeps_remote_participants_for_the_grace():
    bus = Bus(2, remote_expiry_ms=3000, cluster_down_grace_ms=10_000)
    a, b = Client(bus, 0), Client(bus, 1)
    a.join("d", "a")
    b.join("d", "b")
    a.read()
    bus.relays[0].cluster_state(False, bus.now)
    bus.cut.add(0)
    bus.tick(6000)
    assert a.read() == []                             # no heartbeats, but the bus is down: kept
    bus.relays[0].cluster_state(True, bus.now)
    bus.cut.discard(0)
    for _ in range(16):
        bus.tick(250)
        bus.heartbeat()
    assert a.read() == []


def test_garbage_from_the_bus_is_counted_and_dropped():
    bus = Bus(2)
    a, b = Client(bus, 0), Client(bus, 1)
    a.join("x", "a")
    wb = b.join("x", "b")
    a.read()
    r = bus.relays[0]
    for data in (b"\x01", b"\xff" * 30, P.serialize(P.Frame(P.CHAT, b"spoof", sender=999)),
                 P.serialize(P.Frame(P.JOIN, b"{}", sender=wb.id)),
                 P.serialize(P.Frame(P.CHAT, b"ok", sender=wb.id))[:-1]):
        r.receive_remote("x", data, 0)
    for data in (b"{", b"[1]", json.dumps({"op": "hb", "node": "n1", "peers": [["a"]]}).encode(),
                 json.dumps({"op": "join", "node": "z", "peers": [[70000, "n", {}, 0]]}).encode(),
                 json.dumps({"op": "join", "node": "n0", "peers": [[5, "me", {}, 0]]}).encode()):
        r.receive_roster("x", data, 0)
    assert r.totals["bad_remote"] == 10
    assert a.read() == []
    b.send(P.Frame(P.CHAT, b"fine"))
    assert [f.payload for f in a.read()] == [b"fine"]


def test_single_relay_has_no_cluster_traffic():
    r = Relay(RelayConfig())
    c1, c2 = r.open("a", 0), r.open("b", 0)
    for c, n in ((c1, "a"), (c2, "b")):
        r.receive_data(c, P.serialize(P.Frame(P.JOIN, P.encode_join("one", n))), 0)
    r.receive_data(c1, P.serialize(P.Frame(P.VIDEO, b"v")), 0)
    assert r.pop_cluster_out() == [] and not r.rooms["one"].publish


def test_relay_lists_parse():
    import pytest
    from s2c.errors import LocalError
    from s2c.call.connection import parse_relays
    assert parse_relays("a,b:1200,[::1]:1122, c ", 1122) == [("a", 1122), ("b", 1200), ("::1", 1122), ("c", 1122)]
    assert parse_relays("127.0.0.1", 9) == [("127.0.0.1", 9)]
    for bad in ("", ",", "a:0", "a:70000"):
        with pytest.raises(LocalError):
            parse_relays(bad, 1122)
