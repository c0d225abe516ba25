/*
 * log.c — formats log lines. The access log writes one line per request,
 * so a line is built by hand in one buffer (no stdio stream, no jansson tree:
 * those were a tenth of a request's CPU time); access lines are gathered
 * per thread and leave many at a time (see "buffered lines" below). Every
 * write(2) holds whole lines, so lines from different threads never
 * interleave. JSON values are
 * escaped as jansson would escape them; bytes that are not UTF-8 (echoes of
 * client input) become '?' rather than dropping the field.
 */
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static log_level min_level = LOG_INFO;
static log_format line_format = LOG_TEXT;

static const char *level_names[] = {"DEBUG", "INFO", "WARNING", "ERROR"};

bool log_parse_level(const char *text, log_level *level)
{
    for (int i = 0; i < 4; i++)
        if (strcasecmp(text, level_names[i]) == 0) {
            *level = (log_level)i;
            return true;
        }
    if (strcasecmp(text, "WARN") == 0) {
        *level = LOG_WARNING;
        return true;
    }
    return false;
}

bool log_parse_format(const char *text, log_format *format)
{
    if (strcasecmp(text, "TEXT") == 0)
        *format = LOG_TEXT;
    else if (strcasecmp(text, "JSON") == 0)
        *format = LOG_JSON;
    else
        return false;
    return true;
}

void log_configure(log_level level, log_format format)
{
    min_level = level;
    line_format = format;
}

bool log_enabled(log_level level) { return level >= min_level; }

/* A line being built: on the stack, moved to the heap only when a value is
 * long (a client's URL). */
typedef struct line_buffer {
    char *data;
    size_t len, cap;
    bool heap, failed;
    char stack[2048];
} line_buffer;

/* Grow the line (to the heap) and append: the rare case of append. */
static void append_grown(line_buffer *b, const char *text, size_t n)
{
    if (b->failed)
        return;
    size_t cap = b->cap * 2;
    while (cap < b->len + n + 1)
        cap *= 2;
    char *grown = b->heap ? realloc(b->data, cap) : malloc(cap);
    if (!grown) {
        b->failed = true;
        return;
    }
    if (!b->heap)
        memcpy(grown, b->data, b->len);
    b->data = grown;
    b->cap = cap;
    b->heap = true;
    memcpy(b->data + b->len, text, n);
    b->len += n;
}

/* Inline: a line is some thirty appends, most of a few bytes. */
static inline void append(line_buffer *b, const char *text, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        append_grown(b, text, n);
        return;
    }
    memcpy(b->data + b->len, text, n);
    b->len += n;
}

static void append_str(line_buffer *b, const char *text) { append(b, text, strlen(text)); }

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if it is not one. */
static size_t utf8_sequence(const unsigned char *s)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t n = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f) || /* overlong, surrogates */
        (c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] > 0x8f))
        return 0;
    return n;
}

/* SWAR tests of 8 bytes at once (Hacker's Delight 6-1; Sean Anderson's
 * bit hacks): whether any byte is below n (n <= 128), or equal to c. Exact
 * as to whether some byte matches, which is all they are asked. */
#define BYTES_ONES 0x0101010101010101ull
#define BYTES_HIGH 0x8080808080808080ull
static inline bool bytes_any_below(uint64_t x, unsigned n) { return ((x - BYTES_ONES * n) & ~x & BYTES_HIGH) != 0; }
static inline bool bytes_any_equal(uint64_t x, unsigned c) { return bytes_any_below(x ^ (BYTES_ONES * c), 1); }

/* How many leading bytes of s[0..n) a line takes as they are, 8 at a time:
 * no control character, no DEL, and for JSON no quote, no backslash and no
 * byte above ASCII (those need the byte-wise checks). A multiple of 8 or n;
 * the byte-wise loop does the rest. */
