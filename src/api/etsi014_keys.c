/* The ETSI 014 calls on the SAE pairs' key streams (etsi014_keys.h). */
#include "api/etsi014_keys.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <openssl/crypto.h>

#include "api/etsi014_map.h"
#include "common/clock.h"
#include "common/log.h"
#include "daemon/service.h"

/* How long an opener rests after a failed open before it tries again. */
#define RETRY_MS 1000
/* The smallest key size a request may ask for (bits). */
#define MIN_KEY_BITS 8

struct pair {
    struct hxd_014 *e;
    size_t local, remote;
    bool master_local; /* the local SAE is the master: this node initiates the stream */
    struct hx_uuid ksid;
    char src[HXD_SVC_MAX_URI], dst[HXD_SVC_MAX_URI];
    /* under e->lock */
    bool ready;
    uint8_t *kid; /* HXD_014_KID_LEN bytes, secure heap */
    char last_error[200];
    /* enc_keys takes the stream's next positions: one request at a time per pair */
    pthread_mutex_t take;
    bool take_init;
    pthread_t thread;
    bool started;
};

struct hxd_014 {
    struct hxd *d;
    const struct hxd_config *cfg;
    const struct hxd_014_config *c;
    pthread_mutex_t lock;
    pthread_cond_t wake; /* monotonic: a pair broke, or stop */
    atomic_bool stopping;
    /* under lock: the remote SAEs (api.etsi014.remote_saes, then those the peers announced;
     * only ever appended), and their pairs by (local, remote, direction), made with them */
    struct hxd_014_saes remotes;
    struct pair **pairs;
    pthread_t manager;
    bool manager_started;
};

/* The pair of a local and a remote SAE (lock held, or the remote's index read under it). */
static struct pair *pair_of(struct hxd_014 *e, size_t local, size_t remote, bool master_local)
{
    return e->pairs[(local * HXD_014_MAX_SAES + remote) * 2 + (master_local ? 0 : 1)];
}

/* The verdict on a call, and the pair it is about (NULL: refused, or the pair could not be
 * made: 503). */
static struct pair *authorize(struct hxd_014 *e, const char *caller, const char *other,
                              bool caller_is_master, struct hxd_014_verdict *v)
{
    struct pair *p = NULL;

    pthread_mutex_lock(&e->lock);
    hxd_014_authorize(&e->c->local, &e->remotes, caller, other, v);
    if (v->http == 0) {
        p = pair_of(e, (size_t)v->local, (size_t)v->remote, caller_is_master);
    }
    pthread_mutex_unlock(&e->lock);
    return p;
}

/* The remote SAE of a pair (its entry never moves). */
static const struct hxd_014_sae *remote_of(const struct pair *p)
{
    return &p->e->remotes.saes[p->remote];
}

static void set_error(struct pair *p, const char *msg)
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

/* Opens the pair's stream (or joins it) and takes its position 0 for the key-ID cipher. */
static void open_pair(struct pair *p)
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
    if (ores.r.err == HXD_SVC_IN_USE) {
        /* this node's end is left from before (its peer restarted, or closed it): gone, then
         * opened again on the next round */
        hxd_svc_close(e->d, &p->ksid, HXD_014_IDENTITY, &cres);
    }
    if (ores.r.err != HXD_SVC_OK) {
        set_error(p, ores.r.msg);
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
    pthread_mutex_lock(&e->lock);
    memcpy(p->kid, kid, HXD_014_KID_LEN);
    p->ready = true;
    p->last_error[0] = '\0';
    pthread_mutex_unlock(&e->lock);
    OPENSSL_cleanse(kid, sizeof(kid));
    hx_uuid_format(&p->ksid, id);
    hx_info(
        "ETSI 014 pair stream open",
        HX_F_STR("stream", id) HX_F_STR(
            "master", p->master_local ? e->c->local.saes[p->local].id : remote_of(p)->id)
            HX_F_STR("slave", p->master_local ? remote_of(p)->id : e->c->local.saes[p->local].id));
}

