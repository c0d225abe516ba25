/*
 * ops/ml/tree.c — ai.onnx.ml TreeEnsembleClassifier and TreeEnsembleRegressor,
 * versions 1 and 3 (3 adds the *_as_tensor attributes, which may hold doubles).
 * These run every tree model scikit-learn, XGBoost and LightGBM export:
 * decision trees, random forests, gradient boosting.
 *
 * ONNX describes the trees as parallel attribute arrays keyed by (tree id,
 * node id). prepare() resolves them once into a compact array: each tree is
 * laid out depth-first from its root (the first node of that tree id in
 * attribute order) with a node's false child right after it, so the common
 * path walks forward in memory, and every child reference is an index into
 * that array. Every id is checked at load: a duplicate node, a child missing
 * from its tree, a cycle, a class/target id out of range or a weight on an
 * unknown node refuses the model instead of crashing at run time. Nodes
 * shared by two parents (LightGBM's set-membership chains) are kept shared.
 *
 * Scores follow ONNX Runtime, the reference: leaf weights are summed in
 * float (double when an *_as_tensor attribute or the input is double),
 * aggregate_function applies per target, base_values are added, then
 * post_transform. A two-class classifier whose leaves weigh only one class
 * (scikit-learn's forests and gradient boosting export this way) reports
 * [1 - p, p] when all weights are positive (p is a probability, label by
 * p > 0.5) and [-m, m] or [logistic(-m), logistic(m)] otherwise (m is a
 * margin, label by m > 0).
 */
#include <stdio.h>

#include "ml.h"

enum node_mode {
    MODE_LEAF = 0,
    MODE_LEQ,
    MODE_LT,
    MODE_GTE,
    MODE_GT,
    MODE_EQ,
    MODE_NEQ
};

typedef enum aggregate { AGG_SUM, AGG_AVERAGE, AGG_MIN, AGG_MAX } aggregate;

typedef struct tree_node {
    double threshold;
    uint32_t feature;
    uint32_t true_child;   /* index into nodes */
    uint32_t false_child;
    uint32_t weight_begin; /* leaves: weights[weight_begin, +weight_count) */
    uint32_t weight_count;
    uint8_t mode;
    uint8_t missing_true;  /* a NaN feature takes the true branch */
} tree_node;

typedef struct tree_weight {
    uint32_t target;
    double value;
} tree_weight;

typedef struct tree_ensemble {
    bool classifier;
    size_t targets;         /* n_targets, or the number of class labels */
    size_t n_nodes, n_trees, n_weights;
    tree_node *nodes;
    uint32_t *roots;
    tree_weight *weights;
    double *base_values;
    size_t n_base_values;
    uint32_t max_feature;   /* largest feature index a branch reads */
    bool any_branch;
    bool all_leq;           /* every branch is BRANCH_LEQ, no missing tracking */
    bool double_scores;     /* accumulate in double (an attribute was double) */
    aggregate agg;
    ml_transform transform;
    /* classifier */
    ml_labels labels;
    bool binary_case;       /* two classes, leaves weigh a single class id */
    bool weights_all_positive;
} tree_ensemble;

static void tree_free(void *p)
{
    tree_ensemble *s = p;
    if (!s)
        return;
    free(s->nodes);
    free(s->roots);
    free(s->weights);
    free(s->base_values);
    free(s);
}

/* ---- loading ------------------------------------------------------------ */

/* A float list attribute or, from version 3, its *_as_tensor twin (float or
 * double), as a malloc'd array of doubles. *count 0 with *out NULL when both
 * are absent. */
