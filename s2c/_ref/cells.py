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
UTF-8 encoded bytes. ``emit_bg`` without ``blocks`` (glyph modes that paint the background): a
changed glyph is redrawn too when the cell's two colours differ by more than ``threshold``.
``dither`` >= 0 (16/256 colours): colours go through dither_color (a Bayer offset of ``dither``
levels at pixel (2r, c) for fg, (2r+1, c) for bg, then a luma-weighted palette match) and shown_*
keeps the source colours, so the change test is not fooled by the dither; -1: plain nearest index.
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
               threshold, reuse, blocks, full, row0, col0, dither=-1) -> bytes:
    if blocks and (len(glyphs) != 4 or int_color_mode == 0):
        raise ValueError("blocks=True needs the 4 glyphs (upper half, lower half, space, full) and colour")
    rows, cols = tg.shape[0], tg.shape[1]
    mode = int_color_mode
    dith = dither >= 0 and mode in (1, 2)
    painted = emit_bg and not blocks   # glyph modes that paint the background: the glyph counts too
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
                if d <= threshold and not (painted and int(tg[r, c]) != int(sg[r, c])
                                           and max(abs(f0 - b0), abs(f1 - b1), abs(f2 - b2)) > threshold):
                    continue
            src = (f0, f1, f2), (b0, b1, b2)
            if dith:  # the palette colours shown; the change test above stays on the source colours
                f0, f1, f2 = dither_color(mode, f0, f1, f2, 2 * r, c, dither)
                b0, b1, b2 = dither_color(mode, b0, b1, b2, 2 * r + 1, c, dither)
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
            if dith:
                u, v = src
            sfg[r, c, 0], sfg[r, c, 1], sfg[r, c, 2] = u
            sbg[r, c, 0], sbg[r, c, 1], sbg[r, c, 2] = v
    if cur_fg != -1 or cur_bg != -1:
        out.append("\x1b[0m")
    return "".join(out).encode("utf-8")


# ---- dithering (ordered, Bayer 8x8) for the palette depths ---------------------------------------

def _bayer8():
    m = [[0]]
    for _ in range(3):
        n = len(m)
        m = ([[4 * v for v in row] + [4 * v + 2 for v in row] for row in m]
             + [[4 * v + 3 for v in row] + [4 * v + 1 for v in row] for row in m])
    return tuple(tuple(row) for row in m)


BAYER8 = _bayer8()                     # values 0..63, each once
LUMA_WEIGHT = 32                       # 256 colours: weight of luma error against RGB error


def _luma(r: int, g: int, b: int) -> int:
    return (77 * r + 150 * g + 29 * b + 128) >> 8


def _cube_around(v: int) -> tuple[int, int]:
    """Indices of the cube levels just below and just above v."""
    i = 0
    while i < 5 and CUBE_LEVELS[i + 1] <= v:
        i += 1
    return i, min(5, i + 1)


