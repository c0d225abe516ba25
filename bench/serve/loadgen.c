/*
 * loadgen.c — the two measurements of the serving benchmark that wrk cannot
 * make (Debian has no wrk2):
 *
 *   loadgen coldstart --port P --path /ready [--timeout S] -- COMMAND ARGS...
 *       Starts COMMAND in its own process group, polls GET /ready on
 *       127.0.0.1:P every millisecond and prints, as one JSON line, the time
 *       from just before fork() until the first 200 answer; then stops the
 *       whole group (SIGTERM, SIGKILL after 10 s).
 *
 *   loadgen paced --port P --path /predict --body FILE --rate R
 *                 [--duration S] [--warmup S] [--connections C]
 *       An open-loop load at a fixed rate, like wrk2: request k is due at
 *       t0 + k/R whatever happened to the requests before it, goes out on
 *       the first idle keep-alive connection, and its latency is counted
 *       from the time it was due, not from when it could be sent — so a
 *       server that stalls is charged for the requests queued behind the
 *       stall (no coordinated omission). Prints one JSON line with the rate
 *       achieved, latency percentiles (from due time, and from send time),
 *       and the count of errors and non-2xx answers.
 *
 * Loopback only by construction: the address is always 127.0.0.1.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what)
{
    fprintf(stderr, "loadgen: %s: %s\n", what, strerror(errno));
    exit(1);
}

static int connect_loopback(int port, bool nonblocking)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0)
        die("socket");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

/* ---- coldstart ------------------------------------------------------------ */

/* One GET; true when the status line says 200. Blocking, bounded by SO_RCVTIMEO. */
static bool probe(int port, const char *path)
{
    int fd = connect_loopback(port, false);
    if (fd < 0)
        return false;
    struct timeval tv = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char req[512];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
    bool ok = false;
    if (write(fd, req, (size_t)n) == n) {
        char buf[64];
        size_t got = 0;
        while (got < 12) {
            ssize_t r = read(fd, buf + got, sizeof(buf) - 1 - got);
            if (r <= 0)
                break;
            got += (size_t)r;
        }
        buf[got] = '\0';
        ok = got >= 12 && strncmp(buf, "HTTP/1.", 7) == 0 && strncmp(buf + 9, "200", 3) == 0;
    }
    close(fd);
    return ok;
}

static void stop_group(pid_t pid)
{
    kill(-pid, SIGTERM);
    double deadline = now() + 10;
    while (now() < deadline) {
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid || (r < 0 && errno == ECHILD))
            break;
        usleep(2000);
    }
    kill(-pid, SIGKILL); /* workers a master left behind, or a master that ignored SIGTERM */
    waitpid(pid, NULL, WNOHANG);
}

static int coldstart(int port, const char *path, double timeout, char **command)
{
    double t0 = now();
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        setpgid(0, 0);
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) {
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        execvp(command[0], command);
        _exit(127);
    }
    setpgid(pid, pid);
    double ready = -1;
    while (now() - t0 < timeout) {
        if (probe(port, path)) {
            ready = now();
            break;
        }
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            fprintf(stderr, "loadgen: the server exited before it was ready\n");
            printf("{\"status\":\"error\",\"error\":\"server exited before ready\"}\n");
            return 1;
        }
        struct timespec ms = {0, 1000 * 1000};
        nanosleep(&ms, NULL);
    }
    stop_group(pid);
    if (ready < 0) {
        printf("{\"status\":\"error\",\"error\":\"not ready within %.0f s\"}\n", timeout);
        return 1;
    }
    printf("{\"status\":\"ok\",\"cold_start_ms\":%.3f}\n", (ready - t0) * 1e3);
    return 0;
}

/* ---- paced ---------------------------------------------------------------- */

typedef struct conn {
    int fd;
    bool connecting, busy;
    double due, sent;
    size_t written;
    char buf[65536];
    size_t have;
} conn;

typedef struct load {
    int port, epoll;
    const char *request;
    size_t request_len;
    double t_record; /* requests due before this are warm-up */
    double *latency, *service;
    size_t n_samples, cap_samples;
    long errors, non_2xx, reconnects, completed;
} load;

static void conn_open(load *L, conn *c)
{
    c->fd = connect_loopback(L->port, true);
    if (c->fd < 0)
        die("connect");
    c->connecting = true;
    c->busy = false;
    c->have = 0;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = c};
    if (epoll_ctl(L->epoll, EPOLL_CTL_ADD, c->fd, &ev) != 0)
        die("epoll_ctl");
}

