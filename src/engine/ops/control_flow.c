/*
 * ops/control_flow.c — If, Loop and Scan: operators whose work is a
 * subgraph (a graph attribute the loader loaded as a model of its own, see
 * loader.c). prepare() gives each subgraph the types of its inputs, which
 * prepares it like a model, and checks that what it returns fits the node;
 * run() runs it on a child session kept with the caller's session
 * (op_subgraph_run), once (If) or per iteration (Loop, Scan), threading the
 * loop-carried values from one iteration into the next.
 *
 * Versions: If-1..21 and Loop-1..21 differ in the types they allow
 * (sequences from 13, optionals from 16, float8 19, int4 21); the engine
 * checks kinds and dtypes itself. Scan-9..21 is served, and Scan-8 (batch
 * axis and sequence_lens input) as a scan per batch entry. Each
 * version's behaviour follows onnx's Operators.md of the version that
 * introduced it (onnx 1.12 for <= 16, 1.14 for 19, 1.16 for 21).
 *
 * SequenceMap-17 runs its body once per item of its input sequences (the
 * same subgraph machinery, no carried state).
 *
 * Bad models are refused at load naming the node: a branch or body returning
 * the wrong number of values, a Loop condition that is not bool, a Loop whose
 * trip count is a negative constant or that has neither trip count nor
 * condition (it would never end), Scan axes out of range. At run time a
 * negative trip count, Scan inputs of different lengths along their scan axes
 * and branches whose outputs differ between iterations are errors naming the
 * node and the reason.
 */
#include <stdlib.h>
#include <string.h>

#include "../model.h"
#include "op_util.h"

/* Output i of the node gets value v (which it now owns): tensors are copied
 * into the session's buffer for that output, other kinds moved. */
static int emit_value(op_ctx *ctx, int i, ifd_value *v)
{
    if (v->kind == IFD_VALUE_TENSOR) {
        const ifd_tensor *t = &v->tensor;
        ifd_tensor *y = op_output(ctx, i, t->dtype, t->rank, t->dims);
        int rc = y ? 0 : -1;
        size_t count = y ? (size_t)ifd_tensor_count(t) : 0;
        if (y && t->dtype == IFD_STRING) {
            if (!strings_copy(y->data, t->data, count))
                rc = op_fail(ctx, "out of memory copying strings");
        } else if (y && count) {
            memcpy(y->data, t->data, count * ifd_dtype_size(t->dtype));
        }
        ifd_value_free(v);
        return rc;
    }
    ifd_value *out = op_output_value(ctx, i);
    if (!out) {
        ifd_value_free(v);
        return -1;
    }
    *out = *v;
    free(v);
    return 0;
}

static void free_values(ifd_value **values, int n)
{
    for (int i = 0; i < n; i++) {
        ifd_value_free(values[i]);
        values[i] = NULL;
    }
}

/* The type a node output takes from a subgraph output: kind and dtype fixed,
 * shape only when `keep_shape` (If's branches may differ, loop state may
 * change from one iteration to the next). */
static void output_from(op_node *node, int i, const value_info *from, bool keep_shape)
{
    value_info *out = node->outputs[i];
    const char *name = out->name;
    *out = *from;
    out->name = name;
    out->constant = NULL;
    if (!keep_shape)
        out->rank = -1;
}

static bool same_type(const value_info *a, const value_info *b)
{
    return a->kind == b->kind && a->dtype == b->dtype &&
           (a->kind != IFD_VALUE_SEQUENCE || a->elem_kind == b->elem_kind);
}

/* A copy of info with its shape unknown: what a loop-carried value looks like
 * inside the body. */
static value_info unknown_shape(const value_info *info)
{
    value_info v = *info;
    v.rank = -1;
    v.constant = NULL;
    return v;
}

/* ---- If ------------------------------------------------------------------- */

static int if_prepare(op_node *node, ifd_error *err)
{
    const value_info *cond = node->inputs[0];
    if (node->n_subgraphs != 2 || strcmp(op_subgraph_name(node, 0), op_subgraph_name(node, 1)) == 0)
        return op_prepare_fail(node, err, "needs the graph attributes then_branch and else_branch");
    if (cond->kind != IFD_VALUE_TENSOR || cond->dtype != IFD_BOOL)
        return op_prepare_fail(node, err, "cond must be a bool tensor, not %s",
                               ifd_dtype_name(cond->dtype));
    int then_k = strcmp(op_subgraph_name(node, 0), "then_branch") == 0 ? 0 : 1;
    if (strcmp(op_subgraph_name(node, then_k), "then_branch") != 0 ||
        strcmp(op_subgraph_name(node, 1 - then_k), "else_branch") != 0)
        return op_prepare_fail(node, err, "needs the graph attributes then_branch and else_branch, "
                               "not '%s' and '%s'", op_subgraph_name(node, 0),
                               op_subgraph_name(node, 1));
    for (int k = 0; k < 2; k++) {
        if (op_subgraph_input_count(node, k) != 0)
            return op_prepare_fail(node, err, "%s must take no inputs, it declares %d",
                                   op_subgraph_name(node, k), op_subgraph_input_count(node, k));
        if (op_subgraph_prepare(node, k, NULL, 0, err))
            return -1;
        if (op_subgraph_output_count(node, k) != node->n_outputs)
            return op_prepare_fail(node, err, "%s gives %d outputs; the node has %d",
                                   op_subgraph_name(node, k), op_subgraph_output_count(node, k),
                                   node->n_outputs);
    }
    for (int i = 0; i < node->n_outputs; i++) {
        const value_info *a = op_subgraph_output(node, then_k, i);
        const value_info *b = op_subgraph_output(node, 1 - then_k, i);
        if (!same_type(a, b))
            return op_prepare_fail(node, err, "output %d is %s in then_branch but %s in "
                                   "else_branch", i, ifd_dtype_name(a->dtype),
                                   ifd_dtype_name(b->dtype));
        bool same_shape = a->rank >= 0 && a->rank == b->rank &&
                          memcmp(a->dims, b->dims, (size_t)a->rank * sizeof(int64_t)) == 0;
        output_from(node, i, a, same_shape);
    }
    int *then_index = malloc(sizeof(int));
    if (!then_index)
        return op_prepare_fail(node, err, "out of memory");
    *then_index = then_k;
    node->state = then_index;
    return 0;
}

