/*
 * inventory.c — builds the inventory described in inventory.h and answers
 * GET /v2/inventory. Libraries are not listed from a table of what inferd
 * was meant to link but from the dynamic loader's own list of what this
 * process runs with (dl_iterate_phdr), and each library is asked for its
 * version through its own version function when it has one (dlsym on the
 * already loaded object), so the answer holds for the binary as deployed,
 * not as built. Libraries without such a function report the version their
 * file name carries (libffi.so.8.1.2 -> 8.1.2).
 */
#include "inventory.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "http.h"
#include "inferd/inferd.h"
#include "routes.h"
#include "server.h"

/* How a library tells its version. */
typedef enum version_call {
    CALL_VOID,      /* const char *f(void) */
    CALL_INT_ZERO,  /* const char *f(int), asked with 0 (OpenSSL_version) */
    CALL_NULL_STR,  /* const char *f(const char *), asked with NULL (*_check_version) */
    READ_STRING,    /* const char *variable */
} version_call;

typedef struct known_library {
    const char *prefix;   /* file name prefix, up to ".so" */
    const char *name;     /* what the inventory calls it */
    const char *symbol;
    version_call call;
} known_library;

static const known_library known[] = {
    {"libc.so", "glibc", "gnu_get_libc_version", CALL_VOID},
    {"libm.so", "glibc (libm)", "gnu_get_libc_version", CALL_VOID},
    {"libpthread.so", "glibc (libpthread)", "gnu_get_libc_version", CALL_VOID},
    {"libdl.so", "glibc (libdl)", "gnu_get_libc_version", CALL_VOID},
    {"ld-linux", "glibc (dynamic loader)", "gnu_get_libc_version", CALL_VOID},
    {"libmicrohttpd.so", "libmicrohttpd", "MHD_get_version", CALL_VOID},
    {"libjansson.so", "jansson", "jansson_version_str", CALL_VOID},
    {"libprotobuf-c.so", "protobuf-c", "protobuf_c_version", CALL_VOID},
    {"libcrypto.so", "OpenSSL (libcrypto)", "OpenSSL_version", CALL_INT_ZERO},
    {"libssl.so", "OpenSSL (libssl)", "OpenSSL_version", CALL_INT_ZERO},
    {"libcurl.so", "libcurl", "curl_version", CALL_VOID},
    {"libarchive.so", "libarchive", "archive_version_details", CALL_VOID},
    {"libz.so", "zlib", "zlibVersion", CALL_VOID},
    {"libopenblas", "OpenBLAS", "openblas_get_config", CALL_VOID},
    {"libgnutls.so", "GnuTLS", "gnutls_check_version", CALL_NULL_STR},
    {"libidn2.so", "libidn2", "idn2_check_version", CALL_NULL_STR},
    {"libtasn1.so", "libtasn1", "asn1_check_version", CALL_NULL_STR},
    {"libgmp.so", "GMP", "__gmp_version", READ_STRING},
    {"libnghttp2.so", "nghttp2", NULL, CALL_VOID},
    {"liblzma.so", "xz (liblzma)", "lzma_version_string", CALL_VOID},
    {"libzstd.so", "zstd", "ZSTD_versionString", CALL_VOID},
    {"libbz2.so", "bzip2", "BZ2_bzlibVersion", CALL_VOID},
    {"libxml2.so", "libxml2", NULL, CALL_VOID},
    {"libssh2.so", "libssh2", "libssh2_version", CALL_INT_ZERO},
    {"libgomp.so", "GCC OpenMP (libgomp)", NULL, CALL_VOID},
    {"libgfortran.so", "GCC Fortran runtime", NULL, CALL_VOID},
};

/* Ask a loaded library for its version. The symbol's address is turned
 * into a function pointer through memcpy: dlsym returns void *. Each
 * library is asked once per process and the answer kept: the strings are
 * the libraries' own, never freed, and Debian's libarchive 3.6.2 leaks
 * 128 bytes on every archive_version_details() call after the first, which
 * a dashboard polling /v2/inventory would turn into a steady leak. */
static const char *ask_version_uncached(void *handle, const known_library *k);

