/* hykex run | open | get | close: an application's side of the ETSI 004 API, through libhykex. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <openssl/crypto.h>

#include "cli/cli.h"
#include "common/config.h"
#include "common/json.h"
#include "hykex/hykex.h"
#include "proto/etsi004.h"

/* --address HOST:PORT | --unix PATH | -c CONFIG.json (its hybridization_server_address). */
static int address_option(int argc, char **argv, int *i, char *out, size_t cap, const char *cmd)
{
    const char *v;

    if (cli_option(argc, argv, i, "--address", &v) || cli_option(argc, argv, i, "--unix", &v)) {
        if (v == NULL) {
            return cli_usage_error(cmd, "%s needs a value", argv[*i - 1]);
        }
        snprintf(out, cap, "%s", v);
        return 1;
    }
    if (cli_option(argc, argv, i, "-c", &v)) {
        char *text = NULL, why[200];
        size_t len;
        struct json_object *o = NULL, *a, *h, *p;
        if (v == NULL || hx_read_file(v, 1u << 20, &text, &len) != HX_OK ||
            hx_json_parse_object(text, len, NULL, &o, why, sizeof(why)) != HX_OK ||
            !json_object_object_get_ex(o, "hybridization_server_address", &a) ||
            !json_object_object_get_ex(a, "host", &h) ||
            !json_object_object_get_ex(a, "port", &p)) {
            free(text);
            json_object_put(o);
            return cli_usage_error(cmd, "-c: cannot read hybridization_server_address from %s",
                                   v != NULL ? v : "(none)");
        }
        snprintf(out, cap, "%s:%d", json_object_get_string(h), json_object_get_int(p));
        free(text);
        json_object_put(o);
        return 1;
    }
    return 0;
}

static int connect_or_fail(const char *cmd, const char *address, struct hykex **h)
{
    int rc = hykex_connect(address, h);

    if (rc != 0) {
        fprintf(stderr, "hykex %s: cannot reach hykexd at %s\n", cmd, address);
        return 1;
    }
    return 0;
}

static void print_status(const char *cmd, uint32_t status, const struct hykex *h, const char *extra)
{
    struct json_object *o = json_object_new_object();

    json_object_object_add(o, "command", json_object_new_string(cmd));
    json_object_object_add(o, "status", json_object_new_int64(status));
    if (status != 0) {
        json_object_object_add(o, "message", json_object_new_string(hykex_message(h)));
    }
    if (extra != NULL) {
        json_object_object_add(o, "key_stream_id", json_object_new_string(extra));
    }
    printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_SPACED));
    json_object_put(o);
}

static int do_get(struct hykex *h, const char *ksid, const uint32_t *want_index)
{
    uint8_t key[65536];
    size_t len = sizeof(key);
    char meta[512];
    uint32_t status, index = want_index != NULL ? *want_index : 0;
    int rc = hykex_get_key(h, ksid, want_index != NULL ? &index : NULL, key, &len, meta,
                           sizeof(meta), &status);
    struct json_object *o, *kb;

    if (rc != 0) {
        fprintf(stderr, "hykex get: hykexd connection failed (%d)\n", rc);
        return 1;
    }
    if (status != 0) {
        print_status("GET_KEY", status, h, NULL);
        return 1;
    }
    o = json_object_new_object();
    kb = json_object_new_array();
    for (size_t i = 0; i < len; i++) {
        json_object_array_add(kb, json_object_new_int(key[i]));
    }
    OPENSSL_cleanse(key, len);
    json_object_object_add(o, "command", json_object_new_string("GET_KEY"));
    json_object_object_add(o, "status", json_object_new_int(0));
    json_object_object_add(o, "key_buffer", kb);
    if (want_index != NULL) {
        json_object_object_add(o, "index", json_object_new_int64(index));
    }
    json_object_object_add(o, "metadata", json_tokener_parse(meta));
    printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_SPACED));
    json_object_put(o);
    return 0;
}

