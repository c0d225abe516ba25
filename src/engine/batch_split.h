/*
 * batch_split.h — running a whole graph on slices of the batch, one slice
 * per thread, for models too small to split layer by layer.
 *
 * A session asks batch_split_create at creation
 * whether its model is batch-separable (every node acts on each row of dim 0
 * on its own; decided once, from the prepared graph). If so, a run whose
 * batch is big enough for each slice to pay for the hand-off cuts every input
 * into contiguous row ranges and runs the plan on each range in a session of
 * its own (one intra-op thread, its own arena and buffers), each writing
 * straight into its rows of the outputs. Each slice's rows are bit for bit
 * the unsplit run of those rows alone (the same operators on the same rows),
 * and within float rounding of the unsplit run of the whole batch (see
 * batch_split.c for why not bit for bit that).
 *
 * A model whose activations outweigh its weights (MobileNetV2) also runs
 * each slice — and at one thread the whole batch, on the owning session —
 * in micro-batches of k rows chosen at creation, so its activations stay
 * in cache and its buffers k rows big; each micro-batch's rows are the
 * unsplit run of those rows alone, as a slice's are.
 *
 * Thread safety: a batch_split belongs to one session and is used by the
 * thread running that session; batch_split_run uses the session's pool.
 */
#ifndef INFERD_ENGINE_BATCH_SPLIT_H
#define INFERD_ENGINE_BATCH_SPLIT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "model.h"
#include "threadpool.h"

typedef struct batch_split batch_split;

/* Whether every node of the prepared model acts row by row along dim 0 and
 * its inputs and outputs can be cut and joined by rows: the estimated work
 * of one row (multiply-adds, or elements for other operators), >= 0; or -1
 * with a one-line reason (naming the node or value) when not. */
double batch_split_row_work(const ifd_model *m, char *reason, size_t size);

/* For a session of `pool`'s threads, `owner` (which runs the micro-batches
 * of a run not cut over threads): *out is NULL (with the reason in
 * `reason`) when runs stay whole — one thread and a batch that stays in
 * cache, the option or INFERD_BATCH_SPLIT=off, graph_opt none, or a model
 * that is not separable. Fails only when out of memory. */
ifd_status batch_split_create(const ifd_model *m, const ifd_session_options *options,
                              threadpool *pool, ifd_session *owner, batch_split **out,
                              char *reason, size_t size, ifd_error *err);
void batch_split_free(batch_split *split);

/* How many slices a run of these (already checked) inputs takes: 0 runs
 * it whole on the owner; 1 runs it on the owner in micro-batches; 2 or
 * more cut it over the threads (each slice in micro-batches when the model
 * has them). */
size_t batch_split_slices(const batch_split *split, const ifd_value *const *inputs);
/* Rows per micro-batch each slice (or the owner, at one slice) runs at a
 * time; 0 when slices run whole. */
int64_t batch_split_micro_rows(const batch_split *split);

/* Rows [*r0, *r0 + *rows) of a batch are slice i of `slices`: contiguous,
 * the first batch % slices slices one row longer (batch 9 over 2: 5 and 4). */
void batch_split_rows(int64_t batch, size_t slices, size_t i, int64_t *r0, int64_t *rows);

/* Run the graph on `slices` slices of the inputs (1: on the owner, in
 * micro-batches); outputs as for ifd_session_run. An error in any slice
 * fails the run with that slice's message (the first failing slice's, once). */
ifd_status batch_split_run(batch_split *split, size_t slices, const ifd_value *const *inputs,
                           ifd_value **outputs, ifd_error *err);

/* The slices a run may be cut into (the pool's threads), and the session of
 * slice i (NULL at one thread, where the owner runs the micro-batches):
 * ifd_session_profile adds up their node times. */
size_t batch_split_slice_count(const batch_split *split);
ifd_session *batch_split_slice_session(const batch_split *split, size_t i);

/* Run `session` on inputs whose rows are a slice of a bigger batch, writing
 * graph output k into rows[k] (a tensor of exactly that slice's shape): the
 * outputs' buffers are handed to the last operators, so nothing is copied
 * when they write there (session.c). Input types are not checked again.
 * rows_ready (NULL: rows hold their buffers already) is set to 1 by another
 * thread once they do, or to -1 if they never will (the run then fails);
 * the run waits for it only where it first writes into rows. */
ifd_status session_run_rows(ifd_session *session, const ifd_value *const *inputs,
                            const ifd_tensor *rows, const atomic_int *rows_ready,
                            ifd_error *err);

/* Spins until another thread has set *rows_ready to 1 (the rows hold their
 * buffers: true) or to -1 (they never will: false). */
static inline bool batch_rows_wait(const atomic_int *rows_ready)
{
    int ready;
    while ((ready = atomic_load_explicit(rows_ready, memory_order_acquire)) == 0)
        cpu_relax();
    return ready > 0;
}

#endif /* INFERD_ENGINE_BATCH_SPLIT_H */
