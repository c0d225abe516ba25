/*
 * cmd_image.c — `inferd image REF -o FILE.oci.tar [--tag NAME:TAG]
 * [--store DIR]`: the model-in-image pattern as an OCI image archive,
 * written without Docker: a bundle of REF (cmd_bundle.c) in a temporary
 * folder, then src/store/image.c around it. Load it with
 * `skopeo copy oci-archive:FILE docker-daemon:NAME:TAG`, `podman load`, or
 * unpack it with umoci.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../store/bundle.h"
#include "../store/image.h"
#include "../store/store.h"
#include "cli.h"

static const char image_usage[] =
    "usage: inferd image REF -o FILE.oci.tar [--tag NAME:TAG] [--store DIR]\n"
    "  an OCI image archive holding a bundle of the stored model REF and exactly the\n"
    "  shared libraries it needs; its entrypoint serves the model on port 8000.\n"
    "  --tag   the image's reference name (default: NAME:VERSION of the model)\n";

static void remove_work_dir(const char *dir)
{
    char path[4200];
    static const char *const leftovers[] = {"inferd-server", "layer.tar", "layer.tar.gz"};
    for (size_t i = 0; i < sizeof(leftovers) / sizeof(leftovers[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, leftovers[i]);
        unlink(path);
    }
    rmdir(dir);
}

int cmd_image(int argc, char **argv)
{
    const char *ref_text = NULL, *out = NULL, *root = NULL, *tag = NULL;
    for (int i = 1; i < argc; i++) {
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(image_usage, stdout);
            return 0;
        } else if ((strcmp(argv[i], "-o") == 0 || strcmp(argv[i], "--output") == 0) && value) {
            out = argv[++i];
        } else if (strcmp(argv[i], "--store") == 0 && value) {
            root = argv[++i];
        } else if (strcmp(argv[i], "--tag") == 0 && value) {
            tag = argv[++i];
        } else if (argv[i][0] != '-' && !ref_text) {
            ref_text = argv[i];
        } else {
            fputs(image_usage, stderr);
            return cli_fail("image: unexpected argument '%s'", argv[i]);
        }
    }
    if (!ref_text || !out) {
        fputs(image_usage, stderr);
        return cli_fail("image: give a model reference and -o FILE.oci.tar");
    }
    /* the OCI reference grammar, as umoci and skopeo check it */
    if (tag && (!*tag || strlen(tag) > 128 ||
                strspn(tag, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                            "._-:/@+") != strlen(tag)))
        return cli_fail("image: --tag '%s': use letters, digits and . _ - : / @ + "
                        "(at most 128 characters)", tag);
    model_ref ref;
    char dir[4096], err[2048], default_tag[2 * STORE_NAME_MAX + 2];
    if (!cli_store_model_dir(root, ref_text, &ref, dir, sizeof(dir)))
        return 1;
    if (!tag) {
        snprintf(default_tag, sizeof(default_tag), "%s:%s", ref.name, ref.version);
        tag = default_tag;
    }
    const char *tmp_root = getenv("TMPDIR");
    char work[4096], bundle_path[4200];
    snprintf(work, sizeof(work), "%s/inferd-image-XXXXXX", tmp_root && *tmp_root ? tmp_root : "/tmp");
    if (!mkdtemp(work))
        return cli_fail("image: %s: %s", work, strerror(errno));
    snprintf(bundle_path, sizeof(bundle_path), "%s/inferd-server", work);
    bundle_payload p = {0};
    image_result result;
    bool ok = bundle_write("/proc/self/exe", dir, bundle_path, err, sizeof(err)) &&
              bundle_read(bundle_path, &p, err, sizeof(err)) == 1 &&
              image_write(bundle_path, p.manifest, tag, work, out, &result, err, sizeof(err));
    bundle_payload_free(&p);
    remove_work_dir(work);
    if (!ok)
        return cli_fail("image: %s", err);
    printf("wrote %s (%.1f MiB): %s, tag %s, %zu shared objects, layer %.1f MiB "
           "(%.1f MiB uncompressed), manifest %s\n",
           out, (double)result.archive_size / 1048576.0, ref_text, tag, result.libraries,
           (double)result.layer_size / 1048576.0, (double)result.layer_uncompressed / 1048576.0,
           result.manifest_digest);
    return 0;
}
