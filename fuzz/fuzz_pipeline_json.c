/*
 * fuzz_pipeline_json.c — libFuzzer target for the pipeline.json reader and
 * validator (src/pipeline/pipeline_load.c) against a live model set holding
 * the example repository's models (models/pipelines), so that fuzzed graphs
 * reach the type checks of real model signatures, the cycle detection and
 * the combine rules.
 *
 * Besides the sanitizers the oracle is the contract of pipeline_load_text:
 * it returns a pipeline or an error message that names the file, never
 * both and never neither; a pipeline it accepts can be described.
 * Inputs naming a "remote" kind are skipped: validating one calls the
 * network, which would make every run as slow as a connection timeout.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline.h"
#include "pipeline_set.h"

static model_set *models;
static pipeline_set *pipelines;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    model_set_options options = {.serving_sessions = 1, .threads_per_session = 1,
                                 .control = MODEL_CONTROL_EXPLICIT,
                                 .repository = INFERD_SOURCE_DIR "/models/pipelines"};
    models = model_set_create(&options);
    char err[2048];
    if (!models || !model_set_load_repository(models, err, sizeof(err))) {
        fprintf(stderr, "fuzz_pipeline_json: cannot load the example models\n");
        abort();
    }
    pipeline_set_options set_options = {.models = models, .control = MODEL_CONTROL_EXPLICIT};
    pipelines = pipeline_set_create(&set_options);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    if (strstr(text, "remote")) {
        free(text);
        return 0;
    }
    char err[1024] = "", not_ready[512];
    pipeline *p = pipeline_load_text(text, "fuzzed", "fuzzed/pipeline.json", pipeline_set_env(pipelines), not_ready,
                                     sizeof(not_ready), err, sizeof(err));
    if (!p && strncmp(err, "fuzzed/pipeline.json", 20) != 0) {
        fprintf(stderr, "fuzz_pipeline_json: broken promise: a refusal without the file's name: %s\n", err);
        abort();
    }
    if (p) {
        char *description = pipeline_describe(p, false);
        char *dot = pipeline_describe(p, true);
        if (!description || !dot) {
            fprintf(stderr, "fuzz_pipeline_json: broken promise: an accepted pipeline cannot be described\n");
            abort();
        }
        free(description);
        free(dot);
        pipeline_unref(p);
    }
    free(text);
    return 0;
}