static int read_reals(const op_node *node, ifd_error *err, const char *name, double **out,
                      size_t *count, bool *is_double)
{
    char tensor_name[64];
    const float *floats;
    size_t n = op_attr_floats(node, name, &floats);
    const ifd_tensor *t = NULL;
    *out = NULL;
    *count = 0;
    snprintf(tensor_name, sizeof(tensor_name), "%s_as_tensor", name);
    if (node->version >= 3) /* *_as_tensor attributes were added in version 3 */
        t = op_attr_tensor(node, tensor_name);
    if (t && n)
        return op_prepare_fail(node, err, "both %s and %s are set", name, tensor_name);
    if (t) {
        if (t->dtype != IFD_FLOAT && t->dtype != IFD_DOUBLE)
            return op_prepare_fail(node, err, "%s must be float or double, not %s", tensor_name,
                                   ifd_dtype_name(t->dtype));
        n = (size_t)ifd_tensor_count(t);
        if (t->dtype == IFD_DOUBLE)
            *is_double = true;
    }
    if (n == 0)
        return 0;
    double *v = malloc(n * sizeof(double));
    if (!v)
        return op_prepare_fail(node, err, "out of memory");
    for (size_t i = 0; i < n; i++)
        v[i] = t ? tensor_get_double(t, i) : floats[i];
    *out = v;
    *count = n;
    return 0;
}

static int parse_mode(const ifd_string *s, uint8_t *mode)
{
    static const char *const names[] = {"LEAF", "BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE",
                                        "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (s->data && s->size == strlen(names[i]) && memcmp(s->data, names[i], s->size) == 0) {
            *mode = (uint8_t)i;
            return 0;
        }
    }
    return -1;
}

/* The node attribute arrays, referenced from the model. */
typedef struct tree_attrs {
    size_t n;
    const int64_t *tree_ids, *node_ids, *feature_ids, *true_ids, *false_ids, *missing_true;
    size_t n_missing;
    const ifd_string *modes;
    double *values;
} tree_attrs;

/* (tree id, node id) -> attribute index, by binary search over a sorted copy. */
typedef struct node_key {
    int64_t tree, node;
    uint32_t index;
} node_key;

static int key_compare(const void *a, const void *b)
{
    const node_key *x = a, *y = b;
    if (x->tree != y->tree)
        return x->tree < y->tree ? -1 : 1;
    if (x->node != y->node)
        return x->node < y->node ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

static int64_t find_node(const node_key *keys, size_t n, int64_t tree, int64_t node)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (keys[mid].tree < tree || (keys[mid].tree == tree && keys[mid].node < node))
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < n && keys[lo].tree == tree && keys[lo].node == node)
        return keys[lo].index;
    return -1;
}

/* Scratch of the layout pass, freed together. */
typedef struct layout {
    node_key *keys;
    uint8_t *color;      /* 0 unvisited, 1 on the DFS stack, 2 done */
    uint32_t *compact;   /* attribute index -> index in nodes */
    uint32_t *stack;
    uint8_t *phase;      /* per stack entry: next child to visit */
    uint32_t *root_of;   /* per tree (sorted order): attribute index of its root */
} layout;

static void layout_free(layout *l)
{
    free(l->keys);
    free(l->color);
    free(l->compact);
    free(l->stack);
    free(l->phase);
    free(l->root_of);
}

