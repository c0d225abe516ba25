/*
 * fuzz_numeric_json.c — the book API's numeric fast path (src/wire/numeric_json.c)
 * against the general path it stands in for: whenever the fast path
 * accepts a body, jansson (with the server's flags) must read the same body
 * as {"data": rows} and json_rows_to_tensor must give a tensor of the same
 * shape and the same bits, for float and double. A body the fast path
 * refuses is fine (the general path answers it). numeric_json_number is
 * checked the same way on the body taken as a single number.
 *
 * The V2 lift (numeric_json_v2_lift) is checked against jansson on the
 * whole body: the original and the blanked body parse alike (or fail at
 * the same line and column), each lifted span is the array jansson reads
 * at inputs[i].data, the blanked body has 0 there, and whatever tensor
 * numeric_json_flat_tensor gives is json_to_tensor's, bit for bit.
 */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "numeric_json.h"
#include "tensor_json.h"

static void check_dtype(const uint8_t *data, size_t size, ifd_dtype dtype)
{
    ifd_value *fast = numeric_json_book_rows((const char *)data, size, dtype);
    if (!fast)
        return;
    json_error_t je;
    json_t *body = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &je);
    if (!body || !json_is_object(body) || json_object_size(body) != 1 || !json_object_get(body, "data"))
        abort(); /* accepted what jansson refuses, or another form */
    char err[512];
    ifd_value *general = json_rows_to_tensor(json_object_get(body, "data"), dtype, err, sizeof(err));
    if (!general)
        abort(); /* the general path refuses what the fast path took */
    const ifd_tensor *a = &fast->tensor, *b = &general->tensor;
    if (a->dtype != b->dtype || a->rank != b->rank)
        abort();
    for (int i = 0; i < a->rank; i++)
        if (a->dims[i] != b->dims[i])
            abort();
    size_t bytes = (size_t)ifd_tensor_count(a) * ifd_dtype_size(dtype);
    if (memcmp(a->data, b->data, bytes) != 0)
        abort(); /* a number read differently */
    ifd_value_free(general);
    ifd_value_free(fast);
    json_decref(body);
}

static void check_number(const uint8_t *data, size_t size)
{
    double fast;
    if (!numeric_json_number((const char *)data, size, &fast))
        return;
    json_error_t je;
    json_t *j = json_loadb((const char *)data, size, JSON_DECODE_ANY, &je);
    if (!j || !json_is_number(j))
        abort();
    double general = json_number_value(j);
    if (memcmp(&fast, &general, sizeof(double)) != 0 && !(isnan(fast) && isnan(general)))
        abort();
    json_decref(j);
}

static void check_flat(const char *text, size_t len, const json_t *data, ifd_dtype dtype)
{
    int64_t dims[1] = {(int64_t)json_array_size(data)};
    ifd_value *fast = numeric_json_flat_tensor(text, len, dtype, 1, dims);
    if (!fast)
        return;
    char err[512];
    ifd_value *general = json_to_tensor(data, dtype, 1, dims, err, sizeof(err));
    if (!general || memcmp(fast->tensor.data, general->tensor.data, (size_t)dims[0] * ifd_dtype_size(dtype)) != 0)
        abort(); /* the fast path took what the general path refuses, or read it differently */
    ifd_value_free(general);
    ifd_value_free(fast);
}

static void check_v2(const uint8_t *data, size_t size)
{
    numeric_json_lifted l;
    if (!numeric_json_v2_lift((const char *)data, size, &l))
        return;
    json_error_t a, b;
    json_t *original = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &a);
    json_t *blanked = json_loadb(l.text, size, JSON_REJECT_DUPLICATES, &b);
    if (!original != !blanked)
        abort(); /* blanking changed whether the body parses */
    if (!original && (a.line != b.line || a.column != b.column))
        abort(); /* ... or where the error is */
    for (size_t k = 0; original && k < l.count; k++) {
        const numeric_json_span *span = &l.spans[k];
        const char *text = (const char *)data + span->offset;
        json_t *in = json_array_get(json_object_get(original, "inputs"), span->input);
        json_t *in_blanked = json_array_get(json_object_get(blanked, "inputs"), span->input);
        json_t *lifted = json_loadb(text, span->len, 0, NULL);
        json_t *zero = json_object_get(in_blanked, "data");
        if (!lifted || !json_equal(lifted, json_object_get(in, "data")) || !json_is_integer(zero) ||
            json_integer_value(zero) != 0)
            abort(); /* the span is not what jansson reads there */
        check_flat(text, span->len, lifted, IFD_FLOAT);
        check_flat(text, span->len, lifted, IFD_DOUBLE);
        check_flat(text, span->len, lifted, IFD_INT64);
        check_flat(text, span->len, lifted, IFD_UINT8);
        json_decref(lifted);
    }
    json_decref(original);
    json_decref(blanked);
    numeric_json_lifted_free(&l);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_dtype(data, size, IFD_FLOAT);
    check_dtype(data, size, IFD_DOUBLE);
    check_number(data, size);
    check_v2(data, size);
    return 0;
}
