"""The jitter buffer's stall allowance: after a path stall (TCP head-of-line after a loss) the
burst that follows is played, not thrown away, and the delay returns to low on a calm path."""

from s2c.audio.jitter import LOST, JitterBuffer


def run(jb, duration_ms, stall_every_ms=2000, stall_ms=150, base_ms=30.0):
    """Frame n (20 ms) is sent at n*20; it arrives base_ms later, except that during a stall
    everything waits for the stall's end (then arrives as one burst). Returns the played count."""
    arrivals = []
    for n in range(duration_ms // 20):
        t = n * 20 + base_ms
        if stall_every_ms:
            k = t // stall_every_ms
            start = k * stall_every_ms + stall_every_ms / 2
            if start <= t < start + stall_ms:
                t = start + stall_ms
        arrivals.append((t, n))
    arrivals.sort()
    i = 0
    played = 0
    for tick in range(duration_ms // 20 + 40):
        now = tick * 20 + 7.0
        while i < len(arrivals) and arrivals[i][0] <= now:
            jb.push(arrivals[i][1], arrivals[i][1] * 20.0, b"x", arrivals[i][0])
            i += 1
        out = jb.pop(now)
        if out is not None and out is not LOST:
            played += 1
    return played


def test_stall_allowance_keeps_the_burst_after_a_stall():
    n = 20_000 // 20
    plain_jb = JitterBuffer()
    plain = run(plain_jb, 20_000, stall_ms=200)
    adaptive_jb = JitterBuffer(stall_target_max_ms=200)
    adaptive = run(adaptive_jb, 20_000, stall_ms=200)
    assert adaptive >= 0.97 * n, (adaptive, n)   # the first stall is lost: one is not a pattern
    assert plain < 0.95 * n, (plain, n)       # the fixed 80 ms bound throws bursts away
    assert 150 <= adaptive_jb.target_ms <= 200
    plain = plain_jb.stats.dropped_overflow
    assert adaptive_jb.stats.dropped_overflow < plain and adaptive_jb.snapshot()["stall_allowance_ms"] > 0


def test_stall_allowance_decays_on_a_calm_path():
    jb = JitterBuffer(stall_target_max_ms=200, stall_decay_ms_per_s=10.0)
    run(jb, 6_000, stall_ms=200)        # stalls: the allowance rises
    high = jb.target_ms
    for tick in range(15 * 50):         # then 15 s of a calm path
        now = 10_000 + tick * 20.0
        seq = 1000 + tick
        jb.push(seq, seq * 20.0, b"x", now - 1.0)
        jb.pop(now)
    assert high >= 150 and jb.target_ms <= high - 140
