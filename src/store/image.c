/*
 * image.c — writes the OCI image archive described in image.h with
 * libarchive and OpenSSL, no Docker daemon and no registry. The steps:
 *   1. ask the executable's own dynamic loader (its PT_INTERP) which shared
 *      objects it loads: `ld.so --list` resolves exactly as a start would,
 *      transitive dependencies included;
 *   2. write the layer tar (directories, /inferd-server, the libraries at
 *      the paths the loader found them, the loader itself), hashing it on
 *      the way for the config's diff_id;
 *   3. gzip it (libarchive's raw format + gzip filter), hashing the
 *      compressed bytes for the layer's digest;
 *   4. config, manifest and index.json, each hashed, and the oci-layout
 *      marker, all into one tar staged beside the output and renamed.
 */
#include "image.h"

#include <archive.h>
#include <archive_entry.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define IMAGE_MAX_LIBRARIES 512
/* Files in the layer get this mtime, so the same bundle gives the same layer. */
#define IMAGE_MTIME 0

typedef struct digest_sink {
    FILE *file;
    EVP_MD_CTX *ctx;
    uint64_t bytes;
    bool failed;
} digest_sink;

static void hex_of(const unsigned char *digest, char out[72])
{
    memcpy(out, "sha256:", 7);
    for (int i = 0; i < 32; i++)
        snprintf(out + 7 + 2 * i, 3, "%02x", digest[i]);
}

static bool sink_open(digest_sink *s, const char *path)
{
    memset(s, 0, sizeof(*s));
    s->file = fopen(path, "wb");
    s->ctx = EVP_MD_CTX_new();
    if (!s->file || !s->ctx || !EVP_DigestInit_ex(s->ctx, EVP_sha256(), NULL)) {
        if (s->file)
            fclose(s->file);
        EVP_MD_CTX_free(s->ctx);
        return false;
    }
    return true;
}

/* Close the file and give "sha256:<hex>" of everything written. */
static bool sink_close(digest_sink *s, char digest[72])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    bool ok = !s->failed && EVP_DigestFinal_ex(s->ctx, md, &len) && len == 32;
    ok = fclose(s->file) == 0 && ok;
    EVP_MD_CTX_free(s->ctx);
    if (ok)
        hex_of(md, digest);
    return ok;
}

static la_ssize_t sink_write(struct archive *a, void *context, const void *buf, size_t size)
{
    (void)a;
    digest_sink *s = context;
    if (fwrite(buf, 1, size, s->file) != size || !EVP_DigestUpdate(s->ctx, buf, size)) {
        s->failed = true;
        return -1;
    }
    s->bytes += size;
    return (la_ssize_t)size;
}

static bool digest_of(const char *data, size_t size, char digest[72])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (!EVP_Digest(data, size, md, &len, EVP_sha256(), NULL) || len != 32)
        return false;
    hex_of(md, digest);
    return true;
}

/* PT_INTERP of a 64-bit ELF executable. */
static bool elf_interpreter(const char *path, char *out, size_t size, char *err, size_t n)
{
    FILE *f = fopen(path, "rb");
    Elf64_Ehdr eh;
    bool ok = false;
    if (!f || fread(&eh, sizeof(eh), 1, f) != 1 || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
        eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_phentsize != sizeof(Elf64_Phdr)) {
        snprintf(err, n, "%s: not a 64-bit ELF executable", path);
        goto done;
    }
    for (unsigned i = 0; i < eh.e_phnum; i++) {
        Elf64_Phdr ph;
        if (fseeko(f, (off_t)(eh.e_phoff + (uint64_t)i * sizeof(ph)), SEEK_SET) != 0 ||
            fread(&ph, sizeof(ph), 1, f) != 1)
            break;
        if (ph.p_type != PT_INTERP)
            continue;
        if (ph.p_filesz < 2 || ph.p_filesz >= size || fseeko(f, (off_t)ph.p_offset, SEEK_SET) != 0 ||
            fread(out, 1, ph.p_filesz, f) != ph.p_filesz) {
            snprintf(err, n, "%s: unreadable PT_INTERP", path);
            goto done;
        }
        out[ph.p_filesz] = '\0';
        ok = out[0] == '/';
        if (!ok)
            snprintf(err, n, "%s: PT_INTERP '%s' is not an absolute path", path, out);
        goto done;
    }
    snprintf(err, n, "%s: no PT_INTERP: a static executable needs no libraries, but inferd is "
             "built dynamically", path);
done:
    if (f)
        fclose(f);
    return ok;
}

