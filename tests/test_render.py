"""Renderer: twin agreement, diff correctness through a real VT parser (pyte), fidelity, modes."""

import os

import numpy as np
import pyte
import pytest
from hypothesis import given, settings, strategies as st

from s2c import impl
from s2c.bench.media import talking_head
from s2c.errors import ConfigError
from s2c.render.renderer import Renderer, detect_colors, fit_size, luminance, snapshot_lines


def _screen_pixels(screen: pyte.Screen, rows: int, cols: int):
    """(top, bottom) RGB arrays of what a half-block screen shows."""
    top = np.zeros((rows, cols, 3), np.int16)
    bot = np.zeros((rows, cols, 3), np.int16)

    def rgb(name):
        if name == "default":
            return (0, 0, 0)
        return tuple(int(name[i:i + 2], 16) for i in (0, 2, 4))
    for r in range(rows):
        line = screen.buffer[r]
        for c in range(cols):
            ch = line[c]
            fg, bg = rgb(ch.fg), rgb(ch.bg)
            if ch.data == "\u2580":
                top[r, c], bot[r, c] = fg, bg
            elif ch.data == "\u2584":
                top[r, c], bot[r, c] = bg, fg
            elif ch.data == "\u2588":
                top[r, c] = bot[r, c] = fg
            elif ch.data == " ":
                top[r, c] = bot[r, c] = bg
            else:
                raise AssertionError(f"unexpected glyph {ch.data!r} at {r},{c}")
    return top, bot


@pytest.mark.parametrize("which", ["fast", "py"])
def test_diff_output_in_a_terminal_matches_exact_render(which, monkeypatch):
    """Feed the diff stream of a talking-head sequence into pyte: after every frame every cell is
    within 12 levels of the exact picture and the mean error is at most 4."""
    monkeypatch.setenv("S2C_IMPL", which)
    cols, rows = (160, 48) if which == "fast" else (48, 16)
    frames = talking_head(25 if which == "fast" else 8, width=cols, height=rows * 2)
    screen = pyte.Screen(cols, rows)
    stream = pyte.ByteStream(screen)
    r = Renderer(cols, rows, "blocks", "truecolor")
    sizes = []
    for i, f in enumerate(frames):
        out = r.frame(f)
        sizes.append(len(out))
        stream.feed(out)
        top, bot = _screen_pixels(screen, rows, cols)
        exact = r.fit(f).astype(np.int16)
        err = np.concatenate([np.abs(top - exact[0::2]), np.abs(bot - exact[1::2])])
        assert err.max() <= 12, f"frame {i}: a cell is {err.max()} levels off"
        assert err.mean() <= 4, f"frame {i}: mean error {err.mean():.2f}"
        # the renderer's own record of the screen is what the terminal shows
        assert (top == r._sfg).all() and (bot == r._sbg).all()
    assert max(sizes[1:]) < sizes[0] * (0.5 if which == "fast" else 0.8), "later frames must be diffs"


def test_reset_gives_full_redraw_and_unchanged_frame_gives_nothing():
    img = talking_head(1)[0]
    r = Renderer(160, 48)
    first = r.frame(img)
    assert r.frame(img) == b""
    r.reset()
    assert len(r.frame(img)) == len(first)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(["blocks", "ascii", "color", "mosaic"]), st.sampled_from(["truecolor", "256", "16", "none"]),
       st.integers(1, 12), st.integers(1, 8), st.integers(0, 2**32 - 1), st.integers(0, 20))
