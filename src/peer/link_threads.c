/*
 * The link layer's life and the threads that make links: start and stop, one connector per
 * trusted peer this node dials (with its back-off), the acceptor and one handshake thread per
 * accepted connection (bounded accept slots, some reserved for the trusted peers' addresses).
 * A link made either way is handed to hx_link_serve (link.c), which runs it until it ends.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "net/sock.h"
#include "peer/link_int.h"

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
                hx_link_free(l);
            } else if (hx_link_serve(ls, l, &proven) >= LINK_PROVEN_S && proven) {
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
            /* One line per back-off step: the link itself logged nothing (hx_link_serve). */
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
        hx_link_free(l);
    } else {
        bool proven;
        l->heard = true; /* this side checked the peer: up at once (announce_link) */
        hx_link_serve(ls, l, &proven);
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
        /* A handshake thread still runs: leave it and the memory to the exiting process, but
         * join the ones that have ended (each set done as its last step), so that none ends
         * unjoined (ThreadSanitizer reports that as a leak). */
        pthread_t ended[sizeof(ls->acc) / sizeof(ls->acc[0])];
        size_t n_ended = 0;
        pthread_mutex_lock(&ls->lock);
        for (size_t i = 0; i < sizeof(ls->acc) / sizeof(ls->acc[0]); i++) {
            if (ls->acc[i].used && ls->acc[i].done) {
                ended[n_ended++] = ls->acc[i].t;
                ls->acc[i].used = false;
            }
        }
        pthread_mutex_unlock(&ls->lock);
        for (size_t i = 0; i < n_ended; i++) {
            pthread_join(ended[i], NULL);
        }
        return;
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
