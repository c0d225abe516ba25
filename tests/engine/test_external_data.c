/*
 * test_external_data.c — initializers stored outside the model file. The
 * location comes from an untrusted model, so the loader must only ever read
 * a regular file inside the model's folder: no absolute path, no "..", no
 * symlink anywhere on the way (even one pointing inside), no hard link, no
 * device or FIFO, and never more than the file holds. These are the classes
 * of CVE-2022-25882, CVE-2024-27318 and CVE-2026-27489/34446/34447. Every
 * refusal must name the tensor and the reason.
 *
 * Each test works in a fresh temporary folder holding the model and its data.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "inferd/inferd.h"
#include "onnx/onnx-ml.pb-c.h"
#include "test.h"

static char folder[64];
static char outside[64]; /* a second folder, standing for the rest of the disk */

static void path_in(char *out, size_t size, const char *dir, const char *name)
{
    snprintf(out, size, "%s/%s", dir, name);
}

static void write_bytes(const char *dir, const char *name, const void *data, size_t len)
{
    char path[256];
    path_in(path, sizeof(path), dir, name);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (f) {
        CHECK(fwrite(data, 1, len, f) == len);
        fclose(f);
    }
}

static void remove_tree(const char *dir)
{
    char command[160];
    snprintf(command, sizeof(command), "rm -rf '%s'", dir);
    CHECK(system(command) == 0);
}

static void setup(void)
{
    snprintf(folder, sizeof(folder), "/tmp/inferd-extdata-XXXXXX");
    snprintf(outside, sizeof(outside), "/tmp/inferd-outside-XXXXXX");
    if (!mkdtemp(folder) || !mkdtemp(outside)) {
        perror("mkdtemp");
        exit(1);
    }
    char sub[128];
    path_in(sub, sizeof(sub), folder, "sub");
    CHECK(mkdir(sub, 0755) == 0);
    /* 8 bytes of header, then the four floats 1..4 */
    float values[4] = {1, 2, 3, 4};
    uint8_t data[24] = "HEADER!!";
    memcpy(data + 8, values, sizeof(values));
    write_bytes(folder, "weights.bin", data, sizeof(data));
    write_bytes(folder, "sub/w.bin", values, sizeof(values));
    write_bytes(folder, "small.bin", data, 8);
    write_bytes(outside, "secret.bin", values, sizeof(values));
}

static void teardown(void)
{
    remove_tree(folder);
    remove_tree(outside);
}

/* ---- the model: y = Identity(w), w a float32 [n] initializer whose data
 * lives in the file named by `location` (NULL: no location entry). */

typedef struct ext_model {
    Onnx__ModelProto model;
    Onnx__GraphProto graph;
    Onnx__OperatorSetIdProto opset, *opsets[1];
    Onnx__NodeProto node, *nodes[1];
    char *node_inputs[1], *node_outputs[1];
    Onnx__TensorProto weight, *weights[1];
    int64_t dims[1];
    Onnx__StringStringEntryProto entries[3], *entry_ptrs[3];
    char offset_text[32], length_text[32];
    Onnx__ValueInfoProto output, *outputs[1];
    Onnx__TypeProto type;
    Onnx__TypeProto__Tensor tensor_type;
} ext_model;

