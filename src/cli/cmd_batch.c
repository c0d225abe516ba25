/*
 * cmd_batch.c — `inferd batch`: offline inference over files (CSV, JSON
 * Lines, .npy) or a database table (SQLite, PostgreSQL), the book's batch
 * pattern. Flag parsing, model and label loading, and the progress display
 * live here; the work is src/batch's (batch.h), which prints nothing.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "batch.h"
#include "cli.h"
#include "store.h"

static const char batch_usage[] =
    "usage: inferd batch MODEL --input FILE --output FILE [file options] [options]\n"
    "       inferd batch MODEL --db URL --table T --id-column C --input-column C\n"
    "                          --output-column C [database options] [options]\n"
    "\n"
    "MODEL is an .onnx file or a stored model (name, name:version, name:latest).\n"
    "\n"
    "files:\n"
    "  --input FILE             CSV with a header row, JSON Lines (.jsonl) or NumPy .npy\n"
    "  --output FILE            CSV or JSON Lines; appears only when complete\n"
    "  --columns A,B,...        CSV input columns (default: every column but the id)\n"
    "  --id-column NAME         carried to the output (default: 'id' when present)\n"
    "  --input-format F         csv, jsonl or npy (default: from the extension)\n"
    "  --output-format F        csv or jsonl (default: from the extension)\n"
    "  --resume                 continue an interrupted run after its last written chunk\n"
    "                           (none: start from the first row)\n"
    "  --sync                   fdatasync every chunk (survive a power loss, not just a kill)\n"
    "databases:\n"
    "  --db URL                 sqlite:///relative.db, sqlite:////absolute.db, postgresql://...\n"
    "  --table T --id-column C --input-column C --output-column C\n"
    "                           predict rows whose output column IS NULL; the input cell is a\n"
    "                           JSON array; one transaction per chunk\n"
    "  --updated-column C       also set C to the current time\n"
    "  --shard I/N              only rows with id mod N = I (I may be 'auto': the\n"
    "                           JOB_COMPLETION_INDEX of a Kubernetes Indexed Job)\n"
    "options:\n"
    "  --batch-size N           rows per engine run (default 1024)\n"
    "  --threads N              files: chunks predicted in parallel, one engine thread each;\n"
    "                           --db: intra-op threads (default: one per core)\n"
    "  --labels FILE            {\"0\": \"setosa\", ...}: add each row's class label\n"
    "  --outputs A,B            write only these outputs (default: all)\n"
    "  --errors FILE            bad rows go here (file:line or row id, and why; default:\n"
    "                           stderr); the run goes on past them\n"
    "  --max-errors N           stop once N bad rows were seen (default: no limit)\n"
    "  --quiet                  no progress display\n"
    "  --graph-opt LEVEL        none|basic|all: the loader's graph optimisations (default all)\n"
    "  --store DIR              the model store for stored models (default: $INFERD_HOME)\n";

typedef struct progress_display {
    bool tty, quiet;
    double last;
    const char *what;
} progress_display;

static double wall_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void show_progress(void *context, const batch_progress *p)
{
    progress_display *d = context;
    if (d->quiet)
        return;
    double now = wall_seconds();
    /* a TTY redraws a bar ten times a second; a log gets a line every 10 s */
    if (!p->final && now - d->last < (d->tty ? 0.1 : 10.0))
        return;
    d->last = now;
    double rate = p->elapsed > 0 ? (double)p->rows_this_run / p->elapsed : 0;
    char eta[32] = "?";
    if (p->fraction > 0 && p->fraction < 1 && p->elapsed > 0) {
        double left = p->elapsed / p->fraction * (1 - p->fraction);
        snprintf(eta, sizeof(eta), "%d:%02d", (int)(left / 60), (int)left % 60);
    } else if (p->fraction >= 1) {
        snprintf(eta, sizeof(eta), "0:00");
    }
    if (d->tty) {
        char bar[32] = "";
        if (p->fraction >= 0) {
            int filled = (int)(p->fraction * 20 + 0.5);
            for (int i = 0; i < 20; i++)
                bar[i] = i < filled ? '#' : '.';
            bar[20] = '\0';
        }
        if (p->fraction >= 0)
            fprintf(stderr, "\r[%s] %3.0f%%  %lld rows  %.0f rows/s  ETA %s  %lld bad   ", bar,
                    p->fraction * 100, p->rows_done, rate, eta, p->bad_rows);
        else
            fprintf(stderr, "\r%lld rows  %.0f rows/s  %lld bad   ", p->rows_done, rate,
                    p->bad_rows);
        if (p->final)
            fputc('\n', stderr);
    } else {
        if (p->fraction >= 0)
            fprintf(
                stderr, "inferd batch: %lld rows (%.1f%%), %.0f rows/s, ETA %s, %lld bad rows%s\n",
                p->rows_done, p->fraction * 100, rate, eta, p->bad_rows, p->final ? ", done" : "");
        else
            fprintf(stderr, "inferd batch: %lld rows, %.0f rows/s, %lld bad rows%s\n", p->rows_done,
                    rate, p->bad_rows, p->final ? ", done" : "");
    }
    fflush(stderr);
}

