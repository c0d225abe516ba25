/*
 * ops/gemm.c — the matrix-product operators: Gemm, MatMul (numpy matmul:
 * 1-D promotion and batch broadcasting), MatMulInteger and QLinearMatMul.
 *
 * Every float product goes through kernels/gemm.h. When B is an initializer
 * (the weights of an MLP layer) prepare packs it once into the kernel's
 * layout, so run() streams it straight from the packed copy; float16 and
 * bfloat16 are computed in float. Double uses the kernel's double loop nest
 * and the integer types one wrapping loop nest instantiated per type. The
 * quantized operators subtract zero points into int32 operands and reuse the
 * int32 instance. A MatMul the fusion pass has given attention's whole
 * Softmax(Q x K^T) x V (fusable.h) computes it a block of query rows at a
 * time, the scores never leaving the cache.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/epilogue.h"
#include "../kernels/gemm.h"
#include "../kernels/vmath.h"
#include "../op.h"
#include "fusable.h"

/* ---- shared helpers ------------------------------------------------------ */

static bool is_float_family(ifd_dtype d)
{
    return d == IFD_FLOAT || d == IFD_FLOAT16 || d == IFD_BFLOAT16;
}

/* The dtypes of Gemm and MatMul: floats from version 1, 32/64-bit integers
 * from 9, bfloat16 from 13. */
static bool product_dtype_ok(ifd_dtype d, int version)
{
    switch (d) {
    case IFD_FLOAT16: case IFD_FLOAT: case IFD_DOUBLE: return true;
    case IFD_INT32: case IFD_INT64: case IFD_UINT32: case IFD_UINT64: return version >= 9;
    case IFD_BFLOAT16: return version >= 13;
    default: return false;
    }
}

static void to_floats(ifd_dtype dtype, const void *src, float *dst, size_t count)
{
    const uint16_t *s = src;
    if (dtype == IFD_FLOAT16)
        for (size_t i = 0; i < count; i++)
            dst[i] = half_to_float(s[i]);
    else if (dtype == IFD_BFLOAT16)
        for (size_t i = 0; i < count; i++)
            dst[i] = bfloat16_to_float(s[i]);
    else
        memcpy(dst, src, count * sizeof(float));
}

static void from_floats(ifd_dtype dtype, const float *src, void *dst, size_t count)
{
    uint16_t *d = dst;
    if (dtype == IFD_FLOAT16)
        for (size_t i = 0; i < count; i++)
            d[i] = float_to_half(src[i]);
    else if (dtype == IFD_BFLOAT16)
        for (size_t i = 0; i < count; i++)
            d[i] = float_to_bfloat16(src[i]);
    else if (dst != src)
        memcpy(dst, src, count * sizeof(float));
}

/* A float view of a float, float16 or bfloat16 tensor: its own data when it
 * is float, else a converted copy in scratch. NULL after setting the error. */
static const float *float_view(op_ctx *ctx, const ifd_tensor *t)
{
    if (t->dtype == IFD_FLOAT)
        return t->data;
    size_t count = (size_t)ifd_tensor_count(t);
    float *copy = op_scratch(ctx, count * sizeof(float) + 1);
    if (copy)
        to_floats(t->dtype, t->data, copy, count);
    return copy;
}

/* Where a float result is computed: the output itself for float, scratch
 * converted by from_floats afterwards otherwise. */
static float *float_result(op_ctx *ctx, ifd_tensor *y)
{
    if (y->dtype == IFD_FLOAT)
        return y->data;
    return op_scratch(ctx, (size_t)ifd_tensor_count(y) * sizeof(float) + 1);
}

/* An initializer operand packed at load. Nodes whose weights are the same
 * (torch writes one weight per layer of a TransformerEncoder, all equal)
 * share one copy after load (product_share_packed_b): `refs` then counts
 * its owners, and the last one frees it. */
typedef struct packed_operand {
    float *data;
    size_t k, n;
    size_t *refs; /* NULL while the node is its only owner */
} packed_operand;

static void packed_release(packed_operand *p)
{
    if (p->refs && --*p->refs > 0)
        return;
    free(p->refs);
    gemm_packed_free(p->data);
}

/* Pack a float32 B of k x n (B^T when trans) as it is read from the mapped
 * model file (value_info.mapped_bytes), a few source rows at a time, each
 * read giving the file's pages back: the weight is never resident both as
 * read and as packed (a 2048 x 2048 layer held 16 MiB twice at load). The
 * source rows, front to back, are op(B)'s rows (k rows of n) or, when trans,
 * its columns (n rows of k); either way every element lands where
 * gemm_pack_b puts it (gemm_packed_b_row), padding zero. Nothing else of
 * `packed` is written first: a large block's pages become resident only as
 * the pack reaches them (kernels/gemm.c gemm_packed_alloc). */
static int pack_b_from_file(op_node *node, const value_info *b, bool trans, size_t k, size_t n,
                            float *packed, ifd_error *err)
{
    size_t rows = trans ? n : k, len = trans ? k : n;
    size_t per_read = ((size_t)64 << 10) / sizeof(float) / len;
    if (per_read == 0)
        per_read = 1;
    if (per_read > rows)
        per_read = rows;
    float *buf = malloc(per_read * len * sizeof(float));
    if (!buf)
        return op_prepare_fail(node, err, "out of memory packing B");
    size_t pad = (GEMM_PACK_NR - n % GEMM_PACK_NR) % GEMM_PACK_NR;
    for (size_t p = 0; pad && p < k; p++)
        memset(gemm_packed_at(gemm_packed_b_row(packed, k, n, p), n), 0, pad * sizeof(float));
    for (size_t r0 = 0; r0 < rows; r0 += per_read) {
        size_t count = rows - r0 < per_read ? rows - r0 : per_read;
        op_constant_read(b, r0 * len * sizeof(float), count * len * sizeof(float), buf);
        for (size_t r = 0; r < count; r++) {
            const float *src = buf + r * len;
            if (!trans) {
                gemm_packed_row row = gemm_packed_b_row(packed, k, n, r0 + r);
                for (size_t j = 0; j < n; j += GEMM_PACK_NR)
                    memcpy(gemm_packed_at(row, j), src + j,
                           (n - j < GEMM_PACK_NR ? n - j : GEMM_PACK_NR) * sizeof(float));
            } else {
                for (size_t p = 0; p < k; p++)
                    *gemm_packed_at(gemm_packed_b_row(packed, k, n, p), r0 + r) = src[p];
            }
        }
    }
    free(buf);
    return 0;
}

/* Pack a constant 1-D or 2-D float-family B of k x n (B^T when trans). */
static int pack_constant_b(op_node *node, const value_info *bv, bool trans, size_t k, size_t n,
                           packed_operand *out, ifd_error *err)
{
    const ifd_tensor *b = bv->constant;
    size_t count = (size_t)ifd_tensor_count(b);
    size_t floats = gemm_packed_b_floats(k, n);
    if (floats == 0 || floats > IFD_MAX_TENSOR_BYTES / sizeof(float))
        return op_prepare_fail(node, err, "B is too large to pack");
    if (bv->mapped_bytes && b->dtype == IFD_FLOAT) {
        float *packed = gemm_packed_alloc(floats);
        if (!packed)
            return op_prepare_fail(node, err, "out of memory packing B");
        if (pack_b_from_file(node, bv, trans, k, n, packed, err) != 0) {
            gemm_packed_free(packed);
            return -1;
        }
        *out = (packed_operand){.data = packed, .k = k, .n = n};
        return 0;
    }
    /* float32 packs straight from the constant: a converted copy would hold
     * the weight a third time while it packs */
    float *plain = b->dtype == IFD_FLOAT ? NULL : malloc(count * sizeof(float) + 1);
    float *packed = gemm_packed_alloc(floats);
    if ((b->dtype != IFD_FLOAT && !plain) || !packed) {
        free(plain);
        gemm_packed_free(packed);
        return op_prepare_fail(node, err, "out of memory packing B");
    }
    if (plain)
        to_floats(b->dtype, b->data, plain, count);
    /* a 1-D B is a k x 1 column: row stride 1 (trans does not apply) */
    size_t ldb = b->rank >= 2 ? (size_t)b->dims[b->rank - 1] : 1;
    gemm_pack_b(trans, k, n, plain ? plain : (const float *)b->data, ldb, packed);
    free(plain);
    out->data = packed;
    out->k = k;
    out->n = n;
    return 0;
}

/* Wrapping integer products: one body per type, accumulated in the unsigned
 * type of the same width so that overflow wraps without undefined behaviour.
 * y = alpha * a*b + beta * y, with a(i,p) at a[i*a_rs + p*a_cs], b likewise. */
#define INT_PRODUCT_TYPES(X)                                                                  \
    X(IFD_INT32, int32_t, uint32_t)                                                           \
    X(IFD_INT64, int64_t, uint64_t)                                                           \
    X(IFD_UINT32, uint32_t, uint32_t)                                                         \
    X(IFD_UINT64, uint64_t, uint64_t)

