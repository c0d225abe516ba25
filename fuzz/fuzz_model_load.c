/*
 * fuzz_model_load.c — libFuzzer target for the whole path a hostile model
 * file takes: protobuf decoding (with the nesting guard), initializers,
 * graph checks and ordering, operator resolution, every operator's prepare()
 * and then run() on zero-filled inputs of the declared shapes.
 *
 * The oracle is the sanitizers (ASan, UBSan, libFuzzer's -rss_limit_mb,
 * -malloc_limit_mb and -timeout) plus what the API promises: a failed load
 * leaves a non-empty error message and no model; a model refused as
 * unsupported can still be described with describe_only; a run is
 * deterministic, so a second run on the same inputs (which takes every buffer
 * from the session's pool) must give byte-identical outputs — a difference
 * means an operator read memory it never wrote.
 *
 * Runs are bounded so that the fuzzer spends its time on logic, not on
 * legitimately large models: inputs get at most FUZZ_MAX_INPUT_ELEMENTS
 * elements, and a model in which a tensor whose shape prepare() inferred
 * (unknown dims counting as 1) exceeds FUZZ_MAX_VALUE_ELEMENTS is only
 * loaded, not run (the engine would allocate
 * what the model asks for, up to IFD_MAX_TENSOR_BYTES, which is correct but
 * not what a fuzzer should measure).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "inferd/inferd.h"
#include "model.h"

#define FUZZ_MAX_INPUT_ELEMENTS (1 << 16)
#define FUZZ_MAX_VALUE_ELEMENTS (1 << 18)

static void require(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_model_load: broken promise: %s\n", what);
        abort();
    }
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

/* The core fills in a reason when an operator's prepare() or run() fails
 * without one, so that callers always get a message; the fuzzer still wants
 * to hear about the operator. Only a message that ends with the core's
 * words counts: libFuzzer learns compared strings and soon puts them into
 * node names, which other messages quote. */
static void require_reason(const ifd_error *err, const char *what)
{
    require(err->message[0] != '\0', what);
    if (ends_with(err->message, "' failed without giving a reason") ||
        ends_with(err->message, "' was refused without a reason")) {
        fprintf(stderr, "fuzz_model_load: %s\n", err->message);
        require(0, "an operator failed without a reason");
    }
}

/* Touch every describe accessor, as `inferd inspect` would. */
static void describe(const ifd_model *m)
{
    size_t total = 0;
    for (size_t i = 0; i < ifd_model_input_count(m); i++)
        require(ifd_model_input(m, i) && ifd_model_input(m, i)->name, "input has a name");
    for (size_t i = 0; i < ifd_model_output_count(m); i++)
        require(ifd_model_output(m, i) && ifd_model_output(m, i)->name, "output has a name");
    for (size_t i = 0; i < ifd_model_opset_count(m); i++)
        require(ifd_model_opset(m, i).domain != NULL, "opset has a domain");
    for (size_t i = 0; i < ifd_model_op_count(m); i++) {
        ifd_op_count c = ifd_model_op(m, i);
        require(c.domain && c.op_type && c.count > 0, "op histogram entry");
        total += c.count;
    }
    require(total == ifd_model_node_count(m), "op histogram adds up to the node count");
    for (size_t i = 0; i < ifd_model_unsupported_count(m); i++) {
        ifd_unsupported_op u = ifd_model_unsupported(m, i);
        require(u.domain && u.op_type, "unsupported entry");
    }
    require(ifd_model_producer_name(m) && ifd_model_producer_version(m) &&
                ifd_model_graph_name(m),
            "model strings");
}

/* Whether a run would only allocate what a fuzzer should measure. */
static int small_enough_to_run(const ifd_model *m)
{
    for (size_t i = 0; i < m->n_values; i++) {
        const value_info *info = &m->values[i].info;
        int64_t dims[IFD_MAX_RANK], count;
        if (info->kind != IFD_VALUE_TENSOR || info->rank < 0 || info->rank > IFD_MAX_RANK)
            continue;
        /* unknown dims are 1, as in the inputs the run gets */
        for (int d = 0; d < info->rank; d++)
            dims[d] = info->dims[d] < 0 ? 1 : info->dims[d];
        if (!shape_count(info->rank, dims, &count) || count > FUZZ_MAX_VALUE_ELEMENTS)
            return 0;
    }
    return 1;
}

static int deterministic(const ifd_model *m)
{
    /* random generators differ from run to run by design */
    for (size_t i = 0; i < m->n_nodes; i++)
        if (strstr(m->nodes[i].op.op_type, "Random") ||
            strcmp(m->nodes[i].op.op_type, "Bernoulli") == 0 ||
            strcmp(m->nodes[i].op.op_type, "Multinomial") == 0)
            return 0;
        /* training-mode Dropout without a seed draws a fresh mask each run */
        else if (strcmp(m->nodes[i].op.op_type, "Dropout") == 0 &&
                 !op_attr_has(&m->nodes[i].op, "seed"))
            return 0;
    return 1;
}

