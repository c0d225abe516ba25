/*
 * ops/ml/svm.c — ai.onnx.ml SVMClassifier and SVMRegressor (version 1,
 * unchanged since): kernel SVMs as libsvm trains them, which is what
 * scikit-learn's SVC / NuSVC / SVR / OneClassSVM export to ONNX.
 *
 * Two modes, as in ONNX Runtime (the reference reproduced here):
 *   - support vectors given (libsvm): for each pair of classes (i, j) the
 *     decision value is Σ coef·K(x, sv) over the support vectors of both
 *     classes plus rho[pair]; each pair votes for i when it is positive, and
 *     the label is the class with most votes (first on ties). Coefficients are
 *     libsvm's sv_coef: row j-1 holds the weights of class i's vectors against
 *     class j, row i those of class j's vectors against class i.
 *   - no support vectors (liblinear): one linear score per class.
 * With prob_a/prob_b the pairwise decision values become probabilities by
 * Platt's sigmoid r_ij = 1 / (1 + exp(A·f + B)), clipped to [1e-7, 1 - 1e-7],
 * and are coupled into class probabilities by the iterative method of Wu, Lin
 * and Weng, "Probability Estimates for Multi-class Classification by Pairwise
 * Coupling" (JMLR 2004, method 2; libsvm's multiclass_probability): at most
 * 100 passes, stopping when max |(Qp)_t - pᵀQp| < 0.005 / k. It runs in
 * float, like ONNX Runtime, so probabilities agree with it to ~1e-7.
 */
#include "ml.h"

typedef enum svm_kernel { KERNEL_LINEAR, KERNEL_POLY, KERNEL_RBF, KERNEL_SIGMOID } svm_kernel;

typedef struct svm_kernel_params {
    svm_kernel type;
    float gamma, coef0, degree;
} svm_kernel_params;

static int read_kernel(const op_node *node, ifd_error *err, svm_kernel_params *k)
{
    static const char *const names[] = {"LINEAR", "POLY", "RBF", "SIGMOID"};
    const char *name = op_attr_string(node, "kernel_type", "LINEAR");
    k->type = KERNEL_LINEAR;
    bool found = false;
    for (size_t i = 0; i < 4; i++) {
        if (strcmp(name, names[i]) == 0) {
            k->type = (svm_kernel)i;
            found = true;
        }
    }
    if (!found)
        return op_prepare_fail(node, err, "unknown kernel_type '%s'", name);
    const float *params;
    size_t n = op_attr_floats(node, "kernel_params", &params);
    if (n != 0 && n != 3)
        return op_prepare_fail(node, err, "kernel_params must hold gamma, coef0, degree, not %zu "
                                          "values", n);
    k->gamma = n ? params[0] : 0.0f;
    k->coef0 = n ? params[1] : 0.0f;
    k->degree = n ? params[2] : 0.0f;
    return 0;
}

/* The polynomial and sigmoid kernels of a dot product x . v. */
static inline float dot_kernel(const svm_kernel_params *k, float dot)
{
    float base = k->gamma * dot + k->coef0;
    if (k->type == KERNEL_SIGMOID)
        return tanhf(base);
    if (k->degree == 2.0f)
        return base * base;
    if (k->degree == 3.0f)
        return base * base * base;
    return powf(base, k->degree);
}

/* K(x, v_t) for `count` vectors of `features` floats. `bias` is added to the
 * dot product of the LINEAR kernel (liblinear mode passes rho[0] there). */
static void kernel_row(const svm_kernel_params *k, const float *x, const float *vectors,
                       size_t count, size_t features, float bias, float *out)
{
    for (size_t t = 0; t < count; t++) {
        const float *v = vectors + t * features;
        float acc = 0.0f;
        if (k->type == KERNEL_RBF) {
            for (size_t f = 0; f < features; f++) {
                float d = x[f] - v[f];
                acc += d * d;
            }
            out[t] = expf(-k->gamma * acc);
            continue;
        }
        for (size_t f = 0; f < features; f++)
            acc += x[f] * v[f];
        if (k->type == KERNEL_LINEAR) {
            out[t] = acc + bias;
            continue;
        }
        out[t] = dot_kernel(k, acc);
    }
}

