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
 * Steps run in continuation-passing style: each step is started with what
 * follows it (a `then` function), and calls it when it is done. Most steps
 * finish before they return and go on at once; a model step whose version
 * batches queues on the batch queue (model_set_submit) and returns, and
 * the run goes on from the batch's completion. That completion runs on
 * the batcher's thread (or on a worker leading a batch), which has no
 * engine session of this run's and must not run the next steps, so the
 * run is resumed where a session is: on a branch thread of the pipeline
 * set (pipeline_run_then: the HTTP worker that started the run was given
 * back when the first batch queued) or on the thread waiting in
 * pipeline_run. A batch that answered before model_set_submit returned
 * (a lone request, run by the submitting thread) goes on in the submitter,
 * without a hand-over. So a pipeline of N model steps holds no worker
 * while its requests wait for batches, and the batches of a pipeline's
 * models form from many concurrent runs. Parallel branches count down:
 * the last branch to finish (or the step that started them, whichever is
 * later) combines them and goes on.
 *
 * The first failure of a required step decides the answer: 400 for a
 * request the entry steps refuse, 503 for a model that serves nothing,
 * 429/504 from a model's batch queue, 502/504 from remote steps; every
 * message starts with the step's name.
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

typedef struct outcome {
    pipeline_status status;
    char error[1024];
} outcome;

typedef struct run_context {
    pipeline *p;
    const pipeline_env *env;
    pipeline_request request; /* a copy: the caller's goes away when a batch answers later */
    char trace_id[33];
    pthread_mutex_t lock; /* trace, skipped (written by branches) and the waiter's queue */
    json_t *trace;
    json_t *skipped;
    ifd_value **branch_outputs; /* the root's branches, for the book's fan-out answers */
    scope values;               /* the request's inputs (borrowed) and the root's outputs */
    outcome o;
    pipeline_result result;
    /* pipeline_run: the calling thread waits and runs the resumed steps itself */
    bool waiting, finished;
    pthread_cond_t wake;
    branch_post *ready, **ready_tail;
    /* pipeline_run_then */
    pipeline_done done;
    void *done_context;
} run_context;

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

/* What follows a step: called once, with the session of the calling thread. */
typedef branch_fn then_fn;

/* A step being run: where it reads and writes, and what follows it. */
typedef struct frame {
    run_context *ctx;
    step *s;
    scope *sc;
    outcome *o;
    double start;
    then_fn then;
    void *then_arg;
    size_t next; /* sequence: the next of its steps */
} frame;

static void run_step(run_context *ctx, step *s, scope *sc, outcome *o, int session, then_fn then, void *then_arg);
static void step_done(frame *f, int session);

static void step_done_then(void *arg, int session)
{
    step_done(arg, session);
}

/* Go on with `post` where an engine session is: the waiting caller's
 * thread (pipeline_run) or a branch thread (pipeline_run_then). */
static void resume(run_context *ctx, branch_post *post)
{
    if (ctx->waiting) {
        pthread_mutex_lock(&ctx->lock);
        post->next = NULL;
        *ctx->ready_tail = post;
        ctx->ready_tail = &post->next;
        pthread_cond_signal(&ctx->wake);
        pthread_mutex_unlock(&ctx->lock); /* the waiter may free ctx from here on */
        return;
    }
    /* only when the pool stops (the server has answered every request by
     * then): go on here without a session; a model step that would need
     * one fails with 503 */
    if (!branch_pool_post(ctx->env->branches, post))
        post->fn(post->arg, -1);
}

/* ---- model and remote steps ---------------------------------------------- */

/* A model step under way, on the heap: its batch may answer after
 * run_model returned. */
typedef struct model_call {
    frame *f;
    model_version *version;
    ifd_value **inputs, **outputs;
    size_t n_out;
    int arrivals; /* atomic: model_set_submit's return and the batch's answer; the second goes on */
    int http_status;
    char error[1024];
    branch_post post;
} model_call;

static pipeline_status status_of_http(int http_status)
{
    switch (http_status) {
    case 400: return PIPELINE_BAD_INPUT; /* the engine refused the inputs */
    case 429: return PIPELINE_BUSY;
    case 503: return PIPELINE_UNAVAILABLE;
    case 504: return PIPELINE_TIMEOUT;
    default: return PIPELINE_INTERNAL;
    }
}

