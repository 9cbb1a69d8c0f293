"""Video layers across relays, sans-I/O: relay cores joined by the in-process bus of
test_cluster_core. A receiver's subscription on one relay reaches the sender's LAYERS on
another (the "want" roster op), REFRESH for the new layer crosses, the switch happens at the
keyframe, "thin" crosses, a lost "want" is mended by the heartbeat, a relay without receivers of
a sender stops asking for it, and garbage demand is counted and dropped."""

from __future__ import annotations

import json

from s2c import wire as P

from test_cluster_core import Bus, Client

CAPS = {P.LAYERS_CAP: 1}
N, S, L = P.STREAM_NORMAL, P.STREAM_SMALL, P.STREAM_LARGE
KEY = P.FLAG_KEYFRAME


def join(c: Client, session: str, name: str, caps=CAPS) -> int:
    c.send(P.Frame(P.JOIN, P.encode_join(session, name, caps)))
    w = [f for f in c.read() if f.type == P.WELCOME]
    assert w
    return P.parse_welcome(w[0].payload).id


def vid(stream, seq, payload=b"v", flags=0) -> bytes:
    return P.serialize(P.Frame(P.VIDEO, payload, stream=stream, seq=seq, flags=flags))


def send_run(c: Client, *frames: bytes) -> None:
    """Several frames in one read (one forwarded run, as a busy sender's)."""
    c.relay.receive_data(c.cid, b"".join(frames), c.bus.now)
    c.bus.pump()


def layers_of(frames) -> list:
    return [P.parse_layers(f.payload) for f in frames if f.type == P.LAYERS]


def video(frames) -> list:
    return [(f.stream, f.seq) for f in frames if f.type == P.VIDEO]


def room_with_remote_receiver():
    bus = Bus(2)
    a, b = Client(bus, 0), Client(bus, 1)
    ia = join(a, "r", "a")
    ib = join(b, "r", "b")
    a.read(), b.read()
    assert bus.relays[0].rooms["r"].members[ia].layers_sent == (frozenset({N}), False)
    return bus, a, b, ia, ib


def test_a_remote_subscription_reaches_the_senders_layers_and_switches_at_its_keyframe():
    bus, a, b, ia, ib = room_with_remote_receiver()
    b.send(P.Frame(P.SUBSCRIBE, P.encode_subscribe({ia: S})))
    got = a.read()
    assert [(f.stream, f.sender) for f in got if f.type == P.REFRESH] == [(S, ib)]   # crossed the bus
    assert layers_of(got)[-1] == (frozenset({N, S}), False)      # b still gets NORMAL until the switch
    send_run(a, vid(N, 1), vid(S, 2), vid(S, 3, flags=KEY), vid(N, 4))
    assert video(b.read()) == [(N, 1), (S, 3)]                     # the old layer until the new keyframe
    assert layers_of(a.read())[-1] == (frozenset({S}), False)      # nobody watches NORMAL of a now
    b.send(P.Frame(P.SUBSCRIBE, P.encode_subscribe({ia: L})))
    assert layers_of(a.read())[-1] == (frozenset({S, L}), False)
    send_run(a, vid(L, 5, flags=KEY))
    assert video(b.read()) == [(L, 5)]
    assert layers_of(a.read())[-1] == (frozenset({L}), False)


def test_a_local_and_a_remote_receiver_get_the_union_and_a_client_without_layers_gets_normal():
    bus, a, b, ia, ib = room_with_remote_receiver()
    c = Client(bus, 1)
    join(c, "r", "old", caps={})                 # no layers capability, on the remote relay
    d = Client(bus, 0)
    join(d, "r", "d")
    d.send(P.Frame(P.SUBSCRIBE, P.encode_subscribe({ia: L})))
    b.send(P.Frame(P.SUBSCRIBE, P.encode_subscribe({ia: S})))
    assert layers_of(a.read())[-1] == (frozenset({N, S, L}), False)
    send_run(a, vid(S, 1, flags=KEY), vid(N, 2, flags=KEY), vid(L, 3, flags=KEY))
    assert video(b.read()) == [(S, 1)]
    assert video(c.read()) == [(N, 2)]            # the remote relay selects for it too: NORMAL only
    assert video(d.read()) == [(N, 2), (L, 3)]     # NORMAL until the LARGE keyframe
    assert layers_of(a.read()) == []                # unchanged: c keeps NORMAL wanted
    c.send(P.Frame(P.LEAVE, b""))
    assert layers_of(a.read())[-1] == (frozenset({S, L}), False)


def test_thin_crosses_and_a_lost_want_is_mended_by_the_heartbeat():
    bus, a, b, ia, ib = room_with_remote_receiver()
    bus.cut.add(1)                                # relay 1's bus traffic is lost for a moment
    b.send(P.Frame(P.SUBSCRIBE, P.encode_subscribe({ia: S})))
    assert layers_of(a.read()) == []
    bus.cut.clear()
    bus.heartbeat()                               # the hb carries relay 1's whole demand
    bus.pump()
    assert layers_of(a.read())[-1] == (frozenset({N, S}), False)
    rb = bus.relays[1]
    rb.rooms["r"].members[ib].layers.thinning = True   # what _layers_tick sets after a loss
    rb._update_senders(rb.rooms["r"])
    bus.pump()
    assert layers_of(a.read())[-1] == (frozenset({N, S}), True)


def test_when_the_remote_receivers_leave_their_demand_goes_and_garbage_is_counted():
    bus, a, b, ia, ib = room_with_remote_receiver()
    b.send(P.Frame(P.SUBSCRIBE, P.encode_subscribe({ia: S})))
    assert layers_of(a.read())[-1] == (frozenset({N, S}), False)
    ra = bus.relays[0]
    bad = [{"op": "want", "node": "n9"}, {"op": "want", "node": "n9", "want": {"x": [[0], False]}},
           {"op": "want", "node": "n9", "want": {"5": [[7], False]}},
           {"op": "want", "node": "n9", "want": {"5": [[0], 1]}},
           {"op": "hb", "node": "n1", "peers": [], "want": []}]
    for m in bad:
        ra.receive_roster("r", json.dumps(m).encode(), bus.now)
    assert ra.totals["bad_remote"] == len(bad)
    assert layers_of(a.read()) == []               # nothing changed by the garbage
    b.send(P.Frame(P.LEAVE, b""))
    assert layers_of(a.read())[-1] == (frozenset({N}), False)     # alone again: NORMAL
    assert ra.rooms["r"].want_of == {}
