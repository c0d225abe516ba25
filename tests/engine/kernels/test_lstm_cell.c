/*
 * test_lstm_cell.c — kernels/lstm_cell.c against the LSTM cell in double
 * precision with libm's exp and tanh, for every GEMM kernel this CPU can run
 * (the cell follows the GEMM's instruction set): row lengths around the 8-
 * and 16-lane vectors (the tail goes through the one-lane body), biases
 * given or folded, xw given or already in the accumulator, peepholes, clip,
 * input_forget, saturated gates, h stored a second time (Y); the worst
 * error seen is printed. A NaN gate input gives NaN in c and h.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/gemm.h"
#include "kernels/lstm_cell.h"
#include "test.h"

static uint32_t random_state = 88172645u;

static float next_float(float scale)
{
    random_state ^= random_state << 13;
    random_state ^= random_state >> 17;
    random_state ^= random_state << 5;
    return ((float)(random_state >> 8) / 16777216.0f * 2.0f - 1.0f) * scale;
}

/* The activations alone are within 4e-7 relative of libm's; the cell adds
 * peephole terms to float gate sums of up to ~40 (one rounding: 2e-6 at
 * most, the portable build also rounds the product), which moves a
 * sigmoid's output by a quarter of that. */
#define ERROR_BOUND 4e-6

static double sigmoid_ref(double x) { return 1.0 / (1.0 + exp(-x)); }

static double clip_ref(double v, float clip)
{
    return clip > 0 ? fmin(fmax(v, -clip), clip) : v;
}

/* The cell of unit k in double from the same float gate sums (added in
 * float in the kernel's order, so that only the cell itself is measured);
 * *mag is the size of the terms c's sum cancels, which bounds its rounding. */
static void reference(const lstm_cell_args *a, size_t k, double *c_out, double *h_out,
                      double *mag)
{
    double g[4];
    for (int q = 0; q < 4; q++) {
        float sum = a->acc[q * a->acc_stride + k];
        if (a->xw)
            sum += a->xw[q * a->xw_stride + k];
        if (a->bias)
            sum += a->bias[q * a->xw_stride + k];
        g[q] = sum;
    }
    double c = a->c[k];
    if (a->peep_i) {
        g[0] += (double)a->peep_i[k] * c;
        g[2] += (double)a->peep_f[k] * c;
    }
    double i = sigmoid_ref(clip_ref(g[0], a->clip));
    double f = a->input_forget ? 1.0 - i : sigmoid_ref(clip_ref(g[2], a->clip));
    double ig = i * tanh(clip_ref(g[3], a->clip));
    *mag = fabs(f * c) + fabs(ig);
    c = f * c + ig;
    if (a->peep_o)
        g[1] += (double)a->peep_o[k] * c;
    double o = sigmoid_ref(clip_ref(g[1], a->clip));
    *c_out = c;
    *h_out = o * tanh(c);
}

/* One row of n units with the options given; returns the worst error of c
 * and h relative to the terms of c's sum (c near 0 is a difference of terms
 * near 1: its rounding is theirs) and to |h| plus those. */
