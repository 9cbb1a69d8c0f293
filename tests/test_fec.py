"""s2c.wire.fec with the hop's sender and receiver (sans-I/O): XOR parity over groups of
fragments of any streams rebuilds one loss per group without a round trip, NACKs wait for it,
two losses still get a NACK, the parity rate follows the measured loss, garbage is contained."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings, strategies as st

from s2c import wire as P
from s2c.wire.datagrams import (FRAG, MAX_DATAGRAM_BYTES, MIN_SPLIT_DGRAM, NACK_ENTRY, NACK_HDR, DatagramReceiver,
                                DatagramSender)
from s2c.wire.reassembly import FEC_REORDER_US, FEC_SETTLE_US
from s2c.wire.fec import FEC, LossMeter, flush_wait_us, group_size, pack_fec, unpack_fec

MAXF = P.DEFAULT_MAX_FRAME_BYTES


def video(seq: int, n: int, sender: int = 0, stream: int = 0) -> bytes:
    body = bytes((seq * 7 + i + sender) & 0xFF for i in range(n))
    return P.serialize(P.Frame(P.VIDEO, body, 0, stream, sender, 0, seq, 1000 + seq))


def _split(ds):
    return [d for d in ds if d[0] != FEC], [d for d in ds if d[0] == FEC]


@pytest.mark.parametrize("size", [60, 1500, 2300, 6700])
def test_a_group_parity_rebuilds_any_one_lost_fragment_without_a_nack(size):
    frames = [video(s, size, sender=s % 2) for s in range(4)]
    for k in (2, 4):
        tx = DatagramSender(fec_k=k)
        ds = [d for i, f in enumerate(frames) for d in tx.pack(f, i * 1000)] + tx.poll(10**6)
        data, parity = _split(ds)
        assert parity and len(parity) == -(-len(data) // k)
        for lost in range(len(data)):
            rx = DatagramReceiver(MAXF)
            out = [x for d in ds if d is not data[lost] for x in rx.receive(d, 5000)]
            assert sorted(out) == sorted(frames), (k, lost)
            assert rx.stats["fec_recovered"] == 1
            assert rx.poll(100_000)[1] is None          # nothing to ask for


def test_every_datagram_fits_the_budget_parity_included():
    tx = DatagramSender(fec_k=50)           # more than MAX_GROUP: capped
    ds = [d for s in range(20) for d in tx.pack(video(s, 5000 + s), s)] + tx.poll(10**6)
    tx.poll(0)
    ds += [d for s in range(20, 30) for d in tx.pack(video(s, 3000), s)]
    assert any(d[0] == FEC for d in ds)
    assert max(len(d) for d in ds) <= MAX_DATAGRAM_BYTES


def test_a_partial_group_gets_its_parity_after_the_wait():
    tx = DatagramSender(fec_k=8)
    tx.fec.wait_us = None                              # a clean path: full groups only
    assert len(tx.pack(video(0, 1500), 0)) == 2       # two fragments, no parity yet
    assert tx.poll(10**6) == []
    tx.fec.wait_us = flush_wait_us(0.01, 0.05)         # lossy, RTT 50 ms: 20 ms
    assert tx.poll(5_000) == []
    p = tx.poll(20_000)
    assert len(p) == 1 and p[0][0] == FEC and unpack_fec(p[0])[1][1][3] == 1


def test_no_parity_with_k_zero_or_while_the_adapter_says_no_redundancy():
    for tx in (DatagramSender(fec_k=0), DatagramSender(fec_k=2, redundancy=False)):
        assert len(tx.pack(video(0, 1500), 0)) == 2 and tx.poll(10**6) == []


def test_two_losses_in_a_group_are_nacked_once_the_parity_shows_them_lost():
    tx, rx = DatagramSender(fec_k=4), DatagramReceiver(MAXF)
    f0, f1 = video(0, 2000), video(1, 2000)
    ds = tx.pack(f0, 0) + tx.pack(f1, 0)           # 4 data + 1 parity
    data, parity = _split(ds)
    for d in (data[0], data[2], parity[0]):
        rx.receive(d, 1000)
    # the parity came after its fragments: two still missing a reordering's grace later are lost,
    # asked for at once rather than after the settle time
    assert rx.poll(1000 + FEC_REORDER_US - 1)[1] is None
    _frames, nack = rx.poll(1000 + FEC_REORDER_US)
    assert nack is not None and FEC_REORDER_US < FEC_SETTLE_US
    asked = {NACK_ENTRY.unpack_from(nack, NACK_HDR.size + i * NACK_ENTRY.size)[3]
             for i in range(nack[1])}
    assert asked == {0, 1}
    rep = tx.on_nack(nack, 70_000)
    out = [x for d in rep[:1] for x in rx.receive(d, 80_000)]   # one repair: the parity does the other
    assert out == [f0, f1]


def test_parity_waiting_for_a_second_chunk_uses_it_when_it_comes():
    tx, rx = DatagramSender(fec_k=3), DatagramReceiver(MAXF)
    fs = [video(i, 500) for i in range(3)]
    ds = [d for f in fs for d in tx.pack(f, 0)]
    data, parity = _split(ds)
    assert rx.receive(parity[0], 0) == []          # before any data: kept
    assert rx.receive(data[1], 1) == []
    # now only frame 0 is missing: rebuilt at once, and 1 and 2 held behind it follow
    assert rx.receive(data[2], 2) == fs and rx.stats["fec_recovered"] == 1


@pytest.mark.parametrize("bad", [
    bytes([FEC]), bytes([FEC, 0, 0, 0]) + b"x",
    bytes([FEC, 1, 0, 5]) + bytes(9),                       # no parity bytes
    bytes([FEC, 1, 0, 5]) + bytes([0, 0, 0, 0, 3]) + bytes(4) + b"abc",   # count 0
    bytes([FEC, 40, 0, 5]) + bytes(400),                    # more than MAX_GROUP
])
def test_malformed_fec_is_garbage_not_an_error(bad):
    rx = DatagramReceiver(MAXF)
    assert rx.receive(bad, 0) == [] and rx.stats["garbage"] == 1


def test_fec_whose_lengths_do_not_add_up_rebuilds_nothing():
    rx = DatagramReceiver(MAXF)
    d = pack_fec([(0, 0, 1, 0, 0)], [b"abc"])
    d = d[:2] + (60000).to_bytes(2, "big") + d[4:]      # xlen claims a huge chunk
    assert rx.receive(d, 0) == [] and rx.stats["garbage"] == 1


def test_group_size_falls_with_loss_and_the_meter_follows_counts():
    ks = [group_size(x) for x in (0.0, 0.004, 0.01, 0.03, 0.1)]
    assert ks == sorted(ks, reverse=True) and ks[0] > ks[-1] >= 2
    m = LossMeter(window=100, initial=0.0)
    m.update(0, 0)
    assert m.update(100, 3) == pytest.approx(0.03)     # up at once
    x = m.update(200, 3)
    assert 0 < x < 0.03                                  # down by halves
    assert flush_wait_us(0.0, 0.1) is None and flush_wait_us(0.01, 0.15) == 60_000


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 5000), min_size=1, max_size=12), st.integers(2, 6),
       st.floats(0, 0.3), st.integers(0, 10**6))
def test_property_with_fec_loss_and_reorder_never_wrong_frames_in_order(sizes, k, loss, seed):
    rnd = random.Random(seed)
    tx, rx = DatagramSender(fec_k=k), DatagramReceiver(MAXF, deadline_us=50_000)
    frames = [video(i, n) for i, n in enumerate(sizes)]
    ds = [d for i, f in enumerate(frames) for d in tx.pack(f, i)] + tx.poll(10**6)
    ds = [d for d in ds if rnd.random() >= loss]
    rnd.shuffle(ds)
    out = [x for d in ds for x in rx.receive(d, 10)] + rx.poll(10**6)[0]
    assert all(f in frames for f in out)
    assert [frames.index(f) for f in out] == sorted(frames.index(f) for f in out)


def test_on_a_lossy_path_a_batch_ends_with_its_parity_and_a_loss_is_rebuilt_on_arrival():
    tx, rx = DatagramSender(fec_k=4), DatagramReceiver(MAXF)
    tx.fec.wait_us = flush_wait_us(0.01, 0.05)         # lossy: partial groups are flushed
    f = video(0, 1500)
    ds = tx.pack(f, 0)
    assert [d[0] == FEC for d in ds] == [False, False]  # 2 of 4: the group is not full
    ds += tx.end_batch()                                # the end of this loop turn's frames
    assert [d[0] == FEC for d in ds] == [False, False, True] and tx.end_batch() == []
    assert rx.receive(ds[1], 1000) == [] and rx.receive(ds[2], 1000) == [f]   # fragment 0 lost
    assert rx.stats["fec_recovered"] == 1 and rx.poll(1_000_000)[1] is None
    clean = DatagramSender(fec_k=8)
    clean.fec.wait_us = None                            # a clean path: full groups only
    clean.pack(f, 0)
    assert clean.end_batch() == []


def test_the_repair_simulation_end_of_batch_parity_cuts_the_one_hop_tail():
    from s2c.bench.quic_repair import simulate
    old = simulate(seconds=20, loss=0.03, seed=4, end_batch=False)
    new = simulate(seconds=20, loss=0.03, seed=4, end_batch=True)   # the same losses
    assert new["video_lost"] == 0 and new["audio_missing_pct"] < 0.5
    assert old["video_late"] >= 20 and new["video_late"] * 4 <= old["video_late"]   # rebuilt on arrival
    assert new["video_p99_ms"] <= 25 + 5 + 1 < old["video_p99_ms"]   # one way + jitter: no waiting


def test_the_loss_meter_keeps_parity_on_a_path_that_keeps_losing_one_percent():
    rnd = random.Random(7)
    m, sent, lost, low = LossMeter(), 0, 0, 0
    m.update(0, 0)
    for _ in range(300):                 # windows of 200 packets, each lost with p = 1%
        sent += 200
        lost += sum(rnd.random() < 0.01 for _ in range(200))
        x = m.update(sent, lost)
        assert flush_wait_us(x, 0.05) is not None      # partial groups keep their parity
        low += group_size(x) > 4
    assert low < 300 * 0.15                            # mostly k = 4 (one parity per 4 fragments)


def test_a_message_lost_whole_is_asked_for_from_its_parity_before_the_next_message():
    """Both fragments of a message in one lost packet (and another fragment of its group): the
    parity names the message, so its NACK does not wait for the stream's next message."""
    tx, rx = DatagramSender(fec_k=4), DatagramReceiver(MAXF)
    f0, f1 = video(0, 2000), video(1, 2000)
    data, parity = _split(tx.pack(f0, 0) + tx.pack(f1, 0))   # 4 fragments, 1 parity over them
    assert rx.receive(data[0], 1000) == []           # message 0: its first fragment only
    assert rx.receive(parity[0], 2000) == []         # 0's second and 1's two lost (1 whole)
    _f, nack = rx.poll(2000 + FEC_REORDER_US)
    asked = {NACK_ENTRY.unpack_from(nack, NACK_HDR.size + i * NACK_ENTRY.size)[3]: NACK_ENTRY.unpack_from(
        nack, NACK_HDR.size + i * NACK_ENTRY.size)[4] for i in range(nack[1])}
    assert asked == {0: 0b10, 1: 0b11}               # message 1 with its count, from the parity
    out = [x for d in tx.on_nack(nack, 3000) for x in rx.receive(d, 4000)]
    assert out == [f0, f1]


