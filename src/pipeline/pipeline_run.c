/*
 * pipeline_run.c — running a validated pipeline on one request.
 *
 * The values of a run live in scopes: a list of (name, value) that owns
 * what its steps produced and borrows from its parent scope, so a parallel
 * branch reads the request's tensors and earlier outputs without a copy
 * and its own outputs stay apart from its siblings' until they are
 * combined. A model step borrows its inputs straight from the scopes and
 * hands them to the engine: no JSON, no copy between local steps.
 *
 * The first failure of a required step decides the answer: 400 for a
 * request the entry steps refuse, 503 for a model that serves nothing,
 * 502/504 from remote steps; every message starts with the step's name.
 */
#include <math.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "branch_pool.h"
#include "log.h"
#include "pipeline_internal.h"
#include "tensor_json.h"

typedef struct scope_value {
    char *name;
    ifd_value *value;
    bool owned;
} scope_value;

typedef struct scope {
    scope_value *items;
    size_t n, cap;
    const struct scope *parent;
} scope;

typedef struct run_context {
    pipeline *p;
    const pipeline_env *env;
    const pipeline_request *request;
    char trace_id[33];
    pthread_mutex_t lock; /* trace and skipped, written by branches */
    json_t *trace;
    json_t *skipped;
    ifd_value **branch_outputs; /* the root's branches, for the book's fan-out answers */
} run_context;

typedef struct outcome {
    pipeline_status status;
    char error[1024];
} outcome;

static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void scope_free(scope *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->items[i].name);
        if (s->items[i].owned)
            ifd_value_free(s->items[i].value);
    }
    free(s->items);
    memset(s, 0, sizeof(*s));
}

/* Add (or replace) a value; the scope owns it when `owned`. */
static bool scope_put(scope *s, const char *name, ifd_value *value, bool owned)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->items[i].name, name) == 0) {
            if (s->items[i].owned)
                ifd_value_free(s->items[i].value);
            s->items[i].value = value;
            s->items[i].owned = owned;
            return true;
        }
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        scope_value *grown = realloc(s->items, cap * sizeof(*grown));
        if (!grown)
            return false;
        s->items = grown;
        s->cap = cap;
    }
    char *copy = strdup(name);
    if (!copy)
        return false;
    s->items[s->n++] = (scope_value){copy, value, owned};
    return true;
}

static ifd_value *scope_get(const scope *s, const char *name)
{
    for (; s; s = s->parent)
        for (size_t i = 0; i < s->n; i++)
            if (strcmp(s->items[i].name, name) == 0)
                return s->items[i].value;
    return NULL;
}

/* Take a value out of s (the caller owns it); NULL when s does not own it. */
static ifd_value *scope_take(scope *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->items[i].name, name) == 0 && s->items[i].owned) {
            s->items[i].owned = false;
            return s->items[i].value;
        }
    return NULL;
}

static ifd_value *tensor_clone(const ifd_value *v)
{
    if (!v || v->kind != IFD_VALUE_TENSOR)
        return NULL;
    ifd_value *copy;
    ifd_error e;
    if (ifd_value_new_tensor(v->tensor.dtype, v->tensor.rank, v->tensor.dims, &copy, &e) != IFD_OK)
        return NULL;
    size_t count = (size_t)ifd_tensor_count(&v->tensor);
    if (v->tensor.dtype != IFD_STRING) {
        if (count)
            memcpy(copy->tensor.data, v->tensor.data, count * ifd_dtype_size(v->tensor.dtype));
        return copy;
    }
    for (size_t i = 0; i < count; i++) {
        const ifd_string *from = &((const ifd_string *)v->tensor.data)[i];
        ifd_string *to = &((ifd_string *)copy->tensor.data)[i];
        to->data = malloc(from->size + 1);
        if (!to->data) {
            ifd_value_free(copy);
            return NULL;
        }
        memcpy(to->data, from->data, from->size);
        to->data[from->size] = '\0';
        to->size = from->size;
    }
    return copy;
}

/* scikit-learn's ZipMap answers a sequence of maps; combining reads it as
 * the [rows, classes] float tensor it stands for. */
