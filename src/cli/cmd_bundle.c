/*
 * cmd_bundle.c — the model-in-image pattern's two ends:
 *   `inferd bundle REF -o FILE [--store DIR]` writes one executable that
 *   carries a stored model (src/store/bundle.h), and
 *   cli_bundle_main(), called first thing by main(), makes such an
 *   executable serve its model when it is started with no command: verify
 *   the embedded sha256, load the model from memory (nothing is written to
 *   disk), then run exactly what `inferd serve` runs (golden samples in the
 *   embedded manifest are re-checked at load as for any served model).
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model_version.h"
#include "../store/bundle.h"
#include "../store/store.h"
#include "cli.h"

static const char bundle_usage[] =
    "usage: inferd bundle REF -o FILE [--store DIR]\n"
    "  write one executable that serves the stored model REF (name, name:version or\n"
    "  name:latest): ./FILE with no arguments verifies the embedded sha256 and serves it\n"
    "  on port 8000 ($PORT, or serve's flags: --port N, --host ADDR, ...)\n";

/* Resolve REF in the store at root (NULL: the default store) into dir. */
bool cli_store_model_dir(const char *root, const char *text, model_ref *ref, char *dir,
                         size_t dir_size)
{
    char err[1024];
    store *s = store_open(root, err, sizeof(err));
    if (!s) {
        cli_fail("%s", err);
        return false;
    }
    bool ok = store_parse_ref(text, ref, err, sizeof(err)) &&
              store_resolve(s, ref, dir, dir_size, err, sizeof(err));
    if (!ok)
        cli_fail("%s", err);
    store_close(s);
    return ok;
}

int cmd_bundle(int argc, char **argv)
{
    const char *ref_text = NULL, *out = NULL, *root = NULL;
    for (int i = 1; i < argc; i++) {
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(bundle_usage, stdout);
            return 0;
        } else if ((strcmp(argv[i], "-o") == 0 || strcmp(argv[i], "--output") == 0) && value) {
            out = argv[++i];
        } else if (strcmp(argv[i], "--store") == 0 && value) {
            root = argv[++i];
        } else if (argv[i][0] != '-' && !ref_text) {
            ref_text = argv[i];
        } else {
            fputs(bundle_usage, stderr);
            return cli_fail("bundle: unexpected argument '%s'", argv[i]);
        }
    }
    if (!ref_text || !out) {
        fputs(bundle_usage, stderr);
        return cli_fail("bundle: give a model reference and -o FILE");
    }
    model_ref ref;
    char dir[4096], err[1024];
    if (!cli_store_model_dir(root, ref_text, &ref, dir, sizeof(dir)))
        return 1;
    if (!bundle_write("/proc/self/exe", dir, out, err, sizeof(err)))
        return cli_fail("bundle: %s", err);
    struct stat st;
    bundle_payload p;
    if (stat(out, &st) != 0 || bundle_read(out, &p, err, sizeof(err)) != 1)
        return cli_fail("bundle: %s: cannot read back what was written", out);
    printf("wrote %s (%.1f MiB): %s:%s, model %zu bytes, sha256 %s\n", out,
           (double)st.st_size / (1024.0 * 1024.0), ref.name, ref.version, p.model_size, p.sha256);
    bundle_payload_free(&p);
    return 0;
}

/* Where this executable's bytes are: /proc/self/exe, except when /proc is
 * missing (a bare chroot) or the program was started through the dynamic
 * loader (`ld-linux-x86-64.so.2 ./iris-server`, where /proc/self/exe is the
 * loader): then argv[0], if it names a file. */
static int read_own_payload(const char *argv0, bundle_payload *p, char *path, size_t path_size,
                            char *err, size_t n)
{
    ssize_t len = readlink("/proc/self/exe", path, path_size - 1);
    path[len > 0 ? len : 0] = '\0';
    const char *base = strrchr(path, '/');
    bool via_loader = base && strncmp(base + 1, "ld-", 3) == 0;
    if (len > 0 && !via_loader) {
        int has = bundle_read("/proc/self/exe", p, err, n);
        if (has != 0)
            return has;
    }
    if ((len <= 0 || via_loader) && argv0 && strchr(argv0, '/')) {
        snprintf(path, path_size, "%s", argv0);
        return bundle_read(argv0, p, err, n);
    }
    return 0;
}

bool cli_bundle_main(int argc, char **argv, int *rc)
{
    /* a command (`./iris-server version`, `inventory`...) runs as plain inferd */
    if (argc >= 2 && argv[1][0] != '-')
        return false;
    bundle_payload p;
    char path[4096], err[1024];
    int has = read_own_payload(argv[0], &p, path, sizeof(path), err, sizeof(err));
    if (has == 0)
        return false;
    if (has < 0) {
        *rc = cli_fail("%s", err);
        return true;
    }
    if (!bundle_verify(&p, path, err, sizeof(err))) {
        *rc = cli_fail("%s", err);
        bundle_payload_free(&p);
        return true;
    }
    json_t *manifest = json_loads(p.manifest, 0, NULL);
    const char *name = json_string_value(json_object_get(manifest, "name"));
    const char *version = json_string_value(json_object_get(manifest, "version"));
    model_source source = {.path = path, .name = name ? name : "model", .version = version,
                           .model_data = p.model, .model_size = p.model_size,
                           .labels_text = p.labels, .manifest_text = p.manifest,
                           .origin = "bundle"};
    *rc = cli_serve(argc, argv, &source); /* serve's flags start at argv[1] */
    json_decref(manifest);
    bundle_payload_free(&p);
    return true;
}
