/*
 * ui_assets.c — the dashboard's files (src/serve/ui/) as bytes inside the
 * executable, copied into .rodata by the assembler's .incbin at build time
 * as docs_assets.c does for Swagger UI; CMakeLists.txt passes the
 * directory (INFERD_UI_DIR) and rebuilds this file when one of them
 * changes. They are part of the source tree, so every build has them.
 */
#include <string.h>

#include "ui.h"

#ifndef INFERD_UI_DIR
#error "INFERD_UI_DIR must name src/serve/ui (CMakeLists.txt sets it)"
#endif

#define EMBED(name, file)                                                                        \
    __asm__(".section .rodata\n"                                                                 \
            ".balign 16\n"                                                                       \
            ".hidden " #name "\n"                                                                \
            ".hidden " #name "_end\n"                                                            \
            #name ":\n"                                                                          \
            ".incbin \"" INFERD_UI_DIR "/" file "\"\n" #name "_end:\n"                          \
            ".previous\n");                                                                      \
    extern const char name[], name##_end[]

EMBED(ui_index_html, "index.html");
EMBED(ui_app_js, "app.js");
EMBED(ui_app_css, "app.css");

static const struct {
    const char *name, *start, *end;
} assets[] = {
    {"index.html", ui_index_html, ui_index_html_end},
    {"app.js", ui_app_js, ui_app_js_end},
    {"app.css", ui_app_css, ui_app_css_end},
};

bool ui_asset(const char *name, const char **data, size_t *size)
{
    for (size_t i = 0; i < sizeof(assets) / sizeof(assets[0]); i++) {
        if (strcmp(name, assets[i].name) == 0) {
            *data = assets[i].start;
            *size = (size_t)(assets[i].end - assets[i].start);
            return true;
        }
    }
    return false;
}