static void build(ext_model *e, int64_t n, const char *location, const char *offset,
                  const char *length)
{
    memset(e, 0, sizeof(*e));
    onnx__model_proto__init(&e->model);
    e->model.has_ir_version = 1;
    e->model.ir_version = 8;
    onnx__operator_set_id_proto__init(&e->opset);
    e->opset.domain = "";
    e->opset.has_version = 1;
    e->opset.version = 13;
    e->opsets[0] = &e->opset;
    e->model.n_opset_import = 1;
    e->model.opset_import = e->opsets;
    onnx__graph_proto__init(&e->graph);
    e->graph.name = "external";
    e->model.graph = &e->graph;

    onnx__tensor_proto__init(&e->weight);
    e->weight.name = "w";
    e->weight.has_data_type = 1;
    e->weight.data_type = IFD_FLOAT;
    e->dims[0] = n;
    e->weight.n_dims = 1;
    e->weight.dims = e->dims;
    e->weight.has_data_location = 1;
    e->weight.data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    const char *keys[3] = {"location", "offset", "length"};
    const char *values[3] = {location, offset, length};
    for (int i = 0; i < 3; i++) {
        if (!values[i])
            continue;
        Onnx__StringStringEntryProto *entry = &e->entries[e->weight.n_external_data];
        onnx__string_string_entry_proto__init(entry);
        entry->key = (char *)keys[i];
        entry->value = (char *)values[i];
        e->entry_ptrs[e->weight.n_external_data++] = entry;
    }
    e->weight.external_data = e->entry_ptrs;
    e->weights[0] = &e->weight;
    e->graph.n_initializer = 1;
    e->graph.initializer = e->weights;

    onnx__node_proto__init(&e->node);
    e->node.op_type = "Identity";
    e->node.name = "id";
    e->node_inputs[0] = "w";
    e->node_outputs[0] = "y";
    e->node.n_input = e->node.n_output = 1;
    e->node.input = e->node_inputs;
    e->node.output = e->node_outputs;
    e->nodes[0] = &e->node;
    e->graph.n_node = 1;
    e->graph.node = e->nodes;

    onnx__value_info_proto__init(&e->output);
    onnx__type_proto__init(&e->type);
    onnx__type_proto__tensor__init(&e->tensor_type);
    e->tensor_type.has_elem_type = 1;
    e->tensor_type.elem_type = IFD_FLOAT;
    e->type.value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    e->type.tensor_type = &e->tensor_type;
    e->output.name = "y";
    e->output.type = &e->type;
    e->outputs[0] = &e->output;
    e->graph.n_output = 1;
    e->graph.output = e->outputs;
}

/* Write the model as folder/model.onnx and load it from there. */
static ifd_status load_ext(int64_t n, const char *location, const char *offset,
                           const char *length, ifd_model **out, ifd_error *err)
{
    ext_model e;
    build(&e, n, location, offset, length);
    size_t len = protobuf_c_message_get_packed_size(&e.model.base);
    uint8_t *buf = malloc(len);
    protobuf_c_message_pack(&e.model.base, buf);
    write_bytes(folder, "model.onnx", buf, len);
    free(buf);
    char path[128];
    path_in(path, sizeof(path), folder, "model.onnx");
    err->message[0] = '\0';
    return ifd_model_load_file(path, NULL, out, err);
}

static void expect_refused(const char *location, const char *offset, const char *length,
                           const char *message)
{
    ifd_model *m = NULL;
    ifd_error err;
    ifd_status st = load_ext(4, location, offset, length, &m, &err);
    CHECK(st == IFD_ERR_INVALID_MODEL || st == IFD_ERR_IO);
    CHECK(m == NULL);
    CHECK_STR_CONTAINS(err.message, message);
    if (st == IFD_OK)
        fprintf(stderr, "  location '%s' was accepted\n", location);
    ifd_model_free(m);
}

/* Run the model and check y == w == 1..4. */
static void expect_weights_1_to_4(ifd_model *m)
{
    ifd_session *s = NULL;
    ifd_value *out[1] = {NULL};
    ifd_error err;
    ifd_session_options options = {.threads = 1};
    CHECK_EQ_INT(ifd_session_create(m, &options, &s, &err), IFD_OK);
    if (!s)
        return;
    CHECK_EQ_INT(ifd_session_run(s, NULL, out, &err), IFD_OK);
    if (out[0]) {
        const float *y = out[0]->tensor.data;
        CHECK_EQ_INT(ifd_tensor_count(&out[0]->tensor), 4);
        CHECK_NEAR(y[0], 1, 0);
        CHECK_NEAR(y[3], 4, 0);
    }
    ifd_value_free(out[0]);
    ifd_session_free(s);
}

static void test_relative_location_with_offset_and_length_loads(void)
{
    ifd_model *m = NULL;
    ifd_error err;
    setup();
    CHECK_EQ_INT(load_ext(4, "weights.bin", "8", "16", &m, &err), IFD_OK);
    if (m)
        expect_weights_1_to_4(m);
    ifd_model_free(m);
    m = NULL;
    /* a subfolder of the model's folder is inside it */
    CHECK_EQ_INT(load_ext(4, "sub/w.bin", NULL, NULL, &m, &err), IFD_OK);
    if (m)
        expect_weights_1_to_4(m);
    ifd_model_free(m);
    m = NULL;
    /* "./" and an empty segment are harmless */
    CHECK_EQ_INT(load_ext(4, "./sub//w.bin", NULL, NULL, &m, &err), IFD_OK);
    ifd_model_free(m);
    teardown();
}

