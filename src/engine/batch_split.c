/*
 * batch_split.c — a run cut by rows: each thread runs the whole graph on its
 * own slice of the batch (see batch_split.h).
 *
 * Small models (the digits MLP and CNN: 4-130 us a run) do not scale when
 * each operator splits its own work over the pool: a layer takes a few
 * microseconds, so every hand-off costs about what it saves. When every node
 * treats the rows of dim 0 independently, the batch can instead be cut once
 * per run: one hand-off, no synchronisation between layers, and each thread
 * keeps its slice's activations in its own cache.
 *
 * Separability is decided once, at session creation, on the prepared
 * (optimised) graph, by a conservative whitelist: a value is "batched" when
 * its dim 0 holds the rows of the batch; graph inputs are batched, constants
 * (and what is computed from constants only) are the same in every slice.
 * Each operator admitted below keeps rows apart for the reason given next to
 * its rule (elementwise maps, products with a constant right operand,
 * convolutions and pools per image, normalisations over axes other than 0,
 * reshapes that keep dim 0...); everything else — an unknown operator, a
 * reduction or softmax over axis 0, a Transpose moving axis 0, a MatMul
 * whose B depends on the input, BatchNormalization in training mode,
 * MaxPool's Indices (offsets into the whole batch), control flow — keeps the
 * model on the layer-by-layer path.
 *
 * What the outputs are: each slice's rows are bit for bit what the unsplit
 * run gives for those rows as a batch of their own, and within float
 * rounding (~1e-6 relative) of the unsplit run of the whole batch. Not bit
 * for bit the latter, because the GEMM micro-kernels split K over 1, 2 or 4
 * accumulators by how many rows share a tile (kernels/gemm.c: 1-3 rows
 * four sets, 4-6 two, the 12-row AVX-512 tile one), so a row's last bits
 * already depend on the batch it came in — the unsplit run of 8 rows and of
 * its first 4 differ there, as do Gemm's row blocks and Conv's image groups
 * between 1 and 2 threads. Cut points that kept every tile's row grouping
 * (and Conv's image groups) would leave batch 8 of the digits MLP unsplit
 * or cut 6 + 2; with the generic kernel, whose sums do not depend on the
 * tiling, the split is bit for bit the unsplit run.
 * tests/engine/test_batch_split.c checks all three with each kernel.
 *
 * Micro-batches. A batch whose activations fall out of the cache runs
 * slower per image than one image does: MobileNetV2 at one thread takes
 * ~10.3 ms a row at batch 8 against ~8.3-9.8 at batch 1 (its 112x112x96
 * planes are 4.8 MB a row). The same row-wise graph can then run each
 * slice (or, at one thread or a run not cut over threads, the whole batch
 * on the owning session) in runs of k rows, each a batch of its own whose
 * intermediates stay k rows big: the session's buffers, and so the peak
 * RSS, follow k, not the batch. Each micro-batch re-reads every weight,
 * so it only pays when a row's activations outweigh the weights: the rule,
 * from the prepared graph at session creation (measure_footprint), is
 * micro-batches when the bytes of all of one row's intermediates exceed the
 * bytes of the constants, with k = the rows whose live intermediates fit
 * one core's L2 (at least 1). On the bench models (issue 14), process CPU
 * time per run at batch 8, one thread pinned, medians of 3 alternated, a
 * loaded machine: MobileNetV2 (25.5 MB of activations a row, 13.3 MB of
 * weights, 5.7 MB alive at once: k = 1) whole 88.2 ms, k = 1 80.7, k = 2
 * 83.2, k = 4 87.0; ResNet-18 (44.6 MB of weights; its row's activations
 * partly unknown at load, 3.1 MB counted, ~12 MB in fact) whole 255 ms,
 * k = 4 259, k = 2 268, k = 1 290: whole. The digits CNN (20 KB of weights,
 * 4 KB a row) at batch 64: whole 133-136 us, k = 8 137-140, k = 16
 * 131-137: whole; the digits MLP at 64: whole 23.5 us, k = 16 26.9.
 * The transformer and the LSTM are not row-wise (their Transpose and Shape
 * nodes), so neither path touches them. A model that micro-batches also
 * splits over the threads whatever its work per run (SPLIT_MAX_WORK is for
 * models whose big weights make a layer-by-layer split the better use of
 * two cores): each thread then streams its own rows' activations.
 * A micro-batch's rows are bit for bit the unsplit run of those rows as a
 * batch of their own, and within float rounding of the whole batch, for
 * the reason above. INFERD_MICRO_BATCH=k (read when a session is made)
 * forces k rows (0: never), for measuring.
 *
 * INFERD_BATCH_SPLIT=off in the environment (read when a session is made)
 * turns both off, as IFD_BATCH_SPLIT_OFF does for one session.
 */
#include "batch_split.h"
#include "ops/fusable.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Least work (multiply-adds of the products, one unit per element of other
 * operators) one slice must carry. A split run pays the caller's set-up
 * (~0.2 us: outputs, views), the hand-off (~0.15 us from publishing the
 * job to the worker starting it, ~0.15 us from the last slice's end to the
 * caller's return; timed inside batch_split_run, medians) and the graph's
 * fixed cost per run in each slice (operator dispatch, product set-up: the
 * digits MLP takes 1.2 us at batch 1 and ~0.3 us more a row, so 4 rows
 * take 2.2 us against 3.4 for 8). Measured at 2 threads on 2 cores
 * (chrt -f 1), median us whole / split: MLP (17.5K a row) batch 8
 * 3.42 / 3.67, 12 4.56 / 4.49-4.77; CNN (83K a row) batch 2 5.22-5.41 /
 * 5.13-5.31, 4 9.0 / 6.75: a slice needed about 96K. Since the slices copy
 * small outputs into the caller's tensor at their end instead of writing
 * them there row by row (session.c, ROWS_IN_PLACE_MIN_BYTES), the split
 * gains from less: whole / split, medians of 9-11 alternated runs of
 * bench_inferd --min-time 0.3 (chrt -f 1, taskset -c 0,1): MLP batch 6
 * 2.41 / 2.43, 8 2.98 / 2.78, 10 3.48 / 3.18; CNN batch 2 4.64 / 4.25. So
 * 64K a slice: the MLP splits from batch 8, the CNN from batch 2. (The split
 * doubles the CPU time a run takes at these sizes, 3.2 -> 6.2 us for the
 * MLP at batch 8, for 7 % less latency: the threads were asked for.)
 *
 * What a split saves is half the batch's per-row time (the graph's fixed
 * cost is paid in each slice either way) against the hand-off's ~1 us, and
 * a convolution's multiply-add costs more than a product's: on an Intel
 * Xeon (2 cores, chrt -f 1, once the ten-class Softmax took one vector a
 * row) the MLP's 17.5K a row took 0.24 us, the CNN's 83K 1.74 us, 1.5x
 * the time a multiply-add. So Conv work counts 1.5x (CONV_WORK_WEIGHT) and
 * a slice needs 96K: whole / split, medians of 4-5 alternated runs at 2
 * threads: MLP batch 8 2.54 / 2.85-3.11 us, 10 2.94 / 2.99-3.16, 12 3.37 /
 * 3.10-3.30, 16 4.46 / 3.65; CNN batch 2 5.05 / 4.63-4.80, 3 6.89 / 5.65-5.94.
 * The MLP now splits from batch 12, the CNN still from batch 2. */
