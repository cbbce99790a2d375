/* The ETSI 014 calls on the SAE pairs' key streams (etsi014_keys.h). */
#include "api/etsi014_keys.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <openssl/crypto.h>

#include "api/etsi014_map.h"
#include "api/etsi014_pairs.h"
#include "common/log.h"
#include "daemon/service.h"

/* The smallest key size a request may ask for (bits). */
#define MIN_KEY_BITS 8

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
    struct hxd_014_pair *p;
    char me[HX_UUID_STR_LEN + 1], peer[HX_UUID_STR_LEN + 1];
    int rc;

    p = hxd_014_pair_find(e, caller, slave, true, &v);
    if ((rc = refused(&v, slave, w)) != 0) {
        return rc;
    }
    if (p == NULL) {
        return error_reply(w, 503, "this SAE pair could not be set up", slave);
    }
    hx_uuid_format(&e->cfg->uuid, me);
    hx_uuid_format(&hxd_014_pair_remote(p)->node, peer);
    if ((o = json_object_new_object()) == NULL) {
        return error_reply(w, 503, "out of memory", NULL);
    }
    json_object_object_add(o, "source_KME_ID", json_object_new_string(me));
    json_object_object_add(o, "target_KME_ID", json_object_new_string(peer));
    json_object_object_add(o, "master_SAE_ID", json_object_new_string(caller));
    json_object_object_add(o, "slave_SAE_ID", json_object_new_string(slave));
    json_object_object_add(o, "key_size", json_object_new_int((int32_t)e->c->key_size_bits));
    /* Keys a request can take now: none until the pair's key-ID key is there (the stream may
     * hold keys a moment before; enc_keys then answers 503), so an SAE that waits for a count
     * above 0 is never answered 503 after it. */
    json_object_object_add(
        o, "stored_key_count",
        json_object_new_int(hxd_014_pair_ready(p) ? (int32_t)stored_keys(e, &p->ksid) : 0));
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

static int take_keys(struct hxd_014 *e, struct hxd_014_pair *p, const uint8_t kid[HXD_014_KID_LEN],
                     uint32_t number, uint32_t bits, struct hx_writer *w);

int hxd_014_enc_keys(struct hxd_014 *e, const char *caller, const char *slave,
                     const struct hx_014_key_req *rq, struct hx_writer *w)
{
    struct hxd_014_verdict v;
    struct hxd_014_pair *p;
    uint8_t kid[HXD_014_KID_LEN];
    uint32_t number = rq->number != 0 ? rq->number : 1;
    uint32_t bits = rq->size_bits != 0 ? rq->size_bits : e->c->key_size_bits;
    char detail[120], why[200];
    int rc;

    p = hxd_014_pair_find(e, caller, slave, true, &v);
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
    if (!hxd_014_pair_kid(p, kid, why, sizeof(why))) {
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
static int take_keys(struct hxd_014 *e, struct hxd_014_pair *p, const uint8_t kid[HXD_014_KID_LEN],
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
                hxd_014_pair_broken(p);
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
        struct hxd_014_pair *o = hxd_014_pair_at(e, l, (size_t)v->remote, false);
        pthread_mutex_unlock(&e->lock);
        bool theirs = l != (size_t)v->local && o != NULL && hxd_014_pair_kid(o, kid, NULL, 0) &&
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
    struct hxd_014_pair *p;
    uint8_t kid[HXD_014_KID_LEN];
    uint64_t pos[HX_014_MAX_KEYS];
    uint32_t size[HX_014_MAX_KEYS];
    char text[HX_UUID_STR_LEN + 1], why[200];
    int rc;

    p = hxd_014_pair_find(e, caller, master, false, &v);
    if ((rc = refused(&v, master, w)) != 0) {
        return rc;
    }
    if (p == NULL) {
        return error_reply(w, 503, "this SAE pair could not be set up", master);
    }
    if (n == 0 || n > e->c->max_keys_per_request || n > HX_014_MAX_KEYS) {
        return error_reply(w, 400, "too many key IDs", "max_key_per_request");
    }
    if (!hxd_014_pair_kid(p, kid, why, sizeof(why))) {
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
                hxd_014_pair_broken(p);
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
