/*
 * loader.c — turns an ONNX ModelProto into a planned ifd_model.
 *
 * Load does all the thinking so that a run only computes:
 *   1. decode the protobuf (after a nesting-depth check) without its weights,
 *      then the initializers straight from the file's bytes: a file is
 *      mapped (by ifd_model_load_file, or by the caller of
 *      ifd_model_load_mapped), aligned weights are used in place, and large
 *      unaligned ones are copied only when their first reader prepares, so
 *      a model's weights are never held twice;
 *   2. give every value name a slot; fold Constant nodes into constants;
 *   3. check that every node input is defined and order the nodes
 *      topologically, refusing cycles;
 *   4. resolve each node to an operator implementation for the schema version
 *      the model's opset selects, collecting *every* unsupported operator
 *      before refusing the model, so the user sees the whole list at once;
 *   5. let each operator's prepare() check its attributes and infer output
 *      types and shapes; record each value's last reader for buffer reuse.
 * Around step 5 the graph optimiser (optimize/optimize.h) rewrites patterns
 * before it, folds constants during it and removes dead nodes after it, at
 * the level ifd_load_options.graph_opt asks for.
 * Any failure frees everything built so far: there is never a partial model.
 *
 * Graph attributes (If's branches, Loop's and Scan's body) are loaded the same
 * way, as models of their own, in two halves. While the enclosing graph binds
 * its nodes (step 3), each subgraph is built: its names bound, its operators
 * resolved (an unsupported one refuses the whole model, named with the
 * subgraph and node), and every name it reads from an enclosing graph (outer
 * scope) captured: it becomes an input of the subgraph and an implicit input
 * of the owning node, so that the enclosing graph orders and keeps that value
 * like any other input. The other half, prepare, runs from the owning
 * operator's prepare(), once the types of the node's inputs are known.
 */
#include <errno.h>
#include <fcntl.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "optimize/fuse_kernels.h"
#include "optimize/optimize.h"
#include "pb.h"

/* IR 9 (onnx 1.14) added the float8 types, IR 10 (onnx 1.16) int4/uint4 and
 * metadata/overload fields the engine does not read; element types the
 * engine cannot hold are refused where they appear, naming the value. */
#define MIN_IR_VERSION 3
#define MAX_IR_VERSION 10
#define MAX_OPSET_IMPORTS 256
#define MAX_MODEL_BYTES ((size_t)2 << 30) /* protobuf's own 2 GiB message limit */

/* ---- ownership helpers --------------------------------------------------- */

void *model_alloc(ifd_model *m, size_t bytes)
{
    if (m->n_blocks == m->cap_blocks) {
        size_t cap = m->cap_blocks ? m->cap_blocks * 2 : 64;
        void **grown = realloc(m->blocks, cap * sizeof(*grown));
        if (!grown)
            return NULL;
        m->blocks = grown;
        m->cap_blocks = cap;
    }
    void *block = calloc(1, bytes ? bytes : 1);
    if (block)
        m->blocks[m->n_blocks++] = block;
    return block;
}

static char *model_strndup(ifd_model *m, const char *s, size_t n)
{
    char *copy = model_alloc(m, n + 1);
    if (copy && n)
        memcpy(copy, s, n);
    return copy;
}

static char *model_strdup(ifd_model *m, const char *s)
{
    return model_strndup(m, s ? s : "", s ? strlen(s) : 0);
}

/* ---- name → slot table (open addressing) --------------------------------- */

typedef struct name_table {
    const char **keys;
    int *slots;
    size_t cap;
    uint64_t seed;
} name_table;

/* Names come from the model, and linear probing turns a file whose names all
 * land in one bucket into a quadratic load. FNV-1a's low bits (the index)
 * are easy to collide on purpose, so each table starts from a random seed
 * and the hash is finalised (splitmix64) to spread every bit into the index. */
static uint64_t hash_name(const char *s, uint64_t seed)
{
    uint64_t h = 1469598103934665603ull ^ seed;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    return h ^ (h >> 31);
}

static uint64_t random_seed(const void *salt)
{
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed))
        seed = (uint64_t)(uintptr_t)salt ^ (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ull;
    return seed;
}

static bool table_init(name_table *t, size_t expected)
{
    t->cap = 16;
    while (t->cap < expected * 2 + 1)
        t->cap *= 2;
    t->keys = calloc(t->cap, sizeof(*t->keys));
    t->slots = calloc(t->cap, sizeof(*t->slots));
    t->seed = random_seed(t->keys);
    return t->keys && t->slots;
}

static void table_free(name_table *t)
{
    free(t->keys);
    free(t->slots);
}

static int table_get(const name_table *t, const char *name)
{
    for (size_t i = hash_name(name, t->seed) & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
        if (!t->keys[i])
            return -1;
        if (strcmp(t->keys[i], name) == 0)
            return t->slots[i];
    }
}

/* The table is sized for every name the graph can define, so it never fills. */
static void table_put(name_table *t, const char *name, int slot)
{
    size_t i = hash_name(name, t->seed) & (t->cap - 1);
    while (t->keys[i])
        i = (i + 1) & (t->cap - 1);
    t->keys[i] = name;
    t->slots[i] = slot;
}

/* ---- loading state ------------------------------------------------------- */

typedef struct loader loader;
struct loader {
    loader *outer;        /* the enclosing graph's loader, for subgraphs */
    const char *location; /* subgraphs: "If node 'x' then_branch", for messages */
    int *capture_slots;   /* subgraphs: local slot of each captured outer value */
    int *capture_outer_slots; /* ... and its slot in the enclosing graph */
    int n_captures, cap_captures;
    ifd_model *model;
    const Onnx__ModelProto *proto;
    const Onnx__GraphProto *graph;
    const pb_source *src; /* the model's bytes and folder, for tensors */
    ifd_error *err;
    name_table names;
    size_t cap_values;
    int *node_order;     /* proto node index of each executed node, in order */
    bool *is_constant_node;
    /* (domain, op_type) -> index into model->op_counts, and whether that
     * operator is already in model->unsupported */
    int *op_slots;
    size_t op_slots_cap;
    uint64_t op_seed;
    bool *op_reported;
    size_t cap_unsupported;
    bool in_subgraph;     /* preparing a subgraph (subgraph_prepare) */
};

static int new_value(loader *ld, const char *name, value_origin origin)
{
    ifd_model *m = ld->model;
    if (m->n_values >= ld->cap_values)
        return -1;
    int slot = (int)m->n_values++;
    model_value *v = &m->values[slot];
    v->info.name = model_strdup(m, name);
    v->info.rank = -1;
    v->origin = origin;
    v->producer = -1;
    v->last_use = -1;
    if (!v->info.name)
        return -1;
    if (name[0])
        table_put(&ld->names, v->info.name, slot);
    return slot;
}

void value_set_constant(model_value *v, const ifd_tensor *t)
{
    v->constant_storage = *t;
    v->info.kind = IFD_VALUE_TENSOR;
    v->info.dtype = t->dtype;
    v->info.rank = t->rank;
    for (int i = 0; i < t->rank; i++)
        v->info.dims[i] = t->dims[i];
    v->info.constant = &v->constant_storage;
}

static const char *domain_label(const char *domain)
{
    return domain[0] ? domain : "ai.onnx";
}

static int64_t opset_of(const ifd_model *m, const char *domain)
{
    for (size_t i = 0; i < m->n_opsets; i++) {
        const char *d = m->opsets[i].domain;
        if (strcmp(d, domain) == 0 ||
            (domain[0] == '\0' && strcmp(d, "ai.onnx") == 0))
            return m->opsets[i].version;
    }
    return -1;
}

/* ---- types --------------------------------------------------------------- */

static ifd_status parse_type(loader *ld, const Onnx__TypeProto *tp, const char *name,
                             value_info *info)
{
    info->rank = -1;
    if (!tp) {
        set_error(ld->err, "value '%s' has no type", name);
        return IFD_ERR_INVALID_MODEL;
    }
    switch (tp->value_case) {
    case ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE: {
        const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
        info->kind = IFD_VALUE_TENSOR;
        info->dtype = (ifd_dtype)tt->elem_type;
        if (tt->elem_type < IFD_FLOAT || tt->elem_type > IFD_INT4) {
            set_error(ld->err, "value '%s' has unknown element type %d", name, (int)tt->elem_type);
            return IFD_ERR_UNSUPPORTED;
        }
        if (tt->shape) {
            if (tt->shape->n_dim > IFD_MAX_RANK) {
                set_error(ld->err, "value '%s' has rank %zu, above the engine's maximum of %d",
                          name, tt->shape->n_dim, IFD_MAX_RANK);
                return IFD_ERR_UNSUPPORTED;
            }
            info->rank = (int)tt->shape->n_dim;
            for (size_t i = 0; i < tt->shape->n_dim; i++) {
                const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[i];
                info->dims[i] = d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE &&
                                        d->dim_value >= 0
                                    ? d->dim_value
                                    : -1;
            }
            /* Operators multiply static dims in prepare(): refuse a declared
             * shape whose known dims alone overflow int64, once, here. */
            int64_t known[IFD_MAX_RANK], count;
            char shape[160];
            for (int i = 0; i < info->rank; i++)
                known[i] = info->dims[i] < 0 ? 1 : info->dims[i];
            if (!shape_count(info->rank, known, &count)) {
                set_error(ld->err,
                          "value '%s': declared shape %s has more elements than int64 can count",
                          name, shape_to_string(info->rank, info->dims, shape, sizeof(shape)));
                return IFD_ERR_INVALID_MODEL;
            }
        }
        return IFD_OK;
    }
    case ONNX__TYPE_PROTO__VALUE_SEQUENCE_TYPE: {
        const Onnx__TypeProto *elem = tp->sequence_type->elem_type;
        info->kind = IFD_VALUE_SEQUENCE;
        if (elem && elem->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE) {
            info->elem_kind = IFD_VALUE_TENSOR;
            info->dtype = (ifd_dtype)elem->tensor_type->elem_type;
            if (ifd_dtype_size(info->dtype) == 0) {
                set_error(ld->err, "value '%s': sequence of unknown element type %d", name,
                          (int)elem->tensor_type->elem_type);
                return IFD_ERR_UNSUPPORTED;
            }
            return IFD_OK;
        }
        if (elem && elem->value_case == ONNX__TYPE_PROTO__VALUE_MAP_TYPE) {
            value_info inner = {0};
            ifd_status st = parse_type(ld, elem, name, &inner);
            info->elem_kind = IFD_VALUE_MAP;
            info->key_dtype = inner.key_dtype;
            info->dtype = inner.dtype;
            return st;
        }
        set_error(ld->err, "value '%s': sequences of this element type are not supported", name);
        return IFD_ERR_UNSUPPORTED;
    }
    case ONNX__TYPE_PROTO__VALUE_MAP_TYPE: {
        const Onnx__TypeProto *vt = tp->map_type->value_type;
        info->kind = IFD_VALUE_MAP;
        info->key_dtype = (ifd_dtype)tp->map_type->key_type;
        if (!vt || vt->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE) {
            set_error(ld->err, "value '%s': maps must hold tensor values", name);
            return IFD_ERR_UNSUPPORTED;
        }
        info->dtype = (ifd_dtype)vt->tensor_type->elem_type;
        /* keys: integers or strings (onnx.proto's TypeProto.Map); a map of
         * anything else would reach operators that assume one of those */
        if (!dtype_is_integer(info->key_dtype) && info->key_dtype != IFD_STRING) {
            set_error(ld->err, "value '%s': map keys of type %s are not allowed", name,
                      ifd_dtype_name(info->key_dtype));
            return IFD_ERR_INVALID_MODEL;
        }
        if (ifd_dtype_size(info->dtype) == 0) {
            set_error(ld->err, "value '%s': map of unknown value type %d", name,
                      (int)vt->tensor_type->elem_type);
            return IFD_ERR_UNSUPPORTED;
        }
        return IFD_OK;
    }
    case ONNX__TYPE_PROTO__VALUE_OPTIONAL_TYPE: {
        /* optional<tensor> and optional<sequence<tensor>> */
        const Onnx__TypeProto *elem = tp->optional_type->elem_type;
        value_info inner = {0};
        if (!elem || (elem->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE &&
                      elem->value_case != ONNX__TYPE_PROTO__VALUE_SEQUENCE_TYPE)) {
            set_error(ld->err, "value '%s': optionals of this element type are not supported", name);
            return IFD_ERR_UNSUPPORTED;
        }
        ifd_status st = parse_type(ld, elem, name, &inner);
        if (st != IFD_OK)
            return st;
        if (inner.kind == IFD_VALUE_SEQUENCE && inner.elem_kind != IFD_VALUE_TENSOR) {
            set_error(ld->err, "value '%s': optional sequences must hold tensors", name);
            return IFD_ERR_UNSUPPORTED;
        }
        info->kind = IFD_VALUE_OPTIONAL;
        info->elem_kind = inner.kind;
        info->dtype = inner.dtype;
        info->rank = -1;
        return IFD_OK;
    }
    default:
        set_error(ld->err, "value '%s': sparse and opaque types are not supported", name);
        return IFD_ERR_UNSUPPORTED;
    }
}

