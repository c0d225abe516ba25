/*
 * queue_redis.c — the job queue on Redis, shared by many servers and
 * workers on many machines (Redis >= 6.2 for XAUTOCLAIM).
 *
 * Layout, for a queue named N:
 *   N:stream     a Stream of job ids in submission order, read through one
 *                consumer group, N:workers. An entry stays in the stream
 *                until the job finishes or is re-queued (XACK + XDEL), so
 *                XLEN is the number of pending (queued + running) jobs: the
 *                cap check.
 *   N:job:<id>   a hash, the job's record: state, model, version, payload,
 *                attempts, timing, result or error, and `entry`, the stream
 *                entry that currently carries the job. It gets a TTL (EXPIRE)
 *                when the job finishes.
 *
 * Every state change is one Lua script, so it is atomic on the server
 * whatever happens to the client. A claim is XREADGROUP (or XAUTOCLAIM for
 * an entry whose worker went silent longer than the visibility timeout)
 * followed by the `start` script, which counts the attempt and gives up on
 * the job once its attempts are used; an entry that no longer carries a
 * live job (cancelled, finished, re-queued under a new entry) is acked and
 * dropped there.
 *
 * Connections: a small pool, one connection per call in flight, so a claim
 * blocked in XREADGROUP does not stall submits from other threads. When
 * Redis is lost every call answers JOBS_UNAVAILABLE at once; reconnecting is
 * tried again after a backoff that doubles from 0.1 s up to 5 s.
 */
#include "jobs_backend.h"

#include <hiredis/hiredis.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define POOL_MAX 16
#define CONNECT_TIMEOUT_SECONDS 2.0
#define COMMAND_TIMEOUT_SECONDS 10.0
#define BACKOFF_FIRST 0.1
#define BACKOFF_MAX 5.0
#define AUTOCLAIM_EVERY_SECONDS 1.0

enum {
    SCRIPT_SUBMIT,
    SCRIPT_START,
    SCRIPT_COMPLETE,
    SCRIPT_FAIL,
    SCRIPT_EXTEND,
    SCRIPT_CANCEL,
    SCRIPTS
};

/* KEYS[1] stream, KEYS[2] job hash, ARGV[1] group; the rest per script.
 * (Not clang-formatted: one Lua line per C line reads better.) */
/* clang-format off */
static const char *const script_text[SCRIPTS] = {
    /* ARGV: group, cap, id, model, version, content_type, payload, max_retries, ttl, queued_at
     * -> entry id, or 0 when full */
    [SCRIPT_SUBMIT] = "if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end\n"
                      "local entry = redis.call('XADD', KEYS[1], '*', 'id', ARGV[3])\n"
                      "redis.call('HSET', KEYS[2], 'state', 'queued', 'model', ARGV[4], 'version', ARGV[5],\n"
                      "  'content_type', ARGV[6], 'payload', ARGV[7], 'max_retries', ARGV[8],\n"
                      "  'result_ttl', ARGV[9], 'queued_at', ARGV[10], 'attempts', 0, 'entry', entry)\n"
                      "return entry\n",
    /* ARGV: group, entry, worker, now -> {1, attempt, model, version, content_type, payload,
     * max_retries, queued_at, 1 when a lost worker had it}, {0} when the entry carries no live
     * job, {2} when a lost worker had it and its attempts are used up (now failed) */
    [SCRIPT_START] =
        "local function drop()\n"
        "  redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]); redis.call('XDEL', KEYS[1], ARGV[2])\n"
        "end\n"
        "local job = redis.call('HMGET', KEYS[2], 'state', 'entry', 'max_retries', 'result_ttl', 'worker')\n"
        "if (job[1] ~= 'queued' and job[1] ~= 'running') or job[2] ~= ARGV[2] then drop(); return {0} end\n"
        "local attempts = redis.call('HINCRBY', KEYS[2], 'attempts', 1)\n"
        "if job[1] == 'running' then\n"
        "  local lost = 'worker ' .. (job[5] or '?') .. ' lost the job on attempt ' .. (attempts - 1) ..\n"
        "    ' (no word within the visibility timeout)'\n"
        "  if attempts > tonumber(job[3]) + 1 then\n"
        "    redis.call('HSET', KEYS[2], 'state', 'failed', 'finished_at', ARGV[4], 'attempts', attempts - 1,\n"
        "      'error', 'gave up after ' .. (attempts - 1) .. ' attempts: ' .. lost)\n"
        "    redis.call('HDEL', KEYS[2], 'payload', 'worker')\n"
        "    redis.call('EXPIRE', KEYS[2], math.ceil(tonumber(job[4])))\n"
        "    drop(); return {2}\n"
        "  end\n"
        "  redis.call('HSET', KEYS[2], 'error', lost)\n"
        "end\n"
        "redis.call('HSET', KEYS[2], 'state', 'running', 'worker', ARGV[3], 'started_at', ARGV[4])\n"
        "local f = redis.call('HMGET', KEYS[2], 'model', 'version', 'content_type', 'payload', 'queued_at')\n"
        "return {1, attempts, f[1], f[2], f[3], f[4], tonumber(job[3]), f[5], job[1] == 'running' and 1 or 0}\n",
    /* ARGV: group, entry, result, content_type, now -> 1 stored, 0 already finished, -1 gone */
    [SCRIPT_COMPLETE] =
        "local job = redis.call('HMGET', KEYS[2], 'state', 'entry', 'result_ttl')\n"
        "if not job[1] then return -1 end\n"
        "if job[1] ~= 'queued' and job[1] ~= 'running' then return 0 end\n"
        "redis.call('HSET', KEYS[2], 'state', 'done', 'result', ARGV[3], 'result_content_type', ARGV[4],\n"
        "  'finished_at', ARGV[5])\n"
        "redis.call('HDEL', KEYS[2], 'payload', 'error', 'worker')\n"
        "redis.call('EXPIRE', KEYS[2], math.ceil(tonumber(job[3])))\n"
        "for _, entry in ipairs({job[2], ARGV[2]}) do\n"
        "  redis.call('XACK', KEYS[1], ARGV[1], entry); redis.call('XDEL', KEYS[1], entry)\n"
        "end\n"
        "return 1\n",
    /* ARGV: group, entry, reason, retryable, attempt, now, id -> 1 re-queued, 2 failed,
     * 0 stale claim, -1 gone */
    [SCRIPT_FAIL] =
        "local job = redis.call('HMGET', KEYS[2], 'state', 'entry', 'attempts', 'max_retries', 'result_ttl')\n"
        "if not job[1] then return -1 end\n"
        "if job[1] ~= 'running' or job[2] ~= ARGV[2] or job[3] ~= ARGV[5] then return 0 end\n"
        "redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]); redis.call('XDEL', KEYS[1], ARGV[2])\n"
        "local attempts = tonumber(job[3])\n"
        "if ARGV[4] == '1' and attempts <= tonumber(job[4]) then\n"
        "  local entry = redis.call('XADD', KEYS[1], '*', 'id', ARGV[7])\n"
        "  redis.call('HSET', KEYS[2], 'state', 'queued', 'error', ARGV[3], 'entry', entry)\n"
        "  redis.call('HDEL', KEYS[2], 'worker')\n"
        "  return 1\n"
        "end\n"
        "local reason = ARGV[3]\n"
        "if ARGV[4] == '1' then reason = 'gave up after ' .. attempts .. ' attempts: ' .. reason end\n"
        "redis.call('HSET', KEYS[2], 'state', 'failed', 'error', reason, 'finished_at', ARGV[6])\n"
        "redis.call('HDEL', KEYS[2], 'payload', 'worker')\n"
        "redis.call('EXPIRE', KEYS[2], math.ceil(tonumber(job[5])))\n"
        "return 2\n",
    /* ARGV: group, entry, attempt -> 1 extended, 0 claim lost, -1 gone */
    [SCRIPT_EXTEND] =
        "local job = redis.call('HMGET', KEYS[2], 'state', 'entry', 'attempts', 'worker')\n"
        "if not job[1] then return -1 end\n"
        "if job[1] ~= 'running' or job[2] ~= ARGV[2] or job[3] ~= ARGV[3] then return 0 end\n"
        "redis.call('XCLAIM', KEYS[1], ARGV[1], job[4], 0, ARGV[2], 'JUSTID')\n"
        "return 1\n",
    /* ARGV: group, now -> 'ok', or the job's state when it cannot be cancelled, or '' when gone */
    [SCRIPT_CANCEL] =
        "local job = redis.call('HMGET', KEYS[2], 'state', 'entry', 'result_ttl')\n"
        "if not job[1] then return '' end\n"
        "if job[1] ~= 'queued' then return job[1] end\n"
        "redis.call('HSET', KEYS[2], 'state', 'cancelled', 'finished_at', ARGV[2])\n"
        "redis.call('HDEL', KEYS[2], 'payload')\n"
        "redis.call('XACK', KEYS[1], ARGV[1], job[2]); redis.call('XDEL', KEYS[1], job[2])\n"
        "redis.call('EXPIRE', KEYS[2], math.ceil(tonumber(job[3])))\n"
        "return 'ok'\n",
};
/* clang-format on */

