"""Pure-Python twin of s2c/_fast/cells.pyx: diff a grid of cells against what is on screen and
emit the ANSI bytes that bring the screen to the target. Same signatures, byte-identical output.

A cell is (glyph index, fg RGB, bg RGB). ``shown_*`` arrays hold what was last drawn and are
updated in place. A cell is redrawn when ``full`` or when any channel of fg or bg differs from
what is shown by more than ``threshold`` (so sensor noise is not change). In truecolor a
redrawn cell whose colour is within ``reuse`` levels of the colour already selected is drawn
with that colour (no SGR bytes); shown_* always records what is really displayed.
``blocks``: fg/bg are the top/bottom pixels of a half-block cell and the glyph is chosen among
upper half, lower half, space and full block (``glyphs`` in that order) so that the fewest colour
codes are needed; a cell whose halves are within 2*reuse is drawn in one colour (their mean). The glyph is a
function of the colours in every mode, so it is not compared on its own. ``glyphs`` is a list of
UTF-8 encoded bytes.
color_mode: 0 none, 1 = 16 colours, 2 = 256 colours, 3 = truecolor.
"""

from __future__ import annotations

# xterm's default 16-colour palette, in SGR order 30..37, 90..97
PALETTE16 = (
    (0, 0, 0), (205, 0, 0), (0, 205, 0), (205, 205, 0), (0, 0, 238), (205, 0, 205), (0, 205, 205),
    (229, 229, 229), (127, 127, 127), (255, 0, 0), (0, 255, 0), (255, 255, 0), (92, 92, 255),
    (255, 0, 255), (0, 255, 255), (255, 255, 255),
)
CUBE_LEVELS = (0, 95, 135, 175, 215, 255)


def _cube_index(v: int) -> int:
    if v < 48:
        return 0
    if v < 115:
        return 1
    return (v - 35) // 40


