/*
 * image.h — `inferd image`: an OCI image archive (image-spec 1.0 layout in
 * one tar: oci-layout, index.json, blobs/sha256/...) written without Docker.
 * Its one layer holds a bundle executable (bundle.h) as /inferd-server and
 * exactly the shared libraries that executable needs, as the dynamic loader
 * resolves them (`ld.so --list`), the loader itself included; the config's
 * entrypoint serves the model on 0.0.0.0:8000. Files carry a fixed mtime
 * and the config's creation time is the model's, so the same bundle gives
 * the same digests.
 * Thread safety: plain functions; temporary files go to a caller's folder.
 */
#ifndef INFERD_STORE_IMAGE_H
#define INFERD_STORE_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct image_result {
    char manifest_digest[72];  /* "sha256:<hex>" */
    uint64_t layer_size;       /* compressed */
    uint64_t layer_uncompressed;
    uint64_t archive_size;     /* the .tar written */
    size_t libraries;          /* shared objects in the layer (loader included) */
} image_result;

/* Write out_path (staged beside it, then renamed) from the bundle
 * executable at bundle_path. tag: the org.opencontainers.image.ref.name.
 * manifest_json: the model's model.json text (labels and the creation time
 * come from it). work_dir: an empty folder for temporary files. */
bool image_write(const char *bundle_path, const char *manifest_json, const char *tag,
                 const char *work_dir, const char *out_path, image_result *result, char *err,
                 size_t err_size);

#endif /* INFERD_STORE_IMAGE_H */
