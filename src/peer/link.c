#include "peer/link.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include "common/clock.h"
#include "common/log.h"
#include "net/conn.h"
#include "net/sock.h"
#include "peer/link_int.h"
#include "proto/peer.h"

#define FRAME_PING 0x01
#define FRAME_PONG 0x02

/* ---- links ---- */

void hx_link_free(struct hx_link *l)
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
    hx_link_creds_put(l->creds);
    OPENSSL_clear_free(l->rbuf, l->rlen);
    pthread_mutex_destroy(&l->lock);
    free(l);
}

/* Drops n references at once (hx_link_serve's own and the slot's): one decision to free. */
static void link_put_n(struct hx_link *l, int n)
{
    bool last;

    pthread_mutex_lock(&l->lock);
    l->refs -= n;
    last = l->refs == 0;
    pthread_mutex_unlock(&l->lock);
    if (last) {
        hx_link_free(l);
    }
}

void hx_link_put(struct hx_link *l)
{
    if (l != NULL) {
        link_put_n(l, 1);
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

const struct hx_uuid *hx_link_peer(const struct hx_link *l)
{
    return &l->peer;
}

const struct hx_sig_key *hx_link_peer_key(const struct hx_link *l)
{
    return l->peer_key;
}

const struct hx_sig_key *hx_link_own_key(const struct hx_link *l)
{
    return l->creds->key;
}

uint64_t hx_link_serial(const struct hx_link *l)
{
    return l->serial;
}

hx_err hx_link_send(struct hx_link *l, uint8_t type, const uint8_t *p, size_t len)
{
    struct outbuf *b;

    if (len > hx_peer_frame_max(type)) {
        return HX_ERR_TOO_LARGE;
    }
    if ((b = malloc(sizeof(*b) + HX_LINK_HEADER + len)) == NULL) {
        return HX_ERR_NOMEM;
    }
    b->next = NULL;
    b->off = 0;
    b->len = HX_LINK_HEADER + len;
    hx_peer_frame_header_encode(b->data, type, (uint32_t)len);
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

    while ((e = hx_peer_frame_next(l->rbuf + off, l->rlen - off, HX_LINK_MAX_KEM_FRAME, &type,
                                   &payload, &plen, &used)) == HX_OK) {
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
        l->heard = true;
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

/*
 * Logs "peer link up" once the link has proved itself: at once on the accepting side (it has
 * checked the peer), else when the peer sent a frame (the PING that run_link sends first is
 * answered at once) or the link stayed up LINK_PROVEN_S. A peer that
 * refuses us closes the link before either, and the refusal is then one line (hx_link_serve's
 * caller), not an "up" and a "down" per attempt.
 */
static void announce_link(struct hx_link *l, double up_since)
{
    char id[HX_UUID_STR_LEN + 1];
    int nid = (int)SSL_get_negotiated_group(l->io.ssl);
    const char *group = SSL_group_to_name(l->io.ssl, nid);

    if (l->announced || (!l->heard && hx_monotime() - up_since < LINK_PROVEN_S)) {
        return;
    }
    l->announced = true;
    hx_uuid_format(&l->peer, id);
    hx_info("peer link up", HX_F_STR("peer", id) HX_F_STR("tls", SSL_get_version(l->io.ssl))
                                HX_F_STR("group", group != NULL ? group : "?")
                                    HX_F_STR("cipher", SSL_get_cipher_name(l->io.ssl)));
}

/* The I/O loop of an up link; returns when it goes down. The first PING goes at once: the
 * peer's PONG tells that it accepted us (announce_link). */
static void run_link(struct hx_links *ls, struct hx_link *l, double up_since)
{
    uint64_t ka_ms = (uint64_t)ls->cfg.keepalive_s * 1000;
    int64_t next_ping = hx_deadline_in_ms(0), silent = hx_deadline_in_ms(3 * ka_ms);
    size_t cap = HX_LINK_HEADER + HX_LINK_MAX_KEM_FRAME + 16384;
    bool want_write = false;

    if ((l->rbuf = malloc(cap)) == NULL) {
        return;
    }
    announce_link(l, up_since); /* the accepting side: at once */
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
        announce_link(l, up_since);
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

/*
 * Registers an identified link, runs it, unregisters it; returns how long it was up (s).
 * *proven: it proved itself (announce_link); when not, nothing was logged about it and the
 * caller logs the refusal once.
 */
double hx_link_serve(struct hx_links *ls, struct hx_link *l, bool *proven)
{
    double up_since = hx_monotime();
    struct slot *s;
    struct hx_link *old = NULL;
    char id[HX_UUID_STR_LEN + 1];

    (void)prctl(PR_SET_NAME, "hx-link", 0, 0, 0); /* for top -H, perf, the debugger */
    hx_uuid_format(&l->peer, id);
    pthread_mutex_lock(&ls->lock);
    if ((s = slot_of(ls, &l->peer)) == NULL) { /* removed by a reload during the handshake */
        pthread_mutex_unlock(&ls->lock);
        hx_info("peer removed from the trusted peers: link not kept", HX_F_STR("peer", id));
        hx_link_free(l);
        return 0;
    }
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
        pthread_mutex_lock(&ls->lock);
        s->info.up = true;
        s->info.last_up = hx_walltime();
        s->info.links_made++;
        snprintf(s->info.group, sizeof(s->info.group), "%s", group != NULL ? group : "?");
        snprintf(s->info.cipher, sizeof(s->info.cipher), "%s", SSL_get_cipher_name(l->io.ssl));
        s->info.cert_not_after = hx_link_cert_not_after(cert);
        pthread_mutex_unlock(&ls->lock);
    }
    ls->cfg.on_state(ls->cfg.arg, l, true);
    run_link(ls, l, up_since);
    *proven = l->announced;
    pthread_mutex_lock(&l->lock);
    l->up = false;
    pthread_mutex_unlock(&l->lock);
    pthread_mutex_lock(&ls->lock);
    s->info.last_down = hx_walltime();
    bool slot_ref = s->link == l;
    if (slot_ref) {
        s->link = NULL;
    }
    pthread_mutex_unlock(&ls->lock);
    if (*proven) {
        hx_info("peer link down", HX_F_STR("peer", id));
    }
    ls->cfg.on_state(ls->cfg.arg, l, false);
    link_put_n(l, slot_ref ? 2 : 1); /* ours, and the slot's if the slot still held it */
    return hx_monotime() - up_since;
}
