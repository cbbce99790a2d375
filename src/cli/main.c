/*
 * hykex: the command-line client. One table of subcommands (git, openssl style); each
 * subcommand reads its own options with common/cmdline.h (getopt_long). Exit status: 0 success,
 * 1 failure, 2 usage error.
 */
#define _GNU_SOURCE /* dladdr */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include <curl/curl.h>
#include <json-c/json_c_version.h>
#include <microhttpd.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <sqlite3.h>

#include "cli/cli.h"
#include "common/secret.h"
#include "common/uuid.h"
#include "hykex/hykex.h"

struct command {
    const char *name;
    const char *args;
    const char *help;
    int (*run)(int argc, char **argv);
};

static int cmd_help(int argc, char **argv);

/* The file a symbol was loaded from: shows which libcrypto/libssl this process really uses. */
static const char *object_of(const void *sym)
{
    Dl_info info;

    if (dladdr(sym, &info) == 0 || info.dli_fname == NULL) {
        return "?";
    }
    return info.dli_fname;
}

static const struct option plain_options[] = {HX_CMDLINE_STD_OPTIONS};
static const struct option version_options[] = {{"json", no_argument, NULL, 'j'},
                                                HX_CMDLINE_STD_OPTIONS};
static const struct hx_cmdline version_cmdline = {
    "hykex version",
    "usage: hykex version [--json]\n"
    "The versions of hykex and of the libraries it runs with, and the files libcrypto and\n"
    "libssl were loaded from.\n"
    "  -j, --json           as one JSON object\n"
    "  -h, --help           this text\n"
    "      --version        the version\n",
    "hj", version_options, 0};

static int cmd_version(int argc, char **argv)
{
    struct json_object *o;
    bool json = false;
    int ch, ex;

    hx_cmdline_begin();
    while ((ch = hx_cmdline_next(&version_cmdline, argc, argv, &ex)) != -1) {
        if (ch == -2) {
            return ex;
        }
        json = true;
    }
    if (optind < argc) {
        return hx_cmdline_error(&version_cmdline, "takes no operands ('%s' given)", argv[optind]);
    }
    const char *rows[][2] = {
        {"hykex", hx_version()},
        {"openssl", OpenSSL_version(OPENSSL_VERSION)},
        {"libcrypto", object_of((const void *)(uintptr_t)OpenSSL_version)},
        {"libssl", object_of((const void *)(uintptr_t)SSL_CTX_new)},
        {"json-c", json_c_version()},
        {"sqlite", sqlite3_libversion()},
        {"libcurl", curl_version()},
        {"microhttpd", MHD_get_version()},
    };
    if (!json) {
        for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
            printf(i == 0 ? "%s %s\n" : "%-10s %s\n", rows[i][0], rows[i][1]);
        }
        return 0;
    }
    o = json_object_new_object();
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        json_object_object_add(o, rows[i][0], json_object_new_string(rows[i][1]));
    }
    printf("%s\n",
           json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                 JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
    return 0;
}

static const struct hx_cmdline uuid_cmdline = {
    "hykex uuid",
    "usage: hykex uuid\n"
    "Prints a new random (version 4) UUID, for a node or a key stream.\n"
    "  -h, --help           this text\n"
    "      --version        the version\n",
    "h", plain_options, 0};

static int cmd_uuid(int argc, char **argv)
{
    struct hx_uuid u;
    char text[HX_UUID_STR_LEN + 1];
    int ch, ex;

    hx_cmdline_begin();
    while ((ch = hx_cmdline_next(&uuid_cmdline, argc, argv, &ex)) != -1) {
        if (ch == -2) {
            return ex;
        }
    }
    if (optind < argc) {
        return hx_cmdline_error(&uuid_cmdline, "takes no operands ('%s' given)", argv[optind]);
    }
    if (hx_uuid_generate(&u) != HX_OK) {
        fprintf(stderr, "hykex uuid: random number generator failed\n");
        return 1;
    }
    hx_uuid_format(&u, text);
    printf("%s\n", text);
    return 0;
}

