# Colour quantisers shared by the cell kernel (see cells.pyx).
cdef int c_color256(int r, int g, int b) noexcept nogil
cdef int c_color16(int r, int g, int b) noexcept nogil
