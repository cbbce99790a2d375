/* api.etsi014: the SAE lists and the per-pair methods (config014.h). */
#include "daemon/config014.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

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

/* One string member of a pairs entry into out (cap bytes); absent: "" when optional. */
static hx_err pair_str(struct json_object *o, const char *name, bool optional, char *out,
                       size_t cap, size_t i, char *why, size_t why_len)
{
    struct json_object *m;

    out[0] = '\0';
    if (!json_object_object_get_ex(o, name, &m)) {
        if (optional) {
            return HX_OK;
        }
        snprintf(why, why_len, "entry %zu: '%s' missing", i, name);
        return HX_ERR_BAD_VALUE;
    }
    if (!json_object_is_type(m, json_type_string) || (size_t)json_object_get_string_len(m) >= cap ||
        json_object_get_string_len(m) == 0) {
        snprintf(why, why_len, "entry %zu: '%s' must be a string of 1..%zu bytes", i, name,
                 cap - 1);
        return HX_ERR_BAD_TYPE;
    }
    memcpy(out, json_object_get_string(m), (size_t)json_object_get_string_len(m) + 1);
    return HX_OK;
}

hx_err hxd_014_parse_pairs(struct json_object *v, void *field, char *why, size_t why_len)
{
    struct hxd_014_overrides *l = field;
    hx_err e;

    l->n = 0;
    if (!json_object_is_type(v, json_type_array)) {
        snprintf(why, why_len, "expected a list of {master, slave, hybridization, key_sources}");
        return HX_ERR_BAD_TYPE;
    }
    if (json_object_array_length(v) > HXD_014_MAX_OVERRIDES) {
        snprintf(why, why_len, "more than %d pairs", HXD_014_MAX_OVERRIDES);
        return HX_ERR_TOO_LARGE;
    }
    for (size_t i = 0; i < json_object_array_length(v); i++) {
        struct json_object *o = json_object_array_get_idx(v, i);
        struct hxd_014_override *r = &l->o[l->n];
        if (!json_object_is_type(o, json_type_object)) {
            snprintf(why, why_len, "entry %zu: expected an object", i);
            return HX_ERR_BAD_TYPE;
        }
        json_object_object_foreach (o, k, val) {
            (void)val;
            if (strcmp(k, "master") != 0 && strcmp(k, "slave") != 0 &&
                strcmp(k, "hybridization") != 0 && strcmp(k, "key_sources") != 0) {
                snprintf(why, why_len, "entry %zu: unknown key '%.40s'", i, k);
                return HX_ERR_BAD_VALUE;
            }
        }
        if ((e = pair_str(o, "master", false, r->master, sizeof(r->master), i, why, why_len)) !=
                HX_OK ||
            (e = pair_str(o, "slave", false, r->slave, sizeof(r->slave), i, why, why_len)) !=
                HX_OK ||
            (e = pair_str(o, "hybridization", true, r->method, sizeof(r->method), i, why,
                          why_len)) != HX_OK ||
            (e = pair_str(o, "key_sources", true, r->key_sources, sizeof(r->key_sources), i, why,
                          why_len)) != HX_OK) {
            return e;
        }
        if (!hx_014_sae_id_ok(r->master, strlen(r->master)) ||
            !hx_014_sae_id_ok(r->slave, strlen(r->slave)) || strcmp(r->master, r->slave) == 0) {
            snprintf(why, why_len, "entry %zu: master and slave must be two SAE ids", i);
            return HX_ERR_BAD_VALUE;
        }
        if (r->method[0] == '\0' && r->key_sources[0] == '\0') {
            snprintf(why, why_len, "entry %zu: give hybridization, key_sources or both", i);
            return HX_ERR_BAD_VALUE;
        }
        for (size_t j = 0; j < l->n; j++) {
            if (strcmp(l->o[j].master, r->master) == 0 && strcmp(l->o[j].slave, r->slave) == 0) {
                snprintf(why, why_len, "entry %zu: pair %s -> %s listed twice", i, r->master,
                         r->slave);
                return HX_ERR_BAD_VALUE;
            }
        }
        l->n++;
    }
    return HX_OK;
}

struct json_object *hxd_014_print_pairs(const void *field)
{
    const struct hxd_014_overrides *l = field;
    struct json_object *a = json_object_new_array();

    for (size_t i = 0; a != NULL && i < l->n; i++) {
        struct json_object *o = json_object_new_object();
        if (o == NULL) {
            break;
        }
        json_object_object_add(o, "master", json_object_new_string(l->o[i].master));
        json_object_object_add(o, "slave", json_object_new_string(l->o[i].slave));
        if (l->o[i].method[0] != '\0') {
            json_object_object_add(o, "hybridization", json_object_new_string(l->o[i].method));
        }
        if (l->o[i].key_sources[0] != '\0') {
            json_object_object_add(o, "key_sources", json_object_new_string(l->o[i].key_sources));
        }
        json_object_array_add(a, o);
    }
    return a;
}

void hxd_014_pair_method(const struct hxd_014_config *c, const char *master, const char *slave,
                         const char **method, const char **key_sources)
{
    *method = c->method;
    *key_sources = c->key_sources;
    for (size_t i = 0; i < c->pairs.n; i++) {
        const struct hxd_014_override *o = &c->pairs.o[i];
        if (strcmp(o->master, master) == 0 && strcmp(o->slave, slave) == 0) {
            *method = o->method[0] != '\0' ? o->method : c->method;
            *key_sources = o->key_sources[0] != '\0' ? o->key_sources : c->key_sources;
            return;
        }
    }
}
