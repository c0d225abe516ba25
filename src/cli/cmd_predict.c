/*
 * cmd_predict.c — `inferd predict MODEL --data JSON`: JSON in, JSON out, for
 * people trying a model. A JSON array feeds the model's only input; an
 * object maps input names to arrays. The JSON codec and its data contract
 * are the server's (serve/tensor_json.c): numbers become the input's
 * declared element type (integers range-checked), nothing else is cast.
 *
 * `inferd predict MODEL --image FILE`: a JPEG or PNG through the image
 * preprocessing the model's manifest declares (src/image), or the one
 * given with --preprocess, answered as the top-k classes with their labels
 * and probabilities. MODEL is a file or a stored model's reference.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "image_input.h"
#include "tensor_json.h"

static const char predict_usage[] =
    "usage: inferd predict MODEL --data JSON [--threads N] [--graph-opt LEVEL]\n"
    "       inferd predict MODEL --image FILE [--preprocess SPEC] [--labels FILE] [--top-k K]\n"
    "                           [--store DIR] [--threads N] [--graph-opt LEVEL]\n"
    "  MODEL: a .onnx file (its manifest: model.json beside it) or a stored NAME[:VERSION]\n"
    "  --image       a JPEG or PNG, preprocessed as the manifest's \"preprocessing\" declares\n"
    "  --preprocess  a JSON file or inline JSON: {\"INPUT\": SPEC, ...} or one SPEC for a\n"
    "                one-input model, SPEC = {\"kind\": \"image\", \"color\": \"gray|rgb|bgr\",\n"
    "                \"size\": [H, W], \"resize\": \"bilinear|nearest\",\n"
    "                \"fit\": \"stretch|letterbox|center-crop\", \"pad\": 0-255,\n"
    "                \"layout\": \"NCHW|NHWC|CHW|HWC\", \"dtype\": \"float32|float64|uint8|int8\",\n"
    "                \"scale\": X, \"mean\": X|[R,G,B], \"std\": X|[R,G,B], \"invert\": true|false}\n"
    "  --labels      {\"0\": \"name\", ...} (default: the manifest's labels)\n"
    "  --top-k       how many classes to print (default 5)\n"
    "  --graph-opt   none|basic|all: the loader's graph optimisations (default all)\n";

/* Print an answer's JSON text (malloc'd, or NULL when encoding failed) and
 * free it: 0, or 1 after saying why. */
static int print_answer(char *text)
{
    if (!text)
        return cli_fail("cannot encode the answer as JSON");
    puts(text);
    free(text);
    return 0;
}

/* --preprocess: inline JSON when it starts with '{', else a file. */
static json_t *load_preprocess_option(const char *text)
{
    json_error_t jerr;
    json_t *j = text[0] == '{' ? json_loads(text, JSON_REJECT_DUPLICATES, &jerr)
                               : json_load_file(text, JSON_REJECT_DUPLICATES, &jerr);
    if (!j)
        cli_fail("--preprocess %s: line %d: %s", text[0] == '{' ? "(inline)" : text, jerr.line, jerr.text);
    return j;
}

/* The image input's index and spec: from --preprocess when given, else the
 * manifest. Exactly one input may take the image; the model must have no
 * other input (nothing else could fill it). */
static bool choose_image_input(const ifd_model *model, const json_t *manifest, const char *preprocess,
                               size_t *index, image_spec *spec)
{
    size_t inputs = ifd_model_input_count(model);
    image_spec *specs = calloc(inputs + 1, sizeof(*specs));
    bool *has = calloc(inputs + 1, sizeof(*has));
    json_t *option = preprocess ? load_preprocess_option(preprocess) : NULL;
    const json_t *declared = option ? option : manifest ? json_object_get(manifest, "preprocessing") : NULL;
    char err[1024];
    bool ok = specs && has && (!preprocess || option);
    if (ok && option && json_object_get(option, "kind")) { /* one bare spec */
        ok = inputs == 1 && image_spec_parse(option, "--preprocess", &specs[0], err, sizeof(err)) &&
             image_spec_check_input(&specs[0], ifd_model_input(model, 0), err, sizeof(err));
        if (inputs != 1)
            snprintf(err, sizeof(err), "--preprocess: the model has %zu inputs: name the image input, "
                     "{\"INPUT\": {\"kind\": \"image\", ...}}", inputs);
        has[0] = ok;
        if (!ok)
            cli_fail("%s", err);
    } else if (ok) {
        ok = image_preprocessing_parse(declared, model, option ? "--preprocess" : "model.json: preprocessing",
                                       specs, has, err, sizeof(err));
        if (!ok)
            cli_fail("%s", err);
    }
    size_t with_spec = 0;
    for (size_t i = 0; ok && i < inputs; i++) {
        if (has[i]) {
            with_spec++;
            *index = i;
            *spec = specs[i];
        }
    }
    if (ok && with_spec == 0) {
        cli_fail("--image: the model declares no image preprocessing (its manifest has no "
                 "\"preprocessing\"): give one with --preprocess");
        ok = false;
    } else if (ok && (with_spec > 1 || inputs > 1)) {
        cli_fail("--image: one image feeds one input, but the model has %zu inputs", inputs);
        ok = false;
    }
    json_decref(option);
    free(specs);
    free(has);
    return ok;
}

