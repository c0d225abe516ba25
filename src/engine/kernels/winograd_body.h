/*
 * winograd_body.h — the transforms and the block loop of kernels/winograd.c,
 * written once in plain C over arrays and included by winograd.c once per
 * instruction set with TARGET (the function attribute) and SFX (the name
 * suffix) defined, so the compiler vectorises each copy for its vectors.
 *
 * Every transform is a 1-D one applied along the contiguous index of its
 * arrays (tiles side by side, or the columns of an image row), which is
 * what makes them vectorise: the input tile's rows are combined over whole
 * image rows first (B^T down the columns), then each combined row is read
 * at stride m for the tiles along it (B across); the output transform works
 * on whole blocks of tiles at once (A^T on M's rows, then on their
 * results) and only the last step interleaves the m columns of each tile
 * into the image row, where the bias, the residual and the clamp are
 * applied before the one store.
 */

/* F(4x4, 3x3): B^T (6 x 6) on the six inputs a0..a5 of tile t, for the
 * two ways they are read: down six rows (bt6) and along one row (bt6_row). */
TARGET static inline void SFX(bt6_at)(float a0, float a1, float a2, float a3, float a4, float a5,
                                      float *restrict o0, float *restrict o1,
                                      float *restrict o2, float *restrict o3,
                                      float *restrict o4, float *restrict o5, size_t t)
{
    float p = a4 - 4.0f * a2, q = a3 - 4.0f * a1;
    float r = a4 - a2, s = 2.0f * (a3 - a1);
    o0[t] = 4.0f * a0 - 5.0f * a2 + a4;
    o1[t] = p + q;
    o2[t] = p - q;
    o3[t] = r + s;
    o4[t] = r - s;
    o5[t] = 4.0f * a1 - 5.0f * a3 + a5;
}

TARGET static void SFX(bt6)(const float *restrict d0, const float *restrict d1,
                            const float *restrict d2, const float *restrict d3,
                            const float *restrict d4, const float *restrict d5,
                            float *restrict o0, float *restrict o1, float *restrict o2,
                            float *restrict o3, float *restrict o4, float *restrict o5, size_t n)
{
    for (size_t t = 0; t < n; t++)
        SFX(bt6_at)(d0[t], d1[t], d2[t], d3[t], d4[t], d5[t], o0, o1, o2, o3, o4, o5, t);
}

/* Tile t reads row[4t .. 4t+5]. */
TARGET static void SFX(bt6_row)(const float *restrict row, float *restrict o0, float *restrict o1,
                                float *restrict o2, float *restrict o3, float *restrict o4,
                                float *restrict o5, size_t n)
{
    for (size_t t = 0; t < n; t++) {
        const float *d = row + 4 * t;
        SFX(bt6_at)(d[0], d[1], d[2], d[3], d[4], d[5], o0, o1, o2, o3, o4, o5, t);
    }
}

/* F(2x2, 3x3): B^T (4 x 4). */
TARGET static void SFX(bt4)(const float *restrict d0, const float *restrict d1,
                            const float *restrict d2, const float *restrict d3,
                            float *restrict o0, float *restrict o1, float *restrict o2,
                            float *restrict o3, size_t n)
{
    for (size_t t = 0; t < n; t++) {
        o0[t] = d0[t] - d2[t];
        o1[t] = d1[t] + d2[t];
        o2[t] = d2[t] - d1[t];
        o3[t] = d1[t] - d3[t];
    }
}

TARGET static void SFX(bt4_row)(const float *restrict row, float *restrict o0, float *restrict o1,
                                float *restrict o2, float *restrict o3, size_t n)
{
    for (size_t t = 0; t < n; t++) {
        const float *d = row + 2 * t;
        o0[t] = d[0] - d[2];
        o1[t] = d[1] + d[2];
        o2[t] = d[2] - d[1];
        o3[t] = d[1] - d[3];
    }
}

/* F(4x4, 3x3): A^T (4 x 6). */
TARGET static void SFX(at6)(const float *restrict m0, const float *restrict m1,
                            const float *restrict m2, const float *restrict m3,
                            const float *restrict m4, const float *restrict m5,
                            float *restrict o0, float *restrict o1, float *restrict o2,
                            float *restrict o3, size_t n)
{
    for (size_t t = 0; t < n; t++) {
        float a = m1[t] + m2[t], b = m1[t] - m2[t], c = m3[t] + m4[t], d = m3[t] - m4[t];
        o0[t] = m0[t] + a + c;
        o1[t] = b + 2.0f * d;
        o2[t] = a + 4.0f * c;
        o3[t] = b + 8.0f * d + m5[t];
    }
}