/* kernel_row over vectors stored feature by feature (vt[f * count + t]):
 * the inner loop runs across vectors, so the compiler vectorises it, and
 * each vector's sum still adds its features in order 0..F-1, so the result
 * is bit for bit kernel_row's. A request to a small SVM is mostly this. */
static void kernel_row_by_feature(const svm_kernel_params *k, const float *x, const float *vt,
                                  size_t count, size_t features, float *out)
{
    for (size_t t = 0; t < count; t++)
        out[t] = 0.0f;
    if (k->type == KERNEL_RBF) {
        for (size_t f = 0; f < features; f++) {
            const float xf = x[f], *column = vt + f * count;
            for (size_t t = 0; t < count; t++) {
                float d = xf - column[t];
                out[t] += d * d;
            }
        }
        for (size_t t = 0; t < count; t++)
            out[t] = expf(-k->gamma * out[t]);
        return;
    }
    for (size_t f = 0; f < features; f++) {
        const float xf = x[f], *column = vt + f * count;
        for (size_t t = 0; t < count; t++)
            out[t] += xf * column[t];
    }
    if (k->type == KERNEL_LINEAR)
        return; /* the classifier's bias is 0 (rho is added per pair) */
    for (size_t t = 0; t < count; t++)
        out[t] = dot_kernel(k, out[t]);
}

/* ---- SVMClassifier ------------------------------------------------------ */

typedef struct svm_classifier {
    svm_kernel_params kernel;
    bool svc;                  /* support vectors present (libsvm mode) */
    bool have_proba;
    bool weights_all_positive;
    size_t classes, vectors, features, pairs, columns;
    const float *coefficients; /* svc: [classes-1, vectors]; linear: [classes, features] */
    const float *support_vectors;
    float *vectors_by_feature; /* svc: support_vectors transposed, [features, vectors] */
    const float *rho, *prob_a, *prob_b;
    size_t *start;             /* first support vector of each class */
    size_t *count;             /* support vectors of each class */
    ml_transform transform;
    ml_labels labels;
} svm_classifier;

static void svm_classifier_free(void *p)
{
    svm_classifier *s = p;
    if (s) {
        free(s->start);
        free(s->count);
        free(s->vectors_by_feature);
    }
    free(s);
}

