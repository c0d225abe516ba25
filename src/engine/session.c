/*
 * session.c — executes a planned model.
 *
 * A session owns one value per slot of the model and a pool of buffers. Each
 * run binds the caller's inputs and the model's constants by reference (no
 * copies), runs the nodes in planned order, gives each intermediate buffer
 * back to the pool after its last reader, and hands the graph outputs to the
 * caller. Intermediates whose size prepare() inferred live in one arena per
 * session, at offsets planned at load (arena_plan.c); the rest come from the
 * pool, and after the first run with a given shape, runs take every buffer
 * from there: steady-state inference does not call malloc except for the
 * output values returned to the caller. An output of the Reshape family is
 * a view of its input's buffer when the plan says so (op_output_view); that
 * buffer then goes back only after the view's last reader.
 *
 * A node with subgraphs (If, Loop, Scan) runs them on child sessions kept
 * with this one, one per (node, subgraph), made on first use; they share this
 * session's threads and limits. The values a subgraph reads from enclosing
 * graphs arrive as the node's implicit inputs and are bound as the child's
 * last inputs.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "batch_split.h"
#include "model.h"

typedef struct pooled_buffer {
    void *data;
    size_t capacity;
} pooled_buffer;

struct session_private {
    const ifd_model *model;
    threadpool *threads;
    size_t max_tensor_bytes;
    int64_t max_loop_iterations; /* 0: none */
    ifd_value *owned;          /* per slot: storage for intermediates */
    const ifd_value **bound;   /* per slot: the value currently visible */
    ifd_value *constants;      /* per slot: views of the model's constants */
    const ifd_value **node_inputs;
    pooled_buffer *free_buffers;
    size_t n_free, cap_free;
    pooled_buffer *scratch;    /* buffers lent by op_scratch during one node */
    size_t n_scratch, cap_scratch;
    bool owns_threads;         /* false for children, which use the parent's */
    ifd_session **children;    /* per node: one per subgraph, made on first use */
    size_t *first_child;       /* index of each node's first child in children */
    size_t n_children;
    size_t buffer_allocations; /* pool misses: how often a run had to malloc */
    char *arena;               /* the model's planned intermediates (arena_plan.c) */
    /* batch_split.c: the per-thread slices of a split session (NULL when
     * runs stay whole, split_reason says why); in a slice's own session
     * during one run, the rows of the big outputs to write into */
    batch_split *split;
    char split_reason[320];
    const ifd_tensor *output_rows;
    /* the split run's word saying whether output_rows hold the caller's
     * buffers yet (1), never will (-1) or not yet (0); NULL once seen 1 */
    const atomic_int *rows_ready;
    /* session_run_node_once hands outputs over as owned: no views then */
    bool folding;
    /* What run_graph does the same way on every run, worked out once from
     * the model's plan (make_run_plan) so that a run of a small model does
     * not walk every value slot and every node's inputs deciding it again:
     * the binding each run starts from (constants, NULL elsewhere), the
     * slots to release after node n (release_slots[release_first[n] ..
     * release_first[n + 1]), in the order the checks used to run) and the
     * intermediates to give back at the end. */
    const ifd_value **bound_at_start;
    int *release_slots;
    size_t *release_first;
    int *intermediates;
    size_t n_intermediates;
    /* per node, with options.profile: runs and nanoseconds inside it */
    uint64_t *profile_runs, *profile_ns;
};

struct ifd_session {
    struct session_private p;
};

#define BUFFER_ALIGN 64
/* Graph outputs up to this size are copied out of the session rather than
 * moved (take_output): glibc's malloc serves sizes up to 32 MiB from its
 * heap once it has seen one freed, so the caller's buffer of the last run,
 * freed, is the next run's copy; past that every copy would be fresh
 * mmap'd pages, and the copy would cost on top of them. */
#define COPIED_OUTPUT_BYTES ((size_t)16 << 20)

/* ---- buffer pool --------------------------------------------------------- */

static void *pool_take(struct session_private *s, size_t bytes, size_t *capacity)
{
    size_t best = SIZE_MAX;
    for (size_t i = 0; i < s->n_free; i++) {
        size_t cap = s->free_buffers[i].capacity;
        /* take a buffer that fits without wasting more than it holds */
        if (cap >= bytes && cap / 2 <= bytes + BUFFER_ALIGN &&
            (best == SIZE_MAX || cap < s->free_buffers[best].capacity))
            best = i;
    }
    if (best != SIZE_MAX) {
        void *data = s->free_buffers[best].data;
        *capacity = s->free_buffers[best].capacity;
        s->free_buffers[best] = s->free_buffers[--s->n_free];
        return data;
    }
    size_t rounded = (bytes + BUFFER_ALIGN - 1) / BUFFER_ALIGN * BUFFER_ALIGN;
    if (rounded == 0)
        rounded = BUFFER_ALIGN;
    void *data = aligned_alloc(BUFFER_ALIGN, rounded);
    *capacity = data ? rounded : 0;
    s->buffer_allocations++;
    return data;
}

static void pool_give(struct session_private *s, void *data, size_t capacity)
{
    if (!data)
        return;
    if (s->n_free == s->cap_free) {
        size_t cap = s->cap_free ? s->cap_free * 2 : 32;
        pooled_buffer *grown = realloc(s->free_buffers, cap * sizeof(*grown));
        if (!grown) {
            free(data);
            return;
        }
        s->free_buffers = grown;
        s->cap_free = cap;
    }
    s->free_buffers[s->n_free++] = (pooled_buffer){data, capacity};
}

/* Return what an intermediate slot holds: numeric buffers to the pool, the
 * rest (strings, sequences, maps) to the allocator. */
