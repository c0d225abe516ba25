/*
 * reader.c — CSV, JSON Lines and .npy readers for `inferd batch`.
 *
 * Rows are read with getline() through a large stdio buffer and the byte
 * offset is counted as lines are consumed, so a resume point is exact and a
 * reader can seek back to it. CSV follows RFC 4180 within one line (quoted
 * fields with "" escapes; a field spanning lines is refused as a bad row).
 * A bad row never stops a reader: the caller decides (--max-errors).
 */
#include "reader.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_COLUMNS 65536

struct batch_reader {
    batch_format format;
    FILE *file;
    char *path;
    size_t features;
    char *line;
    size_t line_cap;
    long long offset, next_line, next_row;
    char *input_name;
    /* CSV */
    char **header;
    size_t n_header;
    size_t *input_columns; /* header index of each input value */
    long id_column;        /* header index, or -1 */
    char *id_name;
    char **fields;
    size_t fields_cap;
    /* .npy */
    long long npy_rows, npy_data_offset;
    size_t npy_item_size;
    char npy_kind; /* 'f', 'i', 'u', 'b' */
    unsigned char *npy_row;
};

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

static bool has_suffix(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcasecmp(s + a - b, suffix) == 0;
}

bool batch_format_pick(const char *path, const char *forced, bool output, batch_format *format,
                       char *err, size_t n)
{
    const char *name = forced ? forced : path;
    if (forced) {
        if (strcasecmp(forced, "csv") == 0)
            *format = BATCH_FORMAT_CSV;
        else if (strcasecmp(forced, "jsonl") == 0 || strcasecmp(forced, "ndjson") == 0)
            *format = BATCH_FORMAT_JSONL;
        else if (strcasecmp(forced, "npy") == 0 && !output)
            *format = BATCH_FORMAT_NPY;
        else
            return fail(err, n, "unknown %s format '%s' (%s)", output ? "output" : "input", forced,
                        output ? "csv or jsonl" : "csv, jsonl or npy");
        return true;
    }
    if (has_suffix(name, ".csv"))
        *format = BATCH_FORMAT_CSV;
    else if (has_suffix(name, ".jsonl") || has_suffix(name, ".ndjson"))
        *format = BATCH_FORMAT_JSONL;
    else if (has_suffix(name, ".npy") && !output)
        *format = BATCH_FORMAT_NPY;
    else
        return fail(err, n, "%s: cannot tell the format from the name (%s); give --%s-format", path,
                    output ? ".csv, .jsonl" : ".csv, .jsonl, .npy", output ? "output" : "input");
    return true;
}

const char *batch_format_name(batch_format format)
{
    return format == BATCH_FORMAT_CSV ? "csv" : format == BATCH_FORMAT_JSONL ? "jsonl" : "npy";
}

/* One physical line without its line break; -1 at the end. */
static long read_line(batch_reader *r)
{
    errno = 0;
    ssize_t got = getline(&r->line, &r->line_cap, r->file);
    if (got < 0)
        return -1;
    r->offset += got;
    r->next_line++;
    while (got > 0 && (r->line[got - 1] == '\n' || r->line[got - 1] == '\r'))
        r->line[--got] = '\0';
    return (long)got;
}

/* Split r->line into r->fields in place; false with err on a bad quote. */
static bool split_csv(batch_reader *r, size_t *count, char *err, size_t n)
{
    char *s = r->line;
    size_t k = 0;
    for (;;) {
        if (k == r->fields_cap) {
            size_t cap = r->fields_cap ? r->fields_cap * 2 : 16;
            if (cap > MAX_COLUMNS)
                return fail(err, n, "more than %d fields", MAX_COLUMNS);
            char **grown = realloc(r->fields, cap * sizeof(*grown));
            if (!grown)
                return fail(err, n, "out of memory");
            r->fields = grown;
            r->fields_cap = cap;
        }
        if (*s == '"') {
            char *out = ++s, *start = s;
            for (;;) {
                if (*s == '\0')
                    return fail(err, n, "field %zu: unterminated quote", k + 1);
                if (*s == '"') {
                    if (s[1] == '"') {
                        *out++ = '"';
                        s += 2;
                        continue;
                    }
                    s++;
                    break;
                }
                *out++ = *s++;
            }
            if (*s != ',' && *s != '\0')
                return fail(err, n, "field %zu: text after the closing quote", k + 1);
            r->fields[k++] = start;
            char end = *s;
            *out = '\0';
            if (end == '\0')
                break;
            s++;
        } else {
            r->fields[k++] = s;
            char *comma = strchr(s, ',');
            if (!comma)
                break;
            *comma = '\0';
            s = comma + 1;
        }
    }
    *count = k;
    return true;
}

