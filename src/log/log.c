/*
 * log.c — formats log lines. JSON lines go through jansson so that any
 * value (a model name, a URL sent by a client) is escaped correctly.
 */
#include "log.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

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

void log_event(log_level level, const char *message, ...)
{
    if (!log_enabled(level))
        return;
    struct timespec now;
    struct tm tm;
    char stamp[40];
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    size_t n = strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(stamp + n, sizeof(stamp) - n, ".%03ldZ", now.tv_nsec / 1000000);

    va_list ap;
    va_start(ap, message);
    char *line = NULL;
    if (line_format == LOG_JSON) {
        json_t *obj = json_object();
        json_object_set_new(obj, "time", json_string(stamp));
        json_object_set_new(obj, "level", json_string(level_names[level]));
        json_object_set_new(obj, "message", json_string(message));
        for (const char *key; (key = va_arg(ap, const char *));) {
            const char *value = va_arg(ap, const char *);
            json_object_set_new(obj, key, json_string(value ? value : ""));
        }
        line = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(obj);
    } else {
        size_t size = 0;
        FILE *out = open_memstream(&line, &size);
        if (out) {
            fprintf(out, "%s %-7s %s", stamp, level_names[level], message);
            for (const char *key; (key = va_arg(ap, const char *));) {
                const char *value = va_arg(ap, const char *);
                fprintf(out, " %s=", key);
                /* values may come from clients: keep each event on one line */
                for (const char *c = value ? value : ""; *c; c++)
                    fputc((unsigned char)*c < 0x20 || *c == 0x7f ? '?' : *c, out);
            }
            fclose(out);
        }
    }
    va_end(ap);
    if (line) {
        fprintf(stderr, "%s\n", line);
        free(line);
    }
}
