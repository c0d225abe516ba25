/*
 * api_book_pipeline.h — the book's /predict family for a pipeline.
 */
#ifndef INFERD_SERVE_API_BOOK_PIPELINE_H
#define INFERD_SERVE_API_BOOK_PIPELINE_H

#include "routes.h"

void book_predict_pipeline(http_request *req, const route_params *p, int worker);
void book_predict_test_pipeline(http_request *req, const route_params *p, int worker);
void book_predict_label_pipeline(http_request *req, const route_params *p, int worker);
void book_predict_test_label_pipeline(http_request *req, const route_params *p, int worker);

#endif /* INFERD_SERVE_API_BOOK_PIPELINE_H */