#define DEFINE_INT_PRODUCT(DT, T, U)                                                          \
    static void int_product_##T(size_t m, size_t n, size_t k, int64_t alpha, const T *a,      \
                                size_t a_rs, size_t a_cs, const T *b, size_t b_rs,            \
                                size_t b_cs, int64_t beta, T *y)                              \
    {                                                                                         \
        for (size_t i = 0; i < m; i++)                                                        \
            for (size_t j = 0; j < n; j++) {                                                  \
                U sum = 0;                                                                    \
                for (size_t p = 0; p < k; p++)                                                \
                    sum += (U)a[i * a_rs + p * a_cs] * (U)b[p * b_rs + j * b_cs];             \
                U prev = beta != 0 ? (U)y[i * n + j] : 0;                                     \
                y[i * n + j] = (T)((U)alpha * sum + (U)beta * prev);                          \
            }                                                                                 \
    }
INT_PRODUCT_TYPES(DEFINE_INT_PRODUCT)

static void int_product(ifd_dtype dtype, size_t m, size_t n, size_t k, int64_t alpha,
                        const void *a, size_t a_rs, size_t a_cs, const void *b, size_t b_rs,
                        size_t b_cs, int64_t beta, void *y)
{
    switch (dtype) {
#define CALL_INT_PRODUCT(DT, T, U)                                                            \
    case DT:                                                                                  \
        int_product_##T(m, n, k, alpha, a, a_rs, a_cs, b, b_rs, b_cs, beta, y);               \
        break;
        INT_PRODUCT_TYPES(CALL_INT_PRODUCT)
#undef CALL_INT_PRODUCT
    default: break;
    }
}

/* ---- matmul batching ----------------------------------------------------- */

/* numpy.matmul over A (..., m, k) and B (..., k, n): a 1-D A is a row and a
 * 1-D B a column whose axis is dropped from the result; batch axes
 * broadcast. */
typedef struct product_plan {
    size_t m, n, k;
    size_t batch;
    int batch_rank;
    int64_t batch_dims[IFD_MAX_RANK];
    int64_t a_step[IFD_MAX_RANK]; /* matrices per batch axis, 0 when broadcast */
    int64_t b_step[IFD_MAX_RANK];
    bool b_shared;                /* B has no batch axes */
    int out_rank;
    int64_t out_dims[IFD_MAX_RANK];
} product_plan;

static int plan_matmul(op_ctx *ctx, const ifd_tensor *a, const ifd_tensor *b, product_plan *p)
{
    char sa[128], sb[128];
    int ra = a->rank, rb = b->rank;
    if (ra < 1 || rb < 1)
        return op_fail(ctx, "inputs must have rank >= 1, got %s and %s",
                       shape_to_string(ra, a->dims, sa, sizeof(sa)),
                       shape_to_string(rb, b->dims, sb, sizeof(sb)));
    int64_t ka = a->dims[ra - 1], kb = rb >= 2 ? b->dims[rb - 2] : b->dims[0];
    if (ka != kb)
        return op_fail(ctx, "inner dimensions differ: A %s, B %s",
                       shape_to_string(ra, a->dims, sa, sizeof(sa)),
                       shape_to_string(rb, b->dims, sb, sizeof(sb)));
    int abr = ra > 2 ? ra - 2 : 0, bbr = rb > 2 ? rb - 2 : 0;
    if (!broadcast_shapes(abr, a->dims, bbr, b->dims, &p->batch_rank, p->batch_dims))
        return op_fail(ctx, "batch dimensions do not broadcast: A %s, B %s",
                       shape_to_string(ra, a->dims, sa, sizeof(sa)),
                       shape_to_string(rb, b->dims, sb, sizeof(sb)));
    broadcast_strides(p->batch_rank, p->batch_dims, abr, a->dims, p->a_step);
    broadcast_strides(p->batch_rank, p->batch_dims, bbr, b->dims, p->b_step);
    int64_t batch;
    if (!shape_count(p->batch_rank, p->batch_dims, &batch))
        return op_fail(ctx, "batch size overflows");
    p->batch = (size_t)batch;
    p->m = ra >= 2 ? (size_t)a->dims[ra - 2] : 1;
    p->k = (size_t)ka;
    p->n = rb >= 2 ? (size_t)b->dims[rb - 1] : 1;
    p->b_shared = bbr == 0;
    p->out_rank = p->batch_rank;
    memcpy(p->out_dims, p->batch_dims, sizeof(int64_t) * (size_t)p->batch_rank);
    if (ra >= 2)
        p->out_dims[p->out_rank++] = (int64_t)p->m;
    if (rb >= 2)
        p->out_dims[p->out_rank++] = (int64_t)p->n;
    return 0;
}

/* Matrix indices of A and B for batch item t. */
static void plan_item(const product_plan *p, size_t t, size_t *ai, size_t *bi)
{
    size_t a = 0, b = 0;
    for (int d = p->batch_rank - 1; d >= 0; d--) {
        size_t dim = (size_t)p->batch_dims[d];
        size_t idx = t % dim;
        t /= dim;
        a += idx * (size_t)p->a_step[d];
        b += idx * (size_t)p->b_step[d];
    }
    *ai = a;
    *bi = b;
}

/* Static output shape of matmul where the ranks are known. */
static void infer_matmul_shape(const value_info *a, const value_info *b, value_info *y)
{
    if (a->rank < 1 || b->rank < 1)
        return;
    int ra = a->rank, rb = b->rank;
    int abr = ra > 2 ? ra - 2 : 0, bbr = rb > 2 ? rb - 2 : 0;
    int br = abr > bbr ? abr : bbr, r = 0;
    for (int i = 0; i < br; i++) {
        int ia = i - (br - abr), ib = i - (br - bbr);
        int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
        int64_t d = -1;
        if (da == 1)
            d = db;
        else if (db == 1 || da == db)
            d = da;
        else if (da >= 0 && db < 0)
            d = da;
        else if (db >= 0 && da < 0)
            d = db;
        y->dims[r++] = d;
    }
    if (ra >= 2)
        y->dims[r++] = a->dims[ra - 2];
    if (rb >= 2)
        y->dims[r++] = b->dims[rb - 1];
    y->rank = r;
}

/* ---- MatMul ------------------------------------------------------------- */

typedef struct matmul_state {
    packed_operand b; /* data NULL when B is not a packed initializer */
    /* set by the fusion pass (fusable.h): a following Add of a constant bias
     * row and a Relu/Clip, computed on the output while it is in cache */
    float *fused_bias;
    kernel_epilogue epilogue;
    /* set by the fusion pass: A, B and Y are read/written through absorbed
     * 3-D Transposes (perm[i] = stored axis of logical axis i; identity when
     * none) and the product is scaled by alpha (an absorbed Div/Mul by a
     * scalar). `viewed` turns run() to the strided path. */
    bool viewed;
    int perm[3][3]; /* [0] A, [1] B, [2] Y */
    float alpha;
    /* set by the attention fusion (matmul_fuse_attention): this node, the
     * weights x V product, also computes its A as Softmax(qk_alpha * Q x K)
     * from input 0 (Q, read through perm[0]) and input 2 (K, through perm_k);
     * input 1 is V as before. */
    bool attention;
    int perm_k[3];
    float qk_alpha;
    /* set by the column split (matmul_fuse_column_split): output i is
     * columns [part_begin[i], part_end[i]) of the product, the tensor the
     * Slice that read them made (n_parts outputs, 0 when not split) */
    int n_parts;
    size_t *part_begin, *part_end;
} matmul_state;

static void matmul_free(void *state)
{
    matmul_state *st = state;
    if (st) {
        packed_release(&st->b);
        free(st->fused_bias);
        free(st->part_begin);
        free(st->part_end);
    }
    free(st);
}

/* MatMul of batched operands (attention's Q x K^T and weights x V): one small
 * product per batch item, so the items, not the tiles of one product, are
 * what the threads share. */
typedef struct batched_job {
    const product_plan *p;
    const float *a, *b;
    float *y;
} batched_job;

static void batched_items(void *arg, size_t begin, size_t end)
{
    const batched_job *job = arg;
    const product_plan *p = job->p;
    for (size_t t = begin; t < end; t++) {
        size_t ai, bi;
        plan_item(p, t, &ai, &bi);
        gemm_operand oa = {job->a + ai * p->m * p->k, p->k, false, false};
        gemm_operand ob = {job->b + bi * p->k * p->n, p->n, false, false};
        gemm_f32_ex(p->m, p->n, p->k, 1.0f, oa, ob, 0.0f, job->y + t * p->m * p->n, p->n, NULL);
    }
}

/* A product whose output rows get a bias row added and are then clamped
 * (fused MatMul + Add + Relu/Clip): the kernel's epilogue (gemm.h) adds and
 * clamps each tile before storing it, and the threads share row blocks. */
typedef struct rows_job {
    size_t m, n, k, block;
    const float *a;
    gemm_operand b;
    float *y;
    float alpha, beta;             /* y = alpha * a * b + beta * bias */
    const float *bias;             /* n floats, or NULL */
    const kernel_epilogue *epilogue;
} rows_job;

static inline gemm_epilogue job_epilogue(const rows_job *job)
{
    gemm_epilogue e = {job->bias, job->beta, job->epilogue && job->epilogue->clamp,
                       job->epilogue ? job->epilogue->lo : 0.0f,
                       job->epilogue ? job->epilogue->hi : 0.0f};
    return e;
}

