/*
 * test_conv_sliced_paths.c — dense Convs over small planes that ops/conv.c
 * runs as products over whole images side by side (im2col_f32_packed_slice
 * with several images) give the definition's output through the whole
 * engine: planes of 49, 100 and 169 positions, which are not whole 16-column
 * slivers, so images start mid-sliver and the slivers that hold two images
 * gather; a stride-2 layer onto a 7x7 plane; a 30x30 plane cut into column
 * chunks of an even and an odd number of slivers; batches of 1 (column chunks),
 * 3 (an uneven last group) and 8, on one thread and on two (images split
 * between them); loaded with graph optimisation on and off. The model's
 * batch axis is left open, as exporters write it.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "inferd/inferd.h"
#include "onnx/onnx-ml.pb-c.h"
#include "test.h"

typedef struct conv_case {
    int64_t channels, out_channels, size, kernel, stride, pad;
} conv_case;

static int64_t out_size(const conv_case *c)
{
    return (c->size + 2 * c->pad - c->kernel) / c->stride + 1;
}

/* Y = Conv(X, W, B) with X [N, C, S, S] (N a dim_param), serialized. */
static uint8_t *build_model(const conv_case *c, const float *w, const float *b, size_t *len)
{
    Onnx__ModelProto model;
    Onnx__GraphProto graph;
    Onnx__OperatorSetIdProto opset, *opsets[1] = {&opset};
    Onnx__NodeProto node, *nodes[1] = {&node};
    Onnx__AttributeProto attrs[3], *attr_ptrs[3] = {&attrs[0], &attrs[1], &attrs[2]};
    Onnx__TensorProto wt, bt, *inits[2] = {&wt, &bt};
    Onnx__ValueInfoProto xi, yi, *ins[1] = {&xi}, *outs[1] = {&yi};
    Onnx__TypeProto xtype, ytype;
    Onnx__TypeProto__Tensor xtt, ytt;
    Onnx__TensorShapeProto xshape;
    Onnx__TensorShapeProto__Dimension xd[4], *xd_ptrs[4] = {&xd[0], &xd[1], &xd[2], &xd[3]};
    int64_t wdims[4] = {c->out_channels, c->channels, c->kernel, c->kernel};
    int64_t bdims[1] = {c->out_channels};
    int64_t kernel[2] = {c->kernel, c->kernel}, strides[2] = {c->stride, c->stride};
    int64_t pads[4] = {c->pad, c->pad, c->pad, c->pad};
    static char *node_in[3] = {"x", "w", "b"}, *node_out[1] = {"y"};

    onnx__model_proto__init(&model);
    model.has_ir_version = 1;
    model.ir_version = 8;
    onnx__operator_set_id_proto__init(&opset);
    opset.domain = "";
    opset.has_version = 1;
    opset.version = 13;
    model.n_opset_import = 1;
    model.opset_import = opsets;
    onnx__graph_proto__init(&graph);
    graph.name = "conv";
    model.graph = &graph;

    onnx__tensor_proto__init(&wt);
    wt.name = "w";
    wt.has_data_type = 1;
    wt.data_type = IFD_FLOAT;
    wt.n_dims = 4;
    wt.dims = wdims;
    wt.has_raw_data = 1;
    wt.raw_data.data = (uint8_t *)w;
    wt.raw_data.len = (size_t)(c->out_channels * c->channels * c->kernel * c->kernel) * 4;
    onnx__tensor_proto__init(&bt);
    bt.name = "b";
    bt.has_data_type = 1;
    bt.data_type = IFD_FLOAT;
    bt.n_dims = 1;
    bt.dims = bdims;
    bt.has_raw_data = 1;
    bt.raw_data.data = (uint8_t *)b;
    bt.raw_data.len = (size_t)c->out_channels * 4;
    graph.n_initializer = 2;
    graph.initializer = inits;

    const char *names[3] = {"kernel_shape", "strides", "pads"};
    int64_t *values[3] = {kernel, strides, pads};
    size_t counts[3] = {2, 2, 4};
    for (int i = 0; i < 3; i++) {
        onnx__attribute_proto__init(&attrs[i]);
        attrs[i].name = (char *)names[i];
        attrs[i].has_type = 1;
        attrs[i].type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
        attrs[i].n_ints = counts[i];
        attrs[i].ints = values[i];
    }
    onnx__node_proto__init(&node);
    node.op_type = "Conv";
    node.n_input = 3;
    node.input = node_in;
    node.n_output = 1;
    node.output = node_out;
    node.n_attribute = 3;
    node.attribute = attr_ptrs;
    graph.n_node = 1;
    graph.node = nodes;

    onnx__tensor_shape_proto__init(&xshape);
    for (int i = 0; i < 4; i++) {
        onnx__tensor_shape_proto__dimension__init(&xd[i]);
        if (i == 0) {
            xd[i].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            xd[i].dim_param = "N";
        } else {
            xd[i].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            xd[i].dim_value = i == 1 ? c->channels : c->size;
        }
    }
    xshape.n_dim = 4;
    xshape.dim = xd_ptrs;
    onnx__type_proto__init(&xtype);
    onnx__type_proto__tensor__init(&xtt);
    xtt.has_elem_type = 1;
    xtt.elem_type = IFD_FLOAT;
    xtt.shape = &xshape;
    xtype.value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    xtype.tensor_type = &xtt;
    onnx__type_proto__init(&ytype);
    onnx__type_proto__tensor__init(&ytt);
    ytt.has_elem_type = 1;
    ytt.elem_type = IFD_FLOAT;
    ytype.value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    ytype.tensor_type = &ytt;
    onnx__value_info_proto__init(&xi);
    xi.name = "x";
    xi.type = &xtype;
    onnx__value_info_proto__init(&yi);
    yi.name = "y";
    yi.type = &ytype;
    graph.n_input = 1;
    graph.input = ins;
    graph.n_output = 1;
    graph.output = outs;

    *len = protobuf_c_message_get_packed_size(&model.base);
    uint8_t *buf = malloc(*len);
    protobuf_c_message_pack(&model.base, buf);
    return buf;
}