static int svm_classifier_check(op_node *node, ifd_error *err, svm_classifier *s)
{
    const int64_t *per_class;
    size_t n_per_class = op_attr_ints(node, "vectors_per_class", &per_class);
    size_t n_coef = op_attr_floats(node, "coefficients", &s->coefficients);
    size_t n_sv = op_attr_floats(node, "support_vectors", &s->support_vectors);
    size_t n_rho = op_attr_floats(node, "rho", &s->rho);
    size_t n_a = op_attr_floats(node, "prob_a", &s->prob_a);
    size_t n_b = op_attr_floats(node, "prob_b", &s->prob_b);
    if (ml_read_labels(node, err, "classlabels_ints", &s->labels) != 0 ||
        read_kernel(node, err, &s->kernel) != 0 || ml_read_transform(node, err, &s->transform) != 0)
        return -1;
    s->classes = s->labels.count;
    if (s->classes == 0)
        return op_prepare_fail(node, err, "classlabels_ints or classlabels_strings is required");
    if (s->classes > 65535)
        return op_prepare_fail(node, err, "%zu classes is more than supported (65535)", s->classes);
    if (n_coef == 0)
        return op_prepare_fail(node, err, "coefficients are required");
    if (n_a != n_b)
        return op_prepare_fail(node, err, "prob_a has %zu values, prob_b %zu", n_a, n_b);
    s->have_proba = n_a > 0;
    s->pairs = s->classes * (s->classes - 1) / 2;
    s->weights_all_positive = true;
    for (size_t i = 0; i < n_coef; i++)
        if (!(s->coefficients[i] >= 0.0f))
            s->weights_all_positive = false;

    size_t vectors = 0;
    for (size_t i = 0; i < n_per_class; i++) {
        if (per_class[i] < 0 || (uint64_t)per_class[i] > n_sv)
            return op_prepare_fail(node, err, "vectors_per_class[%zu] = %lld is invalid", i,
                                   (long long)per_class[i]);
        vectors += (size_t)per_class[i];
        if (vectors > n_sv)
            return op_prepare_fail(node, err, "vectors_per_class adds up to more than the "
                                              "support vectors");
    }
    s->vectors = vectors;
    s->svc = vectors > 0;
    if (!s->svc) {
        /* liblinear mode: one row of coefficients per class, rho[0] as bias. */
        s->kernel.type = KERNEL_LINEAR;
        if (n_coef % s->classes != 0)
            return op_prepare_fail(node, err, "%zu coefficients do not split into %zu classes",
                                   n_coef, s->classes);
        if (n_rho < 1)
            return op_prepare_fail(node, err, "rho is required");
        s->features = n_coef / s->classes;
        s->columns = s->classes;
        return 0;
    }
    if (n_per_class != s->classes)
        return op_prepare_fail(node, err, "vectors_per_class has %zu entries for %zu classes",
                               n_per_class, s->classes);
    if (s->classes < 2)
        return op_prepare_fail(node, err, "a support vector classifier needs two classes or more");
    if (n_sv % vectors != 0 || n_sv / vectors == 0)
        return op_prepare_fail(node, err, "%zu support vector values do not split into %zu "
                                          "vectors", n_sv, vectors);
    s->features = n_sv / vectors;
    size_t want = 0;
    if (!ml_mul(s->classes - 1, vectors, &want) || n_coef < want)
        return op_prepare_fail(node, err, "%zu coefficients, expected (classes - 1) x vectors = "
                                          "%zu", n_coef, want);
    if (n_rho < s->pairs)
        return op_prepare_fail(node, err, "rho has %zu values for %zu class pairs", n_rho,
                               s->pairs);
    if (s->have_proba && n_a < s->pairs)
        return op_prepare_fail(node, err, "prob_a has %zu values for %zu class pairs", n_a,
                               s->pairs);
    s->start = calloc(s->classes, sizeof(size_t));
    s->count = calloc(s->classes, sizeof(size_t));
    if (!s->start || !s->count)
        return op_prepare_fail(node, err, "out of memory");
    for (size_t i = 0, at = 0; i < s->classes; i++) {
        s->start[i] = at;
        s->count[i] = (size_t)per_class[i];
        at += s->count[i];
    }
    s->columns = s->have_proba ? s->classes : s->classes > 2 ? s->pairs : 2;
    size_t values = vectors * s->features; /* <= n_sv, an attribute's length */
    s->vectors_by_feature = malloc(values * sizeof(float));
    if (!s->vectors_by_feature)
        return op_prepare_fail(node, err, "out of memory");
    for (size_t t = 0; t < vectors; t++)
        for (size_t f = 0; f < s->features; f++)
            s->vectors_by_feature[f * vectors + t] = s->support_vectors[t * s->features + f];
    return 0;
}