/* Lay out one tree depth-first from attribute index `root`, false child first. */
static int layout_tree(const op_node *node, ifd_error *err, const tree_attrs *a, layout *l,
                       tree_ensemble *s, uint32_t root)
{
    size_t depth = 0;
    l->stack[depth] = root;
    l->phase[depth++] = 0;
    l->color[root] = 1;
    l->compact[root] = (uint32_t)s->n_nodes++;
    while (depth) {
        uint32_t i = l->stack[depth - 1];
        tree_node *t = &s->nodes[l->compact[i]];
        if (l->phase[depth - 1] == 0) {
            if (parse_mode(&a->modes[i], &t->mode) != 0)
                return op_prepare_fail(node, err, "node %lld of tree %lld: unknown mode '%s'",
                                       (long long)a->node_ids[i], (long long)a->tree_ids[i],
                                       a->modes[i].data ? a->modes[i].data : "");
            t->threshold = a->values[i];
            t->missing_true = i < a->n_missing && a->missing_true[i] == 1;
            if (t->mode != MODE_LEAF) {
                if (a->feature_ids[i] < 0 || a->feature_ids[i] >= INT32_MAX)
                    return op_prepare_fail(node, err, "node %lld of tree %lld: feature id %lld "
                                                      "is invalid", (long long)a->node_ids[i],
                                           (long long)a->tree_ids[i],
                                           (long long)a->feature_ids[i]);
                t->feature = (uint32_t)a->feature_ids[i];
                if (t->mode != MODE_LEQ || t->missing_true)
                    s->all_leq = false;
                if (!s->any_branch || t->feature > s->max_feature)
                    s->max_feature = t->feature;
                s->any_branch = true;
            }
        }
        uint8_t phase = l->phase[depth - 1];
        if (t->mode == MODE_LEAF || phase == 2) {
            l->color[i] = 2;
            depth--;
            continue;
        }
        l->phase[depth - 1]++;
        int64_t child_id = phase == 0 ? a->false_ids[i] : a->true_ids[i];
        int64_t c = find_node(l->keys, a->n, a->tree_ids[i], child_id);
        if (c < 0)
            return op_prepare_fail(node, err, "node %lld of tree %lld: %s child %lld does not "
                                              "exist in the tree", (long long)a->node_ids[i],
                                   (long long)a->tree_ids[i], phase == 0 ? "false" : "true",
                                   (long long)child_id);
        if (l->color[c] == 1)
            return op_prepare_fail(node, err, "tree %lld has a cycle through node %lld",
                                   (long long)a->tree_ids[i], (long long)child_id);
        if (l->color[c] == 0) {
            l->color[c] = 1;
            l->compact[c] = (uint32_t)s->n_nodes++;
            l->stack[depth] = (uint32_t)c;
            l->phase[depth++] = 0;
        }
        /* `t` stays valid: nodes was sized for every attribute node. */
        if (phase == 0)
            t->false_child = l->compact[c];
        else
            t->true_child = l->compact[c];
    }
    return 0;
}

static int build_trees(const op_node *node, ifd_error *err, const tree_attrs *a,
                       tree_ensemble *s, layout *l)
{
    size_t n = a->n;
    if (n == 0)
        return op_prepare_fail(node, err, "the ensemble has no nodes");
    if (n >= UINT32_MAX)
        return op_prepare_fail(node, err, "too many nodes (%zu)", n);
    l->keys = malloc(n * sizeof(*l->keys));
    l->color = calloc(n, 1);
    l->compact = calloc(n, sizeof(uint32_t));
    l->stack = malloc(n * sizeof(uint32_t));
    l->phase = malloc(n);
    l->root_of = malloc(n * sizeof(uint32_t));
    s->nodes = calloc(n, sizeof(tree_node));
    s->roots = malloc(n * sizeof(uint32_t));
    s->all_leq = true;
    if (!l->keys || !l->color || !l->compact || !l->stack || !l->phase || !l->root_of ||
        !s->nodes || !s->roots)
        return op_prepare_fail(node, err, "out of memory");
    for (size_t i = 0; i < n; i++)
        l->keys[i] = (node_key){a->tree_ids[i], a->node_ids[i], (uint32_t)i};
    qsort(l->keys, n, sizeof(*l->keys), key_compare);
    /* Each tree's root is its first node in attribute order; trees are taken
     * in the order their roots appear. */
    size_t trees = 0;
    for (size_t k = 0; k < n; k++) {
        if (k > 0 && l->keys[k].tree == l->keys[k - 1].tree) {
            if (l->keys[k].node == l->keys[k - 1].node)
                return op_prepare_fail(node, err, "node %lld appears twice in tree %lld",
                                       (long long)l->keys[k].node, (long long)l->keys[k].tree);
            if (l->keys[k].index < l->root_of[trees - 1])
                l->root_of[trees - 1] = l->keys[k].index;
            continue;
        }
        l->root_of[trees++] = l->keys[k].index;
    }
    /* Order roots by attribute position: mark them, then scan. */
    for (size_t t = 0; t < trees; t++)
        l->color[l->root_of[t]] = 3;
    for (size_t i = 0; i < n; i++) {
        if (l->color[i] != 3)
            continue;
        l->color[i] = 0;
        s->roots[s->n_trees++] = (uint32_t)s->n_nodes;
        if (layout_tree(node, err, a, l, s, (uint32_t)i) != 0)
            return -1;
    }
    return 0;
}

