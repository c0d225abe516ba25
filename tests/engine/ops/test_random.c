/*
 * test_random.c — the random generators (ops/random.c) through the public
 * API on fuzz/seeds/model_load/random_generators.onnx (written by
 * fuzz/make_seeds.py): a seeded node gives the same draws on every run and
 * in every session; an unseeded one differs between runs; and the draws
 * have the distribution asked for (uniform range and mean, normal mean and
 * spread, Bernoulli frequency, Multinomial class frequencies), over 20,000
 * samples with bounds far outside sampling noise (> 6 sigma).
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inferd/inferd.h"
#include "test.h"

#define SEEDS INFERD_SOURCE_DIR "/fuzz/seeds/model_load/"
#define N 20000

enum { OUT_UNIFORM, OUT_NORMAL, OUT_FREE, OUT_BERNOULLI, OUT_MULTINOMIAL, N_OUT };

static ifd_model *load(const char *name)
{
    ifd_model *m = NULL;
    ifd_error err;
    if (ifd_model_load_file(name, NULL, &m, &err) != IFD_OK)
        fprintf(stderr, "  %s\n", err.message);
    return m;
}

/* p = 0.3 everywhere; logits = log(0.1, 0.2, 0.7). */
static int run(ifd_session *s, ifd_value **out)
{
    ifd_value *in[2] = {NULL, NULL};
    ifd_error err;
    int64_t dp[1] = {N}, dl[2] = {1, 3};
    if (ifd_value_new_tensor(IFD_FLOAT, 1, dp, &in[0], &err) != IFD_OK ||
        ifd_value_new_tensor(IFD_FLOAT, 2, dl, &in[1], &err) != IFD_OK)
        return -1;
    for (int i = 0; i < N; i++)
        ((float *)in[0]->tensor.data)[i] = 0.3f;
    float probs[3] = {0.1f, 0.2f, 0.7f};
    for (int i = 0; i < 3; i++)
        ((float *)in[1]->tensor.data)[i] = logf(probs[i]);
    ifd_status st = ifd_session_run(s, (const ifd_value *const *)in, out, &err);
    if (st != IFD_OK)
        fprintf(stderr, "  %s\n", err.message);
    ifd_value_free(in[0]);
    ifd_value_free(in[1]);
    return st == IFD_OK ? 0 : -1;
}

static void free_outputs(ifd_value **out)
{
    for (int i = 0; i < N_OUT; i++) {
        ifd_value_free(out[i]);
        out[i] = NULL;
    }
}

static bool same_bytes(const ifd_value *a, const ifd_value *b, size_t bytes)
{
    return memcmp(a->tensor.data, b->tensor.data, bytes) == 0;
}

static void test_seeded_nodes_repeat_across_runs_and_sessions_unseeded_do_not(void)
{
    ifd_model *m = load(SEEDS "random_generators.onnx");
    CHECK(m != NULL);
    if (!m)
        return;
    ifd_session *s1 = NULL, *s2 = NULL;
    ifd_error err;
    CHECK_EQ_INT(ifd_session_create(m, NULL, &s1, &err), IFD_OK);
    CHECK_EQ_INT(ifd_session_create(m, NULL, &s2, &err), IFD_OK);
    ifd_value *a[N_OUT] = {NULL}, *b[N_OUT] = {NULL}, *c[N_OUT] = {NULL};
    if (s1 && s2 && run(s1, a) == 0 && run(s1, b) == 0 && run(s2, c) == 0) {
        CHECK(same_bytes(a[OUT_UNIFORM], b[OUT_UNIFORM], N * sizeof(float)));
        CHECK(same_bytes(a[OUT_UNIFORM], c[OUT_UNIFORM], N * sizeof(float)));
        CHECK(same_bytes(a[OUT_NORMAL], c[OUT_NORMAL], N * sizeof(float)));
        CHECK(same_bytes(a[OUT_BERNOULLI], c[OUT_BERNOULLI], N * sizeof(float)));
        CHECK(same_bytes(a[OUT_MULTINOMIAL], b[OUT_MULTINOMIAL], N * sizeof(int64_t)));
        CHECK(!same_bytes(a[OUT_FREE], b[OUT_FREE], N * sizeof(float)));
        CHECK(!same_bytes(a[OUT_FREE], c[OUT_FREE], N * sizeof(float)));
        /* distinct seeds give distinct streams */
        CHECK(!same_bytes(a[OUT_UNIFORM], a[OUT_FREE], N * sizeof(float)));
    } else {
        CHECK(!"the model ran");
    }
    free_outputs(a);
    free_outputs(b);
    free_outputs(c);
    ifd_session_free(s1);
    ifd_session_free(s2);
    ifd_model_free(m);
}