static int if_run(op_ctx *ctx)
{
    const ifd_tensor *cond = op_input(ctx, 0);
    int then_k = *(const int *)ctx->node->state;
    if (!cond || ifd_tensor_count(cond) != 1)
        return op_fail(ctx, "cond must hold exactly one bool");
    int k = ((const uint8_t *)cond->data)[0] ? then_k : 1 - then_k;
    int n = ctx->node->n_outputs;
    ifd_value **outputs = op_scratch(ctx, (size_t)(n + 1) * sizeof(*outputs));
    if (!outputs)
        return -1;
    if (op_subgraph_run(ctx, k, NULL, outputs))
        return -1;
    int rc = 0;
    for (int i = 0; i < n; i++) {
        if (!rc)
            rc = emit_value(ctx, i, outputs[i]);
        else
            ifd_value_free(outputs[i]);
    }
    return rc;
}

/* ---- Loop ------------------------------------------------------------------- */

/* Loop-1..21: inputs M (trip count, optional), cond (optional), then N
 * loop-carried values; the body takes (iteration, cond, N values) and gives
 * (cond, N values, K scan outputs); the node gives the N final values and
 * the K scan outputs, each stacked along a new first axis. */
typedef struct loop_state {
    int n_carried, n_scan;
    bool has_trip_count, has_cond;
    /* Loop-16 on: a value entering as an optional may come back from the
     * body as the plain sequence or tensor, to be fed in as an optional */
    bool wrap_optional[];
} loop_state;

static int loop_prepare(op_node *node, ifd_error *err)
{
    if (node->n_subgraphs != 1 || strcmp(op_subgraph_name(node, 0), "body") != 0)
        return op_prepare_fail(node, err, "needs the graph attribute body");
    const value_info *trip = node->inputs[0], *cond = node->n_inputs > 1 ? node->inputs[1] : NULL;
    int n_carried = node->n_inputs - 2, n_scan = node->n_outputs - n_carried;
    if (n_carried < 0)
        return op_prepare_fail(node, err, "needs inputs M and cond (either may be empty)");
    if (n_scan < 0)
        return op_prepare_fail(node, err, "has %d loop-carried inputs but only %d outputs",
                               n_carried, node->n_outputs);
    if (!trip && !cond)
        return op_prepare_fail(node, err, "has neither a trip count M nor a condition: it "
                               "would never end");
    if (trip) {
        if (trip->kind != IFD_VALUE_TENSOR || trip->dtype != IFD_INT64)
            return op_prepare_fail(node, err, "trip count M must be an int64 tensor, not %s",
                                   ifd_dtype_name(trip->dtype));
        if (trip->constant && ifd_tensor_count(trip->constant) == 1 &&
            ((const int64_t *)trip->constant->data)[0] < 0)
            return op_prepare_fail(node, err, "trip count M is negative (%lld)",
                                   (long long)((const int64_t *)trip->constant->data)[0]);
    }
    if (cond && (cond->kind != IFD_VALUE_TENSOR || cond->dtype != IFD_BOOL))
        return op_prepare_fail(node, err, "condition must be a bool tensor, not %s",
                               ifd_dtype_name(cond->dtype));
    int n_body_inputs = 2 + n_carried;
    if (op_subgraph_input_count(node, 0) != n_body_inputs)
        return op_prepare_fail(node, err, "body declares %d inputs; with %d loop-carried values "
                               "it must take %d (iteration, condition, values)",
                               op_subgraph_input_count(node, 0), n_carried, n_body_inputs);
    value_info *infos = calloc((size_t)n_body_inputs, sizeof(*infos));
    const value_info **given = calloc((size_t)n_body_inputs, sizeof(*given));
    if (!infos || !given) {
        free(infos);
        free(given);
        return op_prepare_fail(node, err, "out of memory");
    }
    infos[0] = (value_info){.kind = IFD_VALUE_TENSOR, .dtype = IFD_INT64, .rank = 0};
    infos[1] = (value_info){.kind = IFD_VALUE_TENSOR, .dtype = IFD_BOOL, .rank = 0};
    for (int i = 0; i < n_carried; i++) {
        if (!node->inputs[2 + i]) {
            free(infos);
            free(given);
            return op_prepare_fail(node, err, "loop-carried input %d is empty", i);
        }
        infos[2 + i] = unknown_shape(node->inputs[2 + i]);
    }
    for (int i = 0; i < n_body_inputs; i++)
        given[i] = &infos[i];
    int rc = op_subgraph_prepare(node, 0, given, n_body_inputs, err);
    free(infos);
    free(given);
    if (rc)
        return -1;
    int n_body_outputs = op_subgraph_output_count(node, 0);
    if (n_body_outputs != 1 + n_carried + n_scan)
        return op_prepare_fail(node, err, "body gives %d outputs; with %d loop-carried values and "
                               "%d scan outputs it must give %d (condition, values, scan outputs)",
                               n_body_outputs, n_carried, n_scan, 1 + n_carried + n_scan);
    const value_info *cond_out = op_subgraph_output(node, 0, 0);
    if (cond_out->kind != IFD_VALUE_TENSOR || cond_out->dtype != IFD_BOOL)
        return op_prepare_fail(node, err, "body's condition output must be bool, not %s",
                               ifd_dtype_name(cond_out->dtype));
    loop_state *st = calloc(1, sizeof(*st) + (size_t)(n_carried + 1) * sizeof(bool));
    if (!st)
        return op_prepare_fail(node, err, "out of memory");
    node->state = st;
    *st = (loop_state){n_carried, n_scan, trip != NULL, cond != NULL};
    for (int i = 0; i < n_carried; i++) {
        const value_info *out = op_subgraph_output(node, 0, 1 + i), *in = node->inputs[2 + i];
        st->wrap_optional[i] = in->kind == IFD_VALUE_OPTIONAL && out->kind == in->elem_kind &&
                               out->dtype == in->dtype;
        if (!same_type(out, in) && !st->wrap_optional[i])
            return op_prepare_fail(node, err, "loop-carried value %d enters as %s but the body "
                                   "gives %s", i, ifd_dtype_name(node->inputs[2 + i]->dtype),
                                   ifd_dtype_name(out->dtype));
        output_from(node, i, out, false);
    }
    for (int j = 0; j < n_scan; j++) {
        const value_info *out = op_subgraph_output(node, 0, 1 + n_carried + j);
        if (out->kind != IFD_VALUE_TENSOR)
            return op_prepare_fail(node, err, "scan output %d must be a tensor", j);
        set_output(node, n_carried + j, out->dtype, -1, NULL);
    }
    return 0;
}

/* Stack tensors (all of one shape and dtype) along a new axis `axis`,
 * reversed when `reverse`, into output `out_index`. */
