/*
 * lstm_cell_body.h — the one body of lstm_cell.c, included once per
 * instruction set with these macros defined (no include guard on purpose; it
 * undefines them at its end), the vmath_body.h scheme:
 *
 *   VF VW TARGET SFX(name)      vector type, lanes, target attribute, suffix
 *   V_LOAD V_STORE V_SET1 V_ADD V_SUB V_MUL V_FMA(a, b, c) = a*b + c
 *   V_MIN V_MAX  a NaN in either operand gives the second (as x86), so
 *               V_MAX(bound, x) keeps a NaN x
 *   V_ROUND     to the nearest integer; V_POW2I(n) = 2^n for integral n in
 *               [-126, 126], anything but a trap for a NaN n (the polynomial
 *               it scales is NaN then)
 *   V_RCP(d)    1/d to within an ulp or two, for positive normal d
 *   V_PREFETCH(p) a hint to bring p's line into L1, or nothing
 *
 * No select or NaN test anywhere: every clamp keeps a NaN (operand order
 * above) and the arithmetic after it carries the NaN to c and h, as the
 * element-wise path does.
 *
 * sigmoid(x) = 1 / (1 + exp(-x)) with exp's argument clamped to [-87, 87]
 * (2^n one normal scale); exp is vmath_body.h's (Cephes' degree-7
 * polynomial on z - n ln2), and 1 + exp(-x) is never below 1, so the
 * refined reciprocal is as good as a division and the negative tail keeps
 * its relative precision. tanh(x) is Eigen's rational approximation
 * x P(x^2) / Q(x^2) (degrees 13 / 6) on |x| <= 7.9053, where tanh rounds to
 * within 3 ulp of 1; about 3 ulp at most in float arithmetic, against the
 * exponential's 37 operations per vector 19.
 */

TARGET static inline VF SFX(sigmoid)(VF x)
{
    VF z = V_MIN(V_SET1(87.0f), V_MAX(V_SET1(-87.0f), V_SUB(V_SET1(0.0f), x)));
    VF n = V_ROUND(V_MUL(z, V_SET1(1.44269504088896341f)));
    VF r = V_FMA(n, V_SET1(-0.693359375f), z);
    r = V_FMA(n, V_SET1(2.12194440e-4f), r);
    VF p = V_SET1(1.9875691500e-4f);
    p = V_FMA(p, r, V_SET1(1.3981999507e-3f));
    p = V_FMA(p, r, V_SET1(8.3334519073e-3f));
    p = V_FMA(p, r, V_SET1(4.1665795894e-2f));
    p = V_FMA(p, r, V_SET1(1.6666665459e-1f));
    p = V_FMA(p, r, V_SET1(5.0000001201e-1f));
    VF e = V_MUL(V_ADD(V_FMA(p, V_MUL(r, r), r), V_SET1(1.0f)), V_POW2I(n));
    return V_RCP(V_ADD(V_SET1(1.0f), e));
}

TARGET static inline VF SFX(tanh)(VF x)
{
    VF xc = V_MIN(V_SET1(7.90531110763549805f), V_MAX(V_SET1(-7.90531110763549805f), x));
    VF u = V_MUL(xc, xc);
    VF p = V_SET1(-2.76076847742355e-16f);
    p = V_FMA(p, u, V_SET1(2.00018790482477e-13f));
    p = V_FMA(p, u, V_SET1(-8.60467152213735e-11f));
    p = V_FMA(p, u, V_SET1(5.12229709037114e-08f));
    p = V_FMA(p, u, V_SET1(1.48572235717979e-05f));
    p = V_FMA(p, u, V_SET1(6.37261928875436e-04f));
    p = V_FMA(p, u, V_SET1(4.89352455891786e-03f));
    VF q = V_SET1(1.19825839466702e-06f);
    q = V_FMA(q, u, V_SET1(1.18534705686654e-04f));
    q = V_FMA(q, u, V_SET1(2.26843463243900e-03f));
    q = V_FMA(q, u, V_SET1(4.89352518554385e-03f));
    return V_MUL(V_MUL(xc, p), V_RCP(q));
}