static void test_absolute_and_parent_paths_are_refused(void)
{
    char absolute[128];
    setup();
    path_in(absolute, sizeof(absolute), outside, "secret.bin");
    expect_refused(absolute, NULL, NULL, "tensor 'w': external data location '");
    expect_refused(absolute, NULL, NULL, "' must be a relative path");
    expect_refused("/etc/passwd", NULL, NULL,
                   "tensor 'w': external data location '/etc/passwd' must be a relative path");
    expect_refused("..", NULL, NULL,
                   "tensor 'w': external data location '..' escapes the model folder");
    expect_refused("a/../../x", NULL, NULL,
                   "tensor 'w': external data location 'a/../../x' escapes the model folder");
    expect_refused("sub/../weights.bin", NULL, NULL,
                   "tensor 'w': external data location 'sub/../weights.bin' escapes the model "
                   "folder");
    char escape[160];
    snprintf(escape, sizeof(escape), "../%s/secret.bin", outside + 5);
    expect_refused(escape, NULL, NULL, "escapes the model folder");
    expect_refused("sub\\..\\..\\x", NULL, NULL, "contains a backslash");
    expect_refused("", NULL, NULL, "tensor 'w': external data location '' must be a relative path");
    teardown();
}

static void test_symlinks_are_refused_even_pointing_inside(void)
{
    char link[128], target[128];
    setup();
    path_in(target, sizeof(target), outside, "secret.bin");
    path_in(link, sizeof(link), folder, "escape.bin");
    CHECK(symlink(target, link) == 0);
    expect_refused("escape.bin", NULL, NULL,
                   "tensor 'w': external data location 'escape.bin' goes through a symlink or "
                   "escapes the model folder");

    path_in(link, sizeof(link), folder, "alias.bin");
    CHECK(symlink("sub/w.bin", link) == 0);
    expect_refused("alias.bin", NULL, NULL,
                   "tensor 'w': external data location 'alias.bin' goes through a symlink");

    /* a symlinked folder on the way, pointing inside or out */
    path_in(link, sizeof(link), folder, "inner");
    CHECK(symlink("sub", link) == 0);
    expect_refused("inner/w.bin", NULL, NULL, "goes through a symlink");
    path_in(link, sizeof(link), folder, "outer");
    CHECK(symlink(outside, link) == 0);
    expect_refused("outer/secret.bin", NULL, NULL, "goes through a symlink");
    teardown();
}

static void test_hard_links_are_refused(void)
{
    char from[128], to[128];
    setup();
    /* a hard link inside the folder to a file outside it is how a location
     * that passes every path check can still read someone else's file */
    path_in(from, sizeof(from), outside, "secret.bin");
    path_in(to, sizeof(to), folder, "hard.bin");
    CHECK(link(from, to) == 0);
    expect_refused("hard.bin", NULL, NULL,
                   "tensor 'w': external data 'hard.bin' is a hard link (refused)");
    teardown();
}

static void test_data_past_the_end_of_the_file_is_refused(void)
{
    setup();
    expect_refused("small.bin", NULL, NULL,
                   "tensor 'w': external data 'small.bin' is shorter than offset 0 + 16 bytes");
    expect_refused("weights.bin", "9", NULL,
                   "tensor 'w': external data 'weights.bin' is shorter than offset 9 + 16 bytes");
    expect_refused("weights.bin", "18446744073709551615", NULL,
                   "is shorter than offset 18446744073709551615 + 16 bytes");
    expect_refused("weights.bin", "8", "17",
                   "tensor 'w': external data length 17 does not match its shape (16 bytes)");
    expect_refused("weights.bin", "-8", NULL,
                   "tensor 'w': external data offset '-8' is not a number");
    expect_refused("weights.bin", "8", "16x",
                   "tensor 'w': external data length '16x' is not a number");
    expect_refused("weights.bin", "99999999999999999999999", NULL, "is not a number");
    teardown();
}

/* The shape claims 60 GB, the file has 24 bytes: refused before allocating. */
static size_t largest_allocation;
#if ADDRESS_SANITIZER
int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void *, size_t),
                                              void (*free_hook)(const volatile void *));
