/*
 * cmd_serve.c — `inferd serve`: parse flags and the book's environment
 * variables (flags win), load every model, then hand over to the server.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "job_exec.h"
#include "jobs.h"
#include "log.h"
#include "../serve/metrics.h"
#include "../serve/server.h"
#include "../store/fetch.h"
#include "../store/store.h"
#include "cli.h"
#include "pipeline_set.h"

static const char serve_usage[] =
    "usage: inferd serve MODEL.onnx|NAME[:VERSION] [options]   (a file, or a stored model)\n"
    "       inferd serve --repository DIR [options]\n"
    "       inferd serve --model-uri URI [--sha256 HEX] [options]\n"
    "options:\n"
    "  --model-uri URI      pull the model (http, https, file, s3) into the store\n"
    "                       ($INFERD_HOME or --store DIR), then serve it\n"
    "  --sha256 HEX         expected sha256 of --model-uri; a stored copy skips the download\n"
    "  --store DIR          store root for --model-uri\n"
    "  --labels FILE        label file for the book's API ({\"0\": \"name\", ...})\n"
    "  --name NAME          model name (default: the file name)\n"
    "  --model-version V    model version (default: 1)\n"
    "  --sample JSON        rows /predict/test and an empty /predict use\n"
    "  --host ADDR          listen address (default 127.0.0.1; 0.0.0.0 for all)\n"
    "  --port N             port (default 8000, or $PORT)\n"
    "  --grpc-port N        also serve KServe V2 over gRPC (inference.GRPCInferenceService)\n"
    "                       on this port (Triton's is 8001; 0: any free port). Off unless\n"
    "                       given (or $GRPC_PORT); same host, models, limits and logs\n"
    "  --grpc-tls-cert PEM  --grpc-tls-key PEM: serve gRPC over TLS with this certificate\n"
    "                       chain and private key (default: plaintext h2c)\n"
    "  --grpc-tls-client-ca PEM  with TLS, require client certificates signed by these CAs\n"
    "  --workers N          inference threads (default: one per core)\n"
    "  --threads N          intra-op threads per inference (default 1)\n"
    "  --graph-opt LEVEL    none|basic|all: the loader's graph optimisations (default all)\n"
    "  --max-body BYTES     largest request body (default 64 MiB)\n"
    "  --max-connections N  concurrent connections (default 16384; the descriptor\n"
    "                       limit is raised to fit)\n"
    "  --timeout SECONDS    time a request may take to arrive (default 30)\n"
    "  --grace SECONDS      time to finish requests on SIGTERM (default 10)\n"
    "  --model-control M    none (default: what loads at start serves), poll (re-scan\n"
    "                       --repository every --poll-interval seconds), explicit (only\n"
    "                       the repository API loads and unloads)\n"
    "  --poll-interval S    seconds between repository scans in poll mode (default 5)\n"
    "  --pipeline-threads N threads that run parallel pipeline branches beside the\n"
    "                       worker that runs the request (default: --workers)\n"
    "  --book-model NAME    the model or pipeline the book's /predict, /predict/label\n"
    "                       answer (default: the first model by name)\n"
    "  --admin-token TOKEN  turn on the repository API (/v2/repository/...), callers send\n"
    "                       'Authorization: Bearer TOKEN' (or $INFERD_ADMIN_TOKEN)\n"
    "adaptive batching (per model in config.json: max_batch_size, max_queue_delay_us,\n"
    "preferred_batch_sizes, max_queue_size; these flags set it for the other models):\n"
    "  --max-batch-size N   rows one engine call may batch from concurrent requests\n"
    "                       (default 0: off)\n"
    "  --max-queue-delay-us N  longest a request waits for a batch to form, when arrivals\n"
    "                       are fast enough for waiting to pay (default 2000)\n"
    "  --preferred-batch-sizes N[,N...]  batch sizes closed without waiting longer\n"
    "  --batch-queue N      requests a model's batch queue holds; more answer 429 (default 1024)\n"
    "asynchronous inference (POST .../infer with 'Prefer: respond-async', GET /v2/jobs/ID):\n"
    "  --queue URL          the job queue: 'embedded' (default: SQLite in --state-dir) or\n"
    "                       redis://HOST[:PORT][/DB], shared with other servers and workers\n"
    "  --state-dir DIR      the embedded queue's directory (default $INFERD_STATE_DIR, else\n"
    "                       $XDG_STATE_HOME/inferd, else ~/.local/state/inferd)\n"
    "  --async-workers N    job threads of this server (default: one per core; 0: this\n"
    "                       server only queues jobs and answers their status)\n"
    "  --job-ttl S          seconds a finished job's result is kept (default 3600)\n"
    "  --max-queued N       pending jobs before submits answer 429 (default 100000)\n"
    "  --visibility-timeout S  seconds a running job may go without word from its worker\n"
    "                       before another worker takes it over (default 300)\n"
    "  --async-book         the book's asynchronous API: POST /predict answers {\"job_id\"},\n"
    "                       GET /job/ID answers {ID: {\"prediction\": ...}}\n"
    "  --async-book-model M the book's sync-async pattern (with --async-book): POST /predict\n"
    "                       answers the default model at once and queues model M, returning\n"
    "                       {\"prediction\": ..., \"job_id\": ...}\n"
    "environment: MODEL_FILEPATH, LABEL_FILEPATH, PORT, LOG_LEVEL (DEBUG|INFO|WARNING|ERROR),\n"
    "             LOG_FORMAT (TEXT|JSON), INFERD_ADMIN_TOKEN, GRPC_PORT\n";

/* "8,16,32": --preferred-batch-sizes */
static bool parse_batch_sizes(const char *text, batch_settings *out)
{
    if (!text || !*text)
        return cli_fail("--preferred-batch-sizes: expected sizes such as 8,16,32") == 0;
    out->n_preferred = 0;
    const char *p = text;
    while (*p) {
        char *end;
        errno = 0;
        long size = strtol(p, &end, 10);
        if (errno || end == p || size < 1 || size > 1l << 20 || (*end && *end != ',') ||
            out->n_preferred == BATCH_MAX_PREFERRED)
            return cli_fail("--preferred-batch-sizes: expected up to %d sizes from 1 to 1048576 "
                            "separated by commas, got '%s'", BATCH_MAX_PREFERRED, text) == 0;
        out->preferred[out->n_preferred++] = (int)size;
        p = *end ? end + 1 : end;
    }
    return true;
}

