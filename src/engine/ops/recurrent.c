/*
 * ops/recurrent.c — the recurrent layers RNN, GRU and LSTM, versions 7..21
 * (7 settled the attributes and defaults followed here, 14 added `layout`,
 * onnx 1.12 Operators.md; versions 1 and 3 had other attributes and are not
 * served).
 *
 * Each direction runs as: one GEMM for the input projection of every time
 * step at once (X * W^T, [steps * batch, gates * hidden]) with both biases
 * folded into it afterwards, then per step the product of the previous
 * hidden state with R^T and the gate arithmetic. The step is cut into chunks
 * of CHUNK_UNITS hidden units, each the product of the whole batch with that
 * chunk's rows of every gate (R packed once at load chunk by chunk, gates
 * side by side) followed by the gates of those units: chunks share nothing
 * but the previous state (double-buffered), so a step runs over the thread
 * pool without a barrier between product and gates, and the gates take the
 * activations array-wise through kernels/vmath.h rather than one libm call
 * per element. GRU without linear_before_reset multiplies the reset-scaled
 * state by R's candidate rows, which needs every unit's reset gate first: it
 * keeps two whole-batch products per step (over the pool) with the gates on
 * the caller's thread. An LSTM with the default activations takes its gates
 * from kernels/lstm_cell.h (one fused pass per row of a chunk). When the
 * projection of every step at once would be too big to stay in cache
 * (XW_STEP_BYTES), an LSTM's chunks instead multiply their step's X rows by
 * W (packed by chunks too) into the accumulator of H x R^T. At several
 * threads an LSTM with enough batch rows is instead cut by rows, each thread
 * running every step of its own rows with no step barrier (shares); with
 * fewer, each thread owns some chunks of every step (lanes) and multiplies
 * the units of h it computed itself while it waits for the other threads'
 * (take_lane_step_split, kernels/lstm_cell.h's partial product). A default LSTM
 * of 1 to 3 rows whose step is too small for the pool runs each step as one
 * fused product and cell over the same packed R (lstm_step_rows_f32). Two
 * stacked forward LSTM layers fused into one StackedLSTM node by the
 * optimiser run as a pipeline at 2 threads, one layer per thread (see
 * stacked_state). Gate order is
 * ONNX's: LSTM i, o, f, c; GRU z, r, h. sequence_lens lets each batch row stop
 * early: a row past its length keeps its state and writes zeros to Y; the
 * reverse direction starts at each row's own last step; a row of length 0
 * gives zeros for Y_h and Y_c, as ONNX Runtime does (not its initial state). `clip` bounds every
 * gate's input before its activation; activations (and their alpha/beta,
 * consumed in order by the functions that take them) default to Sigmoid/Tanh
 * as the spec says. float32 only; other types are refused at load.
 */
#include <math.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../kernels/gemm.h"
#include "../kernels/lstm_cell.h"
#include "../kernels/vmath.h"
#include "op_util.h"

/* Hidden units per chunk of a step: a multiple of the GEMM's 16-column
 * slivers; 32 gives a 128-unit layer 4 tasks for 2 threads. Measured on the
 * bench LSTM (hidden 128) at 1 thread, CPU time per run against 16 units:
 * -10% at batch 8 and 64, -8% at batch 1; 64 units gains no more. */
#define CHUNK_UNITS 32

/* See step_input in recurrent_run. On the bench LSTM (hidden 128, 32
 * steps, 1 thread) the projection up front was 4% faster at batch 8 (512
 * KiB of it) and per step 24% faster at batch 64 (4 MiB): a quarter of
 * this machine's 2 MiB L2 is where the second starts to pay. */
#define XW_STEP_BYTES (512 * 1024)

