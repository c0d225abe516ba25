/*
 * cmd_pull.c — `inferd pull URI --name N`: the model-load pattern's fetch
 * step (what a Kubernetes initContainer runs): download a model from http(s),
 * file or s3 into the store, verified and imported like `models import`.
 * With --sha256 of a model the store already holds, nothing is downloaded.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../store/fetch.h"
#include "../store/store.h"
#include "cli.h"

static const char pull_usage[] =
    "usage: inferd pull URI --name NAME [options]\n"
    "  URI: http://..., https://..., file:///PATH or s3://BUCKET/KEY\n"
    "options:\n"
    "  --version V          version to store (default: one more than the highest)\n"
    "  --sha256 HEX         expected sha256; refuse other bytes, skip the download\n"
    "                       when the store already holds them\n"
    "  --store DIR          store root (default $INFERD_HOME, else ~/.local/share/inferd)\n"
    "  --labels FILE        labels.json to store with the model\n"
    "  --task TASK          classification|regression|clustering|other\n"
    "  --training-env FILE  requirements.txt / pip freeze of the training environment\n"
    "  --samples FILE       golden samples the model must reproduce\n"
    "  --retries N          retries after a failed attempt (default 4)\n"
    "environment (s3): AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN,\n"
    "  AWS_REGION / AWS_DEFAULT_REGION, AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL\n";

static void print_notice(void *context, const char *message)
{
    (void)context;
    fprintf(stderr, "inferd: %s\n", message);
}

int cmd_pull(int argc, char **argv)
{
    const char *uri = NULL, *root = NULL;
    import_options import = {0};
    long retries = 4;
    for (int i = 1; i < argc; i++) {
        const char *flag = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(flag, "-h") == 0 || strcmp(flag, "--help") == 0) {
            fputs(pull_usage, stdout);
            return 0;
        } else if (strcmp(flag, "--name") == 0 && value) {
            import.name = argv[++i];
        } else if (strcmp(flag, "--version") == 0 && value) {
            import.version = argv[++i];
        } else if (strcmp(flag, "--sha256") == 0 && value) {
            import.expected_sha256 = argv[++i];
        } else if (strcmp(flag, "--store") == 0 && value) {
            root = argv[++i];
        } else if (strcmp(flag, "--labels") == 0 && value) {
            import.labels_path = argv[++i];
        } else if (strcmp(flag, "--task") == 0 && value) {
            import.task = argv[++i];
        } else if (strcmp(flag, "--training-env") == 0 && value) {
            import.training_env_path = argv[++i];
        } else if (strcmp(flag, "--samples") == 0 && value) {
            import.samples_path = argv[++i];
        } else if (strcmp(flag, "--retries") == 0 && value) {
            char *end;
            errno = 0;
            retries = strtol(argv[++i], &end, 10);
            if (errno || *end || retries < 0 || retries > 99)
                return cli_fail("--retries: expected a whole number from 0 to 99, got '%s'",
                                argv[i]);
        } else if (flag[0] != '-' && !uri) {
            uri = flag;
        } else {
            fputs(pull_usage, stderr);
            return cli_fail("pull: unexpected argument '%s'", flag);
        }
    }
    if (!uri || !import.name) {
        fputs(pull_usage, stderr);
        return cli_fail("pull: give a URI and --name NAME");
    }
    char err[2048], sha[65];
    if (!store_valid_name(import.name))
        return cli_fail(
            "--name: '%s' is not a valid model name (lowercase letters, digits, '.', '_', '-', "
            "starting and ending with a letter or digit, at most %d characters)",
            import.name, STORE_NAME_MAX);
    if (import.version && !store_valid_name(import.version))
        return cli_fail("--version: '%s' is not a valid version (same grammar as names)",
                        import.version);
    if (import.expected_sha256 && !fetch_parse_sha256(import.expected_sha256, sha))
        return cli_fail("--sha256: expected 64 hexadecimal digits, got '%s'",
                        import.expected_sha256);
    if (!fetch_check_uri(uri, err, sizeof(err)))
        return cli_fail("%s", err);

    store *s = store_open(root, err, sizeof(err));
    if (!s)
        return cli_fail("%s", err);
    fetch_options fetch = {
        .max_attempts = (int)retries + 1,
        .progress = isatty(STDERR_FILENO) ? stderr : NULL,
        .notice = print_notice,
    };
    pull_result pulled;
    bool ok = store_pull(s, uri, &import, &fetch, &pulled, err, sizeof(err));
    char shown[2048];
    fetch_redact_uri(uri, shown, sizeof(shown));
    if (!ok) {
        store_close(s);
        return cli_fail("pull: %s", err);
    }
    if (pulled.cache_hit)
        printf("cache hit: the store already holds sha256 %s; nothing downloaded\n", pulled.sha256);
    else if (pulled.already_stored)
        printf("downloaded %llu bytes from %s; %s:%s already holds them\n", pulled.fetch.bytes,
               shown, pulled.ref.name, pulled.ref.version);
    else
        printf("downloaded %llu bytes from %s (%d attempt%s)\n", pulled.fetch.bytes, shown,
               pulled.fetch.attempts, pulled.fetch.attempts == 1 ? "" : "s");
    printf("stored %s:%s sha256 %s in %s\n", pulled.ref.name, pulled.ref.version, pulled.sha256,
           store_root(s));
    store_close(s);
    return 0;
}
