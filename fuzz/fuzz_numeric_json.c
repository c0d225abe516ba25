/*
 * fuzz_numeric_json.c — the book API's numeric fast path (src/wire/numeric_json.c)
 * against the general path it stands in for: whenever the fast path
 * accepts a body, jansson (with the server's flags) must read the same body
 * as {"data": rows} and json_rows_to_tensor must give a tensor of the same
 * shape and the same bits, for float and double. A body the fast path
 * refuses is fine (the general path answers it). numeric_json_number is
 * checked the same way on the body taken as a single number.
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_dtype(data, size, IFD_FLOAT);
    check_dtype(data, size, IFD_DOUBLE);
    check_number(data, size);
    return 0;
}
