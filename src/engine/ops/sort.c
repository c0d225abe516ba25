/*
 * ops/sort.c — TopK and Unique.
 *
 * TopK selects along one axis with a bounded heap per slice (O(n log k))
 * whose root is the worst of the k kept so far, then heap-sorts the k. The
 * order is total: by value (NaN above every number, as numpy sorts it), then
 * by index, so equal values keep the lower index first as ONNX requires.
 * Slices are split into one chunk per thread, each with its own heap.
 *
 * Unique sorts slice indices with a stable merge sort under a lexicographic
 * comparison of the slices, so the first member of each run of equal slices
 * is the first occurrence; sorted=0 then reorders the runs by first
 * occurrence.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../op.h"

typedef void (*range_fn)(void *arg, size_t begin, size_t end);

/* X(sfx, T, dtype, KEY, LOADKEY): KEY orders T exactly (double holds every
 * float, float16 and bfloat16 value). */
#define LOAD_F16(x) ((double)half_to_float(x))
#define LOAD_BF16(x) ((double)bfloat16_to_float(x))
#define LOAD_AS_DOUBLE(x) ((double)(x))
#define LOAD_AS_INT64(x) ((int64_t)(x))
#define LOAD_AS_UINT64(x) ((uint64_t)(x))
#define TOPK_TYPES(X)                                                                     \
    X(f32, float, IFD_FLOAT, double, LOAD_AS_DOUBLE)                                      \
    X(f64, double, IFD_DOUBLE, double, LOAD_AS_DOUBLE)                                    \
    X(f16, uint16_t, IFD_FLOAT16, double, LOAD_F16)                                       \
    X(bf16, uint16_t, IFD_BFLOAT16, double, LOAD_BF16)                                    \
    X(i8, int8_t, IFD_INT8, int64_t, LOAD_AS_INT64)                                       \
    X(u8, uint8_t, IFD_UINT8, uint64_t, LOAD_AS_UINT64)                                   \
    X(i16, int16_t, IFD_INT16, int64_t, LOAD_AS_INT64)                                    \
    X(u16, uint16_t, IFD_UINT16, uint64_t, LOAD_AS_UINT64)                                \
    X(i32, int32_t, IFD_INT32, int64_t, LOAD_AS_INT64)                                    \
    X(u32, uint32_t, IFD_UINT32, uint64_t, LOAD_AS_UINT64)                                \
    X(i64, int64_t, IFD_INT64, int64_t, LOAD_AS_INT64)                                    \
    X(u64, uint64_t, IFD_UINT64, uint64_t, LOAD_AS_UINT64)

/* Total order of keys: NaN above everything and equal to itself. */
#define KEY_CMP(a, b)                                                                     \
    ((a) != (a) ? ((b) != (b) ? 0 : 1)                                                    \
                : (b) != (b) ? -1 : (a) < (b) ? -1 : (a) > (b) ? 1 : 0)

/* ---- TopK ------------------------------------------------------------------------ */

typedef struct topk_state {
    int64_t axis;
    int64_t k;          /* TopK-1's attribute, or a constant K input; -1 otherwise */
    bool largest, sorted; /* TopK-11; earlier versions are largest, sorted */
} topk_state;

typedef struct topk_job {
    const void *x;
    void *values;
    int64_t *indices;
    int64_t n, inner, k, slices, chunks;
    bool largest;
    void *heaps; /* chunks * k entries */
} topk_job;