typedef struct redis_queue {
    jobs_queue *queue;
    char host[256];
    int port, db;
    char *password;
    char *stream_key, *group, *job_prefix, *url_shown; /* url_shown: without the password */
    char sha[SCRIPTS][41];

    pthread_mutex_t lock; /* guards everything below */
    redisContext *idle[POOL_MAX];
    int idle_count;
    bool down;
    double retry_at, backoff;
    char last_error[256];
    char autoclaim_cursor[48];
    double next_autoclaim_at;
} redis_queue;

/* ---- URL and connections ---- */

bool jobs_redis_parse_url(const char *url, jobs_redis_address *address, char *err, size_t err_size)
{
    memset(address, 0, sizeof(*address));
    if (strncmp(url, "redis://", 8) != 0) {
        jobs_set_error(err, err_size, "queue URL %s: expected redis://host[:port][/db]", url);
        return false;
    }
    const char *rest = url + 8;
    const char *slash = strchr(rest, '/');
    const char *at = memchr(rest, '@', slash ? (size_t)(slash - rest) : strlen(rest));
    if (at) {
        const char *colon = memchr(rest, ':', (size_t)(at - rest));
        const char *secret = colon ? colon + 1 : rest;
        size_t secret_len = (size_t)(at - secret);
        if (secret_len == 0 || secret_len >= sizeof(address->password)) {
            jobs_set_error(err, err_size, "queue URL: the password must be 1 to %zu characters",
                           sizeof(address->password) - 1);
            return false;
        }
        memcpy(address->password, secret, secret_len);
        rest = at + 1;
    }
    slash = strchr(rest, '/');
    size_t host_end = slash ? (size_t)(slash - rest) : strlen(rest);
    const char *colon = memchr(rest, ':', host_end);
    size_t host_len = colon ? (size_t)(colon - rest) : host_end;
    if (host_len == 0 || host_len >= sizeof(address->host)) {
        jobs_set_error(err, err_size,
                       "queue URL redis://%.*s: %s (expected redis://host[:port][/db])",
                       (int)host_end, rest, host_len ? "host name too long" : "no host");
        return false;
    }
    memcpy(address->host, rest, host_len);
    address->port = 6379;
    if (colon) {
        char *end;
        long port = strtol(colon + 1, &end, 10);
        if (end == colon + 1 || end != rest + host_end || port < 1 || port > 65535 ||
            colon[1] == '-' || colon[1] == '+' || colon[1] == ' ') {
            jobs_set_error(err, err_size,
                           "queue URL %s: port \"%.*s\" is not a number from 1 to 65535",
                           address->host, (int)(rest + host_end - colon - 1), colon + 1);
            return false;
        }
        address->port = (int)port;
    }
    if (slash && slash[1]) {
        char *end;
        long db = strtol(slash + 1, &end, 10);
        if (*end || db < 0 || db > 1000000 || slash[1] == '-' || slash[1] == '+' ||
            slash[1] == ' ') {
            jobs_set_error(err, err_size, "queue URL %s: database \"%.20s\" is not a number from 0",
                           address->host, slash + 1);
            return false;
        }
        address->db = (int)db;
    }
    return true;
}