#define SLICE_MIN_WORK 98304.0
#define CONV_WORK_WEIGHT 1.5
/* Past this much work per run every layer is big enough to split over the
 * pool on its own (ResNet-18 at batch 8 scales 1.99x that way, bench/RESULTS.md),
 * and one session's arena serves the run instead of one per thread. */
#define SPLIT_MAX_WORK 256e6

typedef struct slice {
    ifd_session *session;      /* one intra-op thread, its own arena and pool
                                  (NULL at one thread: the owner runs) */
    ifd_value *inputs;         /* per input: a view of the slice's rows */
    const ifd_value **bound;   /* pointers to inputs[] */
    ifd_tensor *rows;          /* per output: the slice's rows of the result */
    /* the same for one micro-batch of the slice's rows */
    ifd_value *micro_inputs;
    const ifd_value **micro_bound;
    ifd_tensor *micro_outputs;
    ifd_status status;
    ifd_error err;
} slice;

struct batch_split {
    const ifd_model *m;
    ifd_session *owner; /* runs a run that is micro-batched but not sliced */
    threadpool *pool;
    size_t max_slices;  /* the pool's threads */
    slice *slices;
    double row_work;    /* estimated work of one row */
    int64_t micro_rows; /* rows per micro-batch; 0: every slice runs whole */
    size_t max_tensor_bytes;
    /* The run in progress, on a line of its own (the fields above are read
     * by every slice's thread at its start, and should stay in its cache):
     * chunk 0 of the pool's job makes the outputs (make_outputs) and says
     * so in rows_ready, which the other slices read where they first write
     * into their rows. */
    _Alignas(64) atomic_int rows_ready;
    ifd_value **outputs;
    int64_t batch;
    size_t running; /* slices of this run */
};

/* ---- separability ---------------------------------------------------------- */

typedef struct check {
    const ifd_model *m;
    bool *batched;      /* per value slot */
    char *reason;
    size_t size;
    double row_work;
    bool work_known;
} check;

static bool refuse(check *c, const model_node *node, const char *fmt, const char *detail)
{
    char why[128];
    snprintf(why, sizeof(why), fmt, detail);
    snprintf(c->reason, c->size, "%s node '%s' %s", node->op.op_type, node->op.name, why);
    return false;
}

static bool is_one_of(const char *op_type, const char *const *names)
{
    for (; *names; names++)
        if (strcmp(op_type, *names) == 0)
            return true;
    return false;
}

static int slot_of(const model_node *node, int k)
{
    return k < node->op.n_inputs ? node->input_slots[k] : -1;
}

static bool batched(const check *c, const model_node *node, int k)
{
    int slot = slot_of(node, k);
    return slot >= 0 && c->batched[slot];
}

static int rank_of(const model_node *node, int k)
{
    return k < node->op.n_inputs && node->op.inputs[k] ? node->op.inputs[k]->rank : -1;
}

/* axis in [-rank, rank) to [0, rank); false when it cannot be placed. */
static bool place_axis(int64_t axis, int rank, int64_t *out)
{
    if (axis < 0)
        axis += rank;
    *out = axis;
    return rank >= 0 && axis >= 0 && axis < rank;
}

/* The int64s of constant input k (axes, shapes), or false. */
static bool constant_ints(const model_node *node, int k, int64_t *out, size_t max, size_t *n)
{
    const ifd_tensor *t = k < node->op.n_inputs && node->op.inputs[k]
                              ? node->op.inputs[k]->constant
                              : NULL;
    return t && (t->data || ifd_tensor_count(t) == 0) && t->rank <= 1 &&
           tensor_read_int64s(t, out, max, n);
}

/* Elements of one row of a value: the product of dims past 0, or -1. */
static double row_elements(const value_info *v)
{
    if (!v || v->rank < 1)
        return -1;
    double n = 1;
    for (int i = 1; i < v->rank; i++) {
        if (v->dims[i] < 0)
            return -1;
        n *= (double)v->dims[i];
    }
    return n;
}

static void add_work(check *c, double per_row)
{
    if (per_row < 0)
        c->work_known = false;
    else
        c->row_work += per_row;
}

/* The axes a node reads from its `axes` attribute or, since the version
 * where it moved there, its input 1; false when it has none (all axes). */
static bool node_axes(const model_node *node, int64_t *axes, size_t max, size_t *n)
{
    const int64_t *attr;
    size_t count = op_attr_ints(&node->op, "axes", &attr);
    if (count && count <= max) {
        memcpy(axes, attr, count * sizeof(*axes));
        *n = count;
        return true;
    }
    return constant_ints(node, 1, axes, max, n) && *n > 0;
}

/* Whether no axis (of a tensor of `rank`) is 0. */
static bool axes_keep_rows(const int64_t *axes, size_t n, int rank)
{
    for (size_t i = 0; i < n; i++) {
        int64_t a;
        if (!place_axis(axes[i], rank, &a) || a == 0)
            return false;
    }
    return true;
}

/* Every input past `first` is the same in every slice. */
static bool rest_invariant(const check *c, const model_node *node, int first)
{
    for (int k = first; k < node->op.n_inputs; k++)
        if (batched(c, node, k))
            return false;
    return true;
}

