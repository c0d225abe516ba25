/*
 * optimize/fuse_inverted_residual.c — the load-time pass that turns
 * MobileNetV2's inverted-residual block, as the kernel fusions leave it,
 *
 *   Conv 1x1 (+ Relu/Clip) -> depthwise Conv (+ Relu/Clip) -> Conv 1x1 (+ residual)
 *
 * into one InvertedResidual node (ops/inverted_residual.c) that computes
 * it a band of output rows at a time, so the expanded tensors (6x the
 * block's channels) stay in cache instead of going through memory twice
 * each. It runs at graph_opt ALL after optimize_fuse_kernels, whose
 * BatchNormalization folds, clamps and residual Adds it takes over as
 * they are.
 *
 * Only blocks whose expanded tensor is large take it: over small planes
 * the layer-by-layer kernels already work from L2 (and the 14x14 and 7x7
 * projections have their own tile, kernels/pointwise_small.h), while the
 * band loop's halo rows and per-band calls cost a little. The pointwise
 * Convs must hold their weights for the AVX-512 direct tile (what ops/
 * conv.c chooses for planes of at least 28x28 on such CPUs); elsewhere the
 * graph stays as it is. A chain is followed only through values read by
 * exactly one node and not graph outputs.
 *
 * The blocks left layer by layer then lose their depthwise Conv and
 * projection to one InvertedResidual node without an expand (kernels/
 * depthwise_project.h):
 * each thread computes the depthwise rows of its own output positions and
 * projects them, so the projection's input stays in that core's cache.
 */
#include <stdlib.h>
#include <string.h>

#include "../ops/fusable.h"
#include "optimize.h"

/* Expanded tensor of one image from which a block is fused: MobileNetV2's
 * 112x112x96 and 56x56x144 blocks (4.8 and 1.8 MB), not its 28x28x192
 * ones (0.6 MB, which L2 holds layer by layer). Measured on each block
 * alone as a model (bench_inferd, 1 thread, median CPU us per run of 5
 * alternated runs, loaded 2-core VM), unfused -> fused: 112x112 16->96->24
 * stride 2 1320 -> 955, 56x56 24->144->24 + residual 791 -> 694, 56x56
 * 24->144->32 stride 2 482 -> 460, 28x28 32->192->32 + residual 263 -> 281. */
#define MIN_EXPANDED_BYTES (1024u << 10)
/* Output planes over which a stride-1 depthwise Conv and the projection
 * after it become one node: MobileNetV2's 112x112 pair, its 28x28, 14x14
 * and 7x7 blocks. Per block, the best of 3 x 4 s of batch-1 runs in the model
 * (per-node timer, loaded 2-core VM), 2 threads, layer by layer -> fused:
 * 28x28 192->32 + residual 174 -> 160 and 161 -> 147 us (whole block with
 * its expand), 14x14 384->64 + residual 131 -> 115, 128 -> 115, 129 ->
 * 112, 384->96 155 -> 131, 576->96 + residual 251 -> 220 and 247 -> 218,
 * 7x7 960->160 + residual 172 -> 162 and 170 -> 161, 960->320 235 ->
 * 223; 1 thread within 1% either way. After a stride-2 depthwise Conv
 * (28x28 -> 14x14 and 14x14 -> 7x7) fusing measured 4-10 us slower at 2
 * threads, so those stay layers. MobileNetV2's 112x112 32->16 pair fuses
 * too since its D is computed in bands when large and each thread's Y
 * rows are written last to first (kernels/depthwise_project.c): node
 * medians of 5-6 alternated runs (bench_inferd --profile, chrt), layers ->
 * fused, 171 -> 160 us at 2 threads, 289 -> 261 at 1, 2330 -> 2140 at
 * batch 8 (2 threads); the block after it (features.2) no slower. An
 * earlier version without the reversed order measured 261 -> 267 at 1
 * thread. Larger planes stay layers (none measured). */
#define MIN_PAIR_PLANE 49
#define MAX_PAIR_PLANE (112 * 112)

static bool is_conv(const model_node *node)
{
    return node->op.domain[0] == '\0' && strcmp(node->op.op_type, "Conv") == 0 &&
           node->op.n_outputs == 1 && node->op.n_implicit == 0;
}

/* A dense 1x1 Conv, stride 1, unpadded, with packed weights (the direct
 * tile's or, `small`, the small-plane tile's). */
static bool pointwise(const conv_parts *p, bool small)
{
    return p->direct_small == small && p->group == 1 && p->kernel[0] == 1 &&
           p->kernel[1] == 1 && p->stride[0] == 1 && p->stride[1] == 1 && p->dilation[0] == 1 &&
           p->dilation[1] == 1 && p->pads[0] == 0 && p->pads[1] == 0 && p->pads[2] == 0 &&
           p->pads[3] == 0 && p->direct_w;
}

