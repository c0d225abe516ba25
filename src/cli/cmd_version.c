/*
 * cmd_version.c — `inferd version [--deps]`. --deps lists every shared
 * library the running binary uses, with the version each library reports
 * itself (src/serve/inventory.c), so release teams can check them against
 * vulnerability databases; --json prints the same as JSON.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../serve/inventory.h"
#include "cli.h"

int cmd_version(int argc, char **argv)
{
    bool deps = false, as_json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--deps") == 0)
            deps = true;
        else if (strcmp(argv[i], "--json") == 0)
            as_json = true;
        else
            return cli_fail("version: unexpected argument '%s' (usage: inferd version [--deps] "
                            "[--json])", argv[i]);
    }
    if (!deps && !as_json) {
        printf("inferd %s\n", IFD_VERSION_STRING);
        return 0;
    }
    json_t *libraries = inventory_libraries();
    if (as_json) {
        json_t *all = json_pack("{s:s, s:o}", "inferd", IFD_VERSION_STRING, "libraries",
                                deps ? libraries : json_array());
        if (!deps)
            json_decref(libraries);
        char *text = json_dumps(all, JSON_INDENT(2));
        puts(text ? text : "{}");
        free(text);
        json_decref(all);
        return 0;
    }
    printf("inferd %s\n", IFD_VERSION_STRING);
    size_t i;
    json_t *lib;
    json_array_foreach(libraries, i, lib) {
        const char *version = json_string_value(json_object_get(lib, "version"));
        printf("  %-24s %-40s %s\n", json_string_value(json_object_get(lib, "name")),
               version ? version : "(unknown)", json_string_value(json_object_get(lib, "file")));
    }
    json_decref(libraries);
    return 0;
}