/* Elementwise maps of input 0 (their other inputs are parameters). */
static const char *const unary_ops[] = {
    "Relu", "LeakyRelu", "Sigmoid", "Tanh", "Elu", "Selu", "Celu", "Softplus", "Softsign",
    "HardSigmoid", "HardSwish", "Gelu", "Erf", "Exp", "Log", "Abs", "Neg", "Sqrt", "Reciprocal",
    "Floor", "Ceil", "Round", "Sign", "Sin", "Cos", "Tan", "Not", "IsNaN", "IsInf", "Identity",
    "Cast", "Clip", "Mish", "ThresholdedRelu", "Shrink", "Dropout", NULL};
/* Broadcasting elementwise operators. */
static const char *const broadcast_ops[] = {
    "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "Equal", "Less", "Greater",
    "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor", "Where", "PRelu", "Mod", NULL};
static const char *const pool_ops[] = {"AveragePool", "LpPool", "GlobalAveragePool",
                                       "GlobalMaxPool", "GlobalLpPool", "InstanceNormalization",
                                       "LRN", NULL};
static const char *const reduce_ops[] = {"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin",
                                         "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSum",
                                         "ReduceLogSumExp", "ReduceSumSquare", NULL};
static const char *const ms_gelu_ops[] = {"Gelu", "FastGelu", "QuickGelu", "BiasGelu", NULL};

/* Whether node acts row by row; then which of its outputs are batched is
 * what the caller marks (all of them: every admitted operator keeps dim 0). */
