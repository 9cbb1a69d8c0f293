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