def test_fragments_of_one_message_never_fit_one_packet_together():
    """aioquic fills a 1200-byte packet with what fits: a frame just over one chunk was cut
    1020 + a few bytes, both in one packet, and a lost packet took the whole message."""
    tx, rx = DatagramSender(), DatagramReceiver(MAXF)
    for n in (1021, 1100, 1180, 1500, 2040, 2100, 5000):
        f = video(n, n)
        ds = tx.pack(f, 0)
        frags = [d for d in ds if d[0] == FRAG]
        assert len(frags) == -(-len(f) // tx.chunk_bytes)
        assert all(len(d) >= MIN_SPLIT_DGRAM for d in frags) and 2 * (MIN_SPLIT_DGRAM + 3) > 1200
        assert len({len(d) for d in frags}) == 1     # equal: the parity is no longer than one
        assert [x for d in frags for x in rx.receive(d, 0)] == [f]   # the padding is dropped


def test_a_path_that_has_lost_nothing_is_measured_clean_within_three_windows():
    from s2c.quic_common import CLEAN_LOSS
    m = LossMeter()
    m.update(0, 0)
    xs = [m.update(200 * i, 0) for i in range(1, 4)]
    assert xs[-1] < CLEAN_LOSS < xs[0]          # the starting guess (1%) is gone after 3 windows
    m.update(800, 2)                             # a first loss: 1% at once ...
    assert m.loss == pytest.approx(0.01)
    assert m.update(1000, 2) == pytest.approx(0.008)   # ... and from then on it comes down slowly
