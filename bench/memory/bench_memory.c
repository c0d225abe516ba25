/*
 * bench_memory.c — what a loaded model costs in memory, through the public
 * API only: resident set before loading, after ifd_model_load_file, after
 * creating N sessions (a server's workers) and running each once, and the
 * process's peak (VmHWM), as one JSON line. bench/memory/run.sh runs it over
 * the fixture and benchmark models at --graph-opt none and all.
 *
 *   bench_memory MODEL.onnx [--sessions N] [--graph-opt none|basic|all] [--hold]
 *
 * Inputs are zeros of the declared shapes, symbolic dimensions taken as 1.
 * The line also gives the resident MiB of the model file's own mapping
 * (weights the loader reads in place) and how much of it is shared with
 * other processes (/proc/self/smaps Shared_Clean). --hold keeps the model
 * loaded after printing, until stdin closes, so that a second process
 * loading the same file can show the pages shared (bench/memory/run.sh).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <inferd/inferd.h>

/* VmRSS or VmHWM of this process, in MiB. */
static double status_mib(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kib = -1;
    size_t n = strlen(field);
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, field, n) == 0 && line[n] == ':')
            kib = strtod(line + n + 1, NULL);
    if (f)
        fclose(f);
    return kib / 1024.0;
}

/* Rss and Shared_Clean (MiB) summed over this process's mappings of path. */
static void mapping_mib(const char *path, double *rss, double *shared)
{
    char real[4096], line[4352];
    *rss = *shared = 0;
    if (!realpath(path, real))
        return;
    FILE *f = fopen("/proc/self/smaps", "r");
    int in_file = 0;
    size_t n = strlen(real);
    while (f && fgets(line, sizeof(line), f)) {
        /* a mapping's header starts with its address (lower-case hex);
         * its fields ("Rss:", ...) with a capital */
        if ((line[0] >= '0' && line[0] <= '9') || (line[0] >= 'a' && line[0] <= 'f')) {
            char *slash = strchr(line, '/');
            in_file = slash && strncmp(slash, real, n) == 0 &&
                      (slash[n] == '\n' || slash[n] == '\0');
        }
        if (!in_file)
            continue;
        if (strncmp(line, "Rss:", 4) == 0)
            *rss += strtod(line + 4, NULL) / 1024.0;
        else if (strncmp(line, "Shared_Clean:", 13) == 0)
            *shared += strtod(line + 13, NULL) / 1024.0;
    }
    if (f)
        fclose(f);
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    int sessions = 4, hold = 0;
    ifd_load_options load = {0};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--hold") == 0)
            hold = 1;
        else if (strcmp(argv[i], "--sessions") == 0 && i + 1 < argc)
            sessions = atoi(argv[++i]);
        else if (strcmp(argv[i], "--graph-opt") == 0 && i + 1 < argc) {
            const char *v = argv[++i];
            load.graph_opt = strcmp(v, "none") == 0    ? IFD_GRAPH_OPT_NONE
                             : strcmp(v, "basic") == 0 ? IFD_GRAPH_OPT_BASIC
                                                       : IFD_GRAPH_OPT_ALL;
        } else
            path = argv[i];
    }
    if (!path || sessions < 1 || sessions > 64) {
        fprintf(stderr, "usage: bench_memory MODEL.onnx [--sessions 1..64] [--graph-opt L] "
                        "[--hold]\n");
        return 2;
    }
    struct stat st;
    if (stat(path, &st) != 0) {
        perror(path);
        return 1;
    }
    double base = status_mib("VmRSS");
    ifd_model *model = NULL;
    ifd_error err;
    if (ifd_model_load_file(path, &load, &model, &err) != IFD_OK) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    double loaded = status_mib("VmRSS"), load_peak = status_mib("VmHWM");
    size_t n_in = ifd_model_input_count(model), n_out = ifd_model_output_count(model);
    ifd_value **inputs = calloc(n_in + 1, sizeof(*inputs));
    ifd_value **outputs = calloc(n_out + 1, sizeof(*outputs));
    ifd_session **all = calloc((size_t)sessions, sizeof(*all));
    for (size_t i = 0; i < n_in; i++) {
        const ifd_type_info *t = &ifd_model_input(model, i)->type;
        int64_t dims[IFD_MAX_RANK];
        for (int d = 0; d < t->rank; d++)
            dims[d] = t->dims[d] > 0 ? t->dims[d] : 1;
        if (ifd_value_new_tensor(t->dtype, t->rank < 0 ? 0 : t->rank, dims, &inputs[i], &err)) {
            fprintf(stderr, "input %zu: %s\n", i, err.message);
            return 1;
        }
    }
    for (int s = 0; s < sessions; s++) {
        ifd_session_options options = {.threads = 1};
        if (ifd_session_create(model, &options, &all[s], &err) != IFD_OK ||
            ifd_session_run(all[s], (const ifd_value *const *)inputs, outputs, &err) != IFD_OK) {
            fprintf(stderr, "session %d: %s\n", s, err.message);
            return 1;
        }
        for (size_t k = 0; k < n_out; k++)
            ifd_value_free(outputs[k]);
    }
    double serving = status_mib("VmRSS"), peak = status_mib("VmHWM"), file_rss, file_shared;
    mapping_mib(path, &file_rss, &file_shared);
    printf("{\"model\": \"%s\", \"file_mib\": %.2f, \"graph_opt\": \"%s\", \"sessions\": %d, "
           "\"rss_before_mib\": %.1f, \"rss_loaded_mib\": %.1f, \"peak_during_load_mib\": %.1f, "
           "\"rss_serving_mib\": %.1f, \"peak_mib\": %.1f, \"file_mapping_rss_mib\": %.1f, "
           "\"file_mapping_shared_mib\": %.1f}\n",
           path, (double)st.st_size / 1048576.0,
           load.graph_opt == IFD_GRAPH_OPT_NONE    ? "none"
           : load.graph_opt == IFD_GRAPH_OPT_BASIC ? "basic"
                                                   : "all",
           sessions, base, loaded, load_peak, serving, peak, file_rss, file_shared);
    fflush(stdout);
    while (hold && getchar() != EOF)
        ;
    for (int s = 0; s < sessions; s++)
        ifd_session_free(all[s]);
    for (size_t i = 0; i < n_in; i++)
        ifd_value_free(inputs[i]);
    free(inputs);
    free(outputs);
    free(all);
    ifd_model_free(model);
    return 0;
}
