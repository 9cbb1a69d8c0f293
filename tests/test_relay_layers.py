"""Video layers through the relay core (sans-I/O): SUBSCRIBE, LAYERS to senders, the switch at
a keyframe of the new layer, clients without layers, and a slow receiver stepped down and up."""

from __future__ import annotations

from s2c import wire as P
from s2c.relay import layers as RL

from test_relay_core import Harness, frame
from test_relay_pacing import _slow_link

KEY, DISC = P.FLAG_KEYFRAME, P.FLAG_DISCARDABLE
CAPS = {P.LAYERS_CAP: 1}
N, S = P.STREAM_NORMAL, P.STREAM_SMALL


def video(got, cid):
    return [(f.sender, f.stream, f.seq) for f in got[cid] if f.type == P.VIDEO]


def ctrl(got, cid, t):
    return [f for f in got[cid] if f.type == t]


def layered_room():
    h = Harness()
    a, b, c = (h.join(name=n, caps=CAPS) for n in "abc")
    got = h.pump()
    for x in (a, b, c):
        assert P.parse_layers(ctrl(got, x, P.LAYERS)[-1].payload)[0] == {N}
    return h, a, b, c


def test_subscription_switches_at_a_keyframe_and_senders_encode_only_watched_layers():
    h, a, b, c = layered_room()
    h.feed(c, frame(P.SUBSCRIBE, P.encode_subscribe({a: S})))
    got = h.pump()
    ref = ctrl(got, a, P.REFRESH)
    assert [(f.stream, f.sender) for f in ref] == [(S, c)]          # a keyframe of the new layer
    assert P.parse_layers(ctrl(got, a, P.LAYERS)[-1].payload)[0] == {N, S}
    assert ctrl(got, b, P.LAYERS) == []                             # b's set did not change
    h.feed(a, frame(P.VIDEO, b"n1", stream=N, seq=1) + frame(P.VIDEO, b"s1", stream=S, seq=2)
           + frame(P.VIDEO, b"s2", stream=S, seq=3, flags=KEY) + frame(P.VIDEO, b"n2", stream=N, seq=4)
           + frame(P.VIDEO, b"s3", stream=S, seq=5, flags=DISC))
    got = h.pump()
    assert video(got, b) == [(a, N, 1), (a, N, 4)]
    assert video(got, c) == [(a, N, 1), (a, S, 3), (a, S, 5)]      # the old layer until the new keyframe
    assert ctrl(got, a, P.LAYERS) == []      # unchanged: b still watches NORMAL
    h.feed(b, frame(P.SUBSCRIBE, P.encode_subscribe({a: S, c: S})))
    h.feed(a, frame(P.VIDEO, b"s4", stream=S, seq=6, flags=KEY))
    got = h.pump()
    assert video(got, b) == [(a, S, 6)]
    assert P.parse_layers(ctrl(got, a, P.LAYERS)[-1].payload)[0] == {S}      # nobody watches NORMAL now
    assert P.parse_layers(ctrl(got, c, P.LAYERS)[-1].payload)[0] == {N, S}   # b's switch of c is pending


def test_a_sender_without_layers_is_forwarded_as_today_and_bad_subscribe_is_an_error():
    h = Harness()
    a = h.join(name="old")                      # no capability
    b, c = h.join(name="b", caps=CAPS), h.join(name="c", caps=CAPS)
    got = h.pump()
    assert ctrl(got, a, P.LAYERS) == []         # an old client never sees the new frame type
    h.feed(c, frame(P.SUBSCRIBE, P.encode_subscribe({a: S, b: S})))
    h.feed(a, frame(P.VIDEO, b"x", seq=1) + frame(P.VIDEO, b"k", seq=2, flags=KEY))
    got = h.pump()
    assert video(got, c) == [(a, N, 1), (a, N, 2)] and ctrl(got, a, P.REFRESH) == []
    assert P.parse_layers(ctrl(got, b, P.LAYERS)[-1].payload)[0] == {N, S}
    h.feed(c, frame(P.SUBSCRIBE, b'{"layers": {"2": 9}}'))
    got = h.pump()
    assert P.parse_error(ctrl(got, c, P.ERROR)[0].payload).code == P.E_BAD_CONTROL and h.closed[c] is False
    assert a in h.relay.conns and b in h.relay.conns


def test_leaving_receiver_releases_its_layer():
    h, a, b, c = layered_room()
    h.feed(c, frame(P.SUBSCRIBE, P.encode_subscribe({a: S})))
    h.feed(a, frame(P.VIDEO, b"s", stream=S, seq=1, flags=KEY))
    h.pump()
    h.feed(c, frame(P.LEAVE))
    got = h.pump()
    assert P.parse_layers(ctrl(got, a, P.LAYERS)[-1].payload)[0] == {N}


