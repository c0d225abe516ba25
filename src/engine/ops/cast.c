/*
 * ops/cast.c — ONNX's Cast and CastLike: every pair among float32/64,
 * float16, bfloat16, the signed and unsigned integers, bool and string.
 *
 * Numeric pairs are instantiated from one conversion body per (source kind,
 * target kind) with X-macros; float16/bfloat16 go through float32 blocks.
 * Float -> integer conversions are defined for every input (C leaves NaN and
 * out-of-range values undefined): NaN gives 0, other values truncate toward
 * zero to int64 (saturating beyond its range) and wrap to the target width,
 * which is what numpy and ONNX Runtime do on x86 for in-range int64 values.
 *
 * Strings (Cast-9 and later): numbers print as numpy prints scalars — the
 * shortest digits that read back as the same value, positional between 1e-4
 * and 1e16 — which is what the backend tests expect, with NaN/INF/-INF for
 * the special values; strings parse as decimal or scientific literals and
 * the case-insensitive INF, +INF, -INF and NaN the spec reserves. A string
 * that is not a number is a run error.
 *
 * float32 -> bfloat16 rounds to nearest even (tensor.h), as ONNX Runtime and
 * later ONNX references do; onnx 1.12's reference truncated, but its bfloat16
 * backend cases store their data as uint16 and cannot match any engine.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#include "elementwise_kernels.h"

/* X(arg, DTYPE, C type, suffix, KIND): KIND F float, S signed, U unsigned,
 * B bool. Two copies, because a macro cannot expand inside itself. */
#define CAST_SOURCES(X, a)                                                                         \
    X(a, IFD_FLOAT, float, f32, F)                                                                 \
    X(a, IFD_DOUBLE, double, f64, F)                                                               \
    X(a, IFD_INT8, int8_t, i8, S)                                                                  \
    X(a, IFD_INT16, int16_t, i16, S)                                                               \
    X(a, IFD_INT32, int32_t, i32, S)                                                               \
    X(a, IFD_INT64, int64_t, i64, S)                                                               \
    X(a, IFD_UINT8, uint8_t, u8, U)                                                                \
    X(a, IFD_UINT16, uint16_t, u16, U)                                                             \
    X(a, IFD_UINT32, uint32_t, u32, U)                                                             \
    X(a, IFD_UINT64, uint64_t, u64, U)                                                             \
    X(a, IFD_BOOL, uint8_t, b8, B)
#define CAST_TARGETS(X, a)                                                                         \
    X(a, IFD_FLOAT, float, f32, F)                                                                 \
    X(a, IFD_DOUBLE, double, f64, F)                                                               \
    X(a, IFD_INT8, int8_t, i8, S)                                                                  \
    X(a, IFD_INT16, int16_t, i16, S)                                                               \
    X(a, IFD_INT32, int32_t, i32, S)                                                               \
    X(a, IFD_INT64, int64_t, i64, S)                                                               \
    X(a, IFD_UINT8, uint8_t, u8, U)                                                                \
    X(a, IFD_UINT16, uint16_t, u16, U)                                                             \
    X(a, IFD_UINT32, uint32_t, u32, U)                                                             \
    X(a, IFD_UINT64, uint64_t, u64, U)                                                             \
    X(a, IFD_BOOL, uint8_t, b8, B)

/* CONV_<from>_<to>(T, x): x converted to target type T. */
#define CONV_F_F(T, x) ((T)(x))
#define CONV_F_S(T, x) ((T)ew_double_to_int64((double)(x)))
#define CONV_F_U(T, x) ((T)ew_double_to_uint64((double)(x)))
#define CONV_F_B(T, x) ((T)((x) != 0))
#define CONV_S_F(T, x) ((T)(x))
#define CONV_S_S(T, x) ((T)(x))
#define CONV_S_U(T, x) ((T)(x))
#define CONV_S_B(T, x) ((T)((x) != 0))
#define CONV_U_F CONV_S_F
#define CONV_U_S CONV_S_S
#define CONV_U_U CONV_S_U
#define CONV_U_B CONV_S_B
#define CONV_B_F(T, x) ((T)((x) != 0))
#define CONV_B_S CONV_B_F
#define CONV_B_U CONV_B_F
#define CONV_B_B CONV_B_F

typedef void (*cast_fn)(const void *src, void *dst, size_t n);

