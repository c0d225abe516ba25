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

#include "../serve/log.h"
#include "../serve/metrics.h"
#include "../serve/server.h"
#include "cli.h"

static const char serve_usage[] =
    "usage: inferd serve MODEL.onnx [options]\n"
    "       inferd serve --repository DIR [options]\n"
    "options:\n"
    "  --labels FILE        label file for the book's API ({\"0\": \"name\", ...})\n"
    "  --name NAME          model name (default: the file name)\n"
    "  --model-version V    model version (default: 1)\n"
    "  --sample JSON        rows /predict/test and an empty /predict use\n"
    "  --host ADDR          listen address (default 127.0.0.1; 0.0.0.0 for all)\n"
    "  --port N             port (default 8000, or $PORT)\n"
    "  --workers N          inference threads (default: one per core)\n"
    "  --threads N          intra-op threads per inference (default 1)\n"
    "  --max-body BYTES     largest request body (default 64 MiB)\n"
    "  --max-connections N  concurrent connections (default 1024)\n"
    "  --timeout SECONDS    time a request may take to arrive (default 30)\n"
    "  --grace SECONDS      time to finish requests on SIGTERM (default 10)\n"
    "environment: MODEL_FILEPATH, LABEL_FILEPATH, PORT, LOG_LEVEL (DEBUG|INFO|WARNING|ERROR),\n"
    "             LOG_FORMAT (TEXT|JSON)\n";

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

int cmd_serve(int argc, char **argv)
{
    const char *model_path = getenv("MODEL_FILEPATH"), *labels = getenv("LABEL_FILEPATH");
    const char *repository = NULL, *name = NULL, *version = NULL, *sample = NULL;
    int threads = 1;
    serve_options o = {
        .host = "127.0.0.1",
        .port = 8000,
        .workers = 0,
        .io_threads = 1,
        .max_body = 64u << 20,
        .max_header = 64u << 10,
        .connection_limit = 1024,
        .request_timeout = 30,
        .grace = 10.0,
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
        } else if (strcmp(flag, "--workers") == 0) {
            if (!parse_long(flag, TAKE(), 1, 256, &v))
                return 1;
            o.workers = (int)v;
        } else if (strcmp(flag, "--threads") == 0) {
            if (!cli_parse_threads(TAKE(), &threads))
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
    if (!repository && (!model_path || !*model_path)) {
        fputs(serve_usage, stderr);
        return cli_fail("serve: give MODEL.onnx, --repository DIR or MODEL_FILEPATH");
    }
    log_configure(level, format);
    if (o.workers <= 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        o.workers = cores > 0 ? (int)cores : 1;
    }

    registry models = {.n_sessions = o.workers, .threads_per_session = threads};
    char err[1024];
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    server srv = {.options = o, .models = &models, .started = server_now(),
                  .started_wall = (double)wall.tv_sec + (double)wall.tv_nsec * 1e-9};
    bool loaded;
    if (repository) {
        loaded = registry_add_repository(&models, repository, err, sizeof(err));
    } else {
        model_source source = {.path = model_path, .name = name, .version = version,
                               .labels_path = labels && *labels ? labels : NULL, .sample_json = sample};
        loaded = registry_add(&models, &source, err, sizeof(err));
    }
    if (!loaded) {
        log_event(LOG_ERROR, "cannot load model", "error", err, NULL);
        registry_free(&models);
        return 1;
    }
    for (size_t i = 0; i < models.n_models; i++) {
        char seconds[32];
        snprintf(seconds, sizeof(seconds), "%.6f", models.models[i]->load_seconds);
        log_event(LOG_INFO, "model ready", "model", models.models[i]->name, "version",
                  models.models[i]->version, "path", models.models[i]->path, "load_seconds", seconds, NULL);
    }
    srv.metrics = metrics_create();
    int rc = srv.metrics ? server_run(&srv) : 1;
    metrics_free(srv.metrics);
    registry_free(&models);
    return rc;
}
