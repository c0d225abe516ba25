/*
 * cmd_ctl.c — `inferd ctl`: steer a running server through its repository
 * API (index, load, unload, traffic, status). The URL and the admin token
 * come from flags or INFERD_URL / INFERD_ADMIN_TOKEN; every failure says
 * whether the server could not be reached, refused the token, or refused
 * the request, with the server's own reason.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "server_client.h"

static const char ctl_usage[] =
    "usage: inferd ctl [--url URL] [--token TOKEN] COMMAND\n"
    "commands:\n"
    "  index [--ready]                 every model and version with its state and reason\n"
    "  load NAME [--config FILE]       load or reload NAME from the repository (FILE: a "
    "config.json\n"
    "                                  used instead of the model's own)\n"
    "  unload NAME                     stop serving NAME (requests in flight finish)\n"
    "  traffic NAME V=W [V=W ...]      split NAME's traffic, percent per version (sum 100)\n"
    "  status [NAME]                   versions, weights, rollbacks, shadow agreement, config\n"
    "options:\n"
    "  --url URL       the server (default $INFERD_URL or http://127.0.0.1:8000)\n"
    "  --token TOKEN   its admin token (default $INFERD_ADMIN_TOKEN)\n";

/* Send one call; print what the server said on failure. Returns the
 * parsed JSON body on success (json_null() for an empty one), else NULL. */
static json_t *call(const char *method, const char *url, const char *path, const char *token,
                    const char *body)
{
    server_reply reply;
    char err[4400];
    if (!server_call(method, url, path, token, body, 600, &reply, err, sizeof(err))) {
        cli_fail("ctl: cannot reach the server: %s (is `inferd serve` running there?)", err);
        return NULL;
    }
    json_t *doc = reply.size ? json_loads(reply.body, 0, NULL) : json_null();
    const char *reason = json_string_value(json_object_get(doc, "error"));
    json_t *result = NULL;
    if (reply.status == 200 && doc) {
        result = json_incref(doc);
    } else if (reply.status == 401 || reply.status == 403) {
        cli_fail("ctl: the server refused %s (HTTP %ld): %s",
                 token ? "the admin token" : "the call without a token", reply.status,
                 reason ? reason : "unauthorized");
    } else {
        cli_fail("ctl: %s %s: HTTP %ld: %s", method, path, reply.status,
                 reason ? reason
                 : doc  ? "unexpected answer"
                        : "the answer is not JSON");
    }
    json_decref(doc);
    server_reply_free(&reply);
    return result;
}

static void print_json(const json_t *doc)
{
    char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    puts(text ? text : "null");
    free(text);
}

static int ctl_index(const char *url, const char *token, bool ready)
{
    json_t *index =
        call("POST", url, "/v2/repository/index", token, ready ? "{\"ready\":true}" : "{}");
    if (!index)
        return 1;
    printf("%-24s %-8s %-12s %s\n", "MODEL", "VERSION", "STATE", "REASON");
    size_t i;
    json_t *row;
    json_array_foreach(index, i, row)
    {
        const char *version = json_string_value(json_object_get(row, "version"));
        printf("%-24s %-8s %-12s %s\n", json_string_value(json_object_get(row, "name")),
               version ? version : "-", json_string_value(json_object_get(row, "state")),
               json_string_value(json_object_get(row, "reason"))
                   ? json_string_value(json_object_get(row, "reason"))
                   : "");
    }
    json_decref(index);
    return 0;
}

static bool model_path(char *out, size_t size, const char *name, const char *tail)
{
    for (const char *c = name; *c; c++)
        if (*c == '/' || *c == '?' || *c == '#' || *c == '%' || *c <= ' ')
            return false;
    snprintf(out, size, "/v2/repository/models/%s%s", name, tail);
    return true;
}

static int ctl_load(const char *url, const char *token, const char *name, const char *config_path)
{
    char path[512];
    if (!model_path(path, sizeof(path), name, "/load"))
        return cli_fail("ctl load: '%s' is not a model name", name);
    char *body = NULL;
    if (config_path) {
        size_t size;
        ifd_error e;
        char *text = cli_read_file(config_path, &size, &e);
        if (!text)
            return cli_fail("ctl load: --config: %s", e.message);
        json_error_t je;
        json_t *parsed = json_loads(text, 0, &je);
        if (!parsed) {
            free(text);
            return cli_fail("ctl load: %s: line %d column %d: %s", config_path, je.line, je.column,
                            je.text);
        }
        json_decref(parsed);
        json_t *request = json_pack("{s:{s:s}}", "parameters", "config", text);
        body = json_dumps(request, JSON_COMPACT);
        json_decref(request);
        free(text);
    }
    json_t *answer = call("POST", url, path, token, body ? body : "");
    free(body);
    if (!answer)
        return 1;
    json_decref(answer);
    printf("loaded %s\n", name);
    return 0;
}