static ifd_value *as_score_tensor(const ifd_value *v, bool *made)
{
    *made = false;
    if (!v)
        return NULL;
    if (v->kind == IFD_VALUE_TENSOR)
        return (ifd_value *)v;
    if (v->kind != IFD_VALUE_SEQUENCE || !v->length || v->items[0]->kind != IFD_VALUE_MAP)
        return NULL;
    size_t cols = (size_t)ifd_tensor_count(&v->items[0]->map_values);
    int64_t dims[2] = {(int64_t)v->length, (int64_t)cols};
    ifd_value *t;
    ifd_error e;
    if (ifd_value_new_tensor(IFD_FLOAT, 2, dims, &t, &e) != IFD_OK)
        return NULL;
    for (size_t r = 0; r < v->length; r++) {
        const ifd_value *m = v->items[r];
        if (m->kind != IFD_VALUE_MAP || m->map_values.dtype != IFD_FLOAT ||
            (size_t)ifd_tensor_count(&m->map_values) != cols) {
            ifd_value_free(t);
            return NULL;
        }
        memcpy((float *)t->tensor.data + r * cols, m->map_values.data, cols * sizeof(float));
    }
    *made = true;
    return t;
}

static double element(const ifd_tensor *t, size_t i)
{
    switch (t->dtype) {
    case IFD_FLOAT:
        return ((const float *)t->data)[i];
    case IFD_DOUBLE:
        return ((const double *)t->data)[i];
    case IFD_INT64:
        return (double)((const int64_t *)t->data)[i];
    case IFD_INT32:
        return ((const int32_t *)t->data)[i];
    default:
        return NAN;
    }
}

static void failed(outcome *o, pipeline_status status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void failed(outcome *o, pipeline_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->error, sizeof(o->error), fmt, ap);
    va_end(ap);
    o->status = status;
}

static void run_step(run_context *ctx, step *s, scope *sc, int session, outcome *o);

/* ---- model and remote steps ---------------------------------------------- */

static void run_model(run_context *ctx, step *s, scope *sc, int session, outcome *o)
{
    const pipeline_request *rq = ctx->request;
    acquired got;
    char why[1024];
    acquire_result r = model_set_acquire(ctx->env->models, s->model, s->version, rq->headers, rq->header_context,
                                         &got, why, sizeof(why));
    if (r != ACQUIRE_OK) {
        failed(o, PIPELINE_UNAVAILABLE, "step '%s': model '%s': %s", s->name, s->model, why);
        return;
    }
    const ifd_model *m = got.version->model;
    size_t n_in = ifd_model_input_count(m), n_out = ifd_model_output_count(m);
    ifd_value **inputs = calloc(n_in ? n_in : 1, sizeof(*inputs));
    ifd_value **outputs = calloc(n_out ? n_out : 1, sizeof(*outputs));
    if (!inputs || !outputs) {
        failed(o, PIPELINE_INTERNAL, "step '%s': out of memory", s->name);
        goto done;
    }
    for (size_t i = 0; i < n_in; i++) {
        const ifd_io_info *io = ifd_model_input(m, i);
        const char *name = step_input_value(s, io->name);
        inputs[i] = scope_get(sc, name);
        if (!inputs[i]) {
            failed(o, PIPELINE_BAD_INPUT, "step '%s': input '%s' (the value '%s') is missing", s->name, io->name, name);
            goto done;
        }
        const ifd_tensor *t = &inputs[i]->tensor;
        if (inputs[i]->kind == IFD_VALUE_TENSOR &&
            !check_input_contract(io, t->dtype, t->rank, t->dims, why, sizeof(why))) {
            failed(o, PIPELINE_BAD_INPUT, "step '%s' (model '%s'): %s", s->name, s->model, why);
            goto done;
        }
    }
    if (model_set_run(ctx->env->models, got.version, session, inputs, outputs, why, sizeof(why)) != IFD_OK) {
        failed(o, PIPELINE_BAD_INPUT, "step '%s' (model '%s' version %s): %s", s->name, s->model,
               got.version->version, why);
        goto done;
    }
    for (size_t k = 0; k < n_out; k++) {
        if (!scope_put(sc, ifd_model_output(m, k)->name, outputs[k], true)) {
            failed(o, PIPELINE_INTERNAL, "step '%s': out of memory", s->name);
            for (size_t j = k; j < n_out; j++)
                ifd_value_free(outputs[j]);
            break;
        }
    }
    n_out = 0; /* handed to the scope */
done:
    for (size_t k = 0; outputs && k < n_out; k++)
        ifd_value_free(outputs[k]);
    free(inputs);
    free(outputs);
    model_version_unref(got.version);
}