/* Attach the (class|target)_* weights to their leaves, in attribute order. */
static int build_weights(const op_node *node, ifd_error *err, const char *prefix,
                         const tree_attrs *a, tree_ensemble *s, layout *l)
{
    char name[64];
    const int64_t *ids, *node_ids, *tree_ids;
    double *values = NULL;
    size_t n_values;
    snprintf(name, sizeof(name), "%s_ids", prefix);
    size_t n = op_attr_ints(node, name, &ids);
    snprintf(name, sizeof(name), "%s_nodeids", prefix);
    size_t n_nodes = op_attr_ints(node, name, &node_ids);
    snprintf(name, sizeof(name), "%s_treeids", prefix);
    size_t n_trees = op_attr_ints(node, name, &tree_ids);
    snprintf(name, sizeof(name), "%s_weights", prefix);
    if (read_reals(node, err, name, &values, &n_values, &s->double_scores) != 0)
        return -1;
    int rc = 0;
    uint32_t *leaf = NULL;
    if (n_nodes != n || n_trees != n || n_values != n) {
        rc = op_prepare_fail(node, err, "%s_ids, _nodeids, _treeids and _weights differ in "
                                        "length (%zu, %zu, %zu, %zu)", prefix, n, n_nodes,
                             n_trees, n_values);
        goto done;
    }
    if (n >= UINT32_MAX || !(leaf = malloc((n ? n : 1) * sizeof(uint32_t))) ||
        !(s->weights = malloc((n ? n : 1) * sizeof(tree_weight)))) {
        rc = op_prepare_fail(node, err, "out of memory");
        goto done;
    }
    s->weights_all_positive = true;
    bool one_class = true;
    for (size_t k = 0; k < n; k++) {
        int64_t i = find_node(l->keys, a->n, tree_ids[k], node_ids[k]);
        if (i < 0) {
            rc = op_prepare_fail(node, err, "%s weight %zu refers to node %lld of tree %lld, "
                                            "which does not exist", prefix, k,
                                 (long long)node_ids[k], (long long)tree_ids[k]);
            goto done;
        }
        if (ids[k] < 0 || (uint64_t)ids[k] >= s->targets) {
            rc = op_prepare_fail(node, err, "%s id %lld is outside [0, %zu)", prefix,
                                 (long long)ids[k], s->targets);
            goto done;
        }
        if (values[k] < 0)
            s->weights_all_positive = false;
        if (ids[k] != ids[0])
            one_class = false;
        /* Weights on branches or on unreachable nodes are ignored, as ONNX
         * Runtime does for models from old converters. */
        leaf[k] = l->color[i] == 2 && s->nodes[l->compact[i]].mode == MODE_LEAF
                      ? l->compact[i] : UINT32_MAX;
        if (leaf[k] != UINT32_MAX)
            s->nodes[leaf[k]].weight_count++;
    }
    s->binary_case = s->targets == 2 && n > 0 && one_class;
    uint32_t at = 0;
    for (size_t i = 0; i < s->n_nodes; i++) {
        s->nodes[i].weight_begin = at;
        at += s->nodes[i].weight_count;
        s->nodes[i].weight_count = 0;
    }
    for (size_t k = 0; k < n; k++) {
        if (leaf[k] == UINT32_MAX)
            continue;
        tree_node *t = &s->nodes[leaf[k]];
        s->weights[t->weight_begin + t->weight_count++] = (tree_weight){(uint32_t)ids[k], values[k]};
    }
    s->n_weights = at;
done:
    free(leaf);
    free(values);
    return rc;
}

