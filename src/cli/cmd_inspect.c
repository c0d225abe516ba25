/*
 * cmd_inspect.c — `inferd inspect MODEL`: what a release engineer needs to
 * know before serving a model: its signature, IR and opset versions,
 * producer, operator histogram and every operator the engine cannot run.
 * Exit status 0 when the model can run, 1 otherwise.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

int cmd_inspect(int argc, char **argv)
{
    if (argc != 2 || argv[1][0] == '-')
        return cli_fail("inspect: usage: inferd inspect MODEL.onnx");
    const char *path = argv[1];
    ifd_model *model;
    ifd_error err;
    ifd_load_options options = {.describe_only = 1};
    if (ifd_model_load_file(path, &options, &model, &err) != IFD_OK)
        return cli_fail("%s", err.message);

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
    return unsupported ? 1 : 0;
}
