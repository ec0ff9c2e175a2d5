/* Exact k x k zero-padded local attention, float32 or bfloat16, channels-first (n, D, H, W), forward and backward.
 *
 * Compiled at first use by attention_variants/local_tiled.py with -DKS=<kernel size> (every
 * offset loop then has a constant trip count and unrolls) and -O3 -march=native -ffast-math
 * -fopenmp.
 *
 * Each thread copies the rows of an image it works on, zero padded, into a per-thread buffer
 * that stays in L2, laid out (row, channel, column) so that the channel rows one key row
 * contributes are contiguous. Queries go in tiles of T pixels of two neighbouring rows. For a
 * tile and a key row, the logits of the KS column offsets are KS accumulator vectors per query
 * row, updated with one FMA per channel: q[d][x..x+T) times k[d][row][x+dx..x+dx+T), the
 * shifted key vector that both query rows share (on AVX-512 shifted in registers, elsewhere
 * an unaligned load). No horizontal sums, no k*k copies, only useful FLOPs. The weighted sum
 * of values has the same shape, DB channels at a time. AVX-512 and AVX2 builds use intrinsics
 * for these loops; other targets get plain loops that the compiler vectorises.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifndef KS
#error "compile with -DKS=<odd kernel size>"
#endif
#define R (KS / 2)
#ifdef __AVX512F__
#define T 16 /* queries per tile along a row: one 512-bit vector of floats */
#define DB 8 /* value channels per block: 2 rows x 8 accumulators fit the 32 vector registers */
#else
#define T 8 /* one AVX2 vector */
#define DB 4 /* 2 rows x 4 accumulators, two weights and a value: 11 of the 16 registers */
#endif

typedef float tile_logits_t[KS][KS][T]; /* [kernel row][column offset][query] */

/* The tensors' element type: float, or with -DBF16 bfloat16, widened to float as it is copied into the
 * padded buffers and tiles (all arithmetic is float32) and rounded to nearest even when stored; on a CPU
 * with AVX-512 BF16 the logits and the backward's dP instead multiply bfloat16 pairs (vdpbf16ps, BF16_DOT
 * below). */
