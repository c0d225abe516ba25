/*
 * top_k.c — a classifier's answer as people want it: the k most probable
 * classes with their label. Models differ in what they output (logits,
 * probabilities, both), so the class scores are chosen by a stated rule
 * (image_input.h) rather than by output name.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image_input.h"

/* The class count of a float output shaped [N, K] (row < N) or [K]
 * (row 0), else 0. */
static size_t class_count(const ifd_value *v, size_t row)
{
    if (!v || v->kind != IFD_VALUE_TENSOR || (v->tensor.dtype != IFD_FLOAT && v->tensor.dtype != IFD_DOUBLE))
        return 0;
    const ifd_tensor *t = &v->tensor;
    if (t->rank == 1 && t->dims[0] > 0 && row == 0)
        return (size_t)t->dims[0];
    if (t->rank == 2 && t->dims[0] > 0 && (uint64_t)row < (uint64_t)t->dims[0] && t->dims[1] > 0)
        return (size_t)t->dims[1];
    return 0;
}

static double element(const ifd_tensor *t, size_t i)
{
    return t->dtype == IFD_FLOAT ? (double)((const float *)t->data)[i] : ((const double *)t->data)[i];
}

static bool are_probabilities(const ifd_tensor *t, size_t first, size_t k)
{
    double sum = 0;
    for (size_t i = 0; i < k; i++) {
        double p = element(t, first + i);
        if (!(p >= 0 && p <= 1))
            return false;
        sum += p;
    }
    return fabs(sum - 1) <= 1e-3;
}

size_t image_top_k(const ifd_model *model, const ifd_value *const *outputs, size_t row, const json_t *labels,
                   size_t k, image_class_score *out, char *err, size_t n)
{
    size_t count = ifd_model_output_count(model), chosen = count, classes = 0;
    bool softmax = false;
    for (size_t o = 0; o < count && chosen == count; o++) {
        size_t c = class_count(outputs[o], row);
        if (c && are_probabilities(&outputs[o]->tensor, row * c, c)) {
            chosen = o;
            classes = c;
        }
    }
    for (size_t o = 0; o < count && chosen == count; o++) {
        size_t c = class_count(outputs[o], row);
        if (c) {
            chosen = o;
            classes = c;
            softmax = true;
        }
    }
    if (chosen == count) {
        snprintf(err, n, "the model has no output of class scores for row %zu (a float tensor shaped [N, K] or [K])",
                 row);
        return 0;
    }
    double *p = malloc(classes * sizeof(*p));
    bool *taken = calloc(classes, sizeof(*taken));
    if (!p || !taken) {
        free(p);
        free(taken);
        snprintf(err, n, "out of memory ranking %zu classes", classes);
        return 0;
    }
    const ifd_tensor *t = &outputs[chosen]->tensor;
    double max = -INFINITY, sum = 0;
    for (size_t i = 0; i < classes; i++) {
        p[i] = element(t, row * classes + i);
        if (p[i] > max)
            max = p[i];
    }
    if (softmax) {
        for (size_t i = 0; i < classes; i++)
            sum += (p[i] = exp(p[i] - max));
        for (size_t i = 0; i < classes; i++)
            p[i] /= sum;
    }
    if (k > classes)
        k = classes;
    /* k is small: selection by repeated scans keeps ties in index order */
    for (size_t r = 0; r < k; r++) {
        size_t best = classes;
        for (size_t i = 0; i < classes; i++)
            if (!taken[i] && (best == classes || p[i] > p[best] || (isnan(p[best]) && !isnan(p[i]))))
                best = i;
        taken[best] = true;
        char key[32];
        snprintf(key, sizeof(key), "%zu", best);
        const json_t *label = labels ? json_object_get(labels, key) : NULL;
        out[r] = (image_class_score){.index = (int64_t)best, .probability = p[best],
                                     .label = json_is_string(label) ? json_string_value(label) : NULL};
    }
    free(taken);
    free(p);
    return k;
}

json_t *image_scores_json(const image_class_score *scores, size_t count)
{
    json_t *list = json_array();
    for (size_t i = 0; list && i < count; i++)
        json_array_append_new(list, json_pack("{s:I, s:o, s:f}", "index", (json_int_t)scores[i].index, "label",
                                              scores[i].label ? json_string(scores[i].label) : json_null(),
                                              "probability", scores[i].probability));
    return list;
}
