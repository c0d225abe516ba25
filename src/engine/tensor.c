/*
 * tensor.c — sizes, allocation, copying and element access for ifd_tensor,
 * plus float16/bfloat16 conversion and broadcasting. Every size derived from
 * a model or a request passes through shape_count/shape_bytes, which refuse
 * negative dims, overflow and anything past IFD_MAX_TENSOR_BYTES.
 */
#include "tensor.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t ifd_dtype_size(ifd_dtype dtype)
{
    switch (dtype) {
    case IFD_FLOAT: case IFD_INT32: case IFD_UINT32: return 4;
    case IFD_UINT8: case IFD_INT8: case IFD_BOOL: return 1;
    case IFD_FLOAT8E4M3FN: case IFD_FLOAT8E4M3FNUZ: case IFD_FLOAT8E5M2:
    case IFD_FLOAT8E5M2FNUZ: case IFD_UINT4: case IFD_INT4: return 1;
    case IFD_UINT16: case IFD_INT16: case IFD_FLOAT16: case IFD_BFLOAT16: return 2;
    case IFD_INT64: case IFD_UINT64: case IFD_DOUBLE: case IFD_COMPLEX64: return 8;
    case IFD_COMPLEX128: return 16;
    case IFD_STRING: return sizeof(ifd_string);
    default: return 0;
    }
}

const char *ifd_dtype_name(ifd_dtype dtype)
{
    switch (dtype) {
    case IFD_FLOAT: return "float32";
    case IFD_UINT8: return "uint8";
    case IFD_INT8: return "int8";
    case IFD_UINT16: return "uint16";
    case IFD_INT16: return "int16";
    case IFD_INT32: return "int32";
    case IFD_INT64: return "int64";
    case IFD_STRING: return "string";
    case IFD_BOOL: return "bool";
    case IFD_FLOAT16: return "float16";
    case IFD_DOUBLE: return "float64";
    case IFD_UINT32: return "uint32";
    case IFD_UINT64: return "uint64";
    case IFD_COMPLEX64: return "complex64";
    case IFD_COMPLEX128: return "complex128";
    case IFD_BFLOAT16: return "bfloat16";
    case IFD_FLOAT8E4M3FN: return "float8e4m3fn";
    case IFD_FLOAT8E4M3FNUZ: return "float8e4m3fnuz";
    case IFD_FLOAT8E5M2: return "float8e5m2";
    case IFD_FLOAT8E5M2FNUZ: return "float8e5m2fnuz";
    case IFD_UINT4: return "uint4";
    case IFD_INT4: return "int4";
    default: return "undefined";
    }
}

const char *ifd_status_name(ifd_status status)
{
    switch (status) {
    case IFD_OK: return "ok";
    case IFD_ERR_INVALID_MODEL: return "invalid model";
    case IFD_ERR_UNSUPPORTED: return "unsupported";
    case IFD_ERR_INVALID_ARGUMENT: return "invalid argument";
    case IFD_ERR_NO_MEMORY: return "out of memory";
    case IFD_ERR_IO: return "i/o error";
    case IFD_ERR_RUNTIME: return "runtime error";
    }
    return "unknown";
}

const char *ifd_type_name(const ifd_type_info *t, char *buf, size_t size)
{
    const char *dtype = ifd_dtype_name(t->dtype), *key = ifd_dtype_name(t->key_dtype);
    switch (t->kind) {
    case IFD_VALUE_SEQUENCE:
        if (t->elem_kind == IFD_VALUE_MAP)
            snprintf(buf, size, "sequence<map<%s,%s>>", key, dtype);
        else
            snprintf(buf, size, "sequence<%s>", dtype);
        break;
    case IFD_VALUE_MAP: snprintf(buf, size, "map<%s,%s>", key, dtype); break;
    case IFD_VALUE_OPTIONAL:
        snprintf(buf, size, t->elem_kind == IFD_VALUE_SEQUENCE ? "optional<sequence<%s>>" : "optional<%s>",
                 dtype);
        break;
    default: snprintf(buf, size, "%s", dtype); break;
    }
    return buf;
}

bool dtype_is_float(ifd_dtype d)
{
    return d == IFD_FLOAT || d == IFD_DOUBLE || d == IFD_FLOAT16 || d == IFD_BFLOAT16;
}

bool dtype_is_signed(ifd_dtype d)
{
    return d == IFD_INT8 || d == IFD_INT16 || d == IFD_INT32 || d == IFD_INT64;
}

