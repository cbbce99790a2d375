/* Shared pieces of the hykex subcommands. */
#ifndef HX_CLI_CLI_H
#define HX_CLI_CLI_H

#include <stddef.h>
#include <stdint.h>

#define EXIT_USAGE 2

/* Prints "hykex <cmd>: <message>" on stderr and returns EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Parses a decimal integer in [min, max] (no sign, no spaces, no trailing bytes).
 * Returns 0 on success.
 */
int cli_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* Decodes hex into a fresh heap buffer (*out, *len); empty input gives len 0. 0 on success. */
int cli_parse_hex(const char *cmd, const char *opt, const char *s, uint8_t **out, size_t *len);

/* Prints n bytes as lowercase hex and a newline on stdout. */
void cli_print_hex(const uint8_t *p, size_t n);

/* Looks for "--name VALUE" or "--name=VALUE" at argv[*i]; advances *i past it. */
int cli_option(int argc, char **argv, int *i, const char *name, const char **value);

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
