/*
 * pipeline_load.c — pipeline.json to a validated step tree (pipeline.h).
 *
 * Two passes. Parsing builds the steps: named steps (the "steps" object)
 * are parsed when first referenced, so a reference to an unknown step is
 * caught and a step that is being parsed when it is referenced again
 * closes a cycle. Validation then walks the tree in the order a run will,
 * tracking the type of every value produced so far: a step's inputs must
 * exist with the dtype and shape it declares. Values the entry steps need
 * and nothing produced become the pipeline's inputs; the root step's
 * outputs are its outputs.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline_internal.h"
#include "tensor_json.h"

/* ---- small helpers ------------------------------------------------------- */

void value_spec_free(value_spec *specs, size_t count)
{
    for (size_t i = 0; specs && i < count; i++)
        free(specs[i].name);
    free(specs);
}

typedef struct spec_list {
    value_spec *items;
    size_t n, cap;
    bool open; /* a step of unknown outputs ran: a missing name may still exist */
} spec_list;

static bool spec_push(spec_list *l, const char *name, const ifd_type_info *type)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->items[i].name, name) == 0) {
            l->items[i].type = *type;
            return true;
        }
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        value_spec *grown = realloc(l->items, cap * sizeof(*grown));
        if (!grown)
            return false;
        l->items = grown;
        l->cap = cap;
    }
    l->items[l->n].name = strdup(name);
    if (!l->items[l->n].name)
        return false;
    l->items[l->n].type = *type;
    for (int d = 0; d < IFD_MAX_RANK; d++)
        l->items[l->n].type.dim_params[d] = NULL;
    l->n++;
    return true;
}

static const value_spec *spec_find(const spec_list *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->items[i].name, name) == 0)
            return &l->items[i];
    return NULL;
}

static bool spec_copy(spec_list *to, const spec_list *from)
{
    to->open = from->open;
    for (size_t i = 0; i < from->n; i++)
        if (!spec_push(to, from->items[i].name, &from->items[i].type))
            return false;
    return true;
}

static void spec_clear(spec_list *l)
{
    value_spec_free(l->items, l->n);
    memset(l, 0, sizeof(*l));
}

static const char *type_text(const ifd_type_info *t, char *buf, size_t n)
{
    if (t->rank < 0 && t->kind == IFD_VALUE_TENSOR) {
        snprintf(buf, n, "%s of any shape", ifd_dtype_name(t->dtype));
        return buf;
    }
    return ifd_type_name(t, buf, n);
}

/* Does a value of type `have` fit an input declared `need`? */
static bool type_fits(const ifd_type_info *have, const ifd_type_info *need, char *why, size_t n)
{
    char a[128], b[128];
    if (have->kind != need->kind || (have->dtype && need->dtype && have->dtype != need->dtype)) {
        snprintf(why, n, "it is %s, the input needs %s", type_text(have, a, sizeof(a)), type_text(need, b, sizeof(b)));
        return false;
    }
    if (have->kind != IFD_VALUE_TENSOR || have->rank < 0 || need->rank < 0)
        return true;
    if (have->rank != need->rank) {
        snprintf(why, n, "it has rank %d, the input needs %s", have->rank, type_text(need, b, sizeof(b)));
        return false;
    }
    for (int d = 0; d < have->rank; d++)
        if (have->dims[d] >= 0 && need->dims[d] >= 0 && have->dims[d] != need->dims[d]) {
            snprintf(why, n, "it is %s, the input needs %s (dimension %d differs)", type_text(have, a, sizeof(a)),
                     type_text(need, b, sizeof(b)), d);
            return false;
        }
    return true;
}

/* ---- parsing ------------------------------------------------------------- */

typedef struct loader {
    pipeline *p;
    const pipeline_env *env;
    const char *origin;
    json_t *named;         /* the "steps" object */
    step **named_steps;    /* parallel to the keys of `named`, NULL until parsed */
    const char **named_keys;
    size_t n_named;
    const char *path[64];  /* named steps being parsed: the cycle, when one closes */
    size_t depth;
    char *not_ready;
    size_t not_ready_size;
    char *err;
    size_t err_size;
    spec_list inputs;      /* the pipeline's inputs, found while validating */
} loader;

static void fail(loader *l, const char *step, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(loader *l, const char *step, const char *fmt, ...)
{
    char reason[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    if (step)
        snprintf(l->err, l->err_size, "%s: step '%s': %s", l->origin, step, reason);
    else
        snprintf(l->err, l->err_size, "%s: %s", l->origin, reason);
}

static step *new_step(loader *l, const char *name)
{
    step **grown = realloc(l->p->steps, (l->p->n_steps + 1) * sizeof(*grown));
    if (!grown)
        return NULL;
    l->p->steps = grown;
    step *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->name = strdup(name);
    if (!s->name) {
        free(s);
        return NULL;
    }
    l->p->steps[l->p->n_steps++] = s;
    return s;
}

static bool only_fields(loader *l, const char *step, const json_t *spec, const char *const *allowed)
{
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)spec, key, value) {
        bool known = false;
        for (size_t i = 0; allowed[i] && !known; i++)
            known = strcmp(allowed[i], key) == 0;
        if (!known) {
            fail(l, step, "unknown field \"%s\"", key);
            return false;
        }
    }
    return true;
}

static step *resolve(loader *l, const json_t *ref, const char *default_name);

