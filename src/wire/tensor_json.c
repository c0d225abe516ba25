/*
 * tensor_json.c — the JSON codec of tensors shared by the book's API, KServe
 * V2, TensorFlow Serving's REST API and `inferd predict`.
 */
#include "tensor_json.h"

#include "shortest_double.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    ifd_dtype dtype;
    const char *name;
} v2_names[] = {
    {IFD_BOOL, "BOOL"},     {IFD_UINT8, "UINT8"},   {IFD_UINT16, "UINT16"},
    {IFD_UINT32, "UINT32"}, {IFD_UINT64, "UINT64"}, {IFD_INT8, "INT8"},
    {IFD_INT16, "INT16"},   {IFD_INT32, "INT32"},   {IFD_INT64, "INT64"},
    {IFD_FLOAT16, "FP16"},  {IFD_FLOAT, "FP32"},    {IFD_DOUBLE, "FP64"},
    {IFD_STRING, "BYTES"},  {IFD_BFLOAT16, "BF16"},
};

const char *v2_datatype_name(ifd_dtype dtype)
{
    for (size_t i = 0; i < sizeof(v2_names) / sizeof(v2_names[0]); i++)
        if (v2_names[i].dtype == dtype)
            return v2_names[i].name;
    return "UNKNOWN";
}

bool v2_datatype_parse(const char *name, ifd_dtype *dtype)
{
    for (size_t i = 0; i < sizeof(v2_names) / sizeof(v2_names[0]); i++)
        if (strcmp(v2_names[i].name, name) == 0) {
            *dtype = v2_names[i].dtype;
            return true;
        }
    return false;
}

static bool fail(char *err, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool fail(char *err, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, size, fmt, ap);
    va_end(ap);
    return false;
}

/* float16 storage without the engine's private helpers: round to nearest even */
static uint16_t to_half(float f)
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof(bits));
    uint16_t sign = (uint16_t)((bits >> 16) & 0x8000u);
    uint32_t exp = (bits >> 23) & 0xffu, mant = bits & 0x7fffffu;
    if (exp == 0xff)
        return sign | 0x7c00u | (mant ? 0x200u : 0);
    int32_t e = (int32_t)exp - 112;
    if (e >= 0x1f)
        return sign | 0x7c00u;
    if (e <= 0) {
        if (e < -10)
            return sign;
        mant |= 0x800000u;
        uint32_t shift = (uint32_t)(14 - e), half = mant >> shift;
        uint32_t rem = mant & ((1u << shift) - 1), mid = 1u << (shift - 1);
        return sign | (uint16_t)(half + (rem > mid || (rem == mid && (half & 1u))));
    }
    uint32_t half = ((uint32_t)e << 10) | (mant >> 13), rem = mant & 0x1fffu;
    return sign | (uint16_t)(half + (rem > 0x1000u || (rem == 0x1000u && (half & 1u))));
}

static float from_half(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
    float f;
    if (exp == 0) {
        f = ldexpf((float)mant, -24);
        return sign ? -f : f;
    }
    uint32_t bits = exp == 0x1f ? sign | 0x7f800000u | (mant << 13)
                                : sign | ((exp + 112) << 23) | (mant << 13);
    memcpy(&f, &bits, sizeof(f));
    return f;
}

