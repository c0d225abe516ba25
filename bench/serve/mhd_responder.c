/*
 * mhd_responder.c — the libmicrohttpd floor of the HTTP benchmark
 * (bench/serve/throughput.sh): what libmicrohttpd itself costs per request
 * with the daemon flags and limits `inferd serve` uses (internal epoll
 * polling thread, suspend/resume allowed, the 16 KiB connection memory
 * limit), answering every request with inferd's answer body and its three
 * headers (Content-Type, X-Request-ID, X-Model-Version) built the way
 * inferd builds them. Between this and bench/serve/epoll_responder.c lies
 * what the library costs; between this and inferd, what inferd's own code
 * costs (routing, JSON, inference, logs, metrics). A yardstick, not a
 * server: no routing, no inference.
 *
 *   mhd_responder PORT RESPONSE_FILE
 *
 * RESPONSE_FILE is a whole response inferd sent (as for epoll_responder);
 * only its body and its header values are used.
 */
#include <microhttpd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static char *body;
static size_t body_len;
static char content_type[128] = "application/json", model_version[160] = "model:1";

/* The value of header `name` in the response head `head`, into out. */
static void header_value(const char *head, const char *name, char *out, size_t size)
{
    size_t n = strlen(name);
    for (const char *line = head; line && *line;) {
        if (strncasecmp(line, name, n) == 0 && line[n] == ':') {
            const char *v = line + n + 1;
            while (*v == ' ')
                v++;
            size_t len = strcspn(v, "\r\n");
            if (len >= size)
                len = size - 1;
            memcpy(out, v, len);
            out[len] = '\0';
            return;
        }
        line = strstr(line, "\r\n");
        line = line ? line + 2 : NULL;
    }
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *connection, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    static unsigned long long counter;
    (void)cls;
    (void)url;
    (void)method;
    (void)version;
    (void)upload_data;
    if (!*con_cls) { /* headers read: the body follows */
        *con_cls = connection;
        return MHD_YES;
    }
    if (*upload_data_size) { /* body bytes: read and dropped */
        *upload_data_size = 0;
        return MHD_YES;
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(body_len, body, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    char id[32];
    unsigned long long seq = ++counter;
    snprintf(id, sizeof(id), "%016llx-%06llx", seq * 0x9e3779b97f4a7c15ull, seq & 0xffffff);
    MHD_add_response_header(resp, "Content-Type", content_type);
    MHD_add_response_header(resp, "X-Request-ID", id);
    MHD_add_response_header(resp, "X-Model-Version", model_version);
    enum MHD_Result r = MHD_queue_response(connection, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return r;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: mhd_responder PORT RESPONSE_FILE\n");
        return 64;
    }
    FILE *f = fopen(argv[2], "rb");
    static char whole[1 << 16];
    size_t n = f ? fread(whole, 1, sizeof(whole) - 1, f) : 0;
    if (f)
        fclose(f);
    whole[n] = '\0';
    char *split = strstr(whole, "\r\n\r\n");
    if (!split) {
        fprintf(stderr, "mhd_responder: %s holds no HTTP response\n", argv[2]);
        return 66;
    }
    *split = '\0';
    body = split + 4;
    body_len = n - (size_t)(body - whole);
    header_value(whole, "Content-Type", content_type, sizeof(content_type));
    header_value(whole, "X-Model-Version", model_version, sizeof(model_version));
    signal(SIGPIPE, SIG_IGN);
    unsigned flags =
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC;
    struct MHD_Daemon *d =
        MHD_start_daemon(flags, (uint16_t)atoi(argv[1]), NULL, NULL, on_request, NULL,
                         MHD_OPTION_CONNECTION_LIMIT, 16384u, MHD_OPTION_CONNECTION_TIMEOUT, 30u,
                         MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(16u << 10), MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "mhd_responder: cannot listen on port %s\n", argv[1]);
        return 1;
    }
    for (;;)
        pause();
}