static void *opener_main(void *arg)
{
    struct pair *p = arg;
    struct hxd_014 *e = p->e;

    while (!e->stopping) {
        pthread_mutex_lock(&e->lock);
        while (!e->stopping && p->ready) {
            (void)hx_cond_wait_until(&e->wake, &e->lock, hx_deadline_in_ms(RETRY_MS));
        }
        pthread_mutex_unlock(&e->lock);
        if (e->stopping) {
            break;
        }
        open_pair(p);
        pthread_mutex_lock(&e->lock);
        if (!p->ready && !e->stopping) {
            (void)hx_cond_wait_until(&e->wake, &e->lock, hx_deadline_in_ms(RETRY_MS));
        }
        pthread_mutex_unlock(&e->lock);
    }
    return NULL;
}

/* A request found the pair's stream closed (the peer closed it, a restart): open it again. */
static void pair_broken(struct pair *p)
{
    pthread_mutex_lock(&p->e->lock);
    p->ready = false;
    OPENSSL_cleanse(p->kid, HXD_014_KID_LEN);
    pthread_cond_broadcast(&p->e->wake);
    pthread_mutex_unlock(&p->e->lock);
}

/* The pair's key-ID key, if its stream is open; else why not (why_len bytes, may be NULL). */
static bool pair_kid(struct pair *p, uint8_t kid[HXD_014_KID_LEN], char *why, size_t why_len)
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

static void make_uri(char *out, size_t cap, const struct hx_uuid *node,
                     const struct hxd_014_config *c)
{
    char id[HX_UUID_STR_LEN + 1];

    hx_uuid_format(node, id);
    snprintf(out, cap, "hybrid://%s@%s?hybridization=%s&key_sources=%s", HXD_014_IDENTITY, id,
             c->method, c->key_sources);
}

/* A new pair and its opener (lock held). */
static hx_err new_pair(struct hxd_014 *e, size_t l, size_t r, bool master_local)
{
    const struct hxd_014_sae *ls = &e->c->local.saes[l], *rs = &e->remotes.saes[r];
    const struct hx_uuid *me = &e->cfg->uuid;
    struct pair *p = calloc(1, sizeof(*p));

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
        make_uri(p->src, sizeof(p->src), me, e->c);
        make_uri(p->dst, sizeof(p->dst), &rs->node, e->c);
    } else {
        hxd_014_pair_ksid(rs->id, &rs->node, ls->id, me, &p->ksid);
        make_uri(p->src, sizeof(p->src), &rs->node, e->c);
        make_uri(p->dst, sizeof(p->dst), me, e->c);
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

/* The peers' boot ids as the manager last saw them. */
struct boots {
    struct hx_uuid node[HXD_MAX_PEERS], boot[HXD_MAX_PEERS];
    size_t n;
};

/*
 * A peer that restarted lost the key-ID keys of its pairs with this node (and, without a
 * store, their streams): this node's ends of them are closed, and the openers open them anew
 * with the peer. Manager thread, no lock held.
 */
static void peer_restarted(struct hxd_014 *e, const struct hx_uuid *node)
{
    size_t cap = e->c->local.n * HXD_014_MAX_SAES * 2;

    for (size_t i = 0; i < cap; i++) {
        struct hxd_svc_result res;
        pthread_mutex_lock(&e->lock);
        struct pair *p = e->pairs[i];
        bool hit = p != NULL && hx_uuid_equal(&remote_of(p)->node, node);
        pthread_mutex_unlock(&e->lock);
        if (hit) {
            hxd_svc_close(e->d, &p->ksid, HXD_014_IDENTITY, &res);
            pair_broken(p);
        }
    }
}

static void check_boots(struct hxd_014 *e, struct boots *b)
{
    for (size_t i = 0; i < e->cfg->trusted.n && i < HXD_MAX_PEERS; i++) {
        const struct hx_uuid *node = &e->cfg->trusted.peers[i].uuid;
        struct hx_uuid boot;
        size_t k;
        if (!hxd_svc_014_peer_boot(e->d, node, &boot)) {
            continue;
        }
        for (k = 0; k < b->n && !hx_uuid_equal(&b->node[k], node); k++) {
        }
        if (k == b->n) {
            b->node[b->n] = *node;
            b->boot[b->n++] = boot;
            continue;
        }
        if (!hx_uuid_equal(&b->boot[k], &boot)) {
            b->boot[k] = boot;
            hx_info("ETSI 014: a peer restarted: its SAE pairs are opened anew",
                    HX_F_UUID("peer", node));
            peer_restarted(e, node);
        }
    }
}

/*
 * The manager: announces this node's SAEs to the peers (again every ANNOUNCE_MS: a link that
 * comes back hears them within that), and makes pairs for the SAEs the peers announced.
 */
static void *manager_main(void *arg)
{
    struct hxd_014 *e = arg;
    struct hxd_014_sae *learned = calloc(HXD_014_MAX_SAES, sizeof(*learned));
    struct boots *boots = calloc(1, sizeof(*boots));

    while (learned != NULL && boots != NULL && !e->stopping) {
        hxd_svc_014_announce(e->d);
        check_boots(e, boots);
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
    free(boots);
    return NULL;
}

hx_err hxd_014_keys_start(struct hxd *d, struct hxd_014 **out)
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
        hxd_014_keys_stop(e);
        return err != HX_OK ? err : HX_ERR_NOMEM;
    }
    *out = e;
    return HX_OK;
}

