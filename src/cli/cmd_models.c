/*
 * cmd_models.c — `inferd models`: the local model store (src/store) from
 * the command line, as BentoML's `bentoml models`: import a model file or
 * an exported archive (through the version guard), list, get a manifest,
 * delete, export. --store DIR (anywhere on the line) picks the root,
 * else $INFERD_HOME, else ~/.local/share/inferd.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "store.h"

static const char models_usage[] =
    "usage: inferd models [--store DIR] <command>\n"
    "  import MODEL.onnx --name N [--version V] [--labels labels.json]\n"
    "         [--task classification|regression|clustering|other]\n"
    "         [--training-env requirements.txt] [--samples samples.json] [--rtol X] [--atol X]\n"
    "         [--preprocess preprocessing.json]   {input: {\"kind\": \"image\", ...}} (inferd predict --help)\n"
    "  import FILE.tar [--name N] [--version V]   an archive made by `models export`\n"
    "  list [--json]                              name, version, task, size, opset, created\n"
    "  get REF                                    the manifest (REF: name, name:version, name:latest)\n"
    "  delete REF\n"
    "  export REF -o FILE.tar\n";

typedef struct models_args {
    const char *store, *name, *version, *labels, *task, *training_env, *samples, *output, *preprocess;
    const char *rtol, *atol;
    bool json;
    const char *positional[3];
    int n_positional;
} models_args;

static bool parse_args(int argc, char **argv, models_args *a)
{
    static const struct {
        const char *flag;
        size_t offset;
    } valued[] = {
        {"--store", offsetof(models_args, store)},
        {"--name", offsetof(models_args, name)},
        {"--version", offsetof(models_args, version)},
        {"--labels", offsetof(models_args, labels)},
        {"--task", offsetof(models_args, task)},
        {"--training-env", offsetof(models_args, training_env)},
        {"--samples", offsetof(models_args, samples)},
        {"--preprocess", offsetof(models_args, preprocess)},
        {"-o", offsetof(models_args, output)},
        {"--output", offsetof(models_args, output)},
        {"--rtol", offsetof(models_args, rtol)},
        {"--atol", offsetof(models_args, atol)},
    };
    memset(a, 0, sizeof(*a));
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--json") == 0) {
            a->json = true;
            continue;
        }
        bool matched = false;
        for (size_t k = 0; k < sizeof(valued) / sizeof(valued[0]); k++) {
            if (strcmp(arg, valued[k].flag) != 0)
                continue;
            if (i + 1 >= argc) {
                cli_fail("%s needs a value", arg);
                return false;
            }
            *(const char **)((char *)a + valued[k].offset) = argv[++i];
            matched = true;
            break;
        }
        if (matched)
            continue;
        if (arg[0] == '-' && arg[1]) {
            cli_fail("models: unknown option '%s'\n\n%s", arg, models_usage);
            return false;
        }
        if (a->n_positional == 3) {
            cli_fail("models: unexpected argument '%s'\n\n%s", arg, models_usage);
            return false;
        }
        a->positional[a->n_positional++] = arg;
    }
    return true;
}

static bool parse_tolerance(const char *flag, const char *text, double *out)
{
    if (!text)
        return true;
    char *end;
    double v = strtod(text, &end);
    if (*end || end == text || !(v > 0) || v > 1) {
        cli_fail("%s: expected a number in (0, 1], got '%s'", flag, text);
        return false;
    }
    *out = v;
    return true;
}

/* Archives by name or by the ustar magic of a regular file (never sniffed
 * from a pipe, which would consume the model's first bytes). */
static bool is_archive(const char *path)
{
    size_t len = strlen(path);
    if ((len > 4 && strcmp(path + len - 4, ".tar") == 0) ||
        (len > 7 && strcmp(path + len - 7, ".tar.gz") == 0) ||
        (len > 4 && strcmp(path + len - 4, ".tgz") == 0))
        return true;
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < 263)
        return false;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    char magic[6] = {0};
    bool tar = fd >= 0 && pread(fd, magic, 5, 257) == 5 && memcmp(magic, "ustar", 5) == 0;
    if (fd >= 0)
        close(fd);
    return tar;
}

static void human_size(long long bytes, char *buf, size_t n)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, n, "%lld B", bytes);
    else
        snprintf(buf, n, "%.1f %s", v, units[u]);
}

/* "9" for the default domain alone; "9, ai.onnx.ml 1" with others. */
static void opset_text(const json_t *opsets, char *buf, size_t n)
{
    size_t used = 0;
    buf[0] = '\0';
    const json_t *def = json_object_get(opsets, "ai.onnx");
    if (json_is_integer(def))
        used += (size_t)snprintf(buf, n, "%lld", (long long)json_integer_value(def));
    const char *domain;
    const json_t *v;
    json_object_foreach((json_t *)opsets, domain, v) {
        if (strcmp(domain, "ai.onnx") == 0 || !json_is_integer(v) || used >= n)
            continue;
        used += (size_t)snprintf(buf + used, n - used, "%s%s %lld", used ? ", " : "", domain,
                                 (long long)json_integer_value(v));
    }
}

static const char *field(const json_t *m, const char *key)
{
    const char *s = json_string_value(json_object_get(m, key));
    return s ? s : "";
}

