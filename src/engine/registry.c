/*
 * registry.c — finds the implementation of an operator. Each family file in
 * ops/ exports one op_family; this file is the only list of them. Lookup is
 * done once per node at load, so a linear scan is fine.
 */
#include <string.h>

#include "op.h"

extern const op_family ops_elementwise, ops_activation, ops_logical, ops_cast;
extern const op_family ops_shape, ops_indexing, ops_layout;
extern const op_family ops_reduce, ops_softmax, ops_normalization, ops_sort;
extern const op_family ops_loss, ops_gemm, ops_conv, ops_pool, ops_resize, ops_sequence,
    ops_control_flow, ops_recurrent, ops_quantize, ops_signal, ops_linear_algebra,
    ops_string, ops_detection, ops_grid_sample, ops_text_vectorize, ops_training, ops_random, ops_contrib_transformer, ops_contrib_quantized,
    ops_inverted_residual;
extern const op_family ops_ml_linear, ops_ml_svm, ops_ml_tree, ops_ml_preprocess,
    ops_ml_encoder, ops_ml_zipmap, ops_ml_tree_ensemble;

static const op_family *const families[] = {
    &ops_elementwise, &ops_activation, &ops_logical,   &ops_cast,
    &ops_shape,       &ops_indexing,   &ops_layout,    &ops_reduce,
    &ops_softmax,     &ops_normalization, &ops_sort,   &ops_loss,
    &ops_gemm,        &ops_conv,       &ops_pool,      &ops_resize,       &ops_sequence,
    &ops_control_flow, &ops_recurrent, &ops_quantize, &ops_signal, &ops_linear_algebra,
    &ops_string, &ops_detection, &ops_grid_sample, &ops_text_vectorize, &ops_training, &ops_random, &ops_contrib_transformer, &ops_contrib_quantized, &ops_inverted_residual,
    &ops_ml_linear,   &ops_ml_svm,
    &ops_ml_tree,     &ops_ml_preprocess, &ops_ml_encoder, &ops_ml_zipmap, &ops_ml_tree_ensemble,
};

const op_def *op_registry_find(const char *domain, const char *op_type, int version)
{
    if (strcmp(domain, "ai.onnx") == 0)
        domain = "";
    for (size_t f = 0; f < sizeof(families) / sizeof(families[0]); f++) {
        const op_family *family = families[f];
        for (size_t i = 0; i < family->count; i++) {
            const op_def *def = &family->defs[i];
            if (strcmp(def->op_type, op_type) == 0 && strcmp(def->domain, domain) == 0 &&
                def->first_version <= version && version <= def->last_version)
                return def;
        }
    }
    return NULL;
}