#ifdef BF16
typedef uint16_t elem_t;
static inline float to_float(elem_t x) {
    const uint32_t bits = (uint32_t)x << 16;
    float f;
    memcpy(&f, &bits, sizeof(f));
    return f;
}
static inline elem_t from_float(float f) {
    uint32_t bits;
    memcpy(&bits, &f, sizeof(bits));
    return (elem_t)((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}
#else
typedef float elem_t;
static inline float to_float(elem_t x) { return x; }
static inline elem_t from_float(float f) { return f; }
#endif

/* Per-thread padded copies of one image's keys and values, kept between calls: allocating and
 * zeroing them in each call (fresh pages from the OS) cost as much as the attention itself.
 * The border is zeroed when the shape changes; each image then overwrites only the interior. */
typedef struct {
    float *data;
    size_t floats;
    int shape[3];
} scratch_t;
static __thread scratch_t forward_scratch, backward_scratch;

static float *padded_scratch(scratch_t *s, int D, int H, int W, size_t floats) {
    if (s->data == NULL || s->floats < floats) {
        free(s->data);
        s->data = aligned_alloc(64, sizeof(float) * ((floats + 15) / 16 * 16)); /* whole vectors, aligned */
        s->floats = s->data == NULL ? 0 : floats;
        s->shape[0] = -1;
        if (s->data == NULL) return NULL;
    }
    if (s->shape[0] != D || s->shape[1] != H || s->shape[2] != W) {
        memset(s->data, 0, sizeof(float) * floats);
        s->shape[0] = D, s->shape[1] = H, s->shape[2] = W;
    }
    return s->data;
}

/* Copy image rows [from, to) of x (D, H, W) into the interior of padded (rows, Dp, Wp), whose
 * border is zero. */
static void pad_rows(const elem_t *x, float *padded, int D, int Dp, int H, int W, int Wp, int from, int to) {
    for (int y = from; y < to; y++)
        for (int d = 0; d < D; d++) {
            float *row = padded + ((size_t)(y + R) * Dp + d) * Wp + R;
            const elem_t *source = x + ((size_t)d * H + y) * W;
#ifdef BF16
#pragma omp simd
            for (int i = 0; i < W; i++) row[i] = to_float(source[i]);
#else
            memcpy(row, source, sizeof(float) * W); /* faster than the loop on short rows */
#endif
        }
}

/* Copy the tile's queries of row y (zero beyond the image: rows >= H, columns >= W), scaled. */
static inline void load_queries(const elem_t *q, float *qt, int D, int Dp, int H, int W, int y, int x0, float scale) {
    const int lanes = y < H ? (W - x0 < T ? W - x0 : T) : 0;
    memset(qt, 0, sizeof(float) * (size_t)Dp * T);
    if (lanes == T) /* a whole tile: a loop of constant length, which vectorises */
        for (int d = 0; d < D; d++) {
            const elem_t *source = q + ((size_t)d * H + y) * W + x0;
#pragma omp simd
            for (int t = 0; t < T; t++) qt[d * T + t] = to_float(source[t]) * scale;
        }
    else
        for (int d = 0; d < D; d++)
            for (int t = 0; t < lanes; t++) qt[d * T + t] = to_float(q[((size_t)d * H + y) * W + x0 + t]) * scale;
}

#if defined(__AVX2__) && !defined(__AVX512F__)
#define AVX2_ONLY 1 /* the AVX2 paths below, with intrinsics */
#endif

#ifndef AVX2_ONLY
/* Logits of one query row against one padded key row (Dp channel rows of Wp floats from x0). */
static inline void row_logits_1(const float *qt, const float *keys, int Dp, int Wp, float out[KS][T]) {
    float acc[KS][T];
    memset(acc, 0, sizeof(acc));
    for (int d = 0; d < Dp; d++)
        for (int dx = 0; dx < KS; dx++)
#pragma omp simd
            for (int t = 0; t < T; t++) acc[dx][t] += qt[d * T + t] * keys[(size_t)d * Wp + dx + t];
    memcpy(out, acc, sizeof(acc));
}
#endif

#if defined(__AVX512F__) && KS <= T + 1
#include <immintrin.h>
/* The same for two query rows sharing the key row. The KS shifted key vectors of a channel come
 * from two aligned loads and in-register shifts (valignd) instead of KS unaligned loads that
 * each straddle two cache lines: the loop is then bound by FMAs, not loads. */
static inline __m512 shifted(__m512i lo, __m512i hi, int dx) {
    switch (dx) { /* valignd takes its shift as an immediate */
#define SHIFT(n) case n: return _mm512_castsi512_ps(_mm512_alignr_epi32(hi, lo, n));
        SHIFT(1) SHIFT(2) SHIFT(3) SHIFT(4) SHIFT(5) SHIFT(6) SHIFT(7) SHIFT(8)
        SHIFT(9) SHIFT(10) SHIFT(11) SHIFT(12) SHIFT(13) SHIFT(14) SHIFT(15)
#undef SHIFT
    default: return _mm512_castsi512_ps(dx ? hi : lo);
    }
}

static inline void row_logits_2(const float *q0, const float *q1, const float *keys, int Dp, int Wp, float out0[KS][T],
                                float out1[KS][T]) {
    __m512 acc0[KS], acc1[KS];
    for (int dx = 0; dx < KS; dx++) acc0[dx] = acc1[dx] = _mm512_setzero_ps();
    for (int d = 0; d < Dp; d++) {
        const __m512 a = _mm512_load_ps(q0 + d * T), b = _mm512_load_ps(q1 + d * T);
        const __m512i lo = _mm512_load_si512(keys + (size_t)d * Wp), hi = _mm512_load_si512(keys + (size_t)d * Wp + T);
        for (int dx = 0; dx < KS; dx++) {
            const __m512 key = shifted(lo, hi, dx);
            acc0[dx] = _mm512_fmadd_ps(a, key, acc0[dx]);
            acc1[dx] = _mm512_fmadd_ps(b, key, acc1[dx]);
        }
    }
    for (int dx = 0; dx < KS; dx++) {
        _mm512_storeu_ps(out0[dx], acc0[dx]);
        _mm512_storeu_ps(out1[dx], acc1[dx]);
    }
}

#if defined(BF16) && defined(__AVX512BF16__)
#define BF16_DOT 1
/* The logits and the backward's dP = dout . v by AVX-512 BF16's vdpbf16ps, which multiplies the
 * bfloat16 pairs of two 32-bit lanes and adds both products to a float32 lane: keys (values, for dP)
 * and queries (dout) are kept as bfloat16, two channels of a pixel per lane (channel 2j low, 2j + 1
 * high), so a channel pair costs one instruction where widened floats cost two FMAs, and the copies
 * are half the size. Accumulation stays float32. */
static inline uint32_t pair(elem_t low, elem_t high) { return (uint32_t)low | (uint32_t)high << 16; }

/* Copy image rows [from, to) of x (D, H, W) into the interior of padded (rows, Dp / 2, Wp) channel pairs,
 * whose border is zero. */
static void pad_pairs(const elem_t *x, uint32_t *padded, int D, int Dp, int H, int W, int Wp, int from, int to) {
    for (int y = from; y < to; y++)
        for (int j = 0; 2 * j < D; j++) {
            uint32_t *row = padded + ((size_t)(y + R) * (Dp / 2) + j) * Wp + R;
            const elem_t *low = x + ((size_t)2 * j * H + y) * W;
            if (2 * j + 1 < D) {
                const elem_t *high = low + (size_t)H * W;
#pragma omp simd
                for (int i = 0; i < W; i++) row[i] = pair(low[i], high[i]);
            } else
                for (int i = 0; i < W; i++) row[i] = pair(low[i], 0);
        }
}

/* The tile's queries of row y as channel pairs, zero beyond the image; unscaled (the logits are scaled). */
static void load_query_pairs(const elem_t *q, uint32_t *qt, int D, int Dp, int H, int W, int y, int x0) {
    const int lanes = y < H ? (W - x0 < T ? W - x0 : T) : 0;
    memset(qt, 0, sizeof(uint32_t) * (size_t)(Dp / 2) * T);
    for (int j = 0; 2 * j < D && lanes; j++) {
        const elem_t *low = q + ((size_t)2 * j * H + y) * W + x0;
        const elem_t *high = 2 * j + 1 < D ? low + (size_t)H * W : NULL; /* none past the last channel */
        for (int t = 0; t < lanes; t++) qt[j * T + t] = pair(low[t], high ? high[t] : 0);
    }
}

/* Scaled logits of query row q0 and, unless q1 is NULL, q1 against one padded key row of channel pairs. */
static inline __attribute__((always_inline)) void dot_logits(const uint32_t *q0, const uint32_t *q1, const uint32_t *keys,
                                                             int pairs, int Wp, float scale, float out0[KS][T],
                                                             float out1[KS][T]) {
    __m512 acc0[KS], acc1[KS];
    for (int dx = 0; dx < KS; dx++) acc0[dx] = acc1[dx] = _mm512_setzero_ps();
    for (int j = 0; j < pairs; j++) {
        const __m512bh a = (__m512bh)_mm512_load_si512(q0 + j * T);
        const __m512bh b = q1 ? (__m512bh)_mm512_load_si512(q1 + j * T) : a;
        const __m512i lo = _mm512_load_si512(keys + (size_t)j * Wp), hi = _mm512_load_si512(keys + (size_t)j * Wp + T);
        for (int dx = 0; dx < KS; dx++) {
            const __m512bh key = (__m512bh)shifted(lo, hi, dx);
            acc0[dx] = _mm512_dpbf16_ps(acc0[dx], a, key);
            if (q1) acc1[dx] = _mm512_dpbf16_ps(acc1[dx], b, key);
        }
    }
    const __m512 factor = _mm512_set1_ps(scale);
    for (int dx = 0; dx < KS; dx++) {
        _mm512_storeu_ps(out0[dx], _mm512_mul_ps(acc0[dx], factor));
        if (q1) _mm512_storeu_ps(out1[dx], _mm512_mul_ps(acc1[dx], factor));
    }
}
#endif
#elif defined(AVX2_ONLY)
#include <immintrin.h>
/* AVX2 has 16 vector registers, too few for 2 rows x KS accumulators (KS = 7: 14, plus two queries and a
 * key): the column offsets go in groups of at most 6 (12 accumulators), one pass over the channels each.
 * Written with intrinsics so that the accumulators stay in registers (the loops below, compiled for AVX2,
 * kept them in memory: a load and a store around every FMA). */
#define GROUPS ((KS + 5) / 6)
#define G ((KS + GROUPS - 1) / GROUPS)
/* The logits of column offsets [g0, g0 + G) for query row q0 and, unless q1 is NULL, q1. */
static inline __attribute__((always_inline)) void logits_group(const float *q0, const float *q1, const float *keys,
                                                               int Dp, int Wp, int g0, float out0[KS][T],
                                                               float out1[KS][T]) {
    __m256 acc0[G], acc1[G];
    for (int i = 0; i < G; i++) acc0[i] = acc1[i] = _mm256_setzero_ps();
    for (int d = 0; d < Dp; d++) {
        const __m256 a = _mm256_loadu_ps(q0 + d * T), b = q1 ? _mm256_loadu_ps(q1 + d * T) : a;
#pragma GCC unroll 16
        for (int i = 0; i < G; i++) {
            if (g0 + i >= KS) break;
            const __m256 key = _mm256_loadu_ps(keys + (size_t)d * Wp + g0 + i);
            acc0[i] = _mm256_fmadd_ps(a, key, acc0[i]);
            if (q1) acc1[i] = _mm256_fmadd_ps(b, key, acc1[i]);
        }
    }
    for (int i = 0; i < G && g0 + i < KS; i++) {
        _mm256_storeu_ps(out0[g0 + i], acc0[i]);
        if (q1) _mm256_storeu_ps(out1[g0 + i], acc1[i]);
    }
}

/* Logits of one query row against one padded key row (Dp channel rows of Wp floats from x0). */
static inline void row_logits_1(const float *qt, const float *keys, int Dp, int Wp, float out[KS][T]) {
#pragma GCC unroll 4
    for (int g0 = 0; g0 < KS; g0 += G) logits_group(qt, NULL, keys, Dp, Wp, g0, out, NULL);
}

/* The same for two query rows sharing the key row: each key load feeds two FMAs. */
static inline void row_logits_2(const float *q0, const float *q1, const float *keys, int Dp, int Wp, float out0[KS][T],
                                float out1[KS][T]) {
#pragma GCC unroll 4
    for (int g0 = 0; g0 < KS; g0 += G) logits_group(q0, q1, keys, Dp, Wp, g0, out0, out1);
}
#else
/* The same for two query rows sharing the key row: each key load feeds two FMAs. */
static inline void row_logits_2(const float *q0, const float *q1, const float *keys, int Dp, int Wp, float out0[KS][T],
                                float out1[KS][T]) {
    float acc0[KS][T], acc1[KS][T];
    memset(acc0, 0, sizeof(acc0));
    memset(acc1, 0, sizeof(acc1));
    for (int d = 0; d < Dp; d++)
        for (int dx = 0; dx < KS; dx++)
#pragma omp simd
            for (int t = 0; t < T; t++) {
                const float key = keys[(size_t)d * Wp + dx + t];
                acc0[dx][t] += q0[d * T + t] * key;
                acc1[dx][t] += q1[d * T + t] * key;
            }
    memcpy(out0, acc0, sizeof(acc0));
    memcpy(out1, acc1, sizeof(acc1));
}
#endif

/* exp(x) for x <= 0 (a logit minus its row's max), inlined so that the softmax loop vectorises:
 * 2^(x log2 e) = 2^n 2^f with |f| <= 1/2 and 2^f by its degree-7 Taylor series (relative
 * error below 1e-8, under float32's rounding). Below -87 it returns ~1e-38 instead of
 * smaller or subnormal numbers: invisible next to the max term, which is 1. */
static inline float exp_nonpositive(float x) {
    const float z = fmaxf(x, -87.0f) * 1.44269504088896341f;
    const float n = floorf(z + 0.5f), f = z - n;
    float p = 1.5252733804059841e-5f;
    p = p * f + 1.5403530393381609e-4f;
    p = p * f + 1.3333558146428443e-3f;
    p = p * f + 9.6181291076284772e-3f;
    p = p * f + 5.5504108664821580e-2f;
    p = p * f + 2.4022650695910071e-1f;
    p = p * f + 6.9314718055994531e-1f;
    p = p * f + 1.0f;
    const int bits = ((int)n + 127) << 23; /* 2^n as a float's exponent field */
    float two_n;
    memcpy(&two_n, &bits, sizeof(two_n));
    return p * two_n;
}

/* Softmax over the KS*KS offsets of every query, in place, unnormalised; 1/sum per query in inv,
 * its max logit in top. */
static void tile_softmax(tile_logits_t logits, float inv[T], float top[T]) {
    float *s = &logits[0][0][0];
    float sum[T];
    for (int t = 0; t < T; t++) top[t] = s[t];
    for (int o = 1; o < KS * KS; o++)
#pragma omp simd
        for (int t = 0; t < T; t++) top[t] = fmaxf(top[t], s[o * T + t]);
    memset(sum, 0, sizeof(sum));
    for (int o = 0; o < KS * KS; o++)
#pragma omp simd
        for (int t = 0; t < T; t++) {
            s[o * T + t] = exp_nonpositive(s[o * T + t] - top[t]);
            sum[t] += s[o * T + t];
        }
    for (int t = 0; t < T; t++) inv[t] = 1.0f / sum[t];
}

#if defined(__AVX512F__) && KS <= T + 1
/* The weighted values of DB channels for both query rows (values: padded row y, channel d0,
 * column x0). Shifted value vectors come from two aligned loads and valignd, as for the
 * keys; column offsets go four at a time so that their weights stay in registers. */
static void block_values(tile_logits_t logits[2], const float *values, size_t key_row, int Wp, float out0[DB][T],
                         float out1[DB][T]) {
    __m512 acc0[DB], acc1[DB];
    for (int dd = 0; dd < DB; dd++) acc0[dd] = acc1[dd] = _mm512_setzero_ps();
    for (int r = 0; r <= KS; r++) { /* padded row y + r: kernel row r of query row y, r - 1 of row y + 1 */
        const float *row = values + r * key_row;
#pragma GCC unroll 16
        for (int c = 0; c < KS; c += 4)
#pragma GCC unroll 16
            for (int dd = 0; dd < DB; dd++) {
                const __m512i lo = _mm512_load_si512(row + (size_t)dd * Wp), hi = _mm512_load_si512(row + (size_t)dd * Wp + T);
                for (int dx = c; dx < c + 4 && dx < KS; dx++) {
                    const __m512 value = shifted(lo, hi, dx);
                    if (r < KS) acc0[dd] = _mm512_fmadd_ps(_mm512_load_ps(logits[0][r][dx]), value, acc0[dd]);
                    if (r > 0) acc1[dd] = _mm512_fmadd_ps(_mm512_load_ps(logits[1][r - 1][dx]), value, acc1[dd]);
                }
            }
    }
    for (int dd = 0; dd < DB; dd++) {
        _mm512_storeu_ps(out0[dd], acc0[dd]);
        _mm512_storeu_ps(out1[dd], acc1[dd]);
    }
}
#elif defined(AVX2_ONLY)
/* The weighted values of DB channels for both query rows (values: padded row y, channel d0, column x0):
 * per column offset, the two rows' weights are loaded once and kept in registers for the DB channels. */
static inline __attribute__((always_inline)) void values_row(const float *w0, const float *w1, const float *row,
                                                             int Wp, __m256 acc0[DB], __m256 acc1[DB]) {
#pragma GCC unroll 16
    for (int dx = 0; dx < KS; dx++) {
        const __m256 a = w0 ? _mm256_loadu_ps(w0 + dx * T) : _mm256_setzero_ps();
        const __m256 b = w1 ? _mm256_loadu_ps(w1 + dx * T) : _mm256_setzero_ps();
#pragma GCC unroll 16
        for (int dd = 0; dd < DB; dd++) {
            const __m256 value = _mm256_loadu_ps(row + (size_t)dd * Wp + dx);
            if (w0) acc0[dd] = _mm256_fmadd_ps(a, value, acc0[dd]);
            if (w1) acc1[dd] = _mm256_fmadd_ps(b, value, acc1[dd]);
        }
    }
}

static void block_values(tile_logits_t logits[2], const float *values, size_t key_row, int Wp, float out0[DB][T],
                         float out1[DB][T]) {
    __m256 acc0[DB], acc1[DB];
    for (int dd = 0; dd < DB; dd++) acc0[dd] = acc1[dd] = _mm256_setzero_ps();
    /* Padded row y + r: kernel row r of query row y, r - 1 of row y + 1. */
    values_row(logits[0][0][0], NULL, values, Wp, acc0, acc1);
    for (int r = 1; r < KS; r++) values_row(logits[0][r][0], logits[1][r - 1][0], values + r * key_row, Wp, acc0, acc1);
    values_row(NULL, logits[1][KS - 1][0], values + KS * key_row, Wp, acc0, acc1);
    for (int dd = 0; dd < DB; dd++) {
        _mm256_storeu_ps(out0[dd], acc0[dd]);
        _mm256_storeu_ps(out1[dd], acc1[dd]);
    }
}
#else
/* Add one key row's weighted values (DB channel rows from values, weights w[dx][t]) into acc. */
static inline void row_values_1(const float w[KS][T], const float *values, int Wp, float acc[DB][T]) {
    for (int dx = 0; dx < KS; dx++)
        for (int dd = 0; dd < DB; dd++)
#pragma omp simd
            for (int t = 0; t < T; t++) acc[dd][t] += w[dx][t] * values[(size_t)dd * Wp + dx + t];
}

/* The same for two query rows sharing the value row: each value load feeds two FMAs. */
static inline void row_values_2(const float w0[KS][T], const float w1[KS][T], const float *values, int Wp,
                                float acc0[DB][T], float acc1[DB][T]) {
    for (int dx = 0; dx < KS; dx++)
        for (int dd = 0; dd < DB; dd++)
#pragma omp simd
            for (int t = 0; t < T; t++) {
                const float value = values[(size_t)dd * Wp + dx + t];
                acc0[dd][t] += w0[dx][t] * value;
                acc1[dd][t] += w1[dx][t] * value;
            }
}

/* The weighted values of DB channels for both query rows (values: padded row y, channel d0, column x0). */
static void block_values(tile_logits_t logits[2], const float *values, size_t key_row, int Wp, float out0[DB][T],
                         float out1[DB][T]) {
    memset(out0, 0, sizeof(float) * DB * T);
    memset(out1, 0, sizeof(float) * DB * T);
    row_values_1(logits[0][0], values, Wp, out0);
    for (int r = 1; r < KS; r++) row_values_2(logits[0][r], logits[1][r - 1], values + r * key_row, Wp, out0, out1);
    row_values_1(logits[1][KS - 1], values + KS * key_row, Wp, out1);
}
#endif

/* Store DB channels of a query row's output: acc times a factor per lane (1/sum; dq: the scale), only
 * the lanes inside the image. */
static void store(const float acc[DB][T], const float inv[T], elem_t *out, int D, int H, int W, int y, int x0, int d0) {
    const int lanes = W - x0 < T ? W - x0 : T;
    for (int dd = 0; dd < DB && d0 + dd < D; dd++)
        for (int t = 0; t < lanes; t++) out[((size_t)(d0 + dd) * H + y) * W + x0 + t] = from_float(acc[dd][t] * inv[t]);
}

/* Store the lanes inside the image of one query row's log-sum-exp, max - log(1/sum) (lse may be NULL:
 * not asked for, and then no log is taken: a forward-only call does not pay for it). */
static void store_lse(const float top[T], const float inv[T], float *lse, int H, int W, int y, int x0) {
    const int lanes = W - x0 < T ? W - x0 : T;
    if (lse == NULL || y >= H) return;
    for (int t = 0; t < lanes; t++) lse[(size_t)y * W + x0 + t] = top[t] - logf(inv[t]);
}

/* Work items of a call: images, or with fewer images than threads, bands of an image's rows (whole row
 * pairs), so that every thread has work. */
static int bands_per_image(int n, int threads) { return n >= threads ? 1 : (threads + n - 1) / n; }

/* Image `item / parts` and its query rows [*first, *last) of work item `item`; returns 0 for an empty band. */
static int band_rows(int item, int parts, int H, int *first, int *last) {
    const int band = ((H + 1) / 2 + parts - 1) / parts * 2; /* query rows per item, even */
    *first = item % parts * band;
    *last = *first + band < H ? *first + band : H;
    return *first < *last;
}

/* The scaled logits of query rows y and y + 1, one tile, against the padded keys kp. Padded key row y + r is
 * kernel row r of query row y and kernel row r - 1 of query row y + 1. */
static void pair_logits(const elem_t *q, const float *kp, float *qt, tile_logits_t logits[2], int D, int Dp, int H, int W,
                        int Wp, int y, int x0, float scale) {
#ifdef BF16_DOT
    const uint32_t *keys = (const uint32_t *)kp;
    uint32_t *q0 = (uint32_t *)qt, *q1 = q0 + (size_t)(Dp / 2) * T;
    load_query_pairs(q, q0, D, Dp, H, W, y, x0);
    load_query_pairs(q, q1, D, Dp, H, W, y + 1, x0);
    const size_t key_row = (size_t)(Dp / 2) * Wp; /* lanes per padded row */
    dot_logits(q0, NULL, keys + y * key_row + x0, Dp / 2, Wp, scale, logits[0][0], NULL);
    for (int r = 1; r < KS; r++)
        dot_logits(q0, q1, keys + (y + r) * key_row + x0, Dp / 2, Wp, scale, logits[0][r], logits[1][r - 1]);
    dot_logits(q1, NULL, keys + (y + KS) * key_row + x0, Dp / 2, Wp, scale, logits[1][KS - 1], NULL);
#else
    float *q0 = qt, *q1 = qt + (size_t)Dp * T;
    load_queries(q, q0, D, Dp, H, W, y, x0, scale);
    load_queries(q, q1, D, Dp, H, W, y + 1, x0, scale);
    const size_t key_row = (size_t)Dp * Wp; /* floats per padded row */
    row_logits_1(q0, kp + y * key_row + x0, Dp, Wp, logits[0][0]);
    for (int r = 1; r < KS; r++)
        row_logits_2(q0, q1, kp + (y + r) * key_row + x0, Dp, Wp, logits[0][r], logits[1][r - 1]);
    row_logits_1(q1, kp + (y + KS) * key_row + x0, Dp, Wp, logits[1][KS - 1]);
#endif
}

/* Query rows y and y + 1 (the second may be a phantom row H: zero queries, not stored), one tile. */
static void row_pair(const elem_t *q, const float *kp, const float *vp, elem_t *out, float *lse, float *qt,
                     tile_logits_t logits[2], int D, int Dp, int H, int W, int Wp, int y, int x0, float scale) {
    pair_logits(q, kp, qt, logits, D, Dp, H, W, Wp, y, x0, scale);
    const size_t key_row = (size_t)Dp * Wp; /* floats per padded row of values */
    float inv0[T], inv1[T], top0[T], top1[T];
    tile_softmax(logits[0], inv0, top0);
    tile_softmax(logits[1], inv1, top1);
    store_lse(top0, inv0, lse, H, W, y, x0);
    store_lse(top1, inv1, lse, H, W, y + 1, x0);
    for (int d0 = 0; d0 < Dp; d0 += DB) {
        float acc0[DB][T], acc1[DB][T];
        block_values(logits, vp + (size_t)d0 * Wp + x0 + y * key_row, key_row, Wp, acc0, acc1);
        store(acc0, inv0, out, D, H, W, y, x0, d0);
        if (y + 1 < H) store(acc1, inv1, out, D, H, W, y + 1, x0, d0);
    }
}

/* Returns 0, or -1 when a thread could not allocate its scratch (out is then incomplete). lse (n, H, W),
 * when not NULL, receives each query's log-sum-exp of its scaled logits, which the backward reads. */
int local_attention_forward(const elem_t *q, const elem_t *k, const elem_t *v, elem_t *out, float *lse, int n, int D,
                            int H, int W, int threads) {
    const int Dp = (D + DB - 1) / DB * DB; /* channels padded with zeros to whole value blocks */
    const int Wp = (W + 2 * R + 2 * T - 1) / T * T; /* >= W + 2R + T (a last, partial tile reads zeros), whole vectors */
    const size_t padded = (size_t)(H + 2 * R + 1) * Dp * Wp; /* + 1 row for a phantom query row */
    const float scale = 1.0f / sqrtf((float)D);
    int failed = 0;
#pragma omp parallel num_threads(threads) reduction(| : failed)
    {
        float *kp = padded_scratch(&forward_scratch, D, H, W, 2 * padded + 2 * (size_t)Dp * T);
        float *vp = kp + padded, *qt = vp + padded;
        tile_logits_t logits[2] __attribute__((aligned(64)));
        failed = kp == NULL;
        const int parts = bands_per_image(n, threads); /* each thread pads the rows its band reads */
#pragma omp for schedule(static)
        for (int item = 0; item < n * parts; item++) {
            int first, last;
            if (failed || !band_rows(item, parts, H, &first, &last)) continue;
            const size_t image = (size_t)(item / parts) * D * H * W, pixels = (size_t)(item / parts) * H * W;
            /* Pair y reads image rows y - R .. y + 1 + R: the band, rows [first - R, last + R). */
            const int from = first - R > 0 ? first - R : 0, to = last + R < H ? last + R : H;
#ifdef BF16_DOT
            pad_pairs(k + image, (uint32_t *)kp, D, Dp, H, W, Wp, from, to);
#else
            pad_rows(k + image, kp, D, Dp, H, W, Wp, from, to);
#endif
            pad_rows(v + image, vp, D, Dp, H, W, Wp, from, to);
            for (int y = first; y < last; y += 2)
                for (int x0 = 0; x0 < W; x0 += T)
                    row_pair(q + image, kp, vp, out + image, lse ? lse + pixels : NULL, qt, logits, D, Dp, H, W, Wp, y, x0, scale);
        }
    }
    return failed ? -1 : 0;
}

#ifdef BF16_DOT
#define KEY_PAIRS 1 /* the backward keeps the keys twice: channel pairs for the logits, floats for dq */
#else
#define KEY_PAIRS 0
#endif

/* ---- Backward: dq, dk, dv ----
 *
 * As the Triton kernel (FlashAttention-2's backward): the probabilities are recomputed from the
 * logits and the forward's log-sum-exp, P = exp(s - lse), and dS = P (dP - Delta) with
 * dP = dout . v and Delta = dout . out. Pass 1 goes over pairs of query rows as the forward
 * does: P and dS of every offset, and dq = scale sum dS k. Pass 2 goes over key rows and
 * gathers from the queries that see each key (the k x k neighbourhood is symmetric):
 * dk = scale sum dS q, dv = sum P dout. A gather writes each gradient once, so threads never
 * add into the same memory. P and dS are kept per thread for the rows pass 2 reads, laid out
 * (padded query row, offset, padded column) with zero borders, so pass 2's loads are plain
 * shifted vectors, as the keys are in pass 1.
 */

/* P and dS of one query row in place of its logits (p) and dP (ds), from its log-sum-exp and
 * Delta = dout . out; the lanes inside the image then go into the row's P and dS rows. */
static void probabilities(tile_logits_t p, tile_logits_t ds, const elem_t *dout, const elem_t *out, const float *lse,
                          float *pb, float *sb, int D, int H, int W, int Wp, int y, int x0) {
    const int lanes = W - x0 < T ? W - x0 : T;
    const size_t offset_row = (size_t)KS * KS * Wp;
    float delta[T] = {0}, top[T] = {0}, inside[T];
    for (int d = 0; d < D; d++) {
        const size_t at = ((size_t)d * H + y) * W + x0;
        const elem_t *row = out + at, *grad = dout + at;
        if (lanes == T) /* a whole tile: a loop of constant length, which vectorises */
#pragma omp simd
            for (int t = 0; t < T; t++) delta[t] += to_float(grad[t]) * to_float(row[t]);
        else
            for (int t = 0; t < lanes; t++) delta[t] += to_float(grad[t]) * to_float(row[t]);
    }
    memcpy(top, lse + (size_t)y * W + x0, sizeof(float) * lanes);
    for (int t = 0; t < T; t++) inside[t] = t < lanes;
    /* P and dS are zero past the image (those columns are the rows' zero border), so that whole vectors are
     * copied into the rows below. */
    float *ps = &p[0][0][0], *dss = &ds[0][0][0];
    for (int o = 0; o < KS * KS; o++)
#pragma omp simd
        for (int t = 0; t < T; t++) {
            const float prob = exp_nonpositive(ps[o * T + t] - top[t]) * inside[t];
            ps[o * T + t] = prob;
            dss[o * T + t] = prob * (dss[o * T + t] - delta[t]);
        }
    for (int o = 0; o < KS * KS; o++) {
        memcpy(pb + (size_t)(y + R) * offset_row + (size_t)o * Wp + R + x0, ps + o * T, sizeof(float) * T);
        memcpy(sb + (size_t)(y + R) * offset_row + (size_t)o * Wp + R + x0, dss + o * T, sizeof(float) * T);
    }
}

/* Pass 1, query rows y and y + 1, one tile: the forward's logits (q against the keys kl, laid out as
 * the forward's) and dP = dout . v (against the values vl, the same layout), then P and dS of the
 * rows below `to` into their rows (pb, sb), then dq = scale sum dS k (the forward's weighted values,
 * the float keys kp for values) for the rows in [first, last). */
static void query_pair_backward(const elem_t *q, const elem_t *out, const float *lse, const elem_t *dout, elem_t *dq,
                                const float *kl, const float *vl, const float *kp, float *pb, float *sb, float *qt,
                                float *dt, int first, int last, int to, int D, int Dp, int H, int W, int Wp, int y,
                                int x0, float scale) {
    const size_t key_row = (size_t)Dp * Wp;
    tile_logits_t p[2] __attribute__((aligned(64))), ds[2] __attribute__((aligned(64))); /* logits then P; dP then dS */
    pair_logits(q, kl, qt, p, D, Dp, H, W, Wp, y, x0, scale);
    pair_logits(dout, vl, dt, ds, D, Dp, H, W, Wp, y, x0, 1.0f);
    for (int i = 0; i < 2 && y + i < to; i++)
        probabilities(p[i], ds[i], dout, out, lse, pb, sb, D, H, W, Wp, y + i, x0);
    const int store0 = y >= first && y < last, store1 = y + 1 >= first && y + 1 < last;
    if (!store0 && !store1) return;
    float scales[T];
    for (int t = 0; t < T; t++) scales[t] = scale;
    for (int d0 = 0; d0 < Dp; d0 += DB) {
        float acc0[DB][T], acc1[DB][T];
        block_values(ds, kp + (size_t)d0 * Wp + x0 + y * key_row, key_row, Wp, acc0, acc1);
        if (store0) store(acc0, scales, dq, D, H, W, y, x0, d0);
        if (store1) store(acc1, scales, dq, D, H, W, y + 1, x0, d0);
    }
}

/* Pass 2's sums for one tile of key row y and DB channels from d0: ak = sum dS q, av = sum P dout over the
 * KS x KS queries that see each key. The query that sees key (y, x) at offset (a, b) is
 * (y + R - a, x + R - b): padded row y + 2R - a, column x + 2R - b. */
static inline void key_block(const float *pb, const float *sb, const float *qp, const float *dop, int Dp, int Wp, int y,
                             int x0, int d0, float ak_out[DB][T], float av_out[DB][T]) {
    const size_t key_row = (size_t)Dp * Wp, offset_row = (size_t)KS * KS * Wp;
#ifdef AVX2_ONLY /* intrinsics, so that the 2 x DB sums stay in registers */
    __m256 ak[DB], av[DB];
    for (int dd = 0; dd < DB; dd++) ak[dd] = av[dd] = _mm256_setzero_ps();
#else
    float ak[DB][T], av[DB][T];
    memset(ak, 0, sizeof(ak));
    memset(av, 0, sizeof(av));
#endif
    for (int a = 0; a < KS; a++) {
        const size_t row = (size_t)(y + 2 * R - a);
#pragma GCC unroll 16
        for (int b = 0; b < KS; b++) {
            const size_t column = (size_t)(x0 + 2 * R - b);
            const float *prob = pb + row * offset_row + (size_t)(a * KS + b) * Wp + column;
            const float *dsc = sb + row * offset_row + (size_t)(a * KS + b) * Wp + column;
            const float *queries = qp + row * key_row + (size_t)d0 * Wp + column;
            const float *grads = dop + row * key_row + (size_t)d0 * Wp + column;
#ifdef AVX2_ONLY
            const __m256 p = _mm256_loadu_ps(prob), g = _mm256_loadu_ps(dsc);
            for (int dd = 0; dd < DB; dd++) {
                ak[dd] = _mm256_fmadd_ps(g, _mm256_loadu_ps(queries + (size_t)dd * Wp), ak[dd]);
                av[dd] = _mm256_fmadd_ps(p, _mm256_loadu_ps(grads + (size_t)dd * Wp), av[dd]);
            }
#else
            for (int dd = 0; dd < DB; dd++)
#pragma omp simd
                for (int t = 0; t < T; t++) {
                    ak[dd][t] += dsc[t] * queries[(size_t)dd * Wp + t];
                    av[dd][t] += prob[t] * grads[(size_t)dd * Wp + t];
                }
#endif
        }
    }
#ifdef AVX2_ONLY
    for (int dd = 0; dd < DB; dd++) {
        _mm256_storeu_ps(ak_out[dd], ak[dd]);
        _mm256_storeu_ps(av_out[dd], av[dd]);
    }
#else
    memcpy(ak_out, ak, sizeof(ak));
    memcpy(av_out, av, sizeof(av));
#endif
}

/* Pass 2, one tile of key row y: dk and dv, DB channels at a time. */
static void key_tile_backward(const float *pb, const float *sb, const float *qp, const float *dop, elem_t *dk, elem_t *dv,
                              int D, int Dp, int H, int W, int Wp, int y, int x0, float scale) {
    const int lanes = W - x0 < T ? W - x0 : T;
    for (int d0 = 0; d0 < Dp; d0 += DB) {
        float ak[DB][T], av[DB][T];
        key_block(pb, sb, qp, dop, Dp, Wp, y, x0, d0, ak, av);
        for (int dd = 0; dd < DB && d0 + dd < D; dd++)
            for (int t = 0; t < lanes; t++) {
                dk[((size_t)(d0 + dd) * H + y) * W + x0 + t] = from_float(ak[dd][t] * scale);
                dv[((size_t)(d0 + dd) * H + y) * W + x0 + t] = from_float(av[dd][t]);
            }
    }
}

/* dq, dk, dv (n, D, H, W) of local_attention_forward's output for the output gradient dout, from its
 * inputs, its output and its log-sum-exp. Returns 0, or -1 when a thread could not allocate its
 * scratch (the gradients are then incomplete). */
int local_attention_backward(const elem_t *q, const elem_t *k, const elem_t *v, const elem_t *out, const float *lse,
                             const elem_t *dout, elem_t *dq, elem_t *dk, elem_t *dv, int n, int D, int H, int W,
                             int threads) {
    const int Dp = (D + DB - 1) / DB * DB;
    const int Wp = (W + 2 * R + 2 * T - 1) / T * T;
    const size_t padded = (size_t)(H + 2 * R + 1) * Dp * Wp, offsets = (size_t)(H + 2 * R) * KS * KS * Wp;
    const float scale = 1.0f / sqrtf((float)D);
    int failed = 0;
#pragma omp parallel num_threads(threads) reduction(| : failed)
    {
        /* keys, values, queries, output gradients (padded rows), P, dS, two tiles, and with BF16_DOT the keys
         * as the forward's channel pairs (the values are only read as such) */
        float *kp = padded_scratch(&backward_scratch, D, H, W, (4 + KEY_PAIRS) * padded + 2 * offsets + 4 * (size_t)Dp * T);
        float *vp = kp + padded, *qp = vp + padded, *dop = qp + padded, *pb = dop + padded, *sb = pb + offsets;
        float *qt = sb + offsets, *dt = qt + 2 * (size_t)Dp * T; /* two rows each */
        float *kl = KEY_PAIRS ? dt + 2 * (size_t)Dp * T : kp; /* the keys as the logits read them */
        failed = kp == NULL;
        /* As the forward's; a band's pass 2 needs P and dS of R query rows on either side, which its
         * thread recomputes. */
        const int parts = bands_per_image(n, threads);
#pragma omp for schedule(static)
        for (int item = 0; item < n * parts; item++) {
            int first, last;
            if (failed || !band_rows(item, parts, H, &first, &last)) continue;
            const size_t image = (size_t)(item / parts) * D * H * W, pixels = (size_t)(item / parts) * H * W;
            const int qfrom = first - R > 0 ? first - R : 0, qto = last + R < H ? last + R : H;
            const int kfrom = qfrom - R > 0 ? qfrom - R : 0, kto = qto + R < H ? qto + R : H;
            pad_rows(k + image, kp, D, Dp, H, W, Wp, kfrom, kto);
#ifdef BF16_DOT
            pad_pairs(k + image, (uint32_t *)kl, D, Dp, H, W, Wp, kfrom, kto);
            pad_pairs(v + image, (uint32_t *)vp, D, Dp, H, W, Wp, kfrom, kto);
#else
            pad_rows(v + image, vp, D, Dp, H, W, Wp, kfrom, kto);
#endif
            pad_rows(q + image, qp, D, Dp, H, W, Wp, qfrom, qto);
            pad_rows(dout + image, dop, D, Dp, H, W, Wp, qfrom, qto);
            /* A pair's second row may be row qto (or the phantom row H): its keys were not copied, its
             * results are not kept. */
            for (int y = qfrom; y < qto; y += 2)
                for (int x0 = 0; x0 < W; x0 += T)
                    query_pair_backward(q + image, out + image, lse + pixels, dout + image, dq + image, kl, vp, kp, pb,
                                        sb, qt, dt, first, last, qto, D, Dp, H, W, Wp, y, x0, scale);
            for (int y = first; y < last; y++)
                for (int x0 = 0; x0 < W; x0 += T)
                    key_tile_backward(pb, sb, qp, dop, dk + image, dv + image, D, Dp, H, W, Wp, y, x0, scale);
        }
    }
    return failed ? -1 : 0;
}

/* This build's instruction set and tile, for the row's backend column. */
const char *local_attention_build(void) {
#if defined(BF16_DOT)
#define ELEMENTS "bfloat16 in, logits and dP by vdpbf16ps, float32 accumulation"
#elif defined(BF16)
#define ELEMENTS "bfloat16 in, float32 inside"
#else
#define ELEMENTS "float32"
#endif
#if defined(__AVX512F__)
    return "AVX-512, tiles of 2x16 queries, " ELEMENTS;
#elif defined(__AVX2__)
    return "AVX2, tiles of 2x8 queries, " ELEMENTS;
#else
    return "portable loops, tiles of 2x8 queries, " ELEMENTS;
#endif
}
