/*
 * batcher.h — adaptive (dynamic) batching of one model version: requests
 * from any connection and any API that reach the same version wait in one
 * queue and run as one engine call along the batch dimension (inputs
 * concatenated on axis 0, outputs split back), each caller getting exactly
 * its own rows in its own order. The policy (when a batch is closed, how
 * long a request may wait) is described at the top of batcher.c.
 *
 * A batcher belongs to one model_version (so a batch never mixes
 * versions: a swap makes new requests go to the new version's batcher
 * while the old one drains), runs its batches one at a time with one
 * engine session of its own — on the thread of a caller that submits
 * while nothing runs (batcher_submit's may_run_here), or on a thread of
 * its own when a batch must wait to form — and is freed with the version.
 * Callers that can give their thread back while they wait (the HTTP
 * workers, which suspend their connection) use batcher_submit with a
 * completion; synchronous callers (gRPC, jobs, pipelines) use batcher_run,
 * which blocks on the same queue.
 * Thread safety: every function may be called from any thread, except
 * batcher_free, which runs when no request can reach the batcher any more.
 */
#ifndef INFERD_MODELS_BATCHER_H
#define INFERD_MODELS_BATCHER_H

#include <stdbool.h>
#include <stddef.h>

#include "inferd/inferd.h"

#define BATCH_MAX_PREFERRED 8
#define BATCH_SIZE_BUCKETS 10  /* 1, 2, 4, ... 512 rows, then +Inf */
#define BATCH_DELAY_BUCKETS 12 /* 50 us ... 1 s, then +Inf */

typedef struct batch_settings {
    int max_batch_size;      /* rows per engine call; <= 1: no batching */
    long max_queue_delay_us; /* longest a request waits for a batch to form */
    int preferred[BATCH_MAX_PREFERRED]; /* batch sizes closed at once (Triton's preferred_batch_size) */
    size_t n_preferred;
    int max_queue; /* requests waiting at most; more are refused (429) */
} batch_settings;

/* Defaults when only max_batch_size is given. */
#define BATCH_DEFAULT_DELAY_US 2000
#define BATCH_DEFAULT_QUEUE 1024

typedef enum batch_outcome {
    BATCH_OK,
    BATCH_FAILED,     /* the engine run failed: the message says why (400) */
    BATCH_QUEUE_FULL, /* max_queue requests already wait (429) */
    BATCH_DEADLINE,   /* the request's deadline passed while it waited (504) */
    BATCH_STOPPING,   /* the version is being freed (503) */
} batch_outcome;

/* The HTTP status a refusal or failure answers with. */
int batch_outcome_http_status(batch_outcome outcome);

/* Called once per accepted request, on the thread that ran its batch (the
 * batch thread or a leader, see batcher_submit), after the
 * outputs were filled (BATCH_OK) or with the reason it was not. */
typedef void (*batch_done_fn)(void *context, batch_outcome outcome, const char *error);

typedef struct batcher batcher;

/* A batcher for `model`, which must outlive it. Its session has `threads`
 * intra-op threads. NULL with the reason in err. */
batcher *batcher_create(const ifd_model *model, int threads, const batch_settings *settings,
                        char *err, size_t err_size);
/* Answer what still waits with BATCH_STOPPING, stop the thread, free. */
void batcher_free(batcher *b);

/* Change the settings (a reloaded config.json); the queue is kept. */
void batcher_configure(batcher *b, const batch_settings *settings);
/* Whether requests are batched now (max_batch_size > 1). */
bool batcher_enabled(batcher *b);

/* Whether a request with these inputs can share an engine call with
 * others: tensors of one to max_batch_size rows along the first dimension
 * (no string or scalar input), on a model whose outputs split by rows.
 * A request that cannot would only run alone on the batch thread, holding
 * up everyone queued behind it: the model set runs it at once on the
 * caller's own session instead (see model_set_run_until). */
bool batcher_would_merge(batcher *b, ifd_value *const *inputs);

/* Queue a request whose inputs passed the signature checks. inputs and
 * outputs (ifd_model_output_count slots) must stay valid until `done` is
 * called. deadline: CLOCK_MONOTONIC seconds after which the request is
 * dropped from the queue with BATCH_DEADLINE (0: none). Returns BATCH_OK
 * when queued (done will be called), else the refusal (done is not).
 * may_run_here: the caller's thread may run batches (a worker, not an
 * event loop): when no batch is running and batches run short (a few tens
 * of microseconds, see batcher.c), what is ready runs on it before
 * this returns (this request's `done` and other members' included), and
 * the batches that queue meanwhile after it, so a lone request costs no
 * hand-over to the batch thread and back. */
batch_outcome batcher_submit(batcher *b, ifd_value *const *inputs, ifd_value **outputs,
                             double deadline, bool may_run_here, batch_done_fn done, void *context);

/* The same, waiting for the answer on the calling thread. */
batch_outcome batcher_run(batcher *b, ifd_value *const *inputs, ifd_value **outputs,
                          double deadline, char *err, size_t err_size);

/* What /metrics shows. */
typedef struct batch_stats {
    unsigned long long size_counts[BATCH_SIZE_BUCKETS + 1]; /* rows per engine call */
    unsigned long long batches;
    double rows;
    unsigned long long delay_counts[BATCH_DELAY_BUCKETS + 1]; /* seconds queued */
    unsigned long long delayed;
    double delay_sum;
    double run_seconds; /* wall time of the engine calls of batches, summed */
    unsigned long long queue_full, deadline_expired, failed_batches;
    size_t queued;       /* requests waiting now */
    long long running_rows; /* rows of the engine call running now, 0: idle */
} batch_stats;
extern const double batch_size_bounds[BATCH_SIZE_BUCKETS];
extern const double batch_delay_bounds[BATCH_DELAY_BUCKETS];
void batcher_stats(batcher *b, batch_stats *out);

double batch_clock(void); /* CLOCK_MONOTONIC seconds, as deadlines are given */

#endif /* INFERD_MODELS_BATCHER_H */
