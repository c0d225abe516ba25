/*
 * bench_inferd.c — times one model at one batch size through libinferd's
 * public API (include/inferd/inferd.h) and prints the result as one JSON line.
 *
 * It is the C half of a pair: bench_ort.js does the same measurement with ONNX
 * Runtime's node binding, and bench/run.sh runs the two alternately and writes
 * bench/RESULTS.md. Both halves build their inputs identically (same xorshift32
 * stream, or the same fixture rows tiled to the batch) so the two engines
 * compute on the same bytes; any change to input generation here must be made
 * in bench_ort.js too.
 *
 * What is timed: load = ifd_model_load_file + ifd_session_create; one run =
 * ifd_session_run plus freeing its outputs, since the outputs are allocated
 * per call (ONNX Runtime's session.run allocates its outputs per call too).
 * cpu_us_per_run is the process's CPU time over the timed runs divided by
 * their number (all threads, spinning included). Peak RSS is getrusage's ru_maxrss for the whole process; the RSS before the
 * model is loaded is printed beside it so the harness's own share is visible.
 *
 *   bench_inferd MODEL.onnx [--batch N] [--threads N] [--input-from DIR [--as-is]]
 *                [--shape NAME=D1,D2,...] [--seed N] [--min-time S]
 *                [--min-iters N] [--max-iters N] [--warmup S] [--graph-opt LEVEL]
 *                [--profile]
 *
 * --as-is feeds every input_<i>.pb exactly as stored (no batch tiling), for
 * models whose inputs are not all batch-first: scalars such as a sample rate,
 * or recurrent state shaped [layers, batch, hidden] (bench/realmodels).
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <inferd/inferd.h>

#include "profile_table.h"

#define MAX_SHAPES 16

typedef struct shape_option {
    const char *name;
    int rank; /* dims after the batch dimension */
    int64_t dims[IFD_MAX_RANK];
} shape_option;

typedef struct bench_options {
    const char *model_path;
    const char *input_dir; /* DIR/input_<i>.pb: rows tiled to the batch */
    int inputs_as_is;      /* --as-is: DIR/input_<i>.pb fed exactly as stored */
    int64_t batch;
    int threads;
    uint32_t seed;
    double min_time, warmup;
    long min_iters, max_iters;
    shape_option shapes[MAX_SHAPES];
    int n_shapes;
    ifd_graph_opt graph_opt; /* --graph-opt none|basic|all (default all) */
    int profile;             /* --profile: per-node times of the timed runs */
} bench_options;

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* User + system CPU time of the whole process (every thread): on a loaded
 * machine a run's wall time includes the time it waited for a core, its CPU
 * time does not, so the two engines can still be compared per run. */
static double cpu_seconds(void)
{
    struct rusage usage;
    if (getrusage(RUSAGE_SELF, &usage) != 0)
        return 0.0;
    return (double)usage.ru_utime.tv_sec + (double)usage.ru_utime.tv_usec * 1e-6 +
           (double)usage.ru_stime.tv_sec + (double)usage.ru_stime.tv_usec * 1e-6;
}

static double peak_rss_mb(void)
{
    struct rusage usage;
    if (getrusage(RUSAGE_SELF, &usage) != 0)
        return -1.0;
    return (double)usage.ru_maxrss / 1024.0; /* Linux reports KiB */
}

/* Prints a JSON string body (without quotes), escaping what JSON requires. */
static void print_json_string(const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
}

/* A failed benchmark is still one JSON line, so the harness can report the
 * reason in the results table instead of stopping. */
