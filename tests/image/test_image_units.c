/*
 * test_image_units.c — the parts of src/image that need no image file: the
 * preprocessing spec's parser (every refusal names its field), its JSON and
 * text forms, the check against a model input, base64 through OpenSSL,
 * content sniffing, and the EXIF orientation parser on hand-made segments
 * (well-formed, both byte orders, and cut or lying ones that must not be
 * read past their end).
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "image_input.h"
#include "test.h"

static bool parse_text(const char *text, image_spec *spec, char *err, size_t n)
{
    json_error_t jerr;
    json_t *j = json_loads(text, 0, &jerr);
    if (!j) {
        snprintf(err, n, "bad test JSON: %s", jerr.text);
        return false;
    }
    bool ok = image_spec_parse(j, "model.json: preprocessing.input", spec, err, n);
    json_decref(j);
    return ok;
}

static void expect_refused(const char *text, const char *field, const char *reason)
{
    image_spec spec;
    char err[1024] = "";
    bool ok = parse_text(text, &spec, err, sizeof(err));
    if (ok)
        fprintf(stderr, "accepted: %s\n", text);
    CHECK(!ok);
    CHECK_STR_CONTAINS(err, "model.json: preprocessing.input");
    CHECK_STR_CONTAINS(err, field);
    CHECK_STR_CONTAINS(err, reason);
}

static void test_spec_defaults_fill_what_is_not_declared(void)
{
    image_spec spec;
    char err[1024];
    CHECK(parse_text("{\"kind\": \"image\", \"color\": \"rgb\", \"size\": [224, 200]}", &spec, err, sizeof(err)));
    CHECK_EQ_INT(spec.color, IMAGE_COLOR_RGB);
    CHECK_EQ_INT(spec.height, 224);
    CHECK_EQ_INT(spec.width, 200);
    CHECK_EQ_INT(spec.filter, IMAGE_FILTER_BILINEAR);
    CHECK_EQ_INT(spec.fit, IMAGE_FIT_STRETCH);
    CHECK_EQ_INT(spec.layout, IMAGE_LAYOUT_NCHW);
    CHECK_EQ_INT(spec.dtype, IFD_FLOAT);
    CHECK_NEAR(spec.scale, 1.0, 0);
    CHECK_NEAR(spec.std[2], 1.0, 0);
    CHECK(!spec.invert);
}

static void test_spec_refusals_name_the_field_and_reason(void)
{
    expect_refused("[]", "preprocessing.input", "expected an object");
    expect_refused("{\"kind\": \"tensor\", \"color\": \"rgb\", \"size\": [1, 1]}", "'kind'", "\"image\"");
    expect_refused("{\"kind\": \"image\", \"size\": [1, 1]}", "'color'", "missing");
    expect_refused("{\"kind\": \"image\", \"color\": \"cmyk\", \"size\": [1, 1]}", "'color'", "'cmyk'");
    expect_refused("{\"kind\": \"image\", \"color\": \"rgb\"}", "'size'", "missing");
    expect_refused("{\"kind\": \"image\", \"color\": \"rgb\", \"size\": [0, 4]}", "'size'", "out of range");
    expect_refused("{\"kind\": \"image\", \"color\": \"rgb\", \"size\": [4, 99999]}", "'size'", "out of range");
    expect_refused("{\"kind\": \"image\", \"color\": \"rgb\", \"size\": [4.5, 4]}", "'size'", "[height, width]");
    expect_refused("{\"kind\": \"image\", \"color\": \"rgb\", \"size\": [4, 4], \"resize\": \"bicubic\"}",
                   "'resize'", "bilinear or nearest");
    expect_refused("{\"kind\": \"image\", \"color\": \"rgb\", \"size\": [4, 4], \"fit\": \"cover\"}", "'fit'",
                   "letterbox");
    expect_refused("{\"kind\": \"image\", \"color\": \"rgb\", \"size\": [4, 4], \"layout\": \"nchw\"}",
                   "'layout'", "NCHW");
    expect_refused("{\"kind\": \"image\", \"color\": \"rgb\", \"size\": [4, 4], \"dtype\": \"int64\"}",
                   "'dtype'", "'int64'");
    expect_refused("{\"kind\": \"image\", \"color\": \"rgb\", \"size\": [4, 4], \"mean\": [1, 2]}", "'mean'",
                   "array of 3 numbers");
    expect_refused("{\"kind\": \"image\", \"color\": \"gray\", \"size\": [4, 4], \"std\": 0}", "'std'",
                   "not be zero");
    expect_refused("{\"kind\": \"image\", \"color\": \"rgb\", \"size\": [4, 4], \"std\": [1, 0, 1]}", "'std'",
                   "not be zero");
    expect_refused("{\"kind\": \"image\", \"color\": \"rgb\", \"size\": [4, 4], \"scale\": \"1/255\"}",
                   "'scale'", "a number");
    expect_refused("{\"kind\": \"image\", \"color\": \"rgb\", \"size\": [4, 4], \"invert\": 1}", "'invert'",
                   "true or false");
    expect_refused("{\"kind\": \"image\", \"color\": \"rgb\", \"size\": [4, 4], \"pad\": 300}", "'pad'", "0..255");
    expect_refused("{\"kind\": \"image\", \"color\": \"rgb\", \"size\": [4, 4], \"scael\": 2}", "'scael'",
                   "unknown field");
}

static void test_spec_json_form_parses_back_to_the_same_spec(void)
{
    image_spec spec, again;
    char err[1024], text[256];
    CHECK(parse_text("{\"kind\": \"image\", \"color\": \"bgr\", \"size\": [32, 48], \"resize\": \"nearest\", "
                     "\"fit\": \"letterbox\", \"pad\": 114, \"layout\": \"NHWC\", \"dtype\": \"uint8\", "
                     "\"scale\": 0.5, \"mean\": [1, 2, 3], \"std\": [4, 5, 6], \"invert\": true}",
                     &spec, err, sizeof(err)));
    json_t *j = image_spec_to_json(&spec);
    CHECK(j != NULL);
    CHECK(image_spec_parse(j, "round trip", &again, err, sizeof(err)));
    json_t *j2 = image_spec_to_json(&again);
    CHECK(json_equal(j, j2));
    CHECK(again.fit == IMAGE_FIT_LETTERBOX && again.pad == 114 && again.invert && again.std[2] == 6);
    json_decref(j);
    json_decref(j2);
    image_spec_describe(&spec, text, sizeof(text));
    CHECK_STR_CONTAINS(text, "bgr 32x48 nearest letterbox pad=114 NHWC uint8 invert scale=0.5 mean=1,2,3 std=4,5,6");
    int64_t dims[4];
    CHECK_EQ_INT(image_spec_shape(&spec, dims), 4);
    CHECK(dims[0] == 1 && dims[1] == 32 && dims[2] == 48 && dims[3] == 3);
}

static void test_spec_check_input_names_input_and_both_shapes(void)
{
    image_spec spec;
    char err[1024];
    CHECK(parse_text("{\"kind\": \"image\", \"color\": \"gray\", \"size\": [28, 28]}", &spec, err, sizeof(err)));
    ifd_io_info input = {.name = "pixels", .type = {.kind = IFD_VALUE_TENSOR, .dtype = IFD_FLOAT, .rank = 4,
                                                    .dims = {-1, 1, 28, 28}}};
    CHECK(image_spec_check_input(&spec, &input, err, sizeof(err)));
    input.type.dims[1] = 3;
    CHECK(!image_spec_check_input(&spec, &input, err, sizeof(err)));
    CHECK_STR_CONTAINS(err, "input 'pixels' has shape [?,3,28,28], but its image preprocessing makes [1,1,28,28]");
    input.type.dims[1] = 1;
    input.type.dtype = IFD_INT64;
    CHECK(!image_spec_check_input(&spec, &input, err, sizeof(err)));
    CHECK_STR_CONTAINS(err, "takes int64");
}

static void expect_base64(const char *text, const char *bytes, size_t size)
{
    uint8_t *out;
    size_t out_size;
    char err[256] = "";
    bool ok = image_base64_decode(text, strlen(text), &out, &out_size, err, sizeof(err));
    if (!ok)
        fprintf(stderr, "base64 '%s': %s\n", text, err);
    CHECK(ok);
    CHECK_EQ_INT(out_size, size);
    CHECK(ok && memcmp(out, bytes, size) == 0);
    free(out);
}

static void expect_base64_refused(const char *text, const char *reason)
{
    uint8_t *out = (uint8_t *)"";
    size_t out_size;
    char err[256] = "";
    CHECK(!image_base64_decode(text, strlen(text), &out, &out_size, err, sizeof(err)));
    CHECK(out == NULL);
    CHECK_STR_CONTAINS(err, reason);
}

static void test_base64_decodes_padded_unpadded_wrapped_and_data_urls(void)
{
    expect_base64("aW5mZXJk", "inferd", 6);
    expect_base64("aW5mZXJkIQ==", "inferd!", 7);
    expect_base64("aW5mZXJkIQ", "inferd!", 7);
    expect_base64("aW5mZXJkISE=", "inferd!!", 8);
    expect_base64("aW5m\r\nZXJk\n", "inferd", 6);
    expect_base64("data:image/png;base64,iVBORw==", "\x89PNG", 4);
    expect_base64("AP8=", "\x00\xff", 2);
}

static void test_base64_refuses_what_is_not_base64(void)
{
    expect_base64_refused("", "empty");
    expect_base64_refused("   ", "empty");
    expect_base64_refused("aW5m*XJk", "unexpected character at offset 4");
    expect_base64_refused("aW5mZXJkI", "cannot end");
    expect_base64_refused("aW5=mZXJk", "after the '=' padding");
    expect_base64_refused("aW5mZXJkIQ=", "cannot end");
    expect_base64_refused("data:image/png,iVBORw==", "must be base64");
}

static void test_sniff_uses_magic_bytes_only(void)
{
    CHECK_EQ_INT(image_sniff("\xff\xd8\xff\xe0", 4), IMAGE_FORMAT_JPEG);
    CHECK_EQ_INT(image_sniff("\x89PNG\r\n\x1a\n", 8), IMAGE_FORMAT_PNG);
    CHECK_EQ_INT(image_sniff("\x89PNG\r\n\x1a", 7), IMAGE_FORMAT_UNKNOWN);
    CHECK_EQ_INT(image_sniff("GIF89a", 6), IMAGE_FORMAT_UNKNOWN);
    CHECK_EQ_INT(image_sniff(NULL, 0), IMAGE_FORMAT_UNKNOWN);
    CHECK(strcmp(image_format_name(IMAGE_FORMAT_PNG), "png") == 0);
}

/* "Exif\0\0" + TIFF header + IFD0 with one entry: the orientation. */
static size_t exif_segment(uint8_t *buf, bool big_endian, unsigned type, unsigned count, unsigned value)
{
    static const uint8_t le[] = {'E', 'x', 'i', 'f', 0, 0, 'I', 'I', 42, 0, 8, 0, 0, 0, 1, 0};
    static const uint8_t be[] = {'E', 'x', 'i', 'f', 0, 0, 'M', 'M', 0, 42, 0, 0, 0, 8, 0, 1};
    memcpy(buf, big_endian ? be : le, 16);
    uint8_t *e = buf + 16;
    memset(e, 0, 12);
    if (big_endian) {
        e[0] = 0x01; e[1] = 0x12; e[3] = (uint8_t)type; e[7] = (uint8_t)count; e[9] = (uint8_t)value;
    } else {
        e[0] = 0x12; e[1] = 0x01; e[2] = (uint8_t)type; e[4] = (uint8_t)count; e[8] = (uint8_t)value;
    }
    return 28;
}