static int tree_load(op_node *node, ifd_error *err, tree_ensemble *s)
{
    tree_attrs a = {0};
    layout l = {0};
    size_t n_values = 0;
    int rc = -1;
    a.n = op_attr_ints(node, "nodes_treeids", &a.tree_ids);
    size_t n_node_ids = op_attr_ints(node, "nodes_nodeids", &a.node_ids);
    size_t n_features = op_attr_ints(node, "nodes_featureids", &a.feature_ids);
    size_t n_true = op_attr_ints(node, "nodes_truenodeids", &a.true_ids);
    size_t n_false = op_attr_ints(node, "nodes_falsenodeids", &a.false_ids);
    size_t n_modes = op_attr_strings(node, "nodes_modes", &a.modes);
    a.n_missing = op_attr_ints(node, "nodes_missing_value_tracks_true", &a.missing_true);
    if (read_reals(node, err, "nodes_values", &a.values, &n_values, &s->double_scores) != 0)
        return -1;
    if (n_node_ids != a.n || n_features != a.n || n_true != a.n || n_false != a.n ||
        n_modes != a.n || n_values != a.n) {
        op_prepare_fail(node, err, "the nodes_* attributes differ in length (treeids %zu, nodeids "
                                   "%zu, featureids %zu, truenodeids %zu, falsenodeids %zu, modes "
                                   "%zu, values %zu)", a.n, n_node_ids, n_features, n_true,
                        n_false, n_modes, n_values);
        goto done;
    }
    if (build_trees(node, err, &a, s, &l) != 0 ||
        build_weights(node, err, s->classifier ? "class" : "target", &a, s, &l) != 0)
        goto done;
    if (read_reals(node, err, "base_values", &s->base_values, &s->n_base_values,
                   &s->double_scores) != 0)
        goto done;
    if (ml_read_transform(node, err, &s->transform) != 0)
        goto done;
    rc = 0;
done:
    layout_free(&l);
    free(a.values);
    return rc;
}

static void set_outputs(op_node *node, const tree_ensemble *s)
{
    int64_t rows = ml_known_rows(node->inputs[0]);
    int z_index = s->classifier ? 1 : 0;
    if (s->classifier) {
        value_info *y = node->outputs[0];
        y->kind = IFD_VALUE_TENSOR;
        y->dtype = s->labels.strings ? IFD_STRING : IFD_INT64;
        y->rank = 1;
        y->dims[0] = rows;
    }
    if (z_index < node->n_outputs) {
        value_info *z = node->outputs[z_index];
        z->kind = IFD_VALUE_TENSOR;
        z->dtype = IFD_FLOAT;
        z->rank = 2;
        z->dims[0] = rows;
        z->dims[1] = (int64_t)s->targets;
    }
}

static int tree_classifier_prepare(op_node *node, ifd_error *err)
{
    if (ml_check_numeric_input(node, err) != 0)
        return -1;
    tree_ensemble *s = calloc(1, sizeof(*s));
    if (!s)
        return op_prepare_fail(node, err, "out of memory");
    s->classifier = true;
    s->agg = AGG_SUM;
    if (ml_read_labels(node, err, "classlabels_int64s", &s->labels) != 0)
        goto fail;
    s->targets = s->labels.count;
    if (s->targets < 2) {
        op_prepare_fail(node, err, "classlabels_int64s or classlabels_strings must name at "
                                   "least two classes");
        goto fail;
    }
    if (tree_load(node, err, s) != 0)
        goto fail;
    node->state = s;
    set_outputs(node, s);
    return 0;
fail:
    tree_free(s);
    return -1;
}

static int tree_regressor_prepare(op_node *node, ifd_error *err)
{
    if (ml_check_numeric_input(node, err) != 0)
        return -1;
    int64_t targets = op_attr_int(node, "n_targets", 0);
    if (targets < 1 || targets > INT32_MAX)
        return op_prepare_fail(node, err, "n_targets must be positive, not %lld",
                               (long long)targets);
    static const char *const aggs[] = {"SUM", "AVERAGE", "MIN", "MAX"};
    const char *agg = op_attr_string(node, "aggregate_function", "SUM");
    tree_ensemble *s = calloc(1, sizeof(*s));
    if (!s)
        return op_prepare_fail(node, err, "out of memory");
    s->targets = (size_t)targets;
    int found = -1;
    for (int i = 0; i < 4; i++)
        if (strcmp(agg, aggs[i]) == 0)
            found = i;
    if (found < 0) {
        op_prepare_fail(node, err, "unknown aggregate_function '%s'", agg);
        goto fail;
    }
    s->agg = (aggregate)found;
    if (tree_load(node, err, s) != 0)
        goto fail;
    node->state = s;
    set_outputs(node, s);
    return 0;
fail:
    tree_free(s);
    return -1;
}