/* F(2x2, 3x3): A^T (2 x 4). */
TARGET static void SFX(at4)(const float *restrict m0, const float *restrict m1,
                            const float *restrict m2, const float *restrict m3,
                            float *restrict o0, float *restrict o1, size_t n)
{
    for (size_t t = 0; t < n; t++) {
        o0[t] = m0[t] + m1[t] + m2[t];
        o1[t] = m1[t] - m2[t] - m3[t];
    }
}

/* Output row of n tiles: column m*t + q comes from y[q][t]. */
TARGET static void SFX(interleave)(size_t m, const float *restrict y, size_t pitch,
                                   float *restrict row, size_t n)
{
    const float *y0 = y, *y1 = y + pitch, *y2 = y + 2 * pitch, *y3 = y + 3 * pitch;
    if (m == 4) {
        for (size_t t = 0; t < n; t++) {
            row[4 * t] = y0[t];
            row[4 * t + 1] = y1[t];
            row[4 * t + 2] = y2[t];
            row[4 * t + 3] = y3[t];
        }
    } else {
        for (size_t t = 0; t < n; t++) {
            row[2 * t] = y0[t];
            row[2 * t + 1] = y1[t];
        }
    }
}

/* Y's row = clamp(row + bias + residual); NaN passes the clamp as in
 * epilogue.h. */
TARGET static void SFX(store_row)(const float *restrict row, float bias,
                                  const float *restrict res, const kernel_epilogue *e,
                                  float *restrict y, size_t n)
{
    float lo = e->lo, hi = e->hi;
    if (res && e->clamp) {
        for (size_t u = 0; u < n; u++) {
            float v = row[u] + bias + res[u];
            v = v < lo ? lo : v;
            y[u] = v > hi ? hi : v;
        }
    } else if (res) {
        for (size_t u = 0; u < n; u++)
            y[u] = row[u] + bias + res[u];
    } else if (e->clamp) {
        for (size_t u = 0; u < n; u++) {
            float v = row[u] + bias;
            v = v < lo ? lo : v;
            y[u] = v > hi ? hi : v;
        }
    } else {
        for (size_t u = 0; u < n; u++)
            y[u] = row[u] + bias;
    }
}

#ifndef PRODUCT
/* M_xi (cout x tb) = U_xi x V_xi (cin x tb) over the sliver layout of
 * winograd_pack, as rows of axpys along the tiles (the AVX-512 copy keeps
 * a register tile instead: PRODUCT). */
TARGET static void SFX(product)(const float *u, const float *v, float *mo, size_t cout,
                                size_t cin, size_t tb)
{
    for (size_t o = 0; o < cout; o++) {
        const float *us = u + o / WINOGRAD_MR * WINOGRAD_MR * cin + o % WINOGRAD_MR;
        float *restrict row = mo + o * tb;
        for (size_t t = 0; t < tb; t++)
            row[t] = 0.0f;
        for (size_t c = 0; c < cin; c++) {
            float a = us[c * WINOGRAD_MR];
            const float *restrict vc = v + c * tb;
            for (size_t t = 0; t < tb; t++)
                row[t] += a * vc[t];
        }
    }
}
#endif

/* Input transform of channels [c0, c1) (at most WINOGRAD_GROUP) of one run
 * of tiles into V. The rows of the whole group are combined first and read
 * across after: reading a combined row right after writing it made the
 * wide loads wait on the narrower stores still in flight (store forwarding
 * fails), half the time of the pass. */
