/*
 * test_optimize.c — the loader's graph optimiser (src/engine/optimize/) on
 * models real exporters wrote (torch.onnx, via tools/gen_optimize_models.py,
 * run here with Debian's python): each loaded at --graph-opt none and all
 * must give the same outputs, and at all the graph must be what the passes
 * promise (LayerNormalization and Gelu recognised, constants folded, dead
 * nodes gone). Also: folding stays within its memory limit, a run with
 * static shapes allocates nothing but its outputs, and bad thread counts are
 * refused.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inferd/inferd.h"
#include "model.h"
#include "ops/fusable.h"
#include "generated_models.h"
#include "test.h"

static size_t count_nodes(const ifd_model *m, const char *op_type)
{
    size_t n = 0;
    for (size_t i = 0; i < m->n_nodes; i++)
        n += op_type == NULL || strcmp(m->nodes[i].op.op_type, op_type) == 0;
    return n;
}

/* The model's one input filled with a fixed pseudo-random pattern. */
static ifd_value *make_input(const ifd_model *m)
{
    const ifd_io_info *in = ifd_model_input(m, 0);
    int64_t dims[IFD_MAX_RANK];
    for (int i = 0; i < in->type.rank; i++)
        dims[i] = in->type.dims[i] > 0 ? in->type.dims[i] : 1;
    ifd_value *v = NULL;
    ifd_error err;
    if (ifd_value_new_tensor(IFD_FLOAT, in->type.rank, dims, &v, &err) != IFD_OK)
        return NULL;
    float *x = v->tensor.data;
    uint32_t state = 12345;
    for (int64_t i = 0; i < ifd_tensor_count(&v->tensor); i++) {
        state = state * 1664525u + 1013904223u;
        x[i] = (float)((state >> 8) / 16777216.0 * 4.0 - 2.0);
    }
    return v;
}

/* Output 0 of one run, or NULL. */
static ifd_value *run_once(ifd_session *s, const ifd_value *input)
{
    ifd_value *out[4] = {0};
    ifd_error err;
    const ifd_value *in[1] = {input};
    if (ifd_session_run(s, in, out, &err) != IFD_OK) {
        fprintf(stderr, "run: %s\n", err.message);
        return NULL;
    }
    for (int i = 1; i < 4; i++)
        ifd_value_free(out[i]);
    return out[0];
}

/* The same outputs at none and all (rtol 1e-4, atol 1e-5). */
static void check_same_outputs(const char *name, ifd_model *none, ifd_model *all)
{
    ifd_session *a = NULL, *b = NULL;
    ifd_error err;
    ifd_value *x = make_input(none);
    CHECK(x != NULL);
    CHECK_EQ_INT(ifd_session_create(none, NULL, &a, &err), IFD_OK);
    CHECK_EQ_INT(ifd_session_create(all, NULL, &b, &err), IFD_OK);
    ifd_value *ya = a && x ? run_once(a, x) : NULL, *yb = b && x ? run_once(b, x) : NULL;
    CHECK(ya && yb);
    if (ya && yb) {
        CHECK_EQ_INT(ya->tensor.rank, yb->tensor.rank);
        CHECK_EQ_INT(ifd_tensor_count(&ya->tensor), ifd_tensor_count(&yb->tensor));
        const float *p = ya->tensor.data, *q = yb->tensor.data;
        int64_t bad = 0;
        for (int64_t i = 0; i < ifd_tensor_count(&ya->tensor); i++)
            if (!(fabsf(p[i] - q[i]) <= 1e-5f + 1e-4f * fabsf(p[i])))
                bad++;
        if (bad)
            fprintf(stderr, "%s: %lld elements differ between --graph-opt none and all\n", name,
                    (long long)bad);
        CHECK_EQ_INT(bad, 0);
    }
    ifd_value_free(ya);
    ifd_value_free(yb);
    ifd_value_free(x);
    ifd_session_free(a);
    ifd_session_free(b);
}

