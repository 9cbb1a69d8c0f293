"""Jitter buffer, deterministic: simulated senders, networks and a 20 ms playout clock."""

from __future__ import annotations

import heapq
import random

import pytest

from s2c.audio.jitter import IDLE, LOST, SEQ_MOD, JitterBuffer


def simulate(duration_ms, *, drift=0.0, delay_ms=lambda n, rng: 5.0, loss=0.0, seed=1,
             first_seq=0, talk=None, buffers=1, tick_phase_ms=7.0, markers=True):
    """Run ``buffers`` talkers into their own JitterBuffer; return (buffers, trace).

    Sender frame n is captured at n * 20 * (1 - drift) ms of receiver time (drift > 0:
    the sender's clock runs fast), stamped ts_ms = n * 20 (sender clock), sent immediately
    and arrives ``delay_ms(n, rng)`` later (loss: dropped). ``talk(n)`` False: silent
    (one silence marker is sent at the start of each pause when ``markers``).
    trace: per tick, a list of (talker, result, depth_ms).
    """
    rng = random.Random(seed)
    jbs = [JitterBuffer() for _ in range(buffers)]
    events = []  # (time, order, kind, talker, seq, ts, payload, silence)
    order = 0
    period = 20.0 * (1.0 - drift)
    for t in range(buffers):
        seq = first_seq
        was_talking = False
        n = 0
        while n * period < duration_ms:
            talking = talk(n, t) if talk else True
            send = talking or (markers and was_talking and not talking)
            if send:
                if rng.random() >= loss:
                    at = n * period + 10.0 * t + delay_ms(n, rng)
                    heapq.heappush(events, (at, order, "push", t, seq % SEQ_MOD, n * 20.0,
                                            (t, n), not talking))
                    order += 1
                seq += 1
            was_talking = talking
            n += 1
    k = 0
    while k * 20 + tick_phase_ms < duration_ms + 200:
        heapq.heappush(events, (k * 20 + tick_phase_ms, order, "pop", None, None, None, None, None))
        order += 1
        k += 1
    trace = []
    while events:
        at, _, kind, t, seq, ts, payload, silence = heapq.heappop(events)
        if kind == "push":
            jbs[t].push(seq, ts, payload, at, silence=silence)
        else:
            trace.append([(i, jb.pop(at), jb.depth_ms) for i, jb in enumerate(jbs)])
    return jbs, trace


def played(trace, talker=0):
    return [r for tick in trace for (t, r, _) in tick if t == talker and r is not None and r is not LOST]


def test_in_order_no_jitter_plays_everything_in_order_at_min_depth():
    (jb,), trace = simulate(2000)
    got = played(trace)
    assert [n for _, n in got] == list(range(100))
    # the stream just stops (no silence marker): max_stall_frames of tail concealment
    assert jb.stats.lost == jb.max_stall_frames and jb.stats.late == 0
    assert jb.target_ms == 20
    assert max(d for tick in trace for (_, _, d) in tick) <= 60


def test_first_frame_waits_for_target_then_one_frame_per_tick():
    jb = JitterBuffer()
    assert jb.pop(0) is None  # nothing yet
    jb.push(0, 0.0, b"a", now_ms=1.0)
    assert jb.state == "buffering"
    assert jb.pop(10.0) is None  # held for target (20 ms)
    jb.push(1, 20.0, b"b", now_ms=21.0)
    assert jb.pop(21.0) == b"a"
    jb.push(2, 40.0, b"c", now_ms=41.0)
    assert jb.pop(41.0) == b"b"
    assert jb.pop(61.0) == b"c"


def test_reordering_within_depth_is_repaired():
    jb = JitterBuffer()
    jb.push(0, 0, "p0", 0)
    jb.push(2, 40, "p2", 5)
    jb.push(1, 20, "p1", 6)
    out = [jb.pop(t) for t in range(20, 200, 20)]  # the reordering raised the target
    assert [x for x in out if x is not None][:3] == ["p0", "p1", "p2"]


def test_loss_gives_lost_marker_and_keeps_timeline():
    jb = JitterBuffer()
    for s in (0, 1, 3, 4):
        jb.push(s, s * 20, f"p{s}", s * 20)
    out = [jb.pop(20 + 20 * k) for k in range(5)]
    assert out == ["p0", "p1", LOST, "p3", "p4"]
    assert jb.stats.lost == 1


def test_late_frame_is_dropped_and_counted():
    jb = JitterBuffer()
    jb.push(0, 0, "p0", 0)
    jb.push(1, 20, "p1", 19)
    jb.push(3, 60, "p3", 59)
    assert [jb.pop(t) for t in (20, 40, 60)] == ["p0", "p1", LOST]
    jb.push(2, 40, "p2", 61)  # its slot has passed
    assert jb.stats.late == 1
    assert jb.pop(80) == "p3"


def test_duplicates_are_dropped():
    jb = JitterBuffer()
    jb.push(5, 0, "a", 0)
    jb.push(5, 0, "a", 1)
    assert jb.stats.duplicate == 1


def test_empty_buffer_stalls_then_a_late_frame_still_plays():
    jb = JitterBuffer()
    jb.push(0, 0, "p0", 0)
    assert jb.pop(20) == "p0"
    assert jb.pop(40) is LOST  # p1 is late, nothing queued: conceal, keep waiting
    jb.push(1, 20, "p1", 45)
    jb.push(2, 40, "p2", 46)
    assert jb.pop(60) == "p1"
    assert jb.pop(80) == "p2"
    assert jb.stats.late == 0


