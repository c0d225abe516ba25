/*
 * decode_jpeg.c — JPEG from memory through libjpeg-turbo, strictly: the
 * header is read first and its dimensions held to the pixel limit before
 * any sample buffer exists; every libjpeg error *and warning* (a truncated
 * file only warns, then decodes gray filler) jumps back here with the
 * library's own message, so nothing is exit()ed and nothing half-decoded
 * is returned. A progress monitor bounds the number of progressive scans
 * (a few kilobytes can ask for thousands, each a full pass: a CPU bomb).
 * The APP1 Exif segment is kept for its orientation tag (exif.c).
 */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h> /* after stdio.h: it uses FILE and size_t without including them */
#include <jerror.h>

#include "image_internal.h"

/* libjpeg-turbo's own TurboJPEG API stops at 500 scans with its
 * "limit scans" flag; real progressive files use about 10. */
#define JPEG_MAX_SCANS 500

typedef struct jpeg_failure {
    struct jpeg_error_mgr manager; /* first: libjpeg sees only this */
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX + 64];
} jpeg_failure;

static void fail_with_library_message(j_common_ptr cinfo, const char *kind)
{
    jpeg_failure *failure = (jpeg_failure *)cinfo->err;
    char text[JMSG_LENGTH_MAX];
    (*cinfo->err->format_message)(cinfo, text);
    snprintf(failure->message, sizeof(failure->message), "%s%s", kind, text);
    longjmp(failure->jump, 1);
}

static void on_error_exit(j_common_ptr cinfo)
{
    fail_with_library_message(cinfo, "");
}

/* level -1 is a warning about the data (premature end, corrupt entropy
 * data, ...): the picture would be wrong, so it is an error here — except
 * stray bytes before a marker, which many cameras write and which change
 * no pixel. Trace messages (level >= 0) are ignored. */
static void on_emit_message(j_common_ptr cinfo, int level)
{
    if (level < 0 && cinfo->err->msg_code != JWRN_EXTRANEOUS_DATA)
        fail_with_library_message(cinfo, "corrupt or truncated data: ");
}

static void on_output_message(j_common_ptr cinfo)
{
    (void)cinfo; /* library code prints nothing */
}

static void on_progress(j_common_ptr cinfo)
{
    j_decompress_ptr d = (j_decompress_ptr)cinfo;
    if (cinfo->is_decompressor && d->input_scan_number > JPEG_MAX_SCANS) {
        jpeg_failure *failure = (jpeg_failure *)cinfo->err;
        snprintf(failure->message, sizeof(failure->message),
                 "more than %d progressive scans (a decoding-time bomb)", JPEG_MAX_SCANS);
        longjmp(failure->jump, 1);
    }
}

bool decode_jpeg(const uint8_t *data, size_t size, uint64_t max_pixels, const char *label,
                 raw_pixels *out, char *err, size_t n)
{
    struct jpeg_decompress_struct cinfo;
    jpeg_failure failure;
    struct jpeg_progress_mgr progress = {.progress_monitor = on_progress};
    /* written after setjmp and read after the jump: volatile */
    uint8_t *volatile pixels = NULL;
    volatile bool created = false;

    memset(&cinfo, 0, sizeof(cinfo));
    cinfo.err = jpeg_std_error(&failure.manager);
    failure.manager.error_exit = on_error_exit;
    failure.manager.emit_message = on_emit_message;
    failure.manager.output_message = on_output_message;
    failure.message[0] = '\0';
    if (setjmp(failure.jump)) {
        snprintf(err, n, "%s: not a valid JPEG: %s", label, failure.message);
        free(pixels);
        if (created)
            jpeg_destroy_decompress(&cinfo);
        return false;
    }
    jpeg_create_decompress(&cinfo);
    created = true;
    cinfo.progress = &progress;
    jpeg_mem_src(&cinfo, data, (unsigned long)size);
    jpeg_save_markers(&cinfo, JPEG_APP0 + 1, 0xFFFF);
    jpeg_read_header(&cinfo, TRUE);

    uint64_t pixel_count = (uint64_t)cinfo.image_width * cinfo.image_height;
    if (pixel_count > max_pixels) {
        snprintf(err, n, "%s: the JPEG header announces %ux%u pixels, more than the limit of %llu pixels",
                 label, cinfo.image_width, cinfo.image_height, (unsigned long long)max_pixels);
        jpeg_destroy_decompress(&cinfo);
        return false;
    }
    int orientation = 1;
    for (jpeg_saved_marker_ptr m = cinfo.marker_list; m; m = m->next) {
        /* the first Exif segment is the one viewers use (XMP is APP1 too) */
        if (m->marker == JPEG_APP0 + 1 && m->data_length >= 6 && memcmp(m->data, "Exif\0\0", 6) == 0) {
            orientation = image_exif_orientation(m->data, m->data_length);
            break;
        }
    }
    bool cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
    if (cinfo.jpeg_color_space == JCS_GRAYSCALE)
        cinfo.out_color_space = JCS_GRAYSCALE;
    else if (cmyk)
        cinfo.out_color_space = JCS_CMYK;
    else
        cinfo.out_color_space = JCS_RGB;
    jpeg_start_decompress(&cinfo);

    int channels = cinfo.output_components;
    size_t row = pixel_bytes(cinfo.output_width, 1, (uint64_t)channels);
    size_t total = pixel_bytes(cinfo.output_width, cinfo.output_height, (uint64_t)channels);
    if (!row || !total || !(pixels = malloc(total))) {
        snprintf(err, n, "%s: out of memory for %ux%u pixels", label, cinfo.output_width, cinfo.output_height);
        jpeg_destroy_decompress(&cinfo);
        return false;
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW rows[1] = {pixels + (size_t)cinfo.output_scanline * row};
        jpeg_read_scanlines(&cinfo, rows, 1);
    }
    jpeg_finish_decompress(&cinfo);
    *out = (raw_pixels){.width = (int)cinfo.output_width, .height = (int)cinfo.output_height,
                        .channels = channels, .cmyk = cmyk, .adobe_inverted = cmyk && cinfo.saw_Adobe_marker,
                        .data = pixels, .orientation = orientation};
    jpeg_destroy_decompress(&cinfo);
    return true;
}
