/*
 * fetch.c — downloads for the model-load pattern (`inferd pull`, `inferd
 * serve --model-uri`): libcurl does the protocols (http, https, file, and
 * s3 through its AWS SigV4 signer), this file adds what a model server's
 * start needs on an unreliable network:
 *
 *   - bounded retries with exponential backoff on connection errors, cut
 *     transfers, 408/429 and 5xx answers; other 4xx answers fail at once;
 *   - resumption: a retry after a partial transfer asks for "Range:
 *     bytes=N-" (with If-Range when the first answer had a validator); a
 *     206 with the matching Content-Range appends, anything else (200, a
 *     server without ranges) truncates the file and starts over;
 *   - a sha256 streamed with the bytes (OpenSSL EVP), so verifying costs no
 *     second read, and restarted with the file when the server starts over;
 *   - store_pull(): the cache (an expected sha256 already stored means no
 *     request at all), the staging file under <store>/.tmp, the import.
 *
 * The bytes go to disk as they arrive: memory use does not depend on the
 * model's size.
 */
#include "fetch.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "inferd/inferd.h"

#define DEFAULT_ATTEMPTS 5
#define DEFAULT_BACKOFF 0.5
#define MAX_BACKOFF 30.0
#define MAX_ATTEMPTS 100
/* sha256 of the empty payload of a GET, for S3's x-amz-content-sha256 */
#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_status = CURLE_FAILED_INIT;