static void release_slot(struct session_private *s, int slot)
{
    ifd_value *v = &s->owned[slot];
    if (v->kind == IFD_VALUE_TENSOR && v->tensor.dtype != IFD_STRING && v->tensor.owns_data) {
        pool_give(s, v->tensor.data, v->tensor.capacity);
        /* released: no buffer, as a zeroed slot. Not a memset of the whole
         * value (a rep stos of 320 bytes, several per run of a small model):
         * a tensor slot has no items or map, and whoever binds the slot
         * next sets its dtype and shape. */
        v->tensor.data = NULL;
        v->tensor.capacity = 0;
        v->tensor.owns_data = 0;
    } else {
        value_clear(v);
    }
    s->bound[slot] = NULL;
}

/* ---- operator context ---------------------------------------------------- */

const ifd_value *op_input_value(const op_ctx *ctx, int i)
{
    return i >= 0 && i < ctx->n_inputs ? ctx->inputs[i] : NULL;
}

const ifd_tensor *op_input(const op_ctx *ctx, int i)
{
    const ifd_value *v = op_input_value(ctx, i);
    return v && v->kind == IFD_VALUE_TENSOR ? &v->tensor : NULL;
}

int op_fail(op_ctx *ctx, const char *fmt, ...)
{
    if (ctx->err) {
        char reason[768];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(reason, sizeof(reason), fmt, ap);
        va_end(ap);
        snprintf(ctx->err->message, sizeof(ctx->err->message), "%s node '%s': %s",
                 ctx->node->op_type, ctx->node->name, reason);
    }
    return -1;
}

static int output_slot(op_ctx *ctx, int i)
{
    const model_node *node = &ctx->session->model->nodes[ctx->node_index];
    return i >= 0 && i < node->op.n_outputs ? node->output_slots[i] : -1;
}

/* A slice of a split run (batch_split.c) writes a graph output straight into
 * its rows of the caller's tensor when the operator asks for exactly that
 * shape; anything else takes the usual path and is copied there at the end.
 *
 * Not a few rows of scores, though: the slices' rows share the cache line at
 * each boundary and the caller's malloc and free write headers next to
 * them, so while the operators write there row by row (a Gemm's tiles, a
 * Softmax) the lines move between cores several times; computed in the
 * slice's own buffer and copied in one go at the end, each moves about once.
 * Measured on the digits CNN at batch 8, 2 threads (2 x 320-byte outputs,
 * chrt -f 1): with the slices writing nowhere shared (rdtsc inside
 * batch_split_run, medians of 3 x ~50K runs) the worker's slice took
 * 8.65 -> 8.47 us; this copy, bench_inferd --min-time 0.3, medians of 15
 * alternated runs: 8.98 -> 8.79 us (2.98 -> 2.78 for the MLP at batch 8
 * once batch_split.c's threshold let it split). */
#define ROWS_IN_PLACE_MIN_BYTES 16384

/* Whether output_rows may be written: the split run's caller makes the
 * outputs after it has started the slices (batch_split.c), and a slice
 * needs them only where it writes a graph output, by then long made. */
static bool output_rows_ready(struct session_private *s)
{
    if (!s->rows_ready)
        return true;
    if (!batch_rows_wait(s->rows_ready))
        return false;
    s->rows_ready = NULL;
    return true;
}

static bool bind_output_rows(struct session_private *s, int slot, ifd_dtype dtype, int rank,
                             const int64_t *dims, size_t bytes)
{
    const ifd_model *m = s->model;
    for (size_t k = 0; k < m->n_outputs; k++) {
        const ifd_tensor *rows = &s->output_rows[k];
        if (m->outputs[k].slot != slot || rows->dtype != dtype || rows->rank != rank ||
            memcmp(rows->dims, dims, (size_t)rank * sizeof(*dims)) != 0)
            continue;
        ifd_value *v = &s->owned[slot];
        release_slot(s, slot);
        v->kind = IFD_VALUE_TENSOR;
        v->tensor = tensor_view(rows);
        v->tensor.capacity = bytes;
        s->bound[slot] = v;
        return true;
    }
    return false;
}

ifd_tensor *op_output(op_ctx *ctx, int i, ifd_dtype dtype, int rank, const int64_t *dims)
{
    struct session_private *s = ctx->session;
    int slot = output_slot(ctx, i);
    size_t bytes;
    char shape[128];
    if (slot < 0) {
        op_fail(ctx, "output %d does not exist", i);
        return NULL;
    }
    if (rank < 0 || rank > IFD_MAX_RANK || !shape_bytes(dtype, rank, dims, &bytes)) {
        op_fail(ctx, "output %d: %s tensor of shape %s is invalid or too large", i,
                ifd_dtype_name(dtype), rank >= 0 && rank <= IFD_MAX_RANK
                                           ? shape_to_string(rank, dims, shape, sizeof(shape))
                                           : "(bad rank)");
        return NULL;
    }
    if (bytes > s->max_tensor_bytes) {
        op_fail(ctx, "output %d: %s tensor of shape %s needs %zu bytes, above this session's "
                "limit of %zu", i, ifd_dtype_name(dtype),
                shape_to_string(rank, dims, shape, sizeof(shape)), bytes, s->max_tensor_bytes);
        return NULL;
    }
    ifd_value *v = &s->owned[slot];
    const ifd_model *m = s->model;
    if (s->output_rows && m->values[slot].is_graph_output && bytes > ROWS_IN_PLACE_MIN_BYTES &&
        output_rows_ready(s) && bind_output_rows(s, slot, dtype, rank, dims, bytes))
        return &v->tensor;
    if (s->arena && m->arena_offset[slot] != SIZE_MAX && dtype != IFD_STRING &&
        bytes <= m->arena_size[slot]) {
        if (v->kind != IFD_VALUE_TENSOR || v->tensor.owns_data)
            release_slot(s, slot);
        v->kind = IFD_VALUE_TENSOR;
        v->tensor.data = s->arena + m->arena_offset[slot];
        v->tensor.capacity = m->arena_size[slot];
        v->tensor.owns_data = 0;
        v->tensor.dtype = dtype;
        tensor_set_shape(&v->tensor, rank, dims);
        s->bound[slot] = v;
        return &v->tensor;
    }
    /* !data: a released slot is all zeroes, so a zero-byte output would be
     * handed out with data NULL, and memset/memcpy of zero bytes at NULL is
     * undefined behaviour in every operator that does it (found by
     * fuzz_model_load in ConstantOfShape); outputs always get a buffer */
    /* !owns_data: a view (of the arena, another value or the caller's rows)
     * is not this slot's to write into */
    if (v->kind != IFD_VALUE_TENSOR || v->tensor.dtype == IFD_STRING || dtype == IFD_STRING ||
        v->tensor.capacity < bytes || !v->tensor.data || !v->tensor.owns_data) {
        /* a slot released at the end of the last run is all zeroes: nothing
         * to give back (the common case, so spare the clearing) */
        if (v->kind != IFD_VALUE_TENSOR || v->tensor.data || v->items || v->map_keys.data || v->map_values.data)
            release_slot(s, slot);
        if (dtype == IFD_STRING) {
            if (tensor_alloc(&v->tensor, dtype, rank, dims, "output", ctx->err) != IFD_OK) {
                op_fail(ctx, "output %d: out of memory", i);
                return NULL;
            }
        } else {
            v->tensor.data = pool_take(s, bytes, &v->tensor.capacity);
            if (!v->tensor.data) {
                op_fail(ctx, "output %d: out of memory for %zu bytes", i, bytes);
                return NULL;
            }
            v->tensor.owns_data = 1;
        }
    }
    v->kind = IFD_VALUE_TENSOR;
    v->tensor.dtype = dtype;
    tensor_set_shape(&v->tensor, rank, dims);
    s->bound[slot] = v;
    return &v->tensor;
}