static void show_notice(void *context, const char *message)
{
    progress_display *d = context;
    if (d->tty && !d->quiet)
        fputc('\n', stderr);
    fprintf(stderr, "inferd batch: %s\n", message);
}

static bool parse_count(const char *flag, const char *text, long long min, long long *out)
{
    char *end;
    errno = 0;
    long long v = text ? strtoll(text, &end, 10) : 0;
    if (!text || errno || *end || end == text || v < min) {
        cli_fail("%s: expected a whole number of at least %lld, got '%s'", flag, min,
                 text ? text : "");
        return false;
    }
    *out = v;
    return true;
}

static bool parse_shard(const char *text, long long *index, long long *count)
{
    const char *slash = text ? strchr(text, '/') : NULL;
    if (!slash) {
        cli_fail(
            "--shard: expected I/N (e.g. 0/4, or auto/4 in a Kubernetes Indexed Job), got '%s'",
            text ? text : "");
        return false;
    }
    char index_text[64];
    snprintf(index_text, sizeof(index_text), "%.*s", (int)(slash - text), text);
    if (!parse_count("--shard (N)", slash + 1, 1, count))
        return false;
    if (strcmp(index_text, "auto") == 0) {
        const char *env = getenv("JOB_COMPLETION_INDEX");
        if (!env || !*env) {
            cli_fail("--shard auto/%lld: JOB_COMPLETION_INDEX is not set (it is in the pods of a "
                     "Kubernetes Indexed Job)",
                     *count);
            return false;
        }
        if (!parse_count("JOB_COMPLETION_INDEX", env, 0, index))
            return false;
    } else if (!parse_count("--shard (I)", index_text, 0, index)) {
        return false;
    }
    if (*index >= *count) {
        cli_fail("--shard %lld/%lld: I must be from 0 to %lld", *index, *count, *count - 1);
        return false;
    }
    return true;
}

static json_t *load_labels(const char *path)
{
    json_error_t jerr;
    json_t *labels = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!labels) {
        cli_fail("--labels %s: line %d: %s", path, jerr.line, jerr.text);
        return NULL;
    }
    if (!json_is_object(labels)) {
        json_decref(labels);
        cli_fail("--labels %s: expected an object like {\"0\": \"setosa\", ...}", path);
        return NULL;
    }
    return labels;
}

int cmd_batch(int argc, char **argv)
{
    batch_options o = {.batch_size = 1024, .max_errors = 0};
    ifd_load_options load_options = {0};
    const char *model_path = NULL, *labels_path = NULL, *store_dir = NULL;
    long long batch_size = 1024;
    bool quiet = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define FLAG(name, field)                                                                          \
    if (strcmp(a, name) == 0 && v) {                                                               \
        field = v;                                                                                 \
        i++;                                                                                       \
        continue;                                                                                  \
    }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(batch_usage, stdout);
            return 0;
        }
        FLAG("--input", o.input_path)
        FLAG("--output", o.output_path)
        FLAG("--columns", o.columns)
        FLAG("--id-column", o.id_column)
        FLAG("--input-format", o.input_format)
        FLAG("--output-format", o.output_format)
        FLAG("--db", o.db_url)
        FLAG("--table", o.table)
        FLAG("--input-column", o.input_column)
        FLAG("--output-column", o.output_column)
        FLAG("--updated-column", o.updated_column)
        FLAG("--labels", labels_path)
        FLAG("--outputs", o.outputs)
        FLAG("--errors", o.errors_path)
        FLAG("--store", store_dir)
