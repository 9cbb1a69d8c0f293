"""The relay's audio hold (s2c.relay.coalesce): a lone audio frame for a receiver waits a few
ms so that the other talkers' frames (or a picture) leave in the same write."""

from s2c import wire as P
from s2c.relay.coalesce import AudioHold

from test_relay_core import Harness, frame, types


def writes(h):
    """One entry per write the adapter would make: {cid: [frame types]} for what is due now."""
    h.relay.release_held(h.now_ms)
    out = {}
    for cid in h.relay.pop_dirty():
        data = h.relay.data_to_send(cid)
        p = P.FrameParser()
        p.receive_data(data)
        out[cid] = types(p.frames())
    return out


def test_two_talkers_audio_shares_one_write_within_the_hold():
    h = Harness(audio_hold_ms=8.0)
    a, b, c = h.join(name="a"), h.join(name="b"), h.join(name="c")
    d = h.join(name="d")
    h.pump()
    h.feed(a, frame(P.AUDIO, b"a1"))
    assert writes(h) == {}                      # held: nothing for b or c yet
    assert h.relay.next_hold_ms() == h.now_ms + 8.0
    h.now_ms += 5.0
    h.feed(b, frame(P.AUDIO, b"b1"))
    assert writes(h) == {}                      # c's write still held (due at 8 ms), a's now too
    h.now_ms += 3.0
    got = writes(h)
    assert got[c] == [P.AUDIO, P.AUDIO] == got[d]   # a's and b's frames in one write
    assert got[b] == [P.AUDIO] and a not in got  # a's hold (from b's frame) is due at 13 ms
    h.now_ms += 5.0
    assert writes(h) == {a: [P.AUDIO]}
    assert h.relay.next_hold_ms() is None


def test_a_picture_takes_held_audio_with_it_at_once():
    h = Harness(audio_hold_ms=8.0)
    a, b, c = h.join(name="a"), h.join(name="b"), h.join(name="c")
    d = h.join(name="d")
    h.pump()
    h.feed(a, frame(P.AUDIO, b"a1"))
    h.feed(b, frame(P.STATE, b"{}"))           # anything not audio goes now, held audio with it
    got = writes(h)
    assert got[c] == [P.AUDIO, P.STATE] == got[d] and got[a] == [P.STATE]
    assert b not in got                         # b's copy of a's audio is still held
    h.now_ms += 8.0
    assert writes(h) == {b: [P.AUDIO]}


def test_three_party_call_and_hold_zero_do_not_hold():
    for cfg, names in (({"audio_hold_ms": 8.0}, ("a", "b", "c")), ({"audio_hold_ms": 0.0}, ("a", "b", "c", "d"))):
        h = Harness(**cfg)
        ids = [h.join(name=n) for n in names]
        h.pump()
        h.feed(ids[0], frame(P.AUDIO, b"a1"))
        assert writes(h) == {r: [P.AUDIO] for r in ids[1:]}
        assert h.relay.next_hold_ms() is None


def test_a_departed_receiver_is_not_held():
    h = Harness(audio_hold_ms=8.0)
    a, b, c = h.join(name="a"), h.join(name="b"), h.join(name="c")
    d = h.join(name="d")
    h.pump()
    h.feed(a, frame(P.AUDIO, b"a1"))
    h.relay.connection_lost(c, h.now_ms)
    h.now_ms += 8.0
    got = writes(h)
    assert c not in got and got[b][-1] == P.AUDIO == got[d][-1]


def test_hold_bookkeeping():
    hold = AudioHold(8.0)
    hold.hold(1, 0.0)
    hold.hold(1, 5.0)            # the first frame sets the due time
    hold.hold(2, 3.0)
    assert hold.next_due_ms() == 8.0
    assert hold.pop_due(7.9) == []
    assert hold.pop_due(8.0) == [1]
    hold.release([2])
    assert hold.next_due_ms() is None and hold.pop_due(100.0) == []
