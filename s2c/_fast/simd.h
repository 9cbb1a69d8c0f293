/* Tiny vectorisable loops shared by the s2c._fast kernels.
 * On x86-64 with GCC each loop is compiled twice (AVX2 and baseline) and the
 * loader picks one at start-up (target_clones), so wheels stay portable. */
#ifndef S2C_SIMD_H
#define S2C_SIMD_H
#include <stdint.h>
#include <stddef.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define S2C_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define S2C_CLONES
#endif

/* acc[i] = w * src[i] (first row of an output row) */
S2C_CLONES static void s2c_row_set_u16(uint16_t *restrict acc, const uint8_t *restrict src,
                                       ptrdiff_t n, uint16_t w) {
    for (ptrdiff_t i = 0; i < n; i++) acc[i] = (uint16_t)(w * src[i]);
}

/* acc[i] += w * src[i] */
S2C_CLONES static void s2c_row_add_u16(uint16_t *restrict acc, const uint8_t *restrict src,
                                       ptrdiff_t n, uint16_t w) {
    for (ptrdiff_t i = 0; i < n; i++) acc[i] = (uint16_t)(acc[i] + w * src[i]);
}

/* acc[i] += w * src[i], float accumulators for weights that are not exact in fixed point */
S2C_CLONES static void s2c_row_add_f32(float *restrict acc, const uint8_t *restrict src,
                                       ptrdiff_t n, float w) {
    for (ptrdiff_t i = 0; i < n; i++) acc[i] += w * (float)src[i];
}

#endif