static int svm_classifier_prepare(op_node *node, ifd_error *err)
{
    if (ml_check_numeric_input(node, err) != 0)
        return -1;
    svm_classifier *s = calloc(1, sizeof(*s));
    if (!s)
        return op_prepare_fail(node, err, "out of memory");
    if (svm_classifier_check(node, err, s) != 0) {
        svm_classifier_free(s);
        return -1;
    }
    node->state = s;
    int64_t rows = ml_known_rows(node->inputs[0]);
    value_info *y = node->outputs[0];
    y->kind = IFD_VALUE_TENSOR;
    y->dtype = s->labels.strings ? IFD_STRING : IFD_INT64;
    y->rank = 1;
    y->dims[0] = rows;
    if (node->n_outputs > 1) {
        value_info *z = node->outputs[1];
        z->kind = IFD_VALUE_TENSOR;
        z->dtype = IFD_FLOAT;
        z->rank = 2;
        z->dims[0] = rows;
        z->dims[1] = (int64_t)s->columns;
    }
    return 0;
}

/* Pairwise coupling (see the top of the file). r is k x k with r[i][j] the
 * probability of i against j; p receives the k class probabilities. Q and Qp
 * are k x k and k floats of scratch. */
static void multiclass_probability(size_t k, const float *r, float *p, float *Q, float *Qp)
{
    float eps = 0.005f / (float)k;
    for (size_t i = 0; i < k; i++) {
        p[i] = 1.0f / (float)k;
        Q[i * k + i] = 0.0f;
        for (size_t j = 0; j < i; j++) {
            Q[i * k + i] += r[j * k + i] * r[j * k + i];
            Q[i * k + j] = Q[j * k + i];
        }
        for (size_t j = i + 1; j < k; j++) {
            Q[i * k + i] += r[j * k + i] * r[j * k + i];
            Q[i * k + j] = -r[j * k + i] * r[i * k + j];
        }
    }
    for (int pass = 0; pass < 100; pass++) {
        float pQp = 0.0f;
        for (size_t i = 0; i < k; i++) {
            Qp[i] = 0.0f;
            for (size_t j = 0; j < k; j++)
                Qp[i] += Q[i * k + j] * p[j];
            pQp += p[i] * Qp[i];
        }
        float max_error = 0.0f;
        for (size_t i = 0; i < k; i++) {
            float error = fabsf(Qp[i] - pQp);
            if (error > max_error)
                max_error = error;
        }
        if (max_error < eps)
            break;
        for (size_t i = 0; i < k; i++) {
            float diff = (-Qp[i] + pQp) / Q[i * k + i];
            p[i] += diff;
            pQp = (pQp + diff * (diff * Q[i * k + i] + 2 * Qp[i])) / (1 + diff) / (1 + diff);
            for (size_t j = 0; j < k; j++) {
                Qp[j] = (Qp[j] + diff * Q[i * k + j]) / (1 + diff);
                p[j] /= (1 + diff);
            }
        }
    }
}

typedef struct svm_job {
    const svm_classifier *s;
    const ifd_tensor *x;
    float *scores;         /* [rows, columns] */
    int64_t *label;        /* [rows] class index */
    float *scratch;        /* per block: floats_per_block */
    int64_t *votes;        /* per block: classes */
    size_t floats_per_block;
    size_t rows, blocks;
} svm_job;