static bool parse_url(redis_queue *q, const char *url, char *err, size_t err_size)
{
    jobs_redis_address address;
    if (!jobs_redis_parse_url(url, &address, err, err_size))
        return false;
    memcpy(q->host, address.host, sizeof(q->host));
    q->port = address.port;
    q->db = address.db;
    if (address.password[0] && !(q->password = strdup(address.password))) {
        jobs_set_error(err, err_size, "out of memory");
        return false;
    }
    size_t shown = strlen(q->host) + 64;
    q->url_shown = malloc(shown);
    if (q->url_shown)
        snprintf(q->url_shown, shown, "redis://%s:%d/%d", q->host, q->port, q->db);
    else
        jobs_set_error(err, err_size, "out of memory");
    return q->url_shown != NULL;
}

static struct timeval timeval_of(double seconds)
{
    struct timeval tv = {(time_t)seconds, (suseconds_t)((seconds - (double)(time_t)seconds) * 1e6)};
    return tv;
}

/* Runs a command; NULL when the connection broke (the error says why). */
static redisReply *call(redis_queue *q, redisContext *c, int argc, const char **argv,
                        const size_t *lens, char *err, size_t err_size)
{
    redisReply *reply = redisCommandArgv(c, argc, argv, lens);
    if (!reply)
        jobs_set_error(err, err_size, "queue unavailable: %s: lost the connection: %s",
                       q->url_shown, c->errstr[0] ? c->errstr : "no reply");
    return reply;
}

/* A Redis error reply: unavailable when it is about the server's state
 * (loading, out of memory, a replica), else a storage error. */
static jobs_status reply_error(redis_queue *q, const redisReply *reply, const char *doing,
                               char *err, size_t err_size)
{
    static const char *const transient[] = {"LOADING",  "BUSY",     "OOM",        "MASTERDOWN",
                                            "READONLY", "TRYAGAIN", "CLUSTERDOWN"};
    bool unavailable = false;
    for (size_t i = 0; i < sizeof(transient) / sizeof(*transient); i++)
        if (strncmp(reply->str, transient[i], strlen(transient[i])) == 0)
            unavailable = true;
    jobs_set_error(err, err_size, "%s%s: %s: %s", unavailable ? "queue unavailable: " : "",
                   q->url_shown, doing, reply->str);
    return unavailable ? JOBS_UNAVAILABLE : JOBS_IO_ERROR;
}

static jobs_status create_group(redis_queue *q, redisContext *c, char *err, size_t err_size)
{
    const char *argv[] = {"XGROUP", "CREATE", q->stream_key, q->group, "0", "MKSTREAM"};
    redisReply *reply = call(q, c, 6, argv, NULL, err, err_size);
    if (!reply)
        return JOBS_UNAVAILABLE;
    jobs_status status = JOBS_OK;
    if (reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "BUSYGROUP", 9) != 0)
        status = reply_error(q, reply, "creating the consumer group", err, err_size);
    freeReplyObject(reply);
    return status;
}

/* A new connection, authenticated, on the right database, with the group. */
static jobs_status connect_new(redis_queue *q, redisContext **out, char *err, size_t err_size)
{
    redisContext *c =
        redisConnectWithTimeout(q->host, q->port, timeval_of(CONNECT_TIMEOUT_SECONDS));
    if (!c || c->err) {
        jobs_set_error(err, err_size, "queue unavailable: cannot connect to %s: %s", q->url_shown,
                       c ? c->errstr : "out of memory");
        redisFree(c);
        return JOBS_UNAVAILABLE;
    }
    redisSetTimeout(c, timeval_of(COMMAND_TIMEOUT_SECONDS));
    jobs_status status = JOBS_OK;
    char db[16];
    snprintf(db, sizeof(db), "%d", q->db);
    const char *auth[] = {"AUTH", q->password};
    const char *select[] = {"SELECT", db};
    const char *ping[] = {"PING"};
    const char **steps[] = {q->password ? auth : NULL, select, ping};
    const int step_argc[] = {2, 2, 1};
    const char *step_names[] = {"AUTH", "SELECT", "PING"};
    for (int i = 0; status == JOBS_OK && i < 3; i++) {
        if (!steps[i])
            continue;
        redisReply *reply = call(q, c, step_argc[i], steps[i], NULL, err, err_size);
        if (!reply)
            status = JOBS_UNAVAILABLE;
        else if (reply->type == REDIS_REPLY_ERROR)
            status = reply_error(q, reply, step_names[i], err, err_size);
        freeReplyObject(reply);
    }
    if (status == JOBS_OK)
        status = create_group(q, c, err, err_size);
    if (status != JOBS_OK) {
        redisFree(c);
        return status;
    }
    *out = c;
    return JOBS_OK;
}