static void model_call_end(model_call *mc, int session)
{
    frame *f = mc->f;
    for (size_t k = 0; mc->outputs && k < mc->n_out; k++)
        ifd_value_free(mc->outputs[k]);
    free(mc->inputs);
    free(mc->outputs);
    if (mc->version)
        model_version_unref(mc->version);
    free(mc);
    step_done(f, session);
}

/* The model ran (or was refused): its outputs join the scope. */
static void model_finish(model_call *mc, int session)
{
    frame *f = mc->f;
    step *s = f->s;
    if (mc->http_status != 200) {
        failed(f->o, status_of_http(mc->http_status), "step '%s' (model '%s' version %s): %s", s->name, s->model,
               mc->version->version, mc->error);
    } else {
        const ifd_model *m = mc->version->model;
        for (size_t k = 0; k < mc->n_out; k++) {
            if (!scope_put(f->sc, ifd_model_output(m, k)->name, mc->outputs[k], true)) {
                failed(f->o, PIPELINE_INTERNAL, "step '%s': out of memory", s->name);
                continue; /* freed by model_call_end */
            }
            mc->outputs[k] = NULL; /* the scope's now */
        }
    }
    model_call_end(mc, session);
}

static void model_resumed(void *arg, int session)
{
    model_finish(arg, session);
}

/* model_set_submit's completion, on whichever thread ran the batch. */
static void model_answered(void *context, int http_status, const char *error)
{
    model_call *mc = context;
    mc->http_status = http_status;
    if (http_status != 200)
        snprintf(mc->error, sizeof(mc->error), "%s", error && *error ? error : "the batch failed");
    if (__atomic_add_fetch(&mc->arrivals, 1, __ATOMIC_ACQ_REL) == 2)
        resume(mc->f->ctx, &mc->post); /* the submitter has returned: go on elsewhere */
}

