/*
 * image_input.h — images as model inputs (src/image): the preprocessing a
 * model declares for an input of `kind: image` (in its manifest, so that
 * training and serving share one definition, versioned with the model),
 * decoding JPEG (libjpeg-turbo) and PNG (libpng) from memory with limits
 * checked before any pixel is decoded, and the resize + normalisation that
 * turns the pixels into the engine tensor the model takes. Also the small
 * helpers every request form needs: content sniffing, base64 (OpenSSL) and
 * the top-k of a classifier's answer.
 *
 * The pipeline, in order (each step defined exactly so that a reference
 * implementation can reproduce it; tools/gen_image_fixtures.py does, with
 * numpy):
 *   1. decode to 8-bit samples: JPEG in its own colour space (gray, or RGB
 *      from YCbCr; CMYK/YCCK converted as R = (255-C)(255-K)/255 rounded),
 *      PNG expanded (palette -> RGB, 1/2/4-bit gray -> 8-bit, tRNS -> alpha)
 *      with 16-bit samples keeping their high byte;
 *   2. alpha composited over white: v' = (v*a + 255*(255-a) + 127) / 255;
 *   3. JPEG EXIF orientation (tag 0x0112, 1-8) applied, so the pixels are
 *      upright as a viewer shows them;
 *   4. colour: gray from RGB is (299 R + 587 G + 114 B + 500) / 1000
 *      (ITU-R 601 luma, integer); gray to RGB repeats the sample; bgr swaps;
 *   5. geometry to size [H, W]: "stretch" scales each axis on its own,
 *      "center-crop" scales by the smaller ratio and crops the middle,
 *      "letterbox" scales by the larger ratio and pads the rest with `pad`;
 *      sampling uses pixel centres (src = (dst + 0.5) * ratio - 0.5, as
 *      OpenCV's INTER_LINEAR and torch's align_corners=False) with edge
 *      clamping: bilinear interpolates in float from the 8-bit samples,
 *      nearest takes floor((dst + 0.5) * ratio). No antialiasing: a large
 *      downscale aliases, as in those libraries;
 *   6. per element: v = invert ? 255 - v : v; v = v * scale;
 *      v = (v - mean[c]) / std[c]; integer dtypes then round half away from
 *      zero and saturate to the dtype's range;
 *   7. layout NCHW / NHWC (batch of 1) or CHW / HWC (no batch axis).
 *
 * Thread safety: every function is reentrant; specs are plain values.
 */
#ifndef INFERD_IMAGE_IMAGE_INPUT_H
#define INFERD_IMAGE_IMAGE_INPUT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "inferd/inferd.h"

/* ---- the declared preprocessing ------------------------------------------ */

typedef enum image_color { IMAGE_COLOR_GRAY, IMAGE_COLOR_RGB, IMAGE_COLOR_BGR } image_color;
typedef enum image_filter { IMAGE_FILTER_BILINEAR, IMAGE_FILTER_NEAREST } image_filter;
typedef enum image_fit { IMAGE_FIT_STRETCH, IMAGE_FIT_LETTERBOX, IMAGE_FIT_CENTER_CROP } image_fit;
typedef enum image_layout {
    IMAGE_LAYOUT_NCHW,
    IMAGE_LAYOUT_NHWC,
    IMAGE_LAYOUT_CHW,
    IMAGE_LAYOUT_HWC
} image_layout;

/* One input's preprocessing. JSON form (model.json "preprocessing": {INPUT:
 * SPEC}), defaults in brackets:
 *   {"kind": "image", "color": "gray"|"rgb"|"bgr", "size": [H, W],
 *    "resize": "bilinear"|"nearest" [bilinear],
 *    "fit": "stretch"|"letterbox"|"center-crop" [stretch], "pad": 0..255 [0],
 *    "layout": "NCHW"|"NHWC"|"CHW"|"HWC" [NCHW],
 *    "dtype": "float32"|"float64"|"uint8"|"int8" [float32],
 *    "scale": number [1], "mean": number or one per channel [0],
 *    "std": number or one per channel, non-zero [1], "invert": bool [false]}
 * color and size are required; unknown keys are refused (a typo must not
 * silently change what the model sees). */
typedef struct image_spec {
    image_color color;
    int height, width; /* 1 .. IMAGE_SIDE_MAX */
    image_filter filter;
    image_fit fit;
    int pad;           /* letterbox fill, as an 8-bit sample before invert/scale */
    image_layout layout;
    ifd_dtype dtype;   /* IFD_FLOAT, IFD_DOUBLE, IFD_UINT8 or IFD_INT8 */
    double scale;
    double mean[3], std[3]; /* per output channel (gray uses [0]) */
    bool invert;
} image_spec;

#define IMAGE_SIDE_MAX 16384

/* Parse a spec. `where` names it in messages ("model.json: preprocessing.input");
 * every message names the field and the reason. */
bool image_spec_parse(const json_t *json, const char *where, image_spec *out, char *err,
                      size_t err_size);
/* The spec in its JSON form, every field spelled out (defaults included). */
json_t *image_spec_to_json(const image_spec *spec);
/* One line for people: "gray 28x28 bilinear stretch NCHW float32 invert scale=0.00392157". */
const char *image_spec_describe(const image_spec *spec, char *buf, size_t size);
/* Does the tensor this spec makes fit the model's input (dtype, rank, known
 * dimensions)? The message names the input and both shapes. */
bool image_spec_check_input(const image_spec *spec, const ifd_io_info *input, char *err,
                            size_t err_size);
