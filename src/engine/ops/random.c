/*
 * ops/random.c — the random generators (onnx 1.12 Operators.md):
 * RandomUniform-1, RandomNormal-1, RandomUniformLike-1, RandomNormalLike-1,
 * Bernoulli-15 and Multinomial-7.
 *
 * Each draw comes from xoshiro256** seeded through splitmix64. With the
 * `seed` attribute every run of the node gives the same output (same seed,
 * same output, on every session and thread); without it each run takes a
 * fresh seed from a process-wide counter mixed with the clock. The stream is
 * inferd's own: ONNX promises no particular values for a seed (its backend
 * cases for these operators are "informational"), so tests check shapes,
 * dtypes, ranges and statistics, and that one seed repeats.
 *
 * Normal draws use Box-Muller on two uniforms in (0, 1]; Bernoulli is
 * uniform < p; Multinomial draws class indexes from softmax(input) by
 * inverting the cumulative distribution.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "op_util.h"

typedef enum random_kind {
    RANDOM_UNIFORM,
    RANDOM_NORMAL,
    RANDOM_BERNOULLI,
    RANDOM_MULTINOMIAL
} random_kind;

typedef struct random_state {
    random_kind kind;
    bool like;            /* shape from input 0 */
    bool seeded;
    uint64_t seed;
    double a, b;          /* low, high or mean, scale */
    ifd_dtype dtype;
    int rank;             /* RandomUniform/RandomNormal's `shape` */
    int64_t dims[IFD_MAX_RANK];
    int64_t sample_size;  /* Multinomial */
} random_state;