static void log_pull_notice(void *context, const char *message)
{
    (void)context;
    log_event(LOG_WARNING, "model download", "detail", message, NULL);
}

/* The stored copy of a --model-uri model, for the registry. */
typedef struct pulled_model {
    char path[4200], labels[4200], origin[2048];
    char name[STORE_NAME_MAX + 1], version[STORE_NAME_MAX + 1];
    char *manifest_text; /* model.json, for the inventory; malloc'd */
} pulled_model;

/* The model-load pattern: pull --model-uri into the store (no download when
 * --sha256 is already stored), then serve the stored copy. */
static bool pull_model_uri(const char *uri, const char *sha256, const char *root, const char *name,
                           const char *version, pulled_model *out)
{
    char err[2048], derived[STORE_NAME_MAX + 1], dir[4096], shown[2048];
    fetch_redact_uri(uri, shown, sizeof(shown));
    if (!name)
        fetch_name_from_uri(uri, derived);
    import_options import = {
        .name = name ? name : derived, .version = version, .expected_sha256 = sha256};
    store *s = store_open(root, err, sizeof(err));
    if (!s) {
        log_event(LOG_ERROR, "cannot open the model store", "error", err, NULL);
        return false;
    }
    fetch_options fetch = {.progress = isatty(STDERR_FILENO) ? stderr : NULL,
                           .notice = log_pull_notice};
    pull_result pulled;
    bool ok = store_pull(s, uri, &import, &fetch, &pulled, err, sizeof(err)) &&
              store_resolve(s, &pulled.ref, dir, sizeof(dir), err, sizeof(err));
    if (!ok) {
        log_event(LOG_ERROR, "cannot pull model", "uri", shown, "error", err, NULL);
        store_close(s);
        return false;
    }
    char bytes[32], attempts[16];
    snprintf(bytes, sizeof(bytes), "%llu", pulled.fetch.bytes);
    snprintf(attempts, sizeof(attempts), "%d", pulled.fetch.attempts);
    const char *download = pulled.cache_hit        ? "none (cache hit)"
                           : pulled.already_stored ? "already stored"
                                                   : "done";
    log_event(LOG_INFO, "model pulled", "uri", shown, "sha256", pulled.sha256, "model",
              pulled.ref.name, "version", pulled.ref.version, "store", store_root(s), "download",
              download, "bytes", bytes, "attempts", attempts, NULL);
    snprintf(out->path, sizeof(out->path), "%s/model.onnx", dir);
    snprintf(out->name, sizeof(out->name), "%s", pulled.ref.name);
    snprintf(out->version, sizeof(out->version), "%s", pulled.ref.version);
    snprintf(out->origin, sizeof(out->origin), "%s", shown);
    json_t *manifest = store_manifest(s, &pulled.ref, err, sizeof(err));
    out->manifest_text = manifest ? json_dumps(manifest, JSON_COMPACT) : NULL;
    json_decref(manifest);
    snprintf(out->labels, sizeof(out->labels), "%s/labels.json", dir);
    if (access(out->labels, R_OK) != 0)
        out->labels[0] = '\0';
    store_close(s);
    return true;
}

