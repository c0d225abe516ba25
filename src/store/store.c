/*
 * store.c — the local model store: opening the root, names and references,
 * resolution of "latest", listing, deletion and the atomic placement every
 * import ends with. The layout and the manifest are described in store.h.
 *
 * Crash safety rests on one rule: a <root>/<name>/<version> directory only
 * ever appears by rename(2) of a complete, fsync'd staging directory from
 * <root>/.tmp, and disappears by a rename back into .tmp before it is
 * emptied. A kill -9 at any moment therefore leaves either the old or the
 * new state visible, plus leftovers in .tmp that the next store_open()
 * removes (their names carry the pid of the process that made them).
 */
#include "store_internal.h"

#include "image_input.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- names ----------------------------------------------------------------- */

bool store_valid_name(const char *text)
{
    size_t len = text ? strlen(text) : 0;
    if (len == 0 || len > STORE_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        bool inner = c == '-' || c == '.' || c == '_';
        if (!alnum && !(inner && i > 0 && i + 1 < len))
            return false;
    }
    return true;
}

static void explain_name(const char *what, const char *text, char *err, size_t n)
{
    snprintf(err, n,
             "%s '%.80s%s' is not valid: use 1 to %d characters of a-z, 0-9 and inner '-', '.', "
             "'_' (starting and ending with a letter or digit)",
             what, text, strlen(text) > 80 ? "..." : "", STORE_NAME_MAX);
}

bool store_parse_ref(const char *text, model_ref *ref, char *err, size_t n)
{
    memset(ref, 0, sizeof(*ref));
    if (!text || !*text) {
        snprintf(err, n, "empty model reference (expected name, name:version or name:latest)");
        return false;
    }
    const char *colon = strchr(text, ':');
    size_t name_len = colon ? (size_t)(colon - text) : strlen(text);
    char name[STORE_NAME_MAX + 2];
    if (name_len > STORE_NAME_MAX) {
        explain_name("model name", text, err, n);
        return false;
    }
    memcpy(name, text, name_len);
    name[name_len] = '\0';
    if (!store_valid_name(name)) {
        explain_name("model name", name, err, n);
        return false;
    }
    const char *version = colon ? colon + 1 : "";
    if (colon && strcmp(version, "latest") != 0 && !store_valid_name(version)) {
        explain_name("model version", version, err, n);
        return false;
    }
    memcpy(ref->name, name, name_len + 1);
    snprintf(ref->version, sizeof(ref->version), "%s", version);
    return true;
}

int version_compare(const char *a, const char *b)
{
    while (*a && *b) {
        if (isdigit((unsigned char)*a) && isdigit((unsigned char)*b)) {
            while (*a == '0' && isdigit((unsigned char)a[1]))
                a++;
            while (*b == '0' && isdigit((unsigned char)b[1]))
                b++;
            size_t la = 0, lb = 0;
            while (isdigit((unsigned char)a[la]))
                la++;
            while (isdigit((unsigned char)b[lb]))
                lb++;
            if (la != lb)
                return la < lb ? -1 : 1;
            int c = strncmp(a, b, la);
            if (c)
                return c;
            a += la;
            b += lb;
        } else {
            if (*a != *b)
                return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
            a++;
            b++;
        }
    }
    return *a ? 1 : *b ? -1 : 0;
}

/* ---- files relative to directory descriptors ------------------------------- */

bool write_file_at(int dir_fd, const char *name, const void *data, size_t size, const char *label,
                   char *err, size_t n)
{
    int fd = openat(dir_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, n, "%s: %s", label, strerror(errno));
        return false;
    }
    const char *p = data;
    while (size > 0) {
        ssize_t w = write(fd, p, size);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            snprintf(err, n, "%s: write failed: %s", label, w < 0 ? strerror(errno) : "no progress");
            close(fd);
            return false;
        }
        p += w;
        size -= (size_t)w;
    }
    if (fsync(fd) != 0) {
        snprintf(err, n, "%s: fsync failed: %s", label, strerror(errno));
        close(fd);
        return false;
    }
    if (close(fd) != 0) {
        snprintf(err, n, "%s: close failed: %s", label, strerror(errno));
        return false;
    }
    return true;
}

