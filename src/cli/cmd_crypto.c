/* hykex kdf | combine: the crypto core's command-line face, for known-answer checks. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cli/cli.h"
#include "common/secret.h"
#include "common/uuid.h"
#include "crypto/combine.h"
#include "crypto/kdf.h"

/* ---- hykex kdf ------------------------------------------------------------------------- */

static const char kdf_usage[] =
    "usage: hykex kdf <hkdf-sha256|hkdf-sha384|sskdf-hmac-sha256|sskdf-hmac-sha384|"
    "sskdf-kmac128|sskdf-kmac256>\n"
    "                 --ikm HEX [--salt HEX] [--info HEX] --length N\n"
    "HKDF (RFC 5869): IKM, salt, info. SSKDF (SP 800-56C r2 one-step): Z = ikm, salt = the\n"
    "HMAC / KMAC key, FixedInfo = info. An empty salt means the default (zeros). Prints the\n"
    "output as lowercase hex.\n"
    "      --ikm HEX        the input keying material (Z for SSKDF)\n"
    "      --salt HEX       HKDF's salt, SSKDF's HMAC / KMAC key\n"
    "      --info HEX       HKDF's info, SSKDF's FixedInfo\n"
    "      --length N       output bytes\n"
    "  -h, --help           this text\n"
    "      --version        the version\n";

enum { OPT_IKM = HX_OPT_FIRST, OPT_SALT, OPT_INFO, OPT_LENGTH };

static const struct option kdf_options[] = {{"ikm", required_argument, NULL, OPT_IKM},
                                            {"salt", required_argument, NULL, OPT_SALT},
                                            {"info", required_argument, NULL, OPT_INFO},
                                            {"length", required_argument, NULL, OPT_LENGTH},
                                            HX_CMDLINE_STD_OPTIONS};
static const struct hx_cmdline kdf_cmdline = {"hykex kdf", kdf_usage, "h", kdf_options, 0};

int cmd_kdf(int argc, char **argv)
{
    enum hx_kdf_alg alg;
    const char *ikm_s = NULL, *salt_s = "", *info_s = "", *len_s = NULL;
    uint8_t *ikm = NULL, *salt = NULL, *info = NULL, *out = NULL;
    size_t ikm_len = 0, salt_len = 0, info_len = 0;
    uint64_t len;
    int rc = EXIT_USAGE, ch, ex;
    hx_err e;

    hx_cmdline_begin();
    while ((ch = hx_cmdline_next(&kdf_cmdline, argc, argv, &ex)) != -1) {
        switch (ch) {
        case -2:
            return ex;
        case OPT_IKM:
            ikm_s = optarg;
            break;
        case OPT_SALT:
            salt_s = optarg;
            break;
        case OPT_INFO:
            info_s = optarg;
            break;
        case OPT_LENGTH:
            len_s = optarg;
            break;
        }
    }
    if (argc - optind != 1) {
        return hx_cmdline_error(&kdf_cmdline, "give one KDF (%d operands given)", argc - optind);
    }
    if (hx_kdf_parse(argv[optind], &alg) != HX_OK) {
        return cli_usage_error("kdf",
                               "unknown KDF '%s' (hkdf-sha256, hkdf-sha384, sskdf-hmac-sha256, "
                               "sskdf-hmac-sha384, sskdf-kmac128, sskdf-kmac256)",
                               argv[optind]);
    }
    if (ikm_s == NULL || len_s == NULL) {
        return cli_usage_error("kdf", "--ikm and --length are required");
    }
    if (cli_parse_u64(len_s, 1, hx_kdf_max_output(alg), &len) != 0) {
        return cli_usage_error("kdf", "--length must be a whole number from 1 to %zu for %s",
                               hx_kdf_max_output(alg), hx_kdf_name(alg));
    }
    if (cli_parse_hex("kdf", "--ikm", ikm_s, &ikm, &ikm_len) != 0 ||
        cli_parse_hex("kdf", "--salt", salt_s, &salt, &salt_len) != 0 ||
        cli_parse_hex("kdf", "--info", info_s, &info, &info_len) != 0) {
        goto out;
    }
    if (ikm_len == 0) {
        rc = cli_usage_error("kdf", "--ikm must not be empty");
        goto out;
    }
    if ((out = OPENSSL_malloc(len)) == NULL) {
        rc = 1;
        goto out;
    }
    if ((e = hx_kdf_derive(alg, ikm, ikm_len, salt, salt_len, info, info_len, out, len)) != HX_OK) {
        fprintf(stderr, "hykex kdf: %s failed: %s\n", hx_kdf_name(alg), hx_strerror(e));
        rc = 1;
        goto out;
    }
    cli_print_hex(out, len);
    rc = 0;
out:
    OPENSSL_clear_free(ikm, ikm_len);
    OPENSSL_free(salt);
    OPENSSL_free(info);
    OPENSSL_clear_free(out, out != NULL ? len : 0);
    return rc;
}

