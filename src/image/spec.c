/*
 * spec.c — the image preprocessing a model declares (image_input.h): parsed
 * strictly from JSON (every field checked, unknown keys refused, messages
 * naming the field), printed back in full, and checked against the model's
 * declared input so a mismatch is found at import or load, not per request.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "image_input.h"

static const char *const color_names[] = {"gray", "rgb", "bgr"};
static const char *const filter_names[] = {"bilinear", "nearest"};
static const char *const fit_names[] = {"stretch", "letterbox", "center-crop"};
static const char *const layout_names[] = {"NCHW", "NHWC", "CHW", "HWC"};
static const struct {
    const char *name;
    ifd_dtype dtype;
} dtypes[] = {{"float32", IFD_FLOAT}, {"float64", IFD_DOUBLE}, {"uint8", IFD_UINT8}, {"int8", IFD_INT8}};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static int channels_of(image_color color)
{
    return color == IMAGE_COLOR_GRAY ? 1 : 3;
}

/* The index of `text` in names, or -1. */
static int find_name(const char *text, const char *const *names, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (strcmp(text, names[i]) == 0)
            return (int)i;
    return -1;
}

static void join_names(const char *const *names, size_t count, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < count && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%s", i ? (i + 1 == count ? " or " : ", ") : "",
                                 names[i]);
}

static bool parse_enum(const json_t *obj, const char *key, const char *where, const char *const *names,
                       size_t count, int *out, char *err, size_t n)
{
    const json_t *j = json_object_get(obj, key);
    if (!j)
        return true;
    char expected[128];
    join_names(names, count, expected, sizeof(expected));
    int found = json_is_string(j) ? find_name(json_string_value(j), names, count) : -1;
    if (found < 0) {
        snprintf(err, n, "%s: field '%s': expected %s, got %s%s%s", where, key, expected,
                 json_is_string(j) ? "'" : "a JSON ", json_is_string(j) ? json_string_value(j) : "non-string",
                 json_is_string(j) ? "'" : "");
        return false;
    }
    *out = found;
    return true;
}

static bool parse_number(const json_t *j, const char *key, const char *where, double *out, char *err,
                         size_t n)
{
    if (!json_is_number(j)) {
        snprintf(err, n, "%s: field '%s': expected a number", where, key);
        return false;
    }
    *out = json_number_value(j);
    if (!isfinite(*out)) {
        snprintf(err, n, "%s: field '%s': expected a finite number", where, key);
        return false;
    }
    return true;
}

/* mean / std: one number for every channel, or one per channel. */
static bool parse_per_channel(const json_t *obj, const char *key, const char *where, int channels,
                              double out[3], char *err, size_t n)
{
    const json_t *j = json_object_get(obj, key);
    if (!j)
        return true;
    if (json_is_number(j)) {
        double v;
        if (!parse_number(j, key, where, &v, err, n))
            return false;
        out[0] = out[1] = out[2] = v;
        return true;
    }
    if (!json_is_array(j) || (int)json_array_size(j) != channels) {
        snprintf(err, n, "%s: field '%s': expected a number or an array of %d number%s (one per %s channel)",
                 where, key, channels, channels == 1 ? "" : "s", channels == 1 ? "gray" : "color");
        return false;
    }
    for (int c = 0; c < channels; c++) {
        char item[32];
        snprintf(item, sizeof(item), "%s[%d]", key, c);
        if (!parse_number(json_array_get(j, (size_t)c), item, where, &out[c], err, n))
            return false;
    }
    if (channels == 1)
        out[1] = out[2] = out[0];
    return true;
}