/* A zero-filled value of the declared type: unknown dims are 1, unknown rank
 * is a scalar, sequences are empty, maps have no entries. */
static ifd_value *zero_input(const ifd_type_info *type)
{
    ifd_value *v = NULL;
    ifd_error err;
    if (type->kind == IFD_VALUE_TENSOR) {
        int64_t dims[IFD_MAX_RANK];
        int rank = type->rank < 0 ? 0 : type->rank;
        int64_t count = 1;
        for (int i = 0; i < rank; i++) {
            dims[i] = type->dims[i] < 0 ? 1 : type->dims[i];
            if (dims[i] > FUZZ_MAX_INPUT_ELEMENTS)
                return NULL;
            count *= dims[i];
            if (count > FUZZ_MAX_INPUT_ELEMENTS)
                return NULL;
        }
        if (ifd_dtype_size(type->dtype) == 0)
            return NULL;
        if (ifd_value_new_tensor(type->dtype, rank, dims, &v, &err) != IFD_OK)
            return NULL;
        return v;
    }
    v = calloc(1, sizeof(*v));
    if (!v)
        return NULL;
    v->kind = type->kind;
    if (type->kind == IFD_VALUE_MAP) {
        int64_t none[1] = {0};
        if (ifd_dtype_size(type->key_dtype) == 0 || ifd_dtype_size(type->dtype) == 0 ||
            tensor_alloc(&v->map_keys, type->key_dtype, 1, none, "keys", &err) != IFD_OK ||
            tensor_alloc(&v->map_values, type->dtype, 1, none, "values", &err) != IFD_OK) {
            ifd_value_free(v);
            return NULL;
        }
    }
    return v;
}

static int same_tensor(const ifd_tensor *a, const ifd_tensor *b)
{
    if (a->dtype != b->dtype || !tensor_same_shape(a, b))
        return 0;
    size_t count = (size_t)ifd_tensor_count(a);
    if (a->dtype == IFD_STRING) {
        const ifd_string *x = a->data, *y = b->data;
        for (size_t i = 0; i < count; i++)
            if (x[i].size != y[i].size || (x[i].size && memcmp(x[i].data, y[i].data, x[i].size)))
                return 0;
        return 1;
    }
    size_t bytes = count * ifd_dtype_size(a->dtype);
    return bytes == 0 || memcmp(a->data, b->data, bytes) == 0;
}

static int same_value(const ifd_value *a, const ifd_value *b)
{
    if (a->kind != b->kind)
        return 0;
    switch (a->kind) {
    case IFD_VALUE_TENSOR: return same_tensor(&a->tensor, &b->tensor);
    case IFD_VALUE_MAP:
        return same_tensor(&a->map_keys, &b->map_keys) &&
               same_tensor(&a->map_values, &b->map_values);
    default: /* sequences and optionals: items */
        if (a->length != b->length)
            return 0;
        for (size_t i = 0; i < a->length; i++)
            if (!same_value(a->items[i], b->items[i]))
                return 0;
        return 1;
    }
}

/* Runs m on zero inputs (twice when the first run succeeds, checking the
 * run's promises); returns 1 when the session or the first run failed, 0
 * when it ran, -1 when no zero inputs could be made for it. */
static int run_model(const ifd_model *m)
{
    size_t n_in = ifd_model_input_count(m), n_out = ifd_model_output_count(m);
    ifd_value **inputs = calloc(n_in ? n_in : 1, sizeof(*inputs));
    ifd_value **first = calloc(n_out ? n_out : 1, sizeof(*first));
    ifd_value **second = calloc(n_out ? n_out : 1, sizeof(*second));
    ifd_session *session = NULL;
    /* a tiny model may ask for a huge output (Upsample by 1.5M): bound what one
     * run may allocate, as a server would, so such inputs stay fast */
    /* Loops bounded too: a mutated trip count would otherwise run for ever */
    ifd_session_options options = {.threads = 1, .max_tensor_bytes = 16u << 20,
                                   .max_loop_iterations = 10000};
    ifd_error err;
    int ready = inputs && first && second, failed = 0;

    for (size_t i = 0; ready && i < n_in; i++) {
        inputs[i] = zero_input(&ifd_model_input(m, i)->type);
        ready = inputs[i] != NULL;
    }
    if (!ready)
        failed = -1;
    else if (ifd_session_create(m, &options, &session, &err) != IFD_OK)
        failed = 1;
    else {
        err.message[0] = '\0';
        ifd_status st = ifd_session_run(session, (const ifd_value *const *)inputs, first, &err);
        if (st != IFD_OK) {
            failed = 1;
            require_reason(&err, "a failed run explains itself");
            for (size_t k = 0; k < n_out; k++)
                require(first[k] == NULL, "a failed run returns no outputs");
        } else {
            for (size_t k = 0; k < n_out; k++)
                require(first[k] != NULL, "a run fills every output");
            st = ifd_session_run(session, (const ifd_value *const *)inputs, second, &err);
            require(st == IFD_OK, "a second run of the same inputs succeeds");
            if (deterministic(m))
                for (size_t k = 0; k < n_out; k++)
                    require(same_value(first[k], second[k]),
                            "two runs of the same inputs give the same outputs");
        }
        ifd_session_free(session);
    }
    for (size_t k = 0; first && second && k < n_out; k++) {
        ifd_value_free(first[k]);
        ifd_value_free(second[k]);
    }
    for (size_t i = 0; inputs && i < n_in; i++)
        ifd_value_free(inputs[i]);
    free(inputs);
    free(first);
    free(second);
    return failed;
}

