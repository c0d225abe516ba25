/*
 * batcher.c — adaptive batching of one model version (see batcher.h).
 *
 * The policy. Requests queue in FIFO order and one batch runs at a time;
 * while it runs, new requests queue, so under load the next batch is
 * whatever arrived meanwhile ("natural" batching, which delays no one).
 * Who runs it: a worker that submits while no batch runs becomes the
 * runner (a leader, as in leader/follower servers): it runs what is ready
 * on its own thread, answers the members from there, and goes on with the
 * batch that queued meanwhile until none is ready. So a lone request runs
 * at once with no hand-over, and under load no thread is woken per batch
 * (on a digits model a wake-up and a context switch cost more than the
 * engine call). The batcher's own thread runs a batch only when it must
 * wait to form: a leader leaves it and that thread times the wait.
 * On top of natural batching a batch may wait a little to form, and only
 * when waiting pays, as BentoML's adaptive batcher
 * estimates it: from the measured duration of an engine call (an
 * exponentially weighted average) and the measured gap between arrivals
 * (likewise). It closes the batch at once when
 *   - the batch has max_batch_size rows, or exactly one of the
 *     preferred_batch_sizes;
 *   - requests arrive more slowly than a call runs (gap >= run time): then
 *     a lone request would only wait for company that is not coming, so a
 *     lone request at low load runs at once (the estimates start at "no
 *     batching pays" until a call was measured);
 *   - the next arrival is not expected before the oldest request has waited
 *     max_queue_delay_us;
 * and otherwise waits for the batch to form, re-deciding one expected gap
 * after the next expected arrival, or at once when the queue holds a full
 * or preferred batch (arrivals do not wake it otherwise: a wake-up per
 * request is a context switch per request), and never past the oldest
 * request's max_queue_delay_us. So the added wait is bounded by max_queue_delay_us,
 * and the latency of a request is at most that plus the batch running
 * when it arrived plus its own batch.
 *
 * What merges. A batch takes, in queue order, the requests whose inputs
 * agree with the oldest one's in dtype, rank and every dimension but the
 * first, up to max_batch_size rows in total; the others keep their place
 * for the next batch (so shapes never merge and no one is starved: the
 * oldest request is always in the next batch). A request whose inputs
 * cannot be concatenated (a string or scalar input, inputs that disagree on
 * their row count, more rows than max_batch_size) runs alone; the model set
 * keeps such requests out of the queue altogether (batcher_would_merge) and
 * runs them on the caller's session. Outputs are
 * split back by rows: a tensor whose first dimension is the batch's row
 * count, or a sequence (scikit-learn's ZipMap) with one item per row. If a
 * model's outputs do not split that way, the batch is re-run one request
 * at a time and the batcher stops merging for that model.
 *
 * Failures. An engine error in a batch answers every member with the
 * error (no member ever gets another's rows). A request whose deadline
 * passes while it waits is answered BATCH_DEADLINE when it passes (a
 * second, mostly sleeping thread watches the deadlines, so a long batch
 * running meanwhile does not hold the answer back).
 * The queue holds at most max_queue requests; more are refused at once.
 */
#include "batcher.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const double batch_size_bounds[BATCH_SIZE_BUCKETS] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512};
const double batch_delay_bounds[BATCH_DELAY_BUCKETS] = {0.00005, 0.0001, 0.00025, 0.0005,
                                                        0.001,   0.0025, 0.005,   0.01,
                                                        0.025,   0.05,   0.1,     1.0};

/* Weight of a new measurement in the running averages. */
#define EWMA_ALPHA 0.2

/* Batches a leader runs before it leaves the rest to the batch thread: its
 * thread is a worker or a gRPC queue thread, which other work needs too,
 * and on several cores arrivals could keep it running batches for ever. */
#define LEADER_MAX_BATCHES 8

/* A submitting thread leads only while a batch's engine call is this
 * short (the running average): the hand-over it saves costs a few
 * microseconds, which matters beside a call of a few microseconds, not
 * beside a long one; and the batch thread, scheduled like every other
 * thread on a busy core, lets longer batches form, which pays on models
 * whose rows get cheaper in a batch (measured, bench/RESULTS.md: wide_mlp
 * 2.22x with the thread vs 2.04x with leaders). */
#define LEADER_MAX_RUN_SECONDS 50e-6

