/*
 * test_image_fixtures.c — src/image on real files: every case that
 * tools/gen_image_fixtures.py wrote (cases.json) is decoded and
 * preprocessed by image_prepare() and held to the tensor the generator
 * computed independently with numpy (shape, dtype, every element within
 * the case's tolerance), or refused with the message the case expects.
 * Usage: test_image_fixtures FIXTURE_DIR
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image_input.h"
#include "test.h"

static const char *fixture_dir;

static uint8_t *read_all(const char *rel, size_t *size)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", fixture_dir, rel);
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long length = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(length > 0 ? (size_t)length : 1);
    *size = buf ? fread(buf, 1, (size_t)length, f) : 0;
    fclose(f);
    return buf;
}

static double element(const ifd_tensor *t, size_t i)
{
    switch (t->dtype) {
    case IFD_FLOAT: return ((const float *)t->data)[i];
    case IFD_DOUBLE: return ((const double *)t->data)[i];
    case IFD_UINT8: return ((const uint8_t *)t->data)[i];
    case IFD_INT8: return ((const int8_t *)t->data)[i];
    default: return NAN;
    }
}

static double expected_element(const uint8_t *bytes, ifd_dtype dtype, size_t i)
{
    switch (dtype) {
    case IFD_FLOAT: { float v; memcpy(&v, bytes + 4 * i, 4); return v; }
    case IFD_DOUBLE: { double v; memcpy(&v, bytes + 8 * i, 8); return v; }
    case IFD_UINT8: return bytes[i];
    case IFD_INT8: return (int8_t)bytes[i];
    default: return NAN;
    }
}

/* One case; returns the number of failed checks it added. */
static void run_case(const json_t *c)
{
    const char *name = json_string_value(json_object_get(c, "name"));
    size_t size = 0;
    uint8_t *data = read_all(json_string_value(json_object_get(c, "file")), &size);
    CHECK(data != NULL);
    image_spec spec;
    char err[1024] = "";
    bool parsed = image_spec_parse(json_object_get(c, "spec"), name, &spec, err, sizeof(err));
    if (!parsed)
        fprintf(stderr, "%s: %s\n", name, err);
    CHECK(parsed);
    image_limits limits = {0};
    const json_t *l = json_object_get(c, "limits");
    if (l) {
        limits.max_pixels = (uint64_t)json_integer_value(json_object_get(l, "max_pixels"));
        limits.max_encoded_bytes = (size_t)json_integer_value(json_object_get(l, "max_encoded_bytes"));
    }
    ifd_value *v = data && parsed ? image_prepare(data, size, &spec, &limits, name, err, sizeof(err)) : NULL;
    const char *error = json_string_value(json_object_get(c, "error"));
    if (error) {
        if (v)
            fprintf(stderr, "%s: decoded, but should be refused with \"%s\"\n", name, error);
        CHECK(v == NULL);
        CHECK_STR_CONTAINS(err, error);
        CHECK_STR_CONTAINS(err, name); /* the message names the image */
    } else if (!v) {
        fprintf(stderr, "%s: refused: %s\n", name, err);
        CHECK(v != NULL);
    } else {
        const json_t *shape = json_object_get(c, "shape");
        CHECK_EQ_INT(v->tensor.rank, json_array_size(shape));
        for (size_t i = 0; i < json_array_size(shape) && i < IFD_MAX_RANK; i++)
            CHECK_EQ_INT(v->tensor.dims[i], json_integer_value(json_array_get(shape, i)));
        CHECK_STR_CONTAINS(ifd_dtype_name(v->tensor.dtype), json_string_value(json_object_get(c, "dtype")));
        size_t expected_size = 0;
        uint8_t *expected = read_all(json_string_value(json_object_get(c, "expected")), &expected_size);
        size_t count = (size_t)ifd_tensor_count(&v->tensor);
        CHECK(expected && expected_size == count * ifd_dtype_size(v->tensor.dtype));
        double atol = json_number_value(json_object_get(c, "atol")), worst = 0;
        size_t worst_at = 0;
        for (size_t i = 0; expected && expected_size == count * ifd_dtype_size(v->tensor.dtype) && i < count;
             i++) {
            double d = fabs(element(&v->tensor, i) - expected_element(expected, v->tensor.dtype, i));
            if (!(d <= worst)) {
                worst = d;
                worst_at = i;
            }
        }
        if (!(worst <= atol))
            fprintf(stderr, "%s: element %zu is %.9g, numpy says %.9g (tolerance %g)\n", name, worst_at,
                    element(&v->tensor, worst_at), expected_element(expected, v->tensor.dtype, worst_at), atol);
        CHECK(worst <= atol);
        free(expected);
        ifd_value_free(v);
    }
    free(data);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s FIXTURE_DIR (written by tools/gen_image_fixtures.py)\n", argv[0]);
        return 2;
    }
    fixture_dir = argv[1];
    char path[4096];
    snprintf(path, sizeof(path), "%s/cases.json", fixture_dir);
    json_error_t jerr;
    json_t *cases = json_load_file(path, 0, &jerr);
    if (!json_is_array(cases)) {
        fprintf(stderr, "%s: %s\n", path, jerr.text);
        return 1;
    }
    size_t i;
    json_t *c;
    json_array_foreach(cases, i, c) {
        int before = test_failed_checks;
        run_case(c);
        if (test_failed_checks == before) {
            tests_passed++;
        } else {
            tests_failed++;
            fprintf(stderr, "FAIL %s\n", json_string_value(json_object_get(c, "name")));
        }
    }
    json_decref(cases);
    TEST_MAIN_END();
}