static bool parse_number(const char *text, double *out)
{
    while (*text == ' ' || *text == '\t')
        text++;
    if (!*text)
        return false;
    char *end;
    errno = 0;
    double d = strtod(text, &end);
    while (*end == ' ' || *end == '\t')
        end++;
    if (*end || end == text || (errno == ERANGE && isinf(d)))
        return false;
    *out = d;
    return true;
}

static bool open_csv(batch_reader *r, const batch_reader_options *o, char *err, size_t n)
{
    if (read_line(r) < 0)
        return fail(err, n, "%s: empty file; a CSV input starts with a header row", r->path);
    if (memcmp(r->line, "\xEF\xBB\xBF", 3) ==
        0) /* a UTF-8 byte order mark, as spreadsheets write */
        memmove(r->line, r->line + 3, strlen(r->line + 3) + 1);
    size_t count;
    char why[256];
    if (!split_csv(r, &count, why, sizeof(why)))
        return fail(err, n, "%s line 1 (header): %s", r->path, why);
    r->header = calloc(count, sizeof(*r->header));
    r->input_columns = calloc(count + 1, sizeof(*r->input_columns));
    if (!r->header || !r->input_columns)
        return fail(err, n, "out of memory");
    for (size_t i = 0; i < count; i++) {
        if (!(r->header[i] = strdup(r->fields[i])))
            return fail(err, n, "out of memory");
        r->n_header++;
        for (size_t j = 0; j < i; j++)
            if (strcmp(r->header[j], r->header[i]) == 0)
                return fail(err, n, "%s line 1 (header): column '%s' appears twice", r->path,
                            r->header[i]);
    }
    r->id_column = -1;
    const char *id = o->id_column ? o->id_column : "id";
    for (size_t i = 0; i < count; i++)
        if (strcmp(r->header[i], id) == 0)
            r->id_column = (long)i;
    if (o->id_column && r->id_column < 0)
        return fail(err, n, "%s: --id-column '%s' is not in the header", r->path, o->id_column);
    size_t picked = 0;
    if (o->columns) {
        const char *s = o->columns;
        while (*s) {
            size_t len = strcspn(s, ",");
            size_t i = 0;
            for (; i < count; i++)
                if (strlen(r->header[i]) == len && memcmp(r->header[i], s, len) == 0)
                    break;
            if (i == count)
                return fail(err, n, "%s: --columns names '%.*s', which is not in the header",
                            r->path, (int)len, s);
            if (picked == count)
                return fail(err, n, "--columns names more columns than the header has");
            r->input_columns[picked++] = i;
            s += len;
            if (*s == ',')
                s++;
        }
    } else {
        for (size_t i = 0; i < count; i++)
            if ((long)i != r->id_column)
                r->input_columns[picked++] = i;
    }
    if (picked != r->features)
        return fail(err, n, "%s: %zu input column%s (%s), but the model takes %zu values per row%s",
                    r->path, picked, picked == 1 ? "" : "s",
                    o->columns ? "--columns" : "the header", r->features,
                    o->columns ? "" : "; pick them with --columns");
    if (r->id_column >= 0 && !(r->id_name = strdup(r->header[r->id_column])))
        return fail(err, n, "out of memory");
    return true;
}

