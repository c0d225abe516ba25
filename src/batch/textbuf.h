/*
 * textbuf.h — a growable byte buffer: a chunk's output and error lines are
 * built in memory and written with one write() each, so a chunk reaches the
 * file whole or (after a kill) is cut back to the last resume point.
 */
#ifndef INFERD_BATCH_TEXTBUF_H
#define INFERD_BATCH_TEXTBUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct textbuf {
    char *data;
    size_t len, cap;
    bool failed; /* an allocation failed; the content is incomplete */
} textbuf;

void textbuf_put(textbuf *b, const char *s, size_t n);
void textbuf_puts(textbuf *b, const char *s);
void textbuf_printf(textbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* s as one CSV field: quoted (with "" escapes) when it holds , " CR LF or
 * edge spaces. */
void textbuf_put_csv_field(textbuf *b, const char *s, size_t n);
void textbuf_free(textbuf *b);

#endif /* INFERD_BATCH_TEXTBUF_H */