/* The shape image_to_tensor() makes; returns the rank (3 or 4). */
int image_spec_shape(const image_spec *spec, int64_t dims[4]);
/* Parse the "preprocessing" object of a manifest: {input name: spec}.
 * Checks every named input exists in the model and fits; fills specs[i]
 * for the model's input i and sets has_spec[i]. NULL json: nothing declared. */
bool image_preprocessing_parse(const json_t *json, const ifd_model *model, const char *where,
                               image_spec *specs, bool *has_spec, char *err, size_t err_size);

/* ---- decoding -------------------------------------------------------------- */

typedef enum image_format { IMAGE_FORMAT_UNKNOWN, IMAGE_FORMAT_JPEG, IMAGE_FORMAT_PNG } image_format;

/* JPEG (FF D8 FF) or PNG (89 'PNG' 0D 0A 1A 0A) by their magic bytes; the
 * file name or a request's Content-Type are never trusted for this. */
image_format image_sniff(const void *data, size_t size);
const char *image_format_name(image_format format); /* "jpeg", "png", "unknown" */

/* What a decoder may be asked to do. Zero fields take the defaults. */
typedef struct image_limits {
    size_t max_encoded_bytes; /* default IMAGE_DEFAULT_MAX_ENCODED_BYTES */
    uint64_t max_pixels;      /* width * height from the header; default IMAGE_DEFAULT_MAX_PIXELS */
} image_limits;

#define IMAGE_DEFAULT_MAX_ENCODED_BYTES (20u << 20)
#define IMAGE_DEFAULT_MAX_PIXELS (40ull * 1000 * 1000)

/* Decoded, upright pixels: 8-bit, interleaved, 1 (gray) or 3 (RGB) channels,
 * alpha already composited over white. */
typedef struct image_pixels {
    int width, height, channels;
    uint8_t *data; /* width * height * channels bytes, owned */
    image_format format;
    int orientation; /* the EXIF orientation applied (1 when none) */
} image_pixels;

/* Decode a JPEG or PNG held in memory. Refuses, with a message saying which
 * and why: an empty buffer, more than max_encoded_bytes, anything that is
 * not JPEG or PNG, a header announcing more than max_pixels, truncated or
 * corrupt data (libjpeg warnings included: a JPEG that decodes only with
 * gray filler is refused; stray bytes before a marker, which change no
 * pixel, are not). label names the image in messages ("image",
 * "upload 'image'"). */
bool image_decode(const void *data, size_t size, const image_limits *limits, const char *label,
                  image_pixels *out, char *err, size_t err_size);
void image_pixels_free(image_pixels *pixels);

/* The EXIF orientation (1-8) in a JPEG's APP1 Exif segment payload (the
 * bytes after the marker's length, starting "Exif\0\0"); 1 when absent or
 * malformed. Every offset is bounds-checked: the payload is untrusted. */
int image_exif_orientation(const uint8_t *app1, size_t size);
/* Apply an EXIF orientation to pixels in place (may swap width and height). */
bool image_orient(image_pixels *pixels, int orientation, char *err, size_t err_size);

/* ---- to the model's tensor --------------------------------------------------- */

/* Steps 4-7 above: a new tensor value of image_spec_shape()'s shape. */
ifd_value *image_to_tensor(const image_pixels *pixels, const image_spec *spec, char *err,
                           size_t err_size);
/* Decode + image_to_tensor in one call: what a request handler uses. */
ifd_value *image_prepare(const void *data, size_t size, const image_spec *spec,
                         const image_limits *limits, const char *label, char *err,
                         size_t err_size);
/* Several encoded images (a V2 BYTES tensor, several uploads) as one
 * batch: [count, ...] for the NCHW and NHWC layouts (CHW / HWC have no
 * batch axis: refused when count > 1). Message names the image by index
 * ("image 2: ..."). */
ifd_value *image_prepare_batch(const ifd_string *images, size_t count, const image_spec *spec,
                               const image_limits *limits, char *err, size_t err_size);

/* ---- request helpers ----------------------------------------------------------- */

/* Standard base64 (RFC 4648, with or without padding; ASCII whitespace
 * ignored; a "data:...;base64," prefix accepted) through OpenSSL's
 * EVP_DecodeBlock. *out is malloc'd. False with a message naming the first
 * offending character's offset. */
bool image_base64_decode(const char *text, size_t length, uint8_t **out, size_t *out_size,
                         char *err, size_t err_size);

/* A classifier's answer as the k most probable classes. */
typedef struct image_class_score {
    int64_t index;
    double probability;
    const char *label; /* from the labels object ({"0": "name"}), or NULL; borrowed */
} image_class_score;

/* Picks the model's class scores for batch row `row` among outputs: the
 * first float output shaped [N, K] (row < N) or [K] (row 0) whose row is
 * already probabilities (each in [0, 1], summing to 1 within 1e-3), else
 * the first such output through a softmax. Fills up to k entries (k <= K),
 * most probable first; ties keep the lower index first. Returns the number
 * filled, 0 with err when no output fits. */
size_t image_top_k(const ifd_model *model, const ifd_value *const *outputs, size_t row, const json_t *labels,
                   size_t k, image_class_score *out, char *err, size_t err_size);
/* The answer's JSON, one shape for every command and route:
 * [{"index": 7, "label": "seven" or null, "probability": 0.98}, ...]. */
json_t *image_scores_json(const image_class_score *scores, size_t count);

#endif /* INFERD_IMAGE_IMAGE_INPUT_H */