static bool parse_long(const char *flag, const char *text, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = text ? strtol(text, &end, 10) : 0;
    if (!text || errno || *end || v < lo || v > hi) {
        cli_fail("%s: expected a whole number from %ld to %ld, got '%s'", flag, lo, hi, text ? text : "");
        return false;
    }
    *out = v;
    return true;
}

static bool parse_double(const char *flag, const char *text, double *out)
{
    char *end;
    errno = 0;
    double v = text ? strtod(text, &end) : -1;
    if (!text || errno || *end || v < 0 || v > 3600) {
        cli_fail("%s: expected seconds from 0 to 3600, got '%s'", flag, text ? text : "");
        return false;
    }
    *out = v;
    return true;
}

int cmd_serve(int argc, char **argv) { return cli_serve(argc, argv, NULL); }

static void log_job_error(void *user, jobs_status status, const char *message)
{
    (void)user;
    log_event(LOG_WARNING, "job queue", "status", jobs_status_name(status), "error", message, NULL);
}

/* The server's own job threads (none with --async-workers 0 or no queue). */
static bool start_job_workers(jobs_queue *queue, job_exec *exec, jobs_runner **out)
{
    *out = NULL;
    if (!queue || exec->sessions <= 0) {
        if (queue)
            log_event(LOG_INFO, "job queue", "backend", jobs_backend_name(queue), "location", jobs_location(queue),
                      "workers", "0", NULL);
        return true;
    }
    jobs_runner_config config = {.threads = (unsigned)exec->sessions, .run = job_exec_run,
                                 .on_error = log_job_error, .user = exec};
    char err[1024], threads[16];
    if (jobs_runner_start(queue, &config, out, err, sizeof(err)) != JOBS_OK) {
        log_event(LOG_ERROR, "cannot start the job workers", "error", err, NULL);
        return false;
    }
    snprintf(threads, sizeof(threads), "%d", exec->sessions);
    log_event(LOG_INFO, "job queue", "backend", jobs_backend_name(queue), "location", jobs_location(queue),
              "workers", threads, NULL);
    return true;
}

