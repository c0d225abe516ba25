/*
 * test_shortest_double.c — src/wire/shortest_double.cc (libfmt's Dragonbox) must give
 * exactly the digits and exponent libdouble-conversion's shortest mode
 * gives, which every answer wrote before: random bit patterns (subnormals,
 * huge and tiny exponents), float32 values widened (what models output),
 * short decimals, powers of two and ten, the neighbours of each, and the
 * edges (zero, the smallest subnormal, DBL_MAX, DBL_MIN). Each value is also
 * read back with strtod, so a shared mistake of both would show too.
 * Ends with an "N values checked, N failures" line.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shortest_double.h"

size_t reference_shortest_digits(double d, char digits[18], int *exponent);

static long long checked;
static int failures;

static void check(double d)
{
    if (!isfinite(d))
        return;
    d = fabs(d);
    checked++;
    char got[24], want[24];
    int got_exponent = 0, want_exponent = 0;
    size_t n = shortest_double_digits(d, got, &got_exponent);
    size_t m = reference_shortest_digits(d, want, &want_exponent);
    got[n] = want[m] = '\0';
    if (n != m || strcmp(got, want) != 0 || got_exponent != want_exponent) {
        if (failures++ < 20)
            fprintf(stderr, "FAIL: %a: fmt %se%d, double-conversion %se%d\n", d, got, got_exponent, want,
                    want_exponent);
        return;
    }
    char text[48];
    snprintf(text, sizeof(text), "%c.%se%d", got[0], got + 1, got_exponent);
    if (strtod(text, NULL) != d && failures++ < 20)
        fprintf(stderr, "FAIL: %a: %s does not read back\n", d, text);
}

static void check_around(double d)
{
    check(d);
    check(nextafter(d, 0));
    check(nextafter(d, INFINITY));
}

static uint64_t state = 0x2545f4914f6cdd1du;
static uint64_t next_random(void)
{
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
}

int main(int argc, char **argv)
{
    long rounds = argc > 1 ? atol(argv[1]) : 1000000;
    check(0.0);
    check(5e-324);
    check(DBL_MIN);
    check(DBL_MAX);
    check_around(1.0);
    check(0.1);
    check(9.999999999999999e22);
    for (int e = -1074; e <= 1023; e++)
        check_around(ldexp(1.0, e));
    for (int e = -323; e <= 308; e++)
        check_around(pow(10.0, e));
    for (long i = 0; i < rounds; i++) {
        uint64_t bits = next_random();
        double d;
        memcpy(&d, &bits, sizeof(d));
        check(d);
        uint32_t fbits = (uint32_t)next_random();
        float f;
        memcpy(&f, &fbits, sizeof(f));
        check((double)f);
        check((double)(next_random() % 100000000) / 1e8);
        check(ldexp((double)(next_random() >> 11), (int)(next_random() % 200) - 100));
        /* subnormals */
        uint64_t sub = next_random() & ((1ull << 52) - 1);
        memcpy(&d, &sub, sizeof(d));
        check(d);
    }
    printf("%lld values checked, %d failures\n", checked, failures);
    return failures ? 1 : 0;
}
