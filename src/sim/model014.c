/* The simulator's ETSI 014 stored keys: status, enc_keys, dec_keys (model.h). */
#include "sim/model_priv.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "proto/etsi014.h"

static bool kme_has_sae(const struct sim_kme *k, const char *sae)
{
    for (size_t i = 0; i < k->saes.n; i++) {
        if (strcmp(k->saes.ids[i], sae) == 0) {
            return true;
        }
    }
    return false;
}

static size_t kme_of_sae(const struct sim_net *net, const char *sae)
{
    for (size_t i = 0; i < net->n_kmes; i++) {
        if (kme_has_sae(&net->kmes[i], sae)) {
            return i;
        }
    }
    return SIZE_MAX;
}

/* {"message": msg, "details": [{"message": detail}]}: the same writer as hykexd's 014 server. */
static int error_body(int http, char **body, const char *msg, const char *detail)
{
    *body = hx_014_error_json(msg, detail);
    return http;
}

static int json_body(struct json_object *o, char **body)
{
    *body = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
    json_object_put(o);
    return *body != NULL ? 200 : 500;
}

/* Checks caller and the other SAE; finds the link. Returns 0 or an HTTP status. */
static int sae_pair(struct sim_net *net, size_t kme, const char *caller, const char *other,
                    size_t *other_kme, size_t *link, char **body)
{
    *body = NULL;
    if (!kme_has_sae(&net->kmes[kme], caller)) {
        return 401; /* ETSI 014: unauthorized, no body */
    }
    if ((*other_kme = kme_of_sae(net, other)) == SIZE_MAX) {
        return error_body(400, body, "SAE ID unknown", other);
    }
    if ((*link = sim_link_between(net, kme, *other_kme)) == SIZE_MAX) {
        return error_body(400, body, "no QKD link to the KME of this SAE", other);
    }
    return 0;
}

int sim_014_status(struct sim_net *net, size_t kme, const char *caller, const char *slave,
                   char **body)
{
    struct json_object *o;
    struct sim_link *l;
    size_t other, link;
    int rc;

    pthread_mutex_lock(&net->lock);
    if ((rc = sae_pair(net, kme, caller, slave, &other, &link, body)) != 0) {
        goto out;
    }
    l = &net->links[link];
    sim_refill(l, hx_monotime());
    o = json_object_new_object();
    json_object_object_add(o, "source_KME_ID", json_object_new_string(net->kmes[kme].id));
    json_object_object_add(o, "target_KME_ID", json_object_new_string(net->kmes[other].id));
    json_object_object_add(o, "master_SAE_ID", json_object_new_string(caller));
    json_object_object_add(o, "slave_SAE_ID", json_object_new_string(slave));
    json_object_object_add(o, "key_size", json_object_new_int(SIM_014_DEFAULT_KEY_BITS));
    json_object_object_add(
        o, "stored_key_count",
        json_object_new_int64((int64_t)(l->level_bits / SIM_014_DEFAULT_KEY_BITS)));
    json_object_object_add(
        o, "max_key_count",
        json_object_new_int64((int64_t)(l->capacity_bits / SIM_014_DEFAULT_KEY_BITS)));
    json_object_object_add(o, "max_key_per_request",
                           json_object_new_int64(net->kmes[kme].max_per_request));
    json_object_object_add(o, "max_key_size", json_object_new_int(SIM_014_MAX_KEY_BITS));
    json_object_object_add(o, "min_key_size", json_object_new_int(SIM_014_MIN_KEY_BITS));
    json_object_object_add(o, "max_SAE_ID_count", json_object_new_int(0));
    rc = json_body(o, body);
out:
    pthread_mutex_unlock(&net->lock);
    return rc;
}

static char *base64(const uint8_t *p, size_t n)
{
    char *out = malloc(4 * ((n + 2) / 3) + 1);

    if (out != NULL) {
        EVP_EncodeBlock((unsigned char *)out, p, (int)n);
    }
    return out;
}

/* Wipes stored key k and fills its slot from the end. */
static void remove_key(struct sim_net *net, size_t k)
{
    OPENSSL_clear_free(net->keys014[k].key, net->keys014[k].len);
    net->keys014[k] = net->keys014[--net->n_keys014];
}

