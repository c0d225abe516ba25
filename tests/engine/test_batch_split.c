/*
 * test_batch_split.c — a run cut by rows over threads (src/engine/batch_split.c)
 * on the digits MLP and CNN (trained by torch, tools/gen_fixtures.py) and on
 * small graphs from tools/gen_batch_split_models.py: the split run gives the
 * unsplit run's outputs bit for bit (odd batches included), models with a
 * node that mixes rows are never split, an error in one slice fails the run
 * once with that slice's message, and the option, INFERD_BATCH_SPLIT=off and
 * graph_opt none keep runs whole. Micro-batches (a slice, or a one-thread
 * run, cut into runs of k rows): each micro-batch's rows are the unsplit run
 * of those rows, k need not divide the batch, the rule leaves weight-heavy
 * models whole and cuts an activation-heavy CNN. Both ways a slice hands
 * over its outputs are compared: "embed" at batch 64 writes its 32 KB of
 * rows straight into the caller's tensor, the other runs (a few rows of
 * scores, under session.c's ROWS_IN_PLACE_MIN_BYTES) compute them in the
 * slice's own buffers and copy them at the end; either way a slice whose
 * outputs the caller could not make fails instead of waiting for them.
 * The GEMM kernel is chosen per process:
 * CTest runs this again with INFERD_GEMM_KERNEL=avx2 and =generic.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "batch_split.h"
#include "kernels/gemm.h"
#include "inferd/inferd.h"
#include "model.h"
#include "generated_models.h"
#include "test.h"

static ifd_session *session(const ifd_model *m, int threads, int split)
{
    return generated_session(m, (ifd_session_options){.threads = threads, .batch_split = split});
}

/* The model's one input with `batch` rows (the declared dims elsewhere):
 * floats in [-2, 2) or int64 ids in [0, 10), from a fixed pattern. */
static ifd_value *make_input(const ifd_model *m, int64_t batch, uint32_t seed)
{
    const ifd_io_info *in = ifd_model_input(m, 0);
    int64_t dims[IFD_MAX_RANK];
    for (int i = 0; i < in->type.rank; i++)
        dims[i] = in->type.dims[i] > 0 ? in->type.dims[i] : 1;
    dims[0] = batch;
    ifd_value *v = NULL;
    ifd_error err;
    if (ifd_value_new_tensor(in->type.dtype, in->type.rank, dims, &v, &err) != IFD_OK)
        return NULL;
    uint32_t state = seed;
    for (int64_t i = 0; i < ifd_tensor_count(&v->tensor); i++) {
        state = state * 1664525u + 1013904223u;
        if (in->type.dtype == IFD_INT64)
            ((int64_t *)v->tensor.data)[i] = (int64_t)((state >> 8) % 10);
        else
            ((float *)v->tensor.data)[i] = (float)((state >> 8) / 16777216.0 * 4.0 - 2.0);
    }
    return v;
}

#define MAX_OUTPUTS 4

static bool run(ifd_session *s, const ifd_value *input, ifd_value **out, ifd_error *err)
{
    const ifd_value *in[1] = {input};
    return ifd_session_run(s, in, out, err) == IFD_OK;
}

static void free_outputs(ifd_value **out, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        ifd_value_free(out[k]);
        out[k] = NULL;
    }
}

/* Every output equal in dtype, shape and bytes. */
static bool same_outputs(ifd_value **a, ifd_value **b, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        const ifd_tensor *x = &a[k]->tensor, *y = &b[k]->tensor;
        if (x->dtype != y->dtype || !tensor_same_shape(x, y) ||
            memcmp(x->data, y->data, (size_t)ifd_tensor_count(x) * ifd_dtype_size(x->dtype)) != 0)
            return false;
    }
    return true;
}

/* Rows [r0, r0 + rows) of every output of `a` are byte for byte `b`'s. */
static bool same_rows(ifd_value **a, ifd_value **b, size_t n, int64_t r0, int64_t rows)
{
    for (size_t k = 0; k < n; k++) {
        const ifd_tensor *x = &a[k]->tensor, *y = &b[k]->tensor;
        size_t row = (size_t)(ifd_tensor_count(x) / x->dims[0]) * ifd_dtype_size(x->dtype);
        if (y->dims[0] != rows || x->dtype != y->dtype ||
            memcmp((const char *)x->data + (size_t)r0 * row, y->data, (size_t)rows * row) != 0)
            return false;
    }
    return true;
}

/* Largest |a - b| / max(1, |b|) over float outputs. */
static double largest_difference(ifd_value **a, ifd_value **b, size_t n)
{
    double worst = 0;
    for (size_t k = 0; k < n; k++) {
        const ifd_tensor *x = &a[k]->tensor, *y = &b[k]->tensor;
        if (x->dtype != IFD_FLOAT || !tensor_same_shape(x, y))
            return INFINITY;
        const float *p = x->data, *q = y->data;
        for (int64_t i = 0; i < ifd_tensor_count(x); i++) {
            double d = fabs((double)p[i] - q[i]) / fmax(1.0, fabs((double)q[i]));
            worst = d > worst ? d : worst;
        }
    }
    return worst;
}