void hxd_014_keys_stop(struct hxd_014 *e)
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
        struct pair *p = e->pairs[i];
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

/* ---- replies ---- */

static int error_reply(struct hx_writer *w, int http, const char *msg, const char *detail)
{
    hx_writer_reset(w);
    if (hx_014_write_error(w, msg, detail != NULL ? detail : "") != HX_OK) {
        hx_writer_reset(w);
        return 503;
    }
    return http;
}

int hxd_014_bad_request(const struct hx_014_problem *p, struct hx_writer *w)
{
    return error_reply(w, 400, p->msg, p->detail);
}

/* The verdict as a reply; 0 when the call may go on. */
static int refused(const struct hxd_014_verdict *v, const char *other, struct hx_writer *w)
{
    if (v->http == 401) {
        hx_writer_reset(w);
        return 401;
    }
    return v->http != 0 ? error_reply(w, v->http, v->msg, other) : 0;
}

/* Keys ready for a pair at this node (0 when its stream is not open). */
static uint64_t stored_keys(struct hxd_014 *e, const struct hx_uuid *ksid)
{
    struct hxd_svc_status st;
    uint64_t n = 0;

    if (hxd_svc_status(e->d, &st) != HX_OK) {
        return 0;
    }
    for (size_t i = 0; i < st.n_streams; i++) {
        if (hx_uuid_equal(&st.streams[i].ksid, ksid)) {
            n = st.streams[i].ready;
        }
    }
    hxd_svc_status_wipe(&st);
    return n < e->cfg->buffer_depth ? n : e->cfg->buffer_depth;
}

int hxd_014_status(struct hxd_014 *e, const char *caller, const char *slave, struct hx_writer *w)
{
    struct hxd_014_verdict v;
    struct json_object *o;
    struct pair *p;
    char me[HX_UUID_STR_LEN + 1], peer[HX_UUID_STR_LEN + 1];
    int rc;

    p = authorize(e, caller, slave, true, &v);
    if ((rc = refused(&v, slave, w)) != 0) {
        return rc;
    }
    if (p == NULL) {
        return error_reply(w, 503, "this SAE pair could not be set up", slave);
    }
    hx_uuid_format(&e->cfg->uuid, me);
    hx_uuid_format(&remote_of(p)->node, peer);
    if ((o = json_object_new_object()) == NULL) {
        return error_reply(w, 503, "out of memory", NULL);
    }
    json_object_object_add(o, "source_KME_ID", json_object_new_string(me));
    json_object_object_add(o, "target_KME_ID", json_object_new_string(peer));
    json_object_object_add(o, "master_SAE_ID", json_object_new_string(caller));
    json_object_object_add(o, "slave_SAE_ID", json_object_new_string(slave));
    json_object_object_add(o, "key_size", json_object_new_int((int32_t)e->c->key_size_bits));
    json_object_object_add(o, "stored_key_count",
                           json_object_new_int((int32_t)stored_keys(e, &p->ksid)));
    json_object_object_add(o, "max_key_count", json_object_new_int((int32_t)e->cfg->buffer_depth));
    json_object_object_add(o, "max_key_per_request",
                           json_object_new_int((int32_t)e->c->max_keys_per_request));
    json_object_object_add(o, "max_key_size", json_object_new_int((int32_t)e->c->key_size_bits));
    json_object_object_add(o, "min_key_size", json_object_new_int(MIN_KEY_BITS));
    json_object_object_add(o, "max_SAE_ID_count", json_object_new_int(0));
    hx_writer_reset(w);
    const char *text =
        json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    rc = hx_write_bytes(w, text, strlen(text)) == HX_OK ? 200 : 503;
    json_object_put(o);
    return rc;
}

