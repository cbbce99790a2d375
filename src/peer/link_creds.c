/*
 * The node's own credentials for the peer links (link.h "Credentials"): the checks that refuse
 * a certificate, key and CA that cannot work, one clear reason each, and the reference-counted
 * set (TLS context + signing key) that a reload swaps in while the links made with the old set
 * keep theirs until they end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/clock.h"
#include "common/config.h"
#include "peer/link_int.h"

/* Unix time of an ASN1_TIME (0 when it cannot be read). */
static int64_t asn1_unix(const ASN1_TIME *t)
{
    int days = 0, secs = 0;
    int64_t now = hx_walltime();

    if (t == NULL || ASN1_TIME_diff(&days, &secs, NULL, t) != 1) {
        return 0;
    }
    return now + (int64_t)days * 86400 + secs;
}

int64_t hx_link_cert_not_after(const X509 *x)
{
    return x != NULL ? asn1_unix(X509_get0_notAfter(x)) : 0;
}

/* The certificates of a PEM file (the first is the leaf); NULL with why when none parses. */
static STACK_OF(X509) * read_certs(const char *path, const char *what, char *why, size_t why_len)
{
    STACK_OF(X509) *sk = sk_X509_new_null();
    FILE *f = fopen(path, "r");
    X509 *x;

    if (f == NULL) {
        snprintf(why, why_len, "%s %s: missing or unreadable", what, path);
        sk_X509_free(sk);
        return NULL;
    }
    while (sk != NULL && (x = PEM_read_X509(f, NULL, NULL, NULL)) != NULL) {
        if (sk_X509_push(sk, x) <= 0) {
            X509_free(x);
            break;
        }
    }
    fclose(f);
    ERR_clear_error(); /* the end of the file reads as "no start line" */
    if (sk == NULL || sk_X509_num(sk) == 0) {
        snprintf(why, why_len, "%s %s: no PEM certificate in it", what, path);
        sk_X509_pop_free(sk, X509_free);
        return NULL;
    }
    return sk;
}

/* Does the certificate name a node UUID (urn:uuid SAN), and is one of them uuid? */
static void cert_uuids(X509 *cert, const struct hx_uuid *uuid, bool *any, bool *match)
{
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    struct hx_uuid u;

    *any = *match = false;
    for (int i = 0; names != NULL && i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        const char *s;
        int n;
        if (g->type != GEN_URI) {
            continue;
        }
        s = (const char *)ASN1_STRING_get0_data(g->d.uniformResourceIdentifier);
        n = ASN1_STRING_length(g->d.uniformResourceIdentifier);
        if (n == 9 + HX_UUID_STR_LEN && strncmp(s, "urn:uuid:", 9) == 0 &&
            hx_uuid_parse(s + 9, HX_UUID_STR_LEN, &u) == HX_OK) {
            *any = true;
            *match = *match || hx_uuid_equal(&u, uuid);
        }
    }
    GENERAL_NAMES_free(names);
}

/* Not before / not after of x against now; false with why. */
static bool in_validity(X509 *x, const char *what, const char *path, char *why, size_t why_len)
{
    if (X509_cmp_current_time(X509_get0_notBefore(x)) >= 0) {
        snprintf(why, why_len, "%s %s: not valid yet (notBefore in the future)", what, path);
        return false;
    }
    if (X509_cmp_current_time(X509_get0_notAfter(x)) <= 0) {
        snprintf(why, why_len, "%s %s: expired", what, path);
        return false;
    }
    return true;
}