static jobs_status acquire(redis_queue *q, redisContext **out, char *err, size_t err_size)
{
    pthread_mutex_lock(&q->lock);
    if (q->idle_count > 0) {
        *out = q->idle[--q->idle_count];
        pthread_mutex_unlock(&q->lock);
        return JOBS_OK;
    }
    double now = jobs_now();
    if (q->down && now < q->retry_at) {
        jobs_set_error(err, err_size, "%s (reconnecting in %.1f s)", q->last_error,
                       q->retry_at - now);
        pthread_mutex_unlock(&q->lock);
        return JOBS_UNAVAILABLE;
    }
    pthread_mutex_unlock(&q->lock);

    jobs_status status = connect_new(q, out, err, err_size);
    pthread_mutex_lock(&q->lock);
    if (status == JOBS_UNAVAILABLE) {
        q->down = true;
        q->backoff = q->backoff > 0 ? fmin(q->backoff * 2, BACKOFF_MAX) : BACKOFF_FIRST;
        q->retry_at = jobs_now() + q->backoff;
        snprintf(q->last_error, sizeof(q->last_error), "%s", err);
    } else if (status == JOBS_OK) {
        q->down = false;
        q->backoff = 0;
    }
    pthread_mutex_unlock(&q->lock);
    return status;
}

/* Gives a connection back; a broken one is closed with every idle one,
 * which were almost surely cut by the same event. */
static void release(redis_queue *q, redisContext *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&q->lock);
    if (c->err) {
        redisFree(c);
        while (q->idle_count > 0)
            redisFree(q->idle[--q->idle_count]);
    } else if (q->idle_count < POOL_MAX) {
        q->idle[q->idle_count++] = c;
        c = NULL;
    } else {
        redisFree(c);
    }
    pthread_mutex_unlock(&q->lock);
}

/* EVALSHA, falling back to EVAL when the server does not know the script
 * (restarted, SCRIPT FLUSH). args[0..1] are the keys. */
static redisReply *run_script(redis_queue *q, redisContext *c, int script, int argc,
                              const char **args, const size_t *lens, char *err, size_t err_size)
{
    const char *argv[16];
    size_t argv_lens[16];
    argv[0] = "EVALSHA";
    argv[1] = q->sha[script];
    argv[2] = "2";
    for (int i = 0; i < 3; i++)
        argv_lens[i] = strlen(argv[i]);
    for (int i = 0; i < argc; i++) {
        argv[3 + i] = args[i];
        argv_lens[3 + i] = lens && lens[i] != (size_t)-1 ? lens[i] : strlen(args[i]);
    }
    redisReply *reply = call(q, c, 3 + argc, argv, argv_lens, err, err_size);
    if (reply && reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOSCRIPT", 8) == 0) {
        freeReplyObject(reply);
        argv[0] = "EVAL";
        argv[1] = script_text[script];
        argv_lens[0] = 4;
        argv_lens[1] = strlen(script_text[script]);
        reply = call(q, c, 3 + argc, argv, argv_lens, err, err_size);
    }
    return reply;
}

static jobs_status load_scripts(redis_queue *q, redisContext *c, char *err, size_t err_size)
{
    for (int i = 0; i < SCRIPTS; i++) {
        const char *argv[] = {"SCRIPT", "LOAD", script_text[i]};
        redisReply *reply = call(q, c, 3, argv, NULL, err, err_size);
        if (!reply)
            return JOBS_UNAVAILABLE;
        jobs_status status = JOBS_OK;
        if (reply->type == REDIS_REPLY_ERROR)
            status = reply_error(q, reply, "loading the queue's scripts", err, err_size);
        else if (reply->type != REDIS_REPLY_STRING || reply->len != 40) {
            jobs_set_error(err, err_size, "%s: SCRIPT LOAD did not answer a SHA1", q->url_shown);
            status = JOBS_IO_ERROR;
        } else
            memcpy(q->sha[i], reply->str, 41);
        freeReplyObject(reply);
        if (status != JOBS_OK)
            return status;
    }
    return JOBS_OK;
}

/* XAUTOCLAIM came with Redis 6.2: say so at open rather than fail every claim. */
static jobs_status check_version(redis_queue *q, redisContext *c, char *err, size_t err_size)
{
    const char *argv[] = {"COMMAND", "INFO", "XAUTOCLAIM"};
    redisReply *reply = call(q, c, 3, argv, NULL, err, err_size);
    if (!reply)
        return JOBS_UNAVAILABLE;
    jobs_status status = JOBS_OK;
    if (reply->type == REDIS_REPLY_ERROR) {
        status = reply_error(q, reply, "COMMAND INFO", err, err_size);
    } else if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 1 ||
               reply->element[0]->type != REDIS_REPLY_ARRAY) {
        jobs_set_error(err, err_size,
                       "%s: the job queue needs Redis 6.2 or newer (this server has no XAUTOCLAIM)",
                       q->url_shown);
        status = JOBS_INVALID;
    }
    freeReplyObject(reply);
    return status;
}

static void redis_close(void *backend)
{
    redis_queue *q = backend;
    if (!q)
        return;
    while (q->idle_count > 0)
        redisFree(q->idle[--q->idle_count]);
    pthread_mutex_destroy(&q->lock);
    free(q->password);
    free(q->stream_key);
    free(q->group);
    free(q->job_prefix);
    free(q->url_shown);
    free(q);
}

static char *concat(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 1;
    char *text = malloc(n);
    if (text)
        snprintf(text, n, "%s%s", a, b);
    return text;
}

static jobs_status redis_open(jobs_queue *queue, char *err, size_t err_size)
{
    redis_queue *q = calloc(1, sizeof(*q));
    if (!q) {
        jobs_set_error(err, err_size, "out of memory");
        return JOBS_IO_ERROR;
    }
    q->queue = queue;
    pthread_mutex_init(&q->lock, NULL);
    snprintf(q->autoclaim_cursor, sizeof(q->autoclaim_cursor), "0-0");
    if (!parse_url(q, queue->url, err, err_size)) {
        redis_close(q);
        return JOBS_INVALID;
    }
    q->stream_key = concat(queue->name, ":stream");
    q->group = concat(queue->name, ":workers");
    q->job_prefix = concat(queue->name, ":job:");
    if (!q->stream_key || !q->group || !q->job_prefix) {
        jobs_set_error(err, err_size, "out of memory");
        redis_close(q);
        return JOBS_IO_ERROR;
    }
    redisContext *c = NULL;
    jobs_status status = connect_new(q, &c, err, err_size);
    if (status == JOBS_OK)
        status = check_version(q, c, err, err_size);
    if (status == JOBS_OK)
        status = load_scripts(q, c, err, err_size);
    if (status != JOBS_OK) {
        redisFree(c);
        redis_close(q);
        return status;
    }
    release(q, c);
    queue->backend = q;
    queue->location = strdup(q->url_shown);
    return JOBS_OK;
}

