#define _GNU_SOURCE /* pipe2 */
#include "peer/link.h"

#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "common/clock.h"
#include "common/log.h"
#include "net/conn.h"
#include "net/sock.h"
#include "proto/peer.h"

#define FRAME_PING 0x01

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
#define FRAME_PONG 0x02

struct outbuf {
    struct outbuf *next;
    size_t len, off;
    uint8_t data[];
};

struct hx_link {
    struct hx_links *ls;
    struct hx_uuid peer;
    struct hx_conn io; /* the TLS connection (net/conn.h), non-blocking on the I/O thread */
    struct hx_sig_key *peer_key;
    pthread_mutex_t lock; /* queue, up, refs */
    struct outbuf *head, *tail;
    int wake[2];
    bool up;
    int refs;
    uint64_t serial; /* unique per link made: tells a reconnection from the same link */
    uint8_t *rbuf;
    size_t rlen;
};

struct slot {
    struct hx_uuid uuid;
    char host[256];
    uint16_t port;
    struct hx_link *link; /* the up link, holding one reference */
    bool connector;       /* we connect to this peer */
    struct hx_link_info info;
    pthread_t thread;
    bool thread_started;
};

struct hx_links {
    struct hx_links_config cfg;
    SSL_CTX *ctx;
    struct slot *slots;
    size_t n;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int listen_fd;
    pthread_t acceptor;
    bool acceptor_started;
    volatile bool stopping;
    int handshakes; /* accept-side handshake threads running */
    /* accept-side threads, joined (reaped when done, all at stop) */
    struct {
        pthread_t t;
        bool used;
        volatile bool done;
    } acc[256];
};

static uint64_t link_serials;

/* A dial, and each side's TLS handshake, give up after this long. */
#define HANDSHAKE_MS 10000
/* A link that went down sooner than this after coming up did not prove the peer accepts us
 * (TLS 1.3: the server checks our certificate after our side's handshake has finished, so a
 * refusal arrives as the first read): the next dial waits its back-off. */
#define LINK_PROVEN_S 2.0

static void ssl_why(char *why, size_t why_len, const char *what)
{
    char err[160];
    unsigned long e = ERR_get_error();

    ERR_error_string_n(e, err, sizeof(err));
    snprintf(why, why_len, "%s: %s", what, e != 0 ? err : "failed");
    ERR_clear_error();
}

/* ---- TLS set-up ---- */

static hx_err make_ctx(const struct hx_links_config *c, SSL_CTX **out, char *why, size_t why_len)
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

static struct slot *slot_of(struct hx_links *ls, const struct hx_uuid *u)
{
    for (size_t i = 0; i < ls->n; i++) {
        if (hx_uuid_equal(&ls->slots[i].uuid, u)) {
            return &ls->slots[i];
        }
    }
    return NULL;
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

    if (!hx_net_peer_ip(fd, ip, sizeof(ip))) {
        return false;
    }
    for (size_t i = 0; i < ls->n; i++) {
        const struct slot *s = &ls->slots[i];
        if ((client && !hx_uuid_equal(&s->uuid, expected)) || strcmp(s->host, ip) != 0 ||
            !cert_has_ip(cert, ip)) {
            continue;
        }
        if (!client) {
            /* Several trusted peers may share an address (one host): ambiguous, refuse. */
            for (size_t j = i + 1; j < ls->n; j++) {
                if (strcmp(ls->slots[j].host, ip) == 0) {
                    return false;
                }
            }
        }
        *out = s->uuid;
        hx_uuid_format(out, id);
        hx_warn(
            "peer identified by its IP address (certificate without a node UUID, as the "
            "original system's scripts make them)",
            HX_F_STR("peer", id) HX_F_STR("address", ip));
        return true;
    }
    return false;
}

/* TLS handshake (HANDSHAKE_MS at most) on fd, which it owns from here on; identifies the peer. */
static hx_err handshake(struct hx_links *ls, int fd, bool client, const struct hx_uuid *expected,
                        struct hx_link **out)
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
    r = client ? hx_conn_tls_connect(&l->io, ls->ctx, hx_deadline_in_ms(HANDSHAKE_MS))
               : hx_conn_tls_accept(&l->io, ls->ctx, hx_deadline_in_ms(HANDSHAKE_MS));
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
    if (slot_of(ls, &l->peer) == NULL) {
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
    pthread_mutex_destroy(&l->lock);
    free(l);
    return HX_ERR_VERIFY;
}

