/*
 * image_internal.h — what the decoders of src/image share and nothing
 * outside uses: each format's decoder fills raw 8-bit samples in the
 * file's own channel layout; decode.c turns them into image_pixels.
 */
#ifndef INFERD_IMAGE_IMAGE_INTERNAL_H
#define INFERD_IMAGE_IMAGE_INTERNAL_H

#include "image_input.h"

/* A decoder's result: channels 1 (gray), 2 (gray + alpha), 3 (RGB),
 * 4 (RGBA) or, for JPEG only, 4 with cmyk set (Adobe-inverted when
 * adobe_inverted is set, as Photoshop writes CMYK JPEGs). */
typedef struct raw_pixels {
    int width, height, channels;
    bool cmyk, adobe_inverted;
    uint8_t *data;
    int orientation;
} raw_pixels;

bool decode_jpeg(const uint8_t *data, size_t size, uint64_t max_pixels, const char *label,
                 raw_pixels *out, char *err, size_t n);
bool decode_png(const uint8_t *data, size_t size, uint64_t max_pixels, const char *label,
                raw_pixels *out, char *err, size_t n);

/* width * height * channels, or 0 when it would overflow size_t. */
size_t pixel_bytes(uint64_t width, uint64_t height, uint64_t channels);

#endif /* INFERD_IMAGE_IMAGE_INTERNAL_H */