#define CAST_UNPACK(...) __VA_ARGS__
#define CAST_CALL(m, ...) m(__VA_ARGS__)
#define CAST_PAIR(SRC, DT, T, SFX, KIND) CAST_CALL(CAST_PAIR_, CAST_UNPACK SRC, DT, T, SFX, KIND)
#define CAST_PAIR_(S_DT, S_T, S_SFX, S_KIND, D_DT, D_T, D_SFX, D_KIND)                             \
    static void cast_##S_SFX##_##D_SFX(const void *src, void *dst, size_t n)                       \
    {                                                                                              \
        const S_T *restrict x = src;                                                               \
        D_T *restrict y = dst;                                                                     \
        for (size_t i = 0; i < n; i++)                                                             \
            y[i] = CONV_##S_KIND##_##D_KIND(D_T, x[i]);                                            \
    }
#define CAST_ROW(unused, DT, T, SFX, KIND) CAST_TARGETS(CAST_PAIR, (DT, T, SFX, KIND))
CAST_SOURCES(CAST_ROW, _)

#define CAST_SLOT(SRC, DT, T, SFX, KIND) CAST_CALL(CAST_SLOT_, CAST_UNPACK SRC, DT, T, SFX, KIND)
#define CAST_SLOT_(S_DT, S_T, S_SFX, S_KIND, D_DT, D_T, D_SFX, D_KIND)                             \
    [S_DT][D_DT] = cast_##S_SFX##_##D_SFX,
#define CAST_SLOT_ROW(unused, DT, T, SFX, KIND) CAST_TARGETS(CAST_SLOT, (DT, T, SFX, KIND))
static const cast_fn casts[EW_DTYPE_SLOTS][EW_DTYPE_SLOTS] = {CAST_SOURCES(CAST_SLOT_ROW, _)};

/* double -> float16 rounding once: the double is first rounded to float32
 * with round-to-odd (truncate, then set the last bit when inexact), which
 * float_to_half then rounds correctly since float32 carries 13 more bits. */
static uint16_t double_to_half(double d)
{
    float f = (float)d;
    if ((double)f != d && f == f && !isinf(f)) {
        if (fabs((double)f) > fabs(d))
            f = nextafterf(f, 0.0f);
        f = ew_bits_f32(ew_f32_bits(f) | 1u);
    }
    return float_to_half(f);
}

/* ---- numbers to strings ------------------------------------------------------- */

typedef enum float_format { FMT_F32, FMT_F64, FMT_F16, FMT_BF16 } float_format;

static bool reads_back(const char *text, double v, float_format fmt)
{
    switch (fmt) {
    case FMT_F64: return strtod(text, NULL) == v;
    case FMT_F32: return strtof(text, NULL) == (float)v;
    case FMT_F16: return float_to_half((float)strtod(text, NULL)) == float_to_half((float)v);
    case FMT_BF16:
        return float_to_bfloat16((float)strtod(text, NULL)) == float_to_bfloat16((float)v);
    }
    return false;
}

/* The shortest decimal that reads back as v in its own precision, laid out as
 * numpy's str() of a scalar: "0.039187793", "1.0", "1e-05", "1.5e+16". */
