/* ops/ml/preprocess.c — placeholder while the family is written. */
#include "../../op.h"

static const op_def defs[] = {{"ai.onnx.ml", "__none_preprocess", 0, -1, NULL, NULL, NULL}};
OP_FAMILY(ops_ml_preprocess, defs);
