/*
 * ui.h — the web dashboard at /ui: a page, a script and a style sheet
 * compiled into the binary (ui_assets.c; no CDN, so it works offline, in a
 * bundle and in the OCI image), the JSON it polls (GET /ui/api/stats: the
 * models and versions with state, traffic and shadow, per-version request
 * counters and latency histograms from the server's own metrics, recent
 * errors), and GET / sending a browser there. The page changes nothing by
 * itself: edits go through the repository API with the admin token the
 * user types (held in the page's memory / sessionStorage, sent as
 * Authorization: Bearer), so there is one write path.
 * Thread safety: handlers work on one request; assets are read-only.
 */
#ifndef INFERD_SERVE_UI_H
#define INFERD_SERVE_UI_H

#include <stdbool.h>
#include <stddef.h>

#include "http.h"
#include "routes.h"

struct MHD_Response;

void ui_page(http_request *req, const route_params *p, int worker);
void ui_stats(http_request *req, const route_params *p, int worker);
void ui_root(http_request *req, const route_params *p, int worker);
void ui_favicon(http_request *req, const route_params *p, int worker);

/* The headers every /ui answer carries: a strict Content-Security-Policy
 * (scripts and styles from the server only, no inline code, no framing),
 * X-Content-Type-Options: nosniff, no referrer. */
void ui_add_security_headers(struct MHD_Response *resp);

/* The embedded file `name` ("index.html", "app.js", "app.css"). */
bool ui_asset(const char *name, const char **data, size_t *size);

#endif /* INFERD_SERVE_UI_H */