static bool parse_map(loader *l, step *s, const json_t *map)
{
    if (!map)
        return true;
    if (!json_is_object(map)) {
        fail(l, s->name, "\"map\" must be an object {\"<step input>\": \"<value name>\"}");
        return false;
    }
    s->map = calloc(json_object_size(map) + 1, sizeof(*s->map));
    if (!s->map)
        return false;
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)map, key, value) {
        if (!json_is_string(value) || !*json_string_value(value)) {
            fail(l, s->name, "\"map\": \"%s\" must name a value (a string)", key);
            return false;
        }
        s->map[s->n_map].input = strdup(key);
        s->map[s->n_map].value = strdup(json_string_value(value));
        s->n_map++;
        if (!s->map[s->n_map - 1].input || !s->map[s->n_map - 1].value)
            return false;
    }
    return true;
}

static char *version_text(loader *l, step *s, const json_t *v, bool *ok)
{
    *ok = true;
    if (!v)
        return NULL;
    char text[64];
    if (json_is_integer(v) && json_integer_value(v) > 0) {
        snprintf(text, sizeof(text), "%lld", (long long)json_integer_value(v));
    } else if (json_is_string(v) && *json_string_value(v)) {
        snprintf(text, sizeof(text), "%.63s", json_string_value(v));
    } else {
        fail(l, s->name, "\"version\" must be a positive integer or a string");
        *ok = false;
        return NULL;
    }
    return strdup(text);
}

static bool parse_combine(loader *l, step *s, const json_t *c)
{
    static const char *const fields[] = {"kind", "output", "axis", "index", "name", NULL};
    if (!json_is_object(c)) {
        fail(l, s->name, "\"combine\" must be an object {\"kind\": \"concat|mean|vote|max_score|object\", ...}");
        return false;
    }
    if (!only_fields(l, s->name, c, fields))
        return false;
    static const struct {
        const char *name;
        combine_kind kind;
    } kinds[] = {{"concat", COMBINE_CONCAT}, {"mean", COMBINE_MEAN}, {"vote", COMBINE_VOTE},
                 {"max_score", COMBINE_MAX_SCORE}, {"object", COMBINE_OBJECT}};
    const char *kind = json_string_value(json_object_get(c, "kind"));
    size_t k = 0;
    while (kind && k < sizeof(kinds) / sizeof(kinds[0]) && strcmp(kinds[k].name, kind) != 0)
        k++;
    if (!kind || k == sizeof(kinds) / sizeof(kinds[0])) {
        fail(l, s->name, "combine \"kind\" must be concat, mean, vote, max_score or object (got %s)",
             kind ? kind : "nothing");
        return false;
    }
    s->combine = kinds[k].kind;
    const json_t *output = json_object_get(c, "output"), *axis = json_object_get(c, "axis"),
                 *index = json_object_get(c, "index"), *name = json_object_get(c, "name");
    if (output && (!json_is_string(output) || !*json_string_value(output))) {
        fail(l, s->name, "combine \"output\" must name the branch output to combine");
        return false;
    }
    if (axis && (!json_is_integer(axis) || json_integer_value(axis) < 0 || json_integer_value(axis) >= IFD_MAX_RANK)) {
        fail(l, s->name, "combine \"axis\" must be an integer from 0 to %d", IFD_MAX_RANK - 1);
        return false;
    }
    if (index && (!json_is_integer(index) || json_integer_value(index) < 0 || json_integer_value(index) > 1000000)) {
        fail(l, s->name, "combine \"index\" must be a non-negative integer (the score column)");
        return false;
    }
    if (name && (!json_is_string(name) || !*json_string_value(name))) {
        fail(l, s->name, "combine \"name\" must be a non-empty string");
        return false;
    }
    s->combine_output = strdup(output ? json_string_value(output) : "");
    s->axis = axis ? (int)json_integer_value(axis) : (s->combine == COMBINE_CONCAT ? 1 : 0);
    s->score_index = index ? (int)json_integer_value(index) : 0;
    s->result_name = strdup(name ? json_string_value(name) : "output");
    return s->combine_output && s->result_name;
}

static bool parse_branches(loader *l, step *s, const json_t *list)
{
    if (!json_is_array(list) || json_array_size(list) < 1) {
        fail(l, s->name, "\"branches\" must be a non-empty array");
        return false;
    }
    s->branches = calloc(json_array_size(list), sizeof(*s->branches));
    if (!s->branches)
        return false;
    for (size_t i = 0; i < json_array_size(list); i++) {
        const json_t *b = json_array_get(list, i);
        char default_name[300];
        snprintf(default_name, sizeof(default_name), "%s.%zu", s->name, i);
        const json_t *ref = b;
        const json_t *label = NULL, *optional = NULL;
        /* {"step": ..., "label": ..., "optional": ...} or the step itself */
        if (json_is_object(b) && json_object_get(b, "step")) {
            static const char *const fields[] = {"step", "label", "optional", NULL};
            if (!only_fields(l, s->name, b, fields))
                return false;
            ref = json_object_get(b, "step");
            label = json_object_get(b, "label");
            optional = json_object_get(b, "optional");
            if (label && (!json_is_string(label) || !*json_string_value(label))) {
                fail(l, s->name, "branches[%zu]: \"label\" must be a non-empty string", i);
                return false;
            }
            if (optional && !json_is_boolean(optional)) {
                fail(l, s->name, "branches[%zu]: \"optional\" must be true or false", i);
                return false;
            }
        }
        step *child = resolve(l, ref, default_name);
        if (!child)
            return false;
        s->branches[i].step = child;
        s->branches[i].label = strdup(label ? json_string_value(label) : child->name);
        s->branches[i].optional = optional && json_is_true(optional);
        s->n_branches++;
        if (!s->branches[i].label)
            return false;
        for (size_t k = 0; k < i; k++)
            if (strcmp(s->branches[k].label, s->branches[i].label) == 0) {
                fail(l, s->name, "two branches are labelled '%s'", s->branches[i].label);
                return false;
            }
    }
    return true;
}

