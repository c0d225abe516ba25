/*
 * shortest_double.cc — the C face of libdouble-conversion's shortest mode
 * (see shortest_double.h). The one C++ file of inferd: the library is C++,
 * and this is all of it that inferd uses. No exceptions and no allocation
 * happen here.
 */
#include "shortest_double.h"

#include <double-conversion/double-to-string.h>

size_t shortest_double_digits(double d, char digits[18], int *exponent)
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