/* Largest |y - definition| of one run of m at this batch and thread count;
 * -1 on failure. */
static double run_error(ifd_model *m, const conv_case *c, int64_t batch, int threads,
                        const float *x, const float *w, const float *b)
{
    int64_t dims[4] = {batch, c->channels, c->size, c->size};
    ifd_value *xv = NULL, *y = NULL;
    ifd_session *s = NULL;
    ifd_error err;
    ifd_session_options so = {.threads = threads, .batch_split = IFD_BATCH_SPLIT_OFF};
    double worst = -1.0;
    size_t in = (size_t)(batch * c->channels * c->size * c->size);
    if (ifd_value_new_tensor(IFD_FLOAT, 4, dims, &xv, &err) != IFD_OK)
        return -1.0;
    memcpy(xv->tensor.data, x, in * sizeof(float));
    if (ifd_session_create(m, &so, &s, &err) == IFD_OK &&
        ifd_session_run(s, (const ifd_value *const *)&xv, &y, &err) == IFD_OK) {
        int64_t o = out_size(c);
        const float *yd = y->tensor.data;
        worst = 0.0;
        for (int64_t n = 0; n < batch; n++)
            for (int64_t m2 = 0; m2 < c->out_channels; m2++)
                for (int64_t i = 0; i < o; i++)
                    for (int64_t j = 0; j < o; j++) {
                        double sum = b[m2];
                        for (int64_t ch = 0; ch < c->channels; ch++)
                            for (int64_t ki = 0; ki < c->kernel; ki++)
                                for (int64_t kj = 0; kj < c->kernel; kj++) {
                                    int64_t r = i * c->stride + ki - c->pad;
                                    int64_t q = j * c->stride + kj - c->pad;
                                    if (r < 0 || r >= c->size || q < 0 || q >= c->size)
                                        continue;
                                    sum += (double)w[((m2 * c->channels + ch) * c->kernel + ki) *
                                                         c->kernel + kj] *
                                           (double)x[((n * c->channels + ch) * c->size + r) *
                                                         c->size + q];
                                }
                        double got = yd[((n * c->out_channels + m2) * o + i) * o + j];
                        worst = fmax(worst, fabs(got - sum));
                    }
    } else {
        fprintf(stderr, "run failed: %s\n", err.message);
    }
    ifd_value_free(y);
    ifd_session_free(s);
    ifd_value_free(xv);
    return worst;
}

