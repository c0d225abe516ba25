/*
 * listener.c — accepting the HTTP port's connections for libmicrohttpd (see
 * listener.h for why inferd owns the listening socket).
 *
 * One thread polls the socket and a stop pipe. Each wake-up accepts what
 * the kernel has queued (a burst at a time) and passes every connection to
 * MHD_add_connection, which queues it for a polling thread under a lock and
 * wakes that thread: the cost is one hand-over per connection, never per
 * request, since keep-alive connections stay with their polling thread.
 */
#include "listener.h"

#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"

/* accepts per wake-up before the stop pipe is looked at again */
#define ACCEPT_BURST 64
/* how often to look again while accepting is paused (at the connection
 * limit, or out of descriptors): connections closing do not wake the thread */
#define PAUSE_MS 10

struct listener {
    int fd;
    int stop_pipe[2];
    struct MHD_Daemon *daemon;
    unsigned connection_limit;
    const atomic_uint *open_connections;
    bool warned; /* out of descriptors, said once until an accept succeeds */
    pthread_t thread;
};

int listener_open(const struct sockaddr *addr, socklen_t addr_len)
{
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int on = 1;
    /* a restart may bind while the old server's connections sit in TIME_WAIT;
     * never SO_REUSEPORT, which would let a second server share the port */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        (addr->sa_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) != 0) ||
        bind(fd, addr, addr_len) != 0 || listen(fd, SOMAXCONN) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int listener_port(int fd)
{
    struct sockaddr_storage bound;
    socklen_t len = sizeof(bound);
    if (getsockname(fd, (struct sockaddr *)&bound, &len) != 0)
        return -1;
    if (bound.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&bound)->sin_port);
    if (bound.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
    return -1;
}

static bool out_of_descriptors(int err)
{
    return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

/* Accept until the queue is empty, the burst is spent or the limit is
 * reached. Returns false when accepting should pause for a while. */
static bool accept_burst(listener *l)
{
    for (int i = 0; i < ACCEPT_BURST; i++) {
        if (atomic_load(l->open_connections) >= l->connection_limit)
            return true; /* the poll below waits for room */
        struct sockaddr_storage peer;
        socklen_t peer_len = sizeof(peer);
        int client = accept4(l->fd, (struct sockaddr *)&peer, &peer_len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (client < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (out_of_descriptors(errno)) {
                if (!l->warned)
                    log_event(LOG_WARNING, "cannot accept: out of descriptors or memory; pausing accepts",
                              "error", strerror(errno), NULL);
                l->warned = true;
                return false;
            }
            return true; /* EAGAIN: all taken */
        }
        l->warned = false;
        /* on refusal (every polling thread at its share of the limit)
         * libmicrohttpd has closed the socket: the client sees it closed */
        MHD_add_connection(l->daemon, client, (struct sockaddr *)&peer, peer_len);
    }
    return true;
}

static void *accept_loop(void *arg)
{
    listener *l = arg;
    bool paused = false;
    for (;;) {
        bool room = !paused && atomic_load(l->open_connections) < l->connection_limit;
        struct pollfd wait_for[2] = {
            {.fd = l->stop_pipe[0], .events = POLLIN},
            {.fd = l->fd, .events = room ? POLLIN : 0},
        };
        int ready = poll(wait_for, 2, room ? -1 : PAUSE_MS);
        if (ready < 0 && errno != EINTR)
            break;
        if (wait_for[0].revents)
            break;
        paused = false;
        if (wait_for[1].revents & POLLIN)
            paused = !accept_burst(l);
    }
    return NULL;
}

listener *listener_start(int fd, struct MHD_Daemon *daemon, unsigned connection_limit,
                         const atomic_uint *open_connections)
{
    listener *l = calloc(1, sizeof(*l));
    if (!l) {
        close(fd);
        return NULL;
    }
    l->fd = fd;
    l->daemon = daemon;
    l->connection_limit = connection_limit;
    l->open_connections = open_connections;
    if (pipe2(l->stop_pipe, O_CLOEXEC) != 0) {
        close(fd);
        free(l);
        return NULL;
    }
    if (pthread_create(&l->thread, NULL, accept_loop, l) != 0) {
        close(l->stop_pipe[0]);
        close(l->stop_pipe[1]);
        close(fd);
        free(l);
        return NULL;
    }
    return l;
}

void listener_stop(listener *l)
{
    if (!l)
        return;
    if (write(l->stop_pipe[1], "s", 1) < 0) {
        /* cannot happen on a fresh pipe; the join below would then wait */
    }
    pthread_join(l->thread, NULL);
    close(l->fd);
    close(l->stop_pipe[0]);
    close(l->stop_pipe[1]);
    free(l);
}
