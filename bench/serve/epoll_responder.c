/*
 * epoll_responder.c — the floor of the HTTP benchmark (bench/serve/throughput.sh):
 * a bare HTTP/1.1 keep-alive server on one epoll loop and one thread that
 * answers every request with the same bytes, read from a file holding a
 * whole response (status line, headers and body) that inferd sent. It does
 * what any server must do per request — read, find the end of the headers,
 * honour Content-Length, write the answer — and nothing else, so its CPU
 * time per request is what the kernel's TCP and the system calls cost. No
 * routing, no JSON, no inference: it is a yardstick, not a server.
 *
 *   epoll_responder PORT RESPONSE_FILE
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_EVENTS 256
#define IN_CAP 65536

typedef struct connection {
    int fd;
    size_t in_len;
    char in[IN_CAP];
} connection;

static char *answer;
static size_t answer_len;

/* Length of the first complete request in c->in, 0 while it is incomplete,
 * -1 when it can never complete (headers too large). Pipelined requests
 * are taken one after the other. */
static long complete_request(const connection *c)
{
    const char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
    if (!end)
        return c->in_len == IN_CAP ? -1 : 0;
    size_t head = (size_t)(end - c->in) + 4, body = 0;
    for (const char *line = c->in; line < end;) {
        const char *eol = memmem(line, (size_t)(end - line) + 2, "\r\n", 2);
        if (eol - line > 15 && strncasecmp(line, "Content-Length:", 15) == 0)
            body = strtoul(line + 15, NULL, 10);
        line = eol + 2;
    }
    if (head + body > IN_CAP)
        return -1;
    return c->in_len >= head + body ? (long)(head + body) : 0;
}

static void drop(int epoll, connection *c)
{
    epoll_ctl(epoll, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c);
}

/* Read what is there, answer every complete request with one write. */
static void serve(int epoll, connection *c)
{
    char out[64 * 1024];
    for (;;) {
        size_t room = IN_CAP - c->in_len;
        ssize_t got = read(c->fd, c->in + c->in_len, IN_CAP - c->in_len);
        if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
            drop(epoll, c);
            return;
        }
        if (got < 0)
            return;
        c->in_len += (size_t)got;
        size_t out_len = 0;
        long n;
        while ((n = complete_request(c)) > 0) {
            if (out_len + answer_len > sizeof(out)) {
                if (write(c->fd, out, out_len) != (ssize_t)out_len) {
                    drop(epoll, c);
                    return;
                }
                out_len = 0;
            }
            memcpy(out + out_len, answer, answer_len);
            out_len += answer_len;
            memmove(c->in, c->in + n, c->in_len - (size_t)n);
            c->in_len -= (size_t)n;
        }
        /* a client that reads its answers keeps the socket buffer drained:
         * a short write here means it does not, and is dropped */
        if (n < 0 || (out_len && write(c->fd, out, out_len) != (ssize_t)out_len)) {
            drop(epoll, c);
            return;
        }
        if ((size_t)got < room)
            return; /* a short read drained the socket: the next byte is a new edge */
    }
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s PORT RESPONSE_FILE\n", argv[0]);
        return 2;
    }
    FILE *f = fopen(argv[2], "rb");
    if (!f) {
        perror(argv[2]);
        return 1;
    }
    answer = malloc(IN_CAP);
    answer_len = fread(answer, 1, IN_CAP, f);
    fclose(f);
    if (!answer_len) {
        fprintf(stderr, "%s: empty response file\n", argv[2]);
        return 1;
    }
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listener, (struct sockaddr *)&addr, sizeof(addr)) != 0 || listen(listener, 4096) != 0) {
        perror("bind/listen");
        return 1;
    }
    int epoll = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(epoll, EPOLL_CTL_ADD, listener, &ev);
    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(epoll, events, MAX_EVENTS, -1);
        for (int i = 0; i < n; i++) {
            connection *c = events[i].data.ptr;
            if (c) {
                serve(epoll, c);
                continue;
            }
            int fd;
            while ((fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                c = malloc(sizeof(*c));
                if (!c) {
                    close(fd);
                    continue;
                }
                c->fd = fd;
                c->in_len = 0;
                struct epoll_event cev = {.events = EPOLLIN | EPOLLET | EPOLLRDHUP, .data.ptr = c};
                epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &cev);
            }
        }
    }
}