static void run_remote(run_context *ctx, step *s, scope *sc, outcome *o)
{
    char why[1024];
    json_t *metadata = remote_metadata(s->remote, why, sizeof(why));
    if (!metadata) {
        failed(o, strstr(why, "timed out") || strstr(why, "Timeout") ? PIPELINE_TIMEOUT : PIPELINE_BAD_GATEWAY,
               "step '%s': %s", s->name, why);
        return;
    }
    const json_t *declared = json_object_get(metadata, "inputs");
    size_t n = json_array_size(declared);
    const char **names = calloc(n ? n : 1, sizeof(*names));
    ifd_value **values = calloc(n ? n : 1, sizeof(*values));
    char **out_names = NULL;
    ifd_value **outputs = NULL;
    size_t n_outputs = 0;
    if (!names || !values) {
        failed(o, PIPELINE_INTERNAL, "step '%s': out of memory", s->name);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        names[i] = json_string_value(json_object_get(json_array_get(declared, i), "name"));
        const char *value = names[i] ? step_input_value(s, names[i]) : NULL;
        values[i] = value ? scope_get(sc, value) : NULL;
        if (!values[i]) {
            failed(o, PIPELINE_BAD_INPUT, "step '%s': the remote input '%s' (the value '%s') is missing", s->name,
                   names[i] ? names[i] : "?", value ? value : "?");
            goto done;
        }
    }
    remote_call call = {.request_id = ctx->request->request_id, .trace_id = ctx->trace_id, .names = names,
                        .values = values, .n_inputs = n};
    int status = remote_infer(s->remote, &call, &out_names, &outputs, &n_outputs, why, sizeof(why));
    if (status != 200) {
        failed(o, status == 504 ? PIPELINE_TIMEOUT : PIPELINE_BAD_GATEWAY, "step '%s': %s", s->name, why);
        goto done;
    }
    for (size_t k = 0; k < n_outputs; k++) {
        if (!scope_put(sc, out_names[k], outputs[k], true)) {
            failed(o, PIPELINE_INTERNAL, "step '%s': out of memory", s->name);
            ifd_value_free(outputs[k]);
        }
        free(out_names[k]);
    }
done:
    free(out_names);
    free(outputs);
    free(names);
    free(values);
    json_decref(metadata);
}

/* ---- parallel ------------------------------------------------------------ */

typedef struct branch_job {
    run_context *ctx;
    step *step;
    scope values;
    outcome result;
} branch_job;

static void branch_main(void *arg, int session)
{
    branch_job *job = arg;
    run_step(job->ctx, job->step, &job->values, session, &job->result);
}

/* The name of the output a branch contributes to its parallel step. */
static const char *branch_output_name(const step *parallel, const branch_job *job)
{
    if (parallel->combine_output[0])
        return parallel->combine_output;
    if (job->step->n_outputs)
        return job->step->outputs[0].name;
    return job->values.n ? job->values.items[0].name : NULL;
}

static bool same_shape_except(const ifd_tensor *a, const ifd_tensor *b, int axis)
{
    if (a->rank != b->rank || a->dtype != b->dtype)
        return false;
    for (int d = 0; d < a->rank; d++)
        if (d != axis && a->dims[d] != b->dims[d])
            return false;
    return true;
}