/* The leaf against the CA file (intermediates from the certificate file). */
static bool verifies(X509 *leaf, STACK_OF(X509) * chain, STACK_OF(X509) * cas,
                     const char *cert_path, const char *ca_path, char *why, size_t why_len)
{
    X509_STORE *st = X509_STORE_new();
    X509_STORE_CTX *vc = X509_STORE_CTX_new();
    STACK_OF(X509) *untrusted = sk_X509_new_null();
    bool ok = false;

    for (int i = 0; st != NULL && i < sk_X509_num(cas); i++) {
        X509_STORE_add_cert(st, sk_X509_value(cas, i));
    }
    for (int i = 1; untrusted != NULL && i < sk_X509_num(chain); i++) {
        sk_X509_push(untrusted, sk_X509_value(chain, i));
    }
    if (st == NULL || vc == NULL || untrusted == NULL ||
        X509_STORE_CTX_init(vc, st, leaf, untrusted) != 1) {
        snprintf(why, why_len, "out of memory checking %s", cert_path);
    } else if (X509_verify_cert(vc) != 1) {
        snprintf(why, why_len, "certificate %s does not verify against the CA %s: %s", cert_path,
                 ca_path, X509_verify_cert_error_string(X509_STORE_CTX_get_error(vc)));
    } else {
        ok = true;
    }
    ERR_clear_error();
    sk_X509_free(untrusted);
    X509_STORE_CTX_free(vc);
    X509_STORE_free(st);
    return ok;
}

hx_err hx_link_check_creds(const struct hx_links_config *c, struct hx_link_creds_info *info,
                           char *why, size_t why_len)
{
    STACK_OF(X509) *chain = NULL, *cas = NULL;
    EVP_PKEY *key = NULL;
    struct stat st;
    FILE *f = NULL;
    bool any, match;
    hx_err r = HX_ERR_CONFIG;

    memset(info, 0, sizeof(*info));
    if (stat(c->key_path, &st) != 0) {
        snprintf(why, why_len, "key %s: missing", c->key_path);
        goto out;
    }
    if ((st.st_mode & 077) != 0) {
        snprintf(why, why_len, "key %s: readable by group or others (mode %03o; chmod 600)",
                 c->key_path, (unsigned)(st.st_mode & 0777));
        goto out;
    }
    if ((f = fopen(c->key_path, "r")) == NULL ||
        (key = PEM_read_PrivateKey(f, NULL, NULL, NULL)) == NULL) {
        snprintf(why, why_len, "key %s: %s", c->key_path,
                 f == NULL ? "unreadable" : "no PEM private key in it");
        goto out;
    }
    if ((chain = read_certs(c->cert_path, "certificate", why, why_len)) == NULL ||
        (cas = read_certs(c->ca_path, "CA", why, why_len)) == NULL) {
        goto out;
    }
    X509 *leaf = sk_X509_value(chain, 0), *ca = sk_X509_value(cas, 0);
    if (X509_check_private_key(leaf, key) != 1) {
        snprintf(why, why_len, "key %s does not match the certificate %s", c->key_path,
                 c->cert_path);
        goto out;
    }
    if (!in_validity(leaf, "certificate", c->cert_path, why, why_len) ||
        !in_validity(ca, "CA", c->ca_path, why, why_len) ||
        !verifies(leaf, chain, cas, c->cert_path, c->ca_path, why, why_len)) {
        goto out;
    }
    /* Certificates of the original system's scripts name an IP address and no UUID: they stay
     * accepted (the peers identify this node by its address, link_tls.c). One that names
     * UUIDs must name this node's. */
    cert_uuids(leaf, &c->self, &any, &match);
    if (any && !match) {
        char id[HX_UUID_STR_LEN + 1];
        hx_uuid_format(&c->self, id);
        snprintf(why, why_len, "certificate %s does not name this node's UUID %s (urn:uuid SAN)",
                 c->cert_path, id);
        goto out;
    }
    info->cert_not_after = hx_link_cert_not_after(leaf);
    info->ca_not_after = hx_link_cert_not_after(ca);
    info->names_uuid = any;
    r = HX_OK;
out:
    ERR_clear_error();
    if (f != NULL) {
        fclose(f);
    }
    EVP_PKEY_free(key);
    sk_X509_pop_free(chain, X509_free);
    sk_X509_pop_free(cas, X509_free);
    return r;
}

