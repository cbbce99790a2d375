/* The peer link's TLS: its context, the handshake, and who the peer is (link_int.h). */
#define _GNU_SOURCE /* pipe2 */
#include <fcntl.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "common/clock.h"
#include "common/log.h"
#include "net/sock.h"
#include "peer/link_int.h"

static uint64_t link_serials;

/* The IP SAN as text ("10.0.0.1", "::1"); caller frees with OPENSSL_free. */
static char *ossl_ip_to_text(const ASN1_OCTET_STRING *ip)
{
    char buf[INET6_ADDRSTRLEN];
    int len = ASN1_STRING_length(ip);
    const unsigned char *p = ASN1_STRING_get0_data(ip);

    if ((len != 4 && len != 16) ||
        inet_ntop(len == 4 ? AF_INET : AF_INET6, p, buf, sizeof(buf)) == NULL) {
        return NULL;
    }
    return OPENSSL_strdup(buf);
}

static void ssl_why(char *why, size_t why_len, const char *what)
{
    char err[160];
    unsigned long e = ERR_get_error();

    ERR_error_string_n(e, err, sizeof(err));
    snprintf(why, why_len, "%s: %s", what, e != 0 ? err : "failed");
    ERR_clear_error();
}

/* ---- TLS set-up ---- */

hx_err hx_link_tls_ctx(const struct hx_links_config *c, SSL_CTX **out, char *why, size_t why_len)
{
    struct stat st;
    SSL_CTX *ctx = SSL_CTX_new(TLS_method());

    *out = NULL;
    if (ctx == NULL) {
        ssl_why(why, why_len, "SSL_CTX_new");
        return HX_ERR_CRYPTO;
    }
    /* TLS 1.3 only, post-quantum hybrid groups first. */
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
    if (SSL_CTX_set1_groups_list(ctx, c->groups) != 1) {
        ssl_why(why, why_len, "peer.tls_groups");
        goto fail;
    }
    if (stat(c->key_path, &st) != 0 || (st.st_mode & 077) != 0) {
        snprintf(why, why_len, "%s: missing, or readable by group or others (chmod 600)",
                 c->key_path);
        goto fail;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, c->cert_path) != 1) {
        ssl_why(why, why_len, c->cert_path);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, c->key_path, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        ssl_why(why, why_len, c->key_path);
        goto fail;
    }
    /* Only the network CA: never the system store. */
    if (SSL_CTX_load_verify_file(ctx, c->ca_path) != 1) {
        ssl_why(why, why_len, c->ca_path);
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

/* The node UUID in the certificate's SAN (URI:urn:uuid:...). */
static bool cert_uuid(X509 *cert, struct hx_uuid *out)
{
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
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

/* Does the certificate carry an IP SAN equal to the textual address ip? */
static bool cert_has_ip(X509 *cert, const char *ip)
{
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    bool found = false;

    for (int i = 0; names != NULL && i < sk_GENERAL_NAME_num(names) && !found; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        if (g->type == GEN_IPADD) {
            char *text = ossl_ip_to_text(g->d.iPAddress);
            found = text != NULL && strcmp(text, ip) == 0;
            OPENSSL_free(text);
        }
    }
    GENERAL_NAMES_free(names);
    return found;
}

/*
 * Certificates made by the original system's scripts carry the node's IP address and no UUID.
 * As the original did, accept them when that address is a trusted peer's configured address
 * (the dialled one, or the connection's source), with a warning: an address is a weaker
 * identity than a UUID bound by the CA.
 */
static bool identify_by_address(struct hx_links *ls, int fd, X509 *cert, bool client,
                                const struct hx_uuid *expected, struct hx_uuid *out)
{
    char ip[INET6_ADDRSTRLEN] = "", id[HX_UUID_STR_LEN + 1];

    bool found = false;

    if (!hx_net_peer_ip(fd, ip, sizeof(ip))) {
        return false;
    }
    pthread_mutex_lock(&ls->lock); /* a reload may change the slots */
    for (size_t i = 0; i < ls->n && !found; i++) {
        const struct slot *s = &ls->slots[i];
        if (s->retired || (client && !hx_uuid_equal(&s->uuid, expected)) ||
            strcmp(s->host, ip) != 0 || !cert_has_ip(cert, ip)) {
            continue;
        }
        found = true;
        *out = s->uuid;
        if (!client) {
            /* Several trusted peers may share an address (one host): ambiguous, refuse. */
            for (size_t j = i + 1; j < ls->n; j++) {
                if (!ls->slots[j].retired && strcmp(ls->slots[j].host, ip) == 0) {
                    found = false;
                }
            }
        }
    }
    pthread_mutex_unlock(&ls->lock);
    if (found) {
        hx_uuid_format(out, id);
        hx_warn(
            "peer identified by its IP address (certificate without a node UUID, as the "
            "original system's scripts make them)",
            HX_F_STR("peer", id) HX_F_STR("address", ip));
    }
    return found;
}

/* TLS handshake (until deadline) on fd, which it owns from here on; identifies the peer. */
hx_err hx_link_handshake(struct hx_links *ls, int fd, bool client, const struct hx_uuid *expected,
                         int64_t deadline, struct hx_link **out)
{
    struct hx_link *l;
    X509 *cert;
    char id[HX_UUID_STR_LEN + 1];
    hx_err r;

    *out = NULL;
    if ((l = calloc(1, sizeof(*l))) == NULL) {
        close(fd);
        return HX_ERR_NOMEM;
    }
    l->ls = ls;
    hx_conn_init(&l->io, fd);
    l->serial = __atomic_add_fetch(&link_serials, 1, __ATOMIC_RELAXED);
    l->wake[0] = l->wake[1] = -1;
    pthread_mutex_init(&l->lock, NULL);
    l->refs = 1;
    pthread_mutex_lock(&ls->lock); /* the set of the moment; a reload may swap it */
    l->creds = hx_link_creds_get(ls->creds);
    pthread_mutex_unlock(&ls->lock);
    r = client ? hx_conn_tls_connect(&l->io, l->creds->ctx, deadline)
               : hx_conn_tls_accept(&l->io, l->creds->ctx, deadline);
    if (r != HX_OK) {
        char why[240], from[INET6_ADDRSTRLEN + 8] = "?";
        long v = l->io.ssl != NULL ? SSL_get_verify_result(l->io.ssl) : X509_V_OK;
        ssl_why(why, sizeof(why), r == HX_ERR_IO_TIMEOUT ? "handshake timed out" : "handshake");
        if (v != X509_V_OK) { /* say which certificate check failed, not only "verify failed" */
            snprintf(why, sizeof(why), "certificate: %s", X509_verify_cert_error_string(v));
        }
        if (!hx_net_peer_ip(fd, from, sizeof(from))) {
            snprintf(from, sizeof(from), "?");
        }
        hx_warn("peer TLS handshake failed", HX_F_STR("from", from) HX_F_STR("reason", why));
        goto fail;
    }
    if ((cert = SSL_get0_peer_certificate(l->io.ssl)) == NULL) {
        goto fail;
    }
    if (!cert_uuid(cert, &l->peer) &&
        !identify_by_address(ls, fd, cert, client, expected, &l->peer)) {
        hx_warn(
            "peer certificate names no node UUID (urn:uuid SAN), and no trusted peer's "
            "address matches its IP SAN",
            HX_NOFIELDS);
        goto fail;
    }
    hx_uuid_format(&l->peer, id);
    pthread_mutex_lock(&ls->lock);
    bool trusted = slot_of(ls, &l->peer) != NULL;
    pthread_mutex_unlock(&ls->lock);
    if (!trusted) {
        hx_warn("peer is not a trusted peer", HX_F_STR("peer", id));
        goto fail;
    }
    if (hx_sig_key_from_evp(X509_get0_pubkey(cert), &l->peer_key) != HX_OK) {
        hx_warn("peer certificate key cannot sign batches (ML-DSA, ECDSA, Ed25519 or RSA)",
                HX_F_STR("peer", id));
        goto fail;
    }
    if (!hx_sig_key_is_pq(l->peer_key)) {
        hx_warn("peer certificate key is classical: its batch signatures are not post-quantum",
                HX_F_STR("peer", id) HX_F_STR("key", hx_sig_key_name(l->peer_key)));
    }
    if (pipe2(l->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
        goto fail;
    }
    *out = l;
    return HX_OK;
fail:
    hx_conn_wipe(&l->io);
    hx_sig_key_free(l->peer_key);
    hx_link_creds_put(l->creds);
    pthread_mutex_destroy(&l->lock);
    free(l);
    return HX_ERR_VERIFY;
}