static void row_blocks(void *arg, size_t begin, size_t end)
{
    const rows_job *job = arg;
    for (size_t blk = begin; blk < end; blk++) {
        size_t r0 = blk * job->block, r1 = r0 + job->block < job->m ? r0 + job->block : job->m;
        float *y = job->y + r0 * job->n;
        gemm_operand oa = {job->a + r0 * job->k, job->k, false, false};
        gemm_epilogue e = job_epilogue(job);
        gemm_f32_epilogue(r1 - r0, job->n, job->k, job->alpha, oa, job->b, 0.0f, y, job->n, &e,
                          NULL);
    }
}

/* At most 6 rows (a classifier at batch 1) make one block when shared: the
 * threads share its columns instead (kernels/gemm.c splits N when the
 * product is large enough, and judges a product of 1-3 rows by the B it
 * streams). MobileNetV2's 1280 -> 1000 Linear at batch 1, 2 threads: per-
 * node min over alternated runs 231-289 -> 116-144 us, ResNet-18's 512 ->
 * 1000 fc 96 -> 57 us (a temporary timer in run_graph); they ran on one
 * thread before. Kept out of row_blocks: passing the pool through it made
 * the digits MLP's batch-1 run 3-5 % slower (1.09 -> 1.12 us, medians of 5
 * alternated runs, taskset -c 1). */
static __attribute__((noinline)) void columns_block(const rows_job *job, threadpool *pool)
{
    gemm_operand oa = {job->a, job->k, false, false};
    gemm_epilogue e = job_epilogue(job);
    gemm_f32_epilogue(job->m, job->n, job->k, job->alpha, oa, job->b, 0.0f, job->y, job->n, &e,
                      pool);
}

static void run_row_blocks(rows_job *job, threadpool *pool)
{
    size_t threads = (size_t)threadpool_size(pool);
    /* The common small case without the chain of divisions below (about 60
     * cycles a call, 5% of the digits MLP's batch-1 run): the planning
     * below gives one block of all m rows exactly when the product is not
     * shared (one thread, or under the sharing threshold) and m rounded up
     * to whole 6-row tiles fits the 131072-float block (rows rounded down
     * to 6 is >= m iff round_up(m, 6) * n <= 131072). */
    double fmas = (double)job->m * (double)job->n * (double)job->k;
    if ((threads <= 1 || fmas < 262144.0) && job->m <= 131072 &&
        (job->m + 5) / 6 * 6 * job->n <= 131072) {
        job->block = job->m;
        row_blocks(job, 0, 1);
        return;
    }
    /* about 512 KiB of output per block (a quarter of L2), in whole 6-row tiles */
    size_t rows = (size_t)131072 / (job->n ? job->n : 1);
    rows = rows < 6 ? 6 : rows / 6 * 6;
    /* an unpacked B is packed again by every block: no smaller blocks than
     * the kernel's own (96 rows) then */
    if (!job->b.packed && rows < 96)
        rows = 96;
    size_t blocks = (job->m + rows - 1) / rows;
    /* at least one block per thread when the product is worth sharing:
     * past ~256K multiply-adds, as for one product (kernels/gemm.c) */
    if (threads > 1 && blocks < threads && fmas >= 262144.0)
        blocks = job->m / 6 < threads ? (job->m + 5) / 6 : threads;
    if (blocks == 0)
        blocks = 1;
    /* a whole number of blocks per thread: the transformer's 768-column
     * projection at batch 8 (1024 rows) made 7 blocks of 168 rows, so one
     * thread ran 4 while the other waited after 3. Rounded down, to larger
     * blocks: rounded up, its 1024-column FFN product at batch 8 made 10
     * blocks of 103 rows, each the kernel's 96-row pass over all of B and
     * a 7-row one over all of B again (2 threads, per node 1950-2240 us;
     * 8 blocks of 128: 1610-1690 us) */
    if (threads > 1 && blocks > threads && job->m / 6 >= blocks + threads)
        blocks = blocks / threads * threads;
    job->block = (job->m + blocks - 1) / blocks;
    blocks = (job->m + job->block - 1) / job->block;
    if (threads > 1 && blocks > 1)
        threadpool_parallel_for(pool, blocks, 1, row_blocks, job);
    else if (threads > 1)
        columns_block(job, pool);
    else
        row_blocks(job, 0, blocks);
}

/* ---- MatMul through transposed views (fusable.h) -------------------------- */

/* One operand or the result as a batch of matrices inside a stored tensor:
 * matrix t, element (i, j) at data[t*step + i*rs + j*cs]. */
typedef struct matrix_view {
    int64_t batch, rows, cols;
    size_t step, rs, cs;
} matrix_view;

/* The logical [batch, rows, cols] view of a stored rank-2/3 tensor read
 * through perm (a rank-2 tensor is one matrix shared by every item). */
static void view_of(int rank, const int64_t *dims, const int *perm, matrix_view *v)
{
    if (rank == 2) {
        *v = (matrix_view){1, dims[0], dims[1], 0, (size_t)dims[1], 1};
        return;
    }
    size_t stride[3] = {(size_t)(dims[1] * dims[2]), (size_t)dims[2], 1};
    *v = (matrix_view){dims[perm[0]], dims[perm[1]], dims[perm[2]], stride[perm[0]],
                       stride[perm[1]], stride[perm[2]]};
    if (v->batch == 1)
        v->step = 0;
}

/* A view as a kernel operand: its columns (plain) or its rows (transposed)
 * must be contiguous; the other axis's stride is then at least their count. */
static bool view_operand(const matrix_view *v, const float *base, gemm_operand *op)
{
    if (v->cs == 1 || v->cols == 1)
        *op = (gemm_operand){base, v->rs, false, false};
    else if (v->rs == 1 || v->rows == 1)
        *op = (gemm_operand){base, v->cs, true, false};
    else
        return false;
    return true;
}

typedef struct viewed_job {
    matrix_view a, b, y;
    const float *ad, *bd;
    float *yd;
    float alpha;
    threadpool *pool; /* for each product when the items run one by one */
} viewed_job;

static void viewed_items(void *arg, size_t begin, size_t end)
{
    const viewed_job *job = arg;
    size_t m = (size_t)job->y.rows, n = (size_t)job->y.cols, k = (size_t)job->a.cols;
    /* Each item's B packed once here, where the kernel would pack it again
     * for every block of rows (attention's K^T and V are read by all 128
     * query rows); a few rows stream B in place instead. NULL (no memory):
     * the kernel packs as usual. Scratch of this run, so from the heap,
     * which serves the next run's without new pages (gemm_packed_alloc
     * maps a large block of its own for a weight kept between runs), on a
     * line like the packed weights. */
    size_t floats = gemm_packed_b_floats(k, n);
    float *packed = m > 12 && floats && floats <= SIZE_MAX / sizeof(float) - 64
                        ? aligned_alloc(64, (floats * sizeof(float) + 63) & ~(size_t)63)
                        : NULL;
    const float *shared_b = NULL;
    for (size_t t = begin; t < end; t++) {
        gemm_operand oa, ob;
        view_operand(&job->a, job->ad + t * job->a.step, &oa);
        view_operand(&job->b, job->bd + t * job->b.step, &ob);
        if (packed && (job->b.step != 0 || shared_b != ob.data)) {
            gemm_pack_b(ob.trans, k, n, ob.data, ob.ld, packed);
            shared_b = ob.data;
        }
        if (packed)
            ob = (gemm_operand){packed, 0, false, true};
        gemm_f32_ex(m, n, k, job->alpha, oa, ob, 0.0f, job->yd + t * job->y.step, job->y.rs,
                    job->pool);
    }
    free(packed);
}

static int matmul_run_viewed(op_ctx *ctx, const matmul_state *st, const ifd_tensor *a,
                             const ifd_tensor *b)
{
    char sa[128], sb[128];
    if (a->dtype != IFD_FLOAT || b->dtype != IFD_FLOAT || a->rank < 2 || a->rank > 3 ||
        b->rank < 2 || b->rank > 3 || (a->rank == 2 && b->rank == 2))
        return op_fail(ctx, "fused transposes need float A and B of rank 2 or 3 (one of rank 3), "
                            "got %s and %s",
                       shape_to_string(a->rank, a->dims, sa, sizeof(sa)),
                       shape_to_string(b->rank, b->dims, sb, sizeof(sb)));
    matrix_view va, vb;
    view_of(a->rank, a->dims, st->perm[0], &va);
    view_of(b->rank, b->dims, st->perm[1], &vb);
    int64_t batch = va.batch > vb.batch ? va.batch : vb.batch;
    if (va.cols != vb.rows || (va.batch != batch && va.batch != 1) ||
        (vb.batch != batch && vb.batch != 1))
        return op_fail(ctx, "A %s and B %s (read through the fused transposes) do not multiply",
                       shape_to_string(a->rank, a->dims, sa, sizeof(sa)),
                       shape_to_string(b->rank, b->dims, sb, sizeof(sb)));
    int64_t logical[3] = {batch, va.rows, vb.cols}, dims[3];
    for (int i = 0; i < 3; i++)
        dims[i] = logical[st->perm[2][i]];
    ifd_tensor *y = op_output(ctx, 0, IFD_FLOAT, 3, dims);
    if (!y)
        return -1;
    if (batch == 0 || va.rows == 0 || vb.cols == 0)
        return 0;
    viewed_job job = {.a = va, .b = vb, .ad = a->data, .bd = b->data, .yd = y->data,
                      .alpha = st->alpha};
    /* the result's stored layout, seen through the inverse of its perm */
    int inverse[3];
    for (int i = 0; i < 3; i++)
        inverse[st->perm[2][i]] = i;
    view_of(3, dims, inverse, &job.y);
    if (va.cols == 0) {
        for (int64_t t = 0; t < batch; t++)
            for (int64_t i = 0; i < va.rows; i++)
                memset(job.yd + (size_t)t * job.y.step + (size_t)i * job.y.rs, 0,
                       (size_t)vb.cols * sizeof(float));
        return 0;
    }
    if (!view_operand(&va, NULL, &(gemm_operand){0}) || !view_operand(&vb, NULL, &(gemm_operand){0}))
        return op_fail(ctx, "an operand has no contiguous axis");
    threadpool *pool = op_threadpool(ctx);
    size_t threads = (size_t)threadpool_size(pool);
    if (threads > 1 && (size_t)batch >= threads) {
        /* attention's per-head products are small: the items, not the tiles
         * of one product, are what the threads share */
        threadpool_parallel_for(pool, (size_t)batch, 1, viewed_items, &job);
    } else {
        job.pool = pool;
        viewed_items(&job, 0, (size_t)batch);
    }
    return 0;
}