typedef struct library_list {
    char *paths[IMAGE_MAX_LIBRARIES];
    size_t count;
} library_list;

static bool list_add(library_list *l, const char *path, size_t len)
{
    for (size_t i = 0; i < l->count; i++)
        if (strlen(l->paths[i]) == len && strncmp(l->paths[i], path, len) == 0)
            return true;
    if (l->count == IMAGE_MAX_LIBRARIES || !(l->paths[l->count] = strndup(path, len)))
        return false;
    l->count++;
    return true;
}

static void list_free(library_list *l)
{
    for (size_t i = 0; i < l->count; i++)
        free(l->paths[i]);
    l->count = 0;
}

/* Run `interp --list exe` and collect the absolute paths it prints:
 *   libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)
 *   /lib64/ld-linux-x86-64.so.2 (0x...)
 *   linux-vdso.so.1 (0x...)                      (the kernel's; skipped)
 *   libfoo.so.1 => not found                     (an error) */
static bool loader_list(const char *interp, const char *exe, library_list *out, char *err,
                        size_t n)
{
    int fds[2];
    if (pipe(fds) != 0) {
        snprintf(err, n, "pipe: %s", strerror(errno));
        return false;
    }
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, n, "fork: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return false;
    }
    if (pid == 0) {
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        char *argv[] = {(char *)interp, "--list", (char *)exe, NULL};
        execve(interp, argv, environ);
        _exit(127);
    }
    close(fds[1]);
    size_t cap = 1 << 16, used = 0;
    char *text = malloc(cap + 1);
    ssize_t got = 0;
    while (text && (got = read(fds[0], text + used, cap - used)) != 0) {
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            break;
        used += (size_t)got;
        if (used == cap) {
            char *grown = cap < (1 << 22) ? realloc(text, 2 * cap + 1) : NULL;
            if (!grown)
                break;
            text = grown;
            cap *= 2;
        }
    }
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!text) {
        snprintf(err, n, "out of memory");
        return false;
    }
    text[used] = '\0';
    bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!ok)
        snprintf(err, n, "%s --list %s failed: %.300s", interp, exe, text);
    for (char *line = strtok(text, "\n"); ok && line; line = strtok(NULL, "\n")) {
        char *arrow = strstr(line, "=> ");
        char *path = arrow ? arrow + 3 : line + strspn(line, " \t");
        if (strncmp(path, "not found", 9) == 0) {
            snprintf(err, n, "%s needs %.*s, which the dynamic loader cannot find", exe,
                     (int)(arrow - line), line + strspn(line, " \t"));
            ok = false;
            break;
        }
        if (path[0] != '/')
            continue; /* the vDSO */
        size_t len = strcspn(path, " (");
        if (!list_add(out, path, len)) {
            snprintf(err, n, "%s: more than %d libraries", exe, IMAGE_MAX_LIBRARIES);
            ok = false;
        }
    }
    free(text);
    if (ok && !list_add(out, interp, strlen(interp))) {
        snprintf(err, n, "out of memory");
        ok = false;
    }
    return ok;
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool add_directory(struct archive *a, const char *path, mode_t mode)
{
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, path);
    archive_entry_set_filetype(e, AE_IFDIR);
    archive_entry_set_perm(e, mode);
    archive_entry_set_mtime(e, IMAGE_MTIME, 0);
    archive_entry_set_uid(e, 0);
    archive_entry_set_gid(e, 0);
    bool ok = archive_write_header(a, e) == ARCHIVE_OK;
    archive_entry_free(e);
    return ok;
}

/* Add the file at source (symlinks followed) as a regular file named name. */
static bool add_file(struct archive *a, const char *name, const char *source, char *err,
                     size_t n)
{
    int fd = open(source, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, n, "%s: %s", source, fd < 0 ? strerror(errno) : "not a regular file");
        if (fd >= 0)
            close(fd);
        return false;
    }
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, name);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, st.st_mode & 0755);
    archive_entry_set_size(e, st.st_size);
    archive_entry_set_mtime(e, IMAGE_MTIME, 0);
    archive_entry_set_uid(e, 0);
    archive_entry_set_gid(e, 0);
    bool ok = archive_write_header(a, e) == ARCHIVE_OK;
    archive_entry_free(e);
    char buf[1 << 16];
    int64_t left = st.st_size;
    while (ok && left > 0) {
        ssize_t got = read(fd, buf, sizeof(buf));
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        ok = archive_write_data(a, buf, (size_t)got) == got;
        left -= got;
    }
    close(fd);
    if (ok && left != 0)
        ok = false;
    if (!ok)
        snprintf(err, n, "%s: %s", source,
                 archive_error_string(a) ? archive_error_string(a) : "read or write failed");
    return ok;
}