/* ---- links ---- */

static void link_free(struct hx_link *l)
{
    struct outbuf *b;

    while ((b = l->head) != NULL) {
        l->head = b->next;
        OPENSSL_clear_free(b, sizeof(*b) + b->len);
    }
    hx_conn_wipe(&l->io);
    if (l->wake[0] >= 0) {
        close(l->wake[0]);
        close(l->wake[1]);
    }
    hx_sig_key_free(l->peer_key);
    OPENSSL_clear_free(l->rbuf, l->rlen);
    pthread_mutex_destroy(&l->lock);
    free(l);
}

void hx_link_put(struct hx_link *l)
{
    bool last;

    if (l == NULL) {
        return;
    }
    pthread_mutex_lock(&l->lock);
    last = --l->refs == 0;
    pthread_mutex_unlock(&l->lock);
    if (last) {
        link_free(l);
    }
}

struct hx_link *hx_links_get(struct hx_links *ls, const struct hx_uuid *peer)
{
    struct hx_link *l = NULL;
    struct slot *s;

    pthread_mutex_lock(&ls->lock);
    if ((s = slot_of(ls, peer)) != NULL && s->link != NULL) {
        l = s->link;
        pthread_mutex_lock(&l->lock);
        l->refs++;
        pthread_mutex_unlock(&l->lock);
    }
    pthread_mutex_unlock(&ls->lock);
    return l;
}

hx_err hx_links_info(struct hx_links *ls, const struct hx_uuid *peer, struct hx_link_info *out)
{
    struct slot *s;

    pthread_mutex_lock(&ls->lock);
    if ((s = slot_of(ls, peer)) == NULL) {
        pthread_mutex_unlock(&ls->lock);
        return HX_ERR_NOT_FOUND;
    }
    *out = s->info;
    out->up = s->link != NULL;
    pthread_mutex_unlock(&ls->lock);
    return HX_OK;
}

void hx_links_drop(struct hx_links *ls, const struct hx_uuid *peer)
{
    struct slot *s;

    pthread_mutex_lock(&ls->lock);
    if ((s = slot_of(ls, peer)) != NULL && s->link != NULL) {
        shutdown(s->link->io.fd, SHUT_RDWR);
    }
    pthread_mutex_unlock(&ls->lock);
}

const struct hx_uuid *hx_link_peer(const struct hx_link *l)
{
    return &l->peer;
}

const struct hx_sig_key *hx_link_peer_key(const struct hx_link *l)
{
    return l->peer_key;
}

uint64_t hx_link_serial(const struct hx_link *l)
{
    return l->serial;
}

hx_err hx_link_send(struct hx_link *l, uint8_t type, const uint8_t *p, size_t len)
{
    struct outbuf *b;

    if (len > HX_LINK_MAX_FRAME) {
        return HX_ERR_TOO_LARGE;
    }
    if ((b = malloc(sizeof(*b) + HX_LINK_HEADER + len)) == NULL) {
        return HX_ERR_NOMEM;
    }
    b->next = NULL;
    b->off = 0;
    b->len = HX_LINK_HEADER + len;
    b->data[0] = 'H';
    b->data[1] = 'X';
    b->data[2] = 1;
    b->data[3] = type;
    b->data[4] = (uint8_t)(len >> 24);
    b->data[5] = (uint8_t)(len >> 16);
    b->data[6] = (uint8_t)(len >> 8);
    b->data[7] = (uint8_t)len;
    if (len > 0) {
        memcpy(b->data + HX_LINK_HEADER, p, len);
    }
    pthread_mutex_lock(&l->lock);
    if (!l->up) {
        pthread_mutex_unlock(&l->lock);
        OPENSSL_clear_free(b, sizeof(*b) + b->len);
        return HX_ERR_IO_CLOSED;
    }
    if (l->tail != NULL) {
        l->tail->next = b;
    } else {
        l->head = b;
    }
    l->tail = b;
    pthread_mutex_unlock(&l->lock);
    if (write(l->wake[1], "w", 1) < 0) {
        /* the pipe is full: the I/O thread is awake anyway */
    }
    return HX_OK;
}