int cmd_run(int argc, char **argv)
{
    char address[320] = "127.0.0.1:65430", ksid[HYKEX_KSID_LEN + 1] = "", why[300];
    const char *file = NULL, *v;
    uint64_t keys = 1;
    struct json_object *o = NULL;
    struct hx_004_request req;
    struct hykex *h = NULL;
    char *text = NULL;
    size_t len;
    uint32_t status;
    int rc, a;

    for (int i = 1; i < argc;) {
        if ((a = address_option(argc, argv, &i, address, sizeof(address), "run")) != 0) {
            if (a != 1) {
                return a;
            }
        } else if (cli_option(argc, argv, &i, "--keys", &v)) {
            if (v == NULL || cli_parse_u64(v, 0, 1000000, &keys) != 0) {
                return cli_usage_error("run", "--keys must be 0..1000000");
            }
        } else if (argv[i][0] != '-' && file == NULL) {
            file = argv[i++];
        } else {
            return cli_usage_error("run",
                                   "usage: hykex run REQUEST.json [--keys N] "
                                   "[--address HOST:PORT | --unix PATH | -c CONFIG.json]");
        }
    }
    if (file == NULL) {
        return cli_usage_error("run",
                               "usage: hykex run REQUEST.json [--keys N] "
                               "[--address HOST:PORT | --unix PATH | -c CONFIG.json]");
    }
    if (hx_read_file(file, 1u << 20, &text, &len) != HX_OK ||
        hx_json_parse_object(text, len, NULL, &o, why, sizeof(why)) != HX_OK ||
        hx_004_json_decode_request(o, &req, why, sizeof(why)) != HX_OK ||
        req.cmd != HX_004_OPEN_CONNECT) {
        free(text);
        json_object_put(o);
        return cli_usage_error("run", "%s: not an OPEN_CONNECT request (%s)", file, why);
    }
    free(text);
    json_object_put(o);
    if (!hx_uuid_is_nil(&req.ksid)) {
        hx_uuid_format(&req.ksid, ksid);
    }
    if (connect_or_fail("run", address, &h) != 0) {
        return 1;
    }
    rc = hykex_open_connect(h, req.source, req.destination, &req.qos, ksid, &status);
    if (rc != 0 || status != 0) {
        if (rc == 0) {
            print_status("OPEN_CONNECT", status, h, NULL);
        }
        hykex_disconnect(h);
        return 1;
    }
    print_status("OPEN_CONNECT", 0, h, ksid);
    rc = 0;
    for (uint64_t k = 0; k < keys && rc == 0; k++) {
        uint32_t index = (uint32_t)k;
        rc = do_get(h, ksid, &index);
    }
    if (hykex_close(h, ksid, &status) == 0) {
        print_status("CLOSE", status, h, NULL);
    }
    hykex_disconnect(h);
    return rc;
}

int cmd_open(int argc, char **argv)
{
    char address[320] = "127.0.0.1:65430", ksid[HYKEX_KSID_LEN + 1] = "";
    const char *src = NULL, *dst = NULL, *v;
    struct hykex_qos qos;
    struct hykex *h;
    uint64_t n;
    uint32_t status;
    int a;

    memset(&qos, 0, sizeof(qos));
    qos.key_chunk_size = 32;
    for (int i = 1; i < argc;) {
        if ((a = address_option(argc, argv, &i, address, sizeof(address), "open")) != 0) {
            if (a != 1) {
                return a;
            }
        } else if (cli_option(argc, argv, &i, "--chunk", &v)) {
            if (v == NULL || cli_parse_u64(v, 1, 65535, &n) != 0) {
                return cli_usage_error("open", "--chunk must be 1..65535 bytes");
            }
            qos.key_chunk_size = (uint32_t)n;
        } else if (cli_option(argc, argv, &i, "--timeout", &v)) {
            if (v == NULL || cli_parse_u64(v, 0, UINT32_MAX, &n) != 0) {
                return cli_usage_error("open", "--timeout must be milliseconds");
            }
            qos.timeout_ms = (uint32_t)n;
        } else if (cli_option(argc, argv, &i, "--ksid", &v)) {
            if (v == NULL || strlen(v) != HYKEX_KSID_LEN) {
                return cli_usage_error("open", "--ksid must be a UUID");
            }
            memcpy(ksid, v, HYKEX_KSID_LEN + 1);
        } else if (argv[i][0] != '-' && src == NULL) {
            src = argv[i++];
        } else if (argv[i][0] != '-' && dst == NULL) {
            dst = argv[i++];
        } else {
            return cli_usage_error("open", "unknown argument '%s'", argv[i]);
        }
    }
    if (src == NULL || dst == NULL) {
        return cli_usage_error("open",
                               "usage: hykex open SOURCE DESTINATION [--chunk N] "
                               "[--timeout MS] [--ksid UUID] [--address HOST:PORT]");
    }
    if (connect_or_fail("open", address, &h) != 0) {
        return 1;
    }
    if (hykex_open_connect(h, src, dst, &qos, ksid, &status) != 0) {
        hykex_disconnect(h);
        return 1;
    }
    print_status("OPEN_CONNECT", status, h, status == 0 ? ksid : NULL);
    hykex_disconnect(h);
    return status == 0 ? 0 : 1;
}