/* One row in libsvm mode: pairwise decision values, votes, probabilities. */
static void svc_row(const svm_classifier *s, const float *x, float *scratch, int64_t *votes,
                    float *z, int64_t *label)
{
    size_t C = s->classes, V = s->vectors;
    float *kernels = scratch;            /* V */
    float *decision = kernels + V;       /* pairs */
    float *r = decision + s->pairs;      /* C x C */
    float *Q = r + C * C;                /* C x C */
    float *Qp = Q + C * C;               /* C */
    kernel_row_by_feature(&s->kernel, x, s->vectors_by_feature, V, s->features, kernels);
    memset(votes, 0, C * sizeof(*votes));
    size_t pair = 0;
    for (size_t i = 0; i + 1 < C; i++) {
        for (size_t j = i + 1; j < C; j++, pair++) {
            /* Float products summed in double, as ONNX Runtime does. */
            double sum = 0.0;
            const float *ci = s->coefficients + (j - 1) * V + s->start[i];
            const float *cj = s->coefficients + i * V + s->start[j];
            for (size_t m = 0; m < s->count[i]; m++)
                sum += ci[m] * kernels[s->start[i] + m];
            for (size_t m = 0; m < s->count[j]; m++)
                sum += cj[m] * kernels[s->start[j] + m];
            sum += s->rho[pair];
            decision[pair] = (float)sum;
            votes[sum > 0 ? i : j]++;
        }
    }
    size_t best = 0;
    for (size_t c = 1; c < C; c++)
        if (votes[c] > votes[best])
            best = c;
    *label = (int64_t)best;

    if (s->have_proba) {
        memset(r, 0, C * C * sizeof(float));
        pair = 0;
        for (size_t i = 0; i + 1 < C; i++) {
            for (size_t j = i + 1; j < C; j++, pair++) {
                float v = 1.0f - ml_logistic(decision[pair] * s->prob_a[pair] + s->prob_b[pair]);
                v = fminf(fmaxf(v, 1.0e-7f), 1.0f - 1.0e-7f);
                r[i * C + j] = v;
                r[j * C + i] = 1.0f - v;
            }
        }
        multiclass_probability(C, r, z, Q, Qp);
        ml_transform_row(z, C, s->transform);
    } else if (C > 2) {
        memcpy(z, decision, s->pairs * sizeof(float));
        ml_transform_row(z, s->pairs, s->transform);
    } else {
        /* ONNX Runtime: [-f, f] without a transform, else [1 - f, f]. */
        float two[2] = {0.0f, 0.0f};
        ml_binary_scores(decision[0], s->transform,
                         s->transform == ML_TRANSFORM_NONE ? ML_SECOND_NEGATE : ML_SECOND_COMPLEMENT,
                         two);
        z[0] = two[0];
        z[1] = two[1];
    }
}

/* One row in liblinear mode: a linear score per class. */
static void linear_row(const svm_classifier *s, const float *x, float *z, int64_t *label)
{
    size_t C = s->classes;
    kernel_row(&s->kernel, x, s->coefficients, C, s->features, s->rho[0], z);
    size_t best = 0;
    for (size_t c = 1; c < C; c++)
        if (z[c] > z[best])
            best = c;
    float max_weight = z[best];
    *label = (int64_t)best;
    if (C == 2 && !s->have_proba) {
        if (s->weights_all_positive && max_weight >= 0.5f)
            *label = 1;
        else if (max_weight > 0 && !s->weights_all_positive)
            *label = 1;
    }
    if (C > 1)
        ml_transform_row(z, C, s->transform);
    else if (s->transform == ML_TRANSFORM_PROBIT)
        z[0] = ml_probit(z[0]);
}

static void svm_block(void *arg, size_t begin_block, size_t end_block)
{
    const svm_job *job = arg;
    const svm_classifier *s = job->s;
    for (size_t b = begin_block; b < end_block; b++) {
        float *scratch = job->scratch + b * job->floats_per_block;
        float *x = scratch;
        size_t begin, end;
        ml_block_rows(b, job->blocks, job->rows, &begin, &end);
        for (size_t r = begin; r < end; r++) {
            float *z = job->scores + r * s->columns;
            ml_load_floats(job->x, r * s->features, s->features, x);
            if (s->svc)
                svc_row(s, x, scratch + s->features, job->votes + b * s->classes, z,
                        &job->label[r]);
            else
                linear_row(s, x, z, &job->label[r]);
        }
    }
}