static int stack_tensors(op_ctx *ctx, int out_index, ifd_value *const *items, int64_t n,
                         int axis, bool reverse, const value_info *declared)
{
    int64_t dims[IFD_MAX_RANK];
    if (n == 0) {
        /* no iteration: an empty first axis, the rest as declared when known */
        int rank = 1;
        dims[0] = 0;
        if (declared->rank >= 0 && declared->rank < IFD_MAX_RANK) {
            bool known = true;
            for (int k = 0; k < declared->rank; k++)
                known &= declared->dims[k] >= 0;
            if (known) {
                memcpy(dims + 1, declared->dims, (size_t)declared->rank * sizeof(int64_t));
                rank = declared->rank + 1;
            }
        }
        return op_output(ctx, out_index, declared->dtype, rank, dims) ? 0 : -1;
    }
    const ifd_tensor *first = &items[0]->tensor;
    int rank = first->rank + 1;
    if (rank > IFD_MAX_RANK)
        return op_fail(ctx, "scan output of rank %d is too large to stack", first->rank);
    for (int64_t t = 1; t < n; t++)
        if (!tensor_same_shape(&items[t]->tensor, first) || items[t]->tensor.dtype != first->dtype)
            return op_fail(ctx, "scan output %d changes shape between iterations (0 and %lld)",
                           out_index, (long long)t);
    for (int k = 0, j = 0; k < rank; k++)
        dims[k] = k == axis ? n : first->dims[j++];
    ifd_tensor *y = op_output(ctx, out_index, first->dtype, rank, dims);
    if (!y)
        return -1;
    int64_t dst_strides[IFD_MAX_RANK], item_dims[IFD_MAX_RANK], src_strides[IFD_MAX_RANK];
    contiguous_strides(rank, dims, dst_strides);
    for (int k = 0, j = 0; k < rank; k++)
        item_dims[k] = k == axis ? 1 : first->dims[j++];
    contiguous_strides(rank, item_dims, src_strides);
    for (int64_t t = 0; t < n; t++) {
        const ifd_tensor *item = &items[reverse ? n - 1 - t : t]->tensor;
        if (layout_copy_strided(ctx, rank, item_dims, item->dtype, y->data, t * dst_strides[axis],
                                dst_strides, item->data, 0, src_strides))
            return -1;
    }
    return 0;
}

/* Growable list of one scan output's per-iteration values. */
typedef struct value_list {
    ifd_value **items;
    int64_t count, cap;
} value_list;

static bool value_list_push(value_list *list, ifd_value *v)
{
    if (list->count == list->cap) {
        int64_t cap = list->cap ? list->cap * 2 : 16;
        ifd_value **grown = realloc(list->items, (size_t)cap * sizeof(*grown));
        if (!grown)
            return false;
        list->items = grown;
        list->cap = cap;
    }
    list->items[list->count++] = v;
    return true;
}

static void value_list_free(value_list *list)
{
    for (int64_t i = 0; i < list->count; i++)
        ifd_value_free(list->items[i]);
    free(list->items);
}

static int loop_run(op_ctx *ctx)
{
    const loop_state *st = ctx->node->state;
    int n_carried = st->n_carried, n_scan = st->n_scan, n_out = 1 + n_carried + n_scan;
    int64_t trip = INT64_MAX;
    bool cond = true;
    if (st->has_trip_count) {
        const ifd_tensor *m = op_input(ctx, 0);
        if (!m || ifd_tensor_count(m) != 1 || m->dtype != IFD_INT64)
            return op_fail(ctx, "trip count M must be one int64");
        trip = ((const int64_t *)m->data)[0];
        if (trip < 0)
            return op_fail(ctx, "trip count M is negative (%lld)", (long long)trip);
    }
    if (st->has_cond) {
        const ifd_tensor *c = op_input(ctx, 1);
        if (!c || ifd_tensor_count(c) != 1 || c->dtype != IFD_BOOL)
            return op_fail(ctx, "condition must be one bool");
        cond = ((const uint8_t *)c->data)[0] != 0;
    }
    int64_t iteration = 0;
    uint8_t cond_byte = cond;
    ifd_value iter_value = {.kind = IFD_VALUE_TENSOR}, cond_value = {.kind = IFD_VALUE_TENSOR};
    iter_value.tensor.dtype = IFD_INT64;
    iter_value.tensor.data = &iteration;
    cond_value.tensor.dtype = IFD_BOOL;
    cond_value.tensor.data = &cond_byte;
    const ifd_value **inputs = calloc((size_t)(2 + n_carried), sizeof(*inputs));
    ifd_value **carried = calloc((size_t)n_carried + 1, sizeof(*carried)); /* owned */
    ifd_value **outputs = calloc((size_t)n_out, sizeof(*outputs));
    value_list *scans = calloc((size_t)n_scan + 1, sizeof(*scans));
    /* optionals around plain values the body gives back; they borrow the
     * value, never own it */
    ifd_value *wrappers = calloc((size_t)n_carried + 1, sizeof(*wrappers));
    int rc = 0;
    if (!inputs || !carried || !outputs || !scans || !wrappers)
        rc = op_fail(ctx, "out of memory");
    for (int i = 0; !rc && i < n_carried; i++)
        inputs[2 + i] = op_input_value(ctx, 2 + i);
    if (!rc) {
        inputs[0] = &iter_value;
        inputs[1] = &cond_value;
    }
    int64_t limit = op_loop_limit(ctx);
    while (!rc && cond && iteration < trip) {
        if (limit && iteration >= limit) {
            rc = op_fail(ctx, "stopped after %lld iterations, this session's limit",
                         (long long)limit);
            break;
        }
        cond_byte = cond;
        if (op_subgraph_run(ctx, 0, inputs, outputs)) {
            rc = -1;
            break;
        }
        const ifd_value *c = outputs[0];
        if (c->kind != IFD_VALUE_TENSOR || c->tensor.dtype != IFD_BOOL ||
            ifd_tensor_count(&c->tensor) != 1) {
            rc = op_fail(ctx, "iteration %lld: the body's condition is not one bool",
                         (long long)iteration);
            break;
        }
        /* without a condition input the body's condition is ignored (ONNX's
         * "for" form) */
        cond = !st->has_cond || ((const uint8_t *)c->tensor.data)[0] != 0;
        ifd_value_free(outputs[0]);
        outputs[0] = NULL;
        for (int i = 0; i < n_carried; i++) {
            ifd_value_free(carried[i]);
            carried[i] = outputs[1 + i];
            outputs[1 + i] = NULL;
            inputs[2 + i] = carried[i];
            if (st->wrap_optional[i] && carried[i]->kind != IFD_VALUE_OPTIONAL) {
                wrappers[i] = (ifd_value){.kind = IFD_VALUE_OPTIONAL, .length = 1,
                                          .items = &carried[i]};
                inputs[2 + i] = &wrappers[i];
            }
        }
        for (int j = 0; j < n_scan && !rc; j++) {
            if (!value_list_push(&scans[j], outputs[1 + n_carried + j]))
                rc = op_fail(ctx, "out of memory");
            else
                outputs[1 + n_carried + j] = NULL;
        }
        iteration++;
    }
    if (outputs)
        free_values(outputs, n_out);
    /* final loop-carried values: the last iteration's, or the inputs when
     * the loop never ran */
    for (int i = 0; !rc && i < n_carried; i++) {
        ifd_value *v = carried[i];
        carried[i] = NULL;
        if (!v) {
            ifd_error err;
            if (value_clone(op_input_value(ctx, 2 + i), &v, &err) != IFD_OK) {
                rc = op_fail(ctx, "%s", err.message);
                break;
            }
        }
        rc = emit_value(ctx, i, v);
    }
    for (int j = 0; !rc && j < n_scan; j++)
        rc = stack_tensors(ctx, n_carried + j, scans[j].items, scans[j].count, 0, false,
                           op_subgraph_output(ctx->node, 0, 1 + n_carried + j));
    if (carried)
        free_values(carried, n_carried);
    for (int j = 0; scans && j < n_scan; j++)
        value_list_free(&scans[j]);
    free(scans);
    free(carried);
    free(outputs);
    free(inputs);
    free(wrappers);
    return rc;
}