/* ---- hykex combine --------------------------------------------------------------------- */

static const char combine_usage[] =
    "usage: hykex combine <method> --key HEX --key HEX [--key HEX ...] --length N\n"
    "                     [--stream-id UUID] [--position N] [--name NAME ...] "
    "[--transcript HEX]\n"
    "       hykex combine <catkdf-*|caskdf-*> --key HEX --key HEX ... --length N\n"
    "                     [--psk HEX] [--label HEX ...] [--context HEX] [--ma HEX ...] "
    "[--mb HEX ...]\n"
    "The first form is what hykexd computes (docs/combiners.md): keys in key_sources order,\n"
    "--name once per key (default: empty names), stream id (default nil UUID), position\n"
    "(default 0), transcript hash (default empty). The second form calls ETSI TS 103 744\n"
    "CatKDF / CasKDF with explicit inputs; CasKDF takes --label/--ma/--mb once for all rounds or\n"
    "once per key. Output: lowercase hex.\n"
    "methods: ";

static const char combine_options_usage[] =
    "      --key HEX        a key, in key_sources order (2 or more)\n"
    "      --length N       output bytes\n"
    "      --name NAME      a key's source name, once per --key\n"
    "      --stream-id UUID  the key stream id (default: the nil UUID)\n"
    "      --position N     the key's position in the stream (default 0)\n"
    "      --transcript HEX  the batch transcript hash (default: empty)\n"
    "      --psk HEX        TS 103 744: the pre-shared key\n"
    "      --label HEX      TS 103 744: the label, once or once per --key (CasKDF)\n"
    "      --context HEX    TS 103 744: the context\n"
    "      --ma HEX         TS 103 744: MA, once or once per --key (CasKDF)\n"
    "      --mb HEX         TS 103 744: MB, once or once per --key (CasKDF)\n"
    "  -h, --help           this text\n"
    "      --version        the version\n";

#define MAX_KEYS HX_COMBINE_MAX_SOURCES

struct combine_args {
    const char *keys[MAX_KEYS + 1];
    size_t n_keys;
    const char *names[MAX_KEYS + 1];
    size_t n_names;
    const char *labels[MAX_KEYS + 1], *mas[MAX_KEYS + 1], *mbs[MAX_KEYS + 1];
    size_t n_labels, n_mas, n_mbs;
    const char *length, *stream_id, *position, *transcript, *psk, *context;
};

static int push(const char **list, size_t *n, const char *v, const char *opt)
{
    if (*n >= MAX_KEYS) {
        return cli_usage_error("combine", "at most %d %s options", MAX_KEYS, opt);
    }
    list[(*n)++] = v;
    return 0;
}

enum {
    OPT_KEY = HX_OPT_FIRST + 8,
    OPT_NAME,
    OPT_LABEL,
    OPT_MA,
    OPT_MB,
    OPT_CLENGTH,
    OPT_STREAM_ID,
    OPT_POSITION,
    OPT_TRANSCRIPT,
    OPT_PSK,
    OPT_CONTEXT
};