/* Parses whole frames out of rbuf; false on a framing error. */
static bool deliver_frames(struct hx_link *l)
{
    size_t off = 0, plen, used;
    const uint8_t *payload;
    uint8_t type;
    hx_err e;

    while ((e = hx_peer_frame_next(l->rbuf + off, l->rlen - off, HX_LINK_MAX_FRAME, &type, &payload,
                                   &plen, &used)) == HX_OK) {
        if (type == FRAME_PING) {
            if (hx_link_send(l, FRAME_PONG, payload, plen) != HX_OK) {
                return false;
            }
        } else if (type != FRAME_PONG) {
            l->ls->cfg.on_frame(l->ls->cfg.arg, l, type, payload, plen);
        }
        off += used;
    }
    if (e != HX_ERR_TRUNCATED) {
        hx_warn("peer sent a malformed frame header; closing the link", HX_NOFIELDS);
        return false;
    }
    if (off > 0) {
        memmove(l->rbuf, l->rbuf + off, l->rlen - off);
        l->rlen -= off;
    }
    return true;
}

/* Reads everything available and delivers whole frames; false when the link is down. */
static bool read_available(struct hx_link *l, size_t cap, bool *want_write, int64_t *silent)
{
    for (;;) {
        size_t got;
        short want;
        if (hx_conn_recv_nb(&l->io, l->rbuf + l->rlen, cap - l->rlen, &got, &want) != HX_OK) {
            return false; /* closed or failed */
        }
        if (got == 0) {
            *want_write = want == POLLOUT; /* TLS must write before it can read on */
            return true;
        }
        l->rlen += got;
        *silent = hx_deadline_in_ms(3ull * l->ls->cfg.keepalive_s * 1000);
        if (!deliver_frames(l)) {
            return false;
        }
    }
}

/* Writes what is queued until the socket is full; false when the link is down. */
static bool write_queued(struct hx_link *l, bool *want_write, int64_t *next_ping)
{
    bool ok = true;

    pthread_mutex_lock(&l->lock);
    while (l->head != NULL) {
        struct outbuf *b = l->head;
        size_t put;
        short want;
        if (hx_conn_send_nb(&l->io, b->data + b->off, b->len - b->off, &put, &want) != HX_OK) {
            ok = false;
            break;
        }
        if (put == 0) {
            *want_write = true;
            break;
        }
        b->off += put;
        *next_ping = hx_deadline_in_ms((uint64_t)l->ls->cfg.keepalive_s * 1000);
        if (b->off == b->len) {
            l->head = b->next;
            if (l->head == NULL) {
                l->tail = NULL;
            }
            OPENSSL_clear_free(b, sizeof(*b) + b->len);
        }
    }
    pthread_mutex_unlock(&l->lock);
    return ok;
}

/* The I/O loop of an up link; returns when it goes down. */
static void run_link(struct hx_links *ls, struct hx_link *l)
{
    uint64_t ka_ms = (uint64_t)ls->cfg.keepalive_s * 1000;
    int64_t next_ping = hx_deadline_in_ms(ka_ms), silent = hx_deadline_in_ms(3 * ka_ms);
    size_t cap = HX_LINK_HEADER + HX_LINK_MAX_FRAME + 16384;
    bool want_write = false;

    if ((l->rbuf = malloc(cap)) == NULL) {
        return;
    }
    while (!ls->stopping) {
        struct pollfd pfd[2] = {{l->io.fd, POLLIN, 0}, {l->wake[0], POLLIN, 0}};
        char drain[64];

        pthread_mutex_lock(&l->lock);
        if (l->head != NULL || want_write) {
            pfd[0].events |= POLLOUT;
        }
        pthread_mutex_unlock(&l->lock);
        /* At most 500 ms: the stop flag and the keep-alive are looked at that often. */
        if (poll(pfd, 2, hx_conn_pending(&l->io) ? 0 : 500) < 0 && errno != EINTR) {
            break;
        }
        if (pfd[1].revents & POLLIN) {
            while (read(l->wake[0], drain, sizeof(drain)) > 0) {
            }
        }
        want_write = false;
        if (!read_available(l, cap, &want_write, &silent) ||
            !write_queued(l, &want_write, &next_ping)) {
            return;
        }
        if (hx_deadline_passed(next_ping)) {
            uint8_t nonce[8] = {0};
            if (hx_link_send(l, FRAME_PING, nonce, sizeof(nonce)) != HX_OK) {
                return;
            }
            next_ping = hx_deadline_in_ms(ka_ms);
        }
        if (hx_deadline_passed(silent)) {
            hx_warn("peer silent for three keep-alive intervals; closing the link", HX_NOFIELDS);
            return;
        }
    }
}

