/*
 * ops/ml/tree_ensemble.c — TreeEnsemble (ai.onnx.ml 5, onnx 1.16
 * Operators-ml.md): the single tree operator that replaces
 * TreeEnsembleRegressor/Classifier (tree.c) from ml opset 5, with a flat
 * node layout and typed tensor attributes.
 *
 * Node i tests X[nodes_featureids[i]] against nodes_splits[i] by
 * nodes_modes[i] (0 <=, 1 <, 2 >=, 3 >, 4 ==, 5 !=, 6 member of the i-th set
 * of membership_values, sets separated by NaN); a true test goes to
 * nodes_truenodeids[i] and a false one to nodes_falsenodeids[i], each either
 * a node or — when nodes_trueleafs / nodes_falseleafs says so — a leaf,
 * which adds leaf_weights[leaf] to target leaf_targetids[leaf]. A missing
 * feature (NaN) takes the true branch where
 * nodes_missing_value_tracks_true[i] is set. Each tree starts at
 * tree_roots[t]; the trees' values per target are combined by
 * aggregate_function (0 average, 1 sum — the default, 2 min, 3 max) and then
 * post_transform numbered as ONNX Runtime reads it (0 none, 1 logistic,
 * 2 softmax, 3 softmax_zero, 4 probit: the order of the older operators'
 * names, ml.h) and applied as the other ml operators do. Membership tests
 * compare the feature exactly, as the spec says (ONNX Runtime truncates it
 * to an integer first; the two agree on the integer categories such sets
 * hold). Evaluated in double, stored in X's
 * type (float, double or float16). Everything is checked at load: indices
 * in range, every walk bounded (a node revisited in one walk is a cycle and
 * refused).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../op_util.h"
#include "ml.h"

typedef struct ensemble5 {
    size_t n_nodes, n_leaves, n_trees;
    int64_t n_targets, n_features_min;
    int64_t *feature, *true_id, *false_id, *roots, *leaf_target;
    uint8_t *mode, *true_leaf, *false_leaf, *missing_true;
    double *split, *leaf_weight;
    size_t *set_start, *set_len; /* membership sets per node (mode 6) */
    double *sets;
    int aggregate;
    int transform;
} ensemble5;

static void ensemble5_free(void *p)
{
    ensemble5 *e = p;
    if (!e)
        return;
    free(e->feature), free(e->true_id), free(e->false_id), free(e->roots), free(e->leaf_target);
    free(e->mode), free(e->true_leaf), free(e->false_leaf), free(e->missing_true);
    free(e->split), free(e->leaf_weight), free(e->set_start), free(e->set_len), free(e->sets);
    free(e);
}

/* A list attribute as a new array of n int64s (NULL and 0 when absent). */
static int64_t *copy_ints(const op_node *node, const char *name, size_t *n)
{
    const int64_t *v;
    *n = op_attr_ints(node, name, &v);
    int64_t *out = malloc((*n ? *n : 1) * sizeof(int64_t));
    if (out && *n)
        memcpy(out, v, *n * sizeof(int64_t));
    return out;
}

/* A tensor attribute's values as doubles (float, double or float16; uint8
 * for modes). */
static double *copy_tensor(const op_node *node, const char *name, size_t *n)
{
    const ifd_tensor *t = op_attr_tensor(node, name);
    *n = t ? (size_t)ifd_tensor_count(t) : 0;
    double *out = malloc((*n ? *n : 1) * sizeof(double));
    for (size_t i = 0; out && i < *n; i++)
        out[i] = tensor_get_double(t, i);
    return out;
}

