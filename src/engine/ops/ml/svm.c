/* ops/ml/svm.c — placeholder while the family is written. */
#include "../../op.h"

static const op_def defs[] = {{"ai.onnx.ml", "__none_svm", 0, -1, NULL, NULL, NULL}};
OP_FAMILY(ops_ml_svm, defs);