/* A copy of rows [r0, r0 + rows) of a tensor value. */
static ifd_value *copy_rows(const ifd_value *v, int64_t r0, int64_t rows)
{
    int64_t dims[IFD_MAX_RANK];
    memcpy(dims, v->tensor.dims, sizeof(dims));
    dims[0] = rows;
    ifd_value *out = NULL;
    ifd_error err;
    if (ifd_value_new_tensor(v->tensor.dtype, v->tensor.rank, dims, &out, &err) != IFD_OK)
        return NULL;
    size_t row = (size_t)(ifd_tensor_count(&v->tensor) / v->tensor.dims[0]) *
                 ifd_dtype_size(v->tensor.dtype);
    memcpy(out->tensor.data, (const char *)v->tensor.data + (size_t)r0 * row, (size_t)rows * row);
    return out;
}

/* How many slices a 2-thread session cuts this input into (0: unsplit). */
static size_t slices_for(const ifd_model *m, const ifd_value *input)
{
    threadpool *pool = threadpool_create(2);
    batch_split *split = NULL;
    char reason[192];
    ifd_error err;
    size_t slices = 0;
    if (batch_split_create(m, NULL, pool, NULL, &split, reason, sizeof(reason), &err) == IFD_OK &&
        split) {
        const ifd_value *in[1] = {input};
        slices = batch_split_slices(split, in);
    }
    batch_split_free(split);
    threadpool_free(pool);
    return slices;
}

/* The GEMM kernels split K over several accumulators by how many rows a
 * tile holds (kernels/gemm.c), so a row's last bits depend on which rows
 * share its tile: the unsplit run of a batch of 8 and of its first 4 rows
 * already differ there. What the split promises, and this checks, is
 * exact: each slice's rows are bit for bit the unsplit run of those rows
 * alone, and within rounding of the whole batch's unsplit run; with the
 * generic kernel, whose sums do not depend on the tiling, bit for bit that
 * too. Each batch runs twice (the second run reuses every slice's buffers).
 * (The unsplit run at 2 threads is not always bit for bit the 1-thread
 * one either: Gemm's row blocks and Conv's image groups follow the threads.) */
static void check_split_matches_unsplit(const char *name, const int64_t *batches,
                                        size_t n_batches)
{
    ifd_model *m = generated_model_load(name, IFD_GRAPH_OPT_ALL);
    CHECK(m != NULL);
    if (!m)
        return;
    ifd_session *split = session(m, 2, 0), *whole = session(m, 2, IFD_BATCH_SPLIT_OFF),
                *one = session(m, 1, 0);
    CHECK(split && whole && one);
    if (!split || !whole || !one)
        n_batches = 0;
    char reason[192];
    CHECK_EQ_INT(split && ifd_session_batch_split(split, reason, sizeof(reason)), 1);
    CHECK_STR_CONTAINS(reason, "splits batches over 2 threads");
    CHECK_EQ_INT(whole && ifd_session_batch_split(whole, reason, sizeof(reason)), 0);
    CHECK_STR_CONTAINS(reason, "off by the session option");
    CHECK_EQ_INT(one && ifd_session_batch_split(one, reason, sizeof(reason)), 0);
    bool exact = strcmp(gemm_kernel_name(), "generic") == 0;
    size_t n_out = ifd_model_output_count(m), split_batches = 0;
    for (size_t b = 0; split && whole && one && b < n_batches; b++) {
        ifd_value *input = make_input(m, batches[b], 99 + (uint32_t)b);
        size_t slices = slices_for(m, input);
        split_batches += slices >= 2;
        for (int repeat = 0; repeat < 2; repeat++) {
            ifd_value *a[MAX_OUTPUTS] = {0}, *w[MAX_OUTPUTS] = {0}, *o[MAX_OUTPUTS] = {0};
            ifd_error err;
            CHECK(run(split, input, a, &err));
            CHECK(run(whole, input, w, &err));
            CHECK(run(one, input, o, &err));
            if (!a[0] || !w[0] || !o[0])
                break;
            CHECK_EQ_INT(a[0]->tensor.dims[0], batches[b]);
            double diff = largest_difference(a, w, n_out);
            if (diff > 1e-5 || (exact && !same_outputs(a, w, n_out)))
                fprintf(stderr, "  %s batch %lld: split differs from unsplit by %g\n", name,
                        (long long)batches[b], diff);
            CHECK(diff <= 1e-5);
            if (exact || slices < 2)
                CHECK(same_outputs(a, w, n_out));
            /* a static batch dim refuses slices run alone */
            bool alone = ifd_model_input(m, 0)->type.dims[0] < 0;
            for (size_t i = 0; alone && i < slices; i++) {
                int64_t r0, rows;
                batch_split_rows(batches[b], slices, i, &r0, &rows);
                ifd_value *part = copy_rows(input, r0, rows), *p[MAX_OUTPUTS] = {0};
                CHECK(part && run(one, part, p, &err));
                if (p[0] && !same_rows(a, p, n_out, r0, rows))
                    fprintf(stderr, "  %s batch %lld: slice %zu differs from its rows run alone\n",
                            name, (long long)batches[b], i);
                CHECK(p[0] && same_rows(a, p, n_out, r0, rows));
                free_outputs(p, n_out);
                ifd_value_free(part);
            }
            free_outputs(a, n_out);
            free_outputs(w, n_out);
            free_outputs(o, n_out);
        }
        ifd_value_free(input);
    }
    CHECK(split_batches > 0); /* the split path really ran */
    ifd_session_free(split);
    ifd_session_free(whole);
    ifd_session_free(one);
    ifd_model_free(m);
}

