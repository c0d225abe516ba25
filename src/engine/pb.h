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

/* pb_tensor_to_ifd for an initializer of a message the loader owns: a
 * raw_data buffer of the right size moves into the tensor instead of being
 * copied (and the message forgets it), so a model's weights are never held
 * twice while it loads. */
ifd_status pb_tensor_take(Onnx__TensorProto *tp, const char *base_dir, ifd_tensor *t,
                          ifd_error *err);

#endif /* INFERD_ENGINE_PB_H */
