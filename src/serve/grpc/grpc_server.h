/*
 * grpc_server.h — KServe V2 over gRPC (`inferd serve --grpc-port N`):
 * inference.GRPCInferenceService of proto/kserve/grpc_predict_v2.proto on
 * gRPC's C core, beside the HTTP server and sharing everything behind it —
 * the live model set (version choice, traffic policy, sticky splits read
 * from request metadata), the inference workers, the signature checks,
 * metrics (protocol="grpc") and the access log.
 *
 * Thread safety: start, quiesce and stop are called by server_run's thread
 * only, in that order.
 */
#ifndef INFERD_SERVE_GRPC_SERVER_H
#define INFERD_SERVE_GRPC_SERVER_H

struct server;
typedef struct grpc_frontend grpc_frontend;

/* Listen on srv->options.host and grpc_port and start answering. NULL
 * (with the reason logged) when it cannot. */
grpc_frontend *grpc_frontend_start(struct server *srv);
/* SIGTERM: accept no new calls; calls in flight go on (srv->in_flight
 * counts them with the HTTP requests). */
void grpc_frontend_quiesce(grpc_frontend *f);
/* After the grace period and the workers' stop: cancel what is left, join
 * the threads and free everything. */
void grpc_frontend_stop(grpc_frontend *f);

#endif /* INFERD_SERVE_GRPC_SERVER_H */