static void test_digits_mlp_split_rows_are_the_unsplit_runs_of_each_slice(void)
{
    const int64_t batches[] = {1, 8, 12, 13, 64, 65};
    check_split_matches_unsplit("digits_mlp/model.onnx", batches, 6);
}

static void test_digits_cnn_split_rows_are_the_unsplit_runs_of_each_slice(void)
{
    const int64_t batches[] = {1, 2, 3, 8, 9, 64, 65};
    check_split_matches_unsplit("digits_cnn/model.onnx", batches, 7);
}

static void test_embedding_and_static_batch_models_split_by_rows(void)
{
    const int64_t embed[] = {2, 9, 64};
    check_split_matches_unsplit("embed", embed, 3);
    const int64_t nine[] = {9};
    check_split_matches_unsplit("static_mlp", nine, 1);
}

/* Batch 9 over 2 threads runs as slices of 5 and 4 rows, each computed as
 * if it were a batch of its own. */
static void test_batch_nine_runs_as_two_slices_of_five_and_four_rows(void)
{
    ifd_model *m = generated_model_load("digits_cnn/model.onnx", IFD_GRAPH_OPT_ALL);
    CHECK(m != NULL);
    if (!m)
        return;
    threadpool *pool = threadpool_create(2);
    batch_split *split = NULL;
    char reason[192];
    ifd_error err;
    ifd_session_options options = {.threads = 2};
    CHECK_EQ_INT(batch_split_create(m, &options, pool, NULL, &split, reason, sizeof(reason), &err),
                 IFD_OK);
    CHECK(split != NULL);
    ifd_session *one = session(m, 1, 0);
    ifd_value *input = make_input(m, 9, 5);
    const ifd_value *in[1] = {input};
    if (split && one && input) {
        CHECK_EQ_INT((int)batch_split_slices(split, in), 2);
        int64_t r0, rows;
        batch_split_rows(9, 2, 0, &r0, &rows);
        CHECK(r0 == 0 && rows == 5);
        batch_split_rows(9, 2, 1, &r0, &rows);
        CHECK(r0 == 5 && rows == 4);
        ifd_value *a[MAX_OUTPUTS] = {0};
        CHECK_EQ_INT(batch_split_run(split, 2, in, a, &err), IFD_OK);
        for (size_t i = 0; a[0] && i < 2; i++) {
            batch_split_rows(9, 2, i, &r0, &rows);
            ifd_value *part = copy_rows(input, r0, rows), *p[MAX_OUTPUTS] = {0};
            CHECK(part && run(one, part, p, &err));
            CHECK(p[0] && same_rows(a, p, ifd_model_output_count(m), r0, rows));
            free_outputs(p, MAX_OUTPUTS);
            ifd_value_free(part);
        }
        free_outputs(a, MAX_OUTPUTS);
        /* a single row is never cut */
        ifd_value *row = make_input(m, 1, 5);
        const ifd_value *in1[1] = {row};
        CHECK_EQ_INT((int)batch_split_slices(split, in1), 0);
        ifd_value_free(row);
    }
    ifd_value_free(input);
    ifd_session_free(one);
    batch_split_free(split);
    threadpool_free(pool);
    ifd_model_free(m);
}

/* Small batches of the MLP stay whole: a slice must carry 64K
 * multiply-adds to pay for its hand-off and the graph's fixed cost per run,
 * so the MLP (17.5K a row) is cut from batch 8 on. */
