"""Two-colour cells: symbol mosaics and glyph modes that paint the cell background.

Owns: the block-symbol sets (sextants, quadrants, half blocks) as glyph tables indexed by pattern,
how many picture pixels each cell samples in each mode (so the picture size a tile wants), and
turning a picture into per-cell targets (pattern or glyph, fg, bg) with the cell kernel's
``mosaic_fit``, and the mosaic's change thresholds (the per-pixel test's, and the error a redraw
must remove in the truecolor kernel ``mosaic_err``). Must not: emit bytes (the cell kernel does), keep screen state (s2c.render.renderer does),
write to the terminal or read the clock.

Pattern bits: bit ``j * sx + i`` is the pixel in column i, row j of the cell; a set bit shows fg.
"""

from __future__ import annotations

import numpy as np

SYMBOL_SETS = ("sextant", "quadrant", "half")
DEFAULT_SYMBOLS = "sextant"
# A line to print to see whether the terminal's font has these symbols (see README).
SEXTANT_TEST_LINE = "\U0001FB00\U0001FB01\U0001FB02\U0001FB0F\U0001FB1E\U0001FB2D\U0001FB3B \u2596\u259A\u259F"


def _sextant_glyph(p: int) -> str:
    """Glyph whose 2x3 coverage is pattern p (bits: row-major, 2 per row)."""
    if p == 0:
        return " "
    if p == 63:
        return "\u2588"
    if p == 21:
        return "\u258C"          # left column: left half block
    if p == 42:
        return "\u2590"          # right column: right half block
    return chr(0x1FB00 + p - 1 - (p > 21) - (p > 42))


# 2x2 patterns (bit 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right) in the order of the bits
QUADRANT_GLYPHS = (" ", "\u2598", "\u259D", "\u2580", "\u2596", "\u258C", "\u259E", "\u259B",
                   "\u2597", "\u259A", "\u2590", "\u259C", "\u2584", "\u2599", "\u259F", "\u2588")
SEXTANT_GLYPHS = tuple(_sextant_glyph(p) for p in range(64))

# per symbol set: (pixels per cell across, down, glyph table, patterns the fit may choose:
# empty = any; else the listed ones and their complements)
_SETS = {
    "sextant": (2, 3, SEXTANT_GLYPHS, b""),
    "quadrant": (2, 2, QUADRANT_GLYPHS, b""),
    "half": (2, 2, QUADRANT_GLYPHS, bytes([0b0011, 0b0101])),   # upper/lower, left/right halves
}
# Cell colours closer than this (levels per channel) are drawn as one colour: noise in a flat
# area does not become a flickering pattern.
DEFAULT_FLAT_TOL = 6
# mosaic defaults for the per-pixel change test (diff_mosaic: 256/16 colours, or cell_error=False)
# and its truecolor reuse (levels); chosen by the bytes/SSIM sweep of the video bench
MOSAIC_THRESHOLD = 8
MOSAIC_REUSE = 2
# truecolor mosaic (the kernel's mosaic_err): a cell is redrawn when what it shows is worse than its
# fit by more than a uniform ``threshold``-level grey shift of every pixel (luma-weighted squared
# error; camera noise and pattern flips in low-contrast cells barely count, an edge that moved
# does). The bytes/SSIM sweep of python -m s2c.bench video set the default (SSIM .94 at <= 60 kB per
# 160x48 frame). Snapping colours to the current SGR colours (a rate-distortion trade) was measured
# and lost SSIM at every rate, so a redrawn cell always gets its fit's colours.
ERR_LEVEL = 5 * 65536       # the kernel's error of a one-level grey shift of one pixel
ERR_THRESHOLD = 4           # levels (a float is fine for mosaic_err): SSIM .940 at 59.6 kB (100 frames)
# a cell right after a redrawn one needs only this share (in 16ths) of the gain: redraws come in
# runs, not a patchwork (measured: +.005 to +.02 SSIM at 10-20 kB/frame, neutral at 60 kB)
ERR_RUN_GAIN_16THS = 8
# glyph modes that paint the background sample 2x3 pixels per cell to find the cell's two colours
PAINTED_SAMPLES = (2, 3)
# ink coverage of the densest ramp glyph, as a share of the cell (typical monospace fonts: ~0.3)
RAMP_MAX_COVERAGE = 0.5


def samples(mode: str, colors: str, symbols: str = DEFAULT_SYMBOLS) -> tuple[int, int]:
    """(across, down) picture pixels one cell shows in this mode."""
    if mode == "mosaic":
        sx, sy, _, _ = _SETS[symbols]
        return sx, sy
    if mode == "blocks":
        return 1, 2
    if colors != "none":        # color / ascii painting fg and bg
        return PAINTED_SAMPLES
    return 1, 1