static ifd_value *combine_concat(const step *s, ifd_value **in, size_t n, outcome *o)
{
    const ifd_tensor *first = &in[0]->tensor;
    int axis = s->axis;
    if (axis >= first->rank) {
        failed(o, PIPELINE_INTERNAL, "step '%s': concat axis %d is past rank %d", s->name, axis, first->rank);
        return NULL;
    }
    int64_t dims[IFD_MAX_RANK];
    memcpy(dims, first->dims, sizeof(dims));
    dims[axis] = 0;
    for (size_t i = 0; i < n; i++) {
        if (!same_shape_except(first, &in[i]->tensor, axis)) {
            failed(o, PIPELINE_BAD_GATEWAY, "step '%s': branch outputs differ in shape and cannot be joined", s->name);
            return NULL;
        }
        dims[axis] += in[i]->tensor.dims[axis];
    }
    ifd_value *out;
    ifd_error e;
    if (ifd_value_new_tensor(first->dtype, first->rank, dims, &out, &e) != IFD_OK) {
        failed(o, PIPELINE_INTERNAL, "step '%s': %s", s->name, e.message);
        return NULL;
    }
    size_t outer = 1, width = ifd_dtype_size(first->dtype);
    for (int d = 0; d < axis; d++)
        outer *= (size_t)first->dims[d];
    char *to = out->tensor.data;
    for (size_t r = 0; r < outer; r++)
        for (size_t i = 0; i < n; i++) {
            size_t inner = width;
            for (int d = axis; d < first->rank; d++)
                inner *= (size_t)in[i]->tensor.dims[d];
            memcpy(to, (const char *)in[i]->tensor.data + r * inner, inner);
            to += inner;
        }
    return out;
}

static ifd_value *combine_mean(const step *s, ifd_value **in, size_t n, outcome *o)
{
    ifd_value *out = tensor_clone(in[0]);
    if (!out) {
        failed(o, PIPELINE_INTERNAL, "step '%s': out of memory", s->name);
        return NULL;
    }
    size_t count = (size_t)ifd_tensor_count(&out->tensor);
    for (size_t i = 1; i < n; i++)
        if (!same_shape_except(&in[0]->tensor, &in[i]->tensor, -1)) {
            failed(o, PIPELINE_BAD_GATEWAY, "step '%s': branch outputs differ in shape and cannot be averaged",
                   s->name);
            ifd_value_free(out);
            return NULL;
        }
    for (size_t k = 0; k < count; k++) {
        double sum = 0;
        for (size_t i = 0; i < n; i++)
            sum += element(&in[i]->tensor, k);
        if (out->tensor.dtype == IFD_FLOAT)
            ((float *)out->tensor.data)[k] = (float)(sum / (double)n);
        else
            ((double *)out->tensor.data)[k] = sum / (double)n;
    }
    return out;
}

static bool rows_and_cols(const step *s, ifd_value **in, size_t n, size_t *rows, size_t *cols, outcome *o)
{
    *rows = in[0]->tensor.rank == 2 ? (size_t)in[0]->tensor.dims[0] : 0;
    for (size_t i = 0; i < n; i++)
        if (in[i]->tensor.rank != 2 || (size_t)in[i]->tensor.dims[0] != *rows) {
            failed(o, PIPELINE_BAD_GATEWAY, "step '%s': every branch must answer [rows, classes] for the same rows",
                   s->name);
            return false;
        }
    *cols = (size_t)in[0]->tensor.dims[1];
    return true;
}

