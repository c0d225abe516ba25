/*
 * fuzz_grpc_request.c — libFuzzer target for the KServe V2 gRPC request
 * decoder (src/serve/grpc/grpc_v2_codec.c) and the answer encoder behind it:
 * protobuf-c parses the bytes as a ModelInferRequest, the decoder checks it
 * against a model's signature, and when it passes the model runs and the
 * answer is encoded, packed and parsed back as a ModelInferResponse. Every
 * refusal must carry a message; nothing may read out of bounds or leak.
 *
 * Input: byte 0 picks the model (even: the bundled iris model, odd:
 * fuzz/grpc_echo.onnx, an Identity per V2 datatype, so every typed and raw
 * path is reachable); the rest is the message. Seeds: fuzz/seeds/grpc_request
 * (fuzz/make_grpc_seeds.py).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc_v2_codec.h"
#include "model_set.h"

static model_set *set;
static model_version *models[2];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    model_set_options options = {.serving_sessions = 1, .threads_per_session = 1};
    set = model_set_create(&options);
    const char *paths[2] = {INFERD_FUZZ_MODEL, INFERD_FUZZ_ECHO_MODEL}, *names[2] = {"iris", "echo"};
    for (int i = 0; i < 2; i++) {
        model_source source = {.path = paths[i], .name = names[i]};
        char err[1024] = "";
        acquired got;
        if (!set || !model_set_add_source(set, &source, err, sizeof(err)) ||
            model_set_acquire(set, names[i], NULL, NULL, NULL, &got, err, sizeof(err)) != ACQUIRE_OK) {
            fprintf(stderr, "fuzz_grpc_request: cannot load %s: %s\n", paths[i], err);
            abort(); /* a fuzzer without its models fuzzes nothing */
        }
        models[i] = got.version;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    model_version *m = models[data[0] & 1];
    Inference__ModelInferRequest *msg =
        (Inference__ModelInferRequest *)protobuf_c_message_unpack(&inference__model_infer_request__descriptor, NULL,
                                                                  size - 1, data + 1);
    if (!msg)
        return 0; /* the transport answers INVALID_ARGUMENT itself */
    char err[1024] = "";
    grpc_v2_signature sig = grpc_v2_model_signature(m->model);
    grpc_v2_request decoded;
    if (grpc_v2_decode(msg, &sig, m->name, &decoded, err, sizeof(err)) != GRPC_STATUS_OK) {
        if (!err[0])
            __builtin_trap(); /* a refusal without a message */
        protobuf_c_message_free_unpacked(&msg->base, NULL);
        return 0;
    }
    size_t n_out = ifd_model_output_count(m->model);
    ifd_value **outputs = calloc(n_out, sizeof(*outputs));
    if (outputs && model_set_run(set, m, 0, decoded.inputs, outputs, err, sizeof(err)) == IFD_OK) {
        grpc_v2_answer answer;
        if (grpc_v2_encode(&decoded, &sig, m->name, m->version, msg->id, outputs, &answer, err, sizeof(err)) ==
            GRPC_STATUS_OK) {
            size_t len = protobuf_c_message_get_packed_size(&answer.message.base);
            uint8_t *packed = malloc(len ? len : 1);
            if (packed) {
                protobuf_c_message_pack(&answer.message.base, packed);
                ProtobufCMessage *back =
                    protobuf_c_message_unpack(&inference__model_infer_response__descriptor, NULL, len, packed);
                if (!back)
                    __builtin_trap(); /* an answer its own schema cannot read */
                protobuf_c_message_free_unpacked(back, NULL);
                free(packed);
            }
            grpc_v2_answer_free(&answer);
        } else if (!err[0]) {
            __builtin_trap();
        }
    }
    for (size_t i = 0; outputs && i < n_out; i++)
        ifd_value_free(outputs[i]);
    free(outputs);
    grpc_v2_request_free(&decoded);
    protobuf_c_message_free_unpacked(&msg->base, NULL);
    return 0;
}
