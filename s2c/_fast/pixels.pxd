# The C row kernels (simd.h) the area resize is built on, declared once for Cython; the
# Python-callable API is in pixels.pyi.

cdef extern from "simd.h":
    void s2c_row_set_u16(unsigned short* acc, const unsigned char* src, Py_ssize_t n, unsigned short w) nogil
    void s2c_row_add_u16(unsigned short* acc, const unsigned char* src, Py_ssize_t n, unsigned short w) nogil
    void s2c_row_add_f32(float* acc, const unsigned char* src, Py_ssize_t n, float w) nogil
