#define _GNU_SOURCE /* accept4 */
#include "peer/link.h"

#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "common/log.h"
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
    int fd;
    SSL *ssl;
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

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
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
    struct sockaddr_storage sa;
    socklen_t len = sizeof(sa);
    char ip[INET6_ADDRSTRLEN] = "", id[HX_UUID_STR_LEN + 1];

    memset(&sa, 0, sizeof(sa));

    if (getpeername(fd, (struct sockaddr *)&sa, &len) != 0 ||
        inet_ntop(sa.ss_family,
                  sa.ss_family == AF_INET ? (void *)&((struct sockaddr_in *)&sa)->sin_addr
                                          : (void *)&((struct sockaddr_in6 *)&sa)->sin6_addr,
                  ip, sizeof(ip)) == NULL) {
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

/* Blocking TLS handshake with a 10 s limit; identifies the peer. */
static hx_err handshake(struct hx_links *ls, int fd, bool client, const struct hx_uuid *expected,
                        struct hx_link **out)
{
    struct timeval tv = {10, 0};
    struct hx_link *l;
    X509 *cert;
    char id[HX_UUID_STR_LEN + 1];

    *out = NULL;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if ((l = calloc(1, sizeof(*l))) == NULL) {
        return HX_ERR_NOMEM;
    }
    l->ls = ls;
    l->fd = fd;
    l->serial = __atomic_add_fetch(&link_serials, 1, __ATOMIC_RELAXED);
    l->wake[0] = l->wake[1] = -1;
    pthread_mutex_init(&l->lock, NULL);
    l->refs = 1;
    if ((l->ssl = SSL_new(ls->ctx)) == NULL || SSL_set_fd(l->ssl, fd) != 1 ||
        (client ? SSL_connect(l->ssl) : SSL_accept(l->ssl)) != 1) {
        char why[240], from[INET6_ADDRSTRLEN + 8] = "?";
        long v = l->ssl != NULL ? SSL_get_verify_result(l->ssl) : X509_V_OK;
        struct sockaddr_storage sa;
        socklen_t sl = sizeof(sa);
        ssl_why(why, sizeof(why), "handshake");
        if (v != X509_V_OK) { /* say which certificate check failed, not only "verify failed" */
            snprintf(why, sizeof(why), "certificate: %s", X509_verify_cert_error_string(v));
        }
        memset(&sa, 0, sizeof(sa));
        if (getpeername(fd, (struct sockaddr *)&sa, &sl) == 0 && sa.ss_family == AF_INET) {
            inet_ntop(AF_INET, &((struct sockaddr_in *)&sa)->sin_addr, from, sizeof(from));
        } else if (sa.ss_family == AF_INET6) {
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&sa)->sin6_addr, from, sizeof(from));
        }
        hx_warn("peer TLS handshake failed", HX_F_STR("from", from) HX_F_STR("reason", why));
        goto fail;
    }
    if ((cert = SSL_get0_peer_certificate(l->ssl)) == NULL) {
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
    if (l->ssl != NULL) {
        SSL_free(l->ssl);
    }
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
    SSL_free(l->ssl);
    close(l->fd);
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
        shutdown(s->link->fd, SHUT_RDWR);
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

/* The I/O loop of an up link; returns when it goes down. */
static void run_link(struct hx_links *ls, struct hx_link *l)
{
    double last_rx = now_s(), last_tx = now_s();
    size_t cap = HX_LINK_HEADER + HX_LINK_MAX_FRAME + 16384;
    bool want_write = false;

    if ((l->rbuf = malloc(cap)) == NULL) {
        return;
    }
    fcntl(l->fd, F_SETFL, fcntl(l->fd, F_GETFL) | O_NONBLOCK);
    while (!ls->stopping) {
        struct pollfd pfd[2] = {{l->fd, POLLIN, 0}, {l->wake[0], POLLIN, 0}};
        int ka = (int)ls->cfg.keepalive_s * 1000, r;
        char drain[64];

        pthread_mutex_lock(&l->lock);
        if (l->head != NULL || want_write) {
            pfd[0].events |= POLLOUT;
        }
        pthread_mutex_unlock(&l->lock);
        r = poll(pfd, 2, SSL_pending(l->ssl) > 0 ? 0 : 500);
        if (r < 0 && errno != EINTR) {
            break;
        }
        if (pfd[1].revents & POLLIN) {
            while (read(l->wake[0], drain, sizeof(drain)) > 0) {
            }
        }
        /* read everything available */
        for (;;) {
            int n = SSL_read(l->ssl, l->rbuf + l->rlen, (int)(cap - l->rlen));
            if (n > 0) {
                l->rlen += (size_t)n;
                last_rx = now_s();
                if (!deliver_frames(l)) {
                    goto down;
                }
                continue;
            }
            int err = SSL_get_error(l->ssl, n);
            if (err == SSL_ERROR_WANT_READ) {
                break;
            }
            if (err == SSL_ERROR_WANT_WRITE) {
                want_write = true;
                break;
            }
            goto down; /* closed or failed */
        }
        /* write what is queued */
        want_write = false;
        pthread_mutex_lock(&l->lock);
        while (l->head != NULL) {
            struct outbuf *b = l->head;
            int n = SSL_write(l->ssl, b->data + b->off, (int)(b->len - b->off));
            if (n <= 0) {
                int err = SSL_get_error(l->ssl, n);
                if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) {
                    want_write = true;
                    break;
                }
                pthread_mutex_unlock(&l->lock);
                goto down;
            }
            b->off += (size_t)n;
            last_tx = now_s();
            if (b->off == b->len) {
                l->head = b->next;
                if (l->head == NULL) {
                    l->tail = NULL;
                }
                OPENSSL_clear_free(b, sizeof(*b) + b->len);
            }
        }
        pthread_mutex_unlock(&l->lock);
        /* keep-alive */
        if (now_s() - last_tx > ka / 1000.0) {
            uint8_t nonce[8] = {0};
            if (hx_link_send(l, FRAME_PING, nonce, sizeof(nonce)) != HX_OK) {
                goto down;
            }
            last_tx = now_s();
        }
        if (now_s() - last_rx > 3.0 * ka / 1000.0) {
            hx_warn("peer silent for three keep-alive intervals; closing the link", HX_NOFIELDS);
            goto down;
        }
    }
down:
    return;
}

