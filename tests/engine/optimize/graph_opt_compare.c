/*
 * graph_opt_compare.c — runs one model with the loader's graph optimisation
 * off (IFD_GRAPH_OPT_NONE) and at ALL, on the same seeded inputs, and fails
 * when any output differs by more than the tolerance, or when ALL was asked
 * to remove nodes (--expect-fused N) and removed fewer. The real-model and
 * fusion tests (tests/fixtures/run_engine_models.py) call it for every model
 * they hold against ONNX Runtime: a fusion is checked both against the
 * unfused graph and against ORT.
 *
 *   graph_opt_compare MODEL [--batch N] [--threads N] [--rtol R] [--expect-fused N]
 *
 * Float inputs only; unknown dims other than the first are refused. The
 * tolerance: |all - none| <= rtol * (|none| + max |none| of that output),
 * i.e. relative to each element and to the output's scale, because folding a
 * BatchNormalization reassociates sums whose terms cancel near zero.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <inferd/inferd.h>

#include "model.h" /* the nodes the loader kept, which the public API does not show */

static uint32_t next_random(uint32_t *state)
{
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *state = x;
}

static int run(const char *path, ifd_graph_opt level, int threads, int64_t batch,
               ifd_value ***outputs, size_t *n_outputs, size_t *nodes)
{
    ifd_error err;
    ifd_load_options lo = {0};
    lo.graph_opt = level;
    ifd_model *model;
    if (ifd_model_load_file(path, &lo, &model, &err) != IFD_OK) {
        fprintf(stderr, "graph_opt_compare: %s: %s\n", path, err.message);
        return -1;
    }
    *nodes = model->n_nodes;
    size_t n_in = ifd_model_input_count(model);
    ifd_value **inputs = calloc(n_in + 1, sizeof(*inputs));
    uint32_t seed = 14;
    int rc = 0;
    for (size_t i = 0; i < n_in && rc == 0; i++) {
        const ifd_type_info *t = &ifd_model_input(model, i)->type;
        int64_t dims[IFD_MAX_RANK];
        if (t->kind != IFD_VALUE_TENSOR || t->dtype != IFD_FLOAT || t->rank < 1) {
            fprintf(stderr, "graph_opt_compare: input %zu is not a float tensor\n", i);
            rc = -1;
            break;
        }
        for (int d = 0; d < t->rank; d++) {
            dims[d] = d == 0 && t->dims[0] < 0 ? batch : t->dims[d];
            if (dims[d] < 0) {
                fprintf(stderr, "graph_opt_compare: input %zu has an unknown dim %d\n", i, d);
                rc = -1;
            }
        }
        if (rc || ifd_value_new_tensor(IFD_FLOAT, t->rank, dims, &inputs[i], &err) != IFD_OK) {
            rc = -1;
            break;
        }
        float *x = inputs[i]->tensor.data;
        for (int64_t k = 0; k < ifd_tensor_count(&inputs[i]->tensor); k++)
            x[k] = (float)(next_random(&seed) >> 8) / 16777216.0f * 2.0f - 1.0f;
    }
    ifd_session *session = NULL;
    ifd_session_options so = {0};
    so.threads = threads;
    *n_outputs = ifd_model_output_count(model);
    *outputs = calloc(*n_outputs + 1, sizeof(**outputs));
    if (rc == 0 && (ifd_session_create(model, &so, &session, &err) != IFD_OK ||
                    ifd_session_run(session, (const ifd_value *const *)inputs, *outputs, &err) !=
                        IFD_OK)) {
        fprintf(stderr, "graph_opt_compare: %s (graph_opt %d): %s\n", path, (int)level,
                err.message);
        rc = -1;
    }
    ifd_session_free(session);
    for (size_t i = 0; i < n_in; i++)
        ifd_value_free(inputs[i]);
    free(inputs);
    ifd_model_free(model);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: graph_opt_compare MODEL [--batch N] [--threads N] [--rtol R] "
                        "[--expect-fused N]\n");
        return 2;
    }
    int64_t batch = 1;
    int threads = 2;
    double rtol = 1e-4;
    long expect_fused = 0;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--batch") == 0)
            batch = atoll(argv[i + 1]);
        else if (strcmp(argv[i], "--threads") == 0)
            threads = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--rtol") == 0)
            rtol = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--expect-fused") == 0)
            expect_fused = atol(argv[i + 1]);
        else {
            fprintf(stderr, "graph_opt_compare: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    ifd_value **plain, **fused;
    size_t n_plain, n_fused, nodes_plain, nodes_fused;
    if (run(argv[1], IFD_GRAPH_OPT_NONE, threads, batch, &plain, &n_plain, &nodes_plain) != 0 ||
        run(argv[1], IFD_GRAPH_OPT_ALL, threads, batch, &fused, &n_fused, &nodes_fused) != 0)
        return 1;
    int failed = 0;
    for (size_t k = 0; k < n_plain; k++) {
        const ifd_tensor *a = &plain[k]->tensor, *b = &fused[k]->tensor;
        if (plain[k]->kind != IFD_VALUE_TENSOR || a->dtype != IFD_FLOAT) {
            fprintf(stderr, "output %zu: not a float tensor, not compared\n", k);
            continue;
        }
        if (a->rank != b->rank || ifd_tensor_count(a) != ifd_tensor_count(b)) {
            fprintf(stderr, "output %zu: shapes differ\n", k);
            failed = 1;
            continue;
        }
        const float *x = a->data, *y = b->data;
        int64_t count = ifd_tensor_count(a);
        double scale = 0.0, worst = 0.0;
        for (int64_t i = 0; i < count; i++)
            scale = fmax(scale, fabs(x[i]));
        for (int64_t i = 0; i < count; i++) {
            double over = fabs((double)x[i] - y[i]) / (fabs(x[i]) + scale + 1e-30);
            if (!(over <= rtol) && !(isnan(x[i]) && isnan(y[i]))) {
                if (!failed)
                    fprintf(stderr, "output %zu element %lld: none %.9g, all %.9g\n", k,
                            (long long)i, x[i], y[i]);
                failed = 1;
            }
            worst = fmax(worst, over);
        }
        printf("output %zu: %lld elements, largest difference %.3g of (|none| + max |none| = "
               "%.3g)\n", k, (long long)count, worst, scale);
    }
    printf("nodes: %zu without graph optimisation, %zu with (%zu fused away)\n", nodes_plain,
           nodes_fused, nodes_plain - nodes_fused);
    if ((long)(nodes_plain - nodes_fused) < expect_fused) {
        fprintf(stderr, "graph_opt_compare: expected at least %ld nodes fused away\n",
                expect_fused);
        failed = 1;
    }
    for (size_t k = 0; k < n_plain; k++)
        ifd_value_free(plain[k]);
    for (size_t k = 0; k < n_fused; k++)
        ifd_value_free(fused[k]);
    free(plain);
    free(fused);
    printf("%s\n", failed ? "FAILED" : "ok");
    return failed;
}