/* ---- fused attention (fusable.h: matmul_fuse_attention) ------------------- */

/* Query rows per block: the block's scores (rows x keys floats, 24 KiB at
 * 128 keys) stay in cache from the Q x K product through the softmax into
 * the product with V, where the unfused graph writes every head's whole
 * score matrix (2 MiB at batch 8, 16 MiB at 64: past L2) and reads it back
 * twice. A multiple of the GEMM's 12-row tile. */
#define ATTENTION_ROWS 48

/* floats of one task's scratch (256 KiB) up to which the items are shared
 * as four tasks a thread (matmul_run_attention) */
#define ATTENTION_SMALL_SCRATCH 65536

typedef struct attention_job {
    matrix_view q, k, v, y; /* q: m x d, k: d x n (K^T), v: n x dv, y: m x dv */
    const float *qd, *kd, *vd;
    float *yd;
    float qk_alpha, alpha;
    size_t items, per_task;
    float *scratch; /* per task: packed K^T, packed V, one block of scores */
    size_t scratch_floats;
} attention_job;

static size_t attention_block_rows(size_t m)
{
    return m < ATTENTION_ROWS ? m : ATTENTION_ROWS;
}

static void attention_tasks(void *arg, size_t begin, size_t end)
{
    const attention_job *job = arg;
    size_t m = (size_t)job->y.rows, dv = (size_t)job->y.cols, d = (size_t)job->q.cols,
           n = (size_t)job->k.cols, rows = attention_block_rows(m);
    for (size_t task = begin; task < end; task++) {
        float *kp = job->scratch + task * job->scratch_floats;
        float *vp = kp + gemm_packed_b_floats(d, n), *s = vp + gemm_packed_b_floats(n, dv);
        size_t t1 = (task + 1) * job->per_task < job->items ? (task + 1) * job->per_task : job->items;
        for (size_t t = task * job->per_task; t < t1; t++) {
            gemm_operand oq = {0}, ok = {0}, ov = {0}; /* the caller checked the views */
            view_operand(&job->q, job->qd + t * job->q.step, &oq);
            view_operand(&job->k, job->kd + t * job->k.step, &ok);
            view_operand(&job->v, job->vd + t * job->v.step, &ov);
            /* K^T and V packed once per item: every query row reads all of them */
            gemm_pack_b(ok.trans, d, n, ok.data, ok.ld, kp);
            gemm_pack_b(ov.trans, n, dv, ov.data, ov.ld, vp);
            gemm_operand kpacked = {kp, 0, false, true}, vpacked = {vp, 0, false, true};
            float *y = job->yd + t * job->y.step;
            for (size_t i0 = 0; i0 < m; i0 += rows) {
                size_t r = m - i0 < rows ? m - i0 : rows;
                gemm_operand qrows = oq;
                qrows.data += oq.trans ? i0 : i0 * oq.ld; /* row i0 of Q */
                gemm_f32_ex(r, n, d, job->qk_alpha, qrows, kpacked, 0.0f, s, n, NULL);
                for (size_t i = 0; i < r; i++)
                    vmath_softmax(s + i * n, s + i * n, n);
                gemm_f32_ex(r, dv, n, job->alpha, (gemm_operand){s, n, false, false}, vpacked,
                            0.0f, y + i0 * job->y.rs, job->y.rs, NULL);
            }
        }
    }
}

static int matmul_run_attention(op_ctx *ctx, const matmul_state *st, const ifd_tensor *q,
                                const ifd_tensor *v, const ifd_tensor *k)
{
    char sq[128], sk[128], sv[128];
    if (!k)
        return op_fail(ctx, "fused attention: input K is missing");
    if (q->dtype != IFD_FLOAT || k->dtype != IFD_FLOAT || v->dtype != IFD_FLOAT || q->rank != 3 ||
        k->rank != 3 || v->rank != 3)
        return op_fail(ctx, "fused attention needs float Q, K and V of rank 3, got %s, %s and %s",
                       shape_to_string(q->rank, q->dims, sq, sizeof(sq)),
                       shape_to_string(k->rank, k->dims, sk, sizeof(sk)),
                       shape_to_string(v->rank, v->dims, sv, sizeof(sv)));
    attention_job job = {.qd = q->data, .kd = k->data, .vd = v->data, .qk_alpha = st->qk_alpha,
                         .alpha = st->alpha};
    view_of(3, q->dims, st->perm[0], &job.q);
    view_of(3, k->dims, st->perm_k, &job.k);
    view_of(3, v->dims, st->perm[1], &job.v);
    int64_t batch = job.q.batch;
    if (job.k.batch > batch)
        batch = job.k.batch;
    if (job.v.batch > batch)
        batch = job.v.batch;
    if (job.q.cols != job.k.rows || job.k.cols != job.v.rows ||
        (job.q.batch != batch && job.q.batch != 1) || (job.k.batch != batch && job.k.batch != 1) ||
        (job.v.batch != batch && job.v.batch != 1))
        return op_fail(ctx, "fused attention: Q %s, K %s and V %s (read through the fused "
                            "transposes) do not multiply",
                       shape_to_string(q->rank, q->dims, sq, sizeof(sq)),
                       shape_to_string(k->rank, k->dims, sk, sizeof(sk)),
                       shape_to_string(v->rank, v->dims, sv, sizeof(sv)));
    gemm_operand probe;
    if (!view_operand(&job.q, NULL, &probe) || !view_operand(&job.k, NULL, &probe) ||
        !view_operand(&job.v, NULL, &probe))
        return op_fail(ctx, "fused attention: an operand has no contiguous axis");
    int64_t logical[3] = {batch, job.q.rows, job.v.cols}, dims[3];
    for (int i = 0; i < 3; i++)
        dims[i] = logical[st->perm[2][i]];
    ifd_tensor *y = op_output(ctx, 0, IFD_FLOAT, 3, dims);
    if (!y)
        return -1;
    if (batch == 0 || job.q.rows == 0 || job.v.cols == 0)
        return 0;
    job.yd = y->data;
    int inverse[3];
    for (int i = 0; i < 3; i++)
        inverse[st->perm[2][i]] = i;
    view_of(3, dims, inverse, &job.y);
    size_t m = (size_t)job.q.rows, d = (size_t)job.q.cols, n = (size_t)job.k.cols,
           dv = (size_t)job.v.cols;
    /* per task: K^T and V packed, one block of scores (each no larger than
     * a tensor the session already holds, bar the packing's padding; the
     * sum is checked anyway before it is multiplied) */
    size_t kfloats = gemm_packed_b_floats(d, n), vfloats = gemm_packed_b_floats(n, dv);
    size_t block = attention_block_rows(m) * n;
    threadpool *pool = op_threadpool(ctx);
    size_t threads = (size_t)threadpool_size(pool), items = (size_t)batch;
    /* four tasks a thread when shared, taken from the pool's cursor: a
     * thread held up (another process on its core) leaves its other
     * tasks to the rest instead of making them wait for its half. Only
     * while a task's scratch is small (the transformer encoder's: 56 KiB),
     * so that long sequences do not hold four times as much. */
    size_t tasks = threads;
    if (threads > 1 && kfloats + vfloats + block <= ATTENTION_SMALL_SCRATCH)
        tasks = 4 * threads;
    if (tasks > items)
        tasks = items;
    if (kfloats == 0 || vfloats == 0 || kfloats > SIZE_MAX / 4 || vfloats > SIZE_MAX / 4 ||
        block > SIZE_MAX / 4 || kfloats + vfloats + block > SIZE_MAX / sizeof(float) / tasks)
        return op_fail(ctx, "fused attention: %zu x %zu scores with K %zu x %zu are too large",
                       m, n, d, n);
    job.items = items;
    job.per_task = (items + tasks - 1) / tasks;
    tasks = (items + job.per_task - 1) / job.per_task;
    job.scratch_floats = kfloats + vfloats + block;
    job.scratch = op_scratch(ctx, tasks * job.scratch_floats * sizeof(float));
    if (!job.scratch)
        return -1; /* op_scratch said why */
    if (tasks > 1)
        threadpool_parallel_for(pool, tasks, 1, attention_tasks, &job);
    else
        attention_tasks(&job, 0, 1);
    return 0;
}