static bool parse_cases(loader *l, step *s, const json_t *cases, const json_t *fallback)
{
    if (!json_is_array(cases) || json_array_size(cases) < 1) {
        fail(l, s->name, "\"cases\" must be a non-empty array of {\"equals\"|\"above\"|\"below\": ..., \"step\": ...}");
        return false;
    }
    size_t n = json_array_size(cases) + (fallback ? 1 : 0);
    s->cases = calloc(n, sizeof(*s->cases));
    if (!s->cases)
        return false;
    for (size_t i = 0; i < n; i++) {
        switch_case *c = &s->cases[i];
        const json_t *spec = i < json_array_size(cases) ? json_array_get(cases, i) : NULL;
        const json_t *ref = spec ? json_object_get(spec, "step") : fallback;
        char default_name[300];
        snprintf(default_name, sizeof(default_name), "%s.%s%zu", s->name, spec ? "case" : "default", i);
        if (spec) {
            static const char *const fields[] = {"equals", "above", "below", "step", NULL};
            if (!json_is_object(spec) || !ref) {
                fail(l, s->name, "cases[%zu] must be an object with a \"step\"", i);
                return false;
            }
            if (!only_fields(l, s->name, spec, fields))
                return false;
            const json_t *equals = json_object_get(spec, "equals"), *above = json_object_get(spec, "above"),
                         *below = json_object_get(spec, "below");
            if ((equals != NULL) + (above != NULL) + (below != NULL) != 1) {
                fail(l, s->name, "cases[%zu] needs exactly one of \"equals\", \"above\", \"below\"", i);
                return false;
            }
            if (equals && !json_is_string(equals) && !json_is_integer(equals)) {
                fail(l, s->name, "cases[%zu]: \"equals\" must be a string (a label) or an integer", i);
                return false;
            }
            if ((above && !json_is_number(above)) || (below && !json_is_number(below))) {
                fail(l, s->name, "cases[%zu]: \"%s\" must be a number", i, above ? "above" : "below");
                return false;
            }
            c->test = equals ? SWITCH_EQUALS : above ? SWITCH_ABOVE : SWITCH_BELOW;
            c->equals = equals ? json_incref((json_t *)equals) : NULL;
            c->threshold = above ? json_number_value(above) : below ? json_number_value(below) : 0;
        } else {
            c->test = SWITCH_DEFAULT;
        }
        c->step = resolve(l, ref, default_name);
        s->n_cases++;
        if (!c->step)
            return false;
    }
    return true;
}

static step *parse_step(loader *l, const json_t *spec, const char *name)
{
    if (!json_is_object(spec)) {
        fail(l, name, "a step must be an object with a \"kind\" or the name of a step");
        return NULL;
    }
    const char *kind = json_string_value(json_object_get(spec, "kind"));
    const json_t *given_name = json_object_get(spec, "name");
    if (given_name && (!json_is_string(given_name) || !*json_string_value(given_name))) {
        fail(l, name, "\"name\" must be a non-empty string");
        return NULL;
    }
    step *s = new_step(l, given_name ? json_string_value(given_name) : name);
    if (!s) {
        fail(l, name, "out of memory");
        return NULL;
    }
    static const char *const model_fields[] = {"kind", "name", "model", "version", "map", NULL};
    static const char *const remote_fields[] = {"kind",    "name",    "url",        "model", "version",
                                                "map",     "timeout_ms", "retries", "backoff_ms",
                                                "circuit_breaker", NULL};
    static const char *const sequence_fields[] = {"kind", "name", "steps", NULL};
    static const char *const parallel_fields[] = {"kind", "name", "branches", "combine", NULL};
    static const char *const switch_fields[] = {"kind", "name", "on", "index", "cases", "default", NULL};
    if (!kind) {
        fail(l, s->name, "\"kind\" is missing (model, remote, sequence, parallel or switch)");
        return NULL;
    }
    if (strcmp(kind, "model") == 0) {
        s->kind = STEP_MODEL;
        if (!only_fields(l, s->name, spec, model_fields))
            return NULL;
        const char *model = json_string_value(json_object_get(spec, "model"));
        if (!model || !*model) {
            fail(l, s->name, "\"model\" must name a served model");
            return NULL;
        }
        bool ok;
        s->model = strdup(model);
        s->version = version_text(l, s, json_object_get(spec, "version"), &ok);
        if (!ok || !s->model || !parse_map(l, s, json_object_get(spec, "map")))
            return NULL;
    } else if (strcmp(kind, "remote") == 0) {
        s->kind = STEP_REMOTE;
        if (!only_fields(l, s->name, spec, remote_fields))
            return NULL;
        char why[512];
        s->remote = remote_endpoint_new(spec, why, sizeof(why));
        if (!s->remote) {
            fail(l, s->name, "%s", why);
            return NULL;
        }
        if (!parse_map(l, s, json_object_get(spec, "map")))
            return NULL;
    } else if (strcmp(kind, "sequence") == 0) {
        s->kind = STEP_SEQUENCE;
        if (!only_fields(l, s->name, spec, sequence_fields))
            return NULL;
        const json_t *steps = json_object_get(spec, "steps");
        if (!json_is_array(steps) || json_array_size(steps) == 0) {
            fail(l, s->name, "\"steps\" must be a non-empty array");
            return NULL;
        }
        s->steps = calloc(json_array_size(steps), sizeof(*s->steps));
        if (!s->steps)
            return NULL;
        for (size_t i = 0; i < json_array_size(steps); i++) {
            char default_name[300];
            snprintf(default_name, sizeof(default_name), "%s.%zu", s->name, i);
            s->steps[i] = resolve(l, json_array_get(steps, i), default_name);
            if (!s->steps[i])
                return NULL;
            s->n_steps++;
        }
    } else if (strcmp(kind, "parallel") == 0) {
        s->kind = STEP_PARALLEL;
        if (!only_fields(l, s->name, spec, parallel_fields))
            return NULL;
        const json_t *combine = json_object_get(spec, "combine");
        if (!combine) {
            fail(l, s->name, "\"combine\" is missing");
            return NULL;
        }
        if (!parse_combine(l, s, combine) || !parse_branches(l, s, json_object_get(spec, "branches")))
            return NULL;
    } else if (strcmp(kind, "switch") == 0) {
        s->kind = STEP_SWITCH;
        if (!only_fields(l, s->name, spec, switch_fields))
            return NULL;
        const char *on = json_string_value(json_object_get(spec, "on"));
        const json_t *index = json_object_get(spec, "index");
        if (!on || !*on) {
            fail(l, s->name, "\"on\" must name the value the cases test");
            return NULL;
        }
        if (index && (!json_is_integer(index) || json_integer_value(index) < 0 || json_integer_value(index) > 1000000)) {
            fail(l, s->name, "\"index\" must be a non-negative integer (the column a threshold reads)");
            return NULL;
        }
        s->on = strdup(on);
        s->on_index = index ? (int)json_integer_value(index) : 0;
        if (!s->on || !parse_cases(l, s, json_object_get(spec, "cases"), json_object_get(spec, "default")))
            return NULL;
    } else {
        fail(l, s->name, "unknown kind \"%s\" (model, remote, sequence, parallel or switch)", kind);
        return NULL;
    }
    return s;
}

