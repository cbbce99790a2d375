/* hykex kem | sig ALGORITHM selftest: round trips and sizes of the KEMs and ML-DSA. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/secret.h"
#include "crypto/kem.h"
#include "crypto/sig.h"

/* ---- hykex kem / sig selftest ---------------------------------------------------------- */

enum { OPT_RUNS = HX_OPT_FIRST + 32, OPT_PEMKEY };

static const struct option kem_options[] = {{"runs", required_argument, NULL, OPT_RUNS},
                                            HX_CMDLINE_STD_OPTIONS};
static const struct option sig_options[] = {{"runs", required_argument, NULL, OPT_RUNS},
                                            {"key", required_argument, NULL, OPT_PEMKEY},
                                            HX_CMDLINE_STD_OPTIONS};
static const char kem_usage_head[] =
    "usage: hykex kem ALGORITHM selftest [--runs N]\n"
    "Key generation, encapsulation and decapsulation round trips (and a tampered ciphertext\n"
    "each run), and the sizes against the standard's.\n"
    "ALGORITHM:";
static const char kem_usage_tail[] =
    "\n"
    "      --runs N         round trips (1..1000000, default 100)\n"
    "  -h, --help           this text\n"
    "      --version        the version\n";

/* Every KEM's name (kem.h), space-separated, built once. */
static const char *kem_names(void)
{
    static char names[1024];
    size_t off = 0;

    if (names[0] != '\0') {
        return names;
    }
    for (int i = 0; i < HX_KEM_ALG_COUNT && off < sizeof(names); i++) {
        off += (size_t)snprintf(names + off, sizeof(names) - off, "%s%s", i ? " " : "",
                                hx_kem_name((enum hx_kem_alg)i));
    }
    return names;
}

/* The usage with every KEM's name, built once. */
static const char *kem_usage(void)
{
    static char text[2048];

    if (text[0] == '\0') {
        snprintf(text, sizeof(text), "%s %s%s", kem_usage_head, kem_names(), kem_usage_tail);
    }
    return text;
}

static const struct hx_cmdline sig_cmdline = {
    "hykex sig",
    "usage: hykex sig ALGORITHM selftest [--runs N] [--key PEM]\n"
    "ML-DSA sign/verify round trips (wrong context, altered message and altered signature must\n"
    "be refused), and the sizes against FIPS 204's.\n"
    "ALGORITHM: ML-DSA-44 ML-DSA-65 ML-DSA-87\n"
    "      --runs N         round trips (1..1000000, default 10)\n"
    "      --key PEM        sign with this private key (a node's) instead of a fresh one\n"
    "  -h, --help           this text\n"
    "      --version        the version\n",
    "h", sig_options, 0};

/* ALGORITHM selftest [--runs N] [--key PEM]: 0 with *alg_name set, or the exit code. */
static int parse_selftest(const struct hx_cmdline *cl, int argc, char **argv, uint64_t *runs,
                          const char **key_path, const char **alg_name)
{
    int ch, ex;

    hx_cmdline_begin();
    while ((ch = hx_cmdline_next(cl, argc, argv, &ex)) != -1) {
        if (ch == -2) {
            return ex;
        }
        if (ch == OPT_RUNS && cli_parse_u64(optarg, 1, 1000000, runs) != 0) {
            return hx_cmdline_error(cl, "--runs must be a whole number from 1 to 1000000");
        }
        if (ch == OPT_PEMKEY) {
            *key_path = optarg;
        }
    }
    if (argc - optind != 2 || strcmp(argv[optind + 1], "selftest") != 0) {
        return hx_cmdline_error(cl, "give ALGORITHM selftest");
    }
    *alg_name = argv[optind];
    return -1;
}

int cmd_kem(int argc, char **argv)
{
    enum hx_kem_alg alg;
    struct hx_kem_sizes std, ossl;
    uint64_t runs = 100, agree = 0;
    uint8_t *pub = NULL, ct[HX_KEM_MAX_CIPHERTEXT];
    size_t pub_len = 0, ct_len = 0;
    bool tamper_ok = true, djb;
    const char *name = NULL, *key_path = NULL;
    int rc;

    const struct hx_cmdline kem_cmdline = {"hykex kem", kem_usage(), "h", kem_options, 0};

    if ((rc = parse_selftest(&kem_cmdline, argc, argv, &runs, &key_path, &name)) >= 0) {
        return rc;
    }
    if (hx_kem_parse(name, &alg) != HX_OK) {
        return cli_usage_error("kem", "unknown KEM '%s' (one of: %s)", name, kem_names());
    }
    hx_kem_standard_sizes(alg, &std);
    /* libmceliece/libntruprime: the sizes their headers give (checked at compile time) */
    djb = hx_kem_is_djb(alg) != 0;
    if (djb) {
        ossl = std;
    } else if (hx_kem_openssl_sizes(alg, &ossl) != HX_OK) {
        fprintf(stderr, "hykex kem: OpenSSL does not provide %s\n", hx_kem_name(alg));
        return 1;
    }
    if ((pub = malloc(std.public_key)) == NULL) {
        fprintf(stderr, "hykex kem: out of memory\n");
        return 1;
    }
    for (uint64_t r = 0; r < runs; r++) {
        struct hx_kem_key *key = NULL;
        struct hx_secret *s1 = NULL, *s2 = NULL, *s3 = NULL;
        if (hx_kem_keygen(alg, &key, pub, std.public_key, &pub_len) == HX_OK &&
            hx_kem_encaps(alg, pub, pub_len, ct, sizeof(ct), &ct_len, &s1) == HX_OK &&
            hx_kem_decaps(key, ct, ct_len, &s2) == HX_OK && hx_secret_equal(s1, s2)) {
            agree++;
            /* A flipped ciphertext bit must not give the same secret (ML-KEM, Classic
             * McEliece, sntrup: implicit rejection; for X25519 a different or refused point). */
            ct[r % ct_len] ^= 0x01;
            if (hx_kem_decaps(key, ct, ct_len, &s3) == HX_OK && hx_secret_equal(s1, s3)) {
                tamper_ok = false;
            }
        }
        hx_secret_free(s1);
        hx_secret_free(s2);
        hx_secret_free(s3);
        hx_kem_key_free(key);
    }
    printf("%s: public key %zu bytes, ciphertext %zu bytes, shared secret %zu bytes\n",
           hx_kem_name(alg), ossl.public_key, ossl.ciphertext, ossl.shared_secret);
    printf("standard (%s): %zu / %zu / %zu bytes: %s\n",
           alg == HX_KEM_X25519 ? "RFC 7748"
           : djb                ? (alg < HX_KEM_SNTRUP653 ? "libmceliece" : "libntruprime")
                                : "FIPS 203",
           std.public_key, std.ciphertext, std.shared_secret,
           memcmp(&std, &ossl, sizeof(std)) == 0 ? "match" : "MISMATCH");
    free(pub);
    printf("round trips: %llu of %llu agree; tampered ciphertexts: %s\n", (unsigned long long)agree,
           (unsigned long long)runs,
           tamper_ok ? "all gave a different secret" : "SOME GAVE THE SAME SECRET");
    return agree == runs && tamper_ok && memcmp(&std, &ossl, sizeof(std)) == 0 ? 0 : 1;
}