static const struct option combine_options[] = {
    {"key", required_argument, NULL, OPT_KEY},
    {"name", required_argument, NULL, OPT_NAME},
    {"label", required_argument, NULL, OPT_LABEL},
    {"ma", required_argument, NULL, OPT_MA},
    {"mb", required_argument, NULL, OPT_MB},
    {"length", required_argument, NULL, OPT_CLENGTH},
    {"stream-id", required_argument, NULL, OPT_STREAM_ID},
    {"position", required_argument, NULL, OPT_POSITION},
    {"transcript", required_argument, NULL, OPT_TRANSCRIPT},
    {"psk", required_argument, NULL, OPT_PSK},
    {"context", required_argument, NULL, OPT_CONTEXT},
    HX_CMDLINE_STD_OPTIONS};

/* The options into a; the method's name in *method. 0, or the exit code. */
static int parse_combine_args(const struct hx_cmdline *cl, int argc, char **argv,
                              struct combine_args *a, const char **method)
{
    int ch, ex, rc;

    hx_cmdline_begin();
    while ((ch = hx_cmdline_next(cl, argc, argv, &ex)) != -1) {
        rc = 0;
        switch (ch) {
        case -2:
            return ex;
        case OPT_KEY:
            rc = push(a->keys, &a->n_keys, optarg, "--key");
            break;
        case OPT_NAME:
            rc = push(a->names, &a->n_names, optarg, "--name");
            break;
        case OPT_LABEL:
            rc = push(a->labels, &a->n_labels, optarg, "--label");
            break;
        case OPT_MA:
            rc = push(a->mas, &a->n_mas, optarg, "--ma");
            break;
        case OPT_MB:
            rc = push(a->mbs, &a->n_mbs, optarg, "--mb");
            break;
        case OPT_CLENGTH:
            a->length = optarg;
            break;
        case OPT_STREAM_ID:
            a->stream_id = optarg;
            break;
        case OPT_POSITION:
            a->position = optarg;
            break;
        case OPT_TRANSCRIPT:
            a->transcript = optarg;
            break;
        case OPT_PSK:
            a->psk = optarg;
            break;
        case OPT_CONTEXT:
            a->context = optarg;
            break;
        }
        if (rc != 0) {
            return rc;
        }
    }
    if (argc - optind != 1) {
        return hx_cmdline_error(cl, "give one method (%d operands given)", argc - optind);
    }
    *method = argv[optind];
    return -1;
}

/* Hex options decoded; every buffer freed by free_decoded. */
struct decoded {
    uint8_t *keys[MAX_KEYS];
    size_t key_len[MAX_KEYS];
    uint8_t *labels[MAX_KEYS], *mas[MAX_KEYS], *mbs[MAX_KEYS];
    size_t label_len[MAX_KEYS], ma_len[MAX_KEYS], mb_len[MAX_KEYS];
    uint8_t *transcript, *psk, *context;
    size_t transcript_len, psk_len, context_len;
};

static void free_decoded(struct decoded *d)
{
    for (size_t i = 0; i < MAX_KEYS; i++) {
        OPENSSL_clear_free(d->keys[i], d->key_len[i]);
        OPENSSL_free(d->labels[i]);
        OPENSSL_free(d->mas[i]);
        OPENSSL_free(d->mbs[i]);
    }
    OPENSSL_free(d->transcript);
    OPENSSL_clear_free(d->psk, d->psk_len);
    OPENSSL_free(d->context);
}

static int decode_list(const char *opt, const char *const *in, size_t n, uint8_t **out,
                       size_t *lens)
{
    for (size_t i = 0; i < n; i++) {
        if (cli_parse_hex("combine", opt, in[i], &out[i], &lens[i]) != 0) {
            return -1;
        }
    }
    return 0;
}

static int decode_one(const char *opt, const char *in, uint8_t **out, size_t *len)
{
    return in == NULL ? 0 : cli_parse_hex("combine", opt, in, out, len);
}

static bool is_ts103744(enum hx_combine_method m)
{
    return m >= HX_COMBINE_CATKDF_HKDF_SHA256 && m <= HX_COMBINE_CASKDF_KMAC256;
}