static char *read_fd_bounded(int fd, size_t max, size_t *size, const char *label, char *err,
                             size_t n)
{
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, n, "%s: not a regular file", label);
        return NULL;
    }
    if ((uint64_t)st.st_size > max) {
        snprintf(err, n, "%s: %lld bytes, more than the limit of %zu", label, (long long)st.st_size,
                 max);
        return NULL;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        snprintf(err, n, "%s: out of memory", label);
        return NULL;
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            snprintf(err, n, "%s: read failed: %s", label, r < 0 ? strerror(errno) : "file shrank");
            free(buf);
            return NULL;
        }
        got += (size_t)r;
    }
    buf[got] = '\0';
    if (size)
        *size = got;
    return buf;
}

char *read_file_at(int dir_fd, const char *name, size_t max, size_t *size, const char *label,
                   char *err, size_t n)
{
    int fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, n, "%s: %s", label, errno == ELOOP ? "is a symbolic link" : strerror(errno));
        return NULL;
    }
    char *buf = read_fd_bounded(fd, max, size, label, err, n);
    close(fd);
    return buf;
}

static json_t *parse_json(const char *text, size_t size, const char *label, char *err, size_t n)
{
    json_error_t je;
    json_t *j = json_loadb(text, size, 0, &je);
    if (!j)
        snprintf(err, n, "%s: line %d column %d: %s", label, je.line, je.column, je.text);
    return j;
}

json_t *load_json_file(const char *path, size_t max, char *err, size_t n)
{
    size_t size;
    char *text = read_file_at(AT_FDCWD, path, max, &size, path, err, n);
    if (!text)
        return NULL;
    json_t *j = parse_json(text, size, path, err, n);
    free(text);
    return j;
}

json_t *load_json_at(int dir_fd, const char *name, size_t max, const char *label, char *err,
                     size_t n)
{
    size_t size;
    char *text = read_file_at(dir_fd, name, max, &size, label, err, n);
    if (!text)
        return NULL;
    json_t *j = parse_json(text, size, label, err, n);
    free(text);
    return j;
}

/* ---- opening the store ----------------------------------------------------- */

static bool mkdir_p(const char *path, char *err, size_t n)
{
    char buf[4096];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf)) {
        snprintf(err, n, "%s: path too long", path);
        return false;
    }
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
            snprintf(err, n, "%s: %s", buf, strerror(errno));
            return false;
        }
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
        snprintf(err, n, "%s: %s", buf, strerror(errno));
        return false;
    }
    return true;
}

store *store_open(const char *root, char *err, size_t n)
{
    char fallback[4096];
    if (!root || !*root)
        root = getenv("INFERD_HOME");
    if (!root || !*root) {
        const char *home = getenv("HOME");
        if (!home || !*home) {
            snprintf(err, n, "no store root: set INFERD_HOME or HOME");
            return NULL;
        }
        snprintf(fallback, sizeof(fallback), "%s/.local/share/inferd", home);
        root = fallback;
    }
    if (!mkdir_p(root, err, n))
        return NULL;
    store *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, n, "out of memory");
        return NULL;
    }
    s->root_fd = s->tmp_fd = -1;
    s->root = realpath(root, NULL);
    if (!s->root) {
        snprintf(err, n, "%s: %s", root, strerror(errno));
        goto fail;
    }
    s->root_fd = open(s->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->root_fd < 0) {
        snprintf(err, n, "%s: %s", s->root, strerror(errno));
        goto fail;
    }
    if (mkdirat(s->root_fd, STORE_TMP_DIR, 0700) != 0 && errno != EEXIST) {
        snprintf(err, n, "%s/%s: %s", s->root, STORE_TMP_DIR, strerror(errno));
        goto fail;
    }
    s->tmp_fd = openat(s->root_fd, STORE_TMP_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (s->tmp_fd < 0) {
        snprintf(err, n, "%s/%s: %s", s->root, STORE_TMP_DIR,
                 errno == ELOOP ? "is a symbolic link" : strerror(errno));
        goto fail;
    }
    staging_sweep(s);
    return s;
fail:
    store_close(s);
    return NULL;
}

void store_close(store *s)
{
    if (!s)
        return;
    if (s->tmp_fd >= 0)
        close(s->tmp_fd);
    if (s->root_fd >= 0)
        close(s->root_fd);
    free(s->root);
    free(s);
}

