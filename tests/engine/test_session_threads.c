/*
 * test_session_threads.c — a session's thread count: 0 means one per core,
 * a sane count runs, and an absurd one (10,000) is refused with a message
 * instead of starting that many threads.
 */
#include <inferd/inferd.h>

#include "test.h"

#define MODEL INFERD_SOURCE_DIR "/models/iris_svc.onnx"

static ifd_model *load(void)
{
    ifd_model *m = NULL;
    ifd_error err;
    CHECK_EQ_INT(ifd_model_load_file(MODEL, NULL, &m, &err), IFD_OK);
    return m;
}

static void test_ten_thousand_threads_are_refused_with_a_message(void)
{
    ifd_model *m = load();
    if (!m)
        return;
    ifd_session_options opt = {.threads = 10000};
    ifd_session *s = NULL;
    ifd_error err;
    CHECK_EQ_INT(ifd_session_create(m, &opt, &s, &err), IFD_ERR_INVALID_ARGUMENT);
    CHECK(s == NULL);
    CHECK_STR_CONTAINS(err.message, "threads must be at most 1024, got 10000");
    ifd_model_free(m);
}

static void test_zero_and_two_threads_make_sessions(void)
{
    ifd_model *m = load();
    if (!m)
        return;
    int counts[] = {0, -3, 2};
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
        ifd_session_options opt = {.threads = counts[i]};
        ifd_session *s = NULL;
        ifd_error err;
        CHECK_EQ_INT(ifd_session_create(m, &opt, &s, &err), IFD_OK);
        ifd_session_free(s);
    }
    ifd_model_free(m);
}

int main(void)
{
    RUN(test_ten_thousand_threads_are_refused_with_a_message);
    RUN(test_zero_and_two_threads_make_sessions);
    TEST_MAIN_END();
}
