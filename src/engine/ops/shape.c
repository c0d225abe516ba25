/* ops/shape.c — placeholder while the family is written; replaced by its implementation. */
#include "../op.h"

static const op_def defs[] = {{"", "__none_shape", 0, -1, NULL, NULL, NULL}};
OP_FAMILY(ops_shape, defs);
