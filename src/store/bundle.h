/*
 * bundle.h — the model-in-image pattern as one file: an inferd executable
 * with a stored model appended to it. `inferd bundle REF -o iris-server`
 * writes one; when such an executable starts (main() asks bundle_read on
 * /proc/self/exe) it verifies the model's sha256 and serves it from memory,
 * so no other file is needed at run time and server and model versions
 * always match one to one.
 *
 * Layout of a bundle file (all integers little-endian):
 *
 *   [ELF executable][model.onnx][labels.json][model.json][trailer]
 *
 *   trailer, BUNDLE_TRAILER_SIZE bytes at the very end:
 *     u64 executable_size        where the payload starts
 *     u64 model_offset, model_size
 *     u64 labels_offset, labels_size      (size 0: no labels)
 *     u64 manifest_offset, manifest_size
 *     u64 reserved (0)
 *     char sha256[64]            hex of the model bytes
 *     char magic[16]             BUNDLE_MAGIC
 *
 * The ELF loader ignores bytes past the sections it maps, so the file still
 * runs as the plain executable; the trailer at a fixed distance from the
 * end is found without parsing ELF.
 *
 * Thread safety: plain functions on caller-owned data.
 */
#ifndef INFERD_STORE_BUNDLE_H
#define INFERD_STORE_BUNDLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BUNDLE_MAGIC "INFERD-BUNDLE-v1"
#define BUNDLE_TRAILER_SIZE (7 * 8 + 64 + 16)

typedef struct bundle_payload {
    uint64_t executable_size;
    unsigned char *model;   /* the model bytes */
    size_t model_size;
    char *labels;           /* NUL-terminated labels.json, or NULL */
    char *manifest;         /* NUL-terminated model.json, or NULL */
    char sha256[65];        /* from the trailer, hex */
} bundle_payload;

/* Read the payload of an executable. Returns 1 and fills out when the file
 * carries one, 0 when it is a plain executable (or cannot be opened: a
 * plain `inferd` must keep working without /proc), -1 with err when it
 * carries a damaged payload. Does not verify the sha256 (bundle_verify). */
int bundle_read(const char *path, bundle_payload *out, char *err, size_t err_size);
/* Recompute the model's sha256 and compare it with the trailer's and the
 * manifest's. False with a message naming what differs. */
bool bundle_verify(const bundle_payload *payload, const char *path, char *err, size_t err_size);
void bundle_payload_free(bundle_payload *payload);

/* Write a bundle: the executable part of self_path (a bundle's own payload
 * is dropped, so bundling from a bundle works), then model_dir's
 * model.onnx, labels.json (if any) and model.json. Staged beside out_path,
 * fsync'd, chmod 755 and renamed into place. */
bool bundle_write(const char *self_path, const char *model_dir, const char *out_path, char *err,
                  size_t err_size);

/* sha256 of a buffer as 64 lowercase hex characters + NUL (OpenSSL EVP). */
bool bundle_sha256_hex(const void *data, size_t size, char hex[65]);

#endif /* INFERD_STORE_BUNDLE_H */