static int svm_classifier_run(op_ctx *ctx)
{
    const svm_classifier *s = ctx->node->state;
    const ifd_tensor *x = op_input(ctx, 0);
    int64_t rows, features;
    if (!x || !ml_numeric_input(x->dtype) || !ml_rows_features(x, &rows, &features))
        return op_fail(ctx, "input X must be a numeric [N, F] or [F] tensor");
    if ((size_t)features != s->features)
        return op_fail(ctx, "input has %lld features, the model %zu", (long long)features,
                       s->features);
    svm_job job = {.s = s, .x = x, .rows = (size_t)rows};
    int64_t zdims[2] = {rows, (int64_t)s->columns};
    size_t bytes;
    if (ctx->node->n_outputs > 1) {
        ifd_tensor *z = op_output(ctx, 1, IFD_FLOAT, 2, zdims);
        if (!z)
            return -1;
        job.scores = z->data;
    } else if (!shape_bytes(IFD_FLOAT, 2, zdims, &bytes) ||
               !(job.scores = op_scratch(ctx, bytes + 1))) {
        return op_fail(ctx, "cannot allocate the scores");
    }
    job.blocks = ml_blocks(ctx, job.rows, 32);
    /* x, kernels, decision values, r, Q, Qp */
    size_t cc, per_block = 0;
    if (!ml_mul(s->classes, s->classes, &cc) || !ml_mul(cc, 2, &cc))
        return op_fail(ctx, "too many classes");
    per_block = s->features + s->vectors + s->pairs + cc + s->classes;
    /* one scratch buffer: labels and votes (int64) first, then the floats */
    size_t label_bytes, vote_bytes, float_bytes, total;
    if (!ml_mul(per_block, job.blocks * sizeof(float), &float_bytes) ||
        !ml_mul(job.rows, sizeof(int64_t), &label_bytes) ||
        !ml_mul(job.blocks * s->classes, sizeof(int64_t), &vote_bytes) ||
        (total = label_bytes + vote_bytes) < label_bytes || total + float_bytes + 1 < total)
        return op_fail(ctx, "scratch size overflows");
    char *block = op_scratch(ctx, total + float_bytes + 1);
    if (!block)
        return -1;
    job.label = (int64_t *)block;
    job.votes = (int64_t *)(block + label_bytes);
    job.scratch = (float *)(block + total);
    job.floats_per_block = per_block;
    if (job.rows)
        op_parallel_for(ctx, job.blocks, 1, svm_block, &job);
    int64_t ydims[1] = {rows};
    ifd_tensor *y = op_output(ctx, 0, s->labels.strings ? IFD_STRING : IFD_INT64, 1, ydims);
    if (!y)
        return -1;
    return ml_write_labels(ctx, y, &s->labels, job.label, job.rows);
}

/* ---- SVMRegressor ------------------------------------------------------- */

typedef struct svm_regressor {
    svm_kernel_params kernel;
    size_t vectors, features;
    const float *coefficients, *support_vectors;
    float rho;
    bool one_class;
} svm_regressor;

static void svm_regressor_free(void *p) { free(p); }

static int svm_regressor_prepare(op_node *node, ifd_error *err)
{
    if (ml_check_numeric_input(node, err) != 0)
        return -1;
    svm_regressor r = {0};
    const float *rho;
    if (read_kernel(node, err, &r.kernel) != 0)
        return -1;
    ml_transform unused;
    if (ml_read_transform(node, err, &unused) != 0)
        return -1;
    int64_t n_supports = op_attr_int(node, "n_supports", 0);
    size_t n_coef = op_attr_floats(node, "coefficients", &r.coefficients);
    size_t n_sv = op_attr_floats(node, "support_vectors", &r.support_vectors);
    size_t n_rho = op_attr_floats(node, "rho", &rho);
    r.one_class = op_attr_int(node, "one_class", 0) != 0;
    if (n_coef == 0)
        return op_prepare_fail(node, err, "coefficients are required");
    if (n_rho < 1)
        return op_prepare_fail(node, err, "rho is required");
    r.rho = rho[0];
    if (n_supports < 0 || (uint64_t)n_supports > n_sv)
        return op_prepare_fail(node, err, "n_supports = %lld is invalid", (long long)n_supports);
    if (n_supports > 0) {
        r.vectors = (size_t)n_supports;
        if (n_sv % r.vectors != 0)
            return op_prepare_fail(node, err, "%zu support vector values do not split into %zu "
                                              "vectors", n_sv, r.vectors);
        if (n_coef < r.vectors)
            return op_prepare_fail(node, err, "%zu coefficients for %zu support vectors", n_coef,
                                   r.vectors);
        r.features = n_sv / r.vectors;
    } else {
        r.kernel.type = KERNEL_LINEAR;
        r.features = n_coef;
    }
    svm_regressor *s = malloc(sizeof(*s));
    if (!s)
        return op_prepare_fail(node, err, "out of memory");
    *s = r;
    node->state = s;
    value_info *y = node->outputs[0];
    y->kind = IFD_VALUE_TENSOR;
    y->dtype = IFD_FLOAT;
    y->rank = 2;
    y->dims[0] = ml_known_rows(node->inputs[0]);
    y->dims[1] = 1;
    return 0;
}