static int matmul_prepare(op_node *node, ifd_error *err)
{
    const value_info *a = node->inputs[0], *b = node->n_inputs > 1 ? node->inputs[1] : NULL;
    if (!a || !b)
        return op_prepare_fail(node, err, "needs inputs A and B");
    if (!product_dtype_ok(a->dtype, node->version))
        return op_prepare_fail(node, err, "unsupported dtype %s at version %d",
                               ifd_dtype_name(a->dtype), node->version);
    if (b->dtype != a->dtype)
        return op_prepare_fail(node, err, "A is %s but B is %s", ifd_dtype_name(a->dtype),
                               ifd_dtype_name(b->dtype));
    if (a->rank == 0 || b->rank == 0)
        return op_prepare_fail(node, err, "inputs must have rank >= 1");
    if (a->rank > 0 && b->rank > 0) {
        int64_t ka = a->dims[a->rank - 1], kb = b->rank >= 2 ? b->dims[b->rank - 2] : b->dims[0];
        if (ka >= 0 && kb >= 0 && ka != kb)
            return op_prepare_fail(node, err, "inner dimensions differ (%lld vs %lld)",
                                   (long long)ka, (long long)kb);
    }
    value_info *y = node->outputs[0];
    y->kind = IFD_VALUE_TENSOR;
    y->dtype = a->dtype;
    y->rank = -1;
    infer_matmul_shape(a, b, y);

    matmul_state *st = calloc(1, sizeof(*st));
    if (!st)
        return op_prepare_fail(node, err, "out of memory");
    node->state = st;
    const ifd_tensor *bc = b->constant;
    if (bc && is_float_family(bc->dtype) && bc->rank >= 1 && bc->rank <= 2) {
        size_t k = (size_t)(bc->rank == 2 ? bc->dims[0] : bc->dims[0]);
        size_t n = bc->rank == 2 ? (size_t)bc->dims[1] : 1;
        if (k > 0 && n > 0 && pack_constant_b(node, b, false, k, n, &st->b, err) != 0)
            return -1;
        if (st->b.data)
            op_constant_packed(node, 1); /* run() streams the packed copy only */
    }
    return 0;
}

/* A split product (matmul_fuse_column_split): each output is its columns
 * of A x B (+ bias, clamped) over all rows, read from the one packed B in
 * place (gemm_packed_b_columns), in row blocks like the unsplit product.
 * The Q, K and V slices of attention's input projection were copies of
 * the whole product's columns after it was written (3 x 1 MiB a layer for
 * the bench transformer at batch 8). */
static int matmul_run_parts(op_ctx *ctx, const matmul_state *st, const ifd_tensor *a,
                            const ifd_tensor *b)
{
    if (a->dtype != IFD_FLOAT)
        return op_fail(ctx, "a split product needs float A, got %s", ifd_dtype_name(a->dtype));
    product_plan p;
    if (plan_matmul(ctx, a, b, &p) != 0)
        return -1;
    if (!p.b_shared || st->b.k != p.k || st->b.n != p.n)
        return op_fail(ctx, "a split product needs its packed 2-D B");
    threadpool *pool = op_threadpool(ctx);
    for (int i = 0; i < st->n_parts; i++) {
        size_t c0 = st->part_begin[i], c1 = st->part_end[i];
        int64_t dims[IFD_MAX_RANK];
        memcpy(dims, p.out_dims, sizeof(int64_t) * (size_t)p.out_rank);
        dims[p.out_rank - 1] = (int64_t)(c1 - c0);
        ifd_tensor *y = op_output(ctx, i, IFD_FLOAT, p.out_rank, dims);
        if (!y)
            return -1;
        const float *part = gemm_packed_b_columns(st->b.data, p.k, p.n, c0, c1);
        if (!part) /* the fusion checked it: an assertion, not a user error */
            return op_fail(ctx, "columns [%zu, %zu) of B are not a packed operand", c0, c1);
        if (p.batch * p.m == 0)
            continue;
        rows_job job = {.m = p.batch * p.m, .n = c1 - c0, .k = p.k, .a = a->data,
                        .b = {part, 0, false, true}, .y = y->data, .alpha = 1.0f, .beta = 1.0f,
                        .bias = st->fused_bias ? st->fused_bias + c0 : NULL,
                        .epilogue = &st->epilogue};
        run_row_blocks(&job, pool);
    }
    return 0;
}

static int matmul_run(op_ctx *ctx)
{
    const matmul_state *st = ctx->node->state;
    const ifd_tensor *a = op_input(ctx, 0), *b = op_input(ctx, 1);
    if (!a || !b)
        return op_fail(ctx, "missing input");
    if (st && st->attention)
        return matmul_run_attention(ctx, st, a, b, ctx->n_inputs > 2 ? op_input(ctx, 2) : NULL);
    if (st && st->n_parts)
        return matmul_run_parts(ctx, st, a, b);
    if (st && st->viewed)
        return matmul_run_viewed(ctx, st, a, b);
    if (a->dtype != b->dtype || !product_dtype_ok(a->dtype, ctx->node->version))
        return op_fail(ctx, "unsupported dtypes %s x %s", ifd_dtype_name(a->dtype),
                       ifd_dtype_name(b->dtype));
    product_plan p;
    if (plan_matmul(ctx, a, b, &p) != 0)
        return -1;
    ifd_tensor *y = op_output(ctx, 0, a->dtype, p.out_rank, p.out_dims);
    if (!y)
        return -1;
    size_t mk = p.m * p.k, kn = p.k * p.n, mn = p.m * p.n;
    if (p.batch == 0 || mn == 0)
        return 0;
    threadpool *pool = op_threadpool(ctx);

    if (is_float_family(a->dtype)) {
        bool use_packed = st && st->b.data && p.b_shared && st->b.k == p.k && st->b.n == p.n;
        const float *af = float_view(ctx, a);
        const float *bf = use_packed ? NULL : float_view(ctx, b);
        float *yf = float_result(ctx, y);
        if (!af || (!use_packed && !bf) || !yf)
            return -1;
        gemm_operand ob = {bf, p.n, false, false};
        if (use_packed)
            ob = (gemm_operand){st->b.data, 0, false, true};
        size_t threads = (size_t)threadpool_size(pool);
        bool biased = st && st->fused_bias && st->b.n == p.n;
        if (p.b_shared && (biased || (st && st->epilogue.clamp))) {
            /* a fused bias and clamp: in row blocks, each initialised with
             * the bias, multiplied and clamped while it is in cache */
            rows_job job = {.m = p.batch * p.m, .n = p.n, .k = p.k, .a = af, .b = ob, .y = yf,
                            .alpha = 1.0f, .beta = 1.0f, .bias = biased ? st->fused_bias : NULL,
                            .epilogue = &st->epilogue};
            run_row_blocks(&job, pool);
            from_floats(y->dtype, yf, y->data, p.batch * mn);
            return 0;
        }
        if (p.b_shared) {
            /* one B for every batch item: a single product over all rows */
            gemm_operand oa = {af, p.k, false, false};
            gemm_f32_ex(p.batch * p.m, p.n, p.k, 1.0f, oa, ob, 0.0f, yf, p.n, pool);
        } else if (threads > 1 && p.batch >= threads &&
                   (double)p.batch * (double)mn * (double)p.k >= 4194304.0) {
            /* past ~4M multiply-adds, as for one product (kernels/gemm.c) */
            batched_job job = {&p, af, bf, yf};
            threadpool_parallel_for(pool, p.batch, 1, batched_items, &job);
        } else {
            for (size_t t = 0; t < p.batch; t++) {
                size_t ai, bi;
                plan_item(&p, t, &ai, &bi);
                gemm_operand oa = {af + ai * mk, p.k, false, false};
                ob.data = bf + bi * kn;
                gemm_f32_ex(p.m, p.n, p.k, 1.0f, oa, ob, 0.0f, yf + t * mn, p.n, pool);
            }
        }
        if (st)
            epilogue_apply(&st->epilogue, yf, p.batch * mn);
        from_floats(y->dtype, yf, y->data, p.batch * mn);
        return 0;
    }
    size_t es = ifd_dtype_size(a->dtype);
    for (size_t t = 0; t < p.batch; t++) {
        size_t ai, bi;
        plan_item(&p, t, &ai, &bi);
        const char *at = (const char *)a->data + ai * mk * es;
        const char *bt = (const char *)b->data + bi * kn * es;
        char *yt = (char *)y->data + t * mn * es;
        if (a->dtype == IFD_DOUBLE)
            gemm_f64(false, false, p.m, p.n, p.k, 1.0, (const double *)at, p.k,
                     (const double *)bt, p.n, 0.0, (double *)yt, p.n);
        else
            int_product(a->dtype, p.m, p.n, p.k, 1, at, p.k, 1, bt, p.n, 1, 0, yt);
    }
    return 0;
}

/* ---- Gemm ---------------------------------------------------------------- */

typedef struct gemm_state {
    bool trans_a, trans_b;
    float alpha, beta;
    bool exact_c;      /* Gemm-1/6 with broadcast=0: C must already be (M, N) */
    packed_operand b;  /* op(B) packed when B is an initializer */
    kernel_epilogue epilogue; /* a fused Relu/Clip (fusable.h) */
} gemm_state;

static void gemm_free(void *state)
{
    gemm_state *st = state;
    if (st)
        packed_release(&st->b);
    free(st);
}

