/*
 * depthwise_body.h — the one body of the vector depthwise kernels, included
 * by depthwise.c once per ISA with these defined: VEC and MASK (the vector
 * and lane-mask types), LANES, TARGET (the function attribute), FN(name)
 * (the ISA's prefix), and V_SET1, V_ZERO, V_LOAD, V_LOADM (masked: lanes
 * outside the mask read 0 and do not fault), V_STORE, V_STOREM, V_ADD,
 * V_FMA(a, b, acc), V_CLAMP(v, lo, hi) (NaN passes), V_EVEN / V_ODD (the
 * even / odd lanes of two consecutive vectors), MASK_ALL and MASK_LANES(lo,
 * hi) (lanes lo <= e < hi); it undefines them at its end. See depthwise.c
 * for the method.
 */

/* The masks of the block at column ow0: per kernel column, the lanes of the
 * one (stride 1) or two (stride 2) vectors it loads that fall inside the
 * input row, and the lanes of the output row. */
static inline TARGET __attribute__((always_inline)) void
FN(block_masks)(const plane_shape *s, int64_t ow0, const int64_t kw_n, const int64_t sw,
                const int64_t dw, MASK *m0, MASK *m1, MASK *store)
{
    for (int64_t kw = 0; kw < kw_n; kw++) {
        int64_t start = ow0 * sw - s->pw + kw * dw;
        m0[kw] = MASK_LANES(-start, s->iw - start);
        if (sw != 1)
            m1[kw] = MASK_LANES(-start - LANES, s->iw - start - LANES);
    }
    *store = MASK_LANES(0, s->ow - ow0);
}

/* One vector of outputs at column ow0 of an output row. `rows` holds the
 * input row each kernel row reads, NULL above or below the image. A full
 * block has all its outputs inside the row and every load inside the input
 * row, so it needs no masks; the others (the row's edges, and every block of
 * a row narrower than a vector) mask each load to the input columns that
 * exist. */
static inline TARGET __attribute__((always_inline)) void
FN(block)(const plane_shape *s, const float *const *rows, const VEC *wv, const float *w,
          VEC bias, const float *res_row, const kernel_epilogue *e, VEC lo, VEC hi, float *y_row,
          int64_t ow0, const MASK *m0, const MASK *m1, MASK store, const int64_t kh_n,
          const int64_t kw_n, const int64_t sw, const int64_t dw, const bool full)
{
    VEC acc = bias;
    if (res_row)
        acc = V_ADD(acc, full ? V_LOAD(res_row + ow0) : V_LOADM(res_row + ow0, store));
    for (int64_t kh = 0; kh < kh_n; kh++) {
        const float *xr = rows[kh];
        if (!xr)
            continue;
        VEC next = V_ZERO;
        for (int64_t kw = 0; kw < kw_n; kw++) {
            VEC wk = wv ? wv[kh * kw_n + kw] : V_SET1(w[kh * kw_n + kw]);
            const float *p = xr + (ow0 * sw - s->pw + kw * dw);
            VEC v;
            if (sw == 1) {
                v = full ? V_LOAD(p) : V_LOADM(p, m0[kw]);
            } else if (dw == 1 && (kw & 1)) {
                v = next; /* the odd lanes of the previous tap's pair */
            } else {
                VEC a = full ? V_LOAD(p) : V_LOADM(p, m0[kw]);
                VEC b = full ? V_LOAD(p + LANES) : V_LOADM(p + LANES, m1[kw]);
                v = V_EVEN(a, b);
                if (dw == 1 && kw + 1 < kw_n)
                    next = V_ODD(a, b);
            }
            acc = V_FMA(v, wk, acc);
        }
    }
    if (e->clamp)
        acc = V_CLAMP(acc, lo, hi);
    if (full)
        V_STORE(y_row + ow0, acc);
    else
        V_STOREM(y_row + ow0, store, acc);
}

