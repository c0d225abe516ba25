/*
 * ops/detection.c — NonMaxSuppression (10, 11; onnx 1.12 Operators.md), the
 * last step of object detectors.
 *
 * For each batch and class, boxes scoring above score_threshold are taken
 * greedily by score (ties by lower box index, as ONNX Runtime orders them);
 * each taken box suppresses the remaining ones whose intersection over union
 * with it exceeds iou_threshold; at most max_output_boxes_per_class are taken
 * (0, the default, takes none). Boxes are corners [y1, x1, y2, x2] in either
 * diagonal order (center_point_box 0) or [x_center, y_center, width, height]
 * (1). Boxes of zero area never suppress or are suppressed. The output lists
 * (batch, class, box) per selection, batch by batch, class by class, in
 * selection order.
 *
 * RoiAlign (10; 16 adds coordinate_transformation_mode — onnx 1.12
 * Operators.md) pools each region of interest into output_height x
 * output_width bins, averaging (or taking the max of) bilinear samples on a
 * sampling_ratio x sampling_ratio grid per bin (adaptive ceil(roi/bins) when
 * 0). "half_pixel" (16's default) shifts coordinates by -0.5 and lets a
 * region be smaller than a pixel; "output_half_pixel" (RoiAlign-10's only
 * behaviour) does not shift and clamps the region to at least 1x1. Samples
 * more than a pixel outside the image count as 0. "max" keeps ONNX Runtime's
 * reading, the largest of the four weighted corner terms of each sample
 * (not the max of interpolated values), so results match the reference
 * runtime exactly.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "op_util.h"

static int nms_prepare(op_node *node, ifd_error *err)
{
    const value_info *boxes = node->inputs[0], *scores = node->inputs[1];
    if (boxes->dtype != IFD_FLOAT || scores->dtype != IFD_FLOAT)
        return op_prepare_fail(node, err, "boxes and scores must be float32");
    for (int i = 2; i < node->n_inputs; i++) {
        const value_info *v = node->inputs[i];
        if (v && v->dtype != (i == 2 ? IFD_INT64 : IFD_FLOAT))
            return op_prepare_fail(node, err, "input %d must be %s", i, i == 2 ? "int64" : "float");
    }
    int64_t center = op_attr_int(node, "center_point_box", 0);
    if (center != 0 && center != 1)
        return op_prepare_fail(node, err, "center_point_box must be 0 or 1, not %lld",
                               (long long)center);
    int64_t *state = malloc(sizeof(*state));
    if (!state)
        return op_prepare_fail(node, err, "out of memory");
    *state = center;
    node->state = state;
    int64_t dims[2] = {-1, 3};
    set_output(node, 0, IFD_INT64, 2, dims);
    return 0;
}

typedef struct corner_box {
    float y1, x1, y2, x2, area;
} corner_box;

static corner_box to_corners(const float *b, bool center)
{
    corner_box c;
    if (center) {
        c.x1 = b[0] - b[2] / 2, c.x2 = b[0] + b[2] / 2;
        c.y1 = b[1] - b[3] / 2, c.y2 = b[1] + b[3] / 2;
    } else {
        c.y1 = b[0] < b[2] ? b[0] : b[2], c.y2 = b[0] < b[2] ? b[2] : b[0];
        c.x1 = b[1] < b[3] ? b[1] : b[3], c.x2 = b[1] < b[3] ? b[3] : b[1];
    }
    c.area = (c.y2 - c.y1) * (c.x2 - c.x1);
    return c;
}

static bool suppresses(const corner_box *a, const corner_box *b, float iou_threshold)
{
    if (a->area <= 0 || b->area <= 0)
        return false;
    float y1 = a->y1 > b->y1 ? a->y1 : b->y1, y2 = a->y2 < b->y2 ? a->y2 : b->y2;
    float x1 = a->x1 > b->x1 ? a->x1 : b->x1, x2 = a->x2 < b->x2 ? a->x2 : b->x2;
    float inter = (y2 > y1 ? y2 - y1 : 0) * (x2 > x1 ? x2 - x1 : 0);
    float iou = inter / (a->area + b->area - inter);
    return iou > iou_threshold;
}

typedef struct candidate {
    float score;
    int64_t index;
} candidate;

static int by_score(const void *a, const void *b)
{
    const candidate *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

static int nms_run(op_ctx *ctx)
{
    bool center = *(const int64_t *)ctx->node->state != 0;
    const ifd_tensor *boxes = op_input(ctx, 0), *scores = op_input(ctx, 1);
    const ifd_tensor *max_t = input_tensor(ctx, 2), *iou_t = input_tensor(ctx, 3);
    const ifd_tensor *score_t = input_tensor(ctx, 4);
    if (boxes->rank != 3 || boxes->dims[2] != 4 || scores->rank != 3 ||
        scores->dims[0] != boxes->dims[0] || scores->dims[2] != boxes->dims[1])
        return op_fail(ctx, "boxes must be [batches, boxes, 4] and scores [batches, classes, "
                       "boxes] with the same batches and boxes");
    int64_t batches = boxes->dims[0], n = boxes->dims[1], classes = scores->dims[1];
    int64_t max_out = max_t && ifd_tensor_count(max_t) ? tensor_get_int64(max_t, 0) : 0;
    float iou = iou_t && ifd_tensor_count(iou_t) ? ((const float *)iou_t->data)[0] : 0.0f;
    bool use_score = score_t && ifd_tensor_count(score_t);
    float min_score = use_score ? ((const float *)score_t->data)[0] : 0.0f;
    if (iou < 0 || iou > 1)
        return op_fail(ctx, "iou_threshold %g is outside [0, 1]", (double)iou);
    if (max_out < 0)
        max_out = 0;
    if (max_out > n)
        max_out = n;
    candidate *cand = op_scratch(ctx, (size_t)(n + 1) * sizeof(*cand));
    corner_box *box = op_scratch(ctx, (size_t)(n + 1) * sizeof(*box));
    int64_t *taken = op_scratch(ctx, (size_t)(n + 1) * sizeof(*taken));
    int64_t cap = batches * classes * max_out;
    int64_t *sel = op_scratch(ctx, (size_t)(cap * 3 + 1) * sizeof(*sel));
    if (!cand || !box || !taken || !sel)
        return -1;
    int64_t n_sel = 0;
    for (int64_t b = 0; b < batches; b++) {
        for (int64_t i = 0; i < n; i++)
            box[i] = to_corners((const float *)boxes->data + (b * n + i) * 4, center);
        for (int64_t c = 0; c < classes && max_out > 0; c++) {
            const float *s = (const float *)scores->data + (b * classes + c) * n;
            int64_t m = 0, n_taken = 0;
            for (int64_t i = 0; i < n; i++)
                if (!use_score || s[i] > min_score)
                    cand[m++] = (candidate){s[i], i};
            qsort(cand, (size_t)m, sizeof(*cand), by_score);
            for (int64_t k = 0; k < m && n_taken < max_out; k++) {
                bool keep = true;
                for (int64_t t = 0; t < n_taken && keep; t++)
                    keep = !suppresses(&box[taken[t]], &box[cand[k].index], iou);
                if (!keep)
                    continue;
                taken[n_taken++] = cand[k].index;
                sel[n_sel * 3] = b, sel[n_sel * 3 + 1] = c, sel[n_sel * 3 + 2] = cand[k].index;
                n_sel++;
            }
        }
    }
    int64_t dims[2] = {n_sel, 3};
    ifd_tensor *y = op_output(ctx, 0, IFD_INT64, 2, dims);
    if (!y)
        return -1;
    if (n_sel)
        memcpy(y->data, sel, (size_t)n_sel * 3 * sizeof(int64_t));
    return 0;
}


/* ---- RoiAlign --------------------------------------------------------------- */

