/*
 * numeric_json.c — the book API's numeric body read without jansson (see
 * numeric_json.h). Numbers use Clinger's fast path: a decimal with at most
 * 15 significant digits and a power of ten up to 22 is exactly one
 * correctly rounded multiply or divide of two exact doubles, so it equals
 * strtod's answer (W. D. Clinger, "How to read floating point numbers
 * accurately", PLDI 1990). Other numbers go to strtod itself, as jansson
 * would; integers go through int64 and then to double, as jansson's
 * json_number_value does. The conversions to the tensor's type are those
 * of json_element_to_tensor, range check included (out of range falls back,
 * so the general path words the error).
 */
#include "numeric_json.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const double exact_powers_of_ten[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                             1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                             1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

bool numeric_json_number(const char *s, size_t len, double *out)
{
    size_t i = 0;
    bool negative = false;
    if (i < len && s[i] == '-') {
        negative = true;
        i++;
    }
    /* JSON: 0 or a non-zero digit then digits; a fraction; an exponent */
    if (i >= len || !is_digit(s[i]))
        return false;
    uint64_t mantissa = 0;
    int digits = 0;        /* significant digits taken into mantissa */
    int dropped = 0;       /* integer-part digits beyond 19 (only counted) */
    int fraction_digits = 0;
    bool integral = true;
    if (s[i] == '0') {
        i++;
        if (i < len && is_digit(s[i]))
            return false; /* leading zero */
    } else {
        for (; i < len && is_digit(s[i]); i++) {
            if (digits < 19) {
                mantissa = mantissa * 10 + (uint64_t)(s[i] - '0');
                digits++;
            } else {
                dropped++;
            }
        }
    }
    if (i < len && s[i] == '.') {
        integral = false;
        i++;
        if (i >= len || !is_digit(s[i]))
            return false;
        for (; i < len && is_digit(s[i]); i++) {
            if (mantissa == 0 && s[i] == '0') { /* leading zeros of 0.000x are not significant */
                fraction_digits++;
                continue;
            }
            if (digits < 19) {
                mantissa = mantissa * 10 + (uint64_t)(s[i] - '0');
                digits++;
                fraction_digits++;
            } else {
                digits = 99; /* too many significant digits: strtod decides */
            }
        }
    }
    long exponent = 0;
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        integral = false;
        i++;
        bool exp_negative = false;
        if (i < len && (s[i] == '+' || s[i] == '-'))
            exp_negative = s[i++] == '-';
        if (i >= len || !is_digit(s[i]))
            return false;
        for (; i < len && is_digit(s[i]); i++)
            if (exponent < 100000)
                exponent = exponent * 10 + (s[i] - '0');
        if (exp_negative)
            exponent = -exponent;
    }
    if (i != len)
        return false;
    if (integral) {
        /* jansson reads an integer as json_int_t and gives (double) of it;
         * beyond 18 digits it may overflow, which jansson refuses */
        if (dropped || digits > 18)
            return false;
        int64_t x = negative ? -(int64_t)mantissa : (int64_t)mantissa;
        *out = (double)x;
        return true;
    }
    long scale = exponent - fraction_digits + dropped;
    if (digits <= 15 && scale >= -22 && scale <= 22) {
        double v = (double)mantissa; /* exact: below 10^15 < 2^53 */
        v = scale >= 0 ? v * exact_powers_of_ten[scale] : v / exact_powers_of_ten[-scale];
        *out = negative ? -v : v;
        return true;
    }
    /* the rest as jansson does it: strtod of the token (NUL-terminated copy) */
    char token[128];
    if (len >= sizeof(token))
        return false;
    memcpy(token, s, len);
    token[len] = '\0';
    char *end;
    double v = strtod(token, &end);
    if (end != token + len || v > 1.7976931348623157e308 || v < -1.7976931348623157e308)
        return false; /* overflow: jansson refuses it, and so answers the error */
    *out = v;
    return true;
}

