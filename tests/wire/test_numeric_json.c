/*
 * test_numeric_json.c — the book body's fast path (src/wire/numeric_json.c):
 * it reads {"data": [[...]]} into the same bits as jansson + strtod would,
 * on the numbers where a shortcut could go wrong (many digits, big and tiny
 * exponents, negative zero, integers), and it refuses every other form so
 * that the general path can word the error.
 */
#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../test.h"
#include "numeric_json.h"
#include "tensor_json.h"

static bool same_as_jansson(const char *text)
{
    double fast;
    if (!numeric_json_number(text, strlen(text), &fast))
        return false;
    json_error_t je;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &je);
    bool same = j && json_is_number(j) && memcmp(&fast, &(double){json_number_value(j)}, sizeof(double)) == 0;
    if (!same)
        fprintf(stderr, "'%s': fast path %.17g, jansson %.17g\n", text, fast, j ? json_number_value(j) : NAN);
    json_decref(j);
    return same;
}

static void test_numbers_read_as_jansson_reads_them(void)
{
    const char *numbers[] = {"5.1", "3.5", "0.2", "-0.0", "0", "-0", "1e22", "1e23", "1.5e-22", "1e-23",
                             "123456789012345", "0.123456789012345", "0.1234567890123456789",
                             "9007199254740993", "123456789012345678", "2.2250738585072014e-308",
                             "4.9e-324", "1.7976931348623157e308", "0.000001", "1E5", "1e+5", "-12.5e-1",
                             "0.30000000000000004", "3.4028234663852886e38", "100000000000000000000.0"};
    for (size_t i = 0; i < sizeof(numbers) / sizeof(*numbers); i++)
        CHECK(same_as_jansson(numbers[i]));
}

static void test_random_decimals_read_as_strtod_reads_them(void)
{
    uint64_t state = 0x9e3779b97f4a7c15ull;
    char text[64];
    for (int i = 0; i < 200000; i++) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        int digits = 1 + (int)(state % 17);
        int exponent = (int)((state >> 8) % 60) - 30;
        snprintf(text, sizeof(text), "%s%.*e", (state >> 20) & 1 ? "-" : "", digits - 1,
                 (double)(state >> 11) / 9007199254740992.0 * 10);
        char with_exp[80];
        snprintf(with_exp, sizeof(with_exp), "%se%d", strtok(text, "e"), exponent);
        double fast;
        CHECK(numeric_json_number(with_exp, strlen(with_exp), &fast));
        if (fast != strtod(with_exp, NULL)) {
            fprintf(stderr, "'%s': %.17g, strtod %.17g\n", with_exp, fast, strtod(with_exp, NULL));
            CHECK(0);
            return;
        }
    }
}

static void test_not_json_numbers_are_refused(void)
{
    const char *bad[] = {"", "-", "01", "1.", ".5", "1e", "1e+", "+1", "0x10", "inf", "NaN", "1.5.2", "1e5e5",
                         "1e400", "-1e400", "1234567890123456789012"};
    double v;
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
        CHECK(!numeric_json_number(bad[i], strlen(bad[i]), &v));
}

static void test_book_rows_become_the_tensor_jansson_gives(void)
{
    const char *body = " {\n\t\"data\" : [ [5.1, 3.5, 1.4, 0.2], [6, -2.25e0, 1E1, 0.1] ] } ";
    ifd_value *x = numeric_json_book_rows(body, strlen(body), IFD_FLOAT);
    CHECK(x != NULL);
    if (!x)
        return;
    CHECK_EQ_INT(x->tensor.rank, 2);
    CHECK_EQ_INT(x->tensor.dims[0], 2);
    CHECK_EQ_INT(x->tensor.dims[1], 4);
    json_error_t je;
    json_t *j = json_loads(body, 0, &je);
    char err[256];
    ifd_value *y = json_rows_to_tensor(json_object_get(j, "data"), IFD_FLOAT, err, sizeof(err));
    CHECK(y && memcmp(x->tensor.data, y->tensor.data, 8 * sizeof(float)) == 0);
    ifd_value_free(x);
    ifd_value_free(y);
    json_decref(j);

    const char *doubles = "{\"data\":[[0.1,0.2]]}";
    x = numeric_json_book_rows(doubles, strlen(doubles), IFD_DOUBLE);
    CHECK(x && ((double *)x->tensor.data)[0] == 0.1 && ((double *)x->tensor.data)[1] == 0.2);
    ifd_value_free(x);
}