static json_t *load_labels_option(const char *path)
{
    json_error_t jerr;
    json_t *labels = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!labels)
        cli_fail("--labels %s: line %d: %s", path, jerr.line, jerr.text);
    else if (!json_is_object(labels)) {
        cli_fail("--labels %s: expected an object {\"0\": \"name\", ...}", path);
        json_decref(labels);
        labels = NULL;
    }
    return labels;
}

typedef struct image_request {
    const char *model, *image, *preprocess, *labels, *store;
    size_t top_k;
    int threads;
    ifd_load_options load_options;
} image_request;

static int predict_image(const image_request *r)
{
    char path[4200], err[1024];
    json_t *manifest = NULL, *labels = NULL;
    ifd_model *model = NULL;
    ifd_session *session = NULL;
    ifd_value *input = NULL, **outputs = NULL;
    image_class_score *scores = NULL;
    char *bytes = NULL;
    int rc = 1;
    ifd_error e;
    if (!cli_resolve_model(r->model, r->store, path, sizeof(path), &manifest))
        return 1;
    if (r->labels && !(labels = load_labels_option(r->labels)))
        goto done;
    if (ifd_model_load_file(path, &r->load_options, &model, &e) != IFD_OK) {
        cli_fail("%s", e.message);
        goto done;
    }
    size_t index = 0;
    image_spec spec;
    if (!choose_image_input(model, manifest, r->preprocess, &index, &spec))
        goto done;
    size_t size;
    if (!(bytes = cli_read_file(r->image, &size, &e))) {
        cli_fail("--image %s", e.message);
        goto done;
    }
    if (!(input = image_prepare(bytes, size, &spec, NULL, r->image, err, sizeof(err)))) {
        cli_fail("%s", err);
        goto done;
    }
    size_t n_out = ifd_model_output_count(model);
    outputs = calloc(n_out + 1, sizeof(*outputs));
    scores = calloc(r->top_k, sizeof(*scores));
    ifd_session_options options = {.threads = r->threads};
    if (!outputs || !scores)
        goto done;
    const ifd_value *inputs[1] = {input};
    if (ifd_session_create(model, &options, &session, &e) != IFD_OK ||
        ifd_session_run(session, inputs, outputs, &e) != IFD_OK) {
        cli_fail("%s: %s", path, e.message);
        goto done;
    }
    const json_t *label_names = labels ? labels : manifest ? json_object_get(manifest, "labels") : NULL;
    size_t found = image_top_k(model, (const ifd_value *const *)outputs, 0, label_names, r->top_k, scores, err,
                               sizeof(err));
    if (!found) {
        cli_fail("%s: %s", path, err);
        goto done;
    }
    json_t *list = image_scores_json(scores, found);
    char described[256];
    json_t *result = json_pack("{s:s, s:s, s:s, s:o}", "image", r->image, "input", ifd_model_input(model, index)->name,
                               "preprocessing", image_spec_describe(&spec, described, sizeof(described)),
                               "top_k", list);
    rc = print_answer(json_dumps(result, JSON_INDENT(2) | JSON_REAL_PRECISION(6)));
    json_decref(result);
done:
    for (size_t k = 0; outputs && k < ifd_model_output_count(model); k++)
        ifd_value_free(outputs[k]);
    free(outputs);
    free(scores);
    ifd_value_free(input);
    free(bytes);
    ifd_session_free(session);
    ifd_model_free(model);
    json_decref(labels);
    json_decref(manifest);
    return rc;
}

static ifd_value *json_to_input(const json_t *j, const ifd_io_info *info)
{
    char err[1024];
    if (info->type.kind != IFD_VALUE_TENSOR) {
        cli_fail("input '%s': only tensor inputs can be given as JSON", info->name);
        return NULL;
    }
    ifd_value *v = json_rows_to_tensor(j, info->type.dtype, err, sizeof(err));
    if (!v)
        cli_fail("input '%s': %s", info->name, err);
    return v;
}

