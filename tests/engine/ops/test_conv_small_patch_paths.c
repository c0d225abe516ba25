/*
 * test_conv_small_patch_paths.c — dense Convs with kernels larger than 1x1
 * over output planes under 64 positions and at least 512 patch rows, which
 * ops/conv.c runs as each image's patches through the small-plane tile
 * (patch_small_wanted: ResNet-18's 7x7 layers), give the definition's output
 * through the whole engine: 3x3 over a 7x7 plane, stride 2 onto 7x7, a 5x5
 * kernel, an unpadded stride-2 layer onto 4x4, a 7x7 kernel; input and
 * output channel counts that are not multiples of 16 or of the tile's 32
 * (a ragged last block); batches of 1 (the product split over the threads),
 * 3 and 8 (whole images per thread), on one thread and two; graph
 * optimisation on and off; and with a residual Add and a Relu after the
 * Conv, which the fusion pass folds into the tile's store. Pinning the
 * portable kernel after load must give the same output from the tile's
 * packing (the weights unpacked for im2col), and so must a model loaded
 * with the portable kernel pinned from the start (the GEMM's packing).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "inferd/inferd.h"
#include "kernels/gemm.h"
#include "onnx/onnx-ml.pb-c.h"
#include "conv_test_model.h"
#include "test.h"

#define MAX_BATCH 8

/* The one-Conv model of conv_model_build with y = Relu(Conv(x) + r) after
 * it, r a second input shaped like the Conv's output. */
static uint8_t *residual_relu_model(const uint8_t *conv, size_t conv_len, const conv_case *c,
                                    size_t *len)
{
    Onnx__ModelProto *model = onnx__model_proto__unpack(NULL, conv_len, conv);
    if (!model)
        return NULL;
    Onnx__GraphProto *g = model->graph;
    Onnx__NodeProto add, relu, *nodes[3] = {g->node[0], &add, &relu};
    static char *add_in[2] = {"conv", "r"}, *add_out[1] = {"sum"};
    static char *relu_in[1] = {"sum"}, *relu_out[1] = {"y"};
    char **conv_out = g->node[0]->output, *conv_name[1] = {"conv"};
    Onnx__NodeProto **conv_nodes = g->node;
    Onnx__ValueInfoProto ri, *ins[2] = {g->input[0], &ri}, **old_ins = g->input;
    Onnx__TypeProto rtype;
    Onnx__TypeProto__Tensor rtt;
    Onnx__TensorShapeProto rshape;
    Onnx__TensorShapeProto__Dimension rd[4], *rd_ptrs[4] = {&rd[0], &rd[1], &rd[2], &rd[3]};
    int64_t o = conv_out_size(c);

    onnx__node_proto__init(&add);
    add.op_type = "Add";
    add.n_input = 2;
    add.input = add_in;
    add.n_output = 1;
    add.output = add_out;
    onnx__node_proto__init(&relu);
    relu.op_type = "Relu";
    relu.n_input = 1;
    relu.input = relu_in;
    relu.n_output = 1;
    relu.output = relu_out;
    g->node[0]->output = conv_name;
    g->node = nodes;
    g->n_node = 3;

    onnx__tensor_shape_proto__init(&rshape);
    for (int i = 0; i < 4; i++) {
        onnx__tensor_shape_proto__dimension__init(&rd[i]);
        if (i == 0) {
            rd[i].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            rd[i].dim_param = "N";
        } else {
            rd[i].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            rd[i].dim_value = i == 1 ? c->out_channels : o;
        }
    }
    rshape.n_dim = 4;
    rshape.dim = rd_ptrs;
    onnx__type_proto__init(&rtype);
    onnx__type_proto__tensor__init(&rtt);
    rtt.has_elem_type = 1;
    rtt.elem_type = IFD_FLOAT;
    rtt.shape = &rshape;
    rtype.value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    rtype.tensor_type = &rtt;
    onnx__value_info_proto__init(&ri);
    ri.name = "r";
    ri.type = &rtype;
    g->input = ins;
    g->n_input = 2;

    *len = protobuf_c_message_get_packed_size(&model->base);
    uint8_t *buf = malloc(*len);
    if (buf)
        protobuf_c_message_pack(&model->base, buf);
    /* give the unpacked message back its own pointers before freeing it */
    g->node[0]->output = conv_out;
    g->node = conv_nodes;
    g->n_node = 1;
    g->input = old_ins;
    g->n_input = 1;
    onnx__model_proto__free_unpacked(model, NULL);
    return buf;
}