/* Units [k0, k1) of one row, k1 - k0 a multiple of VW. */
TARGET static void SFX(cell_range)(const lstm_cell_args *a, size_t k0, size_t k1)
{
    const float *acc = a->acc, *xw = a->xw, *bias = a->bias;
    size_t as = a->acc_stride, xs = a->xw_stride;
    bool clip = a->clip > 0, peep = a->peep_i != NULL;
    VF hi = V_SET1(a->clip), lo = V_SET1(-a->clip);
    for (size_t k = k0; k < k1; k += VW) {
        VF gi = V_LOAD(acc + k), go = V_LOAD(acc + as + k);
        VF gf = V_LOAD(acc + 2 * as + k), gc = V_LOAD(acc + 3 * as + k);
        if (xw) {
            gi = V_ADD(gi, V_LOAD(xw + k));
            go = V_ADD(go, V_LOAD(xw + xs + k));
            gf = V_ADD(gf, V_LOAD(xw + 2 * xs + k));
            gc = V_ADD(gc, V_LOAD(xw + 3 * xs + k));
        }
        if (bias) {
            gi = V_ADD(gi, V_LOAD(bias + k));
            go = V_ADD(go, V_LOAD(bias + xs + k));
            gf = V_ADD(gf, V_LOAD(bias + 2 * xs + k));
            gc = V_ADD(gc, V_LOAD(bias + 3 * xs + k));
        }
        VF c = V_LOAD(a->c + k);
        if (peep) {
            gi = V_FMA(V_LOAD(a->peep_i + k), c, gi);
            gf = V_FMA(V_LOAD(a->peep_f + k), c, gf);
        }
        if (clip) {
            gi = V_MIN(hi, V_MAX(lo, gi));
            gf = V_MIN(hi, V_MAX(lo, gf));
            gc = V_MIN(hi, V_MAX(lo, gc));
        }
        VF i = SFX(sigmoid)(gi);
        VF f = a->input_forget ? V_SUB(V_SET1(1.0f), i) : SFX(sigmoid)(gf);
        c = V_FMA(f, c, V_MUL(i, SFX(tanh)(gc)));
        if (peep)
            go = V_FMA(V_LOAD(a->peep_o + k), c, go);
        if (clip)
            go = V_MIN(hi, V_MAX(lo, go));
        V_STORE(a->c + k, c);
        VF h = V_MUL(SFX(sigmoid)(go), SFX(tanh)(c));
        V_STORE(a->h + k, h);
        if (a->h_copy)
            V_STORE(a->h_copy + k, h);
    }
}

/* Group g (units [16 g, 16 g + 16)) of lstm_step_rows_f32, `rows` a
 * constant so that the rows x 4 x 16 sums stay in registers (AVX-512: 12
 * of 32; AVX2 spills at 3 rows, the portable build keeps them in memory).
 * Gate q's 16 columns of the group are one packed sliver, the four of a
 * group `sliver_step` slivers apart; each streams NR floats per K row. */
TARGET static inline __attribute__((always_inline)) void
SFX(step_group)(const lstm_step_args *a, size_t g, const int rows)
{
    enum { NV = 16 / VW };
    size_t H = a->hidden, cu = a->chunk_units;
    size_t j = g * 16 / cu, u0 = g * 16 % cu, cw = H - j * cu < cu ? H - j * cu : cu;
    const float *chunk = a->packed_r + j * a->chunk_floats;
    size_t npad = 4 * cw, sliver0 = u0 / 16, sliver_step = cw / 16;
    VF acc[3][4][NV];
    for (int r = 0; r < rows; r++)
        for (int q = 0; q < 4; q++)
            for (int u = 0; u < NV; u++)
                acc[r][q][u] = V_SET1(0.0f);
    for (size_t p0 = 0; p0 < H; p0 += GEMM_PACK_KC) {
        size_t kc = H - p0 < GEMM_PACK_KC ? H - p0 : GEMM_PACK_KC;
        const float *base = chunk + p0 * npad + sliver0 * 16 * kc;
        size_t qs = sliver_step * 16 * kc;
        const float *hp = a->h_prev + p0;
        for (size_t p = 0; p < kc; p++) {
            VF hv[3];
            for (int r = 0; r < rows; r++)
                hv[r] = V_SET1(hp[(size_t)r * H + p]);
            for (int q = 0; q < 4; q++) {
                const float *w = base + (size_t)q * qs + p * 16;
                /* With 2-3 rows, 8 to 12 FMAs a row of R, L2 latency is what
                 * the streams wait on: 2 rows about even, 3 rows 495 -> 435
                 * us on the bench LSTM with this prefetch. With 1 row the
                 * hardware's L1 prefetcher keeps up and the prefetches only
                 * take load slots: 199.6 -> 188.8 us without (batch 1,
                 * medians of 5 alternated runs, 1 thread). */
                if (rows > 1)
                    V_PREFETCH(w + 8 * 16);
                for (int u = 0; u < NV; u++) {
                    VF wv = V_LOAD(w + u * VW);
                    for (int r = 0; r < rows; r++)
                        acc[r][q][u] = V_FMA(hv[r], wv, acc[r][q][u]);
                }
            }
        }
    }
    float sums[64];
    for (int r = 0; r < rows; r++) {
        for (int q = 0; q < 4; q++)
            for (int u = 0; u < NV; u++)
                V_STORE(sums + q * 16 + u * VW, acc[r][q][u]);
        size_t k0 = g * 16;
        lstm_cell_args cell = {
            .acc = sums, .acc_stride = 16, .xw = a->xw[r] ? a->xw[r] + k0 : NULL,
            .bias = a->bias ? a->bias + k0 : NULL, .xw_stride = H,
            .peep_i = a->peep_i ? a->peep_i + k0 : NULL,
            .peep_o = a->peep_o ? a->peep_o + k0 : NULL,
            .peep_f = a->peep_f ? a->peep_f + k0 : NULL, .clip = a->clip,
            .input_forget = a->input_forget, .c = a->c + (size_t)r * H + k0,
            .h = a->h_next + (size_t)r * H + k0,
        };
        SFX(cell_range)(&cell, 0, 16);
    }
}