static int ensemble5_prepare(op_node *node, ifd_error *err)
{
    if (check_input_tensor(node, 0, err) != 0)
        return -1;
    const value_info *x = node->inputs[0];
    if (x->dtype != IFD_FLOAT && x->dtype != IFD_DOUBLE && x->dtype != IFD_FLOAT16)
        return op_prepare_fail(node, err, "X has dtype %s; float, double or float16 expected",
                               ifd_dtype_name(x->dtype));
    ensemble5 *e = calloc(1, sizeof(*e));
    if (!e)
        return op_prepare_fail(node, err, "out of memory");
    node->state = e;
    size_t n_feat, n_true, n_false, n_tl, n_fl, n_splits, n_modes, n_miss, n_targets_ids, n_w;
    e->feature = copy_ints(node, "nodes_featureids", &n_feat);
    e->true_id = copy_ints(node, "nodes_truenodeids", &n_true);
    e->false_id = copy_ints(node, "nodes_falsenodeids", &n_false);
    e->roots = copy_ints(node, "tree_roots", &e->n_trees);
    e->leaf_target = copy_ints(node, "leaf_targetids", &n_targets_ids);
    int64_t *tl = copy_ints(node, "nodes_trueleafs", &n_tl);
    int64_t *fl = copy_ints(node, "nodes_falseleafs", &n_fl);
    int64_t *miss = copy_ints(node, "nodes_missing_value_tracks_true", &n_miss);
    e->split = copy_tensor(node, "nodes_splits", &n_splits);
    double *modes = copy_tensor(node, "nodes_modes", &n_modes);
    e->leaf_weight = copy_tensor(node, "leaf_weights", &n_w);
    size_t n_members;
    double *members = copy_tensor(node, "membership_values", &n_members);
    e->n_nodes = n_feat;
    e->n_leaves = n_w;
    e->mode = calloc(n_feat + 1, 1), e->true_leaf = calloc(n_feat + 1, 1);
    e->false_leaf = calloc(n_feat + 1, 1), e->missing_true = calloc(n_feat + 1, 1);
    e->set_start = calloc(n_feat + 1, sizeof(size_t)), e->set_len = calloc(n_feat + 1, sizeof(size_t));
    e->sets = members;
    int rc = 0;
    if (!e->feature || !e->true_id || !e->false_id || !e->roots || !e->leaf_target || !tl || !fl ||
        !miss || !e->split || !modes || !e->leaf_weight || !members || !e->mode ||
        !e->true_leaf || !e->false_leaf || !e->missing_true || !e->set_start || !e->set_len) {
        rc = op_prepare_fail(node, err, "out of memory");
        goto done;
    }
    if (n_feat == 0 || n_true != n_feat || n_false != n_feat || n_tl != n_feat ||
        n_fl != n_feat || n_splits != n_feat || n_modes != n_feat ||
        (n_miss && n_miss != n_feat)) {
        rc = op_prepare_fail(node, err, "the nodes_* attributes must all have one entry per node "
                             "(%zu featureids)", n_feat);
        goto done;
    }
    if (n_targets_ids != n_w || n_w == 0) {
        rc = op_prepare_fail(node, err, "leaf_targetids (%zu) and leaf_weights (%zu) must pair up",
                             n_targets_ids, n_w);
        goto done;
    }
    if (e->n_trees == 0) {
        rc = op_prepare_fail(node, err, "tree_roots is empty");
        goto done;
    }
    e->n_targets = op_attr_int(node, "n_targets", 0);
    if (e->n_targets < 1 || e->n_targets > (1 << 24)) {
        rc = op_prepare_fail(node, err, "n_targets %lld must be positive", (long long)e->n_targets);
        goto done;
    }
    e->aggregate = (int)op_attr_int(node, "aggregate_function", 1);
    e->transform = (int)op_attr_int(node, "post_transform", 0);
    if (e->aggregate < 0 || e->aggregate > 3 || e->transform < 0 || e->transform > 4) {
        rc = op_prepare_fail(node, err, "aggregate_function %d or post_transform %d is unknown",
                             e->aggregate, e->transform);
        goto done;
    }
    size_t set_at = 0;
    for (size_t i = 0; i < n_feat; i++) {
        double m = modes[i];
        if (!(m >= 0 && m <= 6) || m != floor(m)) {
            rc = op_prepare_fail(node, err, "nodes_modes[%zu] = %g is not a mode (0 to 6)", i, m);
            goto done;
        }
        e->mode[i] = (uint8_t)m;
        e->true_leaf[i] = tl[i] != 0, e->false_leaf[i] = fl[i] != 0;
        e->missing_true[i] = n_miss ? miss[i] != 0 : 0;
        if (e->feature[i] < 0) {
            rc = op_prepare_fail(node, err, "nodes_featureids[%zu] is negative", i);
            goto done;
        }
        if (e->feature[i] + 1 > e->n_features_min)
            e->n_features_min = e->feature[i] + 1;
        int64_t ids[2] = {e->true_id[i], e->false_id[i]};
        bool leafs[2] = {e->true_leaf[i], e->false_leaf[i]};
        for (int k = 0; k < 2; k++)
            if (ids[k] < 0 || (size_t)ids[k] >= (leafs[k] ? n_w : n_feat)) {
                rc = op_prepare_fail(node, err, "node %zu's %s id %lld is out of range", i,
                                     k ? "false" : "true", (long long)ids[k]);
                goto done;
            }
        if (e->mode[i] == 6) {
            /* the next NaN-terminated run of membership_values */
            e->set_start[i] = set_at;
            while (set_at < n_members && !isnan(members[set_at]))
                set_at++;
            e->set_len[i] = set_at - e->set_start[i];
            if (set_at < n_members)
                set_at++;
        }
    }
    for (size_t w = 0; w < n_w; w++)
        if (e->leaf_target[w] < 0 || e->leaf_target[w] >= e->n_targets) {
            rc = op_prepare_fail(node, err, "leaf_targetids[%zu] = %lld is outside [0, %lld)", w,
                                 (long long)e->leaf_target[w], (long long)e->n_targets);
            goto done;
        }
    for (size_t t = 0; t < e->n_trees; t++) {
        if (e->roots[t] < 0 || (size_t)e->roots[t] >= n_feat) {
            rc = op_prepare_fail(node, err, "tree_roots[%zu] = %lld is not a node", t,
                                 (long long)e->roots[t]);
            goto done;
        }
        /* every path from the root ends in a leaf within n_nodes steps */
        uint8_t *seen = calloc(n_feat, 1);
        int64_t *stack = malloc((2 * n_feat + 2) * sizeof(int64_t));
        if (!seen || !stack) {
            free(seen), free(stack);
            rc = op_prepare_fail(node, err, "out of memory");
            goto done;
        }
        size_t sp = 0;
        stack[sp++] = e->roots[t];
        while (sp && !rc) {
            int64_t i = stack[--sp];
            if (seen[i]) {
                rc = op_prepare_fail(node, err, "tree %zu reaches node %lld twice (a cycle or a "
                                     "shared node)", t, (long long)i);
                break;
            }
            seen[i] = 1;
            if (!e->true_leaf[i])
                stack[sp++] = e->true_id[i];
            if (!e->false_leaf[i])
                stack[sp++] = e->false_id[i];
        }
        free(seen), free(stack);
        if (rc)
            goto done;
    }
    int64_t dims[2] = {x->rank == 2 ? x->dims[0] : -1, e->n_targets};
    set_output(node, 0, x->dtype, 2, dims);
done:
    free(tl), free(fl), free(miss), free(modes);
    return rc;
}

