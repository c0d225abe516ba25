/*
 * bundle.c — writes and reads the model-in-image executable described in
 * bundle.h: a copy of inferd with model.onnx, labels.json and model.json
 * appended and a fixed-size trailer at the end. Writing is staged beside
 * the output and renamed into place; reading checks every offset against
 * the file size before it allocates, so a damaged or hostile trailer gives
 * a message, never a crash.
 */
#include "bundle.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The largest model a bundle carries (it is read into memory at start). */
#define BUNDLE_MODEL_MAX ((uint64_t)4 << 30)
#define BUNDLE_SIDE_MAX ((uint64_t)256 << 20)

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

bool bundle_sha256_hex(const void *data, size_t size, char hex[65])
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (!EVP_Digest(data, size, digest, &len, EVP_sha256(), NULL) || len != 32)
        return false;
    for (unsigned i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    return true;
}

static bool read_exact(int fd, void *buf, size_t size, uint64_t offset)
{
    unsigned char *p = buf;
    while (size > 0) {
        ssize_t got = pread(fd, p, size > (1u << 30) ? (1u << 30) : size, (off_t)offset);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return false;
        p += got;
        size -= (size_t)got;
        offset += (uint64_t)got;
    }
    return true;
}

static bool write_all(int fd, const void *buf, size_t size)
{
    const unsigned char *p = buf;
    while (size > 0) {
        ssize_t put = write(fd, p, size);
        if (put < 0 && errno == EINTR)
            continue;
        if (put <= 0)
            return false;
        p += put;
        size -= (size_t)put;
    }
    return true;
}

/* Read [offset, offset+size) of fd into a new NUL-terminated buffer. */
static unsigned char *read_part(int fd, uint64_t offset, uint64_t size)
{
    unsigned char *buf = malloc((size_t)size + 1);
    if (!buf)
        return NULL;
    if (!read_exact(fd, buf, (size_t)size, offset)) {
        free(buf);
        return NULL;
    }
    buf[size] = '\0';
    return buf;
}

void bundle_payload_free(bundle_payload *p)
{
    free(p->model);
    free(p->labels);
    free(p->manifest);
    memset(p, 0, sizeof(*p));
}

int bundle_read(const char *path, bundle_payload *out, char *err, size_t n)
{
    memset(out, 0, sizeof(*out));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    struct stat st;
    unsigned char trailer[BUNDLE_TRAILER_SIZE];
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < BUNDLE_TRAILER_SIZE ||
        !read_exact(fd, trailer, sizeof(trailer), (uint64_t)st.st_size - BUNDLE_TRAILER_SIZE) ||
        memcmp(trailer + BUNDLE_TRAILER_SIZE - 16, BUNDLE_MAGIC, 16) != 0) {
        close(fd);
        return 0;
    }
    uint64_t payload_end = (uint64_t)st.st_size - BUNDLE_TRAILER_SIZE;
    uint64_t field[7];
    for (int i = 0; i < 7; i++)
        field[i] = get_u64(trailer + 8 * i);
    uint64_t exe_size = field[0];
    const char *names[3] = {"model", "labels", "manifest"};
    uint64_t limits[3] = {BUNDLE_MODEL_MAX, BUNDLE_SIDE_MAX, BUNDLE_SIDE_MAX};
    /* each part lies inside [executable end, trailer), in order */
    uint64_t expected = exe_size;
    for (int k = 0; k < 3; k++) {
        uint64_t off = field[1 + 2 * k], size = field[2 + 2 * k];
        if (exe_size > payload_end || off != expected || size > payload_end - off ||
            size > limits[k]) {
            snprintf(err, n, "%s: damaged bundle trailer: the %s part (offset %llu, %llu bytes) "
                     "is outside the payload", path, names[k], (unsigned long long)off,
                     (unsigned long long)size);
            close(fd);
            return -1;
        }
        expected = off + size;
    }
    if (expected != payload_end || field[2] == 0 || field[6] == 0) {
        snprintf(err, n, "%s: damaged bundle trailer: %s", path,
                 expected != payload_end ? "the parts do not end where the trailer starts"
                                         : "the model or manifest part is empty");
        close(fd);
        return -1;
    }
    memcpy(out->sha256, trailer + 7 * 8, 64);
    out->sha256[64] = '\0';
    out->executable_size = exe_size;
    out->model_size = (size_t)field[2];
    out->model = read_part(fd, field[1], field[2]);
    out->labels = field[4] ? (char *)read_part(fd, field[3], field[4]) : NULL;
    out->manifest = (char *)read_part(fd, field[5], field[6]);
    close(fd);
    if (!out->model || !out->manifest || (field[4] && !out->labels)) {
        snprintf(err, n, "%s: cannot read the bundle's payload (%llu bytes): %s", path,
                 (unsigned long long)(payload_end - exe_size), strerror(errno ? errno : ENOMEM));
        bundle_payload_free(out);
        return -1;
    }
    return 1;
}