static ifd_value *combine_vote(const step *s, ifd_value **in, size_t n, outcome *o)
{
    size_t rows, cols;
    if (!rows_and_cols(s, in, n, &rows, &cols, o))
        return NULL;
    size_t max_cols = 0;
    for (size_t i = 0; i < n; i++)
        if ((size_t)in[i]->tensor.dims[1] > max_cols)
            max_cols = (size_t)in[i]->tensor.dims[1];
    int64_t dims[1] = {(int64_t)rows};
    ifd_value *out;
    ifd_error e;
    unsigned *votes = calloc(max_cols ? max_cols : 1, sizeof(*votes));
    if (!votes || ifd_value_new_tensor(IFD_INT64, 1, dims, &out, &e) != IFD_OK) {
        free(votes);
        failed(o, PIPELINE_INTERNAL, "step '%s': out of memory", s->name);
        return NULL;
    }
    for (size_t r = 0; r < rows; r++) {
        memset(votes, 0, max_cols * sizeof(*votes));
        for (size_t i = 0; i < n; i++) {
            size_t c_n = (size_t)in[i]->tensor.dims[1], best = 0;
            for (size_t c = 1; c < c_n; c++)
                if (element(&in[i]->tensor, r * c_n + c) > element(&in[i]->tensor, r * c_n + best))
                    best = c;
            if (c_n)
                votes[best]++;
        }
        size_t winner = 0;
        for (size_t c = 1; c < max_cols; c++)
            if (votes[c] > votes[winner])
                winner = c;
        ((int64_t *)out->tensor.data)[r] = (int64_t)winner;
    }
    free(votes);
    return out;
}

static bool combine_max_score(const step *s, ifd_value **in, const char **labels, size_t n, scope *sc, outcome *o)
{
    size_t rows, cols;
    if (!rows_and_cols(s, in, n, &rows, &cols, o))
        return false;
    for (size_t i = 0; i < n; i++)
        if ((size_t)s->score_index >= (size_t)in[i]->tensor.dims[1]) {
            failed(o, PIPELINE_BAD_GATEWAY, "step '%s': branch '%s' answers %lld columns, no score column %d",
                   s->name, labels[i], (long long)in[i]->tensor.dims[1], s->score_index);
            return false;
        }
    int64_t dims[1] = {(int64_t)rows};
    ifd_value *label, *score;
    ifd_error e;
    if (ifd_value_new_tensor(IFD_STRING, 1, dims, &label, &e) != IFD_OK) {
        failed(o, PIPELINE_INTERNAL, "step '%s': %s", s->name, e.message);
        return false;
    }
    if (ifd_value_new_tensor(IFD_FLOAT, 1, dims, &score, &e) != IFD_OK) {
        ifd_value_free(label);
        failed(o, PIPELINE_INTERNAL, "step '%s': %s", s->name, e.message);
        return false;
    }
    for (size_t r = 0; r < rows; r++) {
        size_t best = 0;
        double best_score = -INFINITY;
        for (size_t i = 0; i < n; i++) {
            size_t c_n = (size_t)in[i]->tensor.dims[1];
            double v = element(&in[i]->tensor, r * c_n + (size_t)s->score_index);
            if (v > best_score) {
                best = i;
                best_score = v;
            }
        }
        ifd_string *text = &((ifd_string *)label->tensor.data)[r];
        text->data = strdup(labels[best]);
        text->size = text->data ? strlen(text->data) : 0;
        ((float *)score->tensor.data)[r] = (float)best_score;
    }
    char name[300];
    const char *base = strcmp(s->result_name, "output") ? s->result_name : "label";
    snprintf(name, sizeof(name), "%s_score", base);
    bool ok = scope_put(sc, base, label, true);
    if (!ok)
        ifd_value_free(label);
    if (!ok || !scope_put(sc, name, score, true)) {
        if (ok)
            ifd_value_free(score);
        failed(o, PIPELINE_INTERNAL, "step '%s': out of memory", s->name);
        return false;
    }
    return true;
}