static int next_csv(batch_reader *r, double *values, batch_row_origin *origin, char *err, size_t n)
{
    long len;
    do {
        if ((len = read_line(r)) < 0)
            return ferror(r->file) ? BATCH_READ_FAILED : BATCH_END;
    } while (len == 0); /* blank lines carry no row */
    origin->line = r->next_line;
    origin->row = r->next_row++;
    origin->has_id = false;
    size_t count;
    if (!split_csv(r, &count, err, n))
        return BATCH_BAD_ROW;
    if (r->id_column >= 0 && (size_t)r->id_column < count) {
        snprintf(origin->id, sizeof(origin->id), "%s", r->fields[r->id_column]);
        origin->has_id = true;
    }
    if (count != r->n_header) {
        fail(err, n, "%zu fields, the header has %zu", count, r->n_header);
        return BATCH_BAD_ROW;
    }
    for (size_t i = 0; i < r->features; i++) {
        const char *field = r->fields[r->input_columns[i]];
        if (!parse_number(field, &values[i])) {
            fail(err, n, "column '%s': '%.64s' is not a number", r->header[r->input_columns[i]],
                 field);
            return BATCH_BAD_ROW;
        }
    }
    return BATCH_ROW;
}

static bool flatten(const json_t *j, double *values, size_t features, size_t *at, int depth,
                    char *err, size_t n)
{
    if (json_is_array(j)) {
        if (depth > 32)
            return fail(err, n, "arrays nested too deeply");
        for (size_t i = 0; i < json_array_size(j); i++)
            if (!flatten(json_array_get(j, i), values, features, at, depth + 1, err, n))
                return false;
        return true;
    }
    if (!json_is_number(j))
        return fail(err, n, "value %zu is %s, expected a number", *at + 1,
                    json_is_string(j)    ? "a string"
                    : json_is_null(j)    ? "null"
                    : json_is_boolean(j) ? "a boolean"
                                         : "an object");
    if (*at < features)
        values[*at] = json_number_value(j);
    (*at)++;
    return true;
}

bool batch_json_values(const json_t *row, double *values, size_t features, char *err, size_t n)
{
    size_t at = 0;
    if (!flatten(row, values, features, &at, 0, err, n))
        return false;
    if (at != features)
        return fail(err, n, "%zu values, the model takes %zu per row", at, features);
    return true;
}

static int next_jsonl(batch_reader *r, double *values, batch_row_origin *origin, char *err,
                      size_t n)
{
    long len;
    do {
        if ((len = read_line(r)) < 0)
            return ferror(r->file) ? BATCH_READ_FAILED : BATCH_END;
    } while (len == 0 || strspn(r->line, " \t") == (size_t)len);
    origin->line = r->next_line;
    origin->row = r->next_row++;
    origin->has_id = false;
    json_error_t jerr;
    json_t *j = json_loadb(r->line, (size_t)len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!j) {
        fail(err, n, "not JSON (column %d: %s)", jerr.column, jerr.text);
        return BATCH_BAD_ROW;
    }
    bool ok;
    if (json_is_array(j)) {
        ok = batch_json_values(j, values, r->features, err, n);
    } else if (json_is_object(j)) {
        const json_t *id = json_object_get(j, r->id_name);
        if (id && json_is_string(id)) {
            snprintf(origin->id, sizeof(origin->id), "%s", json_string_value(id));
            origin->has_id = true;
        } else if (id && json_is_integer(id)) {
            snprintf(origin->id, sizeof(origin->id), "%lld", (long long)json_integer_value(id));
            origin->has_id = true;
        }
        const json_t *data = r->input_name ? json_object_get(j, r->input_name) : NULL;
        if (!data)
            data = json_object_get(j, "data");
        if (!data)
            data = json_object_get(j, "values");
        if (!data)
            ok = fail(err, n, "the object has no '%s', 'data' or 'values' member",
                      r->input_name ? r->input_name : "input");
        else
            ok = batch_json_values(data, values, r->features, err, n);
    } else {
        ok = fail(err, n, "expected a JSON array or object");
    }
    json_decref(j);
    return ok ? BATCH_ROW : BATCH_BAD_ROW;
}

/* .npy: magic, version, little-endian header length, a Python dict literal
 * {'descr': '<f4', 'fortran_order': False, 'shape': (N, 4), } padded to 64. */
