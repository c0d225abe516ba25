/*
 * run_files.c — `inferd batch MODEL --input FILE --output FILE`.
 *
 * Crash safety, with a kill -9 at any moment in mind: OUTPUT.partial and the
 * errors file only grow by whole chunks written at known offsets, and the
 * resume point OUTPUT.resume (input offset, line and row numbers, the byte
 * lengths of both files, counters) is replaced by rename() after the chunk's
 * bytes are written. The rename is the chunk's commit: a run killed before it
 * leaves bytes past the recorded lengths, which --resume cuts off before it
 * rereads the input from the recorded offset. When the input is exhausted,
 * OUTPUT.partial is renamed to OUTPUT and the resume point removed, so OUTPUT
 * is never seen half-written. With options.sync, each chunk is fdatasync'ed
 * before its resume point, which makes the same hold across a power loss.
 *
 * Parallelism: --threads N chunk slots, each with its own session and a
 * worker thread. The main thread reads and parses chunk k into slot k mod N
 * while the workers predict and format the chunks before it; before it
 * reuses a slot it commits that slot's chunk (write, resume point), so chunks
 * reach the file in input order whatever order the workers finish in.
 */
#include "batch.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "predictor.h"
#include "reader.h"
#include "textbuf.h"
#include "writer.h"