static void test_layernorm_spelled_out_by_torch_becomes_one_operator(void)
{
    ifd_model *none = generated_model_load("layernorm", IFD_GRAPH_OPT_NONE), *all = generated_model_load("layernorm", IFD_GRAPH_OPT_ALL);
    CHECK(none && all);
    if (!none || !all)
        goto done;
    CHECK_EQ_INT(count_nodes(none, "LayerNormalization"), 0);
    CHECK_EQ_INT(count_nodes(none, "ReduceMean"), 2);
    CHECK_EQ_INT(count_nodes(all, "LayerNormalization"), 1);
    CHECK_EQ_INT(count_nodes(all, "ReduceMean"), 0);
    CHECK_EQ_INT(count_nodes(all, "Sqrt"), 0);
    check_same_outputs("layernorm", none, all);
done:
    ifd_model_free(none);
    ifd_model_free(all);
}

static void test_gelu_erf_and_tanh_forms_become_gelu(void)
{
    const char *names[] = {"gelu_erf", "gelu_tanh"};
    for (int i = 0; i < 2; i++) {
        ifd_model *none = generated_model_load(names[i], IFD_GRAPH_OPT_NONE), *all = generated_model_load(names[i], IFD_GRAPH_OPT_ALL);
        CHECK(none && all);
        if (none && all) {
            CHECK_EQ_INT(count_nodes(none, "Gelu"), 0);
            CHECK_EQ_INT(count_nodes(all, "Gelu"), 1);
            CHECK_EQ_INT(count_nodes(all, "Mul"), 0);
            CHECK_EQ_INT(count_nodes(all, "Erf") + count_nodes(all, "Tanh"), 0);
            /* the Gelu pass takes 4 (erf) or 8 (tanh) nodes; the kernel
             * fusions may also fold the Linear's bias Add into its MatMul */
            CHECK(count_nodes(all, NULL) <= count_nodes(none, NULL) - (i == 0 ? 4 : 8));
            check_same_outputs(names[i], none, all);
        }
        ifd_model_free(none);
        ifd_model_free(all);
    }
}

static void test_gather_of_one_slice_reads_through_the_transpose(void)
{
    const ifd_graph_opt levels[] = {IFD_GRAPH_OPT_BASIC, IFD_GRAPH_OPT_ALL};
    ifd_model *none = generated_model_load("gather_transposed", IFD_GRAPH_OPT_NONE);
    CHECK(none != NULL);
    if (none)
        CHECK_EQ_INT(count_nodes(none, "Transpose"), 6);
    for (int l = 0; l < 2 && none; l++) {
        ifd_model *opt = generated_model_load("gather_transposed", levels[l]);
        CHECK(opt != NULL);
        if (!opt)
            continue;
        /* [1,0,2] and [0,2,1] go; [2,0,1] becomes a [1,0] after the Gather;
         * the twice-read one and those with a computed or [1] index stay */
        CHECK_EQ_INT(count_nodes(opt, "Transpose"), 4);
        size_t small = 0, after_gather = 0, gathers_of_x = 0;
        for (size_t i = 0; i < opt->n_nodes; i++) {
            const model_node *n = &opt->nodes[i];
            if (strcmp(n->op.op_type, "Gather") == 0)
                gathers_of_x += n->input_slots[0] == opt->inputs[0].slot;
            if (strcmp(n->op.op_type, "Transpose") != 0)
                continue;
            const int64_t *perm;
            small += op_attr_ints(&n->op, "perm", &perm) == 2 && perm[0] == 1 && perm[1] == 0;
            for (size_t k = 0; k < opt->n_nodes; k++)
                after_gather += opt->nodes[k].output_slots[0] == n->input_slots[0] &&
                                strcmp(opt->nodes[k].op.op_type, "Gather") == 0 &&
                                opt->values[n->input_slots[0]].info.rank == 2;
        }
        CHECK_EQ_INT(gathers_of_x, 3);
        CHECK_EQ_INT(small, 1);
        CHECK_EQ_INT(after_gather, 1);
        check_same_outputs("gather_transposed", none, opt);
        ifd_model_free(opt);
    }
    ifd_model_free(none);
}

static void test_basic_level_folds_but_does_not_fuse(void)
{
    ifd_model *basic = generated_model_load("gelu_erf", IFD_GRAPH_OPT_BASIC);
    CHECK(basic != NULL);
    if (basic) {
        CHECK_EQ_INT(count_nodes(basic, "Gelu"), 0);
        CHECK_EQ_INT(count_nodes(basic, "Erf"), 1);
    }
    ifd_model_free(basic);
}