#undef FLAG
        if (strcmp(a, "--batch-size") == 0) {
            if (!parse_count(a, v, 1, &batch_size))
                return 1;
            if (batch_size > 1 << 24)
                return cli_fail("--batch-size: at most %d rows", 1 << 24);
            i++;
        } else if (strcmp(a, "--max-errors") == 0) {
            if (!parse_count(a, v, 1, &o.max_errors))
                return 1;
            i++;
        } else if (strcmp(a, "--threads") == 0) {
            if (!cli_parse_threads(v, &o.threads))
                return 1;
            i++;
        } else if (strcmp(a, "--graph-opt") == 0) {
            if (!cli_parse_graph_opt(v, &load_options.graph_opt))
                return 1;
            i++;
        } else if (strcmp(a, "--shard") == 0) {
            if (!parse_shard(v, &o.shard_index, &o.shard_count))
                return 1;
            i++;
        } else if (strcmp(a, "--resume") == 0) {
            o.resume = true;
        } else if (strcmp(a, "--sync") == 0) {
            o.sync = true;
        } else if (strcmp(a, "--quiet") == 0) {
            quiet = true;
        } else if (a[0] == '-' || model_path) {
            return cli_fail("batch: unexpected argument '%s' (inferd batch --help)", a);
        } else {
            model_path = a;
        }
    }
    o.batch_size = (size_t)batch_size;
    bool files = o.input_path || o.output_path;
    if (!model_path || (!files && !o.db_url))
        return cli_fail("batch: give a model and --input/--output or --db (inferd batch --help)");
    if (files && o.db_url)
        return cli_fail("batch: --input/--output and --db are two different runs; give one");
    if (files && (!o.input_path || !o.output_path))
        return cli_fail("batch: --input and --output go together");
    if (o.db_url) {
        /* the id flag is shared: --id-column names the table's id column */
        o.db_id_column = o.id_column;
        if (o.resume)
            return cli_fail("batch: --resume is for files; a database run always continues "
                            "with the rows still NULL");
        if (!o.table || !o.db_id_column || !o.input_column || !o.output_column)
            return cli_fail("batch: --db needs --table, --id-column, --input-column and "
                            "--output-column");
    } else if (o.table || o.input_column || o.output_column || o.updated_column || o.shard_count) {
        return cli_fail("batch: --table, --input-column, --output-column, --updated-column and "
                        "--shard are for --db runs");
    }

    /* A stored model by reference when no file of that name exists. */
    char stored_path[4400], stored_labels[4400];
    model_ref stored;
    char ref_err[256];
    if (access(model_path, F_OK) != 0 &&
        store_parse_ref(model_path, &stored, ref_err, sizeof(ref_err))) {
        char dir[4096];
        if (!cli_store_model_dir(store_dir, model_path, &stored, dir, sizeof(dir)))
            return 1;
        snprintf(stored_path, sizeof(stored_path), "%s/model.onnx", dir);
        snprintf(stored_labels, sizeof(stored_labels), "%s/labels.json", dir);
        model_path = stored_path;
        if (!labels_path && access(stored_labels, R_OK) == 0)
            labels_path = stored_labels;
    }
    json_t *labels = NULL;
    if (labels_path && !(labels = load_labels(labels_path)))
        return 1;
    o.labels = labels;

    ifd_model *model = NULL;
    ifd_error e;
    if (ifd_model_load_file(model_path, &load_options, &model, &e) != IFD_OK) {
        json_decref(labels);
        return cli_fail("%s", e.message);
    }
    progress_display display = {
        .tty = isatty(STDERR_FILENO) == 1, .quiet = quiet, .last = wall_seconds()};
    batch_callbacks callbacks = {
        .context = &display, .progress = show_progress, .notice = show_notice};
    batch_summary summary;
    char err[2048];
    bool ok = o.db_url ? batch_run_db(model, &o, &callbacks, &summary, err, sizeof(err))
                       : batch_run_files(model, &o, &callbacks, &summary, err, sizeof(err));
    if (display.tty && !quiet && !ok)
        fputc('\n', stderr);
    int rc = 0;
    if (!ok) {
        rc = cli_fail("batch: %s", err);
    } else if (!quiet) {
        double rate = summary.seconds > 0 ? (double)summary.rows_written / summary.seconds : 0;
        fprintf(stderr, "inferd batch: %lld rows written to %s in %.2f s (%.0f rows/s)",
                summary.rows_written, o.db_url ? o.table : o.output_path, summary.seconds, rate);
        if (summary.bad_rows)
            fprintf(stderr, ", %lld bad rows %s%s", summary.bad_rows,
                    o.errors_path ? "listed in " : "reported above",
                    o.errors_path ? o.errors_path : "");
        fputc('\n', stderr);
    }
    ifd_model_free(model);
    json_decref(labels);
    return rc;
}
