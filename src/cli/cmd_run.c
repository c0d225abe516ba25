/*
 * cmd_run.c — `inferd run MODEL -i IN.pb ... -o OUTDIR`: the ONNX backend
 * test-data format in and out, so the conformance suite runs through the
 * real command. Inputs bind, in order, to the graph inputs that are not
 * initializers; every graph output k is written to OUTDIR/output_<k>.pb.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "profile_table.h"

static int write_file_atomic(const char *dir, const char *name, const void *buf, size_t len)
{
    char path[4096], tmp[4200];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return cli_fail("%s: %s", tmp, strerror(errno));
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, (const char *)buf + done, len - done);
        if (n < 0) {
            close(fd);
            unlink(tmp);
            return cli_fail("%s: %s", tmp, strerror(errno));
        }
        done += (size_t)n;
    }
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        return cli_fail("%s: %s", path, strerror(errno));
    }
    return 0;
}

int cmd_run(int argc, char **argv)
{
    const char *model_path = NULL, *out_dir = NULL;
    const char **input_paths = calloc((size_t)argc, sizeof(char *));
    size_t n_input_paths = 0;
    int threads = 0, rc = 1;
    bool profile = false;
    ifd_load_options load_options = {0};
    ifd_model *model = NULL;
    ifd_session *session = NULL;
    ifd_value **inputs = NULL, **outputs = NULL;
    ifd_error err;

    if (!input_paths)
        return cli_fail("out of memory");
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "-i") == 0 || strcmp(argv[i], "--input") == 0) && i + 1 < argc) {
            input_paths[n_input_paths++] = argv[++i];
        } else if ((strcmp(argv[i], "-o") == 0 || strcmp(argv[i], "--output-dir") == 0) &&
                   i + 1 < argc) {
            out_dir = argv[++i];
        } else if (strcmp(argv[i], "--threads") == 0) {
            if (!cli_parse_threads(i + 1 < argc ? argv[++i] : NULL, &threads))
                goto done;
        } else if (strcmp(argv[i], "--profile") == 0) {
            profile = true;
        } else if (strcmp(argv[i], "--graph-opt") == 0) {
            if (!cli_parse_graph_opt(i + 1 < argc ? argv[++i] : NULL, &load_options.graph_opt))
                goto done;
        } else if (argv[i][0] == '-' || model_path) {
            cli_fail("run: unexpected argument '%s'", argv[i]);
            goto done;
        } else {
            model_path = argv[i];
        }
    }
    if (!model_path || !out_dir) {
        cli_fail("run: usage: inferd run MODEL.onnx -i INPUT.pb [-i ...] -o OUTDIR [--threads N] "
                 "[--graph-opt none|basic|all] [--profile]");
        goto done;
    }
    ifd_status load_status = ifd_model_load_file(model_path, &load_options, &model, &err);
    if (load_status != IFD_OK) {
        cli_fail("%s", err.message);
        rc = load_status == IFD_ERR_UNSUPPORTED ? CLI_EXIT_UNSUPPORTED : 1;
        goto done;
    }
    size_t n_inputs = ifd_model_input_count(model), n_outputs = ifd_model_output_count(model);
    if (n_input_paths != n_inputs) {
        cli_fail("%s: the model has %zu input%s, %zu file%s given", model_path, n_inputs,
                 n_inputs == 1 ? "" : "s", n_input_paths, n_input_paths == 1 ? "" : "s");
        goto done;
    }
    inputs = calloc(n_inputs + 1, sizeof(*inputs));
    outputs = calloc(n_outputs + 1, sizeof(*outputs));
    if (!inputs || !outputs) {
        cli_fail("out of memory");
        goto done;
    }
    for (size_t i = 0; i < n_inputs; i++) {
        size_t size;
        char *buf = cli_read_file(input_paths[i], &size, &err);
        if (!buf) {
            cli_fail("%s", err.message);
            goto done;
        }
        const ifd_io_info *info = ifd_model_input(model, i);
        ifd_status st = ifd_value_decode_pb(buf, size, &info->type, &inputs[i], &err);
        free(buf);
        if (st != IFD_OK) {
            cli_fail("%s (input '%s'): %s", input_paths[i], info->name, err.message);
            goto done;
        }
    }
    ifd_session_options options = {.threads = threads, .profile = profile};
    if (ifd_session_create(model, &options, &session, &err) != IFD_OK ||
        ifd_session_run(session, (const ifd_value *const *)inputs, outputs, &err) != IFD_OK) {
        cli_fail("%s: %s", model_path, err.message);
        goto done;
    }
    if (profile)
        print_session_profile(stderr, session, 1);
    if (mkdir(out_dir, 0755) != 0 && errno != EEXIST) {
        cli_fail("%s: %s", out_dir, strerror(errno));
        goto done;
    }
    for (size_t k = 0; k < n_outputs; k++) {
        void *buf;
        size_t len;
        char name[64];
        if (ifd_value_encode_pb(outputs[k], ifd_model_output(model, k)->name, &buf, &len, &err) !=
            IFD_OK) {
            cli_fail("%s", err.message);
            goto done;
        }
        snprintf(name, sizeof(name), "output_%zu.pb", k);
        int failed = write_file_atomic(out_dir, name, buf, len);
        free(buf);
        if (failed)
            goto done;
    }
    rc = 0;
done:
    if (model) {
        for (size_t i = 0; inputs && i < ifd_model_input_count(model); i++)
            ifd_value_free(inputs[i]);
        for (size_t k = 0; outputs && k < ifd_model_output_count(model); k++)
            ifd_value_free(outputs[k]);
    }
    free(inputs);
    free(outputs);
    free(input_paths);
    ifd_session_free(session);
    ifd_model_free(model);
    return rc;
}
