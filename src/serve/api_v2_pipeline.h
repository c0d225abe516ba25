/*
 * api_v2_pipeline.h — V2 inference when the route names a pipeline.
 */
#ifndef INFERD_SERVE_API_V2_PIPELINE_H
#define INFERD_SERVE_API_V2_PIPELINE_H

#include "http.h"
#include "served.h"

void v2_infer_pipeline(http_request *req, const served_target *target, int worker);

#endif /* INFERD_SERVE_API_V2_PIPELINE_H */