static double check_row(size_t n, bool with_xw, bool with_bias, bool peep, float clip,
                        bool input_forget, float scale)
{
    size_t stride = n + 3; /* gates not back to back, as in a chunk of a wider layer */
    float *acc = malloc(4 * stride * sizeof(float)), *xw = malloc(4 * stride * sizeof(float));
    float *bias = malloc(4 * stride * sizeof(float)), *p = malloc(3 * n * sizeof(float));
    float *c = malloc(n * sizeof(float)), *c0 = malloc(n * sizeof(float));
    float *h = malloc(n * sizeof(float)), *h_copy = malloc(n * sizeof(float));
    for (size_t i = 0; i < 4 * stride; i++) {
        acc[i] = next_float(scale);
        xw[i] = next_float(scale);
        bias[i] = next_float(0.5f);
    }
    for (size_t i = 0; i < 3 * n; i++)
        p[i] = next_float(0.5f);
    for (size_t i = 0; i < n; i++)
        c[i] = c0[i] = next_float(2.0f);
    lstm_cell_args a = {.acc = acc, .acc_stride = stride, .xw = with_xw ? xw : NULL,
                        .bias = with_bias ? bias : NULL, .xw_stride = stride,
                        .clip = clip, .input_forget = input_forget, .c = c, .h = h};
    if (peep) {
        a.peep_i = p;
        a.peep_o = p + n;
        a.peep_f = p + 2 * n;
    }
    a.h_copy = with_xw ? h_copy : NULL; /* the second store, into Y, half the time */
    lstm_cell_f32(&a, n);
    if (with_xw)
        CHECK(memcmp(h, h_copy, n * sizeof(float)) == 0);
    double worst = 0;
    a.c = c0; /* the reference reads the state before the step */
    for (size_t k = 0; k < n; k++) {
        double want_c, want_h, mag;
        reference(&a, k, &want_c, &want_h, &mag);
        double ec = fabs(c[k] - want_c) / fmax(mag, 1e-30);
        double eh = fabs(h[k] - want_h) / fmax(fabs(want_h) + mag, 1e-30);
        worst = fmax(worst, fmax(ec, eh));
        if (!(ec <= ERROR_BOUND && eh <= ERROR_BOUND))
            fprintf(stderr, "%s n %zu unit %zu: c %.9g (want %.9g) h %.9g (want %.9g)\n",
                    gemm_kernel_name(), n, k, c[k], want_c, h[k], want_h);
    }
    free(acc);
    free(xw);
    free(bias);
    free(p);
    free(c);
    free(c0);
    free(h);
    free(h_copy);
    return worst;
}

static void test_every_path_matches_the_double_cell(void)
{
    const char *names[8];
    size_t kernels = gemm_kernel_names(names, 8);
    const char *before = gemm_kernel_name();
    static const size_t lengths[] = {1, 7, 8, 9, 15, 16, 17, 32, 40, 100};
    for (size_t ki = 0; ki < kernels && ki < 8; ki++) {
        CHECK(gemm_use_kernel(names[ki]));
        double worst = 0;
        for (size_t li = 0; li < sizeof(lengths) / sizeof(lengths[0]); li++)
            for (int form = 0; form < 32; form++) {
                /* scale 12 puts many gates in the flat tails (tanh clamped
                 * at 7.9, exp's clamp at 87 after the sums) */
                float scale = form & 16 ? 12.0f : 1.5f;
                double e = check_row(lengths[li], form & 1, form & 2, form & 4,
                                     form & 8 ? 0.8f : 0.0f, form == 5 || form == 22, scale);
                worst = fmax(worst, e);
            }
        CHECK(worst <= ERROR_BOUND);
        printf("kernel %s: worst relative error of c and h %.3g\n", names[ki], worst);
    }
    CHECK(gemm_use_kernel(before));
}

static void test_nan_gate_input_gives_nan_state(void)
{
    const char *names[8];
    size_t kernels = gemm_kernel_names(names, 8);
    const char *before = gemm_kernel_name();
    for (size_t ki = 0; ki < kernels && ki < 8; ki++) {
        CHECK(gemm_use_kernel(names[ki]));
        for (int clip = 0; clip < 2; clip++)
            for (int gate = 0; gate < 4; gate++) {
                enum { N = 19 }; /* whole vectors and a one-lane tail */
                float acc[4 * N], c[N], h[N];
                for (size_t i = 0; i < 4 * N; i++)
                    acc[i] = 0.25f;
                for (size_t i = 0; i < N; i++)
                    c[i] = 0.5f;
                acc[gate * N + 3] = NAN;
                acc[gate * N + 18] = NAN;
                lstm_cell_args a = {.acc = acc, .acc_stride = N, .xw_stride = N,
                                    .clip = clip ? 3.0f : 0.0f, .c = c, .h = h};
                lstm_cell_f32(&a, N);
                CHECK(isnan(h[3]) && isnan(h[18]));
                CHECK(!isnan(h[4]) && !isnan(c[4]) && fabsf(h[4]) < 1.0f);
                /* the output gate does not reach c */
                CHECK(gate == 1 || (isnan(c[3]) && isnan(c[18])));
            }
    }
    CHECK(gemm_use_kernel(before));
}

