/*
 * store_internal.h — what the store's files share and nothing outside
 * src/store needs: the handle's layout, the staging area under <root>/.tmp,
 * bounded file reads relative to a directory descriptor, and the two halves
 * of every import (the version guard, then the atomic placement).
 *
 * Confinement: every path below the root is opened with openat() from the
 * root's descriptor, one validated component at a time, with O_NOFOLLOW, so
 * no name, version or archive member can reach outside the root, not even
 * through a symlink planted inside it.
 */
#ifndef INFERD_STORE_STORE_INTERNAL_H
#define INFERD_STORE_STORE_INTERNAL_H

#include <stdint.h>

#include "inferd/inferd.h"
#include "store.h"

/* Bounds on what the store reads into memory or accepts from archives. */
#define STORE_MODEL_MAX ((uint64_t)4 << 30)     /* model.onnx */
#define STORE_MANIFEST_MAX ((size_t)256 << 20)  /* model.json (golden samples live here) */
#define STORE_SIDE_FILE_MAX ((size_t)16 << 20)  /* labels.json, requirements, samples */

#define STORE_TMP_DIR ".tmp"

struct store {
    char *root;  /* absolute path, no trailing slash */
    int root_fd;
    int tmp_fd;  /* <root>/.tmp */
};

/* A staging directory <root>/.tmp/<prefix>-<pid>-<random>: the pid lets a
 * later store_open() remove the leftovers of a process that died (kill -9). */
typedef struct staging {
    char name[96];
    char path[4200]; /* absolute, for the engine, which loads by path */
    int fd;
} staging;

bool staging_create(store *s, const char *prefix, staging *out, char *err, size_t n);
/* Remove the directory and its plain files; safe on a half-filled one. */
void staging_remove(store *s, staging *st);
/* Remove the leftovers of dead processes from <root>/.tmp. */
void staging_sweep(store *s);

/* Create dir_fd/name exclusively (O_NOFOLLOW), write all bytes, fsync. */
bool write_file_at(int dir_fd, const char *name, const void *data, size_t size, const char *label,
                   char *err, size_t n);
/* Read dir_fd/name (a regular file, no symlink) of at most max bytes,
 * NUL-terminated. NULL with err (naming label) otherwise. */
char *read_file_at(int dir_fd, const char *name, size_t max, size_t *size, const char *label,
                   char *err, size_t n);
/* A JSON file read with the bounds above; label names it in errors. */
json_t *load_json_file(const char *path, size_t max, char *err, size_t n);
json_t *load_json_at(int dir_fd, const char *name, size_t max, const char *label, char *err,
                     size_t n);

/* Open root/name[/version] as a real directory (no symlinks), or -1. */
int open_model_dir(store *s, const char *name, const char *version);

/* Natural order of versions: digit runs compare as numbers ("1.10" > "1.9"). */
int version_compare(const char *a, const char *b);

/* What an import knows about the model before it is placed. */
typedef struct import_meta {
    const char *name;
    const char *version;        /* NULL: next numeric version */
    const char *task;           /* NULL: "other" */
    const char *source;
    json_t *labels;             /* borrowed; object or NULL */
    json_t *training_env;       /* borrowed; array or NULL */
    json_t *golden;             /* borrowed; {rtol, atol, samples} or NULL */
    json_t *preprocessing;      /* borrowed; {input: image spec} or NULL */
    const char *preprocessing_origin; /* where it came from, for messages */
    const char *created;        /* NULL: now */
    const char *display;        /* the model as the user named it, for messages */
} import_meta;

/* The version guard and the manifest: load staging/model.onnx with the
 * engine (refusing unsupported operators), run the golden samples, write
 * model.json (and labels.json) into the staging directory, then rename it
 * to <root>/<name>/<version>. On success out holds the placed reference. */
bool import_staged(store *s, staging *st, const import_meta *meta, model_ref *out, char *err,
                   size_t n);

/* sha256 of an open descriptor, read from its current offset to the end. */
bool fd_sha256(int fd, char hex[65], uint64_t *size, const char *label, char *err, size_t n);

/* Manifest pieces computed from a loaded model. */
json_t *manifest_signature(const ifd_model *model);
json_t *manifest_opsets(const ifd_model *model);
bool valid_task(const char *task);

/* Older name of golden_samples_check_model (store.h), kept while bundle.c
 * moves over. */
static inline bool golden_check_model(const ifd_model *model, const char *label,
                                      const json_t *golden, char *report, size_t n)
{
    return golden_samples_check_model(model, label, golden, report, n);
}
/* Read a samples.json and return {rtol, atol, samples}, applying the
 * tolerance overrides (<= 0: the file's value, else the default). */
json_t *golden_load_samples(const char *path, double rtol, double atol, char *err, size_t n);

#endif /* INFERD_STORE_STORE_INTERNAL_H */
