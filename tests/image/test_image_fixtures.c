/*
 * test_image_fixtures.c — src/image on real files: every case that
 * tools/gen_image_fixtures.py wrote (cases.json) is decoded and
 * preprocessed by image_prepare() and held to the tensor the generator
 * computed independently with numpy (shape, dtype, every element within
 * the case's tolerance), or refused with the message the case expects,
 * within a peak memory bound where the case sets one (decoder bombs);
 * then batches of those files, and top-k on the digits model's outputs.
 * Usage: test_image_fixtures FIXTURE_DIR
 */
#include <jansson.h>
#include <stdio.h>
#include <sys/resource.h>
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
    const json_t *max_rss = json_object_get(c, "max_rss_mb");
    if (max_rss) {
        /* the process's peak so far: these cases come first in cases.json */
        struct rusage usage;
        getrusage(RUSAGE_SELF, &usage);
        if (usage.ru_maxrss / 1024 > json_integer_value(max_rss))
            fprintf(stderr, "%s: peak RSS %ld MiB, more than %lld\n", name, usage.ru_maxrss / 1024,
                    (long long)json_integer_value(max_rss));
        CHECK(usage.ru_maxrss / 1024 <= json_integer_value(max_rss));
    }
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

static ifd_string file_string(const char *rel)
{
    size_t size = 0;
    uint8_t *data = read_all(rel, &size);
    return (ifd_string){.data = (char *)data, .size = size};
}

static void test_batch_is_the_single_images_concatenated(void)
{
    image_spec spec;
    char err[1024];
    json_t *j = json_pack("{s:s, s:s, s:[i, i], s:f}", "kind", "image", "color", "rgb", "size", 12, 10, "scale",
                          1.0 / 255);
    CHECK(image_spec_parse(j, "batch", &spec, err, sizeof(err)));
    json_decref(j);
    ifd_string files[3] = {file_string("images/rgb.png"), file_string("images/gray.jpg"),
                           file_string("images/text.jpg")};
    ifd_value *batch = image_prepare_batch(files, 2, &spec, NULL, err, sizeof(err));
    CHECK(batch != NULL);
    if (batch) {
        CHECK_EQ_INT(batch->tensor.dims[0], 2);
        size_t each = (size_t)ifd_tensor_count(&batch->tensor) / 2;
        for (size_t i = 0; i < 2; i++) {
            ifd_value *one = image_prepare(files[i].data, files[i].size, &spec, NULL, "one", err, sizeof(err));
            CHECK(one != NULL);
            CHECK(one && memcmp((float *)batch->tensor.data + i * each, one->tensor.data, each * sizeof(float)) == 0);
            ifd_value_free(one);
        }
        ifd_value_free(batch);
    }
    CHECK(image_prepare_batch(files, 3, &spec, NULL, err, sizeof(err)) == NULL);
    CHECK_STR_CONTAINS(err, "image 2: not a JPEG or PNG");
    spec.layout = IMAGE_LAYOUT_CHW;
    CHECK(image_prepare_batch(files, 2, &spec, NULL, err, sizeof(err)) == NULL);
    CHECK_STR_CONTAINS(err, "layout CHW has no batch axis");
    CHECK(image_prepare_batch(files, 0, &spec, NULL, err, sizeof(err)) == NULL);
    for (size_t i = 0; i < 3; i++)
        free(files[i].data);
}

static ifd_value *scores(const float *values, int64_t rows, int64_t classes)
{
    int64_t dims[2] = {rows, classes};
    ifd_value *v = NULL;
    ifd_error e;
    if (ifd_value_new_tensor(IFD_FLOAT, 2, dims, &v, &e) != IFD_OK)
        return NULL;
    memcpy(v->tensor.data, values, (size_t)(rows * classes) * sizeof(float));
    return v;
}

/* The digits model has two outputs, logits then probabilities, each [N, 10]. */
static void test_top_k_prefers_probabilities_per_batch_row(void)
{
    char path[4096], err[1024];
    snprintf(path, sizeof(path), "%s/digits/model.onnx", fixture_dir);
    ifd_model *model = NULL;
    ifd_error e;
    if (ifd_model_load_file(path, NULL, &model, &e) != IFD_OK) {
        fprintf(stderr, "%s\n", e.message);
        CHECK(!"the digits model loads");
        return;
    }
    float logits[20] = {0}, probabilities[20] = {0};
    logits[3] = 9;                               /* logits would say 3 ... */
    probabilities[7] = 0.6f;                     /* ... row 0 of the probabilities says 7, */
    probabilities[2] = probabilities[5] = 0.2f;  /* then 2 and 5 tied: lower index first */
    probabilities[10 + 1] = 1.0f;                /* row 1 says 1 */
    ifd_value *outputs[2] = {scores(logits, 2, 10), scores(probabilities, 2, 10)};
    json_t *labels = json_pack("{s:s, s:s}", "7", "seven", "1", "one");
    image_class_score top[10];
    size_t got = image_top_k(model, (const ifd_value *const *)outputs, 0, labels, 3, top, err, sizeof(err));
    CHECK_EQ_INT(got, 3);
    CHECK_EQ_INT(top[0].index, 7);
    CHECK_NEAR(top[0].probability, 0.6, 1e-6);
    CHECK(top[0].label && strcmp(top[0].label, "seven") == 0);
    CHECK_EQ_INT(top[1].index, 2);
    CHECK_EQ_INT(top[2].index, 5);
    CHECK(top[1].label == NULL);
    got = image_top_k(model, (const ifd_value *const *)outputs, 1, labels, 1, top, err, sizeof(err));
    CHECK_EQ_INT(got, 1);
    CHECK_EQ_INT(top[0].index, 1);
    CHECK(top[0].label && strcmp(top[0].label, "one") == 0);
    /* k larger than the classes is cut to the classes */
    CHECK_EQ_INT(image_top_k(model, (const ifd_value *const *)outputs, 0, NULL, 50, top, err, sizeof(err)), 10);
    /* no probabilities: the softmax of the first scores */
    ((float *)outputs[1]->tensor.data)[7] = 5.0f;
    got = image_top_k(model, (const ifd_value *const *)outputs, 0, NULL, 1, top, err, sizeof(err));
    CHECK_EQ_INT(top[0].index, 3);
    CHECK_NEAR(top[0].probability, exp(9.0) / (exp(9.0) + 9), 1e-6);
    json_t *answer = image_scores_json(top, 1);
    json_t *expected = json_pack("[{s:i, s:n, s:f}]", "index", 3, "label", "probability", top[0].probability);
    CHECK(json_equal(answer, expected));
    json_decref(answer);
    json_decref(expected);
    CHECK_EQ_INT(image_top_k(model, (const ifd_value *const *)outputs, 2, NULL, 1, top, err, sizeof(err)), 0);
    CHECK_STR_CONTAINS(err, "row 2");
    json_decref(labels);
    ifd_value_free(outputs[0]);
    ifd_value_free(outputs[1]);
    ifd_model_free(model);
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
    RUN(test_batch_is_the_single_images_concatenated);
    RUN(test_top_k_prefers_probabilities_per_batch_row);
    TEST_MAIN_END();
}
