/*
 * test_loader.c — the model loader on hostile and malformed models: every
 * failure must be a clean error with a message naming what is wrong, never a
 * crash, a hang or an allocation the file does not pay for. Models are built
 * here in C with the protobuf-c structs generated from proto/onnx (so each
 * test says exactly which field is hostile), or mutated from the ONNX backend
 * test data's test_abs model when Debian's libonnx-testdata is installed.
 * Load time must stay linear in the file whatever its names (the timed tests
 * carry an alarm, so a regression fails instead of hanging). Sessions are
 * covered where they meet the loader: inputs of the wrong type or kind.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "inferd/inferd.h"
#include "onnx/onnx-ml.pb-c.h"
#include "test.h"

/* ---- building models ------------------------------------------------------
 * Everything is allocated from one arena that mb_reset() frees, so a test
 * builds freely and cleans up in one call. */

static void **mb_blocks;
static size_t mb_n_blocks, mb_cap_blocks;

static void *mb_alloc(size_t bytes)
{
    if (mb_n_blocks == mb_cap_blocks) {
        mb_cap_blocks = mb_cap_blocks ? mb_cap_blocks * 2 : 256;
        mb_blocks = realloc(mb_blocks, mb_cap_blocks * sizeof(*mb_blocks));
        if (!mb_blocks)
            abort();
    }
    void *block = calloc(1, bytes ? bytes : 1);
    if (!block)
        abort();
    mb_blocks[mb_n_blocks++] = block;
    return block;
}

static void mb_reset(void)
{
    for (size_t i = 0; i < mb_n_blocks; i++)
        free(mb_blocks[i]);
    free(mb_blocks);
    mb_blocks = NULL;
    mb_n_blocks = mb_cap_blocks = 0;
}

static char *mb_str(const char *s)
{
    size_t n = strlen(s);
    char *copy = mb_alloc(n + 1);
    memcpy(copy, s, n);
    return copy;
}

/* Arrays only ever grow here, so their capacity is implied: the next power
 * of two, reallocated (into the arena) when n reaches one. */
static void **mb_grow(void **old, size_t n, void *item)
{
    void **grown = old;
    if ((n & (n - 1)) == 0) {
        grown = mb_alloc((n ? 2 * n : 1) * sizeof(*grown));
        if (n)
            memcpy(grown, old, n * sizeof(*grown));
    }
    grown[n] = item;
    return grown;
}

/* Append item to a protobuf-c repeated pointer field (arr, count). */
#define MB_PUSH(arr, count, item)                                                        \
    do {                                                                                 \
        void **grown_ = mb_grow((void **)(arr), (count), (void *)(item));                \
        memcpy(&(arr), &grown_, sizeof(grown_));                                         \
        (count)++;                                                                       \
    } while (0)

static void mb_add_opset(Onnx__ModelProto *m, const char *domain, int64_t version)
{
    Onnx__OperatorSetIdProto *op = mb_alloc(sizeof(*op));
    onnx__operator_set_id_proto__init(op);
    op->domain = mb_str(domain);
    op->has_version = 1;
    op->version = version;
    MB_PUSH(m->opset_import, m->n_opset_import, op);
}

/* A model with an empty graph named "test" at the given IR version and
 * default-domain opset (opset <= 0: no opset_import at all). */
static Onnx__ModelProto *mb_model(int64_t ir_version, int64_t opset)
{
    Onnx__ModelProto *m = mb_alloc(sizeof(*m));
    onnx__model_proto__init(m);
    m->has_ir_version = 1;
    m->ir_version = ir_version;
    m->producer_name = mb_str("test_loader");
    if (opset > 0)
        mb_add_opset(m, "", opset);
    m->graph = mb_alloc(sizeof(*m->graph));
    onnx__graph_proto__init(m->graph);
    m->graph->name = mb_str("test");
    return m;
}

/* "a,b,,c" -> {"a","b","","c"}; "" -> none. */
static size_t mb_split(const char *list, char ***out)
{
    size_t n = 0;
    *out = NULL;
    if (!list || !*list)
        return 0;
    const char *p = list;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char *name = mb_alloc(len + 1);
        memcpy(name, p, len);
        MB_PUSH(*out, n, name);
        if (!comma)
            return n;
        p = comma + 1;
    }
}

static Onnx__NodeProto *mb_node(Onnx__GraphProto *g, const char *op_type, const char *name,
                                const char *inputs, const char *outputs)
{
    Onnx__NodeProto *node = mb_alloc(sizeof(*node));
    onnx__node_proto__init(node);
    node->op_type = mb_str(op_type);
    node->name = mb_str(name);
    node->n_input = mb_split(inputs, &node->input);
    node->n_output = mb_split(outputs, &node->output);
    MB_PUSH(g->node, g->n_node, node);
    return node;
}

static Onnx__AttributeProto *mb_attr(Onnx__NodeProto *node, const char *name,
                                     Onnx__AttributeProto__AttributeType type)
{
    Onnx__AttributeProto *a = mb_alloc(sizeof(*a));
    onnx__attribute_proto__init(a);
    a->name = mb_str(name);
    a->has_type = 1;
    a->type = type;
    MB_PUSH(node->attribute, node->n_attribute, a);
    return a;
}