/* ---- Scan ------------------------------------------------------------------- */

/* Scan-9..21: inputs N state values then M scan inputs (num_scan_inputs);
 * each iteration gives the body the state and one slice of every scan input
 * along its axis, and takes back the new state and K slices, stacked into
 * the scan outputs along their axes. Directions reverse the order. */
typedef struct scan_state {
    int n_state, n_scan_in, n_scan_out;
    int64_t *in_axes, *in_reverse, *out_axes, *out_reverse; /* as given (axes may be < 0) */
} scan_state;

static void scan_free(void *p)
{
    scan_state *st = p;
    if (!st)
        return;
    free(st->in_axes);
    free(st->in_reverse);
    free(st->out_axes);
    free(st->out_reverse);
    free(st);
}

/* attribute `name` with n entries, or n zeroes when absent */
static int64_t *scan_ints(op_node *node, const char *name, int n, ifd_error *err, int *failed)
{
    const int64_t *values;
    size_t count = op_attr_ints(node, name, &values);
    int64_t *out = calloc((size_t)n + 1, sizeof(*out));
    if (!out) {
        *failed = op_prepare_fail(node, err, "out of memory");
        return NULL;
    }
    if (count && count != (size_t)n) {
        *failed = op_prepare_fail(node, err, "'%s' has %zu entries; it needs %d", name, count, n);
        free(out);
        return NULL;
    }
    if (count)
        memcpy(out, values, count * sizeof(*out));
    return out;
}

static int scan_prepare(op_node *node, ifd_error *err)
{
    if (node->n_subgraphs != 1 || strcmp(op_subgraph_name(node, 0), "body") != 0)
        return op_prepare_fail(node, err, "needs the graph attribute body");
    if (!op_attr_has(node, "num_scan_inputs"))
        return op_prepare_fail(node, err, "the num_scan_inputs attribute is required");
    int64_t m = op_attr_int(node, "num_scan_inputs", 0);
    if (m < 1 || m > node->n_inputs)
        return op_prepare_fail(node, err, "num_scan_inputs %lld is outside 1..%d", (long long)m,
                               node->n_inputs);
    scan_state *st = calloc(1, sizeof(*st));
    if (!st)
        return op_prepare_fail(node, err, "out of memory");
    node->state = st;
    st->n_scan_in = (int)m;
    st->n_state = node->n_inputs - st->n_scan_in;
    st->n_scan_out = node->n_outputs - st->n_state;
    if (st->n_scan_out < 0)
        return op_prepare_fail(node, err, "has %d state inputs but only %d outputs", st->n_state,
                               node->n_outputs);
    int failed = 0;
    st->in_axes = scan_ints(node, "scan_input_axes", st->n_scan_in, err, &failed);
    if (!failed)
        st->in_reverse = scan_ints(node, "scan_input_directions", st->n_scan_in, err, &failed);
    if (!failed)
        st->out_axes = scan_ints(node, "scan_output_axes", st->n_scan_out, err, &failed);
    if (!failed)
        st->out_reverse = scan_ints(node, "scan_output_directions", st->n_scan_out, err, &failed);
    if (failed)
        return -1;
    int n_body = st->n_state + st->n_scan_in;
    value_info *infos = calloc((size_t)n_body, sizeof(*infos));
    const value_info **given = calloc((size_t)n_body, sizeof(*given));
    if (!infos || !given) {
        free(infos);
        free(given);
        return op_prepare_fail(node, err, "out of memory");
    }
    for (int i = 0; i < n_body && !failed; i++) {
        const value_info *in = node->inputs[i];
        if (!in || in->kind != IFD_VALUE_TENSOR) {
            failed = op_prepare_fail(node, err, "input %d must be a tensor", i);
            break;
        }
        infos[i] = unknown_shape(in);
        if (i >= st->n_state) {
            int j = i - st->n_state;
            int64_t axis = st->in_axes[j];
            if (in->rank >= 0 && (axis < -in->rank || axis >= in->rank))
                failed = op_prepare_fail(node, err, "scan_input_axes[%d] = %lld is out of range "
                                         "for rank %d", j, (long long)axis, in->rank);
            else if (in->rank == 0)
                failed = op_prepare_fail(node, err, "scan input %d is a scalar", j);
        }
        given[i] = &infos[i];
    }
    if (!failed && op_subgraph_input_count(node, 0) != n_body)
        failed = op_prepare_fail(node, err, "body declares %d inputs; it must take %d (%d state "
                                 "values, %d scan slices)", op_subgraph_input_count(node, 0),
                                 n_body, st->n_state, st->n_scan_in);
    if (!failed)
        failed = op_subgraph_prepare(node, 0, given, n_body, err);
    free(infos);
    free(given);
    if (failed)
        return -1;
    if (op_subgraph_output_count(node, 0) != st->n_state + st->n_scan_out)
        return op_prepare_fail(node, err, "body gives %d outputs; it must give %d (%d state "
                               "values, %d scan outputs)", op_subgraph_output_count(node, 0),
                               st->n_state + st->n_scan_out, st->n_state, st->n_scan_out);
    for (int i = 0; i < st->n_state; i++) {
        const value_info *out = op_subgraph_output(node, 0, i);
        if (!same_type(out, node->inputs[i]))
            return op_prepare_fail(node, err, "state %d enters as %s but the body gives %s", i,
                                   ifd_dtype_name(node->inputs[i]->dtype),
                                   ifd_dtype_name(out->dtype));
        output_from(node, i, out, false);
    }
    for (int j = 0; j < st->n_scan_out; j++) {
        const value_info *out = op_subgraph_output(node, 0, st->n_state + j);
        if (out->kind != IFD_VALUE_TENSOR)
            return op_prepare_fail(node, err, "scan output %d must be a tensor", j);
        if (out->rank >= 0 && (st->out_axes[j] < -(out->rank + 1) || st->out_axes[j] > out->rank))
            return op_prepare_fail(node, err, "scan_output_axes[%d] = %lld is out of range for "
                                   "rank %d", j, (long long)st->out_axes[j], out->rank + 1);
        set_output(node, st->n_state + j, out->dtype, -1, NULL);
    }
    return 0;
}

