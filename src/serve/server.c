/*
 * server.c — connection handling for `inferd serve`, on libmicrohttpd.
 *
 * libmicrohttpd's polling threads parse HTTP and read bodies. Cheap routes
 * (health, metadata, metrics) are answered right there, and so is a small
 * request to a model whose inference takes microseconds (measured at
 * warm-up), on the polling thread's own session: handing it to a worker
 * would cost more than the inference. Other routes that compute
 * suspend their connection and go to the worker pool; the worker fills the
 * response and resumes the connection, and libmicrohttpd sends it. So a
 * slow inference never stops other connections from being read or answered.
 *
 * Limits: body size (checked against Content-Length before reading, and
 * while reading), header size (the connection memory pool), connection
 * count, an idle timeout, and a per-request deadline that a client
 * dribbling bytes cannot extend. libmicrohttpd's own timeout is an idle
 * timeout that every byte resets, so the deadline is kept here: each
 * connection's state records when the request being read began, and the
 * main thread shuts down the socket of any connection still reading its
 * request after `request_timeout` seconds (libmicrohttpd then closes it).
 * SIGTERM/SIGINT stop accepting, let the requests in flight finish (at most
 * `grace` seconds; after that, queued requests are answered 503 without
 * running) and return 0.
 */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <microhttpd.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "grpc/grpc_server.h"
#include "http.h"
#include "image_request.h"
#include "listener.h"
#include "log.h"
#include "metrics.h"
#include "pipeline.h"
#include "routes.h"
#include "served.h"
#include "tensor_json.h"
#include "ui.h"

static int signal_pipe[2] = {-1, -1};
/* Set when the grace period is over: queued requests are answered without running. */
static atomic_bool abandon_queued;

/* What the server knows of one TCP connection (libmicrohttpd's socket
 * context). connections_lock guards the list and `cut`; the polling thread
 * that serves the connection updates the rest per request without it (a
 * lock per update was a measurable part of a request), and the main
 * thread reads the atomics when it checks deadlines. */
typedef struct conn_state {
    struct conn_state *prev, *next;
    MHD_socket fd;
    /* when the request being read began (accept, or the end of the previous
     * request); 0 while no request is being read. One atomic, so the main
     * thread never sees "reading" with the previous request's start. */
    _Atomic double reading_since;
    atomic_ulong requests;  /* requests begun on this connection */
    bool cut;               /* its socket was shut down for the deadline */
    bool response_queued;   /* the current request's answer is queued (polling thread only) */
} conn_state;

static pthread_mutex_t connections_lock = PTHREAD_MUTEX_INITIALIZER;
static conn_state *connections;
/* connections libmicrohttpd holds: the listener accepts only below the limit */
static atomic_uint open_connections;

double server_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void on_signal(int sig)
{
    int saved = errno;
    unsigned char byte = (unsigned char)sig;
    if (write(signal_pipe[1], &byte, 1) < 0) {
        /* nothing to do: the pipe is full, a stop is already pending */
    }
    errno = saved;
}

/* ---- responses ----------------------------------------------------------- */

const char *http_header(const http_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->connection, MHD_HEADER_KIND, name);
}

const char *http_query(const http_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->connection, MHD_GET_ARGUMENT_KIND, name);
}

const char *http_client_address(const http_request *req, char *buf, size_t size)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(req->connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    snprintf(buf, size, "unknown");
    if (!info || !info->client_addr)
        return buf;
    char host[INET6_ADDRSTRLEN] = "";
    const struct sockaddr *sa = info->client_addr;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &v4->sin_addr, host, sizeof(host));
        snprintf(buf, size, "%s:%u", host, ntohs(v4->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof(host));
        snprintf(buf, size, "[%s]:%u", host, ntohs(v6->sin6_port));
    }
    return buf;
}

void http_reply_buffer(http_request *req, int status, const char *content_type, char *data,
                       size_t len)
{
    free(req->response);
    req->status = status;
    req->content_type = content_type;
    req->response = data;
    req->response_len = len;
    req->answered = true;
}

void http_reply_raw(http_request *req, int status, const char *content_type, const char *data,
                    size_t len)
{
    char *copy = malloc(len ? len : 1);
    if (!copy) {
        http_reply_buffer(req, 500, "application/json", NULL, 0);
        return;
    }
    memcpy(copy, data, len);
    http_reply_buffer(req, status, content_type, copy, len);
}

