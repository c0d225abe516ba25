/*
 * pipeline_describe.c — a loaded pipeline as text for `inferd pipeline
 * check` (one step a line, children indented, with the types validation
 * found) or as a Graphviz digraph (--dot).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline_internal.h"
#include "tensor_json.h"

static const char *const kind_names[] = {"model", "remote", "sequence", "parallel", "switch"};
static const char *const combine_names[] = {"concat", "mean", "vote", "max_score", "object"};

/* "float32[?,4]" */
static const char *type_text(const ifd_type_info *t, char *buf, size_t n)
{
    char shape[96];
    if (t->kind != IFD_VALUE_TENSOR)
        return ifd_type_name(t, buf, n);
    snprintf(buf, n, "%s%s", ifd_dtype_name(t->dtype), t->rank < 0 ? "" : type_shape_string(t, shape, sizeof(shape)));
    return buf;
}

static void outputs_text(FILE *out, const step *s)
{
    fputs(" ->", out);
    if (!s->n_outputs)
        fputs(" (outputs known when the remote answers)", out);
    for (size_t i = 0; i < s->n_outputs; i++) {
        char type[128];
        fprintf(out, "%s %s %s", i ? "," : "", s->outputs[i].name, type_text(&s->outputs[i].type, type, sizeof(type)));
    }
}

static void describe_text(FILE *out, const step *s, int depth, const char *prefix)
{
    fprintf(out, "%*s%s%s [%s]", depth * 2, "", prefix, s->name, kind_names[s->kind]);
    if (s->kind == STEP_MODEL)
        fprintf(out, " model %s%s%s", s->model, s->version ? " version " : "", s->version ? s->version : "");
    if (s->kind == STEP_REMOTE)
        fprintf(out, " %s/v2/models/%s", remote_endpoint_url(s->remote), remote_endpoint_model(s->remote));
    if (s->kind == STEP_PARALLEL)
        fprintf(out, " combine %s", combine_names[s->combine]);
    if (s->kind == STEP_SWITCH)
        fprintf(out, " on %s", s->on);
    for (size_t i = 0; i < s->n_map; i++)
        fprintf(out, "%s%s<-%s", i ? ", " : " map ", s->map[i].input, s->map[i].value);
    outputs_text(out, s);
    fputc('\n', out);
    for (size_t i = 0; i < s->n_steps; i++)
        describe_text(out, s->steps[i], depth + 1, "");
    for (size_t i = 0; i < s->n_branches; i++) {
        char tag[300];
        snprintf(tag, sizeof(tag), "branch %s%s: ", s->branches[i].label, s->branches[i].optional ? " (optional)" : "");
        describe_text(out, s->branches[i].step, depth + 1, tag);
    }
    for (size_t i = 0; i < s->n_cases; i++) {
        char tag[300];
        const switch_case *c = &s->cases[i];
        if (c->test == SWITCH_DEFAULT)
            snprintf(tag, sizeof(tag), "default: ");
        else if (c->test == SWITCH_EQUALS && json_is_string(c->equals))
            snprintf(tag, sizeof(tag), "when == \"%s\": ", json_string_value(c->equals));
        else if (c->test == SWITCH_EQUALS)
            snprintf(tag, sizeof(tag), "when == %lld: ", (long long)json_integer_value(c->equals));
        else
            snprintf(tag, sizeof(tag), "when [%d] %s %g: ", s->on_index, c->test == SWITCH_ABOVE ? ">" : "<",
                     c->threshold);
        describe_text(out, c->step, depth + 1, tag);
    }
}

static void dot_label(FILE *out, const char *text)
{
    for (; *text; text++) {
        if (*text == '"' || *text == '\\')
            fputc('\\', out);
        fputc(*text, out);
    }
}

/* A node id that stays the same from run to run: the step's index. */
static size_t node(const pipeline *p, const step *s)
{
    size_t i = 0;
    while (i < p->n_steps && p->steps[i] != s)
        i++;
    return i;
}

/* Steps are nodes; edges say what runs after (sequence) or beside
 * (branches, cases) what. A step used twice is drawn once. */
static void describe_dot(FILE *out, const pipeline *p, const step *s, bool *drawn)
{
    if (drawn[node(p, s)])
        return;
    drawn[node(p, s)] = true;
    fprintf(out, "  s%zu [label=\"", node(p, s));
    dot_label(out, s->name);
    fprintf(out, "\\n%s", kind_names[s->kind]);
    if (s->kind == STEP_MODEL) {
        fputs(": ", out);
        dot_label(out, s->model);
    }
    if (s->kind == STEP_PARALLEL)
        fprintf(out, ": %s", combine_names[s->combine]);
    fprintf(out, "\", shape=%s];\n", s->kind == STEP_MODEL || s->kind == STEP_REMOTE ? "box" : "ellipse");
    for (size_t i = 0; i < s->n_steps; i++) {
        fprintf(out, "  s%zu -> s%zu [label=\"%zu\"];\n", node(p, s), node(p, s->steps[i]), i + 1);
        describe_dot(out, p, s->steps[i], drawn);
    }
    for (size_t i = 0; i < s->n_branches; i++) {
        fprintf(out, "  s%zu -> s%zu [label=\"", node(p, s), node(p, s->branches[i].step));
        dot_label(out, s->branches[i].label);
        fprintf(out, "\"%s];\n", s->branches[i].optional ? ", style=dashed" : "");
        describe_dot(out, p, s->branches[i].step, drawn);
    }
    for (size_t i = 0; i < s->n_cases; i++) {
        fprintf(out, "  s%zu -> s%zu [label=\"case %zu\"];\n", node(p, s), node(p, s->cases[i].step), i);
        describe_dot(out, p, s->cases[i].step, drawn);
    }
}

char *pipeline_describe(const pipeline *p, bool dot)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    if (!out)
        return NULL;
    if (dot) {
        fputs("digraph \"", out);
        dot_label(out, p->name);
        fputs("\" {\n  rankdir=LR;\n", out);
        bool *drawn = calloc(p->n_steps + 1, sizeof(*drawn));
        if (drawn)
            describe_dot(out, p, p->root, drawn);
        free(drawn);
        fputs("}\n", out);
    } else {
        fprintf(out, "pipeline %s\n  inputs:", p->name);
        for (size_t i = 0; i < p->n_inputs; i++) {
            char type[128];
            fprintf(out, "%s %s %s", i ? "," : "", p->inputs[i].name, type_text(&p->inputs[i].type, type, sizeof(type)));
        }
        fputs("\n  outputs:", out);
        for (size_t i = 0; i < p->n_outputs; i++) {
            char type[128];
            fprintf(out, "%s %s %s", i ? "," : "", p->outputs[i].name, type_text(&p->outputs[i].type, type, sizeof(type)));
        }
        fputs("\n  steps:\n", out);
        describe_text(out, p->root, 2, "");
    }
    fclose(out);
    return text;
}
