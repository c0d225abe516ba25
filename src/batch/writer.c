/*
 * writer.c — CSV and JSON Lines output rows (see writer.h). A CSV header
 * names each output element: `output_label`, `probabilities_0`,
 * `output_probability_setosa` (a map's keys), `label`.
 */
#include "writer.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor_json.h"

static bool fail(char *err, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool fail(char *err, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, size, fmt, ap);
    va_end(ap);
    return false;
}

/* Column names of one output's row value, flattened. */
static size_t put_names(textbuf *out, const char *prefix, const json_t *v, int depth)
{
    if (depth > 16)
        return 0;
    size_t count = 0;
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            char name[512];
            snprintf(name, sizeof(name), "%s_%zu", prefix, i);
            count += put_names(out, name, json_array_get(v, i), depth + 1);
        }
        return count;
    }
    if (json_is_object(v)) {
        const char *key;
        json_t *item;
        json_object_foreach((json_t *)v, key, item)
        {
            char name[512];
            snprintf(name, sizeof(name), "%s_%s", prefix, key);
            count += put_names(out, name, item, depth + 1);
        }
        return count;
    }
    textbuf_put(out, ",", 1);
    textbuf_put_csv_field(out, prefix, strlen(prefix));
    return 1;
}

static void put_scalar_csv(textbuf *out, const json_t *v)
{
    textbuf_put(out, ",", 1);
    if (json_is_string(v)) {
        textbuf_put_csv_field(out, json_string_value(v), json_string_length(v));
    } else if (!json_is_null(v)) {
        size_t len;
        char *text = json_encode(v, &len);
        if (!text) {
            out->failed = true;
            return;
        }
        textbuf_put(out, text, len);
        free(text);
    }
}

static size_t put_values(textbuf *out, const json_t *v, int depth)
{
    if (depth > 16)
        return 0;
    size_t count = 0;
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++)
            count += put_values(out, json_array_get(v, i), depth + 1);
        return count;
    }
    if (json_is_object(v)) {
        const char *key;
        json_t *item;
        json_object_foreach((json_t *)v, key, item) count += put_values(out, item, depth + 1);
        return count;
    }
    put_scalar_csv(out, v);
    return 1;
}

bool batch_writer_header(batch_writer *w, const batch_predictor *p, size_t r, textbuf *out,
                         char *err, size_t n)
{
    textbuf names = {0};
    size_t count = 0;
    for (size_t k = 0; k < p->n_selected; k++)
        count += put_names(&names, batch_predictor_output_name(p, k),
                           batch_predictor_output(p, k, r), 0);
    if (p->labels) {
        textbuf_puts(&names, ",label");
        count++;
    }
    w->n_columns = count;
    w->columns_known = true;
    if (out) {
        textbuf_puts(out, "row");
        if (w->id_name) {
            textbuf_put(out, ",", 1);
            textbuf_put_csv_field(out, w->id_name, strlen(w->id_name));
        }
        textbuf_put(out, names.data ? names.data : "", names.len);
        textbuf_put(out, "\n", 1);
    }
    bool ok = !names.failed;
    textbuf_free(&names);
    return ok ? true : fail(err, n, "out of memory");
}

/* An id that reads as an integer stays a JSON integer. */
static json_t *id_json(const char *text)
{
    char *end;
    long long v = strtoll(text, &end, 10);
    if (*text && !*end && (text[0] != '0' || !text[1]) && !(text[0] == '-' && text[1] == '0'))
        return json_integer(v);
    return json_string(text);
}

bool batch_writer_row(batch_writer *w, const batch_predictor *p, size_t r,
                      const batch_row_origin *o, textbuf *out, char *err, size_t n)
{
    if (w->format == BATCH_FORMAT_JSONL) {
        json_t *line = json_object();
        json_object_set_new(line, "row", json_integer(o->row));
        if (w->id_name && o->has_id)
            json_object_set_new(line, w->id_name, id_json(o->id));
        for (size_t k = 0; k < p->n_selected; k++)
            json_object_set(line, batch_predictor_output_name(p, k),
                            batch_predictor_output(p, k, r));
        if (p->labels)
            json_object_set(line, "label", batch_predictor_label(p, r));
        size_t len;
        char *text = json_encode(line, &len);
        json_decref(line);
        if (!text)
            return fail(err, n, "out of memory");
        textbuf_put(out, text, len);
        textbuf_put(out, "\n", 1);
        free(text);
        return true;
    }
    if (!w->columns_known && !batch_writer_header(w, p, r, NULL, err, n))
        return false;
    textbuf_printf(out, "%lld", o->row);
    if (w->id_name) {
        textbuf_put(out, ",", 1);
        if (o->has_id)
            textbuf_put_csv_field(out, o->id, strlen(o->id));
    }
    size_t count = 0;
    for (size_t k = 0; k < p->n_selected; k++)
        count += put_values(out, batch_predictor_output(p, k, r), 0);
    if (p->labels) {
        put_scalar_csv(out, batch_predictor_label(p, r));
        count++;
    }
    textbuf_put(out, "\n", 1);
    if (count != w->n_columns)
        return fail(err, n,
                    "row %lld: the outputs have %zu values, the CSV header %zu columns "
                    "(use --output-format jsonl for outputs whose shape varies by row)",
                    o->row, count, w->n_columns);
    return !out->failed ? true : fail(err, n, "out of memory");
}