static size_t skip_space(const char *s, size_t i, size_t len)
{
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

#define STACK_VALUES 1024

ifd_value *numeric_json_book_rows(const char *body, size_t len, ifd_dtype dtype)
{
    if (dtype != IFD_FLOAT && dtype != IFD_DOUBLE)
        return NULL;
    double stack[STACK_VALUES];
    double *values = stack;
    size_t count = 0, cap = STACK_VALUES, rows = 0, cols = 0;
    ifd_value *out = NULL;
    size_t i = skip_space(body, 0, len);
    if (i >= len || body[i++] != '{')
        goto done;
    i = skip_space(body, i, len);
    if (len - i < 6 || memcmp(body + i, "\"data\"", 6) != 0)
        goto done;
    i = skip_space(body, i + 6, len);
    if (i >= len || body[i++] != ':')
        goto done;
    i = skip_space(body, i, len);
    if (i >= len || body[i++] != '[')
        goto done;
    for (;;) { /* rows */
        i = skip_space(body, i, len);
        if (i >= len || body[i++] != '[')
            goto done;
        size_t in_row = 0;
        for (;;) { /* numbers */
            i = skip_space(body, i, len);
            size_t start = i;
            while (i < len && (is_digit(body[i]) || body[i] == '-' || body[i] == '+' || body[i] == '.' ||
                               body[i] == 'e' || body[i] == 'E'))
                i++;
            double v;
            if (!numeric_json_number(body + start, i - start, &v))
                goto done;
            if (dtype == IFD_FLOAT && (v > 3.4028234663852886e38 || v < -3.4028234663852886e38))
                goto done;
            if (count == cap) {
                size_t grown_cap = cap * 2;
                double *grown = values == stack ? malloc(grown_cap * sizeof(*grown))
                                                : realloc(values, grown_cap * sizeof(*grown));
                if (!grown)
                    goto done;
                if (values == stack)
                    memcpy(grown, stack, sizeof(stack));
                values = grown;
                cap = grown_cap;
            }
            values[count++] = v;
            in_row++;
            i = skip_space(body, i, len);
            if (i < len && body[i] == ',') {
                i++;
                continue;
            }
            if (i < len && body[i] == ']') {
                i++;
                break;
            }
            goto done;
        }
        if (rows == 0)
            cols = in_row;
        else if (in_row != cols)
            goto done; /* ragged: the general path words it */
        rows++;
        i = skip_space(body, i, len);
        if (i < len && body[i] == ',') {
            i++;
            continue;
        }
        if (i < len && body[i] == ']') {
            i++;
            break;
        }
        goto done;
    }
    i = skip_space(body, i, len);
    if (i >= len || body[i++] != '}')
        goto done;
    if (skip_space(body, i, len) != len)
        goto done;
    int64_t dims[2] = {(int64_t)rows, (int64_t)cols};
    ifd_error err;
    if (ifd_value_new_tensor(dtype, 2, dims, &out, &err) != IFD_OK) {
        out = NULL;
        goto done;
    }
    if (dtype == IFD_FLOAT) {
        float *f = out->tensor.data;
        for (size_t k = 0; k < count; k++)
            f[k] = (float)values[k];
    } else {
        memcpy(out->tensor.data, values, count * sizeof(double));
    }
done:
    if (values != stack)
        free(values);
    return out;
}

/* ---- KServe V2 bodies ------------------------------------------------------ */

/* A JSON string at s[*i] == '"': past its closing quote. */
static bool skip_string(const char *s, size_t len, size_t *i)
{
    for (size_t k = *i + 1; k < len; k++) {
        if (s[k] == '\\')
            k++;
        else if (s[k] == '"') {
            *i = k + 1;
            return true;
        }
    }
    return false;
}

static bool is_number_char(char c)
{
    return is_digit(c) || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
}

/* Past any value at s[*i]: strings, literals and numbers, arrays and
 * objects (brackets counted, strings skipped). Not a validation: jansson
 * validates the body; this only has to find where the value ends. */
static bool skip_value(const char *s, size_t len, size_t *i)
{
    size_t k = *i;
    if (k >= len)
        return false;
    if (s[k] == '"')
        return skip_string(s, len, i);
    if (s[k] != '[' && s[k] != '{') {
        size_t start = k;
        while (k < len && (is_number_char(s[k]) || (s[k] >= 'a' && s[k] <= 'z')))
            k++;
        *i = k;
        return k > start;
    }
    int depth = 0;
    while (k < len) {
        char c = s[k];
        if (c == '"') {
            if (!skip_string(s, len, &k))
                return false;
            continue;
        }
        if (c == '[' || c == '{')
            depth++;
        else if (c == ']' || c == '}')
            if (--depth == 0) {
                *i = k + 1;
                return true;
            }
        k++;
    }
    return false;
}

/* A non-empty flat array of numbers the fast reader takes, at s[*i] == '[':
 * past its ']'. */
static bool flat_number_array(const char *s, size_t len, size_t *i)
{
    size_t k = *i + 1;
    size_t count = 0;
    for (;;) {
        k = skip_space(s, k, len);
        size_t start = k;
        while (k < len && is_number_char(s[k]))
            k++;
        double v;
        if (!numeric_json_number(s + start, k - start, &v))
            return false;
        count++;
        k = skip_space(s, k, len);
        if (k < len && s[k] == ',') {
            k++;
            continue;
        }
        if (k < len && s[k] == ']') {
            *i = k + 1;
            return count > 0;
        }
        return false;
    }
}

/* The key at s[*i] == '"': whether its raw text is exactly `want`. */
static bool key_is(const char *s, size_t start, size_t end, const char *want)
{
    size_t n = strlen(want);
    return end - start == n + 2 && memcmp(s + start + 1, want, n) == 0;
}

/* One object at s[*i] == '{': past its '}'. For each key, on_member is
 * called with the value's start; it either consumes the value (true) or
 * leaves it to be skipped (false, *i unchanged). */
typedef bool (*member_fn)(void *ctx, const char *s, size_t len, size_t key_start, size_t key_end, size_t *i,
                          bool *consumed);

static bool scan_object(const char *s, size_t len, size_t *i, member_fn on_member, void *ctx)
{
    size_t k = skip_space(s, *i + 1, len);
    if (k < len && s[k] == '}') {
        *i = k + 1;
        return true;
    }
    for (;;) {
        if (k >= len || s[k] != '"')
            return false;
        size_t key_start = k;
        if (!skip_string(s, len, &k))
            return false;
        size_t key_end = k;
        k = skip_space(s, k, len);
        if (k >= len || s[k++] != ':')
            return false;
        k = skip_space(s, k, len);
        if (k >= len)
            return false; /* the members look at the value's first byte */
        bool consumed = false;
        if (!on_member(ctx, s, len, key_start, key_end, &k, &consumed))
            return false;
        if (!consumed && !skip_value(s, len, &k))
            return false;
        k = skip_space(s, k, len);
        if (k < len && s[k] == ',') {
            k = skip_space(s, k + 1, len);
            continue;
        }
        if (k < len && s[k] == '}') {
            *i = k + 1;
            return true;
        }
        return false;
    }
}

typedef struct lift_scan {
    numeric_json_lifted *out;
    size_t input; /* the index in "inputs" of the object being scanned */
} lift_scan;

/* A member of inputs[i]: "data" holding a flat array of numbers is lifted. */
static bool input_member(void *ctx, const char *s, size_t len, size_t key_start, size_t key_end, size_t *i,
                         bool *consumed)
{
    lift_scan *scan = ctx;
    if (!key_is(s, key_start, key_end, "data") || s[*i] != '[' || scan->out->count == NUMERIC_JSON_MAX_LIFTED)
        return true;
    size_t end = *i;
    if (!flat_number_array(s, len, &end))
        return true;
    /* only where a ',' or '}' follows, so the blanked body fails (if at
     * all) where and as the original would */
    size_t next = skip_space(s, end, len);
    if (next >= len || (s[next] != ',' && s[next] != '}'))
        return true;
    scan->out->spans[scan->out->count++] = (numeric_json_span){scan->input, *i, end - *i};
    *i = end;
    *consumed = true;
    return true;
}

/* A top-level member: "inputs" holding an array of objects is scanned. */
static bool top_member(void *ctx, const char *s, size_t len, size_t key_start, size_t key_end, size_t *i,
                       bool *consumed)
{
    lift_scan *scan = ctx;
    if (!key_is(s, key_start, key_end, "inputs") || s[*i] != '[')
        return true;
    size_t k = skip_space(s, *i + 1, len);
    if (k < len && s[k] == ']') {
        *i = k + 1;
        *consumed = true;
        return true;
    }
    for (scan->input = 0;; scan->input++) {
        if (k < len && s[k] == '{') {
            if (!scan_object(s, len, &k, input_member, scan))
                return false;
        } else if (!skip_value(s, len, &k)) {
            return false;
        }
        k = skip_space(s, k, len);
        if (k < len && s[k] == ',') {
            k = skip_space(s, k + 1, len);
            continue;
        }
        if (k < len && s[k] == ']') {
            *i = k + 1;
            *consumed = true;
            return true;
        }
        return false;
    }
}

bool numeric_json_v2_lift(const char *body, size_t len, numeric_json_lifted *out)
{
    out->text = NULL;
    out->count = 0;
    lift_scan scan = {out, 0};
    size_t i = skip_space(body, 0, len);
    if (i >= len || body[i] != '{' || !scan_object(body, len, &i, top_member, &scan) ||
        skip_space(body, i, len) != len || out->count == 0) {
        out->count = 0;
        return false;
    }
    out->text = malloc(len ? len : 1);
    if (!out->text) {
        out->count = 0;
        return false;
    }
    memcpy(out->text, body, len);
    for (size_t k = 0; k < out->count; k++) {
        char *array = out->text + out->spans[k].offset;
        array[0] = '0';
        for (size_t c = 1; c < out->spans[k].len; c++)
            if (array[c] != '\n' && array[c] != '\r')
                array[c] = ' ';
    }
    return true;
}

void numeric_json_lifted_free(numeric_json_lifted *lifted)
{
    free(lifted->text);
    lifted->text = NULL;
    lifted->count = 0;
}

const numeric_json_span *numeric_json_lifted_input(const numeric_json_lifted *lifted, size_t input)
{
    for (size_t k = 0; lifted && k < lifted->count; k++)
        if (lifted->spans[k].input == input)
            return &lifted->spans[k];
    return NULL;
}

/* ---- the whole common V2 body, without jansson ---- */

/* A string of printable ASCII without escapes at s[*i] == '"'. */
static bool plain_string(const char *s, size_t len, size_t *i, numeric_json_text *out)
{
    if (*i >= len || s[*i] != '"')
        return false;
    for (size_t k = *i + 1; k < len; k++) {
        unsigned char c = (unsigned char)s[k];
        if (c == '"') {
            *out = (numeric_json_text){s + *i + 1, k - *i - 1};
            *i = k + 1;
            return true;
        }
        if (c < 0x20 || c > 0x7e || c == '\\')
            return false;
    }
    return false;
}

/* Members of an object at s[*i] == '{' whose keys are all in `keys` (at most
 * 8), each once; on_member reads each value. */
typedef bool (*strict_member_fn)(void *ctx, int key, const char *s, size_t len, size_t *i);

static bool strict_object(const char *s, size_t len, size_t *i, const char *const *keys, int n_keys,
                          strict_member_fn on_member, void *ctx)
{
    unsigned seen = 0;
    size_t k = skip_space(s, *i + 1, len);
    if (k < len && s[k] == '}') {
        *i = k + 1;
        return true;
    }
    for (;;) {
        numeric_json_text key;
        if (!plain_string(s, len, &k, &key))
            return false;
        int which = 0;
        while (which < n_keys && !(strlen(keys[which]) == key.len && memcmp(keys[which], key.s, key.len) == 0))
            which++;
        if (which == n_keys || (seen & (1u << which)))
            return false; /* another key, or one given twice: jansson's path */
        seen |= 1u << which;
        k = skip_space(s, k, len);
        if (k >= len || s[k++] != ':')
            return false;
        k = skip_space(s, k, len);
        if (!on_member(ctx, which, s, len, &k))
            return false;
        k = skip_space(s, k, len);
        if (k < len && s[k] == ',') {
            k = skip_space(s, k + 1, len);
            continue;
        }
        if (k < len && s[k] == '}') {
            *i = k + 1;
            return true;
        }
        return false;
    }
}

/* Elements of an array at s[*i] == '['; on_element reads each. */
typedef bool (*element_fn)(void *ctx, size_t index, const char *s, size_t len, size_t *i);

static bool strict_array(const char *s, size_t len, size_t *i, element_fn on_element, void *ctx)
{
    if (*i >= len || s[*i] != '[')
        return false;
    size_t k = skip_space(s, *i + 1, len);
    if (k < len && s[k] == ']') {
        *i = k + 1;
        return true;
    }
    for (size_t index = 0;; index++) {
        if (!on_element(ctx, index, s, len, &k))
            return false;
        k = skip_space(s, k, len);
        if (k < len && s[k] == ',') {
            k = skip_space(s, k + 1, len);
            continue;
        }
        if (k < len && s[k] == ']') {
            *i = k + 1;
            return true;
        }
        return false;
    }
}

static bool shape_element(void *ctx, size_t index, const char *s, size_t len, size_t *i)
{
    numeric_json_v2_input *in = ctx;
    if (index >= IFD_MAX_RANK)
        return false;
    size_t start = *i;
    int64_t v = 0;
    while (*i < len && is_digit(s[*i]) && *i - start < 18)
        v = v * 10 + (s[(*i)++] - '0');
    if (*i == start || (s[start] == '0' && *i - start > 1) || (*i < len && is_number_char(s[*i])))
        return false; /* not a plain non-negative integer: jansson's path */
    in->dims[index] = v;
    in->rank = (int)index + 1;
    return true;
}

static bool input_field(void *ctx, int key, const char *s, size_t len, size_t *i)
{
    numeric_json_v2_input *in = ctx;
    switch (key) {
    case 0: return plain_string(s, len, i, &in->name);
    case 1: in->rank = 0; return strict_array(s, len, i, shape_element, in);
    case 2: return plain_string(s, len, i, &in->datatype);
    default: {
        size_t start = *i;
        if (*i >= len || s[*i] != '[' || !flat_number_array(s, len, i))
            return false;
        in->data_offset = start;
        in->data_len = *i - start;
        return true;
    }
    }
}

static bool input_element(void *ctx, size_t index, const char *s, size_t len, size_t *i)
{
    static const char *const keys[] = {"name", "shape", "datatype", "data"};
    numeric_json_v2_request *r = ctx;
    if (index >= NUMERIC_JSON_MAX_LIFTED || *i >= len || s[*i] != '{')
        return false;
    numeric_json_v2_input *in = &r->inputs[index];
    memset(in, 0, sizeof(*in));
    in->rank = -1;
    if (!strict_object(s, len, i, keys, 4, input_field, in))
        return false;
    r->n_inputs = index + 1;
    /* all four are needed; without one, jansson's path words it */
    return in->name.s && in->datatype.s && in->rank >= 0 && in->data_len;
}

static bool output_field(void *ctx, int key, const char *s, size_t len, size_t *i)
{
    (void)key;
    return plain_string(s, len, i, ctx);
}

static bool output_element(void *ctx, size_t index, const char *s, size_t len, size_t *i)
{
    static const char *const keys[] = {"name"};
    numeric_json_v2_request *r = ctx;
    if (index >= NUMERIC_JSON_MAX_LIFTED || *i >= len || s[*i] != '{')
        return false;
    numeric_json_text *name = &r->outputs[index];
    name->s = NULL;
    if (!strict_object(s, len, i, keys, 1, output_field, name) || !name->s)
        return false;
    r->n_outputs = index + 1;
    return true;
}

static bool request_field(void *ctx, int key, const char *s, size_t len, size_t *i)
{
    numeric_json_v2_request *r = ctx;
    switch (key) {
    case 0: r->has_id = true; return plain_string(s, len, i, &r->id);
    case 1: return strict_array(s, len, i, input_element, r);
    default: r->has_outputs = true; return strict_array(s, len, i, output_element, r);
    }
}

bool numeric_json_v2_read(const char *body, size_t len, numeric_json_v2_request *out)
{
    static const char *const keys[] = {"id", "inputs", "outputs"};
    memset(out, 0, offsetof(numeric_json_v2_request, inputs));
    size_t i = skip_space(body, 0, len);
    if (i >= len || body[i] != '{' || !strict_object(body, len, &i, keys, 3, request_field, out))
        return false;
    return skip_space(body, i, len) == len && out->n_inputs > 0;
}

/* An integer token (no fraction, no exponent) of at most 18 digits. */
static bool integer_token(const char *s, size_t len, int64_t *out)
{
    size_t i = 0;
    bool negative = len > 0 && s[0] == '-';
    if (negative)
        i++;
    if (i >= len || len - i > 18 || (s[i] == '0' && len - i > 1))
        return false;
    int64_t x = 0;
    for (; i < len; i++) {
        if (!is_digit(s[i]))
            return false;
        x = x * 10 + (s[i] - '0');
    }
    *out = negative ? -x : x;
    return true;
}

ifd_value *numeric_json_flat_tensor(const char *text, size_t len, ifd_dtype dtype, int rank,
                                    const int64_t *dims)
{
    int64_t lo, hi;
    bool real = dtype == IFD_FLOAT || dtype == IFD_DOUBLE;
    switch (dtype) {
    case IFD_FLOAT:
    case IFD_DOUBLE: lo = hi = 0; break;
    case IFD_INT8: lo = INT8_MIN, hi = INT8_MAX; break;
    case IFD_INT16: lo = INT16_MIN, hi = INT16_MAX; break;
    case IFD_INT32: lo = INT32_MIN, hi = INT32_MAX; break;
    case IFD_INT64: lo = INT64_MIN, hi = INT64_MAX; break;
    case IFD_UINT8: lo = 0, hi = UINT8_MAX; break;
    case IFD_UINT16: lo = 0, hi = UINT16_MAX; break;
    case IFD_UINT32: lo = 0, hi = UINT32_MAX; break;
    default: return NULL;
    }
    if (rank < 1 || len < 2 || text[0] != '[')
        return NULL;
    /* the count the text holds must be the shape's: count commas first so
     * a claimed shape of 2^40 elements never allocates */
    size_t sent = 1;
    for (size_t k = 0; k < len; k++)
        sent += text[k] == ',';
    size_t count = 1;
    for (int d = 0; d < rank; d++) {
        if (dims[d] < 0 || (dims[d] && count > SIZE_MAX / (size_t)dims[d]))
            return NULL;
        count *= (size_t)dims[d];
    }
    if (count != sent)
        return NULL;
    ifd_value *v;
    ifd_error err;
    if (ifd_value_new_tensor(dtype, rank, dims, &v, &err) != IFD_OK)
        return NULL;
    size_t i = 1, n = 0;
    while (n < count) {
        i = skip_space(text, i, len);
        size_t start = i;
        while (i < len && is_number_char(text[i]))
            i++;
        double d = 0;
        int64_t x = 0;
        if (real ? !numeric_json_number(text + start, i - start, &d) : !integer_token(text + start, i - start, &x))
            break;
        if (dtype == IFD_FLOAT) {
            if (d > 3.4028234663852886e38 || d < -3.4028234663852886e38)
                break;
            ((float *)v->tensor.data)[n] = (float)d;
        } else if (dtype == IFD_DOUBLE) {
            ((double *)v->tensor.data)[n] = d;
        } else {
            if (x < lo || x > hi)
                break;
            switch (dtype) {
            case IFD_INT8: ((int8_t *)v->tensor.data)[n] = (int8_t)x; break;
            case IFD_INT16: ((int16_t *)v->tensor.data)[n] = (int16_t)x; break;
            case IFD_INT32: ((int32_t *)v->tensor.data)[n] = (int32_t)x; break;
            case IFD_INT64: ((int64_t *)v->tensor.data)[n] = x; break;
            case IFD_UINT8: ((uint8_t *)v->tensor.data)[n] = (uint8_t)x; break;
            case IFD_UINT16: ((uint16_t *)v->tensor.data)[n] = (uint16_t)x; break;
            default: ((uint32_t *)v->tensor.data)[n] = (uint32_t)x; break;
            }
        }
        n++;
        i = skip_space(text, i, len);
        if (i < len && text[i] == (n == count ? ']' : ','))
            i++;
        else
            break;
    }
    if (n != count || skip_space(text, i, len) != len) {
        ifd_value_free(v);
        return NULL;
    }
    return v;
}