#define MAX_BATCH 8

static void check_case(const conv_case *c)
{
    size_t wn = (size_t)(c->out_channels * c->channels * c->kernel * c->kernel);
    size_t in = (size_t)(MAX_BATCH * c->channels * c->size * c->size);
    float *w = malloc(wn * sizeof(float)), *b = malloc((size_t)c->out_channels * sizeof(float));
    float *x = malloc(in * sizeof(float));
    for (size_t i = 0; i < wn; i++)
        w[i] = (float)((i * 53) % 97) / 48.0f - 1.0f;
    for (int64_t i = 0; i < c->out_channels; i++)
        b[i] = 0.125f * (float)i;
    for (size_t i = 0; i < in; i++)
        x[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
    size_t len;
    uint8_t *buf = build_model(c, w, b, &len);
    double tol = 1e-4 * (double)(c->channels * c->kernel * c->kernel);
    const int64_t batches[3] = {1, 3, MAX_BATCH};
    for (int opt = 0; opt < 2; opt++) {
        ifd_load_options lo = {.graph_opt = opt ? IFD_GRAPH_OPT_NONE : IFD_GRAPH_OPT_ALL};
        ifd_model *m = NULL;
        ifd_error err;
        CHECK(ifd_model_load_memory(buf, len, NULL, &lo, &m, &err) == IFD_OK);
        for (int bi = 0; m && bi < 3; bi++)
            for (int threads = 1; threads <= 2; threads++) {
                double e = run_error(m, c, batches[bi], threads, x, w, b);
                if (!(e >= 0.0 && e <= tol))
                    fprintf(stderr, "%lld -> %lld channels, %lldx%lld, stride %lld, batch %lld, "
                                    "%d thread(s), graph-opt %s: error %g\n",
                            (long long)c->channels, (long long)c->out_channels,
                            (long long)c->size, (long long)c->size, (long long)c->stride,
                            (long long)batches[bi], threads, opt ? "none" : "all", e);
                CHECK(e >= 0.0 && e <= tol);
            }
        ifd_model_free(m);
    }
    free(buf);
    free(w);
    free(b);
    free(x);
}

static void test_images_side_by_side_at_planes_of_partial_slivers_match_the_definition(void)
{
    /* channels, out channels, size, kernel, stride, pad */
    const conv_case cases[] = {
        {16, 24, 7, 3, 1, 1},  /* 49 positions: ResNet-18's last stage */
        {5, 13, 10, 3, 1, 1},  /* 100 positions, odd channel counts */
        {6, 20, 13, 3, 1, 1},  /* 169 positions */
        {8, 16, 14, 3, 2, 1},  /* stride 2 onto 7x7: every sliver gathers */
        {12, 12, 9, 1, 1, 0},  /* pointwise over 81 positions */
        /* a plane cut into column chunks (chunk_columns): 900 positions,
         * 57 slivers in 2 chunks of 28 and 29 */
        {48, 40, 30, 3, 1, 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check_case(&cases[i]);
}

int main(void)
{
    RUN(test_images_side_by_side_at_planes_of_partial_slivers_match_the_definition);
    TEST_MAIN_END();
}
