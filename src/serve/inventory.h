/*
 * inventory.h — "what runs where", the book's model inventory: the host and
 * OS, inferd's and the engine's versions, how inferd was built and every
 * shared library it runs with (and each one's version, asked from the
 * library itself), and per model its name, version, sha256, source, task,
 * signature, opsets, training environment, golden samples and load time.
 * GET /v2/inventory answers with it; `inferd inventory` prints it for a
 * server (--url) or the local store; `inferd version --deps` prints the
 * library part.
 * Thread safety: every function builds a new JSON value; safe to call from
 * several threads.
 */
#ifndef INFERD_SERVE_INVENTORY_H
#define INFERD_SERVE_INVENTORY_H

#include <jansson.h>
#include <stdbool.h>

#include "model_set.h"

/* Every shared object loaded in this process, in load order:
 * [{"name", "version", "file", "version_from"}], where version_from says
 * whether the version came from the library's own version function or
 * only from its file name. */
json_t *inventory_libraries(void);

/* {"host": {...}, "inferd": {...}, "build": {...}, "process": {...}}.
 * started_wall is the Unix time the process (or server) started. */
json_t *inventory_runtime(double started_wall);

/* The fields of a model entry the manifest (model.json) supplies: name,
 * version, created, sha256, size, task, signature, opsets, ir_version,
 * producer, training_environment, golden_samples (count, tolerances). */
json_t *inventory_model_from_manifest(const json_t *manifest);

/* A served model's entry: the manifest's fields (the one given at load,
 * else model.json beside the model file), overridden by what is true of
 * the loaded model (sha256 of the bytes on disk, signature, opsets) plus
 * source, ready and load time. */
json_t *inventory_served_model(const model_version *m);

/* sha256 of a file, 64 lowercase hex digits. */
bool inventory_file_sha256(const char *path, char hex[65]);

/* RFC 3339 UTC time of a Unix timestamp. */
void inventory_format_time(double unix_time, char *out, size_t size);

#endif /* INFERD_SERVE_INVENTORY_H */
