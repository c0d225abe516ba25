/*
 * fuzz_model_config.c — libFuzzer target for config.json
 * (src/models/model_config.c): version policy, traffic, shadow, rollback
 * and the batching fields (max_batch_size, max_queue_delay_us,
 * preferred_batch_sizes, max_queue_size, Triton's dynamic_batching), which
 * reach the server from files and from the repository API's load calls.
 *
 * Besides the sanitizers the oracle is the parser's contract: it accepts
 * (and then every value is within the ranges the batcher and the traffic
 * policy rely on) or refuses with a message that names the origin.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_config.h"

static void broken(const char *what, const char *text)
{
    fprintf(stderr, "broken promise: %s\ninput: %s\n", what, text);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    model_config config;
    char err[1024] = "";
    if (model_config_parse(text, "fuzz/config.json", "m", &config, err, sizeof(err))) {
        if (config.max_batch_size < 0 || config.max_batch_size > 1 << 20)
            broken("max_batch_size out of range", text);
        if (config.max_queue_delay_us < -1 || config.max_queue_delay_us > 10000000)
            broken("max_queue_delay_us out of range", text);
        if (config.max_queue_size < 0 || config.max_queue_size > 1 << 20)
            broken("max_queue_size out of range", text);
        if (config.n_preferred_batch_sizes > 8)
            broken("too many preferred_batch_sizes", text);
        for (size_t i = 0; i < config.n_preferred_batch_sizes; i++)
            if (config.preferred_batch_sizes[i] < 1)
                broken("a preferred batch size below 1", text);
    } else if (strncmp(err, "fuzz/config.json", 16) != 0) {
        broken("a refusal that does not name the file", text);
    }
    free(text);
    return 0;
}
