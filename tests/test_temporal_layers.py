"""Temporal layers: non-reference pictures (FLAG_DISCARDABLE) a relay may drop without breaking
any receiver's picture chain — the codec with random drops, the relay queue's order of drops,
and the relay core with a slow receiver (sans-I/O, deterministic)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from s2c import wire as P
from s2c.errors import PeerError
from s2c.relay import pacing
from s2c.video.codec import FLAG_NONREF, HEADER, VideoDecoder, VideoEncoder
from s2c.wire.queues import DropCounts, MediaQueue

from test_codec import moving_scene
from test_relay_core import Harness, frame
from test_relay_pacing import _slow_link

KEY, DISC = P.FLAG_KEYFRAME, P.FLAG_DISCARDABLE


@pytest.mark.parametrize("every", [2, 3, 4])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_drops_of_non_reference_frames_leave_every_shown_picture_bit_exact(every, seed):
    rng = random.Random(seed)
    enc, dec = VideoEncoder(48, 32, reference_every=every, keyframe_interval_s=0.5), VideoDecoder()
    shown = dropped = 0
    for i, img in enumerate(moving_scene(60, seed=seed)):
        payload, key = enc.encode(img, i * 50)
        disc = enc.last_discardable
        assert not (key and disc)
        assert disc == (not key and HEADER.unpack_from(payload)[1] == FLAG_NONREF)
        if disc and rng.random() < 0.5:
            dropped += 1
            continue
        out = dec.decode(payload, key, disc)
        assert out is not None, f"frame {i} did not decode"
        assert np.array_equal(out, enc.last_picture())   # bit-exact with the encoder's
        shown += 1
    assert dropped > 5 and shown > 30


def test_non_reference_pattern_and_a_lost_reference_still_breaks_the_chain():
    enc, dec = VideoEncoder(48, 32, reference_every=2), VideoDecoder()
    frames = []
    for i, img in enumerate(moving_scene(7)):
        p, k = enc.encode(img, i * 50)
        frames.append((p, k, enc.last_discardable))
    assert [(k, d) for _, k, d in frames] == [(True, False), (False, True), (False, False), (False, True),
                                              (False, False), (False, True), (False, False)]
    for p, k, d in frames[:2]:
        assert dec.decode(p, k, d) is not None
    assert dec.decode(*frames[3]) is None and dec.needs_keyframe   # reference 2 was lost


def test_a_relay_cannot_pass_a_reference_frame_off_as_discardable():
    enc, dec = VideoEncoder(48, 32, reference_every=2), VideoDecoder()
    imgs = moving_scene(3)
    dec.decode(*enc.encode(imgs[0], 0), False)
    p, k = enc.encode(imgs[1], 50)
    p2, k2 = enc.encode(imgs[2], 100)   # a reference delta
    with pytest.raises(PeerError, match="non-reference"):
        dec.decode(p2, k2, True)
    # and the wire flag is in the SFrame metadata the AEAD authenticates
    assert P.metadata(P.VIDEO, 0, 0, 5) != P.metadata(P.VIDEO, DISC, 0, 5)


def test_media_queue_thins_discardable_frames_before_it_breaks_a_chain():
    q, st = MediaQueue(budget_bytes=10_000), DropCounts()
    q.push(P.VIDEO, 7, b"K" * 3000, st, keyframe=True)
    q.push(P.VIDEO, 7, b"n" * 1000, st, discardable=True)     # 4 KB: under half the budget, queued
    q.push(P.VIDEO, 7, b"r" * 800, st)
    assert q.push(P.VIDEO, 7, b"m" * 1000, st, discardable=True) == ()   # over half: not queued
    assert st.video_thinned == 1 and len(q) == 3
    q.push(P.VIDEO, 7, b"s" * 4000, st)                         # 8.8 KB
    assert q.push(P.VIDEO, 7, b"t" * 1500, st) == ()            # over: the queued "n" goes, no chain breaks
    assert st.video_thinned == 2 and st.video_dropped == 0 and not q.broken
    out = []
    q.drain(1 << 30, out)
    assert [x[:1] for x in out] == [b"K", b"r", b"s", b"t"]
    assert q.nbytes == q.media_bytes == 0


def test_media_queue_breaks_a_chain_only_when_nothing_discardable_is_left():
    q, st = MediaQueue(budget_bytes=1200), DropCounts()   # (the keyframe does not count)
    q.push(P.VIDEO, 1, b"K" * 2000, st, keyframe=True)
    q.push(P.VIDEO, 2, b"r" * 500, st)
    q.push(P.VIDEO, 2, b"n" * 100, st, discardable=True)  # media over half the budget: not queued
    q.push(P.VIDEO, 1, b"d" * 300, st)
    assert q.push(P.VIDEO, 1, b"e" * 600, st) == (1,)   # deltas over: the newest delta
    assert st.video_thinned == 1 and st.video_dropped == 1 and q.broken == {1}
    q.push(P.VIDEO, 1, b"f" * 10, st, discardable=True)  # coded against "e": useless, dropped
    assert st.video_dropped == 2
    q2, st2 = MediaQueue(max_queued_bytes=2500), DropCounts()
    q2.push(P.VIDEO, 1, b"K" * 1000, st2, keyframe=True)
    q2.push(P.VIDEO, 1, b"r" * 500, st2)
    q2.push(P.VIDEO, 1, b"s" * 500, st2)
    q2.push(P.VIDEO, 2, b"x" * 300, st2)
    q2.push(P.VIDEO, 1, b"n" * 100, st2, discardable=True)   # coded against "s"
    assert q2.push(P.VIDEO, 2, b"y" * 300, st2) == (2,)      # "n" thinned first, then key 2's newest
    assert st2.video_thinned == 1 and st2.video_dropped == 1 and q2.broken == {2}
    out = []
    q2.drain(1 << 30, out)
    assert [x[:1] for x in out] == [b"K", b"r", b"s", b"x"]
    out = []
    q.drain(1 << 30, out)
    assert [x[:1] for x in out] == [b"K", b"r", b"d"]


def test_slow_receiver_loses_only_discardable_frames_and_never_a_keyframe():
    h = Harness()
    a, b, c = h.join(name="a"), h.join(name="b"), h.join(name="c")
    h.pump()
    _slow_link(h, a, c, 5000)          # c's path carries 20 KB/s: 150 ms is 3 KB -> the 8 KB floor
    assert h.relay.conns[c].q.budget_bytes == pacing.MIN_BUDGET_BYTES
    h.pump()
    seq = 0
    sent = {}
    taken = []
    for gop in range(3):
        for i in range(16):       # K n r n r ... at 1.2 KB a delta
            flags = KEY if i == 0 else (DISC if i % 2 else 0)
            size = 6000 if i == 0 else 1200
            h.feed(a, frame(P.VIDEO, bytes([seq % 256]) * size, flags=flags, seq=seq))
            sent[seq] = flags
            seq += 1
            if i % 2:               # c's socket takes about one frame (~1 KB lowat) per 2 sent
                h.relay.set_writable(c, True, h.now_ms)
                taken.append(h.relay.data_to_send(c))
                h.relay.set_writable(c, False, h.now_ms)
    h.relay.set_writable(c, True, h.now_ms)
    h.out[c].receive_data(b"".join(taken))
    got = h.pump()
    assert [f.seq for f in got[b] if f.type == P.VIDEO] == list(range(seq))   # b: everything
    at_c = [f.seq for f in got[c] if f.type == P.VIDEO]
    assert at_c == sorted(at_c)
    st = h.relay.rooms["room"].stats
    missing = set(range(seq)) - set(at_c)
    assert missing, "the budget never bit: the test proves nothing"
    keys_at_c = [s for s in at_c if sent[s] == KEY]
    assert keys_at_c == [s for s in sent if sent[s] == KEY]      # every keyframe arrived
    # what c lost is non-reference pictures, or older pictures a later keyframe superseded
    assert all(sent[s] == DISC or any(k > s for k in keys_at_c) for s in missing)
    assert st.video_thinned > 0 and st.video_dropped == 0 and st.refresh_asked == 0
    assert [f for f in got[a] if f.type == P.REFRESH] == []
