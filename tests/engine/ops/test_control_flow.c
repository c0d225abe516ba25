/*
 * test_control_flow.c — If, Loop and Scan run through the public API on real
 * model files written by fuzz/make_seeds.py: a Loop whose body holds an If
 * that reads a value of the main graph two levels up (outer scope), with
 * loop-carried state and a scan output, checked against the arithmetic done
 * here by hand; the session's loop limit; a negative trip count at run time;
 * reusing one session (its child sessions) for several runs; a Scan.
 */
#include <stdlib.h>
#include <string.h>

#include "inferd/inferd.h"
#include "test.h"

#define SEEDS INFERD_SOURCE_DIR "/fuzz/seeds/model_load/"

static ifd_value *tensor_f32(int rank, const int64_t *dims, const float *data)
{
    ifd_value *v;
    ifd_error err;
    if (ifd_value_new_tensor(IFD_FLOAT, rank, dims, &v, &err) != IFD_OK)
        return NULL;
    int64_t n = 1;
    for (int i = 0; i < rank; i++)
        n *= dims[i];
    memcpy(v->tensor.data, data, (size_t)n * sizeof(float));
    return v;
}

static ifd_value *scalar(ifd_dtype dtype, int64_t value)
{
    ifd_value *v;
    ifd_error err;
    if (ifd_value_new_tensor(dtype, 0, NULL, &v, &err) != IFD_OK)
        return NULL;
    if (dtype == IFD_INT64)
        *(int64_t *)v->tensor.data = value;
    else
        *(uint8_t *)v->tensor.data = (uint8_t)value;
    return v;
}

/* Runs loop_nested_if_outer_scope.onnx with trip count m, cond true, acc0 0
 * and step (1, 2, 3). */
static ifd_status run_loop(ifd_session *s, int64_t m, ifd_value **out, ifd_error *err)
{
    int64_t d3[1] = {3};
    float zeros[3] = {0, 0, 0}, step[3] = {1, 2, 3};
    ifd_value *in[4] = {scalar(IFD_INT64, m), scalar(IFD_BOOL, 1), tensor_f32(1, d3, zeros),
                        tensor_f32(1, d3, step)};
    ifd_status st = ifd_session_run(s, (const ifd_value *const *)in, out, err);
    for (int i = 0; i < 4; i++)
        ifd_value_free(in[i]);
    return st;
}

static ifd_model *load(const char *name)
{
    ifd_model *m = NULL;
    ifd_error err;
    if (ifd_model_load_file(name, NULL, &m, &err) != IFD_OK)
        fprintf(stderr, "  %s\n", err.message);
    return m;
}

static void test_loop_with_nested_if_reads_outer_scope_and_carries_state(void)
{
    ifd_model *m = load(SEEDS "loop_nested_if_outer_scope.onnx");
    CHECK(m != NULL);
    if (!m)
        return;
    ifd_session *s = NULL;
    ifd_error err;
    CHECK_EQ_INT(ifd_session_create(m, NULL, &s, &err), IFD_OK);
    /* by hand: acc += step while every i < step, else acc -= step;
     * scan_out = acc * i */
    float acc[3] = {0, 0, 0}, step[3] = {1, 2, 3}, scanned[5][3];
    for (int i = 0; i < 5; i++) {
        int first = i < 1 && i < 2 && i < 3;
        for (int k = 0; k < 3; k++) {
            acc[k] += first ? step[k] : -step[k];
            scanned[i][k] = acc[k] * (float)i;
        }
    }
    for (int run = 0; run < 2 && s; run++) { /* the second run reuses the child sessions */
        ifd_value *out[2] = {NULL, NULL};
        CHECK_EQ_INT(run_loop(s, 5, out, &err), IFD_OK);
        if (!out[0] || !out[1]) {
            fprintf(stderr, "  %s\n", err.message);
            continue;
        }
        CHECK_EQ_INT(out[0]->tensor.rank, 1);
        for (int k = 0; k < 3; k++)
            CHECK_NEAR(((float *)out[0]->tensor.data)[k], acc[k], 1e-6);
        CHECK_EQ_INT(out[1]->tensor.rank, 2);
        CHECK_EQ_INT(out[1]->tensor.dims[0], 5);
        CHECK_EQ_INT(out[1]->tensor.dims[1], 3);
        for (int i = 0; i < 5 * 3 && out[1]->tensor.rank == 2; i++)
            CHECK_NEAR(((float *)out[1]->tensor.data)[i], scanned[i / 3][i % 3], 1e-6);
        ifd_value_free(out[0]);
        ifd_value_free(out[1]);
    }
    ifd_session_free(s);
    ifd_model_free(m);
}