static int gemm_prepare(op_node *node, ifd_error *err)
{
    const value_info *a = node->inputs[0], *b = node->n_inputs > 1 ? node->inputs[1] : NULL;
    const value_info *c = node->n_inputs > 2 ? node->inputs[2] : NULL;
    if (!a || !b)
        return op_prepare_fail(node, err, "needs inputs A and B");
    /* C is required before Gemm-11 */
    if (!c && node->version < 11)
        return op_prepare_fail(node, err, "input C is required before opset 11");
    if (!product_dtype_ok(a->dtype, node->version))
        return op_prepare_fail(node, err, "unsupported dtype %s at version %d",
                               ifd_dtype_name(a->dtype), node->version);
    if (b->dtype != a->dtype || (c && c->dtype != a->dtype))
        return op_prepare_fail(node, err, "A, B and C must share one dtype");
    if ((a->rank >= 0 && a->rank != 2) || (b->rank >= 0 && b->rank != 2))
        return op_prepare_fail(node, err, "A and B must be 2-D");
    if (c && c->rank > 2)
        return op_prepare_fail(node, err, "C must have rank <= 2");

    gemm_state *st = calloc(1, sizeof(*st));
    if (!st)
        return op_prepare_fail(node, err, "out of memory");
    node->state = st;
    st->trans_a = op_attr_int(node, "transA", 0) != 0;
    st->trans_b = op_attr_int(node, "transB", 0) != 0;
    st->alpha = op_attr_float(node, "alpha", 1.0f);
    st->beta = op_attr_float(node, "beta", 1.0f);
    /* Gemm-1 and Gemm-6 broadcast C only when asked; Gemm-7 always does */
    st->exact_c = node->version < 7 && op_attr_int(node, "broadcast", 0) == 0;
    if (dtype_is_integer(a->dtype)) {
        /* alpha and beta are floats; on integer tensors only whole values
         * have an exact meaning */
        if (st->alpha != truncf(st->alpha) || fabsf(st->alpha) > 9.0e18f ||
            st->beta != truncf(st->beta) || fabsf(st->beta) > 9.0e18f)
            return op_prepare_fail(node, err, "alpha and beta must be integers for %s",
                                   ifd_dtype_name(a->dtype));
    }

    value_info *y = node->outputs[0];
    y->kind = IFD_VALUE_TENSOR;
    y->dtype = a->dtype;
    y->rank = 2;
    y->dims[0] = a->rank == 2 ? a->dims[st->trans_a ? 1 : 0] : -1;
    y->dims[1] = b->rank == 2 ? b->dims[st->trans_b ? 0 : 1] : -1;
    if (a->rank == 2 && b->rank == 2) {
        int64_t ka = a->dims[st->trans_a ? 0 : 1], kb = b->dims[st->trans_b ? 1 : 0];
        if (ka >= 0 && kb >= 0 && ka != kb)
            return op_prepare_fail(node, err, "inner dimensions differ (%lld vs %lld)",
                                   (long long)ka, (long long)kb);
    }

    const ifd_tensor *bc = b->constant;
    if (bc && is_float_family(bc->dtype) && bc->rank == 2) {
        size_t k = (size_t)bc->dims[st->trans_b ? 1 : 0];
        size_t n = (size_t)bc->dims[st->trans_b ? 0 : 1];
        if (k > 0 && n > 0 && pack_constant_b(node, b, st->trans_b, k, n, &st->b, err) != 0)
            return -1;
        if (st->b.data)
            op_constant_packed(node, 1); /* run() streams the packed copy only */
    }
    return 0;
}

/* Write C broadcast to (m, n) into y, elements of es bytes (C has already
 * been made float when y is), or fail when its shape does not broadcast. */
static int fill_bias(op_ctx *ctx, const ifd_tensor *c, const void *cdata, bool exact, size_t m,
                     size_t n, size_t es, void *y)
{
    size_t rows = c->rank == 2 ? (size_t)c->dims[0] : 1;
    size_t cols = c->rank >= 1 ? (size_t)c->dims[c->rank - 1] : 1;
    if ((rows != 1 && rows != m) || (cols != 1 && cols != n) ||
        (exact && (c->rank != 2 || rows != m || cols != n))) {
        char buf[128];
        return op_fail(ctx, "C of shape %s does not broadcast to [%zu,%zu]",
                       shape_to_string(c->rank, c->dims, buf, sizeof(buf)), m, n);
    }
    for (size_t i = 0; i < m; i++) {
        const char *src = (const char *)cdata + (rows == 1 ? 0 : i) * cols * es;
        char *dst = (char *)y + i * n * es;
        if (cols == n)
            memcpy(dst, src, n * es);
        else
            for (size_t j = 0; j < n; j++)
                memcpy(dst + j * es, src, es);
    }
    return 0;
}

static int gemm_run(op_ctx *ctx)
{
    const gemm_state *st = ctx->node->state;
    const ifd_tensor *a = op_input(ctx, 0), *b = op_input(ctx, 1), *c = op_input(ctx, 2);
    if (!a || !b)
        return op_fail(ctx, "missing input");
    if (a->dtype != b->dtype || (c && c->dtype != a->dtype))
        return op_fail(ctx, "A, B and C must share one dtype");
    if (a->rank != 2 || b->rank != 2 || (c && c->rank > 2))
        return op_fail(ctx, "A and B must be 2-D and C at most 2-D");
    size_t m = (size_t)a->dims[st->trans_a ? 1 : 0], ka = (size_t)a->dims[st->trans_a ? 0 : 1];
    size_t kb = (size_t)b->dims[st->trans_b ? 1 : 0], n = (size_t)b->dims[st->trans_b ? 0 : 1];
    if (ka != kb)
        return op_fail(ctx, "inner dimensions differ (%zu vs %zu)", ka, kb);
    size_t k = ka;
    int64_t dims[2] = {(int64_t)m, (int64_t)n};
    ifd_tensor *y = op_output(ctx, 0, a->dtype, 2, dims);
    if (!y)
        return -1;
    if (m == 0 || n == 0)
        return 0;
    bool with_c = c && st->beta != 0.0f;
    size_t lda = (size_t)a->dims[1], ldb = (size_t)b->dims[1];

    if (is_float_family(a->dtype)) {
        bool use_packed = st->b.data && st->b.k == k && st->b.n == n;
        const float *af = float_view(ctx, a);
        const float *bf = use_packed ? NULL : float_view(ctx, b);
        float *yf = float_result(ctx, y);
        if (!af || (!use_packed && !bf) || !yf)
            return -1;
        const float *cf = with_c ? float_view(ctx, c) : NULL;
        if (with_c && !cf)
            return -1;
        /* a bias row (a Linear layer) or a fused clamp: in row blocks, as
         * MatMul's fused bias (run_row_blocks) */
        bool row_c = with_c && !st->exact_c && c->rank >= 1 && ifd_tensor_count(c) == (int64_t)n &&
                     c->dims[c->rank - 1] == (int64_t)n;
        if (!st->trans_a && (row_c || (!with_c && st->epilogue.clamp))) {
            rows_job job = {.m = m, .n = n, .k = k, .block = 0, .a = af, .b = use_packed ? (gemm_operand){st->b.data, 0, false, true}
                                                                              : (gemm_operand){bf, ldb, st->trans_b, false},
                            .y = yf, .alpha = st->alpha, .beta = st->beta,
                            .bias = row_c ? cf : NULL, .epilogue = &st->epilogue};
            run_row_blocks(&job, op_threadpool(ctx));
            from_floats(y->dtype, yf, y->data, m * n);
            return 0;
        }
        if (with_c && fill_bias(ctx, c, cf, st->exact_c, m, n, sizeof(float), yf) != 0)
            return -1;
        gemm_operand oa = {af, lda, st->trans_a, false};
        gemm_operand ob = {bf, ldb, st->trans_b, false};
        if (use_packed)
            ob = (gemm_operand){st->b.data, 0, false, true};
        gemm_f32_ex(m, n, k, st->alpha, oa, ob, with_c ? st->beta : 0.0f, yf, n,
                    op_threadpool(ctx));
        epilogue_apply(&st->epilogue, yf, m * n);
        from_floats(y->dtype, yf, y->data, m * n);
        return 0;
    }
    size_t es = ifd_dtype_size(a->dtype);
    if (with_c && fill_bias(ctx, c, c->data, st->exact_c, m, n, es, y->data) != 0)
        return -1;
    if (a->dtype == IFD_DOUBLE) {
        gemm_f64(st->trans_a, st->trans_b, m, n, k, st->alpha, a->data, lda, b->data, ldb,
                 with_c ? st->beta : 0.0, y->data, n);
        return 0;
    }
    size_t a_rs = st->trans_a ? 1 : lda, a_cs = st->trans_a ? lda : 1;
    size_t b_rs = st->trans_b ? 1 : ldb, b_cs = st->trans_b ? ldb : 1;
    int_product(a->dtype, m, n, k, (int64_t)st->alpha, a->data, a_rs, a_cs, b->data, b_rs, b_cs,
                with_c ? (int64_t)st->beta : 0, y->data);
    return 0;
}

/* ---- MatMulInteger and QLinearMatMul -------------------------------------- */

static bool is_8bit(ifd_dtype d) { return d == IFD_INT8 || d == IFD_UINT8; }

static int32_t int8_at(const ifd_tensor *t, size_t i)
{
    return t->dtype == IFD_INT8 ? ((const int8_t *)t->data)[i] : ((const uint8_t *)t->data)[i];
}