static void curl_init(void)
{
    curl_init_status = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static char *format_string(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *format_string(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *out = malloc((size_t)n + 1);
    if (!out)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(out, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return out;
}

static double monotonic_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void sleep_seconds(double seconds)
{
    struct timespec ts = {.tv_sec = (time_t)seconds,
                          .tv_nsec = (long)((seconds - (double)(time_t)seconds) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ---- URIs ---------------------------------------------------------------- */

typedef enum uri_scheme { SCHEME_NONE, SCHEME_HTTP, SCHEME_FILE, SCHEME_S3 } uri_scheme;

static uri_scheme scheme_of(const char *uri)
{
    if (strncasecmp(uri, "http://", 7) == 0 || strncasecmp(uri, "https://", 8) == 0)
        return SCHEME_HTTP;
    if (strncasecmp(uri, "file://", 7) == 0)
        return SCHEME_FILE;
    if (strncasecmp(uri, "s3://", 5) == 0)
        return SCHEME_S3;
    return SCHEME_NONE;
}

static bool is_unreserved(unsigned char c)
{
    return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

/* Split s3://BUCKET/KEY; key is taken literally, as the AWS CLI does. */
static bool s3_split(const char *uri, const char **bucket, size_t *bucket_len, const char **key,
                     char *err, size_t err_size)
{
    const char *rest = uri + 5;
    const char *slash = strchr(rest, '/');
    if (!slash || slash == rest || !slash[1]) {
        snprintf(err, err_size, "%s: expected s3://BUCKET/KEY", uri);
        return false;
    }
    size_t n = (size_t)(slash - rest);
    if (n > 255) {
        snprintf(err, err_size, "%s: bucket name longer than 255 characters", uri);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)rest[i];
        if (!isalnum(c) && c != '-' && c != '.' && c != '_') {
            snprintf(err, err_size,
                     "%s: bucket name has a character other than letters, digits, '.', '-', '_'",
                     uri);
            return false;
        }
    }
    *bucket = rest;
    *bucket_len = n;
    *key = slash + 1;
    return true;
}

bool fetch_check_uri(const char *uri, char *err, size_t err_size)
{
    if (!uri || !*uri) {
        snprintf(err, err_size, "model URI is empty");
        return false;
    }
    for (const char *p = uri; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            snprintf(err, err_size, "model URI has a control character");
            return false;
        }
    }
    switch (scheme_of(uri)) {
    case SCHEME_HTTP: {
        const char *host = strstr(uri, "://") + 3;
        if (!*host || *host == '/' || *host == '?' || *host == '#') {
            snprintf(err, err_size, "%s: no host", uri);
            return false;
        }
        return true;
    }
    case SCHEME_FILE: {
        const char *path = uri + 7;
        if (strncasecmp(path, "localhost/", 10) == 0)
            path += 9;
        if (*path != '/' || !path[1]) {
            snprintf(err, err_size, "%s: expected file:///ABSOLUTE/PATH", uri);
            return false;
        }
        return true;
    }
    case SCHEME_S3: {
        const char *bucket, *key;
        size_t n;
        return s3_split(uri, &bucket, &n, &key, err, err_size);
    }
    case SCHEME_NONE: break;
    }
    snprintf(err, err_size,
             "%s: unsupported URI scheme (expected http://, https://, file:// or s3://)", uri);
    return false;
}

void fetch_redact_uri(const char *uri, char *out, size_t out_size)
{
    if (!out_size)
        return;
    out[0] = '\0';
    if (!uri)
        return;
    const char *authority = strstr(uri, "://");
    size_t used = 0;
    const char *p = uri;
    if (authority) {
        authority += 3;
        const char *end = authority + strcspn(authority, "/?#");
        const char *at = NULL;
        for (const char *q = authority; q < end; q++)
            if (*q == '@')
                at = q;
        used = (size_t)(authority - uri);
        if (used >= out_size)
            used = out_size - 1;
        memcpy(out, uri, used);
        p = at ? at + 1 : authority;
    }
    size_t rest = strcspn(p, "?#");
    if (rest > out_size - 1 - used)
        rest = out_size - 1 - used;
    memcpy(out + used, p, rest);
    out[used + rest] = '\0';
}

bool fetch_parse_sha256(const char *text, char out[65])
{
    if (!text || strlen(text) != 64)
        return false;
    for (int i = 0; i < 64; i++) {
        if (!isxdigit((unsigned char)text[i]))
            return false;
        out[i] = (char)tolower((unsigned char)text[i]);
    }
    out[64] = '\0';
    return true;
}

void fetch_name_from_uri(const char *uri, char out[STORE_NAME_MAX + 1])
{
    char clean[4096];
    fetch_redact_uri(uri ? uri : "", clean, sizeof(clean));
    const char *path = strstr(clean, "://");
    path = path ? path + 3 : clean;
    size_t len = strlen(path);
    while (len && path[len - 1] == '/')
        len--;
    size_t start = len;
    while (start && path[start - 1] != '/')
        start--;
    const char *segment = path + start;
    size_t seg_len = len - start;
    if (seg_len > 5 && strncasecmp(segment + seg_len - 5, ".onnx", 5) == 0)
        seg_len -= 5;
    char name[STORE_NAME_MAX + 1];
    size_t n = 0;
    for (size_t i = 0; i < seg_len && n < STORE_NAME_MAX; i++) {
        unsigned char c = (unsigned char)tolower((unsigned char)segment[i]);
        if (n == 0 && !isalnum(c))
            continue; /* the grammar starts with a letter or digit */
        name[n++] = (char)(isalnum(c) || c == '.' || c == '_' || c == '-' ? c : '-');
    }
    while (n && !isalnum((unsigned char)name[n - 1]))
        n--;
    name[n] = '\0';
    snprintf(out, STORE_NAME_MAX + 1, "%s", n ? name : "model");
}

/* ---- S3 ------------------------------------------------------------------ */

/* What curl needs to fetch one URI: the URL, and for S3 the signing. */
typedef struct request_plan {
    uri_scheme scheme;
    char *url;
    char sigv4[96];                                /* "aws:amz:REGION:s3", or "" */
    char *access_key, *secret_key, *session_token; /* borrowed from the environment */
} request_plan;

static const char *env_nonempty(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

static bool plan_s3(const char *uri, request_plan *plan, char *err, size_t err_size)
{
    const char *bucket, *key;
    size_t bucket_len;
    if (!s3_split(uri, &bucket, &bucket_len, &key, err, err_size))
        return false;
    const char *region = env_nonempty("AWS_REGION");
    if (!region)
        region = env_nonempty("AWS_DEFAULT_REGION");
    if (!region)
        region = "us-east-1";
    if (strlen(region) > 63 ||
        strspn(region, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") !=
            strlen(region)) {
        snprintf(err, err_size, "AWS_REGION: '%s' is not a region name", region);
        return false;
    }
    /* the key's bytes, percent-encoded once as SigV4's canonical URI for S3 wants */
    size_t key_len = strlen(key);
    if (key_len > 4096) {
        snprintf(err, err_size, "%s: key longer than 4096 bytes", uri);
        return false;
    }
    char *encoded = malloc(key_len * 3 + 1);
    if (!encoded) {
        snprintf(err, err_size, "%s: out of memory", uri);
        return false;
    }
    size_t e = 0;
    for (size_t i = 0; i < key_len; i++) {
        unsigned char c = (unsigned char)key[i];
        if (is_unreserved(c) || c == '/')
            encoded[e++] = (char)c;
        else
            e += (size_t)sprintf(encoded + e, "%%%02X", c);
    }
    encoded[e] = '\0';

    const char *endpoint = env_nonempty("AWS_ENDPOINT_URL_S3");
    const char *endpoint_var = "AWS_ENDPOINT_URL_S3";
    if (!endpoint) {
        endpoint = env_nonempty("AWS_ENDPOINT_URL");
        endpoint_var = "AWS_ENDPOINT_URL";
    }
    if (endpoint) {
        if (scheme_of(endpoint) != SCHEME_HTTP) {
            snprintf(err, err_size, "%s: expected an http:// or https:// URL, got '%s'",
                     endpoint_var, endpoint);
            free(encoded);
            return false;
        }
        size_t len = strlen(endpoint);
        while (len && endpoint[len - 1] == '/')
            len--;
        /* custom endpoints are addressed path-style: S3-compatible servers
         * rarely have a DNS name per bucket */
        plan->url =
            format_string("%.*s/%.*s/%s", (int)len, endpoint, (int)bucket_len, bucket, encoded);
    } else if (memchr(bucket, '.', bucket_len)) {
        /* a dotted bucket breaks the *.s3 TLS wildcard: path-style */
        plan->url = format_string("https://s3.%s.amazonaws.com/%.*s/%s", region, (int)bucket_len,
                                  bucket, encoded);
    } else {
        plan->url = format_string("https://%.*s.s3.%s.amazonaws.com/%s", (int)bucket_len, bucket,
                                  region, encoded);
    }
    free(encoded);
    if (!plan->url) {
        snprintf(err, err_size, "%s: out of memory", uri);
        return false;
    }
    plan->access_key = (char *)env_nonempty("AWS_ACCESS_KEY_ID");
    plan->secret_key = (char *)env_nonempty("AWS_SECRET_ACCESS_KEY");
    plan->session_token = (char *)env_nonempty("AWS_SESSION_TOKEN");
    if ((plan->access_key != NULL) != (plan->secret_key != NULL)) {
        snprintf(err, err_size,
                 "%s: set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (only %s is set)", uri,
                 plan->access_key ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY");
        free(plan->url);
        plan->url = NULL;
        return false;
    }
    /* without credentials the request goes unsigned, as for a public bucket */
    if (plan->access_key)
        snprintf(plan->sigv4, sizeof(plan->sigv4), "aws:amz:%s:s3", region);
    return true;
}

/* ---- one download ------------------------------------------------------- */

typedef struct transfer {
    int fd;
    EVP_MD_CTX *sha;
    unsigned long long written;      /* bytes in the file, all of them hashed */
    unsigned long long range_from;   /* this attempt's Range start, 0 for none */
    unsigned long long attempt_base; /* bytes kept from earlier attempts */
    bool http;
    /* the last response's head, reset at each status line */
    long status;
    bool has_content_range;
    unsigned long long content_range_start;
    bool ranges_refused; /* Accept-Ranges: none */
    char validator[256]; /* a strong ETag or Last-Modified, for If-Range */
    /* the first body byte of an attempt decides what the body is */
    bool decided, discard, bad_range, restarted;
    char error_body[1024];
    size_t error_len;
    int write_errno;
    /* progress */
    FILE *progress;
    const char *label;
    double started, last_draw;
    curl_off_t total; /* this attempt's expected body size, 0 when unknown */
    bool drew;
} transfer;

static bool reset_file(transfer *t)
{
    if (ftruncate(t->fd, 0) != 0 || lseek(t->fd, 0, SEEK_SET) != 0 ||
        EVP_DigestInit_ex(t->sha, EVP_sha256(), NULL) != 1) {
        t->write_errno = errno ? errno : EIO;
        return false;
    }
    t->written = 0;
    return true;
}

static void trim_value(const char *value, size_t len, char *out, size_t out_size)
{
    while (len && (*value == ' ' || *value == '\t')) {
        value++;
        len--;
    }
    while (len && (value[len - 1] == '\r' || value[len - 1] == '\n' || value[len - 1] == ' '))
        len--;
    if (len >= out_size)
        len = out_size - 1;
    memcpy(out, value, len);
    out[len] = '\0';
}

static size_t on_header(char *data, size_t size, size_t count, void *userp)
{
    transfer *t = userp;
    size_t len = size * count;
    char value[256];
    if (len > 5 && strncmp(data, "HTTP/", 5) == 0) {
        const char *sp = memchr(data, ' ', len);
        t->status = sp ? strtol(sp + 1, NULL, 10) : 0;
        t->has_content_range = false;
        return len;
    }
    const char *colon = memchr(data, ':', len);
    if (!colon)
        return len;
    size_t name_len = (size_t)(colon - data);
    const char *v = colon + 1;
    size_t v_len = len - name_len - 1;
    if (name_len == 13 && strncasecmp(data, "Content-Range", 13) == 0) {
        trim_value(v, v_len, value, sizeof(value));
        unsigned long long start;
        if (sscanf(value, "bytes %llu-", &start) == 1) {
            t->has_content_range = true;
            t->content_range_start = start;
        }
    } else if (name_len == 13 && strncasecmp(data, "Accept-Ranges", 13) == 0) {
        trim_value(v, v_len, value, sizeof(value));
        t->ranges_refused = strcasecmp(value, "none") == 0;
    } else if (t->status >= 200 && t->status < 300 && name_len == 4 &&
               strncasecmp(data, "ETag", 4) == 0) {
        trim_value(v, v_len, value, sizeof(value));
        if (strncmp(value, "W/", 2) != 0) /* If-Range needs a strong validator */
            snprintf(t->validator, sizeof(t->validator), "%s", value);
    } else if (t->status >= 200 && t->status < 300 && !t->validator[0] && name_len == 13 &&
               strncasecmp(data, "Last-Modified", 13) == 0) {
        trim_value(v, v_len, t->validator, sizeof(t->validator));
    }
    return len;
}

/* The first body byte of an attempt: is it the model, the model's rest, or
 * an error page? */
static void decide_body(transfer *t)
{
    t->decided = true;
    if (t->http && (t->status < 200 || t->status >= 300)) {
        t->discard = true;
        return;
    }
    if (t->range_from > 0) {
        if (t->http && t->status == 206) {
            if (!t->has_content_range || t->content_range_start != t->range_from) {
                t->bad_range = true; /* a different piece: start over next time */
                t->discard = true;
                return;
            }
        } else if (t->http) {
            /* 200: the whole object again (no range support, or it changed
             * and If-Range said so) */
            if (!reset_file(t)) {
                t->discard = true;
                return;
            }
            t->restarted = true;
        }
    }
    t->attempt_base = t->written;
}

static void draw_progress(transfer *t, bool final)
{
    double now = monotonic_seconds();
    if (!final && now - t->last_draw < 0.1)
        return;
    t->last_draw = now;
    unsigned long long total = t->total > 0 ? t->attempt_base + (unsigned long long)t->total : 0;
    double mib = 1024.0 * 1024.0;
    double elapsed = now - t->started;
    double rate = elapsed > 0 ? (double)(t->written - t->attempt_base) / elapsed / mib : 0;
    if (total) {
        int width = 30;
        unsigned long long done = t->written < total ? t->written : total;
        int filled = (int)((double)done / (double)total * width);
        char bar[32];
        for (int i = 0; i < width; i++)
            bar[i] = i < filled ? '#' : '-';
        bar[width] = '\0';
        fprintf(t->progress, "\r\033[K%-24.24s [%s] %3d%% %8.1f/%.1f MiB %6.1f MiB/s", t->label,
                bar, (int)((double)done * 100.0 / (double)total), (double)done / mib,
                (double)total / mib, rate);
    } else {
        fprintf(t->progress, "\r\033[K%-24.24s %8.1f MiB %6.1f MiB/s", t->label,
                (double)t->written / mib, rate);
    }
    fflush(t->progress);
    t->drew = true;
}

static int on_progress(void *userp, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    transfer *t = userp;
    if (dltotal > 0)
        t->total = dltotal;
    if (t->decided && !t->discard)
        draw_progress(t, false);
    return 0;
}

static size_t on_body(char *data, size_t size, size_t count, void *userp)
{
    transfer *t = userp;
    size_t len = size * count;
    if (!t->decided)
        decide_body(t);
    if (t->discard) {
        size_t room = sizeof(t->error_body) - 1 - t->error_len;
        size_t take = len < room ? len : room;
        memcpy(t->error_body + t->error_len, data, take);
        t->error_len += take;
        t->error_body[t->error_len] = '\0';
        return t->write_errno ? 0 : len;
    }
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(t->fd, data + done, len - done);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            t->write_errno = errno;
            return 0; /* curl stops with CURLE_WRITE_ERROR */
        }
        done += (size_t)w;
    }
    if (EVP_DigestUpdate(t->sha, data, len) != 1) {
        t->write_errno = EIO;
        return 0;
    }
    t->written += len;
    return len;
}

static bool retryable_curl_error(CURLcode code)
{
    switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_PARTIAL_FILE:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR: return true;
    default: return false;
    }
}

/* "NoSuchKey: The specified key does not exist." out of an S3 error body. */
static void s3_error_summary(const char *body, char *out, size_t out_size)
{
    out[0] = '\0';
    const char *code = strstr(body, "<Code>"), *message = strstr(body, "<Message>");
    if (!code)
        return;
    code += 6;
    const char *code_end = strstr(code, "</Code>");
    if (!code_end)
        return;
    if (message) {
        message += 9;
        const char *message_end = strstr(message, "</Message>");
        if (message_end) {
            snprintf(out, out_size, " (%.*s: %.*s)", (int)(code_end - code), code,
                     (int)(message_end - message), message);
            return;
        }
    }
    snprintf(out, out_size, " (%.*s)", (int)(code_end - code), code);
}

static void notify(const fetch_options *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void notify(const fetch_options *o, const char *fmt, ...)
{
    if (!o || !o->notice)
        return;
    char message[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    o->notice(o->notice_context, message);
}

bool fetch_download(const char *uri, const char *path, const fetch_options *options,
                    fetch_result *result, char *err, size_t err_size)
{
    fetch_options defaults = {0};
    const fetch_options *o = options ? options : &defaults;
    fetch_result local;
    fetch_result *r = result ? result : &local;
    memset(r, 0, sizeof(*r));
    char shown[2048];
    fetch_redact_uri(uri, shown, sizeof(shown));
    if (!fetch_check_uri(uri, err, err_size))
        return false;
    char expected[65] = "";
    if (o->expected_sha256 && !fetch_parse_sha256(o->expected_sha256, expected)) {
        snprintf(err, err_size, "sha256: expected 64 hexadecimal digits, got '%s'",
                 o->expected_sha256);
        return false;
    }
    pthread_once(&curl_once, curl_init);
    if (curl_init_status != CURLE_OK) {
        snprintf(err, err_size, "%s: libcurl did not initialise: %s", shown,
                 curl_easy_strerror(curl_init_status));
        return false;
    }

    request_plan plan = {.scheme = scheme_of(uri)};
    if (plan.scheme == SCHEME_S3) {
        if (!plan_s3(uri, &plan, err, err_size))
            return false;
    } else {
        plan.url = strdup(uri);
        if (!plan.url) {
            snprintf(err, err_size, "%s: out of memory", shown);
            return false;
        }
    }

    bool ok = false;
    CURL *curl = NULL;
    struct curl_slist *base_headers = NULL;
    char *token_header = NULL;
    transfer t = {.fd = -1, .http = plan.scheme != SCHEME_FILE, .progress = o->progress};
    const char *slash = strrchr(shown, '/');
    t.label = slash && slash[1] ? slash + 1 : shown;
    t.fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (t.fd < 0) {
        snprintf(err, err_size, "%s: %s", path, strerror(errno));
        goto done;
    }
    t.sha = EVP_MD_CTX_new();
    curl = curl_easy_init();
    if (!t.sha || !curl || EVP_DigestInit_ex(t.sha, EVP_sha256(), NULL) != 1) {
        snprintf(err, err_size, "%s: cannot set up the transfer (out of memory)", shown);
        goto done;
    }

    char curl_error[CURL_ERROR_SIZE];
    curl_easy_setopt(curl, CURLOPT_URL, plan.url);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, curl_error);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "inferd/" IFD_VERSION_STRING);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 30L);
    /* a stalled connection is a failed attempt, not a hang */
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, 60L);
    if (plan.scheme == SCHEME_FILE) {
        curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "file");
    } else {
        curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
        /* a signed S3 request is not replayed elsewhere */
        curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, plan.scheme == SCHEME_HTTP ? 1L : 0L);
        curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 10L);
    }
    if (plan.scheme == SCHEME_S3) {
        base_headers = curl_slist_append(base_headers, "x-amz-content-sha256: " EMPTY_SHA256);
        if (plan.sigv4[0]) {
            curl_easy_setopt(curl, CURLOPT_AWS_SIGV4, plan.sigv4);
            curl_easy_setopt(curl, CURLOPT_USERNAME, plan.access_key);
            curl_easy_setopt(curl, CURLOPT_PASSWORD, plan.secret_key);
            if (plan.session_token) {
                token_header = format_string("x-amz-security-token: %s", plan.session_token);
                if (!token_header) {
                    snprintf(err, err_size, "%s: out of memory", shown);
                    goto done;
                }
                base_headers = curl_slist_append(base_headers, token_header);
            }
        }
        if (!base_headers) {
            snprintf(err, err_size, "%s: out of memory", shown);
            goto done;
        }
    }
    if (o->progress) {
        curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &t);
    }

    int max_attempts = o->max_attempts > 0 ? o->max_attempts : DEFAULT_ATTEMPTS;
    if (max_attempts > MAX_ATTEMPTS)
        max_attempts = MAX_ATTEMPTS;
    double backoff = o->backoff_seconds > 0 ? o->backoff_seconds : DEFAULT_BACKOFF;
    bool range_usable = true;
    for (int attempt = 1;; attempt++) {
        char range[48] = "", why[512] = "";
        struct curl_slist *headers = NULL;
        char *if_range = NULL;
        bool restart_next = false;
        /* Resume only over HTTP (a local file does not break midway) and
         * only when the server has not said it cannot. */
        if (t.written > 0 && (!t.http || !range_usable || t.ranges_refused)) {
            if (!reset_file(&t)) {
                snprintf(err, err_size, "%s: %s", path, strerror(t.write_errno));
                goto done;
            }
            r->restarted++;
        }
        t.range_from = t.written;
        if (t.range_from > 0) {
            snprintf(range, sizeof(range), "%llu-", t.range_from);
            r->resumed++;
        }
        curl_easy_setopt(curl, CURLOPT_RANGE, range[0] ? range : NULL);
        for (struct curl_slist *h = base_headers; h; h = h->next)
            headers = curl_slist_append(headers, h->data);
        if (range[0] && t.validator[0]) {
            if_range = format_string("If-Range: %s", t.validator);
            if (if_range)
                headers = curl_slist_append(headers, if_range);
        }
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
        t.status = 0;
        t.decided = t.discard = t.bad_range = t.restarted = false;
        t.error_len = 0;
        t.error_body[0] = '\0';
        t.attempt_base = t.written;
        t.total = 0;
        t.started = monotonic_seconds();
        curl_error[0] = '\0';
        r->attempts = attempt;

        CURLcode code = curl_easy_perform(curl);
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, NULL);
        curl_slist_free_all(headers);
        free(if_range);
        if (t.drew) {
            if (code == CURLE_OK && !t.discard)
                draw_progress(&t, true);
            fputc('\n', t.progress);
            fflush(t.progress);
            t.drew = false;
        }
        if (t.restarted) {
            r->resumed--;
            r->restarted++;
            notify(o, "%s: the server sent the whole file again (no range support): started over",
                   shown);
        }
        long status = 0;
        if (t.http)
            curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
        if (t.write_errno) {
            snprintf(err, err_size, "%s: writing %s: %s", shown, path, strerror(t.write_errno));
            goto done;
        }
        if (code == CURLE_OK && (!t.http || (status >= 200 && status < 300 && !t.bad_range))) {
            if (!t.decided && t.range_from > 0 && t.http && status != 206) {
                /* an empty 200 answering a range: the file is empty now */
                if (!reset_file(&t)) {
                    snprintf(err, err_size, "%s: %s", path, strerror(t.write_errno));
                    goto done;
                }
            }
            ok = true;
            break;
        }
        bool retry;
        if (code == CURLE_OK) {
            char summary[400]; /* leaves room for "HTTP <status>" in why */
            s3_error_summary(t.error_body, summary, sizeof(summary));
            if (t.bad_range || status == 416) {
                snprintf(why, sizeof(why), "the server answered the range request with %s",
                         status == 416 ? "416 Range Not Satisfiable" : "another range");
                range_usable = false;
                restart_next = true;
                retry = true;
            } else {
                snprintf(why, sizeof(why), "HTTP %ld%s", status, summary);
                retry = status >= 500 || status == 429 || status == 408;
                if (!retry) {
                    if ((status == 401 || status == 403) && plan.scheme == SCHEME_S3 &&
                        !plan.sigv4[0])
                        snprintf(
                            why + strlen(why), sizeof(why) - strlen(why),
                            "; no AWS credentials set (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)");
                    snprintf(err, err_size, "%s: %s", shown, why);
                    goto done;
                }
            }
        } else {
            snprintf(why, sizeof(why), "%s", curl_error[0] ? curl_error : curl_easy_strerror(code));
            retry = t.http && retryable_curl_error(code);
            if (!retry) {
                snprintf(err, err_size, "%s: %s", shown, why);
                goto done;
            }
        }
        if (attempt >= max_attempts) {
            snprintf(err, err_size, "%s: giving up after %d attempts: %s", shown, attempt, why);
            goto done;
        }
        if (restart_next && t.written > 0) {
            if (!reset_file(&t)) {
                snprintf(err, err_size, "%s: %s", path, strerror(t.write_errno));
                goto done;
            }
            r->restarted++;
        }
        if (t.written > 0)
            notify(o, "%s: attempt %d of %d failed (%s); resuming at byte %llu in %.1f s", shown,
                   attempt, max_attempts, why, t.written, backoff);
        else
            notify(o, "%s: attempt %d of %d failed (%s); retrying in %.1f s", shown, attempt,
                   max_attempts, why, backoff);
        sleep_seconds(backoff);
        backoff = backoff * 2 > MAX_BACKOFF ? MAX_BACKOFF : backoff * 2;
    }

    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    if (EVP_DigestFinal_ex(t.sha, digest, &digest_len) != 1 || digest_len != 32) {
        snprintf(err, err_size, "%s: sha256 failed", shown);
        ok = false;
        goto done;
    }
    for (unsigned int i = 0; i < 32; i++)
        sprintf(r->sha256 + 2 * i, "%02x", digest[i]);
    r->bytes = t.written;
    if (expected[0] && strcmp(expected, r->sha256) != 0) {
        snprintf(err, err_size,
                 "%s: sha256 mismatch: expected %s, the downloaded %llu bytes have %s", shown,
                 expected, t.written, r->sha256);
        ok = false;
    }

