"""Catch-up after a stall (issue 12): the jitter buffer hands out pairs while it holds more than
its target and the splicer squeezes each pair into one frame period, period-matched; over a path
whose stalls deliver every frame late (TCP), every frame is played and the delay comes back."""

import numpy as np
import pytest

from s2c.audio import FRAME_SAMPLES, SAMPLE_RATE_HZ
from s2c.audio.catchup import SEARCH_SAMPLES, CatchUp, best_lag, play_item
from s2c.audio.jitter import LOST, Compress, JitterBuffer
from s2c.audio.opus import AudioDecoder, AudioEncoder


def arrivals(n_frames, stalls=(), base_ms=30.0, jitter_ms=0.0, seed=1):
    """Frame k is sent at k*20 ms and arrives base_ms (+ uniform jitter) later, in order (TCP);
    a stall (start_ms, length_ms) holds everything sent meanwhile until its end."""
    rng = np.random.default_rng(seed)
    out, last = [], 0.0
    for k in range(n_frames):
        t = k * 20.0 + base_ms + rng.uniform(0, jitter_ms)
        for s, length in stalls:
            if s <= t < s + length:
                t = s + length
        last = t = max(t, last)          # in order
        out.append((t, k))
    return out


def play(jb, arr, ticks):
    """Run the playout clock; returns {seq: delay_ms at play} and the number of pops that played."""
    i, delays = 0, {}
    for tick in range(ticks):
        now = tick * 20.0 + 7.0
        while i < len(arr) and arr[i][0] <= now:
            jb.push(arr[i][1], arr[i][1] * 20.0, arr[i][1], arr[i][0])
            i += 1
        out = jb.pop(now)
        items = out.items if isinstance(out, Compress) else (() if out is None or out is LOST else (out,))
        for seq in items:
            delays[seq] = now - seq * 20.0
    return delays


def _path_stalls(every_ms=1500, length_ms=90, until_ms=20_000):
    return [(t, length_ms) for t in range(1000, until_ms, every_ms)]


def test_every_frame_plays_over_a_stalling_tcp_path_and_the_delay_comes_back():
    n = 20_000 // 20
    stalls = _path_stalls()
    old = JitterBuffer(stall_target_max_ms=200)
    new = JitterBuffer(stall_target_max_ms=200, capacity_ms=500, catchup=True)
    d_old = play(old, arrivals(n, stalls, jitter_ms=5), n + 60)
    d_new = play(new, arrivals(n, stalls, jitter_ms=5), n + 60)
    assert len(d_new) == n, (len(d_new), new.snapshot())          # nothing thrown away
    assert new.stats.dropped_overflow == 0 and new.stats.dropped_excess == 0
    assert new.stats.compressed > 0
    assert len(d_old) < n                                          # the old policy cut bursts
    # the delay does not ratchet up: late frames are played faster until the target is back
    late = [d_new[k] for k in range(n - 100, n)]
    assert max(late) <= 30 + new.target_ms + 3 * 20 + 10, (max(late), new.snapshot())
    assert np.percentile(list(d_new.values()), 99) <= np.percentile(list(d_old.values()), 99) + 20


def test_a_calm_path_is_not_delayed_more_than_before():
    n = 10_000 // 20
    old = JitterBuffer(stall_target_max_ms=200)
    new = JitterBuffer(stall_target_max_ms=200, capacity_ms=500, catchup=True)
    d_old = play(old, arrivals(n, jitter_ms=4, seed=3), n + 20)
    d_new = play(new, arrivals(n, jitter_ms=4, seed=3), n + 20)
    assert len(d_new) == n and new.stats.compressed == 0
    assert np.median(list(d_new.values())) <= np.median(list(d_old.values())) + 1


def test_a_burst_beyond_capacity_is_still_cut():
    jb = JitterBuffer(stall_target_max_ms=200, capacity_ms=500, catchup=True)
    play(jb, arrivals(200, [(1000, 1500)]), 210)        # an outage-like 1.5 s stall
    assert jb.stats.dropped_overflow > 0


def test_compress_is_not_handed_out_across_a_silence_marker():
    jb = JitterBuffer(catchup=True, capacity_ms=500)
    for k in range(30):
        jb.push(k, k * 20.0, k, 0.0, silence=(k == 1))
    outs = [jb.pop(20.0 * t + 25) for t in range(3)]
    assert not any(isinstance(o, Compress) for o in outs[:2])