static void test_transformer_encoder_same_outputs_with_fewer_nodes(void)
{
    ifd_model *none = generated_model_load("transformer", IFD_GRAPH_OPT_NONE), *all = generated_model_load("transformer", IFD_GRAPH_OPT_ALL);
    CHECK(none && all);
    if (!none || !all)
        goto done;
    CHECK_EQ_INT(count_nodes(all, "LayerNormalization"), 4);
    CHECK_EQ_INT(count_nodes(all, "Gelu"), 2);
    /* the shape arithmetic around every reshape is folded away */
    CHECK_EQ_INT(count_nodes(all, "Shape"), 0);
    CHECK_EQ_INT(count_nodes(all, "Gather"), 0);
    CHECK(count_nodes(all, NULL) * 2 < count_nodes(none, NULL));
    /* per layer, attention's Q, K, V and head transposes and the 1/sqrt(d)
     * Div go into its two MatMuls: left are the batch-first <-> sequence-
     * first transposes around the layer */
    CHECK_EQ_INT(count_nodes(none, "Transpose"), 12);
    CHECK_EQ_INT(count_nodes(all, "Transpose"), 4);
    CHECK_EQ_INT(count_nodes(all, "Div"), 0);
    /* each layer's Q x K^T, Softmax and weights x V: one fused MatMul */
    CHECK_EQ_INT(count_nodes(none, "Softmax"), 2);
    CHECK_EQ_INT(count_nodes(all, "Softmax"), 0);
    /* the bias Adds go into the MatMuls, the residual Adds into the
     * LayerNormalizations that follow them */
    CHECK_EQ_INT(count_nodes(all, "Add"), 0);
    check_same_outputs("transformer", none, all);
done:
    ifd_model_free(none);
    ifd_model_free(all);
}

/* Output 0 of m at `level` for x [3, 6, 8] (the first dimension dynamic). */
static ifd_value *run_batch_of_three(ifd_model *m, const float *x)
{
    ifd_session *s = NULL;
    ifd_error err;
    ifd_value *in = NULL, *y = NULL;
    int64_t dims[3] = {3, 6, 8};
    if (ifd_session_create(m, NULL, &s, &err) != IFD_OK ||
        ifd_value_new_tensor(IFD_FLOAT, 3, dims, &in, &err) != IFD_OK)
        goto done;
    memcpy(in->tensor.data, x, 144 * sizeof(float));
    y = run_once(s, in);
done:
    ifd_value_free(in);
    ifd_session_free(s);
    return y;
}

static void test_gathers_of_known_shape_entries_fold_with_a_dynamic_batch(void)
{
    ifd_model *none = generated_model_load("shape_gathers", IFD_GRAPH_OPT_NONE);
    ifd_model *all = generated_model_load("shape_gathers", IFD_GRAPH_OPT_ALL);
    CHECK(none && all);
    if (!none || !all)
        goto done;
    CHECK_EQ_INT(count_nodes(none, "Gather"), 3);
    CHECK_EQ_INT(count_nodes(none, "Shape"), 2);
    /* entries 1 and 2 (6 and 8) fold, and the Mul and Div after them; the
     * batch's Gather and its Shape stay; Shape(start=2) folds whole */
    CHECK_EQ_INT(count_nodes(all, "Gather"), 1);
    CHECK_EQ_INT(count_nodes(all, "Shape"), 1);
    CHECK_EQ_INT(count_nodes(all, "Mul"), 0);
    CHECK_EQ_INT(count_nodes(all, "Div"), 0);
    for (size_t i = 0; i < all->n_nodes; i++) {
        const op_node *op = &all->nodes[i].op;
        if (strcmp(op->op_type, "Slice") != 0)
            continue;
        /* the slice's end is a constant 24 now */
        const ifd_tensor *end = op->inputs[2]->constant;
        CHECK(end != NULL);
        if (end)
            CHECK_EQ_INT(((const int64_t *)end->data)[0], 24);
    }
    float x[144];
    for (int i = 0; i < 144; i++)
        x[i] = (float)i * 0.5f - 7.0f;
    ifd_value *ya = run_batch_of_three(none, x), *yb = run_batch_of_three(all, x);
    CHECK(ya && yb);
    if (ya && yb) {
        /* y = x[:, 0:3, :], at both levels */
        CHECK_EQ_INT(yb->tensor.rank, 3);
        CHECK_EQ_INT(yb->tensor.dims[0], 3);
        CHECK_EQ_INT(yb->tensor.dims[1], 3);
        CHECK_EQ_INT(yb->tensor.dims[2], 8);
        CHECK_EQ_INT(ifd_tensor_count(&ya->tensor), 72);
        CHECK_EQ_INT(ifd_tensor_count(&yb->tensor), 72);
        int bad = 0;
        for (int b = 0; b < 3; b++)
            for (int j = 0; j < 24; j++) {
                float want = x[b * 48 + j];
                bad += ((const float *)ya->tensor.data)[b * 24 + j] != want;
                bad += ((const float *)yb->tensor.data)[b * 24 + j] != want;
            }
        CHECK_EQ_INT(bad, 0);
    }
    ifd_value_free(ya);
    ifd_value_free(yb);
done:
    ifd_model_free(none);
    ifd_model_free(all);
}

