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
 */
#include "batch.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "predictor.h"
#include "reader.h"
#include "textbuf.h"
#include "writer.h"

static bool fail(char *err, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
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
    json_t *identity;     /* what a resumed run must match */
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
    json_object_set_new(id, "input_mtime_ns",
                        json_integer((json_int_t)input->st_mtim.tv_sec * 1000000000 +
                                     input->st_mtim.tv_nsec));
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
    json_t *state = json_pack("{s:O, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b}",
                              "run", run->identity,
                              "input_offset", (json_int_t)run->at.read.offset,
                              "next_line", (json_int_t)run->at.read.next_line,
                              "next_row", (json_int_t)run->at.read.next_row,
                              "output_bytes", (json_int_t)run->at.output_bytes,
                              "errors_bytes", (json_int_t)run->at.errors_bytes,
                              "rows_done", (json_int_t)run->at.rows_done,
                              "bad_rows", (json_int_t)run->at.bad_rows,
                              "finished", finished);
    char *text = state ? json_dumps(state, JSON_COMPACT) : NULL;
    json_decref(state);
    if (!text)
        return fail(err, n, "out of memory");
    int fd = open(run->state_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    size_t len = strlen(text);
    bool ok = fd >= 0 && write(fd, text, len) == (ssize_t)len &&
              (!run->o->sync || fdatasync(fd) == 0);
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
        json_object_foreach(run->identity, key, want) {
            if (!json_equal(want, json_object_get(identity, key))) {
                differs = key;
                break;
            }
        }
        ok = fail(err, n, "--resume: the interrupted run of %s differs in '%s' (the input "
                  "changed, or different options were given); rerun without --resume after "
                  "deleting %s and %s", run->o->output_path, differs, run->partial_path,
                  run->state_path);
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
static void report_bad_row(file_run *run, textbuf *errors, const batch_row_origin *origin,
                           bool npy, const char *why)
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

static bool open_files(file_run *run, bool resuming, char *err, size_t n)
{
    int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (resuming ? 0 : O_TRUNC);
    run->output_fd = open(run->partial_path, flags, 0644);
    if (run->output_fd < 0)
        return fail(err, n, "%s: %s", run->partial_path, strerror(errno));
    if (resuming && ftruncate(run->output_fd, (off_t)run->at.output_bytes) != 0)
        return fail(err, n, "%s: %s", run->partial_path, strerror(errno));
    if (run->o->errors_path) {
        run->errors_fd = open(run->o->errors_path, flags, 0644);
        if (run->errors_fd < 0)
            return fail(err, n, "%s: %s", run->o->errors_path, strerror(errno));
        if (resuming && ftruncate(run->errors_fd, (off_t)run->at.errors_bytes) != 0)
            return fail(err, n, "%s: %s", run->o->errors_path, strerror(errno));
    }
    return true;
}

static void report_progress(file_run *run, double started, long long rows_this_run, bool final)
{
    if (!run->cb || !run->cb->progress)
        return;
    batch_progress p = {.rows_done = run->at.rows_done, .rows_this_run = rows_this_run,
                        .bad_rows = run->at.bad_rows, .elapsed = now_seconds() - started,
                        .final = final};
    p.fraction = run->input_bytes > 0 ? (double)run->at.read.offset / (double)run->input_bytes : -1;
    run->cb->progress(run->cb->context, &p);
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

    file_run run = {.o = o, .cb = cb, .output_fd = -1, .errors_fd = -1,
                    .input_bytes = (long long)st.st_size};
    snprintf(run.partial_path, sizeof(run.partial_path), "%s.partial", o->output_path);
    snprintf(run.state_path, sizeof(run.state_path), "%s.resume", o->output_path);
    snprintf(run.state_tmp, sizeof(run.state_tmp), "%s.resume.tmp", o->output_path);
    run.identity = run_identity(o, &st, in_format, out_format);

    batch_predictor p;
    batch_reader *reader = NULL;
    double *values = NULL;
    batch_row_origin *origins = NULL;
    textbuf out = {0}, errors = {0};
    bool ok = false, finished = false;
    long long rows_this_run = 0, bad_this_run = 0;
    if (!batch_predictor_open(&p, model, o->threads, o->batch_size, o->outputs, o->labels, err, n))
        goto done;
    if (p.notice[0] && cb && cb->notice)
        cb->notice(cb->context, p.notice);
    batch_reader_options ro = {.columns = o->columns, .id_column = o->id_column,
                               .input_name = p.input->name, .features = p.features};
    if (!batch_reader_open(o->input_path, in_format, &ro, &reader, err, n))
        goto done;
    bool resuming = o->resume && access(run.state_path, F_OK) == 0;
    if (o->resume && !resuming && cb && cb->notice) {
        /* so a Kubernetes Job can always pass --resume, first attempt or retry */
        char note[4400];
        snprintf(note, sizeof(note), "--resume: no interrupted run of %s (no %s); starting from "
                 "the first row", o->output_path, run.state_path);
        cb->notice(cb->context, note);
    }
    if (resuming) {
        if (!load_resume_point(&run, &finished, err, n))
            goto done;
        if (finished && access(run.partial_path, F_OK) != 0) {
            /* killed between the final rename and removing the resume point */
            unlink(run.state_path);
            ok = true;
            goto done;
        }
        if (!batch_reader_seek(reader, &run.at.read, err, n))
            goto done;
    } else if (access(run.state_path, F_OK) == 0) {
        fail(err, n, "an interrupted run of %s left %s: continue it with --resume, or delete %s "
             "and %s to start over", o->output_path, run.state_path, run.partial_path,
             run.state_path);
        goto done;
    } else {
        run.at.read = batch_reader_position(reader);
    }
    if (!open_files(&run, resuming, err, n))
        goto done;
    if (!resuming && !save_resume_point(&run, false, err, n))
        goto done;

    batch_writer writer = {.format = out_format, .id_name = batch_reader_id_name(reader)};
    values = malloc(p.features * sizeof(*values));
    origins = calloc(p.batch_size, sizeof(*origins));
    if (!values || !origins) {
        fail(err, n, "out of memory");
        goto done;
    }
    bool end = finished, stop = false;
    char why[1024], last_bad[1400] = "";
    while (!end && !stop) {
        size_t rows = 0;
        out.len = errors.len = 0;
        while (rows < p.batch_size) {
            int got = batch_reader_next(reader, values, &origins[rows], why, sizeof(why));
            if (got == BATCH_END) {
                end = true;
                break;
            }
            if (got == BATCH_READ_FAILED) {
                fail(err, n, "%s: %s", o->input_path, why[0] ? why : strerror(errno));
                goto done;
            }
            if (got == BATCH_ROW && batch_predictor_set_row(&p, rows, values, why, sizeof(why))) {
                rows++;
                continue;
            }
            report_bad_row(&run, &errors, &origins[rows], in_format == BATCH_FORMAT_NPY, why);
            snprintf(last_bad, sizeof(last_bad), "line %lld: %s", origins[rows].line, why);
            run.at.bad_rows++;
            bad_this_run++;
            if (o->max_errors > 0 && run.at.bad_rows >= o->max_errors) {
                stop = true;
                break;
            }
        }
        if (!batch_predictor_run(&p, rows, why, sizeof(why))) {
            fail(err, n, "%s: rows %lld to %lld: %s", o->input_path, origins[0].row,
                 origins[rows - 1].row, why);
            goto done;
        }
        for (size_t r = 0; r < rows; r++) {
            if (run.at.output_bytes == 0 && out.len == 0 && out_format == BATCH_FORMAT_CSV &&
                !batch_writer_header(&writer, &p, r, &out, err, n))
                goto done;
            if (!batch_writer_row(&writer, &p, r, &origins[r], &out, err, n))
                goto done;
        }
        if (out.failed || errors.failed) {
            fail(err, n, "out of memory");
            goto done;
        }
        if (!write_at(run.output_fd, &out, run.at.output_bytes, run.partial_path, err, n) ||
            (errors.len && !write_at(run.errors_fd, &errors, run.at.errors_bytes,
                                     o->errors_path, err, n)))
            goto done;
        if (o->sync && (fdatasync(run.output_fd) != 0 ||
                        (errors.len && fdatasync(run.errors_fd) != 0))) {
            fail(err, n, "%s: fdatasync: %s", run.partial_path, strerror(errno));
            goto done;
        }
        run.at.read = batch_reader_position(reader);
        run.at.output_bytes += (long long)out.len;
        run.at.errors_bytes += (long long)errors.len;
        run.at.rows_done += (long long)rows;
        rows_this_run += (long long)rows;
        if (!save_resume_point(&run, false, err, n))
            goto done;
        report_progress(&run, started, rows_this_run, false);
    }
    if (stop) {
        fail(err, n, "stopped after %lld bad rows (--max-errors %lld); the last, %s%s; %lld rows "
             "written to %s, resumable with --resume", run.at.bad_rows, o->max_errors, last_bad,
             o->errors_path ? "" : " (bad rows are kept going with --errors FILE)",
             run.at.rows_done, run.partial_path);
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
    if (run.output_fd >= 0)
        close(run.output_fd);
    if (run.errors_fd >= 0)
        close(run.errors_fd);
    textbuf_free(&out);
    textbuf_free(&errors);
    free(values);
    free(origins);
    batch_reader_close(reader);
    if (p.model)
        batch_predictor_close(&p);
    json_decref(run.identity);
    return ok;
}
