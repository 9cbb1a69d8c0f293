"""Symbol mosaics, painted glyph modes and palette dithering: twin agreement (Hypothesis), what a
VT emulator (pyte) shows, fidelity (SSIM) per mode, unbiased dithering, the CLI."""

import os
import subprocess
import sys

import numpy as np
import pyte
import pytest
from hypothesis import given, settings, strategies as st

from s2c import impl
from s2c.bench import raster
from s2c.render.mosaic import (QUADRANT_GLYPHS, SEXTANT_GLYPHS, SEXTANT_TEST_LINE, glyph_table, picture_size,
                               error_gain)
from s2c.render.renderer import MODES, Renderer

FAST = impl.load("cells", "fast")
REF = impl.load("cells", "py")
SEXTANT_INDEX = {g: p for p, g in enumerate(SEXTANT_GLYPHS)}


def _rgb(name):
    if name == "default":
        return (0, 0, 0)
    return tuple(int(name[i:i + 2], 16) for i in (0, 2, 4))


# ---- twins ---------------------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(st.sampled_from([(2, 3, b""), (2, 2, b""), (2, 2, bytes([3, 5])), (1, 2, b""), (2, 3, bytes([7, 21, 9]))]),
       st.integers(1, 6), st.integers(1, 4), st.integers(0, 30), st.integers(0, 2**32 - 1), st.booleans())
def test_mosaic_fit_twins_agree(shape, cols, rows, flat_tol, seed, coarse):
    sx, sy, pats = shape
    rng = np.random.default_rng(seed)
    px = rng.integers(0, 256, (rows * sy, cols * sx, 3), dtype=np.uint8)
    if coarse:   # ties in luma and in the error are common with few levels
        px = (px // 85 * 85).astype(np.uint8)
    res = []
    for k in (FAST, REF):
        tp = np.zeros((rows, cols), np.uint8)
        fg = np.zeros((rows, cols, 3), np.uint8)
        bg = np.zeros((rows, cols, 3), np.uint8)
        k.mosaic_fit(px, sx, sy, pats, flat_tol, tp, fg, bg)
        res.append((tp, fg, bg))
    for a, b in zip(*res):
        assert (a == b).all()


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["sextant", "quadrant", "half"]), st.sampled_from([0, 1, 2, 3]),
       st.integers(1, 8), st.integers(1, 4), st.integers(0, 20), st.integers(0, 6),
       st.sampled_from([-1, 0, 12]), st.integers(0, 2**32 - 1))
def test_diff_mosaic_twins_agree(symbols, depth, cols, rows, threshold, reuse, dither, seed):
    rng = np.random.default_rng(seed)
    glyphs, nbits, _ = glyph_table(symbols)
    state = []
    for _ in range(2):
        state.append([np.zeros((rows, cols), np.uint8), np.zeros((rows, cols, 3), np.uint8),
                      np.zeros((rows, cols, 3), np.uint8)])
    for frame in range(3):
        tp = rng.integers(0, 1 << nbits, (rows, cols), dtype=np.uint8)
        tp[rng.random((rows, cols)) < 0.3] = 0
        fg = rng.integers(0, 256, (rows, cols, 3), dtype=np.uint8)
        bg = np.where(rng.random((rows, cols, 1)) < 0.3, fg, rng.integers(0, 256, (rows, cols, 3))).astype(np.uint8)
        outs = [k.diff_mosaic(tp, fg, bg, *s, glyphs, nbits, depth, threshold, reuse, dither, frame == 0, 2, 3)
                for k, s in zip((FAST, REF), state)]
        assert outs[0] == outs[1]
        for a, b in zip(*state):
            assert (a == b).all()


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["sextant", "quadrant", "half"]), st.integers(1, 8), st.integers(1, 4),
       st.integers(0, 20), st.integers(0, 12), st.booleans(), st.sampled_from([16, 8, 3]), st.integers(0, 2**32 - 1))
