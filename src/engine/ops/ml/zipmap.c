/* ops/ml/zipmap.c — placeholder while the family is written. */
#include "../../op.h"

static const op_def defs[] = {{"ai.onnx.ml", "__none_zipmap", 0, -1, NULL, NULL, NULL}};
OP_FAMILY(ops_ml_zipmap, defs);
