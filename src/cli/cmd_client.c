/* hykex run | open | get | close: an application's side of the ETSI 004 API, through libhykex. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <openssl/crypto.h>

#include "cli/cli.h"
#include "common/json.h"
#include "hykex/hykex.h"
#include "proto/etsi004.h"

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

static int do_get(struct hykex *h, const char *address, const char *ksid,
                  const uint32_t *want_index)
{
    uint8_t key[65536];
    size_t len = sizeof(key);
    char meta[512];
    uint32_t status, index = want_index != NULL ? *want_index : 0;
    int rc = hykex_get_key(h, ksid, want_index != NULL ? &index : NULL, key, &len, meta,
                           sizeof(meta), &status);
    struct json_object *o, *kb;

    if (rc != 0) {
        OPENSSL_cleanse(key, sizeof(key));
        return cli_call_failed("get", address, rc);
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

static const struct option run_options[] = {
    CLI_ADDRESS_OPTIONS, {"keys", required_argument, NULL, 'n'}, HX_CMDLINE_STD_OPTIONS};
static const struct hx_cmdline run_cmdline = {
    "hykex run",
    "usage: hykex run [OPTIONS] REQUEST.json\n"
    "Sends the OPEN_CONNECT request in REQUEST.json to hykexd, then GET_KEY for positions\n"
    "0..N-1, then CLOSE; prints each reply as JSON (like the reference driver.py).\n"
    "  -n, --keys N         GET_KEY calls (0..1000000, default 1)\n" CLI_ADDRESS_USAGE,
    CLI_ADDRESS_SHORTOPTS "n:", run_options, 0};

int cmd_run(int argc, char **argv)
{
    char address[CLI_ADDRESS_MAX] = CLI_DEFAULT_ADDRESS, ksid[HYKEX_KSID_LEN + 1] = "", why[300];
    const char *file;
    uint64_t keys = 1;
    struct json_object *o = NULL;
    struct hx_004_request req;
    struct hykex *h = NULL;
    uint32_t status;
    int rc, ch, ex;

    hx_cmdline_begin();
    while ((ch = hx_cmdline_next(&run_cmdline, argc, argv, &ex)) != -1) {
        if (ch == -2) {
            return ex;
        }
        if ((rc = cli_address_option("run", ch, optarg, address)) < 0) {
            return -rc;
        } else if (rc == 0 && (ch != 'n' || cli_parse_u64(optarg, 0, 1000000, &keys) != 0)) {
            return hx_cmdline_error(&run_cmdline, "--keys must be 0..1000000, not '%s'", optarg);
        }
    }
    if (argc - optind != 1) {
        return hx_cmdline_error(&run_cmdline, "give one REQUEST.json (%d operands given)",
                                argc - optind);
    }
    file = argv[optind];
    if (cli_read_json("run", file, &o) != 0) {
        return 1;
    }
    if (hx_004_json_decode_request(o, &req, why, sizeof(why)) != HX_OK) {
        json_object_put(o);
        return cli_fail("run", "%s is not an ETSI 004 request: %s", file, why);
    }
    if (req.cmd != HX_004_OPEN_CONNECT) {
        struct json_object *c = NULL;
        json_object_object_get_ex(o, "command", &c);
        rc = cli_fail("run", "%s is a %.40s request, not OPEN_CONNECT", file,
                      json_object_get_string(c));
        json_object_put(o);
        return rc;
    }
    json_object_put(o);
    if (!hx_uuid_is_nil(&req.ksid)) {
        hx_uuid_format(&req.ksid, ksid);
    }
    if (cli_connect("run", address, &h) != 0) {
        return 1;
    }
    rc = hykex_open_connect(h, req.source, req.destination, &req.qos, ksid, &status);
    if (rc != 0 || status != 0) {
        if (rc == 0) {
            print_status("OPEN_CONNECT", status, h, NULL);
        } else {
            cli_call_failed("run", address, rc);
        }
        hykex_disconnect(h);
        return 1;
    }
    print_status("OPEN_CONNECT", 0, h, ksid);
    rc = 0;
    for (uint64_t k = 0; k < keys && rc == 0; k++) {
        uint32_t index = (uint32_t)k;
        rc = do_get(h, address, ksid, &index);
    }
    if (hykex_close(h, ksid, &status) == 0) {
        print_status("CLOSE", status, h, NULL);
    }
    hykex_disconnect(h);
    return rc;
}

enum { OPT_CHUNK = CLI_OPT_NEXT, OPT_TIMEOUT, OPT_KSID };

static const struct option open_options[] = {CLI_ADDRESS_OPTIONS,
                                             {"chunk", required_argument, NULL, OPT_CHUNK},
                                             {"timeout", required_argument, NULL, OPT_TIMEOUT},
                                             {"ksid", required_argument, NULL, OPT_KSID},
                                             HX_CMDLINE_STD_OPTIONS};
static const struct hx_cmdline open_cmdline = {
    "hykex open",
    "usage: hykex open [OPTIONS] SOURCE DESTINATION\n"
    "OPEN_CONNECT at hykexd (SOURCE and DESTINATION are qkd:// URIs); prints the reply as JSON\n"
    "with the key stream id.\n"
    "      --chunk N        key_chunk_size in bytes (1..65535, default 32)\n"
    "      --timeout MS     QoS timeout in milliseconds\n"
    "      --ksid UUID      join or predefine this key stream id\n" CLI_ADDRESS_USAGE,
    CLI_ADDRESS_SHORTOPTS, open_options, 0};

int cmd_open(int argc, char **argv)
{
    char address[CLI_ADDRESS_MAX] = CLI_DEFAULT_ADDRESS, ksid[HYKEX_KSID_LEN + 1] = "";
    struct hykex_qos qos;
    struct hykex *h;
    uint64_t n;
    uint32_t status;
    int rc, ch, ex;

    memset(&qos, 0, sizeof(qos));
    qos.key_chunk_size = 32;
    hx_cmdline_begin();
    while ((ch = hx_cmdline_next(&open_cmdline, argc, argv, &ex)) != -1) {
        if (ch == -2) {
            return ex;
        }
        if ((rc = cli_address_option("open", ch, optarg, address)) < 0) {
            return -rc;
        } else if (rc == 1) {
            continue;
        } else if (ch == OPT_CHUNK) {
            if (cli_parse_u64(optarg, 1, 65535, &n) != 0) {
                return hx_cmdline_error(&open_cmdline, "--chunk must be 1..65535 bytes, not '%s'",
                                        optarg);
            }
            qos.key_chunk_size = (uint32_t)n;
        } else if (ch == OPT_TIMEOUT) {
            if (cli_parse_u64(optarg, 0, UINT32_MAX, &n) != 0) {
                return hx_cmdline_error(&open_cmdline, "--timeout must be milliseconds, not '%s'",
                                        optarg);
            }
            qos.timeout_ms = (uint32_t)n;
        } else if (ch == OPT_KSID) {
            if (cli_check_ksid("open", optarg) != 0) {
                return EXIT_USAGE;
            }
            memcpy(ksid, optarg, HYKEX_KSID_LEN + 1);
        }
    }
    if (argc - optind != 2) {
        return hx_cmdline_error(&open_cmdline, "give SOURCE and DESTINATION (%d operands given)",
                                argc - optind);
    }
    if (cli_connect("open", address, &h) != 0) {
        return 1;
    }
    if ((rc = hykex_open_connect(h, argv[optind], argv[optind + 1], &qos, ksid, &status)) != 0) {
        hykex_disconnect(h);
        return cli_call_failed("open", address, rc);
    }
    print_status("OPEN_CONNECT", status, h, status == 0 ? ksid : NULL);
    hykex_disconnect(h);
    return status == 0 ? 0 : 1;
}

static const struct option get_options[] = {
    CLI_ADDRESS_OPTIONS, {"index", required_argument, NULL, 'i'}, HX_CMDLINE_STD_OPTIONS};
static const struct hx_cmdline get_cmdline = {
    "hykex get",
    "usage: hykex get [OPTIONS] KEY_STREAM_ID\n"
    "GET_KEY at hykexd; prints the reply as JSON (key_buffer, index, metadata).\n"
    "  -i, --index N        the key at this position (default: the next one)\n" CLI_ADDRESS_USAGE,
    CLI_ADDRESS_SHORTOPTS "i:", get_options, 0};

int cmd_get(int argc, char **argv)
{
    char address[CLI_ADDRESS_MAX] = CLI_DEFAULT_ADDRESS;
    uint64_t n;
    uint32_t index = 0;
    bool have_index = false;
    struct hykex *h;
    int rc, ch, ex;

    hx_cmdline_begin();
    while ((ch = hx_cmdline_next(&get_cmdline, argc, argv, &ex)) != -1) {
        if (ch == -2) {
            return ex;
        }
        if ((rc = cli_address_option("get", ch, optarg, address)) < 0) {
            return -rc;
        } else if (rc == 0 && ch == 'i') {
            if (cli_parse_u64(optarg, 0, UINT32_MAX, &n) != 0) {
                return hx_cmdline_error(&get_cmdline, "--index must be 0..4294967295, not '%s'",
                                        optarg);
            }
            index = (uint32_t)n;
            have_index = true;
        }
    }
    if (argc - optind != 1) {
        return hx_cmdline_error(&get_cmdline, "give one KEY_STREAM_ID (%d operands given)",
                                argc - optind);
    }
    if (cli_check_ksid("get", argv[optind]) != 0) {
        return EXIT_USAGE;
    }
    if (cli_connect("get", address, &h) != 0) {
        return 1;
    }
    rc = do_get(h, address, argv[optind], have_index ? &index : NULL);
    hykex_disconnect(h);
    return rc;
}

static const struct option close_options[] = {CLI_ADDRESS_OPTIONS, HX_CMDLINE_STD_OPTIONS};
static const struct hx_cmdline close_cmdline = {
    "hykex close",
    "usage: hykex close [OPTIONS] KEY_STREAM_ID\n"
    "CLOSE at hykexd; prints the reply as JSON.\n" CLI_ADDRESS_USAGE,
    CLI_ADDRESS_SHORTOPTS, close_options, 0};

int cmd_close(int argc, char **argv)
{
    char address[CLI_ADDRESS_MAX] = CLI_DEFAULT_ADDRESS;
    struct hykex *h;
    uint32_t status;
    int rc, ch, ex;

    hx_cmdline_begin();
    while ((ch = hx_cmdline_next(&close_cmdline, argc, argv, &ex)) != -1) {
        if (ch == -2) {
            return ex;
        }
        if ((rc = cli_address_option("close", ch, optarg, address)) < 0) {
            return -rc;
        }
    }
    if (argc - optind != 1) {
        return hx_cmdline_error(&close_cmdline, "give one KEY_STREAM_ID (%d operands given)",
                                argc - optind);
    }
    if (cli_check_ksid("close", argv[optind]) != 0) {
        return EXIT_USAGE;
    }
    if (cli_connect("close", address, &h) != 0) {
        return 1;
    }
    if ((rc = hykex_close(h, argv[optind], &status)) != 0) {
        hykex_disconnect(h);
        return cli_call_failed("close", address, rc);
    }
    print_status("CLOSE", status, h, NULL);
    hykex_disconnect(h);
    return status == 0 ? 0 : 1;
}