def nearest256(r: int, g: int, b: int) -> tuple[int, int, int]:
    """The xterm-256 colour (RGB) nearest to (r, g, b) by luma-weighted error, among the cube
    corners around it and the two grey-ramp levels around its mean."""
    y = _luma(r, g, b)
    best, best_d = (0, 0, 0), 1 << 62
    cands = []
    ri, gi, bi = _cube_around(r), _cube_around(g), _cube_around(b)
    for a in ri:
        for c in gi:
            for e in bi:
                cands.append((CUBE_LEVELS[a], CUBE_LEVELS[c], CUBE_LEVELS[e]))
    avg = (r + g + b) // 3
    k = min(23, max(0, (avg - 8) // 10))
    for kk in (k, min(23, k + 1)):
        v = 8 + 10 * kk
        cands.append((v, v, v))
    for (pr, pg, pb) in cands:
        dy = _luma(pr, pg, pb) - y
        d = LUMA_WEIGHT * dy * dy + (pr - r) ** 2 + (pg - g) ** 2 + (pb - b) ** 2
        if d < best_d:
            best, best_d = (pr, pg, pb), d
    return best


def dither_color(mode: int, r: int, g: int, b: int, y: int, x: int, span: int):
    """The palette colour (as RGB) shown for (r, g, b) at dither position (y, x): a Bayer 8x8
    offset of ``span`` levels (zero mean over the tile; 0 = none) is added to all channels, then
    the nearest palette colour is taken (256: luma-weighted, see nearest256; 16: RGB distance).
    Mode 2 = 256, 1 = 16 colours."""
    t = BAYER8[y & 7][x & 7]
    off = ((2 * t + 1) * span) // 128 - span // 2
    r, g, b = min(255, max(0, r + off)), min(255, max(0, g + off)), min(255, max(0, b + off))
    if mode == 2:
        return nearest256(r, g, b)
    return PALETTE16[color16(r, g, b)]


# ---- symbol mosaics ------------------------------------------------------------------------------

def mosaic_fit(px, sx, sy, patterns, flat_tol, tp, tfg, tbg) -> None:
    """Per cell of ``sx`` x ``sy`` pixels of ``px`` (rows*sy x cols*sx x 3 uint8): the pattern
    (bit j*sx+i set = the pixel in column i, row j of the cell shows fg) and two colours (fg, bg:
    the rounded means of the two pixel sets) that best fit the cell, into tp, tfg, tbg.

    ``patterns`` empty: any pattern; the pixels are ordered by luma and the split with the least
    squared error is taken (bit set = brighter set). Otherwise a bytes object listing the allowed
    patterns (each with its complement implied), tried exhaustively. A cell whose two colours
    are within ``flat_tol`` levels per channel is flat: pattern 0, bg = fg = the cell mean.
    """
    rows, cols = tp.shape[0], tp.shape[1]
    n = sx * sy
    if px.shape[0] < rows * sy or px.shape[1] < cols * sx:
        raise ValueError("picture smaller than the cells")
    if n < 1 or n > 8:
        raise ValueError("cells of 1..8 pixels")
    allowed = list(patterns)
    for r in range(rows):
        for c in range(cols):
            pix = []
            for j in range(sy):
                for i in range(sx):
                    p = px[r * sy + j, c * sx + i]
                    pix.append((int(p[0]), int(p[1]), int(p[2])))
            tot = [sum(p[k] for p in pix) for k in range(3)]
            # best: maximise |S1|^2/n1 + |S0|^2/n0 (= minimise the squared error), exactly
            best_num, best_den, best_pat = -1, 1, 0
            if not allowed:
                order = sorted(range(n), key=lambda k: (77 * pix[k][0] + 150 * pix[k][1] + 29 * pix[k][2], k))
                s1 = [0, 0, 0]
                pat = 0
                for m in range(n - 1, 0, -1):   # the brightest n - m pixels are set
                    k = order[m]
                    pat |= 1 << k
                    s1 = [s1[0] + pix[k][0], s1[1] + pix[k][1], s1[2] + pix[k][2]]
                    n1 = n - m
                    n0 = m
                    s0 = [tot[0] - s1[0], tot[1] - s1[1], tot[2] - s1[2]]
                    num = (s1[0] ** 2 + s1[1] ** 2 + s1[2] ** 2) * n0 + (s0[0] ** 2 + s0[1] ** 2 + s0[2] ** 2) * n1
                    den = n1 * n0
                    if num * best_den > best_num * den:
                        best_num, best_den, best_pat = num, den, pat
            else:
                for pat in allowed:
                    n1 = bin(pat).count("1")
                    if n1 == 0 or n1 == n:
                        continue
                    n0 = n - n1
                    s1 = [0, 0, 0]
                    for k in range(n):
                        if pat >> k & 1:
                            s1 = [s1[0] + pix[k][0], s1[1] + pix[k][1], s1[2] + pix[k][2]]
                    s0 = [tot[0] - s1[0], tot[1] - s1[1], tot[2] - s1[2]]
                    num = (s1[0] ** 2 + s1[1] ** 2 + s1[2] ** 2) * n0 + (s0[0] ** 2 + s0[1] ** 2 + s0[2] ** 2) * n1
                    den = n1 * n0
                    if num * best_den > best_num * den:
                        best_num, best_den, best_pat = num, den, pat
            fg = bg = None
            if best_num >= 0:
                n1 = bin(best_pat).count("1")
                n0 = n - n1
                s1 = [0, 0, 0]
                for k in range(n):
                    if best_pat >> k & 1:
                        s1 = [s1[0] + pix[k][0], s1[1] + pix[k][1], s1[2] + pix[k][2]]
                fg = tuple((s1[k] * 2 + n1) // (2 * n1) for k in range(3))
                bg = tuple(((tot[k] - s1[k]) * 2 + n0) // (2 * n0) for k in range(3))
                if max(abs(fg[0] - bg[0]), abs(fg[1] - bg[1]), abs(fg[2] - bg[2])) <= flat_tol:
                    fg = None
            if fg is None:
                best_pat = 0
                fg = bg = tuple((tot[k] * 2 + n) // (2 * n) for k in range(3))
            tp[r, c] = best_pat
            tfg[r, c, 0], tfg[r, c, 1], tfg[r, c, 2] = fg
            tbg[r, c, 0], tbg[r, c, 1], tbg[r, c, 2] = bg


def _shown_change(tp, tf, tb, sp, sf, sb, full_mask) -> int:
    """Largest per-channel difference, over the cell's pixels, between two two-colour cells."""
    d = 0
    for a, b, m in ((tf, sf, tp & sp), (tf, sb, tp & ~sp & full_mask), (tb, sf, ~tp & sp & full_mask),
                    (tb, sb, ~tp & ~sp & full_mask)):
        if m:
            d = max(d, abs(a[0] - b[0]), abs(a[1] - b[1]), abs(a[2] - b[2]))
    return d


def diff_mosaic(tp, tfg, tbg, sp, sfg, sbg, glyphs, nbits, int_color_mode, threshold, reuse,
                dither, full, row0, col0) -> bytes:
    """Emit ANSI bytes for the mosaic cells that changed; update shown_* in place.

    A cell is (pattern, fg, bg): pixels whose bit is set show fg. ``glyphs[p]`` (2**nbits of them,
    UTF-8 bytes) draws pattern p in the foreground colour. A cell is redrawn when ``full`` or when
    some pixel of it would change by more than ``threshold`` levels in a channel. Of pattern p
    with (fg, bg) and its complement with (bg, fg) the one needing fewer colour codes is drawn; a
    flat cell (p = 0) is a space in bg, or a full block in fg when only fg is already selected.
    Truecolor reuses a selected colour within ``reuse`` levels; shown_* records the display.
    ``dither`` (palettes only): as in diff_cells.
    """
    rows, cols = tp.shape[0], tp.shape[1]
    full_mask = (1 << nbits) - 1
    if len(glyphs) != 1 << nbits:
        raise ValueError(f"need {1 << nbits} glyphs for {nbits}-bit patterns")
    mode = int_color_mode
    dith = dither >= 0 and mode in (1, 2)
    out = []
    cur_r, cur_c = -1, -1
    cur_fg, cur_bg = -1, -1
    cf = cb = (-1000, -1000, -1000)
    for r in range(rows):
        for c in range(cols):
            p = int(tp[r, c]) & full_mask
            f = (int(tfg[r, c, 0]), int(tfg[r, c, 1]), int(tfg[r, c, 2]))
            b = (int(tbg[r, c, 0]), int(tbg[r, c, 1]), int(tbg[r, c, 2]))
            if not full:
                s = (int(sfg[r, c, 0]), int(sfg[r, c, 1]), int(sfg[r, c, 2]))
                t = (int(sbg[r, c, 0]), int(sbg[r, c, 1]), int(sbg[r, c, 2]))
                if _shown_change(p, f, b, int(sp[r, c]) & full_mask, s, t, full_mask) <= threshold:
                    continue
            if cur_r != r or cur_c != c:
                if cur_r == r and c > cur_c:
                    k = c - cur_c
                    out.append("\x1b[C" if k == 1 else f"\x1b[{k}C")
                else:
                    out.append(f"\x1b[{row0 + r + 1};{col0 + c + 1}H")
            if dith:
                u = dither_color(mode, *f, 2 * r, c, dither)
                v = dither_color(mode, *b, 2 * r + 1, c, dither)
            else:
                u, v = f, b
            gp = p
            want_fg = want_bg = mode != 0
            if mode == 0:
                pass
            elif p == 0:
                if (cur_fg != -1 and not (cur_bg != -1 and _near(mode, v, cb, reuse))
                        and _near(mode, v, cf, reuse)):
                    gp, u, want_bg = full_mask, v, False
                else:
                    want_fg = False
            else:
                cost = ((cur_fg == -1 or not _near(mode, u, cf, reuse))
                        + (cur_bg == -1 or not _near(mode, v, cb, reuse)))
                cost_inv = ((cur_fg == -1 or not _near(mode, v, cf, reuse))
                            + (cur_bg == -1 or not _near(mode, u, cb, reuse)))
                if cost_inv < cost:
                    gp, u, v = full_mask & ~p, v, u
            if mode == 3 and reuse > 0:
                if want_fg and cur_fg != -1 and _near(3, u, cf, reuse):
                    u = cf
                if want_bg and cur_bg != -1 and _near(3, v, cb, reuse):
                    v = cb
            params = []
            if want_fg:
                k = _key(mode, *u)
                if k != cur_fg:
                    params.append(_sgr_color(mode, *u, False))
                    cur_fg, cf = k, u
            if want_bg:
                k = _key(mode, *v)
                if k != cur_bg:
                    params.append(_sgr_color(mode, *v, True))
                    cur_bg, cb = k, v
            if params:
                out.append("\x1b[" + ";".join(params) + "m")
            out.append(glyphs[gp].decode("utf-8"))
            cur_r, cur_c = r, c + 1
            # what the cell shows, as (pattern of fg pixels, fg, bg)
            if dith or mode == 0:
                shown_f, shown_b = f, b
            elif p == 0:
                shown_f = shown_b = u if gp else v
            elif gp == p:
                shown_f, shown_b = u, v
            else:  # drawn inverted: the target's fg pixels show the terminal's bg colour
                shown_f, shown_b = v, u
            sp[r, c] = p
            sfg[r, c, 0], sfg[r, c, 1], sfg[r, c, 2] = shown_f
            sbg[r, c, 0], sbg[r, c, 1], sbg[r, c, 2] = shown_b
    if cur_fg != -1 or cur_bg != -1:
        out.append("\x1b[0m")
    return "".join(out).encode("utf-8")


# ---- mosaic whose redraws follow the cell's error (truecolor) ------------------------------------
# Error of showing colour c for pixel x: ERR_LUMA_W * (a.(x - c))^2 + 65536 * |x - c|^2 with a = (77,
# 150, 29) (luma in 1/256 levels): exact integers, a quadratic form, so the error of a pixel set
# shown in one colour follows from the set's sums (see _set_err). A uniform grey shift of d levels
# costs ERR_LEVEL * d^2 per pixel.
ERR_LUMA_W = 2
ERR_LEVEL = (ERR_LUMA_W + 3) * 65536


def _pix_err(x, c) -> int:
    d0, d1, d2 = x[0] - c[0], x[1] - c[1], x[2] - c[2]
    y = 77 * d0 + 150 * d1 + 29 * d2
    return ERR_LUMA_W * y * y + 65536 * (d0 * d0 + d1 * d1 + d2 * d2)


def _stats(pix, mask) -> tuple:
    """Sums of the pixel set ``mask``: (n, r, g, b, sum |x|^2, sum luma, sum luma^2)."""
    n = s0 = s1 = s2 = q = sy = syy = 0
    for k, x in enumerate(pix):
        if mask >> k & 1:
            y = 77 * x[0] + 150 * x[1] + 29 * x[2]
            n += 1; s0 += x[0]; s1 += x[1]; s2 += x[2]
            q += x[0] * x[0] + x[1] * x[1] + x[2] * x[2]; sy += y; syy += y * y
    return n, s0, s1, s2, q, sy, syy


def _set_err(st, c) -> int:
    """Error of the pixel set with sums ``st`` all shown in colour c."""
    n, s0, s1, s2, q, sy, syy = st
    yc = 77 * c[0] + 150 * c[1] + 29 * c[2]
    cc = c[0] * c[0] + c[1] * c[1] + c[2] * c[2]
    return (ERR_LUMA_W * (syy - 2 * yc * sy + n * yc * yc)
            + 65536 * (q - 2 * (c[0] * s0 + c[1] * s1 + c[2] * s2) + n * cc))


def _wnorm(st) -> int:
    return ERR_LUMA_W * st[5] * st[5] + 65536 * (st[1] * st[1] + st[2] * st[2] + st[3] * st[3])


def _mean(st):
    n = st[0]
    return tuple((st[1 + k] * 2 + n) // (2 * n) for k in range(3))


def _sgr_len(c) -> int:
    """Characters of '38;2;r;g;b' (the same for 48)."""
    return 7 + len(str(c[0])) + len(str(c[1])) + len(str(c[2]))


def _err_split(pix, n, allowed, full_mask) -> int:
    """Two-set split of the cell with the least weighted squared error (exact integers: maximise
    |S1|_w^2 / n1 + |S0|_w^2 / n0) among the luma order's n - 1 splits (``allowed`` empty; bit set
    = brighter set) or the allowed patterns. -> pattern, or -1 when there is none."""
    tot = _stats(pix, full_mask)
    if allowed:
        cands = [p for p in allowed if 0 < bin(p).count("1") < n]
    else:
        order = sorted(range(n), key=lambda k: (77 * pix[k][0] + 150 * pix[k][1] + 29 * pix[k][2], k))
        cands, pat = [], 0
        for m in range(n - 1, 0, -1):
            pat |= 1 << order[m]
            cands.append(pat)
    best_num, best_den, best_pat = -1, 1, -1
    for pat in cands:
        a = _stats(pix, pat)
        b = tuple(tot[k] - a[k] for k in range(7))
        num = _wnorm(a) * b[0] + _wnorm(b) * a[0]
        den = a[0] * b[0]
        if num * best_den > best_num * den:
            best_num, best_den, best_pat = num, den, pat
    return best_pat


def _err_fit(pix, pat, full_mask, flat_tol):
    """(error, two-colour (pattern, fg, bg) or None, flat colour) of the cell's fit: the split's
    set means unless they are within ``flat_tol`` levels per channel (then the cell's mean)."""
    tot = _stats(pix, full_mask)
    m = _mean(tot)
    if pat >= 0:
        s1, s0 = _stats(pix, pat), _stats(pix, full_mask & ~pat)
        f, b = _mean(s1), _mean(s0)
        if max(abs(f[0] - b[0]), abs(f[1] - b[1]), abs(f[2] - b[2])) > flat_tol:
            return _set_err(s1, f) + _set_err(s0, b), (pat, f, b), m
    return _set_err(tot, m), None, m


def _draw_cost(u, v, cf, cb) -> int:
    """SGR bytes of selecting fg u and bg v (None: not needed) given the current cf, cb."""
    k = nb = 0
    for c, cur in ((u, cf), (v, cb)):
        if c is not None and c != cur:
            nb += _sgr_len(c)
            k += 1
    return 0 if k == 0 else nb + 2 + k


def mosaic_err(px, sx, sy, patterns, flat_tol, sp, sfg, sbg, glyphs, nbits, gain, full, row0, col0,
               adj_num=16) -> bytes:
    """Fit and diff in one pass, truecolor: bytes that bring the shown mosaic towards ``px``.

    Per cell of sx x sy pixels the error of what is shown (shown pattern sp: bit set = the pixel
    shows sfg, else sbg) against the pixels is measured first; a cell whose shown error is at most
    ``gain`` is skipped without fitting. Otherwise the cell is fitted (the split of _err_split; two
    colours, or the cell's mean when the two are within ``flat_tol``) and redrawn when the
    shown error exceeds the fit's by more than ``gain`` (always when ``full``). A two-colour cell
    is drawn as its pattern or the complement with the colours swapped, a flat one as a space in
    bg or a full block in fg: whichever needs fewer bytes of colour codes (and glyph) given the
    colours already selected. shown_* records the display: sp = the glyph's pattern, sfg/sbg its
    colours (the same for a flat cell). glyphs[p] (UTF-8 bytes) draws pattern p in fg.
    A cell right after a redrawn one (no cursor move needed) is tested against ``gain *
    adj_num / 16`` instead: runs of redraws grow rather than leaving a patchwork of cells redrawn
    at slightly different moments of a slow change (which SSIM, and the eye, see as structure).
    """
    rows, cols = sp.shape[0], sp.shape[1]
    n = sx * sy
    full_mask = (1 << nbits) - 1
    if n < 1 or n > 8 or n != nbits or len(glyphs) != 1 << nbits:
        raise ValueError(f"need {1 << nbits} glyphs for {nbits}-bit patterns of {sx}x{sy} cells")
    if px.shape[0] < rows * sy or px.shape[1] < cols * sx:
        raise ValueError("picture smaller than the cells")
    allowed = sorted(set(list(patterns) + [full_mask & ~p for p in patterns]))
    glen = [len(g) for g in glyphs]
    out = []
    cur_r = cur_c = -1
    cf = cb = None
    for r in range(rows):
        for c in range(cols):
            pix = []
            for j in range(sy):
                for i in range(sx):
                    p = px[r * sy + j, c * sx + i]
                    pix.append((int(p[0]), int(p[1]), int(p[2])))
            if not full:
                q = int(sp[r, c]) & full_mask
                f = (int(sfg[r, c, 0]), int(sfg[r, c, 1]), int(sfg[r, c, 2]))
                b = (int(sbg[r, c, 0]), int(sbg[r, c, 1]), int(sbg[r, c, 2]))
                e_shown = sum(_pix_err(x, f if q >> k & 1 else b) for k, x in enumerate(pix))
                g_eff = (gain * adj_num) >> 4 if (cur_r == r and cur_c == c) else gain
                if e_shown <= g_eff:
                    continue
            e_fit, two, m = _err_fit(pix, _err_split(pix, n, allowed, full_mask), full_mask, flat_tol)
            if not full and e_shown - e_fit <= g_eff:
                continue
            if two is not None:
                pat, f, b = two
                inv = full_mask & ~pat
                if glen[inv] + _draw_cost(b, f, cf, cb) < glen[pat] + _draw_cost(f, b, cf, cb):
                    g, u, v = inv, b, f
                else:
                    g, u, v = pat, f, b
            elif glen[full_mask] + _draw_cost(m, None, cf, cb) < glen[0] + _draw_cost(None, m, cf, cb):
                g, u, v = full_mask, m, None
            else:
                g, u, v = 0, None, m
            if cur_r != r or cur_c != c:
                if cur_r == r and c > cur_c:
                    k = c - cur_c
                    out.append("\x1b[C" if k == 1 else f"\x1b[{k}C")
                else:
                    out.append(f"\x1b[{row0 + r + 1};{col0 + c + 1}H")
            params = []
            if u is not None and u != cf:
                params.append(_sgr_color(3, *u, False))
                cf = u
            if v is not None and v != cb:
                params.append(_sgr_color(3, *v, True))
                cb = v
            if params:
                out.append("\x1b[" + ";".join(params) + "m")
            out.append(glyphs[g].decode("utf-8"))
            cur_r, cur_c = r, c + 1
            if u is None:
                u = v
            if v is None:
                v = u
            sp[r, c] = g
            sfg[r, c, 0], sfg[r, c, 1], sfg[r, c, 2] = u
            sbg[r, c, 0], sbg[r, c, 1], sbg[r, c, 2] = v
    if cf is not None or cb is not None:
        out.append("\x1b[0m")
    return "".join(out).encode("utf-8")