def test_mosaic_err_twins_agree(symbols, cols, rows, threshold, flat_tol, coarse, adj, seed):
    """The error-driven mosaic kernel and its twin: same bytes and the same record of the screen
    over a full draw and two diffs (random and few-level pictures: ties in luma and cost)."""
    rng = np.random.default_rng(seed)
    glyphs, nbits, pats = glyph_table(symbols)
    sx, sy = picture_size(1, 1, "mosaic", "truecolor", symbols)
    gain = error_gain(sx * sy, threshold)
    state = [[np.zeros((rows, cols), np.uint8), np.zeros((rows, cols, 3), np.uint8),
              np.zeros((rows, cols, 3), np.uint8)] for _ in range(2)]
    img = rng.integers(0, 256, (rows * sy, cols * sx, 3), dtype=np.uint8)
    for frame in range(3):
        px = (img // 85 * 85).astype(np.uint8) if coarse else img
        outs = [k.mosaic_err(px, sx, sy, pats, flat_tol, *s, glyphs, nbits, gain, frame == 0, 2, 3, adj)
                for k, s in zip((FAST, REF), state)]
        assert outs[0] == outs[1]
        for a, b in zip(*state):
            assert (a == b).all()
        img = np.clip(img.astype(np.int16) + rng.integers(-40, 40, img.shape), 0, 255).astype(np.uint8)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(["blocks", "ascii", "color"]), st.sampled_from(["256", "16"]), st.integers(0, 24),
       st.integers(1, 10), st.integers(1, 6), st.integers(0, 2**32 - 1))
def test_diff_cells_with_dither_twins_agree(mode, colors, span, cols, rows, seed):
    """Through the renderer (same targets into both kernels): dithered palette output agrees."""
    rng = np.random.default_rng(seed)
    a = Renderer(cols, rows, mode, colors, dither=span)
    os.environ["S2C_IMPL"] = "py"
    try:
        b = Renderer(cols, rows, mode, colors, dither=span)
    finally:
        os.environ.pop("S2C_IMPL")
    gw, gh = a.grid_size
    img = rng.integers(0, 256, (gh, gw, 3), dtype=np.uint8)
    a.fit = b.fit = lambda im: im
    for i in range(3):
        t = a.cells(img)
        assert a._emit(t, slice(None), i == 0, 0, 0) == b._emit(t, slice(None), i == 0, 0, 0)
        assert (a._sfg == b._sfg).all() and (a._sbg == b._sbg).all() and (a._sg == b._sg).all()
        img = np.clip(img.astype(np.int16) + rng.integers(-30, 30, img.shape), 0, 255).astype(np.uint8)


def test_palette_helpers_twins_agree():
    rng = np.random.default_rng(3)
    for r, g, b in rng.integers(0, 256, (3000, 3)):
        r, g, b = int(r), int(g), int(b)
        assert FAST.nearest256(r, g, b) == REF.nearest256(r, g, b)
        for mode in (1, 2):
            y, x = int(rng.integers(0, 64)), int(rng.integers(0, 64))
            assert FAST.dither_color(mode, r, g, b, y, x, 20) == REF.dither_color(mode, r, g, b, y, x, 20)


# ---- faithfulness ----------------------------------------------------------------------------------

