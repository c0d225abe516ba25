/*
 * pb.h — internal bridge to the protobuf-c code generated from ONNX's own
 * .proto files (proto/onnx/). Only loader.c and pb.c include it.
 */
#ifndef INFERD_ENGINE_PB_H
#define INFERD_ENGINE_PB_H

#include "model.h"
#include "onnx/onnx-data.pb-c.h"
#include "onnx/onnx-ml.pb-c.h"

/* Deep enough for any real model (a graph inside a node attribute inside a
 * graph costs three levels), shallow enough for any stack. */
#define PB_MAX_DEPTH 64

/* Unpack untrusted bytes after checking their nesting depth. NULL with err
 * set on failure; free with protobuf_c_message_free_unpacked. */
void *pb_unpack(const ProtobufCMessageDescriptor *desc, const void *buf, size_t len,
                const char *what, ifd_error *err);

/* Where a model's tensors come from. raw_data in a message from
 * pb_unpack_model is a reference into `bytes`; `mapped` says those bytes are
 * a read-only file mapping that lives as long as the model, so that aligned
 * weights may be read in place instead of copied. */
typedef struct pb_source {
    const char *base_dir; /* resolves external data; NULL forbids it */
    const uint8_t *bytes;
    size_t len;
    bool mapped;
} pb_source;

/* Unpack a ModelProto without copying any raw_data (see pb.c): the message
 * holds references into buf, which must outlive it. NULL with err set when
 * the bytes are not a valid (or too deeply nested) ModelProto. */
Onnx__ModelProto *pb_unpack_model(const void *buf, size_t len, ifd_error *err);

/* A TensorProto of a message from pb_unpack_model as a tensor: a view of
 * src->bytes (owns_data 0) when they are mapped and the data is aligned and
 * at least a page, else an owned copy; every size is checked as in
 * pb_tensor_to_ifd. The message forgets its typed data fields (float_data,
 * ...), so that they are not held next to the copy. */
ifd_status pb_tensor_load(Onnx__TensorProto *tp, const pb_source *src, ifd_tensor *t,
                          const uint8_t **deferred, ifd_error *err);

/* With `deferred` non-NULL, a large weight of a mapped file that cannot be
 * read in place (unaligned) is not copied yet: t gets its dtype and shape
 * but no data, and *deferred points at its checked bytes in the mapping, to
 * be copied by pb_tensor_materialize when a node first needs it. Loading
 * then holds only the weights the nodes prepared so far have read: those
 * operators packed are dropped as they go, the rest wait in the page cache
 * (MobileNetV2's classifier, 4.9 MiB, is read last). */
ifd_status pb_tensor_materialize(ifd_tensor *t, const uint8_t *raw, const char *name,
                                 ifd_error *err);

/* Give the whole pages inside [data, data + len) of a private file mapping
 * back to the page cache (madvise MADV_DONTNEED): the process's resident set
 * stops counting them and a later read faults them in again from the file. */
void pb_release_pages(const void *data, size_t len);

#endif /* INFERD_ENGINE_PB_H */
