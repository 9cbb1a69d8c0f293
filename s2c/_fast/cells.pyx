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


cdef inline Py_ssize_t _put_color(char* buf, Py_ssize_t n, int mode, int r, int g, int b, bint bg) noexcept nogil:
    cdef int i
    if mode == 3:
        n = _put_int(buf, n, 48 if bg else 38)
        buf[n] = 59; buf[n + 1] = 50; buf[n + 2] = 59  # ";2;"
        n = _put_int(buf, n + 3, r)
        buf[n] = 59
        n = _put_int(buf, n + 1, g)
        buf[n] = 59
        return _put_int(buf, n + 1, b)
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






def diff_cells(const unsigned char[:, :] tg, const unsigned char[:, :, :] tfg,
               const unsigned char[:, :, :] tbg, unsigned char[:, :] sg,
               unsigned char[:, :, :] sfg, unsigned char[:, :, :] sbg, list glyphs,
               int int_color_mode, bint emit_fg, bint emit_bg, int threshold, int reuse,
               bint blocks, bint full, int row0, int col0):
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
                            continue
                    if cur_r != r or cur_c != c:
                        buf[n] = 27; buf[n + 1] = 91; n += 2  # ESC [
                        if cur_r == r and c > cur_c:
                            if c - cur_c != 1:
                                n = _put_int(buf, n, c - cur_c)
                            buf[n] = 67; n += 1  # C
                        else:
                            n = _put_int(buf, n, row0 + r + 1)
                            buf[n] = 59
                            n = _put_int(buf, n + 1, col0 + c + 1)
                            buf[n] = 72; n += 1  # H
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
                    sfg[r, c, 0] = u0; sfg[r, c, 1] = u1; sfg[r, c, 2] = u2
                    sbg[r, c, 0] = v0; sbg[r, c, 1] = v1; sbg[r, c, 2] = v2
            if cur_fg != -1 or cur_bg != -1:
                buf[n] = 27; buf[n + 1] = 91; buf[n + 2] = 48; buf[n + 3] = 109; n += 4
        return PyBytes_FromStringAndSize(buf, n)
    finally:
        free(buf)