typedef struct pending {
    struct pending *next;
    ifd_value *const *inputs;
    ifd_value **outputs;
    double arrived, deadline;
    int64_t rows; /* rows along the batch dimension; -1: runs alone */
    batch_done_fn done;
    void *context;
} pending;

struct batcher {
    const ifd_model *model;
    ifd_session *session; /* used by the thread running a batch only (running) */
    size_t n_inputs, n_outputs;

    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
    pthread_cond_t reap_wake; /* a request with a deadline arrived, or stopping */
    pthread_t reaper;         /* answers expired requests while a batch runs */
    bool stopping;
    /* batcher_free ran on the batch thread, or on a leader, inside a
     * completion that dropped the last reference: that thread frees the
     * batcher when it leaves (free_on_exit: the batch thread; leader_frees: the leader) */
    bool free_on_exit, leader_frees;
    batch_settings settings;
    int enabled; /* atomic copy of settings.max_batch_size > 1 */
    pending *head, *tail;
    size_t queued;
    int64_t queued_rows; /* rows of the queued requests (1 for one that runs alone) */
    /* What the batch thread waits for, so that a submit wakes it only when
     * that changes its decision: any request (idle), or a batch to fill
     * up (forming: it wakes by itself when the wait is over). A wake-up
     * per arrival would cost a context switch per request. */
    bool idle, forming;
    /* A batch is running, on the batch thread or on a submitting thread
     * (a leader, see batcher_submit): one at a time, on `session`, with
     * `members` as its list. runner_waiters: batcher_free waits on
     * runner_done for a leader to leave. */
    bool running;
    pthread_t runner;
    pending **members;
    size_t room;
    pthread_cond_t runner_done;
    double last_arrival, gap_ewma, run_ewma;
    bool split_ok; /* false once the model's outputs did not split by rows */
    batch_stats stats;
};

double batch_clock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int batch_outcome_http_status(batch_outcome outcome)
{
    switch (outcome) {
    case BATCH_OK:
        return 200;
    case BATCH_FAILED:
        return 400;
    case BATCH_QUEUE_FULL:
        return 429;
    case BATCH_DEADLINE:
        return 504;
    case BATCH_STOPPING:
        return 503;
    }
    return 500;
}

/* ---- shapes -------------------------------------------------------------- */

/* Rows a request brings along the batch dimension, or -1 when it cannot be
 * concatenated with others. */
static int64_t request_rows(const batcher *b, ifd_value *const *inputs)
{
    int64_t rows = -1;
    for (size_t i = 0; i < b->n_inputs; i++) {
        const ifd_value *v = inputs[i];
        if (!v || v->kind != IFD_VALUE_TENSOR || v->tensor.rank < 1 ||
            v->tensor.dtype == IFD_STRING || ifd_dtype_size(v->tensor.dtype) == 0 ||
            v->tensor.dims[0] < 1)
            return -1;
        if (i == 0)
            rows = v->tensor.dims[0];
        else if (v->tensor.dims[0] != rows)
            return -1;
    }
    return b->n_inputs ? rows : -1;
}

static bool same_non_batch_shape(const batcher *b, const pending *x, const pending *y)
{
    for (size_t i = 0; i < b->n_inputs; i++) {
        const ifd_tensor *s = &x->inputs[i]->tensor, *t = &y->inputs[i]->tensor;
        if (s->dtype != t->dtype || s->rank != t->rank)
            return false;
        for (int d = 1; d < s->rank; d++)
            if (s->dims[d] != t->dims[d])
                return false;
    }
    return true;
}

/* ---- the queue (lock held) ----------------------------------------------- */

/* The requests of the next batch: the oldest and, if it can merge, the
 * later ones that agree with it, up to max_batch_size rows. Returns how
 * many (written to members when not NULL) and their rows. */
static size_t gather(const batcher *b, pending **members, size_t room, int64_t *rows_out)
{
    pending *first = b->head;
    size_t n = 1;
    int64_t rows = first->rows < 0 ? 1 : first->rows;
    int64_t max = b->settings.max_batch_size;
    if (members)
        members[0] = first;
    if (first->rows > 0 && first->rows < max && b->split_ok) {
        for (pending *p = first->next; p && rows < max && n < room; p = p->next) {
            if (p->rows < 0 || rows + p->rows > max || !same_non_batch_shape(b, first, p))
                continue;
            if (members)
                members[n] = p;
            n++;
            rows += p->rows;
        }
    }
    *rows_out = rows;
    return n;
}

