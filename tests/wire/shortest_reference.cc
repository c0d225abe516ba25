/*
 * shortest_reference.cc — the reference for tests/wire/test_shortest_double:
 * Debian's libdouble-conversion in its shortest mode (Grisu3 with an exact
 * bignum fallback), which src/wire used before libfmt's Dragonbox, behind a C face.
 */
#include <double-conversion/double-to-string.h>

#include <stddef.h>

extern "C" size_t reference_shortest_digits(double d, char digits[18], int *exponent);

size_t reference_shortest_digits(double d, char digits[18], int *exponent)
{
    using double_conversion::DoubleToStringConverter;
    char buffer[DoubleToStringConverter::kBase10MaximalLength + 1];
    bool sign;
    int length = 0, point = 0;
    DoubleToStringConverter::DoubleToAscii(d, DoubleToStringConverter::SHORTEST, 0, buffer,
                                           (int)sizeof(buffer), &sign, &length, &point);
    if (length <= 0) { /* zero */
        digits[0] = '0';
        *exponent = 0;
        return 1;
    }
    for (int i = 0; i < length; i++)
        digits[i] = buffer[i];
    *exponent = point - 1;
    return (size_t)length;
}