static void test_gather_past_a_shape_stays_and_fails_at_run_time(void)
{
    ifd_model *all = generated_model_load("shape_gather_out_of_range", IFD_GRAPH_OPT_ALL);
    CHECK(all != NULL);
    if (!all)
        return;
    CHECK_EQ_INT(count_nodes(all, "Gather"), 1);
    ifd_session *s = NULL;
    ifd_error err;
    ifd_value *x = make_input(all), *out[1] = {NULL};
    CHECK_EQ_INT(ifd_session_create(all, NULL, &s, &err), IFD_OK);
    const ifd_value *in[1] = {x};
    if (s && x)
        CHECK(ifd_session_run(s, in, out, &err) != IFD_OK);
    ifd_value_free(out[0]);
    ifd_value_free(x);
    ifd_session_free(s);
    ifd_model_free(all);
}

static void test_slices_of_a_products_columns_become_its_outputs(void)
{
    ifd_model *none = generated_model_load("column_slices", IFD_GRAPH_OPT_NONE);
    ifd_model *all = generated_model_load("column_slices", IFD_GRAPH_OPT_ALL);
    CHECK(none && all);
    if (none && all) {
        CHECK_EQ_INT(count_nodes(none, "Slice"), 3);
        /* the MatMul (its bias Add fused) writes q, k and v itself */
        CHECK_EQ_INT(count_nodes(all, "Slice"), 0);
        CHECK_EQ_INT(count_nodes(all, "MatMul"), 1);
        for (size_t i = 0; i < all->n_nodes; i++)
            if (strcmp(all->nodes[i].op.op_type, "MatMul") == 0)
                CHECK_EQ_INT(all->nodes[i].op.n_outputs, 3);
        check_same_outputs("column_slices", none, all);
    }
    ifd_model_free(none);
    ifd_model_free(all);
    /* cut inside the packed weight's 16-column slivers: the Slices stay */
    none = generated_model_load("column_slices_ragged", IFD_GRAPH_OPT_NONE);
    all = generated_model_load("column_slices_ragged", IFD_GRAPH_OPT_ALL);
    CHECK(none && all);
    if (none && all) {
        CHECK_EQ_INT(count_nodes(all, "Slice"), 3);
        check_same_outputs("column_slices_ragged", none, all);
    }
    ifd_model_free(none);
    ifd_model_free(all);
}

static void test_encoder_with_a_dynamic_batch_slices_no_copies_of_q_k_v(void)
{
    /* the bounds of each layer's Q, K and V Slices are Gathers of the
     * projection's Shape (its batch unknown at load): they fold, and the
     * input projection writes Q, K and V as three outputs */
    ifd_model *none = generated_model_load("transformer_dynamic_batch", IFD_GRAPH_OPT_NONE);
    ifd_model *all = generated_model_load("transformer_dynamic_batch", IFD_GRAPH_OPT_ALL);
    CHECK(none && all);
    if (none && all) {
        CHECK_EQ_INT(count_nodes(none, "Slice"), 6);
        CHECK_EQ_INT(count_nodes(all, "Slice"), 0);
        CHECK(count_nodes(all, "Gather") < count_nodes(none, "Gather"));
        check_same_outputs("transformer_dynamic_batch", none, all);
    }
    ifd_model_free(none);
    ifd_model_free(all);
}