TARGET static void SFX(input_tiles)(const wino_job *job, const tile_run *run, size_t c0,
                                    size_t c1, size_t tb, float *v, float *tmp,
                                    const float *zero)
{
    size_t m = job->m, alpha = m + 2, iw = job->iw, pitch = job->tmp_pitch;
    size_t plane = job->ih * iw;
    const float *xn = job->wc->x + run->n * job->cin * plane;
    const float *src[6] = {zero, zero, zero, zero, zero, zero};
    size_t rows[6];
    for (size_t k = 0; k < alpha; k++) {
        ptrdiff_t iy = (ptrdiff_t)(m * run->ty + k) - (ptrdiff_t)job->pt;
        rows[k] = iy >= 0 && iy < (ptrdiff_t)job->ih ? (size_t)iy : SIZE_MAX;
    }
    /* B^T down the columns over the whole image row; the padding columns
     * of tmp stay zero */
    for (size_t c = c0; c < c1; c++) {
        const float *xc = xn + c * plane;
        for (size_t k = 0; k < alpha; k++)
            src[k] = rows[k] == SIZE_MAX ? zero : xc + rows[k] * iw;
        float *t0 = tmp + (c - c0) * alpha * pitch + job->pl;
        if (m == 4)
            SFX(bt6)(src[0], src[1], src[2], src[3], src[4], src[5], t0, t0 + pitch,
                     t0 + 2 * pitch, t0 + 3 * pitch, t0 + 4 * pitch, t0 + 5 * pitch, iw);
        else
            SFX(bt4)(src[0], src[1], src[2], src[3], t0, t0 + pitch, t0 + 2 * pitch,
                     t0 + 3 * pitch, iw);
    }
    /* B across each combined row, tile by tile; V_xi (Cin x tb) row c */
    size_t xi_stride = job->cin * tb, count = run->count;
    for (size_t c = c0; c < c1; c++) {
        float *dst = v + c * tb + run->col;
        const float *tc = tmp + (c - c0) * alpha * pitch + m * run->tx0;
        for (size_t i = 0; i < alpha; i++) {
            float *o = dst + i * alpha * xi_stride;
#ifdef ROW_TRANSFORM
            ROW_TRANSFORM(m, tc + i * pitch, o, xi_stride, count);
            continue;
#endif
            if (m == 4)
                SFX(bt6_row)(tc + i * pitch, o, o + xi_stride, o + 2 * xi_stride,
                             o + 3 * xi_stride, o + 4 * xi_stride, o + 5 * xi_stride, count);
            else
                SFX(bt4_row)(tc + i * pitch, o, o + xi_stride, o + 2 * xi_stride,
                             o + 3 * xi_stride, count);
        }
    }
}

/* Output transform of channel o of the block (its runs of tiles) from the
 * products M, which hold `rows` channels (o is row `row` of them), with the
 * epilogue, into Y. */
TARGET static void SFX(output_tiles)(const wino_job *job, const tile_run *runs,
                                     size_t n_runs, size_t o, size_t row, size_t rows,
                                     size_t tb, const float *mm, float *s, float *yb,
                                     float *rowbuf)
{
    const winograd_conv *wc = job->wc;
    size_t m = job->m, alpha = m + 2, pitch = job->tb_max;
    size_t xi_stride = rows * tb;
    const float *mo = mm + row * tb;
    /* A^T across each row of M: s[i][q] */
    for (size_t i = 0; i < alpha; i++) {
        const float *r0 = mo + i * alpha * xi_stride;
        float *si = s + i * m * pitch;
        if (m == 4)
            SFX(at6)(r0, r0 + xi_stride, r0 + 2 * xi_stride, r0 + 3 * xi_stride,
                     r0 + 4 * xi_stride, r0 + 5 * xi_stride, si, si + pitch, si + 2 * pitch,
                     si + 3 * pitch, tb);
        else
            SFX(at4)(r0, r0 + xi_stride, r0 + 2 * xi_stride, r0 + 3 * xi_stride, si, si + pitch,
                     tb);
    }
    /* A^T down the columns: yb[p][q] */
    size_t sp = m * pitch;
    for (size_t q = 0; q < m; q++) {
        const float *c0 = s + q * pitch;
        float *yq = yb + q * pitch;
        if (m == 4)
            SFX(at6)(c0, c0 + sp, c0 + 2 * sp, c0 + 3 * sp, c0 + 4 * sp, c0 + 5 * sp, yq,
                     yq + sp, yq + 2 * sp, yq + 3 * sp, tb);
        else
            SFX(at4)(c0, c0 + sp, c0 + 2 * sp, c0 + 3 * sp, yq, yq + sp, tb);
    }
    float bias = wc->bias ? wc->bias[o] : 0.0f;
    size_t oh = job->oh, ow = job->ow;
    for (size_t k = 0; k < n_runs; k++) {
        const tile_run *run = &runs[k];
        size_t u0 = m * run->tx0, u1 = m * (run->tx0 + run->count);
        u1 = u1 < ow ? u1 : ow;
        for (size_t p = 0; p < m && m * run->ty + p < oh; p++) {
            SFX(interleave)(m, yb + p * sp + run->col, pitch, rowbuf, run->count);
            size_t at = ((run->n * job->cout + o) * oh + m * run->ty + p) * ow + u0;
            SFX(store_row)(rowbuf, bias, wc->residual ? wc->residual + at : NULL, &wc->epilogue,
                           wc->y + at, u1 - u0);
        }
    }
}