bool dtype_is_integer(ifd_dtype d)
{
    return dtype_is_signed(d) || d == IFD_UINT8 || d == IFD_UINT16 || d == IFD_UINT32 ||
           d == IFD_UINT64;
}

bool dtype_is_numeric(ifd_dtype d) { return dtype_is_float(d) || dtype_is_integer(d); }

bool shape_count(int rank, const int64_t *dims, int64_t *count)
{
    int64_t n = 1;
    if (rank < 0 || rank > IFD_MAX_RANK)
        return false;
    for (int i = 0; i < rank; i++) {
        if (dims[i] < 0)
            return false;
        if (dims[i] != 0 && n > INT64_MAX / dims[i])
            return false;
        n *= dims[i];
    }
    *count = n;
    return true;
}

bool shape_bytes(ifd_dtype dtype, int rank, const int64_t *dims, size_t *bytes)
{
    int64_t count;
    size_t size = ifd_dtype_size(dtype);
    if (size == 0 || !shape_count(rank, dims, &count))
        return false;
    if ((uint64_t)count > IFD_MAX_TENSOR_BYTES / size)
        return false;
    *bytes = (size_t)count * size;
    return true;
}

int64_t ifd_tensor_count(const ifd_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++)
        n *= t->dims[i];
    return n;
}

const char *shape_to_string(int rank, const int64_t *dims, char *buf, size_t size)
{
    size_t used = 0;
    if (size == 0)
        return buf;
    buf[0] = '\0';
    used += (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < rank && used < size; i++) {
        if (dims[i] < 0)
            used += (size_t)snprintf(buf + used, size - used, "%s?", i ? "," : "");
        else
            used += (size_t)snprintf(buf + used, size - used, "%s%lld", i ? "," : "",
                                     (long long)dims[i]);
    }
    if (used < size)
        snprintf(buf + used, size - used, "]");
    return buf;
}

void tensor_set_shape(ifd_tensor *t, int rank, const int64_t *dims)
{
    t->rank = rank;
    for (int i = 0; i < rank; i++)
        t->dims[i] = dims[i];
}

void strings_free(ifd_string *s, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        free(s[i].data);
        s[i].data = NULL;
        s[i].size = 0;
    }
}

bool string_set(ifd_string *s, const char *data, size_t size)
{
    char *copy = malloc(size + 1);
    if (!copy)
        return false;
    if (size)
        memcpy(copy, data, size);
    copy[size] = '\0';
    free(s->data);
    s->data = copy;
    s->size = size;
    return true;
}

bool strings_copy(ifd_string *dst, const ifd_string *src, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (!string_set(&dst[i], src[i].data ? src[i].data : "", src[i].size))
            return false;
    return true;
}

void tensor_release(ifd_tensor *t)
{
    if (t->owns_data && t->data) {
        if (t->dtype == IFD_STRING)
            strings_free(t->data, (size_t)ifd_tensor_count(t));
        free(t->data);
    }
    t->data = NULL;
    t->capacity = 0;
    t->owns_data = 0;
}

ifd_status tensor_alloc(ifd_tensor *t, ifd_dtype dtype, int rank, const int64_t *dims,
                        const char *what, ifd_error *err)
{
    size_t bytes;
    char shape[128];
    tensor_release(t);
    if (!shape_bytes(dtype, rank, dims, &bytes)) {
        if (err)
            snprintf(err->message, sizeof(err->message),
                     "%s: %s tensor of shape %s is invalid or too large", what,
                     ifd_dtype_name(dtype), shape_to_string(rank, dims, shape, sizeof(shape)));
        return IFD_ERR_INVALID_ARGUMENT;
    }
    t->data = calloc(1, bytes ? bytes : 1);
    if (!t->data) {
        if (err)
            snprintf(err->message, sizeof(err->message), "%s: out of memory for %zu bytes",
                     what, bytes);
        return IFD_ERR_NO_MEMORY;
    }
    t->dtype = dtype;
    t->capacity = bytes;
    t->owns_data = 1;
    tensor_set_shape(t, rank, dims);
    return IFD_OK;
}