/* Registers an identified link, runs it, unregisters it; returns how long it was up (s). */
static double serve_link(struct hx_links *ls, struct hx_link *l)
{
    double up_since = hx_monotime();
    struct slot *s;
    struct hx_link *old = NULL;
    char id[HX_UUID_STR_LEN + 1];

    hx_uuid_format(&l->peer, id);
    pthread_mutex_lock(&ls->lock);
    s = slot_of(ls, &l->peer);
    old = s->link;
    l->up = true;
    l->refs++; /* the slot's reference */
    s->link = l;
    pthread_mutex_unlock(&ls->lock);
    if (old != NULL) {
        pthread_mutex_lock(&old->lock);
        old->up = false;
        pthread_mutex_unlock(&old->lock);
        shutdown(old->io.fd, SHUT_RDWR);
        hx_link_put(old);
    }
    {
        int nid = (int)SSL_get_negotiated_group(l->io.ssl);
        const char *group = SSL_group_to_name(l->io.ssl, nid);
        X509 *cert = SSL_get0_peer_certificate(l->io.ssl);
        int days = 0, secs = 0;
        hx_info("peer link up", HX_F_STR("peer", id) HX_F_STR("tls", SSL_get_version(l->io.ssl))
                                    HX_F_STR("group", group != NULL ? group : "?")
                                        HX_F_STR("cipher", SSL_get_cipher_name(l->io.ssl)));
        pthread_mutex_lock(&ls->lock);
        s->info.up = true;
        s->info.last_up = hx_walltime();
        s->info.links_made++;
        snprintf(s->info.group, sizeof(s->info.group), "%s", group != NULL ? group : "?");
        snprintf(s->info.cipher, sizeof(s->info.cipher), "%s", SSL_get_cipher_name(l->io.ssl));
        s->info.cert_not_after =
            cert != NULL && ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(cert)) == 1
                ? s->info.last_up + (int64_t)days * 86400 + secs
                : 0;
        pthread_mutex_unlock(&ls->lock);
    }
    ls->cfg.on_state(ls->cfg.arg, l, true);
    run_link(ls, l);
    pthread_mutex_lock(&l->lock);
    l->up = false;
    pthread_mutex_unlock(&l->lock);
    pthread_mutex_lock(&ls->lock);
    s->info.last_down = hx_walltime();
    if (s->link == l) {
        s->link = NULL;
        pthread_mutex_unlock(&ls->lock);
        hx_link_put(l);
    } else {
        pthread_mutex_unlock(&ls->lock);
    }
    hx_info("peer link down", HX_F_STR("peer", id));
    ls->cfg.on_state(ls->cfg.arg, l, false);
    hx_link_put(l);
    return hx_monotime() - up_since;
}

/*
 * Waits secs, or less when the links stop. The waits of every connector share ls->changed,
 * which hx_links_stop broadcasts.
 */
static void sleep_interruptible(struct hx_links *ls, double secs)
{
    int64_t end = hx_deadline_in_s(secs);

    pthread_mutex_lock(&ls->lock);
    while (!ls->stopping && !hx_cond_wait_until(&ls->changed, &ls->lock, end)) {
    }
    pthread_mutex_unlock(&ls->lock);
}

struct connector_arg {
    struct hx_links *ls;
    size_t slot;
};

/*
 * Dials one peer for as long as the links run. The source address is the node's own listen
 * address when that is a specific one, so that the peer sees (and, for certificates that name
 * an IP address, checks) this node's address even when several nodes share one host. Every
 * failure waits its back-off, and so does a link that went down before it proved itself: a
 * peer that refuses us after the handshake must not be redialled in a tight loop.
 */