done:
    if (t.fd >= 0 && close(t.fd) != 0 && ok) {
        snprintf(err, err_size, "%s: %s", path, strerror(errno));
        ok = false;
    }
    if (curl)
        curl_easy_cleanup(curl);
    curl_slist_free_all(base_headers);
    free(token_header);
    EVP_MD_CTX_free(t.sha);
    free(plan.url);
    return ok;
}

/* ---- into the store ------------------------------------------------------ */

static bool same_model(const model_ref *found, const import_options *import)
{
    return strcmp(found->name, import->name) == 0 &&
           (!import->version || !*import->version || strcmp(import->version, "latest") == 0 ||
            strcmp(found->version, import->version) == 0);
}

bool store_pull(store *s, const char *uri, const import_options *import,
                const fetch_options *options, pull_result *result, char *err, size_t err_size)
{
    pull_result local;
    pull_result *r = result ? result : &local;
    memset(r, 0, sizeof(*r));
    if (!import || !import->name || !*import->name) {
        snprintf(err, err_size, "pull: a model name is required (--name)");
        return false;
    }
    if (!fetch_check_uri(uri, err, err_size))
        return false;
    char expected[65] = "";
    if (import->expected_sha256 && !fetch_parse_sha256(import->expected_sha256, expected)) {
        snprintf(err, err_size, "--sha256: expected 64 hexadecimal digits, got '%s'",
                 import->expected_sha256);
        return false;
    }
    char source[2048];
    fetch_redact_uri(uri, source, sizeof(source));
    import_options to_store = *import;
    if (!to_store.source)
        to_store.source = source;
    to_store.expected_sha256 = expected[0] ? expected : NULL;

    model_ref found;
    if (expected[0] && store_find_sha256(s, expected, &found)) {
        r->cache_hit = true;
        memcpy(r->sha256, expected, sizeof(r->sha256));
        if (same_model(&found, import)) {
            r->ref = found;
            return true;
        }
        /* the bytes are here under another name or version: copy them
         * locally rather than download them again */
        char dir[4096], stored[4200];
        if (!store_resolve(s, &found, dir, sizeof(dir), err, err_size))
            return false;
        snprintf(stored, sizeof(stored), "%s/model.onnx", dir);
        return store_import_file(s, stored, &to_store, &r->ref, err, err_size);
    }

    char staging[4096];
    int n = snprintf(staging, sizeof(staging), "%s/.tmp", store_root(s));
    if (n < 0 || (size_t)n >= sizeof(staging) - 48) {
        snprintf(err, err_size, "%s: store path too long", store_root(s));
        return false;
    }
    if (mkdir(staging, 0700) != 0 && errno != EEXIST) {
        snprintf(err, err_size, "%s: %s", staging, strerror(errno));
        return false;
    }
    /* "pull-<pid>-": store_open() sweeps .tmp entries whose pid is dead,
     * and must leave a download in progress alone */
    snprintf(staging + n, sizeof(staging) - (size_t)n, "/pull-%ld-XXXXXX", (long)getpid());
    int fd = mkstemp(staging);
    if (fd < 0) {
        snprintf(err, err_size, "%s: %s", staging, strerror(errno));
        return false;
    }
    close(fd);
    fetch_options fo = options ? *options : (fetch_options){0};
    fo.expected_sha256 = expected[0] ? expected : NULL;
    bool ok = fetch_download(uri, staging, &fo, &r->fetch, err, err_size);
    if (ok) {
        memcpy(r->sha256, r->fetch.sha256, sizeof(r->sha256));
        if (store_find_sha256(s, r->sha256, &found) && same_model(&found, import)) {
            r->already_stored = true;
            r->ref = found;
        } else if (!store_import_file(s, staging, &to_store, &r->ref, err, err_size)) {
            /* the staging path means nothing to the user: name the URI */
            char reason[2048];
            snprintf(reason, sizeof(reason), "%s", err);
            snprintf(err, err_size, "%s: %s", source, reason);
            ok = false;
        }
    }
    unlink(staging);
    return ok;
}