static void info_to_type(const value_info *info, ifd_type_info *type, ifd_model *m,
                         const Onnx__TypeProto *declared)
{
    memset(type, 0, sizeof(*type));
    type->kind = info->kind;
    type->dtype = info->dtype;
    type->key_dtype = info->key_dtype;
    type->elem_kind = info->elem_kind;
    type->rank = info->rank;
    for (int i = 0; i < info->rank && i < IFD_MAX_RANK; i++)
        type->dims[i] = info->dims[i];
    if (declared && declared->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE &&
        declared->tensor_type->shape) {
        const Onnx__TensorShapeProto *shape = declared->tensor_type->shape;
        for (size_t i = 0; i < shape->n_dim && i < IFD_MAX_RANK; i++)
            if (shape->dim[i]->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM)
                type->dim_params[i] = model_strdup(m, shape->dim[i]->dim_param);
    }
}

/* ---- attributes ---------------------------------------------------------- */

static op_attr_type infer_attr_type(const Onnx__AttributeProto *a)
{
    /* IR version 1 attributes carry no type: infer it from the field set */
    if (a->has_type)
        return (op_attr_type)a->type;
    if (a->has_f) return OP_ATTR_FLOAT;
    if (a->has_i) return OP_ATTR_INT;
    if (a->has_s) return OP_ATTR_STRING;
    if (a->t) return OP_ATTR_TENSOR;
    if (a->g) return OP_ATTR_GRAPH;
    if (a->tp) return OP_ATTR_TYPE_PROTO;
    if (a->n_floats) return OP_ATTR_FLOATS;
    if (a->n_ints) return OP_ATTR_INTS;
    if (a->n_strings) return OP_ATTR_STRINGS;
    return OP_ATTR_UNDEFINED;
}

static ifd_status convert_attrs(loader *ld, const Onnx__NodeProto *np, op_node *node)
{
    ifd_model *m = ld->model;
    node->n_attrs = np->n_attribute;
    if (np->n_attribute == 0)
        return IFD_OK;
    op_attr *attrs = model_alloc(m, np->n_attribute * sizeof(*attrs));
    if (!attrs)
        goto oom;
    node->attrs = attrs;
    for (size_t i = 0; i < np->n_attribute; i++) {
        const Onnx__AttributeProto *a = np->attribute[i];
        op_attr *out = &attrs[i];
        out->name = model_strdup(m, a->name);
        out->type = infer_attr_type(a);
        if (!out->name)
            goto oom;
        if (a->ref_attr_name && a->ref_attr_name[0]) {
            set_error(ld->err, "%s node '%s': attribute '%s' refers to a function attribute",
                      node->op_type, node->name, out->name);
            return IFD_ERR_INVALID_MODEL;
        }
        switch (out->type) {
        case OP_ATTR_FLOAT: out->f = a->f; break;
        case OP_ATTR_INT: out->i = a->i; break;
        case OP_ATTR_STRING:
            out->s.data = model_strndup(m, (const char *)a->s.data, a->s.len);
            out->s.size = a->s.len;
            if (!out->s.data)
                goto oom;
            break;
        case OP_ATTR_TENSOR: {
            if (!a->t) {
                set_error(ld->err, "%s node '%s': tensor attribute '%s' has no tensor",
                          node->op_type, node->name, out->name);
                return IFD_ERR_INVALID_MODEL;
            }
            out->tensor = model_alloc(m, sizeof(ifd_tensor));
            if (!out->tensor)
                goto oom;
            ifd_status st = pb_tensor_load(a->t, ld->src, out->tensor, NULL, ld->err);
            if (st != IFD_OK)
                return st;
            ifd_tensor **grown = realloc(m->attr_tensors,
                                         (m->n_attr_tensors + 1) * sizeof(*m->attr_tensors));
            if (!grown) {
                tensor_release(out->tensor);
                goto oom;
            }
            m->attr_tensors = grown;
            m->attr_tensors[m->n_attr_tensors++] = out->tensor;
            break;
        }
        case OP_ATTR_FLOATS:
            out->count = a->n_floats;
            out->floats = model_alloc(m, a->n_floats * sizeof(float));
            if (!out->floats)
                goto oom;
            if (a->n_floats)
                memcpy(out->floats, a->floats, a->n_floats * sizeof(float));
            break;
        case OP_ATTR_INTS:
            out->count = a->n_ints;
            out->ints = model_alloc(m, a->n_ints * sizeof(int64_t));
            if (!out->ints)
                goto oom;
            if (a->n_ints)
                memcpy(out->ints, a->ints, a->n_ints * sizeof(int64_t));
            break;
        case OP_ATTR_STRINGS:
            out->count = a->n_strings;
            out->strings = model_alloc(m, a->n_strings * sizeof(ifd_string));
            if (!out->strings)
                goto oom;
            for (size_t k = 0; k < a->n_strings; k++) {
                out->strings[k].data =
                    model_strndup(m, (const char *)a->strings[k].data, a->strings[k].len);
                out->strings[k].size = a->strings[k].len;
                if (!out->strings[k].data)
                    goto oom;
            }
            break;
        case OP_ATTR_TYPE_PROTO: {
            if (!a->tp) {
                set_error(ld->err, "%s node '%s': type attribute '%s' has no type",
                          node->op_type, node->name, out->name);
                return IFD_ERR_INVALID_MODEL;
            }
            out->type_info = model_alloc(m, sizeof(value_info));
            if (!out->type_info)
                goto oom;
            ifd_status st = parse_type(ld, a->tp, out->name, out->type_info);
            if (st != IFD_OK)
                return st;
            break;
        }
        default:
            break; /* graphs and sparse tensors: only operators that need them look */
        }
    }
    return IFD_OK;
oom:
    set_error(ld->err, "out of memory reading attributes of node '%s'", node->name);
    return IFD_ERR_NO_MEMORY;
}

/* Constant nodes become constants at load (Constant-1..13 value variants). */
static ifd_status fold_constant(loader *ld, const op_node *node, model_value *v)
{
    ifd_tensor t = {0};
    ifd_status st = IFD_OK;
    const op_attr *a = node->n_attrs == 1 ? &node->attrs[0] : NULL;
    if (!a) {
        set_error(ld->err, "Constant node '%s': needs exactly one value attribute", node->name);
        return IFD_ERR_INVALID_MODEL;
    }
    if (strcmp(a->name, "value") == 0 && a->type == OP_ATTR_TENSOR) {
        /* read in place from the mapped file: the constant views it too */
        if (model_maps(ld->model, a->tensor->data)) {
            value_set_constant(v, a->tensor);
            return IFD_OK;
        }
        return tensor_copy(&t, a->tensor, ld->err) == IFD_OK ? (value_set_constant(v, &t), IFD_OK)
                                                             : IFD_ERR_NO_MEMORY;
    }
    int64_t n = (int64_t)a->count;
    if (strcmp(a->name, "value_float") == 0 && a->type == OP_ATTR_FLOAT) {
        st = tensor_alloc(&t, IFD_FLOAT, 0, NULL, "Constant", ld->err);
        if (st == IFD_OK)
            ((float *)t.data)[0] = a->f;
    } else if (strcmp(a->name, "value_int") == 0 && a->type == OP_ATTR_INT) {
        st = tensor_alloc(&t, IFD_INT64, 0, NULL, "Constant", ld->err);
        if (st == IFD_OK)
            ((int64_t *)t.data)[0] = a->i;
    } else if (strcmp(a->name, "value_string") == 0 && a->type == OP_ATTR_STRING) {
        st = tensor_alloc(&t, IFD_STRING, 0, NULL, "Constant", ld->err);
        if (st == IFD_OK && !string_set(t.data, a->s.data, a->s.size))
            st = IFD_ERR_NO_MEMORY;
    } else if (strcmp(a->name, "value_floats") == 0 && a->type == OP_ATTR_FLOATS) {
        st = tensor_alloc(&t, IFD_FLOAT, 1, &n, "Constant", ld->err);
        if (st == IFD_OK && n)
            memcpy(t.data, a->floats, (size_t)n * sizeof(float));
    } else if (strcmp(a->name, "value_ints") == 0 && a->type == OP_ATTR_INTS) {
        st = tensor_alloc(&t, IFD_INT64, 1, &n, "Constant", ld->err);
        if (st == IFD_OK && n)
            memcpy(t.data, a->ints, (size_t)n * sizeof(int64_t));
    } else if (strcmp(a->name, "value_strings") == 0 && a->type == OP_ATTR_STRINGS) {
        st = tensor_alloc(&t, IFD_STRING, 1, &n, "Constant", ld->err);
        if (st == IFD_OK && !strings_copy(t.data, a->strings, (size_t)n))
            st = IFD_ERR_NO_MEMORY;
    } else {
        set_error(ld->err, "Constant node '%s': attribute '%s' is not supported", node->name,
                  a->name);
        return IFD_ERR_UNSUPPORTED;
    }
    if (st != IFD_OK) {
        tensor_release(&t);
        return st;
    }
    value_set_constant(v, &t);
    return IFD_OK;
}

/* ---- graph --------------------------------------------------------------- */

/* ---- per-operator tables ---------------------------------------------------
 * Looking operators up by linear search made a model with N distinct operator
 * names cost O(N^2) to load: 100,000 made-up names in a 2.7 MB file took
 * minutes. Both tables below are keyed through one hash of (domain, op_type)
 * into model->op_counts. */

