/*
 * test_session_profile.c — ifd_session_profile: a session made with
 * options.profile times every node of the prepared graph; the times add up
 * to no more than the runs took, a split run counts each slice, reset
 * starts over, and a session made without it reports nothing.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "generated_models.h"
#include "inferd/inferd.h"
#include "test.h"

/* The digits MLP's input with `batch` rows of a fixed pattern. */
static ifd_value *digits_input(const ifd_model *m, int64_t batch)
{
    const ifd_io_info *in = ifd_model_input(m, 0);
    int64_t dims[2] = {batch, in->type.dims[1]};
    ifd_value *v = NULL;
    ifd_error err;
    if (ifd_value_new_tensor(IFD_FLOAT, 2, dims, &v, &err) != IFD_OK)
        return NULL;
    for (int64_t i = 0; i < ifd_tensor_count(&v->tensor); i++)
        ((float *)v->tensor.data)[i] = (float)(i % 17) * 0.25f;
    return v;
}

/* A session of the digits MLP at `level` and an input of `batch` rows. */
typedef struct fixture {
    ifd_model *m;
    ifd_session *s;
    ifd_value *input;
} fixture;

static void fixture_close(fixture *f)
{
    ifd_value_free(f->input);
    ifd_session_free(f->s);
    ifd_model_free(f->m);
}

static bool fixture_open(fixture *f, ifd_graph_opt level, int threads, int profile, int64_t batch)
{
    f->m = generated_model_load("digits_mlp/model.onnx", level);
    f->s = f->m ? generated_session(f->m,
                                    (ifd_session_options){.threads = threads, .profile = profile})
                : NULL;
    f->input = f->m ? digits_input(f->m, batch) : NULL;
    CHECK(f->s && f->input);
    return f->s && f->input;
}

static bool run_once(ifd_session *s, const ifd_value *input)
{
    const ifd_value *in[1] = {input};
    ifd_value *out[4] = {0};
    ifd_error err;
    bool ok = ifd_session_run(s, in, out, &err) == IFD_OK;
    if (!ok)
        fprintf(stderr, "run: %s\n", err.message);
    for (size_t k = 0; k < 4; k++)
        ifd_value_free(out[k]);
    return ok;
}

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void test_every_node_is_timed_within_the_runs_wall_time(void)
{
    fixture f = {0};
    if (fixture_open(&f, IFD_GRAPH_OPT_ALL, 1, 1, 3)) {
        ifd_model *m = f.m;
        ifd_session *s = f.s;
        const ifd_value *input = f.input;
        uint64_t started = now_ns();
        for (int r = 0; r < 3; r++)
            CHECK(run_once(s, input));
        uint64_t wall = now_ns() - started;
        /* the prepared graph's nodes: its Relus went into the Gemms */
        size_t count = ifd_session_profile(s, NULL, 0);
        CHECK(count < ifd_model_node_count(m));
        ifd_node_profile nodes[16];
        CHECK(count >= 2 && count <= 16);
        CHECK_EQ_INT((int)ifd_session_profile(s, nodes, 16), (int)count);
        uint64_t sum = 0;
        for (size_t i = 0; i < count && i < 16; i++) {
            CHECK_EQ_INT((int)nodes[i].runs, 3);
            CHECK(nodes[i].total_ns > 0);
            CHECK(nodes[i].name[0] != '\0');
            sum += nodes[i].total_ns;
        }
        CHECK(sum <= wall);
        /* the MLP's graph: its products first, the Softmax last */
        CHECK_STR_CONTAINS(nodes[0].op_type, "Gemm");
        CHECK_STR_CONTAINS(nodes[count - 1].op_type, "Softmax");

        /* fewer entries than nodes: those filled, the count returned */
        ifd_node_profile first = {0};
        CHECK_EQ_INT((int)ifd_session_profile(s, &first, 1), (int)count);
        CHECK(strcmp(first.name, nodes[0].name) == 0 && first.runs == 3);

        ifd_session_profile_reset(s);
        ifd_session_profile(s, nodes, 16);
        CHECK(nodes[0].runs == 0 && nodes[0].total_ns == 0);
        CHECK(run_once(s, input));
        ifd_session_profile(s, nodes, 16);
        CHECK(nodes[0].runs == 1 && nodes[count - 1].runs == 1);
    }
    fixture_close(&f);
}