bool bundle_verify(const bundle_payload *p, const char *path, char *err, size_t n)
{
    char actual[65];
    if (!bundle_sha256_hex(p->model, p->model_size, actual)) {
        snprintf(err, n, "%s: cannot compute sha256 of the embedded model", path);
        return false;
    }
    if (strcmp(actual, p->sha256) != 0) {
        snprintf(err, n, "%s: the embedded model is damaged: its sha256 is %s but the bundle "
                 "was written with %s; refusing to serve it", path, actual, p->sha256);
        return false;
    }
    json_error_t je;
    json_t *manifest = json_loads(p->manifest, 0, &je);
    if (!manifest || !json_is_object(manifest)) {
        snprintf(err, n, "%s: embedded model.json: line %d: %s", path, je.line,
                 manifest ? "not a JSON object" : je.text);
        json_decref(manifest);
        return false;
    }
    const char *listed = json_string_value(json_object_get(manifest, "sha256"));
    bool ok = !listed || strcmp(listed, actual) == 0;
    if (!ok)
        snprintf(err, n, "%s: embedded model.json field 'sha256' says %s but the embedded model's "
                 "sha256 is %s; refusing to serve it", path, listed, actual);
    json_decref(manifest);
    return ok;
}

/* Read a whole file (at most max bytes) of dir into memory. missing_ok: a
 * missing file gives *data NULL and true. */
static bool slurp(const char *dir, const char *name, uint64_t max, bool missing_ok,
                  unsigned char **data, size_t *size, char *err, size_t n)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    *data = NULL;
    *size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (missing_ok && errno == ENOENT)
            return true;
        snprintf(err, n, "%s: %s", path, strerror(errno));
        return false;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > max) {
        snprintf(err, n, "%s: not a regular file of at most %llu bytes", path,
                 (unsigned long long)max);
        close(fd);
        return false;
    }
    *data = read_part(fd, 0, (uint64_t)st.st_size);
    close(fd);
    if (!*data) {
        snprintf(err, n, "%s: cannot read it", path);
        return false;
    }
    *size = (size_t)st.st_size;
    return true;
}

/* Copy the first size bytes of in to out. */
static bool copy_bytes(int in, int out, uint64_t size)
{
    static const size_t chunk = 1 << 20;
    unsigned char *buf = malloc(chunk);
    if (!buf)
        return false;
    uint64_t done = 0;
    bool ok = true;
    while (ok && done < size) {
        size_t want = size - done < chunk ? (size_t)(size - done) : chunk;
        ok = read_exact(in, buf, want, done) && write_all(out, buf, want);
        done += want;
    }
    free(buf);
    return ok;
}