typedef struct roi_align_state {
    bool max_mode, half_pixel;
    int64_t out_h, out_w, sampling_ratio;
    double spatial_scale;
} roi_align_state;

static int roi_align_prepare(op_node *node, ifd_error *err)
{
    for (int i = 0; i < 3; i++)
        if (check_input_tensor(node, i, err) != 0)
            return -1;
    const value_info *x = node->inputs[0], *rois = node->inputs[1], *idx = node->inputs[2];
    if (x->dtype != IFD_FLOAT && x->dtype != IFD_DOUBLE && x->dtype != IFD_FLOAT16)
        return op_prepare_fail(node, err, "X has dtype %s; float16, float or double expected",
                               ifd_dtype_name(x->dtype));
    if (rois->dtype != x->dtype)
        return op_prepare_fail(node, err, "rois has dtype %s; X's %s expected",
                               ifd_dtype_name(rois->dtype), ifd_dtype_name(x->dtype));
    if (idx->dtype != IFD_INT64)
        return op_prepare_fail(node, err, "batch_indices has dtype %s; int64 expected",
                               ifd_dtype_name(idx->dtype));
    if (x->rank >= 0 && x->rank != 4)
        return op_prepare_fail(node, err, "X has rank %d; [N, C, H, W] expected", x->rank);
    roi_align_state *st = calloc(1, sizeof(*st));
    if (!st)
        return op_prepare_fail(node, err, "out of memory");
    node->state = st;
    const char *mode = op_attr_string(node, "mode", "avg");
    if (strcmp(mode, "max") == 0)
        st->max_mode = true;
    else if (strcmp(mode, "avg") != 0)
        return op_prepare_fail(node, err, "mode '%s' is not 'avg' or 'max'", mode);
    const char *ctm = node->version >= 16
                          ? op_attr_string(node, "coordinate_transformation_mode", "half_pixel")
                          : "output_half_pixel";
    if (strcmp(ctm, "half_pixel") == 0)
        st->half_pixel = true;
    else if (strcmp(ctm, "output_half_pixel") != 0)
        return op_prepare_fail(node, err, "coordinate_transformation_mode '%s' is not "
                               "'half_pixel' or 'output_half_pixel'", ctm);
    st->out_h = op_attr_int(node, "output_height", 1);
    st->out_w = op_attr_int(node, "output_width", 1);
    st->sampling_ratio = op_attr_int(node, "sampling_ratio", 0);
    st->spatial_scale = op_attr_float(node, "spatial_scale", 1.0f);
    if (st->out_h < 1 || st->out_w < 1 || st->out_h > (1 << 20) || st->out_w > (1 << 20))
        return op_prepare_fail(node, err, "output_height %lld and output_width %lld must be "
                               "positive", (long long)st->out_h, (long long)st->out_w);
    if (st->sampling_ratio < 0 || st->sampling_ratio > 1024)
        return op_prepare_fail(node, err, "sampling_ratio %lld is out of range",
                               (long long)st->sampling_ratio);
    int64_t dims[4] = {rois->rank == 2 ? rois->dims[0] : -1, x->rank == 4 ? x->dims[1] : -1,
                       st->out_h, st->out_w};
    set_output(node, 0, x->dtype, 4, dims);
    return 0;
}