/* A quantization parameter is per tensor (one element), per row of A / per
 * column of B (`per` elements), or per row/column of each matrix of the
 * operand (`mats * per` elements). */
static bool param_count_ok(const ifd_tensor *q, size_t per, size_t mats)
{
    size_t count = (size_t)ifd_tensor_count(q);
    return count == 1 || count == per || count == per * mats;
}

static size_t param_index(const ifd_tensor *q, size_t per, size_t mat, size_t idx)
{
    size_t count = (size_t)ifd_tensor_count(q);
    return count == 1 ? 0 : count == per ? idx : mat * per + idx;
}

/* x - zero_point as int32 for every element of an 8-bit operand; `row_axis`
 * says whether the parameter follows rows (A) or columns (B). */
static int32_t *widen_operand(op_ctx *ctx, const ifd_tensor *x, const ifd_tensor *zp, size_t rows,
                              size_t cols, bool per_row)
{
    size_t count = (size_t)ifd_tensor_count(x);
    int32_t *out = op_scratch(ctx, count * sizeof(int32_t) + 1);
    if (!out)
        return NULL;
    size_t mat_size = rows * cols;
    for (size_t e = 0; e < count; e++) {
        int32_t z = 0;
        if (zp) {
            size_t mat = mat_size ? e / mat_size : 0, in = mat_size ? e % mat_size : 0;
            size_t idx = per_row ? in / cols : in % cols;
            z = int8_at(zp, param_index(zp, per_row ? rows : cols, mat, idx));
        }
        out[e] = int8_at(x, e) - z;
    }
    return out;
}

static int check_param(op_ctx *ctx, const ifd_tensor *q, const char *name, const ifd_tensor *x,
                       size_t per)
{
    if (!q)
        return 0;
    size_t mats = 1;
    for (int d = 0; d + 2 < x->rank; d++)
        mats *= (size_t)x->dims[d];
    if (!param_count_ok(q, per, mats))
        return op_fail(ctx, "%s has %lld elements; expected 1, %zu or %zu", name,
                       (long long)ifd_tensor_count(q), per, per * mats);
    return 0;
}

/* The int32 products of (A - a_zero_point)(B - b_zero_point), batch by batch. */
static int32_t *integer_products(op_ctx *ctx, const product_plan *p, const ifd_tensor *a,
                                 const ifd_tensor *azp, const ifd_tensor *b,
                                 const ifd_tensor *bzp, int32_t *out)
{
    if (check_param(ctx, azp, "a_zero_point", a, p->m) != 0 ||
        check_param(ctx, bzp, "b_zero_point", b, p->n) != 0)
        return NULL;
    int32_t *aw = widen_operand(ctx, a, azp, p->m, p->k, true);
    int32_t *bw = widen_operand(ctx, b, bzp, p->k, p->n, false);
    if (!aw || !bw)
        return NULL;
    for (size_t t = 0; t < p->batch; t++) {
        size_t ai, bi;
        plan_item(p, t, &ai, &bi);
        int_product(IFD_INT32, p->m, p->n, p->k, 1, aw + ai * p->m * p->k, p->k, 1,
                    bw + bi * p->k * p->n, p->n, 1, 0, out + t * p->m * p->n);
    }
    return out;
}

static int matmul_integer_prepare(op_node *node, ifd_error *err)
{
    const value_info *a = node->inputs[0], *b = node->n_inputs > 1 ? node->inputs[1] : NULL;
    if (!a || !b)
        return op_prepare_fail(node, err, "needs inputs A and B");
    if (!is_8bit(a->dtype) || !is_8bit(b->dtype))
        return op_prepare_fail(node, err, "A and B must be int8 or uint8, got %s and %s",
                               ifd_dtype_name(a->dtype), ifd_dtype_name(b->dtype));
    for (int i = 2; i < node->n_inputs && i < 4; i++)
        if (node->inputs[i] && node->inputs[i]->dtype != node->inputs[i - 2]->dtype)
            return op_prepare_fail(node, err, "zero point %d must have its operand's dtype", i);
    value_info *y = node->outputs[0];
    y->kind = IFD_VALUE_TENSOR;
    y->dtype = IFD_INT32;
    y->rank = -1;
    infer_matmul_shape(a, b, y);
    return 0;
}

static int matmul_integer_run(op_ctx *ctx)
{
    const ifd_tensor *a = op_input(ctx, 0), *b = op_input(ctx, 1);
    const ifd_tensor *azp = op_input(ctx, 2), *bzp = op_input(ctx, 3);
    if (!a || !b || !is_8bit(a->dtype) || !is_8bit(b->dtype))
        return op_fail(ctx, "A and B must be int8 or uint8 tensors");
    if ((azp && azp->dtype != a->dtype) || (bzp && bzp->dtype != b->dtype))
        return op_fail(ctx, "zero points must have their operand's dtype");
    product_plan p;
    if (plan_matmul(ctx, a, b, &p) != 0)
        return -1;
    ifd_tensor *y = op_output(ctx, 0, IFD_INT32, p.out_rank, p.out_dims);
    if (!y)
        return -1;
    if (p.batch * p.m * p.n == 0)
        return 0;
    return integer_products(ctx, &p, a, azp, b, bzp, y->data) ? 0 : -1;
}

static int qlinear_matmul_prepare(op_node *node, ifd_error *err)
{
    if (node->n_inputs < 8)
        return op_prepare_fail(node, err, "needs 8 inputs");
    for (int i = 0; i < 8; i++)
        if (!node->inputs[i])
            return op_prepare_fail(node, err, "input %d is required", i);
    const value_info *a = node->inputs[0], *b = node->inputs[3], *yzp = node->inputs[7];
    if (!is_8bit(a->dtype) || !is_8bit(b->dtype) || !is_8bit(yzp->dtype))
        return op_prepare_fail(node, err, "a, b and y_zero_point must be int8 or uint8");
    if (node->inputs[2]->dtype != a->dtype || node->inputs[5]->dtype != b->dtype)
        return op_prepare_fail(node, err, "zero points must have their operand's dtype");
    if (node->inputs[1]->dtype != IFD_FLOAT || node->inputs[4]->dtype != IFD_FLOAT ||
        node->inputs[6]->dtype != IFD_FLOAT)
        return op_prepare_fail(node, err, "scales must be float");
    value_info *y = node->outputs[0];
    y->kind = IFD_VALUE_TENSOR;
    y->dtype = yzp->dtype;
    y->rank = -1;
    infer_matmul_shape(a, b, y);
    return 0;
}

static int qlinear_matmul_run(op_ctx *ctx)
{
    const ifd_tensor *in[8];
    for (int i = 0; i < 8; i++)
        if (!(in[i] = op_input(ctx, i)))
            return op_fail(ctx, "input %d is missing", i);
    const ifd_tensor *a = in[0], *as = in[1], *azp = in[2], *b = in[3], *bs = in[4],
                     *bzp = in[5], *ys = in[6], *yzp = in[7];
    if (!is_8bit(a->dtype) || !is_8bit(b->dtype) || !is_8bit(yzp->dtype) ||
        azp->dtype != a->dtype || bzp->dtype != b->dtype || as->dtype != IFD_FLOAT ||
        bs->dtype != IFD_FLOAT || ys->dtype != IFD_FLOAT)
        return op_fail(ctx, "unsupported input dtypes");
    if (ifd_tensor_count(ys) != 1 || ifd_tensor_count(yzp) != 1)
        return op_fail(ctx, "y_scale and y_zero_point must have one element");
    product_plan p;
    if (plan_matmul(ctx, a, b, &p) != 0)
        return -1;
    if (check_param(ctx, as, "a_scale", a, p.m) != 0 ||
        check_param(ctx, bs, "b_scale", b, p.n) != 0)
        return -1;
    ifd_tensor *y = op_output(ctx, 0, yzp->dtype, p.out_rank, p.out_dims);
    if (!y)
        return -1;
    size_t mn = p.m * p.n;
    if (p.batch * mn == 0)
        return 0;
    int32_t *acc = op_scratch(ctx, p.batch * mn * sizeof(int32_t));
    if (!acc || !integer_products(ctx, &p, a, azp, b, bzp, acc))
        return -1;
    const float *asv = as->data, *bsv = bs->data;
    float ysv = *(const float *)ys->data;
    float zero = (float)int8_at(yzp, 0);
    float lo = yzp->dtype == IFD_INT8 ? -128.0f : 0.0f, hi = yzp->dtype == IFD_INT8 ? 127.0f : 255.0f;
    for (size_t t = 0; t < p.batch; t++) {
        size_t ai, bi;
        plan_item(&p, t, &ai, &bi);
        for (size_t i = 0; i < p.m; i++)
            for (size_t j = 0; j < p.n; j++) {
                float scale = asv[param_index(as, p.m, ai, i)] * bsv[param_index(bs, p.n, bi, j)];
                /* round to nearest, ties to even, as the spec asks */
                float v = nearbyintf((float)acc[t * mn + i * p.n + j] * scale / ysv) + zero;
                v = v < lo ? lo : v > hi ? hi : v;
                if (isnan(v))
                    v = zero;
                if (yzp->dtype == IFD_INT8)
                    ((int8_t *)y->data)[t * mn + i * p.n + j] = (int8_t)v;
                else
                    ((uint8_t *)y->data)[t * mn + i * p.n + j] = (uint8_t)v;
            }
    }
    return 0;
}