bool image_spec_parse(const json_t *json, const char *where, image_spec *out, char *err, size_t n)
{
    static const char *const known[] = {"kind", "color", "size", "resize", "fit", "pad", "layout",
                                        "dtype", "scale", "mean", "std", "invert"};
    image_spec spec = {.filter = IMAGE_FILTER_BILINEAR, .fit = IMAGE_FIT_STRETCH, .layout = IMAGE_LAYOUT_NCHW,
                       .dtype = IFD_FLOAT, .scale = 1.0, .std = {1.0, 1.0, 1.0}};
    if (!json_is_object(json)) {
        snprintf(err, n, "%s: expected an object {\"kind\": \"image\", \"color\": ..., \"size\": [H, W], ...}",
                 where);
        return false;
    }
    const char *key;
    const json_t *value;
    json_object_foreach((json_t *)json, key, value) {
        if (find_name(key, known, COUNT(known)) < 0) {
            snprintf(err, n, "%s: unknown field '%s' (known: kind, color, size, resize, fit, pad, layout, "
                     "dtype, scale, mean, std, invert)", where, key);
            return false;
        }
    }
    const json_t *kind = json_object_get(json, "kind");
    if (!json_is_string(kind) || strcmp(json_string_value(kind), "image") != 0) {
        snprintf(err, n, "%s: field 'kind': expected \"image\"%s", where, kind ? "" : " (missing)");
        return false;
    }
    int color = -1;
    if (!json_object_get(json, "color")) {
        snprintf(err, n, "%s: field 'color' is missing (gray, rgb or bgr)", where);
        return false;
    }
    if (!parse_enum(json, "color", where, color_names, COUNT(color_names), &color, err, n))
        return false;
    spec.color = (image_color)color;

    const json_t *size = json_object_get(json, "size");
    if (!json_is_array(size) || json_array_size(size) != 2 || !json_is_integer(json_array_get(size, 0)) ||
        !json_is_integer(json_array_get(size, 1))) {
        snprintf(err, n, "%s: field 'size': expected [height, width] in pixels%s", where,
                 size ? "" : " (missing)");
        return false;
    }
    json_int_t h = json_integer_value(json_array_get(size, 0)), w = json_integer_value(json_array_get(size, 1));
    if (h < 1 || w < 1 || h > IMAGE_SIDE_MAX || w > IMAGE_SIDE_MAX) {
        snprintf(err, n, "%s: field 'size': [%lld, %lld] out of range: each side 1..%d", where, (long long)h,
                 (long long)w, IMAGE_SIDE_MAX);
        return false;
    }
    spec.height = (int)h;
    spec.width = (int)w;

    int e = spec.filter;
    if (!parse_enum(json, "resize", where, filter_names, COUNT(filter_names), &e, err, n))
        return false;
    spec.filter = (image_filter)e;
    e = spec.fit;
    if (!parse_enum(json, "fit", where, fit_names, COUNT(fit_names), &e, err, n))
        return false;
    spec.fit = (image_fit)e;
    e = spec.layout;
    if (!parse_enum(json, "layout", where, layout_names, COUNT(layout_names), &e, err, n))
        return false;
    spec.layout = (image_layout)e;

    const json_t *pad = json_object_get(json, "pad");
    if (pad) {
        if (!json_is_integer(pad) || json_integer_value(pad) < 0 || json_integer_value(pad) > 255) {
            snprintf(err, n, "%s: field 'pad': expected an integer sample value 0..255", where);
            return false;
        }
        spec.pad = (int)json_integer_value(pad);
    }
    const json_t *dtype = json_object_get(json, "dtype");
    if (dtype) {
        const char *name = json_is_string(dtype) ? json_string_value(dtype) : "";
        size_t i = 0;
        while (i < COUNT(dtypes) && strcmp(dtypes[i].name, name) != 0)
            i++;
        if (i == COUNT(dtypes)) {
            snprintf(err, n, "%s: field 'dtype': expected float32, float64, uint8 or int8, got '%s'", where,
                     json_is_string(dtype) ? name : "a non-string");
            return false;
        }
        spec.dtype = dtypes[i].dtype;
    }
    const json_t *scale = json_object_get(json, "scale");
    if (scale && !parse_number(scale, "scale", where, &spec.scale, err, n))
        return false;
    int channels = channels_of(spec.color);
    if (!parse_per_channel(json, "mean", where, channels, spec.mean, err, n) ||
        !parse_per_channel(json, "std", where, channels, spec.std, err, n))
        return false;
    for (int c = 0; c < 3; c++) {
        if (spec.std[c] == 0.0) {
            snprintf(err, n, "%s: field 'std': must not be zero (values are divided by it)", where);
            return false;
        }
    }
    const json_t *invert = json_object_get(json, "invert");
    if (invert) {
        if (!json_is_boolean(invert)) {
            snprintf(err, n, "%s: field 'invert': expected true or false", where);
            return false;
        }
        spec.invert = json_is_true(invert);
    }
    *out = spec;
    return true;
}

static const char *dtype_name(ifd_dtype dtype)
{
    for (size_t i = 0; i < COUNT(dtypes); i++)
        if (dtypes[i].dtype == dtype)
            return dtypes[i].name;
    return "?";
}

static json_t *per_channel_json(const image_spec *spec, const double values[3])
{
    if (spec->color == IMAGE_COLOR_GRAY)
        return json_real(values[0]);
    return json_pack("[f, f, f]", values[0], values[1], values[2]);
}

json_t *image_spec_to_json(const image_spec *spec)
{
    return json_pack("{s:s, s:s, s:[i, i], s:s, s:s, s:i, s:s, s:s, s:f, s:o, s:o, s:b}", "kind", "image",
                     "color", color_names[spec->color], "size", spec->height, spec->width, "resize",
                     filter_names[spec->filter], "fit", fit_names[spec->fit], "pad", spec->pad, "layout",
                     layout_names[spec->layout], "dtype", dtype_name(spec->dtype), "scale", spec->scale,
                     "mean", per_channel_json(spec, spec->mean), "std", per_channel_json(spec, spec->std),
                     "invert", spec->invert);
}

static size_t append_values(char *buf, size_t size, size_t used, const char *name, const image_spec *spec,
                            const double v[3], double neutral)
{
    if (v[0] == neutral && v[1] == neutral && v[2] == neutral)
        return used;
    if (used < size) {
        if (spec->color == IMAGE_COLOR_GRAY)
            used += (size_t)snprintf(buf + used, size - used, " %s=%g", name, v[0]);
        else
            used += (size_t)snprintf(buf + used, size - used, " %s=%g,%g,%g", name, v[0], v[1], v[2]);
    }
    return used;
}

