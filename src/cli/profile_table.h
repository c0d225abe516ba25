/*
 * profile_table.h — a profiled session's node times as a table, slowest
 * first (inferd run --profile, bench/bench_inferd --profile).
 */
#ifndef INFERD_CLI_PROFILE_TABLE_H
#define INFERD_CLI_PROFILE_TABLE_H

#include <stdio.h>

#include "inferd/inferd.h"

/* One line a node: microseconds a run (total_ns / runs), share of the
 * nodes' sum, runs a run (2 on a run split over two threads), operator and
 * node name; then the sum. `runs` is how many runs the profile holds. At
 * several threads a split run's slices add up, so the figures are CPU
 * time. Sorts `nodes`. */
void print_profile_table(FILE *out, ifd_node_profile *nodes, size_t count, long runs);

/* The same for a session made with options.profile, as it stands. */
void print_session_profile(FILE *out, const ifd_session *session, long runs);

#endif /* INFERD_CLI_PROFILE_TABLE_H */
