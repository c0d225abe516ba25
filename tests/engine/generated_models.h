/*
 * generated_models.h — for the engine tests whose models come from a
 * generator script in tools/: run it into a fresh folder under /tmp, load a
 * model from there at a graph-optimisation level, remove the folder at the
 * end. Header-only: each test is its own executable.
 */
#ifndef INFERD_TESTS_GENERATED_MODELS_H
#define INFERD_TESTS_GENERATED_MODELS_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "inferd/inferd.h"

static char models_dir[256];

/* Runs tools/<generator> with Debian's python into /tmp/inferd-test-<tag>-PID. */
static bool generated_models_make(const char *generator, const char *tag)
{
    snprintf(models_dir, sizeof(models_dir), "/tmp/inferd-test-%s-%ld", tag, (long)getpid());
    char command[1024];
    snprintf(command, sizeof(command), "/usr/bin/python3 %s/tools/%s --out %s >/dev/null 2>&1",
             INFERD_SOURCE_DIR, generator, models_dir);
    return system(command) == 0;
}

/* name: "embed" (models_dir/embed.onnx) or "digits_mlp/model.onnx" */
static ifd_model *generated_model_load(const char *name, ifd_graph_opt level)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s%s", models_dir, name, strchr(name, '/') ? "" : ".onnx");
    ifd_load_options options = {.graph_opt = level};
    ifd_model *m = NULL;
    ifd_error err;
    if (ifd_model_load_file(path, &options, &m, &err) != IFD_OK) {
        fprintf(stderr, "%s: %s\n", path, err.message);
        return NULL;
    }
    return m;
}

/* A session of m with the given options; NULL (the reason printed) if refused. */
__attribute__((unused)) static ifd_session *generated_session(const ifd_model *m,
                                                              ifd_session_options options)
{
    ifd_session *s = NULL;
    ifd_error err;
    if (ifd_session_create(m, &options, &s, &err) != IFD_OK) {
        fprintf(stderr, "session: %s\n", err.message);
        return NULL;
    }
    return s;
}

static void generated_models_remove(void)
{
    char command[300];
    snprintf(command, sizeof(command), "rm -rf %s", models_dir);
    if (system(command) != 0)
        fprintf(stderr, "could not remove %s\n", models_dir);
}

#endif /* INFERD_TESTS_GENERATED_MODELS_H */