static int report_failure(const bench_options *opt, const char *status, const char *fmt, ...)
{
    char message[1400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    printf("{\"engine\":\"inferd\",\"model\":\"");
    print_json_string(opt->model_path ? opt->model_path : "");
    printf("\",\"batch\":%lld,\"threads\":%d,\"status\":\"%s\",\"error\":\"",
           (long long)opt->batch, opt->threads, status);
    print_json_string(message);
    printf("\"}\n");
    return 2;
}

static int parse_long(const char *text, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = text ? strtol(text, &end, 10) : 0;
    if (!text || errno || end == text || *end || v < lo || v > hi)
        return 0;
    *out = v;
    return 1;
}

static int parse_seconds(const char *text, double *out)
{
    char *end;
    double v = text ? strtod(text, &end) : 0.0;
    if (!text || end == text || *end || !(v >= 0.0 && v <= 3600.0))
        return 0;
    *out = v;
    return 1;
}

/* NAME=D1,D2,... : the dims of input NAME after its batch dimension. */
static int parse_shape(char *text, shape_option *shape)
{
    char *eq = text ? strchr(text, '=') : NULL;
    if (!eq)
        return 0;
    *eq = '\0';
    shape->name = text;
    shape->rank = 0;
    char *p = eq + 1;
    while (*p) {
        char *end;
        errno = 0;
        long long d = strtoll(p, &end, 10);
        if (errno || end == p || d < 0 || d > (1LL << 31) || shape->rank >= IFD_MAX_RANK - 1)
            return 0;
        shape->dims[shape->rank++] = d;
        if (*end == ',')
            end++;
        else if (*end)
            return 0;
        p = end;
    }
    return 1;
}

/* --profile: every node's time in each of the last PROFILE_RUNS timed
 * runs, so the table gives each node's median run (on a shared machine a
 * preempted run would swing a mean by milliseconds). */
#define PROFILE_RUNS 4096
typedef struct node_samples {
    size_t count;            /* nodes */
    ifd_node_profile *last;  /* the session's totals after the previous run */
    ifd_node_profile *now;
    uint64_t *ns;            /* [run % PROFILE_RUNS][node] */
    long runs;
} node_samples;

static void node_samples_free(node_samples *p)
{
    if (!p)
        return;
    free(p->last);
    free(p->now);
    free(p->ns);
    free(p);
}

static node_samples *node_samples_new(ifd_session *session)
{
    node_samples *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    ifd_session_profile_reset(session);
    p->count = ifd_session_profile(session, NULL, 0);
    p->last = calloc(p->count + 1, sizeof(*p->last));
    p->now = calloc(p->count + 1, sizeof(*p->now));
    p->ns = calloc((p->count + 1) * PROFILE_RUNS, sizeof(*p->ns));
    if (!p->last || !p->now || !p->ns) {
        node_samples_free(p);
        return NULL;
    }
    ifd_session_profile(session, p->last, p->count);
    return p;
}

static void node_samples_add(node_samples *p, const ifd_session *session)
{
    ifd_session_profile(session, p->now, p->count);
    uint64_t *row = p->ns + (size_t)(p->runs % PROFILE_RUNS) * p->count;
    for (size_t i = 0; i < p->count; i++)
        row[i] = p->now[i].total_ns - p->last[i].total_ns;
    ifd_node_profile *swap = p->last;
    p->last = p->now;
    p->now = swap;
    p->runs++;
}

static int compare_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The table with each node's median run as its time a run. */
static void node_samples_print(const node_samples *p, long runs)
{
    size_t kept = (size_t)(p->runs < PROFILE_RUNS ? p->runs : PROFILE_RUNS);
    uint64_t *column = malloc((kept + 1) * sizeof(*column));
    ifd_node_profile *medians = malloc((p->count + 1) * sizeof(*medians));
    if (!column || !medians || kept == 0 || runs <= 0) {
        free(column);
        free(medians);
        return;
    }
    for (size_t i = 0; i < p->count; i++) {
        for (size_t r = 0; r < kept; r++)
            column[r] = p->ns[r * p->count + i];
        qsort(column, kept, sizeof(*column), compare_u64);
        medians[i] = p->last[i]; /* its name and operator */
        medians[i].total_ns = column[kept / 2] * (uint64_t)runs;
    }
    fprintf(stderr, "per node: the median of the last %zu runs\n", kept);
    print_profile_table(stderr, medians, p->count, runs);
    free(column);
    free(medians);
}

static void usage(void)
{
    fprintf(stderr,
            "usage: bench_inferd MODEL.onnx [--batch N] [--threads N] [--input-from DIR [--as-is]]\n"
            "       [--shape NAME=D1,D2,...] [--seed N] [--min-time S] [--min-iters N]\n"
            "       [--max-iters N] [--warmup S] [--graph-opt none|basic|all] [--profile]\n");
}

static int parse_args(int argc, char **argv, bench_options *opt)
{
    *opt = (bench_options){.batch = 1, .threads = 1, .seed = 1, .min_time = 1.0,
                           .warmup = 0.2, .min_iters = 200, .max_iters = 200000};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n;
        if (strcmp(a, "--batch") == 0 && parse_long(v, 1, 1L << 20, &n)) {
            opt->batch = n;
        } else if (strcmp(a, "--threads") == 0 && parse_long(v, 1, 256, &n)) {
            opt->threads = (int)n;
        } else if (strcmp(a, "--graph-opt") == 0 && v &&
                   (strcmp(v, "none") == 0 || strcmp(v, "basic") == 0 || strcmp(v, "all") == 0)) {
            opt->graph_opt = v[0] == 'n' ? IFD_GRAPH_OPT_NONE
                             : v[0] == 'b' ? IFD_GRAPH_OPT_BASIC
                                           : IFD_GRAPH_OPT_ALL;
        } else if (strcmp(a, "--seed") == 0 && parse_long(v, 0, 0x7fffffffL, &n)) {
            opt->seed = (uint32_t)n;
        } else if (strcmp(a, "--min-iters") == 0 && parse_long(v, 1, 100000000L, &n)) {
            opt->min_iters = n;
        } else if (strcmp(a, "--max-iters") == 0 && parse_long(v, 1, 100000000L, &n)) {
            opt->max_iters = n;
        } else if (strcmp(a, "--min-time") == 0 && parse_seconds(v, &opt->min_time)) {
        } else if (strcmp(a, "--warmup") == 0 && parse_seconds(v, &opt->warmup)) {
        } else if (strcmp(a, "--input-from") == 0 && v) {
            opt->input_dir = v;
        } else if (strcmp(a, "--as-is") == 0) {
            opt->inputs_as_is = 1;
            continue;
        } else if (strcmp(a, "--profile") == 0) {
            opt->profile = 1;
            continue;
        } else if (strcmp(a, "--shape") == 0 && opt->n_shapes < MAX_SHAPES &&
                   parse_shape(argv[i + 1], &opt->shapes[opt->n_shapes])) {
            opt->n_shapes++;
        } else if (a[0] != '-' && !opt->model_path) {
            opt->model_path = a;
            continue;
        } else {
            fprintf(stderr, "bench_inferd: bad argument '%s'%s%s\n", a, v ? " " : "", v ? v : "");
            usage();
            return 0;
        }
        i++;
    }
    if (!opt->model_path || (opt->inputs_as_is && !opt->input_dir)) {
        usage();
        return 0;
    }
    if (opt->max_iters < opt->min_iters)
        opt->max_iters = opt->min_iters;
    return 1;
}

