/*
 * fuzz_jobs_url.c — libFuzzer target for the job queue's input parsers: the
 * Redis queue URL (redis://[:password@]host[:port][/db], from the command
 * line or config) and the job id check every /v2/jobs/{id} request passes
 * through. Either must answer, never read out of bounds; a URL it accepts
 * must have a host, a port in 1..65535 and a database >= 0.
 */
#include "jobs_backend.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = 0;
    jobs_redis_address address;
    char err[512];
    if (jobs_redis_parse_url(text, &address, err, sizeof(err))) {
        if (!address.host[0] || address.port < 1 || address.port > 65535 || address.db < 0)
            __builtin_trap();
    } else if (!err[0]) {
        __builtin_trap(); /* a refusal always says why */
    }
    bool valid = jobs_id_valid(text);
    if (valid && strlen(text) != JOBS_ID_LEN)
        __builtin_trap();
    free(text);
    return 0;
}