int cmd_get(int argc, char **argv)
{
    char address[320] = "127.0.0.1:65430";
    const char *ksid = NULL, *v;
    uint64_t n;
    uint32_t index = 0;
    bool have_index = false;
    struct hykex *h;
    int rc, a;

    for (int i = 1; i < argc;) {
        if ((a = address_option(argc, argv, &i, address, sizeof(address), "get")) != 0) {
            if (a != 1) {
                return a;
            }
        } else if (cli_option(argc, argv, &i, "--index", &v)) {
            if (v == NULL || cli_parse_u64(v, 0, UINT32_MAX, &n) != 0) {
                return cli_usage_error("get", "--index must be 0..4294967295");
            }
            index = (uint32_t)n;
            have_index = true;
        } else if (argv[i][0] != '-' && ksid == NULL) {
            ksid = argv[i++];
        } else {
            return cli_usage_error("get", "unknown argument '%s'", argv[i]);
        }
    }
    if (ksid == NULL) {
        return cli_usage_error("get", "usage: hykex get KEY_STREAM_ID [--index N] [--address ...]");
    }
    if (connect_or_fail("get", address, &h) != 0) {
        return 1;
    }
    rc = do_get(h, ksid, have_index ? &index : NULL);
    hykex_disconnect(h);
    return rc;
}

int cmd_close(int argc, char **argv)
{
    char address[320] = "127.0.0.1:65430";
    const char *ksid = NULL;
    struct hykex *h;
    uint32_t status;
    int a;

    for (int i = 1; i < argc;) {
        if ((a = address_option(argc, argv, &i, address, sizeof(address), "close")) != 0) {
            if (a != 1) {
                return a;
            }
        } else if (argv[i][0] != '-' && ksid == NULL) {
            ksid = argv[i++];
        } else {
            return cli_usage_error("close", "unknown argument '%s'", argv[i]);
        }
    }
    if (ksid == NULL) {
        return cli_usage_error("close", "usage: hykex close KEY_STREAM_ID [--address ...]");
    }
    if (connect_or_fail("close", address, &h) != 0) {
        return 1;
    }
    if (hykex_close(h, ksid, &status) != 0) {
        hykex_disconnect(h);
        return 1;
    }
    print_status("CLOSE", status, h, NULL);
    hykex_disconnect(h);
    return status == 0 ? 0 : 1;
}

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

/* The STATUS reply for a person: one line per peer and per stream. */
static void print_status_table(struct json_object *o)
{
    struct json_object *peers = jget(o, "peers"), *streams = jget(o, "streams"),
                       *err = jget(o, "errors");

    printf("node %s  certificate expires %s  store: %s\n", jstr(o, "node"),
           jstr(o, "certificate_expires"), jstr(o, "store"));
    printf("peers (%zu)\n", json_object_array_length(peers));
    for (size_t i = 0; i < json_object_array_length(peers); i++) {
        struct json_object *p = json_object_array_get_idx(peers, i);
        bool up = json_object_get_boolean(jget(p, "up"));
        printf("  %s  %-4s since %-20s  %s  %s  certificate expires %s  links made %" PRId64 "\n",
               jstr(p, "uuid"), up ? "up" : "down", jstr(p, up ? "last_up" : "last_down"),
               jstr(p, "group"), jstr(p, "cipher"), jstr(p, "certificate_expires"),
               jint(p, "links_made"));
    }
    if (jget(o, "streams_total") != NULL &&
        jint(o, "streams_total") > (int64_t)json_object_array_length(streams)) {
        printf("streams (%zu listed of %" PRId64 ": limits.status_streams; by state %s)\n",
               json_object_array_length(streams), jint(o, "streams_total"),
               json_object_to_json_string_ext(jget(o, "streams_by_state"), JSON_C_TO_STRING_PLAIN));
    } else {
        printf("streams (%zu)\n", json_object_array_length(streams));
    }
    for (size_t i = 0; i < json_object_array_length(streams); i++) {
        struct json_object *e = json_object_array_get_idx(streams, i), *src = jget(e, "sources");
        char sources[160] = "";
        size_t off = 0;
        for (size_t j = 0; j < json_object_array_length(src) && off < sizeof(sources); j++) {
            off += (size_t)snprintf(sources + off, sizeof(sources) - off, "%s%s", j ? "," : "",
                                    json_object_get_string(json_object_array_get_idx(src, j)));
        }
        printf("  %s  %-9s peer %s  %s [%s]  ready %" PRId64 "/%" PRId64 " (+%" PRId64
               " prepared)  produced %" PRId64 "  delivered %" PRId64 "  next %" PRId64
               "  failed batches %" PRId64 "  %s%s%s\n",
               jstr(e, "key_stream_id"), jstr(e, "role"), jstr(e, "peer"), jstr(e, "method"),
               sources, jint(e, "ready"), jint(e, "buffer_depth"), jint(e, "prepared"),
               jint(e, "produced"), jint(e, "delivered"), jint(e, "next_index"),
               jint(e, "failed_batches"), jstr(e, "state"), jget(e, "last_error") ? ": " : "",
               jget(e, "last_error") ? jstr(e, "last_error") : "");
    }
    printf("batches committed %" PRId64 "; errors: batches failed %" PRId64
           ", key confirmation mismatches %" PRId64 ", store errors %" PRId64 "\n",
           jint(o, "batches_ok"), jint(err, "batches_failed"), jint(err, "confirmation_mismatches"),
           jint(err, "store_errors"));
    if (jget(o, "relay") != NULL) {
        printf("relay: %" PRId64 " nodes on the map (hykex route)\n",
               jint(jget(o, "relay"), "nodes_total"));
    }
}