static void test_draws_follow_the_requested_distributions(void)
{
    ifd_model *m = load(SEEDS "random_generators.onnx");
    CHECK(m != NULL);
    if (!m)
        return;
    ifd_session *s = NULL;
    ifd_error err;
    CHECK_EQ_INT(ifd_session_create(m, NULL, &s, &err), IFD_OK);
    ifd_value *out[N_OUT] = {NULL};
    if (s && run(s, out) == 0) {
        const float *u = out[OUT_UNIFORM]->tensor.data, *n = out[OUT_NORMAL]->tensor.data;
        const float *bern = out[OUT_BERNOULLI]->tensor.data;
        const int64_t *mult = out[OUT_MULTINOMIAL]->tensor.data;
        CHECK_EQ_INT(out[OUT_MULTINOMIAL]->tensor.dtype, IFD_INT64);
        CHECK_EQ_INT(out[OUT_MULTINOMIAL]->tensor.rank, 2);
        double usum = 0, nsum = 0, nsq = 0, ones = 0, counts[3] = {0, 0, 0};
        int out_of_range = 0;
        for (int i = 0; i < N; i++) {
            out_of_range += !(u[i] >= -1.0f && u[i] < 3.0f);
            out_of_range += !(bern[i] == 0.0f || bern[i] == 1.0f);
            out_of_range += !(mult[i] >= 0 && mult[i] < 3);
            usum += u[i];
            nsum += n[i];
            nsq += (double)n[i] * n[i];
            ones += bern[i];
            if (mult[i] >= 0 && mult[i] < 3)
                counts[mult[i]]++;
        }
        CHECK_EQ_INT(out_of_range, 0);
        /* uniform(-1, 3): mean 1, sd 4/sqrt(12) -> sd of the mean 0.008 */
        CHECK_NEAR(usum / N, 1.0, 0.06);
        double mean = nsum / N, sd = sqrt(nsq / N - mean * mean);
        CHECK_NEAR(mean, 2.0, 0.03); /* sd of the mean 0.0035 */
        CHECK_NEAR(sd, 0.5, 0.03);
        CHECK_NEAR(ones / N, 0.3, 0.02); /* sd 0.0032 */
        CHECK_NEAR(counts[0] / N, 0.1, 0.015);
        CHECK_NEAR(counts[1] / N, 0.2, 0.02);
        CHECK_NEAR(counts[2] / N, 0.7, 0.02);
    } else {
        CHECK(!"the model ran");
    }
    free_outputs(out);
    ifd_session_free(s);
    ifd_model_free(m);
}

static void test_issue16_seed_models_load_and_run(void)
{
    static const char *const names[] = {"signal_text_detection.onnx", "contrib_microsoft.onnx"};
    for (size_t k = 0; k < 2; k++) {
        char path[512];
        snprintf(path, sizeof(path), SEEDS "%s", names[k]);
        ifd_model *m = load(path);
        CHECK(m != NULL);
        ifd_model_free(m);
    }
}

int main(void)
{
    RUN(test_seeded_nodes_repeat_across_runs_and_sessions_unseeded_do_not);
    RUN(test_draws_follow_the_requested_distributions);
    RUN(test_issue16_seed_models_load_and_run);
    TEST_MAIN_END();
}
