#include "sim/model_priv.h"

#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <json-c/json.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "common/config.h"
#include "common/hex.h"
#include "common/json.h"
#include "crypto/kdf.h"

void sim_set_result(struct sim_result *r, int status, const char *fmt, ...)
{
    va_list ap;

    r->status = status;
    r->message[0] = '\0';
    if (fmt != NULL) {
        va_start(ap, fmt);
        vsnprintf(r->message, sizeof(r->message), fmt, ap);
        va_end(ap);
    }
}

/* ---- configuration -------------------------------------------------------------------- */

static hx_err parse_id_list(struct json_object *v, void *field, char *why, size_t why_len)
{
    struct sim_id_list *l = field;
    size_t n;

    if (!json_object_is_type(v, json_type_array)) {
        snprintf(why, why_len, "expected a list of ids");
        return HX_ERR_BAD_TYPE;
    }
    n = json_object_array_length(v);
    if (n > SIM_MAX_SAES) {
        snprintf(why, why_len, "at most %d ids", SIM_MAX_SAES);
        return HX_ERR_BAD_VALUE;
    }
    l->n = 0;
    for (size_t i = 0; i < n; i++) {
        struct json_object *e = json_object_array_get_idx(v, i);
        size_t len = (size_t)json_object_get_string_len(e);
        if (!json_object_is_type(e, json_type_string) || len == 0 || len >= SIM_MAX_ID) {
            snprintf(why, why_len, "element %zu: expected an id of 1..%d characters", i,
                     SIM_MAX_ID - 1);
            return HX_ERR_BAD_VALUE;
        }
        memcpy(l->ids[l->n++], json_object_get_string(e), len + 1);
    }
    return HX_OK;
}

static struct json_object *print_id_list(const void *field)
{
    const struct sim_id_list *l = field;
    struct json_object *a = json_object_new_array();

    for (size_t i = 0; a != NULL && i < l->n; i++) {
        json_object_array_add(a, json_object_new_string(l->ids[i]));
    }
    return a;
}

static const struct {
    const char *name;
    unsigned quirks;
} profiles[] = {
    {"standard", 0},
    {"strict-qos", SIM_QUIRK_STRICT_QOS},
    {"zero-keys", SIM_QUIRK_ZERO_KEYS},
    {"own-ids", SIM_QUIRK_OWN_IDS},
    {"try-later-014", SIM_QUIRK_TRY_LATER_014},
    {"last-batch-014", SIM_QUIRK_LAST_BATCH_014},
    {"opaque-ids", SIM_QUIRK_OPAQUE_IDS},
    {"qubip", SIM_QUIRK_STRICT_QOS | SIM_QUIRK_ZERO_KEYS},
};

static hx_err profile_one(struct json_object *e, unsigned *quirks, char *why, size_t why_len)
{
    const char *name = json_object_get_string(e);

    if (json_object_is_type(e, json_type_string)) {
        for (size_t i = 0; i < sizeof(profiles) / sizeof(profiles[0]); i++) {
            if (strcmp(name, profiles[i].name) == 0) {
                *quirks |= profiles[i].quirks;
                return HX_OK;
            }
        }
    }
    snprintf(why, why_len,
             "expected standard, strict-qos, zero-keys, own-ids, try-later-014, last-batch-014, "
             "opaque-ids or qubip");
    return HX_ERR_BAD_VALUE;
}

/* "profile": one name or a list of names; the KME has the union of their quirks. */
static hx_err parse_profile(struct json_object *v, void *field, char *why, size_t why_len)
{
    unsigned *quirks = field;
    hx_err e;

    *quirks = 0;
    if (!json_object_is_type(v, json_type_array)) {
        return profile_one(v, quirks, why, why_len);
    }
    for (size_t i = 0; i < json_object_array_length(v); i++) {
        if ((e = profile_one(json_object_array_get_idx(v, i), quirks, why, why_len)) != HX_OK) {
            return e;
        }
    }
    return HX_OK;
}

static struct json_object *print_profile(const void *field)
{
    unsigned quirks = *(const unsigned *)field;
    struct json_object *a = json_object_new_array();

    for (size_t i = 1; a != NULL && i < sizeof(profiles) / sizeof(profiles[0]); i++) {
        if ((profiles[i].quirks & (profiles[i].quirks - 1)) == 0 && (quirks & profiles[i].quirks)) {
            json_object_array_add(a, json_object_new_string(profiles[i].name));
        }
    }
    return a;
}