/* Two consecutive output rows at once when the row stride and dilation are
 * 1: they read kh_n + 1 input rows (rows[0..kh_n), rows[1..kh_n]), so each
 * input vector loaded serves both rows' taps, and the two sums are
 * independent chains for the FMA units. */
static inline TARGET __attribute__((always_inline)) void
FN(block2)(const plane_shape *s, const float *const *rows, const VEC *wv, const float *w,
           VEC bias, const float *res_row, const kernel_epilogue *e, VEC lo, VEC hi,
           float *y_row, int64_t ow0, const MASK *m0, const MASK *m1, MASK store,
           const int64_t kh_n, const int64_t kw_n, const int64_t sw, const int64_t dw,
           const bool full)
{
    VEC acc0 = bias, acc1 = bias;
    if (res_row) {
        const float *r1 = res_row + s->ow;
        acc0 = V_ADD(acc0, full ? V_LOAD(res_row + ow0) : V_LOADM(res_row + ow0, store));
        acc1 = V_ADD(acc1, full ? V_LOAD(r1 + ow0) : V_LOADM(r1 + ow0, store));
    }
    for (int64_t r = 0; r <= kh_n; r++) {
        const float *xr = rows[r];
        if (!xr)
            continue;
        VEC next = V_ZERO;
        for (int64_t kw = 0; kw < kw_n; kw++) {
            const float *p = xr + (ow0 * sw - s->pw + kw * dw);
            VEC v;
            if (sw == 1) {
                v = full ? V_LOAD(p) : V_LOADM(p, m0[kw]);
            } else if (dw == 1 && (kw & 1)) {
                v = next;
            } else {
                VEC a = full ? V_LOAD(p) : V_LOADM(p, m0[kw]);
                VEC b = full ? V_LOAD(p + LANES) : V_LOADM(p + LANES, m1[kw]);
                v = V_EVEN(a, b);
                if (dw == 1 && kw + 1 < kw_n)
                    next = V_ODD(a, b);
            }
            if (r < kh_n)
                acc0 = V_FMA(v, wv ? wv[r * kw_n + kw] : V_SET1(w[r * kw_n + kw]), acc0);
            if (r >= 1)
                acc1 = V_FMA(v, wv ? wv[(r - 1) * kw_n + kw] : V_SET1(w[(r - 1) * kw_n + kw]),
                             acc1);
        }
    }
    if (e->clamp) {
        acc0 = V_CLAMP(acc0, lo, hi);
        acc1 = V_CLAMP(acc1, lo, hi);
    }
    if (full) {
        V_STORE(y_row + ow0, acc0);
        V_STORE(y_row + s->ow + ow0, acc1);
    } else {
        V_STOREM(y_row + ow0, store, acc0);
        V_STOREM(y_row + s->ow + ow0, store, acc1);
    }
}

/* GROUP_ROWS consecutive output rows at once at row stride rs (1 or 2) and
 * row dilation 1: output row g reads input rows rs * g .. rs * g + kh_n - 1
 * of `rows`, so neighbours share input rows (3x3, 4 output rows: 6 input
 * rows at stride 1 where two row pairs load 8, 9 at stride 2 where one row
 * at a time loads 12), and the rows' sums are independent chains. One row
 * at a time waited on its own chain of 9 FMAs behind the loads and
 * permutes (28x28 x 192 stride 2: ~50 cycles an output row). The loops
 * carry unroll pragmas: without them GCC kept the row and tap loops and
 * the weights on the stack, and the group gained nothing. */