static bool node_rowwise(check *c, const model_node *node)
{
    const op_node *op = &node->op;
    const char *t = op->op_type;
    int out_rank = op->outputs[0]->rank;
    double out_row = row_elements(op->outputs[0]);
    bool any_batched = false;
    for (int k = 0; k < op->n_inputs; k++)
        any_batched |= batched(c, node, k);
    if (op->n_subgraphs || op->n_implicit)
        return refuse(c, node, "%s", "runs subgraphs");
    if (strcmp(op->domain, "com.microsoft") == 0 && is_one_of(t, ms_gelu_ops)) {
        /* Gelu of x (+ a constant bias row): elementwise */
        if (!batched(c, node, 0) || !rest_invariant(c, node, 1))
            return refuse(c, node, "%s", "has a batched bias");
        add_work(c, out_row);
        return true;
    }
    if (strcmp(op->domain, "com.microsoft") == 0 && strcmp(t, "InvertedResidual") == 0) {
        /* MobileNetV2's fused block (ops/inverted_residual.c): per image,
         * X and a residual of the output's shape */
        for (int k = 0; k < op->n_inputs; k++)
            if (!batched(c, node, k) || (k > 0 && rank_of(node, k) != out_rank))
                return refuse(c, node, "%s", "takes an input that is not per image");
        /* at least its two pointwise products' multiply-adds (the expand's
         * width is not an input): out x X's channels + X x out's channels */
        double x_row = row_elements(op->inputs[0]);
        double in_c = op->inputs[0]->rank == 4 ? (double)op->inputs[0]->dims[1] : -1;
        double out_c = out_rank == 4 ? (double)op->outputs[0]->dims[1] : -1;
        add_work(c, x_row < 0 || out_row < 0 || in_c < 0 || out_c < 0
                        ? -1
                        : out_row * in_c + x_row * out_c);
        return true;
    }
    if (op->domain[0] != '\0')
        return refuse(c, node, "is in domain '%s', whose rows are not known to stay apart",
                      op->domain);
    if (!any_batched) {
        /* constants only (at graph_opt basic and all these were folded):
         * the same in every slice, but only known operators are trusted to
         * be deterministic */
        if (!is_one_of(t, unary_ops) && !is_one_of(t, broadcast_ops))
            return refuse(c, node, "%s", "is not known to act row by row");
        return true;
    }
    if (is_one_of(t, unary_ops)) {
        if (!batched(c, node, 0) || !rest_invariant(c, node, 1))
            return refuse(c, node, "%s", "takes a parameter from the batch");
        /* Dropout with a training_mode input could draw random masks */
        if (strcmp(t, "Dropout") == 0 && op->n_inputs > 2 && node->input_slots[2] >= 0) {
            int64_t mode[1];
            size_t n;
            if (!constant_ints(node, 2, mode, 1, &n) || n != 1 || mode[0] != 0)
                return refuse(c, node, "%s", "may run in training mode");
        }
    } else if (is_one_of(t, broadcast_ops)) {
        /* every batched operand spans the output's dims, so its dim 0 is
         * the output's; an operand the same in every slice must broadcast
         * along dim 0 (lower rank, or dim 0 of 1) */
        if (out_rank < 1)
            return refuse(c, node, "%s", "has an output of unknown rank");
        for (int k = 0; k < op->n_inputs; k++) {
            if (node->input_slots[k] < 0)
                continue;
            int r = rank_of(node, k);
            if (batched(c, node, k) ? r != out_rank
                                    : r < 0 || (r == out_rank && op->inputs[k]->dims[0] != 1))
                return refuse(c, node, "%s", "broadcasts an operand along the batch axis");
        }
    } else if (strcmp(t, "Softmax") == 0 || strcmp(t, "LogSoftmax") == 0 ||
               strcmp(t, "Hardmax") == 0 || strcmp(t, "LayerNormalization") == 0 ||
               strcmp(t, "ArgMax") == 0 || strcmp(t, "ArgMin") == 0) {
        /* normalised (or searched) over axes from `axis` on; before version
         * 13 the Softmax family coerces to 2-D at axis (default 1) */
        int64_t dflt = strcmp(t, "ArgMax") == 0 || strcmp(t, "ArgMin") == 0 ? 0
                       : strcmp(t, "LayerNormalization") == 0 || op->version >= 13 ? -1
                                                                                  : 1;
        int64_t axis;
        if (!place_axis(op_attr_int(op, "axis", dflt), rank_of(node, 0), &axis) || axis == 0)
            return refuse(c, node, "%s", "works across the batch axis");
        if (!batched(c, node, 0))
            return refuse(c, node, "%s", "takes a parameter from the batch");
        /* LayerNormalization: scale and bias, then a fused residual of x's shape */
        for (int k = 1; k < op->n_inputs; k++)
            if (batched(c, node, k) && (k < 3 || rank_of(node, k) != rank_of(node, 0)))
                return refuse(c, node, "%s", "takes a parameter from the batch");
    } else if (strcmp(t, "Gemm") == 0) {
        /* rows of A times a B the same in every slice, plus a C row */
        int c_rank = rank_of(node, 2);
        if (!batched(c, node, 0) || op_attr_int(op, "transA", 0) != 0)
            return refuse(c, node, "%s", "reads the batch as columns of A");
        if (!rest_invariant(c, node, 1))
            return refuse(c, node, "%s", "has B or C from the batch");
        if (slot_of(node, 2) >= 0 && op_attr_float(op, "beta", 1.0f) != 0.0f &&
            (c_rank < 0 || (c_rank == 2 && op->inputs[2]->dims[0] != 1)))
            return refuse(c, node, "%s", "adds a C with rows of its own");
        add_work(c, out_row < 0 || rank_of(node, 0) != 2 || op->inputs[0]->dims[1] < 0
                        ? -1
                        : out_row * (double)op->inputs[0]->dims[1]);
        return true;
    } else if (strcmp(t, "MatMul") == 0) {
        /* [rows, ..., K] x a constant K x N: each row's products are its own */
        int ra = rank_of(node, 0), rb = rank_of(node, 1);
        int b_slot = slot_of(node, 1);
        if (!batched(c, node, 0) || ra < 2 || b_slot < 0 ||
            c->m->values[b_slot].origin != VALUE_CONSTANT || rb < 1 || rb > 2)
            return refuse(c, node, "%s", "multiplies by a B that depends on the input");
        double k = op->inputs[0]->dims[ra - 1];
        add_work(c, out_row < 0 || k < 0 ? -1 : out_row * k);
        return true;
    } else if (strcmp(t, "Conv") == 0 || strcmp(t, "ConvTranspose") == 0) {
        /* per image; inputs past B are a fused residual of the output's shape */
        int rw = rank_of(node, 1);
        if (!batched(c, node, 0) || batched(c, node, 1) || batched(c, node, 2) || rw < 3)
            return refuse(c, node, "%s", "takes its weights from the batch");
        for (int k = 3; k < op->n_inputs; k++)
            if (node->input_slots[k] >= 0 && (!batched(c, node, k) || rank_of(node, k) != out_rank))
                return refuse(c, node, "%s", "adds a residual that is not per image");
        double per_output = 1;
        for (int i = 1; i < rw; i++)
            per_output *= op->inputs[1]->dims[i] < 0 ? -1e300 : (double)op->inputs[1]->dims[i];
        double rows = strcmp(t, "Conv") == 0 ? out_row : row_elements(op->inputs[0]);
        add_work(c, rows < 0 || per_output < 0 ? -1 : CONV_WORK_WEIGHT * rows * per_output);
        return true;
    } else if (strcmp(t, "MaxPool") == 0) {
        /* Indices are offsets into the whole batch's tensor */
        if (op->n_outputs > 1 && op->output_used[1])
            return refuse(c, node, "%s", "returns indices into the whole batch");
        if (!batched(c, node, 0))
            return refuse(c, node, "%s", "takes a parameter from the batch");
    } else if (is_one_of(t, pool_ops)) {
        /* per image and channel (LRN across channels of one image) */
        if (!batched(c, node, 0) || !rest_invariant(c, node, 1))
            return refuse(c, node, "%s", "takes a parameter from the batch");
    } else if (strcmp(t, "BatchNormalization") == 0) {
        /* in inference the statistics are constants; training mode
         * computes them over the batch */
        bool training = op_attr_int(op, "training_mode", 0) != 0;
        for (int k = 1; k < op->n_outputs; k++)
            training |= op->output_used[k];
        if (training)
            return refuse(c, node, "%s", "computes statistics over the batch (training mode)");
        if (!batched(c, node, 0) || !rest_invariant(c, node, 1))
            return refuse(c, node, "%s", "takes its statistics from the batch");
    } else if (strcmp(t, "Flatten") == 0) {
        /* axis in [-rank, rank]: rows are dims [0, axis) flattened */
        int64_t axis = op_attr_int(op, "axis", 1);
        int rank = rank_of(node, 0);
        if (axis < 0)
            axis = rank < 0 ? 0 : axis + rank;
        if (axis < 1)
            return refuse(c, node, "%s", "folds the batch axis into a row");
    } else if (strcmp(t, "Reshape") == 0) {
        /* the new shape must keep dim 0: copied (0) or inferred (-1) from
         * exactly one input row's elements */
        int64_t shape[IFD_MAX_RANK];
        size_t n;
        if (batched(c, node, 1) || !constant_ints(node, 1, shape, IFD_MAX_RANK, &n) || n < 1)
            return refuse(c, node, "%s", "has a shape that is not a constant");
        bool keeps = shape[0] == 0 && op_attr_int(op, "allowzero", 0) == 0;
        if (shape[0] == -1) {
            double in_row = row_elements(op->inputs[0]), out = 1;
            for (size_t i = 1; i < n; i++) {
                int64_t d = shape[i];
                if (d == 0 && op_attr_int(op, "allowzero", 0) == 0)
                    d = (int)i < rank_of(node, 0) ? op->inputs[0]->dims[i] : -1;
                out *= d < 0 ? -1e300 : (double)d;
            }
            keeps = in_row >= 0 && out == in_row;
        }
        if (!keeps)
            return refuse(c, node, "%s", "reshapes across the batch axis");
    } else if (strcmp(t, "Squeeze") == 0 || strcmp(t, "Unsqueeze") == 0) {
        int64_t axes[IFD_MAX_RANK];
        size_t n;
        int rank = strcmp(t, "Squeeze") == 0 ? rank_of(node, 0) : out_rank;
        if (!node_axes(node, axes, IFD_MAX_RANK, &n) || !axes_keep_rows(axes, n, rank))
            return refuse(c, node, "%s", "moves the batch axis");
    } else if (strcmp(t, "Transpose") == 0) {
        const int64_t *perm;
        size_t n = op_attr_ints(op, "perm", &perm);
        if (n ? perm[0] != 0 : rank_of(node, 0) != 1)
            return refuse(c, node, "%s", "moves the batch axis");
    } else if (strcmp(t, "Concat") == 0 || strcmp(t, "Split") == 0) {
        /* along another axis, of operands that are all batched */
        int64_t axis;
        if (!place_axis(op_attr_int(op, "axis", 0), rank_of(node, 0), &axis) || axis == 0)
            return refuse(c, node, "%s", "joins or cuts along the batch axis");
        int last = strcmp(t, "Concat") == 0 ? op->n_inputs : 1;
        for (int k = 0; k < last; k++)
            if (!batched(c, node, k))
                return refuse(c, node, "%s", "joins a constant along the rows");
        if (!rest_invariant(c, node, last))
            return refuse(c, node, "%s", "takes its split from the batch");
    } else if (strcmp(t, "Slice") == 0) {
        /* before version 10 the axes are an attribute, then input 3; absent,
         * every axis is sliced */
        int64_t axes[IFD_MAX_RANK];
        size_t n = 0;
        bool have = op->version < 10 ? node_axes(node, axes, IFD_MAX_RANK, &n)
                                     : constant_ints(node, 3, axes, IFD_MAX_RANK, &n) && n > 0;
        if (!batched(c, node, 0) || !rest_invariant(c, node, 1) || !have ||
            !axes_keep_rows(axes, n, rank_of(node, 0)))
            return refuse(c, node, "%s", "may slice the batch axis");
    } else if (strcmp(t, "Gather") == 0) {
        /* rows of batched data picked along another axis, or rows of a
         * constant table picked by batched indices (an embedding) */
        int64_t axis;
        bool placed = place_axis(op_attr_int(op, "axis", 0), rank_of(node, 0), &axis);
        bool by_data = batched(c, node, 0) && !batched(c, node, 1) && placed && axis != 0;
        bool by_index = !batched(c, node, 0) && batched(c, node, 1) && placed && axis == 0 &&
                        rank_of(node, 1) >= 1;
        if (!by_data && !by_index)
            return refuse(c, node, "%s", "gathers along the batch axis");
    } else if (is_one_of(t, reduce_ops)) {
        int64_t axes[IFD_MAX_RANK];
        size_t n;
        if (!batched(c, node, 0) || !node_axes(node, axes, IFD_MAX_RANK, &n) ||
            !axes_keep_rows(axes, n, rank_of(node, 0)))
            return refuse(c, node, "%s", "reduces over the batch axis");
    } else {
        return refuse(c, node, "%s", "is not known to act row by row");
    }
    add_work(c, out_row);
    return true;
}

