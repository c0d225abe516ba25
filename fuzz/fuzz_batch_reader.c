/*
 * fuzz_batch_reader.c — libFuzzer target for the input readers of `inferd
 * batch` (src/batch/reader.c): CSV with a header, JSON Lines and .npy.
 *
 * The first byte picks the format and the row width (1 to 8 values), the
 * rest is the file. Besides the sanitizers, the oracle is the resume point:
 * after reading the whole file once, seeking back to the position recorded
 * after any row must replay exactly the same rows, results and line numbers
 * (this is what --resume relies on).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "reader.h"

#define MAX_ROWS 4096

static void require(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_batch_reader: broken promise: %s\n", what);
        abort();
    }
}

typedef struct row_record {
    int result;
    long long line, row;
    double first;
} row_record;

static int read_row(batch_reader *r, double *values, size_t features, row_record *rec)
{
    batch_row_origin origin;
    char err[512];
    memset(values, 0, features * sizeof(*values));
    int got = batch_reader_next(r, values, &origin, err, sizeof(err));
    rec->result = got;
    rec->line = got == BATCH_END ? -1 : origin.line;
    rec->row = got == BATCH_END ? -1 : origin.row;
    rec->first = got == BATCH_ROW ? values[0] : 0;
    if (got == BATCH_BAD_ROW || got == BATCH_READ_FAILED)
        require(err[0] != '\0', "a bad row comes with a reason");
    return got;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const batch_format formats[3] = {BATCH_FORMAT_CSV, BATCH_FORMAT_JSONL, BATCH_FORMAT_NPY};
    batch_format format = formats[data[0] % 3];
    size_t features = 1 + (data[0] / 3) % 8;
    char path[] = "/tmp/fuzz_batch_reader_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return 0;
    size_t body = size - 1;
    if (write(fd, data + 1, body) != (ssize_t)body) {
        close(fd);
        unlink(path);
        return 0;
    }
    close(fd);
    batch_reader_options options = {
        .features = features, .input_name = "x", .columns = (data[0] & 0x80) ? "a,b" : NULL};
    batch_reader *r = NULL;
    char err[512];
    double values[8];
    static row_record first[MAX_ROWS + 1], again;
    static batch_read_position positions[MAX_ROWS + 1];
    if (batch_reader_open(path, format, &options, &r, err, sizeof(err))) {
        size_t n = 0;
        positions[0] = batch_reader_position(r);
        while (n < MAX_ROWS) {
            int got = read_row(r, values, features, &first[n]);
            positions[++n] = batch_reader_position(r);
            if (got == BATCH_END || got == BATCH_READ_FAILED)
                break;
        }
        /* replay from a few resume points */
        for (size_t start = 0; start < n; start += 1 + n / 4) {
            require(batch_reader_seek(r, &positions[start], err, sizeof(err)), "seek back");
            for (size_t i = start; i < n; i++) {
                read_row(r, values, features, &again);
                require(again.result == first[i].result, "same result after a seek");
                require(again.line == first[i].line && again.row == first[i].row,
                        "same line and row after a seek");
                require(again.first == first[i].first ||
                            (again.first != again.first && first[i].first != first[i].first),
                        "same values after a seek");
                if (again.result == BATCH_END || again.result == BATCH_READ_FAILED)
                    break;
            }
        }
        batch_reader_close(r);
    } else {
        require(err[0] != '\0', "a refused file comes with a reason");
    }
    unlink(path);
    return 0;
}