static step *resolve(loader *l, const json_t *ref, const char *default_name)
{
    if (!json_is_string(ref))
        return parse_step(l, ref, default_name);
    const char *name = json_string_value(ref);
    size_t k = 0;
    while (k < l->n_named && strcmp(l->named_keys[k], name) != 0)
        k++;
    if (k == l->n_named) {
        fail(l, default_name, "references unknown step '%s'", name);
        return NULL;
    }
    if (l->named_steps[k])
        return l->named_steps[k];
    for (size_t i = 0; i < l->depth; i++)
        if (strcmp(l->path[i], name) == 0) {
            char cycle[1024];
            size_t used = 0;
            for (size_t j = i; j < l->depth && used < sizeof(cycle); j++)
                used += (size_t)snprintf(cycle + used, sizeof(cycle) - used, "%s -> ", l->path[j]);
            if (used < sizeof(cycle))
                snprintf(cycle + used, sizeof(cycle) - used, "%s", name);
            fail(l, name, "the steps form a cycle: %s", cycle);
            return NULL;
        }
    if (l->depth == sizeof(l->path) / sizeof(l->path[0])) {
        fail(l, name, "steps nest deeper than %zu", sizeof(l->path) / sizeof(l->path[0]));
        return NULL;
    }
    l->path[l->depth++] = name;
    step *s = parse_step(l, json_object_get(l->named, name), name);
    l->depth--;
    l->named_steps[k] = s;
    return s;
}

/* ---- validation ---------------------------------------------------------- */

const char *step_input_value(const step *s, const char *input)
{
    for (size_t i = 0; i < s->n_map; i++)
        if (strcmp(s->map[i].input, input) == 0)
            return s->map[i].value;
    return input;
}

/* The value feeding an input: present with a fitting type, or (for entry
 * steps) a pipeline input. */
static bool need_value(loader *l, const step *s, spec_list *values, bool entry, const char *input,
                       const ifd_type_info *type)
{
    const char *name = step_input_value(s, input);
    /* the request's values stay visible to every step after the first */
    const value_spec *have = spec_find(values, name);
    if (!have)
        have = spec_find(&l->inputs, name);
    char why[512];
    if (have) {
        if (!type_fits(&have->type, type, why, sizeof(why))) {
            fail(l, s->name, "input '%s' is fed by '%s', but %s", input, name, why);
            return false;
        }
        return true;
    }
    if (entry) {
        const value_spec *declared = spec_find(&l->inputs, name);
        if (declared && !type_fits(&declared->type, type, why, sizeof(why))) {
            fail(l, s->name, "input '%s' is the pipeline input '%s', which another first step needs as %s",
                 input, name, type_text(&declared->type, why, sizeof(why)));
            return false;
        }
        if (!declared && !spec_push(&l->inputs, name, type)) {
            fail(l, s->name, "out of memory");
            return false;
        }
        return spec_push(values, name, type);
    }
    if (values->open)
        return true; /* may come from a remote step whose outputs are unknown */
    char available[512] = "";
    size_t used = 0;
    for (size_t i = 0; i < values->n && used < sizeof(available); i++)
        used += (size_t)snprintf(available + used, sizeof(available) - used, "%s%s", i ? ", " : "",
                                 values->items[i].name);
    fail(l, s->name, "input '%s' needs the value '%s', which no earlier step produces (available: %s)", input,
         name, available[0] ? available : "none");
    return false;
}