const char *store_root(const store *s) { return s->root; }

int open_model_dir(store *s, const char *name, const char *version)
{
    if (!store_valid_name(name) || (version && !store_valid_name(version))) {
        errno = EINVAL;
        return -1;
    }
    int name_fd = openat(s->root_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (name_fd < 0 || !version)
        return name_fd;
    int fd = openat(name_fd, version, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int saved = errno;
    close(name_fd);
    errno = saved;
    return fd;
}

/* ---- staging ----------------------------------------------------------------- */

static unsigned long long random_tag(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    unsigned long long x = (unsigned long long)ts.tv_nsec ^ ((unsigned long long)ts.tv_sec << 20) ^
                           ((unsigned long long)getpid() << 40);
    static unsigned long long counter;
    x += ++counter * 0x9E3779B97F4A7C15ull;
    x ^= x >> 31;
    return x;
}

bool staging_create(store *s, const char *prefix, staging *out, char *err, size_t n)
{
    for (int attempt = 0; attempt < 100; attempt++) {
        snprintf(out->name, sizeof(out->name), "%s-%ld-%012llx", prefix, (long)getpid(),
                 random_tag() & 0xffffffffffffull);
        if (mkdirat(s->tmp_fd, out->name, 0700) == 0) {
            out->fd = openat(s->tmp_fd, out->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (out->fd < 0)
                break;
            snprintf(out->path, sizeof(out->path), "%s/%s/%s", s->root, STORE_TMP_DIR, out->name);
            return true;
        }
        if (errno != EEXIST)
            break;
    }
    snprintf(err, n, "%s/%s: cannot create a staging directory: %s", s->root, STORE_TMP_DIR,
             strerror(errno));
    return false;
}

/* Staging and deleted directories hold plain files only (the layout has no
 * subdirectories), so one level of unlinking empties them. */
static void remove_flat_dir(int parent_fd, const char *name)
{
    int fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) {
        DIR *d = fdopendir(fd);
        if (d) {
            struct dirent *e;
            while ((e = readdir(d)) != NULL)
                if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
                    unlinkat(dirfd(d), e->d_name, 0);
            closedir(d);
        } else {
            close(fd);
        }
    }
    if (unlinkat(parent_fd, name, AT_REMOVEDIR) != 0 && errno == ENOTDIR)
        unlinkat(parent_fd, name, 0);
}

void staging_remove(store *s, staging *st)
{
    if (st->fd >= 0)
        close(st->fd);
    st->fd = -1;
    remove_flat_dir(s->tmp_fd, st->name);
}

void staging_sweep(store *s)
{
    int fd = dup(s->tmp_fd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return;
    }
    rewinddir(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        const char *dash = strchr(e->d_name, '-');
        long pid = dash ? strtol(dash + 1, NULL, 10) : 0;
        if (pid > 0 && (pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno == EPERM))
            continue; /* its owner may still be working in it */
        remove_flat_dir(s->tmp_fd, e->d_name);
    }
    closedir(d);
}

/* ---- resolution, listing, deletion ------------------------------------------ */

/* Versions of a name that hold a manifest, sorted; NULL when none. */
static char **list_versions(store *s, const char *name, size_t *count)
{
    *count = 0;
    int fd = open_model_dir(s, name, NULL);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    char **versions = NULL;
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        struct stat st;
        if (!store_valid_name(e->d_name))
            continue;
        char manifest[300];
        snprintf(manifest, sizeof(manifest), "%.*s/model.json", STORE_NAME_MAX, e->d_name);
        if (fstatat(dirfd(d), manifest, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (*count == cap) {
            cap = cap ? cap * 2 : 8;
            char **grown = realloc(versions, cap * sizeof(*grown));
            if (!grown)
                break;
            versions = grown;
        }
        if (!(versions[*count] = strdup(e->d_name)))
            break;
        (*count)++;
    }
    closedir(d);
    for (size_t i = 1; i < *count; i++)
        for (size_t k = i; k > 0 && version_compare(versions[k - 1], versions[k]) > 0; k--) {
            char *t = versions[k];
            versions[k] = versions[k - 1];
            versions[k - 1] = t;
        }
    return versions;
}

static void free_versions(char **versions, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(versions[i]);
    free(versions);
}

bool store_resolve(store *s, model_ref *ref, char *dir, size_t dir_size, char *err, size_t n)
{
    if (!store_valid_name(ref->name)) {
        explain_name("model name", ref->name, err, n);
        return false;
    }
    if (!ref->version[0] || strcmp(ref->version, "latest") == 0) {
        size_t count;
        char **versions = list_versions(s, ref->name, &count);
        if (count == 0) {
            free_versions(versions, count);
            snprintf(err, n, "model '%s' is not in the store %s", ref->name, s->root);
            return false;
        }
        snprintf(ref->version, sizeof(ref->version), "%s", versions[count - 1]);
        free_versions(versions, count);
    }
    if (!store_valid_name(ref->version)) {
        explain_name("model version", ref->version, err, n);
        return false;
    }
    int fd = open_model_dir(s, ref->name, ref->version);
    struct stat st;
    bool ok = fd >= 0 && fstatat(fd, "model.json", &st, AT_SYMLINK_NOFOLLOW) == 0 &&
              S_ISREG(st.st_mode);
    if (fd >= 0)
        close(fd);
    if (!ok) {
        snprintf(err, n, "model '%s:%s' is not in the store %s", ref->name, ref->version, s->root);
        return false;
    }
    if (dir && snprintf(dir, dir_size, "%s/%s/%s", s->root, ref->name, ref->version) >= (int)dir_size) {
        snprintf(err, n, "%s: path too long", s->root);
        return false;
    }
    return true;
}

json_t *store_manifest(store *s, const model_ref *ref, char *err, size_t n)
{
    model_ref r = *ref;
    if (!store_resolve(s, &r, NULL, 0, err, n))
        return NULL;
    int fd = open_model_dir(s, r.name, r.version);
    if (fd < 0) {
        snprintf(err, n, "model '%s:%s': %s", r.name, r.version, strerror(errno));
        return NULL;
    }
    char label[4400];
    snprintf(label, sizeof(label), "%s/%s/%s/model.json", s->root, r.name, r.version);
    json_t *m = load_json_at(fd, "model.json", STORE_MANIFEST_MAX, label, err, n);
    close(fd);
    if (m && !json_is_object(m)) {
        snprintf(err, n, "%s: not a JSON object", label);
        json_decref(m);
        return NULL;
    }
    return m;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

json_t *store_list(store *s, char *err, size_t n)
{
    struct dirent **names;
    int n_names = scandir(s->root, &names, NULL, by_name);
    if (n_names < 0) {
        snprintf(err, n, "%s: %s", s->root, strerror(errno));
        return NULL;
    }
    json_t *list = json_array();
    for (int i = 0; i < n_names; i++) {
        const char *name = names[i]->d_name;
        if (store_valid_name(name)) {
            size_t count;
            char **versions = list_versions(s, name, &count);
            for (size_t k = 0; k < count; k++) {
                model_ref ref;
                snprintf(ref.name, sizeof(ref.name), "%.*s", STORE_NAME_MAX, name);
                snprintf(ref.version, sizeof(ref.version), "%.*s", STORE_NAME_MAX, versions[k]);
                char ignored[256];
                json_t *m = store_manifest(s, &ref, ignored, sizeof(ignored));
                if (m)
                    json_array_append_new(list, m);
            }
            free_versions(versions, count);
        }
        free(names[i]);
    }
    free(names);
    return list;
}

bool store_delete(store *s, const model_ref *ref, char *err, size_t n)
{
    model_ref r = *ref;
    if (!store_resolve(s, &r, NULL, 0, err, n))
        return false;
    int name_fd = open_model_dir(s, r.name, NULL);
    if (name_fd < 0) {
        snprintf(err, n, "model '%s': %s", r.name, strerror(errno));
        return false;
    }
    /* rename out first: the version vanishes at once, whatever happens next */
    staging trash;
    if (!staging_create(s, "delete", &trash, err, n)) {
        close(name_fd);
        return false;
    }
    close(trash.fd);
    trash.fd = -1;
    if (renameat2(name_fd, r.version, s->tmp_fd, trash.name, RENAME_EXCHANGE) != 0) {
        snprintf(err, n, "model '%s:%s': cannot remove: %s", r.name, r.version, strerror(errno));
        unlinkat(s->tmp_fd, trash.name, AT_REMOVEDIR);
        close(name_fd);
        return false;
    }
    /* the (empty) trash directory now sits where the version was */
    unlinkat(name_fd, r.version, AT_REMOVEDIR);
    fsync(name_fd);
    unlinkat(s->root_fd, r.name, AT_REMOVEDIR); /* only when it was the last version */
    fsync(s->root_fd);
    close(name_fd);
    staging_remove(s, &trash);
    return true;
}

bool store_find_sha256(store *s, const char *sha256, model_ref *out)
{
    char err[256];
    json_t *list = store_list(s, err, sizeof(err));
    bool found = false;
    size_t i;
    json_t *m;
    json_array_foreach(list, i, m) {
        const char *sum = json_string_value(json_object_get(m, "sha256"));
        const char *name = json_string_value(json_object_get(m, "name"));
        const char *version = json_string_value(json_object_get(m, "version"));
        if (sum && name && version && strcasecmp(sum, sha256) == 0 && store_valid_name(name) &&
            store_valid_name(version)) {
            snprintf(out->name, sizeof(out->name), "%s", name);
            snprintf(out->version, sizeof(out->version), "%s", version);
            found = true;
        }
    }
    json_decref(list);
    return found;
}

/* ---- placement ------------------------------------------------------------- */

static void now_rfc3339(char buf[32])
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static bool is_numeric(const char *v)
{
    if (!*v)
        return false;
    for (; *v; v++)
        if (!isdigit((unsigned char)*v))
            return false;
    return true;
}

static bool next_version(store *s, const char *name, char *out, size_t size)
{
    unsigned long long highest = 0;
    int fd = open_model_dir(s, name, NULL);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL)
            if (is_numeric(e->d_name) && strlen(e->d_name) < 19) {
                unsigned long long v = strtoull(e->d_name, NULL, 10);
                if (v > highest)
                    highest = v;
            }
        closedir(d);
    } else if (fd >= 0) {
        close(fd);
    }
    snprintf(out, size, "%llu", highest + 1);
    return true;
}

static bool write_manifest(staging *st, json_t *manifest, char *err, size_t n)
{
    char *text = json_dumps(manifest, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
    if (!text) {
        snprintf(err, n, "cannot encode the manifest");
        return false;
    }
    unlinkat(st->fd, "model.json", 0);
    size_t len = strlen(text);
    char *with_newline = realloc(text, len + 2);
    if (!with_newline) {
        free(text);
        snprintf(err, n, "out of memory");
        return false;
    }
    with_newline[len] = '\n';
    char label[4300];
    snprintf(label, sizeof(label), "%s/model.json", st->path);
    bool ok = write_file_at(st->fd, "model.json", with_newline, len + 1, label, err, n);
    free(with_newline);
    return ok;
}

/* Place the staging directory at <name>/<version>. Explicit versions
 * replace what is there (RENAME_EXCHANGE keeps the swap atomic); automatic
 * ones never overwrite (RENAME_NOREPLACE) and move on to the next number
 * when a concurrent import took theirs. */
static bool place(store *s, staging *st, json_t *manifest, const char *name, const char *version,
                  model_ref *out, char *err, size_t n)
{
    if (mkdirat(s->root_fd, name, 0755) != 0 && errno != EEXIST) {
        snprintf(err, n, "%s/%s: %s", s->root, name, strerror(errno));
        return false;
    }
    fsync(s->root_fd);
    int name_fd = open_model_dir(s, name, NULL);
    if (name_fd < 0) {
        int saved = errno;
        struct stat st;
        bool link = fstatat(s->root_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode);
        snprintf(err, n, "%s/%s: %s", s->root, name,
                 link ? "is a symbolic link (the store never follows links)" : strerror(saved));
        return false;
    }
    char chosen[STORE_NAME_MAX + 1];
    bool ok = false;
    for (int attempt = 0; attempt < 1000 && !ok; attempt++) {
        if (version)
            snprintf(chosen, sizeof(chosen), "%s", version);
        else
            next_version(s, name, chosen, sizeof(chosen));
        json_object_set_new(manifest, "version", json_string(chosen));
        if (!write_manifest(st, manifest, err, n))
            break;
        if (fsync(st->fd) != 0) {
            snprintf(err, n, "%s: fsync failed: %s", st->path, strerror(errno));
            break;
        }
        if (renameat2(s->tmp_fd, st->name, name_fd, chosen, RENAME_NOREPLACE) == 0) {
            ok = true;
            break;
        }
        if (errno == EEXIST && version) {
            /* swap with the old version, which then lands in staging and is removed */
            if (renameat2(s->tmp_fd, st->name, name_fd, chosen, RENAME_EXCHANGE) == 0) {
                ok = true;
                break;
            }
        }
        if (errno != EEXIST && errno != ENOTEMPTY) {
            snprintf(err, n, "%s/%s/%s: cannot place the model: %s", s->root, name, chosen,
                     strerror(errno));
            break;
        }
        if (version) {
            snprintf(err, n, "%s/%s/%s: cannot replace the existing version: %s", s->root, name,
                     chosen, strerror(errno));
            break;
        }
    }
    if (ok) {
        fsync(name_fd);
        snprintf(out->name, sizeof(out->name), "%s", name);
        snprintf(out->version, sizeof(out->version), "%s", chosen);
    }
    close(name_fd);
    return ok;
}

/* The declared input preprocessing, checked against the model's inputs and
 * spelled out in full (defaults included) so the manifest says exactly
 * what a server will do. */
static json_t *preprocessing_checked(const ifd_model *model, const import_meta *meta, char *err, size_t n)
{
    size_t inputs = ifd_model_input_count(model);
    image_spec *specs = calloc(inputs + 1, sizeof(*specs));
    bool *has = calloc(inputs + 1, sizeof(*has));
    json_t *out = NULL;
    if (!specs || !has)
        snprintf(err, n, "out of memory checking the preprocessing");
    else if (image_preprocessing_parse(meta->preprocessing, model,
                                       meta->preprocessing_origin ? meta->preprocessing_origin : "preprocessing",
                                       specs, has, err, n)) {
        out = json_object();
        for (size_t i = 0; i < inputs; i++)
            if (has[i])
                json_object_set_new(out, ifd_model_input(model, i)->name, image_spec_to_json(&specs[i]));
    }
    free(specs);
    free(has);
    return out;
}

bool import_staged(store *s, staging *st, const import_meta *meta, model_ref *out, char *err,
                   size_t n)
{
    char model_path[4400];
    snprintf(model_path, sizeof(model_path), "%s/model.onnx", st->path);
    char label[256];
    snprintf(label, sizeof(label), "model '%s'", meta->name);

    /* the sha256 of the bytes actually placed, read back from staging */
    int fd = openat(st->fd, "model.onnx", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    char sha[65];
    uint64_t size = 0;
    if (fd < 0) {
        snprintf(err, n, "%s: %s", model_path, strerror(errno));
        return false;
    }
    bool ok = fd_sha256(fd, sha, &size, model_path, err, n);
    close(fd);
    if (!ok)
        return false;

    /* version guard, part 1: the engine loads it and can run every operator */
    ifd_model *model = NULL;
    ifd_error e;
    if (ifd_model_load_file(model_path, NULL, &model, &e) != IFD_OK) {
        /* the engine names the staged copy; the user knows the original */
        size_t len = strlen(model_path);
        const char *reason = e.message;
        if (strncmp(reason, model_path, len) == 0 && strncmp(reason + len, ": ", 2) == 0)
            reason += len + 2;
        snprintf(err, n, "%s (%s): the engine cannot load it: %s", label,
                 meta->display ? meta->display : "model.onnx", reason);
        return false;
    }
    /* part 2: it reproduces the training framework's outputs */
    if (meta->golden && !golden_samples_check_model(model, label, meta->golden, err, n)) {
        ifd_model_free(model);
        return false;
    }

    json_t *preprocessing = NULL;
    if (meta->preprocessing && !json_is_null(meta->preprocessing) &&
        !(preprocessing = preprocessing_checked(model, meta, err, n))) {
        ifd_model_free(model);
        return false;
    }
    char created[32];
    now_rfc3339(created);
    json_t *producer = json_pack("{s:s, s:s}", "name", ifd_model_producer_name(model) ? ifd_model_producer_name(model) : "",
                                 "version", ifd_model_producer_version(model) ? ifd_model_producer_version(model) : "");
    json_t *manifest = json_pack(
        "{s:s, s:s, s:s, s:s, s:I, s:I, s:o, s:o, s:o, s:s, s:O?, s:O?, s:O?, s:s}", "name",
        meta->name, "version", "", "created", meta->created ? meta->created : created, "sha256", sha,
        "size", (json_int_t)size, "ir_version", (json_int_t)ifd_model_ir_version(model), "opsets",
        manifest_opsets(model), "producer", producer, "signature", manifest_signature(model), "task",
        meta->task ? meta->task : "other", "labels", meta->labels, "training_environment",
        meta->training_env, "golden_samples", meta->golden, "source", meta->source ? meta->source : "");
    ifd_model_free(model);
    if (!manifest) {
        snprintf(err, n, "%s: cannot build the manifest", label);
        return false;
    }
    if (!meta->labels)
        json_object_set_new(manifest, "labels", json_null());
    if (!meta->training_env)
        json_object_set_new(manifest, "training_environment", json_null());
    if (!meta->golden)
        json_object_set_new(manifest, "golden_samples", json_null());
    json_object_set_new(manifest, "preprocessing", preprocessing ? preprocessing : json_null());
    /* model.json goes last: a version directory is complete iff it has one */
    if (meta->labels) {
        char *text = json_dumps(meta->labels, JSON_INDENT(2));
        char path[4400];
        snprintf(path, sizeof(path), "%s/labels.json", st->path);
        unlinkat(st->fd, "labels.json", 0);
        ok = text && write_file_at(st->fd, "labels.json", text, strlen(text), path, err, n);
        free(text);
        if (!ok) {
            json_decref(manifest);
            return false;
        }
    }
    ok = place(s, st, manifest, meta->name, meta->version, out, err, n);
    json_decref(manifest);
    return ok;
}

/* ---- importing a model file --------------------------------------------------- */

/* Copy src into staging/model.onnx: the source may be a pipe, so the copy
 * streams with a bound on the total size. */
static bool copy_into(int src_fd, const char *src_label, staging *st, char *err, size_t n)
{
    char label[4400];
    snprintf(label, sizeof(label), "%s/model.onnx", st->path);
    /* read-only: a stored model never changes in place, and servers map
     * only files nobody may rewrite (models/model_version.c) */
    int out = openat(st->fd, "model.onnx", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0444);
    if (out < 0) {
        snprintf(err, n, "%s: %s", label, strerror(errno));
        return false;
    }
    size_t cap = 1 << 20;
    char *buf = malloc(cap);
    bool ok = buf != NULL;
    uint64_t total = 0;
    if (!ok)
        snprintf(err, n, "out of memory");
    while (ok) {
        ssize_t r = read(src_fd, buf, cap);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(err, n, "%s: read failed: %s", src_label, strerror(errno));
            ok = false;
            break;
        }
        if (r == 0)
            break;
        total += (uint64_t)r;
        if (total > STORE_MODEL_MAX) {
            snprintf(err, n, "%s: larger than the store's limit of %llu bytes", src_label,
                     (unsigned long long)STORE_MODEL_MAX);
            ok = false;
            break;
        }
        for (ssize_t done = 0; ok && done < r;) {
            ssize_t w = write(out, buf + done, (size_t)(r - done));
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                snprintf(err, n, "%s: write failed: %s", label, w < 0 ? strerror(errno) : "no progress");
                ok = false;
            } else {
                done += w;
            }
        }
    }
    free(buf);
    if (ok && fsync(out) != 0) {
        snprintf(err, n, "%s: fsync failed: %s", label, strerror(errno));
        ok = false;
    }
    if (close(out) != 0 && ok) {
        snprintf(err, n, "%s: close failed: %s", label, strerror(errno));
        ok = false;
    }
    return ok;
}

static json_t *load_labels(const char *path, char *err, size_t n)
{
    json_t *labels = load_json_file(path, STORE_SIDE_FILE_MAX, err, n);
    if (labels && !json_is_object(labels)) {
        snprintf(err, n, "%s: labels must be a JSON object {\"0\": \"name\", ...}", path);
        json_decref(labels);
        return NULL;
    }
    return labels;
}

/* requirements.txt / pip freeze: one requirement per line; blank lines
 * and comments dropped. */
static json_t *load_training_env(const char *path, char *err, size_t n)
{
    size_t size;
    char *text = read_file_at(AT_FDCWD, path, STORE_SIDE_FILE_MAX, &size, path, err, n);
    if (!text)
        return NULL;
    if (strlen(text) != size) {
        snprintf(err, n, "%s: not a text file (holds NUL bytes)", path);
        free(text);
        return NULL;
    }
    json_t *lines = json_array();
    char *save = NULL;
    for (char *line = strtok_r(text, "\r\n", &save); line; line = strtok_r(NULL, "\r\n", &save)) {
        while (*line == ' ' || *line == '\t')
            line++;
        size_t len = strlen(line);
        while (len && (line[len - 1] == ' ' || line[len - 1] == '\t'))
            line[--len] = '\0';
        if (!len || line[0] == '#')
            continue;
        json_t *str = json_string(line);
        if (!str) {
            snprintf(err, n, "%s: a line is not valid UTF-8", path);
            json_decref(lines);
            free(text);
            return NULL;
        }
        json_array_append_new(lines, str);
    }
    free(text);
    return lines;
}

bool store_import_file(store *s, const char *model_path, const import_options *o, model_ref *out,
                       char *err, size_t n)
{
    if (!o || !o->name || !store_valid_name(o->name)) {
        explain_name("model name", o && o->name ? o->name : "", err, n);
        return false;
    }
    if (o->version && !store_valid_name(o->version)) {
        explain_name("model version", o->version, err, n);
        return false;
    }
    if (o->version && strcmp(o->version, "latest") == 0) {
        snprintf(err, n, "model version 'latest' is reserved: it names the highest version");
        return false;
    }
    if (o->task && !valid_task(o->task)) {
        snprintf(err, n, "--task '%s': expected classification, regression, clustering or other",
                 o->task);
        return false;
    }
    json_t *labels = NULL, *env = NULL, *golden = NULL, *preprocessing = NULL;
    bool ok = false;
    staging st = {.fd = -1};
    int src = -1;
    if (o->labels_path && !(labels = load_labels(o->labels_path, err, n)))
        goto done;
    if (o->training_env_path && !(env = load_training_env(o->training_env_path, err, n)))
        goto done;
    if (o->samples_path && !(golden = golden_load_samples(o->samples_path, o->rtol, o->atol, err, n)))
        goto done;
    if (o->preprocessing_path &&
        !(preprocessing = load_json_file(o->preprocessing_path, STORE_SIDE_FILE_MAX, err, n)))
        goto done;
    src = open(model_path, O_RDONLY | O_CLOEXEC);
    struct stat sst;
    if (src < 0 || fstat(src, &sst) != 0) {
        snprintf(err, n, "%s: %s", model_path, strerror(errno));
        goto done;
    }
    if (S_ISDIR(sst.st_mode)) {
        snprintf(err, n, "%s: is a directory", model_path);
        goto done;
    }
    if (!staging_create(s, "import", &st, err, n))
        goto done;
    if (!copy_into(src, model_path, &st, err, n))
        goto done;
    if (o->expected_sha256) {
        char sha[65];
        int fd = openat(st.fd, "model.onnx", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        bool read_ok = fd >= 0 && fd_sha256(fd, sha, NULL, model_path, err, n);
        if (fd >= 0)
            close(fd);
        if (!read_ok)
            goto done;
        if (strcasecmp(sha, o->expected_sha256) != 0) {
            snprintf(err, n, "%s: sha256 is %s, expected %s", model_path, sha, o->expected_sha256);
            goto done;
        }
    }
    char source[4200];
    if (!o->source) {
        char *abs = realpath(model_path, NULL);
        snprintf(source, sizeof(source), "file:%s", abs ? abs : model_path);
        free(abs);
    }
    import_meta meta = {.name = o->name, .version = o->version, .task = o->task,
                        .source = o->source ? o->source : source, .labels = labels,
                        .training_env = env, .golden = golden, .display = model_path,
                        .preprocessing = preprocessing, .preprocessing_origin = o->preprocessing_path};
    ok = import_staged(s, &st, &meta, out, err, n);
done:
    if (src >= 0)
        close(src);
    if (st.fd >= 0 || st.name[0])
        staging_remove(s, &st);
    json_decref(labels);
    json_decref(env);
    json_decref(golden);
    json_decref(preprocessing);
    return ok;
}