static size_t plain_prefix(const char *s, size_t n, bool json)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t x;
        memcpy(&x, s + i, 8);
        if (bytes_any_below(x, 0x20) || bytes_any_equal(x, 0x7f))
            break;
        if (json && ((x & BYTES_HIGH) || bytes_any_equal(x, '"') || bytes_any_equal(x, '\\')))
            break;
    }
    return i;
}

/* A JSON string: quotes, backslashes and control characters escaped. */
static void append_json(line_buffer *b, const char *value)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)value;
    append(b, "\"", 1);
    size_t run = plain_prefix(value, strlen(value), true); /* bytes of s[0..run) to copy as they are */
    while (s[run]) {
        unsigned char c = s[run];
        size_t n = c >= 0x20 && c != '"' && c != '\\' ? utf8_sequence(s + run) : 0;
        if (n) {
            run += n;
            continue;
        }
        append(b, (const char *)s, run);
        char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
        switch (c) {
        case '"': append(b, "\\\"", 2); break;
        case '\\': append(b, "\\\\", 2); break;
        case '\n': append(b, "\\n", 2); break;
        case '\r': append(b, "\\r", 2); break;
        case '\t': append(b, "\\t", 2); break;
        case '\b': append(b, "\\b", 2); break;
        case '\f': append(b, "\\f", 2); break;
        default: c < 0x20 ? append(b, esc, 6) : append(b, "?", 1); break;
        }
        s += run + 1;
        run = 0;
    }
    append(b, (const char *)s, run);
    append(b, "\"", 1);
}

/* Text values: control characters become '?' so an event stays one line. */
static void append_text(line_buffer *b, const char *value)
{
    const char *s = value;
    size_t run = plain_prefix(value, strlen(value), false);
    while (s[run]) {
        unsigned char c = (unsigned char)s[run];
        if (c >= 0x20 && c != 0x7f) {
            run++;
            continue;
        }
        append(b, s, run);
        append(b, "?", 1);
        s += run + 1;
        run = 0;
    }
    append(b, s, run);
}

/* "2026-12-06T03:51:07.123Z". The part up to the seconds is formatted once
 * per second per thread. */
