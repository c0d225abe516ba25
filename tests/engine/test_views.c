/*
 * test_views.c — Reshape-family outputs as views of their input's buffer
 * (arena_plan.c plan_views, session.c op_output_view), on models written by
 * tools/gen_view_models.py with Debian's python. The planner must make the
 * views it promises and never a graph output one, and the outputs must be
 * right where a view could go wrong: its input is also a graph output the
 * caller gets, and its input's last direct reader runs before the view's
 * readers, with a new tensor of the same size written in between (which, if
 * the input's buffer went back to the pool or its arena range ended there,
 * would land on the viewed bytes). Each model with the batch axis open
 * (pool buffers) and fixed (arena), at --graph-opt none and all, run twice
 * at batch 3 and once at batch 5 where it is open.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inferd/inferd.h"
#include "model.h"
#include "generated_models.h"
#include "test.h"

#define CELLS 24 /* 4 x 6 per batch row */

static int slot_named(const ifd_model *m, const char *name)
{
    for (size_t v = 0; v < m->n_values; v++)
        if (m->values[v].info.name && strcmp(m->values[v].info.name, name) == 0)
            return (int)v;
    return -1;
}

static bool is_view(const ifd_model *m, const char *name)
{
    int slot = slot_named(m, name);
    return slot >= 0 && m->view_of && m->view_of[slot] >= 0;
}

/* x [batch, 4, 6]: signed values, so that Relu zeroes some. */
static ifd_value *make_input(int64_t batch, uint32_t seed)
{
    int64_t dims[3] = {batch, 4, 6};
    ifd_value *v = NULL;
    ifd_error err;
    if (ifd_value_new_tensor(IFD_FLOAT, 3, dims, &v, &err) != IFD_OK)
        return NULL;
    float *x = v->tensor.data;
    for (int64_t i = 0; i < batch * CELLS; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)((seed >> 8) / 16777216.0 * 4.0 - 2.0);
    }
    return v;
}

static bool run(ifd_session *s, const ifd_value *x, ifd_value **out)
{
    ifd_error err;
    const ifd_value *in[1] = {x};
    if (ifd_session_run(s, in, out, &err) != IFD_OK) {
        fprintf(stderr, "run: %s\n", err.message);
        return false;
    }
    return true;
}

/* How many of n elements of got differ from want (rtol 1e-6). */
static int64_t mismatches(const ifd_value *got, const float *want, int64_t n)
{
    if (!got || got->kind != IFD_VALUE_TENSOR || ifd_tensor_count(&got->tensor) != n)
        return n ? n : 1;
    const float *p = got->tensor.data;
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++)
        bad += !(fabsf(p[i] - want[i]) <= 1e-6f * (1.0f + fabsf(want[i])));
    return bad;
}

static const char *const variants[] = {"dynamic", "static"};
static const ifd_graph_opt levels[] = {IFD_GRAPH_OPT_NONE, IFD_GRAPH_OPT_ALL};