/* bfloat16 is the high half of a float32, rounded to nearest even */
static uint16_t to_bfloat16(float f)
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof(bits));
    if ((bits & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((bits >> 16) | 0x40u); /* NaN stays NaN */
    return (uint16_t)((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}

static float from_bfloat16(uint16_t b)
{
    uint32_t bits = (uint32_t)b << 16;
    float f;
    memcpy(&f, &bits, sizeof(f));
    return f;
}

bool json_element_to_tensor(const json_t *j, ifd_tensor *t, size_t i, char *err, size_t n)
{
    switch (t->dtype) {
    case IFD_STRING: {
        if (!json_is_string(j))
            return fail(err, n, "element %zu: expected a string", i);
        ifd_string *s = &((ifd_string *)t->data)[i];
        s->size = json_string_length(j);
        s->data = malloc(s->size + 1);
        if (!s->data)
            return fail(err, n, "out of memory");
        memcpy(s->data, json_string_value(j), s->size + 1);
        return true;
    }
    case IFD_BOOL:
        if (!json_is_boolean(j))
            return fail(err, n, "element %zu: expected true or false", i);
        ((uint8_t *)t->data)[i] = json_is_true(j);
        return true;
    default:
        break;
    }
    if (!json_is_number(j))
        return fail(err, n, "element %zu: expected a number, got %s", i,
                    json_is_string(j) ? "a string" : json_is_boolean(j) ? "a boolean"
                    : json_is_null(j) ? "null" : "an array or object");
    double v = json_number_value(j);
    switch (t->dtype) {
    case IFD_FLOAT:
        if (fabs(v) > 3.4028234663852886e38)
            return fail(err, n, "element %zu: %g is out of range for float32", i, v);
        ((float *)t->data)[i] = (float)v;
        return true;
    case IFD_DOUBLE: ((double *)t->data)[i] = v; return true;
    case IFD_FLOAT16:
        if (fabs(v) > 65504.0)
            return fail(err, n, "element %zu: %g is out of range for float16", i, v);
        ((uint16_t *)t->data)[i] = to_half((float)v);
        return true;
    case IFD_BFLOAT16:
        if (fabs(v) > 3.3895313892515355e38) /* the largest finite bfloat16 */
            return fail(err, n, "element %zu: %g is out of range for bfloat16", i, v);
        ((uint16_t *)t->data)[i] = to_bfloat16((float)v);
        return true;
    default: break;
    }
    long long x;
    if (json_is_integer(j)) {
        x = json_integer_value(j);
    } else if (v == floor(v) && fabs(v) < 9.007199254740992e15) {
        x = (long long)v;
    } else {
        return fail(err, n, "element %zu: %g is not an integer, as %s needs", i, v,
                    v2_datatype_name(t->dtype));
    }
#define PUT(type, lo, hi)                                                                  \
    if (x < (lo) || x > (hi))                                                              \
        return fail(err, n, "element %zu: %lld is out of range for %s", i, x,              \
                    v2_datatype_name(t->dtype));                                           \
    ((type *)t->data)[i] = (type)x;                                                        \
    return true
    switch (t->dtype) {
    case IFD_INT8: PUT(int8_t, INT8_MIN, INT8_MAX);
    case IFD_INT16: PUT(int16_t, INT16_MIN, INT16_MAX);
    case IFD_INT32: PUT(int32_t, INT32_MIN, INT32_MAX);
    case IFD_INT64: PUT(int64_t, INT64_MIN, INT64_MAX);
    case IFD_UINT8: PUT(uint8_t, 0, UINT8_MAX);
    case IFD_UINT16: PUT(uint16_t, 0, UINT16_MAX);
    case IFD_UINT32: PUT(uint32_t, 0, UINT32_MAX);
    case IFD_UINT64: PUT(uint64_t, 0, LLONG_MAX);
    default: return fail(err, n, "datatype %s cannot be given as JSON", ifd_dtype_name(t->dtype));
    }
#undef PUT
}

/* Walk nested arrays in row-major order, filling t. */
static bool fill_nested(const json_t *j, ifd_tensor *t, size_t *pos, size_t count, int depth,
                        char *err, size_t n)
{
    if (json_is_array(j)) {
        if (depth > IFD_MAX_RANK)
            return fail(err, n, "data is nested more than %d levels deep", IFD_MAX_RANK);
        for (size_t i = 0; i < json_array_size(j); i++)
            if (!fill_nested(json_array_get(j, i), t, pos, count, depth + 1, err, n))
                return false;
        return true;
    }
    if (*pos >= count)
        return fail(err, n, "data has more elements than the shape holds (%zu)", count);
    return json_element_to_tensor(j, t, (*pos)++, err, n);
}

static size_t count_leaves(const json_t *j, int depth, bool *too_deep)
{
    if (!json_is_array(j))
        return 1;
    if (depth > IFD_MAX_RANK) {
        *too_deep = true;
        return 0;
    }
    size_t total = 0;
    for (size_t i = 0; i < json_array_size(j); i++)
        total += count_leaves(json_array_get(j, i), depth + 1, too_deep);
    return total;
}

ifd_value *json_to_tensor(const json_t *data, ifd_dtype dtype, int rank, const int64_t *dims,
                          char *err, size_t n)
{
    /* Count first, allocate after: a request's shape may claim 2^40
     * elements while its data holds four, and the tensor's size must come
     * from what was sent (bounded by the body size), not from the claim. */
    size_t count = 1, pos = 0;
    bool overflow = false;
    for (int i = 0; i < rank; i++)
        if (dims[i] == 0)
            count = 0;
    for (int i = 0; count && i < rank; i++) {
        if (dims[i] < 0 || count > SIZE_MAX / (size_t)dims[i])
            overflow = true;
        else
            count *= (size_t)dims[i];
    }
    bool too_deep = false;
    size_t leaves = count_leaves(data, 0, &too_deep);
    ifd_value *v = NULL;
    ifd_error e;
    if (too_deep) {
        fail(err, n, "data is nested more than %d levels deep", IFD_MAX_RANK);
    } else if (overflow || leaves != count) {
        char shape[128];
        size_t used = (size_t)snprintf(shape, sizeof(shape), "[");
        for (int i = 0; i < rank && used < sizeof(shape); i++)
            used += (size_t)snprintf(shape + used, sizeof(shape) - used, "%s%lld", i ? "," : "",
                                     (long long)dims[i]);
        if (used < sizeof(shape))
            snprintf(shape + used, sizeof(shape) - used, "]");
        if (overflow)
            fail(err, n, "data has %zu elements but shape %s holds more than can be addressed", leaves,
                 shape);
        else
            fail(err, n, "data has %zu elements but shape %s needs %zu", leaves, shape, count);
    } else if (ifd_value_new_tensor(dtype, rank, dims, &v, &e) != IFD_OK) {
        fail(err, n, "%s", e.message);
        return NULL;
    } else if (fill_nested(data, &v->tensor, &pos, count, 0, err, n)) {
        return v;
    }
    ifd_value_free(v);
    return NULL;
}

static bool rows_shape(const json_t *j, int depth, int *rank, int64_t *dims, char *err, size_t n)
{
    if (!json_is_array(j)) {
        if (*rank < 0)
            *rank = depth;
        else if (*rank != depth)
            return fail(err, n, "nested arrays are ragged");
        return true;
    }
    if (depth >= IFD_MAX_RANK)
        return fail(err, n, "data is nested more than %d levels deep", IFD_MAX_RANK);
    int64_t len = (int64_t)json_array_size(j);
    if (*rank >= 0 && depth >= *rank)
        return fail(err, n, "nested arrays are ragged");
    if (dims[depth] < 0)
        dims[depth] = len;
    else if (dims[depth] != len)
        return fail(err, n, "rows have different lengths (%lld and %lld)", (long long)dims[depth],
                    (long long)len);
    if (len == 0 && *rank < 0)
        *rank = depth + 1;
    for (size_t i = 0; i < (size_t)len; i++)
        if (!rows_shape(json_array_get(j, i), depth + 1, rank, dims, err, n))
            return false;
    return true;
}

ifd_value *json_rows_to_tensor(const json_t *data, ifd_dtype dtype, char *err, size_t n)
{
    int rank = -1;
    int64_t dims[IFD_MAX_RANK];
    for (int i = 0; i < IFD_MAX_RANK; i++)
        dims[i] = -1;
    if (!rows_shape(data, 0, &rank, dims, err, n))
        return NULL;
    for (int i = 0; i < rank; i++)
        if (dims[i] < 0)
            dims[i] = 0;
    return json_to_tensor(data, dtype, rank, dims, err, n);
}

const char *type_shape_string(const ifd_type_info *type, char *buf, size_t size)
{
    size_t used = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < type->rank && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, type->dims[i] < 0 ? "%s-1" : "%s%lld",
                                 i ? "," : "", (long long)type->dims[i]);
    if (used < size)
        snprintf(buf + used, size - used, "]");
    return buf;
}

bool check_input_contract(const ifd_io_info *io, ifd_dtype dtype, int rank, const int64_t *dims,
                          char *err, size_t n)
{
    const ifd_type_info *want = &io->type;
    char expected[160], got[160];
    ifd_type_info sent = {.rank = rank};
    for (int i = 0; i < rank && i < IFD_MAX_RANK; i++)
        sent.dims[i] = dims[i];
    if (want->kind != IFD_VALUE_TENSOR)
        return fail(err, n, "input '%s' is not a tensor and cannot be sent in a request", io->name);
    if (dtype != want->dtype)
        return fail(err, n, "input '%s': expected datatype %s, received %s", io->name,
                    v2_datatype_name(want->dtype), v2_datatype_name(dtype));
    if (want->rank >= 0 && rank != want->rank)
        return fail(err, n, "input '%s': expected rank %d (shape %s), received rank %d (shape %s)",
                    io->name, want->rank, type_shape_string(want, expected, sizeof(expected)), rank,
                    type_shape_string(&sent, got, sizeof(got)));
    for (int i = 0; want->rank >= 0 && i < rank; i++)
        if (want->dims[i] >= 0 && want->dims[i] != dims[i])
            return fail(err, n,
                        "input '%s': dimension %d must be %lld (shape %s), received %lld (shape %s)",
                        io->name, i, (long long)want->dims[i],
                        type_shape_string(want, expected, sizeof(expected)), (long long)dims[i],
                        type_shape_string(&sent, got, sizeof(got)));
    return true;
}

static json_t *element_json(const ifd_tensor *t, size_t i)
{
    double d;
    switch (t->dtype) {
    case IFD_STRING: {
        const ifd_string *s = &((const ifd_string *)t->data)[i];
        return json_stringn_nocheck(s->data ? s->data : "", s->size);
    }
    case IFD_BOOL: return json_boolean(((const uint8_t *)t->data)[i]);
    case IFD_FLOAT: d = ((const float *)t->data)[i]; break;
    case IFD_DOUBLE: d = ((const double *)t->data)[i]; break;
    case IFD_FLOAT16: d = from_half(((const uint16_t *)t->data)[i]); break;
    case IFD_BFLOAT16: d = from_bfloat16(((const uint16_t *)t->data)[i]); break;
    case IFD_INT8: return json_integer(((const int8_t *)t->data)[i]);
    case IFD_INT16: return json_integer(((const int16_t *)t->data)[i]);
    case IFD_INT32: return json_integer(((const int32_t *)t->data)[i]);
    case IFD_INT64: return json_integer(((const int64_t *)t->data)[i]);
    case IFD_UINT8: return json_integer(((const uint8_t *)t->data)[i]);
    case IFD_UINT16: return json_integer(((const uint16_t *)t->data)[i]);
    case IFD_UINT32: return json_integer(((const uint32_t *)t->data)[i]);
    case IFD_UINT64: return json_integer((json_int_t)((const uint64_t *)t->data)[i]);
    default: return json_null();
    }
    return isfinite(d) ? json_real(d) : json_null();
}

json_t *tensor_to_json_flat(const ifd_tensor *t)
{
    json_t *arr = json_array();
    size_t count = (size_t)ifd_tensor_count(t);
    for (size_t i = 0; i < count; i++)
        json_array_append_new(arr, element_json(t, i));
    return arr;
}

static json_t *nested(const ifd_tensor *t, int axis, size_t *pos)
{
    if (axis == t->rank)
        return element_json(t, (*pos)++);
    json_t *arr = json_array();
    for (int64_t i = 0; i < t->dims[axis]; i++)
        json_array_append_new(arr, nested(t, axis + 1, pos));
    return arr;
}

json_t *tensor_to_json_nested(const ifd_tensor *t)
{
    size_t pos = 0;
    return nested(t, 0, &pos);
}

json_t *value_to_json(const ifd_value *v)
{
    if (v->kind == IFD_VALUE_TENSOR)
        return tensor_to_json_nested(&v->tensor);
    if (v->kind == IFD_VALUE_OPTIONAL)
        return v->length ? value_to_json(v->items[0]) : json_null();
    if (v->kind == IFD_VALUE_SEQUENCE) {
        json_t *arr = json_array();
        for (size_t i = 0; i < v->length; i++)
            json_array_append_new(arr, value_to_json(v->items[i]));
        return arr;
    }
    json_t *obj = json_object();
    size_t count = (size_t)ifd_tensor_count(&v->map_keys);
    for (size_t i = 0; i < count; i++) {
        if (v->map_keys.dtype == IFD_STRING) {
            const ifd_string *s = &((const ifd_string *)v->map_keys.data)[i];
            json_object_setn_new_nocheck(obj, s->data ? s->data : "", s->size,
                                         element_json(&v->map_values, i));
        } else {
            char key[32];
            snprintf(key, sizeof(key), "%lld", (long long)((const int64_t *)v->map_keys.data)[i]);
            json_object_set_new(obj, key, element_json(&v->map_values, i));
        }
    }
    return obj;
}

/* ---- encoding ------------------------------------------------------------ */

typedef json_text text_buffer;

static void put(text_buffer *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *grown = realloc(b->data, cap);
        if (!grown) {
            b->failed = true;
            return;
        }
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void put_real(text_buffer *b, double d)
{
    if (!isfinite(d)) {
        put(b, "null", 4);
        return;
    }
    /* Python's repr(): the shortest digits that read back as d
     * (libfmt's Dragonbox finds them, shortest_double.cc; `inferd batch` and every answer
     * write these), laid out in positional notation for exponents -4..15
     * and in scientific notation otherwise ("1e-05", "1e+16", "1.5e+300"). */
    char digits[24], text[48];
    size_t n = 0;
    int exponent = 0;
    bool negative = signbit(d) != 0;
    size_t nd = shortest_double_digits(fabs(d), digits, &exponent);
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    if (negative)
        text[n++] = '-';
    if (exponent >= -4 && exponent < 16) {
        if (exponent < 0) {
            text[n++] = '0';
            text[n++] = '.';
            for (int z = -1; z > exponent; z--)
                text[n++] = '0';
            for (size_t i = 0; i < nd; i++)
                text[n++] = digits[i];
        } else {
            for (int i = 0; i <= exponent; i++)
                text[n++] = (size_t)i < nd ? digits[i] : '0';
            text[n++] = '.';
            if ((size_t)exponent + 1 < nd)
                for (size_t i = (size_t)exponent + 1; i < nd; i++)
                    text[n++] = digits[i];
            else
                text[n++] = '0';
        }
        put(b, text, n);
        return;
    }
    text[n++] = digits[0];
    if (nd > 1) {
        text[n++] = '.';
        for (size_t i = 1; i < nd; i++)
            text[n++] = digits[i];
    }
    /* "e%c%02d" by hand: the exponent is at most 308 in size */
    int magnitude = exponent < 0 ? -exponent : exponent;
    text[n++] = 'e';
    text[n++] = exponent < 0 ? '-' : '+';
    if (magnitude >= 100)
        text[n++] = (char)('0' + magnitude / 100);
    text[n++] = (char)('0' + magnitude / 10 % 10);
    text[n++] = (char)('0' + magnitude % 10);
    put(b, text, n);
}

static void put_string(text_buffer *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    put(b, "\"", 1);
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        put(b, s + start, i - start);
        char esc[7] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15], 0};
        switch (c) {
        case '"': put(b, "\\\"", 2); break;
        case '\\': put(b, "\\\\", 2); break;
        case '\n': put(b, "\\n", 2); break;
        case '\r': put(b, "\\r", 2); break;
        case '\t': put(b, "\\t", 2); break;
        case '\b': put(b, "\\b", 2); break; /* as Python's json module writes them */
        case '\f': put(b, "\\f", 2); break;
        default: put(b, esc, 6); break;
        }
        start = i + 1;
    }
    put(b, s + start, n - start);
    put(b, "\"", 1);
}

