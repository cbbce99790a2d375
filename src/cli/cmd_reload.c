/*
 * hykex reload: asks hykexd to reload its configuration, trusted peers and certificates, as
 * SIGHUP does (docs/hykexd.md "Reload"), and prints the outcome. Over the daemon's Unix socket
 * only (api.unix_socket): hykexd allows it to its own user and root.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "cli/cli.h"
#include "hykex/hykex.h"

static const char reload_usage[] =
    "usage: hykex reload --unix PATH\n"
    "Asks hykexd (at its api.unix_socket PATH; as its own user or root) to read its config,\n"
    "trusted peers and certificates again, as SIGHUP does. Prints what the reload applied and\n"
    "what needs a restart; exits 1 when the daemon refused the new configuration (its reason\n"
    "printed), and the daemon runs on with the old one.\n";

int cmd_reload(int argc, char **argv)
{
    const char *path = NULL, *v;
    struct json_object *o = NULL, *st, *msg;
    struct hykex *h = NULL;
    char *text = NULL;
    int rc = 1;

    for (int i = 1; i < argc;) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(reload_usage, stdout);
            return 0;
        }
        if (!cli_option(argc, argv, &i, "--unix", &v) || v == NULL) {
            return cli_usage_error("reload", "%s", reload_usage);
        }
        path = v;
    }
    if (path == NULL) {
        return cli_usage_error("reload", "%s", reload_usage);
    }
    if (hykex_connect(path, &h) != 0) {
        fprintf(stderr, "hykex reload: cannot reach hykexd at %s\n", path);
        return 1;
    }
    if (hykex_raw_call(h, "{\"command\": \"RELOAD\"}", &text) != 0 || text == NULL ||
        (o = json_tokener_parse(text)) == NULL || !json_object_object_get_ex(o, "status", &st)) {
        fprintf(stderr, "hykex reload: no answer from hykexd at %s\n", path);
    } else if (json_object_get_int(st) != 0) {
        fprintf(stderr, "hykex reload: %s\n",
                json_object_object_get_ex(o, "message", &msg) ? json_object_get_string(msg)
                                                              : "refused");
    } else {
        printf("%s\n", json_object_object_get_ex(o, "result", &msg) ? json_object_get_string(msg)
                                                                    : "applied");
        rc = 0;
    }
    json_object_put(o);
    free(text);
    hykex_disconnect(h);
    return rc;
}