/* The distinct packed weights of a model's Gemm and MatMul nodes. */
static size_t distinct_packed_weights(ifd_model *m, size_t *products)
{
    const float *seen[64];
    size_t distinct = 0;
    *products = 0;
    for (size_t i = 0; i < m->n_nodes; i++) {
        size_t k, n;
        const float *w = product_packed_b(&m->nodes[i].op, &k, &n);
        if (!w)
            continue;
        ++*products;
        bool known = false;
        for (size_t j = 0; j < distinct; j++)
            known |= seen[j] == w;
        if (!known && distinct < 64)
            seen[distinct++] = w;
    }
    return distinct;
}

static void test_layers_with_equal_weights_share_one_packed_copy(void)
{
    /* TransformerEncoder deep-copies its layer: both layers' four weights
     * are equal, and torch writes each once, read through an Identity per
     * layer (folded at ALL, so that every product packs its weight) */
    ifd_model *m = generated_model_load("transformer", IFD_GRAPH_OPT_ALL);
    CHECK(m != NULL);
    if (m) {
        size_t products, distinct = distinct_packed_weights(m, &products);
        CHECK_EQ_INT(products, 8); /* in-projection, out-projection, 2 feed-forward, x2 */
        CHECK_EQ_INT(distinct, 4);
        /* the weights the layers read through Identity (folded to views of
         * them) live only in the packed copies: no 2-D constant holds data */
        size_t held = 0;
        for (size_t i = 0; i < m->n_values; i++)
            held += m->values[i].origin == VALUE_CONSTANT &&
                    m->values[i].constant_storage.data && m->values[i].constant_storage.rank == 2;
        CHECK_EQ_INT(held, 0);
    }
    ifd_model_free(m);
    /* W1, W2, W1 of one shape: the equal pair shares, the other stays apart,
     * and the outputs are those of the graph as written */
    ifd_model *none = generated_model_load("shared_weights", IFD_GRAPH_OPT_NONE);
    ifd_model *all = generated_model_load("shared_weights", IFD_GRAPH_OPT_ALL);
    CHECK(none && all);
    if (none && all) {
        size_t products, distinct = distinct_packed_weights(all, &products);
        CHECK_EQ_INT(products, 3);
        CHECK_EQ_INT(distinct, 2);
        check_same_outputs("shared_weights", none, all);
    }
    ifd_model_free(none);
    ifd_model_free(all);
}

static void test_matmul_reads_transposed_heads_in_place_and_refuses_other_perms(void)
{
    ifd_model *none = generated_model_load("attention_views", IFD_GRAPH_OPT_NONE);
    ifd_model *all = generated_model_load("attention_views", IFD_GRAPH_OPT_ALL);
    CHECK(none && all);
    if (!none || !all)
        goto done;
    CHECK_EQ_INT(count_nodes(none, "Transpose"), 7);
    CHECK_EQ_INT(count_nodes(none, "Mul"), 1);
    /* Q [1,0,2], K [1,2,0], V [1,0,2], the result [1,0,2] and the scale go;
     * [2,0,1] (read twice), [2,1,0] and [1,2,0] on a result stay */
    CHECK_EQ_INT(count_nodes(all, "Transpose"), 3);
    CHECK_EQ_INT(count_nodes(all, "Mul"), 0);
    /* Q x K^T, the Softmax and the product with V are one fused node */
    CHECK_EQ_INT(count_nodes(none, "MatMul"), 4);
    CHECK_EQ_INT(count_nodes(all, "MatMul"), 3);
    CHECK_EQ_INT(count_nodes(all, "Softmax"), 0);
    check_same_outputs("attention_views", none, all);
done:
    ifd_model_free(none);
    ifd_model_free(all);
}

