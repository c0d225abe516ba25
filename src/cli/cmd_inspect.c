/*
 * cmd_inspect.c — `inferd inspect MODEL [--store DIR]`: what a release
 * engineer needs to know before serving a model: its signature, IR and
 * opset versions, producer, operator histogram, every operator the engine
 * cannot run, and the input preprocessing its manifest declares (images:
 * src/image). MODEL is a file (its manifest is the model.json beside it,
 * as in the store's and a repository's layout) or a stored model's
 * reference. Exit status 0 when the model can run (and its declared
 * preprocessing fits it), 1 otherwise.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "image_input.h"
#include "store.h"

bool cli_resolve_model(const char *text, const char *store_root, char *path, size_t size, json_t **manifest)
{
    struct stat st;
    char manifest_path[4200];
    bool beside_a_file = false;
    *manifest = NULL;
    if (stat(text, &st) == 0 && !S_ISDIR(st.st_mode)) {
        beside_a_file = true;
        snprintf(path, size, "%s", text);
        const char *slash = strrchr(text, '/');
        int dir_len = slash ? (int)(slash - text) : 1;
        snprintf(manifest_path, sizeof(manifest_path), "%.*s/model.json", dir_len, slash ? text : ".");
        if (stat(manifest_path, &st) != 0)
            return true;
    } else {
        model_ref ref;
        char dir[4096];
        if (!store_valid_name(text) && !strchr(text, ':')) {
            cli_fail("%s: no such file, and not a stored model's name", text);
            return false;
        }
        if (!cli_store_model_dir(store_root, text, &ref, dir, sizeof(dir)))
            return false;
        snprintf(path, size, "%s/model.onnx", dir);
        snprintf(manifest_path, sizeof(manifest_path), "%s/model.json", dir);
    }
    json_error_t jerr;
    *manifest = json_load_file(manifest_path, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(*manifest)) {
        /* a model.json next to a plain file may be anyone's: only a stored model's must parse */
        cli_fail("%s%s: line %d: %s", beside_a_file ? "ignoring " : "", manifest_path, jerr.line,
                 *manifest ? "not a JSON object" : jerr.text);
        json_decref(*manifest);
        *manifest = NULL;
        return beside_a_file;
    }
    return true;
}

/* The manifest's preprocessing, checked against the model; false after
 * printing why when it does not fit. */
static bool print_preprocessing(const ifd_model *model, const json_t *manifest)
{
    const json_t *declared = manifest ? json_object_get(manifest, "preprocessing") : NULL;
    if (!declared || json_is_null(declared))
        return true;
    size_t inputs = ifd_model_input_count(model);
    image_spec *specs = calloc(inputs + 1, sizeof(*specs));
    bool *has = calloc(inputs + 1, sizeof(*has));
    char err[1024], text[256];
    bool ok = specs && has &&
              image_preprocessing_parse(declared, model, "model.json: preprocessing", specs, has, err, sizeof(err));
    if (ok) {
        printf("preprocessing:\n");
        for (size_t i = 0; i < inputs; i++)
            if (has[i])
                printf("  %-24s %s\n", ifd_model_input(model, i)->name,
                       image_spec_describe(&specs[i], text, sizeof(text)));
    } else {
        printf("preprocessing: invalid: %s\n", specs && has ? err : "out of memory");
    }
    free(specs);
    free(has);
    return ok;
}

int cmd_inspect(int argc, char **argv)
{
    const char *text = NULL, *store_root = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--store") == 0 && i + 1 < argc)
            store_root = argv[++i];
        else if (argv[i][0] == '-' || text)
            return cli_fail("inspect: usage: inferd inspect MODEL.onnx|NAME[:VERSION] [--store DIR]");
        else
            text = argv[i];
    }
    if (!text)
        return cli_fail("inspect: usage: inferd inspect MODEL.onnx|NAME[:VERSION] [--store DIR]");
    char path[4200];
    json_t *manifest;
    if (!cli_resolve_model(text, store_root, path, sizeof(path), &manifest))
        return 1;
    ifd_model *model;
    ifd_error err;
    ifd_load_options options = {.describe_only = 1};
    if (ifd_model_load_file(path, &options, &model, &err) != IFD_OK) {
        json_decref(manifest);
        return cli_fail("%s", err.message);
    }

    char type[256];
    printf("model:     %s\n", path);
    printf("ir:        %lld\n", (long long)ifd_model_ir_version(model));
    printf("producer:  %s %s\n", ifd_model_producer_name(model)[0] ? ifd_model_producer_name(model) : "(none)",
           ifd_model_producer_version(model));
    printf("graph:     %s\n", ifd_model_graph_name(model));
    printf("opsets:   ");
    for (size_t i = 0; i < ifd_model_opset_count(model); i++) {
        ifd_opset o = ifd_model_opset(model, i);
        printf(" %s=%lld", o.domain[0] ? o.domain : "ai.onnx", (long long)o.version);
    }
    printf("\ninputs:\n");
    for (size_t i = 0; i < ifd_model_input_count(model); i++) {
        const ifd_io_info *io = ifd_model_input(model, i);
        printf("  %-24s %s\n", io->name, cli_type_string(&io->type, type, sizeof(type)));
    }
    printf("outputs:\n");
    for (size_t i = 0; i < ifd_model_output_count(model); i++) {
        const ifd_io_info *io = ifd_model_output(model, i);
        printf("  %-24s %s\n", io->name, cli_type_string(&io->type, type, sizeof(type)));
    }
    bool preprocessing_ok = print_preprocessing(model, manifest);
    json_decref(manifest);
    printf("operators: %zu nodes\n", ifd_model_node_count(model));
    for (size_t i = 0; i < ifd_model_op_count(model); i++) {
        ifd_op_count c = ifd_model_op(model, i);
        printf("  %6zu  %s%s%s\n", c.count, c.domain, c.domain[0] ? "." : "", c.op_type);
    }
    size_t unsupported = ifd_model_unsupported_count(model);
    if (unsupported) {
        printf("unsupported operators: %zu\n", unsupported);
        for (size_t i = 0; i < unsupported; i++) {
            ifd_unsupported_op u = ifd_model_unsupported(model, i);
            printf("  %s (%s opset %lld)\n", u.op_type, u.domain[0] ? u.domain : "ai.onnx",
                   (long long)u.opset);
        }
        printf("status: cannot run\n");
    } else {
        printf("status: runnable\n");
    }
    ifd_model_free(model);
    return unsupported || !preprocessing_ok ? 1 : 0;
}