static uint64_t hash_op(const char *domain, const char *op_type, uint64_t seed)
{
    return hash_name(domain, seed) * 1099511628211ull ^ hash_name(op_type, seed);
}

/* The op_counts index of (domain, op_type), or -1; *free_at gets the empty
 * hash slot where it would go. */
static int find_op(const loader *ld, const char *domain, const char *op_type, size_t *free_at)
{
    const ifd_model *m = ld->model;
    size_t mask = ld->op_slots_cap - 1;
    for (size_t i = hash_op(domain, op_type, ld->op_seed) & mask;; i = (i + 1) & mask) {
        int k = ld->op_slots[i] - 1;
        if (k < 0) {
            if (free_at)
                *free_at = i;
            return -1;
        }
        if (strcmp(m->op_counts[k].op_type, op_type) == 0 &&
            strcmp(m->op_counts[k].domain, domain) == 0)
            return k;
    }
}

static ifd_status add_unsupported_at(loader *ld, const char *domain, const char *op_type,
                                     int64_t opset, const char *location)
{
    ifd_model *m = ld->model;
    int k = location ? -1 : find_op(ld, domain, op_type, NULL);
    /* one entry per operator: its opset is its domain's, the same each time */
    if (k >= 0 && ld->op_reported[k])
        return IFD_OK;
    for (size_t i = 0; location && i < m->n_unsupported; i++)
        if (strcmp(m->unsupported[i].op_type, op_type) == 0 &&
            strcmp(m->unsupported[i].domain, domain) == 0)
            return IFD_OK;
    if (m->n_unsupported == ld->cap_unsupported) {
        size_t cap = ld->cap_unsupported ? ld->cap_unsupported * 2 : 8;
        ifd_unsupported_op *grown = realloc(m->unsupported, cap * sizeof(*m->unsupported));
        if (!grown) {
            set_error(ld->err, "out of memory");
            return IFD_ERR_NO_MEMORY;
        }
        m->unsupported = grown;
        ld->cap_unsupported = cap;
    }
    if (k >= 0)
        ld->op_reported[k] = true;
    m->unsupported[m->n_unsupported].domain = model_strdup(m, domain);
    m->unsupported[m->n_unsupported].op_type = model_strdup(m, op_type);
    m->unsupported[m->n_unsupported].opset = opset;
    m->unsupported[m->n_unsupported].location = location ? model_strdup(m, location) : NULL;
    m->n_unsupported++;
    return IFD_OK;
}

static ifd_status add_unsupported(loader *ld, const char *domain, const char *op_type,
                                  int64_t opset)
{
    return add_unsupported_at(ld, domain, op_type, opset, ld->location);
}

static int compare_op_counts(const void *a, const void *b)
{
    const ifd_op_count *x = a, *y = b;
    if (x->count != y->count)
        return x->count < y->count ? 1 : -1;
    int d = strcmp(x->domain, y->domain);
    return d ? d : strcmp(x->op_type, y->op_type);
}

static ifd_status count_ops(loader *ld)
{
    ifd_model *m = ld->model;
    const Onnx__GraphProto *g = ld->graph;
    m->op_counts = calloc(g->n_node ? g->n_node : 1, sizeof(*m->op_counts));
    ld->op_slots_cap = 16;
    while (ld->op_slots_cap < g->n_node * 2 + 1)
        ld->op_slots_cap *= 2;
    ld->op_slots = calloc(ld->op_slots_cap, sizeof(*ld->op_slots));
    ld->op_seed = random_seed(ld->op_slots);
    ld->op_reported = calloc(g->n_node ? g->n_node : 1, sizeof(*ld->op_reported));
    if (!m->op_counts || !ld->op_slots || !ld->op_reported) {
        set_error(ld->err, "out of memory");
        return IFD_ERR_NO_MEMORY;
    }
    for (size_t i = 0; i < g->n_node; i++) {
        const char *domain = g->node[i]->domain ? g->node[i]->domain : "";
        const char *op = g->node[i]->op_type ? g->node[i]->op_type : "";
        if (strcmp(domain, "ai.onnx") == 0)
            domain = "";
        size_t free_at;
        int k = find_op(ld, domain, op, &free_at);
        if (k < 0) {
            k = (int)m->n_op_counts++;
            m->op_counts[k].domain = model_strdup(m, domain);
            m->op_counts[k].op_type = model_strdup(m, op);
            if (!m->op_counts[k].domain || !m->op_counts[k].op_type) {
                set_error(ld->err, "out of memory");
                return IFD_ERR_NO_MEMORY;
            }
            ld->op_slots[free_at] = k + 1;
        }
        m->op_counts[k].count++;
    }
    qsort(m->op_counts, m->n_op_counts, sizeof(*m->op_counts), compare_op_counts);
    /* the sort moved the entries: index them again */
    memset(ld->op_slots, 0, ld->op_slots_cap * sizeof(*ld->op_slots));
    for (size_t k = 0; k < m->n_op_counts; k++) {
        size_t free_at;
        find_op(ld, m->op_counts[k].domain, m->op_counts[k].op_type, &free_at);
        ld->op_slots[free_at] = (int)k + 1;
    }
    return IFD_OK;
}

static ifd_status check_names(loader *ld)
{
    const Onnx__GraphProto *g = ld->graph;
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *np = g->node[i];
        if (!np->op_type || !np->op_type[0]) {
            set_error(ld->err, "node %zu ('%s') has no op_type", i, np->name ? np->name : "");
            return IFD_ERR_INVALID_MODEL;
        }
    }
    return IFD_OK;
}

/* Create slots for initializers, graph inputs and node outputs. */
static ifd_status define_values(loader *ld)
{
    ifd_model *m = ld->model;
    const Onnx__GraphProto *g = ld->graph;
    ifd_status st;

    if (g->n_sparse_initializer) {
        set_error(ld->err, "sparse initializers are not supported");
        return IFD_ERR_UNSUPPORTED;
    }
    for (size_t i = 0; i < g->n_initializer; i++) {
        Onnx__TensorProto *tp = g->initializer[i];
        const char *name = tp->name ? tp->name : "";
        if (!name[0]) {
            set_error(ld->err, "initializer %zu has no name", i);
            return IFD_ERR_INVALID_MODEL;
        }
        if (table_get(&ld->names, name) >= 0) {
            set_error(ld->err, "initializer '%s' is defined twice", name);
            return IFD_ERR_INVALID_MODEL;
        }
        int slot = new_value(ld, name, VALUE_CONSTANT);
        if (slot < 0)
            goto oom;
        ifd_tensor t;
        const uint8_t *deferred;
        st = pb_tensor_load(tp, ld->src, &t, &deferred, ld->err);
        if (st != IFD_OK)
            return st;
        value_set_constant(&m->values[slot], &t);
        m->values[slot].deferred_raw = deferred;
    }

    m->inputs = calloc(g->n_input ? g->n_input : 1, sizeof(*m->inputs));
    if (!m->inputs)
        goto oom;
    for (size_t i = 0; i < g->n_input; i++) {
        const Onnx__ValueInfoProto *vi = g->input[i];
        const char *name = vi->name ? vi->name : "";
        int existing = name[0] ? table_get(&ld->names, name) : -1;
        if (existing >= 0 && m->values[existing].origin == VALUE_CONSTANT)
            continue; /* an input with an initializer is a constant with a default */
        if (!name[0] || existing >= 0) {
            set_error(ld->err, "graph input %zu '%s' is unnamed or defined twice", i, name);
            return IFD_ERR_INVALID_MODEL;
        }
        int slot = new_value(ld, name, VALUE_GRAPH_INPUT);
        if (slot < 0)
            goto oom;
        if (ld->outer && !vi->type) {
            /* a subgraph input may leave its type to the operator (Loop's
             * iteration count and state often do): set at prepare */
            m->values[slot].info.kind = IFD_VALUE_TENSOR;
            m->values[slot].info.dtype = IFD_UNDEFINED;
            m->values[slot].info.rank = -1;
        } else {
            st = parse_type(ld, vi->type, name, &m->values[slot].info);
            if (st != IFD_OK)
                return st;
        }
        m->inputs[m->n_inputs].slot = slot;
        m->inputs[m->n_inputs].info.name = m->values[slot].info.name;
        info_to_type(&m->values[slot].info, &m->inputs[m->n_inputs].info.type, m, vi->type);
        m->n_inputs++;
    }

    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *np = g->node[i];
        bool constant = ld->is_constant_node[i];
        for (size_t k = 0; k < np->n_output; k++) {
            const char *name = np->output[k] ? np->output[k] : "";
            if (name[0] && table_get(&ld->names, name) >= 0) {
                set_error(ld->err, "%s node '%s': output '%s' is already defined elsewhere",
                          np->op_type, np->name ? np->name : "", name);
                return IFD_ERR_INVALID_MODEL;
            }
            if (new_value(ld, name, constant ? VALUE_CONSTANT : VALUE_INTERMEDIATE) < 0)
                goto oom;
        }
    }
    return IFD_OK;
oom:
    set_error(ld->err, "out of memory");
    return IFD_ERR_NO_MEMORY;
}

/* Kahn's algorithm leaves exactly the nodes on or downstream of a cycle, and
 * each of them still waits for a producer that is left over too. So walking
 * from any leftover node to a leftover producer must come back to a node
 * already seen, and that stretch of the walk is a cycle: name its nodes in
 * data-flow order, starting from the first in file order. */
static void describe_cycle(loader *ld, const model_node *all, const int *indegree, size_t n)
{
    const ifd_model *m = ld->model;
    int *seen_at = malloc(n * sizeof(int));
    int *walk = malloc(n * sizeof(int));
    size_t len = 0, start = 0;
    int cur = -1;
    if (!seen_at || !walk) {
        free(seen_at);
        free(walk);
        set_error(ld->err, "the graph has a cycle");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        seen_at[i] = -1;
        if (cur < 0 && !ld->is_constant_node[i] && indegree[i] > 0)
            cur = (int)i;
    }
    while (cur >= 0 && seen_at[cur] < 0) {
        seen_at[cur] = (int)len;
        walk[len++] = cur;
        int next = -1;
        for (int k = 0; k < all[cur].op.n_inputs + all[cur].op.n_implicit && next < 0; k++) {
            int slot = all[cur].input_slots[k];
            int p = slot >= 0 && m->values[slot].origin == VALUE_INTERMEDIATE
                        ? m->values[slot].producer
                        : -1;
            if (p >= 0 && !ld->is_constant_node[p] && indegree[p] > 0)
                next = p;
        }
        cur = next;
    }
    char text[700];
    size_t used = 0;
    if (cur >= 0) {
        /* walk[seen_at[cur] .. len) runs against the data flow */
        size_t first = (size_t)seen_at[cur], count = len - first;
        for (size_t i = first; i < len; i++)
            if (walk[i] < walk[first + start])
                start = i - first;
        for (size_t j = 0; j <= count && used < sizeof(text); j++) {
            const op_node *op = &all[walk[first + (start + count - j % count) % count]].op;
            int w = snprintf(text + used, sizeof(text) - used, "%s%s '%s'", j ? " -> " : "",
                             op->op_type, op->name);
            used += w > 0 ? (size_t)w : 0;
        }
    }
    if (used >= sizeof(text))
        snprintf(text + sizeof(text) - 5, 5, " ...");
    set_error(ld->err, "the graph has a cycle: %s", used ? text : "(not found)");
    free(seen_at);
    free(walk);
}