double batch_split_row_work(const ifd_model *m, char *reason, size_t size)
{
    char scratch[8];
    if (!reason || !size) {
        reason = scratch;
        size = sizeof(scratch);
    }
    reason[0] = '\0';
    check c = {.m = m, .reason = reason, .size = size, .work_known = true};
    c.batched = calloc(m->n_values ? m->n_values : 1, sizeof(*c.batched));
    if (!c.batched) {
        snprintf(reason, size, "out of memory");
        return -1;
    }
    bool ok = m->n_inputs > 0 && m->n_outputs > 0;
    if (!ok)
        snprintf(reason, size, "the model has no inputs or no outputs");
    for (size_t i = 0; ok && i < m->n_inputs; i++) {
        const ifd_type_info *t = &m->inputs[i].info.type;
        ok = t->kind == IFD_VALUE_TENSOR && t->dtype != IFD_STRING && t->rank >= 1;
        if (!ok)
            snprintf(reason, size, "input '%s' is not a tensor with a batch axis",
                     m->inputs[i].info.name);
        c.batched[m->inputs[i].slot] = true;
    }
    for (size_t n = 0; ok && n < m->n_nodes; n++) {
        const model_node *node = &m->nodes[n];
        bool any = false;
        for (int k = 0; k < node->op.n_inputs + node->op.n_implicit; k++)
            any |= node->input_slots[k] >= 0 && c.batched[node->input_slots[k]];
        ok = node->op.n_outputs > 0 && node_rowwise(&c, node);
        for (int k = 0; ok && k < node->op.n_outputs; k++)
            c.batched[node->output_slots[k]] = any;
    }
    for (size_t k = 0; ok && k < m->n_outputs; k++) {
        int slot = m->outputs[k].slot;
        const value_info *v = &m->values[slot].info;
        ok = c.batched[slot] && v->kind == IFD_VALUE_TENSOR && v->dtype != IFD_STRING &&
             row_elements(v) >= 0;
        if (!ok)
            snprintf(reason, size,
                     "output '%s' is not a tensor whose rows come from the batch and whose row "
                     "shape is known",
                     m->outputs[k].info.name);
    }
    free(c.batched);
    if (!ok)
        return -1;
    /* unknown sizes: assume each row is worth a slice of its own */
    return c.work_known ? c.row_work : SLICE_MIN_WORK;
}

/* ---- micro-batches -------------------------------------------------------- */

/* What one row of the batch costs in memory, from the prepared graph: the
 * most bytes of intermediates alive at once (each value from its producer to
 * its last reader, views of another value's buffer not counted), and the
 * weights every row streams through. */
typedef struct footprint {
    double row_peak;   /* bytes of one row's intermediates alive at once */
    double row_total;  /* bytes of all of one row's intermediates */
    double weights;    /* bytes of the constants the nodes read */
} footprint;

static double row_bytes(const model_value *v)
{
    double n = row_elements(&v->info);
    return n < 0 || v->info.dtype == IFD_STRING ? -1 : n * (double)ifd_dtype_size(v->info.dtype);
}

/* One pass over the nodes, each buffer's bytes released after the last
 * reader of it or of any of its views (as the session does); a value whose
 * row shape is unknown counts nothing, so the figures are lower bounds.
 * Out of memory: all zero (batches then stay whole). */
static footprint measure_footprint(const ifd_model *m)
{
    footprint f = {0, 0, 0};
    double *freed = calloc(m->n_nodes + 1, sizeof(*freed)); /* bytes released after node n */
    if (!freed)
        return f;
    for (size_t i = 0; i < m->n_values; i++) {
        const model_value *v = &m->values[i];
        if (v->origin == VALUE_CONSTANT) {
            f.weights += (double)ifd_tensor_count(&v->constant_storage) *
                         (double)ifd_dtype_size(v->constant_storage.dtype);
            continue;
        }
        double b = row_bytes(v);
        if (v->origin != VALUE_INTERMEDIATE || v->producer < 0 || b <= 0 ||
            (m->view_of && m->view_of[i] >= 0))
            continue;
        int until = m->buffer_last_use ? m->buffer_last_use[i] : v->last_use;
        if (until < v->producer)
            until = v->producer; /* read by nobody (or only as a graph output) */
        if ((size_t)until < m->n_nodes)
            freed[until] += b;
        f.row_total += b;
    }
    double live = 0;
    for (size_t n = 0; n < m->n_nodes; n++) {
        const model_node *node = &m->nodes[n];
        /* a fused block's own planes still stream per row (without them
         * MobileNetV2 showed 10.4 MB a row against 13.3 MB of weights, kept
         * batch 8 whole and ran 57.8 against 53.0 ms, 61 against 29 MB) */
        f.row_total += inverted_residual_hidden_bytes(&node->op);
        for (int k = 0; k < node->op.n_outputs; k++) {
            int slot = node->output_slots[k];
            const model_value *v = slot >= 0 ? &m->values[slot] : NULL;
            double b = v && v->origin == VALUE_INTERMEDIATE &&
                               !(m->view_of && m->view_of[slot] >= 0)
                           ? row_bytes(v)
                           : 0;
            live += b > 0 ? b : 0;
        }
        if (live > f.row_peak)
            f.row_peak = live;
        live -= freed[n];
    }
    free(freed);
    return f;
}

