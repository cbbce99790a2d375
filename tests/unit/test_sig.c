/* ML-DSA: sign/verify with context strings, refusals, PEM keys and their permissions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "crypto/sig.h"

static const uint8_t ctx[] = "hykex batch v1";
static const uint8_t msg[] = "stream 1, positions 0..15, transcript hash ...";

static void signs_and_verifies_every_level(void **state)
{
    (void)state;
    for (int a = 0; a < HX_SIG_ALG_COUNT; a++) {
        struct hx_sig_key *key = NULL, *pubkey = NULL;
        struct hx_sig_sizes std;
        uint8_t sig[HX_SIG_MAX_SIGNATURE], pub[HX_SIG_MAX_PUBLIC];
        size_t sig_len, pub_len;

        hx_sig_standard_sizes((enum hx_sig_alg)a, &std);
        assert_int_equal(hx_sig_keygen((enum hx_sig_alg)a, &key), HX_OK);
        assert_int_equal(
            hx_sig_sign(key, ctx, sizeof(ctx) - 1, msg, sizeof(msg), sig, sizeof(sig), &sig_len),
            HX_OK);
        assert_int_equal(sig_len, std.signature);
        assert_int_equal(hx_sig_verify(key, ctx, sizeof(ctx) - 1, msg, sizeof(msg), sig, sig_len),
                         HX_OK);
        /* The peer side: a verification key from the raw public key. */
        assert_int_equal(hx_sig_public(key, pub, sizeof(pub), &pub_len), HX_OK);
        assert_int_equal(pub_len, std.public_key);
        assert_int_equal(hx_sig_key_from_public((enum hx_sig_alg)a, pub, pub_len, &pubkey), HX_OK);
        assert_int_equal(
            hx_sig_verify(pubkey, ctx, sizeof(ctx) - 1, msg, sizeof(msg), sig, sig_len), HX_OK);
        /* Public keys cannot sign. */
        assert_int_not_equal(
            hx_sig_sign(pubkey, ctx, sizeof(ctx) - 1, msg, sizeof(msg), sig, sizeof(sig), &sig_len),
            HX_OK);
        hx_sig_key_free(pubkey);
        hx_sig_key_free(key);
    }
}

static void refuses_wrong_context_message_and_signature(void **state)
{
    struct hx_sig_key *key = NULL, *other = NULL;
    uint8_t sig[HX_SIG_MAX_SIGNATURE], m[sizeof(msg)];
    size_t sig_len;
    static const uint8_t wrong_ctx[] = "hykex batch v2";

    (void)state;
    assert_int_equal(hx_sig_keygen(HX_SIG_ML_DSA_65, &key), HX_OK);
    assert_int_equal(hx_sig_keygen(HX_SIG_ML_DSA_65, &other), HX_OK);
    assert_int_equal(
        hx_sig_sign(key, ctx, sizeof(ctx) - 1, msg, sizeof(msg), sig, sizeof(sig), &sig_len),
        HX_OK);
    assert_int_equal(
        hx_sig_verify(key, wrong_ctx, sizeof(wrong_ctx) - 1, msg, sizeof(msg), sig, sig_len),
        HX_ERR_VERIFY);
    assert_int_equal(hx_sig_verify(key, NULL, 0, msg, sizeof(msg), sig, sig_len), HX_ERR_VERIFY);
    assert_int_equal(hx_sig_verify(other, ctx, sizeof(ctx) - 1, msg, sizeof(msg), sig, sig_len),
                     HX_ERR_VERIFY);
    memcpy(m, msg, sizeof(m));
    for (size_t i = 0; i < sizeof(m); i += 7) {
        m[i] ^= 1;
        assert_int_equal(hx_sig_verify(key, ctx, sizeof(ctx) - 1, m, sizeof(m), sig, sig_len),
                         HX_ERR_VERIFY);
        m[i] ^= 1;
    }
    for (size_t i = 0; i < sig_len; i += sig_len / 9) {
        sig[i] ^= 0x10;
        assert_int_equal(hx_sig_verify(key, ctx, sizeof(ctx) - 1, msg, sizeof(msg), sig, sig_len),
                         HX_ERR_VERIFY);
        sig[i] ^= 0x10;
    }
    assert_int_equal(hx_sig_verify(key, ctx, sizeof(ctx) - 1, msg, sizeof(msg), sig, sig_len - 1),
                     HX_ERR_VERIFY);
    /* Context strings are at most 255 bytes (FIPS 204). */
    uint8_t long_ctx[256] = {0};
    assert_int_equal(hx_sig_sign(key, long_ctx, 256, msg, sizeof(msg), sig, sizeof(sig), &sig_len),
                     HX_ERR_INVALID_ARG);
    assert_int_equal(hx_sig_sign(key, long_ctx, 255, msg, sizeof(msg), sig, sizeof(sig), &sig_len),
                     HX_OK);
    assert_int_equal(hx_sig_sign(key, ctx, 1, msg, sizeof(msg), sig, 100, &sig_len),
                     HX_ERR_NOSPACE);
    hx_sig_key_free(key);
    hx_sig_key_free(other);
}

static void write_pem(const char *path, EVP_PKEY *pkey, mode_t mode)
{
    FILE *f;

    unlink(path);
    f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
    assert_int_equal(chmod(path, mode), 0);
}

