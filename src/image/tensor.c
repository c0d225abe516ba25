/*
 * tensor.c — decoded pixels to the tensor a model takes, as the spec says:
 * colour conversion, the geometry (stretch, center-crop, letterbox) with
 * bilinear or nearest sampling at pixel centres, then invert, scale, mean
 * and std per channel, written in the declared layout and dtype. The exact
 * definition is in image_input.h; tools/gen_image_fixtures.py computes the
 * same with numpy and the tests compare the two.
 *
 * Each axis's sampling positions are computed once (axis_map); each output
 * row is sampled into a row of doubles, then normalised (one multiply-add
 * per element: scale/std and mean/std folded once) and stored in the
 * dtype's own loop, so the inner loops carry no per-element branches.
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

/* One sampled row (out_w * channels interleaved values, invert and
 * normalisation applied) into the tensor at output row y. */
static void store_row(ifd_tensor *t, const double *row, int y, int out_w, int out_h, int channels, bool planar)
{
    size_t plane = (size_t)out_w * (size_t)out_h, row_start = (size_t)y * (size_t)out_w;
    size_t width = (size_t)out_w, step = (size_t)channels;
    /* planar: channel c's row is contiguous; interleaved: the row is copied as is */
#define STORE_ROW(type, convert)                                                                              \
    do {                                                                                                      \
        type *out = t->data;                                                                                  \
        for (size_t c = 0; c < step; c++) {                                                                   \
            type *dst = planar ? out + c * plane + row_start : out + row_start * step + c;                    \
            size_t stride = planar ? 1 : step;                                                                \
            for (size_t x = 0; x < width; x++) {                                                              \
                double v = row[x * step + c];                                                                 \
                dst[x * stride] = convert;                                                                    \
            }                                                                                                 \
        }                                                                                                     \
    } while (0)
    switch (t->dtype) {
    case IFD_FLOAT: STORE_ROW(float, (float)v); break;
    case IFD_DOUBLE: STORE_ROW(double, v); break;
    case IFD_UINT8: STORE_ROW(uint8_t, (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : round(v))); break;
    case IFD_INT8: STORE_ROW(int8_t, (int8_t)(v < -128 ? -128 : v > 127 ? 127 : round(v))); break;
    default: break; /* image_spec_parse admits no other dtype */
    }
#undef STORE_ROW
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
    double *samples = value ? malloc((size_t)out_w * (size_t)channels * sizeof(*samples)) : NULL;
    if (value && !samples) {
        snprintf(err, n, "out of memory preprocessing a %dx%d image", in_w, in_h);
        ifd_value_free(value);
        value = NULL;
    }
    if (value) {
        bool planar = spec->layout == IMAGE_LAYOUT_NCHW || spec->layout == IMAGE_LAYOUT_CHW;
        size_t row = (size_t)in_w * (size_t)channels, width = (size_t)out_w * (size_t)channels;
        /* v' = (v * scale - mean) / std = v * gain + offset; inverted v is 255 - v */
        double gain[3], offset[3];
        for (int c = 0; c < channels; c++) {
            gain[c] = spec->scale / spec->std[c];
            offset[c] = -spec->mean[c] / spec->std[c];
            if (spec->invert) {
                offset[c] += 255.0 * gain[c];
                gain[c] = -gain[c];
            }
        }
        /* at scale 1 bilinear weights are all 0: the same values as nearest, with less work */
        image_filter filter = ratio_x == 1.0 && ratio_y == 1.0 && crop_x == 0 && crop_y == 0 ? IMAGE_FILTER_NEAREST
                                                                                            : spec->filter;
        for (int y = 0; y < out_h; y++) {
            const axis_sample *sy = &ys[y];
            const uint8_t *top = color + (size_t)sy->low * row, *bottom = color + (size_t)sy->high * row;
            const uint8_t *nearest_row = color + (size_t)sy->nearest * row;
            double wy = sy->weight;
            for (int x = 0; x < out_w; x++) {
                const axis_sample *sx = &xs[x];
                double *out = samples + (size_t)x * (size_t)channels;
                if (!sx->inside || !sy->inside) {
                    for (int c = 0; c < channels; c++)
                        out[c] = spec->pad;
                } else if (filter == IMAGE_FILTER_NEAREST) {
                    const uint8_t *p = nearest_row + (size_t)sx->nearest * (size_t)channels;
                    for (int c = 0; c < channels; c++)
                        out[c] = p[c];
                } else {
                    size_t x0 = (size_t)sx->low * (size_t)channels, x1 = (size_t)sx->high * (size_t)channels;
                    double wx = sx->weight;
                    for (int c = 0; c < channels; c++) {
                        double upper = top[x0 + c] + (top[x1 + c] - top[x0 + c]) * wx;
                        double lower = bottom[x0 + c] + (bottom[x1 + c] - bottom[x0 + c]) * wx;
                        out[c] = upper + (lower - upper) * wy;
                    }
                }
            }
            for (int c = 0; c < channels; c++)
                for (size_t i = (size_t)c; i < width; i += (size_t)channels)
                    samples[i] = samples[i] * gain[c] + offset[c];
            store_row(&value->tensor, samples, y, out_w, out_h, channels, planar);
        }
    }
    free(samples);
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

ifd_value *image_prepare_batch(const ifd_string *images, size_t count, const image_spec *spec,
                               const image_limits *limits, char *err, size_t n)
{
    bool batched = spec->layout == IMAGE_LAYOUT_NCHW || spec->layout == IMAGE_LAYOUT_NHWC;
    if (count == 0 || (!batched && count > 1)) {
        snprintf(err, n, count ? "%zu images, but layout %s has no batch axis" : "no image given", count,
                 spec->layout == IMAGE_LAYOUT_CHW ? "CHW" : "HWC");
        return NULL;
    }
    int64_t dims[4];
    int rank = image_spec_shape(spec, dims);
    if ((uint64_t)count > (uint64_t)INT64_MAX / 2) {
        snprintf(err, n, "too many images (%zu)", count);
        return NULL;
    }
    if (batched)
        dims[0] = (int64_t)count;
    ifd_value *batch = NULL;
    ifd_error e;
    if (ifd_value_new_tensor(spec->dtype, rank, dims, &batch, &e) != IFD_OK) {
        snprintf(err, n, "cannot allocate a batch of %zu images: %s", count, e.message);
        return NULL;
    }
    size_t bytes_each = (size_t)ifd_tensor_count(&batch->tensor) / count * ifd_dtype_size(spec->dtype);
    for (size_t i = 0; i < count; i++) {
        char label[32];
        snprintf(label, sizeof(label), "image %zu", i);
        ifd_value *one = image_prepare(images[i].data, images[i].size, spec, limits, label, err, n);
        if (!one) {
            ifd_value_free(batch);
            return NULL;
        }
        memcpy((char *)batch->tensor.data + i * bytes_each, one->tensor.data, bytes_each);
        ifd_value_free(one);
    }
    return batch;
}
