/*
 * shortest_double.h — the shortest decimal digits that read back as a given
 * double (the digits of Python's repr() and JavaScript's Number#toString),
 * by libfmt's Dragonbox (shortest_double.cc). tensor_json.c lays the digits out; this only
 * finds them, in a few hundred instructions instead of a printf and strtod
 * trials.
 * Thread safety: pure function.
 */
#ifndef INFERD_WIRE_SHORTEST_DOUBLE_H
#define INFERD_WIRE_SHORTEST_DOUBLE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* For finite d: its shortest round-trip digits, without sign or point and
 * without trailing zeros, into digits[0..n) (room for 18), and *exponent,
 * the power of ten of the first digit (d = ±d.ddd × 10^exponent). Zero is
 * "0" with exponent 0. Returns n. */
size_t shortest_double_digits(double d, char digits[18], int *exponent);

#ifdef __cplusplus
}
#endif

#endif /* INFERD_WIRE_SHORTEST_DOUBLE_H */