/* Slice t of x along axis (the axis removed) as a new tensor value. */
static ifd_value *scan_slice(op_ctx *ctx, const ifd_tensor *x, int axis, int64_t t)
{
    int64_t dims[IFD_MAX_RANK], src_strides[IFD_MAX_RANK], dst_strides[IFD_MAX_RANK],
        copy_dims[IFD_MAX_RANK];
    int r = 0;
    for (int k = 0; k < x->rank; k++)
        if (k != axis)
            dims[r++] = x->dims[k];
    ifd_value *v = calloc(1, sizeof(*v));
    ifd_error err;
    if (!v) {
        op_fail(ctx, "out of memory");
        return NULL;
    }
    v->kind = IFD_VALUE_TENSOR;
    if (tensor_alloc(&v->tensor, x->dtype, r, dims, "scan slice", &err) != IFD_OK) {
        op_fail(ctx, "%s", err.message);
        free(v);
        return NULL;
    }
    contiguous_strides(x->rank, x->dims, src_strides);
    memcpy(copy_dims, x->dims, sizeof(copy_dims));
    copy_dims[axis] = 1;
    contiguous_strides(x->rank, copy_dims, dst_strides);
    if (layout_copy_strided(ctx, x->rank, copy_dims, x->dtype, v->tensor.data, 0, dst_strides,
                            x->data, t * src_strides[axis], src_strides)) {
        ifd_value_free(v);
        return NULL;
    }
    return v;
}

static int scan_run(op_ctx *ctx)
{
    const scan_state *st = ctx->node->state;
    int n_state = st->n_state, n_in = st->n_scan_in, n_out = st->n_scan_out;
    int n_body = n_state + n_in, n_body_out = n_state + n_out;
    int axes[64];
    if (n_in > 64)
        return op_fail(ctx, "has %d scan inputs; at most 64 are supported", n_in);
    int64_t length = -1, limit = op_loop_limit(ctx);
    for (int j = 0; j < n_in; j++) {
        const ifd_tensor *x = op_input(ctx, n_state + j);
        int64_t axis;
        if (!x || !normalize_axis(st->in_axes[j], x->rank, &axis) || x->rank == 0)
            return op_fail(ctx, "scan_input_axes[%d] = %lld is out of range for scan input %d",
                           j, (long long)st->in_axes[j], j);
        axes[j] = (int)axis;
        if (length >= 0 && x->dims[axis] != length)
            return op_fail(ctx, "scan inputs have different lengths along their scan axes "
                           "(%lld and %lld)", (long long)length, (long long)x->dims[axis]);
        length = x->dims[axis];
    }
    if (limit && length > limit)
        return op_fail(ctx, "scans %lld slices, above this session's limit of %lld iterations",
                       (long long)length, (long long)limit);
    const ifd_value **inputs = calloc((size_t)n_body, sizeof(*inputs));
    ifd_value **state = calloc((size_t)n_state + 1, sizeof(*state));
    ifd_value **slices = calloc((size_t)n_in + 1, sizeof(*slices));
    ifd_value **outputs = calloc((size_t)n_body_out + 1, sizeof(*outputs));
    value_list *scans = calloc((size_t)n_out + 1, sizeof(*scans));
    int rc = 0;
    if (!inputs || !state || !slices || !outputs || !scans)
        rc = op_fail(ctx, "out of memory");
    for (int i = 0; !rc && i < n_state; i++)
        inputs[i] = op_input_value(ctx, i);
    for (int64_t t = 0; !rc && t < length; t++) {
        for (int j = 0; j < n_in && !rc; j++) {
            const ifd_tensor *x = op_input(ctx, n_state + j);
            slices[j] = scan_slice(ctx, x, axes[j], st->in_reverse[j] ? length - 1 - t : t);
            if (!slices[j])
                rc = -1;
            inputs[n_state + j] = slices[j];
        }
        if (!rc && op_subgraph_run(ctx, 0, inputs, outputs))
            rc = -1;
        free_values(slices, n_in);
        if (rc)
            break;
        for (int i = 0; i < n_state; i++) {
            ifd_value_free(state[i]);
            state[i] = outputs[i];
            outputs[i] = NULL;
            inputs[i] = state[i];
        }
        for (int j = 0; j < n_out && !rc; j++) {
            if (!value_list_push(&scans[j], outputs[n_state + j]))
                rc = op_fail(ctx, "out of memory");
            else
                outputs[n_state + j] = NULL;
        }
    }
    if (outputs)
        free_values(outputs, n_body_out);
    for (int i = 0; !rc && i < n_state; i++) {
        ifd_value *v = state[i];
        state[i] = NULL;
        if (!v) {
            ifd_error err;
            if (value_clone(op_input_value(ctx, i), &v, &err) != IFD_OK) {
                rc = op_fail(ctx, "%s", err.message);
                break;
            }
        }
        rc = emit_value(ctx, i, v);
    }
    for (int j = 0; !rc && j < n_out; j++) {
        const value_info *declared = op_subgraph_output(ctx->node, 0, n_state + j);
        int rank = scans[j].count ? scans[j].items[0]->tensor.rank + 1
                                  : (declared->rank >= 0 ? declared->rank + 1 : 1);
        int64_t axis = st->out_axes[j];
        if (axis < -rank || axis >= rank) {
            rc = op_fail(ctx, "scan_output_axes[%d] = %lld is out of range for rank %d", j,
                         (long long)axis, rank);
            break;
        }
        if (axis < 0)
            axis += rank;
        rc = stack_tensors(ctx, n_state + j, scans[j].items, scans[j].count, (int)axis,
                           st->out_reverse[j] != 0, declared);
    }
    if (state)
        free_values(state, n_state);
    for (int j = 0; scans && j < n_out; j++)
        value_list_free(&scans[j]);
    free(scans);
    free(outputs);
    free(slices);
    free(state);
    free(inputs);
    return rc;
}


