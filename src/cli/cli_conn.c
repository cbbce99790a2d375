/* The options and errors shared by the subcommands that talk to hykexd. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "cli/cli.h"
#include "common/uuid.h"
#include "hykex/hykex.h"

/* -c CONFIG.json: the address in its hybridization_server_address. */
static int address_from_config(const char *cmd, const char *path, char address[CLI_ADDRESS_MAX])
{
    struct json_object *o = NULL, *a, *h, *p;
    int rc = -EXIT_USAGE;

    if (cli_read_json(cmd, path, &o) != 0) {
        return -1; /* the file cannot be read: a failure (exit 1) */
    }
    if (!json_object_object_get_ex(o, "hybridization_server_address", &a) ||
        !json_object_object_get_ex(a, "host", &h) || !json_object_is_type(h, json_type_string) ||
        !json_object_object_get_ex(a, "port", &p) || !json_object_is_type(p, json_type_int)) {
        cli_usage_error(cmd, "%s has no hybridization_server_address {\"host\", \"port\"}", path);
    } else if (strchr(json_object_get_string(h), ':') != NULL) {
        snprintf(address, CLI_ADDRESS_MAX, "[%s]:%d", json_object_get_string(h),
                 json_object_get_int(p));
        rc = 1;
    } else {
        snprintf(address, CLI_ADDRESS_MAX, "%s:%d", json_object_get_string(h),
                 json_object_get_int(p));
        rc = 1;
    }
    json_object_put(o);
    return rc;
}

int cli_address_option(const char *cmd, int ch, const char *value, char address[CLI_ADDRESS_MAX])
{
    size_t n;

    if (ch != 'c' && ch != CLI_OPT_ADDRESS && ch != CLI_OPT_UNIX) {
        return 0;
    }
    if (value == NULL) { /* getopt_long gives every one of them a value; checked all the same */
        return -EXIT_USAGE;
    }
    n = strlen(value);
    switch (ch) {
    case 'c':
        return address_from_config(cmd, value, address);
    case CLI_OPT_ADDRESS:
        if (n == 0 || n >= 300 || strrchr(value, ':') == NULL || strrchr(value, ':') == value ||
            value[n - 1] == ':') {
            cli_usage_error(cmd, "--address '%.300s' is not HOST:PORT (IPv6 as [addr]:port)",
                            value);
            return -EXIT_USAGE;
        }
        snprintf(address, CLI_ADDRESS_MAX, "%s", value);
        return 1;
    case CLI_OPT_UNIX:
        if (value[0] != '/' || n >= 108) {
            cli_usage_error(cmd, "--unix '%.300s' must be an absolute path shorter than 108 bytes",
                            value);
            return -EXIT_USAGE;
        }
        snprintf(address, CLI_ADDRESS_MAX, "%s", value);
        return 1;
    default:
        return 0;
    }
}

/* "127.0.0.1:65430" or "Unix socket /run/hykex/api.sock", for messages. */
static const char *where(const char *address, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s%s", address[0] == '/' ? "Unix socket " : "", address);
    return buf;
}

int cli_connect(const char *cmd, const char *address, struct hykex **h)
{
    char w[CLI_ADDRESS_MAX + 16];
    int rc;

    errno = 0;
    if ((rc = hykex_connect(address, h)) == 0) {
        return 0;
    }
    if (rc == HYKEX_E_ARG) {
        return cli_fail(cmd, "'%s' is not HOST:PORT or an absolute Unix socket path", address);
    }
    return cli_fail(cmd, "cannot connect to hykexd at %s: %s", where(address, w, sizeof(w)),
                    errno != 0 ? strerror(errno) : "host name not resolved");
}

int cli_call_failed(const char *cmd, const char *address, int rc)
{
    char w[CLI_ADDRESS_MAX + 16];

    where(address, w, sizeof(w));
    switch (rc) {
    case HYKEX_E_CONNECT:
        return cli_fail(cmd, "cannot connect to hykexd at %s", w);
    case HYKEX_E_IO:
        return cli_fail(cmd, "the connection to hykexd at %s broke", w);
    case HYKEX_E_PROTO:
        return cli_fail(cmd, "hykexd at %s answered something that is not an ETSI 004 reply", w);
    case HYKEX_E_SPACE:
        return cli_fail(cmd, "hykexd at %s sent a key larger than 65536 bytes", w);
    default:
        return cli_fail(cmd, "request to hykexd at %s refused by libhykex (%d: bad argument)", w,
                        rc);
    }
}

int cli_check_ksid(const char *cmd, const char *s)
{
    struct hx_uuid u;

    if (strlen(s) != HYKEX_KSID_LEN || hx_uuid_parse(s, strlen(s), &u) != HX_OK) {
        return cli_usage_error(cmd,
                               "'%.100s' is not a key stream id: a UUID, 36 characters "
                               "8-4-4-4-12 hex digits (as OPEN_CONNECT printed it)",
                               s);
    }
    return 0;
}