ifd_status tensor_copy(ifd_tensor *dst, const ifd_tensor *src, ifd_error *err)
{
    ifd_status st = tensor_alloc(dst, src->dtype, src->rank, src->dims, "copy", err);
    if (st != IFD_OK)
        return st;
    size_t count = (size_t)ifd_tensor_count(src);
    if (src->dtype == IFD_STRING) {
        if (!strings_copy(dst->data, src->data, count)) {
            tensor_release(dst);
            if (err)
                snprintf(err->message, sizeof(err->message), "copy: out of memory");
            return IFD_ERR_NO_MEMORY;
        }
    } else if (count) {
        memcpy(dst->data, src->data, count * ifd_dtype_size(src->dtype));
    }
    return IFD_OK;
}

ifd_tensor tensor_view(const ifd_tensor *src)
{
    ifd_tensor view = *src;
    view.owns_data = 0;
    return view;
}

bool tensor_same_shape(const ifd_tensor *a, const ifd_tensor *b)
{
    if (a->rank != b->rank)
        return false;
    for (int i = 0; i < a->rank; i++)
        if (a->dims[i] != b->dims[i])
            return false;
    return true;
}

bool tensor_read_int64s(const ifd_tensor *t, int64_t *out, size_t max, size_t *count)
{
    size_t n = (size_t)ifd_tensor_count(t);
    if (n > max || (t->dtype != IFD_INT64 && t->dtype != IFD_INT32))
        return false;
    for (size_t i = 0; i < n; i++)
        out[i] = t->dtype == IFD_INT64 ? ((const int64_t *)t->data)[i]
                                       : ((const int32_t *)t->data)[i];
    *count = n;
    return true;
}

/* ---- float8 (ONNX 1.14 docs/technical/float8.md) --------------------------
 * E4M3FN: bias 7, no infinity, NaN S.1111.111, largest 448. E4M3FNUZ: bias
 * 8, no infinity or negative zero, NaN 0x80, largest 240. E5M2: bias 15,
 * IEEE-like with infinities, largest 57344. E5M2FNUZ: bias 16, NaN 0x80, no
 * infinity, largest 57344. */
typedef struct float8_format {
    int mantissa_bits, bias;
    bool fnuz, has_inf;
} float8_format;

static float8_format float8_of(ifd_dtype type)
{
    switch (type) {
    case IFD_FLOAT8E4M3FN: return (float8_format){3, 7, false, false};
    case IFD_FLOAT8E4M3FNUZ: return (float8_format){3, 8, true, false};
    case IFD_FLOAT8E5M2: return (float8_format){2, 15, false, true};
    default: return (float8_format){2, 16, true, false};
    }
}

static bool float8_is_nan_code(const float8_format *f, uint8_t bits)
{
    if (f->fnuz)
        return bits == 0x80;
    if (f->has_inf) /* E5M2: exponent all ones, mantissa not zero */
        return (bits & 0x7c) == 0x7c && (bits & 0x03) != 0;
    return (bits & 0x7f) == 0x7f; /* E4M3FN */
}

double float8_to_double(ifd_dtype type, uint8_t bits)
{
    float8_format f = float8_of(type);
    if (float8_is_nan_code(&f, bits))
        return NAN;
    int m = f.mantissa_bits, e_bits = 7 - m;
    int exponent = (bits >> m) & ((1 << e_bits) - 1), mantissa = bits & ((1 << m) - 1);
    double sign = bits & 0x80 ? -1.0 : 1.0;
    if (f.has_inf && exponent == (1 << e_bits) - 1)
        return sign * INFINITY;
    if (exponent == 0)
        return sign * ldexp((double)mantissa, 1 - f.bias - m);
    return sign * ldexp((double)((1 << m) | mantissa), exponent - f.bias - m);
}

/* The rounding of the float8 reference conversions (onnx.helper's
 * float32_to_float8e4m3 / float32_to_float8e5m2, which ONNX Runtime follows
 * bit for bit): the float32's bits are cut to the target's mantissa and
 * rounded to nearest even; a value that would round onto the code above the
 * largest finite one saturates to it (saturate) or becomes NaN, or infinity
 * for E5M2 beyond its range — including the reference's quirk that E4M3FN
 * cuts 0x7F (NaN) back to 0x7E before rounding. */
static bool round_bit_up(uint32_t m, uint32_t mask)
{
    return (m & mask) && ((m & (mask << 1)) || (m & (mask - 1)));
}

