/*
 * docs_assets.c — Swagger UI's two files as bytes inside the executable.
 * The assembler's .incbin copies each file into .rodata at build time
 * (CMakeLists.txt passes their paths when node_modules/swagger-ui-dist
 * exists and rebuilds this file when they change): 2 MB of JavaScript as a
 * C array literal would cost the compiler far more than the assembler's
 * byte copy. Without them the table is empty and openapi.c falls back to
 * files installed beside the binary.
 */
#include <string.h>

#include "docs_assets.h"

#if defined(INFERD_SWAGGER_UI_CSS) && defined(INFERD_SWAGGER_UI_BUNDLE)

/* name, then the file's bytes between name and name_end, hidden from the
 * dynamic symbol table. */
#define EMBED(name, path)                                                                        \
    __asm__(".section .rodata\n"                                                                 \
            ".balign 16\n"                                                                       \
            ".hidden " #name "\n"                                                                \
            ".hidden " #name "_end\n"                                                            \
            #name ":\n"                                                                          \
            ".incbin \"" path "\"\n" #name "_end:\n"                                            \
            ".previous\n");                                                                      \
    extern const char name[], name##_end[]

EMBED(swagger_ui_css, INFERD_SWAGGER_UI_CSS);
EMBED(swagger_ui_bundle, INFERD_SWAGGER_UI_BUNDLE);

static const struct {
    const char *name, *start, *end;
} assets[] = {
    {"swagger-ui.css", swagger_ui_css, swagger_ui_css_end},
    {"swagger-ui-bundle.js", swagger_ui_bundle, swagger_ui_bundle_end},
};

bool docs_assets_embedded(void)
{
    return true;
}

bool docs_asset_embedded(const char *name, const char **data, size_t *size)
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

#else

bool docs_assets_embedded(void)
{
    return false;
}

bool docs_asset_embedded(const char *name, const char **data, size_t *size)
{
    (void)name;
    (void)data;
    (void)size;
    return false;
}

#endif