typedef struct rng {
    uint64_t s[4];
} rng;

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void rng_seed(rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0], s[3] ^= s[1], s[1] ^= s[2], s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Uniform in [0, 1) with 53 random bits. */
static double rng_uniform(rng *r)
{
    return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

static double rng_normal(rng *r)
{
    double u1 = 1.0 - rng_uniform(r), u2 = rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

static uint64_t fresh_seed(void)
{
    static atomic_uint_fast64_t counter;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t x = (uint64_t)now.tv_nsec ^ ((uint64_t)now.tv_sec << 30) ^
                 (uint64_t)atomic_fetch_add(&counter, 1) * 0xD1B54A32D192ED03ull;
    return splitmix64(&x);
}

static int random_prepare(op_node *node, ifd_error *err)
{
    random_state *st = calloc(1, sizeof(*st));
    if (!st)
        return op_prepare_fail(node, err, "out of memory");
    node->state = st;
    const char *op = node->op_type;
    st->like = strstr(op, "Like") != NULL;
    if (strncmp(op, "RandomUniform", 13) == 0) {
        st->kind = RANDOM_UNIFORM;
        st->a = op_attr_float(node, "low", 0.0f), st->b = op_attr_float(node, "high", 1.0f);
        if (!(st->a <= st->b))
            return op_prepare_fail(node, err, "low %g is above high %g", st->a, st->b);
    } else if (strncmp(op, "RandomNormal", 12) == 0) {
        st->kind = RANDOM_NORMAL;
        st->a = op_attr_float(node, "mean", 0.0f), st->b = op_attr_float(node, "scale", 1.0f);
    } else if (strcmp(op, "Bernoulli") == 0) {
        st->kind = RANDOM_BERNOULLI, st->like = true;
    } else {
        st->kind = RANDOM_MULTINOMIAL;
        st->sample_size = op_attr_int(node, "sample_size", 1);
        if (st->sample_size < 1)
            return op_prepare_fail(node, err, "sample_size %lld must be positive",
                                   (long long)st->sample_size);
    }
    st->seeded = op_attr_has(node, "seed");
    if (st->seeded) {
        float seed = op_attr_float(node, "seed", 0.0f);
        uint32_t bits;
        memcpy(&bits, &seed, sizeof(bits));
        st->seed = bits;
    }
    const value_info *in = NULL;
    if (st->like || st->kind == RANDOM_MULTINOMIAL) {
        if (check_input_tensor(node, 0, err) != 0)
            return -1;
        in = node->inputs[0];
    }
    ifd_dtype fallback = in && st->kind != RANDOM_MULTINOMIAL ? in->dtype : IFD_FLOAT;
    if (st->kind == RANDOM_MULTINOMIAL)
        fallback = IFD_INT32;
    int64_t dtype = op_attr_int(node, "dtype", fallback);
    if (dtype <= 0 || dtype > IFD_BFLOAT16)
        return op_prepare_fail(node, err, "dtype %lld is not a tensor type", (long long)dtype);
    st->dtype = (ifd_dtype)dtype;
    switch (st->kind) {
    case RANDOM_UNIFORM:
    case RANDOM_NORMAL:
        if (st->dtype != IFD_FLOAT && st->dtype != IFD_DOUBLE && st->dtype != IFD_FLOAT16)
            return op_prepare_fail(node, err, "dtype %s is not float16, float or double",
                                   ifd_dtype_name(st->dtype));
        break;
    case RANDOM_BERNOULLI:
        if (!dtype_is_float(in->dtype) || in->dtype == IFD_BFLOAT16)
            return op_prepare_fail(node, err, "input has dtype %s; float16, float or double "
                                   "probabilities expected", ifd_dtype_name(in->dtype));
        if (!dtype_is_numeric(st->dtype) && st->dtype != IFD_BOOL)
            return op_prepare_fail(node, err, "dtype %s is not numeric or bool",
                                   ifd_dtype_name(st->dtype));
        break;
    case RANDOM_MULTINOMIAL:
        if (!dtype_is_float(in->dtype) || in->dtype == IFD_BFLOAT16)
            return op_prepare_fail(node, err, "input has dtype %s; float16, float or double "
                                   "logits expected", ifd_dtype_name(in->dtype));
        if (st->dtype != IFD_INT32 && st->dtype != IFD_INT64)
            return op_prepare_fail(node, err, "dtype %s is not int32 or int64",
                                   ifd_dtype_name(st->dtype));
        if (in->rank >= 0 && in->rank != 2)
            return op_prepare_fail(node, err, "input has rank %d; [batch, classes] expected",
                                   in->rank);
        break;
    }
    if (st->kind == RANDOM_MULTINOMIAL) {
        int64_t dims[2] = {in->rank == 2 ? in->dims[0] : -1, st->sample_size};
        set_output(node, 0, st->dtype, 2, dims);
    } else if (st->like) {
        set_output(node, 0, st->dtype, in->rank, in->dims);
    } else {
        const int64_t *shape;
        size_t rank = op_attr_ints(node, "shape", &shape);
        if (!op_attr_has(node, "shape"))
            return op_prepare_fail(node, err, "attribute 'shape' is required");
        if (rank > IFD_MAX_RANK)
            return op_prepare_fail(node, err, "shape has rank %zu; at most %d", rank, IFD_MAX_RANK);
        int64_t count;
        if (!shape_count((int)rank, shape, &count))
            return op_prepare_fail(node, err, "shape has a negative or too large dimension");
        st->rank = (int)rank;
        if (rank) /* an empty shape (a scalar) may come with no array at all */
            memcpy(st->dims, shape, rank * sizeof(int64_t));
        set_output(node, 0, st->dtype, st->rank, st->dims);
    }
    return 0;
}

static int random_run(op_ctx *ctx)
{
    const random_state *st = ctx->node->state;
    rng r;
    rng_seed(&r, st->seeded ? st->seed : fresh_seed());
    const ifd_tensor *in = (st->like || st->kind == RANDOM_MULTINOMIAL) ? op_input(ctx, 0) : NULL;
    if (st->kind == RANDOM_MULTINOMIAL) {
        if (in->rank != 2)
            return op_fail(ctx, "input has rank %d; [batch, classes] expected", in->rank);
        int64_t batch = in->dims[0], classes = in->dims[1];
        int64_t dims[2] = {batch, st->sample_size};
        ifd_tensor *y = op_output(ctx, 0, st->dtype, 2, dims);
        if (!y)
            return -1;
        if (batch == 0)
            return 0;
        if (classes < 1)
            return op_fail(ctx, "input has no classes");
        double *cdf = op_scratch(ctx, (size_t)classes * sizeof(double));
        if (!cdf)
            return -1;
        for (int64_t b = 0; b < batch; b++) {
            double top = -INFINITY;
            for (int64_t c = 0; c < classes; c++) {
                double v = tensor_get_double(in, (size_t)(b * classes + c));
                if (v > top)
                    top = v;
            }
            double sum = 0;
            for (int64_t c = 0; c < classes; c++) {
                double v = tensor_get_double(in, (size_t)(b * classes + c));
                sum += isinf(top) && top < 0 ? 1.0 : exp(v - top);
                cdf[c] = sum;
            }
            if (!(sum > 0) || !isfinite(sum))
                return op_fail(ctx, "row %lld of the input is not a distribution (NaN logits)",
                               (long long)b);
            for (int64_t k = 0; k < st->sample_size; k++) {
                double u = rng_uniform(&r) * sum;
                int64_t lo = 0, hi = classes - 1;
                while (lo < hi) {
                    int64_t mid = lo + (hi - lo) / 2;
                    if (cdf[mid] > u)
                        hi = mid;
                    else
                        lo = mid + 1;
                }
                tensor_set_double(y, (size_t)(b * st->sample_size + k), (double)lo);
            }
        }
        return 0;
    }
    ifd_tensor *y = st->like ? op_output(ctx, 0, st->dtype, in->rank, in->dims)
                             : op_output(ctx, 0, st->dtype, st->rank, st->dims);
    if (!y)
        return -1;
    size_t count = ifd_tensor_count(y);
    for (size_t i = 0; i < count; i++) {
        double v;
        if (st->kind == RANDOM_UNIFORM) {
            v = st->a + (st->b - st->a) * rng_uniform(&r);
        } else if (st->kind == RANDOM_NORMAL) {
            v = st->a + st->b * rng_normal(&r);
        } else {
            double p = tensor_get_double(in, i);
            if (!(p >= 0.0 && p <= 1.0))
                return op_fail(ctx, "probability %g at element %zu is outside [0, 1]", p, i);
            v = rng_uniform(&r) < p ? 1.0 : 0.0;
        }
        if (y->dtype == IFD_BOOL)
            ((uint8_t *)y->data)[i] = v != 0.0;
        else
            tensor_set_double(y, i, v);
    }
    return 0;
}

static const op_def defs[] = {
    {"", "RandomUniform", 1, 1, random_prepare, random_run, free},
    {"", "RandomNormal", 1, 1, random_prepare, random_run, free},
    {"", "RandomUniformLike", 1, 1, random_prepare, random_run, free},
    {"", "RandomNormalLike", 1, 1, random_prepare, random_run, free},
    {"", "Bernoulli", 15, 15, random_prepare, random_run, free},
    {"", "Multinomial", 7, 7, random_prepare, random_run, free},
};

OP_FAMILY(ops_random, defs);