/* SHA-256 over the files' bytes and the groups: tells a changed set from a re-read one. */
static bool creds_digest(const struct hx_links_config *c, uint8_t out[32])
{
    const char *paths[3] = {c->ca_path, c->cert_path, c->key_path};
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    bool ok = md != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1;

    for (size_t i = 0; ok && i < 3; i++) {
        char *text = NULL;
        size_t len = 0;
        uint8_t n[8];
        ok = hx_read_file(paths[i], 1u << 20, &text, &len) == HX_OK;
        for (size_t k = 0; k < 8; k++) {
            n[k] = (uint8_t)(len >> (8 * k));
        }
        ok = ok && EVP_DigestUpdate(md, n, sizeof(n)) == 1 && EVP_DigestUpdate(md, text, len) == 1;
        if (text != NULL) {
            OPENSSL_clear_free(text, len);
        }
    }
    ok = ok && EVP_DigestUpdate(md, c->groups, strlen(c->groups)) == 1 &&
         EVP_DigestFinal_ex(md, out, NULL) == 1;
    EVP_MD_CTX_free(md);
    return ok;
}

void hx_link_ssl_why(char *why, size_t why_len, const char *what)
{
    char err[160];
    unsigned long e = ERR_get_error();

    ERR_error_string_n(e, err, sizeof(err));
    snprintf(why, why_len, "%s: %s", what, e != 0 ? err : "failed");
    ERR_clear_error();
}

/* The TLS 1.3 context of the links: our certificate, the network CA, peer.tls_groups. */
static hx_err tls_ctx(const struct hx_links_config *c, SSL_CTX **out, char *why, size_t why_len)
{
    struct stat st;
    SSL_CTX *ctx = SSL_CTX_new(TLS_method());

    *out = NULL;
    if (ctx == NULL) {
        hx_link_ssl_why(why, why_len, "SSL_CTX_new");
        return HX_ERR_CRYPTO;
    }
    /* TLS 1.3 only, post-quantum hybrid groups first. */
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
    if (SSL_CTX_set1_groups_list(ctx, c->groups) != 1) {
        hx_link_ssl_why(why, why_len, "peer.tls_groups");
        goto fail;
    }
    if (stat(c->key_path, &st) != 0 || (st.st_mode & 077) != 0) {
        snprintf(why, why_len, "%s: missing, or readable by group or others (chmod 600)",
                 c->key_path);
        goto fail;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, c->cert_path) != 1) {
        hx_link_ssl_why(why, why_len, c->cert_path);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, c->key_path, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        hx_link_ssl_why(why, why_len, c->key_path);
        goto fail;
    }
    /* Only the network CA: never the system store. */
    if (SSL_CTX_load_verify_file(ctx, c->ca_path) != 1) {
        hx_link_ssl_why(why, why_len, c->ca_path);
        goto fail;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    *out = ctx;
    return HX_OK;
fail:
    SSL_CTX_free(ctx);
    return HX_ERR_CONFIG;
}

hx_err hx_link_creds_new(const struct hx_links_config *c, struct hx_link_creds **out, char *why,
                         size_t why_len)
{
    struct hx_link_creds *cr = calloc(1, sizeof(*cr));
    struct hx_link_creds_info info;
    hx_err e;

    *out = NULL;
    if (cr == NULL) {
        snprintf(why, why_len, "out of memory");
        return HX_ERR_NOMEM;
    }
    atomic_init(&cr->refs, 1);
    if ((e = hx_link_check_creds(c, &info, why, why_len)) != HX_OK ||
        (e = tls_ctx(c, &cr->ctx, why, why_len)) != HX_OK) {
        goto fail;
    }
    if ((e = hx_sig_key_load_pem(c->key_path, &cr->key)) != HX_OK) {
        snprintf(why, why_len, "key %s: cannot be loaded as a signing key: %s", c->key_path,
                 hx_strerror(e));
        goto fail;
    }
    if (!creds_digest(c, cr->digest)) {
        snprintf(why, why_len, "cannot read the certificate files again");
        e = HX_ERR_IO;
        goto fail;
    }
    cr->cert_not_after = info.cert_not_after;
    cr->ca_not_after = info.ca_not_after;
    *out = cr;
    return HX_OK;
fail:
    hx_link_creds_put(cr);
    return e;
}

void hx_link_creds_put(struct hx_link_creds *cr)
{
    if (cr == NULL || atomic_fetch_sub(&cr->refs, 1) != 1) {
        return;
    }
    SSL_CTX_free(cr->ctx);
    hx_sig_key_free(cr->key);
    free(cr);
}

struct hx_link_creds *hx_link_creds_get(struct hx_link_creds *cr)
{
    atomic_fetch_add(&cr->refs, 1);
    return cr;
}
