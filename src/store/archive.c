/*
 * archive.c — a stored model as a portable tar (model.onnx, model.json and
 * labels.json at the top level), written and read with libarchive.
 *
 * An archive is untrusted input: each member is checked before a byte of it
 * is written — a regular file (no links, devices or directories besides
 * "."), named exactly one of the three files (an optional "./" prefix
 * aside, so no absolute or ".." path can get through), at most once, within
 * a size bound — and extracted with openat(O_EXCL|O_NOFOLLOW) into a fresh
 * staging directory. The manifest's sha256 and size must match the model's
 * bytes, then the import runs the same version guard as a model file.
 */
#include "store_internal.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct {
    const char *name;
    uint64_t max;
    bool required;
} members[] = {
    {"model.onnx", STORE_MODEL_MAX, true},
    {"model.json", STORE_MANIFEST_MAX, true},
    {"labels.json", STORE_SIDE_FILE_MAX, false},
};
#define N_MEMBERS (sizeof(members) / sizeof(members[0]))

/* ---- export ------------------------------------------------------------------ */

static bool add_member(struct archive *a, int dir_fd, const char *name, bool required,
                       const char *tar_path, char *err, size_t n)
{
    int fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT && !required)
            return true;
        snprintf(err, n, "%s: %s", name, strerror(errno));
        return false;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, n, "%s: not a regular file", name);
        close(fd);
        return false;
    }
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, name);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, st.st_size);
    archive_entry_set_mtime(e, st.st_mtime, 0);
    bool ok = archive_write_header(a, e) == ARCHIVE_OK;
    if (!ok)
        snprintf(err, n, "%s: %s", tar_path, archive_error_string(a));
    char buf[1 << 16];
    int64_t left = st.st_size;
    while (ok && left > 0) {
        ssize_t r = read(fd, buf, sizeof(buf));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            snprintf(err, n, "%s: read failed: %s", name, r < 0 ? strerror(errno) : "file shrank");
            ok = false;
        } else if (archive_write_data(a, buf, (size_t)r) != r) {
            snprintf(err, n, "%s: %s", tar_path, archive_error_string(a));
            ok = false;
        } else {
            left -= r;
        }
    }
    archive_entry_free(e);
    close(fd);
    return ok;
}

bool store_export(store *s, const model_ref *ref, const char *tar_path, char *err, size_t n)
{
    model_ref r = *ref;
    if (!store_resolve(s, &r, NULL, 0, err, n))
        return false;
    int dir_fd = open_model_dir(s, r.name, r.version);
    if (dir_fd < 0) {
        snprintf(err, n, "model '%s:%s': %s", r.name, r.version, strerror(errno));
        return false;
    }
    /* written beside the target and renamed: no half archive under its name */
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp-%ld", tar_path, (long)getpid());
    struct archive *a = archive_write_new();
    bool ok = a && archive_write_set_format_pax_restricted(a) == ARCHIVE_OK &&
              archive_write_open_filename(a, tmp) == ARCHIVE_OK;
    if (!ok)
        snprintf(err, n, "%s: %s", tar_path, a ? archive_error_string(a) : "out of memory");
    for (size_t i = 0; ok && i < N_MEMBERS; i++)
        ok = add_member(a, dir_fd, members[i].name, members[i].required, tar_path, err, n);
    if (a && archive_write_close(a) != ARCHIVE_OK && ok) {
        snprintf(err, n, "%s: %s", tar_path, archive_error_string(a));
        ok = false;
    }
    if (a)
        archive_write_free(a);
    close(dir_fd);
    if (ok) {
        int fd = open(tmp, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fsync(fd) != 0) {
            snprintf(err, n, "%s: fsync failed: %s", tmp, strerror(errno));
            ok = false;
        }
        if (fd >= 0)
            close(fd);
    }
    if (ok && rename(tmp, tar_path) != 0) {
        snprintf(err, n, "%s: %s", tar_path, strerror(errno));
        ok = false;
    }
    if (!ok)
        unlink(tmp);
    return ok;
}

/* ---- import ------------------------------------------------------------------ */