/* SIM_QUIRK_LAST_BATCH_014: the pair's keys still waiting at the slave's KME are dropped. */
static void forget_pair(struct sim_net *net, size_t slave_kme, const char *master,
                        const char *slave)
{
    for (size_t k = 0; k < net->n_keys014;) {
        const struct sim_key014 *key = &net->keys014[k];
        if (key->kme == slave_kme && strcmp(key->master, master) == 0 &&
            strcmp(key->slave, slave) == 0) {
            remove_key(net, k);
        } else {
            k++;
        }
    }
}

int sim_014_enc_keys(struct sim_net *net, size_t kme, const char *caller, const char *slave,
                     long number, long size_bits, char **body)
{
    struct json_object *o = NULL, *arr;
    struct sim_link *l;
    size_t other, link;
    int rc;

    pthread_mutex_lock(&net->lock);
    if ((rc = sae_pair(net, kme, caller, slave, &other, &link, body)) != 0) {
        goto out;
    }
    l = &net->links[link];
    if (number < 1 || number > net->kmes[kme].max_per_request) {
        char why[80];
        snprintf(why, sizeof(why), "number must be 1..%" PRId64 " (max_key_per_request)",
                 net->kmes[kme].max_per_request);
        rc = error_body(400, body, "number is not in the allowed range", why);
        goto out;
    }
    if (size_bits % 8 != 0 || size_bits < SIM_014_MIN_KEY_BITS ||
        size_bits > SIM_014_MAX_KEY_BITS) {
        rc = error_body(400, body, "size is not valid",
                        "size must be a multiple of 8 from 8 to 8192 bits");
        goto out;
    }
    if (net->n_keys014 + (size_t)number > SIM_014_MAX_STORED) {
        rc = error_body(503, body, "too many keys waiting for their slave SAE", NULL);
        goto out;
    }
    if (l->paused) {
        rc = error_body(503, body, "QKD link is down", l->id);
        goto out;
    }
    if (!sim_take_bits(l, (double)number * (double)size_bits)) {
        rc = (net->kmes[kme].quirks & SIM_QUIRK_TRY_LATER_014)
                 ? error_body(400, body, "not enough key material, try again later", l->id)
                 : error_body(503, body, "insufficient key available", l->id);
        goto out;
    }
    if (net->kmes[kme].quirks & SIM_QUIRK_LAST_BATCH_014) {
        forget_pair(net, other, caller, slave);
    }
    if (net->n_keys014 + (size_t)number > net->cap_keys014) {
        size_t cap = net->cap_keys014 ? net->cap_keys014 : 64;
        struct sim_key014 *k;
        while (cap < net->n_keys014 + (size_t)number) {
            cap *= 2;
        }
        if ((k = realloc(net->keys014, cap * sizeof(*k))) == NULL) {
            rc = error_body(503, body, "out of memory", NULL);
            goto out;
        }
        net->keys014 = k;
        net->cap_keys014 = cap;
    }
    o = json_object_new_object();
    arr = json_object_new_array();
    for (long i = 0; i < number; i++) {
        struct sim_key014 *k = &net->keys014[net->n_keys014];
        char idtext[HX_UUID_STR_LEN + 1], *b64;
        struct json_object *e;

        memset(k, 0, sizeof(*k));
        k->len = (size_t)size_bits / 8;
        if (hx_uuid_generate(&k->id) != HX_OK || (k->key = malloc(k->len)) == NULL ||
            sim_link_key(l, k->id.b, 0, "014", k->key, k->len) != HX_OK) {
            free(k->key);
            json_object_put(o);
            json_object_put(arr);
            o = NULL;
            rc = error_body(503, body, "key generation failed", NULL);
            goto out;
        }
        k->kme = other;
        snprintf(k->master, sizeof(k->master), "%s", caller);
        snprintf(k->slave, sizeof(k->slave), "%s", slave);
        net->n_keys014++;
        l->keys_delivered++;
        hx_uuid_format(&k->id, idtext);
        /* The master's copy; a corrupt fault at this KME alters only what the master gets. */
        uint8_t *mine = malloc(k->len);
        memcpy(mine, k->key, k->len);
        if (net->kmes[kme].corrupt_next) {
            mine[0] ^= 0x01;
            net->kmes[kme].corrupt_next = false;
        }
        b64 = base64(mine, k->len);
        OPENSSL_clear_free(mine, k->len);
        e = json_object_new_object();
        json_object_object_add(e, "key_ID", json_object_new_string(idtext));
        json_object_object_add(e, "key", json_object_new_string(b64));
        OPENSSL_clear_free(b64, strlen(b64));
        json_object_array_add(arr, e);
    }
    json_object_object_add(o, "keys", arr);
    rc = json_body(o, body);
out:
    pthread_mutex_unlock(&net->lock);
    return rc;
}