static bool open_npy(batch_reader *r, char *err, size_t n)
{
    unsigned char magic[10];
    if (fread(magic, 1, 8, r->file) != 8 || memcmp(magic, "\x93NUMPY", 6) != 0)
        return fail(err, n, "%s: not a .npy file (bad magic)", r->path);
    size_t header_len;
    if (magic[6] == 1) {
        if (fread(magic + 8, 1, 2, r->file) != 2)
            return fail(err, n, "%s: truncated .npy header", r->path);
        header_len = magic[8] | (size_t)magic[9] << 8;
        r->npy_data_offset = 10;
    } else if (magic[6] == 2 || magic[6] == 3) {
        unsigned char b[4];
        if (fread(b, 1, 4, r->file) != 4)
            return fail(err, n, "%s: truncated .npy header", r->path);
        header_len = b[0] | (size_t)b[1] << 8 | (size_t)b[2] << 16 | (size_t)b[3] << 24;
        r->npy_data_offset = 12;
    } else {
        return fail(err, n, "%s: .npy format version %d is not supported", r->path, magic[6]);
    }
    if (header_len > 1 << 20)
        return fail(err, n, "%s: .npy header of %zu bytes is too large", r->path, header_len);
    char *header = malloc(header_len + 1);
    if (!header)
        return fail(err, n, "out of memory");
    bool ok = fread(header, 1, header_len, r->file) == header_len;
    header[ok ? header_len : 0] = '\0';
    r->npy_data_offset += (long long)header_len;
    const char *descr = strstr(header, "'descr':");
    const char *fortran = strstr(header, "'fortran_order':");
    const char *shape = strstr(header, "'shape':");
    char kind = 0, order = 0;
    int size = 0;
    if (!ok || !descr || !fortran || !shape)
        ok = fail(err, n, "%s: malformed .npy header", r->path);
    else if (sscanf(descr + 8, " '%c%c%d'", &order, &kind, &size) != 3 || !strchr("fiub", kind) ||
             !(size == 1 || size == 2 || size == 4 || size == 8) || (order == '>' && size > 1) ||
             (kind == 'f' && size < 4))
        ok = fail(err, n,
                  "%s: .npy dtype %.12s is not supported (little-endian float32/64, "
                  "integers or bool)",
                  r->path, descr + 8);
    else if (strncmp(fortran + 16 + strspn(fortran + 16, " "), "False", 5) != 0)
        ok = fail(err, n,
                  "%s: Fortran-ordered .npy arrays are not supported (save a C-ordered "
                  "copy: np.ascontiguousarray)",
                  r->path);
    if (ok) {
        const char *s = strchr(shape, '(');
        long long dims[16];
        int rank = 0;
        while (s && *++s && *s != ')') {
            char *end;
            long long d = strtoll(s, &end, 10);
            if (end == s) {
                s = end;
                continue;
            }
            if (rank == 16 || d < 0) {
                ok = fail(err, n, "%s: bad .npy shape", r->path);
                break;
            }
            dims[rank++] = d;
            s = end - 1;
        }
        long long per_row = 1;
        /* -1 once the product overflows, and it stays -1 */
        for (int i = 1; ok && i < rank && per_row >= 0; i++)
            per_row = dims[i] > 0 && per_row > INT64_MAX / dims[i] ? -1 : per_row * dims[i];
        if (ok && (rank < 1 || per_row != (long long)r->features))
            ok = fail(err, n,
                      "%s: array shape has %lld values per row (%d dimensions), but the "
                      "model takes %zu",
                      r->path, rank < 1 ? 0 : per_row, rank, r->features);
        if (ok)
            r->npy_rows = dims[0];
    }
    free(header);
    if (!ok)
        return false;
    r->npy_kind = kind;
    r->npy_item_size = (size_t)size;
    r->npy_row = malloc(r->features * r->npy_item_size);
    r->offset = r->npy_data_offset;
    return r->npy_row ? true : fail(err, n, "out of memory");
}

