/*
 * The ETSI 014 SAE pairs (etsi014_pairs.h): a key stream per ordered pair, kept open by an
 * opener thread, the key-ID key from its position 0; the manager thread announces this node's
 * SAEs, takes in the peers', and reopens the pairs of a peer that restarted.
 */
#include "api/etsi014_pairs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/clock.h"
#include "common/log.h"
#include "daemon/config014.h"

/* How long an opener rests after a failed open before it tries again. */
#define RETRY_MS 1000

/* The pair of a local and a remote SAE (lock held, or the remote's index read under it). */
struct hxd_014_pair *hxd_014_pair_at(struct hxd_014 *e, size_t local, size_t remote,
                                     bool master_local)
{
    return e->pairs[(local * HXD_014_MAX_SAES + remote) * 2 + (master_local ? 0 : 1)];
}

/* The verdict on a call, and the pair it is about (NULL: refused, or the pair could not be
 * made: 503). */
struct hxd_014_pair *hxd_014_pair_find(struct hxd_014 *e, const char *caller, const char *other,
                                       bool caller_is_master, struct hxd_014_verdict *v)
{
    struct hxd_014_pair *p = NULL;

    pthread_mutex_lock(&e->lock);
    hxd_014_authorize(&e->c->local, &e->remotes, caller, other, v);
    if (v->http == 0) {
        p = hxd_014_pair_at(e, (size_t)v->local, (size_t)v->remote, caller_is_master);
    }
    pthread_mutex_unlock(&e->lock);
    return p;
}

/* The remote SAE of a pair (its entry never moves). */
const struct hxd_014_sae *hxd_014_pair_remote(const struct hxd_014_pair *p)
{
    return &p->e->remotes.saes[p->remote];
}

static void set_error(struct hxd_014_pair *p, const char *msg)
{
    char id[HX_UUID_STR_LEN + 1];

    pthread_mutex_lock(&p->e->lock);
    bool changed = strcmp(p->last_error, msg) != 0;
    snprintf(p->last_error, sizeof(p->last_error), "%s", msg);
    pthread_mutex_unlock(&p->e->lock);
    if (changed) { /* once per reason, not once per retry */
        hx_uuid_format(&p->ksid, id);
        hx_info("ETSI 014 pair stream not open yet",
                HX_F_STR("stream", id) HX_F_STR("reason", msg));
    }
}

static void set_ready(struct hxd_014_pair *p, uint8_t kid[HXD_014_KID_LEN], const char *what);

/* Opens the pair's stream (or joins it, or reattaches the one restored from the store) and takes
 * its position 0 for the key-ID cipher, or the key-ID key kept in the store. */
static void open_pair(struct hxd_014_pair *p)
{
    struct hxd_014 *e = p->e;
    struct hxd_svc_open_req oreq = {
        .source = p->src,
        .destination = p->dst,
        .ksid = p->ksid,
        .qos = {.key_chunk_size = e->c->key_size_bits / 8, .timeout_ms = e->c->timeout_ms},
        .identity = HXD_014_IDENTITY,
    };
    struct hxd_svc_open_res ores;
    struct hxd_svc_get_req greq = {
        .ksid = p->ksid, .has_index = true, .index = 0, .identity = HXD_014_IDENTITY};
    struct hxd_svc_get_res gres;
    struct hxd_svc_result cres;
    uint8_t kid[HXD_014_KID_LEN];
    char id[HX_UUID_STR_LEN + 1];

    hxd_svc_open(e->d, &oreq, &ores);
    if (!p->master_local && ores.r.err == HXD_SVC_IN_USE &&
        strstr(ores.r.msg, "other source and destination") != NULL) {
        /* The master's node decides the pair's method and sources, this node checks them. */
        snprintf(ores.r.msg, sizeof(ores.r.msg),
                 "the master SAE's node opened this pair with another hybridization or "
                 "key_sources than this node: api.etsi014.pairs and the defaults must agree at "
                 "both nodes");
    }
    if (ores.r.err == HXD_SVC_IN_USE) {
        /* this node's end is left from before (its peer restarted, or closed it): gone, then
         * opened again on the next round */
        hxd_svc_close(e->d, &p->ksid, HXD_014_IDENTITY, &cres);
    }
    if (ores.r.err != HXD_SVC_OK) {
        set_error(p, ores.r.msg);
        return;
    }
    /* A stream restored from the store after a restart: its key-ID key is kept beside it. */
    if (hxd_svc_014_secret_get(e->d, &p->ksid, kid, sizeof(kid))) {
        set_ready(p, kid, "ETSI 014 pair stream restored");
        return;
    }
    hxd_svc_get(e->d, &greq, &gres);
    if (gres.r.err != HXD_SVC_OK) {
        /* A stream restored after a restart has given its position 0 away already, and the
         * key-ID cipher's key with it: closed here and at the peer, and opened anew. */
        set_error(p, gres.r.msg);
        hxd_svc_close(e->d, &p->ksid, HXD_014_IDENTITY, &cres);
        return;
    }
    hx_err r = hxd_014_kid_derive(hx_secret_data(gres.key), hx_secret_len(gres.key), &p->ksid, kid);
    hx_secret_free(gres.key);
    if (r != HX_OK) {
        set_error(p, "cannot derive the key-ID key");
        hxd_svc_close(e->d, &p->ksid, HXD_014_IDENTITY, &cres);
        return;
    }
    /* Kept sealed in the store (with state_dir), so that a restart loses no key_ID; a failed
     * write only costs that (logged, counted in the store errors). */
    if ((r = hxd_svc_014_secret_put(e->d, &p->ksid, kid, sizeof(kid))) != HX_OK) {
        hx_uuid_format(&p->ksid, id);
        hx_warn_r(r,
                  "ETSI 014: cannot keep the pair's key-ID key in the store: its key_IDs will "
                  "not survive a restart",
                  HX_F_STR("stream", id));
    }
    set_ready(p, kid, "ETSI 014 pair stream open");
}