static void test_loop_limit_and_negative_trip_count_fail_naming_the_node(void)
{
    ifd_model *m = load(SEEDS "loop_nested_if_outer_scope.onnx");
    if (!m) {
        CHECK(m != NULL);
        return;
    }
    ifd_session_options options = {.threads = 1, .max_loop_iterations = 3};
    ifd_session *s = NULL;
    ifd_error err;
    ifd_value *out[2] = {NULL, NULL};
    CHECK_EQ_INT(ifd_session_create(m, &options, &s, &err), IFD_OK);
    CHECK_EQ_INT(run_loop(s, 3, out, &err), IFD_OK); /* at the limit: fine */
    ifd_value_free(out[0]);
    ifd_value_free(out[1]);
    CHECK_EQ_INT(run_loop(s, 4, out, &err), IFD_ERR_RUNTIME);
    CHECK_STR_CONTAINS(err.message, "Loop node '': stopped after 3 iterations, this session's limit");
    CHECK(out[0] == NULL && out[1] == NULL);
    CHECK_EQ_INT(run_loop(s, -1, out, &err), IFD_ERR_RUNTIME);
    CHECK_STR_CONTAINS(err.message, "trip count M is negative (-1)");
    ifd_session_free(s);
    ifd_model_free(m);
}

static void test_scan_runs_reversed_with_output_axis_1(void)
{
    ifd_model *m = load(SEEDS "scan.onnx");
    if (!m) {
        CHECK(m != NULL);
        return;
    }
    ifd_session *s = NULL;
    ifd_error err;
    CHECK_EQ_INT(ifd_session_create(m, NULL, &s, &err), IFD_OK);
    int64_t d2[1] = {2}, d32[2] = {3, 2};
    float s0[2] = {0, 0}, xs[6] = {1, 2, 3, 4, 5, 6};
    ifd_value *in[2] = {tensor_f32(1, d2, s0), tensor_f32(2, d32, xs)};
    ifd_value *out[2] = {NULL, NULL};
    CHECK_EQ_INT(ifd_session_run(s, (const ifd_value *const *)in, out, &err), IFD_OK);
    if (out[0] && out[1]) {
        /* reversed: rows (5,6), (3,4), (1,2); running sums (5,6) (8,10) (9,12);
         * stacked on axis 1: ys[c][t] */
        float sums[3][2] = {{5, 6}, {8, 10}, {9, 12}};
        CHECK_NEAR(((float *)out[0]->tensor.data)[0], 9, 0);
        CHECK_NEAR(((float *)out[0]->tensor.data)[1], 12, 0);
        CHECK_EQ_INT(out[1]->tensor.dims[0], 2);
        CHECK_EQ_INT(out[1]->tensor.dims[1], 3);
        for (int c = 0; c < 2; c++)
            for (int t = 0; t < 3; t++)
                CHECK_NEAR(((float *)out[1]->tensor.data)[c * 3 + t], sums[t][c], 0);
    } else {
        fprintf(stderr, "  %s\n", err.message);
    }
    for (int i = 0; i < 2; i++) {
        ifd_value_free(in[i]);
        ifd_value_free(out[i]);
    }
    ifd_session_free(s);
    ifd_model_free(m);
}

int main(void)
{
    RUN(test_loop_with_nested_if_reads_outer_scope_and_carries_state);
    RUN(test_loop_limit_and_negative_trip_count_fail_naming_the_node);
    RUN(test_scan_runs_reversed_with_output_axis_1);
    TEST_MAIN_END();
}