static bool node_test(const ensemble5 *e, size_t i, double v)
{
    if (isnan(v))
        return e->missing_true[i];
    double s = e->split[i];
    switch (e->mode[i]) {
    case 0: return v <= s;
    case 1: return v < s;
    case 2: return v >= s;
    case 3: return v > s;
    case 4: return v == s;
    case 5: return v != s;
    default:
        for (size_t k = 0; k < e->set_len[i]; k++)
            if (e->sets[e->set_start[i] + k] == v)
                return true;
        return false;
    }
}

static int ensemble5_run(op_ctx *ctx)
{
    const ensemble5 *e = ctx->node->state;
    const ifd_tensor *x = op_input(ctx, 0);
    if (x->rank != 2 && x->rank != 1)
        return op_fail(ctx, "X has rank %d; [N, features] expected", x->rank);
    int64_t rows = x->rank == 2 ? x->dims[0] : 1, width = x->dims[x->rank - 1];
    if (width < e->n_features_min)
        return op_fail(ctx, "X has %lld features; the trees read feature %lld",
                       (long long)width, (long long)(e->n_features_min - 1));
    int64_t dims[2] = {rows, e->n_targets};
    ifd_tensor *y = op_output(ctx, 0, x->dtype, 2, dims);
    if (!y)
        return -1;
    double *acc = op_scratch(ctx, (size_t)e->n_targets * sizeof(double));
    uint8_t *hit = op_scratch(ctx, (size_t)e->n_targets);
    float *out = op_scratch(ctx, (size_t)e->n_targets * sizeof(float));
    if (!acc || !hit || !out)
        return -1;
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t k = 0; k < e->n_targets; k++)
            acc[k] = 0, hit[k] = 0;
        for (size_t t = 0; t < e->n_trees; t++) {
            size_t i = (size_t)e->roots[t];
            for (;;) {
                double v = tensor_get_double(x, (size_t)(r * width + e->feature[i]));
                bool go = node_test(e, i, v);
                int64_t next = go ? e->true_id[i] : e->false_id[i];
                if (go ? e->true_leaf[i] : e->false_leaf[i]) {
                    int64_t k = e->leaf_target[next];
                    double w = e->leaf_weight[next];
                    if (!hit[k])
                        acc[k] = w;
                    else if (e->aggregate == 2)
                        acc[k] = w < acc[k] ? w : acc[k];
                    else if (e->aggregate == 3)
                        acc[k] = w > acc[k] ? w : acc[k];
                    else
                        acc[k] += w;
                    hit[k] = 1;
                    break;
                }
                i = (size_t)next;
            }
        }
        for (int64_t k = 0; k < e->n_targets; k++)
            out[k] = (float)(e->aggregate == 0 ? acc[k] / (double)e->n_trees : acc[k]);
        switch (e->transform) {
        case 2: ml_softmax(out, (size_t)e->n_targets); break;
        case 1:
            for (int64_t k = 0; k < e->n_targets; k++)
                out[k] = ml_logistic(out[k]);
            break;
        case 3: ml_softmax_zero(out, (size_t)e->n_targets); break;
        case 4:
            for (int64_t k = 0; k < e->n_targets; k++)
                out[k] = ml_probit(out[k]);
            break;
        default: break;
        }
        for (int64_t k = 0; k < e->n_targets; k++)
            tensor_set_double(y, (size_t)(r * e->n_targets + k),
                              e->transform ? (double)out[k]
                                           : (e->aggregate == 0 ? acc[k] / (double)e->n_trees
                                                                : acc[k]));
    }
    return 0;
}

static const op_def defs[] = {
    {"ai.onnx.ml", "TreeEnsemble", 5, 5, ensemble5_prepare, ensemble5_run, ensemble5_free},
};

OP_FAMILY(ops_ml_tree_ensemble, defs);