def color256(r: int, g: int, b: int) -> int:
    """Nearest xterm-256 index (6x6x6 cube 16..231 or grey ramp 232..255)."""
    ri, gi, bi = _cube_index(r), _cube_index(g), _cube_index(b)
    cr, cg, cb = CUBE_LEVELS[ri], CUBE_LEVELS[gi], CUBE_LEVELS[bi]
    cube_d = (cr - r) ** 2 + (cg - g) ** 2 + (cb - b) ** 2
    avg = (r + g + b) // 3
    gi2 = 0 if avg < 8 else (23 if avg > 238 else (avg - 3) // 10)
    gv = 8 + 10 * gi2
    grey_d = (gv - r) ** 2 + (gv - g) ** 2 + (gv - b) ** 2
    if grey_d < cube_d:
        return 232 + gi2
    return 16 + 36 * ri + 6 * gi + bi


def color16(r: int, g: int, b: int) -> int:
    """Nearest of the 16 ANSI colours (0..15)."""
    best, best_d = 0, 1 << 30
    for i, (pr, pg, pb) in enumerate(PALETTE16):
        d = (pr - r) ** 2 + (pg - g) ** 2 + (pb - b) ** 2
        if d < best_d:
            best, best_d = i, d
    return best


def _sgr_color(mode: int, r: int, g: int, b: int, bg: bool) -> str:
    if mode == 3:
        return f"{48 if bg else 38};2;{r};{g};{b}"
    if mode == 2:
        return f"{48 if bg else 38};5;{color256(r, g, b)}"
    i = color16(r, g, b)
    base = (40 if bg else 30) if i < 8 else (100 if bg else 90)
    return str(base + (i & 7))


def _key(mode: int, r: int, g: int, b: int) -> int:
    """What the terminal will show for this colour, as one int (for SGR state tracking)."""
    if mode == 3:
        return (r << 16) | (g << 8) | b
    if mode == 2:
        return color256(r, g, b)
    return color16(r, g, b)


def _near(mode: int, a, b, tol: int) -> bool:
    """Would colour a show as colour b? truecolor: within tol per channel; palettes: same index."""
    if mode == 3:
        return max(abs(a[0] - b[0]), abs(a[1] - b[1]), abs(a[2] - b[2])) <= tol
    return _key(mode, *a) == _key(mode, *b)


def diff_cells(tg, tfg, tbg, sg, sfg, sbg, glyphs, int_color_mode, emit_fg, emit_bg,
               threshold, reuse, blocks, full, row0, col0) -> bytes:
    if blocks and (len(glyphs) != 4 or int_color_mode == 0):
        raise ValueError("blocks=True needs the 4 glyphs (upper half, lower half, space, full) and colour")
    rows, cols = tg.shape[0], tg.shape[1]
    mode = int_color_mode
    out = []
    cur_r, cur_c = -1, -1
    cur_fg, cur_bg = -1, -1
    cf = cb = (-1000, -1000, -1000)
    for r in range(rows):
        for c in range(cols):
            f0, f1, f2 = int(tfg[r, c, 0]), int(tfg[r, c, 1]), int(tfg[r, c, 2])
            b0, b1, b2 = int(tbg[r, c, 0]), int(tbg[r, c, 1]), int(tbg[r, c, 2])
            if not full:
                d = max(abs(f0 - int(sfg[r, c, 0])), abs(f1 - int(sfg[r, c, 1])), abs(f2 - int(sfg[r, c, 2])),
                        abs(b0 - int(sbg[r, c, 0])), abs(b1 - int(sbg[r, c, 1])), abs(b2 - int(sbg[r, c, 2])))
                if d <= threshold:
                    continue
            if cur_r != r or cur_c != c:
                if cur_r == r and c > cur_c:
                    n = c - cur_c
                    out.append("\x1b[C" if n == 1 else f"\x1b[{n}C")
                else:
                    out.append(f"\x1b[{row0 + r + 1};{col0 + c + 1}H")
            want_fg, want_bg = emit_fg, emit_bg
            u, v = (f0, f1, f2), (b0, b1, b2)
            if blocks:
                # u/v: f = top pixel, b = bottom pixel; the glyph needing fewest colour codes wins
                if _near(mode, u, v, 2 * reuse):
                    m = ((f0 + b0 + 1) >> 1, (f1 + b1 + 1) >> 1, (f2 + b2 + 1) >> 1)
                    u = v = m
                    if (cur_fg != -1 and not (cur_bg != -1 and _near(mode, m, cb, reuse))
                            and _near(mode, m, cf, reuse)):
                        gi, want_fg, want_bg = 3, True, False
                    else:
                        gi, want_fg, want_bg = 2, False, True
                else:
                    top, bot = u, v
                    cost_upper = ((cur_fg == -1 or not _near(mode, top, cf, reuse))
                                  + (cur_bg == -1 or not _near(mode, bot, cb, reuse)))
                    cost_lower = ((cur_fg == -1 or not _near(mode, bot, cf, reuse))
                                  + (cur_bg == -1 or not _near(mode, top, cb, reuse)))
                    if cost_lower < cost_upper:
                        gi, u, v = 1, bot, top
                    else:
                        gi = 0
                    want_fg = want_bg = True
            else:
                gi = int(tg[r, c])
            if mode == 3 and reuse > 0:
                if want_fg and cur_fg != -1 and _near(3, u, cf, reuse):
                    u = cf
                if want_bg and cur_bg != -1 and _near(3, v, cb, reuse):
                    v = cb
            params = []
            if mode and want_fg:
                k = _key(mode, *u)
                if k != cur_fg:
                    params.append(_sgr_color(mode, *u, False))
                    cur_fg, cf = k, u
            if mode and want_bg:
                k = _key(mode, *v)
                if k != cur_bg:
                    params.append(_sgr_color(mode, *v, True))
                    cur_bg, cb = k, v
            if params:
                out.append("\x1b[" + ";".join(params) + "m")
            out.append(glyphs[gi].decode("utf-8"))
            cur_r, cur_c = r, c + 1
            sg[r, c] = gi
            if blocks and gi == 1:    # lower half: top shows bg, bottom shows fg
                u, v = v, u
            elif blocks and gi == 2:  # space: both halves show bg
                u = v
            elif blocks and gi == 3:  # full block: both halves show fg
                v = u
            sfg[r, c, 0], sfg[r, c, 1], sfg[r, c, 2] = u
            sbg[r, c, 0], sbg[r, c, 1], sbg[r, c, 2] = v
    if cur_fg != -1 or cur_bg != -1:
        out.append("\x1b[0m")
    return "".join(out).encode("utf-8")
