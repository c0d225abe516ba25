/*
 * store.h — inferd's local model store (like BentoML's `bentoml models`), in
 * Triton's repository layout so that `inferd serve --repository` serves it:
 *
 *   <root>/<name>/<version>/model.onnx     the model, byte for byte
 *   <root>/<name>/<version>/model.json     the manifest (below)
 *   <root>/<name>/<version>/labels.json    optional labels
 *   <root>/.tmp/                           staging; never read as models
 *
 * The root is $INFERD_HOME, else ~/.local/share/inferd. Names and versions
 * follow BentoML's tag grammar ^[a-z0-9]([-._a-z0-9]*[a-z0-9])?$, at most 63
 * characters; a reference is "name", "name:version" or "name:latest".
 * Every write is staged under .tmp, fsync'd and renamed into place, so a
 * crash or a full disk never leaves a half model visible.
 *
 * Manifest (model.json), a JSON object:
 *   name, version, created (RFC 3339 UTC), sha256 (hex of model.onnx),
 *   size (bytes), ir_version, opsets {domain: version}, producer {name,
 *   version}, signature {inputs: [{name, dtype, shape}], outputs: [...]}
 *   (shape entries: integer, or the symbolic name, or null), task
 *   (classification|regression|clustering|other), labels (object or null),
 *   training_environment (array of requirement lines, or null),
 *   golden_samples ({rtol, atol, samples: [{inputs: {name: {dtype, shape,
 *   data}}, outputs: {name: {dtype, shape, data}}}]} or null), source (where
 *   the model came from: "file:...", a URI, "archive:..."), preprocessing
 *   ({input name: image spec} as src/image/image_input.h defines, every
 *   field spelled out, checked against the input at import; or null).
 *
 * Thread safety: a store handle is used by one thread; separate processes
 * may share a root (renames are atomic; the last writer of a version wins
 * only when versions are given explicitly).
 */
#ifndef INFERD_STORE_STORE_H
#define INFERD_STORE_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define STORE_NAME_MAX 63

typedef struct store store;

typedef struct model_ref {
    char name[STORE_NAME_MAX + 1];
    char version[STORE_NAME_MAX + 1]; /* "" or "latest" before resolution */
} model_ref;

typedef struct import_options {
    const char *name;             /* required for files; archives carry theirs */
    const char *version;          /* NULL: one more than the highest numeric version */
    const char *labels_path;      /* NULL: none */
    const char *task;             /* NULL: "other" */
    const char *training_env_path;/* requirements.txt / pip freeze output, or NULL */
    const char *samples_path;     /* golden samples JSON, or NULL */
    double rtol, atol;            /* golden tolerance; <= 0 means 1e-4 / 1e-5 */
    const char *source;           /* provenance for the manifest, or NULL */
    const char *expected_sha256;  /* refuse the model if its sha256 differs, or NULL */
    const char *preprocessing_path; /* {input: {"kind": "image", ...}} JSON, or NULL */
} import_options;

/* Open (creating if needed) the store at root, or the default root when NULL. */
store *store_open(const char *root, char *err, size_t err_size);
void store_close(store *s);
const char *store_root(const store *s);

bool store_valid_name(const char *text);
/* Parse "name[:version|:latest]"; validates both parts. */
bool store_parse_ref(const char *text, model_ref *ref, char *err, size_t err_size);
/* Turn "latest"/"" into the highest version and fill dir with the version's
 * folder. False (with err) when the model or version does not exist. */
bool store_resolve(store *s, model_ref *ref, char *dir, size_t dir_size, char *err,
                   size_t err_size);

/* Copy a model file into the store: version guard (the engine must load it
 * and every golden sample must reproduce), sha256, manifest, atomic rename. */
bool store_import_file(store *s, const char *model_path, const import_options *options,
                       model_ref *out, char *err, size_t err_size);
/* The manifest of a stored model (a new reference), or NULL with err. */
json_t *store_manifest(store *s, const model_ref *ref, char *err, size_t err_size);
/* Every stored model's manifest, sorted by name then version. */
json_t *store_list(store *s, char *err, size_t err_size);
bool store_delete(store *s, const model_ref *ref, char *err, size_t err_size);
/* A portable tar of one version (model.onnx, model.json, labels.json). */
bool store_export(store *s, const model_ref *ref, const char *tar_path, char *err,
                  size_t err_size);
/* Import such a tar, checking every member name and the manifest's sha256. */
bool store_import_archive(store *s, const char *tar_path, const import_options *options,
                          model_ref *out, char *err, size_t err_size);
/* A stored model whose model.onnx has this sha256 (lowercase hex), if any. */
bool store_find_sha256(store *s, const char *sha256, model_ref *out);

/* sha256 of a file as 64 lowercase hex characters + NUL. */
bool file_sha256(const char *path, char hex[65], char *err, size_t err_size);

/* Run a model's golden samples (the manifest's golden_samples object)
 * through the engine. False with a report naming the sample, output, max
 * absolute and relative difference when any output deviates. */
bool golden_samples_check(const char *model_path, const json_t *golden, char *report,
                          size_t report_size);
/* The same on a model already loaded (by a server, from memory); label
 * names the model in the report ("model 'iris:2'"). */
struct ifd_model;
bool golden_samples_check_model(const struct ifd_model *model, const char *label,
                                const json_t *golden, char *report, size_t report_size);

#endif /* INFERD_STORE_STORE_H */
