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
 */
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

static const op_def defs[] = {
    {"", "NonMaxSuppression", 10, 11, nms_prepare, nms_run, free},
};

OP_FAMILY(ops_detection, defs);