static bool fail(char *err, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool fail(char *err, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, size, fmt, ap);
    va_end(ap);
    return false;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct resume_point {
    batch_read_position read;
    long long output_bytes, errors_bytes, rows_done, bad_rows;
} resume_point;

typedef struct file_run {
    const batch_options *o;
    const batch_callbacks *cb;
    char partial_path[4200], state_path[4200], state_tmp[4300];
    int output_fd, errors_fd;
    json_t *identity; /* what a resumed run must match */
    resume_point at;
    long long input_bytes;
} file_run;

/* What a resumed run must agree with: the same input file, unchanged, and
 * every option that shapes the output. */
static json_t *run_identity(const batch_options *o, const struct stat *input, batch_format in,
                            batch_format out)
{
    json_t *id = json_object();
    json_object_set_new(id, "input", json_string(o->input_path));
    json_object_set_new(id, "input_bytes", json_integer((json_int_t)input->st_size));
    json_object_set_new(
        id, "input_mtime_ns",
        json_integer((json_int_t)input->st_mtim.tv_sec * 1000000000 + input->st_mtim.tv_nsec));
    json_object_set_new(id, "input_format", json_string(batch_format_name(in)));
    json_object_set_new(id, "output_format", json_string(batch_format_name(out)));
    json_object_set_new(id, "columns", o->columns ? json_string(o->columns) : json_null());
    json_object_set_new(id, "id_column", o->id_column ? json_string(o->id_column) : json_null());
    json_object_set_new(id, "outputs", o->outputs ? json_string(o->outputs) : json_null());
    json_object_set_new(id, "labels", o->labels ? json_deep_copy(o->labels) : json_null());
    json_object_set_new(id, "errors", o->errors_path ? json_string(o->errors_path) : json_null());
    return id;
}

static bool save_resume_point(file_run *run, bool finished, char *err, size_t n)
{
    json_t *state =
        json_pack("{s:O, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b}", "run", run->identity,
                  "input_offset", (json_int_t)run->at.read.offset, "next_line",
                  (json_int_t)run->at.read.next_line, "next_row", (json_int_t)run->at.read.next_row,
                  "output_bytes", (json_int_t)run->at.output_bytes, "errors_bytes",
                  (json_int_t)run->at.errors_bytes, "rows_done", (json_int_t)run->at.rows_done,
                  "bad_rows", (json_int_t)run->at.bad_rows, "finished", finished);
    char *text = state ? json_dumps(state, JSON_COMPACT) : NULL;
    json_decref(state);
    if (!text)
        return fail(err, n, "out of memory");
    int fd = open(run->state_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    size_t len = strlen(text);
    bool ok =
        fd >= 0 && write(fd, text, len) == (ssize_t)len && (!run->o->sync || fdatasync(fd) == 0);
    int saved = errno;
    if (fd >= 0)
        close(fd);
    free(text);
    if (!ok || rename(run->state_tmp, run->state_path) != 0) {
        if (ok)
            saved = errno;
        unlink(run->state_tmp);
        return fail(err, n, "%s: cannot write the resume point: %s", run->state_path,
                    strerror(saved));
    }
    return true;
}

static bool load_resume_point(file_run *run, bool *finished, char *err, size_t n)
{
    json_error_t jerr;
    json_t *state = json_load_file(run->state_path, JSON_REJECT_DUPLICATES, &jerr);
    if (!state)
        return access(run->state_path, F_OK) != 0
                   ? fail(err, n, "--resume: %s has no interrupted run to resume (%s is missing)",
                          run->o->output_path, run->state_path)
                   : fail(err, n, "%s: unreadable resume point: %s", run->state_path, jerr.text);
    json_t *identity = NULL;
    json_int_t v[8];
    int done = 0;
    bool ok = json_unpack_ex(state, &jerr, 0, "{s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b}",
                             "run", &identity, "input_offset", &v[0], "next_line", &v[1],
                             "next_row", &v[2], "output_bytes", &v[3], "errors_bytes", &v[4],
                             "rows_done", &v[5], "bad_rows", &v[6], "finished", &done) == 0;
    if (!ok) {
        fail(err, n, "%s: malformed resume point: %s", run->state_path, jerr.text);
    } else if (!json_equal(identity, run->identity)) {
        const char *key;
        json_t *want;
        const char *differs = "?";
        json_object_foreach(run->identity, key, want)
        {
            if (!json_equal(want, json_object_get(identity, key))) {
                differs = key;
                break;
            }
        }
        ok = fail(err, n,
                  "--resume: the interrupted run of %s differs in '%s' (the input "
                  "changed, or different options were given); rerun without --resume after "
                  "deleting %s and %s",
                  run->o->output_path, differs, run->partial_path, run->state_path);
    } else {
        run->at = (resume_point){{v[0], v[1], v[2]}, v[3], v[4], v[5], v[6]};
        *finished = done;
    }
    json_decref(state);
    return ok;
}

static bool write_at(int fd, const textbuf *b, long long offset, const char *path, char *err,
                     size_t n)
{
    size_t done = 0;
    while (done < b->len) {
        ssize_t w = pwrite(fd, b->data + done, b->len - done, (off_t)(offset + (long long)done));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return fail(err, n, "%s: write failed: %s", path, w < 0 ? strerror(errno) : "no space");
        done += (size_t)w;
    }
    return true;
}

/* One bad row: to the errors file (with its chunk) or to the user. */
static void report_bad_row(file_run *run, textbuf *errors, const batch_row_origin *origin, bool npy,
                           const char *why)
{
    char line[1400];
    if (npy)
        snprintf(line, sizeof(line), "%s: row %lld: %s", run->o->input_path, origin->row, why);
    else if (origin->has_id)
        snprintf(line, sizeof(line), "%s:%lld: row %lld (id %s): %s", run->o->input_path,
                 origin->line, origin->row, origin->id, why);
    else
        snprintf(line, sizeof(line), "%s:%lld: row %lld: %s", run->o->input_path, origin->line,
                 origin->row, why);
    if (run->errors_fd >= 0) {
        textbuf_puts(errors, line);
        textbuf_put(errors, "\n", 1);
    } else if (run->cb && run->cb->notice) {
        run->cb->notice(run->cb->context, line);
    }
}

/* Take OUTPUT.partial for this process: created if missing (*created says
 * so), locked with flock() so that a second run on the same output, with or
 * without --resume, is refused instead of interleaving chunks, and checked
 * to still be the file at that path (a run finishing meanwhile renames it). */
static bool lock_partial(file_run *run, bool *created, char *err, size_t n)
{
    *created = false;
    run->output_fd = open(run->partial_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (run->output_fd >= 0)
        *created = true;
    else if (errno == EEXIST)
        run->output_fd = open(run->partial_path, O_WRONLY | O_CLOEXEC);
    if (run->output_fd < 0)
        return fail(err, n, "%s: %s", run->partial_path, strerror(errno));
    if (flock(run->output_fd, LOCK_EX | LOCK_NB) != 0)
        return fail(err, n,
                    "another inferd batch is writing %s (it holds %s); wait for it, or "
                    "stop it and continue with --resume",
                    run->o->output_path, run->partial_path);
    struct stat held, named;
    if (fstat(run->output_fd, &held) != 0 || stat(run->partial_path, &named) != 0 ||
        held.st_ino != named.st_ino || held.st_dev != named.st_dev)
        return fail(err, n,
                    "%s was replaced while this run started (another run finished?); "
                    "run again",
                    run->partial_path);
    return true;
}

/* Cut both files back to the resume point (or to nothing for a new run). */
static bool open_files(file_run *run, bool resuming, char *err, size_t n)
{
    if (ftruncate(run->output_fd, resuming ? (off_t)run->at.output_bytes : 0) != 0)
        return fail(err, n, "%s: %s", run->partial_path, strerror(errno));
    if (run->o->errors_path) {
        run->errors_fd = open(run->o->errors_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (run->errors_fd < 0)
            return fail(err, n, "%s: %s", run->o->errors_path, strerror(errno));
        if (ftruncate(run->errors_fd, resuming ? (off_t)run->at.errors_bytes : 0) != 0)
            return fail(err, n, "%s: %s", run->o->errors_path, strerror(errno));
    }
    return true;
}

static void report_progress(file_run *run, double started, long long rows_this_run, bool final)
{
    if (!run->cb || !run->cb->progress)
        return;
    batch_progress p = {.rows_done = run->at.rows_done,
                        .rows_this_run = rows_this_run,
                        .bad_rows = run->at.bad_rows,
                        .elapsed = now_seconds() - started,
                        .final = final};
    p.fraction = run->input_bytes > 0 ? (double)run->at.read.offset / (double)run->input_bytes : -1;
    run->cb->progress(run->cb->context, &p);
}

/* One chunk in flight: filled by the reader (main thread), predicted and
 * formatted by its worker, committed by the main thread. */
typedef enum slot_state { SLOT_IDLE, SLOT_READY, SLOT_DONE } slot_state;

typedef struct chunk_slot {
    batch_predictor predictor;
    batch_writer writer;
    batch_row_origin *origins;
    size_t rows;
    long long bad;             /* bad rows read into this chunk */
    batch_read_position after; /* the reader's position after the chunk */
    textbuf header, out, errors;
    bool ok;
    char err[1024];
    slot_state state; /* under the pool's lock */
    bool in_flight;   /* main thread only: handed over, not committed yet */
    pthread_t thread;
    bool thread_started;
} chunk_slot;

typedef struct slot_pool {
    chunk_slot *slots;
    size_t count;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    bool shutting_down;
    bool csv;
    const char *input_path;
} slot_pool;

typedef struct worker_arg {
    slot_pool *pool;
    chunk_slot *slot;
} worker_arg;

static void predict_chunk(slot_pool *pool, chunk_slot *s)
{
    s->ok = false;
    s->out.len = s->header.len = 0;
    char why[1024];
    if (!batch_predictor_run(&s->predictor, s->rows, why, sizeof(why))) {
        fail(s->err, sizeof(s->err), "%s: rows %lld to %lld: %s", pool->input_path,
             s->origins[0].row, s->origins[s->rows - 1].row, why);
        return;
    }
    for (size_t r = 0; r < s->rows; r++) {
        if (r == 0 && pool->csv &&
            !batch_writer_header(&s->writer, &s->predictor, 0, &s->header, s->err, sizeof(s->err)))
            return;
        if (!batch_writer_row(&s->writer, &s->predictor, r, &s->origins[r], &s->out, s->err,
                              sizeof(s->err)))
            return;
    }
    if (s->out.failed || s->header.failed) {
        fail(s->err, sizeof(s->err), "out of memory");
        return;
    }
    s->ok = true;
}

static void *chunk_worker(void *argument)
{
    worker_arg *arg = argument;
    slot_pool *pool = arg->pool;
    chunk_slot *s = arg->slot;
    pthread_mutex_lock(&pool->lock);
    for (;;) {
        while (s->state != SLOT_READY && !pool->shutting_down)
            pthread_cond_wait(&pool->changed, &pool->lock);
        if (pool->shutting_down)
            break;
        pthread_mutex_unlock(&pool->lock);
        predict_chunk(pool, s);
        pthread_mutex_lock(&pool->lock);
        s->state = SLOT_DONE;
        pthread_cond_broadcast(&pool->changed);
    }
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

/* Wait for the slot's worker; the slot is then the main thread's again. */
static void wait_done(slot_pool *pool, chunk_slot *s)
{
    pthread_mutex_lock(&pool->lock);
    while (s->state == SLOT_READY)
        pthread_cond_wait(&pool->changed, &pool->lock);
    s->state = SLOT_IDLE;
    pthread_mutex_unlock(&pool->lock);
}

static void hand_to_worker(slot_pool *pool, chunk_slot *s)
{
    s->in_flight = true;
    pthread_mutex_lock(&pool->lock);
    s->state = SLOT_READY;
    pthread_cond_broadcast(&pool->changed);
    pthread_mutex_unlock(&pool->lock);
}

/* Write a predicted chunk and move the resume point past it. */
static bool commit_chunk(file_run *run, chunk_slot *s, double started, long long *rows_this_run,
                         char *err, size_t n)
{
    if (!s->ok)
        return fail(err, n, "%s", s->err);
    const batch_options *o = run->o;
    if (run->at.output_bytes == 0 && s->header.len) {
        if (!write_at(run->output_fd, &s->header, 0, run->partial_path, err, n))
            return false;
        run->at.output_bytes += (long long)s->header.len;
    }
    if (!write_at(run->output_fd, &s->out, run->at.output_bytes, run->partial_path, err, n) ||
        (s->errors.len &&
         !write_at(run->errors_fd, &s->errors, run->at.errors_bytes, o->errors_path, err, n)))
        return false;
    if (o->sync &&
        (fdatasync(run->output_fd) != 0 || (s->errors.len && fdatasync(run->errors_fd) != 0)))
        return fail(err, n, "%s: fdatasync: %s", run->partial_path, strerror(errno));
    run->at.read = s->after;
    run->at.output_bytes += (long long)s->out.len;
    run->at.errors_bytes += (long long)s->errors.len;
    run->at.rows_done += (long long)s->rows;
    run->at.bad_rows += s->bad;
    *rows_this_run += (long long)s->rows;
    s->in_flight = false;
    if (!save_resume_point(run, false, err, n))
        return false;
    report_progress(run, started, *rows_this_run, false);
    return true;
}

static void close_pool(slot_pool *pool)
{
    pthread_mutex_lock(&pool->lock);
    pool->shutting_down = true;
    pthread_cond_broadcast(&pool->changed);
    pthread_mutex_unlock(&pool->lock);
    for (size_t i = 0; i < pool->count; i++) {
        chunk_slot *s = &pool->slots[i];
        if (s->thread_started)
            pthread_join(s->thread, NULL);
        if (s->predictor.model)
            batch_predictor_close(&s->predictor);
        free(s->origins);
        textbuf_free(&s->header);
        textbuf_free(&s->out);
        textbuf_free(&s->errors);
    }
    free(pool->slots);
    pthread_mutex_destroy(&pool->lock);
    pthread_cond_destroy(&pool->changed);
}

static size_t default_threads(void)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    return cores > 0 ? (size_t)cores : 1;
}

bool batch_run_files(const ifd_model *model, const batch_options *o, const batch_callbacks *cb,
                     batch_summary *summary, char *err, size_t n)
{
    double started = now_seconds();
    memset(summary, 0, sizeof(*summary));
    batch_format in_format, out_format;
    if (!batch_format_pick(o->input_path, o->input_format, false, &in_format, err, n) ||
        !batch_format_pick(o->output_path, o->output_format, true, &out_format, err, n))
        return false;
    struct stat st;
    if (stat(o->input_path, &st) != 0)
        return fail(err, n, "%s: %s", o->input_path, strerror(errno));
    if (o->batch_size < 1)
        return fail(err, n, "--batch-size must be at least 1");

    file_run run = {
        .o = o, .cb = cb, .output_fd = -1, .errors_fd = -1, .input_bytes = (long long)st.st_size};
    snprintf(run.partial_path, sizeof(run.partial_path), "%s.partial", o->output_path);
    snprintf(run.state_path, sizeof(run.state_path), "%s.resume", o->output_path);
    snprintf(run.state_tmp, sizeof(run.state_tmp), "%s.resume.tmp", o->output_path);
    run.identity = run_identity(o, &st, in_format, out_format);

    size_t workers = o->threads > 0 ? (size_t)o->threads : default_threads();
    slot_pool pool = {
        .count = 0, .csv = out_format == BATCH_FORMAT_CSV, .input_path = o->input_path};
    pthread_mutex_init(&pool.lock, NULL);
    pthread_cond_init(&pool.changed, NULL);
    worker_arg *args = calloc(workers, sizeof(*args));
    pool.slots = calloc(workers, sizeof(*pool.slots));
    batch_reader *reader = NULL;
    double *values = NULL;
    bool ok = false, finished = false;
    long long rows_this_run = 0, bad_this_run = 0;
    if (!args || !pool.slots) {
        fail(err, n, "out of memory");
        goto done;
    }
    /* each slot's session runs on one thread: the slots are the parallelism */
    for (size_t i = 0; i < workers; i++, pool.count++)
        if (!batch_predictor_open(&pool.slots[i].predictor, model, 1, o->batch_size, o->outputs,
                                  o->labels, err, n))
            goto done;
    batch_predictor *first = &pool.slots[0].predictor;
    if (first->notice[0] && cb && cb->notice)
        cb->notice(cb->context, first->notice);
    batch_reader_options ro = {.columns = o->columns,
                               .id_column = o->id_column,
                               .input_name = first->input->name,
                               .features = first->features};
    if (!batch_reader_open(o->input_path, in_format, &ro, &reader, err, n))
        goto done;
    bool created_partial;
    if (!lock_partial(&run, &created_partial, err, n))
        goto done;
    bool resuming = o->resume && access(run.state_path, F_OK) == 0;
    if (o->resume && !resuming && cb && cb->notice) {
        /* so a Kubernetes Job can always pass --resume, first attempt or retry */
        char note[4400];
        snprintf(note, sizeof(note),
                 "--resume: no interrupted run of %s (no %s); starting from "
                 "the first row",
                 o->output_path, run.state_path);
        cb->notice(cb->context, note);
    }
    if (resuming) {
        if (!load_resume_point(&run, &finished, err, n))
            goto done;
        if (finished && created_partial) {
            /* killed between the final rename and removing the resume point:
             * OUTPUT is complete; the partial file is the one just created */
            unlink(run.partial_path);
            unlink(run.state_path);
            ok = true;
            goto done;
        }
        if (!batch_reader_seek(reader, &run.at.read, err, n))
            goto done;
    } else if (access(run.state_path, F_OK) == 0) {
        fail(err, n,
             "an interrupted run of %s left %s: continue it with --resume, or delete %s "
             "and %s to start over",
             o->output_path, run.state_path, run.partial_path, run.state_path);
        goto done;
    } else {
        run.at.read = batch_reader_position(reader);
    }
    if (!open_files(&run, resuming, err, n))
        goto done;
    if (!resuming && !save_resume_point(&run, false, err, n))
        goto done;

    values = malloc(first->features * sizeof(*values));
    if (!values) {
        fail(err, n, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < workers; i++) {
        chunk_slot *s = &pool.slots[i];
        s->writer = (batch_writer){.format = out_format, .id_name = batch_reader_id_name(reader)};
        if (!(s->origins = calloc(s->predictor.batch_size, sizeof(*s->origins)))) {
            fail(err, n, "out of memory");
            goto done;
        }
        args[i] = (worker_arg){&pool, s};
        if (pthread_create(&s->thread, NULL, chunk_worker, &args[i]) != 0) {
            fail(err, n, "cannot start a worker thread");
            goto done;
        }
        s->thread_started = true;
    }
    bool end = finished, stop = false;
    char why[1024], last_bad[1400] = "";
    long long bad_seen = run.at.bad_rows;
    size_t next = 0;
    while (!end && !stop) {
        chunk_slot *s = &pool.slots[next];
        next = (next + 1) % workers;
        if (s->in_flight) {
            wait_done(&pool, s);
            if (!commit_chunk(&run, s, started, &rows_this_run, err, n))
                goto done;
        }
        s->rows = 0;
        s->bad = 0;
        s->errors.len = 0;
        size_t limit = s->predictor.batch_size;
        while (s->rows < limit) {
            batch_row_origin *origin = &s->origins[s->rows];
            int got = batch_reader_next(reader, values, origin, why, sizeof(why));
            if (got == BATCH_END) {
                end = true;
                break;
            }
            if (got == BATCH_READ_FAILED) {
                fail(err, n, "%s: %s", o->input_path, why[0] ? why : strerror(errno));
                goto done;
            }
            if (got == BATCH_ROW &&
                batch_predictor_set_row(&s->predictor, s->rows, values, why, sizeof(why))) {
                s->rows++;
                continue;
            }
            report_bad_row(&run, &s->errors, origin, in_format == BATCH_FORMAT_NPY, why);
            snprintf(last_bad, sizeof(last_bad), "line %lld: %s", origin->line, why);
            s->bad++;
            bad_this_run++;
            if (o->max_errors > 0 && ++bad_seen >= o->max_errors) {
                stop = true;
                break;
            }
        }
        if (s->errors.failed) {
            fail(err, n, "out of memory");
            goto done;
        }
        s->after = batch_reader_position(reader);
        hand_to_worker(&pool, s);
    }
    /* commit what is still in flight, in input order */
    for (size_t k = 0; k < workers; k++) {
        chunk_slot *s = &pool.slots[(next + k) % workers];
        if (!s->in_flight)
            continue;
        wait_done(&pool, s);
        if (!commit_chunk(&run, s, started, &rows_this_run, err, n))
            goto done;
    }
    if (stop) {
        fail(err, n,
             "stopped after %lld bad rows (--max-errors %lld); the last, %s; %lld rows "
             "written to %s, resumable with --resume",
             run.at.bad_rows, o->max_errors, last_bad, run.at.rows_done, run.partial_path);
        goto done;
    }
    /* Commit the whole output: mark the run finished, then publish it. */
    if (!save_resume_point(&run, true, err, n))
        goto done;
    if ((o->sync && fsync(run.output_fd) != 0) || rename(run.partial_path, o->output_path) != 0) {
        fail(err, n, "%s: cannot rename to %s: %s", run.partial_path, o->output_path,
             strerror(errno));
        goto done;
    }
    unlink(run.state_path);
    report_progress(&run, started, rows_this_run, true);
    ok = true;
done:
    summary->rows_written = rows_this_run;
    summary->bad_rows = bad_this_run;
    summary->seconds = now_seconds() - started;
    close_pool(&pool);
    free(args);
    if (run.output_fd >= 0)
        close(run.output_fd);
    if (run.errors_fd >= 0)
        close(run.errors_fd);
    free(values);
    batch_reader_close(reader);
    json_decref(run.identity);
    return ok;
}
