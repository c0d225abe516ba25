/*
 * attrs.c — attribute access for operators. Attributes are converted from
 * AttributeProto once at load (loader.c); these lookups run in prepare().
 */
#include <stdio.h>
#include <string.h>

#include "model.h"

const op_attr *op_attr_find(const op_node *node, const char *name)
{
    for (size_t i = 0; i < node->n_attrs; i++)
        if (strcmp(node->attrs[i].name, name) == 0)
            return &node->attrs[i];
    return NULL;
}

bool op_attr_has(const op_node *node, const char *name) { return op_attr_find(node, name) != NULL; }

int64_t op_attr_int(const op_node *node, const char *name, int64_t fallback)
{
    const op_attr *a = op_attr_find(node, name);
    return a && a->type == OP_ATTR_INT ? a->i : fallback;
}

float op_attr_float(const op_node *node, const char *name, float fallback)
{
    const op_attr *a = op_attr_find(node, name);
    if (a && a->type == OP_ATTR_FLOAT)
        return a->f;
    if (a && a->type == OP_ATTR_INT)
        return (float)a->i;
    return fallback;
}

const char *op_attr_string(const op_node *node, const char *name, const char *fallback)
{
    const op_attr *a = op_attr_find(node, name);
    return a && a->type == OP_ATTR_STRING ? a->s.data : fallback;
}

size_t op_attr_ints(const op_node *node, const char *name, const int64_t **out)
{
    const op_attr *a = op_attr_find(node, name);
    if (a && a->type == OP_ATTR_INTS) {
        *out = a->ints;
        return a->count;
    }
    *out = NULL;
    return 0;
}

size_t op_attr_floats(const op_node *node, const char *name, const float **out)
{
    const op_attr *a = op_attr_find(node, name);
    if (a && a->type == OP_ATTR_FLOATS) {
        *out = a->floats;
        return a->count;
    }
    *out = NULL;
    return 0;
}

size_t op_attr_strings(const op_node *node, const char *name, const ifd_string **out)
{
    const op_attr *a = op_attr_find(node, name);
    if (a && a->type == OP_ATTR_STRINGS) {
        *out = a->strings;
        return a->count;
    }
    *out = NULL;
    return 0;
}

const ifd_tensor *op_attr_tensor(const op_node *node, const char *name)
{
    const op_attr *a = op_attr_find(node, name);
    return a && a->type == OP_ATTR_TENSOR ? a->tensor : NULL;
}

int op_prepare_fail(const op_node *node, ifd_error *err, const char *fmt, ...)
{
    if (err) {
        char reason[768];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(reason, sizeof(reason), fmt, ap);
        va_end(ap);
        snprintf(err->message, sizeof(err->message), "%s node '%s': %s", node->op_type,
                 node->name, reason);
    }
    return -1;
}