/* INFERD_MICRO_BATCH=k in the environment forces micro-batches of k rows
 * (0: never), for measuring the rule below; -1 when unset or not a count. */
static int64_t micro_rows_from_environment(void)
{
    const char *env = getenv("INFERD_MICRO_BATCH");
    if (!env || !*env)
        return -1;
    char *end;
    long long k = strtoll(env, &end, 10);
    return *end == '\0' && k >= 0 && k <= 1 << 20 ? (int64_t)k : -1;
}

/* The cache one thread keeps a micro-batch's activations in: its L2 (each
 * core has its own, so a slice per thread has one each). */
static double cache_bytes(void)
{
    long l2 = -1;
#ifdef _SC_LEVEL2_CACHE_SIZE
    l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
#endif
    return l2 > 0 ? (double)l2 : 1048576.0;
}

/* Rows per micro-batch, 0 for whole batches (the rule and its measurements
 * are at the top of the file). */
static int64_t choose_micro_rows(const ifd_model *m, char *why, size_t size)
{
    int64_t forced = micro_rows_from_environment();
    if (forced >= 0) {
        snprintf(why, size, "micro-batches of %lld rows by INFERD_MICRO_BATCH",
                 (long long)forced);
        return forced;
    }
    footprint f = measure_footprint(m);
    double cache = cache_bytes();
    if (f.row_total <= f.weights || f.row_peak <= 0) {
        snprintf(why, size,
                 "batches stay whole: a row's activations (%.1f MB) weigh less than the "
                 "weights (%.1f MB) a micro-batch would stream again",
                 f.row_total / 1048576.0, f.weights / 1048576.0);
        return 0;
    }
    double k = floor(cache / f.row_peak);
    int64_t rows = k < 1 ? 1 : k > 65536 ? 65536 : (int64_t)k;
    snprintf(why, size,
             "micro-batches of %lld rows: %.1f MB of activations a row (%.1f MB alive at "
             "once) outweigh the weights (%.1f MB)",
             (long long)rows, f.row_total / 1048576.0, f.row_peak / 1048576.0,
             f.weights / 1048576.0);
    return rows;
}

/* ---- sessions and runs ------------------------------------------------------ */

void batch_split_free(batch_split *split)
{
    if (!split)
        return;
    for (size_t i = 0; split->slices && i < split->max_slices; i++) {
        ifd_session_free(split->slices[i].session);
        free(split->slices[i].inputs);
        free(split->slices[i].bound);
        free(split->slices[i].rows);
        free(split->slices[i].micro_inputs);
        free(split->slices[i].micro_bound);
        free(split->slices[i].micro_outputs);
    }
    free(split->slices);
    free(split);
}

static bool turned_off_by_environment(void)
{
    const char *env = getenv("INFERD_BATCH_SPLIT");
    return env && (strcmp(env, "off") == 0 || strcmp(env, "0") == 0);
}

ifd_status batch_split_create(const ifd_model *m, const ifd_session_options *options,
                              threadpool *pool, ifd_session *owner, batch_split **out,
                              char *reason, size_t size, ifd_error *err)
{
    *out = NULL;
    int threads = threadpool_size(pool);
    if (options && options->batch_split == IFD_BATCH_SPLIT_OFF) {
        snprintf(reason, size, "off by the session option");
        return IFD_OK;
    }
    if (turned_off_by_environment()) {
        snprintf(reason, size, "off by INFERD_BATCH_SPLIT");
        return IFD_OK;
    }
    if (m->graph_opt == IFD_GRAPH_OPT_NONE) {
        snprintf(reason, size, "off with graph optimisation none");
        return IFD_OK;
    }
    double row_work = batch_split_row_work(m, reason, size);
    if (row_work < 0)
        return IFD_OK;
    char micro_why[128];
    int64_t micro_rows = choose_micro_rows(m, micro_why, sizeof(micro_why));
    if (threads < 2 && micro_rows == 0) {
        snprintf(reason, size, "one thread, and %s", micro_why);
        return IFD_OK;
    }
    /* aligned for the line of the run in progress */
    batch_split *split = aligned_alloc(_Alignof(batch_split), sizeof(*split));
    if (!split)
        goto oom;
    memset(split, 0, sizeof(*split));
    split->m = m;
    split->owner = owner;
    split->pool = pool;
    split->row_work = row_work;
    split->micro_rows = micro_rows;
    split->max_slices = (size_t)(threads < 1 ? 1 : threads);
    split->max_tensor_bytes = options && options->max_tensor_bytes &&
                                      options->max_tensor_bytes < IFD_MAX_TENSOR_BYTES
                                  ? options->max_tensor_bytes
                                  : IFD_MAX_TENSOR_BYTES;
    split->slices = calloc(split->max_slices, sizeof(*split->slices));
    if (!split->slices)
        goto oom;
    ifd_session_options one = {.threads = 1, .batch_split = IFD_BATCH_SPLIT_OFF};
    if (options) {
        one.max_tensor_bytes = options->max_tensor_bytes;
        one.max_loop_iterations = options->max_loop_iterations;
        one.profile = options->profile;
    }
    for (size_t i = 0; i < split->max_slices; i++) {
        slice *sl = &split->slices[i];
        sl->inputs = calloc(m->n_inputs, sizeof(*sl->inputs));
        sl->bound = calloc(m->n_inputs, sizeof(*sl->bound));
        sl->rows = calloc(m->n_outputs, sizeof(*sl->rows));
        sl->micro_inputs = calloc(m->n_inputs, sizeof(*sl->micro_inputs));
        sl->micro_bound = calloc(m->n_inputs, sizeof(*sl->micro_bound));
        sl->micro_outputs = calloc(m->n_outputs, sizeof(*sl->micro_outputs));
        if (!sl->inputs || !sl->bound || !sl->rows || !sl->micro_inputs || !sl->micro_bound ||
            !sl->micro_outputs)
            goto oom;
        for (size_t j = 0; j < m->n_inputs; j++) {
            sl->bound[j] = &sl->inputs[j];
            sl->micro_bound[j] = &sl->micro_inputs[j];
        }
        /* at one thread the owner runs the micro-batches itself */
        if (split->max_slices < 2)
            continue;
        ifd_status st = ifd_session_create(m, &one, &sl->session, err);
        if (st != IFD_OK) {
            batch_split_free(split);
            return st;
        }
    }
    if (threads < 2)
        snprintf(reason, size, "one thread, %s", micro_why);
    else
        snprintf(reason, size,
                 "splits batches over %d threads: every node acts row by row (about %.0f "
                 "multiply-adds a row; %.0f a slice at least); %s",
                 threads, row_work, SLICE_MIN_WORK, micro_why);
    *out = split;
    return IFD_OK;
oom:
    batch_split_free(split);
    set_error(err, "out of memory");
    return IFD_ERR_NO_MEMORY;
}