/* ---- subgraphs ------------------------------------------------------------ */

static ifd_status load_graph_body(loader *ld);
static ifd_status prepare_node(loader *ld, size_t i);
static ifd_status resolve_ops(loader *ld, const ifd_load_options *options);

/* Every node input of g and of the graphs nested in it: a bound on how many
 * outer values a subgraph can capture. */
static size_t count_node_inputs(const Onnx__GraphProto *g)
{
    size_t n = 0;
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *np = g->node[i];
        n += np->n_input;
        for (size_t a = 0; a < np->n_attribute; a++) {
            const Onnx__AttributeProto *attr = np->attribute[a];
            if (attr->g)
                n += count_node_inputs(attr->g);
            for (size_t k = 0; k < attr->n_graphs; k++)
                n += count_node_inputs(attr->graphs[k]);
        }
    }
    return n;
}

/* The slot of `name` read by a subgraph from an enclosing graph: a new input
 * of this graph, captured from the enclosing one (which may capture it in
 * turn from its own). -1 when no enclosing graph defines it, -2 out of
 * memory. */
static int capture_outer(loader *ld, const char *name)
{
    loader *o = ld->outer;
    if (!o)
        return -1;
    int outer_slot = table_get(&o->names, name);
    if (outer_slot < 0)
        outer_slot = capture_outer(o, name);
    if (outer_slot < 0)
        return outer_slot;
    if (ld->n_captures == ld->cap_captures) {
        int cap = ld->cap_captures ? ld->cap_captures * 2 : 8;
        int *slots = realloc(ld->capture_slots, (size_t)cap * sizeof(*slots));
        if (slots)
            ld->capture_slots = slots;
        int *outer_slots = realloc(ld->capture_outer_slots, (size_t)cap * sizeof(*outer_slots));
        if (outer_slots)
            ld->capture_outer_slots = outer_slots;
        if (!slots || !outer_slots)
            return -2;
        ld->cap_captures = cap;
    }
    int slot = new_value(ld, name, VALUE_GRAPH_INPUT);
    if (slot < 0)
        return -2;
    ld->capture_slots[ld->n_captures] = slot;
    ld->capture_outer_slots[ld->n_captures] = outer_slot;
    ld->n_captures++;
    return slot;
}

static ifd_status add_unsupported_at(loader *ld, const char *domain, const char *op_type,
                                     int64_t opset, const char *location);

/* The first half of loading graph attribute `attr` of node `op` (a node of
 * ld's graph), up to resolving its operators. On success *outer_slots (n =
 * (*out)->n_captures, malloc'd, the caller frees it) lists the slots of ld's
 * graph the subgraph reads. */
static ifd_status build_subgraph(loader *ld, const op_node *op, const Onnx__AttributeProto *attr,
                                 subgraph **out, int **outer_slots)
{
    ifd_model *outer_model = ld->model;
    ifd_status st = IFD_OK;
    char location[320];
    *out = NULL;
    *outer_slots = NULL;
    snprintf(location, sizeof(location), "%s%s%s node '%s' %s", ld->location ? ld->location : "",
             ld->location ? ", " : "", op->op_type, op->name, attr->name ? attr->name : "");
    ifd_model **grown = realloc(outer_model->subgraph_models,
                                (outer_model->n_subgraph_models + 1) * sizeof(*grown));
    if (!grown)
        goto oom;
    outer_model->subgraph_models = grown;
    ifd_model *m = calloc(1, sizeof(*m));
    if (!m)
        goto oom;
    outer_model->subgraph_models[outer_model->n_subgraph_models++] = m;
    m->graph_opt = outer_model->graph_opt;
    m->map_base = outer_model->map_base; /* the outermost model owns the mapping */
    m->map_len = outer_model->map_len;
    subgraph *sg = model_alloc(outer_model, sizeof(*sg));
    char *where = model_strdup(outer_model, location);
    if (!sg || !where)
        goto oom;
    sg->model = m;
    sg->attr_name = model_strdup(outer_model, attr->name ? attr->name : "");
    sg->graph_proto = attr->g;
    sg->base_dir = ld->src ? ld->src->base_dir : NULL;
    m->ir_version = outer_model->ir_version;
    m->n_opsets = outer_model->n_opsets;
    m->opsets = outer_model->opsets; /* owned by the outermost model's blocks */
    m->producer_name = model_strdup(m, "");
    m->producer_version = model_strdup(m, "");
    m->graph_name = model_strdup(m, attr->g->name ? attr->g->name : "");
    if (!sg->attr_name || !m->producer_name || !m->producer_version || !m->graph_name)
        goto oom;
    loader sub = {.outer = ld, .location = where, .model = m, .proto = ld->proto,
                  .graph = attr->g, .src = ld->src, .err = ld->err};
    st = load_graph_body(&sub);
    if (st == IFD_OK)
        st = resolve_ops(&sub, &(ifd_load_options){.describe_only = 1});
    /* what the subgraph cannot run, the whole model cannot: report it there */
    for (size_t i = 0; st == IFD_OK && i < m->n_unsupported; i++) {
        const ifd_unsupported_op *u = &m->unsupported[i];
        st = add_unsupported_at(ld, u->domain, u->op_type, u->opset,
                                u->location ? u->location : where);
    }
    if (st == IFD_OK) {
        /* captured values become the subgraph's last inputs */
        model_io *inputs = realloc(m->inputs, (m->n_inputs + (size_t)sub.n_captures + 1) *
                                                  sizeof(*inputs));
        sg->capture_outer = model_alloc(outer_model, (size_t)(sub.n_captures + 1) *
                                                         sizeof(*sg->capture_outer));
        if (inputs)
            m->inputs = inputs;
        if (!inputs || !sg->capture_outer) {
            st = IFD_ERR_NO_MEMORY;
            set_error(ld->err, "out of memory");
        } else {
            sg->n_formal = (int)m->n_inputs;
            sg->n_captures = sub.n_captures;
            for (int k = 0; k < sub.n_captures; k++) {
                model_io *io = &m->inputs[m->n_inputs++];
                memset(io, 0, sizeof(*io));
                io->slot = sub.capture_slots[k];
                io->info.name = m->values[io->slot].info.name;
                sg->capture_outer[k] = &outer_model->values[sub.capture_outer_slots[k]].info;
            }
        }
    }
    table_free(&sub.names);
    free(sub.is_constant_node);
    free(sub.op_slots);
    free(sub.op_reported);
    free(sub.capture_slots);
    if (st != IFD_OK) {
        free(sub.capture_outer_slots);
        /* keep the innermost message, prefixed with where it happened */
        char inner[sizeof(ld->err->message)];
        snprintf(inner, sizeof(inner), "%s", ld->err->message);
        if (!strstr(inner, where))
            set_error(ld->err, "%s: %s", where, inner);
        return st;
    }
    *outer_slots = sub.capture_outer_slots;
    *out = sg;
    return IFD_OK;
oom:
    set_error(ld->err, "out of memory loading a subgraph of %s node '%s'", op->op_type,
              op->name);
    return IFD_ERR_NO_MEMORY;
}

/* Load every graph attribute of node `np` (bound as `node` in ld's graph) and
 * append the values they read from ld's graph to the node's inputs. */
static ifd_status build_node_subgraphs(loader *ld, const Onnx__NodeProto *np, model_node *node)
{
    ifd_model *m = ld->model;
    op_node *op = &node->op;
    int n_graphs = 0;
    for (size_t a = 0; a < np->n_attribute; a++) {
        if (np->attribute[a]->n_graphs) {
            set_error(ld->err, "%s node '%s': graph-list attribute '%s' is not supported",
                      op->op_type, op->name, np->attribute[a]->name);
            return IFD_ERR_UNSUPPORTED;
        }
        n_graphs += np->attribute[a]->g != NULL;
    }
    if (!n_graphs)
        return IFD_OK;
    op->subgraphs = model_alloc(m, (size_t)n_graphs * sizeof(*op->subgraphs));
    if (!op->subgraphs)
        goto oom;
    for (size_t a = 0; a < np->n_attribute; a++) {
        if (!np->attribute[a]->g)
            continue;
        subgraph *sg;
        int *outer_slots;
        ifd_status st = build_subgraph(ld, op, np->attribute[a], &sg, &outer_slots);
        if (st != IFD_OK)
            return st;
        op->subgraphs[op->n_subgraphs++] = sg;
        sg->first_implicit = op->n_implicit;
        if (sg->n_captures) {
            int total = op->n_inputs + op->n_implicit + sg->n_captures;
            value_info **inputs = model_alloc(m, (size_t)total * sizeof(*inputs));
            int *slots = model_alloc(m, (size_t)total * sizeof(*slots));
            if (!inputs || !slots) {
                free(outer_slots);
                goto oom;
            }
            int before = op->n_inputs + op->n_implicit;
            if (before) {
                memcpy(inputs, op->inputs, (size_t)before * sizeof(*inputs));
                memcpy(slots, node->input_slots, (size_t)before * sizeof(*slots));
            }
            for (int k = 0; k < sg->n_captures; k++) {
                slots[before + k] = outer_slots[k];
                inputs[before + k] = &m->values[outer_slots[k]].info;
            }
            op->inputs = inputs;
            node->input_slots = slots;
            op->n_implicit += sg->n_captures;
        }
        free(outer_slots);
    }
    return IFD_OK;
oom:
    set_error(ld->err, "out of memory loading the subgraphs of %s node '%s'", op->op_type,
              op->name);
    return IFD_ERR_NO_MEMORY;
}

