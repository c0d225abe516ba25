/*
 * exif.c — the one EXIF fact an image classifier needs: the orientation
 * tag (0x0112) of IFD0, which says how a camera's stored pixels must be
 * turned to look upright. The segment is untrusted bytes: every offset and
 * count is checked against its length before it is read, and anything
 * malformed means "no orientation" (1), never an error: the pixels are
 * still a picture. Layout: "Exif\0\0", then a TIFF header (byte order "II"
 * or "MM", 42, offset of IFD0), then IFD0: a 16-bit entry count and
 * 12-byte entries (tag, type, count, value) — EXIF 2.32, section 4.5.
 */
#include <string.h>

#include "image_internal.h"

#define EXIF_TAG_ORIENTATION 0x0112
#define EXIF_TYPE_SHORT 3

static unsigned read16(const uint8_t *p, bool big_endian)
{
    return big_endian ? (unsigned)(p[0] << 8 | p[1]) : (unsigned)(p[1] << 8 | p[0]);
}

static uint32_t read32(const uint8_t *p, bool big_endian)
{
    return big_endian ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]
                      : (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

int image_exif_orientation(const uint8_t *app1, size_t size)
{
    if (!app1 || size < 6 + 8 || memcmp(app1, "Exif\0\0", 6) != 0)
        return 1;
    const uint8_t *tiff = app1 + 6;
    size_t length = size - 6;
    bool big_endian;
    if (tiff[0] == 'I' && tiff[1] == 'I')
        big_endian = false;
    else if (tiff[0] == 'M' && tiff[1] == 'M')
        big_endian = true;
    else
        return 1;
    if (read16(tiff + 2, big_endian) != 42)
        return 1;
    uint32_t ifd = read32(tiff + 4, big_endian);
    if (ifd > length || length - ifd < 2)
        return 1;
    unsigned entries = read16(tiff + ifd, big_endian);
    size_t first = (size_t)ifd + 2;
    for (unsigned i = 0; i < entries; i++) {
        size_t at = first + (size_t)i * 12;
        if (at > length || length - at < 12)
            return 1;
        const uint8_t *entry = tiff + at;
        if (read16(entry, big_endian) != EXIF_TAG_ORIENTATION)
            continue;
        if (read16(entry + 2, big_endian) != EXIF_TYPE_SHORT || read32(entry + 4, big_endian) != 1)
            return 1;
        unsigned value = read16(entry + 8, big_endian); /* a SHORT sits left-justified in the value field */
        return value >= 1 && value <= 8 ? (int)value : 1;
    }
    return 1;
}
