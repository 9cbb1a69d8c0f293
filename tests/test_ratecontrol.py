"""The sender's delay-based rate control (s2c.call.ratecontrol), sans-I/O: fed delivery and
queueing-delay samples from a simulated bottleneck, it must keep the queue short, lower the
level (resolution, quality) before the frame rate, and leave an unconstrained path alone."""

from s2c.call.clocksync import ClockSync
from s2c.call.ratecontrol import HIGH_QUEUE_MS, MAX_LEVEL, RateController, VideoRate

Q3_DELTA_BYTES = 1650
RATIO = (0.15, 0.26, 0.55, 0.7, 1.0)   # what the encoder makes per level (ratecontrol.LADDER)
KEY_BYTES = 6700


def simulate(link_bps, seconds=40.0, audio_bps=64_000, fps=20.0, vr=None):
    """A fluid bottleneck of ``link_bps`` fed by audio + the pictures VideoRate lets through;
    PINGs every 0.5 s measure the queue (one-way, behind everything queued) as the client does."""
    vr = vr or VideoRate()
    clock = ClockSync()
    queue_bits = 0.0
    delivered = 0
    handed = 0
    other = 0
    sent = skipped = 0
    t_us = 0
    step_us = int(1e6 / fps)
    next_ping = 0
    next_key = 0
    delays = []
    qualities = []
    while t_us < seconds * 1e6:
        # the link drains for one picture interval
        drained = min(queue_bits, link_bps * step_us / 1e6)
        queue_bits -= drained
        delivered += int(drained / 8)
        a = int(audio_bps / 8 * step_us / 1e6)
        handed += a
        other += a
        queue_bits += a * 8
        if t_us >= next_ping:
            delay_us = int(queue_bits / link_bps * 1e6)
            clock.on_pong(t_us, t_us + 2 * delay_us, t_us + delay_us, [], None)
            next_ping += 500_000
            if t_us > seconds * 1e6 / 2:
                delays.append(delay_us / 1000)
        q = vr.decide(t_us, delivered, other, clock.uplink_standing_queue_ms, handed - delivered)
        if q is None:
            skipped += 1
        else:
            key = t_us >= next_key
            if key:
                next_key += 2_000_000
            n = int((KEY_BYTES if key else Q3_DELTA_BYTES) * RATIO[q])
            handed += n
            queue_bits += n * 8
            vr.sent(n, q, key)
            sent += 1
            if t_us > seconds * 1e6 / 2:
                qualities.append(q)
        t_us += step_us
    return {"delays_ms": delays, "sent": sent, "skipped": skipped, "qualities": qualities, "vr": vr}


def test_slow_uplink_keeps_the_queue_short():
    r = simulate(300_000)
    # the second half: the queue audio waits in stays short
    assert max(r["delays_ms"]) < 2 * HIGH_QUEUE_MS, r["delays_ms"]
    assert sorted(r["delays_ms"])[len(r["delays_ms"]) // 2] < HIGH_QUEUE_MS
    # the level went down before the frame rate went to nothing
    assert min(r["qualities"]) < MAX_LEVEL
    assert r["sent"] > 0.4 * (r["sent"] + r["skipped"])


def test_uncontrolled_sending_would_queue():
    """The same link without rate control: the simulated queue grows (so the test above could
    fail)."""
    class Always(VideoRate):
        def decide(self, *a, **k):
            return MAX_LEVEL
    r = simulate(300_000, vr=Always())
    assert max(r["delays_ms"]) > 1000


def test_fast_uplink_is_left_alone():
    r = simulate(5_000_000)
    assert r["skipped"] == 0
    assert set(r["qualities"]) == {MAX_LEVEL}
    assert r["vr"].ctl.target_bps is None


def test_one_late_ping_is_not_a_standing_queue():
    c = ClockSync()
    for i in range(10):
        c.on_pong(i * 500_000, i * 500_000 + 2_000, i * 500_000 + 1_000, [], None)
    c.on_pong(5_000_000, 5_000_000 + 202_000, 5_000_000 + 201_000, [], None)   # a HOL stall
    assert c.uplink_queue_ms > 150
    assert c.uplink_standing_queue_ms == 0
    c.on_pong(5_500_000, 5_500_000 + 152_000, 5_500_000 + 151_000, [], None)   # it stands
    assert c.uplink_standing_queue_ms == 150


def test_cut_follows_delivery_rate_and_growth_is_slow():
    ctl = RateController()
    t = 0
    delivered = 0
    for _ in range(20):                       # 1 s at 250 kbit/s, no queue
        t += 50_000
        delivered += 250_000 // 8 // 20
        assert ctl.observe(t, delivered, 0.0) is None
    t += 50_000
    delivered += 250_000 // 8 // 20
    cut = ctl.observe(t, delivered, 200.0)
    assert 0.5 * 250_000 <= cut <= 0.85 * 250_000
    assert ctl.observe(t + 100_000, delivered + 1500, 300.0) == cut   # held: one cut per second
    later = cut
    for i in range(20):                       # 1 s without a queue: at most ~8% more
        later = ctl.observe(t + 200_000 + i * 50_000, delivered + 1500 + i * 1500, 0.0)
    assert cut < later <= cut * 1.09


def test_a_delay_our_backlog_cannot_explain_does_not_cut():
    """PINGs late by 60 ms while almost nothing of ours is unacknowledged (a busy CPU or a slow
    relay, not a link queue: loopback on a loaded machine): the rate stays unconstrained; the
    same delay with the backlog to explain it cuts."""
    for backlog, cut in ((200, False), (40_000, True)):
        ctl = RateController()
        delivered = 0
        for i in range(40):                       # 2 s at 20 samples/s, 400 kbit/s delivered
            delivered += 2500
            target = ctl.observe(i * 50_000, delivered, 60.0 if i >= 20 else 0.0, backlog)
        assert (target is not None) is cut, (backlog, target)
        assert (ctl.not_ours > 0) is (not cut)
