/*
 * peer/link_creds.c: the checks that refuse a node's certificate, key and CA that cannot work,
 * one reason each, and the reference-counted credentials set. The certificates are made here
 * with OpenSSL (ECDSA P-256: quick; the checks do not depend on the algorithm), written to a
 * temporary folder.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "peer/link.h"

#define SELF "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
#define OTHER "eeeeeeee-eeee-4eee-8eee-eeeeeeeeeeee"
#define DAY 86400L

static char dir[64];
static EVP_PKEY *ca_key, *ca2_key, *node_key, *other_key;
static X509 *ca, *ca2;
static long serial = 1;

static void add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    assert_non_null(e);
    assert_int_equal(X509_add_ext(x, e, -1), 1);
    X509_EXTENSION_free(e);
}

/* A certificate for key, valid from now + from to now + to (seconds), issued by issuer
 * (NULL: self-signed CA); san: the subjectAltName value, or NULL. */
static X509 *make_cert(EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, const char *cn,
                       const char *san, long from, long to)
{
    X509 *x = X509_new();
    X509_NAME *n;
    X509V3_CTX ctx;

    assert_non_null(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_gmtime_adj(X509_getm_notBefore(x), from);
    X509_gmtime_adj(X509_getm_notAfter(x), to);
    X509_set_pubkey(x, key);
    n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer) : n);
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer != NULL ? issuer : x, x, NULL, NULL, 0);
    if (issuer == NULL) {
        add_ext(x, &ctx, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(x, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        add_ext(x, &ctx, NID_basic_constraints, "CA:FALSE");
    }
    if (san != NULL) {
        add_ext(x, &ctx, NID_subject_alt_name, san);
    }
    assert_true(X509_sign(x, issuer_key != NULL ? issuer_key : key, EVP_sha256()) > 0);
    return x;
}

static void write_cert(const char *name, X509 *x)
{
    char path[128];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    assert_non_null(f = fopen(path, "w"));
    assert_int_equal(PEM_write_X509(f, x), 1);
    fclose(f);
}

static void write_key(const char *name, EVP_PKEY *k, mode_t mode)
{
    char path[128];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    assert_non_null(f = fopen(path, "w"));
    assert_int_equal(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
    assert_int_equal(chmod(path, mode), 0);
}

static int setup(void **state)
{
    X509 *x;

    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/hykex-creds-XXXXXX");
    assert_non_null(mkdtemp(dir));
    ca_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    ca2_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    node_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    other_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_true(ca_key != NULL && ca2_key != NULL && node_key != NULL && other_key != NULL);
    ca = make_cert(ca_key, NULL, NULL, "network CA", NULL, -DAY, 3650 * DAY);
    ca2 = make_cert(ca2_key, NULL, NULL, "another CA", NULL, -DAY, 3650 * DAY);
    write_cert("ca.crt", ca);
    write_key("node.key", node_key, 0600);
    write_key("other.key", other_key, 0600);
    write_key("loose.key", node_key, 0644);
    x = make_cert(node_key, ca, ca_key, "A", "URI:urn:uuid:" SELF ",IP:127.0.0.1", -60, 365 * DAY);
    write_cert("good.crt", x);
    X509_free(x);
    x = make_cert(node_key, ca, ca_key, "A", "IP:127.0.0.1", -60, 365 * DAY);
    write_cert("ip.crt", x);
    X509_free(x);
    x = make_cert(node_key, ca, ca_key, "A", "URI:urn:uuid:" OTHER, -60, 365 * DAY);
    write_cert("other_uuid.crt", x);
    X509_free(x);
    x = make_cert(node_key, ca, ca_key, "A", "URI:urn:uuid:" SELF, -400 * DAY, -DAY);
    write_cert("expired.crt", x);
    X509_free(x);
    x = make_cert(node_key, ca, ca_key, "A", "URI:urn:uuid:" SELF, 10 * DAY, 365 * DAY);
    write_cert("future.crt", x);
    X509_free(x);
    x = make_cert(node_key, ca2, ca2_key, "A", "URI:urn:uuid:" SELF, -60, 365 * DAY);
    write_cert("other_ca.crt", x);
    X509_free(x);
    {
        char path[128];
        FILE *f;
        snprintf(path, sizeof(path), "%s/garbage.crt", dir);
        assert_non_null(f = fopen(path, "w"));
        fputs("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n", f);
        fclose(f);
        snprintf(path, sizeof(path), "%s/notakey.key", dir);
        assert_non_null(f = fopen(path, "w"));
        fputs("not a key\n", f);
        fclose(f);
        assert_int_equal(chmod(path, 0600), 0);
    }
    return 0;
}

static int teardown(void **state)
{
    const char *names[] = {"ca.crt",     "node.key",     "other.key",      "loose.key",
                           "good.crt",   "ip.crt",       "other_uuid.crt", "expired.crt",
                           "future.crt", "other_ca.crt", "garbage.crt",    "notakey.key"};
    char path[128];

    (void)state;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
    X509_free(ca);
    X509_free(ca2);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(ca2_key);
    EVP_PKEY_free(node_key);
    EVP_PKEY_free(other_key);
    return 0;
}

/* hx_link_check_creds on dir/cert, dir/key, dir/ca; returns its result, why in why. */
static hx_err check(const char *cert, const char *key, const char *ca_name, char *why,
                    size_t why_len, struct hx_link_creds_info *info)
{
    char c[128], k[128], a[128];
    struct hx_links_config lc;

    memset(&lc, 0, sizeof(lc));
    assert_int_equal(hx_uuid_parse(SELF, strlen(SELF), &lc.self), HX_OK);
    snprintf(c, sizeof(c), "%s/%s", dir, cert);
    snprintf(k, sizeof(k), "%s/%s", dir, key);
    snprintf(a, sizeof(a), "%s/%s", dir, ca_name);
    lc.cert_path = c;
    lc.key_path = k;
    lc.ca_path = a;
    lc.groups = "X25519";
    why[0] = '\0';
    return hx_link_check_creds(&lc, info, why, why_len);
}

static void refused(const char *cert, const char *key, const char *ca_name, const char *want)
{
    char why[400];
    struct hx_link_creds_info info;

    assert_int_not_equal(check(cert, key, ca_name, why, sizeof(why), &info), HX_OK);
    if (strstr(why, want) == NULL) {
        fail_msg("%s + %s + %s: '%s' does not say '%s'", cert, key, ca_name, why, want);
    }
}

static void good_set_passes_with_its_expiries(void **state)
{
    char why[400];
    struct hx_link_creds_info info;
    int64_t now = (int64_t)time(NULL);

    (void)state;
    assert_int_equal(check("good.crt", "node.key", "ca.crt", why, sizeof(why), &info), HX_OK);
    assert_true(info.names_uuid);
    assert_true(info.cert_not_after > now + 364 * DAY && info.cert_not_after < now + 366 * DAY);
    assert_true(info.ca_not_after > now + 3649 * DAY);
    /* the original system's kind: an IP address, no node UUID */
    assert_int_equal(check("ip.crt", "node.key", "ca.crt", why, sizeof(why), &info), HX_OK);
    assert_false(info.names_uuid);
}

static void each_fault_refused_with_its_reason(void **state)
{
    (void)state;
    refused("other_ca.crt", "node.key", "ca.crt", "does not verify against the CA");
    refused("other_uuid.crt", "node.key", "ca.crt", "does not name this node's UUID " SELF);
    refused("expired.crt", "node.key", "ca.crt", "expired.crt: expired");
    refused("future.crt", "node.key", "ca.crt", "future.crt: not valid yet");
    refused("good.crt", "other.key", "ca.crt", "other.key does not match the certificate");
    refused("good.crt", "loose.key", "ca.crt", "readable by group or others (mode 644");
    refused("good.crt", "missing.key", "ca.crt", "missing.key: missing");
    refused("missing.crt", "node.key", "ca.crt", "missing.crt: missing or unreadable");
    refused("good.crt", "node.key", "missing.crt", "CA ");
    refused("garbage.crt", "node.key", "ca.crt", "garbage.crt: no PEM certificate");
    refused("good.crt", "node.key", "garbage.crt", "garbage.crt: no PEM certificate");
    refused("good.crt", "notakey.key", "ca.crt", "notakey.key: no PEM private key");
}

static void creds_set_made_and_released(void **state)
{
    char why[400], c[128], k[128], a[128];
    struct hx_links_config lc;
    struct hx_link_creds *cr = NULL;

    (void)state;
    memset(&lc, 0, sizeof(lc));
    assert_int_equal(hx_uuid_parse(SELF, strlen(SELF), &lc.self), HX_OK);
    snprintf(c, sizeof(c), "%s/good.crt", dir);
    snprintf(k, sizeof(k), "%s/node.key", dir);
    snprintf(a, sizeof(a), "%s/ca.crt", dir);
    lc.cert_path = c;
    lc.key_path = k;
    lc.ca_path = a;
    lc.groups = "X25519";
    assert_int_equal(hx_link_creds_new(&lc, &cr, why, sizeof(why)), HX_OK);
    assert_non_null(cr);
    hx_link_creds_put(cr);
    /* a set that fails a check is never made */
    snprintf(c, sizeof(c), "%s/expired.crt", dir);
    cr = NULL;
    assert_int_not_equal(hx_link_creds_new(&lc, &cr, why, sizeof(why)), HX_OK);
    assert_null(cr);
    assert_non_null(strstr(why, "expired"));
    hx_link_creds_put(NULL); /* no-op */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(good_set_passes_with_its_expiries),
        cmocka_unit_test(each_fault_refused_with_its_reason),
        cmocka_unit_test(creds_set_made_and_released),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