/* ---- running ------------------------------------------------------------ */

/* Walk one tree to its leaf. One body per input dtype; the comparison is made
 * in double, which is exact for float thresholds and float inputs. The
 * *_leq variants serve ensembles whose branches are all BRANCH_LEQ without
 * missing-value tracking (every scikit-learn export): no per-node switch. */
#define TREE_LEAF_FN(NAME, T)                                                           \
    static const tree_node *NAME(const tree_node *nodes, uint32_t root, const void *row) \
    {                                                                                    \
        const T *x = row;                                                                \
        const tree_node *t = &nodes[root];                                               \
        while (t->mode != MODE_LEAF) {                                                   \
            double v = (double)x[t->feature];                                            \
            bool go;                                                                     \
            switch (t->mode) {                                                           \
            case MODE_LEQ: go = v <= t->threshold; break;                                \
            case MODE_LT: go = v < t->threshold; break;                                  \
            case MODE_GTE: go = v >= t->threshold; break;                                \
            case MODE_GT: go = v > t->threshold; break;                                  \
            case MODE_EQ: go = v == t->threshold; break;                                 \
            default: go = v != t->threshold; break;                                      \
            }                                                                            \
            if (!go && t->missing_true && isnan(v))                                      \
                go = true;                                                               \
            t = &nodes[go ? t->true_child : t->false_child];                             \
        }                                                                                \
        return t;                                                                        \
    }                                                                                    \
    static const tree_node *NAME##_leq(const tree_node *nodes, uint32_t root,           \
                                       const void *row)                                  \
    {                                                                                    \
        const T *x = row;                                                                \
        const tree_node *t = &nodes[root];                                               \
        while (t->mode != MODE_LEAF)                                                     \
            t = &nodes[(double)x[t->feature] <= t->threshold ? t->true_child             \
                                                               : t->false_child];        \
        return t;                                                                        \
    }
TREE_LEAF_FN(leaf_float, float)
TREE_LEAF_FN(leaf_double, double)
TREE_LEAF_FN(leaf_int32, int32_t)
TREE_LEAF_FN(leaf_int64, int64_t)

typedef const tree_node *(*leaf_fn)(const tree_node *, uint32_t, const void *);

typedef struct tree_job {
    const tree_ensemble *s;
    leaf_fn leaf;
    const char *x;          /* row r starts at x + r * row_bytes */
    size_t row_bytes;
    bool double_scores;
    float *z;               /* [rows, targets] */
    int64_t *label;         /* classifier: [rows] class index */
    double *scores;         /* per block: targets */
    uint8_t *has;           /* per block: targets */
    size_t rows, blocks;
} tree_job;

static inline double round_score(double v, bool double_scores)
{
    return double_scores ? v : (double)(float)v;
}

/* Regressor, one target: ONNX Runtime applies only PROBIT here. */
static float finalize_single(const tree_ensemble *s, double score, bool has, bool ds)
{
    double origin = s->n_base_values == 1 ? s->base_values[0] : 0.0;
    double v;
    switch (s->agg) {
    case AGG_SUM: v = score + origin; break;
    case AGG_AVERAGE: v = round_score(score / (double)s->n_trees, ds) + origin; break;
    default: v = has ? score + origin : origin; break;
    }
    v = round_score(v, ds);
    return s->transform == ML_TRANSFORM_PROBIT ? ml_probit((float)v) : (float)v;
}

static void finalize_targets(const tree_ensemble *s, const double *score, const uint8_t *has,
                             bool ds, float *z)
{
    size_t C = s->targets;
    bool use_base = s->n_base_values == C;
    for (size_t k = 0; k < C; k++) {
        double base = use_base ? s->base_values[k] : 0.0;
        double v;
        switch (s->agg) {
        case AGG_SUM: v = score[k] + base; break;
        case AGG_AVERAGE: v = round_score(score[k] / (double)s->n_trees, ds) + base; break;
        default: v = base + (has[k] ? score[k] : 0.0); break;
        }
        z[k] = (float)round_score(v, ds);
    }
    ml_transform_row(z, C, s->transform);
}

