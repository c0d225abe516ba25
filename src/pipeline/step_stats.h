/*
 * step_stats.h — what each pipeline step did: its latency histogram and
 * error count, behind inferd_pipeline_step_duration_seconds{pipeline,step}
 * and inferd_pipeline_step_errors_total{pipeline,step}. Kept by the
 * pipeline set per (pipeline, step) name so a reload keeps the counts.
 * Thread safety: step_stats_observe may be called from any thread.
 */
#ifndef INFERD_PIPELINE_STEP_STATS_H
#define INFERD_PIPELINE_STEP_STATS_H

#include <stdbool.h>
#include <stdio.h>

typedef struct step_stats step_stats;

step_stats *step_stats_new(const char *pipeline, const char *step);
void step_stats_free(step_stats *s);
bool step_stats_is(const step_stats *s, const char *pipeline, const char *step);
void step_stats_observe(step_stats *s, double seconds, bool failed);
/* Prometheus text: the HELP/TYPE lines when `header`, then the series. */
void step_stats_render_one(step_stats *s, FILE *out, bool histogram_part);

#endif /* INFERD_PIPELINE_STEP_STATS_H */