static void timestamp(char out[32])
{
    static __thread time_t cached_second = -1;
    static __thread char cached[24];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    if (now.tv_sec != cached_second) {
        struct tm tm;
        gmtime_r(&now.tv_sec, &tm);
        if (strftime(cached, sizeof(cached), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
            cached[0] = '\0';
        cached_second = now.tv_sec;
    }
    size_t n = strlen(cached);
    int ms = (int)(now.tv_nsec / 1000000);
    memcpy(out, cached, n);
    out[n++] = '.';
    out[n++] = (char)('0' + ms / 100);
    out[n++] = (char)('0' + ms / 10 % 10);
    out[n++] = (char)('0' + ms % 10);
    out[n++] = 'Z';
    out[n] = '\0';
}

static atomic_ulong dropped_lines;

unsigned long log_lines_dropped(void) { return atomic_load(&dropped_lines); }

static unsigned long count_lines(const char *data, size_t len)
{
    unsigned long n = 0;
    for (const char *p = data; (p = memchr(p, '\n', len - (size_t)(p - data))); p++)
        n++;
    return n;
}

/* Write `len` bytes holding whole lines; the lines of what could not be
 * written are counted as dropped (stderr is the log: /metrics shows it). */
static void write_lines(const char *data, size_t len)
{
    while (len) {
        ssize_t put = write(STDERR_FILENO, data, len);
        if (put < 0 && errno == EINTR)
            continue;
        if (put <= 0) {
            unsigned long lost = count_lines(data, len);
            atomic_fetch_add(&dropped_lines, lost ? lost : 1);
            return;
        }
        data += put;
        len -= (size_t)put;
    }
}

/* ---- buffered lines ------------------------------------------------------
 * The access log writes a line per request; a write(2) per line was a tenth
 * of a request's CPU time under load. So when a thread logs lines in quick
 * succession (LOG_BUSY_GAP_SECONDS apart) they gather in a buffer of the
 * thread and leave in one write when the buffer is full, when its oldest
 * line is LOG_FLUSH_SECONDS old at the thread's next line, when a line
 * follows a pause, when
 * anyone calls log_flush (the server does every 100 ms and before a
 * /metrics scrape), when the thread logs an unbuffered event (so a thread's
 * own lines keep their order) and when the thread exits. Each buffer has
 * its own lock, taken by its thread for every line (uncontended) and by
 * log_flush from another thread. */
#define LOG_BUFFER_BYTES (32u << 10)
#define LOG_FLUSH_SECONDS 0.1
/* Lines closer together than this are buffered; a line after a pause is
 * written at once (with any lines before it). Buffering only pays when a
 * thread logs thousands of lines a second, and a lone request's line then
 * appears as soon as it is answered, as a reader tailing the log expects. */
#define LOG_BUSY_GAP_SECONDS 0.0002

typedef struct thread_log {
    pthread_mutex_t lock;
    struct thread_log *prev, *next;
    size_t len;
    double oldest; /* CLOCK_MONOTONIC seconds of the oldest line held */
    double last;   /* ... of the thread's last buffered line */
    char data[LOG_BUFFER_BYTES];
} thread_log;

static pthread_mutex_t thread_logs_lock = PTHREAD_MUTEX_INITIALIZER;
static thread_log *thread_logs;
static pthread_key_t thread_log_key;
static bool thread_log_key_made;
static pthread_once_t thread_log_once = PTHREAD_ONCE_INIT;
static __thread thread_log *this_log;

static double monotonic_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Caller holds t->lock. */
static void thread_log_write(thread_log *t)
{
    if (t->len)
        write_lines(t->data, t->len);
    t->len = 0;
}

static void thread_log_exit(void *arg)
{
    thread_log *t = arg;
    this_log = NULL; /* a later line of this thread (another destructor's) makes a new buffer */
    pthread_mutex_lock(&thread_logs_lock);
    if (t->prev)
        t->prev->next = t->next;
    else
        thread_logs = t->next;
    if (t->next)
        t->next->prev = t->prev;
    pthread_mutex_unlock(&thread_logs_lock);
    pthread_mutex_lock(&t->lock);
    thread_log_write(t);
    pthread_mutex_unlock(&t->lock);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

static void make_thread_log_key(void)
{
    thread_log_key_made = pthread_key_create(&thread_log_key, thread_log_exit) == 0;
    atexit(log_flush); /* the main thread's lines: its key destructor never runs */
}

/* The calling thread's buffer, made on its first line; NULL when none can
 * be had (out of memory, no key left): its lines are then written at once. */
static thread_log *this_thread_log(bool make)
{
    if (this_log || !make)
        return this_log;
    pthread_once(&thread_log_once, make_thread_log_key);
    if (!thread_log_key_made)
        return NULL;
    thread_log *t = malloc(sizeof(*t));
    if (!t)
        return NULL;
    pthread_mutex_init(&t->lock, NULL);
    t->len = 0;
    t->oldest = t->last = 0;
    t->prev = NULL;
    if (pthread_setspecific(thread_log_key, t) != 0) {
        pthread_mutex_destroy(&t->lock);
        free(t);
        return NULL;
    }
    pthread_mutex_lock(&thread_logs_lock);
    t->next = thread_logs;
    if (thread_logs)
        thread_logs->prev = t;
    thread_logs = t;
    pthread_mutex_unlock(&thread_logs_lock);
    this_log = t;
    return t;
}

void log_flush(void)
{
    pthread_mutex_lock(&thread_logs_lock);
    for (thread_log *t = thread_logs; t; t = t->next) {
        pthread_mutex_lock(&t->lock);
        thread_log_write(t);
        pthread_mutex_unlock(&t->lock);
    }
    pthread_mutex_unlock(&thread_logs_lock);
}

/* A finished line: buffered, or written right after the thread's buffered
 * lines (so a thread's own lines keep their order). */
static void emit(const char *line, size_t len, bool buffered)
{
    thread_log *t = this_thread_log(buffered);
    if (!t) {
        write_lines(line, len);
        return;
    }
    pthread_mutex_lock(&t->lock);
    if (!buffered || t->len + len > sizeof(t->data)) {
        thread_log_write(t);
        if (!buffered || len > sizeof(t->data)) {
            write_lines(line, len);
            pthread_mutex_unlock(&t->lock);
            return;
        }
    }
    double now = monotonic_seconds();
    bool busy = now - t->last < LOG_BUSY_GAP_SECONDS;
    t->last = now;
    if (t->len == 0)
        t->oldest = now;
    memcpy(t->data + t->len, line, len);
    t->len += len;
    if (!busy || now - t->oldest >= LOG_FLUSH_SECONDS)
        thread_log_write(t);
    pthread_mutex_unlock(&t->lock);
}

/* The start of every line: time, level, message. */
static void begin_line(line_buffer *b, log_level level, const char *message)
{
    char stamp[32];
    timestamp(stamp);
    if (line_format == LOG_JSON) {
        append_str(b, "{\"time\":\"");
        append_str(b, stamp);
        append_str(b, "\",\"level\":\"");
        append_str(b, level_names[level]);
        append_str(b, "\",\"message\":");
        append_json(b, message);
    } else {
        static const char pad[] = "       ";
        append_str(b, stamp);
        append(b, " ", 1);
        append_str(b, level_names[level]);
        size_t name = strlen(level_names[level]);
        append(b, pad, name < 7 ? 7 - name : 0); /* "%-7s" */
        append(b, " ", 1);
        append_text(b, message);
    }
}

/* One key=value (TEXT) or ,"key":"value" (JSON) of a line. */
static void append_field(line_buffer *b, const char *key, const char *value)
{
    if (line_format == LOG_JSON) {
        append(b, ",", 1);
        append_json(b, key);
        append(b, ":", 1);
        append_json(b, value ? value : "");
    } else {
        append(b, " ", 1);
        append_str(b, key);
        append(b, "=", 1);
        append_text(b, value ? value : "");
    }
}

/* A field whose key and value need no escaping in either format (digits,
 * names written here): copied as they are. */
static void append_plain_field(line_buffer *b, const char *key, size_t key_len, const char *value,
                               size_t value_len)
{
    if (line_format == LOG_JSON) {
        append(b, ",\"", 2);
        append(b, key, key_len);
        append(b, "\":\"", 3);
        append(b, value, value_len);
        append(b, "\"", 1);
    } else {
        append(b, " ", 1);
        append(b, key, key_len);
        append(b, "=", 1);
        append(b, value, value_len);
    }
}

static void end_line(line_buffer *b, bool buffered)
{
    append(b, line_format == LOG_JSON ? "}\n" : "\n", line_format == LOG_JSON ? 2 : 1);
    if (b->failed)
        atomic_fetch_add(&dropped_lines, 1);
    else
        emit(b->data, b->len, buffered);
    if (b->heap)
        free(b->data);
}

static void format_event(log_level level, const char *message, va_list ap, bool buffered)
{
    line_buffer b = {.cap = sizeof(b.stack)};
    b.data = b.stack;
    begin_line(&b, level, message);
    for (const char *key; (key = va_arg(ap, const char *));) {
        const char *value = va_arg(ap, const char *);
        append_field(&b, key, value);
    }
    end_line(&b, buffered);
}

/* Decimal digits of v at the end of out[0..24); returns where they begin. */
static char *format_decimal(char out[24], unsigned long long v)
{
    char *p = out + 24;
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return p;
}

/* A TEXT value: copied as it is, then its control characters and DEL
 * become '?' (append_text's mapping is byte for byte). Returns the end. */
static char *put_text_value(char *out, const char *value, size_t n)
{
    memcpy(out, value, n);
    for (size_t i = plain_prefix(out, n, false); i < n; i++)
        if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
            out[i] = '?';
    return out + n;
}

static char *put_literal(char *out, const char *text, size_t n)
{
    memcpy(out, text, n);
    return out + n;
}

#define PUT_LITERAL(out, text) put_literal(out, text, sizeof(text) - 1)

void log_request(const char *request_id, const char *method, const char *path, unsigned status,
                 double seconds, unsigned long long bytes, const char *model)
{
    if (!log_enabled(LOG_INFO))
        return;
    char status_digits[24], ms[32], bytes_digits[24];
    const char *status_text = format_decimal(status_digits, status);
    size_t status_len = (size_t)(status_digits + 24 - status_text);
    /* milliseconds with three decimals, rounded to the microsecond */
    double micros = seconds * 1e6 + 0.5;
    unsigned long long thousandths = micros > 0 && micros < 1e18 ? (unsigned long long)micros : 0;
    char whole_digits[24];
    const char *whole = format_decimal(whole_digits, thousandths / 1000);
    size_t ms_len = (size_t)(whole_digits + 24 - whole);
    memcpy(ms, whole, ms_len);
    ms[ms_len++] = '.';
    ms[ms_len++] = (char)('0' + thousandths / 100 % 10);
    ms[ms_len++] = (char)('0' + thousandths / 10 % 10);
    ms[ms_len++] = (char)('0' + thousandths % 10);
    const char *bytes_text = format_decimal(bytes_digits, bytes);
    size_t bytes_len = (size_t)(bytes_digits + 24 - bytes_text);
    if (!request_id)
        request_id = "";
    if (!method)
        method = "";
    if (!path)
        path = "";
    if (!model)
        model = "";
    size_t id_len = strlen(request_id), method_len = strlen(method), path_len = strlen(path),
           model_len = strlen(model);
    if (line_format == LOG_TEXT && id_len + method_len + path_len + model_len <= 1024) {
        /* the common line, written straight into one buffer: the same bytes
         * as the general path below */
        char line[1024 + 256], stamp[32];
        timestamp(stamp);
        char *p = put_literal(line, stamp, strlen(stamp));
        p = PUT_LITERAL(p, " INFO    request request_id=");
        p = put_text_value(p, request_id, id_len);
        p = PUT_LITERAL(p, " method=");
        p = put_text_value(p, method, method_len);
        p = PUT_LITERAL(p, " path=");
        p = put_text_value(p, path, path_len);
        p = PUT_LITERAL(p, " status=");
        p = put_literal(p, status_text, status_len);
        p = PUT_LITERAL(p, " ms=");
        p = put_literal(p, ms, ms_len);
        p = PUT_LITERAL(p, " bytes=");
        p = put_literal(p, bytes_text, bytes_len);
        p = PUT_LITERAL(p, " model=");
        p = put_text_value(p, model, model_len);
        *p++ = '\n';
        emit(line, (size_t)(p - line), true);
        return;
    }
    line_buffer b = {.cap = sizeof(b.stack)};
    b.data = b.stack;
    begin_line(&b, LOG_INFO, "request");
    append_field(&b, "request_id", request_id);
    append_field(&b, "method", method);
    append_field(&b, "path", path);
    append_plain_field(&b, "status", 6, status_text, status_len);
    append_plain_field(&b, "ms", 2, ms, ms_len);
    append_plain_field(&b, "bytes", 5, bytes_text, bytes_len);
    append_field(&b, "model", model);
    end_line(&b, true);
}

void log_event(log_level level, const char *message, ...)
{
    if (!log_enabled(level))
        return;
    va_list ap;
    va_start(ap, message);
    format_event(level, message, ap, false);
    va_end(ap);
}

void log_buffered(log_level level, const char *message, ...)
{
    if (!log_enabled(level))
        return;
    va_list ap;
    va_start(ap, message);
    format_event(level, message, ap, true);
    va_end(ap);
}
