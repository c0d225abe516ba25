/*
 * ops/ml/linear.c — ai.onnx.ml LinearClassifier and LinearRegressor (version
 * 1, unchanged since): scores = X · coefficientsᵀ + intercepts, then a
 * post_transform. These run scikit-learn's LogisticRegression, LinearSVC,
 * LinearRegression, Ridge... as exported to ONNX.
 *
 * ONNX Runtime is the reference: scores are accumulated in float (its GEMM),
 * the label is the argmax of the raw scores (first maximum wins), and a
 * classifier with one coefficient row but two class labels is the binary
 * case: label = score > 0, scores reported as [1 - s, s] (ORT applies no
 * LOGISTIC/SOFTMAX there; PROBIT gives [1 - probit(s), probit(s)] here,
 * where ORT's layout is undefined).
 */
#include "ml.h"

typedef struct linear_state {
    size_t classes;        /* rows of coefficients (targets for the regressor) */
    size_t features;
    const float *coefficients; /* [classes, features], attribute storage */
    float *intercepts;         /* [classes], zeros when absent */
    ml_transform transform;
    ml_labels labels;
    bool binary;           /* one score column reported as two classes */
} linear_state;

static void linear_free(void *p)
{
    linear_state *s = p;
    if (s)
        free(s->intercepts);
    free(s);
}

/* Common to both operators: coefficients, intercepts, post_transform. */
static int linear_read(op_node *node, ifd_error *err, size_t classes, linear_state **out)
{
    const float *coef, *icpt;
    size_t n_coef = op_attr_floats(node, "coefficients", &coef);
    size_t n_icpt = op_attr_floats(node, "intercepts", &icpt);
    if (n_coef == 0)
        return op_prepare_fail(node, err, "coefficients are required");
    if (classes == 0 || n_coef % classes != 0)
        return op_prepare_fail(node, err, "%zu coefficients do not split into %zu rows", n_coef,
                               classes);
    if (n_icpt != 0 && n_icpt != classes)
        return op_prepare_fail(node, err, "%zu intercepts for %zu score columns", n_icpt, classes);
    linear_state *s = calloc(1, sizeof(*s));
    if (!s || !(s->intercepts = calloc(classes, sizeof(float)))) {
        free(s);
        return op_prepare_fail(node, err, "out of memory");
    }
    s->classes = classes;
    s->features = n_coef / classes;
    s->coefficients = coef;
    if (n_icpt)
        memcpy(s->intercepts, icpt, classes * sizeof(float));
    if (ml_read_transform(node, err, &s->transform) != 0) {
        linear_free(s);
        return -1;
    }
    *out = s;
    return 0;
}

static void set_score_shape(op_node *node, int output, size_t columns)
{
    value_info *z = node->outputs[output];
    z->kind = IFD_VALUE_TENSOR;
    z->dtype = IFD_FLOAT;
    z->rank = 2;
    z->dims[0] = ml_known_rows(node->inputs[0]);
    z->dims[1] = (int64_t)columns;
}

static int linear_classifier_prepare(op_node *node, ifd_error *err)
{
    if (ml_check_numeric_input(node, err) != 0)
        return -1;
    ml_labels labels;
    if (ml_read_labels(node, err, "classlabels_ints", &labels) != 0)
        return -1;
    const float *icpt;
    size_t classes = op_attr_floats(node, "intercepts", &icpt);
    if (classes == 0)
        classes = labels.count;
    linear_state *s;
    if (linear_read(node, err, classes, &s) != 0)
        return -1;
    s->labels = labels;
    s->binary = classes == 1 && labels.count == 2;
    if (classes > 1 && labels.count != classes) {
        linear_free(s);
        return op_prepare_fail(node, err, "%zu score columns but %zu class labels", classes,
                               labels.count);
    }
    node->state = s;
    value_info *y = node->outputs[0];
    y->kind = IFD_VALUE_TENSOR;
    y->dtype = labels.strings ? IFD_STRING : IFD_INT64;
    y->rank = 1;
    y->dims[0] = ml_known_rows(node->inputs[0]);
    if (node->n_outputs > 1)
        set_score_shape(node, 1, s->binary ? 2 : classes);
    return 0;
}

static int linear_regressor_prepare(op_node *node, ifd_error *err)
{
    if (ml_check_numeric_input(node, err) != 0)
        return -1;
    int64_t targets = op_attr_int(node, "targets", 1);
    if (targets < 1 || targets > INT32_MAX)
        return op_prepare_fail(node, err, "targets must be positive, not %lld", (long long)targets);
    linear_state *s;
    if (linear_read(node, err, (size_t)targets, &s) != 0)
        return -1;
    node->state = s;
    set_score_shape(node, 0, (size_t)targets);
    return 0;
}