static void format_float(char *out, size_t size, double v, float_format fmt)
{
    if (v != v) {
        snprintf(out, size, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(out, size, v < 0 ? "-INF" : "INF");
        return;
    }
    char sci[64];
    int max_digits = fmt == FMT_F64 ? 17 : fmt == FMT_F32 ? 9 : 5;
    for (int digits = 1; digits <= max_digits; digits++) {
        snprintf(sci, sizeof(sci), "%.*e", digits - 1, v);
        if (reads_back(sci, v, fmt))
            break;
    }
    /* sci is [-]d[.ddd]e(+|-)XX: split it into sign, digits and exponent. */
    const char *p = sci;
    bool negative = *p == '-';
    if (negative)
        p++;
    char digits[40];
    size_t n = 0;
    for (; *p && *p != 'e'; p++)
        if (isdigit((unsigned char)*p) && n < sizeof(digits) - 1)
            digits[n++] = *p;
    int exponent = *p == 'e' ? atoi(p + 1) : 0;
    while (n > 1 && digits[n - 1] == '0')
        n--;
    digits[n] = '\0';

    size_t used = 0;
    double magnitude = fabs(v);
#define PUT(c)                                                                                     \
    do {                                                                                           \
        if (used + 1 < size)                                                                       \
            out[used++] = (c);                                                                     \
    } while (0)
    if (negative)
        PUT('-');
    if (magnitude == 0 || (magnitude >= 1e-4 && magnitude < 1e16)) {
        if (exponent >= 0) {
            for (int i = 0; i <= exponent; i++)
                PUT((size_t)i < n ? digits[i] : '0');
            PUT('.');
            if ((size_t)exponent + 1 < n)
                for (size_t i = (size_t)exponent + 1; i < n; i++)
                    PUT(digits[i]);
            else
                PUT('0');
        } else {
            PUT('0');
            PUT('.');
            for (int i = 0; i < -exponent - 1; i++)
                PUT('0');
            for (size_t i = 0; i < n; i++)
                PUT(digits[i]);
        }
        out[used] = '\0';
    } else {
        PUT(digits[0]);
        if (n > 1) {
            PUT('.');
            for (size_t i = 1; i < n; i++)
                PUT(digits[i]);
        }
        out[used] = '\0';
        snprintf(out + used, size - used, "e%c%02d", exponent < 0 ? '-' : '+',
                 exponent < 0 ? -exponent : exponent);
    }
#undef PUT
}

static void format_element(const ifd_tensor *t, size_t i, char *buf, size_t size)
{
    const void *d = t->data;
    switch (t->dtype) {
    case IFD_FLOAT: format_float(buf, size, ((const float *)d)[i], FMT_F32); break;
    case IFD_DOUBLE: format_float(buf, size, ((const double *)d)[i], FMT_F64); break;
    case IFD_FLOAT16:
        format_float(buf, size, half_to_float(((const uint16_t *)d)[i]), FMT_F16);
        break;
    case IFD_BFLOAT16:
        format_float(buf, size, bfloat16_to_float(((const uint16_t *)d)[i]), FMT_BF16);
        break;
    case IFD_BOOL: snprintf(buf, size, "%d", ((const uint8_t *)d)[i] != 0); break;
    case IFD_UINT64:
        snprintf(buf, size, "%llu", (unsigned long long)((const uint64_t *)d)[i]);
        break;
    default: snprintf(buf, size, "%lld", (long long)tensor_get_int64(t, i)); break;
    }
}

/* ---- strings to numbers ------------------------------------------------------- */

static bool only_spaces(const char *p)
{
    while (isspace((unsigned char)*p))
        p++;
    return *p == '\0';
}

/* A parsed string: the widest forms a target needs. */
typedef struct parsed_number {
    double d;
    float f;
    int64_t i;
    uint64_t u;
    bool integer; /* read as an integer literal (or true/false) */
} parsed_number;

static bool parse_number(const char *text, ifd_dtype target, parsed_number *out)
{
    char *end;
    const char *p = text;
    while (isspace((unsigned char)*p))
        p++;
    if (target == IFD_BOOL) {
        if (strcasecmp(p, "true") == 0 || strcasecmp(p, "false") == 0) {
            out->i = (p[0] == 't' || p[0] == 'T');
            out->integer = true;
            return true;
        }
    }
    if (dtype_is_integer(target) || target == IFD_BOOL) {
        errno = 0;
        if (target == IFD_UINT64 && *p != '-') {
            unsigned long long u = strtoull(p, &end, 10);
            if (end != p && only_spaces(end)) {
                out->u = u;
                out->i = (int64_t)u;
                out->integer = true;
                return true;
            }
        } else {
            long long v = strtoll(p, &end, 10);
            if (end != p && only_spaces(end)) {
                out->i = v;
                out->u = (uint64_t)v;
                out->integer = true;
                return true;
            }
        }
    }
    if (target == IFD_FLOAT) {
        out->f = strtof(p, &end);
        out->d = out->f;
    } else {
        out->d = strtod(p, &end);
        out->f = (float)out->d;
    }
    if (end == p || !only_spaces(end))
        return false;
    out->i = ew_double_to_int64(out->d);
    out->u = ew_double_to_uint64(out->d);
    return true;
}

static void store_parsed(ifd_tensor *t, size_t i, const parsed_number *v)
{
    void *d = t->data;
    switch (t->dtype) {
    case IFD_FLOAT: ((float *)d)[i] = v->f; break;
    case IFD_DOUBLE: ((double *)d)[i] = v->d; break;
    case IFD_FLOAT16: ((uint16_t *)d)[i] = double_to_half(v->d); break;
    case IFD_BFLOAT16: ((uint16_t *)d)[i] = float_to_bfloat16(v->f); break;
    case IFD_BOOL: ((uint8_t *)d)[i] = v->integer ? v->i != 0 : v->d != 0; break;
    case IFD_INT8: ((int8_t *)d)[i] = (int8_t)v->i; break;
    case IFD_INT16: ((int16_t *)d)[i] = (int16_t)v->i; break;
    case IFD_INT32: ((int32_t *)d)[i] = (int32_t)v->i; break;
    case IFD_INT64: ((int64_t *)d)[i] = v->i; break;
    case IFD_UINT8: ((uint8_t *)d)[i] = (uint8_t)v->u; break;
    case IFD_UINT16: ((uint16_t *)d)[i] = (uint16_t)v->u; break;
    case IFD_UINT32: ((uint32_t *)d)[i] = (uint32_t)v->u; break;
    case IFD_UINT64: ((uint64_t *)d)[i] = v->u; break;
    default: break;
    }
}

static int cast_from_strings(op_ctx *ctx, const ifd_tensor *x, ifd_tensor *y)
{
    size_t n = (size_t)ifd_tensor_count(x);
    const ifd_string *s = x->data;
    char small[128];
    for (size_t i = 0; i < n; i++) {
        size_t len = s[i].data ? s[i].size : 0;
        char *text = len < sizeof(small) ? small : malloc(len + 1);
        if (!text)
            return op_fail(ctx, "out of memory");
        if (len)
            memcpy(text, s[i].data, len);
        text[len] = '\0';
        parsed_number v = {0};
        /* Integer targets read integer literals exactly (int64 has more
         * digits than a double), other literals through strtod. */
        bool ok = strlen(text) == len && parse_number(text, y->dtype, &v);
        if (!ok) {
            char shown[40];
            snprintf(shown, sizeof(shown), "%.32s", text);
            if (text != small)
                free(text);
            return op_fail(ctx, "element %zu, '%s%s', is not a number", i, shown,
                           len > 32 ? "..." : "");
        }
        if (text != small)
            free(text);
        store_parsed(y, i, &v);
    }
    return 0;
}

static int cast_to_strings(op_ctx *ctx, const ifd_tensor *x, ifd_tensor *y)
{
    size_t n = (size_t)ifd_tensor_count(x);
    ifd_string *out = y->data;
    char buf[64];
    for (size_t i = 0; i < n; i++) {
        format_element(x, i, buf, sizeof(buf));
        if (!string_set(&out[i], buf, strlen(buf)))
            return op_fail(ctx, "out of memory");
    }
    return 0;
}

/* ---- numeric driver ------------------------------------------------------------ */

typedef struct cast_job {
    ifd_dtype from, to;
    const char *src;
    char *dst;
    size_t src_size, dst_size;
} cast_job;

/* Numeric conversion of elements [begin, end); float16/bfloat16 on either
 * side pass through float32 blocks. */
static void cast_chunk(void *arg, size_t begin, size_t end)
{
    const cast_job *job = arg;
    bool half_in = job->from == IFD_FLOAT16 || job->from == IFD_BFLOAT16;
    bool half_out = job->to == IFD_FLOAT16 || job->to == IFD_BFLOAT16;
    const char *src = job->src + begin * job->src_size;
    char *dst = job->dst + begin * job->dst_size;
    size_t n = end - begin;
    if (!half_in && !half_out) {
        casts[job->from][job->to](src, dst, n);
        return;
    }
    float block[EW_HALF_BLOCK];
    for (size_t i = 0; i < n;) {
        size_t m = n - i < EW_HALF_BLOCK ? n - i : EW_HALF_BLOCK;
        if (half_in)
            ew_half_to_float(job->from, (const uint16_t *)src + i, block, m);
        else
            casts[job->from][IFD_FLOAT](src + i * job->src_size, block, m);
        if (!half_out) {
            casts[IFD_FLOAT][job->to](block, dst + i * job->dst_size, m);
        } else if (job->to == IFD_FLOAT16) {
            uint16_t *out = (uint16_t *)dst + i;
            if (job->from == IFD_DOUBLE) {
                const double *in = (const double *)src + i;
                for (size_t k = 0; k < m; k++)
                    out[k] = double_to_half(in[k]);
            } else {
                ew_float_to_half(IFD_FLOAT16, block, out, m);
            }
        } else {
            ew_float_to_half(IFD_BFLOAT16, block, (uint16_t *)dst + i, m);
        }
        i += m;
    }
}

/* float8 (Cast-19) and int4/uint4 (Cast-21): the byte-held types the
 * kernel table does not cover. */
static bool narrow_type(ifd_dtype dtype)
{
    return dtype_is_float8(dtype) || dtype_is_int4(dtype);
}

static bool castable(ifd_dtype dtype)
{
    return dtype_is_numeric(dtype) || dtype == IFD_BOOL || dtype == IFD_STRING ||
           narrow_type(dtype);
}

/* Casts touching float8 or int4, element by element through double (which
 * holds every value of both exactly): to float8 by the reference conversion
 * (tensor.c; `saturate`, Cast-19); to int4/uint4 as ONNX's reference does
 * (onnx.helper float32_to_4bit_unpacked): clip to [-8, 7] / [0, 15], then
 * round half to even. ONNX Runtime 1.30 instead wraps modulo 16; inferd
 * follows the spec's reference. */
static void cast_narrow(const ifd_tensor *x, ifd_tensor *y, size_t n, bool saturate)
{
    for (size_t i = 0; i < n; i++) {
        double v = x->dtype == IFD_BOOL ? (double)(((const uint8_t *)x->data)[i] != 0)
                                        : tensor_get_double(x, i);
        if (dtype_is_float8(y->dtype)) {
            ((uint8_t *)y->data)[i] = float8_from_double(y->dtype, v, saturate);
        } else if (dtype_is_int4(y->dtype)) {
            double lo = y->dtype == IFD_INT4 ? -8 : 0, hi = y->dtype == IFD_INT4 ? 7 : 15;
            v = v != v ? 0 : v < lo ? lo : v > hi ? hi : nearbyint(v);
            ((int8_t *)y->data)[i] = (int8_t)v;
        } else {
            tensor_set_double(y, i, v);
        }
    }
}

static int cast_tensor(op_ctx *ctx, const ifd_tensor *x, ifd_dtype to, bool saturate)
{
    if (!castable(x->dtype))
        return op_fail(ctx, "cannot cast from %s", ifd_dtype_name(x->dtype));
    ifd_tensor *y = op_output(ctx, 0, to, x->rank, x->dims);
    if (!y)
        return -1;
    size_t n = (size_t)ifd_tensor_count(x);
    if (x->dtype != to && (narrow_type(x->dtype) || narrow_type(to))) {
        if (x->dtype == IFD_STRING || to == IFD_STRING)
            return op_fail(ctx, "casts between strings and %s are not supported",
                           ifd_dtype_name(x->dtype == IFD_STRING ? to : x->dtype));
        cast_narrow(x, y, n, saturate);
        return 0;
    }
    if (x->dtype == to) {
        if (to == IFD_STRING) {
            if (!strings_copy(y->data, x->data, n))
                return op_fail(ctx, "out of memory");
        } else if (n) {
            memcpy(y->data, x->data, n * ifd_dtype_size(to));
        }
        return 0;
    }
    if (x->dtype == IFD_STRING)
        return cast_from_strings(ctx, x, y);
    if (to == IFD_STRING)
        return cast_to_strings(ctx, x, y);
    cast_job job = {x->dtype, to, x->data, y->data, ifd_dtype_size(x->dtype), ifd_dtype_size(to)};
    if (n >= EW_PARALLEL_MIN)
        op_parallel_for(ctx, n, EW_PARALLEL_GRAIN, cast_chunk, &job);
    else if (n)
        cast_chunk(&job, 0, n);
    return 0;
}

/* ---- operators ------------------------------------------------------------------ */

/* Cast-1 names its target as a string ("FLOAT"); later versions by number. */
static ifd_dtype dtype_from_name(const char *name)
{
    static const struct {
        const char *name;
        ifd_dtype dtype;
    } names[] = {
        {"FLOAT", IFD_FLOAT},     {"UINT8", IFD_UINT8},       {"INT8", IFD_INT8},
        {"UINT16", IFD_UINT16},   {"INT16", IFD_INT16},       {"INT32", IFD_INT32},
        {"INT64", IFD_INT64},     {"STRING", IFD_STRING},     {"BOOL", IFD_BOOL},
        {"FLOAT16", IFD_FLOAT16}, {"DOUBLE", IFD_DOUBLE},     {"UINT32", IFD_UINT32},
        {"UINT64", IFD_UINT64},   {"BFLOAT16", IFD_BFLOAT16},
        {"FLOAT8E4M3FN", IFD_FLOAT8E4M3FN}, {"FLOAT8E4M3FNUZ", IFD_FLOAT8E4M3FNUZ},
        {"FLOAT8E5M2", IFD_FLOAT8E5M2},     {"FLOAT8E5M2FNUZ", IFD_FLOAT8E5M2FNUZ},
        {"UINT4", IFD_UINT4},               {"INT4", IFD_INT4},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcasecmp(name, names[i].name) == 0)
            return names[i].dtype;
    return IFD_UNDEFINED;
}

static int set_output(op_node *node, ifd_error *err, ifd_dtype to)
{
    value_info *x = node->inputs[0], *y = node->outputs[0];
    if (!castable(x->dtype))
        return op_prepare_fail(node, err, "cannot cast from %s", ifd_dtype_name(x->dtype));
    if (!castable(to))
        return op_prepare_fail(node, err, "cannot cast to %s", ifd_dtype_name(to));
    if ((narrow_type(x->dtype) || narrow_type(to)) && (x->dtype == IFD_STRING || to == IFD_STRING))
        return op_prepare_fail(node, err, "casts between strings and %s are not supported",
                               ifd_dtype_name(x->dtype == IFD_STRING ? to : x->dtype));
    ew_node_state *s = ew_state_new(node, err);
    if (!s)
        return -1;
    /* the target type, and bit 8 when Cast-19's saturate is 0 */
    s->extra = to | (op_attr_int(node, "saturate", 1) == 0 ? 0x100 : 0);
    y->kind = IFD_VALUE_TENSOR;
    y->dtype = to;
    y->rank = x->rank;
    memcpy(y->dims, x->dims, sizeof(y->dims));
    return 0;
}

static int cast_prepare(op_node *node, ifd_error *err)
{
    if (node->n_inputs < 1 || !node->inputs[0])
        return op_prepare_fail(node, err, "input is missing");
    const op_attr *to = op_attr_find(node, "to");
    if (!to)
        return op_prepare_fail(node, err, "the 'to' attribute is required");
    ifd_dtype target = IFD_UNDEFINED;
    if (to->type == OP_ATTR_STRING) {
        target = dtype_from_name(to->s.data ? to->s.data : "");
        if (target == IFD_UNDEFINED)
            return op_prepare_fail(node, err, "'to' names no data type: '%s'",
                                   to->s.data ? to->s.data : "");
    } else if (to->type == OP_ATTR_INT) {
        if (to->i <= 0 || to->i > IFD_INT4)
            return op_prepare_fail(node, err, "'to' is not a data type: %lld", (long long)to->i);
        target = (ifd_dtype)to->i;
        /* the version that introduced each narrow type */
        if ((dtype_is_float8(target) && node->version < 19) ||
            (dtype_is_int4(target) && node->version < 21))
            return op_prepare_fail(node, err, "Cast-%d cannot cast to %s (it came with Cast-%d)",
                                   node->version, ifd_dtype_name(target),
                                   dtype_is_float8(target) ? 19 : 21);
    } else {
        return op_prepare_fail(node, err, "the 'to' attribute must be an int");
    }
    return set_output(node, err, target);
}

static int cast_run(op_ctx *ctx)
{
    const ew_node_state *s = ctx->node->state;
    const ifd_tensor *x = op_input(ctx, 0);
    if (!x)
        return op_fail(ctx, "missing input tensor");
    return cast_tensor(ctx, x, (ifd_dtype)(s->extra & 0xff), (s->extra & 0x100) == 0);
}

/* CastLike-15: the target is the dtype of the second input. */
static int castlike_prepare(op_node *node, ifd_error *err)
{
    if (node->n_inputs < 2 || !node->inputs[0] || !node->inputs[1])
        return op_prepare_fail(node, err, "expects inputs input and target_type");
    return set_output(node, err, node->inputs[1]->dtype);
}

static int castlike_run(op_ctx *ctx)
{
    const ifd_tensor *x = op_input(ctx, 0), *like = op_input(ctx, 1);
    if (!x || !like)
        return op_fail(ctx, "missing input tensor");
    if (!castable(like->dtype))
        return op_fail(ctx, "cannot cast to %s", ifd_dtype_name(like->dtype));
    return cast_tensor(ctx, x, like->dtype, op_attr_int(ctx->node, "saturate", 1) != 0);
}

static const op_def defs[] = {
    /* Cast-19 (onnx 1.14 Operators.md) added float8 types and `saturate`, which
     * only applies to float8; Cast-21 (onnx 1.16) int4/uint4 (cast_narrow). */
    {"", "Cast", 1, 21, cast_prepare, cast_run, free},
    {"", "CastLike", 15, 21, castlike_prepare, castlike_run, free}, /* as Cast-19/21 */
};

OP_FAMILY(ops_cast, defs);