TARGET static void SFX(step_rows)(const lstm_step_args *a)
{
    size_t groups = a->hidden / 16;
    for (size_t i = 0; i < groups; i++) {
        size_t g = a->reverse ? groups - 1 - i : i;
        switch (a->rows) {
        case 1: SFX(step_group)(a, g, 1); break;
        case 2: SFX(step_group)(a, g, 2); break;
        default: SFX(step_group)(a, g, 3); break;
        }
    }
}

/* Rows [r0, r0 + rows) by the NV vectors of columns from j (one or two
 * slivers, `width` of them valid) of lstm_partial_product_f32; `rows` a
 * constant (AVX-512: 8 x 2 sums of 32 registers, as the GEMM's wide tile;
 * the narrower builds take 4 rows). */
TARGET static inline __attribute__((always_inline)) void
SFX(partial_tile)(const lstm_partial_args *a, size_t r0, size_t j, size_t width, const int rows,
                  const int nv)
{
    size_t H = a->hidden, npad = (a->n + 15) / 16 * 16;
    VF acc[8][32 / VW];
    for (int r = 0; r < rows; r++)
        for (int v = 0; v < nv; v++)
            acc[r][v] = V_SET1(0.0f);
    for (int range = 0; range < LSTM_PARTIAL_RANGES; range++) {
        size_t k0 = a->units[range][0], k1 = a->units[range][1];
        for (size_t p0 = k0 / GEMM_PACK_KC * GEMM_PACK_KC; p0 < k1; p0 += GEMM_PACK_KC) {
            size_t kc = H - p0 < GEMM_PACK_KC ? H - p0 : GEMM_PACK_KC;
            size_t lo = k0 > p0 ? k0 : p0, hi = k1 < p0 + kc ? k1 : p0 + kc;
            const float *b = a->packed_chunk + p0 * npad + j * kc + (lo - p0) * 16;
            const float *hp = a->h_prev + r0 * H;
#pragma GCC unroll 4
            for (size_t p = lo; p < hi; p++, b += 16) {
                VF bv[32 / VW];
                for (int v = 0; v < nv; v++) /* vector v of the pair: sliver v / (16 / VW) */
                    bv[v] = V_LOAD(b + (size_t)(v / (16 / VW)) * 16 * kc +
                                   (size_t)(v % (16 / VW)) * VW);
                for (int r = 0; r < rows; r++) {
                    VF hv = V_SET1(hp[(size_t)r * H + p]);
                    for (int v = 0; v < nv; v++)
                        acc[r][v] = V_FMA(hv, bv[v], acc[r][v]);
                }
            }
        }
    }
    for (int r = 0; r < rows; r++) {
        float *out = a->sums + (r0 + (size_t)r) * a->ld + j;
        if (width == (size_t)nv * VW) {
            for (int v = 0; v < nv; v++)
                V_STORE(out + v * VW, V_ADD(V_LOAD(out + v * VW), acc[r][v]));
        } else { /* the chunk's ragged last sliver */
            float part[32] = {0};
            for (int v = 0; v < nv; v++)
                V_STORE(part + v * VW, acc[r][v]);
            for (size_t k = 0; k < width; k++)
                out[k] += part[k];
        }
    }
}

#define PARTIAL_ROWS (VW == 16 ? 8 : 4)

TARGET static void SFX(partial_product)(const lstm_partial_args *a)
{
    for (size_t j = 0; j < a->n; j += 32) {
        size_t width = a->n - j < 32 ? a->n - j : 32;
        int nv = width > 16 ? 32 / VW : 16 / VW;
        for (size_t r0 = 0; r0 < a->rows; r0 += PARTIAL_ROWS) {
            size_t rows = a->rows - r0 < PARTIAL_ROWS ? a->rows - r0 : PARTIAL_ROWS;
#define PARTIAL_CASE(R)                                                                            \
    case R:                                                                                        \
        if (nv == 32 / VW)                                                                         \
            SFX(partial_tile)(a, r0, j, width, R, 32 / VW);                                        \
        else                                                                                       \
            SFX(partial_tile)(a, r0, j, width, R, 16 / VW);                                        \
        break
            switch (rows) {
                PARTIAL_CASE(1); PARTIAL_CASE(2); PARTIAL_CASE(3);
#if VW == 16
                PARTIAL_CASE(4); PARTIAL_CASE(5); PARTIAL_CASE(6); PARTIAL_CASE(7);
            default: PARTIAL_CASE(8);
#else
            default: PARTIAL_CASE(4);
#endif
            }
#undef PARTIAL_CASE
        }
    }
}

#undef PARTIAL_ROWS
#undef VF
#undef VW
#undef TARGET
#undef SFX
#undef V_LOAD
#undef V_STORE
#undef V_SET1
#undef V_ADD
#undef V_SUB
#undef V_MUL
#undef V_FMA
#undef V_MIN
#undef V_MAX
#undef V_ROUND
#undef V_POW2I
#undef V_RCP
#undef V_PREFETCH