/* Input transform of channel groups [g0, g1) (of WINOGRAD_GROUP channels)
 * of a block's runs into V. */
TARGET static void SFX(inputs)(const wino_job *job, const tile_run *runs, size_t n_runs,
                               size_t g0, size_t g1, size_t tb, const wino_bufs *b)
{
    size_t cin = job->cin;
    /* the padding columns of tmp and the zero row are read, never written */
    memset(b->tmp, 0, (job->tmp_floats + job->zero_floats) * sizeof(float));
    /* channel groups outside, runs inside: a group's rows of V (36 x 4
     * x tb floats under F(4x4)) are then completed while they are in L1,
     * where run by run each run's piece of a line came back from L2 */
    for (size_t gi = g0; gi < g1; gi++) {
        size_t c = gi * WINOGRAD_GROUP;
        for (size_t k = 0; k < n_runs; k++)
            SFX(input_tiles)(job, &runs[k], c,
                             c + WINOGRAD_GROUP < cin ? c + WINOGRAD_GROUP : cin, tb, b->v,
                             b->tmp, b->zero);
    }
}

/* The products of output channels [o0, o1) (o0 on a sliver) over the whole
 * block, from U_xi's rows for them at u + xi * u_per, into M (those rows
 * only), then their output transforms into Y. */
TARGET static void SFX(outputs)(const wino_job *job, const tile_run *runs, size_t n_runs,
                                size_t o0, size_t o1, size_t tb, const float *u, size_t u_per,
                                const wino_bufs *b)
{
    size_t alpha = job->m + 2, alpha2 = alpha * alpha, cin = job->cin, rows = o1 - o0;
    for (size_t xi = 0; xi < alpha2; xi++) {
        const float *v = b->v + xi * cin * tb;
        float *mo = b->mm + xi * rows * tb;
#ifdef PRODUCT
        PRODUCT(u + xi * u_per, v, mo, o1 - o0, cin, tb);
#else
        SFX(product)(u + xi * u_per, v, mo, o1 - o0, cin, tb);
#endif
    }
    for (size_t o = o0; o < o1; o++)
        SFX(output_tiles)(job, runs, n_runs, o, o - o0, rows, tb, b->mm, b->s, b->yb,
                          b->rowbuf);
}

/* G (F(2x2): 4 x 3, F(4x4): 6 x 3) on the column (*x0, *x1, *x2), each a
 * sliver of output channels, into out[0 .. alpha-1]. (Vectors by address:
 * the portable copy may not pass them in registers.) */
TARGET static inline void SFX(g4_col)(const wino_v8 *x0, const wino_v8 *x1, const wino_v8 *x2,
                                      wino_v8 *out)
{
    wino_v8 e = *x0 + *x2;
    out[0] = *x0;
    out[1] = (e + *x1) * 0.5f;
    out[2] = (e - *x1) * 0.5f;
    out[3] = *x2;
}

TARGET static inline void SFX(g6_col)(const wino_v8 *x0, const wino_v8 *x1, const wino_v8 *x2,
                                      wino_v8 *out)
{
    wino_v8 e = *x0 + *x2, f = *x0 * (1.0f / 24) + *x2 * (1.0f / 6), h = *x1 * (1.0f / 12);
    out[0] = *x0 * 0.25f;
    out[1] = (e + *x1) * (-1.0f / 6);
    out[2] = (e - *x1) * (-1.0f / 6);
    out[3] = f + h;
    out[4] = f - h;
    out[5] = *x2;
}

/* U = G g G^T of one input channel for a sliver of output channels: g[tap]
 * holds the sliver's 9 taps; U_xi's WINOGRAD_MR floats go to u + xi * per.
 * In vectors of the sliver throughout: a round trip through an array made
 * the compiler read two taps' stores as one wide load, which store
 * forwarding cannot serve (most of the transform's time). */
TARGET static inline void SFX(filter_point)(size_t alpha, const wino_v8 *g, float *u, size_t per)
{
    wino_v8 col[3][6], row[6];
    for (size_t l = 0; l < 3; l++) {
        if (alpha == 6)
            SFX(g6_col)(&g[l], &g[3 + l], &g[6 + l], col[l]);
        else
            SFX(g4_col)(&g[l], &g[3 + l], &g[6 + l], col[l]);
    }
    for (size_t a = 0; a < alpha; a++) {
        if (alpha == 6)
            SFX(g6_col)(&col[0][a], &col[1][a], &col[2][a], row);
        else
            SFX(g4_col)(&col[0][a], &col[1][a], &col[2][a], row);
        for (size_t bb = 0; bb < alpha; bb++)
            memcpy(u + (a * alpha + bb) * per, &row[bb], sizeof(wino_v8));
    }
}

