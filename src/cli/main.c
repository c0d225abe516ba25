/*
 * main.c — entry point of the `inferd` command: dispatches to one file per
 * subcommand and holds the helpers they share.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

static const char usage[] =
    "usage: inferd <command> [options]\n"
    "\n"
    "commands:\n"
    "  run MODEL.onnx -i INPUT.pb [-i INPUT.pb ...] -o OUTDIR [--threads N]\n"
    "      run the model on TensorProto inputs; writes OUTDIR/output_<k>.pb\n"
    "  predict MODEL.onnx|DIR/<pipeline> --data JSON [--threads N]\n"
    "      run the model (or pipeline) on a JSON array and print the outputs as JSON\n"
    "  predict MODEL --image FILE [--preprocess SPEC] [--labels FILE] [--top-k K]\n"
    "      a JPEG or PNG through the model's declared image preprocessing: top-k labels\n"
    "  pipeline check DIR/<pipeline> [--dot]\n"
    "      validate a pipeline against the repository's models and print its graph\n"
    "  serve MODEL.onnx [--labels FILE] [--port N] ... | serve --repository DIR [--model-control M]\n"
    "      serve models over HTTP: the book's API, KServe V2, TensorFlow Serving REST\n"
    "  models import|list|get|delete|export ...\n"
    "      the local model store ($INFERD_HOME): import through the version guard\n"
    "  batch MODEL --input FILE --output FILE | --db URL --table T ... [--batch-size N]\n"
    "      offline inference over CSV/JSONL/.npy files or SQLite/PostgreSQL tables\n"
    "  pull URI --name NAME [--version V] [--sha256 HEX] [--store DIR]\n"
    "      fetch a model (http, https, file, s3) into the store, verified\n"
    "  inspect MODEL.onnx|NAME[:VERSION] [--store DIR]\n"
    "      show signature, versions, producer, operators and unsupported operators\n"
    "  bundle REF -o FILE [--store DIR]\n"
    "      one executable serving a stored model (./FILE with no arguments)\n"
    "  image REF -o FILE.oci.tar [--tag NAME:TAG] [--store DIR]\n"
    "      an OCI image archive (no Docker needed) whose entrypoint serves the model\n"
    "  ctl [--url URL] [--token TOKEN] index|load|unload|traffic|status ...\n"
    "      steer a running server: load, unload, traffic splits, status\n"
    "  worker --queue redis://HOST:PORT --repository DIR [--threads N]\n"
    "      consume the asynchronous job queue the servers fill (no HTTP)\n"
    "  inventory [--url URL] [--store DIR]\n"
    "      what runs where: host, versions, libraries, models (a server's or the store's)\n"
    "  version [--deps]\n"
    "      print the version; --deps: every linked library and its version\n";

int cli_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("inferd: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

char *cli_read_file(const char *path, size_t *size, ifd_error *err)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (!f) {
        snprintf(err->message, sizeof(err->message), "%s: %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err->message, sizeof(err->message), "%s: not a regular file", path);
        fclose(f);
        return NULL;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        snprintf(err->message, sizeof(err->message), "%s: out of memory", path);
        fclose(f);
        return NULL;
    }
    size_t n = fread(buf, 1, (size_t)st.st_size, f);
    fclose(f);
    if (n != (size_t)st.st_size) {
        snprintf(err->message, sizeof(err->message), "%s: short read", path);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *size = n;
    return buf;
}

bool cli_parse_threads(const char *text, int *threads)
{
    char *end;
    errno = 0;
    long v = text ? strtol(text, &end, 10) : 0;
    if (!text || errno || *end || v < 1 || v > 1024) {
        cli_fail("--threads: expected a number of threads from 1 to 1024, got '%s'",
                 text ? text : "");
        return false;
    }
    *threads = (int)v;
    return true;
}

bool cli_parse_graph_opt(const char *text, ifd_graph_opt *level)
{
    static const struct {
        const char *name;
        ifd_graph_opt level;
    } levels[] = {{"none", IFD_GRAPH_OPT_NONE}, {"basic", IFD_GRAPH_OPT_BASIC},
                  {"all", IFD_GRAPH_OPT_ALL}};
    for (size_t i = 0; text && i < sizeof(levels) / sizeof(levels[0]); i++)
        if (strcmp(text, levels[i].name) == 0) {
            *level = levels[i].level;
            return true;
        }
    cli_fail("--graph-opt: expected none, basic or all, got '%s'", text ? text : "");
    return false;
}

const char *cli_type_string(const ifd_type_info *type, char *buf, size_t size)
{
    size_t used = 0;
    if (type->kind != IFD_VALUE_TENSOR)
        return ifd_type_name(type, buf, size);
    used += (size_t)snprintf(buf, size, "%s", ifd_dtype_name(type->dtype));
    if (type->rank < 0) {
        if (used < size)
            snprintf(buf + used, size - used, "[unknown rank]");
        return buf;
    }
    if (used < size)
        used += (size_t)snprintf(buf + used, size - used, "[");
    for (int i = 0; i < type->rank && used < size; i++) {
        const char *sep = i ? "," : "";
        if (type->dims[i] >= 0)
            used += (size_t)snprintf(buf + used, size - used, "%s%lld", sep,
                                     (long long)type->dims[i]);
        else if (type->dim_params[i])
            used += (size_t)snprintf(buf + used, size - used, "%s%s", sep, type->dim_params[i]);
        else
            used += (size_t)snprintf(buf + used, size - used, "%s?", sep);
    }
    if (used < size)
        snprintf(buf + used, size - used, "]");
    return buf;
}

int main(int argc, char **argv)
{
    int bundle_rc;
    if (cli_bundle_main(argc, argv, &bundle_rc)) /* an `inferd bundle` executable */
        return bundle_rc;
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *command = argv[1];
    if (strcmp(command, "run") == 0)
        return cmd_run(argc - 1, argv + 1);
    if (strcmp(command, "predict") == 0)
        return cmd_predict(argc - 1, argv + 1);
    if (strcmp(command, "serve") == 0)
        return cmd_serve(argc - 1, argv + 1);
    if (strcmp(command, "models") == 0)
        return cmd_models(argc - 1, argv + 1);
    if (strcmp(command, "batch") == 0)
        return cmd_batch(argc - 1, argv + 1);
    if (strcmp(command, "pull") == 0)
        return cmd_pull(argc - 1, argv + 1);
    if (strcmp(command, "inspect") == 0)
        return cmd_inspect(argc - 1, argv + 1);
    if (strcmp(command, "bundle") == 0)
        return cmd_bundle(argc - 1, argv + 1);
    if (strcmp(command, "image") == 0)
        return cmd_image(argc - 1, argv + 1);
    if (strcmp(command, "pipeline") == 0)
        return cmd_pipeline(argc - 1, argv + 1);
    if (strcmp(command, "ctl") == 0)
        return cmd_ctl(argc - 1, argv + 1);
    if (strcmp(command, "worker") == 0)
        return cmd_worker(argc - 1, argv + 1);
    if (strcmp(command, "inventory") == 0)
        return cmd_inventory(argc - 1, argv + 1);
    if (strcmp(command, "version") == 0 || strcmp(command, "--version") == 0)
        return cmd_version(argc - 1, argv + 1);
    fprintf(stderr, "inferd: unknown command '%s'\n\n%s", command, usage);
    return 2;
}