static void test_other_bodies_are_left_to_the_general_path(void)
{
    const char *other[] = {
        "{\"data\":[[1,2],[3]]}",          /* ragged: the general path words it */
        "{\"data\":[[1,\"2\"]]}",          /* a string */
        "{\"data\":[[1,null]]}",           /* null */
        "{\"data\":[1,2]}",                /* one row, flat */
        "{\"data\":[[[1]]]}",              /* rank 3 */
        "{\"data\":[]}",                   /* nothing */
        "{\"data\":[[]]}",                 /* an empty row */
        "{\"data\":[[1]],\"x\":1}",        /* another key */
        "{\"data\":[[1]],\"data\":[[2]]}", /* a duplicate key (jansson refuses it) */
        "{\"d\\u0061ta\":[[1]]}",          /* an escaped key */
        "{\"image_data\":\"aGk=\"}",       /* an image */
        "{\"data\":\"aGk=\"}",             /* a base64 image */
        "{\"data\":[[1e39]]}",             /* out of float32's range */
        "{\"data\":[[1]]} x",              /* trailing bytes */
        "{\"data\":[[1]]",                 /* cut short */
        "[[1]]",
    };
    for (size_t i = 0; i < sizeof(other) / sizeof(*other); i++) {
        ifd_value *x = numeric_json_book_rows(other[i], strlen(other[i]), IFD_FLOAT);
        if (x)
            fprintf(stderr, "accepted %s\n", other[i]);
        CHECK(x == NULL);
        ifd_value_free(x);
    }
    CHECK(numeric_json_book_rows("{\"data\":[[1]]}", 14, IFD_INT64) == NULL); /* integers: general path */
}

static void test_large_bodies_grow_past_the_stack_buffer(void)
{
    size_t rows = 300, cols = 10;
    char *body = malloc(rows * cols * 8 + 64);
    size_t n = (size_t)sprintf(body, "{\"data\":[");
    for (size_t r = 0; r < rows; r++) {
        n += (size_t)sprintf(body + n, "%s[", r ? "," : "");
        for (size_t c = 0; c < cols; c++)
            n += (size_t)sprintf(body + n, "%s%zu.5", c ? "," : "", r * cols + c);
        body[n++] = ']';
    }
    n += (size_t)sprintf(body + n, "]}");
    ifd_value *x = numeric_json_book_rows(body, n, IFD_DOUBLE);
    CHECK(x != NULL);
    if (x) {
        CHECK_EQ_INT(x->tensor.dims[0], (long long)rows);
        CHECK(((double *)x->tensor.data)[rows * cols - 1] == (double)(rows * cols - 1) + 0.5);
    }
    ifd_value_free(x);
    free(body);
}

static void test_number_arrays_are_written_as_json_encode_writes_them(void)
{
    float values[] = {0.9669100642204285f, 1.0f, 1e-7f, -0.0f, NAN, 3.0e38f};
    ifd_tensor t = {.dtype = IFD_FLOAT, .rank = 1, .dims = {6}, .data = values};
    json_text text = {0};
    CHECK(json_text_number_array(&text, &t, 0, 6));
    json_t *tree = tensor_to_json_flat(&t);
    size_t len;
    char *encoded = json_encode(tree, &len);
    CHECK(text.data && encoded && text.len == len && memcmp(text.data, encoded, len) == 0);
    if (text.data && encoded)
        CHECK_STR_CONTAINS(text.data, "[0.9669100642204285,1.0,");
    free(encoded);
    json_decref(tree);
    free(text.data);
    int64_t ints[] = {1};
    ifd_tensor i = {.dtype = IFD_INT64, .rank = 1, .dims = {1}, .data = ints};
    json_text none = {0};
    CHECK(!json_text_number_array(&none, &i, 0, 1));
    free(none.data);
}

/* ---- KServe V2 bodies ---- */

