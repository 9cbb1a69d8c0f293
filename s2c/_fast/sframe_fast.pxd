# C-level helpers of the SFrame kernel, for other Cython modules that want them without
# Python calls. The Python-callable API is in sframe_fast.pyi.

cdef Py_ssize_t put_header(unsigned char* out, unsigned long long kid,
                           unsigned long long ctr) noexcept nogil
cdef bint tags_equal_c(const unsigned char* a, const unsigned char* b, Py_ssize_t n) noexcept nogil