/* ---- the operations ---- */

static void job_key(const redis_queue *q, const char *id, char *key, size_t size)
{
    snprintf(key, size, "%s%s", q->job_prefix, id);
}

static jobs_status redis_submit(void *backend, const jobs_new_job *job, char *err, size_t err_size)
{
    redis_queue *q = backend;
    redisContext *c;
    jobs_status status = acquire(q, &c, err, err_size);
    if (status != JOBS_OK)
        return status;
    char key[256], cap[32], retries[16], ttl[32], queued_at[32];
    job_key(q, job->id, key, sizeof(key));
    snprintf(cap, sizeof(cap), "%llu", (unsigned long long)q->queue->max_queued);
    snprintf(retries, sizeof(retries), "%u", job->max_retries);
    snprintf(ttl, sizeof(ttl), "%.3f", job->result_ttl);
    snprintf(queued_at, sizeof(queued_at), "%.6f", job->queued_at);
    const char *args[] = {q->stream_key,
                          key,
                          q->group,
                          cap,
                          job->id,
                          job->model,
                          job->version,
                          job->content_type,
                          (const char *)job->payload,
                          retries,
                          ttl,
                          queued_at};
    size_t lens[12];
    for (int i = 0; i < 12; i++)
        lens[i] = (size_t)-1;
    lens[8] = job->payload_size;
    redisReply *reply = run_script(q, c, SCRIPT_SUBMIT, 12, args, lens, err, err_size);
    if (!reply) {
        status = JOBS_UNAVAILABLE;
    } else if (reply->type == REDIS_REPLY_ERROR) {
        status = reply_error(q, reply, "submitting a job", err, err_size);
    } else if (reply->type == REDIS_REPLY_INTEGER) {
        uint64_t pending = 0;
        const char *xlen[] = {"XLEN", q->stream_key};
        redisReply *count = call(q, c, 2, xlen, NULL, err, err_size);
        if (count && count->type == REDIS_REPLY_INTEGER)
            pending = (uint64_t)count->integer;
        freeReplyObject(count);
        jobs_set_error(err, err_size, "job queue is full: %llu jobs pending (at most %llu)",
                       (unsigned long long)pending, (unsigned long long)q->queue->max_queued);
        status = JOBS_FULL;
    }
    freeReplyObject(reply);
    release(q, c);
    return status;
}

static char *reply_text(const redisReply *reply, size_t *size)
{
    if (!reply || (reply->type != REDIS_REPLY_STRING && reply->type != REDIS_REPLY_STATUS))
        return NULL;
    if (size)
        *size = reply->len;
    return jobs_memdup(reply->str, reply->len);
}

static double reply_number(const redisReply *reply)
{
    if (!reply)
        return 0;
    if (reply->type == REDIS_REPLY_INTEGER)
        return (double)reply->integer;
    if (reply->type == REDIS_REPLY_STRING)
        return strtod(reply->str, NULL);
    return 0;
}

/* Finds the job id in a stream entry [entry id, [field, value, ...]]. */
static bool entry_job(const redisReply *entry, char *entry_id, size_t entry_size,
                      char id[JOBS_ID_LEN + 1])
{
    if (!entry || entry->type != REDIS_REPLY_ARRAY || entry->elements < 2 ||
        entry->element[0]->type != REDIS_REPLY_STRING || entry->element[0]->len >= entry_size)
        return false;
    memcpy(entry_id, entry->element[0]->str, entry->element[0]->len + 1);
    const redisReply *fields = entry->element[1];
    id[0] = 0;
    if (fields->type != REDIS_REPLY_ARRAY)
        return true; /* deleted meanwhile: start() drops it */
    for (size_t i = 0; i + 1 < fields->elements; i += 2)
        if (fields->element[i]->type == REDIS_REPLY_STRING &&
            strcmp(fields->element[i]->str, "id") == 0 &&
            fields->element[i + 1]->type == REDIS_REPLY_STRING &&
            fields->element[i + 1]->len == JOBS_ID_LEN)
            memcpy(id, fields->element[i + 1]->str, JOBS_ID_LEN + 1);
    return true;
}

/* Acks and deletes an entry that carries no job id (not written by inferd). */
static void drop_entry(redis_queue *q, redisContext *c, const char *entry_id)
{
    char err[64];
    const char *ack[] = {"XACK", q->stream_key, q->group, entry_id};
    const char *del[] = {"XDEL", q->stream_key, entry_id};
    freeReplyObject(call(q, c, 4, ack, NULL, err, sizeof(err)));
    if (!c->err)
        freeReplyObject(call(q, c, 3, del, NULL, err, sizeof(err)));
}

/* The start script on one delivered entry: JOBS_OK with the job, or
 * JOBS_EMPTY when the entry carried no live job. */