/* The pair's key-ID key is kid (wiped here): the pair serves. */
static void set_ready(struct hxd_014_pair *p, uint8_t kid[HXD_014_KID_LEN], const char *what)
{
    struct hxd_014 *e = p->e;
    char id[HX_UUID_STR_LEN + 1];

    pthread_mutex_lock(&e->lock);
    memcpy(p->kid, kid, HXD_014_KID_LEN);
    p->ready = true;
    p->last_error[0] = '\0';
    pthread_mutex_unlock(&e->lock);
    OPENSSL_cleanse(kid, HXD_014_KID_LEN);
    hx_uuid_format(&p->ksid, id);
    hx_info(what, HX_F_STR("stream", id)
                      HX_F_STR("master", p->master_local ? e->c->local.saes[p->local].id
                                                         : hxd_014_pair_remote(p)->id)
                          HX_F_STR("slave", p->master_local ? hxd_014_pair_remote(p)->id
                                                            : e->c->local.saes[p->local].id));
}

static void *opener_main(void *arg)
{
    struct hxd_014_pair *p = arg;
    struct hxd_014 *e = p->e;
    bool reset = false;

    while (!e->stopping) {
        pthread_mutex_lock(&e->lock);
        while (!e->stopping && p->ready) {
            (void)hx_cond_wait_until(&e->wake, &e->lock, hx_deadline_in_ms(RETRY_MS));
        }
        pthread_mutex_unlock(&e->lock);
        if (e->stopping) {
            break;
        }
        /* The master's side opens only once the slave's node has said it has the slave: a
         * stream announced for an SAE nobody there has would hold a place in that node's quota
         * of streams not joined yet (limits.max_unjoined_per_peer), again and again. */
        /* Once the peer is heard (its link is up): an end of this pair's stream the peer may
         * still hold from before this node's start, while this node restored none (no store),
         * is closed there, so that both open it afresh. */
        struct hx_uuid boot;
        if (!reset && hxd_svc_014_peer_boot(e->d, &hxd_014_pair_remote(p)->node, &boot)) {
            reset = true;
            (void)hxd_svc_014_reset(e->d, &hxd_014_pair_remote(p)->node, &p->ksid);
        }
        if (p->master_local && !hxd_svc_014_announced(e->d, &hxd_014_pair_remote(p)->node,
                                                      hxd_014_pair_remote(p)->id)) {
            set_error(p, "the slave SAE's node has not announced it (yet)");
        } else {
            open_pair(p);
        }
        pthread_mutex_lock(&e->lock);
        if (!p->ready && !e->stopping) {
            (void)hx_cond_wait_until(&e->wake, &e->lock, hx_deadline_in_ms(RETRY_MS));
        }
        pthread_mutex_unlock(&e->lock);
    }
    return NULL;
}

/* A request found the pair's stream closed (the peer closed it, a restart): open it again. */
void hxd_014_pair_broken(struct hxd_014_pair *p)
{
    pthread_mutex_lock(&p->e->lock);
    p->ready = false;
    OPENSSL_cleanse(p->kid, HXD_014_KID_LEN);
    pthread_cond_broadcast(&p->e->wake);
    pthread_mutex_unlock(&p->e->lock);
}

/* The pair's key-ID key, if its stream is open; else why not (why_len bytes, may be NULL). */
bool hxd_014_pair_ready(struct hxd_014_pair *p)
{
    bool ok;

    pthread_mutex_lock(&p->e->lock);
    ok = p->ready;
    pthread_mutex_unlock(&p->e->lock);
    return ok;
}