void sim_profile_format(unsigned quirks, char *out, size_t cap)
{
    size_t n = 0;

    out[0] = '\0';
    for (size_t i = 1; i < sizeof(profiles) / sizeof(profiles[0]); i++) {
        unsigned q = profiles[i].quirks;
        if ((q & (q - 1)) == 0 && (quirks & q) && n < cap) {
            int w = snprintf(out + n, cap - n, "%s%s", n ? "," : "", profiles[i].name);
            n += w > 0 ? (size_t)w : 0;
        }
    }
}

static const char *const framings[] = {"1.0.1", "2.1.1", NULL};

static const struct hx_cfg_opt kme_table[] = {
    HX_CFG_OPT_STR("id", struct sim_kme, id, 1, NULL, HX_CFG_REQUIRED, "the KME's id"),
    HX_CFG_OPT_UUID("node", struct sim_kme, node, NULL, HX_CFG_REQUIRED,
                    "UUID of the node this KME serves"),
    HX_CFG_OPT_CUSTOM("saes", struct sim_kme, saes, parse_id_list, print_id_list, NULL, "[]", 0,
                      "SAE ids attached to this KME (ETSI 014)"),
    HX_CFG_OPT_CUSTOM("profile", struct sim_kme, quirks, parse_profile, print_profile, NULL,
                      "\"standard\"", 0,
                      "quirks of other KMEs to reproduce (docs/qkdsim.md): a name or a list"),
    HX_CFG_OPT_STR("etsi004_json.host", struct sim_kme, l004_json.host, 1, "\"127.0.0.1\"", 0,
                   "ETSI 004 JSON listener address"),
    HX_CFG_OPT_INT("etsi004_json.port", struct sim_kme, l004_json.port, 0, 65535, "0", 0,
                   "ETSI 004 JSON listener port (0: none)"),
    HX_CFG_OPT_BOOL("etsi004_json.reference_compat", struct sim_kme, l004_json.reference_compat,
                    "false", "behave like the reference module's QKD node"),
    HX_CFG_OPT_STR("etsi004_binary.host", struct sim_kme, l004_bin.host, 1, "\"127.0.0.1\"", 0,
                   "ETSI 004 binary listener address"),
    HX_CFG_OPT_INT("etsi004_binary.port", struct sim_kme, l004_bin.port, 0, 65535, "0", 0,
                   "ETSI 004 binary listener port (0: none)"),
    HX_CFG_OPT_ENUM("etsi004_binary.framing", struct sim_kme, l004_bin.framing, framings,
                    "\"1.0.1\"", "binary framing: 1.0.1 (QUBIP) or 2.1.1 (ETSI reference code)"),
    HX_CFG_OPT_STR("etsi004_binary.tls.cert", struct sim_kme, l004_bin.cert, 0, "\"\"", 0,
                   "server certificate (PEM); empty: plain TCP"),
    HX_CFG_OPT_STR("etsi004_binary.tls.key", struct sim_kme, l004_bin.key, 0, "\"\"", 0,
                   "server key (PEM, mode 0600)"),
    HX_CFG_OPT_STR("etsi004_binary.tls.ca", struct sim_kme, l004_bin.ca, 0, "\"\"", 0,
                   "CA for client certificates"),
    HX_CFG_OPT_STR("etsi014.host", struct sim_kme, l014.host, 1, "\"127.0.0.1\"", 0,
                   "ETSI 014 HTTPS listener address"),
    HX_CFG_OPT_INT("etsi014.port", struct sim_kme, l014.port, 0, 65535, "0", 0,
                   "ETSI 014 HTTPS port (0: none)"),
    HX_CFG_OPT_STR("etsi014.cert", struct sim_kme, l014.cert, 0, "\"\"", 0,
                   "server certificate (PEM)"),
    HX_CFG_OPT_STR("etsi014.key", struct sim_kme, l014.key, 0, "\"\"", 0, "server key (PEM)"),
    HX_CFG_OPT_STR("etsi014.ca", struct sim_kme, l014.ca, 0, "\"\"", 0,
                   "CA of the SAE client certificates"),
    HX_CFG_OPT_INT("etsi014.max_key_per_request", struct sim_kme, max_per_request, 1,
                   SIM_014_MAX_PER_REQUEST, "128", 0,
                   "keys one enc_keys or dec_keys may ask for (its status says so)"),
};

struct link_cfg {
    char id[SIM_MAX_ID];
    struct sim_id_list kmes;
    int64_t rate_bps;
    int64_t capacity_bits;
    char seed[65];
};