static double npy_value(const batch_reader *r, size_t i)
{
    const unsigned char *p = r->npy_row + i * r->npy_item_size;
    switch (r->npy_kind) {
    case 'f': {
        if (r->npy_item_size == 4) {
            float f;
            memcpy(&f, p, 4);
            return f;
        }
        double d;
        memcpy(&d, p, 8);
        return d;
    }
    case 'b': return *p ? 1.0 : 0.0;
    case 'u': {
        uint64_t u = 0;
        memcpy(&u, p, r->npy_item_size); /* little-endian host */
        return (double)u;
    }
    default: {
        int64_t v = 0;
        memcpy(&v, p, r->npy_item_size);
        int shift = 64 - 8 * (int)r->npy_item_size;
        return (double)(shift ? (int64_t)((uint64_t)v << shift) >> shift : v);
    }
    }
}

static int next_npy(batch_reader *r, double *values, batch_row_origin *origin, char *err, size_t n)
{
    if (r->next_row >= r->npy_rows)
        return BATCH_END;
    size_t bytes = r->features * r->npy_item_size;
    if (fread(r->npy_row, 1, bytes, r->file) != bytes) {
        fail(err, n, "%s: truncated at row %lld of %lld", r->path, r->next_row, r->npy_rows);
        return BATCH_READ_FAILED;
    }
    origin->line = r->next_row;
    origin->row = r->next_row++;
    origin->has_id = false;
    r->offset += (long long)bytes;
    for (size_t i = 0; i < r->features; i++)
        values[i] = npy_value(r, i);
    return BATCH_ROW;
}

bool batch_reader_open(const char *path, batch_format format, const batch_reader_options *o,
                       batch_reader **out, char *err, size_t n)
{
    *out = NULL;
    batch_reader *r = calloc(1, sizeof(*r));
    if (!r)
        return fail(err, n, "out of memory");
    r->format = format;
    r->features = o->features;
    r->path = strdup(path);
    r->input_name = o->input_name ? strdup(o->input_name) : NULL;
    r->file = fopen(path, "rb");
    if (!r->file) {
        fail(err, n, "%s: %s", path, strerror(errno));
        batch_reader_close(r);
        return false;
    }
    setvbuf(r->file, NULL, _IOFBF, 1 << 20);
    bool ok;
    if (format == BATCH_FORMAT_CSV) {
        ok = open_csv(r, o, err, n);
    } else if (format == BATCH_FORMAT_JSONL) {
        r->id_name = strdup(o->id_column ? o->id_column : "id");
        ok = r->id_name != NULL;
    } else {
        ok = open_npy(r, err, n);
    }
    if (!ok) {
        batch_reader_close(r);
        return false;
    }
    *out = r;
    return true;
}

void batch_reader_close(batch_reader *r)
{
    if (!r)
        return;
    if (r->file)
        fclose(r->file);
    for (size_t i = 0; i < r->n_header; i++)
        free(r->header[i]);
    free(r->header);
    free(r->input_columns);
    free(r->fields);
    free(r->line);
    free(r->id_name);
    free(r->input_name);
    free(r->npy_row);
    free(r->path);
    free(r);
}

int batch_reader_next(batch_reader *r, double *values, batch_row_origin *origin, char *err,
                      size_t n)
{
    switch (r->format) {
    case BATCH_FORMAT_CSV: return next_csv(r, values, origin, err, n);
    case BATCH_FORMAT_JSONL: return next_jsonl(r, values, origin, err, n);
    default: return next_npy(r, values, origin, err, n);
    }
}

batch_read_position batch_reader_position(const batch_reader *r)
{
    return (batch_read_position){r->offset, r->next_line, r->next_row};
}

bool batch_reader_seek(batch_reader *r, const batch_read_position *p, char *err, size_t n)
{
    if (fseeko(r->file, (off_t)p->offset, SEEK_SET) != 0)
        return fail(err, n, "%s: cannot seek to byte %lld: %s", r->path, p->offset,
                    strerror(errno));
    r->offset = p->offset;
    r->next_line = p->next_line;
    r->next_row = p->next_row;
    return true;
}

const char *batch_reader_id_name(const batch_reader *r)
{
    return r->id_name;
}