static void run_parallel(run_context *ctx, step *s, scope *sc, int session, outcome *o)
{
    size_t n = s->n_branches;
    branch_job *jobs = calloc(n, sizeof(*jobs));
    void **args = calloc(n, sizeof(*args));
    ifd_value **scores = calloc(n, sizeof(*scores));
    bool *made = calloc(n, sizeof(*made));
    const char **labels = calloc(n, sizeof(*labels));
    if (!jobs || !args || !scores || !made || !labels) {
        failed(o, PIPELINE_INTERNAL, "step '%s': out of memory", s->name);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        jobs[i] = (branch_job){.ctx = ctx, .step = s->branches[i].step, .values = {.parent = sc},
                               .result = {.status = PIPELINE_OK}};
        args[i] = &jobs[i];
    }
    branch_pool_run(ctx->env->branches, branch_main, args, n, session);

    size_t present = 0;
    bool top = s == ctx->p->root;
    for (size_t i = 0; i < n && o->status == PIPELINE_OK; i++) {
        if (jobs[i].result.status != PIPELINE_OK) {
            if (!s->branches[i].optional) {
                *o = jobs[i].result;
                break;
            }
            char line[1200];
            snprintf(line, sizeof(line), "%s: %s", s->branches[i].label, jobs[i].result.error);
            pthread_mutex_lock(&ctx->lock);
            if (!ctx->skipped)
                ctx->skipped = json_array();
            json_array_append_new(ctx->skipped, json_string(line));
            pthread_mutex_unlock(&ctx->lock);
            continue;
        }
        if (s->combine == COMBINE_OBJECT && !top)
            continue;
        const char *name = branch_output_name(s, &jobs[i]);
        const ifd_value *v = name ? scope_get(&jobs[i].values, name) : NULL;
        ifd_value *t = as_score_tensor(v, &made[present]);
        if (!t && s->combine != COMBINE_OBJECT) {
            failed(o, PIPELINE_BAD_GATEWAY, "step '%s': branch '%s' gave no tensor output '%s' to combine", s->name,
                   s->branches[i].label, name ? name : "?");
            break;
        }
        if (top && ctx->branch_outputs)
            ctx->branch_outputs[i] = t ? tensor_clone(t) : NULL;
        if (!t)
            continue;
        scores[present] = t;
        labels[present] = s->branches[i].label;
        present++;
    }
    if (o->status != PIPELINE_OK)
        goto done;
    if (s->combine == COMBINE_OBJECT) {
        for (size_t i = 0; i < n; i++) {
            if (jobs[i].result.status != PIPELINE_OK)
                continue;
            scope *b = &jobs[i].values;
            for (size_t k = 0; k < b->n; k++) {
                char name[600];
                snprintf(name, sizeof(name), "%s.%s", s->branches[i].label, b->items[k].name);
                ifd_value *v = scope_take(b, b->items[k].name);
                if (v && !scope_put(sc, name, v, true)) {
                    ifd_value_free(v);
                    failed(o, PIPELINE_INTERNAL, "step '%s': out of memory", s->name);
                }
            }
        }
        goto done;
    }
    if (!present) {
        failed(o, PIPELINE_BAD_GATEWAY, "step '%s': every branch failed", s->name);
        goto done;
    }
    for (size_t i = 1; i < present; i++)
        if (scores[i]->tensor.dtype != scores[0]->tensor.dtype) {
            failed(o, PIPELINE_BAD_GATEWAY, "step '%s': branches answer different dtypes", s->name);
            goto done;
        }
    ifd_value *combined = NULL;
    switch (s->combine) {
    case COMBINE_CONCAT:
        combined = combine_concat(s, scores, present, o);
        break;
    case COMBINE_MEAN:
        combined = combine_mean(s, scores, present, o);
        break;
    case COMBINE_VOTE:
        combined = combine_vote(s, scores, present, o);
        break;
    case COMBINE_MAX_SCORE:
        combine_max_score(s, scores, labels, present, sc, o);
        break;
    case COMBINE_OBJECT:
        break;
    }
    if (combined && !scope_put(sc, s->result_name, combined, true)) {
        ifd_value_free(combined);
        failed(o, PIPELINE_INTERNAL, "step '%s': out of memory", s->name);
    }
done:
    for (size_t i = 0; made && scores && i < n; i++)
        if (made[i])
            ifd_value_free(scores[i]);
    for (size_t i = 0; jobs && i < n; i++)
        scope_free(&jobs[i].values);
    free(jobs);
    free(args);
    free(scores);
    free(made);
    free(labels);
}

/* ---- switch -------------------------------------------------------------- */