static uint8_t float8_e4m3(float x, bool uz, bool saturate)
{
    uint32_t b;
    memcpy(&b, &x, sizeof(b));
    uint32_t ret = (b & 0x80000000u) >> 24;
    if ((b & 0x7fc00000u) == 0x7fc00000u)
        return uz ? 0x80 : (uint8_t)(0x7f | ret);
    if (isinf(x))
        return uz ? (saturate ? (uint8_t)(ret | 0x7f) : 0x80)
                  : (uint8_t)(saturate ? (ret | 0x7e) : (ret | 0x7f));
    uint32_t e = (b & 0x7f800000u) >> 23, m = b & 0x007fffffu;
    int bias_shift = uz ? 119 : 120; /* 127 - target bias */
    uint32_t top = uz ? 0x7f : 0x7e;
    if (e == 0)
        return (uint8_t)(uz ? 0 : ret); /* zero and float32 denormals */
    if ((int)e < bias_shift - 3) {
        /* below half the smallest denormal: zero */
    } else if ((int)e < bias_shift + 1) {
        int ex = (int)e - bias_shift; /* -3 .. 0 */
        if (ex >= -2) {
            ret |= 1u << (2 + ex);
            ret |= m >> (21 - ex);
        } else if (m > 0) {
            ret |= 1;
        }
        uint32_t mask = 1u << (20 - ex);
        if ((m & mask) && ((ret & 1) || (m & (mask - 1)) > 0 ||
                           ((m & (mask << 1)) && (m & (mask - 1)) == 0)))
            ret += 1;
    } else if ((int)e < bias_shift + 16) {
        int ex = (int)e - bias_shift;
        ret |= (uint32_t)ex << 3;
        ret |= m >> 20;
        if (!uz && (ret & 0x7f) == 0x7f)
            ret &= 0xfe;
        if (round_bit_up(m, 0x80000u)) {
            if ((ret & 0x7f) < top)
                ret += 1;
            else if (!saturate)
                return uz ? 0x80 : (uint8_t)(ret | 0x7f);
        }
    } else {
        if (!saturate)
            return uz ? 0x80 : (uint8_t)(ret | 0x7f);
        ret |= top;
    }
    if (uz && (ret & 0x7f) == 0)
        return 0; /* FNUZ has no negative zero */
    return (uint8_t)ret;
}

static uint8_t float8_e5m2(float x, bool uz, bool saturate)
{
    uint32_t b;
    memcpy(&b, &x, sizeof(b));
    uint32_t ret = (b & 0x80000000u) >> 24;
    if ((b & 0x7fc00000u) == 0x7fc00000u)
        return uz ? 0x80 : (uint8_t)(0x7f | ret);
    if (isinf(x))
        return uz ? (saturate ? (uint8_t)(ret | 0x7f) : 0x80)
                  : (uint8_t)(saturate ? (ret | 0x7b) : (ret | 0x7c));
    uint32_t e = (b & 0x7f800000u) >> 23, m = b & 0x007fffffu;
    int bias_shift = uz ? 111 : 112;
    uint32_t top = uz ? 0x7f : 0x7b;
    if (e == 0)
        return (uint8_t)(uz ? 0 : ret);
    if ((int)e < bias_shift - 2) {
        /* zero */
    } else if ((int)e < bias_shift + 1) {
        int ex = (int)e - bias_shift; /* -2 .. 0 */
        if (ex >= -1) {
            ret |= 1u << (1 + ex);
            ret |= m >> (22 - ex);
        } else if (m > 0) {
            ret |= 1;
        }
        uint32_t mask = 1u << (21 - ex);
        if ((m & mask) && ((ret & 1) || (m & (mask - 1)) > 0 ||
                           ((m & (mask << 1)) && (m & (mask - 1)) == 0)))
            ret += 1;
    } else if (e < 143) { /* the largest exponent, 15, for both E5M2 forms */
        int ex = (int)e - bias_shift;
        ret |= (uint32_t)ex << 2;
        ret |= m >> 21;
        if (round_bit_up(m, 0x100000u)) {
            if ((ret & 0x7f) < top)
                ret += 1;
            else if (!saturate)
                return uz ? 0x80 : (uint8_t)(ret | 0x7f);
        }
    } else {
        if (!saturate)
            return uz ? 0x80 : (uint8_t)(ret | 0x7c);
        ret |= top;
    }
    if (uz && (ret & 0x7f) == 0)
        return 0;
    return (uint8_t)ret;
}

uint8_t float8_from_double(ifd_dtype type, double v, bool saturate)
{
    float x = (float)v;
    switch (type) {
    case IFD_FLOAT8E4M3FN: return float8_e4m3(x, false, saturate);
    case IFD_FLOAT8E4M3FNUZ: return float8_e4m3(x, true, saturate);
    case IFD_FLOAT8E5M2: return float8_e5m2(x, false, saturate);
    default: return float8_e5m2(x, true, saturate);
    }
}