/* A 2-D tensor value of known image extents: [N, C, H, W]. */
static bool image_dims(const model_value *v, int64_t channels, int64_t *h, int64_t *w)
{
    const value_info *i = &v->info;
    if (i->dtype != IFD_FLOAT || i->rank != 4 || i->dims[1] != channels || i->dims[2] < 1 ||
        i->dims[3] < 1)
        return false;
    *h = i->dims[2];
    *w = i->dims[3];
    return true;
}

typedef struct chain_view {
    ifd_model *m;
    int *readers; /* per value slot: node inputs reading it, +1 if a graph output */
    int *reader;  /* per value slot: the last node reading it */
    bool *removed;
} chain_view;

static int sole_reader(const chain_view *v, int slot)
{
    if (slot < 0 || v->m->values[slot].is_graph_output || v->readers[slot] != 1)
        return -1;
    return v->reader[slot];
}

/* Node c becomes `def` with `state`, reading x (and the residual it read
 * already, when residual >= 0); the reader counts follow. */
static ifd_status become(chain_view *v, int c, const op_def *def, void *state, int x,
                         int residual, ifd_error *err)
{
    ifd_model *m = v->m;
    model_node *nc = &m->nodes[c];
    int n_inputs = residual >= 0 ? 2 : 1;
    value_info **infos = model_alloc(m, 2 * sizeof(*infos));
    int *slots = model_alloc(m, 2 * sizeof(int));
    if (!infos || !slots) {
        def->free_state(state);
        set_error(err, "out of memory fusing the block of Conv node '%s'", nc->op.name);
        return IFD_ERR_NO_MEMORY;
    }
    slots[0] = x;
    slots[1] = residual;
    infos[0] = &m->values[x].info;
    infos[1] = residual >= 0 ? &m->values[residual].info : NULL;
    for (int k = 0; k < nc->op.n_inputs; k++)
        if (nc->input_slots[k] >= 0)
            v->readers[nc->input_slots[k]]--;
    for (int k = 0; k < n_inputs; k++)
        v->readers[slots[k]]++;
    if (nc->def && nc->def->free_state)
        nc->def->free_state(nc->op.state);
    nc->op.state = state;
    nc->op.op_type = def->op_type;
    nc->op.domain = "com.microsoft";
    nc->op.version = 1;
    nc->op.n_inputs = n_inputs;
    nc->op.inputs = infos;
    nc->op.n_attrs = 0;
    nc->op.packed_inputs = 0;
    nc->input_slots = slots;
    nc->def = def;
    return IFD_OK;
}

/* The pointwise Conv c that alone reads depthwise Conv b's output of
 * `channels` planes (oh x ow), with weights in the direct tile's layout or
 * (`small`) the small-plane tile's; -1 if there is none. *residual: the
 * value c adds, or -1. */
static int projection_after(const chain_view *v, int b, size_t channels, bool small,
                            conv_parts *pc, int64_t *oh, int64_t *ow, int *residual)
{
    ifd_model *m = v->m;
    const model_node *nb = &m->nodes[b];
    int c = sole_reader(v, nb->output_slots[0]);
    if (c < 0 || v->removed[c] || !is_conv(&m->nodes[c]))
        return -1;
    const model_node *nc = &m->nodes[c];
    if (nc->input_slots[0] != nb->output_slots[0] || !conv_describe(&nc->op, pc) ||
        !pointwise(pc, small) || pc->in_channels != channels ||
        !image_dims(&m->values[nb->output_slots[0]], (int64_t)channels, oh, ow) ||
        !image_dims(&m->values[nc->output_slots[0]], (int64_t)pc->out_channels, oh, ow))
        return -1;
    *residual = pc->residual_index >= 0 ? nc->input_slots[pc->residual_index] : -1;
    return pc->residual_index >= 0 && *residual < 0 ? -1 : c;
}

/* Node n is removed: its reads go with it. */
static void drop_reads(chain_view *v, int n)
{
    const model_node *node = &v->m->nodes[n];
    for (int k = 0; k < node->op.n_inputs; k++)
        if (node->input_slots[k] >= 0)
            v->readers[node->input_slots[k]]--;
    v->removed[n] = true;
    v->m->values[node->output_slots[0]].producer = -1;
}