static int ctl_unload(const char *url, const char *token, const char *name)
{
    char path[512];
    if (!model_path(path, sizeof(path), name, "/unload"))
        return cli_fail("ctl unload: '%s' is not a model name", name);
    json_t *answer = call("POST", url, path, token, "");
    if (!answer)
        return 1;
    json_decref(answer);
    printf("unloaded %s\n", name);
    return 0;
}

static int ctl_traffic(const char *url, const char *token, const char *name, int n, char **shares)
{
    char path[512];
    if (!model_path(path, sizeof(path), name, "/traffic"))
        return cli_fail("ctl traffic: '%s' is not a model name", name);
    if (n == 0)
        return cli_fail("ctl traffic: give VERSION=PERCENT pairs, e.g. 1=90 2=10");
    json_t *traffic = json_object();
    for (int i = 0; i < n; i++) {
        char *eq = strchr(shares[i], '=');
        char *end;
        errno = 0;
        long weight = eq ? strtol(eq + 1, &end, 10) : -1;
        if (!eq || eq == shares[i] || errno || *end || eq[1] == '\0' || weight < 0 ||
            weight > 100) {
            json_decref(traffic);
            return cli_fail("ctl traffic: '%s': expected VERSION=PERCENT (0 to 100)", shares[i]);
        }
        *eq = '\0';
        json_object_set_new(traffic, shares[i], json_integer(weight));
    }
    json_t *request = json_pack("{s:o}", "traffic", traffic);
    char *body = json_dumps(request, JSON_COMPACT);
    json_decref(request);
    json_t *status = call("POST", url, path, token, body);
    free(body);
    if (!status)
        return 1;
    print_json(status);
    json_decref(status);
    return 0;
}

static int ctl_status(const char *url, const char *token, const char *name)
{
    char path[512] = "/v2/repository/status";
    if (name && !model_path(path, sizeof(path), name, "/status"))
        return cli_fail("ctl status: '%s' is not a model name", name);
    json_t *status = call("GET", url, path, token, NULL);
    if (!status)
        return 1;
    print_json(status);
    json_decref(status);
    return 0;
}

int cmd_ctl(int argc, char **argv)
{
    const char *url = getenv("INFERD_URL"), *token = getenv("INFERD_ADMIN_TOKEN");
    if (!url || !*url)
        url = "http://127.0.0.1:8000";
    if (token && !*token)
        token = NULL;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(ctl_usage, stdout);
            return 0;
        } else if (strcmp(argv[i], "--url") == 0 && i + 1 < argc) {
            url = argv[++i];
        } else if (strcmp(argv[i], "--token") == 0 && i + 1 < argc) {
            token = argv[++i];
        } else {
            fputs(ctl_usage, stderr);
            return cli_fail("ctl: unexpected argument '%s'", argv[i]);
        }
    }
    if (i >= argc) {
        fputs(ctl_usage, stderr);
        return cli_fail("ctl: give a command (index, load, unload, traffic, status)");
    }
    const char *command = argv[i++];
    int rest = argc - i;
    char **args = argv + i;
    if (strcmp(command, "index") == 0 &&
        (rest == 0 || (rest == 1 && strcmp(args[0], "--ready") == 0)))
        return ctl_index(url, token, rest == 1);
    if (strcmp(command, "load") == 0 && rest == 1)
        return ctl_load(url, token, args[0], NULL);
    if (strcmp(command, "load") == 0 && rest == 3 && strcmp(args[1], "--config") == 0)
        return ctl_load(url, token, args[0], args[2]);
    if (strcmp(command, "unload") == 0 && rest == 1)
        return ctl_unload(url, token, args[0]);
    if (strcmp(command, "traffic") == 0 && rest >= 1)
        return ctl_traffic(url, token, args[0], rest - 1, args + 1);
    if (strcmp(command, "status") == 0 && rest <= 1)
        return ctl_status(url, token, rest ? args[0] : NULL);
    fputs(ctl_usage, stderr);
    return cli_fail("ctl: '%s' with these arguments is not a command", command);
}