static char *read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    long len = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (len >= 0 && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)len + 1)) != NULL &&
        fread(buf, 1, (size_t)len, f) != (size_t)len) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *size = (size_t)(len < 0 ? 0 : len);
    return buf;
}

/* xorshift32 (Marsaglia 2003): trivially reproduced in JavaScript with 32-bit
 * integer operations, which is what lets bench_ort.js feed identical bytes. */
static uint32_t xorshift32(uint32_t *state)
{
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *state = x;
}

static uint32_t input_seed(uint32_t seed, size_t input_index)
{
    uint32_t s = (seed + 1u) * 0x9E3779B1u + (uint32_t)input_index * 0x7F4A7C15u;
    return s ? s : 1u;
}

/* Floats uniform in [0, 1) with 24 random bits; integers in [0, 10); bools
 * 0/1. Small non-negative integers keep index-like inputs in range. */
static int fill_random(ifd_tensor *t, uint32_t state)
{
    int64_t n = ifd_tensor_count(t);
    for (int64_t i = 0; i < n; i++) {
        uint32_t r = xorshift32(&state);
        float f = (float)(r >> 8) * (1.0f / 16777216.0f);
        int64_t k = (int64_t)(r % 10u);
        switch (t->dtype) {
        case IFD_FLOAT: ((float *)t->data)[i] = f; break;
        case IFD_DOUBLE: ((double *)t->data)[i] = f; break;
        case IFD_INT64: ((int64_t *)t->data)[i] = k; break;
        case IFD_INT32: ((int32_t *)t->data)[i] = (int32_t)k; break;
        case IFD_UINT8: ((uint8_t *)t->data)[i] = (uint8_t)k; break;
        case IFD_INT8: ((int8_t *)t->data)[i] = (int8_t)k; break;
        case IFD_BOOL: ((uint8_t *)t->data)[i] = (uint8_t)(r & 1u); break;
        default: return 0;
        }
    }
    return 1;
}

/* Fills a [batch, ...] tensor by repeating the rows of a fixture tensor. */
static void tile_rows(ifd_tensor *dst, const ifd_tensor *src)
{
    size_t elem = ifd_dtype_size(dst->dtype);
    size_t row_bytes = elem * (size_t)(ifd_tensor_count(src) / src->dims[0]);
    for (int64_t r = 0; r < dst->dims[0]; r++)
        memcpy((char *)dst->data + (size_t)r * row_bytes,
               (const char *)src->data + (size_t)(r % src->dims[0]) * row_bytes, row_bytes);
}

