/*
 * fuzz_infer_request.c — libFuzzer target for the inference request
 * decoders every synchronous route and every job worker runs (src/infer):
 * the V2 JSON body, V2 with binary tensors (Inference-Header-Content-Length)
 * and the book's {"data": [...]} body, on the bundled iris model, plus the
 * job payload type parser. Each must answer (200 or an error answer with a
 * body; a check_only pass is a bodiless 200), never read out of bounds or
 * leak.
 *
 * The V2 JSON body is decoded twice, with and without the fast path
 * (infer_v2_fast), and both answers must be the same bytes.
 *
 * Input: byte 0 picks the decoder, bytes 1..2 the header length of the
 * binary form; the rest is the body.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infer.h"
#include "job_exec.h"

static model_set *set;
static model_version *iris;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    model_set_options options = {.serving_sessions = 1, .threads_per_session = 1};
    set = model_set_create(&options);
    model_source source = {.path = INFERD_FUZZ_MODEL, .name = "iris"};
    char err[1024];
    acquired got;
    if (!set || !model_set_add_source(set, &source, err, sizeof(err)) ||
        model_set_acquire(set, "iris", NULL, NULL, NULL, &got, err, sizeof(err)) != ACQUIRE_OK) {
        fprintf(stderr, "fuzz_infer_request: cannot load %s: %s\n", INFERD_FUZZ_MODEL, err);
        abort(); /* a fuzzer without its model fuzzes nothing */
    }
    iris = got.version;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    unsigned mode = data[0] % 4;
    size_t header_length = (size_t)data[1] | (size_t)data[2] << 8;
    const char *body = (const char *)data + 3;
    size_t len = size - 3;
    infer_answer answer;
    char header_text[16];
    snprintf(header_text, sizeof(header_text), "%zu", header_length);
    switch (mode) {
    case 0: {
        /* the path without jansson trees must answer exactly as the general one */
        infer_answer general;
        infer_v2_fast = false;
        infer_v2(set, iris, 0, body, len, NULL, false, &general);
        infer_v2_fast = true;
        infer_v2(set, iris, 0, body, len, NULL, false, &answer);
        if (general.status != answer.status || general.len != answer.len ||
            (general.len && memcmp(general.body, answer.body, general.len) != 0))
            __builtin_trap();
        infer_answer_free(&general);
        break;
    }
    case 1: infer_v2(set, iris, 0, body, len, header_text, false, &answer); break;
    case 2:
        infer_book(set, iris, 0, body, len, data[1] & 1, false, data[2] & 1, data[1] & 2, &answer);
        break;
    default: {
        char *type = malloc(len + 1);
        if (!type)
            return 0;
        memcpy(type, body, len);
        type[len] = '\0';
        job_protocol protocol;
        size_t parsed;
        if (job_parse_content_type(type, &protocol, &parsed) && protocol == JOB_PROTOCOL_V2 &&
            strncmp(type, JOB_TYPE_V2_BINARY, strlen(JOB_TYPE_V2_BINARY)) == 0 && parsed == 0)
            __builtin_trap(); /* a binary payload always has a header length */
        free(type);
        return 0;
    }
    }
    /* every outcome is an answer with a body, except a check that passed */
    bool checked = mode == 2 && (data[1] & 2) && answer.status == 200;
    if ((!answer.body && !checked) || answer.status < 200 || answer.status > 599)
        __builtin_trap();
    infer_answer_free(&answer);
    return 0;
}