ifd_tensor *op_output_view(op_ctx *ctx, int i, const ifd_tensor *x, int rank,
                           const int64_t *dims)
{
    struct session_private *s = ctx->session;
    const ifd_model *m = s->model;
    int slot = output_slot(ctx, i);
    size_t bytes, in_bytes;
    /* only input 0 itself: its buffer is the one the plan keeps alive */
    if (slot < 0 || !m->view_of || m->view_of[slot] < 0 || s->folding || !x ||
        x != op_input(ctx, 0) || x->dtype == IFD_STRING || rank < 0 || rank > IFD_MAX_RANK ||
        !shape_bytes(x->dtype, rank, dims, &bytes) ||
        !shape_bytes(x->dtype, x->rank, x->dims, &in_bytes) || bytes != in_bytes)
        return NULL;
    ifd_value *v = &s->owned[slot];
    if (v->kind != IFD_VALUE_TENSOR || v->tensor.data)
        release_slot(s, slot);
    v->kind = IFD_VALUE_TENSOR;
    v->tensor = tensor_view(x);
    v->tensor.capacity = bytes;
    tensor_set_shape(&v->tensor, rank, dims);
    s->bound[slot] = v;
    return &v->tensor;
}

ifd_value *op_output_value(op_ctx *ctx, int i)
{
    struct session_private *s = ctx->session;
    int slot = output_slot(ctx, i);
    if (slot < 0) {
        op_fail(ctx, "output %d does not exist", i);
        return NULL;
    }
    release_slot(s, slot);
    /* the operator fills in a whole value (a sequence, a map...): it starts
     * from all zeroes, not from a released tensor's dtype and shape */
    memset(&s->owned[slot], 0, sizeof(s->owned[slot]));
    s->bound[slot] = &s->owned[slot];
    return &s->owned[slot];
}

void *op_scratch(op_ctx *ctx, size_t bytes)
{
    struct session_private *s = ctx->session;
    if (bytes > s->max_tensor_bytes) {
        op_fail(ctx, "scratch of %zu bytes is above this session's limit of %zu", bytes,
                s->max_tensor_bytes);
        return NULL;
    }
    if (s->n_scratch == s->cap_scratch) {
        size_t cap = s->cap_scratch ? s->cap_scratch * 2 : 8;
        pooled_buffer *grown = realloc(s->scratch, cap * sizeof(*grown));
        if (!grown) {
            op_fail(ctx, "out of memory");
            return NULL;
        }
        s->scratch = grown;
        s->cap_scratch = cap;
    }
    size_t capacity;
    void *data = pool_take(s, bytes, &capacity);
    if (!data) {
        op_fail(ctx, "out of memory for %zu bytes of scratch", bytes);
        return NULL;
    }
    s->scratch[s->n_scratch++] = (pooled_buffer){data, capacity};
    return data;
}

void op_parallel_for(op_ctx *ctx, size_t n, size_t grain,
                     void (*fn)(void *arg, size_t begin, size_t end), void *arg)
{
    threadpool_parallel_for(ctx->session->threads, n, grain, fn, arg);
}

threadpool *op_threadpool(op_ctx *ctx) { return ctx->session->threads; }

int64_t op_loop_limit(const op_ctx *ctx) { return ctx->session->max_loop_iterations; }

/* ---- sessions ------------------------------------------------------------ */

/* Writes to out (NULL: counts only) the slots run_graph gives
 * back after node n: an input whose buffer no later node reads (a viewed
 * value's buffer stays until its views' last reader, buffer_last_use; a
 * view's slot is cleared after its own last reader) and an output nobody
 * reads. Returns how many. */
