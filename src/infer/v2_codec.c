/*
 * v2_codec.c — the shared pieces of the KServe V2 codec (see v2_codec.h).
 */
#include "v2_codec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor_json.h"

/* Decode `size` raw bytes into a tensor of the given type and shape. */
ifd_value *v2_binary_to_tensor(const unsigned char *data, size_t size, ifd_dtype dtype, int rank,
                               const int64_t *dims, char *err, size_t n)
{
    /* The element count checked against the bytes sent before anything is
     * allocated: a shape may claim far more than the body carries. */
    size_t count = 1, width = dtype == IFD_STRING ? 4 : ifd_dtype_size(dtype);
    for (int i = 0; i < rank; i++)
        if (dims[i] == 0)
            count = 0;
    for (int i = 0; count && i < rank; i++) {
        if ((size_t)dims[i] > size / width / count + 1) {
            snprintf(err, n, "binary_data_size is %zu bytes, too few for the shape", size);
            return NULL;
        }
        count *= (size_t)dims[i];
    }
    if (dtype != IFD_STRING ? count * width != size : count * width > size) {
        if (dtype == IFD_STRING)
            snprintf(err, n, "binary_data_size is %zu bytes, too few for %zu BYTES elements", size,
                     count);
        else
            snprintf(err, n, "binary_data_size is %zu bytes but shape and datatype need %zu", size,
                     count * width);
        return NULL;
    }
    ifd_value *v;
    ifd_error e;
    if (ifd_value_new_tensor(dtype, rank, dims, &v, &e) != IFD_OK) {
        snprintf(err, n, "%s", e.message);
        return NULL;
    }
    if (dtype != IFD_STRING) {
        size_t need = count * width;
        if (need)
            memcpy(v->tensor.data, data, need);
        if (dtype == IFD_BOOL)
            for (size_t i = 0; i < count; i++)
                ((unsigned char *)v->tensor.data)[i] = data[i] != 0;
        return v;
    }
    size_t pos = 0;
    for (size_t i = 0; i < count; i++) {
        if (size - pos < 4) {
            snprintf(err, n, "BYTES element %zu: truncated length prefix", i);
            ifd_value_free(v);
            return NULL;
        }
        uint32_t len = (uint32_t)data[pos] | (uint32_t)data[pos + 1] << 8 |
                       (uint32_t)data[pos + 2] << 16 | (uint32_t)data[pos + 3] << 24;
        pos += 4;
        if (len > size - pos) {
            snprintf(err, n, "BYTES element %zu: length %u runs past binary_data_size", i, len);
            ifd_value_free(v);
            return NULL;
        }
        ifd_string *s = &((ifd_string *)v->tensor.data)[i];
        s->data = malloc((size_t)len + 1);
        if (!s->data) {
            snprintf(err, n, "out of memory");
            ifd_value_free(v);
            return NULL;
        }
        memcpy(s->data, data + pos, len);
        s->data[len] = '\0';
        s->size = len;
        pos += len;
    }
    if (pos != size) {
        snprintf(err, n, "binary_data_size is %zu bytes but the BYTES elements use %zu", size, pos);
        ifd_value_free(v);
        return NULL;
    }
    return v;
}

bool v2_blob_put(v2_blob *b, const void *data, size_t len)
{
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + len)
            cap *= 2;
        char *grown = realloc(b->data, cap);
        if (!grown)
            return false;
        b->data = grown;
        b->cap = cap;
    }
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    return true;
}

bool v2_tensor_to_binary(const ifd_tensor *t, v2_blob *b)
{
    size_t count = (size_t)ifd_tensor_count(t);
    if (t->dtype != IFD_STRING)
        return v2_blob_put(b, t->data, count * ifd_dtype_size(t->dtype));
    for (size_t i = 0; i < count; i++) {
        const ifd_string *s = &((const ifd_string *)t->data)[i];
        unsigned char len[4] = {(unsigned char)s->size, (unsigned char)(s->size >> 8),
                                (unsigned char)(s->size >> 16), (unsigned char)(s->size >> 24)};
        if (!v2_blob_put(b, len, 4) || !v2_blob_put(b, s->data, s->size))
            return false;
    }
    return true;
}