/* ---- Scan-8 ----------------------------------------------------------------- */

/* Scan-8 (onnx 1.12 Changelog.md "Scan-8"): the batched form Scan-9 replaced.
 * Input 0 is an optional sequence_lens [batch]; then N state inputs
 * [batch, ...] and M scan inputs [batch, sequence, ...]; every batch entry
 * is its own scan over axis 1 (reversed per `directions`) for its
 * sequence length. Outputs: the N final states and K scan outputs
 * [batch, sequence, ...], stacked over the batch; positions past a batch
 * entry's length are zero, as ONNX Runtime pads them. */
typedef struct scan8_state {
    int n_state, n_scan_in, n_scan_out;
    int64_t *reverse;
} scan8_state;

static void scan8_free(void *p)
{
    scan8_state *st = p;
    if (st)
        free(st->reverse);
    free(st);
}

static int scan8_prepare(op_node *node, ifd_error *err)
{
    if (node->n_subgraphs != 1 || strcmp(op_subgraph_name(node, 0), "body") != 0)
        return op_prepare_fail(node, err, "needs the graph attribute body");
    if (!op_attr_has(node, "num_scan_inputs"))
        return op_prepare_fail(node, err, "the num_scan_inputs attribute is required");
    int64_t m = op_attr_int(node, "num_scan_inputs", 0);
    if (m < 1 || m > node->n_inputs - 1)
        return op_prepare_fail(node, err, "num_scan_inputs %lld is outside 1..%d", (long long)m,
                               node->n_inputs - 1);
    scan8_state *st = calloc(1, sizeof(*st));
    if (!st)
        return op_prepare_fail(node, err, "out of memory");
    node->state = st;
    st->n_scan_in = (int)m;
    st->n_state = node->n_inputs - 1 - st->n_scan_in;
    st->n_scan_out = node->n_outputs - st->n_state;
    if (st->n_scan_out < 0)
        return op_prepare_fail(node, err, "has %d state inputs but only %d outputs", st->n_state,
                               node->n_outputs);
    int failed = 0;
    st->reverse = scan_ints(node, "directions", st->n_scan_in, err, &failed);
    if (failed)
        return -1;
    const value_info *lens = node->inputs[0];
    if (lens && (lens->kind != IFD_VALUE_TENSOR || lens->dtype != IFD_INT64))
        return op_prepare_fail(node, err, "sequence_lens must be an int64 tensor");
    int n_body = st->n_state + st->n_scan_in;
    value_info *infos = calloc((size_t)n_body, sizeof(*infos));
    const value_info **given = calloc((size_t)n_body, sizeof(*given));
    if (!infos || !given)
        failed = op_prepare_fail(node, err, "out of memory");
    for (int i = 0; i < n_body && !failed; i++) {
        const value_info *in = node->inputs[1 + i];
        bool scan = i >= st->n_state;
        if (!in || in->kind != IFD_VALUE_TENSOR)
            failed = op_prepare_fail(node, err, "input %d must be a tensor", 1 + i);
        else if (in->rank >= 0 && in->rank < (scan ? 2 : 1))
            failed = op_prepare_fail(node, err, "input %d has rank %d; %s expected", 1 + i,
                                     in->rank, scan ? "[batch, sequence, ...]" : "[batch, ...]");
        if (failed)
            break;
        infos[i] = unknown_shape(in);
        given[i] = &infos[i];
    }
    if (!failed && op_subgraph_input_count(node, 0) != n_body)
        failed = op_prepare_fail(node, err, "body declares %d inputs; it must take %d (%d state "
                                 "values, %d scan slices)", op_subgraph_input_count(node, 0),
                                 n_body, st->n_state, st->n_scan_in);
    if (!failed)
        failed = op_subgraph_prepare(node, 0, given, n_body, err);
    free(infos);
    free(given);
    if (failed)
        return -1;
    if (op_subgraph_output_count(node, 0) != st->n_state + st->n_scan_out)
        return op_prepare_fail(node, err, "body gives %d outputs; it must give %d (%d state "
                               "values, %d scan outputs)", op_subgraph_output_count(node, 0),
                               st->n_state + st->n_scan_out, st->n_state, st->n_scan_out);
    for (int i = 0; i < node->n_outputs; i++) {
        const value_info *out = op_subgraph_output(node, 0, i);
        if (out->kind != IFD_VALUE_TENSOR)
            return op_prepare_fail(node, err, "body output %d must be a tensor", i);
        if (i < st->n_state && out->dtype != node->inputs[1 + i]->dtype)
            return op_prepare_fail(node, err, "state %d enters as %s but the body gives %s", i,
                                   ifd_dtype_name(node->inputs[1 + i]->dtype),
                                   ifd_dtype_name(out->dtype));
        set_output(node, i, out->dtype, -1, NULL);
    }
    return 0;
}

/* Copy `src` (contiguous) into `dst` at element offset `at`. */
static int place_tensor(op_ctx *ctx, ifd_tensor *dst, size_t at, const ifd_tensor *src)
{
    size_t count = ifd_tensor_count(src);
    if (src->dtype == IFD_STRING) {
        ifd_string *d = (ifd_string *)dst->data + at;
        strings_free(d, count);
        if (!strings_copy(d, src->data, count))
            return op_fail(ctx, "out of memory copying strings");
        return 0;
    }
    size_t size = ifd_dtype_size(src->dtype);
    memcpy((char *)dst->data + at * size, src->data, count * size);
    return 0;
}

/* Output out_index gets shape [batch, lead..., item dims] where every item
 * of one batch entry must share dims; `place` gives each item's element
 * offset. Allocates on the first item seen. */
static ifd_tensor *scan8_output(op_ctx *ctx, int out_index, const ifd_tensor *item, int64_t batch,
                                int64_t lead)
{
    int64_t dims[IFD_MAX_RANK];
    int rank = 1 + (lead >= 0) + item->rank;
    if (rank > IFD_MAX_RANK) {
        op_fail(ctx, "output %d would have rank %d", out_index, rank);
        return NULL;
    }
    int r = 0;
    dims[r++] = batch;
    if (lead >= 0)
        dims[r++] = lead;
    memcpy(dims + r, item->dims, (size_t)item->rank * sizeof(int64_t));
    ifd_tensor *y = op_output(ctx, out_index, item->dtype, rank, dims);
    if (y && y->dtype != IFD_STRING)
        memset(y->data, 0, ifd_tensor_count(y) * ifd_dtype_size(y->dtype));
    return y;
}