/* R [4H, H] packed as ops/recurrent.c packs it: by chunks of `cu` units,
 * each gate 0's units of the chunk, then gate 1's..., as one B^T operand,
 * on a 64-byte boundary as the kernels require. */
static float *pack_by_chunks(const float *r, size_t H, size_t cu, size_t *chunk_floats)
{
    size_t full = H < cu ? H : cu;
    *chunk_floats = gemm_packed_b_floats(H, 4 * full);
    size_t chunks = (H + cu - 1) / cu;
    size_t bytes = (chunks * *chunk_floats * sizeof(float) + 63) / 64 * 64;
    float *packed = aligned_alloc(64, bytes);
    memset(packed, 0, bytes);
    float *gathered = malloc(4 * full * H * sizeof(float));
    for (size_t j = 0; j < chunks; j++) {
        size_t k0 = j * cu, cw = H - k0 < cu ? H - k0 : cu;
        for (size_t q = 0; q < 4; q++)
            memcpy(gathered + q * cw * H, r + (q * H + k0) * H, cw * H * sizeof(float));
        gemm_pack_b(true, H, 4 * cw, gathered, H, packed + j * *chunk_floats);
    }
    free(gathered);
    return packed;
}

/* lstm_step_rows_f32 against the product H_prev x R^T in double followed by
 * lstm_cell_f32 (checked above against the double cell): rows 1 to 3;
 * hidden 16 (one group), 48 (a last chunk of 16 units) and 272 (R's K in
 * two packed panels, 256 + 16); peepholes, clip, biases, xw or none; both
 * group orders, which must agree to the bit. */
static double check_step(size_t rows, size_t H, int form)
{
    size_t cu = 32, chunk_floats, G = 4 * H;
    float *r = malloc(G * H * sizeof(float)), *hp = malloc(rows * H * sizeof(float));
    float *xw = malloc(rows * G * sizeof(float)), *bias = malloc(G * sizeof(float));
    float *p = malloc(3 * H * sizeof(float)), *acc = malloc(rows * G * sizeof(float));
    float *c = malloc(rows * H * sizeof(float));
    float *c_rev = malloc(rows * H * sizeof(float)), *want_c = malloc(rows * H * sizeof(float));
    float *h = malloc(rows * H * sizeof(float)), *h_rev = malloc(rows * H * sizeof(float));
    float *want_h = malloc(rows * H * sizeof(float));
    float rscale = 2.0f / sqrtf((float)H);
    for (size_t i = 0; i < G * H; i++)
        r[i] = next_float(rscale);
    for (size_t i = 0; i < rows * H; i++) {
        hp[i] = next_float(1.0f);
        c[i] = c_rev[i] = want_c[i] = next_float(2.0f);
    }
    for (size_t i = 0; i < rows * G; i++)
        xw[i] = next_float(1.0f);
    for (size_t i = 0; i < G; i++)
        bias[i] = next_float(0.5f);
    for (size_t i = 0; i < 3 * H; i++)
        p[i] = next_float(0.5f);
    bool with_xw = form & 1, with_bias = form & 2, peep = form & 4;
    float clip = form & 8 ? 0.9f : 0.0f;
    /* the reference: the product in double, then the cell */
    for (size_t b = 0; b < rows; b++) {
        for (size_t col = 0; col < G; col++) {
            double sum = 0;
            for (size_t k = 0; k < H; k++)
                sum += (double)hp[b * H + k] * r[col * H + k];
            acc[b * G + col] = (float)sum;
        }
        lstm_cell_args a = {.acc = acc + b * G, .acc_stride = H,
                            .xw = with_xw ? xw + b * G : NULL, .bias = with_bias ? bias : NULL,
                            .xw_stride = H, .clip = clip, .c = want_c + b * H,
                            .h = want_h + b * H};
        if (peep) {
            a.peep_i = p;
            a.peep_o = p + H;
            a.peep_f = p + 2 * H;
        }
        lstm_cell_f32(&a, H);
    }
    float *packed = pack_by_chunks(r, H, cu, &chunk_floats);
    lstm_step_args s = {.rows = rows, .hidden = H, .h_prev = hp, .h_next = h, .c = c,
                        .bias = with_bias ? bias : NULL, .packed_r = packed,
                        .chunk_units = cu, .chunk_floats = chunk_floats, .clip = clip};
    for (size_t b = 0; b < rows; b++)
        s.xw[b] = with_xw ? xw + b * G : NULL;
    if (peep) {
        s.peep_i = p;
        s.peep_o = p + H;
        s.peep_f = p + 2 * H;
    }
    lstm_step_rows_f32(&s);
    s.c = c_rev;
    s.h_next = h_rev;
    s.reverse = true;
    lstm_step_rows_f32(&s);
    CHECK(memcmp(c, c_rev, rows * H * sizeof(float)) == 0);
    CHECK(memcmp(h, h_rev, rows * H * sizeof(float)) == 0);
    /* the float product's rounding (H terms of up to 2 / sqrt(H)) moves a
     * gate by a few 1e-7 (worst seen 5e-7); the cell passes that on with a
     * slope below 1 */
    double worst = 0;
    for (size_t i = 0; i < rows * H; i++) {
        double e = fmax(fabs(c[i] - want_c[i]) / (1.0 + fabs(want_c[i])),
                        fabs(h[i] - want_h[i]) / (1.0 + fabs(want_h[i])));
        if (!(e <= ERROR_BOUND))
            fprintf(stderr, "%s rows %zu hidden %zu form %d at %zu: c %.9g (want %.9g) "
                    "h %.9g (want %.9g)\n", gemm_kernel_name(), rows, H, form, i, c[i],
                    want_c[i], h[i], want_h[i]);
        worst = fmax(worst, e);
    }
    float *owned[] = {r, hp, xw, bias, p, acc, c, c_rev, want_c, h, h_rev, want_h, packed};
    for (size_t i = 0; i < sizeof(owned) / sizeof(owned[0]); i++)
        free(owned[i]);
    return worst;
}