/* ---- fusion (fusable.h) ------------------------------------------------------ */

bool product_can_fuse(const op_node *node)
{
    /* asked of every prepared node: look at the inputs only of a Gemm or MatMul */
    bool gemm = strcmp(node->op_type, "Gemm") == 0, matmul = strcmp(node->op_type, "MatMul") == 0;
    if (node->domain[0] || !node->state || !(gemm || matmul) || node->n_inputs < 2 || !node->inputs[0] ||
        node->inputs[0]->dtype != IFD_FLOAT)
        return false;
    if (gemm)
        return true;
    const matmul_state *st = node->state;
    return st->b.data && node->inputs[1] && node->inputs[1]->constant && node->inputs[1]->constant->rank == 2;
}

bool matmul_fuse_column_split(op_node *matmul, int parts, const size_t *begin, const size_t *end)
{
    if (!product_can_fuse(matmul) || strcmp(matmul->op_type, "MatMul") != 0 || parts < 1)
        return false;
    matmul_state *st = matmul->state;
    if (st->n_parts || st->viewed || st->attention)
        return false;
    for (int i = 0; i < parts; i++)
        if (!gemm_packed_b_columns(st->b.data, st->b.k, st->b.n, begin[i], end[i]))
            return false;
    st->part_begin = malloc((size_t)parts * sizeof(size_t));
    st->part_end = malloc((size_t)parts * sizeof(size_t));
    if (!st->part_begin || !st->part_end) {
        free(st->part_begin);
        free(st->part_end);
        st->part_begin = st->part_end = NULL;
        return false;
    }
    memcpy(st->part_begin, begin, (size_t)parts * sizeof(size_t));
    memcpy(st->part_end, end, (size_t)parts * sizeof(size_t));
    st->n_parts = parts;
    return true;
}

bool matmul_fuse_bias(op_node *matmul, const float *bias, size_t n)
{
    if (!product_can_fuse(matmul) || strcmp(matmul->op_type, "MatMul") != 0)
        return false;
    matmul_state *st = matmul->state;
    if (st->fused_bias || st->epilogue.clamp || st->b.n != n)
        return false;
    st->fused_bias = malloc(n * sizeof(float));
    if (!st->fused_bias)
        return false;
    memcpy(st->fused_bias, bias, n * sizeof(float));
    return true;
}

/* Whether a 3-D perm keeps a matrix axis contiguous: the stored last axis
 * must be the logical rows or columns (the columns for the output). */
static bool perm_ok(const int64_t *perm, size_t n, bool output)
{
    if (n != 3)
        return false;
    bool seen[3] = {false, false, false};
    for (size_t i = 0; i < 3; i++) {
        if (perm[i] < 0 || perm[i] > 2 || seen[perm[i]])
            return false;
        seen[perm[i]] = true;
    }
    return perm[2] == 2 || (!output && perm[1] == 2);
}

/* The packed B of a float Gemm or MatMul, or NULL. */
static packed_operand *packed_b_of(op_node *node)
{
    if (node->domain[0] || !node->state)
        return NULL;
    packed_operand *p = NULL;
    if (strcmp(node->op_type, "Gemm") == 0)
        p = &((gemm_state *)node->state)->b;
    else if (strcmp(node->op_type, "MatMul") == 0)
        p = &((matmul_state *)node->state)->b;
    return p && p->data ? p : NULL;
}

const float *product_packed_b(op_node *node, size_t *k, size_t *n)
{
    const packed_operand *p = packed_b_of(node);
    if (!p)
        return NULL;
    *k = p->k;
    *n = p->n;
    return p->data;
}

uint64_t product_packed_b_hash(op_node *node)
{
    const packed_operand *p = packed_b_of(node);
    if (!p)
        return 0;
    /* FNV-1a over the packed floats' bit patterns: equal weights hash equal,
     * and product_share_packed_b compares the bytes before sharing */
    uint64_t h = 1469598103934665603ull;
    size_t count = gemm_packed_b_floats(p->k, p->n);
    for (size_t i = 0; i < count; i++) {
        uint32_t bits;
        memcpy(&bits, &p->data[i], sizeof(bits));
        h = (h ^ bits) * 1099511628211ull;
    }
    return h;
}

bool product_share_packed_b(op_node *keep, op_node *other)
{
    packed_operand *a = packed_b_of(keep), *b = packed_b_of(other);
    if (!a || !b || a == b || a->data == b->data || a->k != b->k || a->n != b->n ||
        memcmp(a->data, b->data, gemm_packed_b_floats(a->k, a->n) * sizeof(float)) != 0)
        return false;
    if (!a->refs) {
        a->refs = malloc(sizeof(*a->refs));
        if (!a->refs)
            return false;
        *a->refs = 1;
    }
    packed_release(b);
    *b = *a;
    ++*a->refs;
    return true;
}

bool matmul_can_view(const op_node *node)
{
    if (node->domain[0] || strcmp(node->op_type, "MatMul") != 0 || !node->state ||
        node->n_inputs != 2 || !node->inputs[0] || !node->inputs[1] ||
        node->inputs[0]->dtype != IFD_FLOAT || node->inputs[1]->dtype != IFD_FLOAT)
        return false;
    const matmul_state *st = node->state;
    if (st->b.data || st->fused_bias || st->epilogue.clamp)
        return false;
    /* the strided path multiplies 3-D by 3-D or 2-D: the ranks must be known */
    int ra = node->inputs[0]->rank, rb = node->inputs[1]->rank;
    return ra >= 2 && ra <= 3 && rb >= 2 && rb <= 3 && (ra == 3 || rb == 3);
}

static void start_view(matmul_state *st)
{
    if (st->viewed)
        return;
    for (int o = 0; o < 3; o++)
        for (int i = 0; i < 3; i++)
            st->perm[o][i] = i;
    st->alpha = 1.0f;
    st->viewed = true;
}

bool matmul_fuse_input_transpose(op_node *matmul, int input, const int64_t *perm, size_t n)
{
    if (!matmul_can_view(matmul) || input < 0 || input > 1 || !perm_ok(perm, n, false))
        return false;
    matmul_state *st = matmul->state;
    if (st->viewed && (st->perm[input][0] != 0 || st->perm[input][1] != 1))
        return false; /* one transpose per operand */
    start_view(st);
    for (int i = 0; i < 3; i++)
        st->perm[input][i] = (int)perm[i];
    return true;
}

bool matmul_fuse_output_transpose(op_node *matmul, const int64_t *perm, size_t n)
{
    if (!matmul_can_view(matmul) || !perm_ok(perm, n, true))
        return false;
    matmul_state *st = matmul->state;
    if (st->viewed && (st->perm[2][0] != 0 || st->perm[2][1] != 1))
        return false;
    start_view(st);
    for (int i = 0; i < 3; i++)
        st->perm[2][i] = (int)perm[i];
    return true;
}

bool matmul_fuse_scale(op_node *matmul, float scale)
{
    if (!matmul_can_view(matmul) || !isfinite(scale))
        return false;
    matmul_state *st = matmul->state;
    start_view(st);
    st->alpha *= scale;
    return true;
}

static bool identity_perm(const int *perm)
{
    return perm[0] == 0 && perm[1] == 1 && perm[2] == 2;
}

bool matmul_fuse_attention(op_node *pv, const op_node *qk)
{
    if (!matmul_can_view(pv) || !matmul_can_view(qk) || pv->inputs[1]->rank != 3 ||
        qk->inputs[0]->rank != 3 || qk->inputs[1]->rank != 3)
        return false;
    matmul_state *ps = pv->state;
    const matmul_state *qs = qk->state;
    /* the scores are written and read as they are stored */
    if (ps->attention || qs->attention || (ps->viewed && !identity_perm(ps->perm[0])) ||
        (qs->viewed && !identity_perm(qs->perm[2])))
        return false;
    start_view(ps);
    for (int i = 0; i < 3; i++) {
        ps->perm[0][i] = qs->viewed ? qs->perm[0][i] : i;
        ps->perm_k[i] = qs->viewed ? qs->perm[1][i] : i;
    }
    ps->qk_alpha = qs->viewed ? qs->alpha : 1.0f;
    ps->attention = true;
    return true;
}

bool product_fuse_clamp(op_node *node, float lo, float hi)
{
    if (!product_can_fuse(node))
        return false;
    kernel_epilogue *e = strcmp(node->op_type, "Gemm") == 0 ? &((gemm_state *)node->state)->epilogue
                                                            : &((matmul_state *)node->state)->epilogue;
    if (e->clamp)
        return false;
    *e = (kernel_epilogue){true, lo, hi};
    return true;
}

static const op_def defs[] = {
    {"", "Gemm", 1, 13, gemm_prepare, gemm_run, gemm_free},
    {"", "MatMul", 1, 13, matmul_prepare, matmul_run, matmul_free},
    {"", "MatMulInteger", 10, 10, matmul_integer_prepare, matmul_integer_run, NULL},
    /* QLinearMatMul-21 (onnx 1.16 Operators.md) adds float8 operands and
     * float16/bfloat16 scales; prepare accepts 8-bit integers with float
     * scales only, which compute as version 10. */
    {"", "QLinearMatMul", 10, 21, qlinear_matmul_prepare, qlinear_matmul_run, NULL},
};
OP_FAMILY(ops_gemm, defs);