static int list_models(store *s, bool as_json)
{
    char err[1024];
    json_t *list = store_list(s, err, sizeof(err));
    if (!list)
        return cli_fail("%s", err);
    if (as_json) {
        char *text = json_dumps(list, JSON_INDENT(2));
        if (text)
            puts(text);
        free(text);
        json_decref(list);
        return 0;
    }
    enum { N_COLS = 6 };
    static const char *const head[N_COLS] = {"NAME", "VERSION", "TASK", "SIZE", "OPSET", "CREATED"};
    size_t rows = json_array_size(list);
    char (*cells)[N_COLS][128] = calloc(rows ? rows : 1, sizeof(*cells));
    if (!cells) {
        json_decref(list);
        return cli_fail("out of memory");
    }
    size_t width[N_COLS];
    for (int c = 0; c < N_COLS; c++)
        width[c] = strlen(head[c]);
    for (size_t r = 0; r < rows; r++) {
        const json_t *m = json_array_get(list, r);
        snprintf(cells[r][0], 128, "%s", field(m, "name"));
        snprintf(cells[r][1], 128, "%s", field(m, "version"));
        snprintf(cells[r][2], 128, "%s", field(m, "task"));
        human_size((long long)json_integer_value(json_object_get(m, "size")), cells[r][3], 128);
        opset_text(json_object_get(m, "opsets"), cells[r][4], 128);
        snprintf(cells[r][5], 128, "%s", field(m, "created"));
        for (int c = 0; c < N_COLS; c++)
            if (strlen(cells[r][c]) > width[c])
                width[c] = strlen(cells[r][c]);
    }
    for (size_t r = 0; r <= rows; r++)
        for (int c = 0; c < N_COLS; c++) {
            const char *text = r == 0 ? head[c] : cells[r - 1][c];
            if (c + 1 < N_COLS)
                printf("%-*s  ", (int)width[c], text);
            else
                printf("%s\n", text);
        }
    free(cells);
    json_decref(list);
    return 0;
}

static int import_model(store *s, const models_args *a)
{
    if (a->n_positional != 2)
        return cli_fail("models import: expected one MODEL.onnx or FILE.tar\n\n%s", models_usage);
    const char *path = a->positional[1];
    import_options o = {.name = a->name, .version = a->version, .labels_path = a->labels,
                        .task = a->task, .training_env_path = a->training_env,
                        .samples_path = a->samples, .preprocessing_path = a->preprocess};
    if (!parse_tolerance("--rtol", a->rtol, &o.rtol) || !parse_tolerance("--atol", a->atol, &o.atol))
        return 2;
    model_ref ref;
    char err[4096];
    bool archive = is_archive(path);
    if (archive && (a->labels || a->task || a->training_env || a->samples || a->preprocess))
        return cli_fail("models import %s: an archive carries its own labels, task, training "
                        "environment, samples and preprocessing", path);
    if (!archive && !a->name)
        return cli_fail("models import %s: --name is required for a model file", path);
    bool ok = archive ? store_import_archive(s, path, &o, &ref, err, sizeof(err))
                      : store_import_file(s, path, &o, &ref, err, sizeof(err));
    if (!ok)
        return cli_fail("models import: %s", err);
    json_t *m = store_manifest(s, &ref, err, sizeof(err));
    printf("imported %s:%s (sha256 %s, %lld bytes) into %s\n", ref.name, ref.version,
           m ? field(m, "sha256") : "?",
           m ? (long long)json_integer_value(json_object_get(m, "size")) : 0LL, store_root(s));
    json_decref(m);
    return 0;
}

static int with_ref(store *s, const models_args *a, const char *command)
{
    if (a->n_positional != 2)
        return cli_fail("models %s: expected one model reference (name, name:version, "
                        "name:latest)\n\n%s", command, models_usage);
    model_ref ref;
    char err[4096];
    if (!store_parse_ref(a->positional[1], &ref, err, sizeof(err)))
        return cli_fail("models %s: %s", command, err);
    if (strcmp(command, "get") == 0) {
        json_t *m = store_manifest(s, &ref, err, sizeof(err));
        if (!m)
            return cli_fail("models get: %s", err);
        char *text = json_dumps(m, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
        if (text)
            puts(text);
        free(text);
        json_decref(m);
        return 0;
    }
    if (strcmp(command, "delete") == 0) {
        model_ref resolved = ref;
        if (!store_resolve(s, &resolved, NULL, 0, err, sizeof(err)) ||
            !store_delete(s, &resolved, err, sizeof(err)))
            return cli_fail("models delete: %s", err);
        printf("deleted %s:%s\n", resolved.name, resolved.version);
        return 0;
    }
    if (!a->output)
        return cli_fail("models export: -o FILE.tar is required");
    model_ref resolved = ref;
    if (!store_resolve(s, &resolved, NULL, 0, err, sizeof(err)) ||
        !store_export(s, &resolved, a->output, err, sizeof(err)))
        return cli_fail("models export: %s", err);
    printf("exported %s:%s to %s\n", resolved.name, resolved.version, a->output);
    return 0;
}

int cmd_models(int argc, char **argv)
{
    models_args a;
    if (!parse_args(argc, argv, &a))
        return 2;
    if (a.n_positional == 0) {
        fputs(models_usage, stderr);
        return 2;
    }
    const char *command = a.positional[0];
    if (strcmp(command, "help") == 0) {
        fputs(models_usage, stdout);
        return 0;
    }
    bool known = strcmp(command, "import") == 0 || strcmp(command, "list") == 0 ||
                 strcmp(command, "get") == 0 || strcmp(command, "delete") == 0 ||
                 strcmp(command, "export") == 0;
    if (!known) {
        cli_fail("models: unknown command '%s'\n\n%s", command, models_usage);
        return 2;
    }
    char err[1024];
    store *s = store_open(a.store, err, sizeof(err));
    if (!s)
        return cli_fail("store: %s", err);
    int rc;
    if (strcmp(command, "import") == 0)
        rc = import_model(s, &a);
    else if (strcmp(command, "list") == 0)
        rc = a.n_positional == 1 ? list_models(s, a.json)
                                 : cli_fail("models list: takes no arguments");
    else
        rc = with_ref(s, &a, command);
    store_close(s);
    return rc;
}
