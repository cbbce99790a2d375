/*
 * bench_crypto: operations per second of hykex's crypto wrappers (KEM, ML-DSA, combiners).
 * Prints one JSON object: {"results": [{"group", "alg", "op", "ops_per_s": [rep, ...]}]}; each
 * KEM also gets a row {"group": "kem-sizes", "alg", "public_key", "ciphertext", "shared_secret"}.
 * KEMs: ML-KEM and X25519 (OpenSSL), Classic McEliece and sntrup (libmceliece, libntruprime).
 * bench/crypto runs it beside `openssl speed` and makes the table.
 *
 * Usage: bench_crypto [--seconds S] [--reps R] [--only ALG]   (defaults 0.5 s per measurement,
 *        3 reps; --only: that one KEM or signature algorithm, no combiners)
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/secret.h"
#include "crypto/combine.h"
#include "crypto/kem.h"
#include "crypto/sig.h"

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef bool (*op_fn)(void *arg);

/* Runs fn until `seconds` pass (checking the clock every few calls); returns ops/s. */
static double measure(op_fn fn, void *arg, double seconds)
{
    double start = now(), t;
    unsigned long n = 0;

    do {
        /* slow operations (Classic McEliece keygen: tens to hundreds of ms) one at a time */
        int batch = n > 0 && now() - start > seconds / 8 ? 1 : (n == 0 ? 1 : 8);
        for (int i = 0; i < batch; i++) {
            if (!fn(arg)) {
                fprintf(stderr, "bench_crypto: operation failed\n");
                exit(1);
            }
        }
        n += (unsigned long)batch;
        t = now();
    } while (t - start < seconds);
    return (double)n / (t - start);
}

/* ---- KEM ---- */

struct kem_state {
    enum hx_kem_alg alg;
    struct hx_kem_key *key;
    struct hx_kem_peer *peer;
    uint8_t *pub, *scratch; /* HX_KEM_MAX_PUBLIC bytes each (too big for a stack) */
    uint8_t ct[HX_KEM_MAX_CIPHERTEXT];
    size_t pub_len, ct_len;
};

static bool kem_keygen(void *arg)
{
    struct kem_state *s = arg;
    struct hx_kem_key *k = NULL;
    size_t len;
    bool ok = hx_kem_keygen(s->alg, &k, s->scratch, HX_KEM_MAX_PUBLIC, &len) == HX_OK;

    hx_kem_key_free(k);
    return ok;
}

static bool kem_encaps(void *arg)
{
    struct kem_state *s = arg;
    struct hx_secret *ss = NULL;
    uint8_t ct[HX_KEM_MAX_CIPHERTEXT];
    size_t len;
    bool ok = hx_kem_encaps(s->alg, s->pub, s->pub_len, ct, sizeof(ct), &len, &ss) == HX_OK;

    hx_secret_free(ss);
    return ok;
}

/* The same operation as openssl speed's encaps: to a key already imported. */
static bool kem_encaps_prepared(void *arg)
{
    struct kem_state *s = arg;
    struct hx_secret *ss = NULL;
    uint8_t ct[HX_KEM_MAX_CIPHERTEXT];
    size_t len;
    bool ok = hx_kem_encaps_peer(s->peer, ct, sizeof(ct), &len, &ss) == HX_OK;

    hx_secret_free(ss);
    return ok;
}

static bool kem_decaps(void *arg)
{
    struct kem_state *s = arg;
    struct hx_secret *ss = NULL;
    bool ok = hx_kem_decaps(s->key, s->ct, s->ct_len, &ss) == HX_OK;

    hx_secret_free(ss);
    return ok;
}

/* ---- ML-DSA ---- */

struct sig_state {
    struct hx_sig_key *key;
    uint8_t msg[256], sig[HX_SIG_MAX_SIGNATURE];
    size_t sig_len;
};

static const uint8_t sig_ctx[] = "hykex bench";

static bool sig_sign(void *arg)
{
    struct sig_state *s = arg;

    return hx_sig_sign(s->key, sig_ctx, sizeof(sig_ctx) - 1, s->msg, sizeof(s->msg), s->sig,
                       sizeof(s->sig), &s->sig_len) == HX_OK;
}

static bool sig_verify(void *arg)
{
    struct sig_state *s = arg;

    return hx_sig_verify(s->key, sig_ctx, sizeof(sig_ctx) - 1, s->msg, sizeof(s->msg), s->sig,
                         s->sig_len) == HX_OK;
}

/* ---- combiners ---- */

struct combine_state {
    enum hx_combine_method m;
    size_t len;
    struct hx_combine_input in;
};

static bool combine_op(void *arg)
{
    struct combine_state *s = arg;
    struct hx_secret *out = NULL;
    bool ok = hx_combine(s->m, &s->in, s->len, &out) == HX_OK;

    hx_secret_free(out);
    return ok;
}

static bool first_result = true;