static void mb_attr_int(Onnx__NodeProto *node, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = mb_attr(node, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    a->has_i = 1;
    a->i = v;
}

static void mb_attr_float(Onnx__NodeProto *node, const char *name, float v)
{
    Onnx__AttributeProto *a = mb_attr(node, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    a->has_f = 1;
    a->f = v;
}

static void mb_attr_ints(Onnx__NodeProto *node, const char *name, size_t n, const int64_t *v)
{
    Onnx__AttributeProto *a = mb_attr(node, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    a->n_ints = n;
    a->ints = mb_alloc(n * sizeof(int64_t));
    memcpy(a->ints, v, n * sizeof(int64_t));
}

static void mb_attr_floats(Onnx__NodeProto *node, const char *name, size_t n, const float *v)
{
    Onnx__AttributeProto *a = mb_attr(node, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS);
    a->n_floats = n;
    a->floats = mb_alloc(n * sizeof(float));
    memcpy(a->floats, v, n * sizeof(float));
}

static void mb_attr_string(Onnx__NodeProto *node, const char *name, const char *v)
{
    Onnx__AttributeProto *a = mb_attr(node, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
    a->has_s = 1;
    a->s.data = (uint8_t *)mb_str(v);
    a->s.len = strlen(v);
}

static void mb_attr_strings(Onnx__NodeProto *node, const char *name, size_t n,
                            const char *const *v)
{
    Onnx__AttributeProto *a =
        mb_attr(node, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS);
    a->n_strings = n;
    a->strings = mb_alloc(n * sizeof(*a->strings));
    for (size_t i = 0; i < n; i++) {
        a->strings[i].data = (uint8_t *)mb_str(v[i]);
        a->strings[i].len = strlen(v[i]);
    }
}

/* A TensorProto with raw_data (data may be NULL: then no data field at all). */
static Onnx__TensorProto *mb_tensor(const char *name, ifd_dtype dtype, int rank,
                                    const int64_t *dims, const void *data, size_t bytes)
{
    Onnx__TensorProto *t = mb_alloc(sizeof(*t));
    onnx__tensor_proto__init(t);
    t->name = mb_str(name);
    t->has_data_type = 1;
    t->data_type = (int32_t)dtype;
    t->n_dims = (size_t)rank;
    t->dims = mb_alloc((size_t)rank * sizeof(int64_t));
    if (rank)
        memcpy(t->dims, dims, (size_t)rank * sizeof(int64_t));
    if (data) {
        t->has_raw_data = 1;
        t->raw_data.len = bytes;
        t->raw_data.data = mb_alloc(bytes);
        memcpy(t->raw_data.data, data, bytes);
    }
    return t;
}

static void mb_attr_tensor(Onnx__NodeProto *node, const char *name, Onnx__TensorProto *t)
{
    Onnx__AttributeProto *a = mb_attr(node, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR);
    a->t = t;
}

static void mb_initializer(Onnx__GraphProto *g, Onnx__TensorProto *t)
{
    MB_PUSH(g->initializer, g->n_initializer, t);
}

/* A tensor type; rank < 0: no shape; dims[i] < 0: symbolic dim "N<i>". */
static Onnx__ValueInfoProto *mb_value_info(const char *name, ifd_dtype dtype, int rank,
                                           const int64_t *dims)
{
    Onnx__ValueInfoProto *vi = mb_alloc(sizeof(*vi));
    onnx__value_info_proto__init(vi);
    vi->name = mb_str(name);
    vi->type = mb_alloc(sizeof(*vi->type));
    onnx__type_proto__init(vi->type);
    vi->type->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    vi->type->tensor_type = mb_alloc(sizeof(*vi->type->tensor_type));
    onnx__type_proto__tensor__init(vi->type->tensor_type);
    vi->type->tensor_type->has_elem_type = 1;
    vi->type->tensor_type->elem_type = (int32_t)dtype;
    if (rank >= 0) {
        Onnx__TensorShapeProto *shape = mb_alloc(sizeof(*shape));
        onnx__tensor_shape_proto__init(shape);
        for (int i = 0; i < rank; i++) {
            Onnx__TensorShapeProto__Dimension *d = mb_alloc(sizeof(*d));
            onnx__tensor_shape_proto__dimension__init(d);
            if (dims[i] >= 0) {
                d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
                d->dim_value = dims[i];
            } else {
                char param[16];
                snprintf(param, sizeof(param), "N%d", i);
                d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
                d->dim_param = mb_str(param);
            }
            MB_PUSH(shape->dim, shape->n_dim, d);
        }
        vi->type->tensor_type->shape = shape;
    }
    return vi;
}

static void mb_input(Onnx__GraphProto *g, const char *name, ifd_dtype dtype, int rank,
                     const int64_t *dims)
{
    MB_PUSH(g->input, g->n_input, mb_value_info(name, dtype, rank, dims));
}

static void mb_output(Onnx__GraphProto *g, const char *name, ifd_dtype dtype, int rank,
                      const int64_t *dims)
{
    MB_PUSH(g->output, g->n_output, mb_value_info(name, dtype, rank, dims));
}

/* Serialise into the arena. */
static uint8_t *mb_pack(const Onnx__ModelProto *m, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(&m->base);
    uint8_t *buf = mb_alloc(*len);
    protobuf_c_message_pack(&m->base, buf);
    return buf;
}

static ifd_status mb_load(const Onnx__ModelProto *m, const ifd_load_options *options,
                          ifd_model **out, ifd_error *err)
{
    size_t len;
    uint8_t *buf = mb_pack(m, &len);
    err->message[0] = '\0';
    return ifd_model_load_memory(buf, len, NULL, options, out, err);
}

/* The usual test graph: y = Identity(x), float32 of the given shape. */
static Onnx__ModelProto *mb_identity_model(int rank, const int64_t *dims)
{
    Onnx__ModelProto *m = mb_model(8, 13);
    mb_input(m->graph, "x", IFD_FLOAT, rank, dims);
    mb_node(m->graph, "Identity", "id", "x", "y");
    mb_output(m->graph, "y", IFD_FLOAT, rank, dims);
    return m;
}


/* ---- running models ------------------------------------------------------ */

static ifd_value *float_value(int rank, const int64_t *dims, const float *data)
{
    ifd_value *v = NULL;
    ifd_error err;
    if (ifd_value_new_tensor(IFD_FLOAT, rank, dims, &v, &err) != IFD_OK)
        abort();
    if (data)
        memcpy(v->tensor.data, data, (size_t)ifd_tensor_count(&v->tensor) * sizeof(float));
    return v;
}

/* One run in a fresh single-threaded session; outputs are the caller's. */
static ifd_status run_once(const ifd_model *m, ifd_value **inputs, ifd_value **outputs,
                           ifd_error *err)
{
    ifd_session *s = NULL;
    ifd_session_options options = {.threads = 1};
    err->message[0] = '\0';
    ifd_status st = ifd_session_create(m, &options, &s, err);
    if (st != IFD_OK)
        return st;
    st = ifd_session_run(s, (const ifd_value *const *)inputs, outputs, err);
    ifd_session_free(s);
    return st;
}

/* Run on zero-filled inputs of the declared shapes (unknown dims are 1), as
 * the fuzzer does; skipped when an input would be large. */
static void run_on_zeros(const ifd_model *m)
{
    size_t n_in = ifd_model_input_count(m), n_out = ifd_model_output_count(m);
    ifd_value *inputs[16] = {0}, *outputs[16] = {0};
    ifd_error err;
    if (n_in > 16 || n_out > 16)
        return;
    for (size_t i = 0; i < n_in; i++) {
        const ifd_type_info *t = &ifd_model_input(m, i)->type;
        int64_t dims[IFD_MAX_RANK], count = 1;
        int rank = t->rank < 0 ? 0 : t->rank;
        for (int d = 0; d < rank; d++) {
            dims[d] = t->dims[d] < 0 ? 1 : t->dims[d];
            count = dims[d] > (1 << 16) ? (1 << 17) : count * dims[d];
            if (count > (1 << 16))
                break;
        }
        if (t->kind != IFD_VALUE_TENSOR || count > (1 << 16) ||
            ifd_value_new_tensor(t->dtype, rank, dims, &inputs[i], &err) != IFD_OK)
            goto done;
    }
    if (run_once(m, inputs, outputs, &err) != IFD_OK)
        CHECK(err.message[0] != '\0');
    for (size_t k = 0; k < n_out; k++)
        ifd_value_free(outputs[k]);
done:
    for (size_t i = 0; i < n_in; i++)
        ifd_value_free(inputs[i]);
}

/* ---- watching allocations -------------------------------------------------
 * A loader that allocates what a tensor's dims claim before checking that the
 * file holds that data lets a few bytes demand gigabytes. Under ASan a malloc
 * hook records the largest single allocation; otherwise RLIMIT_AS makes such
 * an allocation fail, which changes the error the loader reports. */

static size_t largest_allocation;

#if ADDRESS_SANITIZER
/* from <sanitizer/allocator_interface.h>, which gcc does not install */
int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void *, size_t),
                                              void (*free_hook)(const volatile void *));
static void note_malloc(const volatile void *ptr, size_t size)
{
    (void)ptr;
    if (size > largest_allocation)
        largest_allocation = size;
}
static void note_free(const volatile void *ptr) { (void)ptr; }
static void watch_allocations(void)
{
    static int installed;
    if (!installed)
        __sanitizer_install_malloc_and_free_hooks(note_malloc, note_free);
    installed = 1;
    largest_allocation = 0;
}
static void unwatch_allocations(void) {}
#else
static struct rlimit saved_limit;
static void watch_allocations(void)
{
    struct rlimit small;
    largest_allocation = 0;
    getrlimit(RLIMIT_AS, &saved_limit);
    small = saved_limit;
    small.rlim_cur = (rlim_t)16 << 30;
    if (saved_limit.rlim_cur == RLIM_INFINITY || saved_limit.rlim_cur > small.rlim_cur)
        setrlimit(RLIMIT_AS, &small);
}
static void unwatch_allocations(void) { setrlimit(RLIMIT_AS, &saved_limit); }
#endif

/* ---- the backend test data's test_abs ------------------------------------ */

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(size > 0 ? (size_t)size : 1);
    if (buf && fread(buf, 1, (size_t)size, f) != (size_t)size) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = (size_t)size;
    return buf;
}

#define TEST_ABS "/usr/share/libonnx-testdata/data/node/test_abs/model.onnx"

static uint8_t *test_abs_model(size_t *len)
{
    uint8_t *buf = read_file(TEST_ABS, len);
    if (!buf)
        printf("SKIP part of %s: %s is missing (apt-get install libonnx-testdata)\n", __FILE__,
               TEST_ABS);
    return buf;
}

/* A small model touching most of what the loader decodes: an initializer,
 * typed and raw tensor data, a Constant, attributes of several types,
 * symbolic dims and two opsets. */
static uint8_t *rich_model(size_t *len)
{
    int64_t xd[2] = {-1, 3}, wd[1] = {3}, cd[1] = {2};
    float w[3] = {1, 2, 3};
    Onnx__ModelProto *m = mb_model(8, 13);
    mb_add_opset(m, "ai.onnx.ml", 1);
    Onnx__GraphProto *g = m->graph;
    mb_input(g, "x", IFD_FLOAT, 2, xd);
    mb_initializer(g, mb_tensor("w", IFD_FLOAT, 1, wd, w, sizeof(w)));
    Onnx__TensorProto *typed = mb_tensor("c", IFD_INT64, 1, cd, NULL, 0);
    typed->n_int64_data = 2;
    typed->int64_data = mb_alloc(2 * sizeof(int64_t));
    typed->int64_data[0] = -1;
    typed->int64_data[1] = 3;
    Onnx__NodeProto *c = mb_node(g, "Constant", "shape", "", "s");
    mb_attr_tensor(c, "value", typed);
    mb_node(g, "Add", "add", "x,w", "a");
    Onnx__NodeProto *r = mb_node(g, "Reshape", "reshape", "a,s", "b");
    mb_attr_int(r, "allowzero", 0);
    Onnx__NodeProto *sm = mb_node(g, "Softmax", "softmax", "b", "y");
    mb_attr_int(sm, "axis", -1);
    mb_output(g, "y", IFD_FLOAT, 2, xd);
    return mb_pack(m, len);
}

static void check_every_prefix(const uint8_t *buf, size_t len)
{
    int refused = 0;
    for (size_t n = 0; n < len; n++) {
        ifd_model *m = NULL;
        ifd_error err;
        err.message[0] = '\0';
        ifd_status st = ifd_model_load_memory(buf, n, NULL, NULL, &m, &err);
        if (st == IFD_OK) {
            run_on_zeros(m);
            ifd_model_free(m);
            continue;
        }
        refused++;
        CHECK(m == NULL);
        CHECK(err.message[0] != '\0');
        CHECK(st == IFD_ERR_INVALID_MODEL || st == IFD_ERR_UNSUPPORTED);
        if (n == 0)
            CHECK_STR_CONTAINS(err.message, "the model has no graph");
        if (n == len - 1)
            CHECK_STR_CONTAINS(err.message, "model: not a valid ModelProto protobuf message");
    }
    /* nearly every cut lands inside a field */
    CHECK(refused > (int)len / 2);
}

static void test_truncated_model_fails_cleanly_at_every_offset(void)
{
    size_t len;
    uint8_t *buf = rich_model(&len);
    check_every_prefix(buf, len);
    mb_reset();
    uint8_t *abs = test_abs_model(&len);
    if (abs)
        check_every_prefix(abs, len);
    free(abs);
}

static void check_every_bit_flip(const uint8_t *original, size_t len)
{
    uint8_t *buf = malloc(len);
    int loaded = 0, refused = 0;
    for (size_t bit = 0; bit < len * 8; bit++) {
        memcpy(buf, original, len);
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        ifd_model *m = NULL;
        ifd_error err;
        err.message[0] = '\0';
        if (ifd_model_load_memory(buf, len, NULL, NULL, &m, &err) == IFD_OK) {
            loaded++;
            run_on_zeros(m);
            ifd_model_free(m);
        } else {
            refused++;
            CHECK(m == NULL);
            CHECK(err.message[0] != '\0');
        }
    }
    CHECK(loaded > 0);
    CHECK(refused > 0);
    free(buf);
}

static void test_every_bit_flip_loads_or_fails_cleanly(void)
{
    size_t len;
    uint8_t *buf = rich_model(&len);
    check_every_bit_flip(buf, len);
    mb_reset();
    uint8_t *abs = test_abs_model(&len);
    if (abs)
        check_every_bit_flip(abs, len);
    free(abs);
}

/* ---- tensor sizes -------------------------------------------------------- */

static void expect_initializer_error(int rank, const int64_t *dims, const void *data,
                                     size_t bytes, ifd_status want, const char *message)
{
    Onnx__ModelProto *m = mb_identity_model(0, NULL);
    mb_initializer(m->graph, mb_tensor("w", IFD_FLOAT, rank, dims, data, bytes));
    ifd_model *model = NULL;
    ifd_error err;
    watch_allocations();
    ifd_status st = mb_load(m, NULL, &model, &err);
    unwatch_allocations();
    CHECK_EQ_INT(st, want);
    CHECK(model == NULL);
    CHECK_STR_CONTAINS(err.message, message);
#if ADDRESS_SANITIZER
    CHECK(largest_allocation < (1u << 20));
#endif
    ifd_model_free(model);
    mb_reset();
}

static void test_initializer_with_huge_dim_is_refused(void)
{
    int64_t dims[1] = {1ll << 40};
    float four[1] = {1};
    expect_initializer_error(1, dims, four, sizeof(four), IFD_ERR_INVALID_MODEL,
                             "tensor 'w': shape [1099511627776] is negative, overflows or is "
                             "too large");
}

static void test_initializer_with_overflowing_dims_is_refused(void)
{
    int64_t dims[3] = {1ll << 40, 1ll << 40, 1ll << 40};
    expect_initializer_error(3, dims, NULL, 0, IFD_ERR_INVALID_MODEL,
                             "tensor 'w': shape [1099511627776,1099511627776,1099511627776] is "
                             "negative, overflows or is too large");
    int64_t negative[2] = {2, -3};
    expect_initializer_error(2, negative, NULL, 0, IFD_ERR_INVALID_MODEL,
                             "tensor 'w': shape [2,?] is negative");
    int64_t deep[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    expect_initializer_error(9, deep, NULL, 0, IFD_ERR_UNSUPPORTED,
                             "tensor 'w': rank 9 exceeds the engine's maximum of 8");
}

static void test_raw_data_size_mismatch_is_refused(void)
{
    int64_t dims[2] = {2, 2};
    float twelve_bytes[3] = {1, 2, 3};
    expect_initializer_error(2, dims, twelve_bytes, sizeof(twelve_bytes), IFD_ERR_INVALID_MODEL,
                             "tensor 'w': raw_data has 12 bytes, shape [2,2] of float32 needs 16");
}

/* The claim costs a few bytes of dims: the loader must not allocate it
 * before seeing that the data is missing. 1.5e10 floats (60 GB) is under the
 * engine's per-tensor limit, so only the order of the checks protects. */
static void test_initializer_claiming_many_floats_without_data_allocates_nothing(void)
{
    int64_t trillion[1] = {1000000000000ll};
    expect_initializer_error(1, trillion, NULL, 0, IFD_ERR_INVALID_MODEL,
                             "tensor 'w': shape [1000000000000] is negative, overflows or is "
                             "too large");
    int64_t under_limit[1] = {15000000000ll};
    expect_initializer_error(1, under_limit, NULL, 0, IFD_ERR_INVALID_MODEL,
                             "tensor 'w': holds 0 values, shape [15000000000] needs 15000000000");
    float four[1] = {1};
    expect_initializer_error(1, under_limit, four, sizeof(four), IFD_ERR_INVALID_MODEL,
                             "tensor 'w': raw_data has 4 bytes, shape [15000000000] of float32 "
                             "needs 60000000000");
}

static void test_graph_input_with_huge_dim_loads_and_refuses_small_inputs(void)
{
    int64_t dims[1] = {1ll << 40};
    ifd_model *m = NULL;
    ifd_error err;
    CHECK_EQ_INT(mb_load(mb_identity_model(1, dims), NULL, &m, &err), IFD_OK);
    if (m) {
        CHECK_EQ_INT(ifd_model_input(m, 0)->type.dims[0], 1ll << 40);
        int64_t one[1] = {1};
        ifd_value *in[1] = {float_value(1, one, NULL)}, *out[1] = {NULL};
        CHECK_EQ_INT(run_once(m, in, out, &err), IFD_ERR_INVALID_ARGUMENT);
        CHECK_STR_CONTAINS(err.message, "input 'x': expected float32 [1099511627776], got float32 [1]");
        ifd_value_free(in[0]);
        /* and no caller can make a tensor of that shape */
        ifd_value *huge = NULL;
        CHECK_EQ_INT(ifd_value_new_tensor(IFD_FLOAT, 1, dims, &huge, &err),
                     IFD_ERR_INVALID_ARGUMENT);
        CHECK(huge == NULL);
    }
    ifd_model_free(m);
    mb_reset();
}

/* A declared shape nobody can count would overflow the shape arithmetic of
 * any operator that multiplies static dims in prepare(). */
static void test_graph_input_with_overflowing_dims_is_refused(void)
{
    int64_t dims[3] = {1ll << 40, 1ll << 40, 1ll << 40};
    ifd_model *m = NULL;
    ifd_error err;
    CHECK_EQ_INT(mb_load(mb_identity_model(3, dims), NULL, &m, &err), IFD_ERR_INVALID_MODEL);
    CHECK(m == NULL);
    CHECK_STR_CONTAINS(err.message, "value 'x': declared shape "
                                    "[1099511627776,1099511627776,1099511627776] has more "
                                    "elements than int64 can count");
    /* symbolic dims count as 1: [N, 2^40, 2^40] still overflows */
    int64_t symbolic[3] = {-1, 1ll << 40, 1ll << 40};
    CHECK_EQ_INT(mb_load(mb_identity_model(3, symbolic), NULL, &m, &err), IFD_ERR_INVALID_MODEL);
    CHECK_STR_CONTAINS(err.message, "value 'x': declared shape [?,1099511627776,1099511627776]");
    ifd_model_free(m);
    mb_reset();
}

/* ---- graph structure ----------------------------------------------------- */

static void expect_load_error(const Onnx__ModelProto *m, ifd_status want, const char *message)
{
    ifd_model *model = NULL;
    ifd_error err;
    CHECK_EQ_INT(mb_load(m, NULL, &model, &err), want);
    CHECK(model == NULL);
    CHECK_STR_CONTAINS(err.message, message);
    ifd_model_free(model);
}

static void test_cyclic_graph_error_names_the_cycle(void)
{
    int64_t d[1] = {2};
    Onnx__ModelProto *m = mb_model(8, 13);
    mb_input(m->graph, "x", IFD_FLOAT, 1, d);
    /* 'after' only reads from the cycle: it must not be blamed */
    mb_node(m->graph, "Relu", "after", "b", "c");
    mb_node(m->graph, "Add", "n1", "x,b", "a");
    mb_node(m->graph, "Neg", "n2", "a", "b");
    mb_output(m->graph, "c", IFD_FLOAT, 1, d);
    ifd_model *model = NULL;
    ifd_error err;
    CHECK_EQ_INT(mb_load(m, NULL, &model, &err), IFD_ERR_INVALID_MODEL);
    CHECK_STR_CONTAINS(err.message, "the graph has a cycle: ");
    CHECK_STR_CONTAINS(err.message, "Add 'n1' -> Neg 'n2'");
    CHECK(strstr(err.message, "after") == NULL);
    mb_reset();

    m = mb_model(8, 13);
    mb_node(m->graph, "Neg", "self", "a", "a");
    mb_output(m->graph, "a", IFD_FLOAT, 1, d);
    expect_load_error(m, IFD_ERR_INVALID_MODEL, "the graph has a cycle: Neg 'self' -> Neg 'self'");
    mb_reset();
}

static void test_undefined_input_is_named(void)
{
    int64_t d[1] = {2};
    Onnx__ModelProto *m = mb_model(8, 13);
    mb_input(m->graph, "x", IFD_FLOAT, 1, d);
    mb_node(m->graph, "Add", "n1", "x,nope", "y");
    mb_output(m->graph, "y", IFD_FLOAT, 1, d);
    expect_load_error(m, IFD_ERR_INVALID_MODEL,
                      "Add node 'n1': input 'nope' is not produced by any node, initializer or "
                      "graph input");
    mb_reset();

    m = mb_identity_model(1, d);
    mb_output(m->graph, "ghost", IFD_FLOAT, 1, d);
    expect_load_error(m, IFD_ERR_INVALID_MODEL,
                      "graph output 'ghost' is not produced by any node, initializer or input");
    mb_reset();
}

static void test_names_defined_twice_are_refused(void)
{
    int64_t d[1] = {2};
    float w[2] = {1, 2};
    Onnx__ModelProto *m = mb_identity_model(1, d);
    mb_node(m->graph, "Neg", "n2", "x", "y");
    expect_load_error(m, IFD_ERR_INVALID_MODEL, "Neg node 'n2': output 'y' is already defined elsewhere");
    mb_reset();

    m = mb_identity_model(1, d);
    mb_node(m->graph, "Neg", "n2", "y", "x");
    expect_load_error(m, IFD_ERR_INVALID_MODEL, "Neg node 'n2': output 'x' is already defined elsewhere");
    mb_reset();

    m = mb_identity_model(1, d);
    mb_input(m->graph, "x", IFD_FLOAT, 1, d);
    expect_load_error(m, IFD_ERR_INVALID_MODEL, "graph input 1 'x' is unnamed or defined twice");
    mb_reset();

    m = mb_identity_model(1, d);
    mb_initializer(m->graph, mb_tensor("w", IFD_FLOAT, 1, d, w, sizeof(w)));
    mb_initializer(m->graph, mb_tensor("w", IFD_FLOAT, 1, d, w, sizeof(w)));
    expect_load_error(m, IFD_ERR_INVALID_MODEL, "initializer 'w' is defined twice");
    mb_reset();
}

static void test_graph_output_listed_twice_gives_two_equal_values(void)
{
    int64_t d[1] = {2};
    float x[2] = {1.5f, -2};
    Onnx__ModelProto *mp = mb_identity_model(1, d);
    mb_output(mp->graph, "y", IFD_FLOAT, 1, d);
    ifd_model *m = NULL;
    ifd_error err;
    CHECK_EQ_INT(mb_load(mp, NULL, &m, &err), IFD_OK);
    if (m) {
        ifd_value *in[1] = {float_value(1, d, x)}, *out[2] = {NULL, NULL};
        CHECK_EQ_INT(ifd_model_output_count(m), 2);
        CHECK_EQ_INT(run_once(m, in, out, &err), IFD_OK);
        if (out[0] && out[1]) {
            CHECK(out[0] != out[1] && out[0]->tensor.data != out[1]->tensor.data);
            CHECK_NEAR(((float *)out[0]->tensor.data)[1], -2, 0);
            CHECK_NEAR(((float *)out[1]->tensor.data)[0], 1.5, 0);
        }
        ifd_value_free(in[0]);
        ifd_value_free(out[0]);
        ifd_value_free(out[1]);
    }
    ifd_model_free(m);
    mb_reset();
}

/* ---- nesting ------------------------------------------------------------- */

/* Protobuf written back to front, so that nesting N levels costs O(N): each
 * wrap prepends a tag and a length to everything written so far. */
typedef struct rev_writer {
    uint8_t *buf;
    size_t cap, pos;
} rev_writer;

static void rev_bytes(rev_writer *w, const void *data, size_t n)
{
    w->pos -= n;
    memcpy(w->buf + w->pos, data, n);
}

static void rev_varint(rev_writer *w, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    do {
        tmp[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    rev_bytes(w, tmp, n);
}

/* Everything from pos to the end becomes field `field` (length-delimited). */
static void rev_wrap(rev_writer *w, unsigned field)
{
    rev_varint(w, w->cap - w->pos);
    rev_varint(w, (uint64_t)field << 3 | 2);
}

static void rev_string(rev_writer *w, unsigned field, const char *s)
{
    rev_bytes(w, s, strlen(s));
    rev_varint(w, strlen(s));
    rev_varint(w, (uint64_t)field << 3 | 2);
}

/* A ModelProto whose graph holds an If node whose then_branch attribute
 * holds a graph holding an If node ... `levels` graphs deep. Field numbers
 * from proto/onnx/onnx-ml.proto. The result lives in the arena. */
static uint8_t *nested_graphs(int levels, size_t *len)
{
    rev_writer w;
    w.cap = w.pos = (size_t)levels * 48 + 64;
    w.buf = mb_alloc(w.cap);
    for (int i = 0; i < levels; i++) {
        /* the content so far is a GraphProto: make it an attribute's g */
        rev_wrap(&w, 6);                     /* AttributeProto.g */
        rev_varint(&w, 5);                   /* GRAPH */
        rev_varint(&w, 20u << 3);            /* AttributeProto.type */
        rev_string(&w, 1, "then_branch");    /* AttributeProto.name */
        rev_wrap(&w, 5);                     /* NodeProto.attribute */
        rev_string(&w, 4, "If");             /* NodeProto.op_type */
        rev_wrap(&w, 1);                     /* GraphProto.node */
    }
    rev_wrap(&w, 7);                         /* ModelProto.graph */
    uint8_t opset[4] = {0x42, 0x02, 0x10, 13}; /* opset_import { version: 13 } */
    uint8_t ir[2] = {0x08, 8};                 /* ir_version: 8 */
    /* field order does not matter to protobuf: put the header first */
    rev_bytes(&w, opset, sizeof(opset));
    rev_bytes(&w, ir, sizeof(ir));
    *len = w.cap - w.pos;
    return w.buf + w.pos;
}

static void test_graphs_nested_10000_deep_are_refused_by_the_depth_guard(void)
{
    size_t len;
    uint8_t *buf = nested_graphs(10000, &len);
    ifd_model *m = NULL;
    ifd_error err;
    CHECK_EQ_INT(ifd_model_load_memory(buf, len, NULL, NULL, &m, &err), IFD_ERR_INVALID_MODEL);
    CHECK(m == NULL);
    CHECK_STR_CONTAINS(err.message, "model: messages nested deeper than 64 levels");
    mb_reset();

    /* five levels is an ordinary model: past the guard, refused only because
     * the empty inner graphs' If nodes have no inputs or outputs to run */
    buf = nested_graphs(5, &len);
    ifd_status st = ifd_model_load_memory(buf, len, NULL, NULL, &m, &err);
    if (st == IFD_OK)
        ifd_model_free(m);
    else
        CHECK(strstr(err.message, "nested") == NULL);
    mb_reset();
}

static void test_sequences_nested_10000_deep_are_refused(void)
{
    rev_writer w;
    w.cap = w.pos = 10000 * 8 + 16;
    w.buf = mb_alloc(w.cap);
    for (int i = 0; i < 10000; i++) {
        rev_wrap(&w, 5);                     /* SequenceProto.sequence_values */
        rev_varint(&w, 3);                   /* elem_type SEQUENCE */
        rev_varint(&w, 2u << 3);
    }
    ifd_type_info want;
    memset(&want, 0, sizeof(want));
    want.kind = IFD_VALUE_SEQUENCE;
    ifd_value *v = NULL;
    ifd_error err;
    CHECK_EQ_INT(ifd_value_decode_pb(w.buf + w.pos, w.cap - w.pos, &want, &v, &err),
                 IFD_ERR_INVALID_ARGUMENT);
    CHECK(v == NULL);
    CHECK_STR_CONTAINS(err.message, "sequence: messages nested deeper than 64 levels");
    mb_reset();
}

/* ---- versions and operators ---------------------------------------------- */

static void test_ir_versions_outside_the_supported_range_are_refused(void)
{
    int64_t d[1] = {2};
    Onnx__ModelProto *m = mb_identity_model(1, d);
    m->ir_version = 11;
    expect_load_error(m, IFD_ERR_UNSUPPORTED, "IR version 11 is not supported (supported: 3 to 10)");
    m->ir_version = 99;
    expect_load_error(m, IFD_ERR_UNSUPPORTED, "IR version 99 is not supported (supported: 3 to 10)");
    m->ir_version = 2;
    expect_load_error(m, IFD_ERR_UNSUPPORTED, "IR version 2 is not supported");
    m->has_ir_version = 0;
    expect_load_error(m, IFD_ERR_UNSUPPORTED, "IR version 0 is not supported");
    mb_reset();
}

static void test_ir_versions_9_and_10_with_opset_21_load_and_run(void)
{
    int64_t d[1] = {2};
    for (int64_t ir = 9; ir <= 10; ir++) {
        Onnx__ModelProto *m = mb_identity_model(1, d);
        m->ir_version = ir;
        m->opset_import[0]->version = 21;
        ifd_model *model = NULL;
        ifd_error err;
        CHECK_EQ_INT(mb_load(m, NULL, &model, &err), IFD_OK);
        if (model) {
            CHECK_EQ_INT(ifd_model_ir_version(model), ir);
            ifd_model_free(model);
        } else {
            fprintf(stderr, "  IR %lld: %s\n", (long long)ir, err.message);
        }
        mb_reset();
    }
}

static void test_opset_newer_than_the_engine_is_refused(void)
{
    int64_t d[1] = {2};
    Onnx__ModelProto *m = mb_identity_model(1, d);
    m->opset_import[0]->version = 22;
    expect_load_error(m, IFD_ERR_UNSUPPORTED, "ai.onnx opset 22 is not supported (supported: 1 to 21)");
    m->opset_import[0]->version = 99;
    expect_load_error(m, IFD_ERR_UNSUPPORTED, "ai.onnx opset 99 is not supported (supported: 1 to 21)");
    m->opset_import[0]->version = 0;
    expect_load_error(m, IFD_ERR_UNSUPPORTED, "ai.onnx opset 0 is not supported (supported: 1 to 21)");
    mb_reset();
}

static void test_describe_only_lists_operators_of_a_too_new_opset(void)
{
    int64_t d[1] = {2};
    Onnx__ModelProto *m = mb_identity_model(1, d);
    m->opset_import[0]->version = 22;
    ifd_load_options options = {.describe_only = 1};
    ifd_model *model = NULL;
    ifd_error err;
    CHECK_EQ_INT(mb_load(m, &options, &model, &err), IFD_OK);
    if (model) {
        CHECK_EQ_INT(ifd_model_unsupported_count(model), 1);
        ifd_model_free(model);
    }
    mb_reset();
}

static Onnx__ModelProto *unsupported_ops_model(void)
{
    int64_t d[1] = {2};
    Onnx__ModelProto *m = mb_model(8, 13);
    mb_add_opset(m, "com.example", 1);
    mb_input(m->graph, "x", IFD_FLOAT, 1, d);
    mb_node(m->graph, "NoSuchOp", "a", "x", "a");
    mb_node(m->graph, "Identity", "ok", "a", "b");
    mb_node(m->graph, "NoSuchOp", "again", "b", "c")->domain = mb_str("ai.onnx");
    mb_node(m->graph, "Custom", "custom", "c", "e")->domain = mb_str("com.example");
    mb_node(m->graph, "Other", "other", "e", "y")->domain = mb_str("org.missing");
    mb_output(m->graph, "y", IFD_FLOAT, 1, d);
    return m;
}

static void test_unsupported_operators_are_all_listed_in_one_message(void)
{
    expect_load_error(unsupported_ops_model(), IFD_ERR_UNSUPPORTED,
                      "model uses 3 unsupported operators: NoSuchOp (ai.onnx opset 13), Custom "
                      "(com.example opset 1: domain not supported), Other (domain org.missing "
                      "not imported)");
    mb_reset();
}

static void test_describe_only_lists_unsupported_operators_and_refuses_sessions(void)
{
    ifd_load_options options = {.describe_only = 1};
    ifd_model *m = NULL;
    ifd_error err;
    CHECK_EQ_INT(mb_load(unsupported_ops_model(), &options, &m, &err), IFD_OK);
    if (m) {
        CHECK_EQ_INT(ifd_model_unsupported_count(m), 3);
        ifd_unsupported_op u0 = ifd_model_unsupported(m, 0), u1 = ifd_model_unsupported(m, 1),
                           u2 = ifd_model_unsupported(m, 2);
        CHECK(strcmp(u0.op_type, "NoSuchOp") == 0 && strcmp(u0.domain, "") == 0);
        CHECK_EQ_INT(u0.opset, 13);
        CHECK(strcmp(u1.op_type, "Custom") == 0 && strcmp(u1.domain, "com.example") == 0);
        CHECK_EQ_INT(u1.opset, 1);
        CHECK(strcmp(u2.op_type, "Other") == 0 && strcmp(u2.domain, "org.missing") == 0);
        CHECK_EQ_INT(u2.opset, -1);
        CHECK_EQ_INT(ifd_model_node_count(m), 5);
        CHECK_EQ_INT(ifd_model_input_count(m), 1);
        CHECK_EQ_INT(ifd_model_output_count(m), 1);
        ifd_session *s = NULL;
        CHECK_EQ_INT(ifd_session_create(m, NULL, &s, &err), IFD_ERR_UNSUPPORTED);
        CHECK(s == NULL);
        CHECK_STR_CONTAINS(err.message, "unsupported operators");
    }
    ifd_model_free(m);
    mb_reset();
}

/* So many unsupported operators that their list cannot fit in one error
 * message: the message must say how many it left out rather than stop
 * mid-name. */
static void test_long_unsupported_list_says_what_it_left_out(void)
{
    int64_t d[1] = {2};
    Onnx__ModelProto *m = mb_model(8, 13);
    mb_input(m->graph, "x", IFD_FLOAT, 1, d);
    char prev[32] = "x", op[48], out[32];
    for (int i = 0; i < 60; i++) {
        snprintf(op, sizeof(op), "UnknownOperatorNumber%02d", i);
        snprintf(out, sizeof(out), "v%d", i);
        mb_node(m->graph, op, out, prev, out);
        snprintf(prev, sizeof(prev), "%s", out);
    }
    mb_output(m->graph, prev, IFD_FLOAT, 1, d);
    ifd_model *model = NULL;
    ifd_error err;
    CHECK_EQ_INT(mb_load(m, NULL, &model, &err), IFD_ERR_UNSUPPORTED);
    CHECK_STR_CONTAINS(err.message, "model uses 60 unsupported operators: UnknownOperatorNumber00 "
                                    "(ai.onnx opset 13), UnknownOperatorNumber01");
    CHECK_STR_CONTAINS(err.message, " more");
    CHECK(strlen(err.message) < sizeof(err.message) - 1);
    mb_reset();
}

/* Load time must stay linear in the model's size whatever the names: a
 * lookup per node over all distinct operators made 100,000 made-up operator
 * names (2.7 MB) take minutes. The alarm turns a hang into a failure. */
static void test_many_distinct_operators_load_in_linear_time(void)
{
    enum { N = 100000 };
    int64_t d[1] = {1};
    Onnx__ModelProto *mp = mb_model(8, 13);
    mb_input(mp->graph, "x", IFD_FLOAT, 1, d);
    char prev[32] = "x", op[32], out[32];
    for (int i = 0; i < N; i++) {
        snprintf(op, sizeof(op), "Op%d", i);
        snprintf(out, sizeof(out), "v%d", i);
        mb_node(mp->graph, op, "", prev, out);
        memcpy(prev, out, sizeof(out));
    }
    mb_output(mp->graph, prev, IFD_FLOAT, 1, d);
    ifd_load_options options = {.describe_only = 1};
    ifd_model *m = NULL;
    ifd_error err;
    struct timespec t0, t1;
    alarm(120);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK_EQ_INT(mb_load(mp, &options, &m, &err), IFD_OK);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    alarm(0);
    double seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    CHECK(seconds < 30);
    if (m) {
        CHECK_EQ_INT(ifd_model_unsupported_count(m), N);
        CHECK_EQ_INT(ifd_model_op_count(m), N);
        CHECK(strcmp(ifd_model_unsupported(m, N - 1).op_type, "Op99999") == 0);
    }
    ifd_model_free(m);
    mb_reset();

    /* each node looks its domain up among the imports: keep them few */
    mp = mb_identity_model(1, d);
    for (int i = 0; i < 300; i++) {
        snprintf(op, sizeof(op), "org.domain%d", i);
        mb_add_opset(mp, op, 1);
    }
    expect_load_error(mp, IFD_ERR_UNSUPPORTED,
                      "the model imports 301 opsets; at most 256 are supported");
    mb_reset();
}

/* Names crafted so that FNV-1a (the loader's name hash before it was seeded)
 * puts them all in one bucket of a 2^18-slot table: the low 18 bits of FNV-1a
 * depend only on the low 18 bits of its state, and multiplying by the odd
 * prime is invertible mod 2^18, so three free bytes at the end of a name can
 * steer it to any target. With linear probing, 100,000 such graph inputs
 * made loading quadratic. */
static uint64_t fnv1a_step(uint64_t h, unsigned char c) { return (h ^ c) * 1099511628211ull; }

static bool colliding_name(int index, uint64_t target, char *out)
{
    const uint64_t mask = (1u << 18) - 1;
    uint64_t inverse = 1099511628211ull; /* p^-1 mod 2^64 by Newton's iteration */
    for (int i = 0; i < 6; i++)
        inverse *= 2 - 1099511628211ull * inverse;
    int n = snprintf(out, 32, "in%06d", index);
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < n; i++)
        h = fnv1a_step(h, (unsigned char)out[i]);
    uint64_t want = (target * inverse) & mask; /* the state before the last multiply */
    for (unsigned c1 = 1; c1 < 256; c1++)
        for (unsigned c2 = 1; c2 < 256; c2++) {
            uint64_t x = fnv1a_step(fnv1a_step(h, (unsigned char)c1), (unsigned char)c2);
            uint64_t c3 = (x ^ want) & mask;
            if (c3 == 0 || c3 > 255 || c1 == ',' || c2 == ',' || c3 == ',')
                continue;
            out[n] = (char)c1;
            out[n + 1] = (char)c2;
            out[n + 2] = (char)c3;
            out[n + 3] = '\0';
            return true;
        }
    return false;
}

static void test_names_crafted_to_collide_load_in_linear_time(void)
{
    enum { N = 100000 };
    int64_t d[1] = {1};
    char name[32];
    Onnx__ModelProto *mp = mb_model(8, 13);
    int made = 0;
    for (int i = 0; i < N; i++)
        if (colliding_name(i, 12345, name)) {
            mb_input(mp->graph, name, IFD_FLOAT, 1, d);
            made++;
        }
    CHECK(made > N * 9 / 10);
    mb_output(mp->graph, mp->graph->input[0]->name, IFD_FLOAT, 1, d);
    ifd_model *m = NULL;
    ifd_error err;
    struct timespec t0, t1;
    alarm(120);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK_EQ_INT(mb_load(mp, NULL, &m, &err), IFD_OK);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    alarm(0);
    double seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    CHECK(seconds < 30);
    if (m)
        CHECK_EQ_INT(ifd_model_input_count(m), made);
    ifd_model_free(m);
    mb_reset();
}

/* ---- constants ----------------------------------------------------------- */

static void test_graph_input_that_is_also_an_initializer_is_a_constant(void)
{
    int64_t d[1] = {3};
    float w[3] = {10, 20, 30}, x[3] = {1, 2, 3};
    Onnx__ModelProto *mp = mb_model(8, 13);
    mb_input(mp->graph, "x", IFD_FLOAT, 1, d);
    mb_input(mp->graph, "w", IFD_FLOAT, 1, d);
    mb_initializer(mp->graph, mb_tensor("w", IFD_FLOAT, 1, d, w, sizeof(w)));
    mb_node(mp->graph, "Add", "add", "x,w", "y");
    mb_output(mp->graph, "y", IFD_FLOAT, 1, d);
    ifd_model *m = NULL;
    ifd_error err;
    CHECK_EQ_INT(mb_load(mp, NULL, &m, &err), IFD_OK);
    if (m) {
        CHECK_EQ_INT(ifd_model_input_count(m), 1);
        CHECK(strcmp(ifd_model_input(m, 0)->name, "x") == 0);
        ifd_value *in[1] = {float_value(1, d, x)}, *out[1] = {NULL};
        CHECK_EQ_INT(run_once(m, in, out, &err), IFD_OK);
        if (out[0]) {
            CHECK_NEAR(((float *)out[0]->tensor.data)[0], 11, 0);
            CHECK_NEAR(((float *)out[0]->tensor.data)[2], 33, 0);
        }
        ifd_value_free(in[0]);
        ifd_value_free(out[0]);
    }
    ifd_model_free(m);
    mb_reset();
}

static void test_constant_nodes_are_folded_in_every_variant(void)
{
    int64_t d2[1] = {2}, d23[2] = {2, 3};
    float values[6] = {1, 2, 3, 4, 5, 6}, pair[2] = {0.5f, -0.5f};
    int64_t ints[2] = {7, -7};
    const char *strings[2] = {"a", "bc"};
    Onnx__ModelProto *mp = mb_model(8, 13);
    Onnx__GraphProto *g = mp->graph;
    mb_attr_tensor(mb_node(g, "Constant", "c_tensor", "", "t"), "value",
                   mb_tensor("", IFD_FLOAT, 2, d23, values, sizeof(values)));
    mb_attr_float(mb_node(g, "Constant", "c_float", "", "f"), "value_float", 2.5f);
    mb_attr_floats(mb_node(g, "Constant", "c_floats", "", "fs"), "value_floats", 2, pair);
    mb_attr_int(mb_node(g, "Constant", "c_int", "", "i"), "value_int", -3);
    mb_attr_ints(mb_node(g, "Constant", "c_ints", "", "is"), "value_ints", 2, ints);
    mb_attr_string(mb_node(g, "Constant", "c_string", "", "s"), "value_string", "hello");
    mb_attr_strings(mb_node(g, "Constant", "c_strings", "", "ss"), "value_strings", 2, strings);
    /* a Constant read by a computing node, before it in file order */
    mb_input(g, "x", IFD_FLOAT, 1, d2);
    mb_node(g, "Add", "add", "x,later", "sum");
    mb_attr_floats(mb_node(g, "Constant", "c_later", "", "later"), "value_floats", 2, pair);
    const char *outs[8] = {"t", "f", "fs", "i", "is", "s", "ss", "sum"};
    for (int k = 0; k < 8; k++)
        mb_output(g, outs[k], IFD_FLOAT, -1, NULL);
    ifd_model *m = NULL;
    ifd_error err;
    CHECK_EQ_INT(mb_load(mp, NULL, &m, &err), IFD_OK);
    if (m) {
        float x[2] = {1, 1};
        ifd_value *in[1] = {float_value(1, d2, x)}, *out[8] = {0};
        CHECK_EQ_INT(ifd_model_node_count(m), 9);
        CHECK_EQ_INT(run_once(m, in, out, &err), IFD_OK);
        if (out[7]) {
            const ifd_tensor *t = &out[0]->tensor;
            CHECK(t->dtype == IFD_FLOAT && t->rank == 2 && t->dims[1] == 3);
            CHECK_NEAR(((float *)t->data)[5], 6, 0);
            CHECK(out[1]->tensor.rank == 0);
            CHECK_NEAR(((float *)out[1]->tensor.data)[0], 2.5, 0);
            CHECK_NEAR(((float *)out[2]->tensor.data)[1], -0.5, 0);
            CHECK(out[3]->tensor.dtype == IFD_INT64 && out[3]->tensor.rank == 0);
            CHECK_EQ_INT(((int64_t *)out[3]->tensor.data)[0], -3);
            CHECK_EQ_INT(((int64_t *)out[4]->tensor.data)[1], -7);
            CHECK(out[5]->tensor.dtype == IFD_STRING);
            CHECK(((ifd_string *)out[5]->tensor.data)[0].size == 5 &&
                  memcmp(((ifd_string *)out[5]->tensor.data)[0].data, "hello", 5) == 0);
            CHECK(((ifd_string *)out[6]->tensor.data)[1].size == 2);
            CHECK_NEAR(((float *)out[7]->tensor.data)[0], 1.5, 0);
            CHECK_NEAR(((float *)out[7]->tensor.data)[1], 0.5, 0);
        }
        ifd_value_free(in[0]);
        for (int k = 0; k < 8; k++)
            ifd_value_free(out[k]);
    }
    ifd_model_free(m);
    mb_reset();
}

static void test_malformed_constant_nodes_are_refused(void)
{
    int64_t d[1] = {2};
    float pair[2] = {1, 2}, three[3] = {1, 2, 3};
    Onnx__ModelProto *m = mb_model(8, 13);
    Onnx__NodeProto *c = mb_node(m->graph, "Constant", "two", "", "y");
    mb_attr_float(c, "value_float", 1);
    mb_attr_int(c, "value_int", 1);
    mb_output(m->graph, "y", IFD_FLOAT, 1, d);
    expect_load_error(m, IFD_ERR_INVALID_MODEL,
                      "Constant node 'two': needs exactly one value attribute");
    mb_reset();

    m = mb_identity_model(1, d);
    mb_attr_floats(mb_node(m->graph, "Constant", "fed", "x", "z"), "value_floats", 2, pair);
    expect_load_error(m, IFD_ERR_INVALID_MODEL, "Constant node 'fed': needs no inputs and one output");
    mb_reset();

    m = mb_model(8, 13);
    mb_attr(mb_node(m->graph, "Constant", "sparse", "", "y"), "sparse_value",
            ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__SPARSE_TENSOR);
    mb_output(m->graph, "y", IFD_FLOAT, 1, d);
    expect_load_error(m, IFD_ERR_UNSUPPORTED,
                      "Constant node 'sparse': attribute 'sparse_value' is not supported");
    mb_reset();

    m = mb_model(8, 13);
    mb_attr_tensor(mb_node(m->graph, "Constant", "short", "", "y"), "value",
                   mb_tensor("v", IFD_FLOAT, 1, d, three, sizeof(three)));
    mb_output(m->graph, "y", IFD_FLOAT, 1, d);
    expect_load_error(m, IFD_ERR_INVALID_MODEL,
                      "tensor 'v': raw_data has 12 bytes, shape [2] of float32 needs 8");
    mb_reset();
}

/* ---- sessions ------------------------------------------------------------ */

static void test_session_refuses_inputs_of_the_wrong_type_naming_the_input(void)
{
    int64_t d[2] = {2, 3}, sym[2] = {-1, 3};
    Onnx__ModelProto *mp = mb_identity_model(2, d);
    ifd_model *m = NULL;
    ifd_error err;
    CHECK_EQ_INT(mb_load(mp, NULL, &m, &err), IFD_OK);
    if (m) {
        ifd_value *out[1] = {NULL}, *in[1] = {NULL};
        CHECK_EQ_INT(ifd_value_new_tensor(IFD_INT64, 2, d, &in[0], &err), IFD_OK);
        CHECK_EQ_INT(run_once(m, in, out, &err), IFD_ERR_INVALID_ARGUMENT);
        CHECK_STR_CONTAINS(err.message, "input 'x': expected float32 [2,3], got int64 [2,3]");
        ifd_value_free(in[0]);

        int64_t flat[1] = {6}, swapped[2] = {3, 2};
        in[0] = float_value(1, flat, NULL);
        CHECK_EQ_INT(run_once(m, in, out, &err), IFD_ERR_INVALID_ARGUMENT);
        CHECK_STR_CONTAINS(err.message, "input 'x': expected float32 [2,3], got float32 [6]");
        ifd_value_free(in[0]);

        in[0] = float_value(2, swapped, NULL);
        CHECK_EQ_INT(run_once(m, in, out, &err), IFD_ERR_INVALID_ARGUMENT);
        CHECK_STR_CONTAINS(err.message, "input 'x': expected float32 [2,3], got float32 [3,2]");
        ifd_value_free(in[0]);

        in[0] = NULL;
        CHECK_EQ_INT(run_once(m, in, out, &err), IFD_ERR_INVALID_ARGUMENT);
        CHECK_STR_CONTAINS(err.message, "input 'x' is missing");

        ifd_value sequence;
        memset(&sequence, 0, sizeof(sequence));
        sequence.kind = IFD_VALUE_SEQUENCE;
        in[0] = &sequence;
        CHECK_EQ_INT(run_once(m, in, out, &err), IFD_ERR_INVALID_ARGUMENT);
        CHECK_STR_CONTAINS(err.message, "input 'x': expected a tensor, got a sequence");
        CHECK(out[0] == NULL);
    }
    ifd_model_free(m);
    mb_reset();

    /* a symbolic dim takes any size, the fixed one still binds */
    CHECK_EQ_INT(mb_load(mb_identity_model(2, sym), NULL, &m, &err), IFD_OK);
    if (m) {
        int64_t five[2] = {5, 3}, bad[2] = {5, 4};
        ifd_value *in[1] = {float_value(2, five, NULL)}, *out[1] = {NULL};
        CHECK_EQ_INT(run_once(m, in, out, &err), IFD_OK);
        CHECK(out[0] && out[0]->tensor.dims[0] == 5);
        ifd_value_free(out[0]);
        ifd_value_free(in[0]);
        in[0] = float_value(2, bad, NULL);
        out[0] = NULL;
        CHECK_EQ_INT(run_once(m, in, out, &err), IFD_ERR_INVALID_ARGUMENT);
        CHECK_STR_CONTAINS(err.message, "input 'x': expected float32 [?,3], got float32 [5,4]");
        ifd_value_free(in[0]);
    }
    ifd_model_free(m);
    mb_reset();
}

/* Operators memset/memcpy their outputs; with zero bytes at NULL that is
 * undefined behaviour, so even an empty output has a buffer. */
static void test_empty_outputs_get_a_buffer(void)
{
    int64_t empty[2] = {0, 3};
    ifd_model *m = NULL;
    ifd_error err;
    CHECK_EQ_INT(mb_load(mb_identity_model(2, empty), NULL, &m, &err), IFD_OK);
    if (m) {
        ifd_value *in[1] = {float_value(2, empty, NULL)}, *out[1] = {NULL};
        for (int run = 0; run < 2; run++) {
            CHECK_EQ_INT(run_once(m, in, out, &err), IFD_OK);
            CHECK(out[0] && out[0]->tensor.data != NULL && out[0]->tensor.dims[1] == 3);
            ifd_value_free(out[0]);
            out[0] = NULL;
        }
        ifd_value_free(in[0]);
    }
    ifd_model_free(m);
    mb_reset();
}

/* Maps and sequences reach operators that trust their declared element
 * types, so a value of other types must stop at the session's door. The
 * graphs here pass the input straight through as the output. */
static Onnx__TypeProto *mb_tensor_type(ifd_dtype dtype)
{
    Onnx__TypeProto *t = mb_alloc(sizeof(*t));
    onnx__type_proto__init(t);
    t->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    t->tensor_type = mb_alloc(sizeof(*t->tensor_type));
    onnx__type_proto__tensor__init(t->tensor_type);
    t->tensor_type->has_elem_type = 1;
    t->tensor_type->elem_type = (int32_t)dtype;
    return t;
}

static Onnx__ModelProto *pass_through_model(Onnx__TypeProto *type)
{
    Onnx__ModelProto *m = mb_model(8, 13);
    Onnx__ValueInfoProto *vi = mb_alloc(sizeof(*vi));
    onnx__value_info_proto__init(vi);
    vi->name = mb_str("v");
    vi->type = type;
    MB_PUSH(m->graph->input, m->graph->n_input, vi);
    MB_PUSH(m->graph->output, m->graph->n_output, vi);
    return m;
}

static ifd_value *small_map(ifd_dtype key_dtype, ifd_dtype value_dtype)
{
    int64_t two[1] = {2};
    ifd_value *v = calloc(1, sizeof(*v));
    ifd_value *k = NULL, *x = NULL;
    ifd_error err;
    v->kind = IFD_VALUE_MAP;
    if (ifd_value_new_tensor(key_dtype, 1, two, &k, &err) != IFD_OK ||
        ifd_value_new_tensor(value_dtype, 1, two, &x, &err) != IFD_OK)
        abort();
    v->map_keys = k->tensor;
    v->map_values = x->tensor;
    free(k);
    free(x);
    return v;
}

static void test_session_refuses_maps_and_sequences_of_other_types(void)
{
    Onnx__TypeProto *map_type = mb_alloc(sizeof(*map_type));
    onnx__type_proto__init(map_type);
    map_type->value_case = ONNX__TYPE_PROTO__VALUE_MAP_TYPE;
    map_type->map_type = mb_alloc(sizeof(*map_type->map_type));
    onnx__type_proto__map__init(map_type->map_type);
    map_type->map_type->has_key_type = 1;
    map_type->map_type->key_type = IFD_INT64;
    map_type->map_type->value_type = mb_tensor_type(IFD_FLOAT);
    ifd_model *m = NULL;
    ifd_error err;
    CHECK_EQ_INT(mb_load(pass_through_model(map_type), NULL, &m, &err), IFD_OK);
    if (m) {
        ifd_value *in[1] = {small_map(IFD_INT64, IFD_FLOAT)}, *out[1] = {NULL};
        CHECK_EQ_INT(run_once(m, in, out, &err), IFD_OK);
        CHECK(out[0] && out[0]->kind == IFD_VALUE_MAP && out[0]->map_keys.dims[0] == 2);
        ifd_value_free(out[0]);
        out[0] = NULL;
        ifd_value_free(in[0]);
        in[0] = small_map(IFD_STRING, IFD_FLOAT);
        CHECK_EQ_INT(run_once(m, in, out, &err), IFD_ERR_INVALID_ARGUMENT);
        CHECK_STR_CONTAINS(err.message,
                           "input 'v': the map should map int64 to float32, got string to float32");
        ifd_value_free(in[0]);
        in[0] = small_map(IFD_INT64, IFD_DOUBLE);
        CHECK_EQ_INT(run_once(m, in, out, &err), IFD_ERR_INVALID_ARGUMENT);
        CHECK_STR_CONTAINS(err.message, "got int64 to float64");
        /* keys and values of different lengths */
        in[0]->map_values.dtype = IFD_FLOAT;
        in[0]->map_values.dims[0] = 1;
        CHECK_EQ_INT(run_once(m, in, out, &err), IFD_ERR_INVALID_ARGUMENT);
        CHECK_STR_CONTAINS(err.message, "input 'v': the map needs 1-D keys and values of one length");
        ifd_value_free(in[0]);
    }
    ifd_model_free(m);
    mb_reset();

    Onnx__TypeProto *seq_type = mb_alloc(sizeof(*seq_type));
    onnx__type_proto__init(seq_type);
    seq_type->value_case = ONNX__TYPE_PROTO__VALUE_SEQUENCE_TYPE;
    seq_type->sequence_type = mb_alloc(sizeof(*seq_type->sequence_type));
    onnx__type_proto__sequence__init(seq_type->sequence_type);
    seq_type->sequence_type->elem_type = mb_tensor_type(IFD_FLOAT);
    CHECK_EQ_INT(mb_load(pass_through_model(seq_type), NULL, &m, &err), IFD_OK);
    if (m) {
        int64_t d[1] = {3};
        ifd_value *items[2] = {float_value(1, d, NULL), NULL};
        CHECK_EQ_INT(ifd_value_new_tensor(IFD_INT64, 1, d, &items[1], &err), IFD_OK);
        ifd_value seq;
        memset(&seq, 0, sizeof(seq));
        seq.kind = IFD_VALUE_SEQUENCE;
        seq.items = items;
        seq.length = 1;
        ifd_value *in[1] = {&seq}, *out[1] = {NULL};
        CHECK_EQ_INT(run_once(m, in, out, &err), IFD_OK);
        CHECK(out[0] && out[0]->kind == IFD_VALUE_SEQUENCE && out[0]->length == 1);
        ifd_value_free(out[0]);
        out[0] = NULL;
        seq.length = 2;
        CHECK_EQ_INT(run_once(m, in, out, &err), IFD_ERR_INVALID_ARGUMENT);
        CHECK_STR_CONTAINS(err.message,
                           "input 'v': sequence item 1 should be a float32 tensor, got int64");
        ifd_value *map = small_map(IFD_INT64, IFD_FLOAT);
        ifd_value *tmp = items[1];
        items[1] = map;
        CHECK_EQ_INT(run_once(m, in, out, &err), IFD_ERR_INVALID_ARGUMENT);
        CHECK_STR_CONTAINS(err.message, "input 'v': sequence item 1 should be a tensor");
        items[1] = tmp;
        ifd_value_free(map);
        ifd_value_free(items[0]);
        ifd_value_free(items[1]);
    }
    ifd_model_free(m);
    mb_reset();
}

static void test_maps_with_non_integer_keys_are_refused(void)
{
    Onnx__TypeProto *map_type = mb_alloc(sizeof(*map_type));
    onnx__type_proto__init(map_type);
    map_type->value_case = ONNX__TYPE_PROTO__VALUE_MAP_TYPE;
    map_type->map_type = mb_alloc(sizeof(*map_type->map_type));
    onnx__type_proto__map__init(map_type->map_type);
    map_type->map_type->has_key_type = 1;
    map_type->map_type->key_type = IFD_FLOAT;
    map_type->map_type->value_type = mb_tensor_type(IFD_FLOAT16);
    expect_load_error(pass_through_model(map_type), IFD_ERR_INVALID_MODEL,
                      "value 'v': map keys of type float32 are not allowed");
    mb_reset();
}

/* Whatever an operator does with a value of the wrong kind, the caller gets
 * a reason naming the node (found by the fuzzer: Conv given a map as X
 * failed its run without a message). */
static void test_operator_given_a_map_fails_naming_the_node(void)
{
    Onnx__TypeProto *map_type = mb_alloc(sizeof(*map_type));
    onnx__type_proto__init(map_type);
    map_type->value_case = ONNX__TYPE_PROTO__VALUE_MAP_TYPE;
    map_type->map_type = mb_alloc(sizeof(*map_type->map_type));
    onnx__type_proto__map__init(map_type->map_type);
    map_type->map_type->has_key_type = 1;
    map_type->map_type->key_type = IFD_INT64;
    map_type->map_type->value_type = mb_tensor_type(IFD_FLOAT);
    Onnx__ModelProto *mp = mb_model(8, 11);
    Onnx__ValueInfoProto *vi = mb_alloc(sizeof(*vi));
    onnx__value_info_proto__init(vi);
    vi->name = mb_str("m");
    vi->type = map_type;
    MB_PUSH(mp->graph->input, mp->graph->n_input, vi);
    mb_node(mp->graph, "Conv", "conv", "m,m", "y");
    mb_output(mp->graph, "y", IFD_FLOAT, -1, NULL);
    ifd_model *m = NULL;
    ifd_error err;
    ifd_status st = mb_load(mp, NULL, &m, &err);
    if (st == IFD_OK) {
        ifd_value *in[1] = {small_map(IFD_INT64, IFD_FLOAT)}, *out[1] = {NULL};
        st = run_once(m, in, out, &err);
        ifd_value_free(in[0]);
        ifd_value_free(out[0]);
    }
    CHECK(st != IFD_OK);
    CHECK_STR_CONTAINS(err.message, "Conv node 'conv'");
    ifd_model_free(m);
    mb_reset();
}

/* ---- files --------------------------------------------------------------- */

static void test_load_file_errors_name_the_path(void)
{
    ifd_model *m = NULL;
    ifd_error err;
    CHECK_EQ_INT(ifd_model_load_file("/nonexistent/model.onnx", NULL, &m, &err), IFD_ERR_IO);
    CHECK_STR_CONTAINS(err.message, "/nonexistent/model.onnx: No such file or directory");
    CHECK_EQ_INT(ifd_model_load_file("/tmp", NULL, &m, &err), IFD_ERR_IO);
    CHECK_STR_CONTAINS(err.message, "/tmp: not a regular file");
    CHECK_EQ_INT(ifd_model_load_file("/dev/null", NULL, &m, &err), IFD_ERR_IO);
    CHECK(m == NULL);

    char path[] = "/tmp/inferd-test-loader-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd >= 0) {
        CHECK(write(fd, "\xff\xff\xff", 3) == 3);
        close(fd);
        CHECK_EQ_INT(ifd_model_load_file(path, NULL, &m, &err), IFD_ERR_INVALID_MODEL);
        CHECK_STR_CONTAINS(err.message, path);
        CHECK_STR_CONTAINS(err.message, "not a valid ModelProto protobuf message");
        unlink(path);
    }
}

int main(void)
{
    RUN(test_truncated_model_fails_cleanly_at_every_offset);
    RUN(test_every_bit_flip_loads_or_fails_cleanly);
    RUN(test_initializer_with_huge_dim_is_refused);
    RUN(test_initializer_with_overflowing_dims_is_refused);
    RUN(test_raw_data_size_mismatch_is_refused);
    RUN(test_initializer_claiming_many_floats_without_data_allocates_nothing);
    RUN(test_graph_input_with_huge_dim_loads_and_refuses_small_inputs);
    RUN(test_graph_input_with_overflowing_dims_is_refused);
    RUN(test_cyclic_graph_error_names_the_cycle);
    RUN(test_undefined_input_is_named);
    RUN(test_names_defined_twice_are_refused);
    RUN(test_graph_output_listed_twice_gives_two_equal_values);
    RUN(test_graphs_nested_10000_deep_are_refused_by_the_depth_guard);
    RUN(test_sequences_nested_10000_deep_are_refused);
    RUN(test_ir_versions_outside_the_supported_range_are_refused);
    RUN(test_ir_versions_9_and_10_with_opset_21_load_and_run);
    RUN(test_opset_newer_than_the_engine_is_refused);
    RUN(test_describe_only_lists_operators_of_a_too_new_opset);
    RUN(test_unsupported_operators_are_all_listed_in_one_message);
    RUN(test_describe_only_lists_unsupported_operators_and_refuses_sessions);
    RUN(test_long_unsupported_list_says_what_it_left_out);
    RUN(test_many_distinct_operators_load_in_linear_time);
    RUN(test_names_crafted_to_collide_load_in_linear_time);
    RUN(test_graph_input_that_is_also_an_initializer_is_a_constant);
    RUN(test_constant_nodes_are_folded_in_every_variant);
    RUN(test_malformed_constant_nodes_are_refused);
    RUN(test_session_refuses_inputs_of_the_wrong_type_naming_the_input);
    RUN(test_session_refuses_maps_and_sequences_of_other_types);
    RUN(test_empty_outputs_get_a_buffer);
    RUN(test_maps_with_non_integer_keys_are_refused);
    RUN(test_operator_given_a_map_fails_naming_the_node);
    RUN(test_load_file_errors_name_the_path);
    TEST_MAIN_END();
}