/* Builds input i: dims from the declared type, the batch as the first dim,
 * unknown dims from --shape or else from the fixture input. On failure writes
 * the reason into why and returns NULL. */
static ifd_value *make_input(const bench_options *opt, const ifd_model *model, size_t i,
                             char *why, size_t why_size)
{
    const ifd_io_info *io = ifd_model_input(model, i);
    ifd_error err = {{0}};
    ifd_value *fixture = NULL, *value = NULL;
    if (io->type.kind != IFD_VALUE_TENSOR) {
        snprintf(why, why_size, "input '%s' is not a tensor", io->name);
        return NULL;
    }
    if (opt->input_dir) {
        char path[4096];
        size_t size;
        snprintf(path, sizeof(path), "%s/input_%zu.pb", opt->input_dir, i);
        char *buf = read_file(path, &size);
        if (buf && ifd_value_decode_pb(buf, size, &io->type, &fixture, &err) != IFD_OK) {
            snprintf(why, why_size, "%.150s: %.1000s", path, err.message);
            free(buf);
            return NULL;
        }
        free(buf);
        if (opt->inputs_as_is) {
            if (!fixture)
                snprintf(why, why_size, "--as-is: %.150s is missing", path);
            return fixture;
        }
        if (fixture && (fixture->kind != IFD_VALUE_TENSOR || fixture->tensor.rank < 1 ||
                        fixture->tensor.dims[0] < 1)) {
            ifd_value_free(fixture);
            fixture = NULL;
        }
    }
    const shape_option *shape = NULL;
    for (int k = 0; k < opt->n_shapes; k++)
        if (strcmp(opt->shapes[k].name, io->name) == 0)
            shape = &opt->shapes[k];
    int rank = shape ? shape->rank + 1 : io->type.rank >= 0 ? io->type.rank
                                       : fixture          ? fixture->tensor.rank
                                                          : -1;
    int64_t dims[IFD_MAX_RANK];
    for (int d = 0; d < rank; d++) {
        int64_t dim = -1;
        if (d == 0)
            dim = opt->batch;
        else if (shape)
            dim = shape->dims[d - 1];
        else if (io->type.rank > d && io->type.dims[d] >= 0)
            dim = io->type.dims[d];
        else if (fixture && fixture->tensor.rank == rank)
            dim = fixture->tensor.dims[d];
        if (dim < 0) {
            snprintf(why, why_size, "input '%s': dim %d unknown (give --shape or --input-from)",
                     io->name, d);
            ifd_value_free(fixture);
            return NULL;
        }
        dims[d] = dim;
    }
    if (rank < 1) {
        snprintf(why, why_size, "input '%s' has no batch dimension", io->name);
        ifd_value_free(fixture);
        return NULL;
    }
    if (ifd_value_new_tensor(io->type.dtype, rank, dims, &value, &err) != IFD_OK) {
        snprintf(why, why_size, "input '%s': %s", io->name, err.message);
        ifd_value_free(fixture);
        return NULL;
    }
    int same_rows = fixture && fixture->tensor.rank == rank && fixture->tensor.dtype == io->type.dtype;
    for (int d = 1; same_rows && d < rank; d++)
        same_rows = fixture->tensor.dims[d] == dims[d];
    if (same_rows) {
        tile_rows(&value->tensor, &fixture->tensor);
    } else if (!fill_random(&value->tensor, input_seed(opt->seed, i))) {
        snprintf(why, why_size, "input '%s': no random generator for %s", io->name,
                 ifd_dtype_name(io->type.dtype));
        ifd_value_free(value);
        value = NULL;
    }
    ifd_value_free(fixture);
    return value;
}

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted samples; bench_ort.js uses the same rule. */
static double percentile(const double *sorted, long n, double p)
{
    long rank = (long)ceil(p / 100.0 * (double)n);
    if (rank < 1)
        rank = 1;
    return sorted[rank - 1];
}

static void free_outputs(ifd_value **outputs, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        ifd_value_free(outputs[k]);
        outputs[k] = NULL;
    }
}