static bool set_outputs(step *s, const spec_list *outputs)
{
    value_spec_free(s->outputs, s->n_outputs);
    s->outputs = calloc(outputs->n ? outputs->n : 1, sizeof(*s->outputs));
    s->n_outputs = 0;
    if (!s->outputs)
        return false;
    for (size_t i = 0; i < outputs->n; i++) {
        s->outputs[i].name = strdup(outputs->items[i].name);
        s->outputs[i].type = outputs->items[i].type;
        if (!s->outputs[i].name)
            return false;
        s->n_outputs++;
    }
    return true;
}

static bool add_outputs(spec_list *values, const step *s)
{
    for (size_t i = 0; i < s->n_outputs; i++)
        if (!spec_push(values, s->outputs[i].name, &s->outputs[i].type))
            return false;
    return true;
}

static bool validate(loader *l, step *s, spec_list *values, bool entry);

static bool validate_model(loader *l, step *s, spec_list *values, bool entry)
{
    acquired got;
    char why[1024];
    acquire_result r = model_set_acquire(l->env->models, s->model, s->version, NULL, NULL, &got, why, sizeof(why));
    if (r != ACQUIRE_OK) {
        fail(l, s->name, "model '%s'%s%s: %s", s->model, s->version ? " version " : "", s->version ? s->version : "",
             why);
        return false;
    }
    const ifd_model *m = got.version->model;
    bool ok = true;
    for (size_t i = 0; i < s->n_map && ok; i++) {
        size_t k = 0;
        while (k < ifd_model_input_count(m) && strcmp(ifd_model_input(m, k)->name, s->map[i].input) != 0)
            k++;
        if (k == ifd_model_input_count(m)) {
            fail(l, s->name, "\"map\" names '%s', which is not an input of model '%s'", s->map[i].input, s->model);
            ok = false;
        }
    }
    for (size_t i = 0; i < ifd_model_input_count(m) && ok; i++)
        ok = need_value(l, s, values, entry, ifd_model_input(m, i)->name, &ifd_model_input(m, i)->type);
    spec_list outputs = {0};
    for (size_t i = 0; i < ifd_model_output_count(m) && ok; i++)
        ok = spec_push(&outputs, ifd_model_output(m, i)->name, &ifd_model_output(m, i)->type);
    ok = ok && set_outputs(s, &outputs) && add_outputs(values, s);
    spec_clear(&outputs);
    if (ok && got.version->labels) {
        json_decref(l->p->labels);
        l->p->labels = json_incref(got.version->labels);
    }
    model_version_unref(got.version);
    return ok;
}

static bool type_from_metadata(const json_t *t, ifd_type_info *out)
{
    memset(out, 0, sizeof(*out));
    out->kind = IFD_VALUE_TENSOR;
    const char *datatype = json_string_value(json_object_get(t, "datatype"));
    const json_t *shape = json_object_get(t, "shape");
    if (!datatype || !v2_datatype_parse(datatype, &out->dtype) || !json_is_array(shape) ||
        json_array_size(shape) > IFD_MAX_RANK)
        return false;
    out->rank = (int)json_array_size(shape);
    for (int d = 0; d < out->rank; d++) {
        const json_t *dim = json_array_get(shape, (size_t)d);
        out->dims[d] = json_is_integer(dim) && json_integer_value(dim) >= 0 ? json_integer_value(dim) : -1;
    }
    return true;
}

static bool validate_remote(loader *l, step *s, spec_list *values, bool entry)
{
    char why[1024];
    json_t *metadata = remote_metadata(s->remote, why, sizeof(why));
    if (!metadata) {
        /* allowed: the step is validated when the remote answers */
        if (l->not_ready && !l->not_ready[0])
            snprintf(l->not_ready, l->not_ready_size, "remote step '%s': %s", s->name, why);
        values->open = true;
        spec_list none = {0};
        return set_outputs(s, &none);
    }
    bool ok = true;
    const json_t *inputs = json_object_get(metadata, "inputs"), *outputs = json_object_get(metadata, "outputs");
    spec_list produced = {0};
    for (size_t i = 0; i < json_array_size(inputs) && ok; i++) {
        ifd_type_info type;
        const char *name = json_string_value(json_object_get(json_array_get(inputs, i), "name"));
        if (!name || !type_from_metadata(json_array_get(inputs, i), &type)) {
            fail(l, s->name, "the metadata of %s/v2/models/%s has an input without a name, datatype or shape",
                 remote_endpoint_url(s->remote), remote_endpoint_model(s->remote));
            ok = false;
        } else {
            ok = need_value(l, s, values, entry, name, &type);
        }
    }
    for (size_t i = 0; i < json_array_size(outputs) && ok; i++) {
        ifd_type_info type;
        const char *name = json_string_value(json_object_get(json_array_get(outputs, i), "name"));
        if (!name || !type_from_metadata(json_array_get(outputs, i), &type)) {
            fail(l, s->name, "the metadata of %s/v2/models/%s has an output without a name, datatype or shape",
                 remote_endpoint_url(s->remote), remote_endpoint_model(s->remote));
            ok = false;
        } else {
            ok = spec_push(&produced, name, &type);
        }
    }
    ok = ok && set_outputs(s, &produced) && add_outputs(values, s);
    spec_clear(&produced);
    json_decref(metadata);
    return ok;
}

/* The output of a branch that its parallel step combines. */
static const value_spec *combined_output(const step *parallel, const step *b)
{
    for (size_t i = 0; i < b->n_outputs; i++)
        if (!parallel->combine_output[0] || strcmp(b->outputs[i].name, parallel->combine_output) == 0)
            return &b->outputs[i];
    return NULL;
}