size_t batch_split_slices(const batch_split *split, const ifd_value *const *inputs)
{
    const ifd_model *m = split->m;
    int64_t batch = inputs[0]->tensor.rank >= 1 ? inputs[0]->tensor.dims[0] : 0;
    for (size_t i = 0; i < m->n_inputs; i++)
        if (inputs[i]->kind != IFD_VALUE_TENSOR || inputs[i]->tensor.rank < 1 ||
            inputs[i]->tensor.dims[0] != batch)
            return 0; /* inputs broadcast against each other: not cut by rows */
    if (batch < 2)
        return 0;
    /* a model whose rows spill out of the cache (micro_rows > 0) runs
     * best one slice per thread however much work the batch holds: each
     * thread then streams its own rows' activations, where a layer split
     * over the pool makes both threads stream the whole batch's; with
     * fewer rows than threads, its micro-batches run on the owner so that
     * every thread works on each layer */
    double work = split->row_work * (double)batch;
    bool rows_for_all = batch >= (int64_t)split->max_slices;
    size_t slices = 0;
    if (split->max_slices >= 2 &&
        ((split->micro_rows > 0 && rows_for_all) || work <= SPLIT_MAX_WORK)) {
        double by_work = work / SLICE_MIN_WORK;
        slices = split->max_slices;
        if ((double)slices > by_work)
            slices = (size_t)by_work;
        if ((int64_t)slices > batch)
            slices = (size_t)batch;
    }
    if (slices >= 2)
        return slices;
    /* one slice: worth a run of its own only when cut into micro-batches */
    return split->micro_rows > 0 && batch > split->micro_rows ? 1 : 0;
}

int64_t batch_split_micro_rows(const batch_split *split) { return split->micro_rows; }

size_t batch_split_slice_count(const batch_split *split) { return split->max_slices; }

ifd_session *batch_split_slice_session(const batch_split *split, size_t i)
{
    return i < split->max_slices ? split->slices[i].session : NULL;
}

void batch_split_rows(int64_t batch, size_t slices, size_t i, int64_t *r0, int64_t *rows)
{
    /* contiguous rows, the first batch % slices slices one row longer */
    int64_t base = batch / (int64_t)slices, extra = batch % (int64_t)slices, k = (int64_t)i;
    *r0 = k * base + (k < extra ? k : extra);
    *rows = base + (k < extra);
}

/* A view of rows [r0, r0 + rows) of t. */
static ifd_tensor rows_of(const ifd_tensor *t, int64_t r0, int64_t rows)
{
    ifd_tensor view = tensor_view(t);
    size_t row_bytes = t->dims[0] ? ifd_dtype_size(t->dtype) *
                                        (size_t)(ifd_tensor_count(t) / t->dims[0])
                                  : 0;
    view.data = (char *)t->data + (size_t)r0 * row_bytes;
    view.dims[0] = rows;
    view.capacity = 0;
    return view;
}

/* Run `session` on the rows bound in sl->inputs, into sl->rows, in
 * micro-batches of at most `micro` rows (0: all at once): ceil(rows / micro)
 * contiguous runs, the first rows % runs one row longer, so each holds
 * about as many rows as the others. */
static ifd_status run_micro_batches(const ifd_model *m, ifd_session *session, slice *sl,
                                    int64_t micro, const atomic_int *rows_ready,
                                    ifd_error *err)
{
    int64_t rows = sl->inputs[0].tensor.dims[0];
    if (micro <= 0 || rows <= micro)
        return session_run_rows(session, sl->bound, sl->rows, rows_ready, err);
    /* each micro-batch's outputs are views of the rows: made now */
    if (rows_ready && !batch_rows_wait(rows_ready)) {
        set_error(err, "the batch's outputs could not be made");
        return IFD_ERR_NO_MEMORY;
    }
    size_t runs = (size_t)((rows + micro - 1) / micro);
    for (size_t r = 0; r < runs; r++) {
        int64_t r0, n;
        batch_split_rows(rows, runs, r, &r0, &n);
        for (size_t j = 0; j < m->n_inputs; j++) {
            sl->micro_inputs[j] = sl->inputs[j];
            sl->micro_inputs[j].tensor = rows_of(&sl->inputs[j].tensor, r0, n);
        }
        for (size_t k = 0; k < m->n_outputs; k++)
            sl->micro_outputs[k] = rows_of(&sl->rows[k], r0, n);
        ifd_status st = session_run_rows(session, sl->micro_bound, sl->micro_outputs, NULL, err);
        if (st != IFD_OK)
            return st;
    }
    return IFD_OK;
}

#define OUTPUT_ALIGN 64
#define SMALL_OUTPUT_BYTES 4096

/* A tensor value of the output's shape with `batch` rows, uninitialised:
 * every byte is written by one slice. */