static void loads_pem_keys_with_safe_permissions(void **state)
{
    char path[] = "/tmp/hx-test-sig-XXXXXX";
    EVP_PKEY *mldsa = EVP_PKEY_Q_keygen(NULL, NULL, "ML-DSA-87");
    EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    EVP_PKEY *xk = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
    struct hx_sig_key *key = NULL;
    uint8_t sig[HX_SIG_MAX_SIGNATURE];
    size_t sig_len;
    int fd;

    (void)state;
    assert_non_null(mldsa);
    assert_non_null(ed);
    fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);

    write_pem(path, mldsa, 0600);
    assert_int_equal(hx_sig_key_load_pem(path, &key), HX_OK);
    assert_int_equal(hx_sig_key_alg(key), HX_SIG_ML_DSA_87);
    assert_int_equal(
        hx_sig_sign(key, ctx, sizeof(ctx) - 1, msg, sizeof(msg), sig, sizeof(sig), &sig_len),
        HX_OK);
    assert_int_equal(hx_sig_verify(key, ctx, sizeof(ctx) - 1, msg, sizeof(msg), sig, sig_len),
                     HX_OK);
    hx_sig_key_free(key);
    key = NULL;

    /* Readable by group or others: refused, like OpenSSH. */
    assert_int_equal(chmod(path, 0640), 0);
    assert_int_equal(hx_sig_key_load_pem(path, &key), HX_ERR_IO_PERM);
    assert_int_equal(chmod(path, 0604), 0);
    assert_int_equal(hx_sig_key_load_pem(path, &key), HX_ERR_IO_PERM);
    assert_null(key);

    /* A classical signing key (certificates of the original system): accepted, flagged. */
    write_pem(path, ed, 0600);
    assert_int_equal(hx_sig_key_load_pem(path, &key), HX_OK);
    assert_false(hx_sig_key_is_pq(key));
    assert_string_equal(hx_sig_key_name(key), "Ed25519");
    assert_int_equal(
        hx_sig_sign(key, ctx, sizeof(ctx) - 1, msg, sizeof(msg), sig, sizeof(sig), &sig_len),
        HX_OK);
    assert_int_equal(hx_sig_verify(key, ctx, sizeof(ctx) - 1, msg, sizeof(msg), sig, sig_len),
                     HX_OK);
    assert_int_equal(hx_sig_verify(key, ctx, sizeof(ctx) - 2, msg, sizeof(msg), sig, sig_len),
                     HX_ERR_VERIFY);
    hx_sig_key_free(key);
    key = NULL;

    /* Not a signing key. */
    write_pem(path, xk, 0600);
    assert_int_equal(hx_sig_key_load_pem(path, &key), HX_ERR_UNSUPPORTED);

    /* Not a key at all. */
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n", f);
    fclose(f);
    assert_int_equal(hx_sig_key_load_pem(path, &key), HX_ERR_BAD_VALUE);
    unlink(path);
    assert_int_equal(hx_sig_key_load_pem(path, &key), HX_ERR_IO_NOT_FOUND);
    assert_int_equal(hx_sig_key_load_pem("/tmp", &key), HX_ERR_IO);
    EVP_PKEY_free(mldsa);
    EVP_PKEY_free(ed);
    EVP_PKEY_free(xk);
}

static void bad_public_keys(void **state)
{
    struct hx_sig_key *key = NULL;
    uint8_t pub[HX_SIG_MAX_PUBLIC] = {0};
    enum hx_sig_alg a;

    (void)state;
    assert_int_equal(hx_sig_key_from_public(HX_SIG_ML_DSA_65, pub, 1951, &key), HX_ERR_BAD_VALUE);
    assert_null(key);
    assert_int_equal(hx_sig_parse("ml-dsa-44", &a), HX_OK);
    assert_int_equal(a, HX_SIG_ML_DSA_44);
    assert_int_equal(hx_sig_parse("Dilithium3", &a), HX_ERR_UNSUPPORTED);
}

static void classical_ecdsa_keys(void **state)
{
    EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    struct hx_sig_key *key = NULL;
    uint8_t sig[HX_SIG_MAX_SIGNATURE];
    size_t sig_len;

    (void)state;
    assert_non_null(ec);
    assert_int_equal(hx_sig_key_from_evp(ec, &key), HX_OK);
    assert_string_equal(hx_sig_key_name(key), "ECDSA");
    assert_int_equal(hx_sig_key_alg(key), HX_SIG_ALG_COUNT);
    assert_int_equal(
        hx_sig_sign(key, ctx, sizeof(ctx) - 1, msg, sizeof(msg), sig, sizeof(sig), &sig_len),
        HX_OK);
    assert_int_equal(hx_sig_verify(key, ctx, sizeof(ctx) - 1, msg, sizeof(msg), sig, sig_len),
                     HX_OK);
    sig[sig_len / 2] ^= 1;
    assert_int_equal(hx_sig_verify(key, ctx, sizeof(ctx) - 1, msg, sizeof(msg), sig, sig_len),
                     HX_ERR_VERIFY);
    hx_sig_key_free(key);
    EVP_PKEY_free(ec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(signs_and_verifies_every_level),
        cmocka_unit_test(refuses_wrong_context_message_and_signature),
        cmocka_unit_test(loads_pem_keys_with_safe_permissions),
        cmocka_unit_test(bad_public_keys),
        cmocka_unit_test(classical_ecdsa_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