/* Registers an identified link, runs it, unregisters it. */
static void serve_link(struct hx_links *ls, struct hx_link *l)
{
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
        shutdown(old->fd, SHUT_RDWR);
        hx_link_put(old);
    }
    {
        int nid = (int)SSL_get_negotiated_group(l->ssl);
        const char *group = SSL_group_to_name(l->ssl, nid);
        X509 *cert = SSL_get0_peer_certificate(l->ssl);
        int days = 0, secs = 0;
        hx_info("peer link up", HX_F_STR("peer", id) HX_F_STR("tls", SSL_get_version(l->ssl))
                                    HX_F_STR("group", group != NULL ? group : "?")
                                        HX_F_STR("cipher", SSL_get_cipher_name(l->ssl)));
        pthread_mutex_lock(&ls->lock);
        s->info.up = true;
        s->info.last_up = (int64_t)time(NULL);
        s->info.links_made++;
        snprintf(s->info.group, sizeof(s->info.group), "%s", group != NULL ? group : "?");
        snprintf(s->info.cipher, sizeof(s->info.cipher), "%s", SSL_get_cipher_name(l->ssl));
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
    s->info.last_down = (int64_t)time(NULL);
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
}

static int dial(const char *host, uint16_t port)
{
    struct addrinfo hints, *res = NULL, *ai;
    char ports[8];
    int fd = -1, one = 1;

    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    snprintf(ports, sizeof(ports), "%u", port);
    if (getaddrinfo(host, ports, &hints, &res) != 0) {
        return -1;
    }
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        if ((fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0)) < 0) {
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            break;
        }
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd >= 0) {
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    return fd;
}