static void test_v2_data_arrays_are_lifted_and_blanked_in_place(void)
{
    const char *body = "{\"id\":\"a\",\"inputs\":[{\"name\":\"x\",\"shape\":[1,4],\"datatype\":\"FP32\",\n"
                       "\"data\":[5.1, 3.5,\n 1.4,0.2]},{\"name\":\"y\",\"data\":\"text\"},"
                       "{\"name\":\"z\",\"data\":[[1,2]]},{\"name\":\"w\",\"data\":[7] ,\"shape\":[1]}]}";
    size_t len = strlen(body);
    numeric_json_lifted l;
    CHECK(numeric_json_v2_lift(body, len, &l));
    CHECK(l.count == 2); /* x and w; the string and the nested array stay */
    const numeric_json_span *x = numeric_json_lifted_input(&l, 0), *w = numeric_json_lifted_input(&l, 3);
    CHECK(x && w && !numeric_json_lifted_input(&l, 1) && !numeric_json_lifted_input(&l, 2));
    CHECK(x->len == strlen("[5.1, 3.5,\n 1.4,0.2]") && memcmp(body + x->offset, "[5.1", 4) == 0);
    CHECK(memcmp(body + w->offset, "[7]", 3) == 0 && w->len == 3);
    /* same length, same newlines: jansson's lines and columns do not move */
    CHECK(memcmp(l.text + x->offset, "0         \n         ", x->len) == 0);
    json_error_t je;
    json_t *blanked = json_loadb(l.text, len, JSON_REJECT_DUPLICATES, &je);
    CHECK(blanked && json_integer_value(json_object_get(json_array_get(json_object_get(blanked, "inputs"), 0),
                                                        "data")) == 0);
    json_decref(blanked);
    numeric_json_lifted_free(&l);
}

static void test_v2_bodies_without_a_plain_data_array_are_not_lifted(void)
{
    const char *other[] = {
        "{\"inputs\":[{\"name\":\"x\",\"data\":[1,2]}]",        /* unterminated */
        "{\"inputs\":[{\"name\":\"x\",\"d\\u0061ta\":[1,2]}]}", /* an escaped key: jansson decides */
        "{\"inputs\":[{\"name\":\"x\",\"data\":[1,2]x}]}",      /* what follows is not , or } */
        "{\"inputs\":[{\"name\":\"x\",\"data\":[]}]}",          /* nothing to read */
        "{\"inputs\":[{\"name\":\"x\",\"data\":[1e400]}]}",     /* jansson's overflow error */
        "{\"inputs\":[{\"name\":\"x\",\"data\":[1,true]}]}",
        "[{\"inputs\":[{\"data\":[1]}]}]",
        "{\"outputs\":[{\"data\":[1]}]}",
        "{\"id\":\"1\",\"inputs\":[{ \"data\":", /* found by fuzz_numeric_json: a value at the end */
    };
    for (size_t i = 0; i < sizeof(other) / sizeof(*other); i++) {
        numeric_json_lifted l;
        bool lifted = numeric_json_v2_lift(other[i], strlen(other[i]), &l);
        if (lifted)
            fprintf(stderr, "lifted: %s\n", other[i]);
        CHECK(!lifted);
    }
}

static void test_v2_flat_arrays_become_the_tensor_jansson_gives(void)
{
    const char *text = "[ 5.1, -3.5e0,1,0.2 ]";
    int64_t dims[2] = {2, 2};
    ifd_value *fast = numeric_json_flat_tensor(text, strlen(text), IFD_FLOAT, 2, dims);
    json_t *j = json_loads(text, 0, NULL);
    char err[256];
    ifd_value *general = json_to_tensor(j, IFD_FLOAT, 2, dims, err, sizeof(err));
    CHECK(fast && general && memcmp(fast->tensor.data, general->tensor.data, 4 * sizeof(float)) == 0);
    CHECK(fast && fast->tensor.rank == 2 && fast->tensor.dims[1] == 2);
    ifd_value_free(fast);
    ifd_value_free(general);
    json_decref(j);
    /* int64 exactly, beyond double's 2^53 */
    const char *ints = "[9007199254740993,-7,0]";
    int64_t three[1] = {3};
    ifd_value *x = numeric_json_flat_tensor(ints, strlen(ints), IFD_INT64, 1, three);
    CHECK(x && ((int64_t *)x->tensor.data)[0] == 9007199254740993ll && ((int64_t *)x->tensor.data)[1] == -7);
    ifd_value_free(x);
}