int sim_014_dec_keys(struct sim_net *net, size_t kme, const char *caller, const char *master,
                     const struct hx_uuid *ids, size_t n_ids, char **body)
{
    struct json_object *o, *arr;
    size_t other, link, *found = NULL;
    int rc;

    pthread_mutex_lock(&net->lock);
    if ((rc = sae_pair(net, kme, caller, master, &other, &link, body)) != 0) {
        goto out;
    }
    if (n_ids == 0 || (int64_t)n_ids > net->kmes[kme].max_per_request) {
        rc = error_body(400, body, "key_IDs must list 1..max_key_per_request keys", NULL);
        goto out;
    }
    if ((found = calloc(n_ids, sizeof(*found))) == NULL) {
        rc = error_body(503, body, "out of memory", NULL);
        goto out;
    }
    /* All or nothing: check every id before handing out any. */
    for (size_t i = 0; i < n_ids; i++) {
        char idtext[HX_UUID_STR_LEN + 1];
        found[i] = SIZE_MAX;
        for (size_t k = 0; k < net->n_keys014; k++) {
            if (net->keys014[k].kme == kme && hx_uuid_equal(&net->keys014[k].id, &ids[i])) {
                found[i] = k;
            }
        }
        hx_uuid_format(&ids[i], idtext);
        if (found[i] == SIZE_MAX) {
            rc = error_body(400, body, "key ID not found", idtext);
            goto out;
        }
        for (size_t j = 0; j < i; j++) {
            if (found[j] == found[i]) {
                rc = error_body(400, body, "key ID requested twice", idtext);
                goto out;
            }
        }
        /* The caller must be the slave the key was made for, from that master. */
        if (strcmp(net->keys014[found[i]].slave, caller) != 0 ||
            strcmp(net->keys014[found[i]].master, master) != 0) {
            rc = 401;
            goto out;
        }
    }
    o = json_object_new_object();
    arr = json_object_new_array();
    for (size_t i = 0; i < n_ids; i++) {
        struct sim_key014 *k = &net->keys014[found[i]];
        char idtext[HX_UUID_STR_LEN + 1], *b64;
        struct json_object *e = json_object_new_object();
        if (net->kmes[kme].corrupt_next) {
            k->key[0] ^= 0x01;
            net->kmes[kme].corrupt_next = false;
        }
        hx_uuid_format(&k->id, idtext);
        b64 = base64(k->key, k->len);
        json_object_object_add(e, "key_ID", json_object_new_string(idtext));
        json_object_object_add(e, "key", json_object_new_string(b64));
        OPENSSL_clear_free(b64, strlen(b64));
        json_object_array_add(arr, e);
    }
    json_object_object_add(o, "keys", arr);
    /* Keys handed out are removed (ETSI 014): wipe, then fill the holes from the end. */
    for (size_t i = 0; i < n_ids; i++) {
        OPENSSL_clear_free(net->keys014[found[i]].key, net->keys014[found[i]].len);
        net->keys014[found[i]].key = NULL;
    }
    for (size_t k = 0; k < net->n_keys014;) {
        if (net->keys014[k].key == NULL) {
            remove_key(net, k);
        } else {
            k++;
        }
    }
    rc = json_body(o, body);
out:
    free(found);
    pthread_mutex_unlock(&net->lock);
    return rc;
}
