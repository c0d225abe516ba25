/*
 * ops/ml/zipmap.c — ai.onnx.ml ZipMap (version 1): turns a classifier's
 * probability tensor [N, C] into what scikit-learn's predict_proba looks like
 * to a Python caller, a sequence of N maps class label -> probability. The
 * keys come from classlabels_int64s or classlabels_strings (one per column).
 *
 * The output is a sequence value the core frees recursively; each map holds a
 * 1-D key tensor and a 1-D float value tensor (see make_map for who owns
 * their memory).
 */
#include "ml.h"

static void zipmap_free(void *p) { free(p); }

static int zipmap_prepare(op_node *node, ifd_error *err)
{
    ml_labels labels;
    if (ml_read_labels(node, err, "classlabels_int64s", &labels) != 0)
        return -1;
    if (labels.count == 0)
        return op_prepare_fail(node, err, "classlabels_int64s or classlabels_strings is required");
    const value_info *x = node->n_inputs > 0 ? node->inputs[0] : NULL;
    if (!x || x->kind != IFD_VALUE_TENSOR || (x->dtype != IFD_UNDEFINED && x->dtype != IFD_FLOAT))
        return op_prepare_fail(node, err, "input X must be a float tensor");
    int64_t columns = x->rank == 1 ? x->dims[0] : x->rank == 2 ? x->dims[1] : -1;
    if (x->rank > 2 || x->rank == 0 || (columns >= 0 && (size_t)columns != labels.count))
        return op_prepare_fail(node, err, "input must be [N, %zu] (one column per label)",
                               labels.count);
    ml_labels *state = malloc(sizeof(*state));
    if (!state)
        return op_prepare_fail(node, err, "out of memory");
    *state = labels;
    node->state = state;
    value_info *z = node->outputs[0];
    z->kind = IFD_VALUE_SEQUENCE;
    z->elem_kind = IFD_VALUE_MAP;
    z->key_dtype = labels.strings ? IFD_STRING : IFD_INT64;
    z->dtype = IFD_FLOAT;
    z->rank = -1;
    return 0;
}

/* One map: the labels as keys, one row of probabilities as values. With
 * integer labels the map, its keys and its values are one allocation (the
 * tensors borrow from it, so freeing the map frees all three): a request
 * to a small classifier makes one map, and three allocations of it were a
 * measurable part of the whole run. String keys own their strings and so
 * get tensors of their own. */
static ifd_value *make_map(const ml_labels *labels, const float *row, ifd_error *err)
{
    int64_t dims[1] = {(int64_t)labels->count};
    if (!labels->strings) {
        size_t keys = labels->count * sizeof(int64_t), values = labels->count * sizeof(float);
        ifd_value *map = malloc(sizeof(*map) + keys + values);
        if (!map)
            return NULL;
        memset(map, 0, sizeof(*map));
        map->kind = IFD_VALUE_MAP;
        char *block = (char *)(map + 1);
        memcpy(block, labels->ints, keys);
        memcpy(block + keys, row, values);
        map->map_keys.data = block;
        map->map_keys.dtype = IFD_INT64;
        map->map_keys.capacity = keys;
        tensor_set_shape(&map->map_keys, 1, dims);
        map->map_values.data = block + keys;
        map->map_values.dtype = IFD_FLOAT;
        map->map_values.capacity = values;
        tensor_set_shape(&map->map_values, 1, dims);
        return map;
    }
    ifd_value *map = calloc(1, sizeof(*map));
    if (!map)
        return NULL;
    map->kind = IFD_VALUE_MAP;
    if (tensor_alloc(&map->map_keys, IFD_STRING, 1, dims, "ZipMap keys", err) != IFD_OK ||
        tensor_alloc(&map->map_values, IFD_FLOAT, 1, dims, "ZipMap values", err) != IFD_OK ||
        !strings_copy(map->map_keys.data, labels->strs, labels->count))
        goto fail;
    memcpy(map->map_values.data, row, labels->count * sizeof(float));
    return map;
fail:
    ifd_value_free(map);
    return NULL;
}

static int zipmap_run(op_ctx *ctx)
{
    const ml_labels *labels = ctx->node->state;
    const ifd_tensor *x = op_input(ctx, 0);
    if (!x || x->dtype != IFD_FLOAT || x->rank < 1 || x->rank > 2)
        return op_fail(ctx, "input X must be a float [N, C] or [C] tensor");
    int64_t rows = x->rank == 1 ? 1 : x->dims[0];
    int64_t columns = x->dims[x->rank - 1];
    if ((size_t)columns != labels->count)
        return op_fail(ctx, "input has %lld columns but there are %zu class labels",
                       (long long)columns, labels->count);
    ifd_value *z = op_output_value(ctx, 0);
    if (!z)
        return -1;
    z->kind = IFD_VALUE_SEQUENCE;
    z->length = 0;
    if (rows == 0)
        return 0;
    /* malloc, not calloc (glibc's calloc bypasses the per-thread cache):
     * every entry is set below */
    z->items = malloc((size_t)rows * sizeof(*z->items));
    if (!z->items)
        return op_fail(ctx, "out of memory for %lld maps", (long long)rows);
    const float *data = x->data;
    for (int64_t r = 0; r < rows; r++) {
        ifd_error err = {{0}};
        ifd_value *map = make_map(labels, data + r * columns, &err);
        if (!map)
            return op_fail(ctx, "%s", err.message[0] ? err.message : "out of memory");
        z->items[z->length++] = map;
    }
    return 0;
}

static const op_def defs[] = {
    {"ai.onnx.ml", "ZipMap", 1, 1, zipmap_prepare, zipmap_run, zipmap_free},
};
OP_FAMILY(ops_ml_zipmap, defs);