int cli_serve(int argc, char **argv, const model_source *embedded)
{
    const char *model_path = getenv("MODEL_FILEPATH"), *labels = getenv("LABEL_FILEPATH");
    const char *repository = NULL, *name = NULL, *version = NULL, *sample = NULL;
    const char *model_uri = NULL, *model_sha256 = NULL, *store_dir = NULL;
    int threads = 1, pipeline_threads = -1;
    ifd_graph_opt graph_opt = IFD_GRAPH_OPT_DEFAULT;
    model_control control = MODEL_CONTROL_NONE;
    double poll_interval = 5.0;
    const char *admin_token = getenv("INFERD_ADMIN_TOKEN");
    const char *queue_url = NULL, *state_dir = NULL;
    long async_workers = -1;
    batch_settings batching = {.max_queue_delay_us = BATCH_DEFAULT_DELAY_US, .max_queue = BATCH_DEFAULT_QUEUE};
    bool async_book = false;
    const char *async_book_model = NULL;
    jobs_config queue_config = {.result_ttl = 3600, .max_queued = 100000};
    serve_options o = {
        .host = "127.0.0.1",
        .port = 8000,
        .workers = 0,
        .io_threads = 1,
        .max_body = 64u << 20,
        .max_header = 16u << 10,
        .connection_limit = 16384,
        .request_timeout = 30,
        .grace = 10.0,
        .grpc_port = -1,
        .grpc_first_session = -1,
    };
    log_level level = LOG_INFO;
    log_format format = LOG_TEXT;
    const char *env;
    long v;
    if ((env = getenv("PORT")) && *env) {
        if (!parse_long("PORT", env, 0, 65535, &v))
            return 1;
        o.port = (int)v;
    }
    if ((env = getenv("GRPC_PORT")) && *env) {
        if (!parse_long("GRPC_PORT", env, 0, 65535, &v))
            return 1;
        o.grpc_port = (int)v;
    }
    if ((env = getenv("LOG_LEVEL")) && *env && !log_parse_level(env, &level))
        return cli_fail("LOG_LEVEL: expected DEBUG, INFO, WARNING or ERROR, got '%s'", env);
    if ((env = getenv("LOG_FORMAT")) && *env && !log_parse_format(env, &format))
        return cli_fail("LOG_FORMAT: expected TEXT or JSON, got '%s'", env);

    for (int i = 1; i < argc; i++) {
        const char *flag = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
#define TAKE() (i++, value)
        if (strcmp(flag, "-h") == 0 || strcmp(flag, "--help") == 0) {
            fputs(serve_usage, stdout);
            return 0;
        } else if (strcmp(flag, "--labels") == 0 && value) {
            labels = TAKE();
        } else if (strcmp(flag, "--model-uri") == 0 && value) {
            model_uri = TAKE();
        } else if (strcmp(flag, "--sha256") == 0 && value) {
            model_sha256 = TAKE();
        } else if (strcmp(flag, "--store") == 0 && value) {
            store_dir = TAKE();
        } else if (strcmp(flag, "--repository") == 0 && value) {
            repository = TAKE();
        } else if (strcmp(flag, "--name") == 0 && value) {
            name = TAKE();
        } else if (strcmp(flag, "--model-version") == 0 && value) {
            version = TAKE();
        } else if (strcmp(flag, "--sample") == 0 && value) {
            sample = TAKE();
        } else if (strcmp(flag, "--host") == 0 && value) {
            o.host = TAKE();
        } else if (strcmp(flag, "--port") == 0) {
            if (!parse_long(flag, TAKE(), 0, 65535, &v))
                return 1;
            o.port = (int)v;
        } else if (strcmp(flag, "--grpc-port") == 0) {
            if (!parse_long(flag, TAKE(), 0, 65535, &v))
                return 1;
            o.grpc_port = (int)v;
        } else if (strcmp(flag, "--grpc-tls-cert") == 0 && value) {
            o.grpc_tls_cert = TAKE();
        } else if (strcmp(flag, "--grpc-tls-key") == 0 && value) {
            o.grpc_tls_key = TAKE();
        } else if (strcmp(flag, "--grpc-tls-client-ca") == 0 && value) {
            o.grpc_tls_client_ca = TAKE();
        } else if (strcmp(flag, "--workers") == 0) {
            if (!parse_long(flag, TAKE(), 1, 256, &v))
                return 1;
            o.workers = (int)v;
        } else if (strcmp(flag, "--threads") == 0) {
            if (!cli_parse_threads(TAKE(), &threads))
                return 1;
        } else if (strcmp(flag, "--graph-opt") == 0) {
            if (!cli_parse_graph_opt(TAKE(), &graph_opt))
                return 1;
        } else if (strcmp(flag, "--max-body") == 0) {
            if (!parse_long(flag, TAKE(), 1, 1l << 32, &v))
                return 1;
            o.max_body = (size_t)v;
        } else if (strcmp(flag, "--max-connections") == 0) {
            if (!parse_long(flag, TAKE(), 1, 100000, &v))
                return 1;
            o.connection_limit = (unsigned)v;
        } else if (strcmp(flag, "--timeout") == 0) {
            if (!parse_long(flag, TAKE(), 1, 3600, &v))
                return 1;
            o.request_timeout = (unsigned)v;
        } else if (strcmp(flag, "--model-control") == 0) {
            const char *mode = TAKE();
            if (!mode || !model_control_parse(mode, &control))
                return cli_fail("--model-control: expected none, poll or explicit, got '%s'", mode ? mode : "");
        } else if (strcmp(flag, "--poll-interval") == 0) {
            const char *text = TAKE();
            char *end;
            errno = 0;
            poll_interval = text ? strtod(text, &end) : -1;
            if (!text || errno || *end || !(poll_interval >= 0.01 && poll_interval <= 86400))
                return cli_fail("--poll-interval: expected seconds from 0.01 to 86400, got '%s'", text ? text : "");
        } else if (strcmp(flag, "--max-batch-size") == 0) {
            if (!parse_long(flag, TAKE(), 0, 1l << 20, &v))
                return 1;
            batching.max_batch_size = (int)v;
        } else if (strcmp(flag, "--max-queue-delay-us") == 0) {
            if (!parse_long(flag, TAKE(), 0, 10000000, &v))
                return 1;
            batching.max_queue_delay_us = v;
        } else if (strcmp(flag, "--batch-queue") == 0) {
            if (!parse_long(flag, TAKE(), 1, 1l << 20, &v))
                return 1;
            batching.max_queue = (int)v;
        } else if (strcmp(flag, "--preferred-batch-sizes") == 0) {
            if (!parse_batch_sizes(TAKE(), &batching))
                return 1;
        } else if (strcmp(flag, "--admin-token") == 0 && value) {
            admin_token = TAKE();
        } else if (strcmp(flag, "--queue") == 0 && value) {
            queue_url = TAKE();
        } else if (strcmp(flag, "--state-dir") == 0 && value) {
            state_dir = TAKE();
        } else if (strcmp(flag, "--async-workers") == 0) {
            if (!parse_long(flag, TAKE(), 0, 256, &async_workers))
                return 1;
        } else if (strcmp(flag, "--job-ttl") == 0) {
            if (!parse_long(flag, TAKE(), 1, 30l * 86400, &v))
                return 1;
            queue_config.result_ttl = (double)v;
        } else if (strcmp(flag, "--max-queued") == 0) {
            if (!parse_long(flag, TAKE(), 1, 1000000000l, &v))
                return 1;
            queue_config.max_queued = (uint64_t)v;
        } else if (strcmp(flag, "--visibility-timeout") == 0) {
            const char *text = TAKE();
            char *end;
            errno = 0;
            queue_config.visibility_timeout = text ? strtod(text, &end) : -1;
            if (!text || errno || *end || !(queue_config.visibility_timeout >= 0.1 &&
                                            queue_config.visibility_timeout <= 86400))
                return cli_fail("--visibility-timeout: expected seconds from 0.1 to 86400, got '%s'",
                                text ? text : "");
        } else if (strcmp(flag, "--async-book-model") == 0 && value) {
            async_book_model = TAKE();
        } else if (strcmp(flag, "--async-book") == 0) {
            async_book = true;
        } else if (strcmp(flag, "--pipeline-threads") == 0) {
            if (!parse_long(flag, TAKE(), 0, 256, &v))
                return 1;
            pipeline_threads = (int)v;
        } else if (strcmp(flag, "--book-model") == 0 && value) {
            o.book_model = TAKE();
        } else if (strcmp(flag, "--grace") == 0) {
            if (!parse_double(flag, TAKE(), &o.grace))
                return 1;
        } else if (flag[0] != '-' && !model_path) {
            model_path = flag;
        } else if (flag[0] != '-' && model_path && model_path == getenv("MODEL_FILEPATH")) {
            model_path = flag; /* the command line wins over MODEL_FILEPATH */
        } else {
            fputs(serve_usage, stderr);
            return cli_fail("serve: unexpected argument '%s'", flag);
        }
#undef TAKE
    }
    if (embedded && (repository || (model_path && model_path != getenv("MODEL_FILEPATH"))))
        return cli_fail("serve: this executable serves the model it carries; it takes no MODEL "
                        "or --repository (run a plain inferd for those)");
    bool model_given = model_path && model_path != getenv("MODEL_FILEPATH");
    if (model_uri && (embedded || repository || model_given)) {
        fputs(serve_usage, stderr);
        return cli_fail("serve: give one of MODEL.onnx, --repository DIR and --model-uri URI");
    }
    if (model_sha256 && !model_uri)
        return cli_fail("serve: --sha256 goes with --model-uri");
    char sha_check[65];
    if (model_sha256 && !fetch_parse_sha256(model_sha256, sha_check))
        return cli_fail("--sha256: expected 64 hexadecimal digits, got '%s'", model_sha256);
    if (model_uri) {
        char uri_err[2048];
        if (!fetch_check_uri(model_uri, uri_err, sizeof(uri_err)))
            return cli_fail("--model-uri: %s", uri_err);
        if (name && !store_valid_name(name))
            return cli_fail("--name: '%s' is not a valid store name (lowercase letters, digits, "
                            "'.', '_', '-')",
                            name);
        if (version && !store_valid_name(version))
            return cli_fail("--model-version: '%s' is not a valid store version", version);
        model_path = NULL;
    }
    if (!embedded && !repository && !model_uri && (!model_path || !*model_path)) {
        fputs(serve_usage, stderr);
        return cli_fail("serve: give MODEL.onnx, --repository DIR or MODEL_FILEPATH");
    }
    if (control != MODEL_CONTROL_NONE && !repository)
        return cli_fail("serve: --model-control %s needs --repository DIR", model_control_name(control));
    if (!o.grpc_tls_cert != !o.grpc_tls_key)
        return cli_fail("serve: --grpc-tls-cert and --grpc-tls-key go together");
    if ((o.grpc_tls_cert || o.grpc_tls_client_ca) && o.grpc_port < 0)
        return cli_fail("serve: the --grpc-tls-* options need --grpc-port");
    if (o.grpc_tls_client_ca && !o.grpc_tls_cert)
        return cli_fail("serve: --grpc-tls-client-ca needs --grpc-tls-cert and --grpc-tls-key");
    if (async_book_model && !async_book)
        return cli_fail("serve: --async-book-model goes with --async-book");
    if (admin_token && *admin_token && strlen(admin_token) < 16)
        return cli_fail("--admin-token: use at least 16 characters (a guessable token is no protection)");
    if (admin_token && strlen(admin_token) > 256)
        return cli_fail("--admin-token: at most 256 characters");
    log_configure(level, format);
    char err_ref[256];
    pulled_model pulled = {.manifest_text = NULL};
    if (model_uri) {
        if (!pull_model_uri(model_uri, model_sha256, store_dir, name, version, &pulled))
            return 1;
        model_path = pulled.path;
        name = pulled.name;
        version = pulled.version;
        if ((!labels || !*labels) && pulled.labels[0])
            labels = pulled.labels;
    }
    /* A stored model by reference (name, name:version, name:latest) when no
     * file of that name exists: serve it from the store with its labels. */
    char stored_path[4400], stored_labels[4400];
    model_ref stored;
    if (!embedded && !repository && !model_uri && model_path && access(model_path, F_OK) != 0 &&
        store_parse_ref(model_path, &stored, err_ref, sizeof(err_ref))) {
        char dir[4096];
        if (!cli_store_model_dir(store_dir, model_path, &stored, dir, sizeof(dir)))
            return 1;
        snprintf(stored_path, sizeof(stored_path), "%s/model.onnx", dir);
        snprintf(stored_labels, sizeof(stored_labels), "%s/labels.json", dir);
        model_path = stored_path;
        if (!name)
            name = stored.name;
        if (!version)
            version = stored.version;
        if ((!labels || !*labels) && access(stored_labels, R_OK) == 0)
            labels = stored_labels;
    }
    if (o.workers <= 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        o.workers = cores > 0 ? (int)cores : 1;
    }

    /* the polling threads answer fast models themselves: one per worker, each
     * with its own session after the workers' ones; the job threads come
     * last, one session each (the model set needs no other change: a job
     * thread is one more serving thread to it) */
    o.io_threads = o.workers;
    o.admin_token = admin_token && *admin_token ? admin_token : NULL;
    if (async_workers < 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        async_workers = cores > 0 ? cores : 1;
    }
    /* The queue opens before any model loads so that a Redis that is down
     * is a clear error at once. An embedded queue nobody asked for that
     * cannot be opened (no HOME, a read-only disk) leaves the server
     * serving synchronously, with the reason in the log. */
    jobs_queue *queue = NULL;
    const char *state_env = getenv("INFERD_STATE_DIR");
    bool queue_asked = queue_url || state_dir || (state_env && *state_env);
    if (queue_url && strcmp(queue_url, "embedded") == 0)
        queue_url = NULL;
    queue_config.url = queue_url;
    queue_config.state_dir = state_dir;
    char queue_err[2048];
    jobs_status queue_status = jobs_open(&queue_config, &queue, queue_err, sizeof(queue_err));
    if (queue_status != JOBS_OK) {
        if (queue_asked || async_book) {
            log_event(LOG_ERROR, "cannot open the job queue", "queue", queue_url ? queue_url : "embedded",
                      "error", queue_err, NULL);
            return 1;
        }
        log_event(LOG_WARNING, "no job queue: asynchronous requests will answer 503", "error", queue_err, NULL);
        queue = NULL;
        async_workers = 0;
    }
    /* parallel pipeline branches run on their own threads, each with a
     * session after the polling threads' and the job workers' ones */
    if (pipeline_threads < 0)
        pipeline_threads = repository ? o.workers : 0;
    /* the gRPC queue threads (as many as polling threads) answer fast
     * models themselves too, with the last sessions */
    if (o.grpc_port >= 0) {
        o.grpc_threads = o.io_threads;
        o.grpc_first_session = o.workers + o.io_threads + (int)async_workers + pipeline_threads;
    }
    model_set_options set_options = {.serving_sessions = o.workers + o.io_threads + (int)async_workers + pipeline_threads +
                                                         (o.grpc_port >= 0 ? o.grpc_threads : 0),
                                     .threads_per_session = threads,
                                     .graph_opt = graph_opt,
                                     .control = control,
                                     .poll_interval = poll_interval,
                                     .repository = repository,
                                     .batching = batching};
    model_set *models = model_set_create(&set_options);
    if (!models) {
        jobs_close(queue);
        return cli_fail("serve: cannot open the repository '%s': %s", repository ? repository : "",
                        strerror(errno));
    }
    char err[2048];
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    server srv = {.options = o, .models = models, .admin_token = o.admin_token, .started = server_now(),
                  .started_wall = (double)wall.tv_sec + (double)wall.tv_nsec * 1e-9, .jobs = queue,
                  .async_book = async_book, .async_book_model = async_book_model};
    bool loaded;
    if (embedded) {
        model_source source = *embedded;
        if (sample)
            source.sample_json = sample;
        loaded = model_set_add_source(models, &source, err, sizeof(err));
    } else if (repository) {
        loaded = model_set_load_repository(models, err, sizeof(err));
    } else {
        model_source source = {.path = model_path, .name = name, .version = version,
                               .labels_path = labels && *labels ? labels : NULL, .sample_json = sample,
                               .origin = model_uri ? pulled.origin : NULL,
                               .manifest_text = pulled.manifest_text};
        loaded = model_set_add_source(models, &source, err, sizeof(err));
        free(pulled.manifest_text);
    }
    if (!loaded) {
        log_event(LOG_ERROR, "cannot load model", "error", err, NULL);
        model_set_free(models);
        jobs_close(queue);
        return 1;
    }
    model_set_read_lock(models);
    for (size_t i = 0; i < model_set_count(models); i++) {
        const model_entry *e = model_set_entry(models, i);
        for (size_t k = 0; k < e->n_versions; k++) {
            char seconds[32];
            snprintf(seconds, sizeof(seconds), "%.6f", e->versions[k]->load_seconds);
            log_event(LOG_INFO, "model ready", "model", e->name, "version", e->versions[k]->version, "path",
                      e->versions[k]->path, "load_seconds", seconds, NULL);
        }
    }
    bool slow_found = !async_book_model || model_set_find(models, async_book_model);
    model_set_read_unlock(models);
    if (!slow_found) {
        log_event(LOG_ERROR, "cannot start: --async-book-model names no loaded model", "model", async_book_model,
                  NULL);
        model_set_free(models);
        jobs_close(queue);
        return 1;
    }
    char mode[64];
    snprintf(mode, sizeof(mode), "%s", model_control_name(control));
    log_event(LOG_INFO, "model control", "mode", mode, "repository_api", o.admin_token ? "on" : "off", NULL);
    pipeline_set_options pipeline_options = {.repository = repository,
                                             .models = models,
                                             .control = control,
                                             .poll_interval = poll_interval,
                                             .branch_threads = pipeline_threads,
                                             .first_branch_session = o.workers + o.io_threads + (int)async_workers};
    srv.pipelines = pipeline_set_create(&pipeline_options);
    if (!srv.pipelines || !pipeline_set_load_repository(srv.pipelines, err, sizeof(err))) {
        log_event(LOG_ERROR, "cannot load pipeline", "error", srv.pipelines ? err : "out of memory", NULL);
        pipeline_set_free(srv.pipelines);
        model_set_free(models);
        jobs_close(queue);
        return 1;
    }
    srv.metrics = metrics_create();
    int rc = 1;
    jobs_runner *runner = NULL;
    job_exec exec = {.set = models, .first_session = o.workers + o.io_threads, .sessions = (int)async_workers};
    if (srv.metrics && model_set_start(models) && pipeline_set_start(srv.pipelines) &&
        start_job_workers(queue, &exec, &runner))
        rc = server_run(&srv);
    /* after the HTTP side stopped: running jobs finish, queued ones stay
     * queued (durably) for the next start or another worker */
    jobs_runner_stop(runner);
    metrics_free(srv.metrics);
    pipeline_set_free(srv.pipelines);
    model_set_free(models);
    jobs_close(queue);
    return rc;
}