void http_reply_json(http_request *req, int status, json_t *body)
{
    size_t len = 0;
    char *text = body ? json_encode(body, &len) : NULL;
    json_decref(body);
    if (!text) {
        http_reply_raw(req, 500, "application/json", "{\"error\":\"cannot encode the answer\"}", 36);
        return;
    }
    http_reply_buffer(req, status, "application/json", text, len);
}

void http_reply_error(http_request *req, int status, const char *fmt, ...)
{
    char message[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    /* json_string refuses invalid UTF-8 (echoes of client bytes): fall back */
    json_t *text = json_string(message);
    if (!text)
        text = json_string("request contains invalid UTF-8");
    http_reply_json(req, status, json_pack("{s:o}", "error", text));
}

/* ---- connections --------------------------------------------------------- */

static void on_connection(void *cls, struct MHD_Connection *connection, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    (void)cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        atomic_fetch_add(&open_connections, 1);
        conn_state *c = calloc(1, sizeof(*c));
        if (!c)
            return; /* such a connection is served, only without the deadline */
        const union MHD_ConnectionInfo *info =
            MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
        c->fd = info ? info->connect_fd : MHD_INVALID_SOCKET;
        atomic_init(&c->reading_since, server_now());
        atomic_init(&c->requests, 0);
        pthread_mutex_lock(&connections_lock);
        c->next = connections;
        if (connections)
            connections->prev = c;
        connections = c;
        pthread_mutex_unlock(&connections_lock);
        *socket_context = c;
        return;
    }
    atomic_fetch_sub(&open_connections, 1);
    conn_state *c = *socket_context;
    if (!c)
        return;
    /* libmicrohttpd closes the socket only after this notification, so the
     * deadline check never shuts down a descriptor that was reused */
    pthread_mutex_lock(&connections_lock);
    if (c->prev)
        c->prev->next = c->next;
    else
        connections = c->next;
    if (c->next)
        c->next->prev = c->prev;
    pthread_mutex_unlock(&connections_lock);
    free(c);
    *socket_context = NULL;
}

static conn_state *connection_state(struct MHD_Connection *connection)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return info ? info->socket_context : NULL;
}

/* Shut down connections that have been reading one request for longer than
 * the deadline. Returns how many connections were accepted less than
 * `fresh` seconds ago and have not begun a request: a request may be on its
 * way on them. */
static int enforce_deadlines(double timeout, double fresh)
{
    double now = server_now();
    int arriving = 0;
    pthread_mutex_lock(&connections_lock);
    for (conn_state *c = connections; c; c = c->next) {
        double since = atomic_load_explicit(&c->reading_since, memory_order_relaxed);
        if (since == 0 || c->cut)
            continue;
        if (now - since > timeout && c->fd != MHD_INVALID_SOCKET) {
            shutdown(c->fd, SHUT_RDWR);
            c->cut = true;
        } else if (atomic_load_explicit(&c->requests, memory_order_relaxed) == 0 && now - since < fresh) {
            arriving++;
        }
    }
    pthread_mutex_unlock(&connections_lock);
    return arriving;
}

/* ---- request lifecycle --------------------------------------------------- */

/* splitmix64's finaliser: a bijection, so distinct counters give distinct ids */
static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t id_seed;

static void seed_request_ids(void)
{
    if (getrandom(&id_seed, sizeof(id_seed), 0) != (ssize_t)sizeof(id_seed))
        id_seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
}

void server_request_id(const char *given, char *id, size_t size)
{
    if (given) {
        size_t n = 0;
        for (; given[n] && n < size - 1; n++)
            if (given[n] < 0x21 || given[n] > 0x7e)
                break;
        if (given[n] == '\0' && n > 0) {
            memcpy(id, given, n + 1);
            return;
        }
    }
    /* one random seed per process rather than a read of /dev/urandom per request */
    static atomic_ulong counter;
    static const char hex[] = "0123456789abcdef";
    unsigned long seq = atomic_fetch_add(&counter, 1);
    uint64_t r = mix64(id_seed + seq);
    /* "%016llx-%06lx" of r and the counter's low 24 bits, without printf;
     * cut to the caller's buffer (every caller gives at least 24 bytes) */
    char made[24];
    for (int i = 0; i < 16; i++)
        made[i] = hex[(r >> (60 - 4 * i)) & 15];
    made[16] = '-';
    for (int i = 0; i < 6; i++)
        made[17 + i] = hex[(seq >> (20 - 4 * i)) & 15];
    made[23] = '\0';
    size_t n = size - 1 < sizeof(made) - 1 ? size - 1 : sizeof(made) - 1;
    memcpy(id, made, n);
    id[n] = '\0';
}