/* Classifier: label index and scores, following ONNX Runtime's
 * TreeAggregatorClassifier (see the top of the file). */
static int64_t finalize_classes(const tree_ensemble *s, double *score, uint8_t *has, bool ds,
                                float *z)
{
    size_t C = s->targets;
    const double *bv = s->base_values;
    size_t n_bv = s->n_base_values;
    if (C > 2) {
        for (size_t k = 0; k < n_bv && k < C; k++) {
            score[k] = has[k] ? round_score(score[k] + bv[k], ds) : bv[k];
            has[k] = 1;
        }
        int64_t best = -1;
        for (size_t k = 0; k < C; k++)
            if (has[k] && (best < 0 || score[k] > score[best]))
                best = (int64_t)k;
        for (size_t k = 0; k < C; k++)
            z[k] = has[k] ? (float)score[k] : 0.0f;
        ml_transform_row(z, C, s->transform);
        return best < 0 ? 0 : best;
    }
    size_t n = 2;
    ml_second_class second = ML_SECOND_NONE;
    if (n_bv == 2) {
        if (has[1]) {
            /* ONNX Runtime replaces class 1's score by base_values[1] + the
             * class 0 score and mirrors it into class 0. */
            score[1] = round_score(bv[1] + score[0], ds);
            score[0] = -score[1];
        } else {
            score[1] = round_score(score[1] + bv[1], ds);
            score[0] = round_score(score[0] + bv[0], ds);
        }
    } else if (n_bv == 1) {
        score[0] = round_score(score[0] + bv[0], ds);
        if (!has[1])
            n = 1;
    } else if (n_bv == 0) {
        second = ML_SECOND_NEGATE;
        if (!has[1])
            n = 1;
    }
    double pos = n == 2 && has[1] ? score[1] : has[0] ? score[0] : 0.0;
    int64_t label;
    if (s->binary_case) {
        if (s->weights_all_positive) {
            second = ML_SECOND_COMPLEMENT;
            label = pos > 0.5 ? 1 : 0;
        } else {
            second = ML_SECOND_NEGATE;
            label = pos > 0 ? 1 : 0;
        }
    } else {
        label = pos > 0 ? 1 : 0;
    }
    if (n == 2) {
        z[0] = has[0] ? (float)score[0] : 0.0f;
        z[1] = has[1] ? (float)score[1] : 0.0f;
        ml_transform_row(z, 2, s->transform);
    } else {
        z[1] = 0.0f;
        ml_binary_scores(has[0] ? (float)score[0] : 0.0f, s->transform, second, z);
    }
    return label;
}

/* Rows are scored TREE_CHUNK at a time, trees in the outer loop, so one
 * tree's nodes stay in cache while the chunk's rows walk it. */
#define TREE_CHUNK 64

static void tree_block(void *arg, size_t begin_block, size_t end_block)
{
    const tree_job *job = arg;
    const tree_ensemble *s = job->s;
    size_t C = s->targets;
    bool ds = job->double_scores;
    for (size_t b = begin_block; b < end_block; b++) {
        double *scores = job->scores + b * TREE_CHUNK * C;
        uint8_t *has_all = job->has + b * TREE_CHUNK * C;
        size_t begin, end;
        ml_block_rows(b, job->blocks, job->rows, &begin, &end);
        for (size_t first = begin; first < end; first += TREE_CHUNK) {
            size_t n = end - first < TREE_CHUNK ? end - first : TREE_CHUNK;
            memset(scores, 0, n * C * sizeof(double));
            memset(has_all, 0, n * C);
            for (size_t t = 0; t < s->n_trees; t++) {
                for (size_t r = 0; r < n; r++) {
                    const void *row = job->x + (first + r) * job->row_bytes;
                    const tree_node *leaf = job->leaf(s->nodes, s->roots[t], row);
                    const tree_weight *w = s->weights + leaf->weight_begin;
                    double *score = scores + r * C;
                    uint8_t *has = has_all + r * C;
                    for (uint32_t k = 0; k < leaf->weight_count; k++) {
                        uint32_t c = w[k].target;
                        double v = w[k].value;
                        if (s->agg == AGG_MIN)
                            score[c] = !has[c] || v < score[c] ? v : score[c];
                        else if (s->agg == AGG_MAX)
                            score[c] = !has[c] || v > score[c] ? v : score[c];
                        else
                            score[c] = round_score(score[c] + v, ds);
                        has[c] = 1;
                    }
                }
            }
            for (size_t r = 0; r < n; r++) {
                double *score = scores + r * C;
                uint8_t *has = has_all + r * C;
                float *z = job->z + (first + r) * C;
                if (s->classifier)
                    job->label[first + r] = finalize_classes(s, score, has, ds, z);
                else if (C == 1)
                    z[0] = finalize_single(s, score[0], has[0], ds);
                else
                    finalize_targets(s, score, has, ds, z);
            }
        }
    }
}

