# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled pixel kernels: exact area-average resize. Twin: s2c/_ref/pixels.py.

Separable: a vertical pass accumulates weighted source rows into float rows (one pass over the
source, auto-vectorised), then a horizontal pass folds columns. Weight tables are cached per
(source size, destination size).
"""

import numpy as np
cimport numpy as cnp
from libc.string cimport memset

from s2c._ref.pixels import area_weights, check_frame

cnp.import_array()

_tables = {}


def _table(int src, int dst):
    """Sparse weights for one axis: (start int32[dst], count int32[dst], overlap float32[dst, maxc],
    fixed int32[dst, maxc] or None, shift, maxc).

    overlap is in source pixels (sums to src/dst per row). ``fixed`` holds overlap * 2**shift when
    that is an exact integer for every entry and the largest row sum times 255 fits 16 bits; then
    the kernel accumulates in uint16 (twice the SIMD lanes of float) with no rounding error.
    """
    key = (src, dst)
    t = _tables.get(key)
    if t is None:
        m = area_weights(src, dst) * (<double>src / dst)
        nz = m > 1e-12
        count = nz.sum(axis=1).astype(np.int32)
        start = nz.argmax(axis=1).astype(np.int32)
        maxc = int(count.max())
        w = np.zeros((dst, maxc), dtype=np.float64)
        for i in range(dst):
            w[i, :count[i]] = m[i, start[i]:start[i] + count[i]]
        fixed, shift = None, 0
        row_sum = <double>src / dst
        for sh in range(0, 8):
            q = w * (1 << sh)
            if np.all(np.abs(q - np.round(q)) < 1e-6):
                if 255.0 * row_sum * (1 << sh) <= 65535:
                    fixed, shift = np.round(q).astype(np.int32), sh
                break
        t = (start, count, w.astype(np.float32), fixed, shift, maxc)
        if len(_tables) > 64:
            _tables.clear()
        _tables[key] = t
    return t


def area_resize(cnp.ndarray frame, int width, int height, bint swap_rb):
    """Exact area-average resize of an HxWx3 uint8 image; swap_rb turns BGR into RGB."""
    check_frame(frame, width, height)
    cdef int h = frame.shape[0]
    cdef int w = frame.shape[1]
    if not frame.flags.c_contiguous:
        frame = np.ascontiguousarray(frame)
    ys, yc, yw, yfixed, yshift, ymax = _table(h, height)
    xs, xc, xw, xfixed, xshift, xmax = _table(w, width)
    cdef int[::1] ystart = ys
    cdef int[::1] ycount = yc
    cdef float[:, ::1] yweights = yw
    cdef int[:, ::1] yq
    cdef int[::1] xstart = xs
    cdef int[::1] xcount = xc
    cdef float[:, ::1] xweights = xw
    cdef int[:, ::1] xq
    cdef bint use_u16 = yfixed is not None
    cdef bint x_int = use_u16 and xfixed is not None
    if use_u16:
        yq = yfixed
    if x_int:
        xq = xfixed
    cdef unsigned int i0, i1, i2, wq
    cdef Py_ssize_t row_len = w * 3
    cdef float inv_area = 1.0 / ((<double>h / height) * (<double>w / width)
                                 * (1 << yshift if use_u16 else 1) * (1 << xshift if x_int else 1))
    out_arr = np.empty((height, width, 3), dtype=np.uint8)
    cdef unsigned char[:, :, ::1] out = out_arr
    cdef const unsigned char* src = <const unsigned char*>cnp.PyArray_DATA(frame)
    acc16_arr = np.empty(row_len, dtype=np.uint16)
    accf_arr = np.empty(row_len, dtype=np.float32)
    cdef unsigned short[::1] acc16 = acc16_arr
    cdef float[::1] accf = accf_arr
    cdef unsigned short* a16 = &acc16[0]
    cdef float* af = &accf[0]
    cdef int y, x, k, c0, c2, sy
    cdef float r0, r1, r2, wk, v
    cdef Py_ssize_t base, j
    c0 = 2 if swap_rb else 0
    c2 = 0 if swap_rb else 2
    with nogil:
        for y in range(height):
            # vertical: fold this output row's source rows into one accumulator row
            sy = ystart[y]
            if use_u16:
                s2c_row_set_u16(a16, src + sy * row_len, row_len, <unsigned short>yq[y, 0])
                for k in range(1, ycount[y]):
                    s2c_row_add_u16(a16, src + (sy + k) * row_len, row_len, <unsigned short>yq[y, k])
            else:
                memset(af, 0, row_len * sizeof(float))
                for k in range(ycount[y]):
                    s2c_row_add_f32(af, src + (sy + k) * row_len, row_len, yweights[y, k])
            # horizontal: fold columns, scale to an average, round
            for x in range(width):
                r0 = 0; r1 = 0; r2 = 0
                base = xstart[x] * 3
                if x_int:
                    i0 = 0; i1 = 0; i2 = 0
                    for k in range(xcount[x]):
                        wq = xq[x, k]
                        i0 += wq * a16[base]
                        i1 += wq * a16[base + 1]
                        i2 += wq * a16[base + 2]
                        base += 3
                    r0 = i0; r1 = i1; r2 = i2
                elif use_u16:
                    for k in range(xcount[x]):
                        wk = xweights[x, k]
                        r0 += wk * a16[base]
                        r1 += wk * a16[base + 1]
                        r2 += wk * a16[base + 2]
                        base += 3
                else:
                    for k in range(xcount[x]):
                        wk = xweights[x, k]
                        r0 += wk * af[base]
                        r1 += wk * af[base + 1]
                        r2 += wk * af[base + 2]
                        base += 3
                r0 = r0 * inv_area + 0.5
                r1 = r1 * inv_area + 0.5
                r2 = r2 * inv_area + 0.5
                out[y, x, c0] = <unsigned char>(r0 if r0 < 255.0 else 255.0)
                out[y, x, 1] = <unsigned char>(r1 if r1 < 255.0 else 255.0)
                out[y, x, c2] = <unsigned char>(r2 if r2 < 255.0 else 255.0)
    return out_arr