static void conn_reset(load *L, conn *c)
{
    epoll_ctl(L->epoll, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    L->reconnects++;
    conn_open(L, c);
}

static void conn_flush(load *L, conn *c)
{
    while (c->busy && !c->connecting && c->written < L->request_len) {
        ssize_t w = write(c->fd, L->request + c->written, L->request_len - c->written);
        if (w < 0) {
            if (errno == EAGAIN)
                return;
            L->errors++;
            c->busy = false;
            conn_reset(L, c);
            return;
        }
        c->written += (size_t)w;
    }
}

static void record(load *L, conn *c, int status)
{
    double t = now();
    L->completed++;
    if (c->due < L->t_record)
        return;
    if (status < 200 || status > 299)
        L->non_2xx++;
    if (L->n_samples == L->cap_samples) {
        L->cap_samples = L->cap_samples ? 2 * L->cap_samples : 65536;
        L->latency = realloc(L->latency, L->cap_samples * sizeof(double));
        L->service = realloc(L->service, L->cap_samples * sizeof(double));
        if (!L->latency || !L->service)
            die("realloc");
    }
    L->latency[L->n_samples] = t - c->due;
    L->service[L->n_samples] = t - c->sent;
    L->n_samples++;
}

/* A complete response in c->buf? Needs Content-Length (every server here sends it). */
static void conn_read(load *L, conn *c)
{
    for (;;) {
        ssize_t r = read(c->fd, c->buf + c->have, sizeof(c->buf) - 1 - c->have);
        if (r < 0 && errno == EAGAIN)
            return;
        if (r <= 0) {
            if (c->busy)
                L->errors++;
            conn_reset(L, c);
            return;
        }
        c->have += (size_t)r;
        c->buf[c->have] = '\0';
        char *end = strstr(c->buf, "\r\n\r\n");
        if (!end) {
            if (c->have >= sizeof(c->buf) - 1) {
                L->errors++;
                conn_reset(L, c);
            }
            continue;
        }
        size_t head = (size_t)(end + 4 - c->buf);
        char *cl = strcasestr(c->buf, "\r\ncontent-length:");
        if (!cl || cl > end || strncmp(c->buf, "HTTP/1.", 7) != 0) {
            L->errors++;
            conn_reset(L, c);
            return;
        }
        size_t body = strtoul(cl + 17, NULL, 10);
        if (c->have < head + body)
            continue;
        int status = atoi(c->buf + 9);
        bool closing = strcasestr(c->buf, "\r\nconnection: close") != NULL;
        record(L, c, status);
        c->busy = false;
        size_t rest = c->have - head - body;
        memmove(c->buf, c->buf + head + body, rest);
        c->have = rest;
        if (closing)
            conn_reset(L, c);
        return;
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *sorted, size_t n, double p)
{
    if (!n)
        return 0;
    size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
    return sorted[i < n ? i : n - 1];
}

/* Wake at monotonic time `at` (now() reads the same clock). */
static void arm(int tfd, double at)
{
    struct itimerspec its = {0};
    its.it_value.tv_sec = (time_t)at;
    its.it_value.tv_nsec = (long)((at - (double)(time_t)at) * 1e9);
    if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
        its.it_value.tv_nsec = 1;
    timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

static int paced(int port, const char *path, const char *body_file, double rate, double duration,
                 double warmup, int n_conns)
{
    FILE *f = fopen(body_file, "rb");
    if (!f)
        die(body_file);
    static char body[1 << 16];
    size_t body_len = fread(body, 1, sizeof(body), f);
    fclose(f);
    static char request[(1 << 16) + 512];
    int head = snprintf(request, 512,
                        "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                        "Content-Length: %zu\r\n\r\n", path, body_len);
    memcpy(request + head, body, body_len);

    load L = {.port = port, .request = request, .request_len = (size_t)head + body_len};
    L.epoll = epoll_create1(EPOLL_CLOEXEC);
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (L.epoll < 0 || tfd < 0)
        die("epoll/timerfd");
    struct epoll_event tev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(L.epoll, EPOLL_CTL_ADD, tfd, &tev);
    conn *conns = calloc((size_t)n_conns, sizeof(conn));
    if (!conns)
        die("calloc");
    for (int i = 0; i < n_conns; i++)
        conn_open(&L, &conns[i]);

    /* due times of requests not yet handed to a connection, oldest first */
    size_t q_cap = (size_t)(rate * (duration + warmup)) + 16, q_head = 0, q_len = 0;
    double *queue = malloc(q_cap * sizeof(double));
    if (!queue)
        die("malloc");
    double t0 = now() + 0.05, interval = 1.0 / rate;
    L.t_record = t0 + warmup;
    double t_end = L.t_record + duration;
    long k = 0;
    int next_conn = 0;
    arm(tfd, t0);
    while (true) {
        double t = now();
        while (t0 + (double)k * interval <= t && t0 + (double)k * interval < t_end && q_len < q_cap) {
            queue[(q_head + q_len) % q_cap] = t0 + (double)k * interval;
            q_len++;
            k++;
        }
        /* hand due requests to idle connections, round robin */
        for (int tries = 0; q_len && tries < n_conns; tries++) {
            conn *c = &conns[next_conn];
            next_conn = (next_conn + 1) % n_conns;
            if (c->busy || c->connecting)
                continue;
            c->busy = true;
            c->due = queue[q_head];
            q_head = (q_head + 1) % q_cap;
            q_len--;
            c->sent = now();
            c->written = 0;
            conn_flush(&L, c);
            tries = -1; /* a request went out: look at every connection again */
        }
        bool in_flight = q_len > 0;
        for (int i = 0; i < n_conns && !in_flight; i++)
            in_flight = conns[i].busy;
        double next_due = t0 + (double)k * interval;
        if (next_due >= t_end && !in_flight)
            break;
        if (t > t_end + 10)
            break; /* a server that stopped answering: give up on the rest */
        if (next_due < t_end)
            arm(tfd, next_due);
        struct epoll_event evs[256];
        int n = epoll_wait(L.epoll, evs, 256, next_due < t_end ? -1 : 100);
        if (n < 0 && errno != EINTR)
            die("epoll_wait");
        for (int i = 0; i < n; i++) {
            conn *c = evs[i].data.ptr;
            if (!c) {
                uint64_t expirations;
                if (read(tfd, &expirations, sizeof(expirations)) < 0) {
                    /* EAGAIN: already drained */
                }
                continue;
            }
            if (c->connecting && (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
                int err = 0;
                socklen_t len = sizeof(err);
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err) {
                    L.errors++;
                    usleep(1000);
                    conn_reset(&L, c);
                    continue;
                }
                c->connecting = false;
            }
            if (evs[i].events & EPOLLOUT)
                conn_flush(&L, c);
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                conn_read(&L, c);
        }
    }
    long unsent = (long)((t_end - t0) / interval) - k + (long)q_len;
    double elapsed = duration;
    qsort(L.latency, L.n_samples, sizeof(double), cmp_double);
    qsort(L.service, L.n_samples, sizeof(double), cmp_double);
    printf("{\"status\":\"ok\",\"target_rate\":%.1f,\"achieved_rate\":%.1f,\"requests\":%zu,"
           "\"connections\":%d,\"duration_s\":%.1f,\"warmup_s\":%.1f,"
           "\"p50_ms\":%.4f,\"p90_ms\":%.4f,\"p99_ms\":%.4f,\"p999_ms\":%.4f,\"max_ms\":%.4f,"
           "\"service_p50_ms\":%.4f,\"service_p99_ms\":%.4f,"
           "\"errors\":%ld,\"non_2xx\":%ld,\"reconnects\":%ld,\"unsent\":%ld}\n",
           rate, (double)L.n_samples / elapsed, L.n_samples, n_conns, duration, warmup,
           pct(L.latency, L.n_samples, 50) * 1e3, pct(L.latency, L.n_samples, 90) * 1e3,
           pct(L.latency, L.n_samples, 99) * 1e3, pct(L.latency, L.n_samples, 99.9) * 1e3,
           L.n_samples ? L.latency[L.n_samples - 1] * 1e3 : 0.0,
           pct(L.service, L.n_samples, 50) * 1e3, pct(L.service, L.n_samples, 99) * 1e3,
           L.errors, L.non_2xx, L.reconnects, unsent > 0 ? unsent : 0);
    return 0;
}

static void usage(void)
{
    fputs("usage: loadgen coldstart --port P --path PATH [--timeout S] -- COMMAND ARGS...\n"
          "       loadgen paced --port P --path PATH --body FILE --rate R [--duration S]\n"
          "                     [--warmup S] [--connections C]\n", stderr);
    exit(64);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        usage();
    int port = 0, conns = 16;
    const char *path = "/", *body = NULL;
    double rate = 0, duration = 10, warmup = 2, timeout = 60;
    char **command = NULL;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--") == 0) {
            command = argv + i + 1;
            break;
        }
        if (!v)
            usage();
        if (strcmp(a, "--port") == 0)
            port = atoi(v);
        else if (strcmp(a, "--path") == 0)
            path = v;
        else if (strcmp(a, "--body") == 0)
            body = v;
        else if (strcmp(a, "--rate") == 0)
            rate = atof(v);
        else if (strcmp(a, "--duration") == 0)
            duration = atof(v);
        else if (strcmp(a, "--warmup") == 0)
            warmup = atof(v);
        else if (strcmp(a, "--connections") == 0)
            conns = atoi(v);
        else if (strcmp(a, "--timeout") == 0)
            timeout = atof(v);
        else
            usage();
        i++;
    }
    if (port <= 0 || port > 65535)
        usage();
    signal(SIGPIPE, SIG_IGN);
    if (strcmp(argv[1], "coldstart") == 0) {
        if (!command || !command[0])
            usage();
        return coldstart(port, path, timeout, command);
    }
    if (strcmp(argv[1], "paced") == 0) {
        if (!body || rate <= 0 || duration <= 0 || warmup < 0 || conns < 1 || conns > 1024)
            usage();
        return paced(port, path, body, rate, duration, warmup, conns);
    }
    usage();
    return 64;
}