bool hxd_014_pair_kid(struct hxd_014_pair *p, uint8_t kid[HXD_014_KID_LEN], char *why,
                      size_t why_len)
{
    bool ok;

    pthread_mutex_lock(&p->e->lock);
    if ((ok = p->ready)) {
        memcpy(kid, p->kid, HXD_014_KID_LEN);
    } else if (why != NULL) {
        snprintf(why, why_len, "%s", p->last_error);
    }
    pthread_mutex_unlock(&p->e->lock);
    return ok;
}

/* A pair stream's URI at node: the pair's method and sources (api.etsi014.pairs, else the
 * defaults). Both nodes make the same URIs from the same configuration; the slave's node joins
 * only a stream whose URIs are its own (the stream service checks), so the master's node
 * decides and the slave's node checks. */
static void make_uri(char *out, size_t cap, const struct hx_uuid *node,
                     const struct hxd_014_config *c, const char *master, const char *slave)
{
    char id[HX_UUID_STR_LEN + 1];
    const char *method, *sources;

    hxd_014_pair_method(c, master, slave, &method, &sources);
    hx_uuid_format(node, id);
    snprintf(out, cap, "hybrid://%s@%s?hybridization=%s&key_sources=%s", HXD_014_IDENTITY, id,
             method, sources);
}

/* A new pair and its opener (lock held). */
static hx_err new_pair(struct hxd_014 *e, size_t l, size_t r, bool master_local)
{
    const struct hxd_014_sae *ls = &e->c->local.saes[l], *rs = &e->remotes.saes[r];
    const struct hx_uuid *me = &e->cfg->uuid;
    struct hxd_014_pair *p = calloc(1, sizeof(*p));

    if (p == NULL || (p->kid = hx_secure_alloc(HXD_014_KID_LEN)) == NULL) {
        free(p);
        return HX_ERR_NOMEM;
    }
    p->e = e;
    p->local = l;
    p->remote = r;
    p->master_local = master_local;
    if (master_local) {
        hxd_014_pair_ksid(ls->id, me, rs->id, &rs->node, &p->ksid);
        make_uri(p->src, sizeof(p->src), me, e->c, ls->id, rs->id);
        make_uri(p->dst, sizeof(p->dst), &rs->node, e->c, ls->id, rs->id);
    } else {
        hxd_014_pair_ksid(rs->id, &rs->node, ls->id, me, &p->ksid);
        make_uri(p->src, sizeof(p->src), &rs->node, e->c, rs->id, ls->id);
        make_uri(p->dst, sizeof(p->dst), me, e->c, rs->id, ls->id);
    }
    if (pthread_mutex_init(&p->take, NULL) != 0) {
        hx_secure_free(p->kid, HXD_014_KID_LEN);
        free(p);
        return HX_ERR_NOMEM;
    }
    p->take_init = true;
    /* in the table before its thread runs: stop finds it either way */
    e->pairs[(l * HXD_014_MAX_SAES + r) * 2 + (master_local ? 0 : 1)] = p;
    p->started = pthread_create(&p->thread, NULL, opener_main, p) == 0;
    return p->started ? HX_OK : HX_ERR_NOMEM;
}

/* A remote SAE and its pairs with every local SAE (lock held). */
static hx_err add_remote(struct hxd_014 *e, const struct hxd_014_sae *sae)
{
    size_t r = e->remotes.n;
    hx_err err;

    if (r == HXD_014_MAX_SAES) {
        return HX_ERR_TOO_LARGE;
    }
    e->remotes.saes[r] = *sae;
    e->remotes.n++;
    for (size_t l = 0; l < e->c->local.n; l++) {
        if ((err = new_pair(e, l, r, true)) != HX_OK || (err = new_pair(e, l, r, false)) != HX_OK) {
            return err;
        }
    }
    return HX_OK;
}

/* How often the node announces its SAEs to its peers and takes in theirs. */
#define ANNOUNCE_MS 2000

/*
 * A pair whose stream the peer closed (the peer restarted without keeping the pair: no store, or
 * its key-ID key lost) or that is gone here is opened anew; a pair whose peer restarted with its
 * store goes on with the same stream and key IDs. Manager thread, no lock held.
 */