static void test_attention_is_one_node_over_blocks_of_query_rows(void)
{
    ifd_model *none = generated_model_load("attention_blocks", IFD_GRAPH_OPT_NONE);
    ifd_model *all = generated_model_load("attention_blocks", IFD_GRAPH_OPT_ALL);
    CHECK(none && all);
    if (!none || !all)
        goto done;
    CHECK_EQ_INT(count_nodes(none, NULL), 9);
    /* the Sigmoid, and one MatMul reading Q, V and K through its views */
    CHECK_EQ_INT(count_nodes(all, NULL), 2);
    CHECK_EQ_INT(count_nodes(all, "MatMul"), 1);
    check_same_outputs("attention_blocks", none, all);
done:
    ifd_model_free(none);
    ifd_model_free(all);
}

static void test_large_reshape_copies_every_byte_over_two_threads(void)
{
    ifd_model *m = generated_model_load("big_reshape", IFD_GRAPH_OPT_ALL);
    CHECK(m != NULL);
    if (!m)
        return;
    ifd_session_options opt = {.threads = 2};
    ifd_session *s = NULL;
    ifd_error err;
    CHECK_EQ_INT(ifd_session_create(m, &opt, &s, &err), IFD_OK);
    ifd_value *x = make_input(m), *y = s && x ? run_once(s, x) : NULL;
    CHECK(y != NULL);
    if (y) {
        CHECK_EQ_INT(y->tensor.dims[0], 1001);
        CHECK_EQ_INT(y->tensor.dims[1], 257);
        CHECK(memcmp(y->tensor.data, x->tensor.data, (size_t)257 * 1001 * sizeof(float)) == 0);
    }
    ifd_value_free(x);
    ifd_value_free(y);
    ifd_session_free(s);
    ifd_model_free(m);
}

static void test_weight_transposed_in_graph_is_folded_and_original_freed(void)
{
    ifd_model *none = generated_model_load("transposed_weight", IFD_GRAPH_OPT_NONE);
    ifd_model *all = generated_model_load("transposed_weight", IFD_GRAPH_OPT_ALL);
    CHECK(none && all);
    if (!none || !all)
        goto done;
    CHECK_EQ_INT(count_nodes(none, "Transpose"), 1);
    CHECK_EQ_INT(count_nodes(all, "Transpose"), 0);
    CHECK_EQ_INT(count_nodes(all, "Concat"), 0);
    CHECK_EQ_INT(count_nodes(all, NULL), 2); /* MatMul and Reshape */
    /* the untransposed weight is read by nothing now, and the transposed
     * one lives only in MatMul's packed copy: no 2-D constant holds data */
    size_t held = 0;
    for (size_t i = 0; i < all->n_values; i++)
        if (all->values[i].origin == VALUE_CONSTANT && all->values[i].constant_storage.data &&
            all->values[i].constant_storage.rank == 2)
            held++;
    CHECK_EQ_INT(held, 0);
    check_same_outputs("transposed_weight", none, all);
done:
    ifd_model_free(none);
    ifd_model_free(all);
}

/* Nodes of op_type in the subgraphs of m's If nodes, at every depth. */
static size_t count_branch_nodes(const ifd_model *m, const char *op_type)
{
    size_t n = 0;
    for (size_t i = 0; i < m->n_nodes; i++) {
        const op_node *op = &m->nodes[i].op;
        for (int k = 0; k < op->n_subgraphs; k++) {
            const ifd_model *sub = op->subgraphs[k]->model;
            n += count_nodes(sub, op_type) + count_branch_nodes(sub, op_type);
        }
    }
    return n;
}

static void test_outer_weight_reshaped_inside_branches_is_folded_there(void)
{
    ifd_model *none = generated_model_load("branch_weights", IFD_GRAPH_OPT_NONE);
    ifd_model *all = generated_model_load("branch_weights", IFD_GRAPH_OPT_ALL);
    CHECK(none && all);
    if (!none || !all)
        goto done;
    /* two levels of If each turn W around with a Transpose, two Slices and
     * a Concat: at all they are constants of their branch, at none nodes */
    CHECK_EQ_INT(count_branch_nodes(none, "Transpose"), 2);
    CHECK_EQ_INT(count_branch_nodes(none, "Concat"), 2);
    CHECK_EQ_INT(count_branch_nodes(all, "Transpose"), 0);
    CHECK_EQ_INT(count_branch_nodes(all, "Slice"), 0);
    CHECK_EQ_INT(count_branch_nodes(all, "Concat"), 0);
    CHECK_EQ_INT(count_branch_nodes(all, "MatMul"), 3);
    /* W is still the outer MatMul's weight and the branches' source: its
     * bytes stay while the model lives (ASan checks the runs below) */
    for (int repeat = 0; repeat < 3; repeat++)
        check_same_outputs("branch_weights", none, all);
done:
    ifd_model_free(none);
    ifd_model_free(all);
}

