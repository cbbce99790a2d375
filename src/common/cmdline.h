/*
 * The one way every hykex program and subcommand reads its command line: getopt_long with the
 * conventions of docs/api.md ("Command-line conventions"): -h/--help prints the usage on stdout
 * and exits 0, --version prints "PROGRAM VERSION" (CMake's project version) and exits 0, an
 * unknown option or a missing value exits 2 with a message that names the option.
 */
#ifndef HX_COMMON_CMDLINE_H
#define HX_COMMON_CMDLINE_H

#include <getopt.h>

#define HX_EXIT_USAGE 2

/* Option codes above every character: long-only options of a command start here. */
#define HX_OPT_VERSION 0x1000
#define HX_OPT_FIRST 0x1001

/* The entries every option table ends with (before the zero terminator). */
#define HX_CMDLINE_STD_OPTIONS                                                        \
    {"help", no_argument, NULL, 'h'}, {"version", no_argument, NULL, HX_OPT_VERSION}, \
    {                                                                                 \
        NULL, 0, NULL, 0                                                              \
    }

/* One program or subcommand. */
struct hx_cmdline {
    const char *prog;      /* "hykexd", "hykex status": prefixes every message */
    const char *usage;     /* printed for --help (stdout) and after a usage error (stderr) */
    const char *shortopts; /* getopt's, without the leading ':' or '+'; must hold "h" */
    const struct option *longopts; /* ends with HX_CMDLINE_STD_OPTIONS */
    int stop_at_operand;           /* 1: stop at the first operand (a subcommand follows) */
};

/* The project version, "MAJOR.MINOR.PATCH" (CMake's project(VERSION)). */
const char *hx_version(void);

/*
 * Starts reading argv (argv[0] is the program or subcommand name); call once before
 * hx_cmdline_next, also for each subcommand after its parent.
 */
void hx_cmdline_begin(void);

/*
 * The next option's code (as getopt_long; its value in optarg), or -1 once the options end
 * (the operands are argv[optind..argc-1]), or -2 when the caller must return *exit_code:
 * --help or --version was printed (0), or a message naming the bad option was (2).
 */
int hx_cmdline_next(const struct hx_cmdline *c, int argc, char **argv, int *exit_code);

/* "PROG: MESSAGE" and the usage's first line on stderr; returns HX_EXIT_USAGE. */
int hx_cmdline_error(const struct hx_cmdline *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
