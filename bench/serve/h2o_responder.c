/*
 * h2o_responder.c — the libh2o-evloop yardstick of the HTTP benchmark
 * (bench/serve/throughput.sh), asked for by issue 15: "if libmicrohttpd
 * itself is the floor, measure it against a leaner well-kept event loop".
 * h2o's own event loop (Debian's libh2o-evloop, h2o 2.2) on one thread,
 * HTTP/1.1 keep-alive, answering every request with inferd's answer body
 * and its three headers (Content-Type, X-Request-ID, X-Model-Version) as
 * bench/serve/mhd_responder.c does, so the two libraries are compared on
 * the same work: parse a request, read its body, build and send a
 * response. h2o adds a Date header (as libmicrohttpd does); its Server
 * header is turned off. A yardstick, not a server: no routing, no
 * inference.
 *
 *   h2o_responder PORT RESPONSE_FILE
 *
 * RESPONSE_FILE is a whole response inferd sent (as for epoll_responder);
 * only its body and its header values are used.
 */
#define _GNU_SOURCE      /* h2o's headers use struct addrinfo */
#define H2O_USE_LIBUV 0  /* h2o's own event loop, not libuv */
#include <h2o.h>
#include <h2o/socket/evloop.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

static char *body;
static size_t body_len;
static char content_type[128] = "application/json", model_version[160] = "model:1";

static h2o_globalconf_t config;
static h2o_context_t context;
static h2o_accept_ctx_t accept_context;

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

/* h2o has read the whole request (its body included) when it calls this. */
static int on_request(h2o_handler_t *self, h2o_req_t *req)
{
    static unsigned long long counter;
    (void)self;
    char *id = h2o_mem_alloc_pool(&req->pool, 32);
    unsigned long long seq = ++counter;
    int id_len = snprintf(id, 32, "%016llx-%06llx", seq * 0x9e3779b97f4a7c15ull, seq & 0xffffff);
    req->res.status = 200;
    req->res.reason = "OK";
    req->res.content_length = body_len; /* else h2o answers chunked */
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type,
                   strlen(content_type));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-request-id"), 0, NULL, id,
                          (size_t)id_len);
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-model-version"), 0, NULL,
                          model_version, strlen(model_version));
    h2o_send_inline(req, body, body_len);
    return 0;
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    if (err)
        return;
    h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
    if (sock)
        h2o_accept(&accept_context, sock);
}

static int listen_on(h2o_evloop_t *loop, unsigned short port)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port),
                               .sin_addr.s_addr = htonl(0x7f000001)};
    int fd = socket(AF_INET, SOCK_STREAM, 0), on = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 || listen(fd, SOMAXCONN) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    h2o_socket_t *sock = h2o_evloop_socket_create(loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    h2o_socket_read_start(sock, on_accept);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: h2o_responder PORT RESPONSE_FILE\n");
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
        fprintf(stderr, "h2o_responder: %s holds no HTTP response\n", argv[2]);
        return 66;
    }
    *split = '\0';
    body = split + 4;
    body_len = n - (size_t)(body - whole);
    header_value(whole, "Content-Type", content_type, sizeof(content_type));
    header_value(whole, "X-Model-Version", model_version, sizeof(model_version));
    signal(SIGPIPE, SIG_IGN);

    h2o_config_init(&config);
    config.server_name = h2o_iovec_init(H2O_STRLIT("")); /* no Server header: inferd sends none */
    h2o_hostconf_t *host = h2o_config_register_host(&config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    h2o_handler_t *handler = h2o_create_handler(path, sizeof(*handler));
    handler->on_req = on_request;

    h2o_evloop_t *loop = h2o_evloop_create();
    h2o_context_init(&context, loop, &config);
    accept_context.ctx = &context;
    accept_context.hosts = config.hosts;
    if (listen_on(loop, (unsigned short)atoi(argv[1])) != 0) {
        fprintf(stderr, "h2o_responder: cannot listen on port %s\n", argv[1]);
        return 1;
    }
    /* a signal (valgrind's callgrind_control, for one) interrupts epoll_wait: go on */
    while (h2o_evloop_run(loop, INT32_MAX) == 0 || errno == EINTR)
        ;
    return 1;
}