static void run_model(frame *f, int session)
{
    run_context *ctx = f->ctx;
    step *s = f->s;
    outcome *o = f->o;
    const pipeline_request *rq = &ctx->request;
    model_call *mc = calloc(1, sizeof(*mc));
    if (!mc) {
        failed(o, PIPELINE_INTERNAL, "step '%s': out of memory", s->name);
        step_done(f, session);
        return;
    }
    mc->f = f;
    mc->post = (branch_post){.fn = model_resumed, .arg = mc};
    acquired got;
    char why[1024];
    acquire_result r = model_set_acquire(ctx->env->models, s->model, s->version, rq->headers, rq->header_context,
                                         &got, why, sizeof(why));
    if (r != ACQUIRE_OK) {
        failed(o, PIPELINE_UNAVAILABLE, "step '%s': model '%s': %s", s->name, s->model, why);
        model_call_end(mc, session);
        return;
    }
    mc->version = got.version;
    const ifd_model *m = got.version->model;
    size_t n_in = ifd_model_input_count(m);
    mc->n_out = ifd_model_output_count(m);
    mc->inputs = calloc(n_in ? n_in : 1, sizeof(*mc->inputs));
    mc->outputs = calloc(mc->n_out ? mc->n_out : 1, sizeof(*mc->outputs));
    if (!mc->inputs || !mc->outputs) {
        failed(o, PIPELINE_INTERNAL, "step '%s': out of memory", s->name);
        model_call_end(mc, session);
        return;
    }
    for (size_t i = 0; i < n_in; i++) {
        const ifd_io_info *io = ifd_model_input(m, i);
        const char *name = step_input_value(s, io->name);
        ifd_value *v = scope_get(f->sc, name);
        if (!v) {
            failed(o, PIPELINE_BAD_INPUT, "step '%s': input '%s' (the value '%s') is missing", s->name, io->name, name);
            model_call_end(mc, session);
            return;
        }
        const ifd_tensor *t = &v->tensor;
        if (v->kind == IFD_VALUE_TENSOR && !check_input_contract(io, t->dtype, t->rank, t->dims, why, sizeof(why))) {
            failed(o, PIPELINE_BAD_INPUT, "step '%s' (model '%s'): %s", s->name, s->model, why);
            model_call_end(mc, session);
            return;
        }
        mc->inputs[i] = v;
    }
    if (model_set_batches(got.version)) {
        /* queue with the other requests of this version and give the
         * thread back; the batch's answer goes on (model_answered) */
        int refused = model_set_submit(ctx->env->models, got.version, session, mc->inputs, mc->outputs, rq->deadline,
                                       model_answered, mc, why, sizeof(why));
        if (refused) {
            mc->http_status = refused;
            snprintf(mc->error, sizeof(mc->error), "%s", why);
            model_finish(mc, session);
        } else if (__atomic_add_fetch(&mc->arrivals, 1, __ATOMIC_ACQ_REL) == 2) {
            model_finish(mc, session); /* answered before submit returned: go on here */
        }
        return;
    }
    if (session < 0) {
        mc->http_status = 503;
        snprintf(mc->error, sizeof(mc->error), "the server is stopping");
    } else {
        mc->http_status = model_set_run(ctx->env->models, got.version, session, mc->inputs, mc->outputs, mc->error,
                                        sizeof(mc->error)) == IFD_OK ? 200 : 400;
    }
    model_finish(mc, session);
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
    remote_call call = {.request_id = ctx->request.request_id, .trace_id = ctx->trace_id, .names = names,
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

typedef struct parallel_run parallel_run;

typedef struct branch_job {
    parallel_run *par;
    step *step;
    scope values;
    outcome result;
} branch_job;

/* A parallel step under way: its branches may finish on other threads,
 * after run_parallel returned. */
struct parallel_run {
    frame *f;
    size_t n;
    branch_job *jobs;
    void **args;
    /* atomic: the branches not finished, plus one for run_parallel until
     * it has started them all; who takes it to 0 combines and goes on */
    int unfinished;
};

static void parallel_combine(parallel_run *par);

static void parallel_arrive(parallel_run *par, int session)
{
    if (__atomic_sub_fetch(&par->unfinished, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    frame *f = par->f;
    parallel_combine(par);
    for (size_t i = 0; i < par->n; i++)
        scope_free(&par->jobs[i].values);
    free(par->jobs);
    free(par->args);
    free(par);
    step_done(f, session);
}

static void branch_finished(void *arg, int session)
{
    branch_job *job = arg;
    parallel_arrive(job->par, session);
}

static void branch_main(void *arg, int session)
{
    branch_job *job = arg;
    run_step(job->par->f->ctx, job->step, &job->values, &job->result, session, branch_finished, job);
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

/* Combine the finished branches of a parallel step into its scope. */
static void parallel_combine(parallel_run *par)
{
    frame *f = par->f;
    run_context *ctx = f->ctx;
    step *s = f->s;
    scope *sc = f->sc;
    outcome *o = f->o;
    size_t n = par->n;
    branch_job *jobs = par->jobs;
    ifd_value **scores = calloc(n, sizeof(*scores));
    bool *made = calloc(n, sizeof(*made));
    const char **labels = calloc(n, sizeof(*labels));
    if (!scores || !made || !labels) {
        failed(o, PIPELINE_INTERNAL, "step '%s': out of memory", s->name);
        goto done;
    }

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
    free(scores);
    free(made);
    free(labels);
}

static void run_parallel(frame *f, int session)
{
    step *s = f->s;
    size_t n = s->n_branches;
    parallel_run *par = calloc(1, sizeof(*par));
    branch_job *jobs = calloc(n, sizeof(*jobs));
    void **args = calloc(n, sizeof(*args));
    if (!par || !jobs || !args) {
        free(par);
        free(jobs);
        free(args);
        failed(f->o, PIPELINE_INTERNAL, "step '%s': out of memory", s->name);
        step_done(f, session);
        return;
    }
    *par = (parallel_run){.f = f, .n = n, .jobs = jobs, .args = args, .unfinished = (int)n + 1};
    for (size_t i = 0; i < n; i++) {
        jobs[i] = (branch_job){.par = par, .step = s->branches[i].step, .values = {.parent = f->sc},
                               .result = {.status = PIPELINE_OK}};
        args[i] = &jobs[i];
    }
    /* returns when every branch has started and run as far as it could
     * without a batch; those waiting for one finish later */
    branch_pool_run(f->ctx->env->branches, branch_main, args, n, session);
    parallel_arrive(par, session);
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

static void run_switch(frame *f, int session)
{
    step *s = f->s;
    outcome *o = f->o;
    const ifd_value *on = scope_get(f->sc, s->on);
    bool made;
    ifd_value *t = as_score_tensor(on, &made);
    if (!t) {
        failed(o, PIPELINE_BAD_INPUT, "step '%s': the value '%s' it tests is missing or not a tensor", s->name, s->on);
        step_done(f, session);
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
        run_step(f->ctx, s->cases[chosen].step, f->sc, o, session, step_done_then, f);
    else
        step_done(f, session);
}

/* ---- every step ---------------------------------------------------------- */

static const char *kind_name(step_kind kind)
{
    static const char *const names[] = {"model", "remote", "sequence", "parallel", "switch"};
    return names[kind];
}

/* A sequence's steps one after another, each going on with the next. */
static void sequence_next(void *arg, int session)
{
    frame *f = arg;
    if (f->next < f->s->n_steps && f->o->status == PIPELINE_OK) {
        step *next = f->s->steps[f->next++];
        run_step(f->ctx, next, f->sc, f->o, session, sequence_next, f);
        return;
    }
    step_done(f, session);
}

static void run_step(run_context *ctx, step *s, scope *sc, outcome *o, int session, then_fn then, void *then_arg)
{
    frame *f = malloc(sizeof(*f));
    if (!f) {
        failed(o, PIPELINE_INTERNAL, "step '%s': out of memory", s->name);
        then(then_arg, session);
        return;
    }
    *f = (frame){.ctx = ctx, .s = s, .sc = sc, .o = o, .start = now_seconds(), .then = then, .then_arg = then_arg};
    switch (s->kind) {
    case STEP_MODEL:
        run_model(f, session);
        break;
    case STEP_REMOTE:
        run_remote(ctx, s, sc, o);
        step_done(f, session);
        break;
    case STEP_SEQUENCE:
        sequence_next(f, session);
        break;
    case STEP_PARALLEL:
        run_parallel(f, session);
        break;
    case STEP_SWITCH:
        run_switch(f, session);
        break;
    }
}

/* A step finished (its time includes any wait for a batch): its
 * statistics, log line and trace entry, then what follows it. */
static void step_done(frame *f, int session)
{
    run_context *ctx = f->ctx;
    step *s = f->s;
    outcome *o = f->o;
    double seconds = now_seconds() - f->start;
    bool bad = o->status != PIPELINE_OK;
    step_stats_observe(s->stats, seconds, bad);
    const char *rid = ctx->request.request_id ? ctx->request.request_id : "";
    char took[32];
    snprintf(took, sizeof(took), "%.6f", seconds);
    if (bad && (s->kind == STEP_MODEL || s->kind == STEP_REMOTE))
        log_event(LOG_WARNING, "pipeline step failed", "request_id", rid, "pipeline", ctx->p->name, "step", s->name,
                  "seconds", took, "error", o->error, NULL);
    else if (log_enabled(LOG_DEBUG))
        log_event(LOG_DEBUG, "pipeline step", "request_id", rid, "pipeline", ctx->p->name, "step", s->name, "seconds",
                  took, NULL);
    if (ctx->request.trace) {
        pthread_mutex_lock(&ctx->lock);
        if (!ctx->trace)
            ctx->trace = json_array();
        json_array_append_new(ctx->trace, json_pack("{s:s, s:s, s:f, s:i}", "step", s->name, "kind",
                                                    kind_name(s->kind), "seconds", seconds, "status",
                                                    bad ? (int)o->status : 200));
        pthread_mutex_unlock(&ctx->lock);
    }
    then_fn then = f->then;
    void *then_arg = f->then_arg;
    free(f);
    then(then_arg, session);
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

/* The root step finished: the result, then the caller is told. */
static void run_finished(void *arg, int session)
{
    (void)session;
    run_context *ctx = arg;
    pipeline *p = ctx->p;
    pipeline_result *result = &ctx->result;
    outcome *o = &ctx->o;
    if (o->status == PIPELINE_OK) {
        result->outputs = calloc(p->n_outputs ? p->n_outputs : 1, sizeof(*result->outputs));
        for (size_t i = 0; result->outputs && i < p->n_outputs && o->status == PIPELINE_OK; i++) {
            ifd_value *v = scope_take(&ctx->values, p->outputs[i].name);
            if (!v)
                v = tensor_clone(scope_get(&ctx->values, p->outputs[i].name));
            result->outputs[i] = v;
            if (!v)
                failed(o, PIPELINE_BAD_GATEWAY, "the output '%s' was not produced (a remote step answered other "
                       "outputs than its metadata promised?)", p->outputs[i].name);
        }
        if (!result->outputs)
            failed(o, PIPELINE_INTERNAL, "out of memory");
    }
    scope_free(&ctx->values);
    result->status = o->status;
    snprintf(result->error, sizeof(result->error), "%s", o->status == PIPELINE_OK ? "" : o->error);
    pthread_mutex_lock(&ctx->lock);
    result->trace = ctx->trace;
    result->skipped = ctx->skipped;
    ctx->trace = ctx->skipped = NULL;
    if (ctx->waiting) {
        ctx->finished = true;
        pthread_cond_signal(&ctx->wake);
        pthread_mutex_unlock(&ctx->lock); /* the waiter frees ctx from here on */
        return;
    }
    pthread_mutex_unlock(&ctx->lock);
    ctx->done(ctx->done_context, result);
    pipeline_result_free(p, result);
    pthread_mutex_destroy(&ctx->lock);
    pthread_cond_destroy(&ctx->wake);
    free(ctx);
}

/* A run's context with the request's inputs in its scope; NULL when out of memory. */
static run_context *run_context_new(pipeline *p, const pipeline_env *env, const pipeline_request *request,
                                    ifd_value *const *inputs)
{
    run_context *ctx = calloc(1, sizeof(*ctx));
    if (!ctx)
        return NULL;
    *ctx = (run_context){.p = p, .env = env, .request = *request, .o = {.status = PIPELINE_OK}};
    ctx->ready_tail = &ctx->ready;
    pthread_mutex_init(&ctx->lock, NULL);
    pthread_cond_init(&ctx->wake, NULL);
    trace_id_of(request->traceparent, ctx->trace_id);
    size_t n_branches = pipeline_branch_count(p);
    if (n_branches)
        ctx->branch_outputs = ctx->result.branch_outputs = calloc(n_branches, sizeof(*ctx->result.branch_outputs));
    for (size_t i = 0; i < p->n_inputs && ctx->o.status == PIPELINE_OK; i++)
        if (!scope_put(&ctx->values, p->inputs[i].name, inputs[i], false))
            failed(&ctx->o, PIPELINE_INTERNAL, "out of memory");
    return ctx;
}

static void run_start(run_context *ctx, int session)
{
    if (ctx->o.status == PIPELINE_OK)
        run_step(ctx, ctx->p->root, &ctx->values, &ctx->o, session, run_finished, ctx);
    else
        run_finished(ctx, session);
}

void pipeline_run(pipeline *p, const pipeline_env *env, const pipeline_request *request, ifd_value *const *inputs,
                  pipeline_result *result)
{
    memset(result, 0, sizeof(*result));
    run_context *ctx = run_context_new(p, env, request, inputs);
    if (!ctx) {
        result->status = PIPELINE_INTERNAL;
        snprintf(result->error, sizeof(result->error), "out of memory");
        return;
    }
    ctx->waiting = true;
    run_start(ctx, request->session);
    /* steps whose batch answered on another thread come back here */
    pthread_mutex_lock(&ctx->lock);
    while (!ctx->finished) {
        branch_post *post = ctx->ready;
        if (!post) {
            pthread_cond_wait(&ctx->wake, &ctx->lock);
            continue;
        }
        ctx->ready = post->next;
        if (!ctx->ready)
            ctx->ready_tail = &ctx->ready;
        pthread_mutex_unlock(&ctx->lock);
        post->fn(post->arg, request->session);
        pthread_mutex_lock(&ctx->lock);
    }
    pthread_mutex_unlock(&ctx->lock);
    *result = ctx->result;
    pthread_mutex_destroy(&ctx->lock);
    pthread_cond_destroy(&ctx->wake);
    free(ctx);
}

void pipeline_run_then(pipeline *p, const pipeline_env *env, const pipeline_request *request,
                       ifd_value *const *inputs, pipeline_done done, void *context)
{
    run_context *ctx = branch_pool_threads(env->branches) ? run_context_new(p, env, request, inputs) : NULL;
    if (!ctx) { /* no branch thread could go on after a batch: run here */
        pipeline_result result;
        pipeline_run(p, env, request, inputs, &result);
        done(context, &result);
        pipeline_result_free(p, &result);
        return;
    }
    ctx->done = done;
    ctx->done_context = context;
    run_start(ctx, request->session);
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