/* BEFORE(a, b): entry a ranks ahead of entry b in the output. */
#define DEFINE_TOPK(sfx, T, DT, KEY, LOADKEY)                                             \
    typedef struct sfx##_entry {                                                          \
        KEY v;                                                                            \
        int64_t i;                                                                        \
    } sfx##_entry;                                                                        \
    static inline bool sfx##_before(const sfx##_entry *a, const sfx##_entry *b,           \
                                    bool largest)                                         \
    {                                                                                     \
        int c = KEY_CMP(a->v, b->v);                                                      \
        if (largest)                                                                      \
            c = -c;                                                                       \
        return c < 0 || (c == 0 && a->i < b->i);                                          \
    }                                                                                     \
    /* Max-heap on "ranks later": the root is the entry to evict first. */                \
    static void sfx##_sift(sfx##_entry *h, int64_t size, int64_t at, bool largest)        \
    {                                                                                     \
        for (;;) {                                                                        \
            int64_t worst = at, l = 2 * at + 1, r = l + 1;                                \
            if (l < size && sfx##_before(&h[worst], &h[l], largest))                      \
                worst = l;                                                                \
            if (r < size && sfx##_before(&h[worst], &h[r], largest))                      \
                worst = r;                                                                \
            if (worst == at)                                                              \
                return;                                                                   \
            sfx##_entry t = h[at];                                                        \
            h[at] = h[worst];                                                             \
            h[worst] = t;                                                                 \
            at = worst;                                                                   \
        }                                                                                 \
    }                                                                                     \
    static void topk_##sfx(void *arg, size_t begin, size_t end)                           \
    {                                                                                     \
        const topk_job *job = arg;                                                        \
        const int64_t n = job->n, inner = job->inner, k = job->k;                         \
        for (size_t c = begin; c < end; c++) {                                            \
            sfx##_entry *h = (sfx##_entry *)job->heaps + (int64_t)c * k;                  \
            int64_t first = job->slices * (int64_t)c / job->chunks;                       \
            int64_t last = job->slices * ((int64_t)c + 1) / job->chunks;                  \
            for (int64_t s = first; s < last; s++) {                                      \
                int64_t o = s / inner, j = s % inner;                                     \
                const T *x = (const T *)job->x + o * n * inner + j;                       \
                for (int64_t t = 0; t < k; t++) {                                         \
                    h[t].v = LOADKEY(x[t * inner]);                                       \
                    h[t].i = t;                                                           \
                }                                                                         \
                for (int64_t t = k / 2; t-- > 0;)                                         \
                    sfx##_sift(h, k, t, job->largest);                                    \
                for (int64_t t = k; t < n; t++) {                                         \
                    sfx##_entry e = {LOADKEY(x[t * inner]), t};                           \
                    if (sfx##_before(&e, &h[0], job->largest)) {                          \
                        h[0] = e;                                                         \
                        sfx##_sift(h, k, 0, job->largest);                                \
                    }                                                                     \
                }                                                                         \
                for (int64_t size = k; size > 1; size--) {                                \
                    sfx##_entry t = h[0];                                                 \
                    h[0] = h[size - 1];                                                   \
                    h[size - 1] = t;                                                      \
                    sfx##_sift(h, size - 1, 0, job->largest);                             \
                }                                                                         \
                T *vals = (T *)job->values + o * k * inner + j;                           \
                int64_t *idx = job->indices + o * k * inner + j;                          \
                for (int64_t t = 0; t < k; t++) {                                         \
                    vals[t * inner] = x[h[t].i * inner];                                  \
                    idx[t * inner] = h[t].i;                                              \
                }                                                                         \
            }                                                                             \
        }                                                                                 \
    }
TOPK_TYPES(DEFINE_TOPK)

static bool topk_kernel(ifd_dtype dtype, range_fn *fn, size_t *entry_size)
{
    switch (dtype) {
#define CASE(sfx, T, DT, ...)                                                             \
    case DT:                                                                              \
        *fn = topk_##sfx;                                                                 \
        *entry_size = sizeof(sfx##_entry);                                                \
        return true;
        TOPK_TYPES(CASE)
#undef CASE
    default: return false;
    }
}

static int topk_prepare(op_node *node, ifd_error *err)
{
    range_fn fn;
    size_t entry;
    const value_info *x = node->n_inputs > 0 ? node->inputs[0] : NULL;
    if (!x || node->n_outputs < 2)
        return op_prepare_fail(node, err, "needs input X and outputs Values and Indices");
    if (!topk_kernel(x->dtype, &fn, &entry))
        return op_prepare_fail(node, err, "unsupported input type %s", ifd_dtype_name(x->dtype));
    topk_state a = {op_attr_int(node, "axis", -1), -1, true, true};
    if (node->version >= 11) {
        a.largest = op_attr_int(node, "largest", 1) != 0;
        a.sorted = op_attr_int(node, "sorted", 1) != 0;
    }
    if (node->version < 10) {
        /* TopK-1 takes k as an attribute; TopK-10 made it the input K. */
        if (!op_attr_has(node, "k"))
            return op_prepare_fail(node, err, "attribute k is required");
        a.k = op_attr_int(node, "k", 0);
        if (a.k < 0)
            return op_prepare_fail(node, err, "k must not be negative, not %lld",
                                   (long long)a.k);
    } else {
        const value_info *k = node->n_inputs > 1 ? node->inputs[1] : NULL;
        if (!k)
            return op_prepare_fail(node, err, "input K is required");
        if (k->dtype != IFD_INT64)
            return op_prepare_fail(node, err, "K must be int64, not %s",
                                   ifd_dtype_name(k->dtype));
        if (k->constant) {
            if (ifd_tensor_count(k->constant) != 1)
                return op_prepare_fail(node, err, "K must hold one value");
            a.k = ((const int64_t *)k->constant->data)[0];
            if (a.k < 0)
                return op_prepare_fail(node, err, "K must not be negative, not %lld",
                                       (long long)a.k);
        }
    }
    if (x->rank >= 0 && (a.axis < -(int64_t)x->rank || a.axis >= x->rank))
        return op_prepare_fail(node, err, "axis %lld is out of range for rank %d",
                               (long long)a.axis, x->rank);
    topk_state *s = malloc(sizeof(*s));
    if (!s)
        return op_prepare_fail(node, err, "out of memory");
    *s = a;
    node->state = s;
    for (int i = 0; i < 2; i++) {
        value_info *o = node->outputs[i];
        o->kind = IFD_VALUE_TENSOR;
        o->dtype = i == 0 ? x->dtype : IFD_INT64;
        o->rank = x->rank;
        memcpy(o->dims, x->dims, sizeof(o->dims));
        if (x->rank > 0) {
            int axis = (int)(a.axis < 0 ? a.axis + x->rank : a.axis);
            o->dims[axis] = a.k;
        }
    }
    return 0;
}

static int topk_run(op_ctx *ctx)
{
    const topk_state *s = ctx->node->state;
    const ifd_tensor *x = op_input(ctx, 0);
    range_fn fn;
    size_t entry;
    if (!x)
        return op_fail(ctx, "input X is missing");
    if (!topk_kernel(x->dtype, &fn, &entry))
        return op_fail(ctx, "unsupported input type %s", ifd_dtype_name(x->dtype));
    int64_t k = s->k;
    if (k < 0) {
        const ifd_tensor *kt = op_input(ctx, 1);
        if (!kt || kt->dtype != IFD_INT64 || ifd_tensor_count(kt) != 1)
            return op_fail(ctx, "K must be one int64 value");
        k = ((const int64_t *)kt->data)[0];
        if (k < 0)
            return op_fail(ctx, "K must not be negative, not %lld", (long long)k);
    }
    if (s->axis < -(int64_t)x->rank || s->axis >= x->rank)
        return op_fail(ctx, "axis %lld is out of range for rank %d", (long long)s->axis,
                       x->rank);
    int axis = (int)(s->axis < 0 ? s->axis + x->rank : s->axis);
    int64_t n = x->dims[axis];
    if (k > n)
        return op_fail(ctx, "K %lld is larger than the axis size %lld", (long long)k,
                       (long long)n);
    int64_t dims[IFD_MAX_RANK];
    memcpy(dims, x->dims, sizeof(dims));
    dims[axis] = k;
    ifd_tensor *values = op_output(ctx, 0, x->dtype, x->rank, dims);
    ifd_tensor *indices = values ? op_output(ctx, 1, IFD_INT64, x->rank, dims) : NULL;
    if (!indices)
        return -1;
    int64_t out_count = ifd_tensor_count(values);
    if (out_count == 0)
        return 0;
    topk_job job = {x->data, values->data, indices->data, n, 1, k, 0, 1, s->largest, NULL};
    for (int d = axis + 1; d < x->rank; d++)
        job.inner *= x->dims[d];
    job.slices = out_count / k;
    int64_t threads = threadpool_size(op_threadpool(ctx));
    if (job.slices * n >= 16384 && threads > 1)
        job.chunks = job.slices < threads ? job.slices : threads;
    job.heaps = op_scratch(ctx, (size_t)(job.chunks * k) * entry);
    if (!job.heaps)
        return -1;
    op_parallel_for(ctx, (size_t)job.chunks, 1, fn, &job);
    return 0;
}

/* ---- Unique ------------------------------------------------------------------------ */

typedef int (*elem_cmp_fn)(const void *data, int64_t a, int64_t b);

#define DEFINE_CMP(sfx, T, DT, KEY, LOADKEY)                                              \
    static int cmp_##sfx(const void *data, int64_t a, int64_t b)                          \
    {                                                                                     \
        KEY va = LOADKEY(((const T *)data)[a]), vb = LOADKEY(((const T *)data)[b]);       \
        return KEY_CMP(va, vb);                                                           \
    }
TOPK_TYPES(DEFINE_CMP)

static int cmp_bool(const void *data, int64_t a, int64_t b)
{
    uint8_t va = ((const uint8_t *)data)[a] != 0, vb = ((const uint8_t *)data)[b] != 0;
    return (va > vb) - (va < vb);
}

static int cmp_string(const void *data, int64_t a, int64_t b)
{
    const ifd_string *sa = (const ifd_string *)data + a, *sb = (const ifd_string *)data + b;
    size_t n = sa->size < sb->size ? sa->size : sb->size;
    int c = n ? memcmp(sa->data, sb->data, n) : 0;
    if (c)
        return c < 0 ? -1 : 1;
    return (sa->size > sb->size) - (sa->size < sb->size);
}

/* Complex numbers: by real part, then imaginary part. */
static int cmp_complex64(const void *data, int64_t a, int64_t b)
{
    const float *f = data;
    int c = KEY_CMP(f[2 * a], f[2 * b]);
    return c ? c : KEY_CMP(f[2 * a + 1], f[2 * b + 1]);
}

static int cmp_complex128(const void *data, int64_t a, int64_t b)
{
    const double *f = data;
    int c = KEY_CMP(f[2 * a], f[2 * b]);
    return c ? c : KEY_CMP(f[2 * a + 1], f[2 * b + 1]);
}

static elem_cmp_fn unique_cmp(ifd_dtype dtype)
{
    switch (dtype) {
#define CASE(sfx, T, DT, ...) case DT: return cmp_##sfx;
        TOPK_TYPES(CASE)
#undef CASE
    case IFD_BOOL: return cmp_bool;
    case IFD_STRING: return cmp_string;
    case IFD_COMPLEX64: return cmp_complex64;
    case IFD_COMPLEX128: return cmp_complex128;
    default: return NULL;
    }
}

typedef struct unique_view {
    const void *data;
    elem_cmp_fn cmp;
    int64_t outer, n, inner;
} unique_view;

/* Compare slices a and b (indices along the axis) element by element. */
static int slice_cmp(const unique_view *v, int64_t a, int64_t b)
{
    for (int64_t o = 0; o < v->outer; o++)
        for (int64_t i = 0; i < v->inner; i++) {
            int c = v->cmp(v->data, (o * v->n + a) * v->inner + i,
                           (o * v->n + b) * v->inner + i);
            if (c)
                return c;
        }
    return 0;
}

/* Stable bottom-up merge sort of perm[n] with tmp[n]; key(i) orders by
 * slice when view is set, else by the values in `by`. */
static void merge_sort(int64_t *perm, int64_t *tmp, int64_t n, const unique_view *view,
                       const int64_t *by)
{
    for (int64_t width = 1; width < n; width *= 2) {
        for (int64_t lo = 0; lo < n; lo += 2 * width) {
            int64_t mid = lo + width < n ? lo + width : n;
            int64_t hi = lo + 2 * width < n ? lo + 2 * width : n;
            int64_t i = lo, j = mid, t = lo;
            while (i < mid && j < hi) {
                bool right_first = view ? slice_cmp(view, perm[j], perm[i]) < 0
                                        : by[perm[j]] < by[perm[i]];
                tmp[t++] = right_first ? perm[j++] : perm[i++];
            }
            while (i < mid)
                tmp[t++] = perm[i++];
            while (j < hi)
                tmp[t++] = perm[j++];
        }
        memcpy(perm, tmp, (size_t)n * sizeof(int64_t));
    }
}

typedef struct unique_state {
    bool has_axis, sorted;
    int64_t axis;
} unique_state;

static int unique_prepare(op_node *node, ifd_error *err)
{
    const value_info *x = node->n_inputs > 0 ? node->inputs[0] : NULL;
    if (!x || node->n_outputs < 1)
        return op_prepare_fail(node, err, "needs input X and output Y");
    if (!unique_cmp(x->dtype))
        return op_prepare_fail(node, err, "unsupported input type %s", ifd_dtype_name(x->dtype));
    unique_state a = {op_attr_has(node, "axis"), op_attr_int(node, "sorted", 1) != 0,
                      op_attr_int(node, "axis", 0)};
    if (a.has_axis && x->rank >= 0 && (a.axis < -(int64_t)x->rank || a.axis >= x->rank))
        return op_prepare_fail(node, err, "axis %lld is out of range for rank %d",
                               (long long)a.axis, x->rank);
    unique_state *s = malloc(sizeof(*s));
    if (!s)
        return op_prepare_fail(node, err, "out of memory");
    *s = a;
    node->state = s;
    for (int i = 0; i < node->n_outputs && i < 4; i++) {
        value_info *o = node->outputs[i];
        o->kind = IFD_VALUE_TENSOR;
        o->dtype = i == 0 ? x->dtype : IFD_INT64;
        o->rank = i == 0 && a.has_axis ? x->rank : 1;
        for (int d = 0; d < IFD_MAX_RANK; d++)
            o->dims[d] = i == 0 && a.has_axis && d < x->rank ? x->dims[d] : -1;
        if (i == 0 && a.has_axis && x->rank > 0)
            o->dims[a.axis < 0 ? a.axis + x->rank : a.axis] = -1;
    }
    return 0;
}

static int unique_run(op_ctx *ctx)
{
    const unique_state *s = ctx->node->state;
    const ifd_tensor *x = op_input(ctx, 0);
    if (!x)
        return op_fail(ctx, "input X is missing");
    unique_view view = {x->data, unique_cmp(x->dtype), 1, ifd_tensor_count(x), 1};
    if (!view.cmp)
        return op_fail(ctx, "unsupported input type %s", ifd_dtype_name(x->dtype));
    int axis = 0;
    if (s->has_axis) {
        if (s->axis < -(int64_t)x->rank || s->axis >= x->rank)
            return op_fail(ctx, "axis %lld is out of range for rank %d", (long long)s->axis,
                           x->rank);
        axis = (int)(s->axis < 0 ? s->axis + x->rank : s->axis);
        view.n = x->dims[axis];
        for (int d = 0; d < x->rank; d++) {
            if (d < axis)
                view.outer *= x->dims[d];
            else if (d > axis)
                view.inner *= x->dims[d];
        }
    }
    int64_t n = view.n;
    int64_t *perm = op_scratch(ctx, (size_t)(4 * n + 1) * sizeof(int64_t));
    if (!perm)
        return -1;
    int64_t *tmp = perm + n, *first = tmp + n, *group_of = first + n;
    for (int64_t i = 0; i < n; i++)
        perm[i] = i;
    merge_sort(perm, tmp, n, &view, NULL);

    /* Runs of equal slices: first[g] is the run's first occurrence. */
    int64_t groups = 0;
    for (int64_t i = 0; i < n; i++) {
        if (i == 0 || slice_cmp(&view, perm[i - 1], perm[i]) != 0)
            first[groups++] = perm[i];
        group_of[perm[i]] = groups - 1;
    }
    /* order[r] = the run shown at output position r; rank[g] its inverse. */
    int64_t *order = tmp, *rank = perm;
    for (int64_t g = 0; g < groups; g++)
        order[g] = g;
    if (!s->sorted) {
        int64_t *spare = rank; /* perm is free again */
        merge_sort(order, spare, groups, NULL, first);
    }
    for (int64_t r = 0; r < groups; r++)
        rank[order[r]] = r;

    int64_t ydims[IFD_MAX_RANK];
    int yrank = 1;
    ydims[0] = groups;
    if (s->has_axis) {
        yrank = x->rank;
        memcpy(ydims, x->dims, sizeof(ydims));
        ydims[axis] = groups;
    }
    ifd_tensor *y = op_output(ctx, 0, x->dtype, yrank, ydims);
    if (!y)
        return -1;
    size_t esize = ifd_dtype_size(x->dtype);
    for (int64_t o = 0; o < view.outer; o++)
        for (int64_t r = 0; r < groups; r++) {
            int64_t src = (o * n + first[order[r]]) * view.inner;
            int64_t dst = (o * groups + r) * view.inner;
            if (x->dtype == IFD_STRING) {
                if (!strings_copy((ifd_string *)y->data + dst, (const ifd_string *)x->data + src,
                                  (size_t)view.inner))
                    return op_fail(ctx, "out of memory");
            } else if (view.inner > 0) {
                memcpy((char *)y->data + (size_t)dst * esize,
                       (const char *)x->data + (size_t)src * esize, (size_t)view.inner * esize);
            }
        }
    if (ctx->node->n_outputs > 1) {
        ifd_tensor *t = op_output(ctx, 1, IFD_INT64, 1, &groups);
        if (!t)
            return -1;
        for (int64_t r = 0; r < groups; r++)
            ((int64_t *)t->data)[r] = first[order[r]];
    }
    if (ctx->node->n_outputs > 2) {
        ifd_tensor *t = op_output(ctx, 2, IFD_INT64, 1, &n);
        if (!t)
            return -1;
        for (int64_t i = 0; i < n; i++)
            ((int64_t *)t->data)[i] = rank[group_of[i]];
    }
    if (ctx->node->n_outputs > 3) {
        ifd_tensor *t = op_output(ctx, 3, IFD_INT64, 1, &groups);
        if (!t)
            return -1;
        int64_t *counts = t->data;
        memset(counts, 0, (size_t)groups * sizeof(int64_t));
        for (int64_t i = 0; i < n; i++)
            counts[rank[group_of[i]]]++;
    }
    return 0;
}

static const op_def defs[] = {
    /* 1: k attribute; 10: K input; 11: largest, sorted, more types. */
    {"", "TopK", 1, 11, topk_prepare, topk_run, free},
    {"", "Unique", 11, 11, unique_prepare, unique_run, free},
};

OP_FAMILY(ops_sort, defs);