static int scan8_run(op_ctx *ctx)
{
    const scan8_state *st = ctx->node->state;
    int n_state = st->n_state, n_in = st->n_scan_in, n_out = st->n_scan_out;
    int n_body = n_state + n_in, n_body_out = n_state + n_out;
    const ifd_tensor *first = op_input(ctx, 1);
    int64_t batch = first->dims[0], max_len = -1;
    for (int i = 0; i < n_body; i++) {
        const ifd_tensor *x = op_input(ctx, 1 + i);
        bool scan = i >= n_state;
        if (!x || x->rank < (scan ? 2 : 1) || x->dims[0] != batch)
            return op_fail(ctx, "input %d must be [%lld (batch), %s...]", 1 + i, (long long)batch,
                           scan ? "sequence, " : "");
        if (scan) {
            if (max_len >= 0 && x->dims[1] != max_len)
                return op_fail(ctx, "scan inputs have different sequence lengths (%lld and %lld)",
                               (long long)max_len, (long long)x->dims[1]);
            max_len = x->dims[1];
        }
    }
    const ifd_tensor *lens = input_tensor(ctx, 0);
    if (lens && (lens->rank != 1 || lens->dims[0] != batch))
        return op_fail(ctx, "sequence_lens must be [%lld], one per batch entry", (long long)batch);
    int64_t limit = op_loop_limit(ctx);
    if (limit && max_len > limit)
        return op_fail(ctx, "scans %lld slices, above this session's limit of %lld iterations",
                       (long long)max_len, (long long)limit);
    const ifd_value **inputs = calloc((size_t)n_body + 1, sizeof(*inputs));
    ifd_value **owned = calloc((size_t)n_body + 1, sizeof(*owned));    /* batch slices */
    ifd_value **state = calloc((size_t)n_state + 1, sizeof(*state));
    ifd_value **outputs = calloc((size_t)n_body_out + 1, sizeof(*outputs));
    ifd_tensor **y = calloc((size_t)n_body_out + 1, sizeof(*y));
    int rc = 0;
    if (!inputs || !owned || !state || !outputs || !y)
        rc = op_fail(ctx, "out of memory");
    for (int64_t b = 0; !rc && b < batch; b++) {
        int64_t len = lens ? ((const int64_t *)lens->data)[b] : max_len;
        if (len < 0 || len > max_len) {
            rc = op_fail(ctx, "sequence_lens[%lld] = %lld is outside [0, %lld]", (long long)b,
                         (long long)len, (long long)max_len);
            break;
        }
        for (int i = 0; i < n_body && !rc; i++) {
            owned[i] = scan_slice(ctx, op_input(ctx, 1 + i), 0, b);
            if (!owned[i])
                rc = -1;
        }
        for (int i = 0; i < n_state && !rc; i++)
            inputs[i] = owned[i];
        for (int64_t t = 0; !rc && t < len; t++) {
            ifd_value *slices[64] = {NULL};
            if (n_in > 64) {
                rc = op_fail(ctx, "has %d scan inputs; at most 64 are supported", n_in);
                break;
            }
            for (int j = 0; j < n_in && !rc; j++) {
                int64_t at = st->reverse[j] ? len - 1 - t : t;
                slices[j] = scan_slice(ctx, &owned[n_state + j]->tensor, 0, at);
                if (!slices[j])
                    rc = -1;
                inputs[n_state + j] = slices[j];
            }
            if (!rc && op_subgraph_run(ctx, 0, inputs, outputs))
                rc = -1;
            for (int j = 0; j < n_in && j < 64; j++)
                ifd_value_free(slices[j]);
            if (rc)
                break;
            for (int i = 0; i < n_state; i++) {
                ifd_value_free(state[i]);
                state[i] = outputs[i];
                outputs[i] = NULL;
                inputs[i] = state[i];
            }
            for (int j = 0; j < n_out && !rc; j++) {
                const ifd_tensor *item = &outputs[n_state + j]->tensor;
                ifd_tensor *out = y[n_state + j];
                if (!out)
                    out = y[n_state + j] = scan8_output(ctx, n_state + j, item, batch, max_len);
                if (!out) {
                    rc = -1;
                    break;
                }
                size_t count = ifd_tensor_count(item);
                if (out->dtype != item->dtype || out->rank != item->rank + 2 ||
                    memcmp(out->dims + 2, item->dims, (size_t)item->rank * sizeof(int64_t)) != 0)
                    rc = op_fail(ctx, "scan output %d changes shape between iterations", j);
                else
                    rc = place_tensor(ctx, out, (size_t)((b * max_len + t)) * count, item);
                ifd_value_free(outputs[n_state + j]);
                outputs[n_state + j] = NULL;
            }
        }
        for (int i = 0; !rc && i < n_state; i++) {
            const ifd_tensor *final = state[i] ? &state[i]->tensor : &owned[i]->tensor;
            if (!y[i])
                y[i] = scan8_output(ctx, i, final, batch, -1);
            if (!y[i])
                rc = -1;
            else if (y[i]->dtype != final->dtype || y[i]->rank != final->rank + 1 ||
                     memcmp(y[i]->dims + 1, final->dims, (size_t)final->rank * sizeof(int64_t)))
                rc = op_fail(ctx, "final state %d differs in shape between batch entries", i);
            else
                rc = place_tensor(ctx, y[i], (size_t)b * ifd_tensor_count(final), final);
        }
        free_values(state, n_state);
        free_values(owned, n_body);
        for (int i = 0; i < n_state; i++)
            state[i] = NULL, inputs[i] = NULL;
        for (int i = 0; i < n_body; i++)
            owned[i] = NULL;
    }
    /* No batch entry or no iteration: outputs still need a shape. */
    for (int i = 0; !rc && i < n_body_out; i++) {
        if (y[i])
            continue;
        const value_info *declared = op_subgraph_output(ctx->node, 0, i);
        int64_t dims[IFD_MAX_RANK] = {batch, i < n_state ? 0 : max_len};
        int rank = 2;
        if (i < n_state) {
            const ifd_tensor *x = op_input(ctx, 1 + i);
            rank = x->rank;
            memcpy(dims, x->dims, (size_t)rank * sizeof(int64_t));
        } else if (declared->rank >= 0 && declared->rank + 2 <= IFD_MAX_RANK) {
            for (int k = 0; k < declared->rank; k++)
                dims[2 + k] = declared->dims[k] >= 0 ? declared->dims[k] : 0;
            rank = 2 + declared->rank;
        }
        ifd_tensor *t = op_output(ctx, i, declared->dtype, rank, dims);
        if (!t)
            rc = -1;
        else if (t->dtype != IFD_STRING)
            memset(t->data, 0, ifd_tensor_count(t) * ifd_dtype_size(t->dtype));
    }
    if (outputs)
        free_values(outputs, n_body_out);
    if (state)
        free_values(state, n_state);
    if (owned)
        free_values(owned, n_body);
    free(y);
    free(outputs);
    free(state);
    free(owned);
    free(inputs);
    return rc;
}