/* Which of the members an entry is, or -1 with err saying why it is refused. */
static int check_member(struct archive_entry *e, const char *tar_path, bool *skip, char *err,
                        size_t n)
{
    const char *raw = archive_entry_pathname(e);
    const char *name = raw ? raw : "";
    *skip = false;
    if (archive_entry_hardlink(e) || archive_entry_symlink(e) ||
        (archive_entry_filetype(e) != AE_IFREG && archive_entry_filetype(e) != AE_IFDIR)) {
        snprintf(err, n, "%s: member '%s' is a link or special file; only regular files are accepted",
                 tar_path, name);
        return -1;
    }
    if (strncmp(name, "./", 2) == 0)
        name += 2;
    if (archive_entry_filetype(e) == AE_IFDIR) {
        if (strcmp(name, "") == 0 || strcmp(name, ".") == 0 || strcmp(name, "./") == 0) {
            *skip = true;
            return 0;
        }
        snprintf(err, n, "%s: member '%s' is a directory; only model.onnx, model.json and "
                 "labels.json at the top level are accepted", tar_path, raw ? raw : "");
        return -1;
    }
    for (size_t i = 0; i < N_MEMBERS; i++) {
        if (strcmp(name, members[i].name) != 0)
            continue;
        if (!archive_entry_size_is_set(e) || archive_entry_size(e) < 0 ||
            (uint64_t)archive_entry_size(e) > members[i].max) {
            snprintf(err, n, "%s: member '%s' is larger than the limit of %llu bytes", tar_path,
                     name, (unsigned long long)members[i].max);
            return -1;
        }
        return (int)i;
    }
    snprintf(err, n, "%s: member '%s' is not accepted: an archive holds only model.onnx, "
             "model.json and labels.json at the top level", tar_path, raw ? raw : "");
    return -1;
}

static bool extract_member(struct archive *a, int index, uint64_t declared, staging *st,
                           const char *tar_path, char *err, size_t n)
{
    const char *name = members[index].name;
    /* the model read-only, as store.c writes it (servers map only those) */
    mode_t mode = strcmp(name, "model.onnx") == 0 ? 0444 : 0644;
    int fd = openat(st->fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0) {
        snprintf(err, n, "%s: member '%s': %s", tar_path, name, strerror(errno));
        return false;
    }
    char buf[1 << 16];
    uint64_t total = 0;
    bool ok = true;
    for (;;) {
        la_ssize_t r = archive_read_data(a, buf, sizeof(buf));
        if (r == 0)
            break;
        if (r < 0) {
            snprintf(err, n, "%s: member '%s': %s", tar_path, name, archive_error_string(a));
            ok = false;
            break;
        }
        total += (uint64_t)r;
        if (total > declared || total > members[index].max) {
            snprintf(err, n, "%s: member '%s' holds more bytes than its header says", tar_path, name);
            ok = false;
            break;
        }
        for (la_ssize_t done = 0; ok && done < r;) {
            ssize_t w = write(fd, buf + done, (size_t)(r - done));
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                snprintf(err, n, "%s/%s: write failed: %s", st->path, name,
                         w < 0 ? strerror(errno) : "no progress");
                ok = false;
            } else {
                done += w;
            }
        }
        if (!ok)
            break;
    }
    if (ok && fsync(fd) != 0) {
        snprintf(err, n, "%s/%s: fsync failed: %s", st->path, name, strerror(errno));
        ok = false;
    }
    close(fd);
    return ok;
}