/* Bind node inputs/outputs to slots, fold Constants, order topologically. */
static ifd_status build_nodes(loader *ld)
{
    ifd_model *m = ld->model;
    const Onnx__GraphProto *g = ld->graph;
    ifd_status st;
    size_t n = g->n_node;
    /* slot of each node's first output, in definition order */
    int next_slot = (int)(m->n_values);
    for (size_t i = 0; i < n; i++)
        next_slot -= (int)g->node[i]->n_output;

    model_node *all = calloc(n ? n : 1, sizeof(*all));
    int *indegree = calloc(n ? n : 1, sizeof(int));
    int *queue = calloc(n ? n : 1, sizeof(int));
    if (!all || !indegree || !queue) {
        free(all);
        free(indegree);
        free(queue);
        set_error(ld->err, "out of memory");
        return IFD_ERR_NO_MEMORY;
    }
    st = IFD_OK;
    for (size_t i = 0; i < n && st == IFD_OK; i++) {
        const Onnx__NodeProto *np = g->node[i];
        model_node *node = &all[i];
        op_node *op = &node->op;
        op->name = model_strdup(m, np->name);
        op->op_type = model_strdup(m, np->op_type);
        op->domain = model_strdup(m, (np->domain && strcmp(np->domain, "ai.onnx") != 0) ? np->domain : "");
        op->n_inputs = (int)np->n_input;
        op->n_outputs = (int)np->n_output;
        op->inputs = model_alloc(m, np->n_input * sizeof(value_info *));
        op->outputs = model_alloc(m, np->n_output * sizeof(value_info *));
        op->output_used = model_alloc(m, np->n_output * sizeof(bool));
        node->input_slots = model_alloc(m, np->n_input * sizeof(int));
        node->output_slots = model_alloc(m, np->n_output * sizeof(int));
        if (!op->name || !op->op_type || !op->domain || !op->inputs || !op->outputs ||
            !op->output_used || !node->input_slots || !node->output_slots) {
            set_error(ld->err, "out of memory");
            st = IFD_ERR_NO_MEMORY;
            break;
        }
        for (size_t k = 0; k < np->n_output; k++) {
            node->output_slots[k] = next_slot++;
            op->outputs[k] = &m->values[node->output_slots[k]].info;
            m->values[node->output_slots[k]].producer = (int)i;
        }
        for (size_t k = 0; k < np->n_input; k++) {
            const char *name = np->input[k] ? np->input[k] : "";
            int slot = name[0] ? table_get(&ld->names, name) : -1;
            if (name[0] && slot < 0 && ld->outer)
                slot = capture_outer(ld, name); /* outer scope */
            if (slot == -2) {
                set_error(ld->err, "out of memory");
                st = IFD_ERR_NO_MEMORY;
                break;
            }
            if (name[0] && slot < 0) {
                set_error(ld->err,
                          "%s node '%s': input '%s' is not produced by any node, initializer "
                          "or graph input",
                          op->op_type, op->name, name);
                st = IFD_ERR_INVALID_MODEL;
                break;
            }
            node->input_slots[k] = slot;
            op->inputs[k] = slot >= 0 ? &m->values[slot].info : NULL;
        }
        if (st == IFD_OK)
            st = convert_attrs(ld, np, op);
        if (st == IFD_OK && !ld->is_constant_node[i])
            st = build_node_subgraphs(ld, np, node);
        if (st == IFD_OK && ld->is_constant_node[i]) {
            if (np->n_output != 1 || np->n_input != 0) {
                set_error(ld->err, "Constant node '%s': needs no inputs and one output", op->name);
                st = IFD_ERR_INVALID_MODEL;
            } else {
                st = fold_constant(ld, op, &m->values[node->output_slots[0]]);
            }
        }
    }

    /* Kahn's algorithm over the non-constant nodes, keeping file order among
     * ready nodes so that execution order is predictable. In-degrees are
     * counted only now that every node is bound: an input may come from a
     * node later in the file, whose outputs had no producer recorded yet
     * while the nodes before it were bound (reading is_constant_node[-1],
     * found by test_loader's bit flips). */
    size_t head = 0, tail = 0, executed = 0;
    for (size_t i = 0; i < n && st == IFD_OK; i++)
        for (int k = 0; k < all[i].op.n_inputs + all[i].op.n_implicit; k++) {
            int slot = all[i].input_slots[k];
            if (slot >= 0 && m->values[slot].origin == VALUE_INTERMEDIATE &&
                !ld->is_constant_node[m->values[slot].producer])
                indegree[i]++;
        }
    if (st == IFD_OK) {
        for (size_t i = 0; i < n; i++)
            if (!ld->is_constant_node[i] && indegree[i] == 0)
                queue[tail++] = (int)i;
        m->nodes = calloc(n ? n : 1, sizeof(*m->nodes));
        if (!m->nodes) {
            set_error(ld->err, "out of memory");
            st = IFD_ERR_NO_MEMORY;
        }
    }
    /* readers of each slot, as offsets into one array (CSR) */
    int *reader_start = calloc(m->n_values + 1, sizeof(int));
    int *readers = NULL;
    if (st == IFD_OK && reader_start) {
        size_t total = 0;
        for (size_t i = 0; i < n; i++)
            if (!ld->is_constant_node[i])
                for (int q = 0; q < all[i].op.n_inputs + all[i].op.n_implicit; q++)
                    if (all[i].input_slots[q] >= 0) {
                        reader_start[all[i].input_slots[q] + 1]++;
                        total++;
                    }
        for (size_t v = 0; v < m->n_values; v++)
            reader_start[v + 1] += reader_start[v];
        readers = calloc(total ? total : 1, sizeof(int));
        int *fill = calloc(m->n_values + 1, sizeof(int));
        if (readers && fill) {
            for (size_t i = 0; i < n; i++)
                if (!ld->is_constant_node[i])
                    for (int q = 0; q < all[i].op.n_inputs + all[i].op.n_implicit; q++) {
                        int slot = all[i].input_slots[q];
                        if (slot >= 0)
                            readers[reader_start[slot] + fill[slot]++] = (int)i;
                    }
        }
        if (!fill)
            free(readers), readers = NULL;
        free(fill);
    }
    if (st == IFD_OK && (!reader_start || !readers)) {
        set_error(ld->err, "out of memory");
        st = IFD_ERR_NO_MEMORY;
    }
    while (st == IFD_OK && head < tail) {
        int i = queue[head++];
        m->nodes[executed++] = all[i];
        const model_node *node = &all[i];
        for (int k = 0; k < node->op.n_outputs; k++) {
            int slot = node->output_slots[k];
            for (int r = reader_start[slot]; r < reader_start[slot + 1]; r++)
                if (--indegree[readers[r]] == 0)
                    queue[tail++] = readers[r];
        }
    }
    free(reader_start);
    free(readers);
    if (st == IFD_OK) {
        size_t expected = 0;
        for (size_t i = 0; i < n; i++)
            expected += !ld->is_constant_node[i];
        if (executed != expected) {
            describe_cycle(ld, all, indegree, n);
            st = IFD_ERR_INVALID_MODEL;
        }
    }
    m->n_nodes = executed;
    free(all);
    free(indegree);
    free(queue);
    return st;
}

static ifd_status resolve_ops(loader *ld, const ifd_load_options *options)
{
    ifd_model *m = ld->model;
    ifd_status st = IFD_OK;
    for (size_t i = 0; i < m->n_nodes && st == IFD_OK; i++) {
        model_node *node = &m->nodes[i];
        const char *domain = node->op.domain;
        int64_t opset = opset_of(m, domain);
        int version = 0;
        if (opset >= 0 && opset <= onnx_max_opset(domain))
            version = onnx_schema_version(domain, node->op.op_type, opset);
        node->def = version ? op_registry_find(domain, node->op.op_type, version) : NULL;
        node->op.version = version;
        if (!node->def && ld->location) {
            char where[480];
            snprintf(where, sizeof(where), "%s, node '%s'", ld->location, node->op.name);
            st = add_unsupported_at(ld, domain, node->op.op_type, opset, where);
        } else if (!node->def) {
            st = add_unsupported(ld, domain, node->op.op_type, opset);
        }
    }
    if (st != IFD_OK || m->n_unsupported == 0)
        return st;
    if (options && options->describe_only)
        return IFD_OK;
    /* Every entry that fits, whole; then how many did not, so that a long list
     * is never cut mid-name without saying so. */
    char list[900] = "";
    size_t used = 0, listed = 0;
    for (size_t i = 0; i < m->n_unsupported; i++) {
        const ifd_unsupported_op *u = &m->unsupported[i];
        int64_t max = onnx_max_opset(u->domain);
        char entry[640];
        if (u->opset < 0)
            snprintf(entry, sizeof(entry), "%s (domain %s not imported)", u->op_type,
                     domain_label(u->domain));
        else if (max == 0)
            snprintf(entry, sizeof(entry), "%s (%s opset %lld: domain not supported)", u->op_type,
                     domain_label(u->domain), (long long)u->opset);
        else if (u->opset > max)
            snprintf(entry, sizeof(entry), "%s (%s opset %lld, newest supported is %lld)",
                     u->op_type, domain_label(u->domain), (long long)u->opset, (long long)max);
        else
            snprintf(entry, sizeof(entry), "%s (%s opset %lld)", u->op_type,
                     domain_label(u->domain), (long long)u->opset);
        if (u->location) {
            size_t used_entry = strlen(entry);
            snprintf(entry + used_entry, sizeof(entry) - used_entry, " in %s", u->location);
        }
        size_t need = strlen(entry) + (listed ? 2 : 0);
        if (used + need + 32 >= sizeof(list))
            break;
        used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%s", listed ? ", " : "",
                                 entry);
        listed++;
    }
    if (listed < m->n_unsupported)
        snprintf(list + used, sizeof(list) - used, " and %zu more", m->n_unsupported - listed);
    set_error(ld->err, "model uses %zu unsupported operator%s: %s", m->n_unsupported,
              m->n_unsupported == 1 ? "" : "s", list);
    return IFD_ERR_UNSUPPORTED;
}

/* The node's input and output counts against ONNX's schema, so that no
 * operator's prepare() meets a node missing what the schema requires. */
static ifd_status check_arity(loader *ld, const op_node *op)
{
    int min_in, max_in, min_out, max_out;
    unsigned required;
    if (!onnx_schema_arity(op->domain, op->op_type, op->version, &min_in, &max_in, &min_out,
                           &max_out, &required))
        return IFD_OK;
    if (op->n_inputs < min_in || op->n_inputs > max_in) {
        set_error(ld->err, "%s node '%s': has %d inputs; %s-%d takes %d to %d", op->op_type,
                  op->name, op->n_inputs, op->op_type, op->version, min_in, max_in);
        return IFD_ERR_INVALID_MODEL;
    }
    if (op->n_outputs < min_out || op->n_outputs > max_out) {
        set_error(ld->err, "%s node '%s': has %d outputs; %s-%d gives %d to %d", op->op_type,
                  op->name, op->n_outputs, op->op_type, op->version, min_out, max_out);
        return IFD_ERR_INVALID_MODEL;
    }
    for (int k = 0; k < op->n_inputs && k < 31; k++)
        if ((required >> k & 1u) && !op->inputs[k]) {
            set_error(ld->err, "%s node '%s': input %d is required but empty", op->op_type,
                      op->name, k);
            return IFD_ERR_INVALID_MODEL;
        }
    /* Sequences, maps and optionals reach only the operators made for them;
     * every other operator's schema takes tensors. */
    static const char *const takes_any_kind[] = {
        "Identity",       "OptionalHasElement", "OptionalGetElement", "DictVectorizer",
        "CastMap",        "SequenceAt",         "SequenceInsert",     "SequenceErase",
        "SequenceLength", "ConcatFromSequence", "Loop",     "Optional",
        "SequenceMap",
    };
    bool any_kind = false;
    for (size_t i = 0; i < sizeof(takes_any_kind) / sizeof(takes_any_kind[0]); i++)
        any_kind |= strcmp(op->op_type, takes_any_kind[i]) == 0;
    for (int k = 0; k < op->n_inputs && !any_kind; k++)
        if (op->inputs[k] && op->inputs[k]->kind != IFD_VALUE_TENSOR) {
            set_error(ld->err, "%s node '%s': input %d ('%s') must be a tensor", op->op_type,
                      op->name, k, op->inputs[k]->name);
            return IFD_ERR_INVALID_MODEL;
        }
    return IFD_OK;
}

/* A weight freed once packed sits between packed copies in malloc's heap
 * (glibc serves blocks of a few MiB from the heap once one that size was
 * freed), where it would stay resident; each weight is copied from the file
 * when its reader prepares, so these holes add up over a network unless
 * their pages go back at once (ResNet-18's load peak: +2.7 MiB). */
static void give_back_freed_memory(void)
{
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}