static void test_reshape_of_a_graph_output_is_a_view_and_both_outputs_are_right(void)
{
    for (int v = 0; v < 2; v++)
        for (int l = 0; l < 2; l++) {
            char name[64];
            snprintf(name, sizeof(name), "view_of_output_%s", variants[v]);
            ifd_model *m = generated_model_load(name, levels[l]);
            ifd_session *s = NULL;
            ifd_error err;
            CHECK(m != NULL);
            if (!m)
                continue;
            /* r is read by Neg only: a view; f is a graph output: a copy */
            CHECK(is_view(m, "r"));
            CHECK(!is_view(m, "f"));
            CHECK(!is_view(m, "a"));
            CHECK_EQ_INT(ifd_session_create(m, NULL, &s, &err), IFD_OK);
            int64_t batches[3] = {3, 3, v == 0 ? 5 : 3};
            for (int r = 0; s && r < 3; r++) {
                int64_t n = batches[r] * CELLS;
                ifd_value *x = make_input(batches[r], 7u + (uint32_t)r), *out[3] = {0};
                float *relu = malloc((size_t)n * sizeof(float)), *neg = malloc((size_t)n * sizeof(float));
                CHECK(x && relu && neg);
                if (x && relu && neg && run(s, x, out)) {
                    const float *xs = x->tensor.data;
                    for (int64_t i = 0; i < n; i++) {
                        relu[i] = xs[i] > 0 ? xs[i] : 0;
                        neg[i] = -relu[i];
                    }
                    CHECK_EQ_INT(mismatches(out[0], relu, n), 0);
                    CHECK_EQ_INT(mismatches(out[1], neg, n), 0);
                    CHECK_EQ_INT(mismatches(out[2], relu, n), 0);
                    /* each output is the caller's own buffer */
                    CHECK(out[0] && out[2] && out[0]->tensor.data != out[2]->tensor.data);
                    CHECK(out[0] && out[1] && out[0]->tensor.data != out[1]->tensor.data);
                    if (out[1]) {
                        CHECK_EQ_INT(out[1]->tensor.rank, 2);
                        CHECK_EQ_INT(out[1]->tensor.dims[0], batches[r]);
                    }
                }
                for (int k = 0; k < 3; k++)
                    ifd_value_free(out[k]);
                ifd_value_free(x);
                free(relu);
                free(neg);
            }
            ifd_session_free(s);
            ifd_model_free(m);
        }
}

static void test_view_keeps_its_input_alive_past_the_input_s_last_reader(void)
{
    for (int v = 0; v < 2; v++)
        for (int l = 0; l < 2; l++) {
            char name[64];
            snprintf(name, sizeof(name), "view_outlives_input_%s", variants[v]);
            ifd_model *m = generated_model_load(name, levels[l]);
            ifd_session *s = NULL;
            ifd_error err;
            CHECK(m != NULL);
            if (!m)
                continue;
            if (levels[l] == IFD_GRAPH_OPT_NONE) {
                /* the chain Reshape -> Unsqueeze -> Squeeze all view Relu's a */
                int a = slot_named(m, "a");
                CHECK(is_view(m, "r") && is_view(m, "u") && is_view(m, "s"));
                if (m->view_of && a >= 0) {
                    CHECK_EQ_INT(m->view_of[slot_named(m, "s")], a);
                    /* a's buffer lives until Add, s's reader, not until Neg */
                    CHECK_EQ_INT(m->buffer_last_use[a], m->values[slot_named(m, "y")].producer);
                    CHECK(m->values[a].last_use < m->buffer_last_use[a]);
                }
            }
            CHECK_EQ_INT(ifd_session_create(m, NULL, &s, &err), IFD_OK);
            int64_t batches[3] = {3, 3, v == 0 ? 5 : 3};
            for (int r = 0; s && r < 3; r++) {
                int64_t n = batches[r] * CELLS;
                ifd_value *x = make_input(batches[r], 11u + (uint32_t)r), *out[1] = {0};
                float *want = malloc((size_t)n * sizeof(float));
                CHECK(x && want);
                if (x && want && run(s, x, out)) {
                    const float *xs = x->tensor.data;
                    for (int64_t i = 0; i < n; i++) {
                        float a = xs[i] > 0 ? xs[i] : 0;
                        want[i] = a + 1.0f / (1.0f + expf(-expf(-a)));
                    }
                    int64_t bad = mismatches(out[0], want, n);
                    if (bad)
                        fprintf(stderr, "%s at level %d, run %d: %lld of %lld wrong\n", name,
                                (int)levels[l], r, (long long)bad, (long long)n);
                    CHECK_EQ_INT(bad, 0);
                }
                ifd_value_free(out[0]);
                ifd_value_free(x);
                free(want);
            }
            ifd_session_free(s);
            ifd_model_free(m);
        }
}

int main(void)
{
    if (!generated_models_make("gen_view_models.py", "views")) {
        fprintf(stderr, "tools/gen_view_models.py failed (needs /usr/bin/python3 with onnx)\n");
        return 1;
    }
    RUN(test_reshape_of_a_graph_output_is_a_view_and_both_outputs_are_right);
    RUN(test_view_keeps_its_input_alive_past_the_input_s_last_reader);
    generated_models_remove();
    TEST_MAIN_END();
}