static const struct hx_cfg_opt link_table[] = {
    HX_CFG_OPT_STR("id", struct link_cfg, id, 0, "\"\"", 0, "link id (default: kmeA-kmeB)"),
    HX_CFG_OPT_CUSTOM("kmes", struct link_cfg, kmes, parse_id_list, print_id_list, NULL, NULL,
                      HX_CFG_REQUIRED, "the two KMEs the link joins"),
    HX_CFG_OPT_INT("rate_bps", struct link_cfg, rate_bps, 0, 1000000000000LL, "1000000", 0,
                   "key rate in bits/s (0: unbounded)"),
    HX_CFG_OPT_INT("capacity_bits", struct link_cfg, capacity_bits, 8, 1000000000000LL, "100000000",
                   0, "pool capacity in bits"),
    HX_CFG_OPT_STR("seed", struct link_cfg, seed, 0, "\"\"", 0,
                   "64 hex digits: fixed key seed for reproducible tests (default: random)"),
};

#define N_OF(t) (sizeof(t) / sizeof((t)[0]))

size_t sim_kme_find(const struct sim_net *net, const char *id)
{
    for (size_t i = 0; i < net->n_kmes; i++) {
        if (strcmp(net->kmes[i].id, id) == 0) {
            return i;
        }
    }
    return SIZE_MAX;
}

size_t sim_kme_find_by_node(const struct sim_net *net, const struct hx_uuid *node)
{
    for (size_t i = 0; i < net->n_kmes; i++) {
        if (hx_uuid_equal(&net->kmes[i].node, node)) {
            return i;
        }
    }
    return SIZE_MAX;
}

static hx_err load_kmes(struct sim_net *net, struct json_object *arr, const char *path, char *why,
                        size_t why_len)
{
    char src[600];
    hx_err e;

    if (!json_object_is_type(arr, json_type_array) || json_object_array_length(arr) == 0 ||
        json_object_array_length(arr) > SIM_MAX_KMES) {
        snprintf(why, why_len, "%s: 'kmes' must be a list of 1..%d KMEs", path, SIM_MAX_KMES);
        return HX_ERR_CONFIG;
    }
    net->n_kmes = json_object_array_length(arr);
    if ((net->kmes = calloc(net->n_kmes, sizeof(*net->kmes))) == NULL) {
        return HX_ERR_NOMEM;
    }
    for (size_t i = 0; i < net->n_kmes; i++) {
        struct sim_kme *k = &net->kmes[i];
        snprintf(src, sizeof(src), "%s: kmes[%zu]", path, i);
        if ((e = hx_cfg_defaults(kme_table, N_OF(kme_table), k, why, why_len)) != HX_OK ||
            (e = hx_cfg_apply(kme_table, N_OF(kme_table), k, json_object_array_get_idx(arr, i), src,
                              why, why_len)) != HX_OK) {
            return e;
        }
        k->l004_json.enabled = k->l004_json.port != 0;
        k->l004_bin.enabled = k->l004_bin.port != 0;
        k->l014.enabled = k->l014.port != 0;
        if (k->l014.enabled && (!k->l014.cert[0] || !k->l014.key[0] || !k->l014.ca[0])) {
            snprintf(why, why_len,
                     "%s: etsi014 needs cert, key and ca (HTTPS with client "
                     "certificates is mandatory in ETSI 014)",
                     src);
            return HX_ERR_CONFIG;
        }
        if (k->l004_bin.enabled && k->l004_bin.cert[0] &&
            (!k->l004_bin.key[0] || !k->l004_bin.ca[0])) {
            snprintf(why, why_len, "%s: etsi004_binary.tls needs cert, key and ca", src);
            return HX_ERR_CONFIG;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(net->kmes[j].id, k->id) == 0) {
                snprintf(why, why_len, "%s: KME id '%s' used twice", src, k->id);
                return HX_ERR_CONFIG;
            }
            if (hx_uuid_equal(&net->kmes[j].node, &k->node)) {
                snprintf(why, why_len, "%s: node already served by KME '%s'", src, net->kmes[j].id);
                return HX_ERR_CONFIG;
            }
        }
    }
    return HX_OK;
}

