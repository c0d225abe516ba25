/*
 * bench_image.c — how long src/image takes per request: decode + resize +
 * normalise of one encoded image into the tensor its spec declares, timed
 * with CLOCK_MONOTONIC over repeated rounds; prints the median, p10 and p90
 * of the per-image time in microseconds (a shared machine is noisy: the
 * median is the number to quote).
 * Usage: bench_image IMAGE SPEC_JSON [ROUNDS] [PER_ROUND]
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "image_input.h"

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s IMAGE SPEC_JSON [ROUNDS] [PER_ROUND]\n", argv[0]);
        return 2;
    }
    int rounds = argc > 3 ? atoi(argv[3]) : 31, per_round = argc > 4 ? atoi(argv[4]) : 200;
    if (rounds < 1 || per_round < 1)
        return 2;
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *data = malloc(size > 0 ? (size_t)size : 1);
    if (!data || fread(data, 1, (size_t)size, f) != (size_t)size) {
        fprintf(stderr, "%s: short read\n", argv[1]);
        return 1;
    }
    fclose(f);
    json_error_t jerr;
    json_t *j = json_loads(argv[2], 0, &jerr);
    image_spec spec;
    char err[1024];
    if (!j || !image_spec_parse(j, "spec", &spec, err, sizeof(err))) {
        fprintf(stderr, "%s\n", j ? err : jerr.text);
        return 1;
    }
    json_decref(j);
    double *micros = malloc((size_t)rounds * sizeof(*micros));
    for (int r = 0; r < rounds; r++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (int i = 0; i < per_round; i++) {
            ifd_value *v = image_prepare(data, (size_t)size, &spec, NULL, argv[1], err, sizeof(err));
            if (!v) {
                fprintf(stderr, "%s\n", err);
                return 1;
            }
            ifd_value_free(v);
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        micros[r] = ((double)(t1.tv_sec - t0.tv_sec) * 1e6 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e3) / per_round;
    }
    qsort(micros, (size_t)rounds, sizeof(*micros), compare_doubles);
    printf("%s (%ld bytes): median %.1f us, p10 %.1f us, p90 %.1f us per image (%d rounds of %d)\n", argv[1], size,
           micros[rounds / 2], micros[rounds / 10], micros[rounds * 9 / 10], rounds, per_round);
    free(micros);
    free(data);
    return 0;
}
