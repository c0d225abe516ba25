/*
 * log.h — the event and access log of the server and the other long-running commands: TEXT or JSON lines on stderr,
 * filtered by level (LOG_LEVEL / LOG_FORMAT, as in the book's images).
 * Thread safety: every function may be called from any thread; each write
 * holds whole lines so lines never interleave.
 */
#ifndef INFERD_LOG_H
#define INFERD_LOG_H

#include <stdbool.h>

typedef enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARNING, LOG_ERROR } log_level;
typedef enum log_format { LOG_TEXT = 0, LOG_JSON } log_format;

bool log_parse_level(const char *text, log_level *level);
bool log_parse_format(const char *text, log_format *format);
void log_configure(log_level level, log_format format);
bool log_enabled(log_level level);

/* An event: message plus optional key/value pairs, NULL-terminated:
 * log_event(LOG_INFO, "model loaded", "model", name, "seconds", "0.01", NULL) */
void log_event(log_level level, const char *message, ...) __attribute__((sentinel));

/* The same line, buffered when the thread logs many lines a second: for
 * the access log, a line per request. A line after a pause (0.2 ms) is
 * written at once; a busy thread's lines are written together, at the
 * latest when its buffer fills, when it logs again 0.1 s after its oldest
 * buffered line, when it logs with log_event or exits, or at the next
 * log_flush. A server calls log_flush periodically and
 * before it exits so that no line waits long or is lost. */
void log_buffered(log_level level, const char *message, ...) __attribute__((sentinel));

/* The access log's line for one request, buffered as log_buffered does:
 * the same line as
 *   log_buffered(LOG_INFO, "request", "request_id", request_id, "method",
 *                method, "path", path, "status", "<status>", "ms",
 *                "<seconds in ms, 3 decimals>", "bytes", "<bytes>", "model",
 *                model, NULL)
 * built without the argument list and number strings (a line per request
 * is a measurable part of the request). NULL strings are empty. */
void log_request(const char *request_id, const char *method, const char *path, unsigned status,
                 double seconds, unsigned long long bytes, const char *model);

/* Write every thread's buffered lines now. */
void log_flush(void);

/* Lines that could not be written (stderr closed, full, or out of memory
 * for a long line) since the start: a log line is never lost unseen, the
 * server's /metrics shows this count (inferd_log_lines_dropped_total). */
unsigned long log_lines_dropped(void);

#endif /* INFERD_LOG_H */
