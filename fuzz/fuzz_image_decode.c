/*
 * fuzz_image_decode.c — libFuzzer target for the image path a request
 * takes (src/image): content sniffing, JPEG (libjpeg-turbo) and PNG
 * (libpng) decoding with their error longjmps, the EXIF orientation parser
 * and orientation, then resize + normalisation into a tensor; also the
 * base64 decoder on the same bytes as text.
 *
 * The spec varies with the input (its length and last byte pick colour,
 * filter, fit, layout and a small output size), so one corpus of real
 * images reaches every resize path. Oracles besides the sanitizers: a
 * decoded image respects the pixel limit and has 1 or 3 channels and an
 * orientation 1-8; the tensor has the spec's shape; with scale 1/255 and no
 * mean/std every float lies in [0, 1] (bilinear mixing is convex, padding
 * and inversion stay in range).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image_input.h"

/* Small enough to keep thousands of runs a second, large enough for
 * progressive JPEGs and interlaced PNGs with several passes. */
#define FUZZ_MAX_PIXELS (256u * 256u)

static void require(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_image_decode: broken promise: %s\n", what);
        abort();
    }
}

static void check_tensor(const ifd_value *v, const image_spec *spec)
{
    int64_t dims[4];
    int rank = image_spec_shape(spec, dims);
    require(v->kind == IFD_VALUE_TENSOR && v->tensor.rank == rank, "the tensor has the spec's rank");
    for (int i = 0; i < rank; i++)
        require(v->tensor.dims[i] == dims[i], "the tensor has the spec's shape");
    require(v->tensor.dtype == IFD_FLOAT, "the tensor has the spec's dtype");
    const float *x = v->tensor.data;
    for (int64_t i = 0; i < ifd_tensor_count(&v->tensor); i++)
        require(x[i] >= 0.0f && x[i] <= 1.0f, "scaled samples stay in [0, 1]");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[1024];
    image_format format = image_sniff(data, size);
    (void)image_format_name(format);
    (void)image_exif_orientation(data, size);

    uint8_t *decoded = NULL;
    size_t decoded_size = 0;
    if (image_base64_decode((const char *)data, size, &decoded, &decoded_size, err, sizeof(err))) {
        require(decoded_size <= size / 4 * 3 + 3, "base64 decodes to at most 3/4 of its length");
        free(decoded);
    }

    unsigned pick = size ? data[size - 1] : 0;
    image_spec spec = {.color = (image_color)(pick % 3), .filter = (image_filter)((pick / 3) % 2),
                       .fit = (image_fit)((pick / 6) % 3), .layout = (image_layout)((pick / 18) % 4),
                       .height = 1 + (int)(size % 29), .width = 1 + (int)((size / 29) % 31),
                       .pad = (int)(pick * 7 % 256), .dtype = IFD_FLOAT, .scale = 1.0 / 255,
                       .std = {1, 1, 1}, .invert = (pick & 0x80) != 0};
    image_limits limits = {.max_pixels = FUZZ_MAX_PIXELS};
    image_pixels pixels;
    if (!image_decode(data, size, &limits, "fuzz", &pixels, err, sizeof(err))) {
        require(err[0] != '\0', "a refusal says why");
        return 0;
    }
    require(format != IMAGE_FORMAT_UNKNOWN, "only JPEG and PNG decode");
    require((uint64_t)pixels.width * (uint64_t)pixels.height <= FUZZ_MAX_PIXELS, "the pixel limit holds");
    require(pixels.channels == 1 || pixels.channels == 3, "decoded images are gray or RGB");
    require(pixels.orientation >= 1 && pixels.orientation <= 8, "orientations are 1-8");
    ifd_value *v = image_to_tensor(&pixels, &spec, err, sizeof(err));
    require(v != NULL, "a decoded image always preprocesses");
    check_tensor(v, &spec);
    ifd_value_free(v);
    image_pixels_free(&pixels);
    return 0;
}
