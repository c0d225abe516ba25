/*
 * server_client.c — requests to a running inferd server (see server_client.h).
 */
#include "server_client.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_REPLY_BYTES (64u << 20)

static size_t collect(char *data, size_t size, size_t count, void *context)
{
    server_reply *r = context;
    size_t n = size * count;
    if (r->size + n > MAX_REPLY_BYTES)
        return 0; /* refuse to buffer without bound */
    char *grown = realloc(r->body, r->size + n + 1);
    if (!grown)
        return 0;
    memcpy(grown + r->size, data, n);
    r->body = grown;
    r->size += n;
    r->body[r->size] = '\0';
    return n;
}

bool server_call(const char *method, const char *base_url, const char *path, const char *token,
                 const char *body, long timeout_seconds, server_reply *reply, char *err, size_t n)
{
    memset(reply, 0, sizeof(*reply));
    char url[4096];
    size_t len = strlen(base_url);
    while (len > 0 && base_url[len - 1] == '/')
        len--;
    snprintf(url, sizeof(url), "%.*s%s", (int)len, base_url, path);
    CURL *curl = curl_easy_init();
    if (!curl) {
        snprintf(err, n, "cannot start libcurl");
        return false;
    }
    struct curl_slist *headers = NULL;
    char auth[600];
    if (token) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
        headers = curl_slist_append(headers, auth);
    }
    if (body)
        headers = curl_slist_append(headers, "Content-Type: application/json");
    char error[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    if (body || strcmp(method, "POST") == 0) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    }
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, reply);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, timeout_seconds);
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
    CURLcode rc = curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &reply->status);
    curl_easy_cleanup(curl);
    curl_slist_free_all(headers);
    if (rc != CURLE_OK) {
        snprintf(err, n, "%s: %s", url, error[0] ? error : curl_easy_strerror(rc));
        server_reply_free(reply);
        return false;
    }
    if (!reply->body && !(reply->body = calloc(1, 1))) {
        snprintf(err, n, "out of memory");
        return false;
    }
    return true;
}

void server_reply_free(server_reply *reply)
{
    free(reply->body);
    reply->body = NULL;
    reply->size = 0;
}
