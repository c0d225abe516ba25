/*
 * profile_table.c — see profile_table.h.
 */
#include "profile_table.h"

#include <stdlib.h>

static int by_time_taken(const void *a, const void *b)
{
    const ifd_node_profile *x = a, *y = b;
    return x->total_ns < y->total_ns ? 1 : x->total_ns > y->total_ns ? -1 : 0;
}

void print_profile_table(FILE *out, ifd_node_profile *nodes, size_t count, long runs)
{
    if (runs <= 0 || count == 0)
        return;
    double all = 0;
    for (size_t i = 0; i < count; i++)
        all += (double)nodes[i].total_ns;
    qsort(nodes, count, sizeof(*nodes), by_time_taken);
    fprintf(out, "%10s %6s %8s  %-22s %s\n", "us/run", "share", "runs/run", "op", "node");
    for (size_t i = 0; i < count; i++)
        fprintf(out, "%10.2f %5.1f%% %8.2f  %-22s %s\n",
                (double)nodes[i].total_ns / 1e3 / (double)runs,
                all > 0 ? 100.0 * (double)nodes[i].total_ns / all : 0.0,
                (double)nodes[i].runs / (double)runs, nodes[i].op_type, nodes[i].name);
    fprintf(out, "%10.2f %5.1f%% %8s  %-22s %zu nodes\n", all / 1e3 / (double)runs, 100.0, "",
            "(sum)", count);
}

void print_session_profile(FILE *out, const ifd_session *session, long runs)
{
    size_t count = ifd_session_profile(session, NULL, 0);
    ifd_node_profile *nodes = calloc(count + 1, sizeof(*nodes));
    if (nodes) {
        ifd_session_profile(session, nodes, count);
        print_profile_table(out, nodes, count, runs);
    }
    free(nodes);
}
