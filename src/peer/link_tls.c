/* The peer link's TLS: the handshake, and who the peer is (link_int.h). */
#define _GNU_SOURCE /* pipe2 */
#include <fcntl.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "common/clock.h"
#include "common/log.h"
#include "net/sock.h"
#include "peer/certid.h"
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
        hx_link_ssl_why(why, sizeof(why),
                        r == HX_ERR_IO_TIMEOUT ? "handshake timed out" : "handshake");
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
    if (!hx_certid_uuid(cert, &l->peer) &&
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