/* Largest |y - Relu(definition + r)| of one run of the residual model; -1
 * on failure. */
static double residual_run_error(ifd_model *m, const conv_case *c, int64_t batch,
                                 const ifd_session_options *so, const float *x, const float *r,
                                 const float *w, const float *b)
{
    int64_t o = conv_out_size(c);
    int64_t xdims[4] = {batch, c->channels, c->size, c->size};
    int64_t rdims[4] = {batch, c->out_channels, o, o};
    ifd_value *in[2] = {NULL, NULL}, *y = NULL;
    ifd_session *s = NULL;
    ifd_error err;
    double worst = -1.0;
    if (ifd_value_new_tensor(IFD_FLOAT, 4, xdims, &in[0], &err) != IFD_OK ||
        ifd_value_new_tensor(IFD_FLOAT, 4, rdims, &in[1], &err) != IFD_OK)
        goto done;
    memcpy(in[0]->tensor.data, x, (size_t)(batch * c->channels * c->size * c->size) * 4);
    memcpy(in[1]->tensor.data, r, (size_t)(batch * c->out_channels * o * o) * 4);
    if (ifd_session_create(m, so, &s, &err) != IFD_OK ||
        ifd_session_run(s, (const ifd_value *const *)in, &y, &err) != IFD_OK) {
        fprintf(stderr, "run failed: %s\n", err.message);
        goto done;
    }
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
                                int64_t p = i * c->stride + ki - c->pad;
                                int64_t q = j * c->stride + kj - c->pad;
                                if (p < 0 || p >= c->size || q < 0 || q >= c->size)
                                    continue;
                                sum += (double)w[((m2 * c->channels + ch) * c->kernel + ki) *
                                                     c->kernel + kj] *
                                       (double)x[((n * c->channels + ch) * c->size + p) * c->size +
                                                 q];
                            }
                    size_t at = (size_t)(((n * c->out_channels + m2) * o + i) * o + j);
                    double want = fmax(0.0, sum + (double)r[at]);
                    worst = fmax(worst, fabs((double)yd[at] - want));
                }
done:
    ifd_value_free(y);
    ifd_session_free(s);
    ifd_value_free(in[0]);
    ifd_value_free(in[1]);
    return worst;
}

static void report(const conv_case *c, const char *what, int64_t batch, int threads, int opt,
                   double e, double tol)
{
    if (!(e >= 0.0 && e <= tol))
        fprintf(stderr, "%s: %lld -> %lld channels, %lldx%lld, kernel %lld, stride %lld, "
                        "batch %lld, %d thread(s), graph-opt %s, kernel %s: error %g\n",
                what, (long long)c->channels, (long long)c->out_channels, (long long)c->size,
                (long long)c->size, (long long)c->kernel, (long long)c->stride,
                (long long)batch, threads, opt ? "none" : "all", gemm_kernel_name(), e);
    CHECK(e >= 0.0 && e <= tol);
}

/* Every batch, thread count and graph optimisation level on one loaded
 * model of each kind (plain Conv, Conv + residual + Relu). */
