/*
 * shadow.c — the shadow of a live version: after a request is answered, a
 * copy of its inputs and the scores of the live answer go through a bounded
 * queue to one thread, which runs the shadow version on its own session
 * and counts whether the two agree (same class per row for classifiers,
 * every score within the tolerance for regressors). A full queue drops the
 * copy and counts it: the shadow never slows or fails a client's request.
 * Low agreement over the rollback window takes the shadow out.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_set_internal.h"

static ifd_value *clone_value(const ifd_value *v)
{
    if (v->kind != IFD_VALUE_TENSOR)
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
        if (from->size)
            memcpy(to->data, from->data, from->size);
        to->data[from->size] = '\0';
        to->size = from->size;
    }
    return copy;
}

static void shadow_job_free(shadow_job *job)
{
    for (size_t i = 0; i < job->n_inputs; i++)
        ifd_value_free(job->inputs[i]);
    free(job->inputs);
    free(job->live_scores);
    model_version_unref(job->shadow);
    free(job);
}

void shadow_offer(model_set *set, model_version *live, ifd_value *const *inputs,
                  ifd_value **outputs)
{
    model_version *shadow = NULL;
    double percent = 0, tolerance = 0;
    int cap = 0;
    pthread_rwlock_rdlock(&set->lock);
    model_entry *e = model_set_find(set, live->name);
    if (e && e->config.shadow.enabled) {
        percent = e->config.shadow.percent;
        tolerance = e->config.shadow.tolerance;
        cap = e->config.shadow.queue;
        for (size_t i = 0; i < e->n_versions; i++)
            if (strcmp(e->versions[i]->version, e->config.shadow.version) == 0 &&
                e->versions[i] != live)
                shadow = model_version_ref(e->versions[i]);
    }
    pthread_rwlock_unlock(&set->lock);
    if (!shadow)
        return;
    if (percent < 100 && (double)(model_set_random() % 10000) >= percent * 100) {
        model_version_unref(shadow);
        return;
    }
    pthread_mutex_lock(&set->shadow_lock);
    set->shadow_counts.offered++;
    bool full = set->shadow_queued >= (size_t)cap || !set->shadow_running;
    if (full)
        set->shadow_counts.dropped++;
    pthread_mutex_unlock(&set->shadow_lock);
    if (full) {
        model_version_unref(shadow);
        return;
    }
    shadow_job *job = calloc(1, sizeof(*job));
    size_t n_in = ifd_model_input_count(live->model);
    bool ok = job && (job->inputs = calloc(n_in ? n_in : 1, sizeof(*job->inputs)));
    if (job) {
        job->shadow = shadow;
        job->tolerance = tolerance;
    }
    for (size_t i = 0; ok && i < n_in; i++) {
        job->inputs[i] = clone_value(inputs[i]);
        job->n_inputs = i + 1;
        ok = job->inputs[i] != NULL;
    }
    ok = ok && model_version_scores(live, outputs, &job->live_scores, &job->rows, &job->cols);
    if (!ok) {
        if (job)
            shadow_job_free(job);
        else
            model_version_unref(shadow);
        pthread_mutex_lock(&set->shadow_lock);
        set->shadow_counts.dropped++;
        pthread_mutex_unlock(&set->shadow_lock);
        return;
    }
    pthread_mutex_lock(&set->shadow_lock);
    if (set->shadow_tail)
        set->shadow_tail->next = job;
    else
        set->shadow_head = job;
    set->shadow_tail = job;
    set->shadow_queued++;
    pthread_cond_signal(&set->shadow_wake);
    pthread_mutex_unlock(&set->shadow_lock);
}

static bool answers_agree(const shadow_job *job, const float *scores, size_t rows, size_t cols,
                          double *max_abs_diff)
{
    *max_abs_diff = 0;
    if (rows != job->rows || cols != job->cols)
        return false;
    bool agree = true;
    for (size_t r = 0; r < rows; r++) {
        const float *a = job->live_scores + r * cols, *b = scores + r * cols;
        size_t best_a = 0, best_b = 0;
        for (size_t c = 0; c < cols; c++) {
            double d = a[c] > b[c] ? a[c] - b[c] : b[c] - a[c];
            if (d > *max_abs_diff)
                *max_abs_diff = d;
            if (a[c] > a[best_a])
                best_a = c;
            if (b[c] > b[best_b])
                best_b = c;
        }
        if (cols > 1 ? best_a != best_b : false)
            agree = false;
    }
    if (cols <= 1 && *max_abs_diff > job->tolerance)
        agree = false;
    return agree;
}

static void run_shadow_job(model_set *set, shadow_job *job)
{
    model_version *v = job->shadow;
    size_t n_out = ifd_model_output_count(v->model);
    ifd_value **outputs = calloc(n_out ? n_out : 1, sizeof(*outputs));
    char err[512];
    float *scores = NULL;
    size_t rows = 0, cols = 0;
    bool ran = outputs && model_version_run(v, v->n_sessions - 1, job->inputs, outputs, err,
                                            sizeof(err)) == IFD_OK;
    bool scored = ran && model_version_scores(v, outputs, &scores, &rows, &cols);
    double diff = 0;
    bool agree = scored && answers_agree(job, scores, rows, cols, &diff);
    char reason[256] = "";
    unsigned long long compared;
    pthread_mutex_lock(&v->stats_lock);
    if (!scored)
        v->shadow_failed++;
    else if (agree)
        v->shadow_agreed++;
    else
        v->shadow_disagreed++;
    if (scored && diff > v->shadow_max_abs_diff)
        v->shadow_max_abs_diff = diff;
    outcome_window_add(&v->disagreements, !agree);
    if (v->agreement_floor >= 0 && v->disagreements.size &&
        v->disagreements.count == v->disagreements.size) {
        double agreement = 1.0 - (double)v->disagreements.bad / v->disagreements.count;
        if (agreement < v->agreement_floor)
            snprintf(reason, sizeof(reason),
                     "shadow agreement %.4f over the last %d copies is below min_agreement %.4f",
                     agreement, v->disagreements.count, v->agreement_floor);
    }
    compared = v->shadow_agreed + v->shadow_disagreed + v->shadow_failed;
    unsigned long long agreed = v->shadow_agreed, disagreed = v->shadow_disagreed;
    pthread_mutex_unlock(&v->stats_lock);
    if (compared % 500 == 0 || (!agree && log_enabled(LOG_DEBUG))) {
        char counts[160];
        snprintf(counts, sizeof(counts),
                 "agreed %llu, disagreed %llu, failed %llu (max abs diff %.3g)", agreed, disagreed,
                 compared - agreed - disagreed, diff);
        model_set_log(agree ? LOG_INFO : LOG_DEBUG, "shadow comparison", v->name, v->version,
                      "counts", counts);
    }
    if (reason[0])
        model_set_roll_back(set, v, reason);
    for (size_t k = 0; outputs && k < n_out; k++)
        ifd_value_free(outputs[k]);
    free(outputs);
    free(scores);
}

void *shadow_thread_main(void *arg)
{
    model_set *set = arg;
    pthread_mutex_lock(&set->shadow_lock);
    for (;;) {
        while (!set->shadow_head && !__atomic_load_n(&set->stopping, __ATOMIC_ACQUIRE))
            pthread_cond_wait(&set->shadow_wake, &set->shadow_lock);
        shadow_job *job = set->shadow_head;
        if (!job)
            break;
        set->shadow_head = job->next;
        if (!set->shadow_head)
            set->shadow_tail = NULL;
        set->shadow_queued--;
        pthread_mutex_unlock(&set->shadow_lock);
        if (!__atomic_load_n(&set->stopping, __ATOMIC_ACQUIRE))
            run_shadow_job(set, job);
        shadow_job_free(job);
        pthread_mutex_lock(&set->shadow_lock);
    }
    pthread_mutex_unlock(&set->shadow_lock);
    return NULL;
}

shadow_totals model_set_shadow_totals(model_set *set)
{
    pthread_mutex_lock(&set->shadow_lock);
    shadow_totals t = set->shadow_counts;
    pthread_mutex_unlock(&set->shadow_lock);
    return t;
}