static int roi_align_run(op_ctx *ctx)
{
    const roi_align_state *st = ctx->node->state;
    const ifd_tensor *x = op_input(ctx, 0), *rois = op_input(ctx, 1), *idx = op_input(ctx, 2);
    if (x->rank != 4)
        return op_fail(ctx, "X has rank %d; [N, C, H, W] expected", x->rank);
    if (rois->rank != 2 || rois->dims[1] != 4)
        return op_fail(ctx, "rois must be [num_rois, 4]");
    int64_t num_rois = rois->dims[0];
    if (idx->rank != 1 || idx->dims[0] != num_rois)
        return op_fail(ctx, "batch_indices must be [%lld], one per roi", (long long)num_rois);
    int64_t batch = x->dims[0], channels = x->dims[1], height = x->dims[2], width = x->dims[3];
    int64_t dims[4] = {num_rois, channels, st->out_h, st->out_w};
    ifd_tensor *y = op_output(ctx, 0, x->dtype, 4, dims);
    if (!y)
        return -1;
    const int64_t *batch_of = idx->data;
    double offset = st->half_pixel ? 0.5 : 0.0;
    for (int64_t n = 0; n < num_rois; n++) {
        int64_t b = batch_of[n];
        if (b < 0 || b >= batch)
            return op_fail(ctx, "batch_indices[%lld] = %lld is outside [0, %lld)", (long long)n,
                           (long long)b, (long long)batch);
        double start_w = tensor_get_double(rois, (size_t)(n * 4)) * st->spatial_scale - offset;
        double start_h = tensor_get_double(rois, (size_t)(n * 4 + 1)) * st->spatial_scale - offset;
        double end_w = tensor_get_double(rois, (size_t)(n * 4 + 2)) * st->spatial_scale - offset;
        double end_h = tensor_get_double(rois, (size_t)(n * 4 + 3)) * st->spatial_scale - offset;
        double roi_w = end_w - start_w, roi_h = end_h - start_h;
        if (!st->half_pixel) {
            roi_w = roi_w > 1.0 ? roi_w : 1.0;
            roi_h = roi_h > 1.0 ? roi_h : 1.0;
        }
        if (!isfinite(roi_w) || !isfinite(roi_h))
            return op_fail(ctx, "roi %lld has non-finite coordinates", (long long)n);
        double bin_h = roi_h / (double)st->out_h, bin_w = roi_w / (double)st->out_w;
        int64_t grid_h = st->sampling_ratio > 0 ? st->sampling_ratio : (int64_t)ceil(roi_h / (double)st->out_h);
        int64_t grid_w = st->sampling_ratio > 0 ? st->sampling_ratio : (int64_t)ceil(roi_w / (double)st->out_w);
        if (grid_h > 4096 || grid_w > 4096)
            return op_fail(ctx, "roi %lld needs a %lldx%lld sampling grid per bin; at most 4096",
                           (long long)n, (long long)grid_h, (long long)grid_w);
        if (grid_h < 0)
            grid_h = 0;
        if (grid_w < 0)
            grid_w = 0;
        double count = grid_h * grid_w > 0 ? (double)(grid_h * grid_w) : 1.0;
        for (int64_t c = 0; c < channels; c++) {
            size_t plane = (size_t)((b * channels + c) * height * width);
            for (int64_t ph = 0; ph < st->out_h; ph++) {
                for (int64_t pw = 0; pw < st->out_w; pw++) {
                    double acc = 0.0;
                    bool have = false;
                    for (int64_t iy = 0; iy < grid_h; iy++) {
                        double yy = start_h + (double)ph * bin_h +
                                    ((double)iy + 0.5) * bin_h / (double)grid_h;
                        for (int64_t ix = 0; ix < grid_w; ix++) {
                            double xx = start_w + (double)pw * bin_w +
                                        ((double)ix + 0.5) * bin_w / (double)grid_w;
                            double v1 = 0, v2 = 0, v3 = 0, v4 = 0, w1 = 0, w2 = 0, w3 = 0, w4 = 0;
                            if (!(yy < -1.0 || yy > (double)height || xx < -1.0 ||
                                  xx > (double)width)) {
                                double yv = yy <= 0 ? 0 : yy, xv = xx <= 0 ? 0 : xx;
                                int64_t y0 = (int64_t)yv, x0 = (int64_t)xv, y1, x1;
                                if (y0 >= height - 1) {
                                    y0 = y1 = height - 1;
                                    yv = (double)y0;
                                } else {
                                    y1 = y0 + 1;
                                }
                                if (x0 >= width - 1) {
                                    x0 = x1 = width - 1;
                                    xv = (double)x0;
                                } else {
                                    x1 = x0 + 1;
                                }
                                double ly = yv - (double)y0, lx = xv - (double)x0;
                                double hy = 1.0 - ly, hx = 1.0 - lx;
                                w1 = hy * hx, w2 = hy * lx, w3 = ly * hx, w4 = ly * lx;
                                v1 = tensor_get_double(x, plane + (size_t)(y0 * width + x0));
                                v2 = tensor_get_double(x, plane + (size_t)(y0 * width + x1));
                                v3 = tensor_get_double(x, plane + (size_t)(y1 * width + x0));
                                v4 = tensor_get_double(x, plane + (size_t)(y1 * width + x1));
                            }
                            if (st->max_mode) {
                                double v = fmax(fmax(fmax(w1 * v1, w2 * v2), w3 * v3), w4 * v4);
                                acc = have ? fmax(acc, v) : v;
                                have = true;
                            } else {
                                acc += w1 * v1 + w2 * v2 + w3 * v3 + w4 * v4;
                            }
                        }
                    }
                    size_t at = (size_t)(((n * channels + c) * st->out_h + ph) * st->out_w + pw);
                    tensor_set_double(y, at, st->max_mode ? acc : acc / count);
                }
            }
        }
    }
    return 0;
}

static const op_def defs[] = {
    {"", "NonMaxSuppression", 10, 11, nms_prepare, nms_run, free},
    {"", "RoiAlign", 10, 21, roi_align_prepare, roi_align_run, free},
};

OP_FAMILY(ops_detection, defs);