static size_t node_releases(const ifd_model *m, size_t n, int *out)
{
    const model_node *node = &m->nodes[n];
    size_t count = 0;
    for (int k = 0; k < node->op.n_inputs + node->op.n_implicit; k++) {
        int slot = node->input_slots[k];
        if (slot < 0)
            continue;
        int until = m->buffer_last_use ? m->buffer_last_use[slot] : m->values[slot].last_use;
        if (until == (int)n && m->values[slot].origin == VALUE_INTERMEDIATE &&
            !m->values[slot].is_graph_output) {
            if (out)
                out[count] = slot;
            count++;
        }
        int root = m->view_of ? m->view_of[slot] : -1;
        if (root >= 0 && m->buffer_last_use[root] == (int)n &&
            m->values[root].origin == VALUE_INTERMEDIATE && !m->values[root].is_graph_output) {
            if (out)
                out[count] = root;
            count++;
        }
    }
    for (int k = 0; k < node->op.n_outputs; k++) {
        int slot = node->output_slots[k];
        if (slot < 0)
            continue;
        int until = m->buffer_last_use ? m->buffer_last_use[slot] : m->values[slot].last_use;
        if (until < 0 && !m->values[slot].is_graph_output) {
            if (out)
                out[count] = slot;
            count++;
        }
    }
    return count;
}

/* The per-run bookkeeping of run_graph, from the model's plan (see
 * session_private). Returns false when out of memory. */
static bool make_run_plan(struct session_private *s)
{
    const ifd_model *m = s->model;
    size_t n_values = m->n_values ? m->n_values : 1;
    s->bound_at_start = calloc(n_values, sizeof(*s->bound_at_start));
    s->intermediates = calloc(n_values, sizeof(*s->intermediates));
    s->release_first = calloc(m->n_nodes + 1, sizeof(*s->release_first));
    if (!s->bound_at_start || !s->intermediates || !s->release_first)
        return false;
    for (size_t i = 0; i < m->n_values; i++) {
        if (m->values[i].origin == VALUE_CONSTANT)
            s->bound_at_start[i] = &s->constants[i];
        else if (m->values[i].origin == VALUE_INTERMEDIATE)
            s->intermediates[s->n_intermediates++] = (int)i;
    }
    for (size_t n = 0; n < m->n_nodes; n++)
        s->release_first[n + 1] = s->release_first[n] + node_releases(m, n, NULL);
    s->release_slots = calloc(s->release_first[m->n_nodes] + 1, sizeof(*s->release_slots));
    if (!s->release_slots)
        return false;
    for (size_t n = 0; n < m->n_nodes; n++)
        node_releases(m, n, s->release_slots + s->release_first[n]);
    return true;
}

ifd_status ifd_session_create(const ifd_model *model, const ifd_session_options *options,
                              ifd_session **out, ifd_error *err)
{
    *out = NULL;
    /* one pool thread per requested thread is created at once: a typo of
     * 10000 would start 10000 spinning threads (the CLI allows 1 to 1024) */
    if (options && options->threads > IFD_MAX_THREADS) {
        set_error(err, "threads must be at most %d, got %d (0 or less means one per core)",
                  IFD_MAX_THREADS, options->threads);
        return IFD_ERR_INVALID_ARGUMENT;
    }
    if (!model->runnable) {
        set_error(err, "the model uses unsupported operators and cannot run");
        return IFD_ERR_UNSUPPORTED;
    }
    ifd_session *session = calloc(1, sizeof(*session));
    if (!session) {
        set_error(err, "out of memory");
        return IFD_ERR_NO_MEMORY;
    }
    struct session_private *s = &session->p;
    size_t n = model->n_values ? model->n_values : 1;
    int max_inputs = 1;
    for (size_t i = 0; i < model->n_nodes; i++)
        if (model->nodes[i].op.n_inputs + model->nodes[i].op.n_implicit > max_inputs)
            max_inputs = model->nodes[i].op.n_inputs + model->nodes[i].op.n_implicit;
    s->model = model;
    s->owned = calloc(n, sizeof(*s->owned));
    s->bound = calloc(n, sizeof(*s->bound));
    s->constants = calloc(n, sizeof(*s->constants));
    s->node_inputs = calloc((size_t)max_inputs, sizeof(*s->node_inputs));
    s->threads = threadpool_create(options ? options->threads : 0);
    s->owns_threads = true;
    s->first_child = calloc(model->n_nodes + 1, sizeof(*s->first_child));
    for (size_t i = 0; s->first_child && i < model->n_nodes; i++)
        s->first_child[i + 1] = s->first_child[i] + (size_t)model->nodes[i].op.n_subgraphs;
    s->n_children = s->first_child ? s->first_child[model->n_nodes] : 0;
    s->children = calloc(s->n_children + 1, sizeof(*s->children));
    s->max_tensor_bytes = options && options->max_tensor_bytes &&
                                  options->max_tensor_bytes < IFD_MAX_TENSOR_BYTES
                              ? options->max_tensor_bytes
                              : IFD_MAX_TENSOR_BYTES;
    s->max_loop_iterations =
        options && options->max_loop_iterations > 0 ? options->max_loop_iterations : 0;
    if (model->arena_offset && model->arena_bytes) {
        size_t rounded = (model->arena_bytes + BUFFER_ALIGN - 1) / BUFFER_ALIGN * BUFFER_ALIGN;
        s->arena = aligned_alloc(BUFFER_ALIGN, rounded);
    }
    if (options && options->profile) {
        s->profile_runs = calloc(model->n_nodes + 1, sizeof(*s->profile_runs));
        s->profile_ns = calloc(model->n_nodes + 1, sizeof(*s->profile_ns));
    }
    if (!s->owned || !s->bound || !s->constants || !s->node_inputs || !s->threads ||
        !s->first_child || !s->children || (model->arena_offset && model->arena_bytes && !s->arena) ||
        (options && options->profile && (!s->profile_runs || !s->profile_ns))) {
        ifd_session_free(session);
        set_error(err, "out of memory");
        return IFD_ERR_NO_MEMORY;
    }
    for (size_t i = 0; i < model->n_values; i++) {
        if (model->values[i].origin == VALUE_CONSTANT) {
            s->constants[i].kind = IFD_VALUE_TENSOR;
            s->constants[i].tensor = tensor_view(&model->values[i].constant_storage);
        }
    }
    if (!make_run_plan(s)) {
        ifd_session_free(session);
        set_error(err, "out of memory");
        return IFD_ERR_NO_MEMORY;
    }
    ifd_status st = batch_split_create(model, options, s->threads, session, &s->split,
                                       s->split_reason, sizeof(s->split_reason), err);
    if (st != IFD_OK) {
        ifd_session_free(session);
        return st;
    }
    *out = session;
    return IFD_OK;
}