static bool add_bytes(struct archive *a, const char *name, const char *data, size_t size)
{
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, name);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, (la_int64_t)size);
    archive_entry_set_mtime(e, IMAGE_MTIME, 0);
    bool ok = archive_write_header(a, e) == ARCHIVE_OK &&
              (size == 0 || archive_write_data(a, data, size) == (la_ssize_t)size);
    archive_entry_free(e);
    return ok;
}

/* The layer: every parent folder, tmp/, /inferd-server and the libraries. */
static bool write_layer(const char *bundle_path, const library_list *libs, const char *path,
                        char diff_id[72], uint64_t *size, char *err, size_t n)
{
    digest_sink sink;
    if (!sink_open(&sink, path)) {
        snprintf(err, n, "%s: %s", path, strerror(errno));
        return false;
    }
    struct archive *a = archive_write_new();
    bool ok = a && archive_write_set_format_pax_restricted(a) == ARCHIVE_OK &&
              archive_write_set_bytes_in_last_block(a, 1) == ARCHIVE_OK &&
              archive_write_open(a, &sink, NULL, sink_write, NULL) == ARCHIVE_OK;
    /* folders: every prefix of every library path, sorted and unique */
    char *dirs[IMAGE_MAX_LIBRARIES * 4];
    size_t n_dirs = 0;
    for (size_t i = 0; ok && i < libs->count; i++) {
        const char *p = libs->paths[i] + 1;
        for (const char *slash = strchr(p, '/'); slash && n_dirs < sizeof(dirs) / sizeof(dirs[0]);
             slash = strchr(slash + 1, '/')) {
            char *dir = strndup(p, (size_t)(slash - p));
            bool seen = !dir;
            for (size_t k = 0; dir && k < n_dirs && !seen; k++)
                seen = strcmp(dirs[k], dir) == 0;
            if (seen)
                free(dir);
            else
                dirs[n_dirs++] = dir;
        }
    }
    qsort(dirs, n_dirs, sizeof(dirs[0]), compare_strings);
    ok = ok && add_directory(a, "tmp", 01777);
    for (size_t i = 0; ok && i < n_dirs; i++)
        ok = add_directory(a, dirs[i], 0755);
    if (!ok)
        snprintf(err, n, "%s: %s", path, a && archive_error_string(a) ? archive_error_string(a)
                                                                      : "cannot write the layer");
    ok = ok && add_file(a, "inferd-server", bundle_path, err, n);
    for (size_t i = 0; ok && i < libs->count; i++)
        ok = add_file(a, libs->paths[i] + 1, libs->paths[i], err, n);
    if (a && archive_write_close(a) != ARCHIVE_OK && ok) {
        snprintf(err, n, "%s: %s", path, archive_error_string(a));
        ok = false;
    }
    archive_write_free(a);
    for (size_t i = 0; i < n_dirs; i++)
        free(dirs[i]);
    *size = sink.bytes;
    if (!sink_close(&sink, diff_id) && ok) {
        snprintf(err, n, "%s: write failed", path);
        ok = false;
    }
    return ok;
}