static jobs_status start(redis_queue *q, redisContext *c, const char *worker, const char *entry_id,
                         const char *id, jobs_job **out, char *err, size_t err_size)
{
    if (!jobs_id_valid(id)) {
        drop_entry(q, c, entry_id);
        return c->err ? JOBS_UNAVAILABLE : JOBS_EMPTY;
    }
    char key[256], now_text[32];
    job_key(q, id, key, sizeof(key));
    double now = jobs_now();
    snprintf(now_text, sizeof(now_text), "%.6f", now);
    const char *args[] = {q->stream_key, key, q->group, entry_id, worker, now_text};
    redisReply *reply = run_script(q, c, SCRIPT_START, 6, args, NULL, err, err_size);
    if (!reply)
        return JOBS_UNAVAILABLE;
    jobs_status status = JOBS_EMPTY;
    if (reply->type == REDIS_REPLY_ERROR) {
        status = reply_error(q, reply, "starting a job", err, err_size);
    } else if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 1 &&
               reply->element[0]->integer == 2) {
        jobs_count_lost(q->queue, 0, 1);
    } else if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 9 &&
               reply->element[0]->integer == 1) {
        if (reply->element[8]->integer == 1)
            jobs_count_lost(q->queue, 1, 0);
        jobs_job *job = calloc(1, sizeof(*job));
        if (!job) {
            jobs_set_error(err, err_size, "out of memory");
            status = JOBS_IO_ERROR;
        } else {
            memcpy(job->id, id, JOBS_ID_LEN + 1);
            job->attempt = (unsigned)reply->element[1]->integer;
            job->model = reply_text(reply->element[2], NULL);
            job->version = reply_text(reply->element[3], NULL);
            job->content_type = reply_text(reply->element[4], NULL);
            job->payload = (unsigned char *)reply_text(reply->element[5], &job->payload_size);
            job->max_retries = (unsigned)reply->element[6]->integer;
            job->queued_at = reply_number(reply->element[7]);
            job->started_at = now;
            snprintf(job->claim, sizeof(job->claim), "%s", entry_id);
            if (!job->model || !job->version || !job->content_type || !job->payload) {
                jobs_set_error(err, err_size, "job %s: its record in %s is incomplete", id,
                               q->url_shown);
                jobs_job_free(job);
                status = JOBS_IO_ERROR;
            } else {
                *out = job;
                status = JOBS_OK;
            }
        }
    }
    freeReplyObject(reply);
    return status;
}

/* XAUTOCLAIM: one entry whose worker has been silent longer than the
 * visibility timeout, walking the pending list with a cursor kept across
 * calls. Sets entry_id[0] = 0 when there is none. */
static jobs_status reclaim_one(redis_queue *q, redisContext *c, const char *worker, char *entry_id,
                               size_t entry_size, char id[JOBS_ID_LEN + 1], char *err,
                               size_t err_size)
{
    entry_id[0] = 0;
    char cursor[48], idle_ms[32];
    pthread_mutex_lock(&q->lock);
    double now = jobs_now();
    bool due = now >= q->next_autoclaim_at;
    memcpy(cursor, q->autoclaim_cursor, sizeof(cursor));
    if (due)
        q->next_autoclaim_at = now + AUTOCLAIM_EVERY_SECONDS;
    pthread_mutex_unlock(&q->lock);
    if (!due)
        return JOBS_OK;
    snprintf(idle_ms, sizeof(idle_ms), "%.0f", q->queue->visibility_timeout * 1000);
    const char *argv[] = {"XAUTOCLAIM", q->stream_key, q->group, worker,
                          idle_ms,      cursor,        "COUNT",  "1"};
    redisReply *reply = call(q, c, 8, argv, NULL, err, err_size);
    if (!reply)
        return JOBS_UNAVAILABLE;
    jobs_status status = JOBS_OK;
    if (reply->type == REDIS_REPLY_ERROR) {
        if (strncmp(reply->str, "NOGROUP", 7) == 0)
            status = create_group(q, c, err, err_size);
        else
            status = reply_error(q, reply, "XAUTOCLAIM", err, err_size);
    } else if (reply->type == REDIS_REPLY_ARRAY && reply->elements >= 2 &&
               reply->element[0]->type == REDIS_REPLY_STRING) {
        pthread_mutex_lock(&q->lock);
        snprintf(q->autoclaim_cursor, sizeof(q->autoclaim_cursor), "%s", reply->element[0]->str);
        const redisReply *entries = reply->element[1];
        if (entries->type == REDIS_REPLY_ARRAY && entries->elements > 0 &&
            entry_job(entries->element[0], entry_id, entry_size, id))
            q->next_autoclaim_at = 0; /* there may be more: look again at once */
        pthread_mutex_unlock(&q->lock);
    }
    freeReplyObject(reply);
    return status;
}

static jobs_status read_new(redis_queue *q, redisContext *c, const char *worker, double wait,
                            char *entry_id, size_t entry_size, char id[JOBS_ID_LEN + 1], char *err,
                            size_t err_size)
{
    entry_id[0] = 0;
    char block_ms[32];
    long ms = (long)(wait * 1000);
    snprintf(block_ms, sizeof(block_ms), "%ld", ms);
    /* BLOCK 0 would wait forever: no BLOCK at all for a zero wait */
    const char *argv[] = {"XREADGROUP", "GROUP",  q->group,  worker,        "COUNT", "1",
                          "BLOCK",      block_ms, "STREAMS", q->stream_key, ">"};
    const char *argv_now[] = {"XREADGROUP", "GROUP",   q->group,      worker, "COUNT",
                              "1",          "STREAMS", q->stream_key, ">"};
    redisSetTimeout(c, timeval_of(COMMAND_TIMEOUT_SECONDS + wait));
    redisReply *reply = ms > 0 ? call(q, c, 11, argv, NULL, err, err_size)
                               : call(q, c, 9, argv_now, NULL, err, err_size);
    if (!c->err)
        redisSetTimeout(c, timeval_of(COMMAND_TIMEOUT_SECONDS));
    if (!reply)
        return JOBS_UNAVAILABLE;
    jobs_status status = JOBS_OK;
    if (reply->type == REDIS_REPLY_ERROR) {
        if (strncmp(reply->str, "NOGROUP", 7) == 0)
            status = create_group(q, c, err, err_size); /* Redis lost its data: start afresh */
        else
            status = reply_error(q, reply, "XREADGROUP", err, err_size);
    } else if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 1 &&
               reply->element[0]->type == REDIS_REPLY_ARRAY && reply->element[0]->elements == 2) {
        const redisReply *entries = reply->element[0]->element[1];
        if (entries->type == REDIS_REPLY_ARRAY && entries->elements > 0)
            entry_job(entries->element[0], entry_id, entry_size, id);
    }
    freeReplyObject(reply);
    return status;
}