void ifd_session_free(ifd_session *session)
{
    if (!session)
        return;
    struct session_private *s = &session->p;
    if (s->owned)
        for (size_t i = 0; i < s->model->n_values; i++)
            value_clear(&s->owned[i]);
    for (size_t i = 0; i < s->n_free; i++)
        free(s->free_buffers[i].data);
    free(s->free_buffers);
    free(s->scratch);
    free(s->arena);
    free(s->owned);
    free(s->bound);
    free(s->constants);
    free(s->node_inputs);
    free(s->bound_at_start);
    free(s->release_slots);
    free(s->release_first);
    free(s->intermediates);
    free(s->profile_runs);
    free(s->profile_ns);
    for (size_t i = 0; s->children && i < s->n_children; i++)
        ifd_session_free(s->children[i]);
    free(s->children);
    free(s->first_child);
    batch_split_free(s->split);
    if (s->owns_threads)
        threadpool_free(s->threads);
    free(session);
}

ifd_status session_create_child(const ifd_model *model, const struct session_private *parent,
                                ifd_session **out, ifd_error *err)
{
    ifd_session_options options = {.threads = 1, .max_tensor_bytes = parent->max_tensor_bytes,
                                   .max_loop_iterations = parent->max_loop_iterations};
    ifd_status st = ifd_session_create(model, &options, out, err);
    if (st != IFD_OK)
        return st;
    /* the parent's pool serves the child too: drop the one just made */
    struct session_private *s = &(*out)->p;
    threadpool_free(s->threads);
    s->threads = parent->threads;
    s->owns_threads = false;
    return IFD_OK;
}

int op_subgraph_run(op_ctx *ctx, int k, const ifd_value *const *inputs, ifd_value **outputs)
{
    struct session_private *s = ctx->session;
    const op_node *node = ctx->node;
    if (k < 0 || k >= node->n_subgraphs)
        return op_fail(ctx, "has no subgraph %d", k);
    const subgraph *sg = node->subgraphs[k];
    size_t at = s->first_child[ctx->node_index] + (size_t)k;
    ifd_error err;
    if (!s->children[at] && session_create_child(sg->model, s, &s->children[at], &err) != IFD_OK)
        return op_fail(ctx, "%s: %s", sg->attr_name, err.message);
    size_t n = sg->model->n_inputs;
    const ifd_value **all = op_scratch(ctx, (n + 1) * sizeof(*all));
    if (!all)
        return -1;
    for (int i = 0; i < sg->n_formal; i++)
        all[i] = inputs[i];
    for (int i = 0; i < sg->n_captures; i++)
        all[sg->n_formal + i] = ctx->inputs[node->n_inputs + sg->first_implicit + i];
    if (ifd_session_run(s->children[at], all, outputs, &err) != IFD_OK)
        return op_fail(ctx, "%s: %s", sg->attr_name, err.message);
    return 0;
}

static const char *kind_name(ifd_value_kind kind)
{
    return kind == IFD_VALUE_TENSOR     ? "tensor"
           : kind == IFD_VALUE_MAP      ? "map"
           : kind == IFD_VALUE_OPTIONAL ? "optional"
                                        : "sequence";
}

/* A tensor the caller built: rank in range, countable, data present. */
static ifd_status check_tensor_storage(const char *name, const char *what, const ifd_tensor *t,
                                       ifd_error *err)
{
    char got_shape[128];
    size_t bytes;
    if (t->rank < 0 || t->rank > IFD_MAX_RANK) {
        set_error(err, "input '%s': %s has rank %d, outside 0..%d", name, what, t->rank,
                  IFD_MAX_RANK);
        return IFD_ERR_INVALID_ARGUMENT;
    }
    if (!shape_bytes(t->dtype, t->rank, t->dims, &bytes) || (bytes && !t->data)) {
        set_error(err, "input '%s': %s of shape %s is invalid or has no data", name, what,
                  shape_to_string(t->rank, t->dims, got_shape, sizeof(got_shape)));
        return IFD_ERR_INVALID_ARGUMENT;
    }
    return IFD_OK;
}

/* Operators trust the declared key and value types of a map (prepare() saw
 * them), so a map of other types must not reach them. */
static ifd_status check_map(const char *name, const char *what, const ifd_type_info *want,
                            const ifd_value *v, ifd_error *err)
{
    const ifd_tensor *k = &v->map_keys, *x = &v->map_values;
    if (k->dtype != want->key_dtype || x->dtype != want->dtype) {
        set_error(err, "input '%s': %s should map %s to %s, got %s to %s", name, what,
                  ifd_dtype_name(want->key_dtype), ifd_dtype_name(want->dtype),
                  ifd_dtype_name(k->dtype), ifd_dtype_name(x->dtype));
        return IFD_ERR_INVALID_ARGUMENT;
    }
    if (k->rank != 1 || x->rank != 1 || k->dims[0] != x->dims[0]) {
        set_error(err, "input '%s': %s needs 1-D keys and values of one length", name, what);
        return IFD_ERR_INVALID_ARGUMENT;
    }
    ifd_status st = check_tensor_storage(name, "map keys", k, err);
    return st == IFD_OK ? check_tensor_storage(name, "map values", x, err) : st;
}