typedef struct linear_job {
    const linear_state *s;
    const ifd_tensor *x;
    float *scores;      /* [rows, columns] */
    int64_t *label;     /* [rows] class index, or NULL for the regressor */
    float *row_buffer;  /* features floats per block */
    size_t rows, columns, blocks;
} linear_job;

static void linear_block(void *arg, size_t begin_block, size_t end_block)
{
    const linear_job *job = arg;
    const linear_state *s = job->s;
    size_t F = s->features, C = s->classes;
    for (size_t b = begin_block; b < end_block; b++) {
        float *x = job->row_buffer + b * F;
        size_t begin, end;
        ml_block_rows(b, job->blocks, job->rows, &begin, &end);
        for (size_t r = begin; r < end; r++) {
            float *z = job->scores + r * job->columns;
            ml_load_floats(job->x, r * F, F, x);
            for (size_t c = 0; c < C; c++) {
                const float *w = s->coefficients + c * F;
                float dot = 0.0f;
                for (size_t f = 0; f < F; f++)
                    dot += x[f] * w[f];
                z[c] = dot + s->intercepts[c];
            }
            if (job->label) {
                size_t best = 0;
                for (size_t c = 1; c < C; c++)
                    if (z[c] > z[best])
                        best = c;
                if (C > 1)
                    job->label[r] = (int64_t)best;
                else if (s->binary)
                    job->label[r] = z[0] > 0 ? 1 : 0;
                else /* outside the labels: reported as 1 / 0 */
                    job->label[r] = z[0] > 0 ? INT64_MAX : -1;
            }
            if (C > 1) {
                ml_transform_row(z, C, s->transform);
            } else if (s->binary) {
                float v = s->transform == ML_TRANSFORM_PROBIT ? ml_probit(z[0]) : z[0];
                z[0] = 1.0f - v;
                z[1] = v;
            } else if (s->transform == ML_TRANSFORM_PROBIT) {
                z[0] = ml_probit(z[0]);
            }
        }
    }
}

static int linear_compute(op_ctx *ctx, bool classifier)
{
    const linear_state *s = ctx->node->state;
    const ifd_tensor *x = op_input(ctx, 0);
    int64_t rows, features;
    if (!x || !ml_numeric_input(x->dtype) || !ml_rows_features(x, &rows, &features))
        return op_fail(ctx, "input X must be a numeric [N, F] or [F] tensor");
    if ((size_t)features != s->features)
        return op_fail(ctx, "input has %lld features, the model %zu", (long long)features,
                       s->features);
    size_t columns = s->binary ? 2 : s->classes;
    int64_t zdims[2] = {rows, (int64_t)columns};
    int z_index = classifier ? 1 : 0;
    float *scores;
    size_t bytes;
    if (z_index < ctx->node->n_outputs) {
        ifd_tensor *z = op_output(ctx, z_index, IFD_FLOAT, 2, zdims);
        if (!z)
            return -1;
        scores = z->data;
    } else if (!shape_bytes(IFD_FLOAT, 2, zdims, &bytes) || !(scores = op_scratch(ctx, bytes + 1))) {
        return op_fail(ctx, "cannot allocate the scores");
    }
    linear_job job = {s, x, scores, NULL, NULL, (size_t)rows, columns, 0};
    job.blocks = ml_blocks(ctx, job.rows, 64);
    if (!ml_mul(job.blocks * sizeof(float), s->features, &bytes))
        return op_fail(ctx, "scratch size overflows");
    if (!(job.row_buffer = op_scratch(ctx, bytes ? bytes : 1)))
        return -1;
    if (classifier && !(job.label = op_scratch(ctx, job.rows * sizeof(int64_t) + 1)))
        return -1;
    if (job.rows)
        op_parallel_for(ctx, job.blocks, 1, linear_block, &job);
    if (!classifier)
        return 0;
    int64_t ydims[1] = {rows};
    ifd_tensor *y = op_output(ctx, 0, s->labels.strings ? IFD_STRING : IFD_INT64, 1, ydims);
    if (!y)
        return -1;
    return ml_write_labels(ctx, y, &s->labels, job.label, job.rows);
}

static int linear_classifier_run(op_ctx *ctx) { return linear_compute(ctx, true); }
static int linear_regressor_run(op_ctx *ctx) { return linear_compute(ctx, false); }

static const op_def defs[] = {
    {"ai.onnx.ml", "LinearClassifier", 1, 1, linear_classifier_prepare, linear_classifier_run,
     linear_free},
    {"ai.onnx.ml", "LinearRegressor", 1, 1, linear_regressor_prepare, linear_regressor_run,
     linear_free},
};
OP_FAMILY(ops_ml_linear, defs);