/* gzip the layer tar into blob_path; digest of the compressed bytes. */
static bool gzip_layer(const char *tar_path, uint64_t tar_size, const char *blob_path,
                       char digest[72], uint64_t *size, char *err, size_t n)
{
    digest_sink sink;
    if (!sink_open(&sink, blob_path)) {
        snprintf(err, n, "%s: %s", blob_path, strerror(errno));
        return false;
    }
    struct archive *a = archive_write_new();
    /* no padding after the gzip member: readers would take zeros for the
     * start of another member */
    bool ok = a && archive_write_add_filter_gzip(a) == ARCHIVE_OK &&
              archive_write_set_format_raw(a) == ARCHIVE_OK &&
              archive_write_set_bytes_per_block(a, 0) == ARCHIVE_OK;
    /* a gzip header without the time of day keeps the digest stable (an
     * older libarchive without the option just writes the time) */
    if (ok)
        archive_write_set_filter_option(a, "gzip", "timestamp", NULL);
    ok = ok && archive_write_open(a, &sink, NULL, sink_write, NULL) == ARCHIVE_OK;
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, "layer.tar");
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, (la_int64_t)tar_size);
    ok = ok && archive_write_header(a, e) == ARCHIVE_OK;
    archive_entry_free(e);
    FILE *in = ok ? fopen(tar_path, "rb") : NULL;
    char buf[1 << 16];
    size_t got;
    while (in && (got = fread(buf, 1, sizeof(buf), in)) > 0 && ok)
        ok = archive_write_data(a, buf, got) == (la_ssize_t)got;
    if (in)
        fclose(in);
    else
        ok = false;
    if (a && archive_write_close(a) != ARCHIVE_OK)
        ok = false;
    if (!ok)
        snprintf(err, n, "%s: %s", blob_path,
                 a && archive_error_string(a) ? archive_error_string(a) : "cannot gzip the layer");
    archive_write_free(a);
    *size = sink.bytes;
    if (!sink_close(&sink, digest) && ok) {
        snprintf(err, n, "%s: write failed", blob_path);
        ok = false;
    }
    return ok;
}

static const char *oci_architecture(void)
{
    struct utsname u;
    if (uname(&u) != 0)
        return "amd64";
    if (strcmp(u.machine, "x86_64") == 0)
        return "amd64";
    if (strcmp(u.machine, "aarch64") == 0)
        return "arm64";
    return u.machine[0] ? "unknown" : "amd64";
}

static char *dump(const json_t *doc)
{
    return json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
}