static enum hx_kdf_alg ts103744_kdf(enum hx_combine_method m)
{
    static const enum hx_kdf_alg map[6] = {
        HX_KDF_HKDF_SHA256,       HX_KDF_HKDF_SHA384,   HX_KDF_SSKDF_HMAC_SHA256,
        HX_KDF_SSKDF_HMAC_SHA384, HX_KDF_SSKDF_KMAC128, HX_KDF_SSKDF_KMAC256,
    };
    return map[(m - HX_COMBINE_CATKDF_HKDF_SHA256) % 6];
}

/* The second form: TS 103 744 with explicit psk, labels, context and messages. */
static hx_err run_ts103744(enum hx_combine_method m, const struct combine_args *a,
                           const struct decoded *d, uint8_t *out, size_t len)
{
    struct hx_iov keys[MAX_KEYS];
    struct hx_ts103744_round rounds[MAX_KEYS];
    const struct hx_iov psk = {d->psk, d->psk_len};

    for (size_t i = 0; i < a->n_keys; i++) {
        size_t li = a->n_labels > 1 ? i : 0, ai = a->n_mas > 1 ? i : 0, bi = a->n_mbs > 1 ? i : 0;
        keys[i] = (struct hx_iov){d->keys[i], d->key_len[i]};
        rounds[i].label = (struct hx_iov){d->labels[li], d->label_len[li]};
        rounds[i].info = (struct hx_iov){d->context, d->context_len};
        rounds[i].ma = (struct hx_iov){d->mas[ai], d->ma_len[ai]};
        rounds[i].mb = (struct hx_iov){d->mbs[bi], d->mb_len[bi]};
    }
    if (m <= HX_COMBINE_CATKDF_KMAC256) {
        return hx_catkdf(ts103744_kdf(m), psk, keys, a->n_keys, &rounds[0], out, len);
    }
    return hx_caskdf(ts103744_kdf(m), psk, keys, a->n_keys, rounds, out, len);
}