static void test_folding_never_expands_a_small_constant_into_a_huge_one(void)
{
    ifd_model *all = generated_model_load("expand_huge", IFD_GRAPH_OPT_ALL);
    CHECK(all != NULL);
    if (all)
        CHECK_EQ_INT(count_nodes(all, "Expand"), 1);
    ifd_model_free(all);
}

static void test_planned_size_past_size_t_is_a_run_error_not_a_crash(void)
{
    ifd_model *m = generated_model_load("expand_overflow", IFD_GRAPH_OPT_ALL);
    CHECK(m != NULL);
    if (!m)
        return;
    CHECK_EQ_INT(count_nodes(m, "Expand"), 1); /* folding refused it */
    ifd_session *s = NULL;
    ifd_error err;
    CHECK_EQ_INT(ifd_session_create(m, NULL, &s, &err), IFD_OK);
    ifd_value *x = make_input(m), *out[2] = {0};
    const ifd_value *in[1] = {x};
    CHECK_EQ_INT(ifd_session_run(s, in, out, &err), IFD_ERR_RUNTIME);
    CHECK_STR_CONTAINS(err.message, "Expand");
    CHECK_STR_CONTAINS(err.message, "too large");
    CHECK(out[0] == NULL);
    ifd_value_free(x);
    ifd_session_free(s);
    ifd_model_free(m);
}

static void test_weights_not_matching_their_shape_are_refused_at_load(void)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/weights_wrong_size.onnx", models_dir);
    ifd_graph_opt levels[] = {IFD_GRAPH_OPT_NONE, IFD_GRAPH_OPT_ALL};
    for (int i = 0; i < 2; i++) {
        ifd_load_options options = {.graph_opt = levels[i]};
        ifd_model *m = NULL;
        ifd_error err;
        CHECK_EQ_INT(ifd_model_load_file(path, &options, &m, &err), IFD_ERR_INVALID_MODEL);
        CHECK(m == NULL);
        CHECK_STR_CONTAINS(err.message, "tensor 'W': raw_data has 32 bytes");
    }
}

/* Three runs of a model on one input, and the buffers the session's pool
 * took from the heap after the first. */
typedef struct three_runs {
    ifd_model *m;
    ifd_session *s;
    ifd_value *x, *y[3];
    size_t after_first, taken_later;
} three_runs;

static bool three_runs_make(three_runs *t, const char *name)
{
    ifd_error err;
    *t = (three_runs){.m = generated_model_load(name, IFD_GRAPH_OPT_ALL)};
    CHECK(t->m != NULL);
    if (!t->m)
        return false;
    CHECK_EQ_INT(ifd_session_create(t->m, NULL, &t->s, &err), IFD_OK);
    t->x = make_input(t->m);
    for (int i = 0; i < 3 && t->s && t->x; i++) {
        t->y[i] = run_once(t->s, t->x);
        if (i == 0)
            t->after_first = session_buffer_allocations(t->s);
    }
    CHECK(t->y[0] && t->y[1] && t->y[2]);
    if (t->s)
        t->taken_later = session_buffer_allocations(t->s) - t->after_first;
    return t->y[0] && t->y[1] && t->y[2];
}

static void three_runs_free(three_runs *t)
{
    for (int i = 0; i < 3; i++)
        ifd_value_free(t->y[i]);
    ifd_value_free(t->x);
    ifd_session_free(t->s);
    ifd_model_free(t->m);
}