bool store_import_archive(store *s, const char *tar_path, const import_options *o, model_ref *out,
                          char *err, size_t n)
{
    if (o && o->name && !store_valid_name(o->name)) {
        snprintf(err, n, "model name '%.80s' is not valid (a-z, 0-9, inner '-', '.', '_'; at most %d)",
                 o->name, STORE_NAME_MAX);
        return false;
    }
    if (o && o->version && (!store_valid_name(o->version) || strcmp(o->version, "latest") == 0)) {
        snprintf(err, n, "model version '%.80s' is not valid", o->version);
        return false;
    }
    staging st = {.fd = -1};
    if (!staging_create(s, "archive", &st, err, n))
        return false;
    bool ok = true, seen[N_MEMBERS] = {false};
    json_t *manifest = NULL, *labels = NULL;
    struct archive *a = archive_read_new();
    if (!a) {
        snprintf(err, n, "out of memory");
        ok = false;
    } else {
        archive_read_support_format_tar(a);
        archive_read_support_filter_gzip(a);
        if (archive_read_open_filename(a, tar_path, 1 << 16) != ARCHIVE_OK) {
            snprintf(err, n, "%s: %s", tar_path, archive_error_string(a));
            ok = false;
        }
    }
    while (ok) {
        struct archive_entry *e;
        int r = archive_read_next_header(a, &e);
        if (r == ARCHIVE_EOF)
            break;
        if (r != ARCHIVE_OK) {
            snprintf(err, n, "%s: %s", tar_path, archive_error_string(a));
            ok = false;
            break;
        }
        bool skip;
        int index = check_member(e, tar_path, &skip, err, n);
        if (index < 0) {
            ok = false;
        } else if (!skip && seen[index]) {
            snprintf(err, n, "%s: member '%s' appears twice", tar_path, members[index].name);
            ok = false;
        } else if (!skip) {
            seen[index] = true;
            ok = extract_member(a, index, (uint64_t)archive_entry_size(e), &st, tar_path, err, n);
        }
    }
    for (size_t i = 0; ok && i < N_MEMBERS; i++)
        if (members[i].required && !seen[i]) {
            snprintf(err, n, "%s: member '%s' is missing", tar_path, members[i].name);
            ok = false;
        }
    if (a)
        archive_read_free(a);

    char label[4400];
    snprintf(label, sizeof(label), "%s: model.json", tar_path);
    if (ok && !(manifest = load_json_at(st.fd, "model.json", STORE_MANIFEST_MAX, label, err, n)))
        ok = false;
    if (ok && !json_is_object(manifest)) {
        snprintf(err, n, "%s: not a JSON object", label);
        ok = false;
    }
    /* the bytes must be the ones the manifest describes */
    char sha[65];
    uint64_t size = 0;
    if (ok) {
        int fd = openat(st.fd, "model.onnx", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        ok = fd >= 0 && fd_sha256(fd, sha, &size, "model.onnx", err, n);
        if (fd >= 0)
            close(fd);
    }
    const char *want = ok ? json_string_value(json_object_get(manifest, "sha256")) : NULL;
    if (ok && (!want || strcasecmp(want, sha) != 0)) {
        snprintf(err, n, "%s: model.onnx has sha256 %s but the manifest says %s", tar_path, sha,
                 want ? want : "(no \"sha256\" field)");
        ok = false;
    }
    const json_t *msize = ok ? json_object_get(manifest, "size") : NULL;
    if (ok && msize && (!json_is_integer(msize) || (uint64_t)json_integer_value(msize) != size)) {
        snprintf(err, n, "%s: model.onnx has %llu bytes but the manifest's \"size\" differs",
                 tar_path, (unsigned long long)size);
        ok = false;
    }
    if (ok && o && o->expected_sha256 && strcasecmp(o->expected_sha256, sha) != 0) {
        snprintf(err, n, "%s: model.onnx has sha256 %s, expected %s", tar_path, sha, o->expected_sha256);
        ok = false;
    }
    const char *name = o && o->name ? o->name : ok ? json_string_value(json_object_get(manifest, "name")) : NULL;
    const char *version = o && o->version ? o->version
                          : ok ? json_string_value(json_object_get(manifest, "version")) : NULL;
    if (ok && (!name || !store_valid_name(name))) {
        snprintf(err, n, "%s: \"name\" '%.80s' is not a valid model name", label, name ? name : "");
        ok = false;
    }
    if (ok && version && (!store_valid_name(version) || strcmp(version, "latest") == 0)) {
        snprintf(err, n, "%s: \"version\" '%.80s' is not a valid model version", label, version);
        ok = false;
    }
    const char *task = ok ? json_string_value(json_object_get(manifest, "task")) : NULL;
    if (ok && task && !valid_task(task)) {
        snprintf(err, n, "%s: \"task\" '%.40s' is not classification, regression, clustering or other",
                 label, task);
        ok = false;
    }
    json_t *env = ok ? json_object_get(manifest, "training_environment") : NULL;
    if (ok && env && !json_is_array(env) && !json_is_null(env)) {
        snprintf(err, n, "%s: \"training_environment\" must be an array or null", label);
        ok = false;
    }
    json_t *golden = ok ? json_object_get(manifest, "golden_samples") : NULL;
    if (ok && golden && !json_is_object(golden) && !json_is_null(golden)) {
        snprintf(err, n, "%s: \"golden_samples\" must be an object or null", label);
        ok = false;
    }
    if (ok && seen[2]) {
        char lpath[4400];
        snprintf(lpath, sizeof(lpath), "%s: labels.json", tar_path);
        labels = load_json_at(st.fd, "labels.json", STORE_SIDE_FILE_MAX, lpath, err, n);
        if (!labels)
            ok = false;
        else if (!json_is_object(labels)) {
            snprintf(err, n, "%s: labels must be a JSON object {\"0\": \"name\", ...}", lpath);
            ok = false;
        }
    }
    /* model.json is rewritten from the model itself; the archive's copy only
     * contributes what cannot be computed */
    if (ok)
        unlinkat(st.fd, "model.json", 0);
    if (ok) {
        char source[4300];
        char *abs = realpath(tar_path, NULL);
        snprintf(source, sizeof(source), "archive:%s", abs ? abs : tar_path);
        free(abs);
        const char *created = json_string_value(json_object_get(manifest, "created"));
        char preprocessing_origin[4400];
        snprintf(preprocessing_origin, sizeof(preprocessing_origin), "%s: model.json: preprocessing", tar_path);
        import_meta meta = {.name = name, .version = version, .task = task,
                            .source = o && o->source ? o->source : source, .labels = labels,
                            .training_env = json_is_array(env) ? env : NULL,
                            .golden = json_is_object(golden) ? golden : NULL, .created = created,
                            .display = tar_path, .preprocessing = json_object_get(manifest, "preprocessing"),
                            .preprocessing_origin = preprocessing_origin};
        ok = import_staged(s, &st, &meta, out, err, n);
    }
    staging_remove(s, &st);
    json_decref(manifest);
    json_decref(labels);
    return ok;
}