def _tone(n, hz=440.0, phase=0):
    t = (np.arange(n) + phase) / SAMPLE_RATE_HZ
    return (8000 * np.sin(2 * np.pi * hz * t)).astype(np.int16)


@pytest.mark.parametrize("hz", [180.0, 440.0, 630.0])
def test_splice_keeps_a_tone_continuous(hz):
    cu = CatchUp()
    src = _tone(FRAME_SAMPLES * 12, hz)
    frames = [src[i * FRAME_SAMPLES:(i + 1) * FRAME_SAMPLES] for i in range(12)]
    out = [cu.normal(frames[0])]
    i = 1
    while i + 2 < 12:                                    # compress, normal, compress, ...
        out.append(cu.compress(frames[i], frames[i + 1]))
        out.append(cu.normal(frames[i + 2]))
        i += 3
        assert len(cu.carry) <= SEARCH_SAMPLES
    y = np.concatenate(out).astype(np.float64)
    assert len(y) == len(out) * FRAME_SAMPLES and cu.compressed == 3
    step = np.abs(np.diff(y)).max()
    pure = np.abs(np.diff(src.astype(np.float64))).max()
    assert step <= 1.05 * pure + 2, (step, pure)          # no click at a splice
    # the envelope (peak over every period-long stretch) never dips: a cut of the wrong
    # length cross-fades mismatched phases, which cancel (2484..6475 of 8000 measured)
    per = int(SAMPLE_RATE_HZ / hz) + 1
    env = min(np.abs(y[j:j + per]).max() for j in range(0, len(y) - per))
    assert env > 0.97 * 8000, env


def test_best_lag_finds_the_period():
    period = 120                                   # 400 Hz at 48 kHz
    x = _tone(3000, SAMPLE_RATE_HZ / period).astype(np.float32)
    r = best_lag(x, 240, 600, 1080)
    assert r % period == 0 and 600 <= r <= 1080


def test_play_item_decodes_both_frames_of_a_pair():
    enc, dec, cu = AudioEncoder("opus"), AudioDecoder(), CatchUp()
    src = _tone(FRAME_SAMPLES * 3, 300.0)
    pays = [(enc.encode(src[i * FRAME_SAMPLES:(i + 1) * FRAME_SAMPLES]), i, i * 20_000) for i in range(3)]
    pcm, played, bad = play_item(dec, cu, pays[0], LOST, Compress)
    assert pcm.shape == (FRAME_SAMPLES,) and played == [(0, 0)] and bad == 0
    pcm, played, bad = play_item(dec, cu, Compress(pays[1], pays[2]), LOST, Compress)
    assert pcm.shape == (FRAME_SAMPLES,) and pcm.dtype == np.int16
    assert played == [(1, 20_000), (2, 40_000)] and bad == 0 and cu.compressed == 1
    pcm, played, bad = play_item(dec, cu, (b"\xff\x00", 3, 0), LOST, Compress)
    assert bad == 1 and pcm.shape == (FRAME_SAMPLES,)


def test_stalls_longer_than_the_allowance_cap_still_cost_no_frame():
    """150 ms base delay, stalls of 150-280 ms (a 150 ms RTT path's recoveries): the talker
    goes idle in a stall longer than the allowance and restarts on the burst at once."""
    n = 30_000 // 20
    rng = np.random.default_rng(5)
    stalls, t = [], 500.0
    while t < 30_000:
        length = float(rng.uniform(150, 280))
        stalls.append((t, length))
        t += length + float(rng.uniform(300, 900))
    old = JitterBuffer(stall_target_max_ms=200)
    new = JitterBuffer(stall_target_max_ms=200, capacity_ms=500, catchup=True)
    d_old = play(old, arrivals(n, stalls, base_ms=150, jitter_ms=3), n + 60)
    d_new = play(new, arrivals(n, stalls, base_ms=150, jitter_ms=3), n + 60)
    assert len(d_new) == n and new.stats.dropped_overflow == 0, new.snapshot()
    assert len(d_old) < 0.97 * n
    assert np.percentile(list(d_new.values()), 99) <= np.percentile(list(d_old.values()), 99) + 20