static void test_second_run_with_static_shapes_allocates_only_its_output(void)
{
    three_runs t;
    three_runs_make(&t, "transformer");
    CHECK(t.after_first > 0);
    /* the output (1 KiB) is small: each run copies it out for the caller
     * and keeps its pooled buffer, so later runs take nothing from the heap
     * through the pool */
    CHECK_EQ_INT(t.taken_later, 0);
    three_runs_free(&t);
}

static void test_second_run_with_a_large_output_takes_no_new_buffer(void)
{
    /* attention_blocks' output is 32000 bytes. Moved out to the caller, its
     * pooled buffer had to be replaced by a new aligned_alloc on every run,
     * which for a large output means fresh pages and a page fault each */
    three_runs t;
    if (three_runs_make(&t, "attention_blocks")) {
        CHECK_EQ_INT(t.taken_later, 0);
        /* each caller holds its own copy, all with the same values */
        size_t bytes = ifd_tensor_count(&t.y[0]->tensor) * sizeof(float);
        CHECK_EQ_INT(bytes, 32000);
        CHECK(t.y[0]->tensor.data != t.y[1]->tensor.data &&
              t.y[1]->tensor.data != t.y[2]->tensor.data);
        CHECK(memcmp(t.y[0]->tensor.data, t.y[1]->tensor.data, bytes) == 0);
        CHECK(memcmp(t.y[0]->tensor.data, t.y[2]->tensor.data, bytes) == 0);
    }
    three_runs_free(&t);
}

/* 0 keeps the API's meaning (one per core); the CLI refuses it itself. */
static void test_thread_counts_above_the_maximum_are_refused(void)
{
    ifd_model *m = generated_model_load("layernorm", IFD_GRAPH_OPT_ALL);
    CHECK(m != NULL);
    if (!m)
        return;
    ifd_session *s = NULL;
    ifd_error err;
    ifd_session_options huge = {.threads = 10000};
    CHECK_EQ_INT(ifd_session_create(m, &huge, &s, &err), IFD_ERR_INVALID_ARGUMENT);
    CHECK_STR_CONTAINS(err.message, "10000");
    CHECK(s == NULL);
    ifd_session_options one_per_core = {.threads = 0};
    CHECK_EQ_INT(ifd_session_create(m, &one_per_core, &s, &err), IFD_OK);
    ifd_session_free(s);
    ifd_model_free(m);
}

int main(void)
{
    if (!generated_models_make("gen_optimize_models.py", "optimize")) {
        fprintf(stderr, "tools/gen_optimize_models.py failed (needs /usr/bin/python3 with torch)\n");
        return 1;
    }
    RUN(test_layernorm_spelled_out_by_torch_becomes_one_operator);
    RUN(test_gelu_erf_and_tanh_forms_become_gelu);
    RUN(test_basic_level_folds_but_does_not_fuse);
    RUN(test_gather_of_one_slice_reads_through_the_transpose);
    RUN(test_transformer_encoder_same_outputs_with_fewer_nodes);
    RUN(test_gathers_of_known_shape_entries_fold_with_a_dynamic_batch);
    RUN(test_gather_past_a_shape_stays_and_fails_at_run_time);
    RUN(test_slices_of_a_products_columns_become_its_outputs);
    RUN(test_encoder_with_a_dynamic_batch_slices_no_copies_of_q_k_v);
    RUN(test_matmul_reads_transposed_heads_in_place_and_refuses_other_perms);
    RUN(test_layers_with_equal_weights_share_one_packed_copy);
    RUN(test_attention_is_one_node_over_blocks_of_query_rows);
    RUN(test_large_reshape_copies_every_byte_over_two_threads);
    RUN(test_weight_transposed_in_graph_is_folded_and_original_freed);
    RUN(test_outer_weight_reshaped_inside_branches_is_folded_there);
    RUN(test_folding_never_expands_a_small_constant_into_a_huge_one);
    RUN(test_planned_size_past_size_t_is_a_run_error_not_a_crash);
    RUN(test_weights_not_matching_their_shape_are_refused_at_load);
    RUN(test_second_run_with_static_shapes_allocates_only_its_output);
    RUN(test_second_run_with_a_large_output_takes_no_new_buffer);
    RUN(test_thread_counts_above_the_maximum_are_refused);
    generated_models_remove();
    TEST_MAIN_END();
}