static inline TARGET __attribute__((always_inline)) void
FN(block_rows)(const plane_shape *s, const float *const *rows, const VEC *wv, const float *w,
               VEC bias, const float *res_row, const kernel_epilogue *e, VEC lo, VEC hi,
               float *y_row, int64_t ow0, const MASK *m0, const MASK *m1, MASK store,
               const int64_t kh_n, const int64_t kw_n, const int64_t sw, const bool full,
               const int64_t rs)
{
    VEC acc[GROUP_ROWS];
#pragma GCC unroll 8
    for (int g = 0; g < GROUP_ROWS; g++) {
        acc[g] = bias;
        if (res_row) {
            const float *r = res_row + g * s->ow + ow0;
            acc[g] = V_ADD(acc[g], full ? V_LOAD(r) : V_LOADM(r, store));
        }
    }
#pragma GCC unroll 16
    for (int64_t t = 0; t < rs * (GROUP_ROWS - 1) + kh_n; t++) {
        const float *xr = rows[t];
        if (!xr)
            continue;
        VEC v[VECTOR_MAX_KW];
#pragma GCC unroll 16
        for (int64_t kw = 0; kw < kw_n; kw++) {
            const float *p = xr + (ow0 * sw - s->pw + kw);
            if (sw == 1) {
                v[kw] = full ? V_LOAD(p) : V_LOADM(p, m0[kw]);
            } else if (kw & 1) {
                continue; /* the odd lanes of the previous tap's pair, below */
            } else {
                VEC a = full ? V_LOAD(p) : V_LOADM(p, m0[kw]);
                VEC b = full ? V_LOAD(p + LANES) : V_LOADM(p + LANES, m1[kw]);
                v[kw] = V_EVEN(a, b);
                if (kw + 1 < kw_n)
                    v[kw + 1] = V_ODD(a, b);
            }
        }
#pragma GCC unroll 8
        for (int g = 0; g < GROUP_ROWS; g++) {
            int64_t i = t - rs * g;
            if (i < 0 || i >= kh_n)
                continue;
#pragma GCC unroll 16
            for (int64_t kw = 0; kw < kw_n; kw++)
                acc[g] = V_FMA(v[kw], wv ? wv[i * kw_n + kw] : V_SET1(w[i * kw_n + kw]), acc[g]);
        }
    }
#pragma GCC unroll 8
    for (int g = 0; g < GROUP_ROWS; g++) {
        VEC out = e->clamp ? V_CLAMP(acc[g], lo, hi) : acc[g];
        if (full)
            V_STORE(y_row + g * s->ow + ow0, out);
        else
            V_STOREM(y_row + g * s->ow + ow0, store, out);
    }
}

/* The plane's output rows in groups of GROUP_ROWS at row stride rs, every
 * block of each; returns the first row left (fewer than a group). */
static inline TARGET __attribute__((always_inline)) int64_t
FN(row_groups)(const plane_shape *s, const float *x, const VEC *wv, const bool hoist,
               const float *w, VEC biasv, const float *res, const kernel_epilogue *e, VEC lo,
               VEC hi, float *y, MASK (*table_m0)[EDGE_TABLE_KW],
               MASK (*table_m1)[EDGE_TABLE_KW], const MASK *table_store, const bool table,
               const int64_t kh_n, const int64_t kw_n, const int64_t sw, const int64_t rs)
{
    const int64_t reach = (kw_n - 1) + (sw == 1 ? LANES : 2 * LANES);
    const int64_t blocks = (s->ow + LANES - 1) / LANES;
    const float *rows[VECTOR_MAX_KH + 2 * GROUP_ROWS];
    int64_t oh = 0;
    for (; oh + GROUP_ROWS <= s->oh; oh += GROUP_ROWS) {
        for (int64_t r = 0; r < rs * (GROUP_ROWS - 1) + kh_n; r++) {
            int64_t ih = rs * oh - s->ph + r;
            rows[r] = ih >= 0 && ih < s->ih ? x + ih * s->iw : NULL;
        }
        const float *res_row = res ? res + oh * s->ow : NULL;
        float *y_row = y + oh * s->ow;
        for (int64_t bi = 0; bi < blocks; bi++) {
            int64_t ow0 = bi * LANES, first = ow0 * sw - s->pw;
            if (first >= 0 && first + reach <= s->iw && ow0 + LANES <= s->ow) {
                FN(block_rows)(s, rows, hoist ? wv : NULL, w, biasv, res_row, e, lo, hi, y_row,
                               ow0, NULL, NULL, MASK_ALL, kh_n, kw_n, sw, true, rs);
            } else if (table) {
                FN(block_rows)(s, rows, hoist ? wv : NULL, w, biasv, res_row, e, lo, hi, y_row,
                               ow0, table_m0[bi], table_m1[bi], table_store[bi], kh_n, kw_n,
                               sw, false, rs);
            } else {
                MASK m0[VECTOR_MAX_KW], m1[VECTOR_MAX_KW], store;
                FN(block_masks)(s, ow0, kw_n, sw, 1, m0, m1, &store);
                FN(block_rows)(s, rows, hoist ? wv : NULL, w, biasv, res_row, e, lo, hi, y_row,
                               ow0, m0, m1, store, kh_n, kw_n, sw, false, rs);
            }
        }
    }
    return oh;
}