int cmd_sig(int argc, char **argv)
{
    enum hx_sig_alg alg;
    struct hx_sig_sizes std;
    struct hx_sig_key *key = NULL;
    const char *key_path = NULL, *name = NULL;
    uint64_t runs = 10, good = 0, refused = 0;
    static const uint8_t ctx[] = "hykex selftest", other_ctx[] = "hykex other";
    uint8_t msg[64], sig[HX_SIG_MAX_SIGNATURE], pub[HX_SIG_MAX_PUBLIC];
    size_t sig_len = 0, pub_len = 0;
    int rc;
    hx_err e;

    if ((rc = parse_selftest(&sig_cmdline, argc, argv, &runs, &key_path, &name)) >= 0) {
        return rc;
    }
    if (hx_sig_parse(name, &alg) != HX_OK) {
        return cli_usage_error("sig",
                               "unknown signature algorithm '%s' (ML-DSA-44, ML-DSA-65, "
                               "ML-DSA-87)",
                               name);
    }
    e = key_path != NULL ? hx_sig_key_load_pem(key_path, &key) : hx_sig_keygen(alg, &key);
    if (e != HX_OK) {
        fprintf(stderr, "hykex sig: %s: %s\n", key_path != NULL ? key_path : "keygen",
                hx_strerror(e));
        return 1;
    }
    if (hx_sig_key_alg(key) != alg) {
        fprintf(stderr, "hykex sig: %s holds an %s key, not %s\n", key_path,
                hx_sig_name(hx_sig_key_alg(key)), hx_sig_name(alg));
        hx_sig_key_free(key);
        return 1;
    }
    hx_sig_standard_sizes(alg, &std);
    if (hx_sig_public(key, pub, sizeof(pub), &pub_len) != HX_OK) {
        hx_sig_key_free(key);
        return 1;
    }
    for (uint64_t r = 0; r < runs; r++) {
        memset(msg, (int)(r & 0xff), sizeof(msg));
        if (hx_sig_sign(key, ctx, sizeof(ctx) - 1, msg, sizeof(msg), sig, sizeof(sig), &sig_len) !=
            HX_OK) {
            continue;
        }
        if (hx_sig_verify(key, ctx, sizeof(ctx) - 1, msg, sizeof(msg), sig, sig_len) == HX_OK) {
            good++;
        }
        /* Wrong context, altered message, altered signature: all must be refused. */
        bool r1 = hx_sig_verify(key, other_ctx, sizeof(other_ctx) - 1, msg, sizeof(msg), sig,
                                sig_len) == HX_ERR_VERIFY;
        msg[r % sizeof(msg)] ^= 1;
        bool r2 = hx_sig_verify(key, ctx, sizeof(ctx) - 1, msg, sizeof(msg), sig, sig_len) ==
                  HX_ERR_VERIFY;
        msg[r % sizeof(msg)] ^= 1;
        sig[r % sig_len] ^= 0x80;
        bool r3 = hx_sig_verify(key, ctx, sizeof(ctx) - 1, msg, sizeof(msg), sig, sig_len) ==
                  HX_ERR_VERIFY;
        refused += r1 && r2 && r3;
    }
    printf("%s: public key %zu bytes, signature %zu bytes%s\n", hx_sig_name(alg), pub_len, sig_len,
           key_path != NULL ? " (key from PEM)" : "");
    printf("standard (FIPS 204): %zu / %zu bytes: %s\n", std.public_key, std.signature,
           std.public_key == pub_len && std.signature == sig_len ? "match" : "MISMATCH");
    printf(
        "sign/verify: %llu of %llu valid; wrong context, altered message and altered "
        "signature refused in %llu of %llu\n",
        (unsigned long long)good, (unsigned long long)runs, (unsigned long long)refused,
        (unsigned long long)runs);
    hx_sig_key_free(key);
    return good == runs && refused == runs && std.public_key == pub_len && std.signature == sig_len
               ? 0
               : 1;
}
