/*
 * tensor.c — decoded pixels to the tensor a model takes, as the spec says:
 * colour conversion, the geometry (stretch, center-crop, letterbox) with
 * bilinear or nearest sampling at pixel centres, then invert, scale, mean
 * and std per channel, written in the declared layout and dtype. The exact
 * definition is in image_input.h; tools/gen_image_fixtures.py computes the
 * same with numpy and the tests compare the two.
 *
 * Each axis's sampling positions are computed once (axis_map), so the inner
 * loop is a few multiply-adds per element.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image_internal.h"

/* Where output coordinate d samples the source along one axis. */
typedef struct axis_sample {
    int low, high;  /* the two source samples bilinear mixes (equal at edges) */
    double weight;  /* of high */
    int nearest;
    bool inside;    /* false: letterbox padding */
} axis_sample;

static axis_sample *axis_map(int in, int out, double ratio, double crop_start, int content, int offset,
                             const char *axis, char *err, size_t n)
{
    axis_sample *map = calloc((size_t)out, sizeof(*map));
    if (!map) {
        snprintf(err, n, "out of memory planning the %s resize", axis);
        return NULL;
    }
    for (int d = 0; d < out; d++) {
        axis_sample *s = &map[d];
        s->inside = d >= offset && d < offset + content;
        if (!s->inside)
            continue;
        double centre = crop_start + ((double)(d - offset) + 0.5) * ratio;
        double f = centre - 0.5;
        if (f < 0)
            f = 0;
        int low = (int)f;
        if (low > in - 1)
            low = in - 1;
        s->low = low;
        s->high = low + 1 < in ? low + 1 : in - 1;
        s->weight = f - low;
        if (s->weight > 1)
            s->weight = 1;
        int nearest = (int)floor(centre);
        s->nearest = nearest < 0 ? 0 : nearest > in - 1 ? in - 1 : nearest;
    }
    return map;
}

/* pixels (1 or 3 channels) to the spec's colour, 8-bit. */
static uint8_t *convert_color(const image_pixels *pixels, image_color color, int *channels, char *err, size_t n)
{
    int out_channels = color == IMAGE_COLOR_GRAY ? 1 : 3;
    size_t count = (size_t)pixels->width * (size_t)pixels->height;
    size_t total = pixel_bytes((uint64_t)pixels->width, (uint64_t)pixels->height, (uint64_t)out_channels);
    uint8_t *out = total ? malloc(total) : NULL;
    if (!out) {
        snprintf(err, n, "out of memory converting a %dx%d image", pixels->width, pixels->height);
        return NULL;
    }
    const uint8_t *p = pixels->data;
    for (size_t i = 0; i < count; i++) {
        if (out_channels == 1) {
            out[i] = pixels->channels == 1 ? p[i]
                                           : (uint8_t)((299u * p[3 * i] + 587u * p[3 * i + 1] +
                                                        114u * p[3 * i + 2] + 500u) / 1000u);
        } else if (pixels->channels == 1) {
            out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = p[i];
        } else {
            bool bgr = color == IMAGE_COLOR_BGR;
            out[3 * i] = p[3 * i + (bgr ? 2 : 0)];
            out[3 * i + 1] = p[3 * i + 1];
            out[3 * i + 2] = p[3 * i + (bgr ? 0 : 2)];
        }
    }
    *channels = out_channels;
    return out;
}

static void store_element(ifd_tensor *t, size_t index, double v)
{
    switch (t->dtype) {
    case IFD_FLOAT: ((float *)t->data)[index] = (float)v; break;
    case IFD_DOUBLE: ((double *)t->data)[index] = v; break;
    case IFD_UINT8: {
        double r = round(v);
        ((uint8_t *)t->data)[index] = (uint8_t)(r < 0 ? 0 : r > 255 ? 255 : r);
        break;
    }
    case IFD_INT8: {
        double r = round(v);
        ((int8_t *)t->data)[index] = (int8_t)(r < -128 ? -128 : r > 127 ? 127 : r);
        break;
    }
    default: break; /* image_spec_parse admits no other dtype */
    }
}