static ifd_status check_input(const model_io *io, const ifd_value *v, ifd_error *err)
{
    const ifd_type_info *want = &io->info.type;
    const char *name = io->info.name;
    char got_shape[128], want_shape[128];
    if (!v) {
        set_error(err, "input '%s' is missing", name);
        return IFD_ERR_INVALID_ARGUMENT;
    }
    if (v->kind != want->kind) {
        set_error(err, "input '%s': expected a %s, got a %s", name, kind_name(want->kind),
                  kind_name(v->kind));
        return IFD_ERR_INVALID_ARGUMENT;
    }
    if (v->kind == IFD_VALUE_MAP)
        return check_map(name, "the map", want, v, err);
    if (v->kind == IFD_VALUE_OPTIONAL) {
        /* empty, or one value of the declared kind holding the declared dtype */
        if (v->length == 0)
            return IFD_OK;
        const ifd_value *item = v->length == 1 && v->items ? v->items[0] : NULL;
        if (!item || item->kind != want->elem_kind) {
            set_error(err, "input '%s': the optional should hold one %s", name,
                      kind_name(want->elem_kind));
            return IFD_ERR_INVALID_ARGUMENT;
        }
        size_t n = item->kind == IFD_VALUE_TENSOR ? 1 : item->length;
        for (size_t i = 0; i < n; i++) {
            const ifd_value *t = item->kind == IFD_VALUE_TENSOR ? item : item->items ? item->items[i] : NULL;
            if (!t || t->kind != IFD_VALUE_TENSOR || t->tensor.dtype != want->dtype) {
                set_error(err, "input '%s': the optional should hold %s tensors", name,
                          ifd_dtype_name(want->dtype));
                return IFD_ERR_INVALID_ARGUMENT;
            }
            ifd_status st = check_tensor_storage(name, "the optional's tensor", &t->tensor, err);
            if (st != IFD_OK)
                return st;
        }
        return IFD_OK;
    }
    if (v->kind == IFD_VALUE_SEQUENCE) {
        /* items must be what the model declared, as for maps */
        for (size_t i = 0; i < v->length; i++) {
            const ifd_value *item = v->items ? v->items[i] : NULL;
            char what[48];
            snprintf(what, sizeof(what), "sequence item %zu", i);
            if (!item || item->kind != want->elem_kind) {
                set_error(err, "input '%s': %s should be a %s", name, what,
                          kind_name(want->elem_kind));
                return IFD_ERR_INVALID_ARGUMENT;
            }
            ifd_status st;
            if (item->kind == IFD_VALUE_MAP) {
                st = check_map(name, what, want, item, err);
            } else if (item->kind == IFD_VALUE_TENSOR && item->tensor.dtype != want->dtype) {
                set_error(err, "input '%s': %s should be a %s tensor, got %s", name, what,
                          ifd_dtype_name(want->dtype), ifd_dtype_name(item->tensor.dtype));
                st = IFD_ERR_INVALID_ARGUMENT;
            } else {
                st = item->kind == IFD_VALUE_TENSOR
                         ? check_tensor_storage(name, what, &item->tensor, err)
                         : IFD_OK;
            }
            if (st != IFD_OK)
                return st;
        }
        return IFD_OK;
    }
    const ifd_tensor *t = &v->tensor;
    if (t->rank < 0 || t->rank > IFD_MAX_RANK)
        return check_tensor_storage(name, "the tensor", t, err);
    bool shape_ok = want->rank < 0 || want->rank == t->rank;
    for (int i = 0; shape_ok && want->rank >= 0 && i < t->rank; i++)
        if (want->dims[i] >= 0 && want->dims[i] != t->dims[i])
            shape_ok = false;
    if (t->dtype != want->dtype || !shape_ok) {
        set_error(err, "input '%s': expected %s %s, got %s %s", name,
                  ifd_dtype_name(want->dtype),
                  want->rank >= 0 ? shape_to_string(want->rank, want->dims, want_shape, sizeof(want_shape))
                                  : "of any shape",
                  ifd_dtype_name(t->dtype), shape_to_string(t->rank, t->dims, got_shape, sizeof(got_shape)));
        return IFD_ERR_INVALID_ARGUMENT;
    }
    size_t bytes;
    if (!shape_bytes(t->dtype, t->rank, t->dims, &bytes) || (bytes && !t->data)) {
        set_error(err, "input '%s': shape %s is invalid or has no data", name,
                  shape_to_string(t->rank, t->dims, got_shape, sizeof(got_shape)));
        return IFD_ERR_INVALID_ARGUMENT;
    }
    return IFD_OK;
}

/* Give a graph output to the caller: move an intermediate's buffer out of the
 * session when nothing else still needs it, copy otherwise. */
static ifd_status take_output(struct session_private *s, const ifd_model *m, size_t k,
                              ifd_value **out, ifd_error *err)
{
    int slot = m->outputs[k].slot;
    const ifd_value *v = s->bound[slot];
    if (!v) {
        set_error(err, "output '%s' was not computed", m->outputs[k].info.name);
        return IFD_ERR_RUNTIME;
    }
    bool movable = v == &s->owned[slot];
    for (size_t j = k + 1; j < m->n_outputs && movable; j++)
        if (m->outputs[j].slot == slot)
            movable = false;
    if (!movable)
        return value_clone(v, out, err);
    ifd_value *moved = malloc(sizeof(*moved));
    if (!moved) {
        set_error(err, "out of memory");
        return IFD_ERR_NO_MEMORY;
    }
    const ifd_tensor *t = &v->tensor;
    size_t bytes;
    if (v->kind == IFD_VALUE_TENSOR && t->dtype != IFD_STRING && t->owns_data &&
        t->capacity <= COPIED_OUTPUT_BYTES && shape_bytes(t->dtype, t->rank, t->dims, &bytes)) {
        /* The output is copied into a plain malloc'd buffer and its pooled
         * buffer stays in the session. Moved out, the next run would
         * aligned_alloc a new one: for a label or a row of scores that
         * costs more than the copy, and a large buffer comes back as fresh
         * pages (aligned_alloc asks the heap for the size plus the
         * alignment, so the caller's freed buffer of the same size never
         * serves it), each a page fault on first write. The transformer
         * encoder's 1 MiB output at batch 8 cost ~230 faults a run, 0.4 ms
         * of its 28 (its second layer's attention wrote that buffer first);
         * the copy takes ~0.05 ms. */
        void *copy = malloc(bytes ? bytes : 1);
        if (!copy) {
            free(moved);
            set_error(err, "out of memory");
            return IFD_ERR_NO_MEMORY;
        }
        memcpy(copy, t->data, bytes);
        *moved = *v;
        moved->tensor.data = copy;
        moved->tensor.capacity = bytes;
        moved->tensor.owns_data = 1;
        release_slot(s, slot);
        *out = moved;
        return IFD_OK;
    }
    *moved = s->owned[slot];
    memset(&s->owned[slot], 0, sizeof(s->owned[slot]));
    s->bound[slot] = NULL;
    if (moved->kind == IFD_VALUE_TENSOR && moved->tensor.dtype != IFD_STRING) {
        /* pooled buffers are aligned_alloc'd, which free() accepts */
        moved->tensor.owns_data = 1;
    }
    *out = moved;
    return IFD_OK;
}