bool bundle_write(const char *self_path, const char *model_dir, const char *out_path, char *err,
                  size_t n)
{
    unsigned char *model = NULL, *labels = NULL, *manifest = NULL;
    size_t model_size, labels_size, manifest_size;
    char sha[65], tmp[4200];
    int self = -1, out = -1;
    bool ok = false;
    tmp[0] = '\0';
    if (!slurp(model_dir, "model.onnx", BUNDLE_MODEL_MAX, false, &model, &model_size, err, n) ||
        !slurp(model_dir, "labels.json", BUNDLE_SIDE_MAX, true, &labels, &labels_size, err, n) ||
        !slurp(model_dir, "model.json", BUNDLE_SIDE_MAX, false, &manifest, &manifest_size, err, n))
        goto done;
    if (model_size == 0 || manifest_size == 0) {
        snprintf(err, n, "%s: %s is empty", model_dir, model_size ? "model.json" : "model.onnx");
        goto done;
    }
    if (!bundle_sha256_hex(model, model_size, sha)) {
        snprintf(err, n, "%s/model.onnx: cannot compute its sha256", model_dir);
        goto done;
    }
    bundle_payload check = {.model = model, .model_size = model_size, .manifest = (char *)manifest};
    memcpy(check.sha256, sha, sizeof(sha));
    char manifest_path[4200];
    snprintf(manifest_path, sizeof(manifest_path), "%s/model.json", model_dir);
    if (!bundle_verify(&check, manifest_path, err, n))
        goto done;

    /* the running executable without any payload it carries itself */
    bundle_payload own;
    char own_err[256];
    int has = bundle_read(self_path, &own, own_err, sizeof(own_err));
    if (has < 0) {
        snprintf(err, n, "%s", own_err);
        goto done;
    }
    self = open(self_path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (self < 0 || fstat(self, &st) != 0) {
        snprintf(err, n, "%s: %s", self_path, strerror(errno));
        goto done;
    }
    uint64_t exe_size = has ? own.executable_size : (uint64_t)st.st_size;
    if (has)
        bundle_payload_free(&own);

    int len = snprintf(tmp, sizeof(tmp), "%s.tmp-%ld", out_path, (long)getpid());
    if (len < 0 || (size_t)len >= sizeof(tmp)) {
        snprintf(err, n, "%s: path too long", out_path);
        tmp[0] = '\0';
        goto done;
    }
    out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
    if (out < 0) {
        snprintf(err, n, "%s: %s", tmp, strerror(errno));
        tmp[0] = '\0';
        goto done;
    }
    unsigned char trailer[BUNDLE_TRAILER_SIZE];
    memset(trailer, 0, sizeof(trailer));
    uint64_t model_off = exe_size, labels_off = model_off + model_size,
             manifest_off = labels_off + labels_size;
    uint64_t fields[7] = {exe_size, model_off, model_size, labels_off, labels_size, manifest_off,
                          manifest_size};
    for (int i = 0; i < 7; i++)
        put_u64(trailer + 8 * i, fields[i]);
    memcpy(trailer + 7 * 8, sha, 64);
    memcpy(trailer + 7 * 8 + 64, BUNDLE_MAGIC, 16);
    if (!copy_bytes(self, out, exe_size) || !write_all(out, model, model_size) ||
        (labels_size && !write_all(out, labels, labels_size)) ||
        !write_all(out, manifest, manifest_size) || !write_all(out, trailer, sizeof(trailer)) ||
        fchmod(out, 0755) != 0 || fsync(out) != 0) {
        snprintf(err, n, "%s: write failed: %s", tmp, strerror(errno));
        goto done;
    }
    if (close(out) != 0) {
        out = -1;
        snprintf(err, n, "%s: write failed: %s", tmp, strerror(errno));
        goto done;
    }
    out = -1;
    if (rename(tmp, out_path) != 0) {
        snprintf(err, n, "%s: %s", out_path, strerror(errno));
        goto done;
    }
    tmp[0] = '\0';
    ok = true;
done:
    if (out >= 0)
        close(out);
    if (self >= 0)
        close(self);
    if (tmp[0])
        unlink(tmp);
    free(model);
    free(labels);
    free(manifest);
    return ok;
}
