/*
 * base64.c — images sent inside JSON (the book's {"image_data": "..."},
 * {"data": "..."}, V2 BYTES tensors) are base64: decoded here by OpenSSL's
 * EVP_DecodeBlock (the store links libcrypto already). What OpenSSL does
 * not do is said here: ASCII whitespace (line-wrapped base64) is skipped, a
 * browser's "data:image/png;base64," prefix is accepted, missing padding is
 * restored, and a stray character is refused with its offset (OpenSSL only
 * says "failed").
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image_input.h"

static bool is_base64_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

static bool is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

bool image_base64_decode(const char *text, size_t length, uint8_t **out, size_t *out_size, char *err, size_t n)
{
    *out = NULL;
    *out_size = 0;
    size_t start = 0;
    if (length > 5 && strncmp(text, "data:", 5) == 0) {
        const char *comma = memchr(text, ',', length);
        if (!comma || comma - text < 12 || strncmp(comma - 7, ";base64", 7) != 0) {
            snprintf(err, n, "a data: URL must be base64 (data:<type>;base64,<data>)");
            return false;
        }
        start = (size_t)(comma - text) + 1;
    }
    if (length - start > (size_t)INT32_MAX) {
        snprintf(err, n, "base64 text of %zu characters is too long", length - start);
        return false;
    }
    /* the characters that count, padding restored: at most length + 3 */
    char *clean = malloc(length - start + 4);
    if (!clean) {
        snprintf(err, n, "out of memory decoding base64");
        return false;
    }
    size_t used = 0, padding = 0;
    for (size_t i = start; i < length; i++) {
        unsigned char c = (unsigned char)text[i];
        if (is_space(c))
            continue;
        if (c == '=' && padding < 2) {
            padding++;
            continue;
        }
        if (!is_base64_char(c) || padding) {
            snprintf(err, n, "not base64: %s at offset %zu", padding ? "data after the '=' padding" :
                     "unexpected character", i);
            free(clean);
            return false;
        }
        clean[used++] = (char)c;
    }
    size_t data_chars = used;
    if (data_chars == 0) {
        snprintf(err, n, "empty base64 (no data)");
        free(clean);
        return false;
    }
    if (data_chars % 4 == 1 || (padding && (data_chars + padding) % 4 != 0)) {
        snprintf(err, n, "not base64: %zu data characters%s cannot end a base64 text", data_chars,
                 padding ? " and the '=' padding" : "");
        free(clean);
        return false;
    }
    size_t missing = (4 - data_chars % 4) % 4;
    for (size_t i = 0; i < missing; i++)
        clean[used++] = '=';
    uint8_t *bytes = malloc(used / 4 * 3 + 1);
    int decoded = bytes ? EVP_DecodeBlock(bytes, (const unsigned char *)clean, (int)used) : -1;
    free(clean);
    if (decoded < 0 || (size_t)decoded < missing) {
        snprintf(err, n, bytes ? "not base64 (OpenSSL refused it)" : "out of memory decoding base64");
        free(bytes);
        return false;
    }
    /* EVP_DecodeBlock counts the bytes '=' stands for as zeros */
    *out = bytes;
    *out_size = (size_t)decoded - missing;
    return true;
}