static bool validate_parallel(loader *l, step *s, spec_list *values, bool entry)
{
    spec_list combined = {0};
    /* the first combined branch's output type, copied: validating a later
     * branch may rebuild a step's outputs (a step used by two branches), so
     * a pointer into them would dangle (fuzz_pipeline_json found it) */
    ifd_type_info first_type = {0};
    bool have_first = false;
    bool ok = true, any_unknown = false;
    for (size_t i = 0; i < s->n_branches && ok; i++) {
        spec_list branch_values = {0};
        ok = spec_copy(&branch_values, values) && validate(l, s->branches[i].step, &branch_values, entry);
        spec_clear(&branch_values);
        if (!ok)
            break;
        const step *b = s->branches[i].step;
        if (b->n_outputs == 0) {
            any_unknown = true; /* a remote branch not reachable now */
            continue;
        }
        if (s->combine == COMBINE_OBJECT) {
            for (size_t k = 0; k < b->n_outputs && ok; k++) {
                char name[600];
                snprintf(name, sizeof(name), "%s.%s", s->branches[i].label, b->outputs[k].name);
                ok = spec_push(&combined, name, &b->outputs[k].type);
            }
            continue;
        }
        const value_spec *out = combined_output(s, b);
        if (!out) {
            fail(l, s->name, "branch '%s' has no output '%s' to combine", s->branches[i].label, s->combine_output);
            ok = false;
            break;
        }
        const ifd_type_info *t = &out->type;
        if (t->kind != IFD_VALUE_TENSOR || (t->dtype != IFD_FLOAT && t->dtype != IFD_DOUBLE &&
                                            !(s->combine == COMBINE_CONCAT && t->dtype != IFD_STRING))) {
            char text[128];
            fail(l, s->name, "branch '%s' output '%s' is %s; %s needs float scores", s->branches[i].label, out->name,
                 type_text(t, text, sizeof(text)), s->combine == COMBINE_CONCAT ? "concat" : "this combine");
            ok = false;
            break;
        }
        if ((s->combine == COMBINE_VOTE || s->combine == COMBINE_MAX_SCORE) && t->rank >= 0 && t->rank != 2) {
            fail(l, s->name, "branch '%s' output '%s' has rank %d; vote and max_score need [rows, classes]",
                 s->branches[i].label, out->name, t->rank);
            ok = false;
            break;
        }
        if (s->combine == COMBINE_MAX_SCORE && t->rank == 2 && t->dims[1] >= 0 && s->score_index >= t->dims[1]) {
            fail(l, s->name, "combine \"index\" %d is past the %lld columns of branch '%s' output '%s'",
                 s->score_index, (long long)t->dims[1], s->branches[i].label, out->name);
            ok = false;
            break;
        }
        if (s->combine == COMBINE_CONCAT && t->rank >= 0 && s->axis >= t->rank) {
            fail(l, s->name, "concat axis %d is past the rank %d of branch '%s' output '%s'", s->axis, t->rank,
                 s->branches[i].label, out->name);
            ok = false;
            break;
        }
        if (have_first) {
            const ifd_type_info *f = &first_type;
            char a[128], b2[128];
            bool same = f->dtype == t->dtype && (f->rank < 0 || t->rank < 0 || f->rank == t->rank);
            for (int d = 0; same && f->rank >= 0 && t->rank == f->rank && d < t->rank; d++)
                if (!(s->combine == COMBINE_CONCAT && d == s->axis) &&
                    !(s->combine == COMBINE_VOTE && d == 1) && f->dims[d] >= 0 && t->dims[d] >= 0 &&
                    f->dims[d] != t->dims[d])
                    same = false;
            if (!same) {
                fail(l, s->name, "branch '%s' output '%s' is %s but branch '%s' gives %s: they cannot be combined",
                     s->branches[i].label, out->name, type_text(t, a, sizeof(a)), s->branches[0].label,
                     type_text(f, b2, sizeof(b2)));
                ok = false;
                break;
            }
        } else {
            first_type = out->type;
            for (int d = 0; d < IFD_MAX_RANK; d++)
                first_type.dim_params[d] = NULL;
            have_first = true;
        }
    }
    if (ok && s->combine != COMBINE_OBJECT) {
        ifd_type_info t = {0};
        t.kind = IFD_VALUE_TENSOR;
        t.rank = -1;
        if (s->combine == COMBINE_VOTE || s->combine == COMBINE_MAX_SCORE) {
            t.rank = 1;
            t.dims[0] = have_first && first_type.rank > 0 ? first_type.dims[0] : -1;
        }
        if (s->combine == COMBINE_VOTE) {
            t.dtype = IFD_INT64;
            ok = spec_push(&combined, s->result_name, &t);
        } else if (s->combine == COMBINE_MAX_SCORE) {
            char name[300];
            t.dtype = IFD_STRING;
            snprintf(name, sizeof(name), "%s", strcmp(s->result_name, "output") ? s->result_name : "label");
            ok = spec_push(&combined, name, &t);
            t.dtype = IFD_FLOAT;
            snprintf(name, sizeof(name), "%s_score", strcmp(s->result_name, "output") ? s->result_name : "label");
            ok = ok && spec_push(&combined, name, &t);
        } else {
            if (have_first) {
                t = first_type;
                if (s->combine == COMBINE_CONCAT && t.rank > s->axis)
                    t.dims[s->axis] = -1; /* a skipped optional branch changes it */
            } else {
                t.dtype = IFD_FLOAT;
            }
            ok = spec_push(&combined, s->result_name, &t);
        }
    }
    (void)any_unknown;
    ok = ok && set_outputs(s, &combined) && add_outputs(values, s);
    spec_clear(&combined);
    return ok;
}