/* The graph optimiser (src/engine/optimize/) only removes work: whatever
 * loads with it off loads with it on, except a model whose error the
 * optimiser finds at load because folding made an input constant (a Reshape
 * whose folded shape cannot hold its data): that model must then fail its
 * run unoptimised, so the optimiser only moves the error earlier. */
static void require_optimiser_accepts(const uint8_t *data, size_t size, ifd_status optimised)
{
    ifd_load_options none = {.graph_opt = IFD_GRAPH_OPT_NONE};
    ifd_model *plain = NULL;
    ifd_error err;
    if (ifd_model_load_memory(data, size, NULL, &none, &plain, &err) == IFD_OK) {
        if (optimised != IFD_OK && small_enough_to_run(plain)) {
            int plain_failed = run_model(plain);
            if (plain_failed == 0)
                fprintf(stderr, "optimised load failed where --graph-opt none loads and runs\n");
            require(plain_failed != 0, "a model that loads and runs unoptimised loads optimised");
        }
        ifd_model_free(plain);
    }
}

/* The same bytes as a mapped file — how ifd_model_load_file and the server
 * (ifd_model_load_mapped) load them, reading aligned weights in place and
 * copying the others when their reader prepares — get the same verdict. */
static void require_mapped_agrees(const uint8_t *data, size_t size, ifd_status expected)
{
    int fd = size ? memfd_create("fuzz-model", MFD_CLOEXEC) : -1;
    if (fd < 0)
        return;
    void *map = MAP_FAILED;
    if (write(fd, data, size) == (ssize_t)size)
        map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED)
        return;
    ifd_load_options optimised = {.graph_opt = IFD_GRAPH_OPT_ALL};
    ifd_model *model = NULL;
    ifd_error err;
    ifd_status st = ifd_model_load_mapped(map, size, NULL, &optimised, &model, &err);
    if (st != IFD_ERR_NO_MEMORY && expected != IFD_ERR_NO_MEMORY)
        require(st == expected, "a mapped file loads as the same bytes in memory do");
    ifd_model_free(model);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ifd_model *model = (ifd_model *)0x1;
    ifd_error err;
    err.message[0] = '\0';
    /* every level's passes run: ALL (what users get by default) here, NONE
     * in require_optimiser_accepts */
    ifd_load_options optimised = {.graph_opt = IFD_GRAPH_OPT_ALL};
    ifd_status st = ifd_model_load_memory(data, size, NULL, &optimised, &model, &err);
    require_optimiser_accepts(data, size, st);
    require_mapped_agrees(data, size, st);
    if (st != IFD_OK) {
        require(model == NULL, "a failed load returns no model");
        require_reason(&err, "a failed load explains itself");
        if (st != IFD_ERR_UNSUPPORTED)
            return 0;
        /* the same bytes must still load for description, or fail for
         * another reason than unsupported operators */
        ifd_load_options describe_only = {.describe_only = 1};
        if (ifd_model_load_memory(data, size, NULL, &describe_only, &model, &err) == IFD_OK) {
            describe(model);
            ifd_session *session = NULL;
            if (ifd_model_unsupported_count(model) > 0)
                require(ifd_session_create(model, NULL, &session, &err) == IFD_ERR_UNSUPPORTED &&
                            session == NULL,
                        "a described-only model refuses sessions");
            else
                ifd_session_free(session);
            ifd_model_free(model);
        }
        return 0;
    }
    describe(model);
    require(ifd_model_unsupported_count(model) == 0, "a runnable model has no unsupported ops");
    if (small_enough_to_run(model))
        run_model(model);
    ifd_model_free(model);
    return 0;
}