double tensor_get_double(const ifd_tensor *t, size_t i)
{
    switch (t->dtype) {
    case IFD_FLOAT: return ((const float *)t->data)[i];
    case IFD_DOUBLE: return ((const double *)t->data)[i];
    case IFD_FLOAT16: return half_to_float(((const uint16_t *)t->data)[i]);
    case IFD_BFLOAT16: return bfloat16_to_float(((const uint16_t *)t->data)[i]);
    case IFD_INT8: return ((const int8_t *)t->data)[i];
    case IFD_INT16: return ((const int16_t *)t->data)[i];
    case IFD_INT32: return ((const int32_t *)t->data)[i];
    case IFD_INT64: return (double)((const int64_t *)t->data)[i];
    case IFD_UINT8: case IFD_BOOL: return ((const uint8_t *)t->data)[i];
    case IFD_UINT16: return ((const uint16_t *)t->data)[i];
    case IFD_UINT32: return ((const uint32_t *)t->data)[i];
    case IFD_UINT64: return (double)((const uint64_t *)t->data)[i];
    case IFD_FLOAT8E4M3FN: case IFD_FLOAT8E4M3FNUZ: case IFD_FLOAT8E5M2: case IFD_FLOAT8E5M2FNUZ:
        return float8_to_double(t->dtype, ((const uint8_t *)t->data)[i]);
    case IFD_UINT4: return ((const uint8_t *)t->data)[i];
    case IFD_INT4: return ((const int8_t *)t->data)[i];
    default: return 0.0;
    }
}

int64_t tensor_get_int64(const ifd_tensor *t, size_t i)
{
    switch (t->dtype) {
    case IFD_INT8: return ((const int8_t *)t->data)[i];
    case IFD_INT16: return ((const int16_t *)t->data)[i];
    case IFD_INT32: return ((const int32_t *)t->data)[i];
    case IFD_INT64: return ((const int64_t *)t->data)[i];
    case IFD_UINT8: case IFD_BOOL: return ((const uint8_t *)t->data)[i];
    case IFD_UINT16: return ((const uint16_t *)t->data)[i];
    case IFD_UINT32: return ((const uint32_t *)t->data)[i];
    case IFD_UINT64: return (int64_t)((const uint64_t *)t->data)[i];
    default: {
        double v = tensor_get_double(t, i);
        if (isnan(v))
            return 0;
        if (v >= 9.2233720368547758e18)
            return INT64_MAX;
        if (v <= -9.2233720368547758e18)
            return INT64_MIN;
        return (int64_t)v;
    }
    }
}

/* double to integer without undefined behaviour: NaN becomes 0 and values
 * beyond the target's range saturate (C leaves both undefined). */
static int64_t saturate_int64(double v, int64_t lo, int64_t hi)
{
    if (isnan(v))
        return 0;
    if (v <= (double)lo)
        return lo;
    if (v >= (double)hi)
        return hi;
    return (int64_t)v;
}

static uint64_t saturate_uint64(double v, uint64_t hi)
{
    if (isnan(v) || v <= 0)
        return 0;
    if (v >= (double)hi)
        return hi;
    return (uint64_t)v;
}

