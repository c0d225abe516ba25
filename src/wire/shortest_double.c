/*
 * shortest_double.c — the shortest round-trip digits of a double, by Ryu
 * (Ulf Adams, "Ryū: fast float-to-string conversion", PLDI 2018), vendored
 * unchanged in src/wire/ryu/ (Boost Software License 1.0; upstream
 * github.com/ulfjack/ryu at e3e090c). Ryu's d2d() finds the shortest
 * decimal in the interval of values that read back as the double, the one
 * nearest to it when several are as short, ties to even: the same digits
 * as Python's repr(), which Debian's libdouble-conversion gave before; a
 * few hundred instructions a number instead of Grisu3's ~650, and every
 * answer of the server writes its numbers through here.
 * tests/wire/test_shortest_double holds it to libdouble-conversion on
 * millions of values.
 */
#include "shortest_double.h"

/* d2d() is static in d2s.c: include the file whole (its own entry points,
 * d2s and friends, come along unused). */
#include "ryu/d2s.c"

size_t shortest_double_digits(double d, char digits[18], int *exponent)
{
    uint64_t bits;
    memcpy(&bits, &d, sizeof(bits));
    const uint64_t mantissa_bits = bits & ((1ull << DOUBLE_MANTISSA_BITS) - 1);
    const uint32_t exponent_bits = (uint32_t)((bits >> DOUBLE_MANTISSA_BITS) & ((1u << DOUBLE_EXPONENT_BITS) - 1));
    if (exponent_bits == 0 && mantissa_bits == 0) { /* zero */
        digits[0] = '0';
        *exponent = 0;
        return 1;
    }
    floating_decimal_64 v = d2d(mantissa_bits, exponent_bits);
    /* d2d leaves no trailing zeros; its mantissa has at most 17 digits */
    uint32_t length = decimalLength17(v.mantissa);
    uint64_t m = v.mantissa;
    uint32_t at = length;
    if (m >> 32) { /* the low 8 digits in 32-bit arithmetic, as Ryu's own writer does */
        uint64_t q = m / 100000000;
        uint32_t low = (uint32_t)(m - 100000000 * q);
        m = q;
        for (int pair = 0; pair < 4; pair++, low /= 100) {
            memcpy(digits + at - 2, DIGIT_TABLE + 2 * (low % 100), 2);
            at -= 2;
        }
    }
    uint32_t rest = (uint32_t)m; /* below 2^32 now */
    while (rest >= 100) {
        memcpy(digits + at - 2, DIGIT_TABLE + 2 * (rest % 100), 2);
        at -= 2;
        rest /= 100;
    }
    if (rest >= 10)
        memcpy(digits + at - 2, DIGIT_TABLE + 2 * rest, 2);
    else
        digits[at - 1] = (char)('0' + rest);
    *exponent = v.exponent + (int)length - 1;
    return length;
}
