/*
 * cmd_predict.c — `inferd predict MODEL --data JSON`: JSON in, JSON out, for
 * people trying a model. A JSON array feeds the model's only input; an
 * object maps input names to arrays. The JSON codec and its data contract
 * are the server's (serve/tensor_json.c): numbers become the input's
 * declared element type (integers range-checked), nothing else is cast.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor_json.h"
#include "cli.h"

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
    int threads = 0, rc = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--data") == 0 && i + 1 < argc)
            data = argv[++i];
        else if (strcmp(argv[i], "--threads") == 0) {
            if (!cli_parse_threads(i + 1 < argc ? argv[++i] : NULL, &threads))
                return 1;
        } else if (argv[i][0] == '-' || model_path)
            return cli_fail("predict: unexpected argument '%s'", argv[i]);
        else
            model_path = argv[i];
    }
    if (!model_path || !data)
        return cli_fail("predict: usage: inferd predict MODEL.onnx|DIR/<pipeline> --data '[[...]]'");

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
    if (ifd_model_load_file(model_path, NULL, &model, &err) != IFD_OK) {
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
    char *text = json_encode(result, &len);
    json_decref(result);
    if (text) {
        puts(text);
        free(text);
        rc = 0;
    }
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
