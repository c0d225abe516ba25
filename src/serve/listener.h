/*
 * listener.h — the HTTP port's listening socket, owned by inferd rather than
 * libmicrohttpd: a thread accepts and hands each connection to the daemon
 * (MHD_add_connection), and stopping it is how the server stops accepting.
 *
 * Why not libmicrohttpd's own listener: with epoll and internal polling
 * threads, MHD_quiesce_daemon (0.9.75, Debian 12) races the polling threads
 * to remove the listen socket from their epoll sets, and whichever loses
 * aborts the whole process ("Failed to remove listen FD from epoll set"):
 * a SIGTERM could kill the requests it was meant to let finish.
 *
 * Thread safety: listener_start and listener_stop from one thread (main);
 * the accepting thread only reads *open_connections.
 */
#ifndef INFERD_SERVE_LISTENER_H
#define INFERD_SERVE_LISTENER_H

#include <stdatomic.h>
#include <sys/socket.h>

struct MHD_Daemon;
typedef struct listener listener;

/* A bound, listening, non-blocking socket on addr (SO_REUSEADDR, IPv6 only
 * for an IPv6 address), or -1 with errno set. */
int listener_open(const struct sockaddr *addr, socklen_t addr_len);

/* The port fd is bound to (useful after binding port 0), or -1. */
int listener_port(int fd);

/* Accept on fd in a thread of its own and add each connection to daemon
 * (started with MHD_USE_NO_LISTEN_SOCKET). While *open_connections has
 * reached connection_limit nothing is accepted: new clients wait in the
 * kernel's backlog, as they did with libmicrohttpd's listener. Takes fd;
 * NULL (fd closed) if the thread cannot start. */
listener *listener_start(int fd, struct MHD_Daemon *daemon, unsigned connection_limit,
                         const atomic_uint *open_connections);

/* Stop accepting and close the socket: from here new connections are
 * refused and the port is free for another server, while the connections
 * already accepted go on being served by the daemon. */
void listener_stop(listener *l);

#endif /* INFERD_SERVE_LISTENER_H */