static void unlink_pending(batcher *b, pending *target)
{
    pending *prev = NULL;
    for (pending *p = b->head; p; prev = p, p = p->next) {
        if (p != target)
            continue;
        if (prev)
            prev->next = p->next;
        else
            b->head = p->next;
        if (b->tail == p)
            b->tail = prev;
        b->queued--;
        b->queued_rows -= p->rows > 0 ? p->rows : 1;
        p->next = NULL;
        return;
    }
}

/* Move the requests whose deadline passed to a list of their own. */
static pending *take_expired(batcher *b, double now)
{
    pending *expired = NULL, **last = &expired;
    for (pending *p = b->head, *next; p; p = next) {
        next = p->next;
        if (p->deadline > 0 && now >= p->deadline) {
            unlink_pending(b, p);
            *last = p;
            last = &p->next;
        }
    }
    return expired;
}

static bool is_preferred(const batch_settings *s, int64_t rows)
{
    for (size_t i = 0; i < s->n_preferred; i++)
        if (s->preferred[i] == rows)
            return true;
    return false;
}

/* Whether waiting for more requests pays (the policy above); *until: when
 * to re-decide at the latest. */
static bool should_wait(const batcher *b, int64_t rows, double now, double *until)
{
    const batch_settings *s = &b->settings;
    if (!b->split_ok || b->head->rows < 0 || rows >= s->max_batch_size || is_preferred(s, rows))
        return false;
    double closes = b->head->arrived + (double)s->max_queue_delay_us * 1e-6;
    if (now >= closes || b->run_ewma <= 0 || b->gap_ewma <= 0 || b->gap_ewma >= b->run_ewma)
        return false;
    double next_arrival = b->last_arrival + b->gap_ewma;
    if (next_arrival > closes)
        return false;
    double give_up = (next_arrival > now ? next_arrival : now) + b->gap_ewma;
    *until = give_up < closes ? give_up : closes;
    return true;
}

/* ---- running a batch (outside the lock) ---------------------------------- */

static void answer_all(pending *list, batch_outcome outcome, const char *error)
{
    for (pending *p = list, *next; p; p = next) {
        next = p->next;
        p->done(p->context, outcome, error);
        free(p);
    }
}

/* Rows [start, start + rows) of a batch output, as a value of its own. */
static ifd_value *slice_rows(ifd_value *batch_out, int64_t start, int64_t rows)
{
    if (batch_out->kind == IFD_VALUE_SEQUENCE) {
        ifd_value *seq = calloc(1, sizeof(*seq));
        ifd_value **items = malloc((size_t)rows * sizeof(*items));
        if (!seq || !items) {
            free(seq);
            free(items);
            return NULL;
        }
        seq->kind = IFD_VALUE_SEQUENCE;
        seq->length = (size_t)rows;
        seq->items = items;
        for (int64_t r = 0; r < rows; r++) {
            items[r] = batch_out->items[start + r]; /* moved: the batch's value no longer owns it */
            batch_out->items[start + r] = NULL;
        }
        return seq;
    }
    const ifd_tensor *t = &batch_out->tensor;
    int64_t dims[IFD_MAX_RANK];
    memcpy(dims, t->dims, sizeof(dims));
    dims[0] = rows;
    ifd_value *out = NULL;
    ifd_error e;
    if (ifd_value_new_tensor(t->dtype, t->rank, dims, &out, &e) != IFD_OK)
        return NULL;
    int64_t per_row = 1;
    for (int d = 1; d < t->rank; d++)
        per_row *= t->dims[d];
    size_t count = (size_t)(rows * per_row);
    if (t->dtype == IFD_STRING) {
        const ifd_string *from = (const ifd_string *)t->data + start * per_row;
        ifd_string *to = out->tensor.data;
        for (size_t k = 0; k < count; k++) {
            to[k].data = malloc(from[k].size ? from[k].size : 1);
            if (!to[k].data) {
                ifd_value_free(out);
                return NULL;
            }
            memcpy(to[k].data, from[k].data, from[k].size);
            to[k].size = from[k].size;
        }
    } else {
        size_t elem = ifd_dtype_size(t->dtype);
        memcpy(out->tensor.data, (const char *)t->data + (size_t)(start * per_row) * elem, count * elem);
    }
    return out;
}