static void test_exif_orientation_is_read_in_both_byte_orders(void)
{
    uint8_t seg[64];
    for (unsigned o = 1; o <= 8; o++) {
        CHECK_EQ_INT(image_exif_orientation(seg, exif_segment(seg, false, 3, 1, o)), o);
        CHECK_EQ_INT(image_exif_orientation(seg, exif_segment(seg, true, 3, 1, o)), o);
    }
}

static void test_exif_malformed_segments_mean_upright_and_are_never_overread(void)
{
    uint8_t seg[64];
    size_t size = exif_segment(seg, false, 3, 1, 6);
    CHECK_EQ_INT(image_exif_orientation(seg, exif_segment(seg, false, 3, 1, 9)), 1); /* out of range */
    CHECK_EQ_INT(image_exif_orientation(seg, exif_segment(seg, false, 4, 1, 6)), 1); /* LONG, not SHORT */
    CHECK_EQ_INT(image_exif_orientation(seg, exif_segment(seg, false, 3, 2, 6)), 1); /* two values */
    exif_segment(seg, false, 3, 1, 6);
    /* every truncation, read from a heap copy of exactly that size so ASan sees any overread */
    for (size_t cut = 0; cut < size; cut++) {
        uint8_t *copy = malloc(cut ? cut : 1);
        memcpy(copy, seg, cut);
        CHECK_EQ_INT(image_exif_orientation(copy, cut), 1);
        free(copy);
    }
    seg[14] = 0xff; /* 65535 entries announced, one present */
    seg[15] = 0xff;
    seg[16] = 0; /* and not the orientation tag */
    CHECK_EQ_INT(image_exif_orientation(seg, size), 1);
    exif_segment(seg, false, 3, 1, 6);
    seg[10] = 0xf0; /* IFD0 offset past the end */
    CHECK_EQ_INT(image_exif_orientation(seg, size), 1);
    exif_segment(seg, false, 3, 1, 6);
    seg[13] = 0xff; /* IFD0 offset near 4 GiB: no wrap-around */
    CHECK_EQ_INT(image_exif_orientation(seg, size), 1);
    memcpy(seg, "Exif\0\0XX", 8); /* no byte order */
    CHECK_EQ_INT(image_exif_orientation(seg, size), 1);
}