static hx_err load_links(struct sim_net *net, struct json_object *arr, const char *path, char *why,
                         size_t why_len)
{
    char src[600];
    hx_err e;

    if (!json_object_is_type(arr, json_type_array) ||
        json_object_array_length(arr) > SIM_MAX_LINKS) {
        snprintf(why, why_len, "%s: 'links' must be a list of at most %d links", path,
                 SIM_MAX_LINKS);
        return HX_ERR_CONFIG;
    }
    net->n_links = json_object_array_length(arr);
    if ((net->links = calloc(net->n_links > 0 ? net->n_links : 1, sizeof(*net->links))) == NULL) {
        return HX_ERR_NOMEM;
    }
    for (size_t i = 0; i < net->n_links; i++) {
        struct link_cfg c;
        struct sim_link *l = &net->links[i];
        size_t seed_len;

        memset(&c, 0, sizeof(c));
        snprintf(src, sizeof(src), "%s: links[%zu]", path, i);
        if ((e = hx_cfg_defaults(link_table, N_OF(link_table), &c, why, why_len)) != HX_OK ||
            (e = hx_cfg_apply(link_table, N_OF(link_table), &c, json_object_array_get_idx(arr, i),
                              src, why, why_len)) != HX_OK) {
            return e;
        }
        if (c.kmes.n != 2 || (l->a = sim_kme_find(net, c.kmes.ids[0])) == SIZE_MAX ||
            (l->b = sim_kme_find(net, c.kmes.ids[1])) == SIZE_MAX || l->a == l->b) {
            snprintf(why, why_len, "%s: key 'kmes': must name two different configured KMEs", src);
            return HX_ERR_CONFIG;
        }
        for (size_t j = 0; j < i; j++) {
            const struct sim_link *o = &net->links[j];
            if ((o->a == l->a && o->b == l->b) || (o->a == l->b && o->b == l->a)) {
                snprintf(why, why_len, "%s: a second link between %s and %s", src,
                         net->kmes[l->a].id, net->kmes[l->b].id);
                return HX_ERR_CONFIG;
            }
        }
        if (c.id[0] != '\0') {
            memcpy(l->id, c.id, sizeof(l->id));
        } else {
            snprintf(l->id, sizeof(l->id), "%.30s-%.30s", net->kmes[l->a].id, net->kmes[l->b].id);
        }
        l->rate_bps = (double)c.rate_bps;
        l->capacity_bits = (double)c.capacity_bits;
        l->level_bits = l->capacity_bits; /* a link starts with a full pool */
        l->last_refill = hx_monotime();
        if (c.seed[0] != '\0') {
            if (hx_hex_decode(c.seed, strlen(c.seed), l->seed, sizeof(l->seed), &seed_len) !=
                    HX_OK ||
                seed_len != sizeof(l->seed)) {
                snprintf(why, why_len, "%s: key 'seed': must be 64 hex digits", src);
                return HX_ERR_CONFIG;
            }
        } else if (RAND_bytes(l->seed, sizeof(l->seed)) != 1) {
            return HX_ERR_RANDOM;
        }
    }
    return HX_OK;
}

hx_err sim_net_load(struct sim_net *net, const char *path, char *why, size_t why_len)
{
    static const struct hx_json_limits lim = {
        .max_message = 1u << 20, .max_depth = 8, .max_string = 4096, .max_members = 4096};
    struct json_object *root = NULL, *kmes = NULL, *links = NULL;
    char *text = NULL, reason[256];
    size_t len;
    hx_err e;

    memset(net, 0, sizeof(*net));
    pthread_mutex_init(&net->lock, NULL);
    if ((e = hx_cond_init_monotonic(&net->changed)) != HX_OK) {
        snprintf(why, why_len, "cannot make a condition variable on the monotonic clock");
        return e;
    }
    if ((e = hx_read_file(path, 1u << 20, &text, &len)) != HX_OK) {
        snprintf(why, why_len, "%s: cannot read: %s", path, hx_strerror(e));
        return e;
    }
    if ((e = hx_json_parse_object(text, len, &lim, &root, reason, sizeof(reason))) != HX_OK) {
        snprintf(why, why_len, "%s: %s", path, reason);
        goto out;
    }
    json_object_object_foreach (root, key, val) {
        if (strcmp(key, "kmes") == 0) {
            kmes = val;
        } else if (strcmp(key, "links") == 0) {
            links = val;
        } else {
            snprintf(why, why_len, "%s: key '%s': unknown key (kmes, links)", path, key);
            e = HX_ERR_UNKNOWN_FIELD;
            goto out;
        }
    }
    if (kmes == NULL) {
        snprintf(why, why_len, "%s: key 'kmes': required key missing", path);
        e = HX_ERR_MISSING_FIELD;
        goto out;
    }
    if ((e = load_kmes(net, kmes, path, why, why_len)) != HX_OK) {
        goto out;
    }
    if (links != NULL && (e = load_links(net, links, path, why, why_len)) != HX_OK) {
        goto out;
    }
    if (links == NULL && (net->links = calloc(1, sizeof(*net->links))) == NULL) {
        e = HX_ERR_NOMEM;
        goto out;
    }
    if ((net->streams = calloc(SIM_MAX_STREAMS, sizeof(*net->streams))) == NULL) {
        e = HX_ERR_NOMEM;
        goto out;
    }
    e = HX_OK;
out:
    json_object_put(root);
    free(text);
    return e;
}