static bool splits_by_rows(const ifd_value *v, int64_t rows)
{
    if (v->kind == IFD_VALUE_SEQUENCE)
        return (int64_t)v->length == rows;
    return v->kind == IFD_VALUE_TENSOR && v->tensor.rank >= 1 && v->tensor.dims[0] == rows &&
           (v->tensor.dtype == IFD_STRING || ifd_dtype_size(v->tensor.dtype) > 0);
}

static void free_values(ifd_value **values, size_t n)
{
    for (size_t i = 0; values && i < n; i++) {
        ifd_value_free(values[i]);
        values[i] = NULL;
    }
}

static bool run_alone(batcher *b, pending *p, char *err, size_t err_size)
{
    ifd_error e;
    if (ifd_session_run(b->session, (const ifd_value *const *)p->inputs, p->outputs, &e) != IFD_OK) {
        snprintf(err, err_size, "%s", e.message);
        return false;
    }
    return true;
}

/* Concatenate the members' inputs, run once and split the outputs. Returns
 * false with err when the run failed; *unsplittable when the outputs did not
 * split by rows (nothing was answered then). */
static bool run_merged(batcher *b, pending **members, size_t n, int64_t rows, bool *unsplittable,
                       char *err, size_t err_size)
{
    ifd_value **inputs = calloc(b->n_inputs, sizeof(*inputs));
    ifd_value **outputs = calloc(b->n_outputs ? b->n_outputs : 1, sizeof(*outputs));
    bool ok = inputs && outputs;
    ifd_error e;
    if (!ok)
        snprintf(err, err_size, "out of memory forming a batch of %lld rows", (long long)rows);
    for (size_t i = 0; ok && i < b->n_inputs; i++) {
        const ifd_tensor *first = &members[0]->inputs[i]->tensor;
        int64_t dims[IFD_MAX_RANK];
        memcpy(dims, first->dims, sizeof(dims));
        dims[0] = rows;
        if (ifd_value_new_tensor(first->dtype, first->rank, dims, &inputs[i], &e) != IFD_OK) {
            snprintf(err, err_size, "forming a batch of %lld rows: %.900s", (long long)rows, e.message);
            ok = false;
            break;
        }
        size_t offset = 0;
        for (size_t k = 0; k < n; k++) {
            const ifd_tensor *t = &members[k]->inputs[i]->tensor;
            size_t bytes = (size_t)ifd_tensor_count(t) * ifd_dtype_size(t->dtype);
            memcpy((char *)inputs[i]->tensor.data + offset, t->data, bytes);
            offset += bytes;
        }
    }
    if (ok && ifd_session_run(b->session, (const ifd_value *const *)inputs, outputs, &e) != IFD_OK) {
        snprintf(err, err_size, "%s", e.message);
        ok = false;
    }
    for (size_t k = 0; ok && k < b->n_outputs; k++)
        if (!splits_by_rows(outputs[k], rows))
            *unsplittable = true;
    if (ok && !*unsplittable) {
        int64_t start = 0;
        for (size_t m = 0; m < n; m++) {
            for (size_t k = 0; k < b->n_outputs; k++) {
                members[m]->outputs[k] = slice_rows(outputs[k], start, members[m]->rows);
                if (!members[m]->outputs[k]) {
                    for (size_t j = 0; j <= m; j++)
                        free_values(members[j]->outputs, b->n_outputs);
                    snprintf(err, err_size, "out of memory splitting a batch of %lld rows", (long long)rows);
                    ok = false;
                    break;
                }
            }
            if (!ok)
                break;
            start += members[m]->rows;
        }
    }
    free_values(inputs, b->n_inputs);
    free_values(outputs, b->n_outputs);
    free(inputs);
    free(outputs);
    return ok;
}

static void record_batch(batcher *b, pending **members, size_t n, int64_t rows, double started,
                         double seconds, bool failed)
{
    batch_stats *s = &b->stats;
    size_t bucket = 0;
    while (bucket < BATCH_SIZE_BUCKETS && (double)rows > batch_size_bounds[bucket])
        bucket++;
    s->size_counts[bucket]++;
    s->batches++;
    s->rows += (double)rows;
    s->failed_batches += failed;
    for (size_t k = 0; k < n; k++) {
        double waited = started - members[k]->arrived;
        size_t d = 0;
        while (d < BATCH_DELAY_BUCKETS && waited > batch_delay_bounds[d])
            d++;
        s->delay_counts[d]++;
        s->delayed++;
        s->delay_sum += waited;
    }
    s->running_rows = 0;
    s->run_seconds += seconds;
    b->run_ewma = b->run_ewma <= 0 ? seconds : (1 - EWMA_ALPHA) * b->run_ewma + EWMA_ALPHA * seconds;
}