static const struct command commands[] = {
    {"version", "[--json]", "the versions and files of the libraries in use", cmd_version},
    {"uuid", "", "a new random UUID (for a node or a key stream)", cmd_uuid},
    {"run", "REQUEST.json", "OPEN_CONNECT, GET_KEY x --keys N, CLOSE (like driver.py)", cmd_run},
    {"open", "SRC DST", "OPEN_CONNECT at hykexd; prints the key stream id", cmd_open},
    {"get", "KSID", "GET_KEY (--index N)", cmd_get},
    {"close", "KSID", "CLOSE", cmd_close},
    {"status", "[--json]", "the node, its peers, streams, KME and error counters", cmd_status},
    {"reload", "--unix PATH", "hykexd reads its config, peers and certificates again", cmd_reload},
    {"kdf", "ALG ...", "one KDF call with explicit inputs (known-answer checks)", cmd_kdf},
    {"combine", "METHOD ...", "combine keys as hykexd does (known-answer checks)", cmd_combine},
    {"kem", "ALG selftest", "ML-KEM, X25519, Classic McEliece, sntrup round trips and sizes",
     cmd_kem},
    {"sig", "ALG selftest", "ML-DSA sign/verify round trips and sizes", cmd_sig},
    {"help", "[COMMAND]", "this text, or a command's (as COMMAND --help)", cmd_help},
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static char usage_text[4096];

/* The usage, built from the table once. */
static const char *usage(void)
{
    size_t off = 0;

    if (usage_text[0] != '\0') {
        return usage_text;
    }
    off += (size_t)snprintf(usage_text, sizeof(usage_text),
                            "usage: hykex [--version] [--help] COMMAND [ARGUMENTS]\n\ncommands:\n");
    for (size_t i = 0; i < N_COMMANDS && off < sizeof(usage_text); i++) {
        off += (size_t)snprintf(usage_text + off, sizeof(usage_text) - off, "  %-8s %-13s %s\n",
                                commands[i].name, commands[i].args, commands[i].help);
    }
    if (off < sizeof(usage_text)) {
        snprintf(usage_text + off, sizeof(usage_text) - off,
                 "\noptions:\n"
                 "  -h, --help           this text\n"
                 "      --version        the version\n"
                 "\n'hykex COMMAND --help' prints a command's options. Exit status: 0 success,\n"
                 "1 failure, 2 usage error.\n");
    }
    return usage_text;
}

static const struct command *find(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++) {
        if (strcmp(name, commands[i].name) == 0) {
            return &commands[i];
        }
    }
    return NULL;
}

static const struct hx_cmdline help_cmdline = {
    "hykex help",
    "usage: hykex help [COMMAND]\n"
    "The commands, or COMMAND's options (as hykex COMMAND --help).\n"
    "  -h, --help           this text\n"
    "      --version        the version\n",
    "h", plain_options, 0};

static int cmd_help(int argc, char **argv)
{
    const struct command *c;
    char help[] = "--help", *sub[3];
    int ch, ex;

    hx_cmdline_begin();
    while ((ch = hx_cmdline_next(&help_cmdline, argc, argv, &ex)) != -1) {
        if (ch == -2) {
            return ex;
        }
    }
    if (argc - optind > 1) {
        return hx_cmdline_error(&help_cmdline, "give at most one COMMAND");
    }
    if (argc - optind == 1) {
        if ((c = find(argv[optind])) == NULL || c->run == cmd_help) {
            return hx_cmdline_error(&help_cmdline, "unknown command '%s'", argv[optind]);
        }
        sub[0] = argv[optind];
        sub[1] = help;
        sub[2] = NULL;
        return c->run(2, sub);
    }
    fputs(usage(), stdout);
    return 0;
}

static const struct option main_options[] = {HX_CMDLINE_STD_OPTIONS};

int main(int argc, char **argv)
{
    const struct hx_cmdline main_cmdline = {"hykex", usage(), "h", main_options, 1};
    const struct command *c;
    int ch, ex;

    hx_cmdline_begin();
    while ((ch = hx_cmdline_next(&main_cmdline, argc, argv, &ex)) != -1) {
        if (ch == -2) {
            return ex;
        }
    }
    if (optind >= argc) {
        fputs(usage(), stderr);
        return EXIT_USAGE;
    }
    if ((c = find(argv[optind])) == NULL) {
        fprintf(stderr, "hykex: unknown command '%s'\n%s", argv[optind], usage());
        return EXIT_USAGE;
    }
    /* Secrets go to OpenSSL's secure heap; without mlock rights they still get wiped. */
    if (hx_secret_heap_init(1u << 20) != HX_OK) {
        /* carry on: hx_secret falls back to the normal heap */
    }
    return c->run(argc - optind, argv + optind);
}
