/*
 * served.h — how a handler gets the model version that answers its
 * request: asked of the live model set (which applies the traffic policy,
 * sticky headers included), held by the request until its answer is sent
 * (so a swap or unload never frees a version a request is using), and
 * named in the answer (X-Model-Version, the V2 model_version field, the
 * book's A/B "mode" field).
 */
#ifndef INFERD_SERVE_SERVED_H
#define INFERD_SERVE_SERVED_H

#include "http.h"
#include "infer.h"
#include "model_set.h"
#include "routes.h"

/* The version for the model and version the route names (an empty model
 * name: the default model of the book's API). On failure the error answer
 * is filled in and NULL returned. The request keeps the reference. */
model_version *served_acquire(http_request *req, const route_params *params);

/* Send an answer of src/infer: the request takes over its body. */
void served_answer(http_request *req, infer_answer *answer);

/* "<name>:<version>", as the book's A/B "mode" field and X-Model-Version say. */
const char *served_mode(const http_request *req, char *buf, size_t size);

#endif /* INFERD_SERVE_SERVED_H */