static void put_value(text_buffer *b, const json_t *j)
{
    char text[32];
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        put(b, "{", 1);
        const char *key;
        json_t *value;
        bool first = true;
        json_object_foreach((json_t *)j, key, value) {
            if (!first)
                put(b, ",", 1);
            first = false;
            put_string(b, key, strlen(key));
            put(b, ":", 1);
            put_value(b, value);
        }
        put(b, "}", 1);
        break;
    }
    case JSON_ARRAY:
        put(b, "[", 1);
        for (size_t i = 0; i < json_array_size(j); i++) {
            if (i)
                put(b, ",", 1);
            put_value(b, json_array_get(j, i));
        }
        put(b, "]", 1);
        break;
    case JSON_STRING: put_string(b, json_string_value(j), json_string_length(j)); break;
    case JSON_INTEGER:
        put(b, text, (size_t)snprintf(text, sizeof(text), "%lld", (long long)json_integer_value(j)));
        break;
    case JSON_REAL: put_real(b, json_real_value(j)); break;
    case JSON_TRUE: put(b, "true", 4); break;
    case JSON_FALSE: put(b, "false", 5); break;
    default: put(b, "null", 4); break;
    }
}

void json_text_put(json_text *t, const char *s, size_t n) { put(t, s, n); }

void json_text_real(json_text *t, double d) { put_real(t, d); }