static void test_fused_step_matches_the_product_then_the_cell(void)
{
    const char *names[8];
    size_t kernels = gemm_kernel_names(names, 8);
    const char *before = gemm_kernel_name();
    static const size_t hiddens[] = {16, 48, 272};
    for (size_t ki = 0; ki < kernels && ki < 8; ki++) {
        CHECK(gemm_use_kernel(names[ki]));
        double worst = 0;
        for (size_t rows = 1; rows <= 3; rows++)
            for (size_t hi = 0; hi < sizeof(hiddens) / sizeof(hiddens[0]); hi++)
                for (int form = 0; form < 16; form++)
                    worst = fmax(worst, check_step(rows, hiddens[hi], form));
        CHECK(worst <= ERROR_BOUND);
        printf("kernel %s: fused step, worst error of c and h %.3g\n", names[ki], worst);
    }
    CHECK(gemm_use_kernel(before));
}

/* lstm_partial_product_f32 against the double sum of the same terms, added
 * to sums already there, for every GEMM kernel: rows 1 to 13 (the AVX-512
 * tile's 8 and a ragged rest), hidden 64 (whole chunks), 34 (a last chunk
 * of 2 units: 8 columns, a ragged sliver) and 272 (R's K in two packed
 * panels, ranges across the seam), ranges empty, whole, partial and two or
 * three of them in one pass (a lane's own units, then the others'); columns
 * past n and rows past `rows` must stay as they were. */