int cmd_combine(int argc, char **argv)
{
    struct combine_args a;
    struct decoded d;
    enum hx_combine_method m;
    struct hx_combine_input in;
    struct hx_iov secrets[MAX_KEYS];
    struct hx_secret *key = NULL;
    uint8_t *raw = NULL;
    uint64_t len = 0, pos = 0;
    bool explicit_ts;
    int rc = EXIT_USAGE;
    const char *method = NULL;
    static char usage_text[4096];
    hx_err e;

    memset(&a, 0, sizeof(a));
    memset(&d, 0, sizeof(d));
    memset(&in, 0, sizeof(in));
    snprintf(usage_text, sizeof(usage_text), "%s%s\n%s", combine_usage, hx_combine_names(),
             combine_options_usage);
    struct hx_cmdline cl = {"hykex combine", usage_text, "h", combine_options, 0};
    if ((rc = parse_combine_args(&cl, argc, argv, &a, &method)) >= 0) {
        return rc;
    }
    if (hx_combine_parse(method, &m) != HX_OK) {
        return cli_usage_error("combine", "unknown method '%s' (one of: %s)", method,
                               hx_combine_names());
    }
    rc = EXIT_USAGE;
    if (a.n_keys < HX_COMBINE_MIN_SOURCES) {
        return cli_usage_error("combine", "%zu --key given: a combiner needs at least %d keys",
                               a.n_keys, HX_COMBINE_MIN_SOURCES);
    }
    if (a.length == NULL) {
        return cli_usage_error("combine", "--length is required");
    }
    if (cli_parse_u64(a.length, 1, hx_combine_max_output(m), &len) != 0) {
        return cli_usage_error("combine", "--length must be a whole number from 1 to %zu for %s",
                               hx_combine_max_output(m), hx_combine_name(m));
    }
    explicit_ts =
        a.psk != NULL || a.context != NULL || a.n_labels > 0 || a.n_mas > 0 || a.n_mbs > 0;
    if (explicit_ts) {
        if (!is_ts103744(m)) {
            return cli_usage_error("combine",
                                   "--psk, --label, --context, --ma, --mb go with "
                                   "catkdf-* and caskdf-* only");
        }
        if (a.stream_id != NULL || a.position != NULL || a.n_names > 0 || a.transcript != NULL) {
            return cli_usage_error("combine",
                                   "explicit TS 103 744 inputs replace --stream-id, "
                                   "--position, --name and --transcript; give one set");
        }
        bool cascade = m >= HX_COMBINE_CASKDF_HKDF_SHA256;
        if (a.n_labels > 1 || a.n_mas > 1 || a.n_mbs > 1) {
            if (!cascade) {
                return cli_usage_error("combine", "CatKDF takes --label, --ma and --mb once each");
            }
            if ((a.n_labels > 1 && a.n_labels != a.n_keys) ||
                (a.n_mas > 1 && a.n_mas != a.n_keys) || (a.n_mbs > 1 && a.n_mbs != a.n_keys)) {
                return cli_usage_error("combine",
                                       "CasKDF takes --label, --ma and --mb once, or "
                                       "once per --key (%zu)",
                                       a.n_keys);
            }
        }
    } else {
        if (a.n_names > 0 && a.n_names != a.n_keys) {
            return cli_usage_error("combine", "%zu --name for %zu --key: give one per key or none",
                                   a.n_names, a.n_keys);
        }
        for (size_t i = 0; i < a.n_names; i++) {
            if (strlen(a.names[i]) > HX_COMBINE_MAX_NAME) {
                return cli_usage_error("combine", "--name longer than %d bytes",
                                       HX_COMBINE_MAX_NAME);
            }
        }
        if (a.stream_id != NULL &&
            hx_uuid_parse(a.stream_id, strlen(a.stream_id), &in.stream_id) != HX_OK) {
            return cli_usage_error("combine", "--stream-id '%s' is not a UUID (8-4-4-4-12 hex)",
                                   a.stream_id);
        }
        if (a.position != NULL && cli_parse_u64(a.position, 0, UINT64_MAX, &pos) != 0) {
            return cli_usage_error("combine", "--position must be a whole number from 0 to %llu",
                                   (unsigned long long)UINT64_MAX);
        }
    }
    if (decode_list("--key", a.keys, a.n_keys, d.keys, d.key_len) != 0 ||
        decode_list("--label", a.labels, a.n_labels, d.labels, d.label_len) != 0 ||
        decode_list("--ma", a.mas, a.n_mas, d.mas, d.ma_len) != 0 ||
        decode_list("--mb", a.mbs, a.n_mbs, d.mbs, d.mb_len) != 0 ||
        decode_one("--transcript", a.transcript, &d.transcript, &d.transcript_len) != 0 ||
        decode_one("--psk", a.psk, &d.psk, &d.psk_len) != 0 ||
        decode_one("--context", a.context, &d.context, &d.context_len) != 0) {
        goto out;
    }
    for (size_t i = 0; i < a.n_keys; i++) {
        if (d.key_len[i] == 0) {
            rc = cli_usage_error("combine", "--key number %zu is empty", i + 1);
            goto out;
        }
        secrets[i] = (struct hx_iov){d.keys[i], d.key_len[i]};
    }
    if (d.transcript_len > HX_COMBINE_MAX_TRANSCRIPT) {
        rc = cli_usage_error("combine", "--transcript is a hash: at most %d bytes",
                             HX_COMBINE_MAX_TRANSCRIPT);
        goto out;
    }
    if (explicit_ts) {
        if ((raw = OPENSSL_malloc(len)) == NULL) {
            rc = 1;
            goto out;
        }
        e = run_ts103744(m, &a, &d, raw, len);
    } else {
        in.secrets = secrets;
        in.n = a.n_keys;
        in.names = a.n_names > 0 ? a.names : NULL;
        in.position = pos;
        in.transcript = d.transcript;
        in.transcript_len = d.transcript_len;
        e = hx_combine(m, &in, len, &key);
    }
    if (e != HX_OK) {
        fprintf(stderr, "hykex combine: %s failed: %s\n", hx_combine_name(m), hx_strerror(e));
        rc = e == HX_ERR_INVALID_ARG ? EXIT_USAGE : 1;
        goto out;
    }
    cli_print_hex(raw != NULL ? raw : hx_secret_data(key), len);
    rc = 0;
out:
    OPENSSL_clear_free(raw, raw != NULL ? len : 0);
    hx_secret_free(key);
    free_decoded(&d);
    return rc;
}