/* Output channels [o0, o1) (o0 on a sliver) of gemm_w transformed into
 * winograd_pack's sliver layout at u, U_xi at u + xi * job->u_per.
 * gemm_pack_a's layout: K (= Cin x 9) in panels of GEMM_PACK_KC columns,
 * each panel a run of gemm_mr-row slivers stored column by column, so one
 * row's taps sit gemm_mr floats apart inside a panel. */
TARGET static void SFX(filters)(const wino_job *job, size_t o0, size_t o1, float *u)
{
    size_t cin = job->cin, k = cin * 9, mr = job->gemm_mr, mpad = job->gemm_mpad;
    size_t alpha = job->m + 2, per = job->u_per;
    const float *gw = job->wc->gemm_w;
    for (size_t s0 = o0; s0 < o1; s0 += WINOGRAD_MR) {
        /* the sliver's rows [s0, s1) lie in GEMM slivers s0 / mr ..
         * (s1 - 1) / mr: lanes [lo[j], hi[j]) of a tap come from the j-th,
         * at src[j] + lane + (tap's column in the panel) * mr */
        size_t s1 = o1 - s0 < WINOGRAD_MR ? o1 : s0 + WINOGRAD_MR;
        size_t first = s0 / mr, ns = (s1 - 1) / mr - first + 1;
        const float *src[WINOGRAD_MR] = {0};
        size_t lo[WINOGRAD_MR] = {0}, hi[WINOGRAD_MR] = {0};
        wino_m8 lanes[WINOGRAD_MR] = {{0}};
        wino_v8 g[9];
        float *dst = u + (s0 - o0) * cin;
        size_t c = 0, tap = 0;
        for (size_t p0 = 0; p0 < k; p0 += GEMM_PACK_KC) {
            size_t kc = k - p0 < GEMM_PACK_KC ? k - p0 : GEMM_PACK_KC;
            for (size_t j = 0; j < ns; j++) {
                size_t sg = first + j, r0 = sg * mr, r1 = r0 + mr;
                lo[j] = r0 > s0 ? r0 - s0 : 0;
                hi[j] = (r1 < s1 ? r1 : s1) - s0;
                /* all ones on lanes [lo[j], hi[j]) */
                lanes[j] = (wino_iota >= (int)lo[j]) & (wino_iota < (int)hi[j]);
                /* lane r (row s0 + r) sits at row s0 + r - r0 of sliver
                 * sg; r0 - s0 < WINOGRAD_MR floats before it is the
                 * previous sliver of the same panel */
                src[j] = gw + p0 * mpad + sg * mr * kc + ((ptrdiff_t)s0 - (ptrdiff_t)r0);
            }
            /* the panel's columns in order, a channel's 9 taps at a time
             * (a channel may straddle two panels) */
            for (size_t q = 0; q < kc; q++) {
                size_t at = q * mr;
#ifdef GATHER_TAP
                /* two GEMM slivers (mr = 6) with their pointers and masks
                 * in registers */
                g[tap] = ns == 2 ? GATHER_TAP2(src[0] + at, src[1] + at, lanes[0], lanes[1])
                                 : GATHER_TAP(src, lanes, ns, at);
#else
                (void)lanes;
                float gt[WINOGRAD_MR] = {0};
                for (size_t j = 0; j < ns; j++)
                    for (size_t r = lo[j]; r < hi[j]; r++)
                        gt[r] = src[j][at + r];
                memcpy(&g[tap], gt, sizeof(gt));
#endif
                if (++tap < 9)
                    continue;
                if (alpha == 6)
                    SFX(filter_point)(6, g, dst + c * WINOGRAD_MR, per);
                else
                    SFX(filter_point)(4, g, dst + c * WINOGRAD_MR, per);
                tap = 0;
                c++;
            }
        }
    }
}

/* One block of the tile plan: tiles [f0, f1) of the whole batch, on one
 * lane, over the filters packed at load. */
TARGET static void SFX(run_block)(const wino_job *job, size_t f0, size_t f1, const wino_bufs *b)
{
    size_t n_runs = block_runs(job, f0, f1, b->runs);
    SFX(inputs)(job, b->runs, n_runs, 0, job->groups, f1 - f0, b);
    SFX(outputs)(job, b->runs, n_runs, 0, job->cout, f1 - f0, job->wc->packed_w,
                 job->packed_per, b);
}
