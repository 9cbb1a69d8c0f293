# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled cell diff + ANSI emitter. Twin (the reference): s2c/_ref/cells.py; output is
byte-identical. Writes into one C buffer sized for the worst case, no per-cell Python objects."""

from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy

cdef int[6] CUBE = [0, 95, 135, 175, 215, 255]
cdef int[48] PAL16 = [0, 0, 0, 205, 0, 0, 0, 205, 0, 205, 205, 0, 0, 0, 238, 205, 0, 205,
                      0, 205, 205, 229, 229, 229, 127, 127, 127, 255, 0, 0, 0, 255, 0,
                      255, 255, 0, 92, 92, 255, 255, 0, 255, 0, 255, 255, 255, 255, 255]


cdef inline int _cube_index(int v) noexcept nogil:
    if v < 48:
        return 0
    if v < 115:
        return 1
    return (v - 35) // 40


cdef int c_color256(int r, int g, int b) noexcept nogil:
    cdef int ri = _cube_index(r), gi = _cube_index(g), bi = _cube_index(b)
    cdef int cr = CUBE[ri], cg = CUBE[gi], cb = CUBE[bi]
    cdef int cube_d = (cr - r) * (cr - r) + (cg - g) * (cg - g) + (cb - b) * (cb - b)
    cdef int avg = (r + g + b) // 3
    cdef int gi2
    if avg < 8:
        gi2 = 0
    elif avg > 238:
        gi2 = 23
    else:
        gi2 = (avg - 3) // 10
    cdef int gv = 8 + 10 * gi2
    cdef int grey_d = (gv - r) * (gv - r) + (gv - g) * (gv - g) + (gv - b) * (gv - b)
    if grey_d < cube_d:
        return 232 + gi2
    return 16 + 36 * ri + 6 * gi + bi


cdef int c_color16(int r, int g, int b) noexcept nogil:
    cdef int i, d, best = 0, best_d = 1 << 30
    for i in range(16):
        d = ((PAL16[3 * i] - r) * (PAL16[3 * i] - r) + (PAL16[3 * i + 1] - g) * (PAL16[3 * i + 1] - g)
             + (PAL16[3 * i + 2] - b) * (PAL16[3 * i + 2] - b))
        if d < best_d:
            best = i
            best_d = d
    return best


def color256(int r, int g, int b):
    return c_color256(r, g, b)


def color16(int r, int g, int b):
    return c_color16(r, g, b)


cdef inline Py_ssize_t _put_int(char* buf, Py_ssize_t n, int v) noexcept nogil:
    cdef char tmp[12]
    cdef int k = 0
    if v == 0:
        buf[n] = 48
        return n + 1
    while v > 0:
        tmp[k] = <char>(48 + v % 10)
        v = v // 10
        k += 1
    while k > 0:
        k -= 1
        buf[n] = tmp[k]
        n += 1
    return n


# decimal digits of 0..255, 4 bytes each (for one memcpy), and their lengths
cdef char DIG[1024]
cdef int DLEN[256]
for _v in range(256):
    _s = str(_v).encode()
    DLEN[_v] = len(_s)
    for _k in range(4):
        DIG[4 * _v + _k] = _s[_k] if _k < len(_s) else 0


cdef inline Py_ssize_t _put_move(char* buf, Py_ssize_t n, Py_ssize_t r, Py_ssize_t c,
                                 Py_ssize_t cur_r, Py_ssize_t cur_c, int row0, int col0) noexcept nogil:
    """The cursor from (cur_r, cur_c) to (r, c) of the tile: CSI n C along a row, else CSI row;col H."""
    buf[n] = 27; buf[n + 1] = 91; n += 2  # ESC [
    if cur_r == r and c > cur_c:
        if c - cur_c != 1:
            n = _put_int(buf, n, <int>(c - cur_c))
        buf[n] = 67; n += 1  # C
    else:
        n = _put_int(buf, n, <int>(row0 + r + 1))
        buf[n] = 59
        n = _put_int(buf, n + 1, <int>(col0 + c + 1))
        buf[n] = 72; n += 1  # H
    return n


cdef inline Py_ssize_t _put_byte(char* buf, Py_ssize_t n, int v) noexcept nogil:
    memcpy(buf + n, &DIG[4 * v], 4)    # the buffer has slack: the extra byte is overwritten
    return n + DLEN[v]


cdef inline Py_ssize_t _put_color(char* buf, Py_ssize_t n, int mode, int r, int g, int b, bint bg) noexcept nogil:
    cdef int i
    if mode == 3:
        buf[n] = 52 if bg else 51; buf[n + 1] = 56                    # "48" / "38"
        buf[n + 2] = 59; buf[n + 3] = 50; buf[n + 4] = 59  # ";2;"
        n = _put_byte(buf, n + 5, r)
        buf[n] = 59
        n = _put_byte(buf, n + 1, g)
        buf[n] = 59
        return _put_byte(buf, n + 1, b)
    if mode == 2:
        n = _put_int(buf, n, 48 if bg else 38)
        buf[n] = 59; buf[n + 1] = 53; buf[n + 2] = 59  # ";5;"
        return _put_int(buf, n + 3, c_color256(r, g, b))
    i = c_color16(r, g, b)
    if i < 8:
        return _put_int(buf, n, (40 if bg else 30) + i)
    return _put_int(buf, n, (100 if bg else 90) + (i & 7))


cdef inline int _key(int mode, int r, int g, int b) noexcept nogil:
    if mode == 3:
        return (r << 16) | (g << 8) | b
    if mode == 2:
        return c_color256(r, g, b)
    return c_color16(r, g, b)


cdef inline bint _near(int mode, int reuse, int a0, int a1, int a2, int b0, int b1, int b2, int tol) noexcept nogil:
    """Would colour a show as colour b? truecolor: within tol per channel; palettes: same index."""
    if mode == 3:
        return abs(a0 - b0) <= tol and abs(a1 - b1) <= tol and abs(a2 - b2) <= tol
    return _key(mode, a0, a1, a2) == _key(mode, b0, b1, b2)



# ordered dithering (see s2c/_ref/cells.py dither_color)
cdef int[64] BAYER8 = [0, 32, 8, 40, 2, 34, 10, 42, 48, 16, 56, 24, 50, 18, 58, 26,
                       12, 44, 4, 36, 14, 46, 6, 38, 60, 28, 52, 20, 62, 30, 54, 22,
                       3, 35, 11, 43, 1, 33, 9, 41, 51, 19, 59, 27, 49, 17, 57, 25,
                       15, 47, 7, 39, 13, 45, 5, 37, 63, 31, 55, 23, 61, 29, 53, 21]
cdef int LUMA_WEIGHT = 32


cdef inline int _luma(int r, int g, int b) noexcept nogil:
    return (77 * r + 150 * g + 29 * b + 128) >> 8


cdef inline int _clamp255(int v) noexcept nogil:
    return 0 if v < 0 else (255 if v > 255 else v)


cdef inline void _cube_around(int v, int* lo, int* hi) noexcept nogil:
    cdef int i = 0
    while i < 5 and CUBE[i + 1] <= v:
        i += 1
    lo[0] = i
    hi[0] = i + 1 if i < 5 else 5


cdef inline long long _cand(int pr, int pg, int pb, int r, int g, int b, int y) noexcept nogil:
    cdef long long dy = _luma(pr, pg, pb) - y
    return LUMA_WEIGHT * dy * dy + (pr - r) * (pr - r) + (pg - g) * (pg - g) + (pb - b) * (pb - b)


cdef void _nearest256(int r, int g, int b, int* out) noexcept nogil:
    cdef int y = _luma(r, g, b)
    cdef int ri[2]
    cdef int gi[2]
    cdef int bi[2]
    cdef int a, c, e, k, kk, v, pr, pg, pb, avg
    cdef long long d, best_d = (<long long>1) << 62
    _cube_around(r, &ri[0], &ri[1]); _cube_around(g, &gi[0], &gi[1]); _cube_around(b, &bi[0], &bi[1])
    out[0] = 0; out[1] = 0; out[2] = 0
    for a in range(2):
        for c in range(2):
            for e in range(2):
                pr = CUBE[ri[a]]; pg = CUBE[gi[c]]; pb = CUBE[bi[e]]
                d = _cand(pr, pg, pb, r, g, b, y)
                if d < best_d:
                    best_d = d; out[0] = pr; out[1] = pg; out[2] = pb
    avg = (r + g + b) // 3
    k = (avg - 8) // 10 if avg >= 8 else 0
    if k > 23:
        k = 23
    for kk in range(2):
        v = 8 + 10 * (k + kk if k + kk < 23 else 23)
        d = _cand(v, v, v, r, g, b, y)
        if d < best_d:
            best_d = d; out[0] = v; out[1] = v; out[2] = v


cdef inline void _dither(int mode, int r, int g, int b, int y, int x, int span, int* out) noexcept nogil:
    cdef int t = BAYER8[(y & 7) * 8 + (x & 7)]
    cdef int off = ((2 * t + 1) * span) // 128 - span // 2
    cdef int i
    r = _clamp255(r + off); g = _clamp255(g + off); b = _clamp255(b + off)
    if mode == 2:
        _nearest256(r, g, b, out)
        return
    i = c_color16(r, g, b)
    out[0] = PAL16[3 * i]; out[1] = PAL16[3 * i + 1]; out[2] = PAL16[3 * i + 2]


def dither_color(int mode, int r, int g, int b, int y, int x, int span):
    cdef int out[3]
    _dither(mode, r, g, b, y, x, span, out)
    return out[0], out[1], out[2]


def nearest256(int r, int g, int b):
    cdef int out[3]
    _nearest256(r, g, b, out)
    return out[0], out[1], out[2]


def diff_cells(const unsigned char[:, :] tg, const unsigned char[:, :, :] tfg,
               const unsigned char[:, :, :] tbg, unsigned char[:, :] sg,
               unsigned char[:, :, :] sfg, unsigned char[:, :, :] sbg, list glyphs,
               int int_color_mode, bint emit_fg, bint emit_bg, int threshold, int reuse,
               bint blocks, bint full, int row0, int col0, int dither=-1):
    """Emit ANSI bytes for the cells that changed (all of them when ``full``); update shown_*."""
    cdef Py_ssize_t rows = tg.shape[0], cols = tg.shape[1]
    if (tfg.shape[0] != rows or tfg.shape[1] != cols or tbg.shape[0] != rows or tbg.shape[1] != cols
            or sg.shape[0] != rows or sg.shape[1] != cols or sfg.shape[0] != rows or sfg.shape[1] != cols
            or sbg.shape[0] != rows or sbg.shape[1] != cols or tfg.shape[2] < 3 or tbg.shape[2] < 3
            or sfg.shape[2] < 3 or sbg.shape[2] < 3):
        raise ValueError("cell arrays disagree in shape")
    cdef Py_ssize_t r, c
    cdef int ng = len(glyphs)
    if ng < 1 or ng > 256:
        raise ValueError(f"need 1..256 glyphs, got {ng}")
    if blocks and (ng != 4 or int_color_mode == 0):
        raise ValueError("blocks=True needs the 4 glyphs (upper half, lower half, space, full) and colour")
    cdef char gbuf[256 * 4]
    cdef int glen[256]
    cdef int i
    for i in range(ng):
        gb = glyphs[i]
        if not isinstance(gb, bytes) or len(gb) < 1 or len(gb) > 4:
            raise ValueError("each glyph must be 1..4 UTF-8 bytes")
        glen[i] = len(gb)
        memcpy(&gbuf[4 * i], <char*>gb, glen[i])
    for r in range(rows):
        for c in range(cols):
            if not blocks and tg[r, c] >= ng:
                raise ValueError(f"glyph index {tg[r, c]} out of range {ng}")
    cdef Py_ssize_t cap = rows * cols * 64 + 64
    cdef char* buf = <char*>malloc(cap)
    if buf == NULL:
        raise MemoryError()
    cdef Py_ssize_t n = 0
    cdef int cur_r = -1, cur_c = -1, cur_fg = -1, cur_bg = -1
    cdef int cf0 = -1000, cf1 = -1000, cf2 = -1000, cb0 = -1000, cb1 = -1000, cb2 = -1000
    cdef int f0, f1, f2, b0, b1, b2, d, k, gi, nparam, u0, u1, u2, v0, v1, v2, m0, m1, m2
    cdef bint want_fg, want_bg
    cdef int mode = int_color_mode
    cdef bint dith = dither >= 0 and (mode == 1 or mode == 2)
    cdef bint painted = emit_bg and not blocks
    cdef int sf0, sf1, sf2, sb0, sb1, sb2
    cdef int dq[3]
    try:
        with nogil:
            for r in range(rows):
                for c in range(cols):
                    f0 = tfg[r, c, 0]; f1 = tfg[r, c, 1]; f2 = tfg[r, c, 2]
                    b0 = tbg[r, c, 0]; b1 = tbg[r, c, 1]; b2 = tbg[r, c, 2]
                    if not full:
                        d = abs(f0 - sfg[r, c, 0])
                        k = abs(f1 - sfg[r, c, 1]); d = k if k > d else d
                        k = abs(f2 - sfg[r, c, 2]); d = k if k > d else d
                        k = abs(b0 - sbg[r, c, 0]); d = k if k > d else d
                        k = abs(b1 - sbg[r, c, 1]); d = k if k > d else d
                        k = abs(b2 - sbg[r, c, 2]); d = k if k > d else d
                        if d <= threshold:
                            if not painted or tg[r, c] == sg[r, c]:
                                continue
                            d = abs(f0 - b0)
                            k = abs(f1 - b1); d = k if k > d else d
                            k = abs(f2 - b2); d = k if k > d else d
                            if d <= threshold:
                                continue
                    sf0 = f0; sf1 = f1; sf2 = f2; sb0 = b0; sb1 = b1; sb2 = b2
                    if dith:
                        _dither(mode, f0, f1, f2, 2 * <int>r, <int>c, dither, dq)
                        f0 = dq[0]; f1 = dq[1]; f2 = dq[2]
                        _dither(mode, b0, b1, b2, 2 * <int>r + 1, <int>c, dither, dq)
                        b0 = dq[0]; b1 = dq[1]; b2 = dq[2]
                    if cur_r != r or cur_c != c:
                        n = _put_move(buf, n, r, c, cur_r, cur_c, row0, col0)
                    # choose glyph and the colours to select: u = fg, v = bg
                    want_fg = emit_fg
                    want_bg = emit_bg
                    u0 = f0; u1 = f1; u2 = f2
                    v0 = b0; v1 = b1; v2 = b2
                    if blocks:
                        # f = top pixel, b = bottom pixel; pick the glyph that needs fewest colour codes
                        if _near(mode, reuse, f0, f1, f2, b0, b1, b2, 2 * reuse):
                            m0 = (f0 + b0 + 1) >> 1; m1 = (f1 + b1 + 1) >> 1; m2 = (f2 + b2 + 1) >> 1
                            u0 = m0; u1 = m1; u2 = m2; v0 = m0; v1 = m1; v2 = m2
                            if (cur_fg != -1 and not (cur_bg != -1 and _near(mode, reuse, m0, m1, m2, cb0, cb1, cb2, reuse))
                                    and _near(mode, reuse, m0, m1, m2, cf0, cf1, cf2, reuse)):
                                gi = 3; want_fg = True; want_bg = False
                            else:
                                gi = 2; want_fg = False; want_bg = True
                        else:
                            k = ((cur_fg == -1 or not _near(mode, reuse, f0, f1, f2, cf0, cf1, cf2, reuse))
                                 + (cur_bg == -1 or not _near(mode, reuse, b0, b1, b2, cb0, cb1, cb2, reuse)))
                            d = ((cur_fg == -1 or not _near(mode, reuse, b0, b1, b2, cf0, cf1, cf2, reuse))
                                 + (cur_bg == -1 or not _near(mode, reuse, f0, f1, f2, cb0, cb1, cb2, reuse)))
                            if d < k:
                                gi = 1; u0 = b0; u1 = b1; u2 = b2; v0 = f0; v1 = f1; v2 = f2
                            else:
                                gi = 0
                            want_fg = True; want_bg = True
                    else:
                        gi = tg[r, c]
                    if mode == 3 and reuse > 0:
                        # truecolor: a colour within ``reuse`` levels of the current one is shown
                        # with the current one (no SGR); shown_* records what is really displayed
                        if want_fg and cur_fg != -1 and _near(3, reuse, u0, u1, u2, cf0, cf1, cf2, reuse):
                            u0 = cf0; u1 = cf1; u2 = cf2
                        if want_bg and cur_bg != -1 and _near(3, reuse, v0, v1, v2, cb0, cb1, cb2, reuse):
                            v0 = cb0; v1 = cb1; v2 = cb2
                    nparam = 0
                    if mode and want_fg:
                        k = _key(mode, u0, u1, u2)
                        if k != cur_fg:
                            buf[n] = 27; buf[n + 1] = 91; n += 2
                            n = _put_color(buf, n, mode, u0, u1, u2, False)
                            cur_fg = k
                            cf0 = u0; cf1 = u1; cf2 = u2
                            nparam = 1
                    if mode and want_bg:
                        k = _key(mode, v0, v1, v2)
                        if k != cur_bg:
                            if nparam:
                                buf[n] = 59; n += 1
                            else:
                                buf[n] = 27; buf[n + 1] = 91; n += 2
                            n = _put_color(buf, n, mode, v0, v1, v2, True)
                            cur_bg = k
                            cb0 = v0; cb1 = v1; cb2 = v2
                            nparam = 1
                    if nparam:
                        buf[n] = 109; n += 1  # m
                    memcpy(buf + n, &gbuf[4 * gi], glen[gi])
                    n += glen[gi]
                    cur_r = <int>r
                    cur_c = <int>c + 1
                    sg[r, c] = gi
                    if blocks and gi == 1:    # lower half: top shows bg, bottom shows fg
                        u0, v0 = v0, u0
                        u1, v1 = v1, u1
                        u2, v2 = v2, u2
                    elif blocks and gi == 2:  # space: both halves show bg
                        u0 = v0; u1 = v1; u2 = v2
                    elif blocks and gi == 3:  # full block: both halves show fg
                        v0 = u0; v1 = u1; v2 = u2
                    if dith:
                        u0 = sf0; u1 = sf1; u2 = sf2; v0 = sb0; v1 = sb1; v2 = sb2
                    sfg[r, c, 0] = u0; sfg[r, c, 1] = u1; sfg[r, c, 2] = u2
                    sbg[r, c, 0] = v0; sbg[r, c, 1] = v1; sbg[r, c, 2] = v2
            if cur_fg != -1 or cur_bg != -1:
                buf[n] = 27; buf[n + 1] = 91; buf[n + 2] = 48; buf[n + 3] = 109; n += 4
        return PyBytes_FromStringAndSize(buf, n)
    finally:
        free(buf)



# ---- symbol mosaics (see s2c/_ref/cells.py for the contract) -------------------------------------

cdef inline void _cswap(int* a, int i, int j) noexcept nogil:
    cdef int x = a[i], y = a[j]
    a[i] = x if x < y else y
    a[j] = y if x < y else x


cdef inline void _sort_keys(int* lum, int n) noexcept nogil:
    """Sort n keys ascending in place: branch-free networks for 4 and 6, insertion otherwise."""
    cdef int k, j, m
    if n == 6:
        _cswap(lum, 1, 2); _cswap(lum, 0, 2); _cswap(lum, 0, 1); _cswap(lum, 4, 5)
        _cswap(lum, 3, 5); _cswap(lum, 3, 4); _cswap(lum, 0, 3); _cswap(lum, 1, 4)
        _cswap(lum, 2, 5); _cswap(lum, 2, 4); _cswap(lum, 1, 3); _cswap(lum, 2, 3)
    elif n == 4:
        _cswap(lum, 0, 1); _cswap(lum, 2, 3); _cswap(lum, 0, 2); _cswap(lum, 1, 3)
        _cswap(lum, 1, 2)
    else:
        for k in range(1, n):
            m = lum[k]
            j = k - 1
            while j >= 0 and lum[j] > m:
                lum[j + 1] = lum[j]
                j -= 1
            lum[j + 1] = m


def mosaic_fit(const unsigned char[:, :, ::1] px, int sx, int sy, bytes patterns, int flat_tol,
               unsigned char[:, ::1] tp, unsigned char[:, :, ::1] tfg, unsigned char[:, :, ::1] tbg):
    """Per cell: the two-colour pattern and colours that best fit its sx x sy pixels."""
    cdef Py_ssize_t rows = tp.shape[0], cols = tp.shape[1]
    cdef int n = sx * sy
    if n < 1 or n > 8:
        raise ValueError("cells of 1..8 pixels")
    if px.shape[0] < rows * sy or px.shape[1] < cols * sx or px.shape[2] < 3:
        raise ValueError("picture smaller than the cells")
    if (tfg.shape[0] != rows or tfg.shape[1] != cols or tbg.shape[0] != rows or tbg.shape[1] != cols
            or tfg.shape[2] < 3 or tbg.shape[2] < 3):
        raise ValueError("cell arrays disagree in shape")
    cdef int npat = len(patterns)
    cdef unsigned char pats[256]
    cdef int i
    if npat > 256:
        raise ValueError("at most 256 patterns")
    for i in range(npat):
        pats[i] = patterns[i]
    cdef Py_ssize_t r, c
    cdef int j, k, m, q, pat, n1, n0, best_pat, t0, t1, t2, s10, s11, s12, tmp
    cdef int pr[8]
    cdef int pg[8]
    cdef int pb[8]
    cdef int lum[8]
    cdef int order[8]
    cdef long long num, den, best_num, best_den
    cdef int fg0, fg1, fg2, bg0, bg1, bg2, d, b10, b11, b12, bn1
    cdef const unsigned char* row
    cdef int lo0, lo1, lo2, hi0, hi1, hi2
    with nogil:
        for r in range(rows):
            for c in range(cols):
                t0 = 0; t1 = 0; t2 = 0
                lo0 = 255; lo1 = 255; lo2 = 255; hi0 = 0; hi1 = 0; hi2 = 0
                k = 0
                for j in range(sy):
                    row = &px[r * sy + j, c * sx, 0]
                    for i in range(sx):
                        pr[k] = row[3 * i]
                        pg[k] = row[3 * i + 1]
                        pb[k] = row[3 * i + 2]
                        t0 += pr[k]; t1 += pg[k]; t2 += pb[k]
                        lo0 = pr[k] if pr[k] < lo0 else lo0; hi0 = pr[k] if pr[k] > hi0 else hi0
                        lo1 = pg[k] if pg[k] < lo1 else lo1; hi1 = pg[k] if pg[k] > hi1 else hi1
                        lo2 = pb[k] if pb[k] < lo2 else lo2; hi2 = pb[k] if pb[k] > hi2 else hi2
                        k += 1
                best_num = -1; best_den = 1; best_pat = 0
                b10 = 0; b11 = 0; b12 = 0; bn1 = 0
                if hi0 - lo0 <= flat_tol and hi1 - lo1 <= flat_tol and hi2 - lo2 <= flat_tol:
                    # any two-set means differ by at most the range: the cell is flat (as the twin finds)
                    pass
                elif npat == 0:
                    # sort by (luma, index): keys luma * 8 + index, branch-free networks for 4 and 6
                    for k in range(n):
                        lum[k] = (77 * pr[k] + 150 * pg[k] + 29 * pb[k]) * 8 + k
                    _sort_keys(lum, n)
                    for k in range(n):
                        order[k] = lum[k] & 7
                    s10 = 0; s11 = 0; s12 = 0; pat = 0
                    for m in range(n - 1, 0, -1):
                        k = order[m]
                        pat |= 1 << k
                        s10 += pr[k]; s11 += pg[k]; s12 += pb[k]
                        n1 = n - m; n0 = m
                        num = ((<long long>s10 * s10 + <long long>s11 * s11 + <long long>s12 * s12) * n0
                               + (<long long>(t0 - s10) * (t0 - s10) + <long long>(t1 - s11) * (t1 - s11)
                                  + <long long>(t2 - s12) * (t2 - s12)) * n1)
                        den = n1 * n0
                        if num * best_den > best_num * den:
                            best_num = num; best_den = den; best_pat = pat
                            b10 = s10; b11 = s11; b12 = s12; bn1 = n1
                else:
                    for q in range(npat):
                        pat = pats[q]
                        s10 = 0; s11 = 0; s12 = 0; n1 = 0
                        for k in range(n):
                            if (pat >> k) & 1:
                                s10 += pr[k]; s11 += pg[k]; s12 += pb[k]; n1 += 1
                        if n1 == 0 or n1 == n:
                            continue
                        n0 = n - n1
                        num = ((<long long>s10 * s10 + <long long>s11 * s11 + <long long>s12 * s12) * n0
                               + (<long long>(t0 - s10) * (t0 - s10) + <long long>(t1 - s11) * (t1 - s11)
                                  + <long long>(t2 - s12) * (t2 - s12)) * n1)
                        den = n1 * n0
                        if num * best_den > best_num * den:
                            best_num = num; best_den = den; best_pat = pat
                            b10 = s10; b11 = s11; b12 = s12; bn1 = n1
                d = -1
                if best_num >= 0:
                    s10 = b10; s11 = b11; s12 = b12; n1 = bn1
                    n0 = n - n1
                    fg0 = (s10 * 2 + n1) // (2 * n1); fg1 = (s11 * 2 + n1) // (2 * n1)
                    fg2 = (s12 * 2 + n1) // (2 * n1)
                    bg0 = ((t0 - s10) * 2 + n0) // (2 * n0); bg1 = ((t1 - s11) * 2 + n0) // (2 * n0)
                    bg2 = ((t2 - s12) * 2 + n0) // (2 * n0)
                    d = abs(fg0 - bg0)
                    k = abs(fg1 - bg1); d = k if k > d else d
                    k = abs(fg2 - bg2); d = k if k > d else d
                if d <= flat_tol:
                    best_pat = 0
                    fg0 = (t0 * 2 + n) // (2 * n); fg1 = (t1 * 2 + n) // (2 * n); fg2 = (t2 * 2 + n) // (2 * n)
                    bg0 = fg0; bg1 = fg1; bg2 = fg2
                tp[r, c] = best_pat
                tfg[r, c, 0] = fg0; tfg[r, c, 1] = fg1; tfg[r, c, 2] = fg2
                tbg[r, c, 0] = bg0; tbg[r, c, 1] = bg1; tbg[r, c, 2] = bg2


cdef inline int _maxdiff(int a0, int a1, int a2, int b0, int b1, int b2) noexcept nogil:
    cdef int d = abs(a0 - b0), k = abs(a1 - b1)
    if k > d:
        d = k
    k = abs(a2 - b2)
    return k if k > d else d


def diff_mosaic(const unsigned char[:, :] tp, const unsigned char[:, :, :] tfg,
                const unsigned char[:, :, :] tbg, unsigned char[:, :] sp,
                unsigned char[:, :, :] sfg, unsigned char[:, :, :] sbg, list glyphs, int nbits,
                int int_color_mode, int threshold, int reuse, int dither, bint full, int row0, int col0):
    """Emit ANSI bytes for the mosaic cells that changed; update shown_* (see the twin)."""
    cdef Py_ssize_t rows = tp.shape[0], cols = tp.shape[1]
    if (tfg.shape[0] != rows or tfg.shape[1] != cols or tbg.shape[0] != rows or tbg.shape[1] != cols
            or sp.shape[0] != rows or sp.shape[1] != cols or sfg.shape[0] != rows or sfg.shape[1] != cols
            or sbg.shape[0] != rows or sbg.shape[1] != cols or tfg.shape[2] < 3 or tbg.shape[2] < 3
            or sfg.shape[2] < 3 or sbg.shape[2] < 3):
        raise ValueError("cell arrays disagree in shape")
    if nbits < 1 or nbits > 8:
        raise ValueError("patterns of 1..8 bits")
    cdef int ng = len(glyphs)
    if ng != (1 << nbits):
        raise ValueError(f"need {1 << nbits} glyphs for {nbits}-bit patterns")
    cdef char gbuf[256 * 4]
    cdef int glen[256]
    cdef int i
    for i in range(ng):
        gb = glyphs[i]
        if not isinstance(gb, bytes) or len(gb) < 1 or len(gb) > 4:
            raise ValueError("each glyph must be 1..4 UTF-8 bytes")
        glen[i] = len(gb)
        memcpy(&gbuf[4 * i], <char*>gb, glen[i])
    cdef Py_ssize_t cap = rows * cols * 64 + 64
    cdef char* buf = <char*>malloc(cap)
    if buf == NULL:
        raise MemoryError()
    cdef Py_ssize_t n = 0, r, c
    cdef int fmask = (1 << nbits) - 1
    cdef int mode = int_color_mode
    cdef bint dith = dither >= 0 and (mode == 1 or mode == 2)
    cdef int cur_r = -1, cur_c = -1, cur_fg = -1, cur_bg = -1
    cdef int cf0 = -1000, cf1 = -1000, cf2 = -1000, cb0 = -1000, cb1 = -1000, cb2 = -1000
    cdef int p, q, gp, f0, f1, f2, b0, b1, b2, u0, u1, u2, v0, v1, v2, d, k, e, cost, cost_inv, nparam
    cdef int dq[3]
    cdef bint want_fg, want_bg
    try:
        with nogil:
            for r in range(rows):
                for c in range(cols):
                    p = tp[r, c] & fmask
                    f0 = tfg[r, c, 0]; f1 = tfg[r, c, 1]; f2 = tfg[r, c, 2]
                    b0 = tbg[r, c, 0]; b1 = tbg[r, c, 1]; b2 = tbg[r, c, 2]
                    if not full:
                        q = sp[r, c] & fmask
                        d = 0
                        if p & q:
                            e = _maxdiff(f0, f1, f2, sfg[r, c, 0], sfg[r, c, 1], sfg[r, c, 2]); d = e if e > d else d
                        if p & ~q & fmask:
                            e = _maxdiff(f0, f1, f2, sbg[r, c, 0], sbg[r, c, 1], sbg[r, c, 2]); d = e if e > d else d
                        if ~p & q & fmask:
                            e = _maxdiff(b0, b1, b2, sfg[r, c, 0], sfg[r, c, 1], sfg[r, c, 2]); d = e if e > d else d
                        if ~p & ~q & fmask:
                            e = _maxdiff(b0, b1, b2, sbg[r, c, 0], sbg[r, c, 1], sbg[r, c, 2]); d = e if e > d else d
                        if d <= threshold:
                            continue
                    if cur_r != r or cur_c != c:
                        n = _put_move(buf, n, r, c, cur_r, cur_c, row0, col0)
                    if dith:
                        _dither(mode, f0, f1, f2, 2 * <int>r, <int>c, dither, dq)
                        u0 = dq[0]; u1 = dq[1]; u2 = dq[2]
                        _dither(mode, b0, b1, b2, 2 * <int>r + 1, <int>c, dither, dq)
                        v0 = dq[0]; v1 = dq[1]; v2 = dq[2]
                    else:
                        u0 = f0; u1 = f1; u2 = f2; v0 = b0; v1 = b1; v2 = b2
                    gp = p
                    want_fg = mode != 0
                    want_bg = mode != 0
                    if mode == 0:
                        pass
                    elif p == 0:
                        if (cur_fg != -1 and not (cur_bg != -1 and _near(mode, reuse, v0, v1, v2, cb0, cb1, cb2, reuse))
                                and _near(mode, reuse, v0, v1, v2, cf0, cf1, cf2, reuse)):
                            gp = fmask; u0 = v0; u1 = v1; u2 = v2; want_bg = False
                        else:
                            want_fg = False
                    else:
                        cost = ((cur_fg == -1 or not _near(mode, reuse, u0, u1, u2, cf0, cf1, cf2, reuse))
                                + (cur_bg == -1 or not _near(mode, reuse, v0, v1, v2, cb0, cb1, cb2, reuse)))
                        cost_inv = ((cur_fg == -1 or not _near(mode, reuse, v0, v1, v2, cf0, cf1, cf2, reuse))
                                    + (cur_bg == -1 or not _near(mode, reuse, u0, u1, u2, cb0, cb1, cb2, reuse)))
                        if cost_inv < cost:
                            gp = fmask & ~p
                            u0, v0 = v0, u0
                            u1, v1 = v1, u1
                            u2, v2 = v2, u2
                    if mode == 3 and reuse > 0:
                        if want_fg and cur_fg != -1 and _near(3, reuse, u0, u1, u2, cf0, cf1, cf2, reuse):
                            u0 = cf0; u1 = cf1; u2 = cf2
                        if want_bg and cur_bg != -1 and _near(3, reuse, v0, v1, v2, cb0, cb1, cb2, reuse):
                            v0 = cb0; v1 = cb1; v2 = cb2
                    nparam = 0
                    if want_fg:
                        k = _key(mode, u0, u1, u2)
                        if k != cur_fg:
                            buf[n] = 27; buf[n + 1] = 91; n += 2
                            n = _put_color(buf, n, mode, u0, u1, u2, False)
                            cur_fg = k
                            cf0 = u0; cf1 = u1; cf2 = u2
                            nparam = 1
                    if want_bg:
                        k = _key(mode, v0, v1, v2)
                        if k != cur_bg:
                            if nparam:
                                buf[n] = 59; n += 1
                            else:
                                buf[n] = 27; buf[n + 1] = 91; n += 2
                            n = _put_color(buf, n, mode, v0, v1, v2, True)
                            cur_bg = k
                            cb0 = v0; cb1 = v1; cb2 = v2
                            nparam = 1
                    if nparam:
                        buf[n] = 109; n += 1  # m
                    memcpy(buf + n, &gbuf[4 * gp], glen[gp])
                    n += glen[gp]
                    cur_r = <int>r
                    cur_c = <int>c + 1
                    sp[r, c] = p
                    if dith or mode == 0:
                        u0 = f0; u1 = f1; u2 = f2; v0 = b0; v1 = b1; v2 = b2
                    elif p == 0:
                        if gp == 0:
                            u0 = v0; u1 = v1; u2 = v2
                        else:
                            v0 = u0; v1 = u1; v2 = u2
                    elif gp != p:   # drawn inverted: the target's fg pixels show the terminal's bg
                        u0, v0 = v0, u0
                        u1, v1 = v1, u1
                        u2, v2 = v2, u2
                    sfg[r, c, 0] = u0; sfg[r, c, 1] = u1; sfg[r, c, 2] = u2
                    sbg[r, c, 0] = v0; sbg[r, c, 1] = v1; sbg[r, c, 2] = v2
            if cur_fg != -1 or cur_bg != -1:
                buf[n] = 27; buf[n + 1] = 91; buf[n + 2] = 48; buf[n + 3] = 109; n += 4
        return PyBytes_FromStringAndSize(buf, n)
    finally:
        free(buf)


# ---- mosaic whose redraws follow the cell's error (truecolor; see the twin's mosaic_err) ---------
cdef enum:
    ERR_LUMA_W = 2

# (2s + n) // (2n) for 2s + n < 4200 and 2n <= 16 as (x * RECIP[2n]) >> 20, exactly
cdef int[17] RECIP = [0, 1048577, 524289, 349526, 262145, 209716, 174763, 149797, 131073, 116509,
                      104858, 95326, 87382, 80660, 74899, 69906, 65537]


cdef inline long long _e_set(long long n, long long s0, long long s1, long long s2, long long sy,
                             int c0, int c1, int c2) noexcept nogil:
    """The twin's _set_err less the set's own sum of weighted squares (ERR_LUMA_W * sum luma^2 +
    65536 * sum |x|^2): the part that depends on c. Over a whole cell that part is the same for
    every split, so errors compare exactly without it."""
    cdef long long yc = 77 * c0 + 150 * c1 + 29 * c2
    cdef long long cc = c0 * c0 + c1 * c1 + c2 * c2
    return ERR_LUMA_W * (n * yc * yc - 2 * yc * sy) + 65536 * (n * cc - 2 * (c0 * s0 + c1 * s1 + c2 * s2))


cdef inline long long _e_wnorm(long long s0, long long s1, long long s2, long long sy) noexcept nogil:
    return ERR_LUMA_W * sy * sy + 65536 * (s0 * s0 + s1 * s1 + s2 * s2)


cdef inline int _ndig(int v) noexcept nogil:
    return 1 if v < 10 else (2 if v < 100 else 3)


cdef inline int _sgr_cost(bint want, int c0, int c1, int c2, bint have, int* cur) noexcept nogil:
    """Characters of selecting colour c ('38;2;r;g;b' and its separator); 0 if it is current."""
    if not want or (have and c0 == cur[0] and c1 == cur[1] and c2 == cur[2]):
        return 0
    return 8 + _ndig(c0) + _ndig(c1) + _ndig(c2)


def mosaic_err(const unsigned char[:, :, ::1] px, int sx, int sy, bytes patterns, int flat_tol,
               unsigned char[:, ::1] sp, unsigned char[:, :, ::1] sfg, unsigned char[:, :, ::1] sbg,
               list glyphs, int nbits, long long gain, bint full, int row0, int col0, int adj_num=16):
    """Fit and diff in one pass, truecolor, redrawing a cell by its error (see the twin)."""
    cdef Py_ssize_t rows = sp.shape[0], cols = sp.shape[1]
    cdef int n = sx * sy
    if n < 1 or n > 8 or n != nbits or len(glyphs) != (1 << nbits):
        raise ValueError(f"need {1 << nbits} glyphs for {nbits}-bit patterns of {sx}x{sy} cells")
    if px.shape[0] < rows * sy or px.shape[1] < cols * sx or px.shape[2] < 3:
        raise ValueError("picture smaller than the cells")
    if (sfg.shape[0] != rows or sfg.shape[1] != cols or sbg.shape[0] != rows or sbg.shape[1] != cols
            or sfg.shape[2] < 3 or sbg.shape[2] < 3):
        raise ValueError("cell arrays disagree in shape")
    cdef int fmask = (1 << nbits) - 1
    allowed = sorted(set([p for p in patterns] + [fmask & ~p for p in patterns]))
    allowed = [p for p in allowed if 0 < bin(p).count("1") < n]
    cdef int npat = len(allowed)
    cdef int pats[256]
    cdef int i
    for i in range(npat):
        pats[i] = allowed[i]
    cdef bint restricted = len(patterns) > 0
    cdef char gbuf[256 * 4]
    cdef int glen[256]
    for i in range(1 << nbits):
        gb = glyphs[i]
        if not isinstance(gb, bytes) or len(gb) < 1 or len(gb) > 4:
            raise ValueError("each glyph must be 1..4 UTF-8 bytes")
        glen[i] = len(gb)
        memcpy(&gbuf[4 * i], <char*>gb, glen[i])
    cdef Py_ssize_t cap = rows * cols * 64 + 64
    cdef char* buf = <char*>malloc(cap)
    if buf == NULL:
        raise MemoryError()
    cdef Py_ssize_t nb = 0, r, c
    cdef int cur_r = -1, cur_c = -1
    cdef bint have_cf = False, have_cb = False
    cdef int cf[3]
    cdef int cb[3]
    cdef int pr[8]
    cdef int pg[8]
    cdef int pb[8]
    cdef long long py[8]
    cdef int lum[8]
    cdef long long g_eff = 0
    cdef long long e_shown = 0, e, e2, num, den, best_num, best_den, y
    cdef long long t0, t1, t2, tq, ty, tyy, a0, a1, a2, aq, ay, ayy
    cdef long long b0, b1, b2, bq, by, byy, w0, w1, w2, wq, wy, wyy
    cdef int j, k, m, q, pat, best_pat, g, d0, d1, d2, n1, n0, bn1, nparam, kk
    cdef int f0, f1, f2, h0, h1, h2, m0, m1, m2, u0, u1, u2, v0, v1, v2
    cdef bint two, want_u, want_v
    cdef int lo0, lo1, lo2, hi0, hi1, hi2
    cdef const unsigned char* row
    cdef unsigned char* shp
    try:
        with nogil:
            for r in range(rows):
                for c in range(cols):
                    k = 0
                    t0 = 0; t1 = 0; t2 = 0; ty = 0
                    lo0 = 255; lo1 = 255; lo2 = 255; hi0 = 0; hi1 = 0; hi2 = 0
                    for j in range(sy):
                        row = &px[r * sy + j, c * sx, 0]
                        for i in range(sx):
                            d0 = row[3 * i]; d1 = row[3 * i + 1]; d2 = row[3 * i + 2]
                            pr[k] = d0; pg[k] = d1; pb[k] = d2
                            py[k] = 77 * d0 + 150 * d1 + 29 * d2
                            t0 += d0; t1 += d1; t2 += d2; ty += py[k]
                            lo0 = d0 if d0 < lo0 else lo0; hi0 = d0 if d0 > hi0 else hi0
                            lo1 = d1 if d1 < lo1 else lo1; hi1 = d1 if d1 > hi1 else hi1
                            lo2 = d2 if d2 < lo2 else lo2; hi2 = d2 if d2 > hi2 else hi2
                            k += 1
                    if not full:
                        q = sp[r, c] & fmask
                        e_shown = 0
                        for k in range(n):
                            shp = &sfg[r, c, 0] if (q >> k) & 1 else &sbg[r, c, 0]
                            d0 = pr[k] - shp[0]; d1 = pg[k] - shp[1]; d2 = pb[k] - shp[2]
                            y = 77 * d0 + 150 * d1 + 29 * d2
                            e_shown += ERR_LUMA_W * y * y + (<long long>65536) * (d0 * d0 + d1 * d1 + d2 * d2)
                        g_eff = gain
                        if cur_r == r and cur_c == c:
                            g_eff = (gain * adj_num) >> 4    # the cell before was redrawn: join its run
                        if e_shown <= g_eff:
                            continue
                    # the split (as the twin's _err_split); keep the fg set's sums in w*
                    best_num = -1; best_den = 1; best_pat = -1
                    w0 = 0; w1 = 0; w2 = 0; wy = 0; bn1 = 0
                    if hi0 - lo0 <= flat_tol and hi1 - lo1 <= flat_tol and hi2 - lo2 <= flat_tol:
                        pass    # any two set means differ by at most the range: flat, as the twin finds
                    elif restricted:
                        for q in range(npat):
                            pat = pats[q]
                            a0 = 0; a1 = 0; a2 = 0; aq = 0; ay = 0; ayy = 0; n1 = 0
                            for k in range(n):
                                if (pat >> k) & 1:
                                    a0 += pr[k]; a1 += pg[k]; a2 += pb[k]; ay += py[k]; n1 += 1
                            n0 = n - n1
                            num = _e_wnorm(a0, a1, a2, ay) * n0 + _e_wnorm(t0 - a0, t1 - a1, t2 - a2, ty - ay) * n1
                            den = n1 * n0
                            if num * best_den > best_num * den:
                                best_num = num; best_den = den; best_pat = pat
                        if best_pat >= 0:
                            for k in range(n):
                                if (best_pat >> k) & 1:
                                    w0 += pr[k]; w1 += pg[k]; w2 += pb[k]; wy += py[k]; bn1 += 1
                    elif n > 1:
                        for k in range(n):
                            lum[k] = <int>py[k] * 8 + k
                        _sort_keys(lum, n)
                        a0 = 0; a1 = 0; a2 = 0; ay = 0; pat = 0
                        for m in range(n - 1, 0, -1):
                            k = lum[m] & 7
                            pat |= 1 << k
                            a0 += pr[k]; a1 += pg[k]; a2 += pb[k]; ay += py[k]
                            n1 = n - m; n0 = m
                            num = _e_wnorm(a0, a1, a2, ay) * n0 + _e_wnorm(t0 - a0, t1 - a1, t2 - a2, ty - ay) * n1
                            den = n1 * n0
                            if num * best_den > best_num * den:
                                best_num = num; best_den = den; best_pat = pat
                                w0 = a0; w1 = a1; w2 = a2; wy = ay; bn1 = n1
                    # the fit (as the twin's _err_fit); its error only for a diff's redraw test
                    kk = RECIP[2 * n]
                    m0 = <int>(((2 * t0 + n) * kk) >> 20); m1 = <int>(((2 * t1 + n) * kk) >> 20)
                    m2 = <int>(((2 * t2 + n) * kk) >> 20)
                    two = False
                    if best_pat >= 0:
                        n1 = bn1; n0 = n - n1
                        kk = RECIP[2 * n1]
                        f0 = <int>(((2 * w0 + n1) * kk) >> 20); f1 = <int>(((2 * w1 + n1) * kk) >> 20)
                        f2 = <int>(((2 * w2 + n1) * kk) >> 20)
                        b0 = t0 - w0; b1 = t1 - w1; b2 = t2 - w2
                        kk = RECIP[2 * n0]
                        h0 = <int>(((2 * b0 + n0) * kk) >> 20); h1 = <int>(((2 * b1 + n0) * kk) >> 20)
                        h2 = <int>(((2 * b2 + n0) * kk) >> 20)
                        two = _maxdiff(f0, f1, f2, h0, h1, h2) > flat_tol
                    if not full:
                        if two:
                            e = _e_set(n1, w0, w1, w2, wy, f0, f1, f2) + _e_set(n0, b0, b1, b2, ty - wy, h0, h1, h2)
                        else:
                            e = _e_set(n, t0, t1, t2, ty, m0, m1, m2)
                        tq = 0; tyy = 0
                        for k in range(n):
                            tq += pr[k] * pr[k] + pg[k] * pg[k] + pb[k] * pb[k]; tyy += py[k] * py[k]
                        if e_shown - (e + ERR_LUMA_W * tyy + 65536 * tq) <= g_eff:
                            continue
                    if two:
                        d0 = glen[best_pat]
                        d1 = glen[fmask & ~best_pat]
                        if ((have_cf and ((f0 == cf[0] and f1 == cf[1] and f2 == cf[2]) or (h0 == cf[0] and h1 == cf[1] and h2 == cf[2])))
                                or (have_cb and ((f0 == cb[0] and f1 == cb[1] and f2 == cb[2]) or (h0 == cb[0] and h1 == cb[1] and h2 == cb[2])))):
                            # a current colour matches: count the colour codes (else both need the same)
                            d0 += _sgr_cost(True, f0, f1, f2, have_cf, cf) + _sgr_cost(True, h0, h1, h2, have_cb, cb)
                            d1 += _sgr_cost(True, h0, h1, h2, have_cf, cf) + _sgr_cost(True, f0, f1, f2, have_cb, cb)
                        if d1 < d0:
                            g = fmask & ~best_pat
                            u0 = h0; u1 = h1; u2 = h2; v0 = f0; v1 = f1; v2 = f2
                        else:
                            g = best_pat
                            u0 = f0; u1 = f1; u2 = f2; v0 = h0; v1 = h1; v2 = h2
                        want_u = True; want_v = True
                    else:
                        u0 = m0; u1 = m1; u2 = m2; v0 = m0; v1 = m1; v2 = m2
                        d0 = glen[fmask] + _sgr_cost(True, m0, m1, m2, have_cf, cf)
                        d1 = glen[0] + _sgr_cost(True, m0, m1, m2, have_cb, cb)
                        if d0 < d1:
                            g = fmask; want_u = True; want_v = False
                        else:
                            g = 0; want_u = False; want_v = True
                    if cur_r != r or cur_c != c:
                        nb = _put_move(buf, nb, r, c, cur_r, cur_c, row0, col0)
                    nparam = 0
                    if want_u and not (have_cf and u0 == cf[0] and u1 == cf[1] and u2 == cf[2]):
                        buf[nb] = 27; buf[nb + 1] = 91; nb += 2
                        nb = _put_color(buf, nb, 3, u0, u1, u2, False)
                        cf[0] = u0; cf[1] = u1; cf[2] = u2; have_cf = True
                        nparam = 1
                    if want_v and not (have_cb and v0 == cb[0] and v1 == cb[1] and v2 == cb[2]):
                        if nparam:
                            buf[nb] = 59; nb += 1
                        else:
                            buf[nb] = 27; buf[nb + 1] = 91; nb += 2
                        nb = _put_color(buf, nb, 3, v0, v1, v2, True)
                        cb[0] = v0; cb[1] = v1; cb[2] = v2; have_cb = True
                        nparam = 1
                    if nparam:
                        buf[nb] = 109; nb += 1  # m
                    memcpy(buf + nb, &gbuf[4 * g], 4)    # fixed size (inlined); the slack absorbs it
                    nb += glen[g]
                    cur_r = <int>r
                    cur_c = <int>c + 1
                    sp[r, c] = g
                    sfg[r, c, 0] = u0; sfg[r, c, 1] = u1; sfg[r, c, 2] = u2
                    sbg[r, c, 0] = v0; sbg[r, c, 1] = v1; sbg[r, c, 2] = v2
            if have_cf or have_cb:
                buf[nb] = 27; buf[nb + 1] = 91; buf[nb + 2] = 48; buf[nb + 3] = 109; nb += 4
        return PyBytes_FromStringAndSize(buf, nb)
    finally:
        free(buf)