int cmd_status(int argc, char **argv)
{
    char address[320] = "127.0.0.1:65430";
    struct hykex *h;
    bool json = false;
    int a;

    for (int i = 1; i < argc;) {
        if ((a = address_option(argc, argv, &i, address, sizeof(address), "status")) != 0) {
            if (a != 1) {
                return a;
            }
        } else if (strcmp(argv[i], "--json") == 0) {
            json = true;
            i++;
        } else {
            return cli_usage_error("status",
                                   "usage: hykex status [--json] [--address HOST:PORT | --unix "
                                   "PATH | -c CONFIG.json]");
        }
    }
    if (connect_or_fail("status", address, &h) != 0) {
        return 1;
    }
    char *text = NULL;
    int rc = hykex_raw_call(h, "{\"command\": \"STATUS\"}", &text);
    struct json_object *o = rc == 0 && text != NULL && !json ? json_tokener_parse(text) : NULL;
    if (o != NULL && jget(o, "peers") != NULL && jget(o, "streams") != NULL) {
        print_status_table(o);
    } else if (rc == 0 && text != NULL) {
        printf("%s\n", text);
    }
    json_object_put(o);
    free(text);
    hykex_disconnect(h);
    return rc == 0 ? 0 : 1;
}

/* The relay's map from a STATUS reply: every node, or only `only`, with this node's path. */
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
        fprintf(stderr, "hykex route: %s is not on the map%s\n", only,
                shown ? " or has no path" : "");
        return 1;
    }
    return 0;
}

int cmd_route(int argc, char **argv)
{
    char address[320] = "127.0.0.1:65430";
    const char *only = NULL;
    struct hykex *h;
    bool json = false;
    int a, rc;

    for (int i = 1; i < argc;) {
        if ((a = address_option(argc, argv, &i, address, sizeof(address), "route")) != 0) {
            if (a != 1) {
                return a;
            }
        } else if (strcmp(argv[i], "--json") == 0) {
            json = true;
            i++;
        } else if (argv[i][0] != '-' && only == NULL) {
            only = argv[i++];
        } else {
            return cli_usage_error("route",
                                   "usage: hykex route [NODE-UUID] [--json] [--address HOST:PORT "
                                   "| --unix PATH | -c CONFIG.json]");
        }
    }
    if (connect_or_fail("route", address, &h) != 0) {
        return 1;
    }
    char *text = NULL;
    rc = hykex_raw_call(h, "{\"command\": \"STATUS\"}", &text);
    hykex_disconnect(h);
    struct json_object *o = rc == 0 && text != NULL ? json_tokener_parse(text) : NULL;
    struct json_object *relay = o != NULL ? jget(o, "relay") : NULL;
    if (o == NULL) {
        fprintf(stderr, "hykex route: no STATUS reply\n");
        rc = 1;
    } else if (relay == NULL) {
        fprintf(stderr, "hykex route: the relay is off on this node (relay.enabled)\n");
        rc = 1;
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