static inline void cpu_pause(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

typedef enum cell_kind { CELL_RNN, CELL_GRU, CELL_LSTM } cell_kind;

typedef enum act_kind {
    ACT_SIGMOID, ACT_TANH, ACT_RELU, ACT_AFFINE, ACT_LEAKY_RELU, ACT_THRESHOLDED_RELU,
    ACT_SCALED_TANH, ACT_HARD_SIGMOID, ACT_ELU, ACT_SOFTSIGN, ACT_SOFTPLUS
} act_kind;

typedef struct activation_fn {
    act_kind kind;
    float alpha, beta;
} activation_fn;

#define MAX_ACTS 6 /* 3 per direction (LSTM), two directions */

typedef struct recurrent_state {
    cell_kind cell;
    int gates;             /* 1, 3 or 4 */
    int directions;        /* 1 or 2 */
    bool reverse_only;     /* direction = "reverse" */
    int64_t hidden;
    int layout;            /* 0: [seq, batch, ...], 1: [batch, seq, ...] */
    float clip;            /* 0: none */
    bool linear_before_reset, input_forget;
    activation_fn acts[MAX_ACTS];
    /* W and R of every direction packed once at load into the GEMM's layout
     * when they are initializers (each step's H x R^T would otherwise repack
     * R), R by chunks (pack_r_chunks); NULL for GRU without
     * linear_before_reset, which multiplies by row blocks of R */
    float *packed_w, *packed_r;
    size_t packed_w_floats, packed_r_floats; /* per direction */
    /* LSTM: W packed by chunks as R is, for the per-step input projection
     * (see step_input); NULL otherwise */
    float *packed_wc;
    size_t packed_wc_floats;
    int64_t packed_input;
} recurrent_state;

static void recurrent_free(void *state)
{
    recurrent_state *st = state;
    if (st) {
        gemm_packed_free(st->packed_w);
        gemm_packed_free(st->packed_r);
        gemm_packed_free(st->packed_wc);
    }
    free(st);
}

/* Whether a step's gates need only H x R^T (all but GRU without
 * linear_before_reset), so that it runs by chunks of hidden units. */
static bool chunked_cell(const recurrent_state *st)
{
    return st->cell != CELL_GRU || st->linear_before_reset;
}

/* Floats of one full chunk of a [G*H, k] weight (R: k = H; W: k = input)
 * packed, and of all chunks of a direction. */
static size_t chunk_floats(const recurrent_state *st, size_t k)
{
    int64_t cw = st->hidden < CHUNK_UNITS ? st->hidden : CHUNK_UNITS;
    return gemm_packed_b_floats(k, (size_t)(st->gates * cw));
}

static size_t chunks_floats(const recurrent_state *st, size_t k)
{
    size_t h = (size_t)st->hidden, full = h / CHUNK_UNITS, last = h % CHUNK_UNITS;
    size_t total = full * chunk_floats(st, k);
    if (last)
        total += gemm_packed_b_floats(k, (size_t)st->gates * last);
    return total;
}

static size_t r_chunk_floats(const recurrent_state *st)
{
    return chunk_floats(st, (size_t)st->hidden);
}

static size_t r_chunks_floats(const recurrent_state *st)
{
    return chunks_floats(st, (size_t)st->hidden);
}

/* A [G*H, k] weight (R_d, or W_d for step_input) as one packed B^T operand
 * per chunk of CHUNK_UNITS hidden units: chunk j's columns are gate 0's
 * units of the chunk, then gate 1's... `gathered` holds G*CHUNK_UNITS rows
 * of k floats. */
static void pack_chunks(const recurrent_state *st, const float *r, size_t k, float *packed,
                        float *gathered)
{
    size_t h = (size_t)st->hidden, g = (size_t)st->gates;
    for (size_t k0 = 0; k0 < h; k0 += CHUNK_UNITS) {
        size_t cw = h - k0 < CHUNK_UNITS ? h - k0 : CHUNK_UNITS;
        for (size_t q = 0; q < g; q++)
            memcpy(gathered + q * cw * k, r + (q * h + k0) * k, cw * k * sizeof(float));
        gemm_pack_b(true, k, g * cw, gathered, k, packed + k0 / CHUNK_UNITS * chunk_floats(st, k));
    }
}

static void pack_r_chunks(const recurrent_state *st, const float *r, float *packed,
                          float *gathered)
{
    pack_chunks(st, r, (size_t)st->hidden, packed, gathered);
}

/* Both weights of every direction as B^T operands: W_d is [G*H, input], R_d
 * [G*H, H]. Missing memory leaves them unpacked (run packs per call). */
static void pack_recurrent_weights(op_node *node, recurrent_state *st)
{
    const value_info *w = node->inputs[1], *r = node->inputs[2];
    const ifd_tensor *wc = w ? w->constant : NULL, *rc = r ? r->constant : NULL;
    if (!wc || !rc || wc->dtype != IFD_FLOAT || rc->dtype != IFD_FLOAT || wc->rank != 3 ||
        rc->rank != 3 || (st->cell == CELL_GRU && !st->linear_before_reset))
        return;
    size_t gh = (size_t)(st->gates * st->hidden), input = (size_t)wc->dims[2];
    size_t h = (size_t)st->hidden, dirs = (size_t)st->directions;
    size_t wf = gemm_packed_b_floats(input, gh), rf = r_chunks_floats(st);
    if (wf == 0 || rf == 0 || input == 0 || wf > IFD_MAX_TENSOR_BYTES / sizeof(float) / dirs ||
        rf > IFD_MAX_TENSOR_BYTES / sizeof(float) / dirs)
        return;
    size_t wcf = st->cell == CELL_LSTM ? chunks_floats(st, input) : 0;
    if (wcf > IFD_MAX_TENSOR_BYTES / sizeof(float) / dirs)
        return;
    /* on 64-byte lines (gemm_packed_alloc), and chunk and direction sizes
     * are whole sliver rows: every row the step kernels load is one line */
    st->packed_w = gemm_packed_alloc(wf * dirs);
    st->packed_r = gemm_packed_alloc(rf * dirs);
    st->packed_wc = wcf ? gemm_packed_alloc(wcf * dirs) : NULL;
    size_t widest = input > h ? input : h;
    float *gathered = malloc((size_t)st->gates * CHUNK_UNITS * widest * sizeof(float));
    if (!st->packed_w || !st->packed_r || (wcf && !st->packed_wc) || !gathered) {
        gemm_packed_free(st->packed_w);
        gemm_packed_free(st->packed_r);
        gemm_packed_free(st->packed_wc);
        free(gathered);
        st->packed_w = st->packed_r = st->packed_wc = NULL;
        return;
    }
    for (size_t d = 0; d < dirs; d++) {
        const float *wd = (const float *)wc->data + d * gh * input;
        gemm_pack_b(true, input, gh, wd, input, st->packed_w + d * wf);
        pack_r_chunks(st, (const float *)rc->data + d * gh * h, st->packed_r + d * rf, gathered);
        if (wcf)
            pack_chunks(st, wd, input, st->packed_wc + d * wcf, gathered);
    }
    free(gathered);
    st->packed_wc_floats = wcf;
    st->packed_w_floats = wf;
    st->packed_r_floats = rf;
    st->packed_input = (int64_t)input;
}

static const struct {
    const char *name;
    act_kind kind;
    bool takes_alpha, takes_beta;
    /* Defaults when activation_alpha/beta run out: those of the ONNX
     * operators of that name, as the spec says. ONNX Runtime uses 0 instead
     * for Affine, ThresholdedRelu and ScaledTanh (which has no operator of its
     * own); models normally give these values explicitly. */
    float alpha, beta;
} act_names[] = {
    {"Sigmoid", ACT_SIGMOID, false, false, 0, 0},
    {"Tanh", ACT_TANH, false, false, 0, 0},
    {"Relu", ACT_RELU, false, false, 0, 0},
    {"Affine", ACT_AFFINE, true, true, 1.0f, 0.0f},
    {"LeakyRelu", ACT_LEAKY_RELU, true, false, 0.01f, 0},
    {"ThresholdedRelu", ACT_THRESHOLDED_RELU, true, false, 1.0f, 0},
    {"ScaledTanh", ACT_SCALED_TANH, true, true, 1.0f, 1.0f},
    {"HardSigmoid", ACT_HARD_SIGMOID, true, true, 0.2f, 0.5f},
    {"Elu", ACT_ELU, true, false, 1.0f, 0},
    {"Softsign", ACT_SOFTSIGN, false, false, 0, 0},
    {"Softplus", ACT_SOFTPLUS, false, false, 0, 0},
};

static inline float activate(const activation_fn *f, float x)
{
    switch (f->kind) {
    case ACT_SIGMOID: return 1.0f / (1.0f + expf(-x));
    case ACT_TANH: return tanhf(x);
    case ACT_RELU: return x > 0 ? x : 0;
    case ACT_AFFINE: return f->alpha * x + f->beta;
    case ACT_LEAKY_RELU: return x >= 0 ? x : f->alpha * x;
    case ACT_THRESHOLDED_RELU: return x > f->alpha ? x : 0;
    case ACT_SCALED_TANH: return f->alpha * tanhf(f->beta * x);
    case ACT_HARD_SIGMOID: {
        float v = f->alpha * x + f->beta;
        return v < 0 ? 0 : v > 1 ? 1 : v;
    }
    case ACT_ELU: return x >= 0 ? x : f->alpha * (expf(x) - 1.0f);
    case ACT_SOFTSIGN: return x / (1.0f + fabsf(x));
    case ACT_SOFTPLUS: return x > 0 ? x + log1pf(expf(-x)) : log1pf(expf(x));
    }
    return x;
}

/* f over n values in place: the logistic and tanh families through vmath,
 * the piecewise ones element by element. */
static void activate_array(const activation_fn *f, float *v, size_t n)
{
    switch (f->kind) {
    case ACT_SIGMOID: vmath_sigmoid(v, v, n); return;
    case ACT_TANH: vmath_tanh(v, v, n); return;
    case ACT_SCALED_TANH:
        for (size_t k = 0; k < n; k++)
            v[k] *= f->beta;
        vmath_tanh(v, v, n);
        for (size_t k = 0; k < n; k++)
            v[k] *= f->alpha;
        return;
    default:
        for (size_t k = 0; k < n; k++)
            v[k] = activate(f, v[k]);
    }
}

static void clip_array(float *v, size_t n, float clip)
{
    if (clip > 0)
        for (size_t k = 0; k < n; k++)
            v[k] = v[k] < -clip ? -clip : v[k] > clip ? clip : v[k];
}

/* ---- prepare ------------------------------------------------------------------ */

static int parse_activations(op_node *node, recurrent_state *st, ifd_error *err)
{
    int per_direction = st->cell == CELL_RNN ? 1 : st->cell == CELL_GRU ? 2 : 3;
    int n = per_direction * st->directions;
    const ifd_string *names;
    size_t given = op_attr_strings(node, "activations", &names);
    const float *alphas, *betas;
    size_t n_alpha = op_attr_floats(node, "activation_alpha", &alphas);
    size_t n_beta = op_attr_floats(node, "activation_beta", &betas);
    size_t next_alpha = 0, next_beta = 0;
    if (given && given != (size_t)n)
        return op_prepare_fail(node, err, "activations has %zu names; %s with %d direction%s "
                               "takes %d", given, node->op_type, st->directions,
                               st->directions == 1 ? "" : "s", n);
    for (int i = 0; i < n; i++) {
        /* defaults: RNN Tanh; GRU Sigmoid, Tanh; LSTM Sigmoid, Tanh, Tanh */
        const char *name = st->cell == CELL_RNN ? "Tanh"
                           : i % per_direction == 0 ? "Sigmoid"
                                                   : "Tanh";
        if (given)
            name = names[i].data ? names[i].data : "";
        size_t k;
        for (k = 0; k < sizeof(act_names) / sizeof(act_names[0]); k++)
            if (strcasecmp(name, act_names[k].name) == 0)
                break;
        if (k == sizeof(act_names) / sizeof(act_names[0]))
            return op_prepare_fail(node, err, "unknown activation '%s'", name);
        activation_fn *f = &st->acts[i];
        f->kind = act_names[k].kind;
        f->alpha = act_names[k].alpha;
        f->beta = act_names[k].beta;
        if (given && act_names[k].takes_alpha && next_alpha < n_alpha)
            f->alpha = alphas[next_alpha++];
        if (given && act_names[k].takes_beta && next_beta < n_beta)
            f->beta = betas[next_beta++];
    }
    return 0;
}

/* Shape of input i when known: its dims, or NULL. */
static const int64_t *known_dims(const op_node *node, int i, int rank)
{
    const value_info *v = input_info(node, i);
    if (!v || v->rank != rank)
        return NULL;
    for (int k = 0; k < rank; k++)
        if (v->dims[k] < 0)
            return NULL;
    return v->dims;
}

static int recurrent_prepare(op_node *node, ifd_error *err)
{
    recurrent_state *st = calloc(1, sizeof(*st));
    if (!st)
        return op_prepare_fail(node, err, "out of memory");
    node->state = st;
    st->cell = strcmp(node->op_type, "RNN") == 0   ? CELL_RNN
               : strcmp(node->op_type, "GRU") == 0 ? CELL_GRU
                                                   : CELL_LSTM;
    st->gates = st->cell == CELL_RNN ? 1 : st->cell == CELL_GRU ? 3 : 4;
    /* inputs: X, W, R, B, sequence_lens, initial_h (, initial_c, P for LSTM) */
    for (int i = 0; i < node->n_inputs; i++) {
        const value_info *v = node->inputs[i];
        if (!v)
            continue;
        ifd_dtype want = i == 4 ? IFD_INT32 : IFD_FLOAT;
        if (v->kind != IFD_VALUE_TENSOR || v->dtype != want)
            return op_prepare_fail(node, err, "input %d ('%s') must be %s, not %s (float32 "
                                   "recurrent layers only)", i, v->name, ifd_dtype_name(want),
                                   ifd_dtype_name(v->dtype));
    }
    const char *direction = op_attr_string(node, "direction", "forward");
    if (strcmp(direction, "forward") == 0)
        st->directions = 1;
    else if (strcmp(direction, "reverse") == 0)
        st->directions = 1, st->reverse_only = true;
    else if (strcmp(direction, "bidirectional") == 0)
        st->directions = 2;
    else
        return op_prepare_fail(node, err, "direction '%s' is not forward, reverse or "
                               "bidirectional", direction);
    st->layout = (int)op_attr_int(node, "layout", 0);
    if (st->layout != 0 && st->layout != 1)
        return op_prepare_fail(node, err, "layout must be 0 or 1, not %d", st->layout);
    st->clip = op_attr_float(node, "clip", 0.0f);
    if (op_attr_has(node, "clip") && !(st->clip > 0))
        return op_prepare_fail(node, err, "clip must be positive");
    st->linear_before_reset = op_attr_int(node, "linear_before_reset", 0) != 0;
    st->input_forget = op_attr_int(node, "input_forget", 0) != 0;
    if (parse_activations(node, st, err))
        return -1;

    const int64_t *w = known_dims(node, 1, 3), *r = known_dims(node, 2, 3);
    st->hidden = op_attr_int(node, "hidden_size", r ? r[2] : -1);
    if (!op_attr_has(node, "hidden_size") && !r)
        return op_prepare_fail(node, err, "hidden_size is needed when R's shape is unknown");
    if (st->hidden <= 0)
        return op_prepare_fail(node, err, "hidden_size must be positive, not %lld",
                               (long long)st->hidden);
    /* the weights must agree with hidden_size and the directions */
    int64_t gh = st->gates * st->hidden;
    if (w && (w[0] != st->directions || w[1] != gh))
        return op_prepare_fail(node, err, "W has shape [%lld, %lld, %lld]; %d direction(s) and "
                               "hidden_size %lld need [%d, %lld, input_size]", (long long)w[0],
                               (long long)w[1], (long long)w[2], st->directions,
                               (long long)st->hidden, st->directions, (long long)gh);
    if (r && (r[0] != st->directions || r[1] != gh || r[2] != st->hidden))
        return op_prepare_fail(node, err, "R has shape [%lld, %lld, %lld]; it must be [%d, %lld, "
                               "%lld] for hidden_size %lld", (long long)r[0], (long long)r[1],
                               (long long)r[2], st->directions, (long long)gh,
                               (long long)st->hidden, (long long)st->hidden);
    const int64_t *b = known_dims(node, 3, 2);
    if (b && (b[0] != st->directions || b[1] != 2 * gh))
        return op_prepare_fail(node, err, "B must be [%d, %lld], not [%lld, %lld]", st->directions,
                               (long long)(2 * gh), (long long)b[0], (long long)b[1]);
    const int64_t *p = st->cell == CELL_LSTM ? known_dims(node, 7, 2) : NULL;
    if (p && (p[0] != st->directions || p[1] != 3 * st->hidden))
        return op_prepare_fail(node, err, "P must be [%d, %lld], not [%lld, %lld]", st->directions,
                               (long long)(3 * st->hidden), (long long)p[0], (long long)p[1]);

    const value_info *x = node->inputs[0];
    if (x->rank >= 0 && x->rank != 3)
        return op_prepare_fail(node, err, "X must have rank 3, not %d", x->rank);
    int64_t seq = -1, batch = -1;
    if (x->rank == 3) {
        seq = x->dims[st->layout ? 1 : 0];
        batch = x->dims[st->layout ? 0 : 1];
        if (w && x->dims[2] >= 0 && x->dims[2] != w[2])
            return op_prepare_fail(node, err, "X has input size %lld but W %lld",
                                   (long long)x->dims[2], (long long)w[2]);
    }
    int64_t y_dims[4], h_dims[3];
    if (st->layout == 0) {
        int64_t yd[4] = {seq, st->directions, batch, st->hidden};
        int64_t hd[3] = {st->directions, batch, st->hidden};
        memcpy(y_dims, yd, sizeof(yd));
        memcpy(h_dims, hd, sizeof(hd));
    } else {
        int64_t yd[4] = {batch, seq, st->directions, st->hidden};
        int64_t hd[3] = {batch, st->directions, st->hidden};
        memcpy(y_dims, yd, sizeof(yd));
        memcpy(h_dims, hd, sizeof(hd));
    }
    for (int i = 0; i < node->n_outputs; i++)
        set_output(node, i, IFD_FLOAT, i == 0 ? 4 : 3, i == 0 ? y_dims : h_dims);
    pack_recurrent_weights(node, st);
    return 0;
}

/* ---- run ------------------------------------------------------------------------ */

/* A counter alone on its cache line: the lanes of run_steps poll them. */
typedef struct step_counter {
    atomic_size_t value;
    char pad[64 - sizeof(atomic_size_t)];
} step_counter;

typedef struct direction_run {
    const recurrent_state *st;
    int64_t seq, batch, input, hidden;
    /* the rows this run serves are [row0, row0 + batch) of X's and Y's
     * `pitch` batch rows: all of them, or one thread's share when the batch
     * is split (run_batch_share); h, c, hr and lens start at row0 already */
    int64_t row0, pitch;
    int dir;          /* 0 or 1: index into weights and outputs */
    bool reverse;
    const float *x;   /* X */
    const float *w, *r, *b, *p; /* this direction's W, R, B (or NULL), P (or NULL) */
    const float *packed_w; /* W packed at load, or NULL */
    const float *packed_r; /* R packed by chunks (chunked cells), or NULL */
    const float *packed_wc; /* W packed by chunks when step_input or lane_xw, else NULL */
    bool step_input;  /* each chunk multiplies its step's X rows by W itself (no xw) */
    size_t shares;    /* > 1: the batch is cut into this many runs, one per thread
                         (run_batch_share) */
    bool lane_xw;     /* each chunk projects X's rows onto its units (xw, chunk by
                         chunk) by blocks of steps ahead of its steps (see
                         project_next), the steps add H x R^T to them */
    const int32_t *lens;
    float *xw;        /* [seq * batch, gates * hidden], rows in X's order */
    float *bsum;      /* [gates * hidden]: Wb + Rb (see run_direction), or NULL */
    float *bsum_buf;  /* room for bsum */
    float *h, *h_next; /* [batch, hidden] state, double-buffered by step parity (h before
                          even steps); run_direction leaves the final state in h */
    float *c;         /* LSTM: [batch, hidden] cell state (each unit's own: updated in place) */
    float *hr;        /* [batch, gates * hidden]: chunk j's block at batch * gates * j * CHUNK_UNITS */
    float *rh;        /* GRU: [batch, hidden] reset-scaled state, and its product */
    float *rh_out;
    float *y;         /* output Y or NULL */
    const activation_fn *f, *g, *hact;
    bool default_lstm; /* LSTM with Sigmoid, Tanh, Tanh: the fused lstm_cell_f32 */
    threadpool *pool;
    /* step tasks (see run_steps): lane l's home chunks of step s */
    size_t chunks, n_lanes;
    step_counter *claims; /* [n_lanes]: the next step of lane l's chunks to be taken */
    step_counter *lanes;  /* [n_lanes]: the steps of lane l's chunks done */
    /* lane_xw, [chunks] each: the steps of chunk j's projection claimed and
     * made (published in step order) */
    step_counter *proj_claims, *proj_done;
    size_t proj_steps; /* steps a block of the projection takes */
    /* The two layers of a stacked LSTM as a pipeline (run_stacked_pipeline),
     * each on one thread, both with xw laid out as the projection up front
     * lays it out but made step by step: the lower layer's by blocks of
     * proj_block steps ahead of its steps (`projected` so far), the upper
     * layer's columns [0, given_cols) by the lower layer's thread once it
     * has a step's rows of Y (`above`: the upper layer's run, seen from the
     * lower), the other columns by the upper layer's thread, which starts
     * step s once *input_ready, the lower layer's progress (ready_out),
     * passes s. false, 0 and NULL elsewhere. */
    bool pipelined;
    size_t proj_block, projected, given_cols;
    const struct direction_run *above;
    step_counter *ready_out;
    const step_counter *input_ready;
} direction_run;

static int64_t x_row(const direction_run *d, int64_t t, int64_t b)
{
    b += d->row0;
    return d->st->layout ? b * d->seq + t : t * d->pitch + b;
}

static float *y_at(const direction_run *d, int64_t t, int64_t b)
{
    int dirs = d->st->directions;
    b += d->row0;
    return d->st->layout ? d->y + ((b * d->seq + t) * dirs + d->dir) * d->hidden
                         : d->y + ((t * dirs + d->dir) * d->pitch + b) * d->hidden;
}

/* Where chunk j's gate sums of step s go: [batch, G * cw] rows `*ldh`
 * apart (its block of hr, or with lane_xw its rows of xw at the step's t). */
static float *chunk_sums(const direction_run *d, int64_t s, size_t j, size_t *ldh)
{
    const recurrent_state *st = d->st;
    int64_t H = d->hidden, G = st->gates;
    int64_t k0 = (int64_t)j * CHUNK_UNITS, cw = H - k0 < CHUNK_UNITS ? H - k0 : CHUNK_UNITS;
    size_t n = (size_t)(G * cw);
    *ldh = n; /* from one batch row's gate sums to the next */
    if (!d->lane_xw)
        return d->hr + d->batch * G * k0;
    int64_t t = d->reverse ? d->seq - 1 - s : s;
    *ldh = n * (size_t)(st->layout ? d->seq : 1);
    return d->xw + (size_t)(d->seq * d->batch * G * k0) + x_row(d, t, 0) * (int64_t)n;
}

/* lane_xw: X's rows of steps [s0, s1) by chunk j's rows of W, into the
 * chunk's block of xw ([rows of X, G * cw], X's row order). */
static void project_chunk_steps(const direction_run *d, size_t j, int64_t s0, int64_t s1)
{
    const recurrent_state *st = d->st;
    int64_t H = d->hidden, G = st->gates;
    int64_t k0 = (int64_t)j * CHUNK_UNITS, cw = H - k0 < CHUNK_UNITS ? H - k0 : CHUNK_UNITS;
    size_t n = (size_t)(G * cw);
    gemm_operand wop = {d->packed_wc + j * chunk_floats(st, (size_t)d->input), 0, false, true};
    float *block = d->xw + (size_t)(d->seq * d->batch * G * k0);
    if (!st->layout || (s0 == 0 && s1 == d->seq)) {
        /* every step (all of X), or in layout 0 steps whose rows are
         * contiguous in X and xw: t from s0 on, or in reverse from seq - s1 */
        int64_t row = s0 == 0 && s1 == d->seq ? 0 : x_row(d, d->reverse ? d->seq - s1 : s0, 0);
        gemm_operand xa = {d->x + row * d->input, (size_t)d->input, false, false};
        gemm_f32_ex((size_t)((s1 - s0) * d->batch), n, (size_t)d->input, 1.0f, xa, wop, 0.0f,
                    block + row * (int64_t)n, n, NULL);
        return;
    }
    for (int64_t s = s0; s < s1; s++) { /* layout 1: a step's rows are seq rows apart */
        int64_t row = x_row(d, d->reverse ? d->seq - 1 - s : s, 0);
        gemm_operand xa = {d->x + row * d->input, (size_t)(d->seq * d->input), false, false};
        gemm_f32_ex((size_t)d->batch, n, (size_t)d->input, 1.0f, xa, wop, 0.0f,
                    block + row * (int64_t)n, n * (size_t)d->seq, NULL);
    }
}

/* Claims the next block of chunk j's projection (proj_steps steps), makes
 * it and publishes it once the blocks before it are published too (another
 * thread may still be making one). False when every step was claimed. */
static bool project_next(const direction_run *d, size_t j)
{
    size_t seq = (size_t)d->seq, s0, s1;
    s0 = atomic_load_explicit(&d->proj_claims[j].value, memory_order_relaxed);
    do {
        if (s0 >= seq)
            return false;
        s1 = seq - s0 > d->proj_steps ? s0 + d->proj_steps : seq;
    } while (!atomic_compare_exchange_weak_explicit(&d->proj_claims[j].value, &s0, s1,
                                                    memory_order_relaxed, memory_order_relaxed));
    project_chunk_steps(d, j, (int64_t)s0, (int64_t)s1);
    for (unsigned spins = 0;
         atomic_load_explicit(&d->proj_done[j].value, memory_order_acquire) != s0; spins++) {
        if (spins < 4096)
            cpu_pause();
        else
            sched_yield();
    }
    atomic_store_explicit(&d->proj_done[j].value, s1, memory_order_release);
    return true;
}

/* Until chunk j's projection of step s is made: blocks claimed here, or
 * waited for when another thread claimed them. */
static void project_through(const direction_run *d, size_t j, size_t s)
{
    for (unsigned spins = 0;
         atomic_load_explicit(&d->proj_done[j].value, memory_order_acquire) <= s; spins++) {
        if (project_next(d, j))
            continue;
        if (spins < 4096)
            cpu_pause();
        else
            sched_yield();
    }
}

/* The input's part of chunk j's gate sums of step s, put in its sums
 * before H x R^T is added to them; false when there is none there (xw up
 * front, added by the cells). */
static bool chunk_input(const direction_run *d, int64_t s, size_t j, float *sums)
{
    const recurrent_state *st = d->st;
    int64_t H = d->hidden, G = st->gates;
    int64_t k0 = (int64_t)j * CHUNK_UNITS, cw = H - k0 < CHUNK_UNITS ? H - k0 : CHUNK_UNITS;
    size_t n = (size_t)(G * cw);
    /* packed_wc is NULL unless lane_xw or step_input is set */
    const float *wc = d->packed_wc ? d->packed_wc + j * chunk_floats(st, (size_t)d->input) : NULL;
    gemm_operand wop = {wc, 0, false, true};
    if (d->lane_xw) {
        /* chunk j's X x W^T ([rows of X, n], X's row order), made ahead of
         * its steps by its own lane, so that it stays in that core's cache;
         * each step then adds H x R^T to its rows in place */
        project_through(d, j, (size_t)s);
        return true;
    }
    if (d->step_input) {
        /* X_t x W_chunk^T first, then H x R_chunk^T adds to it: every row of
         * the batch is at the same t here (see run_direction), X_t's rows
         * are `lda` apart in either layout */
        int64_t t = d->reverse ? d->seq - 1 - s : s;
        size_t lda = (size_t)(st->layout ? d->seq * d->input : d->input);
        gemm_operand xa = {d->x + x_row(d, t, 0) * d->input, lda, false, false};
        gemm_f32_ex((size_t)d->batch, n, (size_t)d->input, 1.0f, xa, wop, 0.0f, sums, n, NULL);
        return true;
    }
    return false;
}

/* Adds to chunk j's gate sums of step s the product of the previous state's
 * units in `units` (LSTM_PARTIAL_RANGES ranges, in that order) with R's rows
 * of the chunk. */
static void chunk_partial(const direction_run *d, int64_t s, size_t j,
                          const int64_t units[LSTM_PARTIAL_RANGES][2], float *sums, size_t ldh)
{
    int64_t H = d->hidden, k0 = (int64_t)j * CHUNK_UNITS;
    int64_t cw = H - k0 < CHUNK_UNITS ? H - k0 : CHUNK_UNITS;
    lstm_partial_args a = {
        .rows = (size_t)d->batch, .hidden = (size_t)H, .n = (size_t)(d->st->gates * cw),
        .h_prev = s % 2 ? d->h_next : d->h,
        .packed_chunk = d->packed_r + j * r_chunk_floats(d->st), .sums = sums, .ld = ldh,
    };
    for (int i = 0; i < LSTM_PARTIAL_RANGES; i++) {
        a.units[i][0] = (size_t)units[i][0];
        a.units[i][1] = (size_t)units[i][1];
    }
    lstm_partial_product_f32(&a);
}

/* The gates of chunk j at step s from its complete sums. */
static void chunk_cells(const direction_run *d, int64_t s, size_t j, float *hr, size_t ldh)
{
    const recurrent_state *st = d->st;
    int64_t H = d->hidden, G = st->gates, GH = G * H;
    const float *h_prev = s % 2 ? d->h_next : d->h;
    float *h_next = s % 2 ? d->h : d->h_next;
    int64_t k0 = (int64_t)j * CHUNK_UNITS, cw = H - k0 < CHUNK_UNITS ? H - k0 : CHUNK_UNITS;
    /* GRU with linear_before_reset: R's candidate product is scaled by r
     * before x is added, and its own bias rb_h stays out of xw */
    bool gru = st->cell == CELL_GRU;
    const float *rbh = gru && d->b ? d->b + GH + 2 * H + k0 : NULL;
    for (int64_t b = 0; b < d->batch; b++) {
        int64_t len = d->lens ? d->lens[b] : d->seq;
        const float *hp = h_prev + b * H + k0;
        float *hn = h_next + b * H + k0;
        if (s >= len) { /* past this row's end: state kept, Y stays zero */
            memcpy(hn, hp, (size_t)cw * sizeof(float));
            continue;
        }
        int64_t t = d->reverse ? len - 1 - s : s;
        const float *xw =
            d->step_input || d->lane_xw ? NULL : d->xw + x_row(d, t, b) * GH + k0;
        const float *bs = d->bsum ? d->bsum + k0 : NULL;
        float *gate = hr + b * (int64_t)ldh; /* gate q of unit k at gate[q * cw + k] */
        for (int64_t q = 0; !d->default_lstm && q < (gru ? 2 : G); q++) {
            if (!xw) {
                for (int64_t k = 0; bs && k < cw; k++)
                    gate[q * cw + k] += bs[q * H + k];
            } else if (bs)
                for (int64_t k = 0; k < cw; k++)
                    gate[q * cw + k] += xw[q * H + k] + bs[q * H + k];
            else
                for (int64_t k = 0; k < cw; k++)
                    gate[q * cw + k] += xw[q * H + k];
        }
        if (st->cell == CELL_RNN) {
            clip_array(gate, (size_t)cw, st->clip);
            activate_array(d->f, gate, (size_t)cw);
            memcpy(hn, gate, (size_t)cw * sizeof(float));
        } else if (gru) {
            float *z = gate, *r = gate + cw, *hc = gate + 2 * cw;
            clip_array(gate, (size_t)(2 * cw), st->clip);
            activate_array(d->f, gate, (size_t)(2 * cw));
            for (int64_t k = 0; k < cw; k++)
                hc[k] = (bs ? xw[2 * H + k] + bs[2 * H + k] : xw[2 * H + k]) +
                        r[k] * (hc[k] + (rbh ? rbh[k] : 0));
            clip_array(hc, (size_t)cw, st->clip);
            activate_array(d->g, hc, (size_t)cw);
            for (int64_t k = 0; k < cw; k++)
                hn[k] = (1.0f - z[k]) * hc[k] + z[k] * hp[k];
        } else if (d->default_lstm) {
            lstm_cell_args cell = {
                .acc = gate, .acc_stride = (size_t)cw, .xw = xw, .bias = bs,
                .xw_stride = (size_t)H, .clip = st->clip, .input_forget = st->input_forget,
                .c = d->c + b * H + k0, .h = hn, .h_copy = d->y ? y_at(d, t, b) + k0 : NULL,
            };
            if (d->p) {
                cell.peep_i = d->p + k0;
                cell.peep_o = d->p + H + k0;
                cell.peep_f = d->p + 2 * H + k0;
            }
            lstm_cell_f32(&cell, (size_t)cw);
        } else {
            /* i, o, f, c; peepholes P = (i, o, f) */
            float *gi = gate, *go = gate + cw, *gf = gate + 2 * cw, *gc = gate + 3 * cw;
            float *c = d->c + b * H + k0;
            const float *pi = d->p ? d->p + k0 : NULL, *po = d->p ? d->p + H + k0 : NULL;
            const float *pf = d->p ? d->p + 2 * H + k0 : NULL;
            for (int64_t k = 0; pi && k < cw; k++) {
                gi[k] += pi[k] * c[k];
                gf[k] += pf[k] * c[k];
            }
            /* without peepholes o does not wait for the new c: i, o and f
             * (adjacent) take f in one call */
            bool o_now = !pi && !st->input_forget;
            clip_array(gi, (size_t)cw, st->clip);
            clip_array(gf, (size_t)(2 * cw), st->clip); /* f and c */
            if (o_now)
                clip_array(go, (size_t)cw, st->clip);
            activate_array(d->f, gi, (size_t)(o_now ? 3 * cw : cw));
            if (st->input_forget)
                for (int64_t k = 0; k < cw; k++)
                    gf[k] = 1.0f - gi[k];
            else if (!o_now)
                activate_array(d->f, gf, (size_t)cw);
            activate_array(d->g, gc, (size_t)cw);
            for (int64_t k = 0; k < cw; k++) {
                c[k] = gf[k] * c[k] + gi[k] * gc[k];
                gc[k] = c[k];
            }
            if (!o_now) {
                for (int64_t k = 0; po && k < cw; k++)
                    go[k] += po[k] * c[k];
                clip_array(go, (size_t)cw, st->clip);
                activate_array(d->f, go, (size_t)cw);
            }
            activate_array(d->hact, gc, (size_t)cw);
            for (int64_t k = 0; k < cw; k++)
                hn[k] = go[k] * gc[k];
        }
        if (d->y && !d->default_lstm) /* the fused cell stored it there itself */
            memcpy(y_at(d, t, b) + k0, hn, (size_t)cw * sizeof(float));
    }
}

/* Step s for hidden units [k0, k0 + cw) of every batch row: the chunk's
 * product of the previous state with R's rows of those units, then the
 * gates. Reads only the previous state, writes only this chunk's units of
 * the next state, c, hr and Y. */
static void run_chunk(const direction_run *d, int64_t s, size_t j)
{
    int64_t H = d->hidden;
    const float *h_prev = s % 2 ? d->h_next : d->h;
    size_t ldh, n = (size_t)(d->st->gates * (H - (int64_t)j * CHUNK_UNITS < CHUNK_UNITS
                                                 ? H - (int64_t)j * CHUNK_UNITS
                                                 : CHUNK_UNITS));
    float *hr = chunk_sums(d, s, j, &ldh);
    float beta = chunk_input(d, s, j, hr) ? 1.0f : 0.0f;
    gemm_operand ha = {h_prev, (size_t)H, false, false};
    gemm_operand rop = {d->packed_r + j * r_chunk_floats(d->st), 0, false, true};
    gemm_f32_ex((size_t)d->batch, n, (size_t)H, 1.0f, ha, rop, beta, hr, ldh, NULL);
    chunk_cells(d, s, j, hr, ldh);
}

/* How many pauses (~40 ns each) a lane waits for another lane's chunks of
 * the step before, while that lane's thread is taken to be running them,
 * before it looks whether they were ever claimed. */
#define STEAL_SPINS 256

/* Rows of X a block of a lane's projection takes at least (project_next). */
#define LANE_PROJECT_ROWS 32

/* Most lanes a layer's steps run on (one per thread, no more than chunks). */
#define MAX_LANES 64

/* Lane l's home chunks: [l C / T, (l + 1) C / T) of the C chunks. */
static void lane_home(const direction_run *d, size_t lane, size_t *home0, size_t *home1)
{
    *home0 = lane * d->chunks / d->n_lanes;
    *home1 = (lane + 1) * d->chunks / d->n_lanes;
}

/* Until counter c reaches `value` (another thread's release store). */
static void wait_for_counter(const step_counter *c, size_t value)
{
    for (unsigned spins = 0; atomic_load_explicit(&c->value, memory_order_acquire) < value;
         spins++) {
        if (spins < 4096)
            cpu_pause();
        else
            sched_yield();
    }
}

/* A hint to bring p's cache line into L1. In asm: GCC takes a function made
 * only of __builtin_prefetch for one without effects and drops its calls. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
static inline void prefetch_line(const float *p)
{
    __asm__ volatile("prefetcht0 %0" : : "m"(*(const char *)p));
}
#else
static inline void prefetch_line(const float *p) { (void)p; }
#endif

/* Pipeline: step s's H_prev x R^T into hr as one product, [batch, G * H]
 * with chunk j's gate sums at columns j * G * CHUNK_UNITS: R packed by
 * chunks is one packed operand of all the columns in that order when the
 * chunks are whole and K = H one panel (stacked_run checks it). One call a
 * step instead of one per chunk. */
static void pipeline_product(const direction_run *d, size_t s)
{
    int64_t H = d->hidden, GH = d->st->gates * H;
    gemm_operand ha = {s % 2 ? d->h_next : d->h, (size_t)H, false, false};
    gemm_operand rop = {d->packed_r, 0, false, true};
    gemm_f32_ex((size_t)d->batch, (size_t)GH, (size_t)H, 1.0f, ha, rop, 0.0f, d->hr,
                (size_t)GH, NULL);
}

/* Columns of the upper layer's projection of step s the lower layer's
 * thread makes: given_cols, but none at the first step, which the upper
 * layer waits for, and all at the last, when the lower layer has nothing
 * else left to do. */
static size_t given_at(const direction_run *upper, size_t s)
{
    if (s + 1 == (size_t)upper->seq && s > 0)
        return (size_t)(upper->st->gates * upper->hidden);
    return s == 0 ? 0 : upper->given_cols;
}

/* Pipeline (see direction_run): columns [c0, c1) of step s's X x W^T into
 * its rows of xw, c0 and c1 multiples of GEMM_PACK_NR (W packed whole, K at
 * most one panel: column c0's sliver starts at c0 * K). */
static void project_columns(const direction_run *d, size_t s, size_t c0, size_t c1)
{
    size_t GH = (size_t)(d->st->gates * d->hidden);
    int64_t row = x_row(d, (int64_t)s, 0); /* forward, layout 0: the step's rows in a run */
    gemm_operand xa = {d->x + row * d->input, (size_t)d->input, false, false};
    gemm_operand wop = {d->packed_w + c0 * (size_t)d->input, 0, false, true};
    gemm_f32_ex((size_t)d->batch, c1 - c0, (size_t)d->input, 1.0f, xa, wop, 0.0f,
                d->xw + row * (int64_t)GH + (int64_t)c0, GH, NULL);
}

/* The lower layer of a pipeline: its projection of the steps from s, the
 * first step alone (the upper layer waits for it), then proj_block at a
 * time, products of more rows. */
static void project_block(direction_run *d, size_t s)
{
    size_t steps = s == 0 ? 1 : d->proj_block, seq = (size_t)d->seq;
    size_t end = seq - s > steps ? s + steps : seq, GH = (size_t)(d->st->gates * d->hidden);
    int64_t row = x_row(d, (int64_t)s, 0);
    gemm_operand xa = {d->x + row * d->input, (size_t)d->input, false, false};
    gemm_operand wop = {d->packed_w, 0, false, true};
    gemm_f32_ex((end - s) * (size_t)d->batch, GH, (size_t)d->input, 1.0f, xa, wop, 0.0f,
                d->xw + row * (int64_t)GH, GH, NULL);
    d->projected = end;
}

/* The upper layer of a pipeline, before the part-th of its `parts` chunks
 * of step s: that part of step s + 1's input, its rows of the lower
 * layer's Y and the columns of their projection the lower layer made, when
 * it has made them. Written on the other core, their lines then come over
 * while this step computes rather than inside the next step's products,
 * one miss after another. */
static void prefetch_next_input(const direction_run *d, size_t s, size_t part, size_t parts)
{
    if ((int64_t)s + 1 >= d->seq ||
        atomic_load_explicit(&d->input_ready->value, memory_order_acquire) < s + 2)
        return;
    int64_t t = (int64_t)s + 1, GH = d->st->gates * d->hidden;
    size_t per_line = 64 / sizeof(float);
    size_t x_lines = (size_t)(d->batch * d->input) / per_line;
    size_t row_lines = (given_at(d, (size_t)t) + per_line - 1) / per_line;
    size_t lines = x_lines + (size_t)d->batch * row_lines;
    const float *x = d->x + x_row(d, t, 0) * d->input;
    for (size_t k = part * lines / parts; k < (part + 1) * lines / parts; k++) {
        if (k < x_lines) {
            prefetch_line(x + k * per_line);
        } else {
            size_t b = (k - x_lines) / row_lines, line = (k - x_lines) % row_lines;
            prefetch_line(d->xw + x_row(d, t, (int64_t)b) * GH + line * per_line);
        }
    }
}

/* Step s of the upper layer of a pipeline: first the product of the
 * previous state with R, which needs nothing from the lower layer, so that
 * a wait for the lower layer's step s (at the first step, or when it falls
 * behind) overlaps it; then, once the lower layer has published the step,
 * the columns of its input's projection not given to the lower layer, and
 * the cells, which add the projection as at one thread. */
static void run_upper_step(const direction_run *d, size_t s)
{
    int64_t H = d->hidden, GH = d->st->gates * H;
    pipeline_product(d, s);
    wait_for_counter(d->input_ready, s + 1);
    if (given_at(d, s) < (size_t)GH)
        project_columns(d, s, given_at(d, s), (size_t)GH);
    for (size_t j = 0; j < d->chunks; j++) {
        prefetch_next_input(d, s, j, d->chunks);
        chunk_cells(d, (int64_t)s, j, d->hr + (int64_t)j * d->st->gates * CHUNK_UNITS, (size_t)GH);
    }
}

/* Lane l's chunks of step s if nobody has taken them yet: run, then
 * published as done. */
static bool take_lane_step(direction_run *d, size_t lane, size_t s)
{
    size_t want = s, home0, home1;
    if (!atomic_compare_exchange_strong_explicit(&d->claims[lane].value, &want, s + 1,
                                                 memory_order_relaxed, memory_order_relaxed))
        return false;
    lane_home(d, lane, &home0, &home1);
    if (d->input_ready) {
        run_upper_step(d, s);
    } else {
        if (d->pipelined && s >= d->projected)
            project_block(d, s);
        if (d->pipelined)
            pipeline_product(d, s);
        for (size_t j = home0; j < home1; j++) {
            int64_t GH = d->st->gates * d->hidden;
            if (d->pipelined)
                chunk_cells(d, (int64_t)s, j, d->hr + (int64_t)j * d->st->gates * CHUNK_UNITS,
                            (size_t)GH);
            else
                run_chunk(d, (int64_t)s, j);
        }
    }
    /* the lower layer of a pipeline: the upper layer's columns it was
     * given of step s's projection, from the rows of Y just written here */
    if (d->above && given_at(d->above, s))
        project_columns(d->above, s, 0, given_at(d->above, s));
    if (d->ready_out)
        atomic_store_explicit(&d->ready_out->value, s + 1, memory_order_release);
    atomic_store_explicit(&d->lanes[lane].value, s + 1, memory_order_release);
    return true;
}

/* One block of the projection of lane `lane`'s chunk that has the fewest
 * steps claimed, if any is left (lane_xw). */
static bool project_ahead(const direction_run *d, size_t lane)
{
    if (!d->lane_xw)
        return false;
    size_t home0, home1, best = SIZE_MAX, fewest = (size_t)d->seq;
    lane_home(d, lane, &home0, &home1);
    for (size_t j = home0; j < home1; j++) {
        size_t claimed = atomic_load_explicit(&d->proj_claims[j].value, memory_order_relaxed);
        if (claimed < fewest) {
            fewest = claimed;
            best = j;
        }
    }
    return best != SIZE_MAX && project_next(d, best);
}

/* Before a lane runs step s: waits until every lane's chunks of step s - 1
 * are done, its own included. A lane whose chunks of s - 1 are still unclaimed after
 * STEAL_SPINS pauses has no thread running it (not started, or off its
 * core): they are run here instead, and that lane's chunks are taken at
 * once from then on (`absent`) until its thread shows up and claims them
 * itself. */
static void wait_for_step(direction_run *d, size_t s, bool *absent, size_t lane)
{
    if (s == 0)
        return;
    for (size_t m = 0; m < d->n_lanes; m++) {
        unsigned spins = 0;
        /* self too: its own chunks of s - 1 may have been taken by a lane
         * that is still running them, and their progress must not go back */
        while (atomic_load_explicit(&d->lanes[m].value, memory_order_acquire) < s) {
            /* the time a lane would wait makes a block of its projection */
            if (m != lane && lane < d->n_lanes && project_ahead(d, lane))
                continue;
            /* reading claims[m] takes its line from m's core, whose next
             * claim would then wait for it: only when m looks late */
            if (absent[m] || ++spins % STEAL_SPINS == 0) {
                if (atomic_load_explicit(&d->claims[m].value, memory_order_relaxed) == s - 1 &&
                    take_lane_step(d, m, s - 1)) {
                    absent[m] = true;
                    break;
                }
                absent[m] = false;
            }
            if (spins < 4096)
                cpu_pause();
            else
                sched_yield(); /* the chunks we wait for are on a preempted thread */
        }
    }
}

/* Before lane `lane` runs the rest of step s on several threads: the other
 * lanes' units of h_prev, just written on their cores, fetched while it
 * multiplies its own. */
static void prefetch_other_units(const direction_run *d, int64_t s, int64_t u0, int64_t u1)
{
    int64_t H = d->hidden;
    const float *h_prev = s % 2 ? d->h_next : d->h;
    for (int64_t b = 0; b < d->batch; b++)
        for (int64_t k = 0; k < H; k += 16)
            if (k + 16 <= u0 || k >= u1)
                prefetch_line(h_prev + b * H + k);
}

/* Before a lane's first block of lane_xw's projection: one load from each
 * 64-byte line of X, so that the lines another core wrote last (the
 * previous node's output, half of a previous layer's Y made by the other
 * lane) come over with many loads in flight; inside the product they came
 * a tile's rows at a time behind its multiply-adds. Bench LSTM, batch 8,
 * 2 threads: see the commit that added it. */
static void pull_input(const direction_run *d)
{
    size_t floats = (size_t)(d->seq * d->batch * d->input);
    if (floats * sizeof(float) > XW_STEP_BYTES)
        return; /* would not stay in cache until the blocks read it */
    uint32_t seen = 0, word;
    for (size_t k = 0; k < floats; k += 64 / sizeof(float)) {
        memcpy(&word, d->x + k, sizeof(word));
        seen |= word;
    }
    volatile uint32_t sink = seen; /* kept: the loads are the point */
    (void)sink;
}

/* Lane `lane`'s step s at several threads, its product in parts around the
 * wait for the other lanes: the part of its first chunk over the units of
 * the previous state it computed itself (its own chunks of step s - 1,
 * already in its core's cache), then, once every lane has finished step
 * s - 1, its other chunks over its own units and then the others' (whose
 * lines arrive meanwhile), the first chunk's remaining part, and the gates.
 * A lane that finishes a step before the others spends on its first part
 * what it would have waited. False when the step was taken by another lane
 * (see take_lane_step). */
static bool take_lane_step_split(direction_run *d, size_t lane, size_t s, bool *absent)
{
    size_t home0, home1, want = s;
    lane_home(d, lane, &home0, &home1);
    /* this lane's chunks of s - 1: run here, unless a lane that found this
     * one late took them and is still running them */
    for (unsigned spins = 0;
         atomic_load_explicit(&d->lanes[lane].value, memory_order_acquire) < s; spins++) {
        if (spins < 4096)
            cpu_pause();
        else
            sched_yield();
    }
    if (!atomic_compare_exchange_strong_explicit(&d->claims[lane].value, &want, s + 1,
                                                 memory_order_relaxed, memory_order_relaxed))
        return false;
    int64_t H = d->hidden, u0 = (int64_t)home0 * CHUNK_UNITS;
    int64_t u1 = (int64_t)home1 * CHUNK_UNITS < H ? (int64_t)home1 * CHUNK_UNITS : H;
    const int64_t own[LSTM_PARTIAL_RANGES][2] = {{u0, u1}, {0, 0}, {0, 0}};
    const int64_t others[LSTM_PARTIAL_RANGES][2] = {{u1, H}, {0, u0}, {0, 0}};
    const int64_t own_first[LSTM_PARTIAL_RANGES][2] = {{u0, u1}, {u1, H}, {0, u0}};
    size_t ldh;
    float *first = chunk_sums(d, (int64_t)s, home0, &ldh);
    if (!chunk_input(d, (int64_t)s, home0, first))
        memset(first, 0, (size_t)d->batch * ldh * sizeof(float));
    chunk_partial(d, (int64_t)s, home0, own, first, ldh);
    wait_for_step(d, s, absent, lane);
    prefetch_other_units(d, (int64_t)s, u0, u1);
    for (size_t j = home0 + 1; j < home1; j++) {
        float *sums = chunk_sums(d, (int64_t)s, j, &ldh);
        if (!chunk_input(d, (int64_t)s, j, sums))
            memset(sums, 0, (size_t)d->batch * ldh * sizeof(float));
        chunk_partial(d, (int64_t)s, j, own_first, sums, ldh);
        chunk_cells(d, (int64_t)s, j, sums, ldh);
    }
    first = chunk_sums(d, (int64_t)s, home0, &ldh);
    chunk_partial(d, (int64_t)s, home0, others, first, ldh);
    chunk_cells(d, (int64_t)s, home0, first, ldh);
    atomic_store_explicit(&d->lanes[lane].value, s + 1, memory_order_release);
    return true;
}

/* Every step of the layer on one lane per thread of the pool. Lane l owns
 * the chunks [l C / T, (l + 1) C / T) of every step, so a chunk's gate sums
 * (hr), cell state and R stay in one core's caches and only h crosses
 * between cores; a step starts once every lane's chunks of the step before
 * are done. Before, chunks were taken first-come from one queue and moved
 * from core to core between steps; with step_input at several threads (see
 * recurrent_run) the bench LSTM at batch 8 and 2 threads went from 770 to
 * 717-738 us a run (chrt, medians), lanes alone within noise.
 *
 * Each lane's counters sit on lines of their own that only its thread
 * writes while every thread runs: a step costs a lane one compare-and-swap
 * on a line in its own cache (its claim) and one store (its progress),
 * which the other lanes read. Claims and a shared count of done chunks per
 * chunk, read and written by every lane each step, put four transfers of a
 * line between cores, each waited for by a locked instruction, on every
 * step: bench LSTM, batch 8, 2 threads, 649 -> 627 us a run (chrt, medians
 * of 3 alternated runs).
 *
 * Nobody waits long for a thread that has not started or was preempted
 * (wait_for_step); the caller, which runs lane 0 and then any lane no worker
 * joined, finishes the layer alone at one thread's speed instead of stalling
 * on each step. */
static void run_steps(void *arg, size_t begin, size_t end)
{
    direction_run *d = arg;
    size_t seq = (size_t)d->seq;
    bool absent[MAX_LANES] = {false}; /* lanes run here found without a thread */
    if (d->lane_xw && d->n_lanes > 1)
        pull_input(d);
    for (size_t lane = begin; lane < end; lane++) {
        size_t s = atomic_load_explicit(&d->claims[lane].value, memory_order_relaxed);
        for (; s < seq; s++) {
            bool taken;
            if (d->n_lanes > 1) {
                taken = take_lane_step_split(d, lane, s, absent);
            } else {
                wait_for_step(d, s, absent, SIZE_MAX);
                taken = take_lane_step(d, lane, s);
            }
            if (!taken) {
                /* taken by a lane that found this one late: go on from the
                 * first step nobody has claimed */
                s = atomic_load_explicit(&d->claims[lane].value, memory_order_relaxed) - 1;
            }
        }
    }
}

/* Step s of a default LSTM of 1 to 3 rows as one fused product and cell
 * (kernels/lstm_cell.h), the groups of units visited in the opposite order
 * from the step before. */
static void run_fused_step(const direction_run *d, int64_t s)
{
    int64_t H = d->hidden, GH = 4 * H;
    int64_t t = d->reverse ? d->seq - 1 - s : s;
    lstm_step_args a = {
        .rows = (size_t)d->batch, .hidden = (size_t)H,
        .h_prev = s % 2 ? d->h_next : d->h, .h_next = s % 2 ? d->h : d->h_next, .c = d->c,
        .bias = d->bsum, .packed_r = d->packed_r, .chunk_units = CHUNK_UNITS,
        .chunk_floats = r_chunk_floats(d->st), .clip = d->st->clip,
        .input_forget = d->st->input_forget, .reverse = s % 2 != 0,
    };
    for (int64_t b = 0; b < d->batch; b++)
        a.xw[b] = d->xw + x_row(d, t, b) * GH;
    if (d->p) {
        a.peep_i = d->p;
        a.peep_o = d->p + H;
        a.peep_f = d->p + 2 * H;
    }
    lstm_step_rows_f32(&a);
    for (int64_t b = 0; d->y && b < d->batch; b++)
        memcpy(y_at(d, t, b), a.h_next + b * H, (size_t)H * sizeof(float));
}

/* One step of GRU without linear_before_reset on the caller's thread (the
 * products themselves use the pool): z and r from H * R_zr^T, then the
 * candidate from (r . h) * R_h^T. */
static void run_gru_step(direction_run *d, int64_t s)
{
    const recurrent_state *st = d->st;
    int64_t H = d->hidden, GH = 3 * H;
    const float *h_prev = s % 2 ? d->h_next : d->h;
    float *h_next = s % 2 ? d->h : d->h_next;
    gemm_f32(false, true, (size_t)d->batch, (size_t)(2 * H), (size_t)H, 1.0f, h_prev, (size_t)H,
             d->r, (size_t)H, 0.0f, d->hr, (size_t)GH, d->pool);
    for (int64_t b = 0; b < d->batch; b++) {
        int64_t len = d->lens ? d->lens[b] : d->seq;
        if (s >= len)
            continue;
        int64_t t = d->reverse ? len - 1 - s : s;
        const float *xw = d->xw + x_row(d, t, b) * GH;
        float *zr = d->hr + b * GH;
        for (int64_t k = 0; k < 2 * H; k++)
            zr[k] += xw[k];
        clip_array(zr, (size_t)(2 * H), st->clip);
        activate_array(d->f, zr, (size_t)(2 * H));
        for (int64_t k = 0; k < H; k++)
            d->rh[b * H + k] = zr[H + k] * h_prev[b * H + k];
    }
    gemm_f32(false, true, (size_t)d->batch, (size_t)H, (size_t)H, 1.0f, d->rh, (size_t)H,
             d->r + 2 * H * H, (size_t)H, 0.0f, d->rh_out, (size_t)H, d->pool);
    for (int64_t b = 0; b < d->batch; b++) {
        int64_t len = d->lens ? d->lens[b] : d->seq;
        const float *hp = h_prev + b * H;
        float *hn = h_next + b * H;
        if (s >= len) {
            memcpy(hn, hp, (size_t)H * sizeof(float));
            continue;
        }
        int64_t t = d->reverse ? len - 1 - s : s;
        const float *xw = d->xw + x_row(d, t, b) * GH;
        const float *z = d->hr + b * GH;
        float *hc = d->rh_out + b * H;
        for (int64_t k = 0; k < H; k++)
            hc[k] += xw[2 * H + k];
        clip_array(hc, (size_t)H, st->clip);
        activate_array(d->g, hc, (size_t)H);
        for (int64_t k = 0; k < H; k++)
            hn[k] = (1.0f - z[k]) * hc[k] + z[k] * hp[k];
        if (d->y)
            memcpy(y_at(d, t, b), hn, (size_t)H * sizeof(float));
    }
}

/* Steps below this many multiply-adds of H * R^T run on one thread: waking
 * the pool costs more than it saves on a batch-1 step of a small layer. */
#define PARALLEL_STEP_MACS (1 << 17)

/* Whether a chunked cell's steps run on every thread of the pool. */
static bool steps_in_parallel(const recurrent_state *st, int64_t batch, threadpool *pool)
{
    double gh = (double)(st->gates * st->hidden);
    return threadpool_size(pool) > 1 && (double)batch * gh * (double)st->hidden >= PARALLEL_STEP_MACS;
}

/* Rows a thread must get before the batch is split between the threads
 * (each running every step of its rows alone) rather than each step's hidden
 * units: see recurrent_run. */
#define SHARE_MIN_ROWS 8

/* The chunked steps of one run over the rows it has, on one thread or on
 * one lane per thread of the pool (steps_in_parallel). */
static void run_chunked_steps(direction_run *d, bool parallel)
{
    int64_t H = d->hidden;
    d->chunks = (size_t)((H + CHUNK_UNITS - 1) / CHUNK_UNITS);
    /* a lane without a chunk would only add itself to every step's wait */
    size_t lanes = parallel ? (size_t)threadpool_size(d->pool) : 1;
    lanes = lanes < d->chunks ? lanes : d->chunks;
    d->n_lanes = lanes < MAX_LANES ? lanes : MAX_LANES;
    for (size_t l = 0; l < d->n_lanes; l++) {
        atomic_init(&d->claims[l].value, 0);
        atomic_init(&d->lanes[l].value, 0);
    }
    parallel = d->n_lanes > 1;
    /* lane_xw: on one lane the projection of every step at once, one
     * efficient product; on several, blocks of LANE_PROJECT_ROWS rows ahead
     * of the steps, made while a lane would wait for the others (see
     * project_ahead) or else just before the step that needs them */
    d->proj_steps = (size_t)d->seq;
    if (parallel) {
        int64_t steps = (LANE_PROJECT_ROWS + d->batch - 1) / d->batch;
        d->proj_steps = (size_t)(steps < d->seq ? steps : d->seq);
    }
    for (size_t j = 0; d->lane_xw && j < d->chunks; j++) {
        atomic_init(&d->proj_claims[j].value, 0);
        atomic_init(&d->proj_done[j].value, 0);
    }
    if (parallel)
        threadpool_parallel_for(d->pool, d->n_lanes, 1, run_steps, d);
    else
        run_steps(d, 0, 1);
}

/* Shares [begin, end) of a split batch: share i is rows
 * [i B / shares, (i + 1) B / shares), every step of them on this thread,
 * with its own counters and its own rows of the state and of hr. */
static void run_batch_share(void *arg, size_t begin, size_t end)
{
    const direction_run *d = arg;
    int64_t H = d->hidden, GH = d->st->gates * H;
    for (size_t i = begin; i < end; i++) {
        int64_t b0 = (int64_t)i * d->batch / (int64_t)d->shares;
        int64_t b1 = (int64_t)(i + 1) * d->batch / (int64_t)d->shares;
        direction_run share;
        memcpy(&share, d, sizeof(share));
        share.row0 = d->row0 + b0;
        share.batch = b1 - b0;
        share.shares = 1;
        share.h += b0 * H;
        share.h_next += b0 * H;
        share.c = d->c ? d->c + b0 * H : NULL;
        share.hr += b0 * GH;
        share.lens = d->lens ? d->lens + b0 : NULL;
        share.claims = d->claims + i;
        share.lanes = d->lanes + i;
        share.pool = NULL;
        if (b1 == b0)
            continue;
        if (!share.step_input) {
            /* the projection of every step of these rows, up front as at one
             * thread; they are strided in X, so one product per step */
            int64_t G = d->st->gates;
            size_t lda = (size_t)(d->st->layout ? d->seq * d->input : d->input);
            size_t ldc = (size_t)(d->st->layout ? d->seq * G * H : G * H);
            gemm_operand wop = {d->packed_w, 0, false, true};
            for (int64_t t = 0; t < d->seq; t++) {
                gemm_operand xa = {d->x + x_row(&share, t, 0) * d->input, lda, false, false};
                gemm_f32_ex((size_t)share.batch, (size_t)(G * H), (size_t)d->input, 1.0f, xa,
                            wop, 0.0f, d->xw + x_row(&share, t, 0) * G * H, ldc, NULL);
            }
        }
        run_chunked_steps(&share, false);
    }
}

static void run_direction(direction_run *d)
{
    const recurrent_state *st = d->st;
    int64_t H = d->hidden, G = st->gates, GH = G * H;
    /* the input projection of every step at once, unless each step's
     * chunks make their own (step_input) */
    if (!d->step_input && !d->lane_xw && d->shares <= 1 && !d->pipelined) {
        gemm_operand xa = {d->x, (size_t)d->input, false, false};
        gemm_operand wop = {d->w, (size_t)d->input, true, false};
        if (d->packed_w)
            wop = (gemm_operand){d->packed_w, 0, false, true};
        gemm_f32_ex((size_t)(d->seq * d->batch), (size_t)GH, (size_t)d->input, 1.0f, xa, wop,
                    0.0f, d->xw, (size_t)GH, d->pool);
    }
    /* Wb + Rb, except GRU-with-linear_before_reset's Rb_h, which the reset
     * gate scales. Chunked cells add it where each step's chunk reads its
     * rows of xw (run_chunk), on whichever thread runs the chunk: folded
     * here into every row it was a serial pass over seq x batch x G*H
     * floats, 1M for the LSTM bench at batch 64, that the second thread
     * waited through. The sum is the same, xw + (Wb + Rb), either way. */
    d->bsum = NULL;
    if (d->b && chunked_cell(st) && d->bsum_buf) {
        int64_t fold_rb = st->cell == CELL_GRU ? 2 * H : GH;
        for (int64_t k = 0; k < GH; k++)
            d->bsum_buf[k] = d->b[k] + (k < fold_rb ? d->b[GH + k] : 0.0f);
        d->bsum = d->bsum_buf;
    } else if (d->b) {
        int64_t fold_rb = st->cell == CELL_GRU && st->linear_before_reset ? 2 * H : GH;
        for (int64_t row = 0; row < d->seq * d->batch; row++) {
            float *xw = d->xw + row * GH;
            for (int64_t k = 0; k < GH; k++)
                xw[k] += d->b[k] + (k < fold_rb ? d->b[GH + k] : 0.0f);
        }
    }
    bool parallel = steps_in_parallel(st, d->batch, d->pool);
    if (!chunked_cell(st)) {
        for (int64_t s = 0; s < d->seq; s++)
            run_gru_step(d, s);
    } else if (d->default_lstm && d->batch <= 3 && !d->lens && !d->step_input && !parallel &&
               !d->pipelined && H % GEMM_PACK_NR == 0 && d->packed_r) {
        /* a step of a few rows on one thread: one pass over R, the gate
         * sums in registers (run_chunk's go through hr) and no task
         * bookkeeping; measured in kernels/lstm_cell.c */
        for (int64_t s = 0; s < d->seq; s++)
            run_fused_step(d, s);
    } else if (d->shares > 1) {
        threadpool_parallel_for(d->pool, d->shares, 1, run_batch_share, d);
    } else {
        run_chunked_steps(d, parallel);
    }
    if (d->seq % 2) { /* the last step wrote h_next */
        float *swap = d->h;
        d->h = d->h_next;
        d->h_next = swap;
    }
}

/* The [batch, hidden] block of direction dir in an initial_h / Y_h shaped
 * tensor (layout 0: [dirs, batch, hidden]; 1: [batch, dirs, hidden]),
 * copied between `state` (contiguous) and `t`. */
static void copy_state(const recurrent_state *st, int dir, int64_t batch, float *tensor,
                       float *state, bool to_tensor)
{
    int64_t H = st->hidden;
    for (int64_t b = 0; b < batch; b++) {
        float *at = st->layout ? tensor + (b * st->directions + dir) * H
                               : tensor + (dir * batch + b) * H;
        if (to_tensor)
            memcpy(at, state + b * H, (size_t)H * sizeof(float));
        else
            memcpy(state + b * H, at, (size_t)H * sizeof(float));
    }
}

/* One layer's tensors in a run: a recurrent node's own inputs and outputs,
 * or one of the two layers of a StackedLSTM node. */
typedef struct layer_io {
    const ifd_tensor *x, *w, *r, *bias, *lens, *h0, *c0, *peep;
    float *y;            /* Y's data, or NULL when nobody reads it */
    ifd_tensor *yh, *yc; /* or NULL */
    int64_t seq, batch, input;
} layer_io;

/* Inputs base.. of the node as one layer's X, W, R, B, sequence_lens,
 * initial_h (, initial_c, P). */
static void layer_inputs(const op_ctx *ctx, const recurrent_state *st, int base, layer_io *io)
{
    memset(io, 0, sizeof(*io));
    io->x = input_tensor(ctx, base);
    io->w = input_tensor(ctx, base + 1);
    io->r = input_tensor(ctx, base + 2);
    io->bias = input_tensor(ctx, base + 3);
    io->lens = input_tensor(ctx, base + 4);
    io->h0 = input_tensor(ctx, base + 5);
    io->c0 = st->cell == CELL_LSTM ? input_tensor(ctx, base + 6) : NULL;
    io->peep = st->cell == CELL_LSTM ? input_tensor(ctx, base + 7) : NULL;
}

/* The shapes of the inputs against each other; sets seq, batch, input. */
static int check_layer(op_ctx *ctx, const recurrent_state *st, layer_io *io)
{
    const ifd_tensor *x = io->x, *w = io->w, *r = io->r, *bias = io->bias, *lens = io->lens;
    int64_t H = st->hidden, G = st->gates, D = st->directions;
    if (!x || !w || !r || x->rank != 3 || w->rank != 3 || r->rank != 3)
        return op_fail(ctx, "X, W and R must have rank 3");
    int64_t seq = x->dims[st->layout ? 1 : 0], batch = x->dims[st->layout ? 0 : 1];
    int64_t input = x->dims[2];
    if (w->dims[0] != D || w->dims[1] != G * H || w->dims[2] != input)
        return op_fail(ctx, "W must be [%lld, %lld, %lld] for these inputs and hidden_size %lld",
                       (long long)D, (long long)(G * H), (long long)input, (long long)H);
    if (r->dims[0] != D || r->dims[1] != G * H || r->dims[2] != H)
        return op_fail(ctx, "R must be [%lld, %lld, %lld]", (long long)D, (long long)(G * H),
                       (long long)H);
    if (bias && ifd_tensor_count(bias) != D * 2 * G * H)
        return op_fail(ctx, "B must hold %lld values", (long long)(D * 2 * G * H));
    if (io->peep && ifd_tensor_count(io->peep) != D * 3 * H)
        return op_fail(ctx, "P must hold %lld values", (long long)(D * 3 * H));
    if (io->h0 && ifd_tensor_count(io->h0) != D * batch * H)
        return op_fail(ctx, "initial_h must hold %lld values (directions x batch x hidden)",
                       (long long)(D * batch * H));
    if (io->c0 && ifd_tensor_count(io->c0) != D * batch * H)
        return op_fail(ctx, "initial_c must hold %lld values", (long long)(D * batch * H));
    if (lens) {
        if (ifd_tensor_count(lens) != batch)
            return op_fail(ctx, "sequence_lens must hold one length per batch row (%lld)",
                           (long long)batch);
        for (int64_t b = 0; b < batch; b++)
            if (((const int32_t *)lens->data)[b] < 0 || ((const int32_t *)lens->data)[b] > seq)
                return op_fail(ctx, "sequence_lens[%lld] = %d is outside 0..%lld", (long long)b,
                               ((const int32_t *)lens->data)[b], (long long)seq);
    }
    io->seq = seq;
    io->batch = batch;
    io->input = input;
    return 0;
}

/* The node's outputs Y, Y_h, Y_c (those it has) for this layer's shapes. */
static int layer_outputs(op_ctx *ctx, const recurrent_state *st, layer_io *io)
{
    int64_t H = st->hidden, D = st->directions, seq = io->seq, batch = io->batch;
    int64_t y_dims[4], h_dims[3];
    if (st->layout == 0) {
        int64_t yd[4] = {seq, D, batch, H}, hd[3] = {D, batch, H};
        memcpy(y_dims, yd, sizeof(yd));
        memcpy(h_dims, hd, sizeof(hd));
    } else {
        int64_t yd[4] = {batch, seq, D, H}, hd[3] = {batch, D, H};
        memcpy(y_dims, yd, sizeof(yd));
        memcpy(h_dims, hd, sizeof(hd));
    }
    const op_node *node = ctx->node;
    ifd_tensor *y = node->n_outputs > 0 && node->output_used[0]
                        ? op_output(ctx, 0, IFD_FLOAT, 4, y_dims)
                        : NULL;
    if (node->n_outputs > 0 && node->output_used[0] && !y)
        return -1;
    io->y = y ? y->data : NULL;
    io->yh = io->yc = NULL;
    if (node->n_outputs > 1 && !(io->yh = op_output(ctx, 1, IFD_FLOAT, 3, h_dims)))
        return -1;
    if (node->n_outputs > 2 && !(io->yc = op_output(ctx, 2, IFD_FLOAT, 3, h_dims)))
        return -1;
    return 0;
}

/* How a layer runs (run_layer) and the scratch it runs in. */
typedef struct layer_plan {
    const recurrent_state *st;
    const layer_io *io;
    bool packed_at_load, step_input, lane_xw;
    size_t shares;
    size_t state_floats;
    float *xw, *state, *bsum, *packed_r, *gathered;
    step_counter *claims, *lanes, *proj;
    /* the scratch above, slot by slot (plan_scratch) */
    void *scratch[8];
    size_t scratch_bytes[8];
} layer_plan;

/* Scratch slot k of plan p: that of `reuse`, a layer run before this one
 * and done with it, when big enough (the upper layer of a StackedLSTM run
 * layer by layer then finds the buffers warm in cache, as the second of two
 * LSTM nodes did), else new. */
static void *plan_scratch(op_ctx *ctx, layer_plan *p, const layer_plan *reuse, int k,
                          size_t bytes)
{
    if (reuse && reuse->scratch[k] && reuse->scratch_bytes[k] >= bytes) {
        p->scratch[k] = reuse->scratch[k];
        p->scratch_bytes[k] = reuse->scratch_bytes[k];
    } else {
        p->scratch[k] = op_scratch(ctx, bytes);
        p->scratch_bytes[k] = bytes;
    }
    return p->scratch[k];
}

/* `pipelined`: one of the two layers of run_stacked_pipeline rather than on
 * its own. */
static int plan_layer(op_ctx *ctx, const recurrent_state *st, const layer_io *io,
                      bool pipelined, const layer_plan *reuse, layer_plan *p)
{
    int64_t H = st->hidden, G = st->gates, D = st->directions;
    int64_t seq = io->seq, batch = io->batch, input = io->input;
    memset(p, 0, sizeof(*p));
    p->st = st;
    p->io = io;
    /* without sequence_lens every step writes every row of Y: zeroing it
     * first was a serial pass over 1 MiB per layer of the bench LSTM at
     * batch 64 */
    if (io->y && io->lens)
        memset(io->y, 0, (size_t)(seq * D * batch * H) * sizeof(float));
    size_t rows = (size_t)(seq * batch), bh = (size_t)(batch * H);
    p->state_floats = bh * 5 + (size_t)(batch * G * H);
    p->packed_at_load = st->packed_w && st->packed_input == input;
    /* The projection of every step at once is one efficient product, but its
     * result (seq x batch x 4H floats) is written long before each step
     * reads its rows back: past XW_STEP_BYTES they come from memory, and at
     * batch 64 of the bench LSTM (4 MB) those loads were half the cell's
     * time. Then each step's chunks multiply their step's X rows by W's
     * chunk themselves, into the same accumulator as H x R^T. So too when
     * the steps run on several threads: the projection's products, split
     * over the pool by its own blocks, left most of each lane's xw in the
     * other core's cache, and the cells' reads of it doubled their time
     * (bench LSTM, batch 8, 2 threads: 765 -> 711 us a run); where it fits
     * (lane_xw) each chunk makes the projection of its units on its own
     * lane's core, products of many rows again (same run: 660 -> 603 us),
     * by blocks of steps ahead of the steps on several lanes (project_next).
     * All rows of a step must be at the same t: not so in reverse with
     * sequence_lens. */
    bool by_chunk =
        st->packed_wc && p->packed_at_load && !(io->lens && (st->reverse_only || D == 2));
    bool fits = (double)rows * (double)(G * H) * sizeof(float) <= XW_STEP_BYTES;
    bool step_input = by_chunk && (!fits || steps_in_parallel(st, batch, op_threadpool(ctx)));
    bool lane_xw = step_input && fits;
    step_input = step_input && !lane_xw;
    /* With SHARE_MIN_ROWS rows or more per thread, each thread runs every
     * step of its own rows instead (run_batch_share): rows are independent,
     * so the threads never wait for each other and nothing crosses cores
     * between steps, where the lanes of run_steps meet once a step and read
     * each other's units of h. A share chooses between the projection up
     * front and step_input by its own rows, as one thread would. Bench LSTM
     * (hidden 128, 32 steps), 2 threads, medians of 3 alternated runs under
     * chrt: batch 64 4839 -> 4182 us (1 thread: 7953), batch 16 1280 ->
     * 1252 us; at batch 8 shares of 4 rows were slower than the lanes (one
     * thread at batch 4: 661 us, the lanes at batch 8: 638). */
    size_t threads = (size_t)threadpool_size(op_threadpool(ctx));
    size_t shares = by_chunk && threads > 1 && batch >= (int64_t)threads * SHARE_MIN_ROWS
                        ? threads
                        : 1;
    if (shares > 1) {
        double share_rows = (double)seq * (double)((batch + (int64_t)shares - 1) / (int64_t)shares);
        step_input = share_rows * (double)(G * H) * sizeof(float) > XW_STEP_BYTES;
        lane_xw = false;
    }
    size_t xw_floats = step_input ? 0 : rows * (size_t)(G * H);
    if (pipelined) { /* xw made step by step (see direction_run) */
        step_input = lane_xw = false;
        shares = 1;
        xw_floats = rows * (size_t)(G * H);
    }
    p->step_input = step_input;
    p->lane_xw = lane_xw;
    p->shares = shares;
    p->xw = plan_scratch(ctx, p, reuse, 0, (xw_floats + 1) * sizeof(float));
    p->state = plan_scratch(ctx, p, reuse, 1, (p->state_floats + 1) * sizeof(float));
    p->bsum = plan_scratch(ctx, p, reuse, 2, ((size_t)(G * H) + 1) * sizeof(float));
    /* one of each per lane, or per share (shares <= threads) */
    p->claims = plan_scratch(ctx, p, reuse, 3, threads * sizeof(step_counter));
    p->lanes = plan_scratch(ctx, p, reuse, 4, threads * sizeof(step_counter));
    size_t chunks = (size_t)((H + CHUNK_UNITS - 1) / CHUNK_UNITS);
    p->proj = lane_xw ? plan_scratch(ctx, p, reuse, 5, 2 * chunks * sizeof(step_counter)) : NULL;
    if (!p->xw || !p->state || !p->bsum || !p->claims || !p->lanes || (lane_xw && !p->proj))
        return -1;
    /* R packed by chunks per run when it was not an initializer at load */
    if (chunked_cell(st) && !p->packed_at_load) {
        p->packed_r = plan_scratch(ctx, p, reuse, 6, r_chunks_floats(st) * sizeof(float));
        p->gathered = plan_scratch(ctx, p, reuse, 7, (size_t)G * CHUNK_UNITS * (size_t)H *
                                                         sizeof(float));
        if (!p->packed_r || !p->gathered)
            return -1;
    }
    return 0;
}

/* Direction dir's run of a planned layer, from its initial state. */
static void init_direction(op_ctx *ctx, const layer_plan *p, int dir, direction_run *d)
{
    const recurrent_state *st = p->st;
    const layer_io *io = p->io;
    int64_t H = st->hidden, G = st->gates, input = io->input, batch = io->batch;
    size_t bh = (size_t)(batch * H), chunks = (size_t)((H + CHUNK_UNITS - 1) / CHUNK_UNITS);
    *d = (direction_run){
        .st = st, .seq = io->seq, .batch = batch, .row0 = 0, .pitch = batch, .input = input,
        .hidden = H, .dir = dir, .shares = p->shares,
        .reverse = st->reverse_only || dir == 1, .x = io->x->data,
        .w = (const float *)io->w->data + dir * G * H * input,
        .r = (const float *)io->r->data + dir * G * H * H,
        .b = io->bias ? (const float *)io->bias->data + dir * 2 * G * H : NULL,
        .p = io->peep ? (const float *)io->peep->data + dir * 3 * H : NULL,
        .lens = io->lens ? io->lens->data : NULL, .xw = p->xw, .bsum_buf = p->bsum,
        .claims = p->claims, .lanes = p->lanes,
        .proj_claims = p->proj, .proj_done = p->proj ? p->proj + chunks : NULL,
        .h = p->state, .h_next = p->state + bh,
        .c = st->cell == CELL_LSTM ? p->state + 2 * bh : NULL,
        .rh = p->state + 3 * bh, .rh_out = p->state + 4 * bh,
        .hr = p->state + 5 * bh, .y = io->y,
        .pool = op_threadpool(ctx),
    };
    if (p->packed_at_load) {
        d->packed_w = st->packed_w + (size_t)dir * st->packed_w_floats;
        d->packed_r = st->packed_r + (size_t)dir * st->packed_r_floats;
        if (p->step_input || p->lane_xw || p->shares > 1) {
            d->packed_wc = st->packed_wc + (size_t)dir * st->packed_wc_floats;
            d->step_input = p->step_input;
            d->lane_xw = p->lane_xw;
        }
    } else if (p->packed_r) {
        pack_r_chunks(st, d->r, p->packed_r, p->gathered);
        d->packed_r = p->packed_r;
    }
    int per = st->cell == CELL_RNN ? 1 : st->cell == CELL_GRU ? 2 : 3;
    d->f = &st->acts[dir * per];
    d->g = per > 1 ? &st->acts[dir * per + 1] : NULL;
    d->hact = per > 2 ? &st->acts[dir * per + 2] : NULL;
    d->default_lstm = st->cell == CELL_LSTM && d->f->kind == ACT_SIGMOID &&
                      d->g->kind == ACT_TANH && d->hact->kind == ACT_TANH;
    memset(p->state, 0, p->state_floats * sizeof(float));
    if (io->h0)
        copy_state(st, dir, batch, io->h0->data, d->h, false);
    if (io->c0)
        copy_state(st, dir, batch, io->c0->data, d->c, false);
}

/* Direction dir's final state into Y_h and Y_c. */
static void finish_direction(const layer_plan *p, int dir, const direction_run *d)
{
    const recurrent_state *st = p->st;
    const layer_io *io = p->io;
    int64_t H = st->hidden;
    for (int64_t b = 0; io->lens && b < io->batch; b++)
        if (((const int32_t *)io->lens->data)[b] == 0) {
            memset(d->h + b * H, 0, (size_t)H * sizeof(float));
            if (d->c)
                memset(d->c + b * H, 0, (size_t)H * sizeof(float));
        }
    if (io->yh)
        copy_state(st, dir, io->batch, io->yh->data, d->h, true);
    if (io->yc)
        copy_state(st, dir, io->batch, io->yc->data, d->c, true);
}

/* The layer on its own, in its plan p, with the scratch of `reuse` (or
 * NULL) where it fits. */
static int run_layer(op_ctx *ctx, const recurrent_state *st, const layer_io *io,
                     const layer_plan *reuse, layer_plan *p)
{
    if (plan_layer(ctx, st, io, false, reuse, p))
        return -1;
    for (int dir = 0; dir < st->directions; dir++) {
        direction_run d;
        init_direction(ctx, p, dir, &d);
        if (io->seq > 0 && io->batch > 0)
            run_direction(&d);
        finish_direction(p, dir, &d);
    }
    return 0;
}

static int recurrent_run(op_ctx *ctx)
{
    const recurrent_state *st = ctx->node->state;
    layer_io io;
    layer_inputs(ctx, st, 0, &io);
    if (check_layer(ctx, st, &io) || layer_outputs(ctx, st, &io))
        return -1;
    layer_plan p;
    return run_layer(ctx, st, &io, NULL, &p);
}

/* ---- StackedLSTM: two LSTM layers as one node ------------------------------------ */

/* optimize/fuse_stacked_lstm.c turns LSTM -> Squeeze(axis 1) -> LSTM, both
 * forward, layout 0, without sequence_lens, the lower layer's Y read only
 * by the Squeeze and its Y_h and Y_c by nobody, into one com.microsoft
 * StackedLSTM node: inputs 0-7 are the lower LSTM's, 8-15 the upper's (8,
 * its X, omitted: the lower layer's Y), outputs the upper LSTM's. It takes
 * over both nodes' prepared states (weights packed at their load).
 *
 * Why one node: at 2 threads the two layers run as a pipeline, one per
 * thread (run_stacked_pipeline). Run layer by layer, each step of a layer
 * is split over both threads, which meet once a step and read the half of
 * h the other core just wrote (the lanes of run_steps). In the pipeline
 * the lower layer's thread runs step t while the upper layer's runs step
 * t - 1 or t: nothing of a layer's state crosses cores, only the lower
 * layer's rows of Y of each step, once, through one progress counter, and
 * the upper layer prefetches them a step ahead. The upper layer's step
 * costs more (its input is the lower layer's hidden state, not X): the
 * lower layer's thread also makes some columns of the upper layer's input
 * projection (given_columns), as many as even the two out. Each layer
 * multiplies its step's state by all of R in one product and keeps the
 * projection laid out as at one thread, so the cells, and the sums they
 * make, are those of one thread. Bench LSTM (64 -> 128 -> 128, 32 steps),
 * batch 8, 2 threads, medians of 5 alternated runs under chrt: 557 -> 527
 * us a run (1 thread: 938 and 935). Timed inside the fastest runs (~495
 * us), the lower layer's thread computed for ~465 us and the upper
 * layer's waited 10-17 us, mostly for the lower layer's first step: what
 * is left is the pipeline's two ends.
 *
 * Elsewhere (other thread counts, batches the lanes do not take or where
 * the pipeline measured slower, pipeline_pays, other activations,
 * projections past PIPE_XW_BYTES) the node runs its layers one after the
 * other as the two LSTM nodes did. */
typedef struct stacked_state {
    recurrent_state *lower, *upper;
} stacked_state;

static void stacked_free(void *state)
{
    stacked_state *ss = state;
    if (ss) {
        recurrent_free(ss->lower);
        recurrent_free(ss->upper);
    }
    free(ss);
}

static bool forward_lstm_layer(const op_node *node)
{
    const recurrent_state *st = node->state;
    return node->domain[0] == '\0' && strcmp(node->op_type, "LSTM") == 0 && st &&
           st->cell == CELL_LSTM && st->directions == 1 && !st->reverse_only && st->layout == 0 &&
           !(node->n_inputs > 4 && node->inputs[4]);
}

bool lstm_stackable(const op_node *lower, const op_node *upper)
{
    if (!forward_lstm_layer(lower) || !forward_lstm_layer(upper))
        return false;
    for (int i = 1; i < lower->n_outputs; i++)
        if (lower->output_used[i])
            return false;
    const recurrent_state *lo = lower->state;
    const value_info *w = upper->inputs[1];
    return w && w->rank == 3 && w->dims[2] == lo->hidden;
}

void *stacked_lstm_state_new(op_node *lower, op_node *upper)
{
    stacked_state *ss = malloc(sizeof(*ss));
    if (!ss)
        return NULL;
    ss->lower = lower->state;
    ss->upper = upper->state;
    lower->state = upper->state = NULL;
    return ss;
}

static int stacked_prepare(op_node *node, ifd_error *err)
{
    return op_prepare_fail(node, err, "StackedLSTM is made by inferd's graph optimiser from "
                           "two LSTM nodes, not read from a model file");
}

static bool default_activations(const recurrent_state *st)
{
    return st->cell == CELL_LSTM && st->acts[0].kind == ACT_SIGMOID &&
           st->acts[1].kind == ACT_TANH && st->acts[2].kind == ACT_TANH;
}

/* Threads of each layer in the pipeline (see stacked_state). */
static void run_pipeline_layers(void *arg, size_t begin, size_t end)
{
    direction_run *d = arg;
    for (size_t i = begin; i < end; i++)
        run_direction(&d[i]);
}

/* Steps of the lower layer's projection made at once in a pipeline (the
 * lanes' LANE_PROJECT_ROWS rows). */
#define PIPE_PROJECT_ROWS 32

/* Batches at which the pipeline beat the lanes (fewer than shares take):
 * each of its products has the whole batch as rows on one thread, and the
 * GEMM's AVX-512 tiles take 4 to 12 rows (kernels/gemm.c, WIDE_MIN_ROWS),
 * a tile of 4-7 rows costing about as much as one of 8, or 1-3 rows to the
 * rows kernel. Bench LSTM, 2 threads, fastest of 2 alternated runs under
 * chrt, lanes -> pipeline, us: batch 2 237 -> 230, 3 276 -> 250, 4 322 ->
 * 392, 5 370 -> 390, 6 418 -> 425, 7 478 -> 491, 8 535 -> 513 (medians of
 * 5: 557 -> 527), 9 684 -> 564, 10 731 -> 618, 11 779 -> 662, 12 823 ->
 * 716, 13 914 -> 863, 14 1003 -> 992, 15 1092 -> 1123. */
static bool pipeline_pays(int64_t batch)
{
    return batch <= 3 || (batch >= 8 && batch <= 13);
}

/* Most bytes of a layer's projection in a pipeline (see stacked_run). */
#define PIPE_XW_BYTES (4 * XW_STEP_BYTES)

/* Columns of the upper layer's input projection the lower layer's thread
 * makes (given_cols). Per step the lower layer multiplies (input1 + H1) x
 * 4 H1, the upper (H1 + H2) x 4 H2; moving columns of the upper layer's
 * H1 x 4 H2 evens them out: the bench LSTM (64 -> 128 -> 128) 128 of 512.
 * Whole slivers of the packed W, and W in one panel (K = H1), or none. */
static size_t given_columns(const layer_io *lo, const recurrent_state *lower,
                            const recurrent_state *upper)
{
    double h1 = (double)lower->hidden, h2 = (double)upper->hidden, g = (double)upper->gates;
    double lower_work = ((double)lo->input + h1) * h1 * (double)lower->gates;
    double upper_work = (h1 + h2) * h2 * g;
    double cols = (upper_work - lower_work) / 2 / h1;
    size_t slivers = (size_t)(cols / GEMM_PACK_NR + 0.5), most = (size_t)(g * h2) / GEMM_PACK_NR;
    if (cols <= 0 || lower->hidden > GEMM_PACK_KC || most < 2)
        return 0;
    return (slivers < most ? slivers : most - 1) * GEMM_PACK_NR;
}

static int run_stacked_pipeline(op_ctx *ctx, const stacked_state *ss, const layer_io *lo,
                                const layer_io *up)
{
    layer_plan pl, pu;
    step_counter *ready = op_scratch(ctx, sizeof(step_counter));
    if (!ready || plan_layer(ctx, ss->lower, lo, true, NULL, &pl) ||
        plan_layer(ctx, ss->upper, up, true, NULL, &pu))
        return -1;
    direction_run d[2];
    init_direction(ctx, &pl, 0, &d[0]);
    init_direction(ctx, &pu, 0, &d[1]);
    for (int i = 0; i < 2; i++) {
        d[i].pool = NULL; /* one thread each */
        d[i].pipelined = true;
    }
    atomic_init(&ready->value, 0);
    int64_t block = (PIPE_PROJECT_ROWS + lo->batch - 1) / lo->batch;
    d[0].proj_block = (size_t)(block > 0 ? block : 1);
    d[0].above = &d[1];
    d[0].ready_out = ready;
    d[1].given_cols = given_columns(lo, ss->lower, ss->upper);
    d[1].input_ready = ready;
    /* the pool's caller runs the lower layer: it never waits for the upper
     * one, so the layers finish even when no worker joins */
    threadpool_parallel_for(op_threadpool(ctx), 2, 1, run_pipeline_layers, d);
    finish_direction(&pl, 0, &d[0]);
    finish_direction(&pu, 0, &d[1]);
    return 0;
}

static int stacked_run(op_ctx *ctx)
{
    const stacked_state *ss = ctx->node->state;
    layer_io lo, up;
    layer_inputs(ctx, ss->lower, 0, &lo);
    if (check_layer(ctx, ss->lower, &lo))
        return -1;
    int64_t H1 = ss->lower->hidden;
    size_t y1_floats = (size_t)(lo.seq * lo.batch * H1);
    float *y1 = op_scratch(ctx, (y1_floats + 1) * sizeof(float));
    if (!y1)
        return -1;
    /* the lower layer's Y [seq, 1, batch, H1] as the Squeeze gave it */
    ifd_tensor x2 = {.dtype = IFD_FLOAT, .rank = 3, .dims = {lo.seq, lo.batch, H1}, .data = y1};
    layer_inputs(ctx, ss->upper, 8, &up);
    up.x = &x2;
    if (check_layer(ctx, ss->upper, &up) || layer_outputs(ctx, ss->upper, &up))
        return -1;
    lo.y = y1;
    threadpool *pool = op_threadpool(ctx);
    /* the pipeline where the layers would otherwise split each step over
     * the two threads (the lanes: steps_in_parallel, fewer rows than
     * shares take), and where each layer's projection of every step
     * (which it keeps: the lower layer may run any number of steps ahead)
     * stays within PIPE_XW_BYTES; elsewhere, and for other activations,
     * layer by layer */
    double rows = (double)lo.seq * (double)lo.batch;
    if (threadpool_size(pool) == 2 && lo.seq > 0 && lo.batch > 0 && !lo.lens && !up.lens &&
        default_activations(ss->lower) && default_activations(ss->upper) &&
        ss->lower->packed_w && ss->lower->packed_input == lo.input && ss->upper->packed_w &&
        ss->upper->packed_input == up.input && steps_in_parallel(ss->upper, lo.batch, pool) &&
        pipeline_pays(lo.batch) && H1 % CHUNK_UNITS == 0 && H1 <= GEMM_PACK_KC &&
        ss->upper->hidden % CHUNK_UNITS == 0 && ss->upper->hidden <= GEMM_PACK_KC &&
        rows * (double)(4 * (H1 > ss->upper->hidden ? H1 : ss->upper->hidden)) * sizeof(float) <=
            PIPE_XW_BYTES)
        return run_stacked_pipeline(ctx, ss, &lo, &up);
    layer_plan pl, pu;
    if (run_layer(ctx, ss->lower, &lo, NULL, &pl))
        return -1;
    return run_layer(ctx, ss->upper, &up, &pl, &pu);
}

static const op_def defs[] = {
    {"", "RNN", 7, 21, recurrent_prepare, recurrent_run, recurrent_free},
    {"", "GRU", 7, 21, recurrent_prepare, recurrent_run, recurrent_free},
    {"", "LSTM", 7, 21, recurrent_prepare, recurrent_run, recurrent_free},
    {"com.microsoft", "StackedLSTM", 1, 1, stacked_prepare, stacked_run, stacked_free},
};

OP_FAMILY(ops_recurrent, defs);
