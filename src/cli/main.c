/*
 * hykex: the command-line client. One table of subcommands (git, openssl style); each
 * subcommand parses its own arguments. Exit status: 0 success, 1 failure, 2 usage error.
 */
#define _GNU_SOURCE /* dladdr */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

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

static int cmd_version(int argc, char **argv)
{
    (void)argv;
    if (argc != 1) {
        fprintf(stderr, "hykex version: takes no arguments\n");
        return EXIT_USAGE;
    }
    printf("hykex %d.%d.%d\n", HYKEX_VERSION_MAJOR, HYKEX_VERSION_MINOR, HYKEX_VERSION_PATCH);
    printf("openssl    %s\n", OpenSSL_version(OPENSSL_VERSION));
    printf("libcrypto  %s\n", object_of((const void *)(uintptr_t)OpenSSL_version));
    printf("libssl     %s\n", object_of((const void *)(uintptr_t)SSL_CTX_new));
    printf("json-c     %s\n", json_c_version());
    printf("sqlite     %s\n", sqlite3_libversion());
    printf("libcurl    %s\n", curl_version());
    printf("microhttpd %s\n", MHD_get_version());
    return 0;
}

static int cmd_uuid(int argc, char **argv)
{
    struct hx_uuid u;
    char text[HX_UUID_STR_LEN + 1];

    (void)argv;
    if (argc != 1) {
        fprintf(stderr, "hykex uuid: takes no arguments\n");
        return EXIT_USAGE;
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
    {"version", "", "print the versions and files of the libraries in use", cmd_version},
    {"uuid", "", "print a new random UUID (for a node or a key stream)", cmd_uuid},
    {"run", "REQUEST.json", "OPEN_CONNECT, GET_KEY x --keys N, CLOSE (like driver.py)", cmd_run},
    {"open", "SRC DST", "OPEN_CONNECT at hykexd; prints the key stream id", cmd_open},
    {"get", "KSID", "GET_KEY (--index N)", cmd_get},
    {"close", "KSID", "CLOSE", cmd_close},
    {"status", "[--json]",
     "the node's peers (up/down, TLS group, certificate expiry), streams (method, sources, "
     "counters, state) and error counters",
     cmd_status},
    {"reload", "--unix PATH", "hykexd reads its config, peers and certificates again", cmd_reload},
    {"kdf", "<alg> ...", "one KDF call with explicit inputs (known-answer checks)", cmd_kdf},
    {"combine", "<method> ...", "combine keys as hykexd does (known-answer checks)", cmd_combine},
    {"kem", "<alg> selftest", "ML-KEM, X25519, Classic McEliece, sntrup round trips and sizes",
     cmd_kem},
    {"sig", "<alg> selftest", "ML-DSA sign/verify round trips and sizes", cmd_sig},
    {"help", "", "this text", cmd_help},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: hykex <command> [arguments]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        fprintf(f, "  %-9s %-16s %s\n", commands[i].name, commands[i].args, commands[i].help);
    }
}

static int cmd_help(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    usage(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return 0;
    }
    /* Secrets go to OpenSSL's secure heap; without mlock rights they still get wiped. */
    if (hx_secret_heap_init(1u << 20) != HX_OK) {
        /* carry on: hx_secret falls back to the normal heap */
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(argv[1], commands[i].name) == 0) {
            return commands[i].run(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "hykex: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return EXIT_USAGE;
}
