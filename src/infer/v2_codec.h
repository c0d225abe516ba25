/*
 * v2_codec.h — the pieces of the KServe V2 codec every V2 path shares (a
 * model's tensor requests in src/infer, image requests and pipelines in
 * src/serve): Triton's binary tensors in and out, ZipMap outputs as an
 * FP32 matrix with their keys, shapes, and which outputs go binary.
 * Thread safety: pure functions.
 */
#ifndef INFERD_INFER_V2_CODEC_H
#define INFERD_INFER_V2_CODEC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "inferd/inferd.h"

typedef struct v2_blob {
    char *data;
    size_t len, cap;
} v2_blob;

/* Decode `size` raw bytes into a tensor of the given type and shape. */
ifd_value *v2_binary_to_tensor(const unsigned char *data, size_t size, ifd_dtype dtype, int rank,
                               const int64_t *dims, char *err, size_t n);
bool v2_blob_put(v2_blob *b, const void *data, size_t len);
/* Append t's elements in the binary extension's layout. */
bool v2_tensor_to_binary(const ifd_tensor *t, v2_blob *b);
/* A sequence of maps (ZipMap) as an FP32 [rows, classes] tensor and its keys. */
bool v2_flatten_maps(const ifd_value *seq, ifd_value **out, json_t **keys, char *err, size_t n);
/* An input's tensor from its "data", or from its parameters'
 * binary_data_size bytes at binary + *offset (then *offset moves past
 * them). NULL with the whole message ("input 'x': ...") in err. */
ifd_value *v2_decode_tensor(const json_t *in, const char *name, ifd_dtype dtype, int rank,
                            const int64_t *dims, const unsigned char *binary, size_t binary_len,
                            size_t *offset, char *err, size_t n);
bool v2_read_shape(const json_t *shape, int *rank, int64_t *dims, char *err, size_t n);
/* Whether an output is asked for in binary form. */
bool v2_wants_binary(const json_t *header, const json_t *requested);

#endif /* INFERD_INFER_V2_CODEC_H */