/* Fuse the block whose expand Conv is node a, if it is one. */
static ifd_status try_block(chain_view *v, int a, ifd_error *err)
{
    ifd_model *m = v->m;
    model_node *na = &m->nodes[a];
    conv_parts pa, pb, pc;
    if (!is_conv(na) || !conv_describe(&na->op, &pa) || !pointwise(&pa, false) ||
        pa.residual_index >= 0 || na->input_slots[0] < 0)
        return IFD_OK;
    int x = na->input_slots[0];
    int64_t h, w, oh, ow;
    if (!image_dims(&m->values[x], (int64_t)pa.in_channels, &h, &w))
        return IFD_OK;
    size_t hidden = pa.out_channels;
    if ((double)hidden * (double)h * (double)w * sizeof(float) < MIN_EXPANDED_BYTES)
        return IFD_OK;
    int b = sole_reader(v, na->output_slots[0]);
    if (b < 0 || v->removed[b] || !is_conv(&m->nodes[b]))
        return IFD_OK;
    model_node *nb = &m->nodes[b];
    if (nb->input_slots[0] != na->output_slots[0] || !conv_describe(&nb->op, &pb) ||
        !pb.depthwise_w || pb.group != hidden || pb.in_channels != hidden ||
        pb.out_channels != hidden || pb.residual_index >= 0 || pb.dilation[0] != 1 ||
        pb.dilation[1] != 1 || pb.stride[0] != pb.stride[1] || pb.pads[0] < 0 ||
        pb.pads[1] < 0 || pb.pads[2] < 0 || pb.pads[3] < 0)
        return IFD_OK;
    int residual, c = projection_after(v, b, hidden, false, &pc, &oh, &ow, &residual);
    if (c < 0)
        return IFD_OK;
    const op_def *def = op_registry_find("com.microsoft", "InvertedResidual", 1);
    void *state = def ? inverted_residual_state_new(&pa, &pb, &pc, (size_t)h, (size_t)w,
                                                    (size_t)oh, (size_t)ow, residual >= 0)
                      : NULL;
    if (!state)
        return IFD_OK;
    ifd_status st = become(v, c, def, state, x, residual, err);
    if (st != IFD_OK)
        return st;
    /* a's and b's reads go with them (x is read by c instead of a) */
    drop_reads(v, a);
    drop_reads(v, b);
    return IFD_OK;
}

/* Fuse depthwise Conv b with the small-plane pointwise Conv reading it, if
 * that is what follows it: the blocks the expanded-size rule above leaves
 * layer by layer, where the projection has the small tile's weights. */
static ifd_status try_pair(chain_view *v, int b, ifd_error *err)
{
    ifd_model *m = v->m;
    model_node *nb = &m->nodes[b];
    conv_parts pb, pc;
    if (!is_conv(nb) || !conv_describe(&nb->op, &pb) || !pb.depthwise_w ||
        pb.group != pb.in_channels || pb.out_channels != pb.in_channels ||
        pb.residual_index >= 0 || nb->input_slots[0] < 0 || pb.pads[0] < 0 || pb.pads[1] < 0 ||
        pb.pads[2] < 0 || pb.pads[3] < 0 || pb.stride[0] != 1 || pb.stride[1] != 1 ||
        pb.dilation[0] < 1 || pb.dilation[1] < 1)
        return IFD_OK;
    int x = nb->input_slots[0];
    int64_t h, w, oh, ow;
    if (!image_dims(&m->values[x], (int64_t)pb.in_channels, &h, &w))
        return IFD_OK;
    /* either tile's weights: conv_describe says which */
    int residual, c = -1;
    for (int small = 0; small < 2 && c < 0; small++)
        c = projection_after(v, b, pb.out_channels, small, &pc, &oh, &ow, &residual);
    if (c < 0 || oh * ow < MIN_PAIR_PLANE || oh * ow > MAX_PAIR_PLANE)
        return IFD_OK;
    const op_def *def = op_registry_find("com.microsoft", "InvertedResidual", 1);
    void *state = def ? depthwise_project_state_new(&pb, &pc, (size_t)h, (size_t)w, (size_t)oh,
                                                    (size_t)ow, residual >= 0)
                      : NULL;
    if (!state)
        return IFD_OK;
    ifd_status st = become(v, c, def, state, x, residual, err);
    if (st == IFD_OK)
        drop_reads(v, b);
    return st;
}

ifd_status optimize_fuse_inverted_residual(ifd_model *m, ifd_error *err)
{
    chain_view v = {.m = m};
    size_t values = m->n_values ? m->n_values : 1;
    v.readers = calloc(values, sizeof(int));
    v.reader = calloc(values, sizeof(int));
    v.removed = calloc(m->n_nodes ? m->n_nodes : 1, sizeof(bool));
    ifd_status st = IFD_OK;
    if (!v.readers || !v.reader || !v.removed) {
        set_error(err, "out of memory planning block fusions");
        st = IFD_ERR_NO_MEMORY;
    }
    for (size_t i = 0; st == IFD_OK && i < m->n_nodes; i++) {
        const model_node *node = &m->nodes[i];
        for (int k = 0; k < node->op.n_inputs + node->op.n_implicit; k++)
            if (node->input_slots[k] >= 0) {
                v.readers[node->input_slots[k]]++;
                v.reader[node->input_slots[k]] = (int)i;
            }
    }
    for (size_t i = 0; st == IFD_OK && i < m->n_nodes; i++)
        if (!v.removed[i])
            st = try_block(&v, (int)i, err);
    for (size_t i = 0; st == IFD_OK && i < m->n_nodes; i++)
        if (!v.removed[i])
            st = try_pair(&v, (int)i, err);
    if (st == IFD_OK)
        graph_drop_nodes(m, v.removed);
    free(v.readers);
    free(v.reader);
    free(v.removed);
    return st;
}
