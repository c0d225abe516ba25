/*
 * value.c — lifetime of ifd_value: tensors, sequences and maps. Values are
 * trees with one owner; freeing a value frees everything under it.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

void set_error(ifd_error *err, const char *fmt, ...)
{
    if (!err)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
}

/* Free what the value owns, leaving its fields as they were. */
static void value_release(ifd_value *value)
{
    tensor_release(&value->tensor);
    for (size_t i = 0; i < value->length; i++)
        ifd_value_free(value->items[i]);
    free(value->items);
    tensor_release(&value->map_keys);
    tensor_release(&value->map_values);
}

void value_clear(ifd_value *value)
{
    if (!value)
        return;
    value_release(value);
    memset(value, 0, sizeof(*value));
}

void ifd_value_free(ifd_value *value)
{
    if (!value)
        return;
    value_release(value); /* no need to zero what is freed next */
    free(value);
}

ifd_status ifd_value_new_tensor(ifd_dtype dtype, int rank, const int64_t *dims,
                                ifd_value **out, ifd_error *err)
{
    *out = NULL;
    if (rank < 0 || rank > IFD_MAX_RANK) {
        set_error(err, "tensor rank %d is outside 0..%d", rank, IFD_MAX_RANK);
        return IFD_ERR_INVALID_ARGUMENT;
    }
    /* malloc + memset rather than calloc: glibc's calloc bypasses the
     * per-thread cache, and every request makes a value or two */
    ifd_value *value = malloc(sizeof(*value));
    if (!value) {
        set_error(err, "out of memory");
        return IFD_ERR_NO_MEMORY;
    }
    memset(value, 0, sizeof(*value));
    ifd_status st = tensor_alloc(&value->tensor, dtype, rank, dims, "tensor", err);
    if (st != IFD_OK) {
        free(value);
        return st;
    }
    value->kind = IFD_VALUE_TENSOR;
    *out = value;
    return IFD_OK;
}

ifd_status value_clone(const ifd_value *src, ifd_value **out, ifd_error *err)
{
    ifd_status st = IFD_OK;
    ifd_value *copy = calloc(1, sizeof(*copy));
    *out = NULL;
    if (!copy) {
        set_error(err, "out of memory");
        return IFD_ERR_NO_MEMORY;
    }
    copy->kind = src->kind;
    switch (src->kind) {
    case IFD_VALUE_TENSOR:
        st = tensor_copy(&copy->tensor, &src->tensor, err);
        break;
    case IFD_VALUE_MAP:
        st = tensor_copy(&copy->map_keys, &src->map_keys, err);
        if (st == IFD_OK)
            st = tensor_copy(&copy->map_values, &src->map_values, err);
        break;
    case IFD_VALUE_SEQUENCE:
    case IFD_VALUE_OPTIONAL:
        if (src->length) {
            copy->items = calloc(src->length, sizeof(*copy->items));
            if (!copy->items) {
                set_error(err, "out of memory");
                st = IFD_ERR_NO_MEMORY;
                break;
            }
        }
        for (size_t i = 0; i < src->length && st == IFD_OK; i++) {
            st = value_clone(src->items[i], &copy->items[i], err);
            if (st == IFD_OK)
                copy->length = i + 1;
        }
        break;
    }
    if (st != IFD_OK) {
        ifd_value_free(copy);
        return st;
    }
    *out = copy;
    return IFD_OK;
}
