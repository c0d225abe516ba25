/*
 * redis_server.h — a real redis-server for the job-queue tests and the
 * benchmark: started on a free 127.0.0.1 port with its own temporary
 * directory (append-only file on, fsync always unless told otherwise, so a
 * restart keeps the data), stopped by PID. Header-only: tests/jobs and bench/jobs include it.
 */
#ifndef INFERD_TESTS_JOBS_REDIS_SERVER_H
#define INFERD_TESTS_JOBS_REDIS_SERVER_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct redis_server {
    pid_t pid;
    int port;
    char dir[256];
    char url[64];
    const char *appendfsync; /* NULL: "always" (tests); the benchmark uses "everysec" */
} redis_server;

static int redis_server_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(addr);
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 ||
        getsockname(fd, (struct sockaddr *)&addr, &len) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(addr.sin_port);
}

static bool redis_server_answers(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons((uint16_t)port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = false;
    if (fd >= 0 && connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0) {
        char reply[16] = "";
        if (write(fd, "PING\r\n", 6) == 6 && read(fd, reply, sizeof(reply) - 1) > 0)
            ok = strncmp(reply, "+PONG", 5) == 0;
    }
    if (fd >= 0)
        close(fd);
    return ok;
}

/* Starts (or restarts, same port and directory) the server; waits up to
 * 10 s for PONG. */
static bool redis_server_start(redis_server *server)
{
    if (!server->dir[0]) {
        snprintf(server->dir, sizeof(server->dir), "/tmp/inferd-redis-XXXXXX");
        if (!mkdtemp(server->dir))
            return false;
        server->port = redis_server_free_port();
        snprintf(server->url, sizeof(server->url), "redis://127.0.0.1:%d/0", server->port);
    }
    char port[16];
    snprintf(port, sizeof(port), "%d", server->port);
    pid_t pid = fork();
    if (pid < 0)
        return false;
    if (pid == 0) {
        int null_fd = open("/dev/null", O_WRONLY);
        if (null_fd >= 0)
            dup2(null_fd, STDOUT_FILENO);
        execl(REDIS_SERVER_PATH, "redis-server", "--port", port, "--bind", "127.0.0.1", "--dir",
              server->dir, "--save", "", "--appendonly", "yes", "--appendfsync",
              server->appendfsync ? server->appendfsync : "always", "--daemonize", "no",
              "--loglevel", "warning", (char *)NULL);
        _exit(127);
    }
    server->pid = pid;
    for (int i = 0; i < 200; i++) {
        if (redis_server_answers(server->port))
            return true;
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            server->pid = 0;
            return false;
        }
        usleep(50000);
    }
    return false;
}

static void redis_server_kill(redis_server *server, int sig)
{
    if (server->pid > 0) {
        kill(server->pid, sig);
        waitpid(server->pid, NULL, 0);
        server->pid = 0;
    }
}

/* Stops the server and removes its directory. */
static void redis_server_stop(redis_server *server)
{
    redis_server_kill(server, SIGTERM);
    if (server->dir[0]) {
        char command[300];
        snprintf(command, sizeof(command), "rm -rf '%s'", server->dir);
        if (system(command) != 0)
            fprintf(stderr, "cannot remove %s\n", server->dir);
    }
}

#endif /* INFERD_TESTS_JOBS_REDIS_SERVER_H */
