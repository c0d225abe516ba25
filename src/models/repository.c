/*
 * repository.c — reading the repository directory: which models and
 * complete versions it holds, their config.json, and the signature the poll
 * compares between scans. Every path is resolved and must lie inside the
 * repository: a symlink out of it is not a model or a version.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "model_set_internal.h"

/* ---- the repository ------------------------------------------------------ */

/* realpath of repository/rel, only when it lies inside the repository. */
bool repository_confined_path(const model_set *set, const char *rel, char *out, size_t n)
{
    char candidate[PATH_MAX], resolved[PATH_MAX];
    if (snprintf(candidate, sizeof(candidate), "%s/%s", set->repository, rel) >=
        (int)sizeof(candidate))
        return false;
    if (!realpath(candidate, resolved))
        return false;
    size_t root = strlen(set->repository);
    if (strncmp(resolved, set->repository, root) != 0 || resolved[root] != '/')
        return false;
    return snprintf(out, n, "%s", resolved) < (int)n;
}

static int by_number(const void *a, const void *b)
{
    long long x = version_number_of(((const version_file *)a)->version);
    long long y = version_number_of(((const version_file *)b)->version);
    return x < y ? -1 : x > y;
}

/* The complete version directories of a model: a number for a name and a
 * regular model.onnx inside the repository. */
size_t repository_scan_versions(const model_set *set, const char *name, version_file **out)
{
    *out = NULL;
    char dir[PATH_MAX];
    if (!repository_confined_path(set, name, dir, sizeof(dir)))
        return 0;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    version_file *files = NULL;
    size_t count = 0;
    struct dirent *ent;
    while ((ent = readdir(d))) {
        if (!model_version_name_valid(ent->d_name))
            continue;
        char rel[PATH_MAX], version_dir[PATH_MAX];
        snprintf(rel, sizeof(rel), "%s/%s", name, ent->d_name);
        if (!repository_confined_path(set, rel, version_dir, sizeof(version_dir)))
            continue; /* a symlink out of the repository */
        version_file f = {0};
        snprintf(f.version, sizeof(f.version), "%.31s", ent->d_name);
        snprintf(f.path, sizeof(f.path), "%s/model.onnx", version_dir);
        struct stat st;
        if (lstat(f.path, &st) != 0 || !S_ISREG(st.st_mode) ||
            !file_fingerprint_read(f.path, &f.fingerprint))
            continue;
        snprintf(f.labels, sizeof(f.labels), "%s/labels.json", version_dir);
        f.has_labels = lstat(f.labels, &st) == 0 && S_ISREG(st.st_mode);
        if (f.has_labels)
            file_fingerprint_read(f.labels, &f.sidecars[0]);
        char manifest[PATH_MAX + 16];
        snprintf(manifest, sizeof(manifest), "%s/model.json", version_dir);
        if (lstat(manifest, &st) == 0 && S_ISREG(st.st_mode) && st.st_size < (16 << 20)) {
            file_fingerprint_read(manifest, &f.sidecars[1]);
            json_t *m = json_load_file(manifest, 0, NULL);
            const char *sum = json_string_value(json_object_get(m, "sha256"));
            if (sum && strlen(sum) == 64)
                snprintf(f.sha256, sizeof(f.sha256), "%s", sum);
            json_decref(m);
        }
        version_file *grown = realloc(files, (count + 1) * sizeof(*grown));
        if (!grown)
            break;
        files = grown;
        files[count++] = f;
    }
    closedir(d);
    if (count)
        qsort(files, count, sizeof(*files), by_number);
    *out = files;
    return count;
}

/* config.json's text (NULL when there is none; err set when it is unreadable). */
char *repository_read_config(const model_set *set, const char *name, file_fingerprint *fp,
                             char *err, size_t n)
{
    char rel[PATH_MAX], path[PATH_MAX];
    err[0] = '\0';
    snprintf(rel, sizeof(rel), "%s/config.json", name);
    char candidate[PATH_MAX + 300];
    snprintf(candidate, sizeof(candidate), "%s/%s", set->repository, rel);
    struct stat st;
    if (lstat(candidate, &st) != 0)
        return NULL;
    if (!repository_confined_path(set, rel, path, sizeof(path)) || stat(path, &st) != 0 ||
        !S_ISREG(st.st_mode) || st.st_size > MAX_CONFIG_BYTES) {
        snprintf(err, n,
                 "%s/config.json: not a regular file of at most 1 MiB inside the repository", name);
        return NULL;
    }
    file_fingerprint_read(path, fp);
    FILE *f = fopen(path, "rb");
    char *text = f ? malloc((size_t)st.st_size + 1) : NULL;
    size_t got = text ? fread(text, 1, (size_t)st.st_size, f) : 0;
    if (f)
        fclose(f);
    if (!text || got != (size_t)st.st_size) {
        snprintf(err, n, "%s/config.json: cannot be read", name);
        free(text);
        return NULL;
    }
    text[got] = '\0';
    return text;
}

/* What a poll compares between scans. */
char *repository_signature(const model_set *set, const char *name)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    if (!out)
        return NULL;
    char candidate[PATH_MAX + 300];
    snprintf(candidate, sizeof(candidate), "%s/%s/config.json", set->repository, name);
    file_fingerprint fp = {0};
    if (file_fingerprint_read(candidate, &fp))
        fprintf(out, "config %llu:%llu:%lld:%lld;", (unsigned long long)fp.device,
                (unsigned long long)fp.inode, (long long)fp.size, fp.mtime_ns);
    version_file *files;
    size_t count = repository_scan_versions(set, name, &files);
    for (size_t i = 0; i < count; i++) {
        fprintf(out, "%s", files[i].version);
        const file_fingerprint *all[3] = {&files[i].fingerprint, &files[i].sidecars[0],
                                          &files[i].sidecars[1]};
        for (int k = 0; k < 3; k++)
            fprintf(out, " %llu:%llu:%lld:%lld", (unsigned long long)all[k]->device,
                    (unsigned long long)all[k]->inode, (long long)all[k]->size, all[k]->mtime_ns);
        fputc(';', out);
    }
    free(files);
    fclose(out);
    return text;
}

bool repository_is_pipeline(const model_set *set, const char *name)
{
    char rel[PATH_MAX], path[PATH_MAX];
    struct stat st;
    snprintf(rel, sizeof(rel), "%s/pipeline.json", name);
    return repository_confined_path(set, rel, path, sizeof(path)) && stat(path, &st) == 0 &&
           S_ISREG(st.st_mode);
}