static void run_batch(batcher *b, pending **members, size_t n, int64_t rows)
{
    char err[1024] = "";
    double started = batch_clock();
    pthread_mutex_lock(&b->lock);
    b->stats.running_rows = rows;
    pthread_mutex_unlock(&b->lock);
    bool ok, unsplittable = false;
    if (n == 1) {
        ok = run_alone(b, members[0], err, sizeof(err));
    } else {
        ok = run_merged(b, members, n, rows, &unsplittable, err, sizeof(err));
        if (ok && unsplittable) {
            /* the model's outputs do not follow the batch dimension:
             * answer one at a time, and never merge for it again */
            pthread_mutex_lock(&b->lock);
            b->split_ok = false;
            pthread_mutex_unlock(&b->lock);
            for (size_t k = 0; k < n; k++) {
                char one[1024] = "";
                bool fine = run_alone(b, members[k], one, sizeof(one));
                members[k]->done(members[k]->context, fine ? BATCH_OK : BATCH_FAILED, one);
                free(members[k]);
            }
            pthread_mutex_lock(&b->lock);
            record_batch(b, members, 0, 1, started, batch_clock() - started, false);
            pthread_mutex_unlock(&b->lock);
            return;
        }
    }
    double seconds = batch_clock() - started;
    pthread_mutex_lock(&b->lock);
    record_batch(b, members, n, rows, started, seconds, !ok);
    pthread_mutex_unlock(&b->lock);
    for (size_t k = 0; k < n; k++) {
        members[k]->done(members[k]->context, ok ? BATCH_OK : BATCH_FAILED, err);
        free(members[k]);
    }
}

