/*
 * fuzz_value_decode.c — libFuzzer target for ifd_value_decode_pb, the parser
 * of request bodies and test data (TensorProto, SequenceProto, MapProto).
 *
 * Every input is decoded as each of the four kinds. Besides the sanitizers,
 * the oracle is the round trip: whatever decodes must encode, the encoding
 * must decode again to an equal value, and encoding that gives the same bytes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inferd/inferd.h"

static void require(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_value_decode: broken promise: %s\n", what);
        abort();
    }
}

static void round_trip(const ifd_value *value, const ifd_type_info *expected)
{
    void *once = NULL, *twice = NULL;
    size_t once_len = 0, twice_len = 0;
    ifd_value *again = NULL;
    ifd_error err;
    /* a sequence mixing item kinds cannot be encoded; the decoder never
     * makes one, so encoding must succeed */
    require(ifd_value_encode_pb(value, "x", &once, &once_len, &err) == IFD_OK,
            "a decoded value encodes");
    require(ifd_value_decode_pb(once, once_len, expected, &again, &err) == IFD_OK,
            "an encoded value decodes");
    require(ifd_value_encode_pb(again, "x", &twice, &twice_len, &err) == IFD_OK,
            "a re-decoded value encodes");
    require(once_len == twice_len && (once_len == 0 || memcmp(once, twice, once_len) == 0),
            "encode(decode(encode(v))) == encode(v)");
    free(once);
    free(twice);
    ifd_value_free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const ifd_value_kind kinds[] = {IFD_VALUE_TENSOR, IFD_VALUE_SEQUENCE, IFD_VALUE_MAP,
                                           IFD_VALUE_OPTIONAL};
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        ifd_type_info expected;
        memset(&expected, 0, sizeof(expected));
        expected.kind = kinds[k];
        ifd_value *value = (ifd_value *)0x1;
        ifd_error err;
        err.message[0] = '\0';
        if (ifd_value_decode_pb(data, size, &expected, &value, &err) != IFD_OK) {
            require(value == NULL, "a failed decode returns no value");
            require(err.message[0] != '\0', "a failed decode explains itself");
            continue;
        }
        require(value != NULL && value->kind == kinds[k], "decoded the kind asked for");
        round_trip(value, &expected);
        ifd_value_free(value);
    }
    return 0;
}
