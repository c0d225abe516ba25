/*
 * cmd_pipeline.c — `inferd pipeline check DIR/<pipeline> [--dot]`: load
 * the models of the repository DIR, validate the pipeline against them as
 * the server would and print its graph (text, or Graphviz dot); and the
 * pipeline half of `inferd predict DIR/<pipeline> --data JSON`.
 */
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "log.h"
#include "pipeline.h"
#include "pipeline_set.h"
#include "tensor_json.h"

static const char pipeline_usage[] =
    "usage: inferd pipeline check DIR/<pipeline> [--dot]\n"
    "  validates DIR/<pipeline>/pipeline.json against the models of the repository DIR\n"
    "  and prints the graph (--dot: as Graphviz dot); exit 1 when it is invalid\n";

bool cli_is_pipeline_dir(const char *path)
{
    char file[PATH_MAX];
    struct stat st;
    snprintf(file, sizeof(file), "%s/pipeline.json", path);
    return stat(file, &st) == 0 && S_ISREG(st.st_mode);
}

/* The repository around DIR/<pipeline>, its models loaded, and the
 * pipeline validated against them. */
typedef struct loaded_pipeline {
    model_set *models;
    pipeline_set *pipelines;
    pipeline *pipeline;
    char not_ready[512];
} loaded_pipeline;

static void loaded_free(loaded_pipeline *l)
{
    pipeline_unref(l->pipeline);
    pipeline_set_free(l->pipelines);
    model_set_free(l->models);
}

static bool load_pipeline(const char *path, int threads, loaded_pipeline *out)
{
    memset(out, 0, sizeof(*out));
    char copy[PATH_MAX], copy2[PATH_MAX], real[PATH_MAX];
    if (!realpath(path, real)) {
        cli_fail("%s: no such directory", path);
        return false;
    }
    snprintf(copy, sizeof(copy), "%s", real);
    snprintf(copy2, sizeof(copy2), "%s", real);
    const char *name = basename(copy);
    const char *repository = dirname(copy2);
    /* quiet: model loads would log on stderr, which is the command's answer */
    log_configure(LOG_ERROR, LOG_TEXT);
    model_set_options options = {.serving_sessions = 1,
                                 .threads_per_session = threads > 0 ? threads : 1,
                                 .control = MODEL_CONTROL_EXPLICIT,
                                 .repository = repository};
    out->models = model_set_create(&options);
    char err[2048];
    if (!out->models) {
        cli_fail("%s: cannot open the repository", repository);
        return false;
    }
    model_set_load_repository(out->models, err, sizeof(err)); /* models that fail show in the check's error */
    pipeline_set_options set_options = {.repository = repository, .models = out->models,
                                        .control = MODEL_CONTROL_EXPLICIT};
    out->pipelines = pipeline_set_create(&set_options);
    if (!out->pipelines) {
        cli_fail("out of memory");
        loaded_free(out);
        return false;
    }
    out->pipeline = pipeline_load(real, name, pipeline_set_env(out->pipelines), out->not_ready,
                                  sizeof(out->not_ready), err, sizeof(err));
    if (!out->pipeline) {
        cli_fail("%s", err);
        loaded_free(out);
        return false;
    }
    return true;
}

static int pipeline_check(int argc, char **argv)
{
    const char *path = NULL;
    bool dot = false;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--dot") == 0)
            dot = true;
        else if (argv[i][0] != '-' && !path)
            path = argv[i];
        else
            return cli_fail("pipeline check: unexpected argument '%s'\n%s", argv[i], pipeline_usage);
    }
    if (!path)
        return cli_fail("pipeline check: give DIR/<pipeline>\n%s", pipeline_usage);
    loaded_pipeline l;
    if (!load_pipeline(path, 1, &l))
        return 1;
    char *text = pipeline_describe(l.pipeline, dot);
    if (text)
        fputs(text, stdout);
    free(text);
    if (l.not_ready[0])
        fprintf(stderr, "warning: the pipeline is valid but not ready: %s\n", l.not_ready);
    loaded_free(&l);
    return text ? 0 : 1;
}

int cmd_pipeline(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "check") == 0)
        return pipeline_check(argc - 2, argv + 2);
    if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        fputs(pipeline_usage, stdout);
        return 0;
    }
    return cli_fail("pipeline: expected 'check'\n%s", pipeline_usage);
}

int cli_pipeline_predict(const char *path, const json_t *data, int threads)
{
    loaded_pipeline l;
    if (!load_pipeline(path, threads, &l))
        return 1;
    pipeline *p = l.pipeline;
    size_t n_in = pipeline_input_count(p);
    ifd_value **inputs = calloc(n_in ? n_in : 1, sizeof(*inputs));
    int rc = 1;
    char err[1024];
    for (size_t i = 0; inputs && i < n_in; i++) {
        const ifd_io_info *io = pipeline_input(p, i);
        const json_t *j = json_is_array(data) && n_in == 1 ? data : json_object_get(data, io->name);
        if (!j) {
            cli_fail("--data: input '%s' is missing (give an object {\"%s\": [...], ...})", io->name, io->name);
            goto done;
        }
        inputs[i] = json_rows_to_tensor(j, io->type.dtype, err, sizeof(err));
        if (!inputs[i]) {
            cli_fail("input '%s': %s", io->name, err);
            goto done;
        }
        if (!check_input_contract(io, inputs[i]->tensor.dtype, inputs[i]->tensor.rank, inputs[i]->tensor.dims, err,
                                  sizeof(err))) {
            cli_fail("%s", err);
            goto done;
        }
    }
    pipeline_request request = {.session = 0, .request_id = "cli"};
    pipeline_result result;
    pipeline_run(p, pipeline_set_env(l.pipelines), &request, inputs, &result);
    if (result.status != PIPELINE_OK) {
        cli_fail("pipeline '%s': %s", pipeline_name(p), result.error);
    } else {
        json_t *answer = json_object();
        for (size_t k = 0; k < pipeline_output_count(p); k++)
            json_object_set_new(answer, pipeline_output(p, k)->name, value_to_json(result.outputs[k]));
        if (result.skipped)
            json_object_set(answer, "skipped_steps", result.skipped);
        size_t len;
        char *text = json_encode(answer, &len);
        json_decref(answer);
        if (text) {
            puts(text);
            free(text);
            rc = 0;
        }
    }
    pipeline_result_free(p, &result);
done:
    for (size_t i = 0; inputs && i < n_in; i++)
        ifd_value_free(inputs[i]);
    free(inputs);
    loaded_free(&l);
    return rc;
}
