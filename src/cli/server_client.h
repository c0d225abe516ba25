/*
 * server_client.h — the CLI's client of a running inferd server (libcurl):
 * one call sends a request and returns the status and the body, so
 * `inventory --url` and `ctl` read servers the same way.
 */
#ifndef INFERD_CLI_SERVER_CLIENT_H
#define INFERD_CLI_SERVER_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

typedef struct server_reply {
    long status; /* HTTP status; 0 when no answer came */
    char *body;  /* malloc'd, NUL-terminated (may be empty) */
    size_t size;
} server_reply;

/* METHOD base_url + path, with "Authorization: Bearer token" when token is
 * given and a JSON body when body is. False with err (the URL and the
 * transport's reason: refused, timed out, ...) when no answer came. */
bool server_call(const char *method, const char *base_url, const char *path, const char *token,
                 const char *body, long timeout_seconds, server_reply *reply, char *err,
                 size_t err_size);
void server_reply_free(server_reply *reply);

#endif /* INFERD_CLI_SERVER_CLIENT_H */
