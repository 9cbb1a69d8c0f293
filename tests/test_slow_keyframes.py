"""Periodic keyframes on a slow uplink (s2c.call.pacing.UplinkPacer.keyframe_interval_s).

A keyframe that takes a slow uplink for longer than KEY_AUDIO_DELAY_MS delays every audio frame
captured meanwhile; every 2 s that kept the listeners' jitter buffers at a stall allowance the
size of it (docs/network.md, "upm2e"). Such keyframes go at most every SLOW_KEY_S.
"""

from __future__ import annotations

from s2c.audio.jitter import STALL_MEMORY_MS
from s2c.call.pacing import GATE_MAX_RATE, KEY_AUDIO_DELAY_MS, SLOW_KEY_S, UplinkPacer
from s2c.call.ratecontrol import KEY_MIN_S, LEVEL_RATIO, VideoRate


def _pacer_at(bytes_per_s: float) -> UplinkPacer:
    p = UplinkPacer()
    handed = 0
    for i in range(10):                          # backlogged, delivering bytes_per_s
        handed += int(bytes_per_s / 4)
        p.observe(i * 250_000, handed, 5000)
    assert abs(p.bytes_per_s - bytes_per_s) < 2
    return p


def test_slow_uplink_stretches_big_keyframes():
    p = _pacer_at(37_500)                        # 300 kbit/s
    assert p.keyframe_interval_s(2.0, 2200) == SLOW_KEY_S      # 59 ms of the link per keyframe
    assert p.keyframe_interval_s(20.0, 2200) == 20.0           # never shortened
    small = 37_500 * KEY_AUDIO_DELAY_MS / 1000 * 0.9           # under 25 ms of the link
    assert p.keyframe_interval_s(2.0, small) == 2.0
    assert p.keyframe_interval_s(2.0, None) == 2.0             # no keyframe seen yet
    # one such stall per SLOW_KEY_S is not "a path that stalls" for the jitter buffer
    assert SLOW_KEY_S * 1000 > STALL_MEMORY_MS


def test_fast_or_unmeasured_uplink_keeps_the_interval():
    assert UplinkPacer().keyframe_interval_s(2.0, 50_000) == 2.0             # never backlogged
    stalled = UplinkPacer()                  # a link that moved nothing while backlogged: rate 0
    for i in range(12):
        stalled.observe(i * 250_000, 100_000, 100_000)
    assert stalled.bytes_per_s == 0.0
    assert stalled.keyframe_interval_s(2.0, 2200) == 2.0   # no division by zero (it stopped the sender)
    assert _pacer_at(GATE_MAX_RATE * 2).keyframe_interval_s(2.0, 50_000) == 2.0


def test_rate_control_reports_the_keyframe_size_at_its_level():
    r = VideoRate()
    assert r.key_bytes() is None and r.keyframe_interval_s() == KEY_MIN_S
    r.sent(2000, r.level, True)
    assert abs(r.key_bytes() - 2000) < 1e-6                   # at the level it was sent at
    lvl = r.level
    r.level = 0
    assert abs(r.key_bytes() - 2000 * LEVEL_RATIO[0] / LEVEL_RATIO[lvl]) < 1e-6