int cmd_predict(int argc, char **argv)
{
    const char *model_path = NULL, *data = NULL;
    image_request image = {.top_k = 5};
    int threads = 0, rc = 1;
    for (int i = 1; i < argc; i++) {
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(predict_usage, stdout);
            return 0;
        } else if (strcmp(argv[i], "--data") == 0 && value) {
            data = argv[++i];
        } else if (strcmp(argv[i], "--image") == 0 && value) {
            image.image = argv[++i];
        } else if (strcmp(argv[i], "--preprocess") == 0 && value) {
            image.preprocess = argv[++i];
        } else if (strcmp(argv[i], "--labels") == 0 && value) {
            image.labels = argv[++i];
        } else if (strcmp(argv[i], "--store") == 0 && value) {
            image.store = argv[++i];
        } else if (strcmp(argv[i], "--top-k") == 0) {
            char *end;
            long k = value ? strtol(value, &end, 10) : 0;
            if (!value || *end || end == value || k < 1 || k > 1000)
                return cli_fail("--top-k: expected a number from 1 to 1000, got '%s'", value ? value : "");
            image.top_k = (size_t)k;
            i++;
        } else if (strcmp(argv[i], "--threads") == 0) {
            if (!cli_parse_threads(i + 1 < argc ? argv[++i] : NULL, &threads))
                return 1;
        } else if (strcmp(argv[i], "--graph-opt") == 0) {
            if (!cli_parse_graph_opt(i + 1 < argc ? argv[++i] : NULL,
                                     &image.load_options.graph_opt))
                return 1;
        } else if (argv[i][0] == '-' || model_path) {
            return cli_fail("predict: unexpected argument '%s'\n\n%s", argv[i], predict_usage);
        } else {
            model_path = argv[i];
        }
    }
    if (model_path && image.image && !data) {
        image.model = model_path;
        image.threads = threads;
        return predict_image(&image);
    }
    if (image.preprocess || image.labels || image.store)
        return cli_fail("predict: --preprocess, --labels and --store go with --image");
    if (!model_path || !data || image.image)
        return cli_fail("predict: give MODEL and one of --data JSON or --image FILE\n\n%s", predict_usage);

    json_error_t jerr;
    json_t *root = json_loads(data, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return cli_fail("--data: invalid JSON at column %d: %s", jerr.column, jerr.text);
    if (cli_is_pipeline_dir(model_path)) {
        rc = cli_pipeline_predict(model_path, root, threads);
        json_decref(root);
        return rc;
    }

    ifd_model *model = NULL;
    ifd_session *session = NULL;
    ifd_error err;
    ifd_value **inputs = NULL, **outputs = NULL;
    size_t n_in = 0, n_out = 0;
    if (ifd_model_load_file(model_path, &image.load_options, &model, &err) != IFD_OK) {
        cli_fail("%s", err.message);
        goto done;
    }
    n_in = ifd_model_input_count(model);
    n_out = ifd_model_output_count(model);
    inputs = calloc(n_in + 1, sizeof(*inputs));
    outputs = calloc(n_out + 1, sizeof(*outputs));
    if (!inputs || !outputs)
        goto done;
    if (json_is_array(root)) {
        if (n_in != 1) {
            cli_fail("--data: the model has %zu inputs; give an object {\"name\": [...], ...}", n_in);
            goto done;
        }
        if (!(inputs[0] = json_to_input(root, ifd_model_input(model, 0))))
            goto done;
    } else if (json_is_object(root)) {
        for (size_t i = 0; i < n_in; i++) {
            const ifd_io_info *info = ifd_model_input(model, i);
            json_t *j = json_object_get(root, info->name);
            if (!j) {
                cli_fail("--data: input '%s' is missing", info->name);
                goto done;
            }
            if (!(inputs[i] = json_to_input(j, info)))
                goto done;
        }
        if (json_object_size(root) != n_in) {
            cli_fail("--data: the object names inputs the model does not have");
            goto done;
        }
    } else {
        cli_fail("--data: expected a JSON array or an object of arrays");
        goto done;
    }
    ifd_session_options options = {.threads = threads};
    if (ifd_session_create(model, &options, &session, &err) != IFD_OK ||
        ifd_session_run(session, (const ifd_value *const *)inputs, outputs, &err) != IFD_OK) {
        cli_fail("%s: %s", model_path, err.message);
        goto done;
    }
    json_t *result = json_object();
    for (size_t k = 0; k < n_out; k++)
        json_object_set_new(result, ifd_model_output(model, k)->name, value_to_json(outputs[k]));
    size_t len;
    rc = print_answer(json_encode(result, &len));
    json_decref(result);
done:
    for (size_t i = 0; inputs && i < n_in; i++)
        ifd_value_free(inputs[i]);
    for (size_t k = 0; outputs && k < n_out; k++)
        ifd_value_free(outputs[k]);
    free(inputs);
    free(outputs);
    ifd_session_free(session);
    ifd_model_free(model);
    json_decref(root);
    return rc;
}