static void check_streams(struct hxd_014 *e)
{
    size_t cap = e->c->local.n * HXD_014_MAX_SAES * 2;
    struct hxd_svc_status st;

    if (hxd_svc_status(e->d, &st) != HX_OK) {
        return;
    }
    for (size_t i = 0; i < cap; i++) {
        pthread_mutex_lock(&e->lock);
        struct hxd_014_pair *p = e->pairs[i];
        bool ready = p != NULL && p->ready;
        pthread_mutex_unlock(&e->lock);
        if (!ready) {
            continue;
        }
        bool alive = false;
        for (size_t k = 0; k < st.n_streams; k++) {
            if (hx_uuid_equal(&st.streams[k].ksid, &p->ksid)) {
                alive = st.streams[k].state != HXD_SVC_CLOSED_BY_PEER;
            }
        }
        if (!alive) {
            char id[HX_UUID_STR_LEN + 1];
            hx_uuid_format(&p->ksid, id);
            hx_info("ETSI 014: a pair's stream was closed (by the peer): it is opened anew",
                    HX_F_STR("stream", id));
            hxd_014_pair_broken(p);
        }
    }
    hxd_svc_status_wipe(&st);
}

/*
 * The manager: announces this node's SAEs to the peers (again every ANNOUNCE_MS: a link that
 * comes back hears them within that), and makes pairs for the SAEs the peers announced.
 */
static void *manager_main(void *arg)
{
    struct hxd_014 *e = arg;
    struct hxd_014_sae *learned = calloc(HXD_014_MAX_SAES, sizeof(*learned));

    while (learned != NULL && !e->stopping) {
        hxd_svc_014_announce(e->d);
        check_streams(e);
        size_t n = hxd_svc_014_learned(e->d, learned, HXD_014_MAX_SAES);
        pthread_mutex_lock(&e->lock);
        for (size_t i = 0; i < n; i++) {
            if (hxd_014_sae_index(&e->remotes, learned[i].id) >= 0) {
                continue; /* known: from the configuration, or announced before */
            }
            hx_err err = add_remote(e, &learned[i]);
            char node[HX_UUID_STR_LEN + 1];
            hx_uuid_format(&learned[i].node, node);
            if (err != HX_OK) {
                hx_warn_r(err, "ETSI 014: cannot take an SAE announced by a peer",
                          HX_F_STR("sae", learned[i].id) HX_F_STR("peer", node));
            } else {
                hx_info("ETSI 014: SAE learned from a peer",
                        HX_F_STR("sae", learned[i].id) HX_F_STR("peer", node));
            }
        }
        if (!e->stopping) {
            (void)hx_cond_wait_until(&e->wake, &e->lock, hx_deadline_in_ms(ANNOUNCE_MS));
        }
        pthread_mutex_unlock(&e->lock);
    }
    free(learned);
    return NULL;
}

hx_err hxd_014_pairs_start(struct hxd *d, struct hxd_014 **out)
{
    const struct hxd_config *cfg = hxd_svc_config(d);
    struct hxd_014 *e = calloc(1, sizeof(*e));
    hx_err err = HX_OK;

    *out = NULL;
    if (e == NULL) {
        return HX_ERR_NOMEM;
    }
    e->d = d;
    e->cfg = cfg;
    e->c = &cfg->e014;
    pthread_mutex_init(&e->lock, NULL);
    if (hx_cond_init_monotonic(&e->wake) != HX_OK ||
        (e->pairs = calloc(e->c->local.n * HXD_014_MAX_SAES * 2, sizeof(*e->pairs))) == NULL) {
        pthread_mutex_destroy(&e->lock);
        free(e);
        return HX_ERR_NOMEM;
    }
    pthread_mutex_lock(&e->lock);
    for (size_t r = 0; r < e->c->remote.n && err == HX_OK; r++) {
        err = add_remote(e, &e->c->remote.saes[r]);
    }
    pthread_mutex_unlock(&e->lock);
    if (err == HX_OK) {
        e->manager_started = pthread_create(&e->manager, NULL, manager_main, e) == 0;
    }
    if (err != HX_OK || !e->manager_started) {
        hxd_014_pairs_stop(e);
        return err != HX_OK ? err : HX_ERR_NOMEM;
    }
    *out = e;
    return HX_OK;
}

void hxd_014_pairs_stop(struct hxd_014 *e)
{
    if (e == NULL) {
        return;
    }
    pthread_mutex_lock(&e->lock);
    e->stopping = true;
    pthread_cond_broadcast(&e->wake);
    pthread_mutex_unlock(&e->lock);
    if (e->manager_started) {
        pthread_join(e->manager, NULL);
    }
    for (size_t i = 0; i < e->c->local.n * HXD_014_MAX_SAES * 2; i++) {
        struct hxd_014_pair *p = e->pairs[i];
        if (p == NULL) {
            continue;
        }
        if (p->started) {
            pthread_join(p->thread, NULL);
        }
        if (p->take_init) {
            pthread_mutex_destroy(&p->take);
        }
        hx_secure_free(p->kid, HXD_014_KID_LEN);
        free(p);
    }
    free(e->pairs);
    pthread_cond_destroy(&e->wake);
    pthread_mutex_destroy(&e->lock);
    free(e);
}