static void test_slices_are_only_cut_where_each_carries_enough_work(void)
{
    ifd_model *m = generated_model_load("digits_mlp/model.onnx", IFD_GRAPH_OPT_ALL);
    CHECK(m != NULL);
    if (!m)
        return;
    char reason[192];
    double row = batch_split_row_work(m, reason, sizeof(reason));
    /* 64x128 + 128x64 + 64x10 multiply-adds and the elementwise tail */
    CHECK(row > 17000 && row < 18000);
    threadpool *pool = threadpool_create(2);
    batch_split *split = NULL;
    ifd_error err;
    CHECK_EQ_INT(batch_split_create(m, NULL, pool, NULL, &split, reason, sizeof(reason), &err), IFD_OK);
    for (int64_t batch = 1; split && batch <= 16; batch++) {
        ifd_value *input = make_input(m, batch, 1);
        const ifd_value *in[1] = {input};
        CHECK_EQ_INT(batch_split_slices(split, in) >= 2, batch >= 12);
        ifd_value_free(input);
    }
    batch_split_free(split);
    threadpool_free(pool);
    ifd_model_free(m);
}

static void test_models_with_a_node_that_mixes_rows_are_not_split(void)
{
    static const struct {
        const char *model, *why;
    } cases[] = {
        {"mix_reduce", "ReduceMean node"},
        {"mix_transpose", "Transpose node"},
        {"mix_softmax", "Softmax node"},
        {"mix_concat", "Concat node"},
        {"mix_reshape", "Reshape node"},
        {"mix_matmul_b", "MatMul node"},
        {"mix_batchnorm_training", "BatchNormalization node"},
        {"mix_maxpool_indices", "MaxPool node"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ifd_model *m = generated_model_load(cases[i].model, IFD_GRAPH_OPT_ALL);
        CHECK(m != NULL);
        if (!m)
            continue;
        char reason[192];
        CHECK(batch_split_row_work(m, reason, sizeof(reason)) < 0);
        if (!strstr(reason, cases[i].why))
            fprintf(stderr, "  %s: %s\n", cases[i].model, reason);
        CHECK_STR_CONTAINS(reason, cases[i].why);
        ifd_session *s = session(m, 2, 0);
        CHECK(s != NULL);
        if (s) {
            CHECK_EQ_INT(ifd_session_batch_split(s, reason, sizeof(reason)), 0);
            CHECK_STR_CONTAINS(reason, cases[i].why);
        }
        ifd_session_free(s);
        ifd_model_free(m);
    }
    /* the control: the same Relu into a MatMul by a constant is split */
    ifd_model *m = generated_model_load("rowwise_matmul", IFD_GRAPH_OPT_ALL);
    char reason[192];
    CHECK(m && batch_split_row_work(m, reason, sizeof(reason)) > 0);
    ifd_model_free(m);
}

/* Row 6 holds an id past the table: only the second slice (rows 4-7) fails,
 * and the run reports it once, as the whole run would; the session then
 * runs good batches again. */
static void test_an_error_in_one_slice_fails_the_run_once(void)
{
    ifd_model *m = generated_model_load("embed", IFD_GRAPH_OPT_ALL);
    CHECK(m != NULL);
    if (!m)
        return;
    ifd_session *split = session(m, 2, 0), *whole = session(m, 2, IFD_BATCH_SPLIT_OFF);
    ifd_value *input = make_input(m, 8, 3);
    CHECK(split && whole && input);
    if (split && whole && input) {
        CHECK_EQ_INT(ifd_session_batch_split(split, NULL, 0), 1);
        CHECK_EQ_INT((int)slices_for(m, input), 2);
        ((int64_t *)input->tensor.data)[6 * 3 + 1] = 12;
        ifd_value *a[MAX_OUTPUTS] = {0}, *w[MAX_OUTPUTS] = {0};
        ifd_error err_split, err_whole;
        const ifd_value *in[1] = {input};
        CHECK_EQ_INT(ifd_session_run(split, in, a, &err_split), IFD_ERR_RUNTIME);
        CHECK_EQ_INT(ifd_session_run(whole, in, w, &err_whole), IFD_ERR_RUNTIME);
        CHECK(a[0] == NULL);
        CHECK_STR_CONTAINS(err_split.message, "Gather node");
        CHECK_STR_CONTAINS(err_split.message, "index 12 is out of range");
        const char *second = strstr(err_split.message, "Gather node");
        CHECK(second && strstr(second + 1, "Gather node") == NULL);
        CHECK(strcmp(err_split.message, err_whole.message) == 0);
        ((int64_t *)input->tensor.data)[6 * 3 + 1] = 2;
        CHECK(run(split, input, a, &err_split));
        CHECK(run(whole, input, w, &err_whole));
        if (a[0] && w[0])
            CHECK(same_outputs(a, w, 1));
        free_outputs(a, 1);
        free_outputs(w, 1);
    }
    ifd_value_free(input);
    ifd_session_free(split);
    ifd_session_free(whole);
    ifd_model_free(m);
}

static void test_graph_opt_none_and_the_environment_keep_runs_whole(void)
{
    char reason[192];
    ifd_model *m = generated_model_load("digits_mlp/model.onnx", IFD_GRAPH_OPT_NONE);
    ifd_session *s = m ? session(m, 2, 0) : NULL;
    CHECK(s != NULL);
    if (s) {
        CHECK_EQ_INT(ifd_session_batch_split(s, reason, sizeof(reason)), 0);
        CHECK_STR_CONTAINS(reason, "graph optimisation none");
    }
    ifd_session_free(s);
    ifd_model_free(m);

    m = generated_model_load("digits_mlp/model.onnx", IFD_GRAPH_OPT_ALL);
    setenv("INFERD_BATCH_SPLIT", "off", 1);
    s = m ? session(m, 2, 0) : NULL;
    unsetenv("INFERD_BATCH_SPLIT");
    CHECK(s != NULL);
    if (s) {
        CHECK_EQ_INT(ifd_session_batch_split(s, reason, sizeof(reason)), 0);
        CHECK_STR_CONTAINS(reason, "INFERD_BATCH_SPLIT");
    }
    ifd_session_free(s);
    ifd_model_free(m);
}

/* A run whose outputs pass the session's tensor limit fails with that
 * reason and no outputs. (The slices' own tensors pass it too here, so
 * each slice fails on its own as well.) */
static void test_outputs_above_the_tensor_limit_are_refused(void)
{
    ifd_model *m = generated_model_load("digits_mlp/model.onnx", IFD_GRAPH_OPT_ALL);
    if (!m) {
        CHECK(m != NULL);
        return;
    }
    ifd_session_options options = {.threads = 2, .max_tensor_bytes = 64 * 10 * 4 - 1};
    ifd_session *s = NULL;
    ifd_error err;
    CHECK_EQ_INT(ifd_session_create(m, &options, &s, &err), IFD_OK);
    ifd_value *input = make_input(m, 64, 8);
    ifd_value *out[MAX_OUTPUTS] = {0};
    const ifd_value *in[1] = {input};
    if (s && input) {
        CHECK_EQ_INT(ifd_session_run(s, in, out, &err), IFD_ERR_RUNTIME);
        CHECK_STR_CONTAINS(err.message, "limit");
        CHECK(out[0] == NULL && out[1] == NULL);
    }
    ifd_value_free(input);
    ifd_session_free(s);
    ifd_model_free(m);
}

/* ---- micro-batches ------------------------------------------------------- */

/* The batch_split a `threads`-thread session of m makes (its micro-batch
 * rows and the slices of `input`), or false when it makes none. */
static bool micro_plan(const ifd_model *m, int threads, const ifd_value *input,
                       int64_t *micro_rows, size_t *slices)
{
    threadpool *pool = threadpool_create(threads);
    batch_split *split = NULL;
    char reason[320];
    ifd_error err;
    bool made = pool &&
                batch_split_create(m, NULL, pool, NULL, &split, reason, sizeof(reason), &err) ==
                    IFD_OK &&
                split;
    if (made) {
        const ifd_value *in[1] = {input};
        *micro_rows = batch_split_micro_rows(split);
        *slices = batch_split_slices(split, in);
    }
    batch_split_free(split);
    threadpool_free(pool);
    return made;
}

/* The caller makes the outputs after the other slices have started
 * (batch_split.c). When it cannot, a slice that has computed its rows must
 * not wait for them forever, nor write them anywhere: "embed"'s rows are
 * 1 KB, so under a limit of just below the whole batch's output every
 * slice's own tensors fit and only the outputs do not. Batch 8 copies its
 * slices' rows at their end, batch 64 hands its rows to the last operator
 * (32 KB a slice); batch 7 then fits, runs split, and gives the unsplit
 * run's outputs. */
static void test_outputs_that_cannot_be_made_fail_the_slices_that_wait_for_them(void)
{
    ifd_model *m = generated_model_load("embed", IFD_GRAPH_OPT_ALL);
    if (!m) {
        CHECK(m != NULL);
        return;
    }
    const int64_t row_bytes = 256 * 4;
    const int64_t batches[] = {8, 64};
    alarm(120); /* a slice left waiting hangs the run: fail instead */
    for (size_t b = 0; b < 2 * sizeof(batches) / sizeof(batches[0]); b++) {
        /* the second time each slice runs in micro-batches of 2 rows,
         * which are views of the outputs: it waits for them first */
        bool micro = b >= sizeof(batches) / sizeof(batches[0]);
        ifd_session_options options = {
            .threads = 2,
            .max_tensor_bytes = (size_t)(batches[b % 2] * row_bytes - 1)};
        ifd_session *s = NULL, *whole = session(m, 2, IFD_BATCH_SPLIT_OFF);
        ifd_value *input = make_input(m, batches[b % 2], 5), *fits = make_input(m, 7, 6);
        ifd_error err;
        int64_t micro_rows = -1;
        size_t slices = 0;
        if (micro)
            setenv("INFERD_MICRO_BATCH", "2", 1);
        CHECK_EQ_INT(ifd_session_create(m, &options, &s, &err), IFD_OK);
        CHECK(input && micro_plan(m, 2, input, &micro_rows, &slices));
        unsetenv("INFERD_MICRO_BATCH");
        CHECK_EQ_INT((int)micro_rows, micro ? 2 : 0);
        CHECK_EQ_INT((int)slices, 2);
        CHECK(s && whole && input && fits);
        if (s && whole && input && fits) {
            CHECK_EQ_INT((int)slices_for(m, fits), 2);
            for (int repeat = 0; repeat < 3; repeat++) {
                ifd_value *out[MAX_OUTPUTS] = {0}, *w[MAX_OUTPUTS] = {0};
                const ifd_value *in[1] = {input};
                CHECK_EQ_INT(ifd_session_run(s, in, out, &err), IFD_ERR_RUNTIME);
                CHECK_STR_CONTAINS(err.message, "above this session's limit");
                CHECK(out[0] == NULL);
                CHECK(run(s, fits, out, &err));
                CHECK(run(whole, fits, w, &err));
                if (out[0] && w[0])
                    CHECK(largest_difference(out, w, 1) <= 1e-5);
                free_outputs(out, 1);
                free_outputs(w, 1);
            }
        }
        ifd_value_free(input);
        ifd_value_free(fits);
        ifd_session_free(s);
        ifd_session_free(whole);
    }
    alarm(0);
    ifd_model_free(m);
}

/* A micro-batched run (the rule's k, or INFERD_MICRO_BATCH=forced when
 * forced >= 0) of `name` at `threads` threads: within 1e-5 of the whole
 * batch's unsplit run (bit for bit with the generic kernel), and each
 * micro-batch's rows bit for bit the unsplit run of those rows as a batch
 * of their own — on a one-thread session when the rows ran in a slice of
 * their own, else on a session of the same threads (Conv's image groups
 * follow the threads). Returns how many runs were cut into micro-batches. */
static size_t check_micro_batches(const char *name, int threads, int forced,
                                  const int64_t *batches, size_t n_batches)
{
    ifd_model *m = generated_model_load(name, IFD_GRAPH_OPT_ALL);
    CHECK(m != NULL);
    if (!m)
        return 0;
    char value[16];
    snprintf(value, sizeof(value), "%d", forced);
    if (forced >= 0)
        setenv("INFERD_MICRO_BATCH", value, 1);
    ifd_session *micro = session(m, threads, 0), *whole = session(m, threads, IFD_BATCH_SPLIT_OFF),
                *one = session(m, 1, IFD_BATCH_SPLIT_OFF);
    CHECK(micro && whole && one);
    char reason[320];
    CHECK_EQ_INT(micro && ifd_session_batch_split(micro, reason, sizeof(reason)), 1);
    CHECK_STR_CONTAINS(reason, "micro-batches of");
    bool exact = strcmp(gemm_kernel_name(), "generic") == 0;
    size_t n_out = ifd_model_output_count(m), cut = 0;
    for (size_t b = 0; micro && whole && one && b < n_batches; b++) {
        ifd_value *input = make_input(m, batches[b], 31 + (uint32_t)b);
        int64_t k = 0;
        size_t slices = 0;
        CHECK(micro_plan(m, threads, input, &k, &slices));
        if (forced >= 0)
            CHECK_EQ_INT((int)k, forced);
        CHECK(k >= 1);
        for (int repeat = 0; k >= 1 && repeat < 2; repeat++) {
            ifd_value *a[MAX_OUTPUTS] = {0}, *w[MAX_OUTPUTS] = {0};
            ifd_error err;
            CHECK(run(micro, input, a, &err));
            CHECK(run(whole, input, w, &err));
            if (!a[0] || !w[0]) {
                free_outputs(a, n_out);
                free_outputs(w, n_out);
                break;
            }
            double diff = largest_difference(a, w, n_out);
            if (diff > 1e-5)
                fprintf(stderr, "  %s %d threads batch %lld: micro-batches differ by %g\n",
                        name, threads, (long long)batches[b], diff);
            CHECK(diff <= 1e-5);
            if (exact)
                CHECK(same_outputs(a, w, n_out));
            /* slices (one, the whole batch, when not cut over threads), then
             * each slice's micro-batches */
            size_t n_slices = slices >= 1 ? slices : 1;
            ifd_session *ref = slices >= 2 || threads == 1 ? one : whole;
            for (size_t i = 0; i < n_slices; i++) {
                int64_t s0, srows;
                batch_split_rows(batches[b], n_slices, i, &s0, &srows);
                size_t runs = slices >= 1 && srows > k ? (size_t)((srows + k - 1) / k) : 1;
                cut += repeat == 0 && runs > 1;
                for (size_t r = 0; r < runs; r++) {
                    int64_t r0, rows;
                    batch_split_rows(srows, runs, r, &r0, &rows);
                    CHECK(rows <= k || runs == 1);
                    ifd_value *part = copy_rows(input, s0 + r0, rows), *p[MAX_OUTPUTS] = {0};
                    CHECK(part && run(ref, part, p, &err));
                    bool same = p[0] && same_rows(a, p, n_out, s0 + r0, rows);
                    if (!same)
                        fprintf(stderr, "  %s %d threads batch %lld: rows %lld+%lld differ from "
                                "their own run\n", name, threads, (long long)batches[b],
                                (long long)(s0 + r0), (long long)rows);
                    CHECK(same);
                    free_outputs(p, n_out);
                    ifd_value_free(part);
                }
            }
            free_outputs(a, n_out);
            free_outputs(w, n_out);
        }
        ifd_value_free(input);
    }
    unsetenv("INFERD_MICRO_BATCH");
    ifd_session_free(micro);
    ifd_session_free(whole);
    ifd_session_free(one);
    ifd_model_free(m);
    return cut;
}

/* The digits CNN, forced into micro-batches of 3 rows (k not dividing the
 * batches: 8 runs as 3 + 3 + 2, 65 over two threads as 33 and 32 rows,
 * each in runs of 3 or fewer). */
static void test_digits_cnn_micro_batches_are_the_unsplit_runs_of_their_rows(void)
{
    const int64_t batches[] = {1, 2, 3, 4, 8, 9, 65};
    CHECK(check_micro_batches("digits_cnn/model.onnx", 1, 3, batches, 7) > 0);
    CHECK(check_micro_batches("digits_cnn/model.onnx", 2, 3, batches, 7) > 0);
}

/* Too little work a row to cut over two threads (the embedding model,
 * 49K multiply-adds a row: batch 2 is one slice), forced into micro-batches
 * of 1: the owning session runs them with both threads. */
static void test_micro_batches_of_an_unsliced_run_run_on_the_owner(void)
{
    const int64_t batches[] = {2, 3};
    ifd_model *m = generated_model_load("embed", IFD_GRAPH_OPT_ALL);
    ifd_value *input = m ? make_input(m, 2, 1) : NULL;
    int64_t k = -1;
    size_t slices = 0;
    setenv("INFERD_MICRO_BATCH", "1", 1);
    CHECK(input && micro_plan(m, 2, input, &k, &slices));
    unsetenv("INFERD_MICRO_BATCH");
    CHECK_EQ_INT((int)k, 1);
    CHECK_EQ_INT((int)slices, 1);
    ifd_value_free(input);
    ifd_model_free(m);
    CHECK(check_micro_batches("embed", 2, 1, batches, 2) > 0);
}

/* A model whose activations outweigh its weights is micro-batched by the
 * rule itself, at one thread and in each slice at two. */
static void test_wide_cnn_is_micro_batched_by_the_rule(void)
{
    const int64_t batches[] = {1, 3, 5, 8};
    CHECK(check_micro_batches("wide_cnn", 1, -1, batches, 4) > 0);
    CHECK(check_micro_batches("wide_cnn", 2, -1, batches, 4) > 0);
}

/* Models whose weights outweigh a row's activations (the digits MLP and
 * CNN; ResNet-18 among the bench models) keep whole batches: at one thread
 * no split at all, at two slices that run whole. */
static void test_models_with_heavier_weights_than_activations_stay_whole(void)
{
    const char *names[] = {"digits_mlp/model.onnx", "digits_cnn/model.onnx", "static_mlp"};
    for (size_t i = 0; i < 3; i++) {
        ifd_model *m = generated_model_load(names[i], IFD_GRAPH_OPT_ALL);
        CHECK(m != NULL);
        if (!m)
            continue;
        char reason[320];
        ifd_session *one = session(m, 1, 0), *two = session(m, 2, 0);
        CHECK(one && two);
        if (one && two) {
            CHECK_EQ_INT(ifd_session_batch_split(one, reason, sizeof(reason)), 0);
            CHECK_STR_CONTAINS(reason, "batches stay whole");
            CHECK_EQ_INT(ifd_session_batch_split(two, reason, sizeof(reason)), 1);
            CHECK_STR_CONTAINS(reason, "batches stay whole");
        }
        ifd_value *input = make_input(m, 9, 4);
        int64_t k = -1;
        size_t slices = 0;
        CHECK(input && micro_plan(m, 2, input, &k, &slices));
        CHECK_EQ_INT((int)k, 0);
        ifd_value_free(input);
        ifd_session_free(one);
        ifd_session_free(two);
        ifd_model_free(m);
    }
}

/* INFERD_BATCH_SPLIT=off and the session option turn micro-batches off
 * too: the run is then one whole batch. */
static void test_batch_split_off_turns_micro_batches_off(void)
{
    ifd_model *m = generated_model_load("wide_cnn", IFD_GRAPH_OPT_ALL);
    CHECK(m != NULL);
    if (!m)
        return;
    char reason[320];
    setenv("INFERD_BATCH_SPLIT", "off", 1);
    ifd_session *env = session(m, 1, 0);
    unsetenv("INFERD_BATCH_SPLIT");
    ifd_session *option = session(m, 1, IFD_BATCH_SPLIT_OFF), *on = session(m, 1, 0);
    CHECK(env && option && on);
    if (env && option && on) {
        CHECK_EQ_INT(ifd_session_batch_split(env, reason, sizeof(reason)), 0);
        CHECK_STR_CONTAINS(reason, "INFERD_BATCH_SPLIT");
        CHECK_EQ_INT(ifd_session_batch_split(option, reason, sizeof(reason)), 0);
        CHECK_STR_CONTAINS(reason, "session option");
        CHECK_EQ_INT(ifd_session_batch_split(on, reason, sizeof(reason)), 1);
    }
    ifd_session_free(env);
    ifd_session_free(option);
    ifd_session_free(on);
    ifd_model_free(m);
}

/* A bad id in row 6 of 8, in micro-batches of 2 at one thread: the run
 * fails with the whole run's message, once; the session then runs good
 * batches again. */
static void test_an_error_in_one_micro_batch_fails_the_run_once(void)
{
    ifd_model *m = generated_model_load("embed", IFD_GRAPH_OPT_ALL);
    CHECK(m != NULL);
    if (!m)
        return;
    setenv("INFERD_MICRO_BATCH", "2", 1);
    ifd_session *micro = session(m, 1, 0);
    unsetenv("INFERD_MICRO_BATCH");
    ifd_session *whole = session(m, 1, IFD_BATCH_SPLIT_OFF);
    ifd_value *input = make_input(m, 8, 3);
    CHECK(micro && whole && input);
    if (micro && whole && input) {
        CHECK_EQ_INT(ifd_session_batch_split(micro, NULL, 0), 1);
        ((int64_t *)input->tensor.data)[6 * 3 + 1] = 12;
        ifd_value *a[MAX_OUTPUTS] = {0}, *w[MAX_OUTPUTS] = {0};
        ifd_error err_micro, err_whole;
        const ifd_value *in[1] = {input};
        CHECK_EQ_INT(ifd_session_run(micro, in, a, &err_micro), IFD_ERR_RUNTIME);
        CHECK_EQ_INT(ifd_session_run(whole, in, w, &err_whole), IFD_ERR_RUNTIME);
        CHECK(a[0] == NULL);
        CHECK(strcmp(err_micro.message, err_whole.message) == 0);
        ((int64_t *)input->tensor.data)[6 * 3 + 1] = 2;
        CHECK(run(micro, input, a, &err_micro));
        CHECK(run(whole, input, w, &err_whole));
        CHECK(a[0] && w[0] && largest_difference(a, w, 1) <= 1e-5);
        free_outputs(a, 1);
        free_outputs(w, 1);
    }
    ifd_value_free(input);
    ifd_session_free(micro);
    ifd_session_free(whole);
    ifd_model_free(m);
}

int main(void)
{
    if (!generated_models_make("gen_batch_split_models.py", "batch-split")) {
        fprintf(stderr, "skipping: tools/gen_batch_split_models.py failed (needs Debian's "
                        "python3 with onnx and torch)\n");
        generated_models_remove();
        return 77;
    }
    RUN(test_digits_mlp_split_rows_are_the_unsplit_runs_of_each_slice);
    RUN(test_digits_cnn_split_rows_are_the_unsplit_runs_of_each_slice);
    RUN(test_embedding_and_static_batch_models_split_by_rows);
    RUN(test_batch_nine_runs_as_two_slices_of_five_and_four_rows);
    RUN(test_slices_are_only_cut_where_each_carries_enough_work);
    RUN(test_models_with_a_node_that_mixes_rows_are_not_split);
    RUN(test_an_error_in_one_slice_fails_the_run_once);
    RUN(test_graph_opt_none_and_the_environment_keep_runs_whole);
    RUN(test_outputs_above_the_tensor_limit_are_refused);
    RUN(test_outputs_that_cannot_be_made_fail_the_slices_that_wait_for_them);
    RUN(test_digits_cnn_micro_batches_are_the_unsplit_runs_of_their_rows);
    RUN(test_micro_batches_of_an_unsliced_run_run_on_the_owner);
    RUN(test_wide_cnn_is_micro_batched_by_the_rule);
    RUN(test_models_with_heavier_weights_than_activations_stay_whole);
    RUN(test_batch_split_off_turns_micro_batches_off);
    RUN(test_an_error_in_one_micro_batch_fails_the_run_once);
    generated_models_remove();
    TEST_MAIN_END();
}