bool image_write(const char *bundle_path, const char *manifest_json, const char *tag,
                 const char *work_dir, const char *out_path, image_result *result, char *err,
                 size_t n)
{
    memset(result, 0, sizeof(*result));
    char interp[PATH_MAX], tar_path[PATH_MAX], blob_path[PATH_MAX], tmp[PATH_MAX];
    char diff_id[72], layer_digest[72], config_digest[72], manifest_digest[72];
    library_list libs = {.count = 0};
    json_t *model = NULL, *config = NULL, *manifest = NULL, *index = NULL;
    char *config_text = NULL, *manifest_text = NULL, *index_text = NULL;
    struct archive *a = NULL;
    bool ok = false;
    tmp[0] = '\0';
    snprintf(tar_path, sizeof(tar_path), "%s/layer.tar", work_dir);
    snprintf(blob_path, sizeof(blob_path), "%s/layer.tar.gz", work_dir);
    if (!elf_interpreter(bundle_path, interp, sizeof(interp), err, n) ||
        !loader_list(interp, bundle_path, &libs, err, n) ||
        !write_layer(bundle_path, &libs, tar_path, diff_id, &result->layer_uncompressed, err, n) ||
        !gzip_layer(tar_path, result->layer_uncompressed, blob_path, layer_digest,
                    &result->layer_size, err, n))
        goto done;
    result->libraries = libs.count;

    model = json_loads(manifest_json, 0, NULL);
    const char *name = json_string_value(json_object_get(model, "name"));
    const char *version = json_string_value(json_object_get(model, "version"));
    const char *sha = json_string_value(json_object_get(model, "sha256"));
    const char *created = json_string_value(json_object_get(model, "created"));
    if (!created)
        created = "1970-01-01T00:00:00Z";
    json_t *labels = json_pack("{s:s?, s:s?, s:s?, s:s?, s:s}", "org.opencontainers.image.title",
                               name, "io.inferd.model.name", name, "io.inferd.model.version",
                               version, "io.inferd.model.sha256", sha,
                               "org.opencontainers.image.created", created);
    config = json_pack(
        "{s:s, s:s, s:s, s:{s:[s,s,s], s:{s:{}}, s:[s], s:s, s:o}, s:{s:s, s:[s]}, "
        "s:[{s:s, s:s}]}",
        "created", created, "architecture", oci_architecture(), "os", "linux", "config",
        "Entrypoint", "/inferd-server", "--host", "0.0.0.0", "ExposedPorts", "8000/tcp", "Env",
        "PORT=8000", "WorkingDir", "/", "Labels", labels, "rootfs", "type", "layers", "diff_ids",
        diff_id, "history", "created", created, "created_by", "inferd image");
    config_text = config ? dump(config) : NULL;
    if (!config_text || !digest_of(config_text, strlen(config_text), config_digest)) {
        snprintf(err, n, "cannot build the image config");
        goto done;
    }
    manifest = json_pack("{s:i, s:s, s:{s:s, s:s, s:I}, s:[{s:s, s:s, s:I}], s:{s:s?, s:s}}",
                         "schemaVersion", 2, "mediaType",
                         "application/vnd.oci.image.manifest.v1+json", "config", "mediaType",
                         "application/vnd.oci.image.config.v1+json", "digest", config_digest,
                         "size", (json_int_t)strlen(config_text), "layers", "mediaType",
                         "application/vnd.oci.image.layer.v1.tar+gzip", "digest", layer_digest,
                         "size", (json_int_t)result->layer_size, "annotations",
                         "org.opencontainers.image.title", name,
                         "org.opencontainers.image.created", created);
    manifest_text = manifest ? dump(manifest) : NULL;
    if (!manifest_text || !digest_of(manifest_text, strlen(manifest_text), manifest_digest)) {
        snprintf(err, n, "cannot build the image manifest");
        goto done;
    }
    index = json_pack("{s:i, s:s, s:[{s:s, s:s, s:I, s:{s:s, s:s}, s:{s:s}}]}", "schemaVersion",
                      2, "mediaType", "application/vnd.oci.image.index.v1+json", "manifests",
                      "mediaType", "application/vnd.oci.image.manifest.v1+json", "digest",
                      manifest_digest, "size", (json_int_t)strlen(manifest_text), "platform",
                      "architecture", oci_architecture(), "os", "linux", "annotations",
                      "org.opencontainers.image.ref.name", tag);
    index_text = index ? dump(index) : NULL;
    if (!index_text) {
        snprintf(err, n, "cannot build index.json");
        goto done;
    }
    memcpy(result->manifest_digest, manifest_digest, sizeof(manifest_digest));

    int len = snprintf(tmp, sizeof(tmp), "%s.tmp-%ld", out_path, (long)getpid());
    if (len < 0 || (size_t)len >= sizeof(tmp)) {
        snprintf(err, n, "%s: path too long", out_path);
        tmp[0] = '\0';
        goto done;
    }
    static const char layout[] = "{\"imageLayoutVersion\":\"1.0.0\"}";
    char config_name[128], manifest_name[128], layer_name[128];
    snprintf(config_name, sizeof(config_name), "blobs/sha256/%s", config_digest + 7);
    snprintf(manifest_name, sizeof(manifest_name), "blobs/sha256/%s", manifest_digest + 7);
    snprintf(layer_name, sizeof(layer_name), "blobs/sha256/%s", layer_digest + 7);
    a = archive_write_new();
    ok = a && archive_write_set_format_pax_restricted(a) == ARCHIVE_OK &&
         archive_write_open_filename(a, tmp) == ARCHIVE_OK &&
         add_bytes(a, "oci-layout", layout, strlen(layout)) &&
         add_bytes(a, "index.json", index_text, strlen(index_text)) &&
         add_directory(a, "blobs", 0755) && add_directory(a, "blobs/sha256", 0755) &&
         add_bytes(a, manifest_name, manifest_text, strlen(manifest_text)) &&
         add_bytes(a, config_name, config_text, strlen(config_text));
    if (!ok)
        snprintf(err, n, "%s: %s", tmp,
                 a && archive_error_string(a) ? archive_error_string(a) : "cannot write");
    ok = ok && add_file(a, layer_name, blob_path, err, n);
    if (a && archive_write_close(a) != ARCHIVE_OK && ok) {
        snprintf(err, n, "%s: %s", tmp, archive_error_string(a));
        ok = false;
    }
    int fd = ok ? open(tmp, O_RDONLY | O_CLOEXEC) : -1;
    struct stat st;
    if (ok && (fd < 0 || fsync(fd) != 0 || fstat(fd, &st) != 0)) {
        snprintf(err, n, "%s: %s", tmp, strerror(errno));
        ok = false;
    }
    if (fd >= 0)
        close(fd);
    if (ok && rename(tmp, out_path) != 0) {
        snprintf(err, n, "%s: %s", out_path, strerror(errno));
        ok = false;
    }
    if (ok) {
        result->archive_size = (uint64_t)st.st_size;
        tmp[0] = '\0';
    }
done:
    archive_write_free(a);
    if (tmp[0])
        unlink(tmp);
    unlink(tar_path);
    unlink(blob_path);
    list_free(&libs);
    json_decref(model);
    json_decref(config);
    json_decref(manifest);
    json_decref(index);
    free(config_text);
    free(manifest_text);
    free(index_text);
    return ok;
}