int main(int argc, char **argv)
{
    bench_options opt;
    if (!parse_args(argc, argv, &opt))
        return 64;
    /* Sample storage is written before the baseline is read, so the harness's
     * own memory is in both RSS figures and their difference is the engine's. */
    double *samples = malloc((size_t)opt.max_iters * sizeof(double));
    if (!samples)
        return report_failure(&opt, "error", "out of memory for %ld samples", opt.max_iters);
    for (long i = 0; i < opt.max_iters; i++)
        samples[i] = -1.0;
    double baseline_rss = peak_rss_mb();

    ifd_error err = {{0}};
    ifd_model *model = NULL;
    ifd_session *session = NULL;
    ifd_value **inputs = NULL, **outputs = NULL;
    int rc = 0;
    double t0 = now_seconds();
    ifd_load_options load_options = {.graph_opt = opt.graph_opt};
    ifd_status st = ifd_model_load_file(opt.model_path, &load_options, &model, &err);
    if (st == IFD_OK) {
        ifd_session_options so = {.threads = opt.threads, .profile = opt.profile};
        st = ifd_session_create(model, &so, &session, &err);
    }
    double load_ms = (now_seconds() - t0) * 1e3;
    if (st != IFD_OK) {
        rc = report_failure(&opt, st == IFD_ERR_UNSUPPORTED ? "unsupported" : "load_failed",
                            "%s", err.message);
        goto done;
    }

    size_t n_in = ifd_model_input_count(model), n_out = ifd_model_output_count(model);
    inputs = calloc(n_in + 1, sizeof(*inputs));
    outputs = calloc(n_out + 1, sizeof(*outputs));
    if (!inputs || !outputs) {
        rc = report_failure(&opt, "error", "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n_in; i++) {
        char why[1200];
        inputs[i] = make_input(&opt, model, i, why, sizeof(why));
        if (!inputs[i]) {
            rc = report_failure(&opt, "error", "%s", why);
            goto done;
        }
    }

    /* Warm-up: first-touch of the buffer pool, caches, branch predictors. */
    long warm_runs = 0;
    double warm_start = now_seconds();
    while (warm_runs < 3 || now_seconds() - warm_start < opt.warmup) {
        st = ifd_session_run(session, (const ifd_value *const *)inputs, outputs, &err);
        free_outputs(outputs, n_out);
        if (st != IFD_OK) {
            rc = report_failure(&opt, "run_failed", "%s: %s", ifd_status_name(st), err.message);
            goto done;
        }
        warm_runs++;
    }

    node_samples *profile = opt.profile ? node_samples_new(session) : NULL;
    long n = 0;
    double cpu_started = cpu_seconds();
    double started = now_seconds(), total = 0.0;
    while (n < opt.max_iters && (n < opt.min_iters || now_seconds() - started < opt.min_time)) {
        double a = now_seconds();
        st = ifd_session_run(session, (const ifd_value *const *)inputs, outputs, &err);
        free_outputs(outputs, n_out);
        double b = now_seconds();
        if (st != IFD_OK) {
            rc = report_failure(&opt, "run_failed", "%s: %s", ifd_status_name(st), err.message);
            goto done;
        }
        samples[n++] = (b - a) * 1e6;
        total += b - a;
        if (profile)
            node_samples_add(profile, session);
    }
    double cpu_per_run = (cpu_seconds() - cpu_started) / (double)n * 1e6;
    if (profile) {
        node_samples_print(profile, n);
        node_samples_free(profile);
    }
    double peak_rss = peak_rss_mb();
    qsort(samples, (size_t)n, sizeof(double), compare_double);
    printf("{\"engine\":\"inferd\",\"version\":\"%s\",\"model\":\"", IFD_VERSION_STRING);
    print_json_string(opt.model_path);
    printf("\",\"batch\":%lld,\"threads\":%d,\"status\":\"ok\",\"iters\":%ld,"
           "\"load_ms\":%.3f,\"median_us\":%.3f,\"p99_us\":%.3f,\"mean_us\":%.3f,"
           "\"min_us\":%.3f,\"throughput_rows_s\":%.1f,\"peak_rss_mb\":%.2f,"
           "\"baseline_rss_mb\":%.2f,\"cpu_us_per_run\":%.3f,\"batch_split\":%d}\n",
           (long long)opt.batch, opt.threads, n, load_ms, percentile(samples, n, 50.0),
           percentile(samples, n, 99.0), total / (double)n * 1e6, samples[0],
           (double)opt.batch * (double)n / total, peak_rss, baseline_rss, cpu_per_run,
           ifd_session_batch_split(session, NULL, 0));

done:
    if (inputs)
        for (size_t i = 0; i < ifd_model_input_count(model); i++)
            ifd_value_free(inputs[i]);
    free(inputs);
    free(outputs);
    ifd_session_free(session);
    ifd_model_free(model);
    free(samples);
    return rc;
}