bool json_text_number_array(json_text *t, const ifd_tensor *tensor, size_t first, size_t count)
{
    if (tensor->dtype != IFD_FLOAT && tensor->dtype != IFD_DOUBLE)
        return false;
    put(t, "[", 1);
    for (size_t i = first; i < first + count; i++) {
        if (i > first)
            put(t, ",", 1);
        put_real(t, tensor->dtype == IFD_FLOAT ? (double)((const float *)tensor->data)[i]
                                                : ((const double *)tensor->data)[i]);
    }
    put(t, "]", 1);
    return true;
}

void json_text_string(json_text *t, const char *s, size_t n) { put_string(t, s, n); }

/* "%lld" without printf. */
static void put_integer(text_buffer *b, long long v)
{
    char text[24];
    size_t n = sizeof(text);
    unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    do {
        text[--n] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        text[--n] = '-';
    put(b, text + n, sizeof(text) - n);
}

void json_text_integer(json_text *t, long long v) { put_integer(t, v); }

void json_text_flat(json_text *t, const ifd_tensor *tensor)
{
    size_t count = (size_t)ifd_tensor_count(tensor);
    const void *d = tensor->data;
    put(t, "[", 1);
    for (size_t i = 0; i < count; i++) {
        if (i)
            put(t, ",", 1);
        switch (tensor->dtype) { /* element_json's cases, written */
        case IFD_STRING: {
            const ifd_string *s = &((const ifd_string *)d)[i];
            put_string(t, s->data ? s->data : "", s->data ? s->size : 0);
            break;
        }
        case IFD_BOOL: ((const uint8_t *)d)[i] ? put(t, "true", 4) : put(t, "false", 5); break;
        case IFD_FLOAT: put_real(t, ((const float *)d)[i]); break;
        case IFD_DOUBLE: put_real(t, ((const double *)d)[i]); break;
        case IFD_FLOAT16: put_real(t, from_half(((const uint16_t *)d)[i])); break;
        case IFD_BFLOAT16: put_real(t, from_bfloat16(((const uint16_t *)d)[i])); break;
        case IFD_INT8: put_integer(t, ((const int8_t *)d)[i]); break;
        case IFD_INT16: put_integer(t, ((const int16_t *)d)[i]); break;
        case IFD_INT32: put_integer(t, ((const int32_t *)d)[i]); break;
        case IFD_INT64: put_integer(t, ((const int64_t *)d)[i]); break;
        case IFD_UINT8: put_integer(t, ((const uint8_t *)d)[i]); break;
        case IFD_UINT16: put_integer(t, ((const uint16_t *)d)[i]); break;
        case IFD_UINT32: put_integer(t, ((const uint32_t *)d)[i]); break;
        case IFD_UINT64: put_integer(t, (long long)((const uint64_t *)d)[i]); break;
        default: put(t, "null", 4); break;
        }
    }
    put(t, "]", 1);
}

char *json_encode(const json_t *j, size_t *len)
{
    text_buffer b = {0};
    put_value(&b, j);
    if (b.failed) {
        free(b.data);
        return NULL;
    }
    *len = b.len;
    return b.data;
}
