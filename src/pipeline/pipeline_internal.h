/*
 * pipeline_internal.h — the step tree shared by the loader
 * (pipeline_load.c), the runner (pipeline_run.c), the remote client
 * (remote.c) and the descriptions (pipeline_describe.c). Not for the HTTP
 * layer: it sees pipeline.h only.
 */
#ifndef INFERD_PIPELINE_PIPELINE_INTERNAL_H
#define INFERD_PIPELINE_PIPELINE_INTERNAL_H

#include <pthread.h>

#include "pipeline.h"
#include "remote.h"
#include "step_stats.h"

typedef enum step_kind { STEP_MODEL, STEP_REMOTE, STEP_SEQUENCE, STEP_PARALLEL, STEP_SWITCH } step_kind;

typedef enum combine_kind {
    COMBINE_CONCAT,    /* branch outputs joined along an axis */
    COMBINE_MEAN,      /* element-wise mean */
    COMBINE_VOTE,      /* per row, the most frequent argmax (ties: the lowest class) */
    COMBINE_MAX_SCORE, /* per row, the branch with the highest score: its label and score */
    COMBINE_OBJECT,    /* every branch's outputs, named "<branch>.<output>" */
} combine_kind;

/* The step input `input` is fed by the value named `value`. */
typedef struct input_map {
    char *input, *value;
} input_map;

/* A value's declared type as validation tracks it; rank < 0: unknown
 * (a remote step whose metadata could not be read), dims < 0: any. */
typedef struct value_spec {
    char *name;
    ifd_type_info type;
} value_spec;

typedef struct step step;

typedef struct branch {
    step *step;
    char *label;       /* its name in combined answers; the step's name by default */
    bool optional;     /* a failure leaves it out (flagged) instead of failing the request */
} branch;

typedef enum switch_test { SWITCH_EQUALS, SWITCH_ABOVE, SWITCH_BELOW, SWITCH_DEFAULT } switch_test;

typedef struct switch_case {
    switch_test test;
    json_t *equals;    /* SWITCH_EQUALS: a string or an integer */
    double threshold;  /* SWITCH_ABOVE / SWITCH_BELOW */
    step *step;
} switch_case;

struct step {
    char *name;
    step_kind kind;
    input_map *map;
    size_t n_map;
    /* model */
    char *model, *version;
    /* remote */
    remote_endpoint *remote;
    /* sequence, parallel */
    step **steps;
    size_t n_steps;
    branch *branches;
    size_t n_branches;
    combine_kind combine;
    char *combine_output;   /* which output of each branch is combined ("" : its first) */
    int axis;               /* concat */
    int score_index;        /* max_score: the column that scores a branch ("yes") */
    char *result_name;      /* concat/mean/vote output name; max_score: prefix of label/score */
    /* switch */
    char *on;               /* the value the cases test */
    int on_index;           /* column of `on` a threshold reads */
    switch_case *cases;
    size_t n_cases;
    /* what validation learned */
    value_spec *outputs;    /* what the step adds to the values */
    size_t n_outputs;
    step_stats *stats;
    int visiting;           /* cycle detection while loading */
    bool validated;
};

struct pipeline {
    char *name;
    step **steps;           /* every step, owned */
    size_t n_steps;
    step *root;
    ifd_io_info *inputs, *outputs;
    size_t n_inputs, n_outputs;
    json_t *labels;         /* of the last model step, or NULL */
    int refs;               /* atomic */
};

void value_spec_free(value_spec *specs, size_t count);
/* The value that feeds a step's input: its "map" entry, or the input's own name. */
const char *step_input_value(const step *s, const char *input);

#endif /* INFERD_PIPELINE_PIPELINE_INTERNAL_H */