def test_stall_slot_is_reused_when_the_frame_turns_out_lost():
    jb = JitterBuffer()
    jb.push(0, 0, "p0", 0)
    assert jb.pop(20) == "p0"
    assert jb.pop(40) is LOST  # p1 missing, queue empty
    jb.push(2, 40, "p2", 45)  # p1 never comes
    assert jb.pop(60) == "p2"  # the stall already covered p1's slot: no second LOST
    assert jb.stats.lost == 1


def test_pause_without_marker_drains_then_restarts_cleanly():
    jb = JitterBuffer()
    for s in range(5):
        jb.push(s, s * 20, s, s * 20)
    out = [jb.pop(20 + 20 * k) for k in range(12)]
    assert out[:5] == [0, 1, 2, 3, 4]
    assert out[5:8] == [LOST] * 3  # max_stall_frames of concealment, then idle
    assert out[8:] == [None] * 4 and jb.state == IDLE
    jb.push(5, 1000, 5, 1000)  # talker back after a pause
    assert jb.pop(1005) is None  # buffering again
    jb.push(6, 1020, 6, 1020)
    assert jb.pop(1025) == 5
    assert jb.stats.talkspurts == 2


def test_silence_marker_ends_talkspurt_without_concealment():
    jb = JitterBuffer()
    jb.push(0, 0, "a", 0)
    jb.push(1, 20, None, 20, silence=True)
    assert jb.pop(20) == "a"
    assert jb.pop(40) is None
    assert jb.state == IDLE
    assert [jb.pop(60 + 20 * k) for k in range(5)] == [None] * 5
    assert jb.stats.lost == 0
    jb.push(2, 1000, None, 1000, silence=True)  # periodic comfort marker while idle
    assert jb.state == IDLE
    jb.push(3, 1500, "b", 1500)
    assert jb.pop(1521) == "b"


def test_seq_wraps_u32():
    (jb,), trace = simulate(2000, first_seq=SEQ_MOD - 40)
    assert [n for _, n in played(trace)] == list(range(100))
    assert jb.stats.resyncs == 0 and jb.stats.late == 0


def test_sender_restart_with_new_seq_resyncs():
    jb = JitterBuffer()
    for s in range(3):
        jb.push(1000 + s, s * 20, s, s * 20)
    jb.pop(20)
    jb.push(7, 100, "new", 100)  # far behind: a restarted sender
    assert jb.stats.resyncs == 1
    assert jb.pop(125) == "new"


def test_burst_after_network_stall_is_cut_to_target():
    jb = JitterBuffer()
    jb.push(0, 0, 0, 0)
    assert jb.pop(20) == 0
    for s in range(1, 40):  # 780 ms of frames arrive at once
        jb.push(s, s * 20, s, 800)
    assert jb.depth_ms <= jb.capacity_ms
    assert jb.stats.dropped_overflow > 0
    nxt = jb.pop(820)
    assert 39 - jb.capacity_ms // 20 <= nxt < 39


@pytest.mark.parametrize("drift", [0.001, -0.001])
def test_clock_drift_does_not_grow_or_starve_the_buffer(drift):
    duration = 300_000  # 5 min: 0.1% drift is 300 ms = 15 frames
    jitter = lambda n, rng: 5.0 + rng.random() * 10.0
    (jb,), trace = simulate(duration, drift=drift, delay_ms=jitter)
    depths = [tick[0][2] for tick in trace]
    late_depths = depths[len(depths) // 2:]
    assert max(late_depths) <= jb.target_ms + 60, (max(late_depths), jb.snapshot())
    if drift > 0:  # sender fast: frames are dropped to stay at target
        assert 10 <= jb.stats.dropped_excess <= 25, jb.snapshot()
    else:  # sender slow: the buffer stalls (conceals) about once per 20 ms of drift
        assert jb.stats.lost <= 25, jb.snapshot()
    assert jb.stats.played >= 0.95 * duration / 20


def test_jitter_raises_target_within_bounds_and_avoids_late_frames():
    rng_delay = lambda n, rng: 5.0 + rng.random() * 50.0  # 0..50 ms jitter
    (jb,), trace = simulate(30_000, delay_ms=rng_delay, seed=3)
    assert 40 <= jb.target_ms <= 80, jb.snapshot()
    assert jb.jitter_ms > 5
    st = jb.stats
    assert (st.late + st.lost) / st.pushed < 0.03, jb.snapshot()


def test_target_is_bounded_at_80_ms():
    (jb,), _ = simulate(10_000, delay_ms=lambda n, rng: rng.random() * 400.0, seed=4)
    assert jb.target_ms == 80
    assert jb.depth_ms <= jb.capacity_ms


def test_four_talkers_60s_with_jitter_loss_and_pauses_no_growth():
    def talk(n, t):  # 2 s talkspurts, pauses of 0.6 s, phase shifted per talker
        return ((n + 37 * t) % 130) < 100

    delay = lambda n, rng: 3.0 + rng.random() * 25.0 + (40.0 if rng.random() < 0.01 else 0.0)
    jbs, trace = simulate(60_000, delay_ms=delay, loss=0.02, talk=talk, buffers=4, seed=5)
    for t, jb in enumerate(jbs):
        depths = [tick[t][2] for tick in trace]
        first, last = depths[: len(depths) // 6], depths[-len(depths) // 6:]
        assert max(depths) <= jb.capacity_ms
        assert sum(last) / len(last) <= sum(first) / len(first) + 20, (t, jb.snapshot())
        st = jb.stats
        assert st.talkspurts >= 20
        assert st.played >= 0.9 * 60_000 / 20 * 100 / 130 * 0.98 - 100, jb.snapshot()
        assert len(jb._frames) <= jb.capacity_ms // 20 + 1
