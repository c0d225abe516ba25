/*
 * cmd_inventory.c — `inferd inventory [--url URL] [--store DIR]`: the
 * inventory of a running server (GET URL/v2/inventory, printed as is) or,
 * without --url, of this host and its local store: the same host, version
 * and library fields, and one entry per stored model whose sha256 is
 * recomputed from the file rather than copied from the manifest.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../serve/inventory.h"
#include "../store/store.h"
#include "cli.h"
#include "server_client.h"

static const char inventory_usage[] =
    "usage: inferd inventory [--url URL] [--store DIR]\n"
    "  --url URL   ask a running server (GET URL/v2/inventory)\n"
    "  --store DIR describe this host and the store at DIR (default: $INFERD_HOME)\n";

static int remote_inventory(const char *url)
{
    server_reply reply;
    char err[4400];
    if (!server_call("GET", url, "/v2/inventory", NULL, NULL, 30, &reply, err, sizeof(err)))
        return cli_fail("inventory: %s", err);
    int result = 0;
    json_t *doc = json_loads(reply.body, 0, NULL);
    if (reply.status != 200 || !json_is_object(doc))
        result = cli_fail("inventory: %s/v2/inventory: HTTP %ld, %s", url, reply.status,
                          doc ? "not an inventory" : "not JSON");
    else {
        char *text = json_dumps(doc, JSON_INDENT(2));
        puts(text ? text : "{}");
        free(text);
    }
    json_decref(doc);
    server_reply_free(&reply);
    return result;
}

static const char *text_of(const json_t *v) { return json_is_string(v) ? json_string_value(v) : ""; }

static int local_inventory(const char *root)
{
    char err[1024];
    store *s = store_open(root, err, sizeof(err));
    if (!s)
        return cli_fail("%s", err);
    json_t *manifests = store_list(s, err, sizeof(err));
    if (!manifests) {
        store_close(s);
        return cli_fail("%s", err);
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    json_t *inventory = inventory_runtime((double)now.tv_sec + (double)now.tv_nsec * 1e-9);
    json_t *models = json_array();
    size_t i;
    json_t *manifest;
    json_array_foreach(manifests, i, manifest) {
        json_t *entry = inventory_model_from_manifest(manifest);
        model_ref ref = {{0}, {0}};
        char dir[4096], path[4200], sha[65];
        snprintf(ref.name, sizeof(ref.name), "%s",
                 text_of(json_object_get(manifest, "name")));
        snprintf(ref.version, sizeof(ref.version), "%s",
                 text_of(json_object_get(manifest, "version")));
        bool found = store_resolve(s, &ref, dir, sizeof(dir), err, sizeof(err));
        snprintf(path, sizeof(path), "%s/model.onnx", dir);
        if (found && file_sha256(path, sha, err, sizeof(err)))
            json_object_set_new(entry, "sha256", json_string(sha));
        else
            json_object_set_new(entry, "error", json_string(err));
        json_object_set_new(entry, "source",
                            json_pack("{s:s, s:s, s:O?}", "kind", "store", "location",
                                      found ? dir : store_root(s), "recorded",
                                      json_object_get(manifest, "source")));
        json_t *golden = json_object_get(entry, "golden_samples");
        if (json_is_object(golden))
            json_object_set_new(golden, "status", json_string("passed at import"));
        json_array_append_new(models, entry);
    }
    json_object_set_new(inventory, "store", json_string(store_root(s)));
    json_object_set_new(inventory, "models", models);
    char *text = json_dumps(inventory, JSON_INDENT(2));
    puts(text ? text : "{}");
    free(text);
    json_decref(inventory);
    json_decref(manifests);
    store_close(s);
    return 0;
}

int cmd_inventory(int argc, char **argv)
{
    const char *url = NULL, *root = NULL;
    for (int i = 1; i < argc; i++) {
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(inventory_usage, stdout);
            return 0;
        } else if (strcmp(argv[i], "--url") == 0 && value) {
            url = argv[++i];
        } else if (strcmp(argv[i], "--store") == 0 && value) {
            root = argv[++i];
        } else {
            fputs(inventory_usage, stderr);
            return cli_fail("inventory: unexpected argument '%s'", argv[i]);
        }
    }
    return url ? remote_inventory(url) : local_inventory(root);
}