static const char *ask_version(void *handle, const known_library *k)
{
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    static const char *answers[sizeof(known) / sizeof(known[0])];
    static bool asked[sizeof(known) / sizeof(known[0])];
    size_t i = (size_t)(k - known);
    pthread_mutex_lock(&lock);
    if (!asked[i]) {
        answers[i] = ask_version_uncached(handle, k);
        asked[i] = true;
    }
    const char *v = answers[i];
    pthread_mutex_unlock(&lock);
    return v;
}

static const char *ask_version_uncached(void *handle, const known_library *k)
{
    if (!k->symbol)
        return NULL;
    void *address = dlsym(handle, k->symbol);
    if (!address)
        return NULL;
    const char *v = NULL;
    switch (k->call) {
    case CALL_VOID: {
        const char *(*f)(void);
        memcpy(&f, &address, sizeof(f));
        v = f();
        break;
    }
    case CALL_INT_ZERO: {
        const char *(*f)(int);
        memcpy(&f, &address, sizeof(f));
        v = f(0);
        break;
    }
    case CALL_NULL_STR: {
        const char *(*f)(const char *);
        memcpy(&f, &address, sizeof(f));
        v = f(NULL);
        break;
    }
    case READ_STRING:
        v = *(const char *const *)address;
        break;
    }
    return v;
}

/* "8.1.2" from ".../libffi.so.8.1.2" (after resolving symlinks), or NULL. */
static const char *version_from_file_name(const char *file, char *buf, size_t size)
{
    char real[PATH_MAX];
    const char *path = realpath(file, real) ? real : file;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *so = strstr(base, ".so.");
    if (so) {
        snprintf(buf, size, "%s", so + 4);
        return buf;
    }
    /* ld-linux-x86-64.so.2 style names carry only the ABI number */
    return NULL;
}

typedef struct library_walk {
    json_t *list;
} library_walk;

static int add_library(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    library_walk *walk = data;
    const char *file = info->dlpi_name;
    if (!file || !*file || !strchr(file, '/'))
        return 0; /* the executable itself, and the kernel's vDSO */
    const char *base = strrchr(file, '/') + 1;
    const known_library *k = NULL;
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]) && !k; i++)
        if (strncmp(base, known[i].prefix, strlen(known[i].prefix)) == 0)
            k = &known[i];
    char name[256], from_file[128];
    snprintf(name, sizeof(name), "%s", k ? k->name : base);
    if (!k) {
        char *so = strstr(name, ".so");
        if (so)
            *so = '\0';
    }
    const char *version = NULL, *from = "library";
    void *handle = dlopen(file, RTLD_LAZY | RTLD_NOLOAD);
    if (handle && k)
        version = ask_version(handle, k);
    if (handle)
        dlclose(handle);
    if (!version || !*version) {
        version = version_from_file_name(file, from_file, sizeof(from_file));
        from = "file name";
    }
    json_array_append_new(walk->list, json_pack("{s:s, s:s?, s:s, s:s}", "name", name, "version",
                                                version, "file", file, "version_from",
                                                version ? from : "unknown"));
    return 0;
}

json_t *inventory_libraries(void)
{
    library_walk walk = {.list = json_array()};
    dl_iterate_phdr(add_library, &walk);
    return walk.list;
}