static void emit(const char *group, const char *alg, const char *op, op_fn fn, void *arg,
                 double seconds, int reps)
{
    printf("%s\n  {\"group\": \"%s\", \"alg\": \"%s\", \"op\": \"%s\", \"ops_per_s\": [",
           first_result ? "" : ",", group, alg, op);
    first_result = false;
    for (int r = 0; r < reps; r++) {
        printf("%s%.1f", r ? ", " : "", measure(fn, arg, seconds));
        fflush(stdout);
    }
    printf("]}");
    fprintf(stderr, ".");
}

int main(int argc, char **argv)
{
    double seconds = 0.5;
    int reps = 3;
    const char *only = NULL;
    static const uint8_t qkd[32] = {0x51}, mlkem[32] = {0x52};
    static const char *const names[2] = {"QKD", "ML-KEM-768"};
    static const uint8_t transcript[32] = {0x54};

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            seconds = strtod(argv[++i], NULL);
        } else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
            reps = (int)strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
            only = argv[++i];
        } else {
            fprintf(stderr, "usage: bench_crypto [--seconds S] [--reps R] [--only ALG]\n");
            return 2;
        }
    }
    if (seconds <= 0 || seconds > 60 || reps < 1 || reps > 100) {
        fprintf(stderr, "bench_crypto: --seconds 0..60, --reps 1..100\n");
        return 2;
    }
    if (hx_secret_heap_init(1u << 20) != HX_OK) {
        fprintf(stderr, "bench_crypto: no secure heap; secrets on the normal heap\n");
    }
    printf("{\"seconds\": %.3f, \"reps\": %d, \"results\": [", seconds, reps);

    for (int a = 0; a < HX_KEM_ALG_COUNT; a++) {
        struct kem_state s = {.alg = (enum hx_kem_alg)a};
        struct hx_secret *ss = NULL;
        struct hx_kem_sizes sz;
        if (only != NULL && strcmp(only, hx_kem_name(s.alg)) != 0) {
            continue;
        }
        s.pub = malloc(HX_KEM_MAX_PUBLIC);
        s.scratch = malloc(HX_KEM_MAX_PUBLIC);
        if (s.pub == NULL || s.scratch == NULL ||
            hx_kem_keygen(s.alg, &s.key, s.pub, HX_KEM_MAX_PUBLIC, &s.pub_len) != HX_OK ||
            hx_kem_encaps(s.alg, s.pub, s.pub_len, s.ct, sizeof(s.ct), &s.ct_len, &ss) != HX_OK ||
            hx_kem_peer_import(s.alg, s.pub, s.pub_len, &s.peer) != HX_OK) {
            return 1;
        }
        hx_secret_free(ss);
        hx_kem_standard_sizes(s.alg, &sz);
        printf(
            "%s\n  {\"group\": \"kem-sizes\", \"alg\": \"%s\", \"public_key\": %zu, "
            "\"ciphertext\": %zu, \"shared_secret\": %zu}",
            first_result ? "" : ",", hx_kem_name(s.alg), sz.public_key, sz.ciphertext,
            sz.shared_secret);
        first_result = false;
        emit("kem", hx_kem_name(s.alg), "keygen", kem_keygen, &s, seconds, reps);
        emit("kem", hx_kem_name(s.alg), "encaps", kem_encaps_prepared, &s, seconds, reps);
        emit("kem", hx_kem_name(s.alg), "import+encaps", kem_encaps, &s, seconds, reps);
        emit("kem", hx_kem_name(s.alg), "decaps", kem_decaps, &s, seconds, reps);
        hx_kem_key_free(s.key);
        hx_kem_peer_free(s.peer);
        free(s.pub);
        free(s.scratch);
    }
    for (int a = 0; a < HX_SIG_ALG_COUNT; a++) {
        struct sig_state s;
        if (only != NULL && strcmp(only, hx_sig_name((enum hx_sig_alg)a)) != 0) {
            continue;
        }
        memset(&s, 0x5a, sizeof(s));
        s.key = NULL;
        if (hx_sig_keygen((enum hx_sig_alg)a, &s.key) != HX_OK || !sig_sign(&s)) {
            return 1;
        }
        emit("sig", hx_sig_name((enum hx_sig_alg)a), "sign", sig_sign, &s, seconds, reps);
        emit("sig", hx_sig_name((enum hx_sig_alg)a), "verify", sig_verify, &s, seconds, reps);
        hx_sig_key_free(s.key);
    }
    for (int m = 0; only == NULL && m < HX_COMBINE_METHOD_COUNT; m++) {
        for (size_t len = 32; len <= 64; len += 32) {
            const struct hx_iov secrets[2] = {{qkd, 32}, {mlkem, 32}};
            struct combine_state s = {.m = (enum hx_combine_method)m, .len = len};
            char op[32];
            s.in.secrets = secrets;
            s.in.n = 2;
            s.in.names = names;
            s.in.position = 42;
            s.in.transcript = transcript;
            s.in.transcript_len = sizeof(transcript);
            snprintf(op, sizeof(op), "combine-%zu", len);
            emit("combine", hx_combine_name(s.m), op, combine_op, &s, seconds, reps);
        }
    }
    printf("\n]}\n");
    fprintf(stderr, "\n");
    return 0;
}