static ifd_status new_output(const batch_split *split, size_t k, int64_t batch, ifd_value **out,
                             ifd_error *err)
{
    const model_io *io = &split->m->outputs[k];
    const value_info *info = &split->m->values[io->slot].info;
    int64_t dims[IFD_MAX_RANK];
    memcpy(dims, info->dims, sizeof(dims));
    dims[0] = batch;
    size_t bytes;
    char shape[128];
    if (!shape_bytes(info->dtype, info->rank, dims, &bytes) || bytes > split->max_tensor_bytes) {
        set_error(err, "output '%s': %s tensor of shape %s is above this session's limit of %zu "
                  "bytes", io->info.name, ifd_dtype_name(info->dtype),
                  shape_to_string(info->rank, dims, shape, sizeof(shape)), split->max_tensor_bytes);
        return IFD_ERR_RUNTIME;
    }
    size_t rounded = (bytes + OUTPUT_ALIGN - 1) / OUTPUT_ALIGN * OUTPUT_ALIGN;
    /* malloc, cleared by assignment below, rather than calloc, which glibc
     * serves past its per-thread cache (~100 cycles against ~20 at this
     * size; and a memset right after malloc GCC turns back into calloc) */
    ifd_value *v = malloc(sizeof(*v));
    /* a row of scores comes from malloc's size classes, much cheaper than
     * aligned_alloc's search for an aligned block (as in session.c's
     * take_output); no kernel needs the rows aligned (each slice's start
     * is some rows into the buffer anyway). One line more, so the header
     * malloc writes after the block is not on the last line the last slice
     * writes (its thread would give that line up to the caller's malloc
     * at every run): MLP batch 64, 2 threads, 9.50 -> 9.44 us, 6 of 6
     * alternated pairs faster. */
    void *data = rounded <= SMALL_OUTPUT_BYTES ? malloc(rounded + OUTPUT_ALIGN)
                                               : aligned_alloc(OUTPUT_ALIGN, rounded);
    if (!v || !data) {
        free(v);
        free(data);
        set_error(err, "out of memory");
        return IFD_ERR_NO_MEMORY;
    }
    *v = (ifd_value){.kind = IFD_VALUE_TENSOR};
    v->tensor.dtype = info->dtype;
    tensor_set_shape(&v->tensor, info->rank, dims);
    v->tensor.data = data;
    v->tensor.capacity = rounded;
    v->tensor.owns_data = 1;
    *out = v;
    return IFD_OK;
}

/* The run's outputs, and each slice's rows of them. */
static ifd_status make_outputs(batch_split *split, ifd_error *err)
{
    const ifd_model *m = split->m;
    /* on failure, batch_split_run frees the ones made */
    for (size_t k = 0; k < m->n_outputs; k++) {
        ifd_status st = new_output(split, k, split->batch, &split->outputs[k], err);
        if (st != IFD_OK)
            return st;
    }
    for (size_t i = 0; i < split->running; i++) {
        slice *sl = &split->slices[i];
        int64_t r0, rows;
        batch_split_rows(split->batch, split->running, i, &r0, &rows);
        for (size_t k = 0; k < m->n_outputs; k++)
            sl->rows[k] = rows_of(&split->outputs[k]->tensor, r0, rows);
    }
    return IFD_OK;
}

/* Slices [begin, end) of the run. Chunk 0 runs on the caller before any
 * other (threadpool.h): it makes the outputs after the job is published,
 * so that the other slices start without waiting for them, and they wait
 * for the outputs only where they first write into their rows (session.c;
 * long made by then). The caller's ~0.2 us of allocation and views then
 * overlaps the worker's start instead of coming before it. At 2 threads
 * (bench_inferd --min-time 0.4, 6 alternated pairs, medians): digits MLP
 * batch 16 3.63 -> 3.19 us, batch 64 9.44 -> 9.07; digits CNN batch 8
 * 8.81 -> 8.69, every pair faster; the CNN at batch 64 58.3 -> 58.9
 * (0.9 % slower: both slices now start together; not found why that
 * costs). With the run's fields on the line the slices read at their
 * start, the MLP at batch 64 gained only 0.14 us. */
static void run_slices(void *arg, size_t begin, size_t end)
{
    batch_split *split = arg;
    for (size_t i = begin; i < end; i++) {
        slice *sl = &split->slices[i];
        if (i == 0) {
            sl->status = make_outputs(split, &sl->err);
            atomic_store_explicit(&split->rows_ready, sl->status == IFD_OK ? 1 : -1,
                                  memory_order_release);
            if (sl->status != IFD_OK)
                continue;
        }
        sl->status = run_micro_batches(split->m, sl->session, sl, split->micro_rows,
                                       i == 0 ? NULL : &split->rows_ready, &sl->err);
    }
}

ifd_status batch_split_run(batch_split *split, size_t slices, const ifd_value *const *inputs,
                           ifd_value **outputs, ifd_error *err)
{
    const ifd_model *m = split->m;
    split->outputs = outputs;
    split->batch = inputs[0]->tensor.dims[0];
    split->running = slices;
    for (size_t i = 0; i < slices; i++) {
        slice *sl = &split->slices[i];
        int64_t r0, rows;
        batch_split_rows(split->batch, slices, i, &r0, &rows);
        for (size_t j = 0; j < m->n_inputs; j++) {
            sl->inputs[j] = *inputs[j];
            sl->inputs[j].tensor = rows_of(&inputs[j]->tensor, r0, rows);
        }
    }
    if (slices == 1) {
        /* micro-batches only: the owner runs them with all its threads */
        slice *sl = &split->slices[0];
        ifd_session *runner = split->owner ? split->owner : sl->session;
        if (!runner) {
            set_error(&sl->err, "a micro-batched run needs the session it belongs to");
            sl->status = IFD_ERR_INVALID_ARGUMENT;
        } else if ((sl->status = make_outputs(split, &sl->err)) == IFD_OK) {
            sl->status = run_micro_batches(m, runner, sl, split->micro_rows, NULL, &sl->err);
        }
    } else {
        /* published by the pool's job (its sequentially consistent store) */
        atomic_store_explicit(&split->rows_ready, 0, memory_order_relaxed);
        threadpool_parallel_for(split->pool, slices, 1, run_slices, split);
    }
    ifd_status st = IFD_OK;
    for (size_t i = 0; i < slices && st == IFD_OK; i++)
        if (split->slices[i].status != IFD_OK) {
            st = split->slices[i].status;
            *err = split->slices[i].err;
        }
    if (st != IFD_OK)
        for (size_t k = 0; k < m->n_outputs; k++) {
            ifd_value_free(outputs[k]);
            outputs[k] = NULL;
        }
    split->outputs = NULL;
    return st;
}