static jobs_status redis_claim(void *backend, const char *worker, double timeout, jobs_job **out,
                               char *err, size_t err_size)
{
    redis_queue *q = backend;
    redisContext *c;
    jobs_status status = acquire(q, &c, err, err_size);
    if (status != JOBS_OK)
        return status;
    double deadline = jobs_now() + timeout;
    status = JOBS_EMPTY;
    while (status == JOBS_EMPTY) {
        char entry_id[48], id[JOBS_ID_LEN + 1];
        status = reclaim_one(q, c, worker, entry_id, sizeof(entry_id), id, err, err_size);
        if (status == JOBS_OK && !entry_id[0]) {
            double left = deadline - jobs_now();
            /* wake at least every second to look for lost workers' jobs */
            double wait = left < AUTOCLAIM_EVERY_SECONDS ? left : AUTOCLAIM_EVERY_SECONDS;
            status = read_new(q, c, worker, wait > 0 ? wait : 0, entry_id, sizeof(entry_id), id,
                              err, err_size);
        }
        if (status != JOBS_OK)
            break;
        status = entry_id[0] ? start(q, c, worker, entry_id, id, out, err, err_size) : JOBS_EMPTY;
        if (status == JOBS_EMPTY && jobs_now() >= deadline)
            break;
    }
    release(q, c);
    return status;
}

static jobs_status script_on_job(redis_queue *q, int script, const char *id, int argc,
                                 const char **extra, const size_t *extra_lens, redisReply **out,
                                 char *err, size_t err_size)
{
    redisContext *c;
    jobs_status status = acquire(q, &c, err, err_size);
    if (status != JOBS_OK)
        return status;
    char key[256];
    job_key(q, id, key, sizeof(key));
    const char *args[12] = {q->stream_key, key, q->group};
    size_t lens[12] = {(size_t)-1, (size_t)-1, (size_t)-1};
    for (int i = 0; i < argc; i++) {
        args[3 + i] = extra[i];
        lens[3 + i] = extra_lens ? extra_lens[i] : (size_t)-1;
    }
    redisReply *reply = run_script(q, c, script, 3 + argc, args, lens, err, err_size);
    if (!reply) {
        status = JOBS_UNAVAILABLE;
    } else if (reply->type == REDIS_REPLY_ERROR) {
        status = reply_error(q, reply, "updating a job", err, err_size);
        freeReplyObject(reply);
        reply = NULL;
    }
    release(q, c);
    *out = reply;
    return status;
}

static jobs_status not_found(const char *id, char *err, size_t err_size)
{
    jobs_set_error(err, err_size, "job %s: no such job (unknown, or its result expired)", id);
    return JOBS_NOT_FOUND;
}

static jobs_status redis_complete(void *backend, const jobs_job *job, const void *result,
                                  size_t result_size, const char *content_type, jobs_effect *effect,
                                  char *err, size_t err_size)
{
    char now[32];
    snprintf(now, sizeof(now), "%.6f", jobs_now());
    const char *extra[] = {job->claim, result, content_type, now};
    size_t lens[] = {(size_t)-1, result_size, (size_t)-1, (size_t)-1};
    redisReply *reply;
    jobs_status status =
        script_on_job(backend, SCRIPT_COMPLETE, job->id, 4, extra, lens, &reply, err, err_size);
    if (status != JOBS_OK)
        return status;
    if (reply->integer < 0)
        status = not_found(job->id, err, err_size);
    else if (reply->integer == 1)
        *effect = JOBS_EFFECT_DONE;
    freeReplyObject(reply);
    return status;
}

static jobs_status redis_fail(void *backend, const jobs_job *job, const char *reason,
                              bool retryable, jobs_effect *effect, char *err, size_t err_size)
{
    char now[32], attempt[16];
    snprintf(now, sizeof(now), "%.6f", jobs_now());
    snprintf(attempt, sizeof(attempt), "%u", job->attempt);
    const char *extra[] = {job->claim, reason, retryable ? "1" : "0", attempt, now, job->id};
    redisReply *reply;
    jobs_status status =
        script_on_job(backend, SCRIPT_FAIL, job->id, 6, extra, NULL, &reply, err, err_size);
    if (status != JOBS_OK)
        return status;
    if (reply->integer < 0)
        status = not_found(job->id, err, err_size);
    else if (reply->integer == 1)
        *effect = JOBS_EFFECT_REQUEUED;
    else if (reply->integer == 2)
        *effect = JOBS_EFFECT_FAILED;
    freeReplyObject(reply);
    return status;
}

static jobs_status redis_extend(void *backend, const jobs_job *job, char *err, size_t err_size)
{
    char attempt[16];
    snprintf(attempt, sizeof(attempt), "%u", job->attempt);
    const char *extra[] = {job->claim, attempt};
    redisReply *reply;
    jobs_status status =
        script_on_job(backend, SCRIPT_EXTEND, job->id, 2, extra, NULL, &reply, err, err_size);
    if (status != JOBS_OK)
        return status;
    if (reply->integer < 0) {
        status = not_found(job->id, err, err_size);
    } else if (reply->integer == 0) {
        jobs_set_error(err, err_size, "job %s: the claim of attempt %u was lost", job->id,
                       job->attempt);
        status = JOBS_CONFLICT;
    }
    freeReplyObject(reply);
    return status;
}