void inventory_format_time(double unix_time, char *out, size_t size)
{
    time_t t = (time_t)unix_time;
    struct tm tm;
    if (!gmtime_r(&t, &tm) || !strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(out, size, "unknown");
}

/* PRETTY_NAME of /etc/os-release, when the system has one (a minimal image
 * does not). */
static json_t *os_pretty_name(void)
{
    FILE *f = fopen("/etc/os-release", "r");
    if (!f)
        f = fopen("/usr/lib/os-release", "r");
    if (!f)
        return json_null();
    char line[512];
    json_t *name = NULL;
    while (!name && fgets(line, sizeof(line), f)) {
        if (strncmp(line, "PRETTY_NAME=", 12) != 0)
            continue;
        char *v = line + 12;
        v[strcspn(v, "\r\n")] = '\0';
        size_t len = strlen(v);
        if (len >= 2 && (v[0] == '"' || v[0] == '\'') && v[len - 1] == v[0]) {
            v[len - 1] = '\0';
            v++;
        }
        name = json_string(v);
    }
    fclose(f);
    return name ? name : json_null();
}

static const char *compiler(char *buf, size_t size)
{
#if defined(__clang__)
    snprintf(buf, size, "clang %s", __clang_version__);
#elif defined(__GNUC__)
    snprintf(buf, size, "gcc %s", __VERSION__);
#else
    snprintf(buf, size, "unknown C compiler");
#endif
    return buf;
}

json_t *inventory_runtime(double started_wall)
{
    struct utsname u;
    bool have_uname = uname(&u) == 0;
    char started[64], cc[160], exe[PATH_MAX];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    double now_wall = (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
    inventory_format_time(started_wall, started, sizeof(started));
    ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    exe[len > 0 ? len : 0] = '\0';
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    json_t *host = json_pack("{s:s?, s:{s:s?, s:s?, s:s?, s:o}, s:s?, s:I}", "hostname",
                             have_uname ? u.nodename : NULL, "os", "kernel",
                             have_uname ? u.sysname : NULL, "release",
                             have_uname ? u.release : NULL, "version",
                             have_uname ? u.version : NULL, "distribution", os_pretty_name(),
                             "machine", have_uname ? u.machine : NULL, "cpus",
                             (json_int_t)(cores > 0 ? cores : 0));
    json_t *build = json_pack("{s:s, s:s, s:s, s:o}", "compiler", compiler(cc, sizeof(cc)),
                              "c_standard", "C11", "optimized",
#ifdef NDEBUG
                              "yes (NDEBUG)",
#else
                              "no (assertions on)",
#endif
                              "libraries", inventory_libraries());
    return json_pack("{s:o, s:{s:s, s:s}, s:o, s:{s:I, s:s?, s:s, s:f}}", "host", host, "inferd",
                     "version", IFD_VERSION_STRING, "engine_version", IFD_VERSION_STRING, "build",
                     build, "process", "pid", (json_int_t)getpid(), "executable",
                     exe[0] ? exe : NULL, "started", started, "uptime_seconds",
                     now_wall - started_wall);
}

bool inventory_file_sha256(const char *path, char hex[65])
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    unsigned char buf[1 << 16];
    for (;;) {
        ssize_t got = ok ? read(fd, buf, sizeof(buf)) : 0;
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            ok = false;
        if (got <= 0)
            break;
        ok = EVP_DigestUpdate(ctx, buf, (size_t)got);
    }
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    ok = ok && EVP_DigestFinal_ex(ctx, digest, &len) && len == 32;
    EVP_MD_CTX_free(ctx);
    close(fd);
    for (unsigned i = 0; ok && i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    return ok;
}

/* Copy a manifest field when it is there (null otherwise). */
static void take(json_t *entry, const json_t *manifest, const char *key)
{
    json_t *v = json_object_get(manifest, key);
    json_object_set(entry, key, v ? v : json_null());
}

json_t *inventory_model_from_manifest(const json_t *manifest)
{
    json_t *entry = json_object();
    static const char *const fields[] = {"name", "version", "created", "sha256", "size",
                                         "task", "signature", "opsets", "ir_version",
                                         "producer", "training_environment"};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        take(entry, manifest, fields[i]);
    const json_t *golden = json_object_get(manifest, "golden_samples");
    const json_t *samples = json_object_get(golden, "samples");
    if (json_is_array(samples))
        json_object_set_new(entry, "golden_samples",
                            json_pack("{s:I, s:O?, s:O?}", "count",
                                      (json_int_t)json_array_size(samples), "rtol",
                                      json_object_get(golden, "rtol"), "atol",
                                      json_object_get(golden, "atol")));
    else
        json_object_set_new(entry, "golden_samples", json_null());
    return entry;
}

/* "float32", [1, "batch", null] as the manifest writes signatures. */
static json_t *io_json(const ifd_io_info *io)
{
    const ifd_type_info *t = &io->type;
    /* an unknown rank (a sequence of maps, ...) has no shape: null */
    json_t *shape = t->rank < 0 ? json_null() : json_array();
    for (int i = 0; i < t->rank; i++)
        json_array_append_new(shape, t->dims[i] >= 0 ? json_integer(t->dims[i])
                                     : t->dim_params[i] ? json_string(t->dim_params[i])
                                                        : json_null());
    const char *kind = t->kind == IFD_VALUE_SEQUENCE   ? "sequence"
                       : t->kind == IFD_VALUE_MAP      ? "map"
                       : t->kind == IFD_VALUE_OPTIONAL ? "optional"
                                                       : "tensor";
    return json_pack("{s:s, s:s, s:s, s:o}", "name", io->name, "kind", kind, "dtype",
                     ifd_dtype_name(t->dtype), "shape", shape);
}

json_t *inventory_served_model(const model_version *m)
{
    const json_t *manifest = m->manifest;
    bool beside = m->manifest_beside;
    json_t *entry = inventory_model_from_manifest(manifest);
    json_object_set_new(entry, "name", json_string(m->name));
    json_object_set_new(entry, "version", json_string(m->version));

    /* the source: how this server got the model */
    bool bundled = m->origin && strcmp(m->origin, "bundle") == 0;
    const char *kind = bundled ? "bundle" : m->origin ? "uri" : beside ? "store" : "file";
    const json_t *recorded = json_object_get(manifest, "source");
    json_object_set_new(entry, "source",
                        json_pack("{s:s, s:s, s:O?}", "kind", kind, "location",
                                  m->origin && !bundled ? m->origin : m->path, "recorded",
                                  recorded));

    /* what is true of the bytes loaded: hashed as they were read */
    if (!bundled && m->sha256[0]) {
        json_object_set_new(entry, "sha256", json_string(m->sha256));
        json_object_set_new(entry, "size", json_integer((json_int_t)m->fingerprint.size));
    }
    char loaded_at[64];
    inventory_format_time(m->loaded_at, loaded_at, sizeof(loaded_at));
    json_object_set_new(entry, "loaded_at", json_string(loaded_at));
    json_t *inputs = json_array(), *outputs = json_array(), *opsets = json_object();
    for (size_t i = 0; i < ifd_model_input_count(m->model); i++)
        json_array_append_new(inputs, io_json(ifd_model_input(m->model, i)));
    for (size_t i = 0; i < ifd_model_output_count(m->model); i++)
        json_array_append_new(outputs, io_json(ifd_model_output(m->model, i)));
    for (size_t i = 0; i < ifd_model_opset_count(m->model); i++) {
        ifd_opset o = ifd_model_opset(m->model, i);
        json_object_set_new(opsets, o.domain && *o.domain ? o.domain : "ai.onnx",
                            json_integer(o.version));
    }
    json_object_set_new(entry, "signature",
                        json_pack("{s:o, s:o}", "inputs", inputs, "outputs", outputs));
    json_object_set_new(entry, "opsets", opsets);
    json_object_set_new(entry, "ir_version", json_integer(ifd_model_ir_version(m->model)));
    json_object_set_new(entry, "producer",
                        json_pack("{s:s?, s:s?}", "name", ifd_model_producer_name(m->model),
                                  "version", ifd_model_producer_version(m->model)));
    json_t *golden = json_object_get(entry, "golden_samples");
    if (json_is_object(golden))
        json_object_set_new(golden, "status",
                            json_string(m->golden_status ? m->golden_status : "not checked"));
    json_object_set_new(entry, "labels", m->labels ? json_integer((json_int_t)json_object_size(
                                                         m->labels))
                                                   : json_null());
    json_object_set_new(entry, "ready", json_boolean(m->ready));
    json_object_set_new(entry, "load_seconds", json_real(m->load_seconds));
    return entry;
}

void v2_inventory(http_request *req, const route_params *p, int worker)
{
    (void)p;
    (void)worker;
    const server *srv = req->server;
    json_t *inventory = inventory_runtime(srv->started_wall);
    json_t *models = json_array();
    model_set_read_lock(srv->models);
    for (size_t i = 0; i < model_set_count(srv->models); i++) {
        const model_entry *e = model_set_entry(srv->models, i);
        for (size_t k = 0; k < e->n_versions; k++) {
            json_t *entry = inventory_served_model(e->versions[k]);
            json_object_set_new(entry, "weight", json_integer(model_entry_share(e, k)));
            json_object_set_new(entry, "state", json_string(e->versions[k]->ready ? "READY" : "UNAVAILABLE"));
            if (e->rolled_back[k][0])
                json_object_set_new(entry, "rolled_back", json_string(e->rolled_back[k]));
            json_array_append_new(models, entry);
        }
    }
    model_set_read_unlock(srv->models);
    json_object_set_new(inventory, "models", models);
    http_reply_json(req, 200, inventory);
}
