/*
 * conv_test_model.h — for the Conv path tests: a one-node Conv model with
 * an open batch axis, serialized from parameters, and the largest error of
 * one run against the definition computed in double. Header-only: each
 * test is its own executable.
 */
#ifndef INFERD_TESTS_CONV_TEST_MODEL_H
#define INFERD_TESTS_CONV_TEST_MODEL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inferd/inferd.h"
#include "onnx/onnx-ml.pb-c.h"

typedef struct conv_case {
    int64_t channels, out_channels, size, kernel, stride, pad;
} conv_case;

static int64_t conv_out_size(const conv_case *c)
{
    return (c->size + 2 * c->pad - c->kernel) / c->stride + 1;
}

/* Y = Conv(X, W, B) with X [N, C, S, S] (N a dim_param), serialized. */
static uint8_t *conv_model_build(const conv_case *c, const float *w, const float *b, size_t *len)
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

/* Largest |y - definition| of one run of m at this batch with these
 * session options (NULL: the defaults); -1 on failure. */
/* The deterministic weights, biases and inputs (for up to `batch` images)
 * every Conv path test feeds both paths; the caller frees the three. */
static void conv_case_data(const conv_case *c, int64_t batch, float **w, float **b, float **x)
{
    size_t wn = (size_t)(c->out_channels * c->channels * c->kernel * c->kernel);
    size_t in = (size_t)(batch * c->channels * c->size * c->size);
    *w = malloc(wn * sizeof(float));
    *b = malloc((size_t)c->out_channels * sizeof(float));
    *x = malloc(in * sizeof(float));
    for (size_t i = 0; i < wn; i++)
        (*w)[i] = (float)((i * 53) % 97) / 48.0f - 1.0f;
    for (int64_t i = 0; i < c->out_channels; i++)
        (*b)[i] = 0.125f * (float)i;
    for (size_t i = 0; i < in; i++)
        (*x)[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
}

static double conv_run_error(ifd_model *m, const conv_case *c, int64_t batch, const ifd_session_options *so,
                             const float *x, const float *w, const float *b)
{
    int64_t dims[4] = {batch, c->channels, c->size, c->size};
    ifd_value *xv = NULL, *y = NULL;
    ifd_session *s = NULL;
    ifd_error err;
    double worst = -1.0;
    size_t in = (size_t)(batch * c->channels * c->size * c->size);
    if (ifd_value_new_tensor(IFD_FLOAT, 4, dims, &xv, &err) != IFD_OK)
        return -1.0;
    memcpy(xv->tensor.data, x, in * sizeof(float));
    if (ifd_session_create(m, so, &s, &err) == IFD_OK &&
        ifd_session_run(s, (const ifd_value *const *)&xv, &y, &err) == IFD_OK) {
        int64_t o = conv_out_size(c);
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

#endif /* INFERD_TESTS_CONV_TEST_MODEL_H */
