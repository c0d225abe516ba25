/*
 * image_request.h — images as requests on the serving routes: the model's
 * declared image input (its manifest's "preprocessing"), the request forms
 * that carry an encoded JPEG/PNG (a multipart/form-data upload, a raw
 * image/jpeg or image/png body, base64 text in JSON), and the top-k answer
 * with labels. The decoding and the preprocessing themselves are
 * src/image's; this file only finds the bytes in a request and answers
 * every bad input with a 4xx that names the problem.
 * Thread safety: every function works on one request only.
 */
#ifndef INFERD_SERVE_IMAGE_REQUEST_H
#define INFERD_SERVE_IMAGE_REQUEST_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"
#include "image_input.h"
#include "model_version.h"

/* The most classes a top-k answer lists. */
#define IMAGE_TOP_K_MAX 1000

/* The input a request's image feeds and its declared preprocessing:
 * `wanted` (a V2 input's name), or with NULL the only input of a one-input
 * model. False (with the 400 answered) when that input declares no image. */
bool image_request_input(http_request *req, const model_version *m, const char *wanted, size_t *index,
                         image_spec *spec);

/* Decode and preprocess encoded image bytes into the input's tensor; NULL
 * with a 400 (413 when over the encoded size limit) naming `label`. */
ifd_value *image_request_tensor(http_request *req, const image_spec *spec, const void *data, size_t size,
                                const char *label);

/* Whether the request's Content-Type is multipart/form-data / image/jpeg or
 * image/png. */
bool image_request_is_multipart(const http_request *req);
bool image_request_is_raw_image(const http_request *req);

/* The image of a multipart/form-data body, parsed by libmicrohttpd's post
 * processor: the field named like the model's input, else the field
 * `image` (the tutorial's). *data points into a malloc'd copy the caller
 * frees. False with a 400 answered: no such field (the fields seen are
 * named), an empty upload, a malformed body. */
bool image_request_multipart(http_request *req, const char *input_name, uint8_t **data, size_t *size,
                             char *field, size_t field_size);

/* base64 text (a JSON string) to bytes; false with a 400 naming `where`. */
bool image_request_base64(http_request *req, const char *text, size_t length, const char *where,
                          uint8_t **data, size_t *size);

/* ?top_k=K of the URL: 0 when absent; -1 after answering 400 for a bad one. */
int image_request_query_top_k(http_request *req);

/* [{"index", "label", "probability"}, ...] of the k most probable classes
 * of batch row `row` (label null when the model has no labels); NULL with
 * the 400 answered when no output holds class scores. */
json_t *image_request_top_k(http_request *req, const model_version *m, ifd_value *const *outputs, size_t row,
                            size_t k);

#endif /* INFERD_SERVE_IMAGE_REQUEST_H */
