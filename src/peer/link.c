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

/* A link that went down sooner than this after coming up did not prove the peer accepts us
 * (TLS 1.3: the server checks our certificate after our side's handshake has finished, so a
 * refusal arrives as the first read): the next dial waits its back-off. */
#define LINK_PROVEN_S 2.0

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
    hx_link_creds_put(l->creds);
    OPENSSL_clear_free(l->rbuf, l->rlen);
    pthread_mutex_destroy(&l->lock);
    free(l);
}

/* Drops n references at once (serve_link's own and the slot's): one decision to free. */
static void link_put_n(struct hx_link *l, int n)
{
    bool last;

    pthread_mutex_lock(&l->lock);
    l->refs -= n;
    last = l->refs == 0;
    pthread_mutex_unlock(&l->lock);
    if (last) {
        link_free(l);
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
 * refuses us closes the link before either, and the refusal is then one line (serve_link's
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
static double serve_link(struct hx_links *ls, struct hx_link *l, bool *proven)
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
        link_free(l);
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

/*
 * Waits secs, or less when the links stop or a reload changed the peers (a retired slot's
 * connector ends, a changed address is dialled at once). The waits of every connector share
 * ls->changed, which hx_links_stop and hx_links_update broadcast.
 */
static void sleep_interruptible(struct hx_links *ls, double secs)
{
    int64_t end = hx_deadline_in_s(secs);

    pthread_mutex_lock(&ls->lock);
    uint64_t gen = ls->reloads;
    while (!ls->stopping && ls->reloads == gen &&
           !hx_cond_wait_until(&ls->changed, &ls->lock, end)) {
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
    struct hx_uuid uuid;

    free(ca);
    hx_backoff_init(&bo, 0.1, ls->cfg.reconnect_max_s);
    for (;;) {
        struct hx_link *l = NULL;
        bool proven = false, refused = false, made = false;
        char why[200], host[sizeof(s->host)];
        uint16_t port;
        double wait_s;
        int fd;
        /* The slot's address under the lock: a reload may change it (or retire the slot). */
        pthread_mutex_lock(&ls->lock);
        if (ls->stopping || s->retired) {
            s->thread_done = true;
            pthread_mutex_unlock(&ls->lock);
            break;
        }
        memcpy(host, s->host, sizeof(host));
        port = s->port;
        uuid = s->uuid;
        s->info.dials++;
        pthread_mutex_unlock(&ls->lock);
        if (hx_net_dial_tcp(host, port,
                            ls->cfg.source_host != NULL ? ls->cfg.source_host : ls->cfg.listen_host,
                            hx_deadline_in_ms(HANDSHAKE_MS), &fd, why, sizeof(why)) == HX_OK &&
            hx_link_handshake(ls, fd, true, &uuid, hx_deadline_in_ms(HANDSHAKE_MS), &l) == HX_OK) {
            made = true;
            if (!hx_uuid_equal(&l->peer, &uuid)) {
                hx_warn("peer at this address presents another node's certificate",
                        HX_F_STR("host", host));
                link_free(l);
            } else if (serve_link(ls, l, &proven) >= LINK_PROVEN_S && proven) {
                hx_backoff_reset(&bo);
                continue; /* it was a good link: redial at once */
            } else {
                refused = !proven;
            }
        }
        if (!made) {
            pthread_mutex_lock(&ls->lock);
            s->info.dial_failures++;
            pthread_mutex_unlock(&ls->lock);
        }
        wait_s = hx_backoff_next(&bo);
        if (refused && !ls->stopping) {
            /* One line per back-off step: the link itself logged nothing (serve_link). */
            char id[HX_UUID_STR_LEN + 1];
            hx_uuid_format(&uuid, id);
            hx_warn(
                "peer closed the link right after the handshake: it does not accept this "
                "node (is this node in its trusted peers?)",
                HX_F_STR("peer", id) HX_F_STR("host", host)
                    HX_F_U64("retry_in_ms", (uint64_t)(wait_s * 1000)));
        }
        sleep_interruptible(ls, wait_s);
    }
    return NULL;
}

bool hx_link_start_connector(struct hx_links *ls, size_t i)
{
    struct connector_arg *ca = malloc(sizeof(*ca));

    if (ca == NULL) {
        return false;
    }
    ca->ls = ls;
    ca->slot = i;
    ls->slots[i].thread_done = false;
    if (pthread_create(&ls->slots[i].thread, NULL, connector_main, ca) != 0) {
        free(ca);
        return false;
    }
    ls->slots[i].thread_started = true;
    return true;
}

struct accepted {
    struct hx_links *ls;
    int fd;
    size_t slot;
    bool trusted; /* from a trusted peer's configured address */
};

static void *accepted_main(void *arg)
{
    struct accepted *a = arg;
    struct hx_links *ls = a->ls;
    struct hx_link *l = NULL;
    int fd = a->fd;
    size_t slot = a->slot;
    bool trusted = a->trusted;

    free(a);
    if (hx_link_handshake(ls, fd, false, NULL,
                          hx_deadline_in_ms(trusted ? HANDSHAKE_MS : UNTRUSTED_HANDSHAKE_MS),
                          &l) != HX_OK) {
        /* handshake closed fd */
    } else if (memcmp(l->peer.b, ls->cfg.self.b, 16) > 0) {
        hx_warn("peer with the larger UUID dialled in; it should wait for our connection",
                HX_NOFIELDS);
        link_free(l);
    } else {
        bool proven;
        l->heard = true; /* this side checked the peer: up at once (announce_link) */
        serve_link(ls, l, &proven);
    }
    pthread_mutex_lock(&ls->lock);
    ls->handshakes--;
    ls->acc[slot].done = true;
    pthread_cond_broadcast(&ls->changed);
    pthread_mutex_unlock(&ls->lock);
    return NULL;
}

/* Is addr a trusted peer's configured address? (Configured as a name: never; the peer then
 * competes for the unreserved slots, still PER_SOURCE at most from each address.) */
static bool trusted_addr(struct hx_links *ls, const char *addr)
{
    bool found = false;

    pthread_mutex_lock(&ls->lock);
    for (size_t i = 0; i < ls->n && !found; i++) {
        found = !ls->slots[i].retired && strcmp(ls->slots[i].host, addr) == 0;
    }
    pthread_mutex_unlock(&ls->lock);
    return found;
}

/*
 * An accept slot for a connection from addr (ls->lock held), reaping finished handshake
 * threads; SIZE_MAX when refused: ACCEPT_PER_SOURCE from that address already, or only the
 * trusted peers' reserved slots left.
 */
static size_t accept_slot(struct hx_links *ls, const char *addr, bool trusted)
{
    size_t slot = SIZE_MAX, same = 0, untrusted = 0;

    for (size_t i = 0; i < ACCEPT_SLOTS; i++) {
        if (ls->acc[i].used && ls->acc[i].done) {
            pthread_join(ls->acc[i].t, NULL); /* it has finished: no wait */
            ls->acc[i].used = false;
        }
        if (!ls->acc[i].used) {
            slot = slot == SIZE_MAX ? i : slot;
            continue;
        }
        same += strcmp(ls->acc[i].addr, addr) == 0;
        untrusted += !ls->acc[i].trusted;
    }
    if (same >= ACCEPT_PER_SOURCE || (!trusted && untrusted >= ACCEPT_SLOTS - ACCEPT_RESERVED)) {
        return SIZE_MAX;
    }
    return slot;
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
        char addr[48] = "?";
        (void)hx_net_peer_ip(fd, addr, sizeof(addr));
        bool trusted = trusted_addr(ls, addr);
        pthread_mutex_lock(&ls->lock);
        size_t slot = accept_slot(ls, addr, trusted);
        if (slot == SIZE_MAX) { /* no log line: a flood would write one per connection */
            pthread_mutex_unlock(&ls->lock);
            close(fd);
            free(a);
            continue;
        }
        a->slot = slot;
        a->trusted = trusted;
        ls->acc[slot].done = false;
        ls->acc[slot].trusted = trusted;
        snprintf(ls->acc[slot].addr, sizeof(ls->acc[slot].addr), "%s", addr);
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
    if (cfg->n_peers > HX_LINKS_MAX_SLOTS / 2) {
        free(ls);
        snprintf(why, why_len, "more than %d trusted peers", HX_LINKS_MAX_SLOTS / 2);
        return HX_ERR_TOO_LARGE;
    }
    if (ls == NULL || (ls->slots = calloc(HX_LINKS_MAX_SLOTS, sizeof(*ls->slots))) == NULL) {
        free(ls);
        return HX_ERR_NOMEM;
    }
    ls->cfg = *cfg;
    ls->cfg.peers = NULL; /* the caller's lists are read here only: the slots hold them */
    ls->cfg.peer_hosts = NULL;
    ls->cfg.peer_ports = NULL;
    ls->listen_fd = -1;
    ls->refreshing = SIZE_MAX;
    pthread_mutex_init(&ls->lock, NULL);
    if ((e = hx_cond_init_monotonic(&ls->changed)) != HX_OK) {
        pthread_mutex_destroy(&ls->lock);
        free(ls->slots);
        free(ls);
        return e;
    }
    if ((e = hx_link_creds_new(cfg, &ls->creds, why, why_len)) != HX_OK) {
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
    /* Published before any link thread exists: a frame they hand to the daemon's workers can
     * make those read it, and pthread_create orders this write before everything they do. */
    *out = ls;
    if (pthread_create(&ls->acceptor, NULL, acceptor_main, ls) != 0) {
        *out = NULL;
        hx_links_stop(ls);
        return HX_ERR_INTERNAL;
    }
    ls->acceptor_started = true;
    pthread_mutex_lock(&ls->lock); /* slot bookkeeping is under it (a reload joins) */
    for (size_t i = 0; i < ls->n; i++) {
        if (ls->slots[i].connector) {
            (void)hx_link_start_connector(ls, i);
        }
    }
    pthread_mutex_unlock(&ls->lock);
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
    hx_link_creds_put(ls->creds);
    free(ls->slots);
    pthread_cond_destroy(&ls->changed);
    pthread_mutex_destroy(&ls->lock);
    free(ls);
}