static bool case_matches(const switch_case *c, const ifd_tensor *t, size_t row, size_t cols, int index)
{
    switch (c->test) {
    case SWITCH_DEFAULT:
        return true;
    case SWITCH_EQUALS:
        if (t->dtype == IFD_STRING) {
            const ifd_string *v = &((const ifd_string *)t->data)[row * cols];
            const char *want = json_string_value(c->equals);
            return want && strlen(want) == v->size && memcmp(want, v->data, v->size) == 0;
        }
        return json_is_integer(c->equals) && element(t, row * cols) == (double)json_integer_value(c->equals);
    case SWITCH_ABOVE:
        return element(t, row * cols + (size_t)index) > c->threshold;
    case SWITCH_BELOW:
        return element(t, row * cols + (size_t)index) < c->threshold;
    }
    return false;
}

static void run_switch(run_context *ctx, step *s, scope *sc, int session, outcome *o)
{
    const ifd_value *on = scope_get(sc, s->on);
    bool made;
    ifd_value *t = as_score_tensor(on, &made);
    if (!t) {
        failed(o, PIPELINE_BAD_INPUT, "step '%s': the value '%s' it tests is missing or not a tensor", s->name, s->on);
        return;
    }
    size_t count = (size_t)ifd_tensor_count(&t->tensor);
    size_t rows = t->tensor.rank >= 1 ? (size_t)t->tensor.dims[0] : 1;
    size_t cols = rows ? count / rows : 0;
    size_t chosen = s->n_cases;
    for (size_t r = 0; r < rows && o->status == PIPELINE_OK; r++) {
        size_t k = 0;
        while (k < s->n_cases &&
               !((s->cases[k].test == SWITCH_EQUALS || (size_t)s->on_index < cols) &&
                 case_matches(&s->cases[k], &t->tensor, r, cols, s->on_index)))
            k++;
        if (k == s->n_cases)
            failed(o, PIPELINE_BAD_INPUT, "step '%s': no case matches row %zu of '%s' and there is no default", s->name,
                   r, s->on);
        else if (chosen != s->n_cases && chosen != k)
            failed(o, PIPELINE_BAD_INPUT, "step '%s': the rows of one request choose different cases (rows 0 and %zu); "
                   "send them as separate requests", s->name, r);
        chosen = k;
    }
    if (made)
        ifd_value_free(t);
    if (o->status == PIPELINE_OK && chosen < s->n_cases)
        run_step(ctx, s->cases[chosen].step, sc, session, o);
}

/* ---- every step ---------------------------------------------------------- */

static const char *kind_name(step_kind kind)
{
    static const char *const names[] = {"model", "remote", "sequence", "parallel", "switch"};
    return names[kind];
}

static void run_step(run_context *ctx, step *s, scope *sc, int session, outcome *o)
{
    double start = now_seconds();
    switch (s->kind) {
    case STEP_MODEL:
        run_model(ctx, s, sc, session, o);
        break;
    case STEP_REMOTE:
        run_remote(ctx, s, sc, o);
        break;
    case STEP_SEQUENCE:
        for (size_t i = 0; i < s->n_steps && o->status == PIPELINE_OK; i++)
            run_step(ctx, s->steps[i], sc, session, o);
        break;
    case STEP_PARALLEL:
        run_parallel(ctx, s, sc, session, o);
        break;
    case STEP_SWITCH:
        run_switch(ctx, s, sc, session, o);
        break;
    }
    double seconds = now_seconds() - start;
    bool bad = o->status != PIPELINE_OK;
    step_stats_observe(s->stats, seconds, bad);
    const char *rid = ctx->request->request_id ? ctx->request->request_id : "";
    char took[32];
    snprintf(took, sizeof(took), "%.6f", seconds);
    if (bad && (s->kind == STEP_MODEL || s->kind == STEP_REMOTE))
        log_event(LOG_WARNING, "pipeline step failed", "request_id", rid, "pipeline", ctx->p->name, "step", s->name,
                  "seconds", took, "error", o->error, NULL);
    else if (log_enabled(LOG_DEBUG))
        log_event(LOG_DEBUG, "pipeline step", "request_id", rid, "pipeline", ctx->p->name, "step", s->name, "seconds",
                  took, NULL);
    if (ctx->request->trace) {
        pthread_mutex_lock(&ctx->lock);
        if (!ctx->trace)
            ctx->trace = json_array();
        json_array_append_new(ctx->trace, json_pack("{s:s, s:s, s:f, s:i}", "step", s->name, "kind",
                                                    kind_name(s->kind), "seconds", seconds, "status",
                                                    bad ? (int)o->status : 200));
        pthread_mutex_unlock(&ctx->lock);
    }
}