def test_every_sextant_pattern_gives_its_glyph_and_colours():
    """A cell whose 2x3 pixels hold two colours in pattern p is drawn as the glyph covering p
    (or its complement with the colours swapped), which pyte shows with those two colours."""
    a, b = (230, 40, 20), (10, 60, 200)
    r = Renderer(64, 1, "mosaic", "truecolor", threshold=0, reuse=0)
    px = np.zeros((3, 128, 3), np.uint8)
    for p in range(64):
        for k in range(6):
            px[k // 2, 2 * p + k % 2] = a if p >> k & 1 else b
    r.fit = lambda im: im
    screen = pyte.Screen(64, 1)
    pyte.ByteStream(screen).feed(r.frame(px))
    for p in range(64):
        ch = screen.buffer[0][p]
        q = SEXTANT_INDEX[ch.data]
        fg, bg = _rgb(ch.fg), _rgb(ch.bg)
        if p in (0, 63):          # one colour: space in bg or full block in fg
            shown = fg if ch.data == "\u2588" else bg
            assert shown == (a if p == 63 else b)
            continue
        assert (q, fg, bg) in ((p, a, b), (63 & ~p, b, a)), f"pattern {p}: {ch.data!r} {fg} {bg}"


def test_quadrant_and_half_sets_use_their_glyphs_only():
    img = raster.talking_head_sequence(1, 160, 96)[0]
    for symbols, allowed in (("quadrant", set(QUADRANT_GLYPHS)), ("half", set(" \u2580\u2584\u258C\u2590\u2588"))):
        out = Renderer(40, 12, "mosaic", "truecolor", symbols=symbols).frame(img).decode()
        screen = pyte.Screen(40, 12)
        pyte.ByteStream(screen).feed(out.encode())
        used = {screen.buffer[y][x].data for y in range(12) for x in range(40)}
        assert used <= allowed and len(used) >= 3
        if symbols == "half":   # both splits occur (each glyph or its complement with colours swapped)
            assert used & {"\u2580", "\u2584"} and used & {"\u258C", "\u2590"}


def _mosaic_screen(screen, rows, cols):
    """pyte screen of sextant glyphs -> (rows*3, cols*2, 3) pixels."""
    out = np.zeros((rows * 3, cols * 2, 3), np.int16)
    for y in range(rows):
        for x in range(cols):
            ch = screen.buffer[y][x]
            p = SEXTANT_INDEX[ch.data]
            fg, bg = _rgb(ch.fg), _rgb(ch.bg)
            for k in range(6):
                out[3 * y + k // 2, 2 * x + k % 2] = fg if p >> k & 1 else bg
    return out


def _target_pixels(tp, fg, bg):
    rows, cols = tp.shape
    bits = np.unpackbits(tp[..., None], axis=-1, count=8, bitorder="little")[..., :6].astype(bool)
    px = np.where(bits[..., None], fg[:, :, None, :], bg[:, :, None, :]).astype(np.int16)  # rows, cols, 6, 3
    return px.reshape(rows, cols, 3, 2, 3).transpose(0, 2, 1, 3, 4).reshape(rows * 3, cols * 2, 3)


@pytest.mark.parametrize("which", ["fast", "py"])
def test_mosaic_diff_stream_in_a_terminal_matches_exact_render(which, monkeypatch):
    """Feed the truecolor mosaic diff stream of a talking head into pyte: after every frame the
    error of every cell as shown (luma-weighted, against the picture's pixels) exceeds the error
    of the cell's best fit by at most the gain (a uniform ``threshold``-level shift of all its
    pixels), so no pixel is far off, and the renderer's record of the screen is what pyte shows."""
    monkeypatch.setenv("S2C_IMPL", which)
    cols, rows = (160, 48) if which == "fast" else (40, 12)
    frames = raster.talking_head_sequence(8 if which == "fast" else 4, cols * 4, rows * 8)
    screen = pyte.Screen(cols, rows)
    stream = pyte.ByteStream(screen)
    r = Renderer(cols, rows, "mosaic", "truecolor")
    exact = Renderer(cols, rows, "mosaic", "truecolor")     # a full draw of every frame
    gain = error_gain(6, r.threshold)
    sizes = []
    for i, f in enumerate(frames):
        out = r.frame(f)
        sizes.append(len(out))
        stream.feed(out)
        shown = _mosaic_screen(screen, rows, cols)
        px = r.fit(f).astype(np.int16)
        d = shown - px
        y = d @ np.array([77, 150, 29])
        err = (2 * y * y + 65536 * (d * d).sum(-1)).reshape(rows, 3, cols, 2).sum(axis=(1, 3))
        for (cy, cx) in zip(*np.nonzero(err > gain)):       # only cells off by more than the gain
            pix = [tuple(int(v) for v in px[3 * cy + k // 2, 2 * cx + k % 2]) for k in range(6)]
            e_fit = REF._err_fit(pix, REF._err_split(pix, 6, [], 63), 63, r.flat_tol)[0]
            assert err[cy, cx] - e_fit <= gain, f"frame {i}: cell {cy},{cx}"
        exact.reset()
        exact.frame(f)
        fit_err = np.abs(_target_pixels(exact._sg, exact._sfg, exact._sbg) - px).mean()
        assert np.abs(d).mean() <= fit_err + 1.5, f"frame {i}: mean error {np.abs(d).mean():.2f} vs {fit_err:.2f}"
        assert (shown == _target_pixels(r._sg, r._sfg, r._sbg)).all()
    assert max(sizes[1:]) < sizes[0] * 0.6, "later frames must be diffs"


@pytest.mark.parametrize("mode,colors,floor", [
    ("mosaic", "truecolor", 0.90), ("mosaic", "256", 0.85), ("blocks", "truecolor", 0.86),
    ("blocks", "256", 0.82), ("blocks", "16", 0.45), ("color", "truecolor", 0.80),
    ("ascii", "truecolor", 0.78), ("ascii", "none", 0.3), ("mosaic", "none", 0.3), ("color", "16", 0.4)])
def test_every_mode_shows_the_picture(mode, colors, floor):
    """What pyte shows, rasterised with exact glyph coverage, resembles the source (SSIM on luma)."""
    assert mode in MODES
    frames = raster.talking_head_sequence(3, 320, 192)
    m = raster.measure(frames, 80, 24, mode, colors)
    assert m["ssim"] >= floor, m
    assert not m["unknown_glyphs"]


def test_color_and_ascii_paint_the_background_and_ascii_none_keeps_its_look():
    img = np.zeros((6, 4, 3), np.uint8)
    img[:, :2] = (250, 250, 250)          # left half of each cell bright, right half dark
    img[:, 2:] = (20, 20, 120)
    r = Renderer(2, 2, "color", "truecolor")
    r.fit = lambda im: im
    out = r.frame(img)
    assert b"48;2;" in out and b"38;2;" in out
    r = Renderer(2, 2, "ascii", "none")
    out = r.frame(np.full((4, 2, 3), 255, np.uint8))   # square pixels: 2 cells are 1 wide, 2 tall
    assert out == b"\x1b[1;1H@@\x1b[2;1H@@"       # the legacy look: ramp glyphs, no colour codes


def test_dithering_keeps_the_mean_colour():
    """Over an 8x8 tile of one colour the Bayer offset averages out: the mean shown luma is much
    closer to the source than one matched colour is (measured: 256 colours 4.4 -> 2.0 levels,
    16 colours 25.5 -> 10.7 on average), and no colour gets worse than the worst plain match."""
    rng = np.random.default_rng(5)
    for mode, span in ((2, 24), (1, 96)):
        err_d, err_p = [], []
        for rgb in rng.integers(20, 236, (40, 3)):
            rgb = tuple(int(v) for v in rgb)
            shown = np.array([FAST.dither_color(mode, *rgb, y, x, span) for y in range(8) for x in range(8)], float)
            plain = np.array(FAST.dither_color(mode, *rgb, 0, 0, 0), float)
            src_y = raster.luma(np.array(rgb, float))
            err_d.append(abs(raster.luma(shown).mean() - src_y))
            err_p.append(abs(raster.luma(plain) - src_y))
        assert np.mean(err_d) <= 0.6 * np.mean(err_p), (mode, np.mean(err_d), np.mean(err_p))
        assert max(err_d) <= max(err_p), (mode, max(err_d), max(err_p))


def test_picture_size_per_tile_and_any_input_size_fits():
    assert picture_size(160, 48, "mosaic", "truecolor") == (320, 144)
    assert picture_size(160, 48, "mosaic", "truecolor", "quadrant") == (320, 96)
    assert picture_size(160, 48, "blocks", "truecolor") == (160, 96)
    r = Renderer(160, 48, "mosaic", "truecolor")
    assert r.grid_size == (320, 144)
    for w, h in ((160, 90), (320, 180), (1280, 720), (97, 13)):   # smaller, exact-width, larger, odd
        img = np.full((h, w, 3), 128, np.uint8)
        px = r.fit(img)
        assert px.shape == (144, 320, 3)
        r.reset()
        assert r.frame(img)


def test_cli_snapshot_mosaic_and_sextant_test_line():
    exe = os.path.join(os.path.dirname(sys.executable), "s2c")
    out = subprocess.run([exe, "snapshot", "--video", "test", "--cols", "40", "--rows", "12", "--mode", "mosaic",
                          "--colors", "truecolor"], capture_output=True, timeout=60, check=True).stdout.decode()
    assert len(out.splitlines()) == 12 and any("\U0001FB00" <= ch <= "\U0001FB3B" for ch in out)
    out = subprocess.run([exe, "snapshot", "--video", "test", "--cols", "40", "--rows", "12", "--mode", "mosaic",
                          "--symbols", "half", "--colors", "truecolor"], capture_output=True, timeout=60,
                         check=True).stdout.decode()
    assert not any("\U0001FB00" <= ch <= "\U0001FB3B" or "\u2596" <= ch <= "\u259F" for ch in out)
    assert all(0x1FB00 <= ord(ch) <= 0x1FB3B or ch in " \u2596\u259A\u259F" for ch in SEXTANT_TEST_LINE)


def test_shown_picture_size_follows_the_pictures_aspect():
    from s2c.render.mosaic import shown_picture_size
    from s2c.wire.layers import STREAM_LARGE, STREAM_NORMAL, STREAM_SMALL, layer_for
    # an 80x42 sextant tile is 160x126 grid pixels; a 16:9 picture fills only its width
    assert shown_picture_size(80, 42, "mosaic", "truecolor", "sextant") == (160, 126)
    assert shown_picture_size(80, 42, "mosaic", "truecolor", "sextant", (320, 180)) == (160, 90)
    assert layer_for(*shown_picture_size(80, 42, "mosaic", "truecolor", "sextant", (320, 180))) == STREAM_NORMAL
    # a 4:3 picture in the same tile needs 160x120: more than NORMAL's 128x96
    assert layer_for(*shown_picture_size(80, 42, "mosaic", "truecolor", "sextant", (256, 192))) == STREAM_LARGE
    assert layer_for(*shown_picture_size(160, 45, "mosaic", "truecolor", "sextant", (160, 90))) == STREAM_LARGE
    assert layer_for(*shown_picture_size(80, 42, "blocks", "truecolor", "sextant", (160, 90))) == STREAM_SMALL
    assert shown_picture_size(80, 42, "blocks", "truecolor", "sextant", (0, 0)) == (80, 84)
