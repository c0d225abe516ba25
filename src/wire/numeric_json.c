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
