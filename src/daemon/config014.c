/* api.etsi014: the SAE lists and the checks across options (config014.h). */
#include "daemon/config014.h"

#include <stdio.h>
#include <string.h>

#include "proto/uri.h"

static hx_err add_sae(struct hxd_014_saes *l, const char *id, size_t len, char *why, size_t why_len)
{
    if (!hx_014_sae_id_ok(id, len)) {
        snprintf(why, why_len,
                 "'%.64s' is not an SAE id (1..%d printable ASCII bytes, none of / ? # %% or "
                 "space)",
                 id, HXD_014_MAX_SAE_ID);
        return HX_ERR_BAD_VALUE;
    }
    if (l->n >= HXD_014_MAX_SAES) {
        snprintf(why, why_len, "more than %d SAEs", HXD_014_MAX_SAES);
        return HX_ERR_TOO_LARGE;
    }
    for (size_t i = 0; i < l->n; i++) {
        if (strcmp(l->saes[i].id, id) == 0) {
            snprintf(why, why_len, "SAE '%s' listed twice", id);
            return HX_ERR_BAD_VALUE;
        }
    }
    memset(&l->saes[l->n], 0, sizeof(l->saes[l->n]));
    memcpy(l->saes[l->n].id, id, len);
    l->n++;
    return HX_OK;
}

hx_err hxd_014_parse_local(struct json_object *v, void *field, char *why, size_t why_len)
{
    struct hxd_014_saes *l = field;
    hx_err e;

    l->n = 0;
    if (!json_object_is_type(v, json_type_array)) {
        snprintf(why, why_len, "expected a list of SAE ids");
        return HX_ERR_BAD_TYPE;
    }
    for (size_t i = 0; i < json_object_array_length(v); i++) {
        struct json_object *s = json_object_array_get_idx(v, i);
        if (!json_object_is_type(s, json_type_string)) {
            snprintf(why, why_len, "expected a list of SAE ids (strings)");
            return HX_ERR_BAD_TYPE;
        }
        if ((e = add_sae(l, json_object_get_string(s), (size_t)json_object_get_string_len(s), why,
                         why_len)) != HX_OK) {
            return e;
        }
    }
    return HX_OK;
}

struct json_object *hxd_014_print_local(const void *field)
{
    const struct hxd_014_saes *l = field;
    struct json_object *a = json_object_new_array();

    for (size_t i = 0; a != NULL && i < l->n; i++) {
        json_object_array_add(a, json_object_new_string(l->saes[i].id));
    }
    return a;
}

hx_err hxd_014_parse_remote(struct json_object *v, void *field, char *why, size_t why_len)
{
    struct hxd_014_saes *l = field;
    hx_err e;

    l->n = 0;
    if (!json_object_is_type(v, json_type_object)) {
        snprintf(why, why_len, "expected an object of SAE id -> peer node UUID");
        return HX_ERR_BAD_TYPE;
    }
    json_object_object_foreach (v, k, val) {
        if ((e = add_sae(l, k, strlen(k), why, why_len)) != HX_OK) {
            return e;
        }
        if (!json_object_is_type(val, json_type_string) ||
            hx_uuid_parse(json_object_get_string(val), (size_t)json_object_get_string_len(val),
                          &l->saes[l->n - 1].node) != HX_OK) {
            snprintf(why, why_len, "%.64s: expected the UUID of the peer node it is attached to",
                     k);
            return HX_ERR_BAD_UUID;
        }
    }
    return HX_OK;
}

struct json_object *hxd_014_print_remote(const void *field)
{
    const struct hxd_014_saes *l = field;
    struct json_object *o = json_object_new_object();
    char id[HX_UUID_STR_LEN + 1];

    for (size_t i = 0; o != NULL && i < l->n; i++) {
        hx_uuid_format(&l->saes[i].node, id);
        json_object_object_add(o, l->saes[i].id, json_object_new_string(id));
    }
    return o;
}

hx_err hxd_014_config_check(const struct hxd_config *cfg, const char *path, char *why,
                            size_t why_len)
{
    const struct hxd_014_config *c = &cfg->e014;
    char uri[400], reason[300], node[HX_UUID_STR_LEN + 1];
    struct hx_uri u;

    if (c->port == 0) {
        return HX_OK;
    }
    if (c->cert[0] == '\0' || c->key[0] == '\0' || c->ca[0] == '\0') {
        snprintf(why, why_len, "%s: key 'api.etsi014': port needs cert, key and ca", path);
        return HX_ERR_CONFIG;
    }
    if (c->local.n == 0) {
        snprintf(why, why_len,
                 "%s: key 'api.etsi014.local_saes': list the SAEs attached to this node", path);
        return HX_ERR_CONFIG;
    }
    if (c->key_size_bits % 8 != 0 || c->key_size_bits / 8 > cfg->max_key_chunk) {
        snprintf(why, why_len,
                 "%s: key 'api.etsi014.key_size': a multiple of 8 bits, at most "
                 "limits.max_key_chunk (%u bytes)",
                 path, cfg->max_key_chunk);
        return HX_ERR_CONFIG;
    }
    for (size_t i = 0; i < c->remote.n; i++) {
        const struct hxd_014_sae *r = &c->remote.saes[i];
        hx_uuid_format(&r->node, node);
        if (hxd_config_peer(cfg, &r->node) == NULL) {
            snprintf(why, why_len,
                     "%s: key 'api.etsi014.remote_saes': %s: node %s is not a trusted peer", path,
                     r->id, node);
            return HX_ERR_CONFIG;
        }
        for (size_t j = 0; j < c->local.n; j++) {
            if (strcmp(c->local.saes[j].id, r->id) == 0) {
                snprintf(why, why_len, "%s: key 'api.etsi014': SAE '%s' is both local and remote",
                         path, r->id);
                return HX_ERR_CONFIG;
            }
        }
    }
    /* The pairs' streams are opened with this method and these sources: parsed as the stream
     * service will parse them, so that a typo stops the start, not every request. */
    hx_uuid_format(&cfg->uuid, node);
    snprintf(uri, sizeof(uri), "hybrid://etsi014@%s?hybridization=%s&key_sources=%s", node,
             c->method, c->key_sources);
    if (hx_uri_parse(uri, &u, reason, sizeof(reason)) != HX_OK) {
        snprintf(why, why_len, "%s: key 'api.etsi014': %s", path, reason);
        return HX_ERR_CONFIG;
    }
    for (size_t i = 0; i < u.n_sources; i++) {
        if (u.sources[i] == HX_SRC_QKD && cfg->qkd_protocol == HXD_QKD_NONE) {
            snprintf(why, why_len,
                     "%s: key 'api.etsi014.key_sources': QKD, but this node has no QKD source "
                     "(qkd_address)",
                     path);
            return HX_ERR_CONFIG;
        }
    }
    return HX_OK;
}