def test_slow_receiver_is_stepped_down_a_layer_and_back_up_after_the_hold():
    h, a, b, c = layered_room()
    _slow_link(h, a, c, 2500)                   # c's path: 10 KB/s
    h.pump()
    rl = h.relay.conns[c].layers
    seq = 0
    for _ in range(8):                          # 2 s of 20 fps at 1.5 KB a picture: far too much
        for i in range(5):
            flags = KEY if seq % 20 == 0 else (DISC if seq % 2 else 0)
            h.feed(a, frame(P.VIDEO, b"v" * 1500, stream=N, seq=seq, flags=flags))
            seq += 1
        h.relay.set_writable(c, True, h.now_ms)
        h.relay.data_to_send(c)
        h.relay.set_writable(c, False, h.now_ms)
        h.advance(250)
    assert rl.steps_down == 1 and rl.cap_rank == P.LAYER_RANK[S]
    got = h.pump()
    assert (S, c) in [(f.stream, f.sender) for f in ctrl(got, a, P.REFRESH)]
    assert P.parse_layers(ctrl(got, a, P.LAYERS)[-1].payload) == ({N, S}, True)   # and "thin"
    h.relay.set_writable(c, True, h.now_ms)
    h.feed(a, frame(P.VIDEO, b"k" * 300, stream=S, seq=seq, flags=KEY) + frame(P.VIDEO, b"n", stream=N, seq=seq + 1))
    got = h.pump()
    assert video(got, c)[-1] == (a, S, seq) and rl.cur[a] == S
    h.relay.report_unsent(c, 0, h.now_ms)       # the small layer's keyframe sets the budget's floor
    assert h.relay.conns[c].q.budget_bytes == RL.MIN_FLOOR_BYTES < RL.MIN_BUDGET_BYTES
    assert video(got, b)[-1] == (a, N, seq + 1)
    rl.hold_ms = 1000.0
    h.relay.conns[c].pace.samples.clear()       # forget the slow rate: a probe goes up
    for _ in range(12):                         # quiet: no loss for 3 s
        h.feed(a, frame(P.VIDEO, b"s" * 100, stream=S, seq=seq + 2))
        h.pump()
        h.advance(250)
    assert rl.steps_up == 1 and rl.cap_rank > P.LAYER_RANK[S]
    told = []
    for _ in range(40):                         # 10 s more without a loss: a may stop thinning
        h.feed(a, frame(P.VIDEO, b"s" * 100, stream=S, seq=seq + 3))
        for x in (b, c):
            h.feed(x, frame(P.PING))            # (silent receivers would time out)
        told += [P.parse_layers(f.payload)[1] for f in ctrl(h.pump(), a, P.LAYERS)]
        h.advance(250)
    assert not rl.thinning and c in h.relay.conns
    assert told[-1] is False                    # a is told to stop sending discardable pictures
    assert RL.HOLD_MS <= RL.MAX_HOLD_MS


def test_remote_senders_frames_go_through_the_same_per_receiver_selection():
    from test_cluster_core import Bus, Client

    class LClient(Client):
        def join(self, session, name, resume=None):
            self.send(P.Frame(P.JOIN, P.encode_join(session, name, CAPS)))
            self.seen = self.read()
            return P.parse_welcome([f for f in self.seen if f.type == P.WELCOME][0].payload)

    bus = Bus(2)
    a, b, c = LClient(bus, 0), LClient(bus, 1), LClient(bus, 1)
    wa, _wb, _wc = a.join("r", "a"), b.join("r", "b"), c.join("r", "c")
    told = [P.parse_layers(f.payload)[0] for f in a.seen + a.read() if f.type == P.LAYERS]
    assert told and told[-1] == {N}        # others are on another relay: a keeps sending NORMAL
    b.read(), c.read()
    c.send(P.Frame(P.SUBSCRIBE, P.encode_subscribe({wa.id: S})))
    a.send(P.Frame(P.VIDEO, b"n", stream=N, seq=1))
    a.send(P.Frame(P.VIDEO, b"s", stream=S, seq=1))           # a delta of the small layer: not yet
    a.send(P.Frame(P.VIDEO, b"k", stream=S, seq=2, flags=KEY))
    a.send(P.Frame(P.VIDEO, b"m", stream=N, seq=2))

    def vids(x):
        return [(f.stream, f.seq) for f in x.read() if f.type == P.VIDEO]
    assert vids(b) == [(N, 1), (N, 2)]
    assert vids(c) == [(N, 1), (S, 2)]    # switched at the small layer's keyframe, on relay 1


def test_a_chain_broken_on_the_layer_being_left_is_not_repaired():
    h, a, b, c = layered_room()
    _slow_link(h, a, c, 2500)                   # c's path: 10 KB/s, the 8 KB budget floor
    h.pump()
    h.feed(c, frame(P.SUBSCRIBE, P.encode_subscribe({a: S, b: N})))
    got = h.pump()
    assert [(f.stream, f.sender) for f in ctrl(got, a, P.REFRESH)] == [(S, c)]
    h.advance(1100)                             # past the REFRESH interval of the join and subscribe
    h.pump()
    h.relay.set_writable(c, False, h.now_ms)
    h.feed(a, frame(P.VIDEO, b"K" * 1000, stream=N, seq=0, flags=KEY))
    h.feed(b, frame(P.VIDEO, b"K" * 1000, stream=N, seq=0, flags=KEY))
    for i in range(1, 8):                       # both chains over c's budget: both break
        h.feed(a, frame(P.VIDEO, b"a" * 1500, stream=N, seq=i))
        h.feed(b, frame(P.VIDEO, b"b" * 1500, stream=N, seq=i))
    h.relay.set_writable(c, True, h.now_ms)
    got = h.pump()
    q = h.relay.conns[c].q
    assert (a << 8 | N) in q.broken and (b << 8 | N) in q.broken
    # b's NORMAL is c's target: repaired; a's NORMAL is being left for SMALL: no keyframe of it
    assert [(f.stream, f.sender) for f in ctrl(got, b, P.REFRESH)] == [(N, c)]
    assert [(f.stream, f.sender) for f in ctrl(got, a, P.REFRESH)] == []
    h.feed(a, frame(P.VIDEO, b"k" * 300, stream=S, seq=8, flags=KEY))
    got = h.pump()
    assert video(got, c)[-1] == (a, S, 8) and h.relay.conns[c].layers.cur[a] == S