/* Unoptimised, the profile has the file's nodes. */
static void test_graph_opt_none_profiles_the_files_nodes(void)
{
    fixture f = {0};
    if (fixture_open(&f, IFD_GRAPH_OPT_NONE, 1, 1, 2)) {
        CHECK(run_once(f.s, f.input));
        ifd_node_profile nodes[16];
        size_t count = ifd_session_profile(f.s, nodes, 16);
        CHECK_EQ_INT((int)count, (int)ifd_model_node_count(f.m));
        int relus = 0;
        for (size_t i = 0; i < count && i < 16; i++) {
            CHECK_EQ_INT((int)nodes[i].runs, 1);
            relus += strcmp(nodes[i].op_type, "Relu") == 0;
        }
        CHECK_EQ_INT(relus, 2);
    }
    fixture_close(&f);
}

/* A batch cut over two threads runs every node once in each slice; a batch
 * too small to cut runs each once on the owner. */
static void test_a_split_run_counts_each_slice(void)
{
    fixture f = {0};
    ifd_value *one = NULL;
    if (fixture_open(&f, IFD_GRAPH_OPT_ALL, 2, 1, 64) && (one = digits_input(f.m, 1))) {
        ifd_session *s = f.s;
        const ifd_value *big = f.input;
        CHECK_EQ_INT(ifd_session_batch_split(s, NULL, 0), 1);
        CHECK(run_once(s, big));
        ifd_node_profile nodes[16];
        size_t count = ifd_session_profile(s, nodes, 16);
        CHECK(count >= 2 && count <= 16);
        for (size_t i = 0; i < count && i < 16; i++) {
            CHECK_EQ_INT((int)nodes[i].runs, 2);
            CHECK(nodes[i].total_ns > 0);
        }
        CHECK(run_once(s, one));
        ifd_session_profile(s, nodes, 16);
        CHECK_EQ_INT((int)nodes[0].runs, 3);
        ifd_session_profile_reset(s);
        ifd_session_profile(s, nodes, 16);
        CHECK_EQ_INT((int)nodes[0].runs, 0);
        CHECK(run_once(s, big));
        ifd_session_profile(s, nodes, 16);
        CHECK_EQ_INT((int)nodes[0].runs, 2);
    }
    ifd_value_free(one);
    fixture_close(&f);
}

static void test_a_session_made_without_profile_reports_nothing(void)
{
    fixture f = {0};
    if (fixture_open(&f, IFD_GRAPH_OPT_ALL, 2, 0, 8)) {
        CHECK(run_once(f.s, f.input));
        ifd_node_profile node = {.runs = 42};
        CHECK_EQ_INT((int)ifd_session_profile(f.s, &node, 1), 0);
        CHECK_EQ_INT((int)node.runs, 42);
        ifd_session_profile_reset(f.s); /* nothing to reset: harmless */
    }
    fixture_close(&f);
}

int main(void)
{
    if (!generated_models_make("gen_batch_split_models.py", "session-profile")) {
        fprintf(stderr, "skipping: tools/gen_batch_split_models.py failed (needs Debian's "
                        "python3 with onnx and torch)\n");
        generated_models_remove();
        return 77;
    }
    RUN(test_every_node_is_timed_within_the_runs_wall_time);
    RUN(test_graph_opt_none_profiles_the_files_nodes);
    RUN(test_a_split_run_counts_each_slice);
    RUN(test_a_session_made_without_profile_reports_nothing);
    generated_models_remove();
    TEST_MAIN_END();
}
