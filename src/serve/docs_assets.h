/*
 * docs_assets.h — Swagger UI's files (npm's swagger-ui-dist, pinned in
 * package-lock.json) compiled into the binary when the build found them in
 * node_modules, so that /docs works wherever the binary goes: a build tree,
 * an install, an `inferd bundle` executable, an OCI image.
 * Thread safety: read-only data.
 */
#ifndef INFERD_SERVE_DOCS_ASSETS_H
#define INFERD_SERVE_DOCS_ASSETS_H

#include <stdbool.h>
#include <stddef.h>

/* True when this binary carries Swagger UI. */
bool docs_assets_embedded(void);
/* The embedded file named name ("swagger-ui.css", "swagger-ui-bundle.js"):
 * true with its bytes, false when absent or not embedded. */
bool docs_asset_embedded(const char *name, const char **data, size_t *size);

#endif /* INFERD_SERVE_DOCS_ASSETS_H */
