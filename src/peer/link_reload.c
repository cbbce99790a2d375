/*
 * A running link layer as the main loop and operators see and change it (link.h "Reload"):
 * what each peer's link looks like, a link dropped, the trusted peers replaced, the
 * credentials set swapped, and the links made with a replaced set (or to a peer whose
 * certificate is about to expire) re-established one at a time, so that the streams over the
 * others keep producing. Everything here runs under ls->lock; links end on their own I/O
 * threads after their socket is shut down.
 */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "common/clock.h"
#include "common/log.h"
#include "peer/link_int.h"

/* A link re-established is waited for this long before the next one may go. */
#define REFRESH_WAIT_MS 30000
/* A link to a peer whose certificate nears its end is made again at most this often (s). */
#define RENEW_EVERY_S 3600

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
    out->stale_creds = s->link != NULL && s->link->creds != ls->creds;
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

static bool listed(const struct hx_links_config *cfg, const struct hx_uuid *u, size_t *at)
{
    for (size_t i = 0; i < cfg->n_peers; i++) {
        if (hx_uuid_equal(&cfg->peers[i], u)) {
            *at = i;
            return true;
        }
    }
    return false;
}

/* A retired slot nobody uses any more (lock held); its connector, done, is joined. */
static bool reusable(struct slot *s)
{
    return s->retired && s->link == NULL && (!s->thread_started || s->thread_done);
}

static void close_link(struct slot *s)
{
    if (s->link != NULL) {
        shutdown(s->link->io.fd, SHUT_RDWR);
    }
}

hx_err hx_links_update(struct hx_links *ls, const struct hx_links_config *cfg,
                       struct hx_link_creds *creds, bool *swapped)
{
    struct hx_link_creds *old = NULL;
    size_t need = 0, free_slots, at;
    char id[HX_UUID_STR_LEN + 1];

    *swapped = false;
    pthread_mutex_lock(&ls->lock);
    free_slots = HX_LINKS_MAX_SLOTS - ls->n;
    for (size_t i = 0; i < ls->n; i++) {
        free_slots += reusable(&ls->slots[i]);
    }
    for (size_t i = 0; i < cfg->n_peers; i++) {
        need += slot_of(ls, &cfg->peers[i]) == NULL;
    }
    if (need > free_slots) {
        pthread_mutex_unlock(&ls->lock);
        hx_link_creds_put(creds);
        return HX_ERR_TOO_LARGE;
    }
    /* Removed peers: their link closed, their connector ends at its next look. */
    for (size_t i = 0; i < ls->n; i++) {
        struct slot *s = &ls->slots[i];
        if (s->retired || listed(cfg, &s->uuid, &at)) {
            continue;
        }
        s->retired = true;
        close_link(s);
        hx_uuid_format(&s->uuid, id);
        hx_info("peer removed from the trusted peers: its link is closed", HX_F_STR("peer", id));
    }
    /* Kept peers whose address changed: dialled (or awaited) at the new one. */
    for (size_t i = 0; i < ls->n; i++) {
        struct slot *s = &ls->slots[i];
        if (s->retired || !listed(cfg, &s->uuid, &at) ||
            (strcmp(s->host, cfg->peer_hosts[at]) == 0 && s->port == cfg->peer_ports[at])) {
            continue;
        }
        snprintf(s->host, sizeof(s->host), "%s", cfg->peer_hosts[at]);
        s->port = cfg->peer_ports[at];
        close_link(s);
        hx_uuid_format(&s->uuid, id);
        hx_info("peer address changed: its link is made again",
                HX_F_STR("peer", id) HX_F_STR("host", s->host) HX_F_U64("port", s->port));
    }
    /* Added peers: a slot each (a retired one again, or a new one), dialled when ours to. */
    for (size_t i = 0; i < cfg->n_peers; i++) {
        struct slot *s = NULL;
        if (slot_of(ls, &cfg->peers[i]) != NULL) {
            continue;
        }
        for (size_t k = 0; k < ls->n && s == NULL; k++) {
            if (reusable(&ls->slots[k])) {
                s = &ls->slots[k];
                if (s->thread_started) {
                    pthread_join(s->thread, NULL); /* it has returned: no wait */
                }
            }
        }
        if (s == NULL) {
            s = &ls->slots[ls->n++];
        }
        memset(s, 0, sizeof(*s));
        s->uuid = cfg->peers[i];
        snprintf(s->host, sizeof(s->host), "%s", cfg->peer_hosts[i]);
        s->port = cfg->peer_ports[i];
        s->connector = memcmp(ls->cfg.self.b, s->uuid.b, 16) < 0;
        hx_uuid_format(&s->uuid, id);
        hx_info("peer added to the trusted peers",
                HX_F_STR("peer", id) HX_F_STR("host", s->host) HX_F_U64("port", s->port)
                    HX_F_STR("link", s->connector ? "we dial it" : "it dials us"));
        if (s->connector && !hx_link_start_connector(ls, (size_t)(s - ls->slots))) {
            hx_warn("cannot start the connector of an added peer", HX_F_STR("peer", id));
        }
    }
    if (creds != NULL && memcmp(creds->digest, ls->creds->digest, sizeof(creds->digest)) != 0) {
        old = ls->creds;
        ls->creds = creds;
        *swapped = true;
    } else {
        old = creds; /* the same files: the links keep the set they have */
    }
    ls->reloads++;
    pthread_cond_broadcast(&ls->changed); /* retired connectors stop waiting out back-off */
    pthread_mutex_unlock(&ls->lock);
    hx_link_creds_put(old);
    return HX_OK;
}

bool hx_links_refresh(struct hx_links *ls, int64_t renew_s)
{
    int64_t now = hx_walltime();
    char id[HX_UUID_STR_LEN + 1];

    pthread_mutex_lock(&ls->lock);
    if (ls->refreshing != SIZE_MAX) {
        struct slot *s = &ls->slots[ls->refreshing];
        if (!s->retired && (s->link == NULL || s->link->creds != ls->creds) &&
            !hx_deadline_passed(ls->refresh_until)) {
            pthread_mutex_unlock(&ls->lock);
            return false; /* the last one is not back yet */
        }
        ls->refreshing = SIZE_MAX;
    }
    for (size_t i = 0; i < ls->n; i++) {
        struct slot *s = &ls->slots[i];
        bool stale, expiring;
        if (s->retired || s->link == NULL) {
            continue;
        }
        stale = s->link->creds != ls->creds;
        expiring = s->info.cert_not_after != 0 && s->info.cert_not_after - now < renew_s &&
                   now - s->info.last_up > RENEW_EVERY_S;
        if (!stale && !expiring) {
            continue;
        }
        close_link(s);
        ls->refreshing = i;
        ls->refresh_until = hx_deadline_in_ms(REFRESH_WAIT_MS);
        hx_uuid_format(&s->uuid, id);
        hx_info(stale ? "peer link made again with this node's new certificate"
                      : "peer link made again: the peer's certificate on it nears its expiry",
                HX_F_STR("peer", id));
        pthread_mutex_unlock(&ls->lock);
        return true;
    }
    pthread_mutex_unlock(&ls->lock);
    return false;
}

void hx_links_creds_info(struct hx_links *ls, struct hx_link_creds_info *out)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&ls->lock);
    out->cert_not_after = ls->creds->cert_not_after;
    out->ca_not_after = ls->creds->ca_not_after;
    pthread_mutex_unlock(&ls->lock);
}