const char *image_spec_describe(const image_spec *spec, char *buf, size_t size)
{
    size_t used = (size_t)snprintf(buf, size, "%s %dx%d %s %s", color_names[spec->color], spec->height,
                                   spec->width, filter_names[spec->filter], fit_names[spec->fit]);
    if (spec->fit == IMAGE_FIT_LETTERBOX && used < size)
        used += (size_t)snprintf(buf + used, size - used, " pad=%d", spec->pad);
    if (used < size)
        used += (size_t)snprintf(buf + used, size - used, " %s %s%s", layout_names[spec->layout],
                                 dtype_name(spec->dtype), spec->invert ? " invert" : "");
    if (spec->scale != 1.0 && used < size)
        used += (size_t)snprintf(buf + used, size - used, " scale=%g", spec->scale);
    used = append_values(buf, size, used, "mean", spec, spec->mean, 0.0);
    append_values(buf, size, used, "std", spec, spec->std, 1.0);
    return buf;
}

int image_spec_shape(const image_spec *spec, int64_t dims[4])
{
    int64_t c = channels_of(spec->color), h = spec->height, w = spec->width;
    switch (spec->layout) {
    case IMAGE_LAYOUT_NCHW: dims[0] = 1; dims[1] = c; dims[2] = h; dims[3] = w; return 4;
    case IMAGE_LAYOUT_NHWC: dims[0] = 1; dims[1] = h; dims[2] = w; dims[3] = c; return 4;
    case IMAGE_LAYOUT_CHW: dims[0] = c; dims[1] = h; dims[2] = w; return 3;
    case IMAGE_LAYOUT_HWC: dims[0] = h; dims[1] = w; dims[2] = c; return 3;
    }
    return 0;
}

static void shape_text(int rank, const int64_t *dims, const ifd_type_info *declared, char *buf, size_t size)
{
    size_t used = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < rank && used < size; i++) {
        const char *sep = i ? "," : "";
        if (dims)
            used += (size_t)snprintf(buf + used, size - used, "%s%lld", sep, (long long)dims[i]);
        else if (declared->dims[i] >= 0)
            used += (size_t)snprintf(buf + used, size - used, "%s%lld", sep, (long long)declared->dims[i]);
        else
            used += (size_t)snprintf(buf + used, size - used, "%s%s", sep,
                                     declared->dim_params[i] ? declared->dim_params[i] : "?");
    }
    if (used < size)
        snprintf(buf + used, size - used, "]");
}

bool image_spec_check_input(const image_spec *spec, const ifd_io_info *input, char *err, size_t n)
{
    const ifd_type_info *t = &input->type;
    int64_t dims[4];
    int rank = image_spec_shape(spec, dims);
    if (t->kind != IFD_VALUE_TENSOR) {
        snprintf(err, n, "input '%s' is not a tensor: an image cannot feed it", input->name);
        return false;
    }
    if (t->dtype != spec->dtype) {
        snprintf(err, n, "input '%s' takes %s, but its image preprocessing makes %s", input->name,
                 ifd_dtype_name(t->dtype), dtype_name(spec->dtype));
        return false;
    }
    if (t->rank < 0)
        return true;
    bool fits = t->rank == rank;
    for (int i = 0; fits && i < rank; i++)
        fits = t->dims[i] < 0 || t->dims[i] == dims[i];
    if (!fits) {
        char want[96], have[96];
        shape_text(t->rank, NULL, t, want, sizeof(want));
        shape_text(rank, dims, NULL, have, sizeof(have));
        snprintf(err, n, "input '%s' has shape %s, but its image preprocessing makes %s (check size, color "
                 "and layout)", input->name, want, have);
        return false;
    }
    return true;
}

bool image_preprocessing_parse(const json_t *json, const ifd_model *model, const char *where,
                               image_spec *specs, bool *has_spec, char *err, size_t n)
{
    size_t inputs = ifd_model_input_count(model);
    for (size_t i = 0; i < inputs; i++)
        has_spec[i] = false;
    if (!json || json_is_null(json))
        return true;
    if (!json_is_object(json)) {
        snprintf(err, n, "%s: expected an object {\"INPUT NAME\": {\"kind\": \"image\", ...}}", where);
        return false;
    }
    const char *name;
    const json_t *value;
    json_object_foreach((json_t *)json, name, value) {
        size_t i = 0;
        while (i < inputs && strcmp(ifd_model_input(model, i)->name, name) != 0)
            i++;
        char field[512];
        snprintf(field, sizeof(field), "%s.%s", where, name);
        if (i == inputs) {
            snprintf(err, n, "%s: the model has no input named '%s'", field, name);
            return false;
        }
        char reason[1024];
        if (!image_spec_parse(value, field, &specs[i], err, n))
            return false;
        if (!image_spec_check_input(&specs[i], ifd_model_input(model, i), reason, sizeof(reason))) {
            snprintf(err, n, "%s: %s", field, reason);
            return false;
        }
        has_spec[i] = true;
    }
    return true;
}
