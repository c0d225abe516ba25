/*
 * ui.c — the dashboard's routes (see ui.h): its three files, the stats JSON
 * it polls, and the browser redirect of GET /.
 */
#include "ui.h"

#include <microhttpd.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "metrics.h"
#include "server.h"

/* No inline script or style anywhere in the page, so none is allowed: an
 * injected <script> or on* attribute would not run even if escaping failed. */
#define CONTENT_SECURITY_POLICY                                                                  \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "      \
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

void ui_add_security_headers(struct MHD_Response *resp)
{
    MHD_add_response_header(resp, "Content-Security-Policy", CONTENT_SECURITY_POLICY);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(resp, "X-Frame-Options", "DENY");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
}

void ui_page(http_request *req, const route_params *p, int worker)
{
    (void)p;
    (void)worker;
    static const struct {
        const char *path, *file, *type;
    } files[] = {
        {"/ui", "index.html", "text/html; charset=utf-8"},
        {"/ui/", "index.html", "text/html; charset=utf-8"},
        {"/ui/app.js", "app.js", "text/javascript; charset=utf-8"},
        {"/ui/app.css", "app.css", "text/css; charset=utf-8"},
    };
    req->page_headers = true;
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        const char *data;
        size_t size;
        if (strcmp(req->path, files[i].path) == 0 && ui_asset(files[i].file, &data, &size)) {
            http_reply_raw(req, 200, files[i].type, data, size);
            return;
        }
    }
    http_reply_error(req, 404, "no dashboard file %s", req->path);
}

void ui_stats(http_request *req, const route_params *p, int worker)
{
    (void)p;
    (void)worker;
    server *srv = req->server;
    req->page_headers = true;
    json_t *stats = metrics_stats(srv->metrics);
    json_t *models = model_set_status(srv->models, NULL);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    shadow_totals shadow = model_set_shadow_totals(srv->models);
    json_object_set_new(stats, "time", json_real((double)now.tv_sec + (double)now.tv_nsec * 1e-9));
    json_object_set_new(stats, "uptime_seconds", json_real(server_now() - srv->started));
    json_object_set_new(stats, "model_control", json_string(model_control_name(model_set_control(srv->models))));
    json_object_set_new(stats, "repository_api", json_boolean(srv->admin_token && *srv->admin_token));
    json_object_set_new(stats, "models", models ? models : json_array());
    json_object_set_new(stats, "shadow_copies", json_pack("{s:I, s:I}", "offered", (json_int_t)shadow.offered,
                                                          "dropped", (json_int_t)shadow.dropped));
    http_reply_json(req, 200, stats);
}

/* Whether the Accept header ranks text/html at least as high as JSON: a
 * browser's navigation, not an API client. */
static bool prefers_html(const char *accept)
{
    if (!accept)
        return false;
    double html = -1, json = -1, any = -1;
    const char *item = accept;
    while (*item) {
        const char *end = strchr(item, ',');
        size_t n = end ? (size_t)(end - item) : strlen(item);
        char part[128];
        snprintf(part, sizeof(part), "%.*s", (int)(n < sizeof(part) ? n : sizeof(part) - 1), item);
        char *type = part;
        while (*type == ' ')
            type++;
        double q = 1;
        char *params = strchr(type, ';');
        if (params) {
            *params++ = '\0';
            const char *qs = strstr(params, "q=");
            if (qs)
                sscanf(qs + 2, "%lf", &q);
        }
        size_t t = strlen(type);
        while (t && type[t - 1] == ' ')
            type[--t] = '\0';
        if (strcasecmp(type, "text/html") == 0)
            html = q;
        else if (strcasecmp(type, "application/json") == 0)
            json = q;
        else if (strcmp(type, "*/*") == 0)
            any = q;
        item += n + (end ? 1 : 0);
    }
    if (json < 0)
        json = any;
    return html > 0 && html >= json;
}

void ui_root(http_request *req, const route_params *p, int worker)
{
    (void)p;
    (void)worker;
    if (!prefers_html(http_header(req, "Accept"))) {
        http_reply_error(req, 404, "no route for %s / (the dashboard is at /ui, the API at /docs)", req->method);
        return;
    }
    snprintf(req->location, sizeof(req->location), "/ui");
    req->page_headers = true;
    static const char body[] = "<!doctype html><title>inferd</title><a href=\"/ui\">inferd dashboard</a>\n";
    http_reply_raw(req, 302, "text/html; charset=utf-8", body, sizeof(body) - 1);
}

/* Browsers ask every site for one; an empty answer keeps a 404 out of their
 * consoles (the dashboard's own page declares an empty icon). */
void ui_favicon(http_request *req, const route_params *p, int worker)
{
    (void)p;
    (void)worker;
    req->page_headers = true;
    http_reply_raw(req, 204, "image/x-icon", "", 0);
}