static void test_partial_product_matches_the_double_sum(void)
{
    const char *names[8];
    size_t kernels = gemm_kernel_names(names, 8);
    const char *before = gemm_kernel_name();
    static const size_t hiddens[] = {64, 34, 272};
    for (size_t ki = 0; ki < kernels && ki < 8; ki++) {
        CHECK(gemm_use_kernel(names[ki]));
        double worst = 0;
        for (size_t hi = 0; hi < sizeof(hiddens) / sizeof(hiddens[0]); hi++) {
            size_t H = hiddens[hi], cu = 32, chunk_floats, G = 4 * H;
            float *r = malloc(G * H * sizeof(float));
            for (size_t i = 0; i < G * H; i++)
                r[i] = next_float(1.0f);
            float *packed = pack_by_chunks(r, H, cu, &chunk_floats);
            /* one range, or a lane's own units first and then the others' */
            size_t ranges[][LSTM_PARTIAL_RANGES][2] = {
                {{0, H}}, {{0, 0}}, {{H / 2, H / 2}}, {{0, H / 2}}, {{H / 2, H}}, {{1, H - 3}},
                {{H > 256 ? 250 : 5, H > 256 ? 262 : 7}}, {{H / 2, H}, {0, H / 2}},
                {{H / 4, H / 2}, {H / 2, H}, {0, H / 4}}, {{0, 0}, {H - 1, H}, {0, 1}}};
            for (size_t rows = 1; rows <= 13; rows++) {
                size_t ld = 4 * cu + 5; /* a wider row than the chunk's, as xw's rows */
                float *hp = malloc(rows * H * sizeof(float));
                float *sums = malloc((rows + 1) * ld * sizeof(float));
                float *start = malloc((rows + 1) * ld * sizeof(float));
                for (size_t i = 0; i < rows * H; i++)
                    hp[i] = next_float(1.0f);
                for (size_t j = 0; j * cu < H; j++) {
                    size_t cw = H - j * cu < cu ? H - j * cu : cu, n = 4 * cw;
                    for (size_t ri = 0; ri < sizeof(ranges) / sizeof(ranges[0]); ri++) {
                        for (size_t i = 0; i < (rows + 1) * ld; i++)
                            sums[i] = start[i] = next_float(4.0f);
                        lstm_partial_args a = {.rows = rows, .hidden = H, .n = n, .h_prev = hp,
                                               .packed_chunk = packed + j * chunk_floats,
                                               .sums = sums, .ld = ld};
                        memcpy(a.units, ranges[ri], sizeof(a.units));
                        lstm_partial_product_f32(&a);
                        for (size_t b = 0; b <= rows; b++)
                            for (size_t col = 0; col < ld; col++) {
                                size_t at = b * ld + col;
                                if (b == rows || col >= n) {
                                    CHECK(sums[at] == start[at]);
                                    continue;
                                }
                                /* column col of the chunk: gate col / cw, unit j cu + col % cw */
                                const float *rrow = r + ((col / cw) * H + j * cu + col % cw) * H;
                                double want = start[at], mag = fabs(start[at]);
                                for (int q = 0; q < LSTM_PARTIAL_RANGES; q++)
                                    for (size_t k = a.units[q][0]; k < a.units[q][1]; k++) {
                                        want += (double)hp[b * H + k] * rrow[k];
                                        mag += fabs((double)hp[b * H + k] * rrow[k]);
                                    }
                                double e = fabs(sums[at] - want) / (mag + 1e-30);
                                if (!(e <= 1e-6))
                                    fprintf(stderr, "%s hidden %zu rows %zu chunk %zu ranges "
                                            "%zu at %zu,%zu: %.9g (want %.9g)\n",
                                            names[ki], H, rows, j, ri, b, col, sums[at], want);
                                worst = fmax(worst, e);
                            }
                    }
                }
                free(hp);
                free(sums);
                free(start);
            }
            free(r);
            free(packed);
        }
        CHECK(worst <= 1e-6);
        printf("kernel %s: partial product, worst error %.3g of the terms' size\n", names[ki],
               worst);
    }
    CHECK(gemm_use_kernel(before));
}

int main(void)
{
    RUN(test_every_path_matches_the_double_cell);
    RUN(test_nan_gate_input_gives_nan_state);
    RUN(test_fused_step_matches_the_product_then_the_cell);
    RUN(test_partial_product_matches_the_double_sum);
    TEST_MAIN_END();
}
