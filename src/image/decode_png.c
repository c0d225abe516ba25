/*
 * decode_png.c — PNG from memory through libpng: the IHDR is read and its
 * dimensions held to the pixel limit before any row buffer exists (a PNG
 * of a few hundred bytes can announce 100k x 100k pixels); libpng's errors
 * longjmp back here with its message (truncation is our read callback
 * running out of bytes); every colour type is expanded to 8-bit gray,
 * gray+alpha, RGB or RGBA (palette -> RGB, low bit depths -> 8, tRNS ->
 * alpha, 16-bit -> its high byte).
 *
 * Two guards sit in front of libpng, both found by fuzz_image_decode:
 * libpng allocates a chunk's *declared* length before reading it (a
 * 130-byte file declaring a 1.6 GB zTXt made it allocate and touch 1.6 GB,
 * its chunk_malloc_max notwithstanding), so every chunk's length is first
 * held to the bytes actually present (check_chunks); and the ancillary
 * chunks a classifier never needs (text, ICC profiles, calibration, ...)
 * are skipped unread, so none of their decompressors run at all.
 */
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image_internal.h"

#define PNG_CHUNK_MALLOC_MAX (8u << 20)
#define PNG_CHUNK_CACHE_MAX 1000

typedef struct png_job {
    const uint8_t *data;
    size_t size, offset;
    char message[256];
} png_job;

static void on_png_error(png_structp png, png_const_charp message)
{
    png_job *job = png_get_error_ptr(png);
    snprintf(job->message, sizeof(job->message), "%s", message);
    png_longjmp(png, 1);
}

static void on_png_warning(png_structp png, png_const_charp message)
{
    (void)png; /* warnings (an odd ICC profile, ...) leave the pixels right */
    (void)message;
}

static void read_from_memory(png_structp png, png_bytep into, size_t length)
{
    png_job *job = png_get_io_ptr(png);
    if (length > job->size - job->offset)
        png_error(png, "truncated: the file ends before its image data does");
    memcpy(into, job->data + job->offset, length);
    job->offset += length;
}

/* The chunk structure, bounds-checked over the whole file before libpng
 * sees it: each chunk (length, type, data, CRC) lies inside the buffer, its
 * type is four letters, and an IEND chunk ends the image. */
static bool check_chunks(const uint8_t *data, size_t size, const char *label, char *err, size_t n)
{
    size_t at = 8; /* after the signature image_sniff() checked */
    while (at < size) {
        if (size - at < 12) {
            snprintf(err, n, "%s: not a valid PNG: truncated: the file ends inside a chunk header at offset %zu",
                     label, at);
            return false;
        }
        const uint8_t *p = data + at;
        uint32_t length = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        char type[5] = {(char)p[4], (char)p[5], (char)p[6], (char)p[7], 0};
        for (int i = 0; i < 4; i++) {
            char c = type[i];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) {
                snprintf(err, n, "%s: not a valid PNG: corrupt: the chunk at offset %zu has no four-letter type",
                         label, at);
                return false;
            }
        }
        if (length > size - at - 12) {
            snprintf(err, n, "%s: not a valid PNG: truncated: chunk '%s' at offset %zu declares %u bytes, "
                     "only %zu remain", label, type, at, (unsigned)length, size - at - 12);
            return false;
        }
        at += 12 + (size_t)length;
        if (memcmp(type, "IEND", 4) == 0)
            return true; /* what follows IEND is not part of the image */
    }
    snprintf(err, n, "%s: not a valid PNG: truncated: no IEND chunk", label);
    return false;
}

/* Ancillary chunks skipped unread (tRNS is kept: it is transparency). */
static const png_byte ignored_chunks[] = "bKGD\0cHRM\0eXIf\0gAMA\0hIST\0iCCP\0iTXt\0oFFs\0pCAL\0pHYs\0"
                                         "sBIT\0sCAL\0sPLT\0sRGB\0tEXt\0tIME\0zTXt\0acTL\0fcTL\0fdAT";

bool decode_png(const uint8_t *data, size_t size, uint64_t max_pixels, const char *label,
                raw_pixels *out, char *err, size_t n)
{
    if (!check_chunks(data, size, label, err, n))
        return false;
    png_job job = {.data = data, .size = size};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &job, on_png_error, on_png_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    /* written after setjmp and read after the jump: volatile */
    uint8_t *volatile pixels = NULL;
    png_bytep *volatile rows = NULL;
    if (!info) {
        snprintf(err, n, "%s: out of memory starting the PNG decoder", label);
        png_destroy_read_struct(png ? &png : NULL, NULL, NULL);
        return false;
    }
    if (setjmp(png_jmpbuf(png))) {
        snprintf(err, n, "%s: not a valid PNG: %s", label, job.message);
        free(rows);
        free(pixels);
        png_destroy_read_struct(&png, &info, NULL);
        return false;
    }
    png_set_read_fn(png, &job, read_from_memory);
    png_set_chunk_malloc_max(png, PNG_CHUNK_MALLOC_MAX);
    png_set_chunk_cache_max(png, PNG_CHUNK_CACHE_MAX);
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, ignored_chunks, (int)(sizeof(ignored_chunks) / 5));
    /* libpng's own ceiling on each side; the product is checked below */
    png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
    png_read_info(png, info);

    png_uint_32 width, height;
    int bit_depth, color_type, interlace;
    png_get_IHDR(png, info, &width, &height, &bit_depth, &color_type, &interlace, NULL, NULL);
    if ((uint64_t)width * height > max_pixels) {
        snprintf(err, n, "%s: the PNG header announces %ux%u pixels, more than the limit of %llu pixels", label,
                 (unsigned)width, (unsigned)height, (unsigned long long)max_pixels);
        png_destroy_read_struct(&png, &info, NULL);
        return false;
    }
    if (bit_depth == 16)
        png_set_strip_16(png);
    if (color_type == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(png);
    if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8)
        png_set_expand_gray_1_2_4_to_8(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS))
        png_set_tRNS_to_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);

    int channels = png_get_channels(png, info);
    size_t row_bytes = png_get_rowbytes(png, info);
    size_t total = pixel_bytes(width, height, (uint64_t)channels);
    if (channels < 1 || channels > 4 || row_bytes != (size_t)width * (size_t)channels) {
        snprintf(err, n, "%s: unexpected PNG layout after expansion (%d channels, %zu bytes a row)", label,
                 channels, row_bytes);
        png_destroy_read_struct(&png, &info, NULL);
        return false;
    }
    if (!total || !(pixels = malloc(total)) || !(rows = malloc((size_t)height * sizeof(*rows)))) {
        snprintf(err, n, "%s: out of memory for %ux%u pixels", label, (unsigned)width, (unsigned)height);
        free(pixels);
        png_destroy_read_struct(&png, &info, NULL);
        return false;
    }
    for (png_uint_32 y = 0; y < height; y++)
        rows[y] = pixels + (size_t)y * row_bytes;
    png_read_image(png, rows);
    png_read_end(png, NULL); /* a file cut after its image data has no IEND: refused */
    free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    *out = (raw_pixels){.width = (int)width, .height = (int)height, .channels = channels, .data = pixels,
                        .orientation = 1};
    return true;
}