static void trace_id_of(const char *traceparent, char out[33])
{
    /* 00-<32 hex trace id>-<16 hex parent id>-<2 hex flags> */
    if (traceparent && strlen(traceparent) >= 55 && traceparent[2] == '-' && traceparent[35] == '-') {
        bool hex = true;
        for (int i = 3; i < 35 && hex; i++)
            hex = strchr("0123456789abcdef", traceparent[i]) != NULL && traceparent[i];
        if (hex && strncmp(traceparent + 3, "00000000000000000000000000000000", 32) != 0) {
            memcpy(out, traceparent + 3, 32);
            out[32] = '\0';
            return;
        }
    }
    unsigned char random_bytes[16] = {0};
    if (getrandom(random_bytes, sizeof(random_bytes), 0) != (ssize_t)sizeof(random_bytes)) {
        double t = now_seconds();
        memcpy(random_bytes, &t, sizeof(t));
    }
    random_bytes[0] |= 1; /* never all zeros */
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", random_bytes[i]);
}

void pipeline_run(pipeline *p, const pipeline_env *env, const pipeline_request *request, ifd_value *const *inputs,
                  pipeline_result *result)
{
    memset(result, 0, sizeof(*result));
    run_context ctx = {.p = p, .env = env, .request = request};
    pthread_mutex_init(&ctx.lock, NULL);
    trace_id_of(request->traceparent, ctx.trace_id);
    size_t n_branches = pipeline_branch_count(p);
    if (n_branches)
        ctx.branch_outputs = result->branch_outputs = calloc(n_branches, sizeof(*result->branch_outputs));
    scope values = {0};
    outcome o = {.status = PIPELINE_OK};
    for (size_t i = 0; i < p->n_inputs && o.status == PIPELINE_OK; i++)
        if (!scope_put(&values, p->inputs[i].name, inputs[i], false))
            failed(&o, PIPELINE_INTERNAL, "out of memory");
    if (o.status == PIPELINE_OK)
        run_step(&ctx, p->root, &values, request->session, &o);
    if (o.status == PIPELINE_OK) {
        result->outputs = calloc(p->n_outputs ? p->n_outputs : 1, sizeof(*result->outputs));
        for (size_t i = 0; result->outputs && i < p->n_outputs && o.status == PIPELINE_OK; i++) {
            ifd_value *v = scope_take(&values, p->outputs[i].name);
            if (!v)
                v = tensor_clone(scope_get(&values, p->outputs[i].name));
            result->outputs[i] = v;
            if (!v)
                failed(&o, PIPELINE_BAD_GATEWAY, "the output '%s' was not produced (a remote step answered other "
                       "outputs than its metadata promised?)", p->outputs[i].name);
        }
        if (!result->outputs)
            failed(&o, PIPELINE_INTERNAL, "out of memory");
    }
    scope_free(&values);
    result->status = o.status;
    snprintf(result->error, sizeof(result->error), "%s", o.status == PIPELINE_OK ? "" : o.error);
    result->trace = ctx.trace;
    result->skipped = ctx.skipped;
    pthread_mutex_destroy(&ctx.lock);
}

void pipeline_result_free(pipeline *p, pipeline_result *result)
{
    for (size_t i = 0; result->outputs && i < p->n_outputs; i++)
        ifd_value_free(result->outputs[i]);
    free(result->outputs);
    for (size_t i = 0; result->branch_outputs && i < pipeline_branch_count(p); i++)
        ifd_value_free(result->branch_outputs[i]);
    free(result->branch_outputs);
    json_decref(result->trace);
    json_decref(result->skipped);
    memset(result, 0, sizeof(*result));
}