static void make_request_id(http_request *req)
{
    server_request_id(http_header(req, "X-Request-ID"), req->request_id, sizeof(req->request_id));
}

/* ---- requests reused --------------------------------------------------- */

/* A polling thread keeps the requests it has finished, with their body
 * buffers, for the next ones it begins: the hot path allocates no request
 * and, for bodies like the last ones, no body buffer. The spares of a
 * thread are freed when it exits. */
#define SPARE_REQUESTS 32
#define SPARE_BODY_MAX (64u << 10)

typedef struct spare_requests {
    int count;
    http_request *items[SPARE_REQUESTS];
} spare_requests;

static pthread_key_t spares_key;
static bool spares_key_made;
static pthread_once_t spares_once = PTHREAD_ONCE_INIT;

static void free_spares(void *arg)
{
    spare_requests *spares = arg;
    for (int i = 0; i < spares->count; i++) {
        free(spares->items[i]->body);
        free(spares->items[i]);
    }
    free(spares);
}

static void make_spares_key(void)
{
    /* without a key (none left in the process) requests are simply not reused */
    spares_key_made = pthread_key_create(&spares_key, free_spares) == 0;
}

static spare_requests *thread_spares(void)
{
    pthread_once(&spares_once, make_spares_key);
    if (!spares_key_made)
        return NULL;
    spare_requests *spares = pthread_getspecific(spares_key);
    if (!spares && (spares = calloc(1, sizeof(*spares))) && pthread_setspecific(spares_key, spares) != 0) {
        free(spares);
        spares = NULL;
    }
    return spares;
}

static http_request *request_take(void)
{
    spare_requests *spares = thread_spares();
    if (!spares || spares->count == 0)
        return calloc(1, sizeof(http_request));
    http_request *req = spares->items[--spares->count];
    char *body = req->body;
    size_t body_cap = req->body_cap;
    memset(req, 0, offsetof(http_request, path_inline));
    memset((char *)req + offsetof(http_request, path_inline) + sizeof(req->path_inline), 0,
           sizeof(*req) - offsetof(http_request, path_inline) - sizeof(req->path_inline));
    req->body = body;
    req->body_cap = body_cap;
    return req;
}

static void request_give(http_request *req)
{
    if (req->path != req->path_inline)
        free(req->path);
    free(req->response);
    spare_requests *spares = thread_spares();
    if (spares && spares->count < SPARE_REQUESTS && req->body_cap <= SPARE_BODY_MAX) {
        spares->items[spares->count++] = req;
        return;
    }
    free(req->body);
    free(req);
}

/* Metrics count a request when its response is queued, so that a client
 * reading /metrics right after an answer sees it counted, whichever polling
 * thread finishes sending it. */
static void count_request(http_request *req, int status)
{
    if (req->counted)
        return;
    req->counted = true;
    metrics_observe_request(req->server->metrics, req, status, server_now());
    __atomic_sub_fetch(&req->server->unanswered, 1, __ATOMIC_SEQ_CST);
}