typedef struct svr_job {
    const svm_regressor *s;
    const ifd_tensor *x;
    float *y, *scratch;
    size_t per_block, rows, blocks;
} svr_job;

static void svr_block(void *arg, size_t begin_block, size_t end_block)
{
    const svr_job *job = arg;
    const svm_regressor *s = job->s;
    for (size_t b = begin_block; b < end_block; b++) {
        float *x = job->scratch + b * job->per_block;
        float *kernels = x + s->features;
        size_t begin, end;
        ml_block_rows(b, job->blocks, job->rows, &begin, &end);
        for (size_t r = begin; r < end; r++) {
            ml_load_floats(job->x, r * s->features, s->features, x);
            float v;
            if (s->vectors) {
                kernel_row(&s->kernel, x, s->support_vectors, s->vectors, s->features, 0.0f,
                           kernels);
                float acc = 0.0f;
                for (size_t t = 0; t < s->vectors; t++)
                    acc += kernels[t] * s->coefficients[t];
                v = acc + s->rho;
            } else {
                kernel_row(&s->kernel, x, s->coefficients, 1, s->features, s->rho, &v);
            }
            job->y[r] = s->one_class ? (v > 0.0f ? 1.0f : -1.0f) : v;
        }
    }
}

static int svm_regressor_run(op_ctx *ctx)
{
    const svm_regressor *s = ctx->node->state;
    const ifd_tensor *x = op_input(ctx, 0);
    int64_t rows, features;
    if (!x || !ml_numeric_input(x->dtype) || !ml_rows_features(x, &rows, &features))
        return op_fail(ctx, "input X must be a numeric [N, F] or [F] tensor");
    if ((size_t)features != s->features)
        return op_fail(ctx, "input has %lld features, the model %zu", (long long)features,
                       s->features);
    int64_t dims[2] = {rows, 1};
    ifd_tensor *y = op_output(ctx, 0, IFD_FLOAT, 2, dims);
    if (!y)
        return -1;
    svr_job job = {.s = s, .x = x, .y = y->data, .rows = (size_t)rows};
    job.blocks = ml_blocks(ctx, job.rows, 32);
    job.per_block = s->features + s->vectors;
    size_t bytes;
    if (!ml_mul(job.per_block, job.blocks * sizeof(float), &bytes))
        return op_fail(ctx, "scratch size overflows");
    if (!(job.scratch = op_scratch(ctx, bytes + 1)))
        return -1;
    if (job.rows)
        op_parallel_for(ctx, job.blocks, 1, svr_block, &job);
    return 0;
}

static const op_def defs[] = {
    {"ai.onnx.ml", "SVMClassifier", 1, 1, svm_classifier_prepare, svm_classifier_run,
     svm_classifier_free},
    {"ai.onnx.ml", "SVMRegressor", 1, 1, svm_regressor_prepare, svm_regressor_run,
     svm_regressor_free},
};
OP_FAMILY(ops_ml_svm, defs);