static int take_keys(struct hxd_014 *e, struct pair *p, const uint8_t kid[HXD_014_KID_LEN],
                     uint32_t number, uint32_t bits, struct hx_writer *w);

int hxd_014_enc_keys(struct hxd_014 *e, const char *caller, const char *slave,
                     const struct hx_014_key_req *rq, struct hx_writer *w)
{
    struct hxd_014_verdict v;
    struct pair *p;
    uint8_t kid[HXD_014_KID_LEN];
    uint32_t number = rq->number != 0 ? rq->number : 1;
    uint32_t bits = rq->size_bits != 0 ? rq->size_bits : e->c->key_size_bits;
    char detail[120], why[200];
    int rc;

    p = authorize(e, caller, slave, true, &v);
    if ((rc = refused(&v, slave, w)) != 0) {
        return rc;
    }
    if (p == NULL) {
        return error_reply(w, 503, "this SAE pair could not be set up", slave);
    }
    if (rq->extension_mandatory) {
        return error_reply(w, 400, "extension_mandatory: no extension is supported",
                           "extension_mandatory");
    }
    if (rq->n_additional_slaves > 0) {
        return error_reply(w, 400,
                           "additional_slave_SAE_IDs is not supported (max_SAE_ID_count is 0)",
                           "additional_slave_SAE_IDs");
    }
    if (number > e->c->max_keys_per_request) {
        snprintf(detail, sizeof(detail), "number must be 1..%u (max_key_per_request)",
                 e->c->max_keys_per_request);
        return error_reply(w, 400, "number is not in the allowed range", detail);
    }
    if (bits % 8 != 0 || bits < MIN_KEY_BITS || bits > e->c->key_size_bits) {
        snprintf(detail, sizeof(detail), "size must be a multiple of 8 from %d to %u bits",
                 MIN_KEY_BITS, e->c->key_size_bits);
        return error_reply(w, 400, "size is not valid", detail);
    }
    if (!pair_kid(p, kid, why, sizeof(why))) {
        return error_reply(w, 503, "the key stream to the slave SAE's node is not open yet", why);
    }
    hx_writer_reset(w);
    if (hx_014_write_keys_begin(w) != HX_OK) {
        rc = error_reply(w, 503, "out of memory", NULL);
        goto out;
    }
    pthread_mutex_lock(&p->take);
    rc = take_keys(e, p, kid, number, bits, w);
    pthread_mutex_unlock(&p->take);
out:
    OPENSSL_cleanse(kid, sizeof(kid));
    return rc;
}

/* enc_keys' keys: the pair's next positions, each with its key_ID (p->take held). */
static int take_keys(struct hxd_014 *e, struct pair *p, const uint8_t kid[HXD_014_KID_LEN],
                     uint32_t number, uint32_t bits, struct hx_writer *w)
{
    for (uint32_t i = 0; i < number; i++) {
        struct hxd_svc_get_req g = {.ksid = p->ksid, .identity = HXD_014_IDENTITY};
        struct hxd_svc_get_res res;
        struct hx_uuid id;
        hxd_svc_get(e->d, &g, &res);
        if (res.r.err != HXD_SVC_OK) {
            /* The keys taken before this one are lost with the reply: their positions stay
             * unclaimed at the slave's node (docs/etsi014.md, limits). */
            if (res.r.err == HXD_SVC_NOT_OPEN || res.r.err == HXD_SVC_PEER_CLOSED) {
                pair_broken(p);
            }
            return error_reply(w, 503, "no key available within the wait", res.r.msg);
        }
        hx_err r = hxd_014_key_id_make(kid, res.index, bits / 8, &id);
        if (r == HX_OK) {
            r = hx_014_write_keys_add(w, i == 0, &id, hx_secret_data(res.key), bits / 8);
        }
        hx_secret_free(res.key);
        if (r != HX_OK) {
            return error_reply(w, 503, "cannot write the key container", hx_strerror(r));
        }
    }
    return hx_014_write_keys_end(w) == HX_OK ? 200 : error_reply(w, 503, "out of memory", NULL);
}

/*
 * A key_ID that does not open under the caller's pair: made for another local slave of the
 * same master (401: not this caller's key), or for nobody (400).
 */
