/* Shared pieces of the hykex subcommands. */
#ifndef HX_CLI_CLI_H
#define HX_CLI_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/cmdline.h"

#define EXIT_USAGE HX_EXIT_USAGE

struct hykex;
struct json_object;

/* Prints "hykex <cmd>: <message>" on stderr and returns EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints "hykex <cmd>: <message>" on stderr and returns 1 (a failure, not a usage error). */
int cli_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Parses a decimal integer in [min, max] (no sign, no spaces, no trailing bytes).
 * Returns 0 on success.
 */
int cli_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* Decodes hex into a fresh heap buffer (*out, *len); empty input gives len 0. 0 on success. */
int cli_parse_hex(const char *cmd, const char *opt, const char *s, uint8_t **out, size_t *len);

/* Prints n bytes as lowercase hex and a newline on stdout. */
void cli_print_hex(const uint8_t *p, size_t n);

/*
 * Reads a JSON object from a file (at most 1 MiB); on failure prints a message naming the file
 * and the reason (strerror, or the JSON parser's) and returns 1.
 */
int cli_read_json(const char *cmd, const char *path, struct json_object **out);

/* ---- the options of the commands that talk to hykexd (run, open, get, close, status) ---- */

/* -c/--config CONFIG.json, --address HOST:PORT, --unix PATH: where hykexd's API is. */
#define CLI_OPT_ADDRESS (HX_OPT_FIRST + 0)
#define CLI_OPT_UNIX (HX_OPT_FIRST + 1)
#define CLI_OPT_NEXT (HX_OPT_FIRST + 2) /* a command's own long-only options start here */
#define CLI_ADDRESS_SHORTOPTS "hc:"
#define CLI_ADDRESS_OPTIONS                                    \
    {"config", required_argument, NULL, 'c'},                  \
        {"address", required_argument, NULL, CLI_OPT_ADDRESS}, \
    {                                                          \
        "unix", required_argument, NULL, CLI_OPT_UNIX          \
    }
#define CLI_ADDRESS_USAGE                                                                  \
    "      --address HOST:PORT\n"                                                          \
    "                       hykexd's API (default 127.0.0.1:65430; IPv6 as [addr]:port)\n" \
    "      --unix PATH      hykexd's API on a Unix socket\n"                               \
    "  -c, --config FILE    hykexd's config: its hybridization_server_address\n"           \
    "  -h, --help           this text\n"                                                   \
    "      --version        the version\n"

#define CLI_ADDRESS_MAX 320
#define CLI_DEFAULT_ADDRESS "127.0.0.1:65430"

/*
 * One of the address options (ch from hx_cmdline_next) into address: 1 if ch was one (0 if
 * not), or after printing why its value cannot be used, minus the exit code: -2 for a value
 * that cannot be an address, -1 for a config file that cannot be read.
 */
int cli_address_option(const char *cmd, int ch, const char *value, char address[CLI_ADDRESS_MAX]);

/* Connects to hykexd; on failure prints the address and the reason and returns 1. */
int cli_connect(const char *cmd, const char *address, struct hykex **h);

/* A libhykex call's negative return as a message naming the address; returns 1. */
int cli_call_failed(const char *cmd, const char *address, int rc);

/* 0 if s is a key stream id (a UUID); else prints which and why, and returns EXIT_USAGE. */
int cli_check_ksid(const char *cmd, const char *s);

int cmd_kdf(int argc, char **argv);
int cmd_combine(int argc, char **argv);
int cmd_kem(int argc, char **argv);
int cmd_sig(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_open(int argc, char **argv);
int cmd_get(int argc, char **argv);
int cmd_close(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_reload(int argc, char **argv);

#endif