static void *connector_main(void *arg)
{
    struct connector_arg *ca = arg;
    struct hx_links *ls = ca->ls;
    struct slot *s = &ls->slots[ca->slot];
    struct hx_backoff bo;

    free(ca);
    hx_backoff_init(&bo, 0.1, ls->cfg.reconnect_max_s);
    while (!ls->stopping) {
        struct hx_link *l = NULL;
        char why[200];
        int fd;
        if (hx_net_dial_tcp(s->host, s->port, ls->cfg.listen_host, hx_deadline_in_ms(HANDSHAKE_MS),
                            &fd, why, sizeof(why)) == HX_OK &&
            handshake(ls, fd, true, &s->uuid, &l) == HX_OK) {
            if (!hx_uuid_equal(&l->peer, &s->uuid)) {
                hx_warn("peer at this address presents another node's certificate",
                        HX_F_STR("host", s->host));
                link_free(l);
            } else if (serve_link(ls, l) >= LINK_PROVEN_S) {
                hx_backoff_reset(&bo);
                continue; /* it was a good link: redial at once */
            }
        }
        sleep_interruptible(ls, hx_backoff_next(&bo));
    }
    return NULL;
}

struct accepted {
    struct hx_links *ls;
    int fd;
    size_t slot;
};

static void *accepted_main(void *arg)
{
    struct accepted *a = arg;
    struct hx_links *ls = a->ls;
    struct hx_link *l = NULL;
    int fd = a->fd;
    size_t slot = a->slot;

    free(a);
    if (handshake(ls, fd, false, NULL, &l) != HX_OK) {
        /* handshake closed fd */
    } else if (memcmp(l->peer.b, ls->cfg.self.b, 16) > 0) {
        hx_warn("peer with the larger UUID dialled in; it should wait for our connection",
                HX_NOFIELDS);
        link_free(l);
    } else {
        serve_link(ls, l);
    }
    pthread_mutex_lock(&ls->lock);
    ls->handshakes--;
    ls->acc[slot].done = true;
    pthread_cond_broadcast(&ls->changed);
    pthread_mutex_unlock(&ls->lock);
    return NULL;
}

static void *acceptor_main(void *arg)
{
    struct hx_links *ls = arg;

    while (!ls->stopping) {
        struct accepted *a;
        pthread_t t;
        int fd;

        if (hx_net_accept(ls->listen_fd, &fd) != HX_OK) {
            if (ls->stopping) {
                break;
            }
            usleep(100000); /* out of descriptors: wait for connections to end */
            continue;
        }
        /* The handshake runs in its own thread: an idle or slow client never blocks others. */
        if ((a = malloc(sizeof(*a))) == NULL) {
            close(fd);
            continue;
        }
        a->ls = ls;
        a->fd = fd;
        /* Reap finished handshake threads; refuse when all slots are busy. */
        size_t slot = SIZE_MAX;
        pthread_mutex_lock(&ls->lock);
        for (size_t i = 0; i < sizeof(ls->acc) / sizeof(ls->acc[0]); i++) {
            if (ls->acc[i].used && ls->acc[i].done) {
                pthread_join(ls->acc[i].t, NULL); /* it has finished: no wait */
                ls->acc[i].used = false;
            }
            if (!ls->acc[i].used && slot == SIZE_MAX) {
                slot = i;
            }
        }
        if (slot == SIZE_MAX) {
            pthread_mutex_unlock(&ls->lock);
            close(fd);
            free(a);
            continue;
        }
        a->slot = slot;
        ls->acc[slot].done = false;
        ls->handshakes++;
        if (pthread_create(&t, NULL, accepted_main, a) != 0) {
            ls->handshakes--;
            pthread_mutex_unlock(&ls->lock);
            close(fd);
            free(a);
            continue;
        }
        ls->acc[slot].t = t;
        ls->acc[slot].used = true;
        pthread_mutex_unlock(&ls->lock);
    }
    return NULL;
}