/* Copy a deferred weight from the mapped file (see pb_tensor_materialize). */
static ifd_status materialize(model_value *v, ifd_error *err)
{
    if (!v->deferred_raw)
        return IFD_OK;
    ifd_status st = pb_tensor_materialize(&v->constant_storage, v->deferred_raw, v->info.name, err);
    v->deferred_raw = NULL;
    return st;
}

/* Every weight still deferred after prepare, in m and its subgraphs: what
 * no prepare() read (unread initializers, models only described) is copied
 * before any session can bind it. */
static ifd_status materialize_all(ifd_model *m, ifd_error *err)
{
    ifd_status st = IFD_OK;
    for (size_t i = 0; i < m->n_values && st == IFD_OK; i++)
        st = materialize(&m->values[i], err);
    for (size_t i = 0; i < m->n_subgraph_models && st == IFD_OK; i++)
        st = materialize_all(m->subgraph_models[i], err);
    return st;
}

/* Operators whose prepare() packs input `k` from value_info.mapped_bytes
 * (ops/gemm.c's B, ops/conv.c's W): it never needs a copy of its own. */
static bool packs_from_file(const model_node *node, int k)
{
    return k == 1 && node->op.domain[0] == '\0' &&
           (strcmp(node->op.op_type, "Gemm") == 0 || strcmp(node->op.op_type, "MatMul") == 0 ||
            strcmp(node->op.op_type, "Conv") == 0);
}

/* Where node input k's weight lies in the mapped file, when prepare() may
 * read it from there (value_info.mapped_bytes), else NULL: a float32
 * constant of at least a page, still deferred or read in place, that this
 * node alone reads, of a node that is not folded (its A is not constant). */
static const uint8_t *streamable_input(const ifd_model *m, const model_node *node, int k,
                                       const int *readers)
{
    int slot = node->input_slots[k];
    if (!readers || slot < 0 || !packs_from_file(node, k) || node->input_slots[0] < 0 ||
        m->values[node->input_slots[0]].origin == VALUE_CONSTANT)
        return NULL;
    const model_value *v = &m->values[slot];
    const ifd_tensor *t = &v->constant_storage;
    if (v->origin != VALUE_CONSTANT || v->is_graph_output || v->viewed || readers[slot] != 1 ||
        t->dtype != IFD_FLOAT || (size_t)ifd_tensor_count(t) * sizeof(float) < 4096)
        return NULL;
    if (v->deferred_raw)
        return v->deferred_raw;
    return model_maps(m, t->data) ? t->data : NULL;
}

void op_constant_read(const value_info *v, size_t offset, size_t len, void *dst)
{
    memcpy(dst, v->mapped_bytes + offset, len);
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0)
        return;
    /* the pages this read finished: from the one holding byte `offset`
     * (shared with the previous read, which kept it) to the last whole page
     * read. The first read's first page may hold the end of a preceding
     * tensor, even one read in place: harmless, the file's bytes fault in
     * again when read. */
    uintptr_t start = (uintptr_t)v->mapped_bytes & ~((uintptr_t)page - 1);
    uintptr_t end = ((uintptr_t)v->mapped_bytes + offset + len) & ~((uintptr_t)page - 1);
    if (offset > 0)
        start = ((uintptr_t)v->mapped_bytes + offset) & ~((uintptr_t)page - 1);
    if (end > start)
        pb_release_pages((const void *)start, end - start);
}

/* prepare() every node in order; at BASIC and above, fold each node whose
 * inputs are constants as soon as it is prepared (removed[i] marks it), so
 * the nodes after it are prepared with the folded constants. */
static ifd_status prepare_nodes(loader *ld, bool *removed)
{
    ifd_model *m = ld->model;
    constant_folder folder = {.m = m, .in_subgraph = ld->in_subgraph};
    packed_sharer sharer = {0};
    size_t freed = 0;
    ifd_status st = IFD_OK;
    graph_view view;
    bool have_view = graph_view_init(&view, m, ld->err) == IFD_OK;
    for (size_t i = 0; i < m->n_nodes && st == IFD_OK; i++) {
        /* a weight is copied from the file when its first reader prepares,
         * after the weights earlier readers packed were dropped */
        const model_node *node = &m->nodes[i];
        unsigned streamed = 0; /* inputs prepare() may pack from the file */
        /* a Conv whose weights a BatchNormalization after it will be folded
         * into repacks them from the constant then: it stays readable */
        bool repacks = have_view && m->graph_opt >= IFD_GRAPH_OPT_ALL &&
                       fuse_kernels_needs_weights(m, i, view.readers);
        for (int k = 0; k < node->op.n_inputs + node->op.n_implicit && st == IFD_OK; k++) {
            int slot = node->input_slots[k];
            const uint8_t *bytes = k < 32 && !repacks
                                       ? streamable_input(m, node, k, have_view ? view.readers : NULL)
                                       : NULL;
            if (bytes) {
                m->values[slot].info.mapped_bytes = bytes;
                streamed |= 1u << k;
            } else if (slot >= 0) {
                st = materialize(&m->values[slot], ld->err);
            }
        }
        if (st != IFD_OK)
            break;
        st = prepare_node(ld, i);
        for (int k = 0; streamed && k < node->op.n_inputs; k++) {
            if (!(streamed >> k & 1u))
                continue;
            model_value *v = &m->values[node->input_slots[k]];
            v->info.mapped_bytes = NULL;
            if (st == IFD_OK && (node->op.packed_inputs >> k & 1u) && v->deferred_raw) {
                /* packed as it was read: never copied, and no other node
                 * reads it (its pages went back as they were packed) */
                pb_release_pages(v->deferred_raw, (size_t)ifd_tensor_count(&v->constant_storage) *
                                                      sizeof(float));
                v->deferred_raw = NULL;
            } else if (st == IFD_OK) {
                st = materialize(v, ld->err); /* not packed: copied as usual */
            }
        }
        if (st == IFD_OK && m->graph_opt >= IFD_GRAPH_OPT_BASIC)
            removed[i] = constant_folder_node(&folder, i);
        /* a Conv the kernel fusions may repack keeps the file's weights
         * until they have run (optimize_after_prepare frees them then) */
        if (st == IFD_OK && have_view && !removed[i] &&
            !(m->graph_opt >= IFD_GRAPH_OPT_ALL && fuse_kernels_needs_weights(m, i, view.readers)))
            freed += optimize_release_packed_inputs(m, i, view.readers);
        /* trimming walks the heap: once a MiB of weights was freed, not per
         * node (a classic-ML model may have thousands of small products) */
        if (freed >= ((size_t)1 << 20)) {
            give_back_freed_memory();
            freed = 0;
        }
        /* a layer packed like an earlier one drops its copy before the
         * next layer packs (a TransformerEncoder's layers share weights) */
        if (st == IFD_OK && !removed[i])
            st = packed_sharer_node(&sharer, m, i, ld->err);
    }
    packed_sharer_free(&sharer);
    constant_folder_end(&folder);
    graph_view_free(&view);
    return st;
}

/* Check node i against its schema and let its operator prepare it. */
static ifd_status prepare_node(loader *ld, size_t i)
{
    ifd_model *m = ld->model;
    model_node *node = &m->nodes[i];
    op_node *op = &node->op;
    ifd_status arity = check_arity(ld, op);
    if (arity != IFD_OK)
        return arity;
    if (node->def->prepare) {
        ld->err->message[0] = '\0';
        if (node->def->prepare(op, ld->err) != 0) {
            /* the caller is promised a reason (Conv given a map as X
             * refused it silently, and `inferd run` printed garbage) */
            if (!ld->err->message[0])
                set_error(ld->err, "%s node '%s' was refused without a reason", op->op_type,
                          op->name);
            return IFD_ERR_UNSUPPORTED;
        }
    } else if (op->n_inputs > 0 && op->inputs[0]) {
        for (int k = 0; k < op->n_outputs; k++) {
            const char *name = op->outputs[k]->name;
            *op->outputs[k] = *op->inputs[0];
            op->outputs[k]->name = name;
            op->outputs[k]->constant = NULL;
            op->outputs[k]->mapped_bytes = NULL;
        }
    }
    for (int k = 0; k < op->n_outputs; k++) {
        if (op->outputs[k]->kind == IFD_VALUE_TENSOR && op->outputs[k]->dtype == IFD_UNDEFINED) {
            set_error(ld->err, "%s node '%s': the type of output '%s' cannot be inferred",
                      op->op_type, op->name, op->outputs[k]->name);
            return IFD_ERR_INVALID_MODEL;
        }
    }
    return IFD_OK;
}

static ifd_status bind_outputs(loader *ld)
{
    ifd_model *m = ld->model;
    const Onnx__GraphProto *g = ld->graph;
    m->outputs = calloc(g->n_output ? g->n_output : 1, sizeof(*m->outputs));
    if (!m->outputs) {
        set_error(ld->err, "out of memory");
        return IFD_ERR_NO_MEMORY;
    }
    for (size_t i = 0; i < g->n_output; i++) {
        const char *name = g->output[i]->name ? g->output[i]->name : "";
        int slot = name[0] ? table_get(&ld->names, name) : -1;
        if (slot < 0) {
            set_error(ld->err, "graph output '%s' is not produced by any node, initializer or input",
                      name);
            return IFD_ERR_INVALID_MODEL;
        }
        m->values[slot].is_graph_output = true;
        m->outputs[i].slot = slot;
        m->outputs[i].info.name = m->values[slot].info.name;
    }
    m->n_outputs = g->n_output;
    return IFD_OK;
}

static void plan_lifetimes(ifd_model *m)
{
    /* run again after the optimiser removed nodes: forget their reads */
    for (size_t v = 0; v < m->n_values; v++)
        m->values[v].last_use = -1;
    for (size_t i = 0; i < m->n_nodes; i++) {
        const model_node *node = &m->nodes[i];
        for (int k = 0; k < node->op.n_inputs + node->op.n_implicit; k++)
            if (node->input_slots[k] >= 0)
                m->values[node->input_slots[k]].last_use = (int)i;
    }
    for (size_t i = 0; i < m->n_nodes; i++) {
        model_node *node = &m->nodes[i];
        for (int k = 0; k < node->op.n_outputs; k++) {
            const model_value *v = &m->values[node->output_slots[k]];
            node->op.output_used[k] = v->info.name[0] && (v->is_graph_output || v->last_use >= 0);
        }
    }
}

static void describe_outputs(loader *ld)
{
    ifd_model *m = ld->model;
    for (size_t i = 0; i < m->n_outputs; i++) {
        const Onnx__ValueInfoProto *vi = ld->graph->output[i];
        value_info declared = {0};
        const value_info *info = &m->values[m->outputs[i].slot].info;
        ifd_error ignored;
        loader quiet = *ld;
        quiet.err = &ignored;
        /* a declared type says more about symbolic dims than inference does */
        if (vi->type && parse_type(&quiet, vi->type, "", &declared) == IFD_OK &&
            (!m->runnable || declared.kind == info->kind))
            info = &declared;
        info_to_type(info, &m->outputs[i].info.type, m, vi->type);
    }
}

/* The graph rewrites, prepare() of every node with constant folding, then
 * dead-node elimination (optimize/optimize.h); each step only at the levels
 * that run it. */