/* A slice of a split run: its outputs go to s->output_rows (copied there
 * when an operator did not write them in place), not to the caller. */
static ifd_status finish_rows(struct session_private *s, const ifd_model *m, ifd_error *err)
{
    char got[128], want[128];
    if (!output_rows_ready(s)) {
        set_error(err, "the batch's outputs could not be made");
        return IFD_ERR_NO_MEMORY;
    }
    for (size_t k = 0; k < m->n_outputs; k++) {
        const ifd_value *v = s->bound[m->outputs[k].slot];
        const ifd_tensor *rows = &s->output_rows[k];
        if (!v) {
            set_error(err, "output '%s' was not computed", m->outputs[k].info.name);
            return IFD_ERR_RUNTIME;
        }
        if (v->kind == IFD_VALUE_TENSOR && v->tensor.data == rows->data)
            continue;
        size_t bytes;
        if (v->kind != IFD_VALUE_TENSOR || v->tensor.dtype != rows->dtype ||
            !tensor_same_shape(&v->tensor, rows) ||
            !shape_bytes(rows->dtype, rows->rank, rows->dims, &bytes)) {
            set_error(err, "output '%s': a slice of the batch gave %s, not the %s its rows hold",
                      m->outputs[k].info.name,
                      v->kind == IFD_VALUE_TENSOR
                          ? shape_to_string(v->tensor.rank, v->tensor.dims, got, sizeof(got))
                          : kind_name(v->kind),
                      shape_to_string(rows->rank, rows->dims, want, sizeof(want)));
            return IFD_ERR_RUNTIME;
        }
        if (bytes)
            memcpy(rows->data, v->tensor.data, bytes);
    }
    return IFD_OK;
}

static uint64_t monotonic_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

/* Run every node on bound inputs, then hand the outputs to the caller
 * (outputs) or write them into a split run's rows (s->output_rows). */
static ifd_status run_graph(struct session_private *s, const ifd_value *const *inputs,
                            ifd_value **outputs, ifd_error *err)
{
    const ifd_model *m = s->model;
    ifd_status st = IFD_OK;
    if (m->n_values)
        memcpy(s->bound, s->bound_at_start, m->n_values * sizeof(*s->bound));
    for (size_t i = 0; i < m->n_inputs; i++)
        s->bound[m->inputs[i].slot] = inputs[i];

    for (size_t n = 0; n < m->n_nodes && st == IFD_OK; n++) {
        const model_node *node = &m->nodes[n];
        for (int k = 0; k < node->op.n_inputs + node->op.n_implicit; k++) {
            int slot = node->input_slots[k];
            s->node_inputs[k] = slot >= 0 ? s->bound[slot] : NULL;
            if (slot >= 0 && !s->node_inputs[k]) {
                set_error(err, "%s node '%s': input '%s' was not computed", node->op.op_type,
                          node->op.name, m->values[slot].info.name);
                st = IFD_ERR_RUNTIME;
            }
        }
        if (st != IFD_OK)
            break;
        op_ctx ctx = {
            .node = &node->op,
            .n_inputs = node->op.n_inputs,
            .inputs = s->node_inputs,
            .session = s,
            .node_index = (int)n,
            .err = err,
        };
        err->message[0] = '\0';
        uint64_t started = s->profile_ns ? monotonic_ns() : 0;
        int failed = node->def->run(&ctx);
        if (s->profile_ns) {
            s->profile_ns[n] += monotonic_ns() - started;
            s->profile_runs[n]++;
        }
        if (failed != 0) {
            st = IFD_ERR_RUNTIME;
            /* the caller is promised a reason: name the node at least */
            if (!err->message[0])
                set_error(err, "%s node '%s' failed without giving a reason", node->op.op_type,
                          node->op.name);
        }
        for (size_t i = 0; i < s->n_scratch; i++)
            pool_give(s, s->scratch[i].data, s->scratch[i].capacity);
        s->n_scratch = 0;
        if (st != IFD_OK)
            break;
        /* free what no later node reads (node_releases) */
        for (size_t r = s->release_first[n]; r < s->release_first[n + 1]; r++)
            release_slot(s, s->release_slots[r]);
    }

    if (s->output_rows && st == IFD_OK)
        st = finish_rows(s, m, err);
    for (size_t k = 0; outputs && k < m->n_outputs && st == IFD_OK; k++)
        st = take_output(s, m, k, &outputs[k], err);
    if (outputs && st != IFD_OK)
        for (size_t k = 0; k < m->n_outputs; k++) {
            ifd_value_free(outputs[k]);
            outputs[k] = NULL;
        }
    for (size_t i = 0; i < s->n_intermediates; i++) {
        int slot = s->intermediates[i];
        if (s->bound[slot] == &s->owned[slot])
            release_slot(s, slot);
    }
    return st;
}