static int tree_run(op_ctx *ctx)
{
    const tree_ensemble *s = ctx->node->state;
    const ifd_tensor *x = op_input(ctx, 0);
    int64_t rows, features;
    if (!x || !ml_numeric_input(x->dtype) || !ml_rows_features(x, &rows, &features))
        return op_fail(ctx, "input X must be a numeric [N, F] or [F] tensor");
    if (s->any_branch && (int64_t)s->max_feature >= features)
        return op_fail(ctx, "the trees read feature %u but the input has %lld features",
                       s->max_feature, (long long)features);
    tree_job job = {.s = s, .x = x->data, .rows = (size_t)rows};
    job.row_bytes = (size_t)features * ifd_dtype_size(x->dtype);
    job.double_scores = s->double_scores || x->dtype == IFD_DOUBLE;
    switch (x->dtype) {
    case IFD_FLOAT: job.leaf = s->all_leq ? leaf_float_leq : leaf_float; break;
    case IFD_DOUBLE: job.leaf = s->all_leq ? leaf_double_leq : leaf_double; break;
    case IFD_INT32: job.leaf = s->all_leq ? leaf_int32_leq : leaf_int32; break;
    default: job.leaf = s->all_leq ? leaf_int64_leq : leaf_int64; break;
    }
    int z_index = s->classifier ? 1 : 0;
    int64_t zdims[2] = {rows, (int64_t)s->targets};
    size_t bytes;
    if (z_index < ctx->node->n_outputs) {
        ifd_tensor *z = op_output(ctx, z_index, IFD_FLOAT, 2, zdims);
        if (!z)
            return -1;
        job.z = z->data;
    } else if (!shape_bytes(IFD_FLOAT, 2, zdims, &bytes) || !(job.z = op_scratch(ctx, bytes + 1))) {
        return op_fail(ctx, "cannot allocate the scores");
    }
    job.blocks = ml_blocks(ctx, job.rows, TREE_CHUNK);
    size_t per_block;
    if (!ml_mul(job.blocks * TREE_CHUNK, s->targets, &per_block) ||
        !ml_mul(per_block, sizeof(double), &bytes))
        return op_fail(ctx, "scratch size overflows");
    if (!(job.scores = op_scratch(ctx, bytes)) ||
        !(job.has = op_scratch(ctx, per_block)))
        return -1;
    if (s->classifier && !(job.label = op_scratch(ctx, job.rows * sizeof(int64_t) + 1)))
        return -1;
    if (job.rows)
        op_parallel_for(ctx, job.blocks, 1, tree_block, &job);
    if (!s->classifier)
        return 0;
    int64_t ydims[1] = {rows};
    ifd_tensor *y = op_output(ctx, 0, s->labels.strings ? IFD_STRING : IFD_INT64, 1, ydims);
    if (!y)
        return -1;
    return ml_write_labels(ctx, y, &s->labels, job.label, job.rows);
}

static const op_def defs[] = {
    {"ai.onnx.ml", "TreeEnsembleClassifier", 1, 3, tree_classifier_prepare, tree_run, tree_free},
    {"ai.onnx.ml", "TreeEnsembleRegressor", 1, 3, tree_regressor_prepare, tree_run, tree_free},
};
OP_FAMILY(ops_ml_tree, defs);
