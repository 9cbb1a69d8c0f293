"""Video layers through the relay core with real call sessions (in memory, as in
tests/test_call_session.py): SFrame, the sender's layer encoders, a receiver's subscription,
the relay's switch at a keyframe of the new layer, per-layer decoders and REFRESH per stream."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from s2c import wire as P
from s2c.call.layers import LayerEncoders, LayerSubscription, half_picture
from s2c.video.scene import TestScene
from s2c.video.downsample import area_downsample

from test_call_session import Member, MemNet, _keys_everywhere

CAPS = {P.LAYERS_CAP: 1}


class LayerMember(Member):
    def __init__(self, net, name):
        super().__init__(net, name)
        self.layers = LayerEncoders()
        self.sub = LayerSubscription()
        self.shapes: list[tuple[int, int]] = []     # every picture shown of each peer, in order
        self.seq: dict[int, int] = {}

    def connect(self) -> None:
        relay = self.net.relay
        self.cid = relay.open("127.0.0.1", self.net.now_ms)
        self.parser = P.FrameParser()
        self.send(P.Frame(P.JOIN, P.encode_join("room", self.name, CAPS)))

    def on_frame(self, f: P.Frame) -> None:
        if f.type == P.LAYERS:             # what s2c.call.call does with it
            self.layers.set_active(*P.parse_layers(f.payload))
            self.sub.relay_ok = True
            return
        super().on_frame(f)
        streams = self.core.take_keyframe_request()
        if streams:
            self.layers.request_keyframe(streams)

    def subscribe(self, sizes: dict[int, tuple[int, int]]) -> None:
        self.sub.sizes = sizes
        payload = self.sub.payload(list(self.core.peers))
        assert payload is not None
        self.send(P.Frame(P.SUBSCRIBE, payload))

    def send_picture(self, bgr) -> None:
        pic = SimpleNamespace(image_rgb=area_downsample(bgr, 160, 90), frame_bgr=bgr)
        for stream, payload, key, disc in self.layers.encode(pic, int(self.net.now_ms)):
            flags = P.FLAG_KEYFRAME if key else (P.FLAG_DISCARDABLE if disc else 0)
            seq = self.seq.get(stream, -1) + 1
            self.seq[stream] = seq
            self.send(P.Frame(P.VIDEO, self.core.protect(P.VIDEO, flags, stream, payload), flags=flags,
                              stream=stream, seq=seq, ts_us=self.net.now_us))


def test_a_small_tile_switches_to_the_small_layer_at_its_keyframe_and_never_goes_blank():
    net = MemNet()
    a, b, c = (LayerMember(net, n) for n in ("ada", "bob", "cy"))
    for m in (a, b, c):
        net.members.append(m)
        m.connect()
        net.pump()
    net.pump()
    assert _keys_everywhere(net)
    scene = TestScene(hue_shift=37)
    shown_b, shown_c = [], []
    for i in range(40):
        if i == 10:
            c.subscribe({a.core.my_id: (80, 50)})     # c's tile of a became grid-sized
            net.pump()
        net.now_us += 50_000
        a.send_picture(scene.render(i / 20))
        net.pump()
        for m, shown in ((b, shown_b), (c, shown_c)):
            pic = m.core.peers[a.core.my_id].picture
            shown.append(None if pic is None else pic.shape[:2])
    assert set(shown_b) == {(90, 160)}                            # b never subscribed: 160x90
    first_small = shown_c.index((45, 80))
    assert 10 <= first_small < 15                                 # within a few pictures of asking
    assert set(shown_c[:first_small]) == {(90, 160)}              # the old layer until then
    assert set(shown_c[first_small:]) == {(45, 80)}               # then only the small one
    pc = c.core.peers[a.core.my_id]
    assert pc.bad_payloads == 0 and pc.undecryptable == 0
    assert a.layers.active == {P.STREAM_NORMAL, P.STREAM_SMALL}   # b still watches 160x90
    assert a.layers.sent[P.STREAM_SMALL] >= 25
    # the small picture is the sender's small layer, decoded bit-exactly
    assert np.array_equal(pc.picture, a.layers.encoders[P.STREAM_SMALL].last_picture())
    b.subscribe({a.core.my_id: (80, 50)})       # now nobody watches 160x90: a stops encoding it
    net.pump()
    for i in range(40, 50):
        net.now_us += 50_000
        a.send_picture(scene.render(i / 20))
        net.pump()
    assert a.layers.active == {P.STREAM_SMALL} and P.STREAM_NORMAL not in a.layers.encoders
    assert b.core.peers[a.core.my_id].picture.shape[:2] == (45, 80)


def test_half_picture_is_the_exact_rounded_2x2_average():
    img = np.random.default_rng(3).integers(0, 256, (9, 11, 3), dtype=np.uint8)
    h = half_picture(img)
    assert h.shape == (4, 5, 3)
    want = (img[:8, :10].reshape(4, 2, 5, 2, 3).astype(int).sum(axis=(1, 3)) + 2) // 4
    assert np.array_equal(h, want)


def test_subscription_waits_for_the_relays_layers_and_sends_only_changes():
    s = LayerSubscription()
    s.sizes = {5: (80, 50), 6: (160, 96)}
    assert s.payload([5, 6]) is None                  # no LAYERS yet: an old relay would refuse it
    s.relay_ok = True
    assert P.parse_subscribe(s.payload([5, 6])) == {5: P.STREAM_SMALL, 6: P.STREAM_NORMAL}
    assert s.payload([5, 6]) is None                  # unchanged
    s.sizes = {5: (300, 150), 6: (160, 96)}
    assert P.parse_subscribe(s.payload([5, 6])) == {5: P.STREAM_LARGE, 6: P.STREAM_NORMAL}
    assert LayerSubscription(enabled=False).payload([5]) is None


def test_layer_encoders_make_each_watched_layer_and_the_large_one_only_from_a_bigger_capture():
    enc = LayerEncoders()
    bgr = TestScene(hue_shift=37).render(0.0)                   # 640x360
    pic = SimpleNamespace(image_rgb=area_downsample(bgr, 160, 90), frame_bgr=bgr)
    assert [s for s, *_ in enc.encode(pic, 0)] == [P.STREAM_NORMAL]   # before any LAYERS
    enc.set_active({P.STREAM_SMALL, P.STREAM_NORMAL, P.STREAM_LARGE})
    out = enc.encode(pic, 50)
    assert [(s, key) for s, _p, key, _d in out] == [(P.STREAM_SMALL, True), (P.STREAM_NORMAL, False),
                                                     (P.STREAM_LARGE, True)]
    sizes = {s: (e.width, e.height) for s, e in enc.encoders.items()}
    assert sizes == {P.STREAM_SMALL: (80, 45), P.STREAM_NORMAL: (160, 90), P.STREAM_LARGE: (320, 180)}
    small = SimpleNamespace(image_rgb=pic.image_rgb, frame_bgr=area_downsample(bgr, 160, 90)[..., ::-1])
    assert P.STREAM_LARGE not in [s for s, *_ in enc.encode(small, 100)]   # nothing bigger to give
    enc.set_active({P.STREAM_SMALL})
    assert set(enc.encoders) == {P.STREAM_SMALL}
    off = LayerEncoders(enabled=False)
    off.set_active({P.STREAM_SMALL})
    assert off.active == {P.STREAM_NORMAL} and off.reference_every == 1   # --no-layers: as before
