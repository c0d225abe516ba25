/* ops/cast.c — placeholder while the family is written; replaced by its implementation. */
#include "../op.h"

static const op_def defs[] = {{"", "__none_cast", 0, -1, NULL, NULL, NULL}};
OP_FAMILY(ops_cast, defs);
