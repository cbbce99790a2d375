/* Node identities from certificates checked against the network CA (peer/certid.h). */
#include "peer/certid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/clock.h"

struct hx_certid {
    X509_STORE *store;
};

hx_err hx_certid_new(const char *ca_path, struct hx_certid **out, char *why, size_t why_len)
{
    struct hx_certid *c = calloc(1, sizeof(*c));

    *out = NULL;
    if (c == NULL || (c->store = X509_STORE_new()) == NULL) {
        free(c);
        return HX_ERR_NOMEM;
    }
    if (X509_STORE_load_file(c->store, ca_path) != 1) {
        snprintf(why, why_len, "%s: cannot load the network CA", ca_path);
        ERR_clear_error();
        hx_certid_free(c);
        return HX_ERR_CONFIG;
    }
    *out = c;
    return HX_OK;
}

void hx_certid_free(struct hx_certid *c)
{
    if (c == NULL) {
        return;
    }
    X509_STORE_free(c->store);
    free(c);
}

bool hx_certid_uuid(void *x509, struct hx_uuid *out)
{
    GENERAL_NAMES *names = X509_get_ext_d2i(x509, NID_subject_alt_name, NULL, NULL);
    bool found = false;

    for (int i = 0; names != NULL && i < sk_GENERAL_NAME_num(names) && !found; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        if (g->type == GEN_URI) {
            const char *s = (const char *)ASN1_STRING_get0_data(g->d.uniformResourceIdentifier);
            int n = ASN1_STRING_length(g->d.uniformResourceIdentifier);
            if (n == 9 + HX_UUID_STR_LEN && strncmp(s, "urn:uuid:", 9) == 0 &&
                hx_uuid_parse(s + 9, HX_UUID_STR_LEN, out) == HX_OK) {
                found = true;
            }
        }
    }
    GENERAL_NAMES_free(names);
    return found;
}

static int64_t not_after_of(const X509 *x)
{
    int days = 0, secs = 0;

    if (ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(x)) != 1) {
        return 0;
    }
    return hx_walltime() + (int64_t)days * 86400 + secs;
}

hx_err hx_certid_verify(const struct hx_certid *c, const uint8_t *der, size_t len,
                        struct hx_uuid *node, struct hx_sig_key **key, int64_t *not_after,
                        char *why, size_t why_len)
{
    const unsigned char *p = der;
    X509_STORE_CTX *ctx = NULL;
    X509 *x = NULL;
    hx_err r = HX_ERR_VERIFY;

    *key = NULL;
    if (len == 0 || len > (size_t)INT32_MAX || (x = d2i_X509(NULL, &p, (long)len)) == NULL ||
        p != der + len) {
        snprintf(why, why_len, "certificate does not parse (DER)");
        goto out;
    }
    if ((ctx = X509_STORE_CTX_new()) == NULL || X509_STORE_CTX_init(ctx, c->store, x, NULL) != 1) {
        snprintf(why, why_len, "out of memory");
        r = HX_ERR_NOMEM;
        goto out;
    }
    if (X509_verify_cert(ctx) != 1) {
        snprintf(why, why_len, "certificate: %s",
                 X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
        goto out;
    }
    if (!hx_certid_uuid(x, node)) {
        snprintf(why, why_len, "certificate names no node UUID (urn:uuid SAN)");
        goto out;
    }
    if (hx_sig_key_from_evp(X509_get0_pubkey(x), key) != HX_OK) {
        snprintf(why, why_len, "certificate key cannot sign (ML-DSA, ECDSA, Ed25519 or RSA)");
        goto out;
    }
    *not_after = not_after_of(x);
    r = HX_OK;
out:
    ERR_clear_error();
    X509_STORE_CTX_free(ctx);
    X509_free(x);
    return r;
}

hx_err hx_certid_load_der(const char *pem_path, uint8_t **der, size_t *len)
{
    FILE *f = fopen(pem_path, "r");
    X509 *x = NULL;
    unsigned char *buf = NULL;
    int n;

    *der = NULL;
    *len = 0;
    if (f == NULL) {
        return HX_ERR_IO_NOT_FOUND;
    }
    x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (x == NULL || (n = i2d_X509(x, &buf)) <= 0) {
        X509_free(x);
        ERR_clear_error();
        return HX_ERR_BAD_VALUE;
    }
    X509_free(x);
    if ((*der = malloc((size_t)n)) == NULL) {
        OPENSSL_free(buf);
        return HX_ERR_NOMEM;
    }
    memcpy(*der, buf, (size_t)n);
    *len = (size_t)n;
    OPENSSL_free(buf);
    return HX_OK;
}