static ifd_status prepare_and_optimize(loader *ld)
{
    ifd_model *m = ld->model;
    ifd_status st = optimize_before_prepare(m, ld->err);
    if (st != IFD_OK)
        return st;
    plan_lifetimes(m); /* prepare() may look at output_used */
    bool *removed = calloc(m->n_nodes + 1, sizeof(bool));
    if (!removed) {
        set_error(ld->err, "out of memory");
        return IFD_ERR_NO_MEMORY;
    }
    st = prepare_nodes(ld, removed);
    if (st == IFD_OK)
        st = optimize_after_prepare(m, removed, ld->err);
    free(removed);
    if (st == IFD_OK) {
        plan_lifetimes(m);
        plan_arena(m);
    }
    return st;
}

static ifd_status load_proto(loader *ld, const ifd_load_options *options)
{
    ifd_model *m = ld->model;
    const Onnx__ModelProto *mp = ld->proto;
    ifd_status st;

    if (!mp->graph) {
        set_error(ld->err, "the model has no graph");
        return IFD_ERR_INVALID_MODEL;
    }
    ld->graph = mp->graph;
    m->graph_opt = optimize_level(options ? options->graph_opt : IFD_GRAPH_OPT_DEFAULT);
    m->ir_version = mp->has_ir_version ? mp->ir_version : 0;
    if (m->ir_version < MIN_IR_VERSION || m->ir_version > MAX_IR_VERSION) {
        set_error(ld->err, "IR version %lld is not supported (supported: %d to %d)",
                  (long long)m->ir_version, MIN_IR_VERSION, MAX_IR_VERSION);
        return IFD_ERR_UNSUPPORTED;
    }
    m->producer_name = model_strdup(m, mp->producer_name);
    m->producer_version = model_strdup(m, mp->producer_version);
    m->graph_name = model_strdup(m, mp->graph->name);
    /* every node looks its domain up in this list: a model importing
     * thousands of opsets would make that quadratic */
    if (mp->n_opset_import > MAX_OPSET_IMPORTS) {
        set_error(ld->err, "the model imports %zu opsets; at most %d are supported",
                  mp->n_opset_import, MAX_OPSET_IMPORTS);
        return IFD_ERR_UNSUPPORTED;
    }
    m->opsets = model_alloc(m, (mp->n_opset_import + 1) * sizeof(ifd_opset));
    if (!m->producer_name || !m->producer_version || !m->graph_name || !m->opsets) {
        set_error(ld->err, "out of memory");
        return IFD_ERR_NO_MEMORY;
    }
    for (size_t i = 0; i < mp->n_opset_import; i++) {
        const char *d = mp->opset_import[i]->domain ? mp->opset_import[i]->domain : "";
        m->opsets[m->n_opsets].domain = model_strdup(m, strcmp(d, "ai.onnx") ? d : "");
        m->opsets[m->n_opsets].version = mp->opset_import[i]->version;
        m->n_opsets++;
    }
    /* A newer opset may have changed any operator: refuse the model whole,
     * unless it is only being described (inspect lists what it uses). */
    for (size_t i = 0; i < m->n_opsets && !(options && options->describe_only); i++) {
        int64_t max = onnx_max_opset(m->opsets[i].domain);
        if (max > 0 && (m->opsets[i].version > max || m->opsets[i].version < 1)) {
            set_error(ld->err, "%s opset %lld is not supported (supported: 1 to %lld)",
                      domain_label(m->opsets[i].domain), (long long)m->opsets[i].version,
                      (long long)max);
            return IFD_ERR_UNSUPPORTED;
        }
    }

    if ((st = load_graph_body(ld)) != IFD_OK)
        return st;
    if ((st = resolve_ops(ld, options)) != IFD_OK)
        return st;
    m->runnable = m->n_unsupported == 0;
    plan_lifetimes(m);
    if (m->runnable && (st = prepare_and_optimize(ld)) != IFD_OK)
        return st;
    describe_outputs(ld);
    return IFD_OK;
}

/* Values, nodes and outputs of ld->graph: the part of loading shared by the
 * main graph and subgraphs. */
static ifd_status load_graph_body(loader *ld)
{
    ifd_model *m = ld->model;
    ifd_status st;
    const Onnx__GraphProto *g = ld->graph;
    size_t n_outputs = 0;
    for (size_t i = 0; i < g->n_node; i++)
        n_outputs += g->node[i]->n_output;
    ld->cap_values = g->n_initializer + g->n_input + n_outputs;
    /* a subgraph may capture one outer value per node input, its own and
     * those of the graphs nested in it */
    if (ld->outer)
        ld->cap_values += count_node_inputs(g);
    m->values = calloc(ld->cap_values ? ld->cap_values : 1, sizeof(*m->values));
    ld->is_constant_node = calloc(g->n_node ? g->n_node : 1, sizeof(bool));
    if (!m->values || !ld->is_constant_node || !table_init(&ld->names, ld->cap_values)) {
        set_error(ld->err, "out of memory");
        return IFD_ERR_NO_MEMORY;
    }
    if ((st = check_names(ld)) != IFD_OK)
        return st;
    for (size_t i = 0; i < g->n_node; i++) {
        const char *d = g->node[i]->domain ? g->node[i]->domain : "";
        ld->is_constant_node[i] = strcmp(g->node[i]->op_type, "Constant") == 0 &&
                                  (d[0] == '\0' || strcmp(d, "ai.onnx") == 0);
    }
    if ((st = count_ops(ld)) != IFD_OK)
        return st;
    if ((st = define_values(ld)) != IFD_OK)
        return st;
    if ((st = build_nodes(ld)) != IFD_OK)
        return st;
    return bind_outputs(ld);
}

/* ---- subgraph preparation ------------------------------------------------- */

/* An outer-scope constant that a subgraph reads is a constant there too,
 * viewing the enclosing graph's bytes, so folding and weight packing see
 * through the branch: Silero VAD slices and concatenates its LSTM weights
 * inside an If, and every run re-sliced and repacked them. Both values are
 * marked viewed, so neither graph frees bytes the other still reads. The run
 * still binds the capture like an input: the same bytes. */
static bool capture_constant(model_value *v, const value_info *outer)
{
    if (outer->kind != IFD_VALUE_TENSOR || !outer->constant || !outer->constant->data)
        return false;
    model_value *owner = (model_value *)((char *)outer - offsetof(model_value, info));
    if (owner->origin != VALUE_CONSTANT || outer->constant != &owner->constant_storage)
        return false;
    ifd_tensor view = tensor_view(&owner->constant_storage);
    view.capacity = 0;
    const char *name = v->info.name;
    v->origin = VALUE_CONSTANT;
    v->producer = -1;
    value_set_constant(v, &view);
    v->info.name = name;
    v->viewed = true;
    owner->viewed = true;
    return true;
}

ifd_status subgraph_prepare(subgraph *sg, const value_info *const *inputs, int n_inputs,
                            ifd_error *err)
{
    ifd_model *m = sg->model;
    if (sg->prepared) {
        set_error(err, "subgraph '%s' is prepared twice", sg->attr_name);
        return IFD_ERR_INVALID_MODEL;
    }
    if (n_inputs != sg->n_formal) {
        set_error(err, "%s declares %d inputs; the operator gives it %d", sg->attr_name,
                  sg->n_formal, n_inputs);
        return IFD_ERR_INVALID_MODEL;
    }
    for (int i = 0; i < sg->n_formal + sg->n_captures; i++) {
        model_io *io = &m->inputs[i];
        value_info *info = &m->values[io->slot].info;
        const value_info *given = i < sg->n_formal ? inputs[i] : sg->capture_outer[i - sg->n_formal];
        if (given) {
            const char *name = info->name;
            bool declared = info->dtype != IFD_UNDEFINED;
            if (declared && i < sg->n_formal &&
                (info->kind != given->kind || info->dtype != given->dtype)) {
                set_error(err, "%s input '%s' is declared %s %s but is given %s %s",
                          sg->attr_name, name,
                          info->kind == IFD_VALUE_TENSOR ? "tensor" : "non-tensor",
                          ifd_dtype_name(info->dtype),
                          given->kind == IFD_VALUE_TENSOR ? "tensor" : "non-tensor",
                          ifd_dtype_name(given->dtype));
                return IFD_ERR_INVALID_MODEL;
            }
            int rank = info->rank;
            int64_t dims[IFD_MAX_RANK];
            memcpy(dims, info->dims, sizeof(dims));
            *info = *given;
            info->name = name;
            /* a declared shape says more than the operator's (often unknown) one */
            if (declared && rank >= 0 && i < sg->n_formal) {
                info->rank = rank;
                memcpy(info->dims, dims, sizeof(dims));
            }
            if (i >= sg->n_formal && !capture_constant(&m->values[io->slot], given))
                info->constant = NULL; /* bound at run time like any input */
        }
        if (info->kind == IFD_VALUE_TENSOR && info->dtype == IFD_UNDEFINED) {
            set_error(err, "%s input '%s' has no type", sg->attr_name, info->name);
            return IFD_ERR_INVALID_MODEL;
        }
        info_to_type(info, &io->info.type, m, NULL);
        /* the operator passes shapes that may change from run to run */
        io->info.type.rank = -1;
    }
    loader ld = {.model = m, .graph = sg->graph_proto, .err = err,
                 .in_subgraph = true};
    m->runnable = true;
    ifd_status st = prepare_and_optimize(&ld);
    if (st != IFD_OK) {
        char inner[sizeof(err->message)];
        snprintf(inner, sizeof(inner), "%s", err->message);
        set_error(err, "%s: %s", sg->attr_name, inner);
        m->runnable = false;
        return st;
    }
    describe_outputs(&ld);
    sg->graph_proto = NULL; /* freed with the ModelProto after load */
    sg->prepared = true;
    return IFD_OK;
}

int op_subgraph_prepare(op_node *node, int k, const value_info *const *inputs, int n_inputs,
                        ifd_error *err)
{
    if (k < 0 || k >= node->n_subgraphs)
        return op_prepare_fail(node, err, "has no subgraph %d", k);
    ifd_error inner;
    if (subgraph_prepare(node->subgraphs[k], inputs, n_inputs, &inner) != IFD_OK)
        return op_prepare_fail(node, err, "%s", inner.message);
    return 0;
}

const char *op_subgraph_name(const op_node *node, int k)
{
    return k >= 0 && k < node->n_subgraphs ? node->subgraphs[k]->attr_name : "";
}

int op_subgraph_input_count(const op_node *node, int k)
{
    return k >= 0 && k < node->n_subgraphs ? node->subgraphs[k]->n_formal : 0;
}

int op_subgraph_output_count(const op_node *node, int k)
{
    return k >= 0 && k < node->n_subgraphs ? (int)node->subgraphs[k]->model->n_outputs : 0;
}

const value_info *op_subgraph_output(const op_node *node, int k, int i)
{
    if (k < 0 || k >= node->n_subgraphs)
        return NULL;
    const ifd_model *m = node->subgraphs[k]->model;
    return i >= 0 && (size_t)i < m->n_outputs ? &m->values[m->outputs[i].slot].info : NULL;
}

/* ---- public -------------------------------------------------------------- */