static void sleep_interruptible(struct hx_links *ls, double secs)
{
    double end = now_s() + secs;

    while (!ls->stopping && now_s() < end) {
        usleep(50000);
    }
}

struct connector_arg {
    struct hx_links *ls;
    size_t slot;
};

static void *connector_main(void *arg)
{
    struct connector_arg *ca = arg;
    struct hx_links *ls = ca->ls;
    struct slot *s = &ls->slots[ca->slot];
    double backoff = 0.1;

    free(ca);
    while (!ls->stopping) {
        struct hx_link *l = NULL;
        int fd = dial(s->host, s->port);
        if (fd >= 0 && handshake(ls, fd, true, &s->uuid, &l) == HX_OK) {
            if (!hx_uuid_equal(&l->peer, &s->uuid)) {
                hx_warn("peer at this address presents another node's certificate",
                        HX_F_STR("host", s->host));
                link_free(l);
            } else {
                backoff = 0.1;
                serve_link(ls, l);
                continue;
            }
        } else if (fd >= 0 && l == NULL) {
            close(fd);
        }
        sleep_interruptible(ls, backoff);
        backoff = backoff * 2 > ls->cfg.reconnect_max_s ? ls->cfg.reconnect_max_s : backoff * 2;
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
        close(fd);
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
        int fd = accept4(ls->listen_fd, NULL, NULL, SOCK_CLOEXEC), one = 1;
        struct accepted *a;
        pthread_t t;

        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }
            if (ls->stopping) {
                break;
            }
            usleep(100000);
            continue;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
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
    struct addrinfo hints, *res = NULL;
    char ports[8];
    int one = 1, rc;
    hx_err e;

    *out = NULL;
    if (ls == NULL || (ls->slots = calloc(cfg->n_peers + 1, sizeof(*ls->slots))) == NULL) {
        free(ls);
        return HX_ERR_NOMEM;
    }
    ls->cfg = *cfg;
    ls->listen_fd = -1;
    pthread_mutex_init(&ls->lock, NULL);
    pthread_cond_init(&ls->changed, NULL);
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
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    snprintf(ports, sizeof(ports), "%u", cfg->listen_port);
    if ((rc = getaddrinfo(cfg->listen_host, ports, &hints, &res)) != 0) {
        snprintf(why, why_len, "peer_local_address %s: %s", cfg->listen_host, gai_strerror(rc));
        hx_links_stop(ls);
        return HX_ERR_CONFIG;
    }
    if ((ls->listen_fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
        setsockopt(ls->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(ls->listen_fd, res->ai_addr, res->ai_addrlen) != 0 || listen(ls->listen_fd, 64) != 0) {
        snprintf(why, why_len, "peer_local_address %s:%u: %s", cfg->listen_host, cfg->listen_port,
                 strerror(errno));
        freeaddrinfo(res);
        hx_links_stop(ls);
        return HX_ERR_IO;
    }
    freeaddrinfo(res);
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
    struct timespec deadline;

    if (ls == NULL) {
        return;
    }
    ls->stopping = true;
    if (ls->listen_fd >= 0) {
        shutdown(ls->listen_fd, SHUT_RDWR);
    }
    pthread_mutex_lock(&ls->lock);
    for (size_t i = 0; i < ls->n; i++) {
        if (ls->slots[i].link != NULL) {
            shutdown(ls->slots[i].link->fd, SHUT_RDWR);
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
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 2;
    pthread_mutex_lock(&ls->lock);
    while (ls->handshakes > 0 &&
           pthread_cond_timedwait(&ls->changed, &ls->lock, &deadline) != ETIMEDOUT) {
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