def picture_size(cols: int, rows: int, mode: str, colors: str, symbols: str = DEFAULT_SYMBOLS) -> tuple[int, int]:
    """(width, height) in pixels of the picture a cols x rows tile can show in full: a sextant
    mosaic wants cols*2 x rows*3, quadrants and half blocks cols*2 x rows*2, blocks cols x rows*2."""
    sx, sy = samples(mode, colors, symbols)
    return cols * sx, rows * sy


def shown_picture_size(cols: int, rows: int, mode: str, colors: str, symbols: str = DEFAULT_SYMBOLS,
                       picture_wh: tuple[int, int] | None = None) -> tuple[int, int]:
    """(width, height) in square picture pixels that a cols x rows tile shows of a picture of
    ``picture_wh``'s aspect: what the renderer letterboxes it to (s2c.render.renderer.fit_size),
    so a picture this size is drawn without upsampling. A 16:9 picture in a tall tile uses only
    its width; without a picture yet, the whole tile (``picture_size``)."""
    gw, gh = picture_size(cols, rows, mode, colors, symbols)
    if picture_wh is None or min(picture_wh) < 1:
        return gw, gh
    from .renderer import fit_size
    sx, sy = samples(mode, colors, symbols)
    iw, ih = picture_wh
    fw, fh = fit_size(iw, ih, gw, gh, 2.0 * sx / sy)
    # the grid's pixels may be taller than wide (sextants): the source rows needed follow the width
    return fw, max(1, int(round(fw * ih / iw)))


def glyph_table(symbols: str) -> tuple[list[bytes], int, bytes]:
    """(UTF-8 glyph per pattern, bits per pattern, allowed patterns for the fit)."""
    sx, sy, glyphs, allowed = _SETS[symbols]
    return [g.encode("utf-8") for g in glyphs], sx * sy, allowed


def mono_targets(px: np.ndarray, sx: int, sy: int, rows: int, cols: int):
    """Without colour: a pixel shows the (default) foreground when its luma is at least 128."""
    from .renderer import luminance
    bright = (luminance(px) >= 128).reshape(rows, sy, cols, sx).transpose(0, 2, 1, 3).reshape(rows, cols, sx * sy)
    weights = (1 << np.arange(sx * sy)).astype(np.uint16)
    tp = (bright.astype(np.uint16) @ weights).astype(np.uint8)
    tfg = np.full((rows, cols, 3), 255, np.uint8)
    tbg = np.zeros((rows, cols, 3), np.uint8)
    return tp, tfg, tbg


def ramp_lut(n_glyphs: int, n_pixels: int) -> np.ndarray:
    """Ramp index for k ink pixels of n_pixels (k = 0..n_pixels): the glyph whose estimated
    coverage (linear in the ramp position up to RAMP_MAX_COVERAGE) is nearest k/n_pixels."""
    cover = np.arange(n_glyphs) / max(1, n_glyphs - 1) * RAMP_MAX_COVERAGE
    want = np.minimum(np.arange(n_pixels + 1) / n_pixels, RAMP_MAX_COVERAGE)
    return np.abs(want[:, None] - cover[None, :]).argmin(axis=1).astype(np.uint8)


def painted_targets(tp: np.ndarray, tfg: np.ndarray, tbg: np.ndarray, n_pixels: int, lut: np.ndarray,
                    grey: bool):
    """Glyph-mode cells from fitted two-colour cells: the smaller pixel set is the glyph's ink
    (fg), the larger the background; the ramp glyph is chosen by the ink's share of the cell."""
    bits = np.unpackbits(tp[..., None], axis=-1, count=8, bitorder="little")[..., :n_pixels]
    k = bits.sum(axis=-1)
    invert = k * 2 > n_pixels
    ink = np.where(invert, n_pixels - k, k)
    fg = np.where(invert[..., None], tbg, tfg)
    bg = np.where(invert[..., None], tfg, tbg)
    if grey:
        from .renderer import luminance
        fg = np.repeat(luminance(fg)[..., None], 3, 2)
        bg = np.repeat(luminance(bg)[..., None], 3, 2)
    return lut[ink], np.ascontiguousarray(fg), np.ascontiguousarray(bg)



def error_gain(n_pixels: int, threshold: float) -> int:
    """The error a redraw must remove in mosaic_err: a ``threshold``-level shift of every pixel."""
    return int(n_pixels * ERR_LEVEL * threshold * threshold)


def default_threshold(colors: str, cell_error: bool = True) -> float:
    """The mosaic's default change threshold: the error test's (truecolor) or the per-pixel test's."""
    return ERR_THRESHOLD if colors == "truecolor" and cell_error else MOSAIC_THRESHOLD
