/*
 * tensor.h — internal helpers on ifd_tensor shared by the core and operators:
 * sizes with overflow checks, allocation, strings, float16 conversion and
 * numpy-style broadcasting.
 */
#ifndef INFERD_ENGINE_TENSOR_H
#define INFERD_ENGINE_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "inferd/inferd.h"

/* Largest tensor the engine will allocate, in bytes: guards every size read
 * from a model or a request before it is allocated. */
#define IFD_MAX_TENSOR_BYTES ((size_t)1 << 36)

/* Product of dims into *count; false on a negative dim or overflow. */
bool shape_count(int rank, const int64_t *dims, int64_t *count);
/* count * dtype size into *bytes, false past IFD_MAX_TENSOR_BYTES. */
bool shape_bytes(ifd_dtype dtype, int rank, const int64_t *dims, size_t *bytes);
bool dtype_is_float(ifd_dtype dtype);   /* float16, bfloat16, float, double */
bool dtype_is_integer(ifd_dtype dtype); /* signed or unsigned, not bool */
bool dtype_is_signed(ifd_dtype dtype);
bool dtype_is_numeric(ifd_dtype dtype); /* integer or float */

/* Allocate owned, zeroed storage for a tensor of this shape (replacing any).
 * Returns IFD_OK, or an error naming `what` on overflow or OOM. */
ifd_status tensor_alloc(ifd_tensor *t, ifd_dtype dtype, int rank, const int64_t *dims,
                        const char *what, ifd_error *err);
/* Free owned storage (and string elements); leaves an empty tensor. */
void tensor_release(ifd_tensor *t);
/* Deep copy src into dst (dst's previous contents are released). */
ifd_status tensor_copy(ifd_tensor *dst, const ifd_tensor *src, ifd_error *err);
/* A non-owning view of src's data. */
ifd_tensor tensor_view(const ifd_tensor *src);
bool tensor_same_shape(const ifd_tensor *a, const ifd_tensor *b);
void tensor_set_shape(ifd_tensor *t, int rank, const int64_t *dims);
/* "[2,3,4]" into buf. */
const char *shape_to_string(int rank, const int64_t *dims, char *buf, size_t size);

/* Copy `count` string elements (deep). false on OOM; dst must be zeroed or
 * hold strings that are freed first. */
bool strings_copy(ifd_string *dst, const ifd_string *src, size_t count);
bool string_set(ifd_string *s, const char *data, size_t size);
void strings_free(ifd_string *s, size_t count);

/* Read an integer tensor (int32/int64, any rank) as int64s. false when the
 * dtype is not an integer or there are more than max elements. */
bool tensor_read_int64s(const ifd_tensor *t, int64_t *out, size_t max, size_t *count);
/* Element i of a numeric tensor as double / int64 (any dtype, incl. bool). */
double tensor_get_double(const ifd_tensor *t, size_t i);
int64_t tensor_get_int64(const ifd_tensor *t, size_t i);
/* Store a double into element i converting to t's numeric dtype (C casts,
 * with float16/bfloat16 rounding to nearest even). */
void tensor_set_double(ifd_tensor *t, size_t i, double v);

/* float8 (the four IFD_FLOAT8* types) to and from double. */
double float8_to_double(ifd_dtype type, uint8_t bits);
uint8_t float8_from_double(ifd_dtype type, double v, bool saturate);
static inline bool dtype_is_float8(ifd_dtype d)
{
    return d >= IFD_FLOAT8E4M3FN && d <= IFD_FLOAT8E5M2FNUZ;
}
static inline bool dtype_is_int4(ifd_dtype d)
{
    return d == IFD_UINT4 || d == IFD_INT4;
}

float half_to_float(uint16_t h);
uint16_t float_to_half(float f);
float bfloat16_to_float(uint16_t b);
uint16_t float_to_bfloat16(float f);

/* Numpy broadcasting of two shapes into (rank, dims); false when they are
 * incompatible. */
bool broadcast_shapes(int rank_a, const int64_t *dims_a, int rank_b, const int64_t *dims_b,
                      int *rank, int64_t *dims);
/* Element strides of an input of shape (in_rank, in_dims) read under an output
 * of shape (rank, dims): 0 on broadcast axes. strides has `rank` entries. */
void broadcast_strides(int rank, const int64_t *dims, int in_rank, const int64_t *in_dims,
                       int64_t *strides);

#endif /* INFERD_ENGINE_TENSOR_H */