void sim_net_stop(struct sim_net *net)
{
    pthread_mutex_lock(&net->lock);
    net->stopping = true;
    pthread_cond_broadcast(&net->changed);
    pthread_mutex_unlock(&net->lock);
}

void sim_net_free(struct sim_net *net)
{
    if (net->streams != NULL) {
        for (size_t i = 0; i < SIM_MAX_STREAMS; i++) {
            free(net->streams[i].pos);
        }
    }
    for (size_t i = 0; i < net->n_keys014; i++) {
        OPENSSL_clear_free(net->keys014[i].key, net->keys014[i].len);
    }
    free(net->keys014);
    if (net->links != NULL) {
        OPENSSL_cleanse(net->links, sizeof(*net->links) * (net->n_links ? net->n_links : 1));
    }
    free(net->links);
    free(net->kmes);
    free(net->streams);
    pthread_cond_destroy(&net->changed);
    pthread_mutex_destroy(&net->lock);
    memset(net, 0, sizeof(*net));
}

/* ---- pools ---------------------------------------------------------------------------- */

void sim_refill(struct sim_link *l, double now)
{
    if (l->rate_bps <= 0) {
        l->level_bits = l->capacity_bits;
    } else if (!l->paused) {
        l->level_bits += l->rate_bps * (now - l->last_refill);
        if (l->level_bits > l->capacity_bits) {
            l->level_bits = l->capacity_bits;
        }
    }
    l->last_refill = now;
}

/* Takes bits from the pool; false when there are not that many. */
bool sim_take_bits(struct sim_link *l, double bits)
{
    sim_refill(l, hx_monotime());
    if (l->level_bits < bits) {
        return false;
    }
    if (l->rate_bps > 0) {
        l->level_bits -= bits;
    }
    return true;
}

size_t sim_link_between(const struct sim_net *net, size_t a, size_t b)
{
    for (size_t i = 0; i < net->n_links; i++) {
        const struct sim_link *l = &net->links[i];
        if ((l->a == a && l->b == b) || (l->a == b && l->b == a)) {
            return i;
        }
    }
    return SIZE_MAX;
}

/* The key at (salt, index) of a link: HKDF-SHA256(seed, salt, "hykex-qkdsim/1" || index). */
hx_err sim_link_key(const struct sim_link *l, const uint8_t salt[16], uint32_t index,
                    const char *kind, uint8_t *out, size_t len)
{
    uint8_t info[64];
    size_t n = (size_t)snprintf((char *)info, sizeof(info), "hykex-qkdsim/1 %s", kind);

    info[n++] = (uint8_t)(index >> 24);
    info[n++] = (uint8_t)(index >> 16);
    info[n++] = (uint8_t)(index >> 8);
    info[n++] = (uint8_t)index;
    return hx_kdf_derive(HX_KDF_HKDF_SHA256, l->seed, sizeof(l->seed), salt, 16, info, n, out, len);
}

/*
 * SIM_QUIRK_OPAQUE_IDS: the KME's text for a stream id, "ks-" and the 32 hex digits of the
 * model's UUID (no UUID form), and back. A text it did not give out names no stream.
 */
void sim_opaque_format(const struct hx_uuid *id, char out[SIM_OPAQUE_ID_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";

    memcpy(out, "ks-", 3);
    for (size_t i = 0; i < 16; i++) {
        out[3 + 2 * i] = hex[id->b[i] >> 4];
        out[4 + 2 * i] = hex[id->b[i] & 15];
    }
    out[35] = '\0';
}

bool sim_opaque_parse(const char *text, struct hx_uuid *id)
{
    memset(id, 0, sizeof(*id));
    if (strlen(text) != 35 || strncmp(text, "ks-", 3) != 0) {
        return false;
    }
    for (size_t i = 0; i < 32; i++) {
        char ch = text[3 + i];
        int v = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
        if (v < 0) {
            return false;
        }
        id->b[i / 2] = (uint8_t)(id->b[i / 2] | (i % 2 == 0 ? v << 4 : v));
    }
    return true;
}
