"""The mosaic's rate control: the change threshold follows a budget of bytes per diff frame."""

import numpy as np
import pytest

from s2c.bench import raster
from s2c.errors import ConfigError
from s2c.render.rate import MAX_THRESHOLD, MIN_THRESHOLD, ThresholdControl
from s2c.render.renderer import Renderer


def test_control_converges_on_a_power_law_and_stays_in_bounds():
    """Bytes ~ K * threshold^-1.1 (the bench's curve): the threshold settles where the bytes meet
    the budget, from either side, and never leaves its bounds."""
    for start in (2.0, 40.0):
        rc = ThresholdControl(20_000, start)
        for _ in range(40):
            rc.update(int(250_000 * rc.threshold ** -1.1))
        assert abs(250_000 * rc.threshold ** -1.1 - 20_000) < 1_000, rc.threshold
    rc = ThresholdControl(10, 4)
    for _ in range(50):
        rc.update(10_000_000)
    assert rc.threshold == MAX_THRESHOLD
    for _ in range(80):
        rc.update(0)
    assert rc.threshold == MIN_THRESHOLD
    with pytest.raises(ConfigError):
        ThresholdControl(0, 4)


@pytest.mark.parametrize("budget", [12_000, 30_000])
def test_renderer_with_a_byte_budget_tracks_it_on_a_talking_head(budget):
    frames = raster.talking_head_sequence(24, 640, 384)
    r = Renderer(160, 48, "mosaic", "truecolor", byte_budget=budget)
    free = Renderer(160, 48, "mosaic", "truecolor")
    sizes = [len(r.frame(f)) for f in frames][1:]
    free_sizes = [len(free.frame(f)) for f in frames][1:]
    tail = np.mean(sizes[-12:])
    assert 0.7 * budget <= tail <= 1.3 * budget, (budget, sizes)
    assert abs(np.mean(free_sizes[-12:]) - budget) > abs(tail - budget)   # the budget changed something


def test_output_budget_splits_the_rate_by_tiles_and_picture_gaps():
    from s2c.render.rate import MIN_FRAME_BYTES, PICTURE_SHARE, OutputBudget
    b = OutputBudget(800, max_fps=30)          # 100 kB/s
    for i in range(30):
        b.saw("a", i * 66_667)                 # 15 pictures/s
        b.saw("a", i * 66_667)                 # a repeat call for the same picture changes nothing
    per_frame = PICTURE_SHARE * 100_000 / 2 / 15
    assert abs(b.frame_bytes("a", 2) - per_frame) < 0.02 * per_frame
    assert abs(b.frame_bytes("new", 1) - PICTURE_SHARE * 100_000 / 30) <= 1   # no gap yet: 1/max_fps
    assert b.hold_us(9_000, 2) == 200_000       # 9 kB at 45 kB/s
    assert OutputBudget(1).frame_bytes("x", 4) == MIN_FRAME_BYTES
    with pytest.raises(ConfigError):
        OutputBudget(0)


def test_set_byte_budget_drives_the_threshold_in_blocks_mode():
    frames = raster.talking_head_sequence(16, 640, 384)
    r = Renderer(160, 48, "blocks", "truecolor")
    r.set_byte_budget(3_000)
    sizes = [len(r.frame(f)) for f in frames][1:]
    free = Renderer(160, 48, "blocks", "truecolor")
    free_sizes = [len(free.frame(f)) for f in frames][1:]
    assert r.threshold != free.threshold
    assert abs(np.mean(sizes[-8:]) - 3_000) < abs(np.mean(free_sizes[-8:]) - 3_000), (sizes, free_sizes)