void tensor_set_double(ifd_tensor *t, size_t i, double v)
{
    switch (t->dtype) {
    case IFD_FLOAT: ((float *)t->data)[i] = (float)v; break;
    case IFD_DOUBLE: ((double *)t->data)[i] = v; break;
    case IFD_FLOAT16: ((uint16_t *)t->data)[i] = float_to_half((float)v); break;
    case IFD_BFLOAT16: ((uint16_t *)t->data)[i] = float_to_bfloat16((float)v); break;
    case IFD_INT8: ((int8_t *)t->data)[i] = (int8_t)saturate_int64(v, INT8_MIN, INT8_MAX); break;
    case IFD_INT16: ((int16_t *)t->data)[i] = (int16_t)saturate_int64(v, INT16_MIN, INT16_MAX); break;
    case IFD_INT32: ((int32_t *)t->data)[i] = (int32_t)saturate_int64(v, INT32_MIN, INT32_MAX); break;
    case IFD_INT64: ((int64_t *)t->data)[i] = saturate_int64(v, INT64_MIN, INT64_MAX); break;
    case IFD_UINT8: ((uint8_t *)t->data)[i] = (uint8_t)saturate_uint64(v, UINT8_MAX); break;
    case IFD_BOOL: ((uint8_t *)t->data)[i] = v != 0.0; break;
    case IFD_UINT16: ((uint16_t *)t->data)[i] = (uint16_t)saturate_uint64(v, UINT16_MAX); break;
    case IFD_UINT32: ((uint32_t *)t->data)[i] = (uint32_t)saturate_uint64(v, UINT32_MAX); break;
    case IFD_UINT64: ((uint64_t *)t->data)[i] = saturate_uint64(v, UINT64_MAX); break;
    case IFD_FLOAT8E4M3FN: case IFD_FLOAT8E4M3FNUZ: case IFD_FLOAT8E5M2: case IFD_FLOAT8E5M2FNUZ:
        ((uint8_t *)t->data)[i] = float8_from_double(t->dtype, v, true);
        break;
    case IFD_UINT4: ((uint8_t *)t->data)[i] = (uint8_t)saturate_uint64(v, 15); break;
    case IFD_INT4: ((int8_t *)t->data)[i] = (int8_t)saturate_int64(v, -8, 7); break;
    default: break;
    }
}

/* IEEE 754 binary16 <-> binary32, round to nearest even, keeping NaN,
 * infinities and subnormals. */
float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else {
            int shift = 0;
            while (!(mant & 0x400u)) {
                mant <<= 1;
                shift++;
            }
            mant &= 0x3ffu;
            bits = sign | ((uint32_t)(127 - 15 + 1 - shift) << 23) | (mant << 13);
        }
    } else if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof(f));
    return f;
}

uint16_t float_to_half(float f)
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof(bits));
    uint16_t sign = (uint16_t)((bits >> 16) & 0x8000u);
    uint32_t exp = (bits >> 23) & 0xffu;
    uint32_t mant = bits & 0x7fffffu;
    if (exp == 0xff)
        return sign | 0x7c00u | (mant ? 0x200u | (uint16_t)(mant >> 13) : 0);
    int32_t e = (int32_t)exp - 127 + 15;
    if (e >= 0x1f)
        return sign | 0x7c00u;
    if (e <= 0) {
        if (e < -10)
            return sign;
        mant |= 0x800000u;
        uint32_t shift = (uint32_t)(14 - e);
        uint32_t half_mant = mant >> shift;
        uint32_t rem = mant & ((1u << shift) - 1);
        uint32_t halfway = 1u << (shift - 1);
        if (rem > halfway || (rem == halfway && (half_mant & 1u)))
            half_mant++;
        return sign | (uint16_t)half_mant;
    }
    uint32_t half = ((uint32_t)e << 10) | (mant >> 13);
    uint32_t rem = mant & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (half & 1u)))
        half++; /* may carry into the exponent, which rounds up to infinity correctly */
    return sign | (uint16_t)half;
}

float bfloat16_to_float(uint16_t b)
{
    uint32_t bits = (uint32_t)b << 16;
    float f;
    memcpy(&f, &bits, sizeof(f));
    return f;
}

uint16_t float_to_bfloat16(float f)
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof(bits));
    if ((bits & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((bits >> 16) | 0x40u);
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return (uint16_t)(bits >> 16);
}

bool broadcast_shapes(int rank_a, const int64_t *dims_a, int rank_b, const int64_t *dims_b,
                      int *rank, int64_t *dims)
{
    int r = rank_a > rank_b ? rank_a : rank_b;
    for (int i = 0; i < r; i++) {
        int ia = i - (r - rank_a), ib = i - (r - rank_b);
        int64_t a = ia >= 0 ? dims_a[ia] : 1;
        int64_t b = ib >= 0 ? dims_b[ib] : 1;
        if (a == b || b == 1)
            dims[i] = a;
        else if (a == 1)
            dims[i] = b;
        else
            return false;
    }
    *rank = r;
    return true;
}

void broadcast_strides(int rank, const int64_t *dims, int in_rank, const int64_t *in_dims,
                       int64_t *strides)
{
    int64_t stride = 1;
    for (int i = rank - 1; i >= 0; i--) {
        int k = i - (rank - in_rank);
        if (k >= 0 && in_dims[k] == dims[i] && dims[i] != 1) {
            strides[i] = stride;
            stride *= in_dims[k];
        } else {
            strides[i] = 0;
            if (k >= 0)
                stride *= in_dims[k];
        }
    }
}
