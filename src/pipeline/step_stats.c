/*
 * step_stats.c — per-step latency histograms and error counters (see
 * step_stats.h). The buckets match the server's request histograms.
 */
#include "step_stats.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline.h"

#define N_BUCKETS 14

static const double bucket_bounds[N_BUCKETS] = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                0.01,    0.025,  0.05,    0.1,   0.25,  0.5,   1.0};

struct step_stats {
    char *pipeline, *step;
    pthread_mutex_t lock;
    unsigned long long counts[N_BUCKETS + 1];
    unsigned long long count, errors;
    double sum;
};

step_stats *step_stats_new(const char *pipeline, const char *step)
{
    step_stats *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->pipeline = strdup(pipeline);
    s->step = strdup(step);
    if (!s->pipeline || !s->step) {
        step_stats_free(s);
        return NULL;
    }
    pthread_mutex_init(&s->lock, NULL);
    return s;
}

void step_stats_free(step_stats *s)
{
    if (!s)
        return;
    free(s->pipeline);
    free(s->step);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

bool step_stats_is(const step_stats *s, const char *pipeline, const char *step)
{
    return strcmp(s->pipeline, pipeline) == 0 && strcmp(s->step, step) == 0;
}

void step_stats_observe(step_stats *s, double seconds, bool failed)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    size_t b = 0;
    while (b < N_BUCKETS && seconds > bucket_bounds[b])
        b++;
    s->counts[b]++;
    s->count++;
    s->sum += seconds;
    if (failed)
        s->errors++;
    pthread_mutex_unlock(&s->lock);
}

/* Prometheus label values escape backslash, quote and newline. */
static void label(FILE *out, const char *text)
{
    for (; *text; text++) {
        if (*text == '\\' || *text == '"')
            fputc('\\', out);
        if (*text == '\n')
            fputs("\\n", out);
        else
            fputc(*text, out);
    }
}

static void labels(FILE *out, const step_stats *s)
{
    fputs("pipeline=\"", out);
    label(out, s->pipeline);
    fputs("\",step=\"", out);
    label(out, s->step);
    fputc('"', out);
}

void step_stats_render_one(step_stats *s, FILE *out, bool histogram_part)
{
    pthread_mutex_lock(&s->lock);
    if (!histogram_part) {
        fputs("inferd_pipeline_step_errors_total{", out);
        labels(out, s);
        fprintf(out, "} %llu\n", s->errors);
        pthread_mutex_unlock(&s->lock);
        return;
    }
    unsigned long long cumulative = 0;
    for (size_t b = 0; b <= N_BUCKETS; b++) {
        cumulative += s->counts[b];
        fputs("inferd_pipeline_step_duration_seconds_bucket{", out);
        labels(out, s);
        if (b < N_BUCKETS)
            fprintf(out, ",le=\"%g\"} %llu\n", bucket_bounds[b], cumulative);
        else
            fprintf(out, ",le=\"+Inf\"} %llu\n", cumulative);
    }
    fputs("inferd_pipeline_step_duration_seconds_sum{", out);
    labels(out, s);
    fprintf(out, "} %.9g\n", s->sum);
    fputs("inferd_pipeline_step_duration_seconds_count{", out);
    labels(out, s);
    fprintf(out, "} %llu\n", s->count);
    pthread_mutex_unlock(&s->lock);
}

void step_stats_render(step_stats *const *stats, size_t count, FILE *out)
{
    if (!count)
        return;
    fputs("# HELP inferd_pipeline_step_duration_seconds Time each pipeline step took, per request.\n"
          "# TYPE inferd_pipeline_step_duration_seconds histogram\n", out);
    for (size_t i = 0; i < count; i++)
        step_stats_render_one(stats[i], out, true);
    fputs("# HELP inferd_pipeline_step_errors_total Pipeline steps that failed.\n"
          "# TYPE inferd_pipeline_step_errors_total counter\n", out);
    for (size_t i = 0; i < count; i++)
        step_stats_render_one(stats[i], out, false);
}