/* ZipMap's sequence of maps as a [rows, classes] float tensor. */
bool v2_flatten_maps(const ifd_value *seq, ifd_value **out, json_t **keys, char *err, size_t n)
{
    size_t rows = seq->length,
           cols = rows ? (size_t)ifd_tensor_count(&seq->items[0]->map_values) : 0;
    int64_t dims[2] = {(int64_t)rows, (int64_t)cols};
    ifd_error e;
    if (ifd_value_new_tensor(IFD_FLOAT, 2, dims, out, &e) != IFD_OK) {
        snprintf(err, n, "%s", e.message);
        return false;
    }
    for (size_t r = 0; r < rows; r++) {
        const ifd_value *map = seq->items[r];
        if (map->kind != IFD_VALUE_MAP || map->map_values.dtype != IFD_FLOAT ||
            (size_t)ifd_tensor_count(&map->map_values) != cols) {
            snprintf(err, n, "output rows are not maps of %zu floats", cols);
            ifd_value_free(*out);
            return false;
        }
        memcpy((float *)(*out)->tensor.data + r * cols, map->map_values.data, cols * sizeof(float));
    }
    *keys = rows ? tensor_to_json_flat(&seq->items[0]->map_keys) : json_array();
    return true;
}

bool v2_read_shape(const json_t *shape, int *rank, int64_t *dims, char *err, size_t n)
{
    if (!json_is_array(shape) || json_array_size(shape) > IFD_MAX_RANK) {
        snprintf(err, n, "\"shape\" must be an array of at most %d non-negative integers",
                 IFD_MAX_RANK);
        return false;
    }
    *rank = (int)json_array_size(shape);
    for (int i = 0; i < *rank; i++) {
        const json_t *d = json_array_get(shape, (size_t)i);
        if (!json_is_integer(d) || json_integer_value(d) < 0) {
            snprintf(err, n, "\"shape\" must be an array of non-negative integers");
            return false;
        }
        dims[i] = json_integer_value(d);
    }
    return true;
}

bool v2_wants_binary(const json_t *header, const json_t *requested)
{
    json_t *per_output = json_object_get(json_object_get(requested, "parameters"), "binary_data");
    if (per_output)
        return json_is_true(per_output);
    return json_is_true(
        json_object_get(json_object_get(header, "parameters"), "binary_data_output"));
}

ifd_value *v2_decode_tensor(const json_t *in, const char *name, ifd_dtype dtype, int rank,
                            const int64_t *dims, const unsigned char *binary, size_t binary_len,
                            size_t *offset, char *err, size_t n)
{
    json_t *size = json_object_get(json_object_get(in, "parameters"), "binary_data_size");
    json_t *data = json_object_get(in, "data");
    char reason[900];
    ifd_value *v = NULL;
    if (size) {
        if (!json_is_integer(size) || json_integer_value(size) < 0) {
            snprintf(err, n, "input '%s': binary_data_size must be a non-negative integer", name);
            return NULL;
        }
        size_t bytes = (size_t)json_integer_value(size);
        if (!binary || bytes > binary_len - *offset) {
            snprintf(err, n,
                     "input '%s': binary_data_size %zu is larger than the %zu binary bytes left in "
                     "the body",
                     name, bytes, binary ? binary_len - *offset : 0);
            return NULL;
        }
        v = v2_binary_to_tensor(binary + *offset, bytes, dtype, rank, dims, reason, sizeof(reason));
        *offset += bytes;
    } else if (data) {
        v = json_to_tensor(data, dtype, rank, dims, reason, sizeof(reason));
    } else {
        snprintf(err, n, "input '%s' has neither \"data\" nor binary_data_size", name);
        return NULL;
    }
    if (!v)
        snprintf(err, n, "input '%s': %s", name, reason);
    return v;
}