hx_err hx_links_start(const struct hx_links_config *cfg, struct hx_links **out, char *why,
                      size_t why_len)
{
    struct hx_links *ls = calloc(1, sizeof(*ls));
    char err[200];
    hx_err e;

    *out = NULL;
    if (ls == NULL || (ls->slots = calloc(cfg->n_peers + 1, sizeof(*ls->slots))) == NULL) {
        free(ls);
        return HX_ERR_NOMEM;
    }
    ls->cfg = *cfg;
    ls->listen_fd = -1;
    pthread_mutex_init(&ls->lock, NULL);
    if ((e = hx_cond_init_monotonic(&ls->changed)) != HX_OK) {
        pthread_mutex_destroy(&ls->lock);
        free(ls->slots);
        free(ls);
        return e;
    }
    if ((e = make_ctx(cfg, &ls->ctx, why, why_len)) != HX_OK) {
        hx_links_stop(ls);
        return e;
    }
    ls->n = cfg->n_peers;
    for (size_t i = 0; i < ls->n; i++) {
        ls->slots[i].uuid = cfg->peers[i];
        snprintf(ls->slots[i].host, sizeof(ls->slots[i].host), "%s", cfg->peer_hosts[i]);
        ls->slots[i].port = cfg->peer_ports[i];
        ls->slots[i].connector = memcmp(cfg->self.b, cfg->peers[i].b, 16) < 0;
    }
    if ((e = hx_net_listen_tcp(cfg->listen_host, cfg->listen_port, 64, false, &ls->listen_fd, err,
                               sizeof(err))) != HX_OK) {
        if (e == HX_ERR_CONFIG) {
            snprintf(why, why_len, "peer_local_address %s: %s", cfg->listen_host, err);
        } else {
            snprintf(why, why_len, "peer_local_address %s:%u: %s", cfg->listen_host,
                     cfg->listen_port, err);
        }
        hx_links_stop(ls);
        return e;
    }
    if (pthread_create(&ls->acceptor, NULL, acceptor_main, ls) != 0) {
        hx_links_stop(ls);
        return HX_ERR_INTERNAL;
    }
    ls->acceptor_started = true;
    for (size_t i = 0; i < ls->n; i++) {
        struct connector_arg *ca;
        if (!ls->slots[i].connector || (ca = malloc(sizeof(*ca))) == NULL) {
            continue;
        }
        ca->ls = ls;
        ca->slot = i;
        if (pthread_create(&ls->slots[i].thread, NULL, connector_main, ca) == 0) {
            ls->slots[i].thread_started = true;
        } else {
            free(ca);
        }
    }
    *out = ls;
    return HX_OK;
}

void hx_links_stop(struct hx_links *ls)
{
    int64_t deadline;

    if (ls == NULL) {
        return;
    }
    pthread_mutex_lock(&ls->lock);
    ls->stopping = true;
    pthread_cond_broadcast(&ls->changed); /* wakes connectors waiting out their back-off */
    pthread_mutex_unlock(&ls->lock);
    if (ls->listen_fd >= 0) {
        shutdown(ls->listen_fd, SHUT_RDWR);
    }
    pthread_mutex_lock(&ls->lock);
    for (size_t i = 0; i < ls->n; i++) {
        if (ls->slots[i].link != NULL) {
            shutdown(ls->slots[i].link->io.fd, SHUT_RDWR);
        }
    }
    pthread_mutex_unlock(&ls->lock);
    if (ls->acceptor_started) {
        pthread_join(ls->acceptor, NULL);
    }
    for (size_t i = 0; i < ls->n; i++) {
        if (ls->slots[i].thread_started) {
            pthread_join(ls->slots[i].thread, NULL);
        }
    }
    deadline = hx_deadline_in_ms(2000);
    pthread_mutex_lock(&ls->lock);
    while (ls->handshakes > 0 && !hx_cond_wait_until(&ls->changed, &ls->lock, deadline)) {
    }
    bool idle = ls->handshakes == 0;
    pthread_mutex_unlock(&ls->lock);
    if (ls->listen_fd >= 0) {
        close(ls->listen_fd);
    }
    if (!idle) {
        return; /* a handshake thread still runs: leave the memory to the exiting process */
    }
    for (size_t i = 0; i < sizeof(ls->acc) / sizeof(ls->acc[0]); i++) {
        if (ls->acc[i].used) {
            pthread_join(ls->acc[i].t, NULL);
        }
    }
    SSL_CTX_free(ls->ctx);
    free(ls->slots);
    pthread_cond_destroy(&ls->changed);
    pthread_mutex_destroy(&ls->lock);
    free(ls);
}