void ifd_model_free(ifd_model *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n_nodes; i++) {
        model_node *node = &m->nodes[i];
        if (node->op.state && node->def && node->def->free_state)
            node->def->free_state(node->op.state);
    }
    for (size_t i = 0; i < m->n_subgraph_models; i++)
        ifd_model_free(m->subgraph_models[i]);
    free(m->subgraph_models);
    /* attribute tensors live in model blocks but own their data */
    for (size_t i = 0; i < m->n_attr_tensors; i++)
        tensor_release(m->attr_tensors[i]);
    free(m->attr_tensors);
    for (size_t i = 0; i < m->n_values; i++)
        if (m->values[i].origin == VALUE_CONSTANT)
            tensor_release(&m->values[i].constant_storage);
    free(m->arena_offset);
    free(m->arena_size);
    free(m->view_of);
    free(m->buffer_last_use);
    free(m->values);
    free(m->nodes);
    free(m->inputs);
    free(m->outputs);
    free(m->op_counts);
    free(m->unsupported);
    for (size_t i = 0; i < m->n_blocks; i++)
        free(m->blocks[i]);
    free(m->blocks);
    free(m->path);
    if (m->owns_map)
        munmap((void *)m->map_base, m->map_len);
    free(m);
}

bool model_maps(const ifd_model *m, const void *data)
{
    return m->map_base && data && (const uint8_t *)data >= m->map_base &&
           (const uint8_t *)data < m->map_base + m->map_len;
}

bool model_release_constant_data(ifd_model *m, ifd_tensor *t)
{
    if (!t->data || (!t->owns_data && !model_maps(m, t->data)))
        return false;
    size_t bytes = (size_t)ifd_tensor_count(t) * ifd_dtype_size(t->dtype);
    if (t->owns_data)
        free(t->data);
    else
        pb_release_pages(t->data, bytes);
    t->data = NULL;
    t->capacity = 0;
    t->owns_data = 0;
    return true;
}

/* Whether a constant or attribute tensor of m or of its subgraphs still
 * reads the mapped file. */
static bool reads_mapping(const ifd_model *m, const uint8_t *base, size_t len)
{
    const ifd_model probe = {.map_base = base, .map_len = len};
    for (size_t i = 0; i < m->n_values; i++)
        if (m->values[i].origin == VALUE_CONSTANT &&
            model_maps(&probe, m->values[i].constant_storage.data))
            return true;
    for (size_t i = 0; i < m->n_attr_tensors; i++)
        if (model_maps(&probe, m->attr_tensors[i]->data))
            return true;
    for (size_t i = 0; i < m->n_subgraph_models; i++)
        if (reads_mapping(m->subgraph_models[i], base, len))
            return true;
    return false;
}

static void forget_mapping(ifd_model *m)
{
    m->map_base = NULL;
    m->map_len = 0;
    m->owns_map = false;
    for (size_t i = 0; i < m->n_subgraph_models; i++)
        forget_mapping(m->subgraph_models[i]);
}

/* After load: a mapping no weight reads any more (every one was copied or
 * packed) is unmapped; otherwise its pages go back to the page cache, to be
 * faulted in again (shared with every process mapping the file) as runs
 * read the weights that point into it. */
static void settle_mapping(ifd_model *m)
{
    if (!m->owns_map)
        return;
    if (reads_mapping(m, m->map_base, m->map_len)) {
        pb_release_pages(m->map_base, m->map_len);
        return;
    }
    munmap((void *)m->map_base, m->map_len);
    forget_mapping(m);
}

/* Load from src->bytes, which must stay valid until it returns. When they
 * are a mapping (src->mapped), the model takes it over, also on failure. */
static ifd_status load_bytes(const pb_source *src, const ifd_load_options *options,
                             ifd_model **out, ifd_error *err)
{
    *out = NULL;
    ifd_error local;
    if (!err)
        err = &local;
    ifd_model *m = calloc(1, sizeof(*m));
    if (!m) {
        if (src->mapped)
            munmap((void *)src->bytes, src->len);
        set_error(err, "out of memory");
        return IFD_ERR_NO_MEMORY;
    }
    if (src->mapped) {
        m->map_base = src->bytes;
        m->map_len = src->len;
        m->owns_map = true;
    }
    Onnx__ModelProto *mp = pb_unpack_model(src->bytes, src->len, err);
    if (!mp) {
        ifd_model_free(m);
        return IFD_ERR_INVALID_MODEL;
    }
    /* the walk and protobuf-c read every page but the weights' */
    if (src->mapped)
        pb_release_pages(src->bytes, src->len);
    loader ld = {.model = m, .proto = mp, .src = src, .err = err};
    ifd_status st = load_proto(&ld, options);
    table_free(&ld.names);
    free(ld.is_constant_node);
    free(ld.op_slots);
    free(ld.op_reported);
    protobuf_c_message_free_unpacked(&mp->base, NULL);
    if (st == IFD_OK)
        st = materialize_all(m, err);
    if (st == IFD_OK)
        settle_mapping(m);
#ifdef __GLIBC__
    /* Loading frees what it only needed while it ran (the message, the
     * weights operators packed); glibc keeps freed heap memory mapped, so
     * without this a loaded model's RSS would count them all. */
    malloc_trim(0);
#endif
    if (st != IFD_OK) {
        ifd_model_free(m);
        return st;
    }
    *out = m;
    return IFD_OK;
}

ifd_status ifd_model_load_memory(const void *buf, size_t len, const char *base_dir,
                                 const ifd_load_options *options, ifd_model **out, ifd_error *err)
{
    pb_source src = {.base_dir = base_dir, .bytes = buf, .len = len};
    return load_bytes(&src, options, out, err);
}

/* The file's bytes into a malloc'd buffer: for files that cannot be mapped. */
static char *read_whole(int fd, size_t size, const char *path, ifd_status *status,
                        ifd_error *err)
{
    char *buf = malloc(size ? size : 1);
    if (!buf) {
        set_error(err, "%s: out of memory for %zu bytes", path, size);
        *status = IFD_ERR_NO_MEMORY;
        return NULL;
    }
    size_t done = 0;
    while (done < size) {
        ssize_t n = pread(fd, buf + done, size - done, (off_t)done);
        if (n <= 0) {
            set_error(err, "%s: read failed: %s", path, n < 0 ? strerror(errno) : "file shrank");
            free(buf);
            *status = IFD_ERR_IO;
            return NULL;
        }
        done += (size_t)n;
    }
    return buf;
}

/* Load src (taking over a mapping, as load_bytes does) with external data
 * resolved beside `path`, which also prefixes any error and is kept as the
 * model's path. */
static ifd_status load_named(const pb_source *src, const char *path,
                             const ifd_load_options *options, ifd_model **out, ifd_error *err)
{
    const char *name = path ? path : "model";
    char *dir = path ? strdup(path) : NULL;
    if (path && !dir) {
        if (src->mapped)
            munmap((void *)src->bytes, src->len);
        set_error(err, "out of memory");
        return IFD_ERR_NO_MEMORY;
    }
    char *slash = dir ? strrchr(dir, '/') : NULL;
    if (slash)
        slash == dir ? (void)(slash[1] = '\0') : (void)(*slash = '\0');
    else if (dir)
        strcpy(dir, ".");
    pb_source named = *src;
    named.base_dir = dir;
    ifd_error inner;
    ifd_status status = load_bytes(&named, options, out, &inner);
    free(dir);
    if (status != IFD_OK) {
        set_error(err, "%s: %s", name, inner.message);
        return status;
    }
    (*out)->path = path ? strdup(path) : NULL;
    return IFD_OK;
}

/* The file is mapped, not read: weights aligned for their type are used in
 * place, so that every process (and every version) loading the same file
 * shares those pages through the page cache, and the others are copied
 * straight from the file into the model, one at a time. The mapping is
 * read-only and private: nothing is ever written through it.
 *
 * A mapped file must not change under the model. Replacing it by rename
 * (what the model store and `inferd pull` do) is safe: the mapping keeps
 * the old inode alive until the model is freed. Truncating or rewriting the
 * file in place while a model maps it is not: a read of a page past the
 * new end raises SIGBUS, and rewritten bytes show through. */
ifd_status ifd_model_load_file(const char *path, const ifd_load_options *options, ifd_model **out,
                               ifd_error *err)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        set_error(err, "%s: %s", path, strerror(errno));
        return IFD_ERR_IO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        set_error(err, "%s: not a regular file", path);
        close(fd);
        return IFD_ERR_IO;
    }
    if ((uint64_t)st.st_size > MAX_MODEL_BYTES) {
        set_error(err, "%s: %lld bytes is larger than the 2 GiB a protobuf model can hold", path,
                  (long long)st.st_size);
        close(fd);
        return IFD_ERR_INVALID_MODEL;
    }
    size_t size = (size_t)st.st_size;
    void *map = size ? mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0) : MAP_FAILED;
    if (map != MAP_FAILED) {
        close(fd); /* a mapping outlives its descriptor */
        return ifd_model_load_mapped(map, size, path, options, out, err);
    }
    ifd_status status = IFD_OK;
    char *copy = read_whole(fd, size, path, &status, err); /* empty, or mmap refuses */
    close(fd);
    if (!copy)
        return status;
    pb_source src = {.bytes = (const uint8_t *)copy, .len = size};
    status = load_named(&src, path, options, out, err);
    free(copy);
    return status;
}

ifd_status ifd_model_load_mapped(void *map, size_t len, const char *path,
                                 const ifd_load_options *options, ifd_model **out, ifd_error *err)
{
    *out = NULL;
    if (!map || len == 0 || len > MAX_MODEL_BYTES) {
        set_error(err, "%s: %zu bytes cannot be a mapped model (1 byte to 2 GiB)",
                  path ? path : "model", len);
        if (map && len)
            munmap(map, len);
        return IFD_ERR_INVALID_MODEL;
    }
    pb_source src = {.bytes = map, .len = len, .mapped = true};
    return load_named(&src, path, options, out, err);
}

size_t ifd_model_input_count(const ifd_model *m) { return m->n_inputs; }
const ifd_io_info *ifd_model_input(const ifd_model *m, size_t i)
{
    return i < m->n_inputs ? &m->inputs[i].info : NULL;
}
size_t ifd_model_output_count(const ifd_model *m) { return m->n_outputs; }
const ifd_io_info *ifd_model_output(const ifd_model *m, size_t i)
{
    return i < m->n_outputs ? &m->outputs[i].info : NULL;
}
int64_t ifd_model_ir_version(const ifd_model *m) { return m->ir_version; }
const char *ifd_model_producer_name(const ifd_model *m) { return m->producer_name; }
const char *ifd_model_producer_version(const ifd_model *m) { return m->producer_version; }
const char *ifd_model_graph_name(const ifd_model *m) { return m->graph_name; }
size_t ifd_model_opset_count(const ifd_model *m) { return m->n_opsets; }
ifd_opset ifd_model_opset(const ifd_model *m, size_t i) { return m->opsets[i]; }
size_t ifd_model_node_count(const ifd_model *m)
{
    size_t n = 0;
    for (size_t i = 0; i < m->n_op_counts; i++)
        n += m->op_counts[i].count;
    return n;
}
size_t ifd_model_op_count(const ifd_model *m) { return m->n_op_counts; }
ifd_op_count ifd_model_op(const ifd_model *m, size_t i) { return m->op_counts[i]; }
size_t ifd_model_unsupported_count(const ifd_model *m) { return m->n_unsupported; }
ifd_unsupported_op ifd_model_unsupported(const ifd_model *m, size_t i) { return m->unsupported[i]; }