static int unknown_id(struct hxd_014 *e, const struct hxd_014_verdict *v, const struct hx_uuid *id,
                      struct hx_writer *w)
{
    char text[HX_UUID_STR_LEN + 1];
    uint8_t kid[HXD_014_KID_LEN];
    uint64_t pos;
    uint32_t size;

    for (size_t l = 0; l < e->c->local.n; l++) {
        pthread_mutex_lock(&e->lock);
        struct pair *o = pair_of(e, l, (size_t)v->remote, false);
        pthread_mutex_unlock(&e->lock);
        bool theirs = l != (size_t)v->local && o != NULL && pair_kid(o, kid, NULL, 0) &&
                      hxd_014_key_id_open(kid, id, &pos, &size) == HX_OK;
        OPENSSL_cleanse(kid, sizeof(kid));
        if (theirs) {
            hx_writer_reset(w);
            return 401;
        }
    }
    hx_uuid_format(id, text);
    return error_reply(w, 400, "key_ID unknown: not made for this SAE by this master SAE", text);
}

int hxd_014_dec_keys(struct hxd_014 *e, const char *caller, const char *master,
                     const struct hx_uuid *ids, size_t n, struct hx_writer *w)
{
    struct hxd_014_verdict v;
    struct pair *p;
    uint8_t kid[HXD_014_KID_LEN];
    uint64_t pos[HX_014_MAX_KEYS];
    uint32_t size[HX_014_MAX_KEYS];
    char text[HX_UUID_STR_LEN + 1], why[200];
    int rc;

    p = authorize(e, caller, master, false, &v);
    if ((rc = refused(&v, master, w)) != 0) {
        return rc;
    }
    if (p == NULL) {
        return error_reply(w, 503, "this SAE pair could not be set up", master);
    }
    if (n == 0 || n > e->c->max_keys_per_request || n > HX_014_MAX_KEYS) {
        return error_reply(w, 400, "too many key IDs", "max_key_per_request");
    }
    if (!pair_kid(p, kid, why, sizeof(why))) {
        return error_reply(w, 503, "the key stream from the master SAE's node is not open yet",
                           why);
    }
    /* Every id checked before any key moves. */
    for (size_t i = 0; i < n; i++) {
        if (hxd_014_key_id_open(kid, &ids[i], &pos[i], &size[i]) != HX_OK) {
            rc = unknown_id(e, &v, &ids[i], w);
            goto out;
        }
        for (size_t j = 0; j < i; j++) {
            if (pos[j] == pos[i]) {
                hx_uuid_format(&ids[i], text);
                rc = error_reply(w, 400, "key_ID requested twice", text);
                goto out;
            }
        }
    }
    hx_writer_reset(w);
    if (hx_014_write_keys_begin(w) != HX_OK) {
        rc = error_reply(w, 503, "out of memory", NULL);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        struct hxd_svc_get_req g = {
            .ksid = p->ksid, .has_index = true, .index = pos[i], .identity = HXD_014_IDENTITY};
        struct hxd_svc_get_res res;
        hxd_svc_get(e->d, &g, &res);
        if (res.r.err != HXD_SVC_OK) {
            hx_uuid_format(&ids[i], text);
            if (res.r.err == HXD_SVC_NOT_OPEN || res.r.err == HXD_SVC_PEER_CLOSED) {
                pair_broken(p);
            }
            /* The service says "already delivered" for a position handed out before. */
            rc = res.r.err == HXD_SVC_NO_KEY && strstr(res.r.msg, "already delivered") != NULL
                     ? error_reply(w, 400, "key_ID already delivered: a key is handed out once",
                                   text)
                     : error_reply(w, 503, "no key available within the wait", res.r.msg);
            goto out;
        }
        hx_err r = size[i] <= hx_secret_len(res.key)
                       ? hx_014_write_keys_add(w, i == 0, &ids[i], hx_secret_data(res.key), size[i])
                       : HX_ERR_BAD_VALUE;
        hx_secret_free(res.key);
        if (r != HX_OK) {
            rc = error_reply(w, 503, "cannot write the key container", hx_strerror(r));
            goto out;
        }
    }
    rc = hx_014_write_keys_end(w) == HX_OK ? 200 : error_reply(w, 503, "out of memory", NULL);
out:
    OPENSSL_cleanse(kid, sizeof(kid));
    return rc;
}