static void check_loaded(const conv_case *c, const uint8_t *plain, size_t plain_len,
                         const uint8_t *fused, size_t fused_len, const float *w, const float *b,
                         const float *x, const float *r)
{
    double tol = 1e-4 * (double)(c->channels * c->kernel * c->kernel);
    const int64_t batches[3] = {1, 3, MAX_BATCH};
    for (int opt = 0; opt < 2; opt++) {
        ifd_load_options lo = {.graph_opt = opt ? IFD_GRAPH_OPT_NONE : IFD_GRAPH_OPT_ALL};
        ifd_model *m = NULL, *mf = NULL;
        ifd_error err;
        CHECK(ifd_model_load_memory(plain, plain_len, NULL, &lo, &m, &err) == IFD_OK);
        CHECK(ifd_model_load_memory(fused, fused_len, NULL, &lo, &mf, &err) == IFD_OK);
        for (int bi = 0; m && mf && bi < 3; bi++)
            for (int threads = 1; threads <= 2; threads++) {
                ifd_session_options so = {.threads = threads,
                                          .batch_split = IFD_BATCH_SPLIT_OFF};
                double e = conv_run_error(m, c, batches[bi], &so, x, w, b);
                report(c, "conv", batches[bi], threads, opt, e, tol);
                e = residual_run_error(mf, c, batches[bi], &so, x, r, w, b);
                report(c, "conv + residual + relu", batches[bi], threads, opt, e, tol);
            }
        if (m && mf && opt == 0 && gemm_kernel_is_avx512()) {
            /* pinned after load: the im2col path from the tile's packing */
            CHECK(gemm_use_kernel("generic"));
            ifd_session_options so = {.threads = 2, .batch_split = IFD_BATCH_SPLIT_OFF};
            report(c, "conv, generic after load", 3, 2, opt,
                   conv_run_error(m, c, 3, &so, x, w, b), tol);
            report(c, "conv + residual + relu, generic after load", 3, 2, opt,
                   residual_run_error(mf, c, 3, &so, x, r, w, b), tol);
            CHECK(gemm_use_kernel("avx512"));
        }
        ifd_model_free(m);
        ifd_model_free(mf);
    }
}

static void check_case(const conv_case *c)
{
    float *w, *b, *x;
    conv_case_data(c, MAX_BATCH, &w, &b, &x);
    int64_t o = conv_out_size(c);
    size_t rn = (size_t)(MAX_BATCH * c->out_channels * o * o);
    float *r = malloc(rn * sizeof(float));
    for (size_t i = 0; r && i < rn; i++)
        r[i] = (float)((i * 29) % 89) / 8.0f - 5.5f; /* negative sums: the Relu clamps */
    size_t len = 0, fused_len = 0;
    uint8_t *buf = conv_model_build(c, w, b, &len);
    uint8_t *fused = buf ? residual_relu_model(buf, len, c, &fused_len) : NULL;
    CHECK(r && buf && fused);
    if (r && buf && fused) {
        const char *first = gemm_kernel_name();
        check_loaded(c, buf, len, fused, fused_len, w, b, x, r);
        /* every other micro-kernel pinned before load: the GEMM's packing */
        const char *names[4];
        size_t n = gemm_kernel_names(names, 4);
        for (size_t i = 0; i < n; i++)
            if (strcmp(names[i], first) != 0 && gemm_use_kernel(names[i]))
                check_loaded(c, buf, len, fused, fused_len, w, b, x, r);
        CHECK(gemm_use_kernel(first));
    }
    free(fused);
    free(buf);
    free(r);
    free(w);
    free(b);
    free(x);
}

static void test_small_plane_convs_through_the_patch_tile_match_the_definition(void)
{
    /* channels, out channels, size, kernel, stride, pad */
    const conv_case cases[] = {
        {64, 70, 7, 3, 1, 1},  /* 49 positions, K = 576, a ragged block of 6 */
        {60, 64, 14, 3, 2, 1}, /* stride 2 onto 7x7, K = 540 */
        {24, 80, 6, 5, 1, 2},  /* a 5x5 kernel, 36 positions, K = 600 */
        {57, 66, 9, 3, 2, 0},  /* unpadded stride 2 onto 4x4, K = 513 */
        {11, 96, 7, 7, 1, 3},  /* a 7x7 kernel, K = 539, three whole blocks */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check_case(&cases[i]);
}

int main(void)
{
    RUN(test_small_plane_convs_through_the_patch_tile_match_the_definition);
    TEST_MAIN_END();
}