ifd_status ifd_session_run(ifd_session *session, const ifd_value *const *inputs,
                           ifd_value **outputs, ifd_error *err)
{
    struct session_private *s = &session->p;
    const ifd_model *m = s->model;
    ifd_error local;
    if (!err)
        err = &local;

    for (size_t i = 0; i < m->n_outputs; i++)
        outputs[i] = NULL;
    for (size_t i = 0; i < m->n_inputs; i++) {
        ifd_status st = check_input(&m->inputs[i], inputs[i], err);
        if (st != IFD_OK)
            return st;
    }
    size_t slices = s->split ? batch_split_slices(s->split, inputs) : 0;
    if (slices > 0)
        return batch_split_run(s->split, slices, inputs, outputs, err);
    return run_graph(s, inputs, outputs, err);
}

ifd_status session_run_rows(ifd_session *session, const ifd_value *const *inputs,
                            const ifd_tensor *rows, const atomic_int *rows_ready,
                            ifd_error *err)
{
    struct session_private *s = &session->p;
    s->output_rows = rows;
    s->rows_ready = rows_ready;
    ifd_status st = run_graph(s, inputs, NULL, err);
    s->output_rows = NULL;
    s->rows_ready = NULL;
    return st;
}

/* Adds the node times of `from` (a session of the same model) into nodes. */
static void add_profile(const struct session_private *from, ifd_node_profile *nodes,
                        size_t count)
{
    for (size_t n = 0; from->profile_ns && n < count; n++) {
        nodes[n].runs += from->profile_runs[n];
        nodes[n].total_ns += from->profile_ns[n];
    }
}

size_t ifd_session_profile(const ifd_session *session, ifd_node_profile *nodes, size_t capacity)
{
    const struct session_private *s = &session->p;
    const ifd_model *m = s->model;
    if (!s->profile_ns)
        return 0;
    size_t count = capacity < m->n_nodes ? capacity : m->n_nodes;
    for (size_t n = 0; n < count; n++) {
        const op_node *op = &m->nodes[n].op;
        nodes[n] = (ifd_node_profile){.name = op->name ? op->name : "",
                                      .op_type = op->op_type ? op->op_type : ""};
    }
    add_profile(s, nodes, count);
    for (size_t i = 0; s->split && i < batch_split_slice_count(s->split); i++) {
        const ifd_session *slice = batch_split_slice_session(s->split, i);
        if (slice)
            add_profile(&slice->p, nodes, count);
    }
    return m->n_nodes;
}

void ifd_session_profile_reset(ifd_session *session)
{
    struct session_private *s = &session->p;
    if (!s->profile_ns)
        return;
    memset(s->profile_runs, 0, s->model->n_nodes * sizeof(*s->profile_runs));
    memset(s->profile_ns, 0, s->model->n_nodes * sizeof(*s->profile_ns));
    for (size_t i = 0; s->split && i < batch_split_slice_count(s->split); i++) {
        ifd_session *slice = batch_split_slice_session(s->split, i);
        if (slice)
            ifd_session_profile_reset(slice);
    }
}

int ifd_session_batch_split(const ifd_session *session, char *reason, size_t size)
{
    const struct session_private *s = &session->p;
    if (reason && size)
        snprintf(reason, size, "%s", s->split_reason);
    return s->split != NULL;
}

/* Constant folding borrows a session of the model being loaded to run one
 * node through the operator's own run(), so a folded value is bit for bit
 * what the graph would have computed. The node's inputs are bound straight
 * from the model's constants as they are now (earlier folds included). */
ifd_status session_run_node_once(ifd_session *session, size_t n, size_t max_bytes,
                                 ifd_tensor *outputs, ifd_error *err)
{
    struct session_private *s = &session->p;
    const ifd_model *m = s->model;
    const model_node *node = &m->nodes[n];
    ifd_value *bound = calloc((size_t)node->op.n_inputs + 1, sizeof(*bound));
    if (!bound) {
        set_error(err, "out of memory");
        return IFD_ERR_NO_MEMORY;
    }
    for (int k = 0; k < node->op.n_inputs; k++) {
        int slot = node->input_slots[k];
        s->node_inputs[k] = NULL;
        if (slot < 0)
            continue;
        bound[k].kind = IFD_VALUE_TENSOR;
        bound[k].tensor = tensor_view(&m->values[slot].constant_storage);
        s->node_inputs[k] = &bound[k];
    }
    size_t saved_limit = s->max_tensor_bytes;
    s->max_tensor_bytes = max_bytes;
    s->folding = true;
    op_ctx ctx = {.node = &node->op, .n_inputs = node->op.n_inputs, .inputs = s->node_inputs,
                  .session = s, .node_index = (int)n, .err = err};
    err->message[0] = '\0';
    ifd_status st = node->def->run(&ctx) == 0 ? IFD_OK : IFD_ERR_RUNTIME;
    s->max_tensor_bytes = saved_limit;
    s->folding = false;
    for (size_t i = 0; i < s->n_scratch; i++)
        pool_give(s, s->scratch[i].data, s->scratch[i].capacity);
    s->n_scratch = 0;
    for (int k = 0; k < node->op.n_outputs && st == IFD_OK; k++)
        if (s->owned[node->output_slots[k]].kind != IFD_VALUE_TENSOR ||
            s->bound[node->output_slots[k]] != &s->owned[node->output_slots[k]]) {
            set_error(err, "output %d is not a tensor", k);
            st = IFD_ERR_UNSUPPORTED;
        }
    for (int k = 0; k < node->op.n_outputs; k++) {
        ifd_value *v = &s->owned[node->output_slots[k]];
        if (st == IFD_OK) {
            outputs[k] = v->tensor;
            /* pooled buffers are aligned_alloc'd, which free() accepts */
            outputs[k].owns_data = 1;
            memset(v, 0, sizeof(*v));
        } else {
            release_slot(s, node->output_slots[k]);
        }
        s->bound[node->output_slots[k]] = NULL;
    }
    free(bound);
    return st;
}

size_t session_buffer_allocations(const ifd_session *session)
{
    return session->p.buffer_allocations;
}