static void note_malloc(const volatile void *ptr, size_t size)
{
    (void)ptr;
    if (size > largest_allocation)
        largest_allocation = size;
}
static void note_free(const volatile void *ptr) { (void)ptr; }
#endif

static void test_short_file_for_a_huge_shape_allocates_nothing(void)
{
    ifd_model *m = NULL;
    ifd_error err;
    setup();
#if ADDRESS_SANITIZER
    __sanitizer_install_malloc_and_free_hooks(note_malloc, note_free);
#else
    struct rlimit saved, small;
    getrlimit(RLIMIT_AS, &saved);
    small = saved;
    small.rlim_cur = (rlim_t)16 << 30;
    if (saved.rlim_cur == RLIM_INFINITY || saved.rlim_cur > small.rlim_cur)
        setrlimit(RLIMIT_AS, &small);
#endif
    largest_allocation = 0;
    ifd_status st = load_ext(15000000000ll, "weights.bin", NULL, NULL, &m, &err);
#if !ADDRESS_SANITIZER
    setrlimit(RLIMIT_AS, &saved);
#endif
    CHECK_EQ_INT(st, IFD_ERR_INVALID_MODEL);
    CHECK_STR_CONTAINS(err.message, "tensor 'w': external data 'weights.bin' is shorter than "
                                    "offset 0 + 60000000000 bytes");
    CHECK(largest_allocation < (1u << 20));
    teardown();
}

static void test_folders_devices_and_fifos_are_refused(void)
{
    setup();
    expect_refused("sub", NULL, NULL, "tensor 'w': external data 'sub' is not a regular file");
    expect_refused(".", NULL, NULL, "tensor 'w': external data '.' is not a regular file");
    /* opening a FIFO for reading blocks until a writer comes: it must be
     * refused without waiting (the alarm turns a hang into a failure) */
    char fifo[128];
    path_in(fifo, sizeof(fifo), folder, "pipe.bin");
    CHECK(mkfifo(fifo, 0600) == 0);
    signal(SIGALRM, SIG_DFL);
    alarm(10);
    expect_refused("pipe.bin", NULL, NULL,
                   "tensor 'w': external data 'pipe.bin' is not a regular file");
    alarm(0);
    teardown();
}

static void test_missing_location_or_file_is_refused(void)
{
    setup();
    expect_refused(NULL, "0", "16", "tensor 'w': external data has no location");
    expect_refused("nope.bin", NULL, NULL,
                   "tensor 'w': cannot open external data 'nope.bin': No such file or directory");
    teardown();
}

static void test_external_data_needs_a_model_folder(void)
{
    ext_model e;
    build(&e, 4, "weights.bin", NULL, NULL);
    size_t len = protobuf_c_message_get_packed_size(&e.model.base);
    uint8_t *buf = malloc(len);
    protobuf_c_message_pack(&e.model.base, buf);
    ifd_model *m = NULL;
    ifd_error err;
    CHECK_EQ_INT(ifd_model_load_memory(buf, len, NULL, NULL, &m, &err), IFD_ERR_INVALID_MODEL);
    CHECK_STR_CONTAINS(err.message,
                       "tensor 'w': external data is not allowed for a model loaded from memory");
    CHECK(m == NULL);

    /* nor in a request's tensor */
    size_t tlen = protobuf_c_message_get_packed_size(&e.weight.base);
    uint8_t *tbuf = malloc(tlen);
    protobuf_c_message_pack(&e.weight.base, tbuf);
    ifd_value *v = NULL;
    CHECK_EQ_INT(ifd_value_decode_pb(tbuf, tlen, NULL, &v, &err), IFD_ERR_INVALID_ARGUMENT);
    CHECK_STR_CONTAINS(err.message, "tensor 'w': external data is not allowed in an input");
    CHECK(v == NULL);
    free(buf);
    free(tbuf);
}

int main(void)
{
    RUN(test_relative_location_with_offset_and_length_loads);
    RUN(test_absolute_and_parent_paths_are_refused);
    RUN(test_symlinks_are_refused_even_pointing_inside);
    RUN(test_hard_links_are_refused);
    RUN(test_data_past_the_end_of_the_file_is_refused);
    RUN(test_short_file_for_a_huge_shape_allocates_nothing);
    RUN(test_folders_devices_and_fifos_are_refused);
    RUN(test_missing_location_or_file_is_refused);
    RUN(test_external_data_needs_a_model_folder);
    TEST_MAIN_END();
}