def test_compiled_kernel_equals_twin(mode, colors, cols, rows, seed, threshold):
    """Property: the compiled cell kernel and its pure-Python twin emit identical bytes. The picture
    has the tile's pixel size, so no resampling (whose twins may differ by 1 level) is involved."""
    rng = np.random.default_rng(seed)
    os.environ["S2C_IMPL"] = "fast"
    a = Renderer(cols, rows, mode, colors, threshold=threshold, origin=(3, 5))
    os.environ["S2C_IMPL"] = "py"
    b = Renderer(cols, rows, mode, colors, threshold=threshold, origin=(3, 5))
    os.environ.pop("S2C_IMPL")
    gw, gh = a.grid_size
    img = rng.integers(0, 256, (gh, gw, 3), dtype=np.uint8)
    a.fit = b.fit = lambda im: im   # grid pixels need not be square (painted modes): no letterbox
    for _ in range(3):
        assert a.frame(img) == b.frame(img)
        assert (a._sfg == b._sfg).all() and (a._sbg == b._sbg).all() and (a._sg == b._sg).all()
        img = np.clip(img.astype(np.int16) + rng.integers(-30, 30, img.shape), 0, 255).astype(np.uint8)


def test_256_and_16_colour_codes():
    img = np.zeros((2, 1, 3), np.uint8)
    img[0] = (255, 0, 0)
    img[1] = (0, 0, 255)
    out256 = Renderer(1, 1, "blocks", "256").frame(img)
    assert b"38;5;196" in out256 and b"48;5;21" in out256
    out16 = Renderer(1, 1, "blocks", "16").frame(img)
    assert b"\x1b[91;104m" in out16 or b"\x1b[91;44m" in out16
    none = Renderer(1, 1, "blocks", "none").frame(img)
    assert b"\x1b[3" not in none and b"\x1b[4" not in none


def test_ascii_mode_brighter_is_denser():
    ramp = " .:-=+*#%@"
    img = np.zeros((4, 10, 3), np.uint8)
    for x in range(10):
        img[:, x] = x * 28
    out = snapshot_lines(img, 10, 2, "ascii", "none", ramp).decode()
    line = out.splitlines()[0]
    idx = [ramp.index(ch) for ch in line]
    assert idx == sorted(idx) and idx[0] < idx[-1]


def test_aspect_is_kept_with_letterbox():
    # 16:9 picture into a square-ish tile in blocks mode: bars top and bottom
    assert fit_size(160, 90, 80, 80, 1.0) == (80, 45)
    # glyph modes: cells are twice as tall as wide
    assert fit_size(160, 90, 80, 24, 2.0) == (80, 22)
    r = Renderer(80, 40, "blocks", "truecolor")
    img = np.full((90, 160, 3), 200, np.uint8)
    px = r.fit(img)
    assert px.shape == (80, 80, 3)
    assert (px[:10] == 0).all() and (px[-10:] == 0).all() and (px[40] == 200).all()


def test_detect_colors():
    assert detect_colors({"NO_COLOR": "1", "COLORTERM": "truecolor"}) == "none"
    assert detect_colors({"COLORTERM": "truecolor", "TERM": "xterm"}) == "truecolor"
    assert detect_colors({"TERM": "tmux-256color"}) == "256"
    assert detect_colors({"TERM": "xterm"}) == "16"
    assert detect_colors({"TERM": "dumb"}) == "none"


def test_bad_arguments_are_config_errors():
    with pytest.raises(ConfigError):
        Renderer(10, 10, "sixel")
    with pytest.raises(ConfigError):
        Renderer(0, 10)
    with pytest.raises(ConfigError):
        Renderer(10, 10).frame(np.zeros((4, 4), np.uint8))


def test_luminance_ordering():
    img = np.array([[[0, 0, 0], [255, 255, 255], [0, 255, 0], [0, 0, 255]]], np.uint8)
    y = luminance(img)[0]
    assert y[0] == 0 and y[1] == 255 and y[2] > y[3]


def test_missing_extension_is_a_clear_error(monkeypatch):
    import builtins
    real_import = builtins.__import__

    def fake(name, *a, **k):
        if name.startswith("s2c._fast.nosuch"):
            raise ImportError("gone")
        return real_import(name, *a, **k)
    from s2c.errors import ExtensionMissing
    with pytest.raises(ExtensionMissing, match="pip install"):
        impl.load("nosuch_kernel", "fast")
    monkeypatch.setenv("S2C_IMPL", "bogus")
    with pytest.raises(ConfigError):
        impl.choice()