static void test_v2_flat_arrays_the_fast_path_cannot_take_are_refused(void)
{
    int64_t two[1] = {2}, three[1] = {3}, huge[2] = {1ll << 40, 1ll << 40};
    CHECK(!numeric_json_flat_tensor("[1,2,3]", 7, IFD_FLOAT, 1, two));     /* count is not the shape's */
    CHECK(!numeric_json_flat_tensor("[1,2]", 5, IFD_FLOAT, 2, huge));      /* nor a shape of 2^80 */
    CHECK(!numeric_json_flat_tensor("[1.5,2]", 7, IFD_INT64, 1, two));     /* a fraction for an integer */
    CHECK(!numeric_json_flat_tensor("[300,2]", 7, IFD_UINT8, 1, two));     /* out of range */
    CHECK(!numeric_json_flat_tensor("[-1,2]", 6, IFD_UINT32, 1, two));
    CHECK(!numeric_json_flat_tensor("[1e39,2]", 8, IFD_FLOAT, 1, two));    /* beyond float32 */
    CHECK(!numeric_json_flat_tensor("[1,2]", 5, IFD_BOOL, 1, two));
    CHECK(!numeric_json_flat_tensor("[1,2]", 5, IFD_FLOAT, 1, three));
    ifd_value *ok = numeric_json_flat_tensor("[255,0]", 7, IFD_UINT8, 1, two);
    CHECK(ok && ((uint8_t *)ok->tensor.data)[0] == 255);
    ifd_value_free(ok);
}

static void test_v2_common_bodies_are_read_without_jansson(void)
{
    const char *body = " {\"id\":\"r-1\", \"inputs\":[{\"name\":\"x\",\"shape\":[2,2],\"datatype\":\"FP32\","
                       "\"data\":[1,2,3.5,4]},{\"datatype\":\"INT64\",\"data\":[7],\"name\":\"k\",\"shape\":[1]}],"
                       "\"outputs\":[{\"name\":\"y\"}]}\n";
    numeric_json_v2_request r;
    CHECK(numeric_json_v2_read(body, strlen(body), &r));
    CHECK(r.has_id && r.id.len == 3 && memcmp(r.id.s, "r-1", 3) == 0);
    CHECK(r.n_inputs == 2 && r.inputs[0].rank == 2 && r.inputs[0].dims[1] == 2 && r.inputs[1].rank == 1);
    CHECK(r.inputs[1].name.len == 1 && r.inputs[1].name.s[0] == 'k');
    CHECK(memcmp(body + r.inputs[0].data_offset, "[1,2,3.5,4]", r.inputs[0].data_len) == 0);
    CHECK(r.has_outputs && r.n_outputs == 1 && r.outputs[0].s[0] == 'y');
}

static void test_v2_other_bodies_are_left_to_jansson(void)
{
    const char *other[] = {
        "{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}],\"parameters\":{}}",
        "{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1],\"parameters\":{}}]}",
        "{\"inputs\":[{\"name\":\"x\\n\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}]}",  /* an escape */
        "{\"inputs\":[{\"name\":\"x\",\"name\":\"y\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}]}",
        "{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[[1]]}]}", /* nested */
        "{\"inputs\":[{\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}]}",                  /* no name */
        "{\"inputs\":[{\"name\":\"x\",\"shape\":[1.0],\"datatype\":\"FP32\",\"data\":[1]}]}",
        "{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}]} x",
        "{\"inputs\":[]}",
        "{\"id\":\"a\",\"inputs\":",
        "{\"inputs\":[{\"name\":\"\xc3\xa9\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[1]}]}", /* not ASCII */
    };
    for (size_t i = 0; i < sizeof(other) / sizeof(*other); i++) {
        numeric_json_v2_request r;
        bool read = numeric_json_v2_read(other[i], strlen(other[i]), &r);
        if (read)
            fprintf(stderr, "read: %s\n", other[i]);
        CHECK(!read);
    }
}

int main(void)
{
    RUN(test_numbers_read_as_jansson_reads_them);
    RUN(test_v2_data_arrays_are_lifted_and_blanked_in_place);
    RUN(test_v2_bodies_without_a_plain_data_array_are_not_lifted);
    RUN(test_v2_flat_arrays_become_the_tensor_jansson_gives);
    RUN(test_v2_flat_arrays_the_fast_path_cannot_take_are_refused);
    RUN(test_v2_common_bodies_are_read_without_jansson);
    RUN(test_v2_other_bodies_are_left_to_jansson);
    RUN(test_random_decimals_read_as_strtod_reads_them);
    RUN(test_not_json_numbers_are_refused);
    RUN(test_book_rows_become_the_tensor_jansson_gives);
    RUN(test_other_bodies_are_left_to_the_general_path);
    RUN(test_large_bodies_grow_past_the_stack_buffer);
    RUN(test_number_arrays_are_written_as_json_encode_writes_them);
    TEST_MAIN_END();
}