static bool validate_switch(loader *l, step *s, spec_list *values, bool entry)
{
    const value_spec *on = spec_find(values, s->on);
    if (!on && !values->open) {
        fail(l, s->name, "\"on\" names '%s', which no earlier step produces", s->on);
        return false;
    }
    for (size_t i = 0; on && i < s->n_cases; i++) {
        const switch_case *c = &s->cases[i];
        const ifd_type_info *t = &on->type;
        bool text = t->dtype == IFD_STRING, integer = t->dtype == IFD_INT64 || t->dtype == IFD_INT32;
        if (t->kind != IFD_VALUE_TENSOR ||
            (c->test == SWITCH_EQUALS && !(json_is_string(c->equals) ? text : integer)) ||
            ((c->test == SWITCH_ABOVE || c->test == SWITCH_BELOW) && (text || t->dtype == IFD_BOOL))) {
            char buf[128];
            fail(l, s->name, "cases[%zu] cannot test '%s', which is %s", i, s->on, type_text(t, buf, sizeof(buf)));
            return false;
        }
    }
    const step *reference = NULL;
    for (size_t i = 0; i < s->n_cases; i++) {
        spec_list case_values = {0};
        bool ok = spec_copy(&case_values, values) && validate(l, s->cases[i].step, &case_values, entry);
        spec_clear(&case_values);
        if (!ok)
            return false;
        const step *c = s->cases[i].step;
        if (!reference) {
            reference = c;
            continue;
        }
        bool same = c->n_outputs == reference->n_outputs;
        for (size_t k = 0; same && k < c->n_outputs; k++)
            same = strcmp(c->outputs[k].name, reference->outputs[k].name) == 0 &&
                   c->outputs[k].type.dtype == reference->outputs[k].type.dtype;
        if (!same && c->n_outputs && reference->n_outputs) {
            fail(l, s->name, "case step '%s' answers with other outputs than case step '%s': every case must "
                 "produce the same names and dtypes", c->name, reference->name);
            return false;
        }
    }
    spec_list outputs = {0};
    bool ok = true;
    for (size_t k = 0; reference && k < reference->n_outputs && ok; k++)
        ok = spec_push(&outputs, reference->outputs[k].name, &reference->outputs[k].type);
    ok = ok && set_outputs(s, &outputs) && add_outputs(values, s);
    spec_clear(&outputs);
    return ok;
}

static bool validate(loader *l, step *s, spec_list *values, bool entry)
{
    switch (s->kind) {
    case STEP_MODEL:
        return validate_model(l, s, values, entry);
    case STEP_REMOTE:
        return validate_remote(l, s, values, entry);
    case STEP_SEQUENCE:
        for (size_t i = 0; i < s->n_steps; i++)
            if (!validate(l, s->steps[i], values, entry && i == 0))
                return false;
        return set_outputs(s, &(spec_list){.items = s->steps[s->n_steps - 1]->outputs,
                                            .n = s->steps[s->n_steps - 1]->n_outputs});
    case STEP_PARALLEL:
        return validate_parallel(l, s, values, entry);
    case STEP_SWITCH:
        return validate_switch(l, s, values, entry);
    }
    return false;
}

/* ---- the pipeline -------------------------------------------------------- */

static void step_free(step *s)
{
    free(s->name);
    for (size_t i = 0; i < s->n_map; i++) {
        free(s->map[i].input);
        free(s->map[i].value);
    }
    free(s->map);
    free(s->model);
    free(s->version);
    remote_endpoint_free(s->remote);
    free(s->steps);
    for (size_t i = 0; i < s->n_branches; i++)
        free(s->branches[i].label);
    free(s->branches);
    free(s->combine_output);
    free(s->result_name);
    free(s->on);
    for (size_t i = 0; i < s->n_cases; i++)
        json_decref(s->cases[i].equals);
    free(s->cases);
    value_spec_free(s->outputs, s->n_outputs);
    free(s);
}

static void io_free(ifd_io_info *io, size_t n)
{
    for (size_t i = 0; io && i < n; i++)
        free((char *)io[i].name);
    free(io);
}

static void pipeline_free(pipeline *p)
{
    for (size_t i = 0; i < p->n_steps; i++)
        step_free(p->steps[i]);
    free(p->steps);
    io_free(p->inputs, p->n_inputs);
    io_free(p->outputs, p->n_outputs);
    json_decref(p->labels);
    free(p->name);
    free(p);
}

pipeline *pipeline_ref(pipeline *p)
{
    __atomic_add_fetch(&p->refs, 1, __ATOMIC_RELAXED);
    return p;
}

void pipeline_unref(pipeline *p)
{
    if (p && __atomic_sub_fetch(&p->refs, 1, __ATOMIC_ACQ_REL) == 0)
        pipeline_free(p);
}

static bool io_from_specs(const value_spec *specs, size_t n, ifd_io_info **out, size_t *count)
{
    *out = calloc(n ? n : 1, sizeof(**out));
    *count = 0;
    if (!*out)
        return false;
    for (size_t i = 0; i < n; i++) {
        (*out)[i].name = strdup(specs[i].name);
        (*out)[i].type = specs[i].type;
        if (!(*out)[i].name)
            return false;
        (*count)++;
    }
    return true;
}

