"""The ``photo:N`` video source: a moving real photo per N (distinct looks for the demo's people),
distinct generated scenes without scikit-image, the captured frame kept for avatar mode, and a
clear error for a bad N."""

from __future__ import annotations

import numpy as np
import pytest

from s2c.errors import ConfigError
from s2c.video.source import open_source


def _grab(spec):
    pic = open_source(spec).grab()
    assert pic is not None and pic.image_rgb.ndim == 3
    assert pic.frame_bgr is not None and pic.frame_bgr.shape[:2] == (240, 320)
    return pic


def _differ(a, b) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_each_photo_variant_has_its_own_look():
    pics = [_grab(f"photo:{n}") for n in range(3)]
    for i in range(3):
        for j in range(i + 1, 3):
            assert _differ(pics[i].image_rgb, pics[j].image_rgb) > 10, (i, j)


def test_without_scikit_image_the_variants_are_distinct_generated_scenes(monkeypatch):
    from s2c.avatar import puppet
    monkeypatch.setattr(puppet, "_skimage_photo", lambda name: None)
    a, b = _grab("photo:0"), _grab("photo:1")
    assert _differ(a.image_rgb, b.image_rgb) > 5


@pytest.mark.parametrize("spec", ["photo:x", "test:-1", "photo:"])
def test_a_bad_number_is_a_clear_error(spec):
    with pytest.raises(ConfigError, match="must be a number"):
        open_source(spec)
