/*
 * decode.c — the front of image decoding: the encoded-size limit, content
 * sniffing (magic bytes, never the file name or Content-Type), dispatch to
 * the JPEG or PNG decoder, and the steps that make every decoder's output
 * the same kind of thing: CMYK to RGB, alpha composited over white, EXIF
 * orientation applied (image_input.h gives the exact formulas).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image_internal.h"

size_t pixel_bytes(uint64_t width, uint64_t height, uint64_t channels)
{
    if (width == 0 || height == 0 || channels == 0)
        return 0;
    if (width > SIZE_MAX / height || width * height > SIZE_MAX / channels)
        return 0;
    return (size_t)(width * height * channels);
}

image_format image_sniff(const void *data, size_t size)
{
    static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
    const uint8_t *p = data;
    if (p && size >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff)
        return IMAGE_FORMAT_JPEG;
    if (p && size >= 8 && memcmp(p, png_magic, 8) == 0)
        return IMAGE_FORMAT_PNG;
    return IMAGE_FORMAT_UNKNOWN;
}

const char *image_format_name(image_format format)
{
    switch (format) {
    case IMAGE_FORMAT_JPEG: return "jpeg";
    case IMAGE_FORMAT_PNG: return "png";
    default: return "unknown";
    }
}

static uint8_t over_white(unsigned value, unsigned alpha)
{
    return (uint8_t)((value * alpha + 255u * (255u - alpha) + 127u) / 255u);
}

/* raw (1-4 channels, maybe CMYK) to 1 or 3 channels in place: every
 * conversion here shrinks a pixel, so one forward pass is safe. */
static void to_gray_or_rgb(raw_pixels *raw)
{
    size_t count = (size_t)raw->width * (size_t)raw->height;
    uint8_t *p = raw->data;
    if (raw->cmyk) {
        for (size_t i = 0; i < count; i++) {
            const uint8_t *s = p + 4 * i;
            /* Adobe's inverted CMYK stores 255 - ink: (255-C)(255-K) is s[0]*s[3] */
            unsigned c = raw->adobe_inverted ? s[0] : 255u - s[0], m = raw->adobe_inverted ? s[1] : 255u - s[1],
                     y = raw->adobe_inverted ? s[2] : 255u - s[2], k = raw->adobe_inverted ? s[3] : 255u - s[3];
            uint8_t *d = p + 3 * i;
            d[0] = (uint8_t)((c * k + 127u) / 255u);
            d[1] = (uint8_t)((m * k + 127u) / 255u);
            d[2] = (uint8_t)((y * k + 127u) / 255u);
        }
        raw->channels = 3;
    } else if (raw->channels == 2) {
        for (size_t i = 0; i < count; i++)
            p[i] = over_white(p[2 * i], p[2 * i + 1]);
        raw->channels = 1;
    } else if (raw->channels == 4) {
        for (size_t i = 0; i < count; i++) {
            unsigned a = p[4 * i + 3];
            uint8_t r = over_white(p[4 * i], a), g = over_white(p[4 * i + 1], a), b = over_white(p[4 * i + 2], a);
            p[3 * i] = r;
            p[3 * i + 1] = g;
            p[3 * i + 2] = b;
        }
        raw->channels = 3;
    }
    raw->cmyk = false;
}

bool image_orient(image_pixels *pixels, int orientation, char *err, size_t n)
{
    if (orientation <= 1 || orientation > 8)
        return true;
    int w = pixels->width, h = pixels->height, c = pixels->channels;
    bool swap = orientation >= 5;
    int out_w = swap ? h : w, out_h = swap ? w : h;
    size_t total = pixel_bytes((uint64_t)w, (uint64_t)h, (uint64_t)c);
    uint8_t *out = total ? malloc(total) : NULL;
    if (!out) {
        snprintf(err, n, "out of memory turning a %dx%d image upright", w, h);
        return false;
    }
    for (int y = 0; y < out_h; y++) {
        for (int x = 0; x < out_w; x++) {
            int sx, sy; /* where upright (x, y) is in the stored pixels */
            switch (orientation) {
            case 2: sx = w - 1 - x; sy = y; break;                 /* mirrored */
            case 3: sx = w - 1 - x; sy = h - 1 - y; break;         /* upside down */
            case 4: sx = x; sy = h - 1 - y; break;                 /* flipped */
            case 5: sx = y; sy = x; break;                         /* transposed */
            case 6: sx = y; sy = h - 1 - x; break;                 /* stored turned left */
            case 7: sx = w - 1 - y; sy = h - 1 - x; break;         /* transversed */
            default: sx = w - 1 - y; sy = x; break;                /* 8: stored turned right */
            }
            memcpy(out + ((size_t)y * (size_t)out_w + (size_t)x) * (size_t)c,
                   pixels->data + ((size_t)sy * (size_t)w + (size_t)sx) * (size_t)c, (size_t)c);
        }
    }
    free(pixels->data);
    pixels->data = out;
    pixels->width = out_w;
    pixels->height = out_h;
    pixels->orientation = orientation;
    return true;
}

bool image_decode(const void *data, size_t size, const image_limits *limits, const char *label,
                  image_pixels *out, char *err, size_t n)
{
    size_t max_bytes = limits && limits->max_encoded_bytes ? limits->max_encoded_bytes
                                                           : IMAGE_DEFAULT_MAX_ENCODED_BYTES;
    uint64_t max_pixels = limits && limits->max_pixels ? limits->max_pixels : IMAGE_DEFAULT_MAX_PIXELS;
    memset(out, 0, sizeof(*out));
    if (!label)
        label = "image";
    if (!data || size == 0) {
        snprintf(err, n, "%s: empty (no image bytes)", label);
        return false;
    }
    if (size > max_bytes) {
        snprintf(err, n, "%s: %zu bytes, more than the limit of %zu bytes for an encoded image", label, size,
                 max_bytes);
        return false;
    }
    image_format format = image_sniff(data, size);
    raw_pixels raw = {0};
    bool ok;
    if (format == IMAGE_FORMAT_JPEG) {
        ok = decode_jpeg(data, size, max_pixels, label, &raw, err, n);
    } else if (format == IMAGE_FORMAT_PNG) {
        ok = decode_png(data, size, max_pixels, label, &raw, err, n);
    } else {
        snprintf(err, n, "%s: not a JPEG or PNG image (its first bytes are neither format's signature)", label);
        return false;
    }
    if (!ok)
        return false;
    to_gray_or_rgb(&raw);
    *out = (image_pixels){.width = raw.width, .height = raw.height, .channels = raw.channels,
                          .data = raw.data, .format = format, .orientation = 1};
    if (!image_orient(out, raw.orientation, err, n)) {
        image_pixels_free(out);
        return false;
    }
    return true;
}

void image_pixels_free(image_pixels *pixels)
{
    if (!pixels)
        return;
    free(pixels->data);
    pixels->data = NULL;
}