static enum MHD_Result send_response(http_request *req)
{
    count_request(req, req->status);
    /* the answer's buffer goes to libmicrohttpd, which frees it once sent:
     * no copy */
    bool hand_over = req->response && req->response_len > 0;
    struct MHD_Response *resp =
        hand_over ? MHD_create_response_from_buffer(req->response_len, req->response, MHD_RESPMEM_MUST_FREE)
                  : MHD_create_response_from_buffer(0, (char *)"", MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    if (hand_over)
        req->response = NULL;
    MHD_add_response_header(resp, "Content-Type", req->content_type ? req->content_type : "application/json");
    MHD_add_response_header(resp, "X-Request-ID", req->request_id);
    if (req->inference_header_length) {
        char len[32];
        snprintf(len, sizeof(len), "%zu", req->inference_header_length);
        MHD_add_response_header(resp, "Inference-Header-Content-Length", len);
    }
    if (req->allow)
        MHD_add_response_header(resp, "Allow", req->allow);
    if (req->authenticate)
        MHD_add_response_header(resp, "WWW-Authenticate", req->authenticate);
    if (req->location[0])
        MHD_add_response_header(resp, "Location", req->location);
    if (req->retry_after) {
        char seconds[16];
        snprintf(seconds, sizeof(seconds), "%u", req->retry_after);
        MHD_add_response_header(resp, "Retry-After", seconds);
    }
    if (req->page_headers)
        ui_add_security_headers(resp);
    if (req->answered_by || req->pipeline) {
        char who[sizeof(req->model_name) + sizeof(req->model_version) + 1];
        size_t name = strlen(req->model_name), version = strlen(req->model_version);
        memcpy(who, req->model_name, name);
        who[name] = ':';
        memcpy(who + name + 1, req->model_version, version + 1);
        MHD_add_response_header(resp, "X-Model-Version", who);
    }
    if (req->server->stopping)
        MHD_add_response_header(resp, "Connection", "close");
    enum MHD_Result r = MHD_queue_response(req->connection, (unsigned)req->status, resp);
    MHD_destroy_response(resp);
    conn_state *c = connection_state(req->connection);
    if (c && r == MHD_YES) {
        c->response_queued = true;
        atomic_store_explicit(&c->reading_since, 0, memory_order_relaxed);
    }
    return r;
}

typedef struct compute_job {
    http_request *req;
    route_match route;
} compute_job;

static void run_compute(void *arg, int worker)
{
    compute_job *job = arg;
    http_request *req = job->req;
    req->t_compute_start = server_now();
    if (atomic_load(&abandon_queued))
        http_reply_error(req, 503, "the server is stopping; retry elsewhere");
    else
        job->route.fn(req, &job->route.params, worker);
    free(job);
    if (req->deferred) {
        /* queued for a batch: the last of this worker and the completion resumes it */
        http_finish_deferred(req);
        return;
    }
    req->t_compute_end = server_now();
    if (!req->answered)
        http_reply_error(req, 500, "the handler gave no answer");
    MHD_resume_connection(req->connection);
}

/* How long a stop waits for the answers of batched requests to be sent
 * once every batch answered: sending takes milliseconds, so this only cuts
 * off clients that stopped reading. */
#define DEFERRED_SEND_MAX_SECONDS 5.0

void http_defer(http_request *req)
{
    __atomic_add_fetch(&req->server->deferred, 1, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&req->server->deferred_unsent, 1, __ATOMIC_SEQ_CST);
    req->deferred = true;
    __atomic_store_n(&req->defer_refs, 2, __ATOMIC_RELEASE);
}

void http_finish_deferred(http_request *req)
{
    if (__atomic_sub_fetch(&req->defer_refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    server *srv = req->server; /* req may be sent and freed once resumed */
    req->t_compute_end = server_now();
    if (!req->answered)
        http_reply_error(req, 500, "the handler gave no answer");
    MHD_resume_connection(req->connection);
    /* resuming only asks the polling thread to send the answer: the request
     * stays in srv->deferred_unsent until on_completed */
    __atomic_sub_fetch(&srv->deferred, 1, __ATOMIC_SEQ_CST);
}

/* Whether the Content-Type's media type is `want`; parameters may follow. */
static bool media_type_is(const char *type, const char *want)
{
    while (*type == ' ' || *type == '\t')
        type++;
    size_t n = strlen(want);
    if (strncasecmp(type, want, n) != 0)
        return false;
    char next = type[n];
    return next == '\0' || next == ';' || next == ' ' || next == '\t';
}

/* Inference that is answered on the polling thread: a small request to a
 * model whose warm-up inference took less than this. */
#define INLINE_MAX_SECONDS 0.0002
#define INLINE_MAX_BODY 16384

/* The session a polling thread may use for inline inference, or -1. Each of
 * the io_threads polling threads claims one session (after the workers'
 * ones) the first time it asks; any thread beyond them hands off instead. */
static int inline_session(server *srv, const http_request *req, const route_match *route)
{
    static atomic_int claimed;
    static __thread int slot = -2;
    if (req->body_len > INLINE_MAX_BODY || req->pipeline)
        return -1; /* a pipeline may wait on remote steps: never on a polling thread */
    double run_seconds = model_set_run_seconds(srv->models, route->params.model,
                                               route->params.has_version ? route->params.version : NULL);
    if (run_seconds > INLINE_MAX_SECONDS)
        return -1;
    if (slot == -2) {
        int n = atomic_fetch_add(&claimed, 1);
        slot = n < srv->options.io_threads ? n : -1;
    }
    return slot < 0 ? -1 : srv->options.workers + slot;
}

static bool content_type_ok(http_request *req, const route_match *route)
{
    const char *type = http_header(req, "Content-Type");
    if (!type)
        return true;
    if (media_type_is(type, "application/json"))
        return true;
    /* images: uploads on the book's and the tutorial's routes, a raw
     * JPEG/PNG body on V2 infer (image_request.c) */
    bool book = route->fn == book_predict || route->fn == book_predict_label || route->fn == book_prediction;
    if (book && image_request_is_multipart(req))
        return true;
    if (route->fn == v2_infer && image_request_is_raw_image(req))
        return true;
    /* KServe V2 binary tensors: a JSON header then raw bytes */
    if (media_type_is(type, "application/octet-stream") &&
        http_header(req, "Inference-Header-Content-Length"))
        return true;
    return false;
}

/* Suspend the connection and queue the request on a pool; the thread that
 * runs it resumes the connection with the answer. */
static enum MHD_Result hand_off(workers *pool, http_request *req, const route_match *route,
                                const char *busy_message)
{
    compute_job *job = malloc(sizeof(*job));
    if (!job) {
        http_reply_error(req, 503, "out of memory");
        return send_response(req);
    }
    job->req = req;
    job->route = *route;
    req->suspended = true;
    req->t_queued = server_now();
    MHD_suspend_connection(req->connection);
    if (!workers_submit(pool, run_compute, job)) {
        free(job);
        http_reply_error(req, 503, "%s", busy_message);
        MHD_resume_connection(req->connection);
    }
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *connection, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    server *srv = cls;
    http_request *req = *con_cls;
    (void)version;
    conn_state *conn = connection_state(connection);

    if (!req) {
        if (conn) {
            atomic_fetch_add_explicit(&conn->requests, 1, memory_order_relaxed);
            conn->response_queued = false;
        }
        req = request_take();
        if (!req)
            return MHD_NO;
        *con_cls = req;
        req->connection = connection;
        req->server = srv;
        req->t_start = server_now();
        size_t method_len = strnlen(method, sizeof(req->method) - 1);
        memcpy(req->method, method, method_len);
        req->method[method_len] = '\0';
        size_t url_len = strlen(url);
        req->path = url_len < sizeof(req->path_inline) ? memcpy(req->path_inline, url, url_len + 1) : strdup(url);
        __atomic_add_fetch(&srv->in_flight, 1, __ATOMIC_SEQ_CST);
        __atomic_add_fetch(&srv->unanswered, 1, __ATOMIC_SEQ_CST);
        make_request_id(req);
        if (!req->path)
            return MHD_NO;
        const char *length = http_header(req, "Content-Length");
        if (length) {
            /* digits only, as strtoull would take them without errno */
            unsigned long long declared = 0;
            const char *end = length;
            bool over = false;
            for (; *end >= '0' && *end <= '9'; end++) {
                over |= declared > (ULLONG_MAX - 9) / 10;
                declared = declared * 10 + (unsigned)(*end - '0');
            }
            if (over || end == length || *end || declared > srv->options.max_body) {
                http_reply_error(req, 413, "request body of %s bytes exceeds the limit of %zu bytes",
                                 length, srv->options.max_body);
                return send_response(req);
            }
        }
        return MHD_YES;
    }

    if (req->suspended) {
        /* resumed by the worker that answered */
        req->suspended = false;
        return send_response(req);
    }
    if (conn && conn->response_queued) {
        /* answered before the body (413 on Content-Length): should
         * libmicrohttpd still hand over body bytes, drop them */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (req->answered)
        return send_response(req);

    if (*upload_data_size) {
        if (server_now() - req->t_start > srv->options.request_timeout) {
            /* no answer can be queued in the middle of a body: close (the
             * access log and metrics still count a 408) */
            http_reply_error(req, 408, "request body took longer than %u s to arrive",
                             srv->options.request_timeout);
            return MHD_NO;
        }
        size_t chunk = *upload_data_size;
        *upload_data_size = 0;
        if (req->body_too_large || req->body_len + chunk > srv->options.max_body) {
            /* A chunked body past the limit. libmicrohttpd (0.9.75) accepts
             * an answer only before the body or after all of it, so the rest
             * is read and dropped and the 413 follows; the request deadline
             * bounds how long that may take. */
            req->body_too_large = true;
            return MHD_YES;
        }
        if (req->body_len + chunk + 1 > req->body_cap) {
            size_t cap = req->body_cap ? req->body_cap : 4096;
            while (cap < req->body_len + chunk + 1)
                cap *= 2;
            if (cap > srv->options.max_body + 1)
                cap = srv->options.max_body + 1;
            char *grown = realloc(req->body, cap);
            if (!grown) {
                http_reply_error(req, 503, "out of memory reading the request");
                return send_response(req);
            }
            req->body = grown;
            req->body_cap = cap;
        }
        memcpy(req->body + req->body_len, upload_data, chunk);
        req->body_len += chunk;
        req->body[req->body_len] = '\0';
        return MHD_YES;
    }

    /* the whole request is here */
    if (conn)
        atomic_store_explicit(&conn->reading_since, 0, memory_order_relaxed);
    if (req->body_too_large) {
        http_reply_error(req, 413, "request body exceeds the limit of %zu bytes", srv->options.max_body);
        return send_response(req);
    }
    if (!req->body) {
        req->body = calloc(1, 1);
        if (!req->body)
            return MHD_NO;
        req->body_cap = 1;
    }
    req->body[req->body_len] = '\0'; /* a reused buffer may hold the last request's body */
    route_match route;
    if (!routes_match(req, &route))
        return send_response(req); /* 404 / 405 filled in */
    if (route.has_body && !content_type_ok(req, &route)) {
        http_reply_error(req, 415, "Content-Type must be application/json%s (got '%s')",
                         route.fn == v2_infer ? ", image/jpeg or image/png"
                         : route.fn == book_predict || route.fn == book_predict_label ||
                                 route.fn == book_prediction
                             ? " or multipart/form-data"
                             : "",
                         http_header(req, "Content-Type"));
        return send_response(req);
    }
    if (!route.compute) {
        route.fn(req, &route.params, -1);
        return send_response(req);
    }
    /* the version that answers is chosen when the request is accepted, so a
     * swap or unload after this point never fails it: it holds the version
     * while it waits for a worker and while it runs */
    served_target target;
    if (!route.admin && !served_acquire_target(req, &route.params, &target))
        return send_response(req);
    if (route.admin) /* loads take seconds: on their own thread, never an inference worker */
        return hand_off(srv->admin_pool, req, &route, "the server is stopping or too many repository calls are queued");
    int session = inline_session(srv, req, &route);
    if (target.version && model_set_batches(target.version))
        session = -1; /* a batching model's requests queue from a worker, never block a polling thread */
    if (session >= 0) {
        req->t_queued = req->t_compute_start = server_now();
        route.fn(req, &route.params, session);
        req->t_compute_end = server_now();
        if (!req->answered)
            http_reply_error(req, 500, "the handler gave no answer");
        return send_response(req);
    }
    return hand_off(srv->pool, req, &route, "the server is overloaded or stopping; retry later");
}

static void on_completed(void *cls, struct MHD_Connection *connection, void **con_cls,
                         enum MHD_RequestTerminationCode code)
{
    server *srv = cls;
    http_request *req = *con_cls;
    if (!req)
        return;
    double end = server_now();
    int status = req->answered ? req->status : 499;
    if (code != MHD_REQUEST_TERMINATED_COMPLETED_OK && !req->answered)
        status = code == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED ? 408 : 499;
    count_request(req, status); /* requests that ended without an answer */
    log_request(req->request_id, req->method, req->path, (unsigned)(status < 0 ? 0 : status), end - req->t_start,
                req->response_len, req->model_name);
    /* the version that answered may have been retired meanwhile: this
     * request may be the last that holds it */
    if (req->deferred) /* its answer is sent: shutdown no longer waits for it */
        __atomic_sub_fetch(&srv->deferred_unsent, 1, __ATOMIC_SEQ_CST);
    model_version_unref(req->answered_by);
    pipeline_unref(req->pipeline);
    request_give(req);
    *con_cls = NULL;
    conn_state *conn = connection_state(connection);
    if (conn) {
        /* keep-alive: the deadline of the next request starts now */
        conn->response_queued = false;
        atomic_store_explicit(&conn->reading_since, end, memory_order_relaxed);
    }
    __atomic_sub_fetch(&srv->in_flight, 1, __ATOMIC_SEQ_CST);
}

static void on_mhd_error(void *cls, const char *fmt, va_list ap)
{
    char message[512];
    (void)cls;
    vsnprintf(message, sizeof(message), fmt, ap);
    size_t n = strlen(message);
    while (n && (message[n - 1] == '\n' || message[n - 1] == '\r'))
        message[--n] = '\0';
    log_event(LOG_DEBUG, "http", "detail", message, NULL);
}

/* Each connection is a descriptor, and the usual soft limit of 1024 would
 * refuse connections long before --max-connections: raise the soft limit
 * as far as the hard one allows, and say so when that is still too low
 * (the connection limit is then what the descriptors allow). */
static void fit_descriptor_limit(serve_options *o)
{
    /* the listener, the signal pipe, logs, model files, the worker pools' pipes */
    const rlim_t spare = 64;
    rlim_t wanted = (rlim_t)o->connection_limit + spare;
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0)
        return;
    if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < wanted) {
        limit.rlim_cur = limit.rlim_max == RLIM_INFINITY || limit.rlim_max >= wanted ? wanted : limit.rlim_max;
        setrlimit(RLIMIT_NOFILE, &limit);
        getrlimit(RLIMIT_NOFILE, &limit);
    }
    if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < wanted) {
        unsigned fits = limit.rlim_cur > spare ? (unsigned)(limit.rlim_cur - spare) : 1;
        char asked[16], allowed[16];
        snprintf(asked, sizeof(asked), "%u", o->connection_limit);
        snprintf(allowed, sizeof(allowed), "%u", fits);
        log_event(LOG_WARNING, "the descriptor limit (ulimit -n) holds fewer connections than --max-connections",
                  "max_connections", asked, "connections", allowed, NULL);
        o->connection_limit = fits;
    }
}

int server_run(server *srv)
{
    serve_options *o = &srv->options;
    struct sockaddr_storage addr;
    memset(&addr, 0, sizeof(addr));
    /* the listening socket is ours (listener.h says why) */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC |
                     MHD_USE_ERROR_LOG | MHD_USE_NO_LISTEN_SOCKET;
    socklen_t addr_len;
    struct sockaddr_in *v4 = (struct sockaddr_in *)&addr;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&addr;
    /* the one name accepted without a resolver: what users type for loopback */
    const char *host = strcmp(o->host, "localhost") == 0 ? "127.0.0.1" : o->host;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)o->port);
        addr_len = sizeof(*v4);
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)o->port);
        addr_len = sizeof(*v6);
    } else {
        log_event(LOG_ERROR, "cannot start: --host must be an IPv4 or IPv6 address", "host", o->host, NULL);
        return 1;
    }
    if (pipe2(signal_pipe, O_CLOEXEC) != 0) {
        log_event(LOG_ERROR, "cannot start: pipe failed", "error", strerror(errno), NULL);
        return 1;
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    seed_request_ids();
    fit_descriptor_limit(o);
    srv->pool = workers_start(o->workers);
    srv->admin_pool = srv->pool ? workers_start(1) : NULL;
    if (srv->pool && !srv->admin_pool) {
        workers_stop(srv->pool);
        srv->pool = NULL;
    }
    if (!srv->pool) {
        log_event(LOG_ERROR, "cannot start the worker threads", NULL);
        return 1;
    }
    /* The logger comes first so that libmicrohttpd's remarks on the options
     * that follow go to our log (plain stderr text would break JSON logs).
     * A thread pool is asked for only when it has more than one thread
     * (libmicrohttpd warns about a pool of 0 or 1). */
    struct MHD_OptionItem pool[] = {
        {o->io_threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, (intptr_t)o->io_threads, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    /* gRPC listens first: once HTTP answers ready, so does gRPC */
    if (o->grpc_port >= 0 && !(srv->grpc = grpc_frontend_start(srv))) {
        workers_stop(srv->pool);
        workers_stop(srv->admin_pool);
        return 1;
    }
    int listen_fd = listener_open((struct sockaddr *)&addr, addr_len);
    struct MHD_Daemon *daemon = NULL;
    if (listen_fd >= 0)
        daemon = MHD_start_daemon(
            flags, 0, NULL, NULL, on_request, srv,
            MHD_OPTION_EXTERNAL_LOGGER, on_mhd_error, srv,
            MHD_OPTION_ARRAY, pool,
            MHD_OPTION_CONNECTION_LIMIT, o->connection_limit,
            MHD_OPTION_CONNECTION_TIMEOUT, o->request_timeout,
            MHD_OPTION_CONNECTION_MEMORY_LIMIT, o->max_header,
            MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
            MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv,
            MHD_OPTION_END);
    int bound_port = listen_fd >= 0 ? listener_port(listen_fd) : -1;
    listener *accepting = daemon ? listener_start(listen_fd, daemon, o->connection_limit, &open_connections) : NULL;
    if (!accepting) {
        char port[16];
        snprintf(port, sizeof(port), "%d", o->port);
        if (listen_fd < 0)
            log_event(LOG_ERROR, "cannot listen (address in use or not permitted)", "host", o->host,
                      "port", port, "error", strerror(errno), NULL);
        else
            log_event(LOG_ERROR, "cannot start the HTTP server", "host", o->host, "port", port, NULL);
        if (daemon)
            MHD_stop_daemon(daemon);
        else if (listen_fd >= 0)
            close(listen_fd);
        grpc_frontend_stop(srv->grpc);
        srv->grpc = NULL;
        workers_stop(srv->pool);
        workers_stop(srv->admin_pool);
        return 1;
    }
    char port[16];
    snprintf(port, sizeof(port), "%d", bound_port >= 0 ? bound_port : o->port);
    log_event(LOG_INFO, "listening", "host", o->host, "port", port, NULL);

    /* Wait for a signal, checking the per-request deadline meanwhile. */
    unsigned char sig = 0;
    for (;;) {
        struct pollfd wait_for = {.fd = signal_pipe[0], .events = POLLIN};
        int ready = poll(&wait_for, 1, 100);
        if (ready > 0 && read(signal_pipe[0], &sig, 1) == 1)
            break;
        if (ready < 0 && errno != EINTR)
            break;
        enforce_deadlines(o->request_timeout, 0);
        log_flush(); /* access lines wait at most about this loop's 100 ms */
    }
    char signame[16];
    snprintf(signame, sizeof(signame), "%s", sig == SIGINT ? "SIGINT" : "SIGTERM");
    log_event(LOG_INFO, "stopping: no new connections, finishing requests in flight", "signal",
              signame, NULL);
    srv->stopping = true;
    listener_stop(accepting);
    grpc_frontend_quiesce(srv->grpc);
    /* Requests in flight, and connections accepted just before the signal
     * whose request has not begun arriving (up to 0.2 s), are finished. */
    double deadline = server_now() + o->grace;
    while (server_now() < deadline) {
        int arriving = enforce_deadlines(o->request_timeout, 0.2);
        if (__atomic_load_n(&srv->in_flight, __ATOMIC_SEQ_CST) == 0 && arriving == 0)
            break;
        struct timespec pause = {0, 5 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    int left = __atomic_load_n(&srv->in_flight, __ATOMIC_SEQ_CST);
    if (left > 0) {
        char count[16];
        snprintf(count, sizeof(count), "%d", left);
        log_event(LOG_WARNING, "grace period over; closing requests still in flight", "requests", count, NULL);
    }
    /* inferences already running finish; queued ones are answered 503 at once */
    atomic_store(&abandon_queued, true);
    workers_stop(srv->pool);
    workers_stop(srv->admin_pool);
    grpc_frontend_stop(srv->grpc); /* after the workers: none still answers a call */
    srv->grpc = NULL;
    /* requests in a batch queue are answered by their batch (within the
     * queue delay and a batch run): the daemon must still be there to send
     * them, and libmicrohttpd aborts on suspended connections when it stops */
    while (__atomic_load_n(&srv->deferred, __ATOMIC_SEQ_CST) > 0) {
        struct timespec pause = {0, 2 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    /* ... and it closes resumed ones whose answer the polling thread has not
     * sent yet: wait for those too, but not for a client that stopped reading */
    double give_up = server_now() + DEFERRED_SEND_MAX_SECONDS;
    while (__atomic_load_n(&srv->deferred_unsent, __ATOMIC_SEQ_CST) > 0 && server_now() < give_up) {
        struct timespec pause = {0, 2 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    MHD_stop_daemon(daemon);
    log_flush();
    close(signal_pipe[0]);
    close(signal_pipe[1]);
    log_event(LOG_INFO, "stopped", NULL);
    return 0;
}
