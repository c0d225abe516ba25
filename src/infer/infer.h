/*
 * infer.h — a request body in, the answer's bytes out: the V2 (KServe /
 * Open Inference Protocol) and the book's /predict inference, decoupled
 * from HTTP so the synchronous handlers (src/serve) and the job workers
 * (the server's own, and `inferd worker`) run the very same code and give
 * byte-identical answers for the same request.
 *
 * A caller acquires the version from the model set (model_set_acquire),
 * calls one of these with a session that no other thread uses at the same
 * time, and releases the version. With check_only the body is decoded and
 * checked against the model's signature but nothing runs: the asynchronous
 * routes reject a bad body at submit time rather than queueing it.
 */
#ifndef INFERD_INFER_INFER_H
#define INFERD_INFER_INFER_H

#include <stdbool.h>
#include <stddef.h>

#include "model_set.h"

/* An answer: an HTTP status and its body; errors are {"error": "..."}. */
typedef struct infer_answer {
    int status;
    char *body; /* malloc'd; the caller frees it */
    size_t len;
    const char *content_type;       /* a static string */
    size_t inference_header_length; /* binary V2 answers: bytes of the JSON header, else 0 */
} infer_answer;

/* Fill `out` with an error answer {"error": message}. */
void infer_answer_error(infer_answer *out, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void infer_answer_free(infer_answer *out);

/* Whether the common V2 body takes the path without jansson trees
 * (numeric_json_v2_read in, the answer written directly out); on by
 * default. Tests and the fuzzer turn it off to compare both paths. */
extern bool infer_v2_fast;

/* V2 inference on version m. header_length is the request's
 * Inference-Header-Content-Length (NULL: the body is all JSON). True when
 * the answer is a 200 (or, with check_only, when the body passed). */
bool infer_v2(model_set *set, model_version *m, int session, const char *body, size_t len,
              const char *header_length, bool check_only, infer_answer *out);

/* The same in steps, for a caller that queues the run on a batcher
 * (model_set_submit) instead of waiting: prepare decodes and checks the
 * body (false: `out` holds the error answer), the caller runs
 * v2_call_inputs into v2_call_outputs, finish encodes the answer. */
typedef struct v2_call v2_call;
bool infer_v2_prepare(model_version *m, const char *body, size_t len, const char *header_length,
                      v2_call **call, infer_answer *out);
ifd_value *const *v2_call_inputs(const v2_call *call);
ifd_value **v2_call_outputs(v2_call *call);
/* Seconds the request may wait (V2's parameters.timeout, Triton's
 * microseconds), 0: no limit. */
double v2_call_timeout(const v2_call *call);
bool infer_v2_finish(v2_call *call, const model_version *m, infer_answer *out);
void v2_call_free(v2_call *call);

/* The book's /predict family on version m (the default model). labels:
 * /predict/label (label names) instead of probabilities; use_sample: the
 * model's sample rows instead of the body's; mode_field: add the book's A/B
 * "mode" field ("name:version"). */
bool infer_book(model_set *set, model_version *m, int session, const char *body, size_t len,
                bool labels, bool use_sample, bool mode_field, bool check_only, infer_answer *out);

/* The book's API serves one-input models only: false and a 4xx/503 answer
 * when m cannot answer it. */
bool infer_book_model_ok(const model_version *m, infer_answer *out);

#endif /* INFERD_INFER_INFER_H */
