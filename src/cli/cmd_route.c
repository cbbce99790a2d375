/*
 * hykex route: the relay's map from hykexd's STATUS (relay.enabled, docs/relay.md): every node
 * with its neighbours and this node's path to it, or the path to one node.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "cli/cli.h"
#include "hykex/hykex.h"

static const char *jstr(struct json_object *o, const char *k)
{
    struct json_object *v;

    return json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_string)
               ? json_object_get_string(v)
               : "-";
}

static int64_t jint(struct json_object *o, const char *k)
{
    struct json_object *v;

    return json_object_object_get_ex(o, k, &v) ? json_object_get_int64(v) : 0;
}

static struct json_object *jget(struct json_object *o, const char *k)
{
    struct json_object *v = NULL;

    return json_object_object_get_ex(o, k, &v) ? v : NULL;
}

/* The map, or only the node `only`, with this node's path to each. */
static int print_routes(struct json_object *relay, const char *only)
{
    struct json_object *nodes = jget(relay, "nodes");
    bool shown = false;

    if (only == NULL) {
        printf("relay map: %" PRId64 " nodes (announcements accepted %" PRId64 ", refused %" PRId64
               ", dropped %" PRId64 ")\n",
               jint(relay, "nodes_total"), jint(relay, "announcements_accepted"),
               jint(relay, "announcements_refused"), jint(relay, "announcements_dropped"));
    }
    for (size_t i = 0; i < json_object_array_length(nodes); i++) {
        struct json_object *e = json_object_array_get_idx(nodes, i), *path = jget(e, "path"),
                           *nb = jget(e, "neighbours");
        size_t qkd = 0;
        if (only != NULL && strcmp(jstr(e, "uuid"), only) != 0) {
            continue;
        }
        shown = true;
        for (size_t k = 0; k < json_object_array_length(nb); k++) {
            qkd += json_object_get_boolean(jget(json_object_array_get_idx(nb, k), "qkd")) ? 1u : 0u;
        }
        printf("  %s  neighbours %zu (QKD %zu)  ", jstr(e, "uuid"), json_object_array_length(nb),
               qkd);
        if (path == NULL) {
            printf("no path\n");
            continue;
        }
        printf("hops %" PRId64 ":", jint(e, "hops"));
        for (size_t k = 0; k < json_object_array_length(path); k++) {
            printf("%s%s", k ? " > " : " ",
                   json_object_get_string(json_object_array_get_idx(path, k)));
        }
        printf("%s\n", jget(e, "qkd_path") != NULL ? "  (QKD on every hop of a path)"
                                                   : "  (no path with QKD on every hop)");
        if (only != NULL) {
            return 0;
        }
    }
    if (only != NULL) {
        return cli_fail("route", "%s is not on the map%s", only, shown ? " or has no path" : "");
    }
    return 0;
}

static const struct option route_options[] = {
    CLI_ADDRESS_OPTIONS, {"json", no_argument, NULL, 'j'}, HX_CMDLINE_STD_OPTIONS};
static const struct hx_cmdline route_cmdline = {
    "hykex route",
    "usage: hykex route [OPTIONS] [NODE-UUID]\n"
    "The relay's map (hykexd with relay.enabled, docs/relay.md): every node, its neighbours and\n"
    "this node's path to it, or the path to NODE-UUID.\n"
    "  -j, --json           the STATUS document's relay section as JSON\n" CLI_ADDRESS_USAGE
    "Exit status 1 when hykexd cannot be reached, its relay is off, or NODE-UUID has no path.\n",
    CLI_ADDRESS_SHORTOPTS "j", route_options, 0};

int cmd_route(int argc, char **argv)
{
    char address[CLI_ADDRESS_MAX] = CLI_DEFAULT_ADDRESS, *text = NULL;
    const char *only = NULL;
    struct json_object *o = NULL, *relay;
    struct hykex *h;
    bool json = false;
    int rc, ch, ex;

    hx_cmdline_begin();
    while ((ch = hx_cmdline_next(&route_cmdline, argc, argv, &ex)) != -1) {
        if (ch == -2) {
            return ex;
        }
        if ((rc = cli_address_option("route", ch, optarg, address)) < 0) {
            return -rc;
        }
        json = json || ch == 'j';
    }
    if (optind + 1 < argc) {
        return hx_cmdline_error(&route_cmdline, "takes at most one node ('%s' given)",
                                argv[optind + 1]);
    }
    only = optind < argc ? argv[optind] : NULL;
    if (cli_connect("route", address, &h) != 0) {
        return 1;
    }
    rc = hykex_raw_call(h, "{\"command\": \"STATUS\"}", &text);
    hykex_disconnect(h);
    if (rc != 0) {
        return cli_call_failed("route", address, rc);
    }
    o = json_tokener_parse(text);
    relay = o != NULL ? jget(o, "relay") : NULL;
    if (relay == NULL) {
        rc = cli_fail("route", "the relay is off at %s (relay.enabled), or no STATUS reply",
                      address);
    } else if (json) {
        printf("%s\n", json_object_to_json_string_ext(
                           relay, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
        rc = 0;
    } else {
        rc = print_routes(relay, only);
    }
    json_object_put(o);
    free(text);
    return rc;
}