static jobs_status redis_cancel(void *backend, const char *id, char *err, size_t err_size)
{
    char now[32];
    snprintf(now, sizeof(now), "%.6f", jobs_now());
    const char *extra[] = {now};
    redisReply *reply;
    jobs_status status =
        script_on_job(backend, SCRIPT_CANCEL, id, 1, extra, NULL, &reply, err, err_size);
    if (status != JOBS_OK)
        return status;
    if (reply->type != REDIS_REPLY_STRING || reply->len == 0) {
        status = not_found(id, err, err_size);
    } else if (strcmp(reply->str, "ok") != 0) {
        jobs_set_error(err, err_size, "job %s is %s: only a queued job can be cancelled", id,
                       reply->str);
        status = JOBS_CONFLICT;
    }
    freeReplyObject(reply);
    return status;
}

static jobs_status redis_get(void *backend, const char *id, jobs_info **out, char *err,
                             size_t err_size)
{
    redis_queue *q = backend;
    redisContext *c;
    jobs_status status = acquire(q, &c, err, err_size);
    if (status != JOBS_OK)
        return status;
    char key[256];
    job_key(q, id, key, sizeof(key));
    const char *argv[] = {"HMGET",      key,           "state",       "model",
                          "version",    "attempts",    "max_retries", "queued_at",
                          "started_at", "finished_at", "result",      "result_content_type",
                          "error"};
    redisReply *reply = call(q, c, 13, argv, NULL, err, err_size);
    release(q, c);
    if (!reply)
        return JOBS_UNAVAILABLE;
    jobs_info *info = NULL;
    int state = -1;
    if (reply->type == REDIS_REPLY_ERROR) {
        status = reply_error(q, reply, "reading a job", err, err_size);
    } else if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 11 ||
               reply->element[0]->type != REDIS_REPLY_STRING) {
        status = not_found(id, err, err_size);
    } else if ((state = jobs_state_parse(reply->element[0]->str)) < 0) {
        jobs_set_error(err, err_size, "job %s: unknown state \"%s\" in %s", id,
                       reply->element[0]->str, q->url_shown);
        status = JOBS_IO_ERROR;
    } else if (!(info = calloc(1, sizeof(*info)))) {
        jobs_set_error(err, err_size, "out of memory");
        status = JOBS_IO_ERROR;
    } else {
        redisReply **f = reply->element;
        memcpy(info->id, id, JOBS_ID_LEN + 1);
        info->state = (jobs_state)state;
        info->model = reply_text(f[1], NULL);
        info->version = reply_text(f[2], NULL);
        info->attempts = (unsigned)reply_number(f[3]);
        info->max_retries = (unsigned)reply_number(f[4]);
        info->queued_at = reply_number(f[5]);
        info->started_at = reply_number(f[6]);
        info->finished_at = reply_number(f[7]);
        if (info->state == JOBS_DONE) {
            info->result = (unsigned char *)reply_text(f[8], &info->result_size);
            info->result_content_type = reply_text(f[9], NULL);
        }
        info->error = reply_text(f[10], NULL);
        if (!info->model || !info->version || (info->state == JOBS_DONE && !info->result)) {
            jobs_set_error(err, err_size, "job %s: its record in %s is incomplete", id,
                           q->url_shown);
            status = JOBS_IO_ERROR;
        }
    }
    freeReplyObject(reply);
    if (status != JOBS_OK) {
        jobs_info_free(info);
        return status;
    }
    *out = info;
    return JOBS_OK;
}

/* Pending = XLEN (entries leave the stream when their job finishes);
 * running = the group's pending-entries list. Finished jobs are not counted
 * (that would need a scan of the keys). */
static jobs_status redis_count(void *backend, uint64_t depth[JOBS_STATE_COUNT], char *err,
                               size_t err_size)
{
    redis_queue *q = backend;
    redisContext *c;
    jobs_status status = acquire(q, &c, err, err_size);
    if (status != JOBS_OK)
        return status;
    const char *xlen[] = {"XLEN", q->stream_key};
    const char *xpending[] = {"XPENDING", q->stream_key, q->group};
    redisReply *length = call(q, c, 2, xlen, NULL, err, err_size);
    redisReply *pending = length ? call(q, c, 3, xpending, NULL, err, err_size) : NULL;
    release(q, c);
    if (!length || !pending) {
        status = JOBS_UNAVAILABLE;
    } else if (length->type == REDIS_REPLY_ERROR) {
        status = reply_error(q, length, "XLEN", err, err_size);
    } else {
        uint64_t total = length->type == REDIS_REPLY_INTEGER && length->integer > 0
                             ? (uint64_t)length->integer
                             : 0;
        uint64_t running = 0;
        if (pending->type == REDIS_REPLY_ARRAY && pending->elements >= 1 &&
            pending->element[0]->type == REDIS_REPLY_INTEGER && pending->element[0]->integer > 0)
            running = (uint64_t)pending->element[0]->integer;
        /* NOGROUP (Redis lost its data): nothing is running */
        depth[JOBS_RUNNING] = running < total ? running : total;
        depth[JOBS_QUEUED] = total - depth[JOBS_RUNNING];
    }
    freeReplyObject(length);
    freeReplyObject(pending);
    return status;
}

static jobs_status redis_expire(void *backend, uint64_t *removed, char *err, size_t err_size)
{
    (void)backend, (void)err, (void)err_size;
    *removed = 0; /* Redis expires the keys itself */
    return JOBS_OK;
}

const jobs_backend_ops jobs_redis_backend = {
    .name = "redis",
    .open = redis_open,
    .close = redis_close,
    .submit = redis_submit,
    .claim = redis_claim,
    .complete = redis_complete,
    .fail = redis_fail,
    .extend = redis_extend,
    .get = redis_get,
    .cancel = redis_cancel,
    .count = redis_count,
    .expire = redis_expire,
};
