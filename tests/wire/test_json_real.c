/*
 * test_json_real.c — src/wire writes every real number as Python's repr()
 * does (the book's clients compare text), and `inferd batch` writes
 * millions of them, so the encoder takes a shortcut: one printf of 17
 * digits, the 15- and 16-digit candidates rounded from it. This test holds
 * the shortcut to the plain search (printf at 15, 16, 17 digits until one
 * reads back) on random bit patterns, float32 values, short decimals and
 * the boundaries, and to Python's own answers for a few known values.
 */
#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor_json.h"

static int failures;

/* The reference: the search the encoder used before the shortcut. */
static void reference_repr(double d, char *out, size_t size)
{
    char sci[40];
    for (int precision = fabs(d) < DBL_MIN ? 1 : 15; precision <= 17; precision++) {
        snprintf(sci, sizeof(sci), "%.*e", precision - 1, d);
        if (strtod(sci, NULL) == d)
            break;
    }
    char digits[24], text[48];
    size_t nd = 0, n = 0;
    const char *c = sci;
    int negative = *c == '-';
    if (negative)
        c++;
    for (; *c && *c != 'e'; c++)
        if (*c >= '0' && *c <= '9')
            digits[nd++] = *c;
    int exponent = atoi(c + 1);
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
    } else {
        text[n++] = digits[0];
        if (nd > 1) {
            text[n++] = '.';
            for (size_t i = 1; i < nd; i++)
                text[n++] = digits[i];
        }
        n += (size_t)snprintf(text + n, sizeof(text) - n, "e%c%02d", exponent < 0 ? '-' : '+',
                              exponent < 0 ? -exponent : exponent);
    }
    text[n] = '\0';
    snprintf(out, size, "%s", text);
}

static void encoded(double d, char *out, size_t size)
{
    json_t *j = json_real(d);
    size_t len;
    char *text = json_encode(j, &len);
    snprintf(out, size, "%s", text ? text : "(null)");
    free(text);
    json_decref(j);
}

static void check(double d)
{
    if (!isfinite(d))
        return;
    char want[64], got[64];
    reference_repr(d, want, sizeof(want));
    encoded(d, got, sizeof(got));
    if (strcmp(want, got) != 0 && failures++ < 20)
        fprintf(stderr, "FAIL: %a: encoded %s, repr %s\n", d, got, want);
}

static void check_known(double d, const char *python)
{
    char got[64];
    encoded(d, got, sizeof(got));
    if (strcmp(got, python) != 0 && failures++ < 20)
        fprintf(stderr, "FAIL: %.17g: encoded %s, Python says %s\n", d, got, python);
}

static uint64_t state = 0x9e3779b97f4a7c15u;
static uint64_t next_random(void)
{
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
}

int main(void)
{
    check_known(0.1, "0.1");
    check_known(1.0, "1.0");
    check_known(-0.0, "-0.0");
    check_known(1e16, "1e+16");
    check_known(1e-05, "1e-05");
    check_known(123456789012345678.0, "1.2345678901234568e+17");
    check_known(0.9709315896034241, "0.9709315896034241");
    check_known((double)0.015583082f, "0.015583082102239132");
    check_known(9.999999999999999e22, "1e+23");
    check_known(DBL_MAX, "1.7976931348623157e+308");
    check_known(5e-324, "5e-324");
    check_known(2.2250738585072014e-308, "2.2250738585072014e-308");
    long long count = 0;
    for (int i = 0; i < 300000; i++, count += 4) {
        uint64_t bits = next_random();
        double d;
        memcpy(&d, &bits, sizeof(d));
        check(d); /* any double */
        uint32_t fbits = (uint32_t)next_random();
        float f;
        memcpy(&f, &fbits, sizeof(f));
        check((double)f);                               /* a float32 widened, as outputs are */
        check((double)(next_random() % 2000000) / 1e6); /* short decimals */
        check(ldexp((double)(next_random() >> 11), (int)(next_random() % 200) - 100));
    }
    for (double d = 9.5; d < 1e300; d *= 10) { /* carries: 9.99..., 99.99... */
        check(nextafter(d, 0));
        check(nextafter(d * 1.0526315789473684, 0));
        count += 2;
    }
    printf("%lld values checked, %d failures\n", count, failures);
    return failures ? 1 : 0;
}