/* A plane, row by row. kh_n, kw_n, sw and dw are constants in the 3x3
 * instantiations, so the tap loops unroll and the nine weights stay in
 * registers. With row_groups (those instantiations, column dilation 1) the
 * rows go in groups of GROUP_ROWS first at row dilation 1; the rest in
 * pairs (stride 1) or one at a time. */
static inline TARGET __attribute__((always_inline)) void
FN(body)(const plane_shape *s, const float *x, const float *w, float bias, const float *res,
         const kernel_epilogue *e, float *y, const int64_t kh_n, const int64_t kw_n,
         const int64_t sw, const int64_t dw, const bool row_groups)
{
    VEC wv[9];
    bool hoist = kh_n * kw_n <= 9;
    for (int64_t t = 0; hoist && t < kh_n * kw_n; t++)
        wv[t] = V_SET1(w[t]);
    const VEC lo = V_SET1(e->lo), hi = V_SET1(e->hi), biasv = V_SET1(bias);
    /* the columns a block reads: from ow0 * sw - pw, this many */
    const int64_t reach = (kw_n - 1) * dw + (sw == 1 ? LANES : 2 * LANES);
    /* a row has at most two edge blocks when it is wider than a vector, and
     * its blocks' masks are the same in every row: narrow rows (MobileNet's
     * 7 and 14 columns) take theirs from this table */
    MASK table_m0[EDGE_TABLE_BLOCKS][EDGE_TABLE_KW], table_m1[EDGE_TABLE_BLOCKS][EDGE_TABLE_KW];
    MASK table_store[EDGE_TABLE_BLOCKS];
    int64_t blocks = (s->ow + LANES - 1) / LANES;
    bool table = blocks <= EDGE_TABLE_BLOCKS && kw_n <= EDGE_TABLE_KW;
    for (int64_t bi = 0; table && bi < blocks; bi++)
        FN(block_masks)(s, bi * LANES, kw_n, sw, dw, table_m0[bi], table_m1[bi],
                        &table_store[bi]);
    const float *rows[VECTOR_MAX_KH + 1];
    int64_t oh = 0;
    /* a group of two rows at stride 1 is block2's work again (AVX2: 3-4%
     * slower than block2, bench_depthwise) */
    if (row_groups && GROUP_ROWS > 2 && s->dh == 1 && s->sh == 1)
        oh = FN(row_groups)(s, x, wv, hoist, w, biasv, res, e, lo, hi, y, table_m0, table_m1,
                            table_store, table, kh_n, kw_n, sw, 1);
    else if (row_groups && s->dh == 1 && s->sh == 2)
        oh = FN(row_groups)(s, x, wv, hoist, w, biasv, res, e, lo, hi, y, table_m0, table_m1,
                            table_store, table, kh_n, kw_n, sw, 2);
    for (; s->sh == 1 && s->dh == 1 && oh + 1 < s->oh; oh += 2) {
        for (int64_t r = 0; r <= kh_n; r++) {
            int64_t ih = oh - s->ph + r;
            rows[r] = ih >= 0 && ih < s->ih ? x + ih * s->iw : NULL;
        }
        const float *res_row = res ? res + oh * s->ow : NULL;
        float *y_row = y + oh * s->ow;
        for (int64_t bi = 0; bi < blocks; bi++) {
            int64_t ow0 = bi * LANES, first = ow0 * sw - s->pw;
            if (first >= 0 && first + reach <= s->iw && ow0 + LANES <= s->ow) {
                FN(block2)(s, rows, hoist ? wv : NULL, w, biasv, res_row, e, lo, hi, y_row, ow0,
                           NULL, NULL, MASK_ALL, kh_n, kw_n, sw, dw, true);
            } else if (table) {
                FN(block2)(s, rows, hoist ? wv : NULL, w, biasv, res_row, e, lo, hi, y_row, ow0,
                           table_m0[bi], table_m1[bi], table_store[bi], kh_n, kw_n, sw, dw,
                           false);
            } else {
                MASK m0[VECTOR_MAX_KW], m1[VECTOR_MAX_KW], store;
                FN(block_masks)(s, ow0, kw_n, sw, dw, m0, m1, &store);
                FN(block2)(s, rows, hoist ? wv : NULL, w, biasv, res_row, e, lo, hi, y_row, ow0,
                           m0, m1, store, kh_n, kw_n, sw, dw, false);
            }
        }
    }
    for (; oh < s->oh; oh++) {
        for (int64_t kh = 0; kh < kh_n; kh++) {
            int64_t ih = oh * s->sh - s->ph + kh * s->dh;
            rows[kh] = ih >= 0 && ih < s->ih ? x + ih * s->iw : NULL;
        }
        const float *res_row = res ? res + oh * s->ow : NULL;
        float *y_row = y + oh * s->ow;
        for (int64_t bi = 0; bi < blocks; bi++) {
            int64_t ow0 = bi * LANES, first = ow0 * sw - s->pw;
            if (first >= 0 && first + reach <= s->iw && ow0 + LANES <= s->ow) {
                FN(block)(s, rows, hoist ? wv : NULL, w, biasv, res_row, e, lo, hi, y_row, ow0,
                          NULL, NULL, MASK_ALL, kh_n, kw_n, sw, dw, true);
            } else if (table) {
                FN(block)(s, rows, hoist ? wv : NULL, w, biasv, res_row, e, lo, hi, y_row, ow0,
                          table_m0[bi], table_m1[bi], table_store[bi], kh_n, kw_n, sw, dw, false);
            } else {
                MASK m0[VECTOR_MAX_KW], m1[VECTOR_MAX_KW], store;
                FN(block_masks)(s, ow0, kw_n, sw, dw, m0, m1, &store);
                FN(block)(s, rows, hoist ? wv : NULL, w, biasv, res_row, e, lo, hi, y_row, ow0,
                          m0, m1, store, kh_n, kw_n, sw, dw, false);
            }
        }
    }
}

static TARGET void FN(plane)(const plane_shape *s, const float *x, const float *w, float bias,
                             const float *res, const kernel_epilogue *e, float *y)
{
    if (s->kh == 3 && s->kw == 3 && s->dw == 1 && s->sw == 1)
        FN(body)(s, x, w, bias, res, e, y, 3, 3, 1, 1, true);
    else if (s->kh == 3 && s->kw == 3 && s->dw == 1)
        FN(body)(s, x, w, bias, res, e, y, 3, 3, 2, 1, true);
    else if (s->sw == 1)
        FN(body)(s, x, w, bias, res, e, y, s->kh, s->kw, 1, s->dw, false);
    else
        FN(body)(s, x, w, bias, res, e, y, s->kh, s->kw, 2, s->dw, false);
}

/* each includer defines these afresh for its instruction set */
#undef VEC
#undef MASK
#undef LANES
#undef TARGET
#undef FN
#undef GROUP_ROWS
#undef V_SET1
#undef V_ZERO
#undef V_LOAD
#undef V_LOADM
#undef V_STORE
#undef V_STOREM
#undef V_ADD
#undef V_FMA
#undef V_CLAMP
#undef V_EVEN
#undef V_ODD
#undef MASK_ALL
#undef MASK_LANES