static struct timespec monotonic_at(double seconds)
{
    struct timespec ts;
    ts.tv_sec = (time_t)seconds;
    ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

static void destroy_sync(batcher *b);
static void finish_free(batcher *b);

/* Room in b->members for a batch of max_batch_size requests (lock held,
 * b->running set). False when there is no memory for it. */
static bool ensure_room(batcher *b)
{
    size_t want = (size_t)(b->settings.max_batch_size > 1 ? b->settings.max_batch_size : 1);
    if (want > b->room) {
        pending **grown = realloc(b->members, want * sizeof(*grown));
        if (grown) {
            b->members = grown;
            b->room = want;
        }
    }
    return b->members != NULL;
}

static void expire(batcher *b, pending *expired)
{
    for (pending *p = expired; p; p = p->next)
        b->stats.deadline_expired++;
    pthread_mutex_unlock(&b->lock);
    answer_all(expired, BATCH_DEADLINE, "the request's deadline passed while it waited for a batch");
    pthread_mutex_lock(&b->lock);
}

/* Run the batches that are ready now, one after another, on the calling
 * thread (lock held, b->running set by the caller), at most max_batches.
 * Returns, lock held, when the queue is empty, the batcher stops, the next
 * batch should wait to form (*until then says until when; 0: it need not
 * wait) or max_batches ran. */
static void run_while_ready(batcher *b, size_t max_batches, double *until)
{
    *until = 0;
    for (size_t ran = 0; b->head && !b->stopping && ran < max_batches; ran++) {
        double now = batch_clock();
        pending *expired = take_expired(b, now);
        if (expired) {
            expire(b, expired);
            continue;
        }
        int64_t rows;
        gather(b, NULL, (size_t)-1, &rows);
        if (should_wait(b, rows, now, until))
            return;
        *until = 0;
        size_t n;
        pending *one = NULL, **members = &one;
        if (ensure_room(b)) {
            members = b->members;
            n = gather(b, members, b->room, &rows);
        } else { /* no memory for a list: the oldest runs alone */
            one = b->head;
            n = 1;
            rows = one->rows < 0 ? 1 : one->rows;
        }
        for (size_t k = 0; k < n; k++)
            unlink_pending(b, members[k]);
        pthread_mutex_unlock(&b->lock);
        run_batch(b, members, n, rows);
        pthread_mutex_lock(&b->lock);
    }
}

static void *batcher_main(void *arg)
{
    batcher *b = arg;
    pthread_mutex_lock(&b->lock);
    for (;;) {
        b->idle = true;
        /* a leader running batches drains the queue itself, and wakes this
         * thread when it leaves a batch to form */
        while ((!b->head || b->running) && !b->stopping)
            pthread_cond_wait(&b->wake, &b->lock);
        b->idle = false;
        if (b->stopping) {
            if (b->running) { /* a leader finishes its batch: it answers its members */
                pthread_cond_wait(&b->runner_done, &b->lock);
                continue;
            }
            if (!b->head)
                break;
            pending *all = b->head;
            b->head = b->tail = NULL;
            b->queued = 0;
            b->queued_rows = 0;
            pthread_mutex_unlock(&b->lock);
            answer_all(all, BATCH_STOPPING, "the model version is being unloaded");
            pthread_mutex_lock(&b->lock);
            continue;
        }
        b->running = true;
        b->runner = pthread_self();
        double until;
        run_while_ready(b, (size_t)-1, &until);
        b->running = false;
        pthread_cond_broadcast(&b->runner_done);
        if (until > 0 && b->head && !b->stopping) {
            struct timespec at = monotonic_at(until);
            b->forming = true;
            pthread_cond_timedwait(&b->wake, &b->lock, &at);
            b->forming = false;
        }
    }
    bool free_self = b->free_on_exit;
    pthread_mutex_unlock(&b->lock);
    if (free_self) {
        pthread_join(b->reaper, NULL);
        destroy_sync(b);
        free(b->members);
        free(b);
    }
    return NULL;
}

/* Answers the requests whose deadline passed, at the moment it passes. */
static void *reaper_main(void *arg)
{
    batcher *b = arg;
    pthread_mutex_lock(&b->lock);
    while (!b->stopping) {
        double earliest = 0;
        for (pending *p = b->head; p; p = p->next)
            if (p->deadline > 0 && (earliest == 0 || p->deadline < earliest))
                earliest = p->deadline;
        double now = batch_clock();
        if (earliest == 0) {
            pthread_cond_wait(&b->reap_wake, &b->lock);
        } else if (now < earliest) {
            struct timespec at = monotonic_at(earliest);
            pthread_cond_timedwait(&b->reap_wake, &b->lock, &at);
        } else {
            pending *expired = take_expired(b, now);
            for (pending *p = expired; p; p = p->next)
                b->stats.deadline_expired++;
            pthread_mutex_unlock(&b->lock);
            answer_all(expired, BATCH_DEADLINE, "the request's deadline passed while it waited for a batch");
            pthread_mutex_lock(&b->lock);
        }
    }
    pthread_mutex_unlock(&b->lock);
    return NULL;
}

/* The batcher's condition variables wait on CLOCK_MONOTONIC, as deadlines are. */
static bool init_sync(batcher *b)
{
    pthread_condattr_t attr;
    if (pthread_condattr_init(&attr) != 0)
        return false;
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    bool ok = pthread_cond_init(&b->wake, &attr) == 0;
    if (ok && pthread_cond_init(&b->reap_wake, &attr) != 0) {
        pthread_cond_destroy(&b->wake);
        ok = false;
    }
    if (ok && pthread_cond_init(&b->runner_done, NULL) != 0) {
        pthread_cond_destroy(&b->wake);
        pthread_cond_destroy(&b->reap_wake);
        ok = false;
    }
    pthread_condattr_destroy(&attr);
    if (ok && pthread_mutex_init(&b->lock, NULL) != 0) {
        pthread_cond_destroy(&b->wake);
        pthread_cond_destroy(&b->reap_wake);
        pthread_cond_destroy(&b->runner_done);
        ok = false;
    }
    return ok;
}

static void destroy_sync(batcher *b)
{
    pthread_mutex_destroy(&b->lock);
    pthread_cond_destroy(&b->wake);
    pthread_cond_destroy(&b->reap_wake);
    pthread_cond_destroy(&b->runner_done);
}

/* ---- the API ------------------------------------------------------------- */

batcher *batcher_create(const ifd_model *model, int threads, const batch_settings *settings,
                        char *err, size_t err_size)
{
    batcher *b = calloc(1, sizeof(*b));
    if (!b) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    b->model = model;
    b->n_inputs = ifd_model_input_count(model);
    b->n_outputs = ifd_model_output_count(model);
    b->split_ok = true;
    ifd_session_options options = {.threads = threads};
    ifd_error e;
    if (ifd_session_create(model, &options, &b->session, &e) != IFD_OK) {
        snprintf(err, err_size, "batching session: %s", e.message);
        free(b);
        return NULL;
    }
    if (!init_sync(b)) {
        snprintf(err, err_size, "cannot create the batcher's lock");
        ifd_session_free(b->session);
        free(b);
        return NULL;
    }
    batcher_configure(b, settings);
    if (pthread_create(&b->reaper, NULL, reaper_main, b) != 0) {
        snprintf(err, err_size, "cannot start the batcher's deadline thread");
        destroy_sync(b);
        ifd_session_free(b->session);
        free(b);
        return NULL;
    }
    if (pthread_create(&b->thread, NULL, batcher_main, b) != 0) {
        snprintf(err, err_size, "cannot start the batcher's thread");
        pthread_mutex_lock(&b->lock);
        b->stopping = true;
        pthread_cond_broadcast(&b->reap_wake);
        pthread_mutex_unlock(&b->lock);
        pthread_join(b->reaper, NULL);
        destroy_sync(b);
        ifd_session_free(b->session);
        free(b);
        return NULL;
    }
    return b;
}

/* The end of a batcher_free that ran inside a leader's completion: the
 * leader has left its batches, so the threads can go. */
static void finish_free(batcher *b)
{
    pthread_join(b->thread, NULL);
    pthread_join(b->reaper, NULL);
    destroy_sync(b);
    free(b->members);
    free(b);
}

void batcher_free(batcher *b)
{
    if (!b)
        return;
    pthread_mutex_lock(&b->lock);
    b->stopping = true;
    bool own_thread = pthread_equal(pthread_self(), b->thread);
    bool leader = !own_thread && b->running && pthread_equal(pthread_self(), b->runner);
    b->free_on_exit = own_thread;
    b->leader_frees = leader;
    pthread_cond_broadcast(&b->wake);
    pthread_cond_broadcast(&b->reap_wake);
    pthread_mutex_unlock(&b->lock);
    /* the session goes now: the model it belongs to is freed next (the
     * completion that runs this comes after the batch's engine call) */
    if (own_thread || leader) {
        ifd_session_free(b->session);
        b->session = NULL;
        if (own_thread)
            pthread_detach(b->thread);
        return;
    }
    /* the batch thread leaves only once a leader has left (runner_done) */
    pthread_join(b->thread, NULL);
    pthread_join(b->reaper, NULL);
    ifd_session_free(b->session);
    destroy_sync(b);
    free(b->members);
    free(b);
}

void batcher_configure(batcher *b, const batch_settings *settings)
{
    pthread_mutex_lock(&b->lock);
    b->settings = *settings;
    if (b->settings.max_queue_delay_us < 0)
        b->settings.max_queue_delay_us = 0;
    if (b->settings.max_queue <= 0)
        b->settings.max_queue = BATCH_DEFAULT_QUEUE;
    __atomic_store_n(&b->enabled, settings->max_batch_size > 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&b->wake);
    pthread_mutex_unlock(&b->lock);
}

bool batcher_enabled(batcher *b)
{
    return b && __atomic_load_n(&b->enabled, __ATOMIC_ACQUIRE);
}

bool batcher_would_merge(batcher *b, ifd_value *const *inputs)
{
    int64_t rows = request_rows(b, inputs);
    pthread_mutex_lock(&b->lock);
    bool merges = rows > 0 && rows <= b->settings.max_batch_size && b->split_ok;
    pthread_mutex_unlock(&b->lock);
    return merges;
}

batch_outcome batcher_submit(batcher *b, ifd_value *const *inputs, ifd_value **outputs,
                             double deadline, bool may_run_here, batch_done_fn done, void *context)
{
    pending *p = malloc(sizeof(*p));
    if (!p)
        return BATCH_QUEUE_FULL;
    double now = batch_clock();
    *p = (pending){.inputs = inputs, .outputs = outputs, .arrived = now, .deadline = deadline,
                   .rows = request_rows(b, inputs), .done = done, .context = context};
    pthread_mutex_lock(&b->lock);
    if (b->stopping) {
        pthread_mutex_unlock(&b->lock);
        free(p);
        return BATCH_STOPPING;
    }
    if (b->queued >= (size_t)b->settings.max_queue) {
        b->stats.queue_full++;
        pthread_mutex_unlock(&b->lock);
        free(p);
        return BATCH_QUEUE_FULL;
    }
    if (b->last_arrival > 0) {
        double gap = now - b->last_arrival;
        b->gap_ewma = b->gap_ewma <= 0 ? gap : (1 - EWMA_ALPHA) * b->gap_ewma + EWMA_ALPHA * gap;
    }
    b->last_arrival = now;
    if (b->tail)
        b->tail->next = p;
    else
        b->head = p;
    b->tail = p;
    b->queued++;
    b->queued_rows += p->rows > 0 ? p->rows : 1;
    if (deadline > 0)
        pthread_cond_signal(&b->reap_wake);
    if (may_run_here && !b->running && b->run_ewma < LEADER_MAX_RUN_SECONDS) {
        /* Lead: nothing runs, so what is ready runs here and now, without
         * handing it to the batch thread (a wake-up and a context switch
         * per batch, more than a digits model's whole engine call). Arrivals
         * meanwhile queue and form the next batch, which this thread runs
         * too once this one is answered. A batch worth waiting for is left
         * to the batch thread, which times the wait. */
        b->running = true;
        b->runner = pthread_self();
        double until;
        run_while_ready(b, LEADER_MAX_BATCHES, &until);
        b->running = false;
        pthread_cond_broadcast(&b->runner_done);
        bool free_self = b->leader_frees; /* a completion here dropped the last reference */
        /* what is left goes to the batch thread: a batch to form (unless
         * the thread already times one: a wake-up per arrival is what the
         * leader saves), or ready batches beyond this thread's share */
        if (!free_self && b->head && (b->idle || (b->forming && until == 0)))
            pthread_cond_signal(&b->wake);
        pthread_mutex_unlock(&b->lock);
        if (free_self)
            finish_free(b);
        return BATCH_OK;
    }
    /* while a batch runs its runner takes what queued when it is done: no
     * signal needed; while one forms, only a full (or preferred) size
     * closes it early */
    if ((b->idle && !b->running) ||
        (b->forming && (b->queued_rows >= b->settings.max_batch_size ||
                        is_preferred(&b->settings, b->queued_rows))))
        pthread_cond_signal(&b->wake);
    pthread_mutex_unlock(&b->lock);
    return BATCH_OK;
}

typedef struct waiter {
    pthread_mutex_t lock;
    pthread_cond_t answered;
    bool finished;
    batch_outcome outcome;
    char *err;
    size_t err_size;
} waiter;

static void wake_waiter(void *context, batch_outcome outcome, const char *error)
{
    waiter *w = context;
    pthread_mutex_lock(&w->lock);
    w->outcome = outcome;
    if (outcome != BATCH_OK)
        snprintf(w->err, w->err_size, "%s", error);
    w->finished = true;
    pthread_cond_signal(&w->answered);
    /* the waiter may free w as soon as the lock is released: no access after */
    pthread_mutex_unlock(&w->lock);
}

batch_outcome batcher_run(batcher *b, ifd_value *const *inputs, ifd_value **outputs,
                          double deadline, char *err, size_t err_size)
{
    waiter w = {.err = err, .err_size = err_size};
    pthread_mutex_init(&w.lock, NULL);
    pthread_cond_init(&w.answered, NULL);
    batch_outcome queued = batcher_submit(b, inputs, outputs, deadline, true, wake_waiter, &w);
    if (queued != BATCH_OK) {
        snprintf(err, err_size, "%s",
                 queued == BATCH_QUEUE_FULL ? "the model's batch queue is full; retry later"
                                            : "the model version is being unloaded");
    } else {
        pthread_mutex_lock(&w.lock);
        while (!w.finished)
            pthread_cond_wait(&w.answered, &w.lock);
        pthread_mutex_unlock(&w.lock);
    }
    pthread_mutex_destroy(&w.lock);
    pthread_cond_destroy(&w.answered);
    return queued != BATCH_OK ? queued : w.outcome;
}

void batcher_stats(batcher *b, batch_stats *out)
{
    pthread_mutex_lock(&b->lock);
    *out = b->stats;
    out->queued = b->queued;
    pthread_mutex_unlock(&b->lock);
}
