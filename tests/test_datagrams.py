"""s2c.wire.datagrams (sans-I/O): fragments, reassembly in order, NACK repair, deadlines, audio
redundancy, duplicates and garbage; plus the relay core's receive_frame (a datagram's frame)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings, strategies as st

from s2c import wire as P
from s2c.relay.core import Relay, RelayConfig
from s2c.wire.datagrams import (FRAG, MAX_DATAGRAM_BYTES, NACK, NACK_ENTRY, NACK_HDR, DatagramReceiver,
                                DatagramSender, split_media)

MAXF = P.DEFAULT_MAX_FRAME_BYTES


def video(seq: int, n: int, sender: int = 0, stream: int = 0) -> bytes:
    body = bytes((seq * 7 + i) & 0xFF for i in range(n))
    return P.serialize(P.Frame(P.VIDEO, body, 0, stream, sender, 0, seq, 1000 + seq))


def audio(seq: int, n: int = 90, sender: int = 0) -> bytes:
    return P.serialize(P.Frame(P.AUDIO, bytes([seq & 0xFF]) * n, 0, 0, sender, 0, seq, 5000 + seq))


def test_small_and_large_video_fit_and_come_back_whole():
    tx, rx = DatagramSender(), DatagramReceiver(MAXF)
    got = []
    for seq, n in enumerate([100, 1600, 6700, 40_000]):
        f = video(seq, n)
        ds = tx.pack(f, 0)
        assert all(len(d) <= MAX_DATAGRAM_BYTES for d in ds)
        assert len(ds) == -(-len(f) // DatagramSender().chunk_bytes)
        for d in ds:
            got += rx.receive(d, 0)
        assert got[-1] == f
    assert len(got) == 4


def test_reorder_within_and_across_frames_is_delivered_in_order():
    tx, rx = DatagramSender(), DatagramReceiver(MAXF)
    frames = [video(s, 3000) for s in range(5)]
    ds = [d for f in frames for d in tx.pack(f, 0)]
    random.Random(3).shuffle(ds)
    out = []
    for d in ds:
        out += rx.receive(d, 10)
    assert out == frames


def test_duplicates_are_dropped_and_counted():
    tx, rx = DatagramSender(), DatagramReceiver(MAXF)
    f = video(0, 2500)
    ds = tx.pack(f, 0)
    out = []
    for d in ds + ds:
        out += rx.receive(d, 0)
    assert out == [f]
    assert rx.stats["duplicates"] == len(ds)


def test_lost_fragment_is_nacked_and_repaired_by_the_sender():
    tx, rx = DatagramSender(), DatagramReceiver(MAXF)
    f0, f1 = video(0, 3000), video(1, 500)
    d0, d1 = tx.pack(f0, 0), tx.pack(f1, 0)
    out = [x for d in d0[:1] + d0[2:] + d1 for x in rx.receive(d, 1000)]
    assert out == []                         # f1 waits for f0 (a delta needs its reference)
    frames, nack = rx.poll(2000)
    assert frames == [] and nack is not None and nack[0] == NACK
    _s, _st, _z, msg, mask = NACK_ENTRY.unpack_from(nack, NACK_HDR.size)
    assert msg == 0 and mask == 0b10
    again = tx.on_nack(nack, 30_000)
    assert again == [d0[1]]
    out = [x for d in again for x in rx.receive(d, 40_000)]
    assert out == [f0, f1]
    assert tx.stats["repaired"] == 1


def test_wholly_lost_frame_is_nacked_then_given_up_after_the_deadline():
    tx, rx = DatagramSender(), DatagramReceiver(MAXF, deadline_us=100_000)
    f = [video(s, 800) for s in range(3)]
    ds = [tx.pack(x, 0) for x in f]
    assert rx.receive(ds[0][0], 0) == [f[0]]
    assert rx.receive(ds[2][0], 10_000) == []          # f[1] missing: f[2] held
    _frames, nack = rx.poll(12_000)
    assert NACK_ENTRY.unpack_from(nack, NACK_HDR.size)[4] == (1 << 64) - 1   # the whole message
    frames, _ = rx.poll(50_000)
    assert frames == []
    frames, _ = rx.poll(111_000)                         # past the deadline: give f[1] up
    assert frames == [f[2]]
    assert rx.stats["video_lost"] == 1
    assert rx.receive(ds[1][0], 120_000) == []          # too late now: a duplicate of the past
    assert rx.stats["duplicates"] == 1


def test_sender_does_not_repair_what_is_too_old():
    tx = DatagramSender(keep_us=100_000)
    tx.pack(video(0, 3000), 0)
    nack = NACK_HDR.pack(NACK, 1) + NACK_ENTRY.pack(0, 0, 0, 0, 1)
    assert tx.on_nack(nack, 200_000) == []
    assert tx.stats["repair_too_late"] == 1
    assert tx.on_nack(b"\xd3\x05short", 0) == [] and tx.stats["bad_nacks"] == 1


def test_streams_are_independent():
    tx, rx = DatagramSender(), DatagramReceiver(MAXF)
    a0, a1 = video(0, 2000, sender=1), video(1, 2000, sender=1)
    b0 = video(0, 2000, sender=2)
    da0, da1, db0 = tx.pack(a0, 0), tx.pack(a1, 0), tx.pack(b0, 0)
    out = [x for d in da0[:1] + da1 + db0 for x in rx.receive(d, 0)]
    assert out == [b0]                       # sender 2 is not held behind sender 1's hole


def test_audio_redundancy_recovers_a_single_loss_and_drops_duplicates():
    tx, rx = DatagramSender(), DatagramReceiver(MAXF)
    frames = [audio(s) for s in range(6)]
    ds = [tx.pack(f, 0) for f in frames]
    assert all(len(x) == 1 for x in ds)
    out = []
    for i, d in enumerate(ds):
        if i == 2:
            continue                         # lost: frame 2 comes back inside datagram 3
        out += rx.receive(d[0], i)
    assert out == frames
    assert rx.stats["audio_recovered"] == 1
    assert rx.stats["duplicates"] == 3       # the copies of 0, 3, 4 (2 was missing: recovered)


def test_audio_without_redundancy_when_it_would_not_fit():
    tx = DatagramSender()
    a, b = audio(0, 700), audio(1, 700)
    tx.pack(a, 0)
    assert tx.pack(b, 0) == [b]


@pytest.mark.parametrize("bad", [b"", b"\x00", b"\xd1" + b"\x00" * 12, b"\xd1\x05\x07\x00" + b"\x00" * 9,
                                 b"\x01" + b"\x00" * 10, b"\xff" * 40,
                                 P.serialize(P.Frame(P.CHAT, b"x")),
                                 audio(0)[:-1], audio(0) + b"\x01"])
def test_garbage_is_counted_not_raised(bad):
    rx = DatagramReceiver(MAXF)
    assert rx.receive(bad, 0) == []
    assert rx.stats["garbage"] == 1


def test_fragments_that_do_not_form_a_video_frame_are_dropped():
    rx = DatagramReceiver(MAXF)
    d = bytes([FRAG, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]) + P.serialize(P.Frame(P.AUDIO, b"zz"))
    assert rx.receive(d, 0) == []
    assert rx.stats["garbage"] == 1


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 9000), min_size=1, max_size=12), st.integers(0, 2**32 - 1),
       st.floats(0.0, 0.3), st.integers(0, 10**6))
def test_property_loss_reorder_duplicates_never_wrong_frames_in_order(sizes, msg0, loss, seed):
    rnd = random.Random(seed)
    # the deadline outlasts the whole shuffled arrival (1 ms per datagram, < 200 of them): a frame
    # whose pieces arrive further apart than the deadline is given up by design, which would make
    # "no loss -> every frame" false (hypothesis found 60 datagrams spread over 60 ms > 50 ms)
    tx, rx = DatagramSender(), DatagramReceiver(MAXF, deadline_us=1_000_000)
    tx._msg[(0, 0)] = msg0 - 1 & 0xFFFFFFFF   # start anywhere, wrap included
    if seed % 2:
        tx.fec.k = 1 + seed % 5                # with group parity too (s2c.wire.fec)
    frames = [video(s, n) for s, n in enumerate(sizes)]
    ds = [d for f in frames for d in tx.pack(f, 0) if rnd.random() >= loss]
    ds += rnd.sample(ds, len(ds) // 4)
    first = ds[:1]                  # the stream's first datagram opens it (numbering may start anywhere)
    rest = ds[1:]
    rnd.shuffle(rest)
    ds = first + rest
    out = []
    t = 0
    for d in ds:
        t += 1000
        out += rx.receive(d, t)
    out += rx.poll(t + 10**6)[0]
    assert all(f in frames for f in out)
    idx = [frames.index(f) for f in out]
    assert idx == sorted(set(idx))               # in order, each at most once
    if loss == 0.0:
        assert out == frames


def test_split_media_keeps_control_on_the_stream_in_order():
    parts = [P.serialize(P.Frame(P.WELCOME, b"{}")), video(0, 50), P.serialize(P.Frame(P.CHAT, b"hi")),
             audio(0), P.serialize(P.Frame(P.KEY, b"k"))]
    stream, media = split_media(b"".join(parts))
    assert stream == parts[0] + parts[2] + parts[4]
    assert media == [parts[1], parts[3]]


# ---- the relay core's datagram entry ------------------------------------------------------------

def _joined(relay, name, now=0.0):
    cid = relay.open("127.0.0.1", now)
    relay.receive_data(cid, P.serialize(P.Frame(P.JOIN, P.encode_join("r", name, {}))), now)
    relay.data_to_send(cid)
    return cid


def test_relay_receive_frame_forwards_one_frame_with_the_sender_patched():
    relay = Relay(RelayConfig())
    a, b = _joined(relay, "a"), _joined(relay, "b")
    relay.data_to_send(a)
    f = video(3, 500)
    assert relay.receive_frame(a, f, 1.0)
    out = relay.data_to_send(b)
    assert out[P.SENDER_OFFSET:P.SENDER_END] == a.to_bytes(2, "big") and out[8:] == f[8:]


def test_relay_receive_frame_keeps_the_streams_partial_frame():
    relay = Relay(RelayConfig())
    a, b = _joined(relay, "a"), _joined(relay, "b")
    relay.data_to_send(a)
    chat = P.serialize(P.Frame(P.CHAT, b"hello"))
    relay.receive_data(a, chat[:10], 1.0)
    assert relay.receive_frame(a, audio(0), 1.0)
    relay.receive_data(a, chat[10:], 1.0)
    out = relay.data_to_send(b)
    assert out.endswith(chat[P.SENDER_END:]) and len(out) == len(audio(0)) + len(chat)


@pytest.mark.parametrize("bad", [b"", audio(0)[:-1], audio(0) + b"x", P.serialize(P.Frame(P.JOIN, b"{}")),
                                 b"\x02" + audio(0)[1:]])
def test_relay_receive_frame_drops_bad_datagrams_and_keeps_the_connection(bad):
    relay = Relay(RelayConfig())
    a, b = _joined(relay, "a"), _joined(relay, "b")
    relay.data_to_send(a)
    assert not relay.receive_frame(a, bad, 1.0)
    assert relay.totals["bad_datagrams"] == 1
    assert relay.receive_frame(a, audio(1), 1.0)
    assert relay.data_to_send(b)


def test_relay_receive_frame_before_join_is_dropped():
    relay = Relay(RelayConfig())
    a = relay.open("127.0.0.1", 0.0)
    assert not relay.receive_frame(a, audio(0), 0.0)
    assert relay.pop_closing() == []


def test_a_hostile_sender_cannot_make_the_receiver_hold_more_than_its_budget():
    rx = DatagramReceiver(MAXF, deadline_us=100_000, max_buffered_bytes=200_000)
    chunk = b"\x00" * 1000
    n = 0
    for sender in range(64):
        for msg in range(60):       # count 64, only fragment 0 of each: never complete
            d = bytes([FRAG, 64, 0, 0]) + sender.to_bytes(2, "big") + bytes([0, 0]) + msg.to_bytes(4, "big") + chunk
            rx.receive(d, 0)
            n += 1
            assert rx.buffered_bytes <= 200_000
    assert rx.stats["garbage"] > 0
    rx.poll(10**6)
    rx.poll(2 * 10**6)
    assert rx.buffered_bytes == 0


def test_fragments_trickling_in_over_a_slow_link_are_not_asked_for_again():
    """On a 300 kbit/s link a 1 KB fragment takes ~27 ms: a keyframe's fragments come that far
    apart, and a NACK 15 ms after one of them asked for fragments still on their way."""
    tx, rx = DatagramSender(), DatagramReceiver(1 << 20)
    t, nacks = 0, 0
    for d in tx.pack(video(0, 2000), 0):           # the hop's first picture shows its pace
        rx.receive(d, t)
        t += 27_000
    f = video(1, 6000)
    ds = tx.pack(f, t)
    out = []
    for d in ds:
        out += rx.receive(d, t)
        for dt in (10_000, 20_000):                 # polls between arrivals
            nacks += rx.poll(t + dt)[1] is not None
        t += 27_000
    assert out == [f] and nacks == 0
    # a message whose tail really stops coming is still asked for, a few gaps later
    f2 = video(2, 6000)
    ds = tx.pack(f2, t)
    for d in ds[:3]:
        rx.receive(d, t)
        t += 27_000
    assert any(rx.poll(t + k * 10_000)[1] is not None for k in range(12))
