/* ETSI 014: SAE lists over the peer links (etsi014_peers.h, service.h). */
#include "daemon/etsi014_peers.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "daemon/hxd.h"
#include "daemon/service.h"

static int peer_index(const struct hxd *d, const struct hx_uuid *peer)
{
    for (size_t i = 0; i < d->cfg.trusted.n; i++) {
        if (hx_uuid_equal(&d->cfg.trusted.peers[i].uuid, peer)) {
            return (int)i;
        }
    }
    return -1;
}

void hxd_014_on_sae_list(struct hxd *d, const struct hx_uuid *peer, const uint8_t *p, size_t len)
{
    struct hx_peer_sae_list *m = malloc(sizeof(*m));
    int i = peer_index(d, peer);
    bool changed;

    if (m == NULL || i < 0) {
        free(m);
        return;
    }
    if (hx_peer_decode_sae_list(p, len, m) != HX_OK) {
        hx_warn("malformed SAE_LIST from a peer: dropped", HX_F_UUID("peer", peer));
        free(m);
        return;
    }
    pthread_mutex_lock(&d->lock);
    changed = !d->e014_learned[i].has || d->e014_learned[i].list.n != m->n ||
              !hx_uuid_equal(&d->e014_learned[i].list.boot, &m->boot) ||
              memcmp(d->e014_learned[i].list.ids, m->ids, m->n * sizeof(m->ids[0])) != 0;
    d->e014_learned[i].list = *m;
    d->e014_learned[i].has = true;
    pthread_mutex_unlock(&d->lock);
    if (changed) {
        hx_info("ETSI 014 SAEs announced by a peer",
                HX_F_UUID("peer", peer) HX_F_U64("saes", m->n));
    }
    free(m);
}

void hxd_svc_014_announce(struct hxd *d)
{
    const struct hxd_014_saes *local = &d->cfg.e014.local;
    struct hx_peer_sae_list *m = calloc(1, sizeof(*m));
    struct hx_writer w;

    if (m == NULL) {
        return;
    }
    pthread_mutex_lock(&d->lock);
    if (hx_uuid_is_nil(&d->e014_boot) && hx_uuid_generate(&d->e014_boot) != HX_OK) {
        pthread_mutex_unlock(&d->lock);
        free(m);
        return;
    }
    m->boot = d->e014_boot;
    pthread_mutex_unlock(&d->lock);
    for (size_t i = 0; i < local->n && i < HX_PEER_MAX_SAES; i++) {
        memcpy(m->ids[i], local->saes[i].id, sizeof(m->ids[i]));
        m->n++;
    }
    hx_writer_init_dynamic(&w, 3 + HX_PEER_MAX_SAES * (1 + HX_PEER_MAX_SAE_ID));
    if (hx_peer_encode_sae_list(&w, m) == HX_OK) {
        for (size_t i = 0; i < d->cfg.trusted.n; i++) {
            /* a peer whose link is down hears it at the next announcement */
            hx_ignore(hxd_send(d, &d->cfg.trusted.peers[i].uuid, HX_PEER_SAE_LIST, w.data, w.len));
        }
    }
    hx_writer_wipe(&w);
    free(m);
}

size_t hxd_svc_014_learned(struct hxd *d, struct hxd_014_sae *out, size_t cap)
{
    size_t n = 0;

    pthread_mutex_lock(&d->lock);
    for (size_t i = 0; i < d->cfg.trusted.n; i++) {
        const struct hxd_014_learned *l = &d->e014_learned[i];
        for (size_t k = 0; l->has && k < l->list.n; k++) {
            const char *id = l->list.ids[k];
            bool taken = false;
            for (size_t j = 0; j < d->cfg.e014.local.n && !taken; j++) {
                taken = strcmp(d->cfg.e014.local.saes[j].id, id) == 0;
            }
            for (size_t j = 0; j < n && !taken; j++) {
                taken = strcmp(out[j].id, id) == 0;
            }
            if (taken || n == cap) {
                continue; /* the first claim stands; a local SAE is never remote */
            }
            memset(&out[n], 0, sizeof(out[n]));
            memcpy(out[n].id, id, sizeof(out[n].id));
            out[n].node = d->cfg.trusted.peers[i].uuid;
            n++;
        }
    }
    pthread_mutex_unlock(&d->lock);
    return n;
}

bool hxd_svc_014_peer_boot(struct hxd *d, const struct hx_uuid *peer, struct hx_uuid *boot)
{
    int i = peer_index(d, peer);
    bool has = false;

    pthread_mutex_lock(&d->lock);
    if (i >= 0 && d->e014_learned[i].has) {
        *boot = d->e014_learned[i].list.boot;
        has = true;
    }
    pthread_mutex_unlock(&d->lock);
    return has;
}

bool hxd_svc_014_announced(struct hxd *d, const struct hx_uuid *peer, const char *sae)
{
    int i = peer_index(d, peer);
    bool has = false;

    pthread_mutex_lock(&d->lock);
    for (size_t k = 0; i >= 0 && d->e014_learned[i].has && k < d->e014_learned[i].list.n && !has;
         k++) {
        has = strcmp(d->e014_learned[i].list.ids[k], sae) == 0;
    }
    pthread_mutex_unlock(&d->lock);
    return has;
}
