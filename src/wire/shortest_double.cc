/*
 * shortest_double.cc — the C face of Debian's libfmt for shortest
 * round-trip digits (see shortest_double.h): fmt's Dragonbox (Junekey Jeon,
 * 2020) finds the shortest decimal in the interval of values that read back
 * as the double, the one nearest to it when several are as short, ties to
 * even: the digits Python's repr() writes. Every answer of the server
 * writes its numbers through here, and Dragonbox takes a fraction of the
 * instructions of libdouble-conversion's Grisu3 (tests/wire holds the two to
 * the same digits on millions of values). No exceptions, no allocation.
 *
 * dragonbox::to_decimal is fmt's own entry point, compiled into libfmt.so
 * for double; it lives in fmt's detail namespace, so this file pins the
 * major version it was written against (Debian 12's fmt 9).
 */
#include "shortest_double.h"

#include <fmt/format.h>

#include <stdint.h>

#if FMT_VERSION < 80000 || FMT_VERSION >= 100000
#error "shortest_double.cc follows fmt 8-9's dragonbox::to_decimal"
#endif

size_t shortest_double_digits(double d, char digits[18], int *exponent)
{
    if (d == 0) {
        digits[0] = '0';
        *exponent = 0;
        return 1;
    }
    /* the significand comes without trailing zeros; the sign is not ours */
    auto decimal = fmt::detail::dragonbox::to_decimal(d < 0 ? -d : d);
    uint64_t m = decimal.significand;
    char reversed[20];
    size_t n = 0;
    while (m) {
        reversed[n++] = (char)('0' + m % 10);
        m /= 10;
    }
    for (size_t i = 0; i < n; i++)
        digits[i] = reversed[n - 1 - i];
    *exponent = decimal.exponent + (int)n - 1;
    return n;
}