/* ---- SequenceMap ------------------------------------------------------------ */

/* SequenceMap-17 (onnx 1.12 Operators.md): runs `body` once per position of
 * input_sequence; each additional input is either a sequence of the same
 * length (its item at that position goes in) or a tensor (given whole to
 * every run). Output k is the sequence of the body's k-th outputs. */
typedef struct sequence_map_state {
    int n_inputs;
} sequence_map_state;

static int sequence_map_prepare(op_node *node, ifd_error *err)
{
    if (node->n_subgraphs != 1 || strcmp(op_subgraph_name(node, 0), "body") != 0)
        return op_prepare_fail(node, err, "needs the graph attribute body");
    int n = node->n_inputs;
    if (op_subgraph_input_count(node, 0) != n)
        return op_prepare_fail(node, err, "body declares %d inputs; it must take %d (one per "
                               "input of the node)", op_subgraph_input_count(node, 0), n);
    value_info *infos = calloc((size_t)n, sizeof(*infos));
    const value_info **given = calloc((size_t)n, sizeof(*given));
    int failed = 0;
    if (!infos || !given)
        failed = op_prepare_fail(node, err, "out of memory");
    for (int i = 0; i < n && !failed; i++) {
        const value_info *in = node->inputs[i];
        if (!in) {
            failed = op_prepare_fail(node, err, "input %d is empty", i);
        } else if (in->kind == IFD_VALUE_SEQUENCE && in->elem_kind == IFD_VALUE_TENSOR) {
            infos[i] = (value_info){.kind = IFD_VALUE_TENSOR, .dtype = in->dtype, .rank = -1};
        } else if (in->kind == IFD_VALUE_TENSOR && i > 0) {
            infos[i] = unknown_shape(in);
        } else {
            failed = op_prepare_fail(node, err, "input %d must be a sequence of tensors%s", i,
                                     i > 0 ? " or a tensor" : "");
        }
        given[i] = &infos[i];
    }
    if (!failed)
        failed = op_subgraph_prepare(node, 0, given, n, err);
    free(infos);
    free(given);
    if (failed)
        return -1;
    if (op_subgraph_output_count(node, 0) != node->n_outputs)
        return op_prepare_fail(node, err, "body gives %d outputs; the node has %d",
                               op_subgraph_output_count(node, 0), node->n_outputs);
    for (int k = 0; k < node->n_outputs; k++) {
        const value_info *out = op_subgraph_output(node, 0, k);
        if (out->kind != IFD_VALUE_TENSOR)
            return op_prepare_fail(node, err, "body output %d must be a tensor", k);
        value_info *y = node->outputs[k];
        y->kind = IFD_VALUE_SEQUENCE;
        y->elem_kind = IFD_VALUE_TENSOR;
        y->dtype = out->dtype;
        y->rank = -1;
    }
    sequence_map_state *st = calloc(1, sizeof(*st));
    if (!st)
        return op_prepare_fail(node, err, "out of memory");
    st->n_inputs = n;
    node->state = st;
    return 0;
}

static int sequence_map_run(op_ctx *ctx)
{
    const op_node *node = ctx->node;
    int n = node->n_inputs, n_out = node->n_outputs;
    const ifd_value *first = op_input_value(ctx, 0);
    if (!first || first->kind != IFD_VALUE_SEQUENCE)
        return op_fail(ctx, "input_sequence is not a sequence");
    size_t length = first->length;
    for (int i = 1; i < n; i++) {
        const ifd_value *v = op_input_value(ctx, i);
        if (v && v->kind == IFD_VALUE_SEQUENCE && v->length != length)
            return op_fail(ctx, "input %d is a sequence of %zu items; input_sequence has %zu", i,
                           v->length, length);
    }
    int64_t limit = op_loop_limit(ctx);
    if (limit && (int64_t)length > limit)
        return op_fail(ctx, "maps %zu items, above this session's limit of %lld iterations",
                       length, (long long)limit);
    ifd_value **sequences = calloc((size_t)n_out + 1, sizeof(*sequences));
    const ifd_value **inputs = calloc((size_t)n + 1, sizeof(*inputs));
    ifd_value **outputs = calloc((size_t)n_out + 1, sizeof(*outputs));
    int rc = 0;
    if (!sequences || !inputs || !outputs)
        rc = op_fail(ctx, "out of memory");
    for (int k = 0; !rc && k < n_out; k++) {
        sequences[k] = op_output_value(ctx, k);
        if (!sequences[k]) {
            rc = -1;
            break;
        }
        sequences[k]->kind = IFD_VALUE_SEQUENCE;
        if (length && !(sequences[k]->items = calloc(length, sizeof(ifd_value *))))
            rc = op_fail(ctx, "out of memory for a sequence of %zu tensors", length);
    }
    for (size_t t = 0; !rc && t < length; t++) {
        for (int i = 0; i < n; i++) {
            const ifd_value *v = op_input_value(ctx, i);
            inputs[i] = v->kind == IFD_VALUE_SEQUENCE ? v->items[t] : v;
        }
        if (op_subgraph_run(ctx, 0, inputs, outputs)) {
            rc = -1;
            break;
        }
        for (int k = 0; k < n_out; k++) {
            sequences[k]->items[t] = outputs[k];
            sequences[k]->length = t + 1;
            outputs[k] = NULL;
        }
    }
    free(outputs);
    free(inputs);
    free(sequences);
    return rc;
}

static void plain_free(void *p) { free(p); }

static const op_def defs[] = {
    {"", "If", 1, 21, if_prepare, if_run, plain_free},
    {"", "Loop", 1, 21, loop_prepare, loop_run, plain_free},
    {"", "Scan", 8, 8, scan8_prepare, scan8_run, scan8_free},
    {"", "Scan", 9, 21, scan_prepare, scan_run, scan_free},
    {"", "SequenceMap", 17, 21, sequence_map_prepare, sequence_map_run, plain_free},
};

OP_FAMILY(ops_control_flow, defs);
