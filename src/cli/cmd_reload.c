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

static const struct option reload_options[] = {{"unix", required_argument, NULL, CLI_OPT_UNIX},
                                               HX_CMDLINE_STD_OPTIONS};
static const struct hx_cmdline reload_cmdline = {
    "hykex reload",
    "usage: hykex reload --unix PATH\n"
    "Asks hykexd (at its api.unix_socket PATH; as its own user or root) to read its config,\n"
    "trusted peers and certificates again, as SIGHUP does. Prints what the reload applied and\n"
    "what needs a restart; exits 1 when the daemon refused the new configuration (its reason\n"
    "printed), and the daemon runs on with the old one.\n"
    "      --unix PATH      hykexd's API on a Unix socket (api.unix_socket)\n"
    "  -h, --help           this text\n"
    "      --version        the version\n",
    "h", reload_options, 0};

int cmd_reload(int argc, char **argv)
{
    char address[CLI_ADDRESS_MAX] = "";
    struct json_object *o = NULL, *st, *msg;
    struct hykex *h = NULL;
    char *text = NULL;
    int rc, ch, ex;

    hx_cmdline_begin();
    while ((ch = hx_cmdline_next(&reload_cmdline, argc, argv, &ex)) != -1) {
        if (ch == -2) {
            return ex;
        }
        if ((rc = cli_address_option("reload", ch, optarg, address)) < 0) {
            return -rc;
        }
    }
    if (optind < argc) {
        return hx_cmdline_error(&reload_cmdline, "takes no operands ('%s' given)", argv[optind]);
    }
    if (address[0] == '\0') {
        return hx_cmdline_error(&reload_cmdline, "give --unix PATH (hykexd's api.unix_socket)");
    }
    if (cli_connect("reload", address, &h) != 0) {
        return 1;
    }
    rc = 1;
    if ((ex = hykex_raw_call(h, "{\"command\": \"RELOAD\"}", &text)) != 0) {
        cli_call_failed("reload", address, ex);
    } else if ((o = json_tokener_parse(text)) == NULL ||
               !json_object_object_get_ex(o, "status", &st)) {
        cli_fail("reload", "hykexd at Unix socket %s sent no status", address);
    } else if (json_object_get_int(st) != 0) {
        cli_fail("reload", "hykexd at Unix socket %s refused: %s", address,
                 json_object_object_get_ex(o, "message", &msg) ? json_object_get_string(msg)
                                                               : "no reason given");
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