ifd_value *image_to_tensor(const image_pixels *pixels, const image_spec *spec, char *err, size_t n)
{
    if (!pixels || !pixels->data || pixels->width < 1 || pixels->height < 1 ||
        (pixels->channels != 1 && pixels->channels != 3)) {
        snprintf(err, n, "no decoded image to preprocess");
        return NULL;
    }
    int in_w = pixels->width, in_h = pixels->height, out_w = spec->width, out_h = spec->height;
    double ratio_x = (double)in_w / out_w, ratio_y = (double)in_h / out_h;
    double crop_x = 0, crop_y = 0;
    int content_w = out_w, content_h = out_h, offset_x = 0, offset_y = 0;
    if (spec->fit == IMAGE_FIT_CENTER_CROP) {
        double s = ratio_x < ratio_y ? ratio_x : ratio_y; /* the image covers the output */
        crop_x = (in_w - out_w * s) / 2;
        crop_y = (in_h - out_h * s) / 2;
        ratio_x = ratio_y = s;
    } else if (spec->fit == IMAGE_FIT_LETTERBOX) {
        double s = ratio_x > ratio_y ? ratio_x : ratio_y; /* the output holds the image */
        content_w = (int)lround(in_w / s);
        content_h = (int)lround(in_h / s);
        content_w = content_w < 1 ? 1 : content_w > out_w ? out_w : content_w;
        content_h = content_h < 1 ? 1 : content_h > out_h ? out_h : content_h;
        offset_x = (out_w - content_w) / 2;
        offset_y = (out_h - content_h) / 2;
        ratio_x = (double)in_w / content_w;
        ratio_y = (double)in_h / content_h;
    }
    int channels = 0;
    uint8_t *color = convert_color(pixels, spec->color, &channels, err, n);
    axis_sample *xs = color ? axis_map(in_w, out_w, ratio_x, crop_x, content_w, offset_x, "width", err, n) : NULL;
    axis_sample *ys = xs ? axis_map(in_h, out_h, ratio_y, crop_y, content_h, offset_y, "height", err, n) : NULL;
    int64_t dims[4];
    int rank = image_spec_shape(spec, dims);
    ifd_value *value = NULL;
    ifd_error e;
    if (ys && ifd_value_new_tensor(spec->dtype, rank, dims, &value, &e) != IFD_OK) {
        snprintf(err, n, "cannot allocate the image tensor: %s", e.message);
        value = NULL;
    }
    if (value) {
        bool planar = spec->layout == IMAGE_LAYOUT_NCHW || spec->layout == IMAGE_LAYOUT_CHW;
        size_t plane = (size_t)out_w * (size_t)out_h;
        size_t row = (size_t)in_w * (size_t)channels;
        for (int y = 0; y < out_h; y++) {
            const axis_sample *sy = &ys[y];
            for (int x = 0; x < out_w; x++) {
                const axis_sample *sx = &xs[x];
                for (int c = 0; c < channels; c++) {
                    double v;
                    if (!sx->inside || !sy->inside) {
                        v = spec->pad;
                    } else if (spec->filter == IMAGE_FILTER_NEAREST) {
                        v = color[(size_t)sy->nearest * row + (size_t)sx->nearest * (size_t)channels + (size_t)c];
                    } else {
                        const uint8_t *top = color + (size_t)sy->low * row + (size_t)c;
                        const uint8_t *bottom = color + (size_t)sy->high * row + (size_t)c;
                        size_t x0 = (size_t)sx->low * (size_t)channels, x1 = (size_t)sx->high * (size_t)channels;
                        double upper = top[x0] + (top[x1] - top[x0]) * sx->weight;
                        double lower = bottom[x0] + (bottom[x1] - bottom[x0]) * sx->weight;
                        v = upper + (lower - upper) * sy->weight;
                    }
                    if (spec->invert)
                        v = 255.0 - v;
                    v = (v * spec->scale - spec->mean[c]) / spec->std[c];
                    size_t pixel = (size_t)y * (size_t)out_w + (size_t)x;
                    size_t index = planar ? (size_t)c * plane + pixel : pixel * (size_t)channels + (size_t)c;
                    store_element(&value->tensor, index, v);
                }
            }
        }
    }
    free(xs);
    free(ys);
    free(color);
    return value;
}

ifd_value *image_prepare(const void *data, size_t size, const image_spec *spec, const image_limits *limits,
                         const char *label, char *err, size_t n)
{
    image_pixels pixels;
    if (!image_decode(data, size, limits, label, &pixels, err, n))
        return NULL;
    char reason[512];
    ifd_value *value = image_to_tensor(&pixels, spec, reason, sizeof(reason));
    if (!value)
        snprintf(err, n, "%s: %s", label ? label : "image", reason);
    image_pixels_free(&pixels);
    return value;
}