pipeline *pipeline_load_text(const char *text, const char *name, const char *origin, const pipeline_env *env,
                             char *not_ready, size_t not_ready_size, char *err, size_t err_size)
{
    if (not_ready && not_ready_size)
        not_ready[0] = '\0';
    if (err_size)
        err[0] = '\0';
    json_error_t je;
    json_t *doc = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    if (!doc) {
        snprintf(err, err_size, "%s: line %d column %d: not JSON: %s", origin, je.line, je.column, je.text);
        return NULL;
    }
    pipeline *p = calloc(1, sizeof(*p));
    loader l = {.p = p, .env = env, .origin = origin, .not_ready = not_ready, .not_ready_size = not_ready_size,
                .err = err, .err_size = err_size};
    bool ok = p && (p->name = strdup(name)) != NULL;
    if (p)
        p->refs = 1;
    static const char *const fields[] = {"root", "steps", "description", NULL};
    if (ok && !json_is_object(doc)) {
        fail(&l, NULL, "the pipeline must be a JSON object {\"root\": ..., \"steps\": {...}}");
        ok = false;
    }
    ok = ok && only_fields(&l, NULL, doc, fields);
    const json_t *named = json_object_get(doc, "steps"), *root = json_object_get(doc, "root");
    if (ok && named && !json_is_object(named)) {
        fail(&l, NULL, "\"steps\" must be an object of named steps");
        ok = false;
    }
    if (ok && !root) {
        fail(&l, NULL, "\"root\" is missing: the step (or step name) a request enters");
        ok = false;
    }
    if (ok && named) {
        l.named = (json_t *)named;
        l.n_named = json_object_size(named);
        l.named_keys = calloc(l.n_named + 1, sizeof(*l.named_keys));
        l.named_steps = calloc(l.n_named + 1, sizeof(*l.named_steps));
        size_t k = 0;
        const char *key;
        json_t *value;
        json_object_foreach((json_t *)named, key, value) l.named_keys[k++] = key;
        ok = l.named_keys && l.named_steps;
    }
    if (ok) {
        p->root = resolve(&l, root, "root");
        ok = p->root != NULL;
    }
    /* a named step nothing references is most likely a mistake */
    for (size_t k = 0; ok && k < l.n_named; k++)
        if (!l.named_steps[k]) {
            fail(&l, l.named_keys[k], "is not reachable from \"root\"");
            ok = false;
        }
    spec_list values = {0};
    ok = ok && validate(&l, p->root, &values, true);
    spec_clear(&values);
    if (ok && l.inputs.n == 0 && not_ready && not_ready[0]) {
        /* an unreachable remote entry step: its inputs are unknown until it
         * answers (not_ready stays set: the caller may retry) */
        fail(&l, NULL, "%s; the pipeline's inputs are known when it answers", not_ready);
        ok = false;
    } else if (ok && l.inputs.n == 0) {
        fail(&l, NULL, "no step takes an input from the request");
        ok = false;
    }
    ok = ok && io_from_specs(l.inputs.items, l.inputs.n, &p->inputs, &p->n_inputs) &&
         io_from_specs(p->root->outputs, p->root->n_outputs, &p->outputs, &p->n_outputs);
    for (size_t i = 0; ok && env->stats_for && i < p->n_steps; i++)
        p->steps[i]->stats = env->stats_for(env->stats_context, p->name, p->steps[i]->name);
    spec_clear(&l.inputs);
    free(l.named_keys);
    free(l.named_steps);
    json_decref(doc);
    if (!ok) {
        if (!err[0])
            snprintf(err, err_size, "%s: out of memory", origin);
        if (p)
            pipeline_free(p);
        return NULL;
    }
    return p;
}

pipeline *pipeline_load(const char *dir, const char *name, const pipeline_env *env, char *not_ready,
                        size_t not_ready_size, char *err, size_t err_size)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/pipeline.json", dir);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, err_size, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char *text = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            if (cap > (16u << 20)) {
                snprintf(err, err_size, "%s: larger than 16 MiB", path);
                free(text);
                fclose(f);
                return NULL;
            }
            char *grown = realloc(text, cap);
            if (!grown) {
                free(text);
                fclose(f);
                snprintf(err, err_size, "%s: out of memory", path);
                return NULL;
            }
            text = grown;
        }
        size_t got = fread(text + len, 1, cap - len - 1, f);
        len += got;
        if (got == 0)
            break;
    }
    fclose(f);
    text[len] = '\0';
    err[0] = '\0';
    pipeline *p = pipeline_load_text(text, name, path, env, not_ready, not_ready_size, err, err_size);
    free(text);
    return p;
}

const char *pipeline_name(const pipeline *p)
{
    return p->name;
}

size_t pipeline_input_count(const pipeline *p)
{
    return p->n_inputs;
}

const ifd_io_info *pipeline_input(const pipeline *p, size_t index)
{
    return index < p->n_inputs ? &p->inputs[index] : NULL;
}

size_t pipeline_output_count(const pipeline *p)
{
    return p->n_outputs;
}

const ifd_io_info *pipeline_output(const pipeline *p, size_t index)
{
    return index < p->n_outputs ? &p->outputs[index] : NULL;
}

size_t pipeline_branch_count(const pipeline *p)
{
    return p->root->kind == STEP_PARALLEL ? p->root->n_branches : 0;
}

const char *pipeline_branch_label(const pipeline *p, size_t index)
{
    return p->root->kind == STEP_PARALLEL && index < p->root->n_branches ? p->root->branches[index].label : NULL;
}

int pipeline_branch_score_index(const pipeline *p)
{
    return p->root->score_index;
}

const json_t *pipeline_labels(const pipeline *p)
{
    return p->labels;
}