static void test_orient_turns_a_2x3_image_as_exif_says(void)
{
    /* stored 3 wide, 2 high: 1 2 3 / 4 5 6 */
    static const uint8_t stored[6] = {1, 2, 3, 4, 5, 6};
    static const struct {
        int orientation, width, height;
        uint8_t upright[6];
    } cases[] = {{2, 3, 2, {3, 2, 1, 6, 5, 4}}, {3, 3, 2, {6, 5, 4, 3, 2, 1}}, {4, 3, 2, {4, 5, 6, 1, 2, 3}},
                 {5, 2, 3, {1, 4, 2, 5, 3, 6}}, {6, 2, 3, {4, 1, 5, 2, 6, 3}}, {7, 2, 3, {6, 3, 5, 2, 4, 1}},
                 {8, 2, 3, {3, 6, 2, 5, 1, 4}}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        image_pixels p = {.width = 3, .height = 2, .channels = 1, .data = malloc(6)};
        memcpy(p.data, stored, 6);
        char err[128];
        CHECK(image_orient(&p, cases[i].orientation, err, sizeof(err)));
        CHECK_EQ_INT(p.width, cases[i].width);
        CHECK_EQ_INT(p.height, cases[i].height);
        if (memcmp(p.data, cases[i].upright, 6) != 0)
            fprintf(stderr, "orientation %d: wrong pixels\n", cases[i].orientation);
        CHECK(memcmp(p.data, cases[i].upright, 6) == 0);
        image_pixels_free(&p);
    }
}

int main(void)
{
    RUN(test_spec_defaults_fill_what_is_not_declared);
    RUN(test_spec_refusals_name_the_field_and_reason);
    RUN(test_spec_json_form_parses_back_to_the_same_spec);
    RUN(test_spec_check_input_names_input_and_both_shapes);
    RUN(test_base64_decodes_padded_unpadded_wrapped_and_data_urls);
    RUN(test_base64_refuses_what_is_not_base64);
    RUN(test_sniff_uses_magic_bytes_only);
    RUN(test_exif_orientation_is_read_in_both_byte_orders);
    RUN(test_exif_malformed_segments_mean_upright_and_are_never_overread);
    RUN(test_orient_turns_a_2x3_image_as_exif_says);
    TEST_MAIN_END();
}
