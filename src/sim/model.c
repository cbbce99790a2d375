#include "sim/model.h"

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

static void set_result(struct sim_result *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_result(struct sim_result *r, int status, const char *fmt, ...)
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

static const char *const framings[] = {"1.0.1", "2.1.1", NULL};

static const struct hx_cfg_opt kme_table[] = {
    HX_CFG_OPT_STR("id", struct sim_kme, id, 1, NULL, HX_CFG_REQUIRED, "the KME's id"),
    HX_CFG_OPT_UUID("node", struct sim_kme, node, NULL, HX_CFG_REQUIRED,
                    "UUID of the node this KME serves"),
    HX_CFG_OPT_CUSTOM("saes", struct sim_kme, saes, parse_id_list, print_id_list, NULL, "[]", 0,
                      "SAE ids attached to this KME (ETSI 014)"),
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

static size_t find_kme(const struct sim_net *net, const char *id)
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
        if (c.kmes.n != 2 || (l->a = find_kme(net, c.kmes.ids[0])) == SIZE_MAX ||
            (l->b = find_kme(net, c.kmes.ids[1])) == SIZE_MAX || l->a == l->b) {
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
    {
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&net->changed, &ca);
        pthread_condattr_destroy(&ca);
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

static void refill(struct sim_link *l, double now)
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
static bool take_bits(struct sim_link *l, double bits)
{
    refill(l, hx_monotime());
    if (l->level_bits < bits) {
        return false;
    }
    if (l->rate_bps > 0) {
        l->level_bits -= bits;
    }
    return true;
}

static size_t link_between(const struct sim_net *net, size_t a, size_t b)
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
static hx_err link_key(const struct sim_link *l, const uint8_t salt[16], uint32_t index,
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

/* ---- ETSI 004 ------------------------------------------------------------------------- */

/* "qkd://app@<uuid>" (also hybrid://...): the node UUID after '@', up to '?' or the end. */
static bool uri_node(const char *uri, struct hx_uuid *node)
{
    const char *at = strrchr(uri, '@'), *end;

    if (strncmp(uri, "qkd://", 6) != 0 && strncmp(uri, "hybrid://", 9) != 0) {
        return false;
    }
    if (at == NULL) {
        return false;
    }
    at++;
    end = strchr(at, '?');
    return hx_uuid_parse(at, end != NULL ? (size_t)(end - at) : strlen(at), node) == HX_OK;
}

/* A URI with a scheme but no node UUID ("client://localhost", as QUBIP's client sends). */
static bool uri_plain(const char *uri)
{
    const char *sep = strstr(uri, "://");

    return sep != NULL && sep != uri && strchr(uri, '@') == NULL;
}

/* The one link of a KME that has exactly one, or SIZE_MAX. */
static size_t only_link(const struct sim_net *net, size_t kme)
{
    size_t found = SIZE_MAX;

    for (size_t i = 0; i < net->n_links; i++) {
        if (net->links[i].a == kme || net->links[i].b == kme) {
            if (found != SIZE_MAX) {
                return SIZE_MAX;
            }
            found = i;
        }
    }
    return found;
}

/*
 * The KMEs of a stream's source and destination (lock held). A URI names its node by UUID;
 * where the calling KME has exactly one link, a URI without one ("client://localhost") stands
 * for the end of that link it does not otherwise name: the caller's own end for the source,
 * the far end for the destination, unless the other URI names that end already.
 */
static bool resolve_ends(const struct sim_net *net, size_t kme, const char *src, const char *dst,
                         size_t *src_kme, size_t *dst_kme, struct sim_result *r)
{
    struct hx_uuid node;
    bool have_src = uri_node(src, &node);
    size_t link, far;

    *src_kme = have_src ? sim_kme_find_by_node(net, &node) : SIZE_MAX;
    bool have_dst = uri_node(dst, &node);
    *dst_kme = have_dst ? sim_kme_find_by_node(net, &node) : SIZE_MAX;
    if (have_src && have_dst) {
        goto check;
    }
    if ((!have_src && !uri_plain(src)) || (!have_dst && !uri_plain(dst)) ||
        (link = only_link(net, kme)) == SIZE_MAX) {
        set_result(r, HYKEX_STATUS_NO_QKD_CONNECTION,
                   "source and destination must be qkd://<application>@<node uuid> (a URI "
                   "without a node is accepted only by a KME with exactly one link)");
        return false;
    }
    far = net->links[link].a == kme ? net->links[link].b : net->links[link].a;
    if (!have_src) {
        *src_kme = (have_dst && *dst_kme == kme) ? far : kme;
    }
    if (!have_dst) {
        *dst_kme = *src_kme == kme ? far : kme;
    }
check:
    if (*src_kme == SIZE_MAX || *dst_kme == SIZE_MAX) {
        set_result(r, HYKEX_STATUS_NO_QKD_CONNECTION, "no KME serves node %s",
                   *src_kme == SIZE_MAX ? "in source" : "in destination");
        return false;
    }
    return true;
}

static struct sim_stream *find_stream(struct sim_net *net, const struct hx_uuid *id)
{
    for (size_t i = 0; i < SIM_MAX_STREAMS; i++) {
        if (net->streams[i].used && hx_uuid_equal(&net->streams[i].id, id)) {
            return &net->streams[i];
        }
    }
    return NULL;
}

static struct sim_stream *new_stream(struct sim_net *net)
{
    for (size_t i = 0; i < SIM_MAX_STREAMS; i++) {
        if (!net->streams[i].used) {
            memset(&net->streams[i], 0, sizeof(net->streams[i]));
            net->streams[i].used = true;
            return &net->streams[i];
        }
    }
    return NULL;
}

static void drop_stream(struct sim_stream *s)
{
    free(s->pos);
    memset(s, 0, sizeof(*s));
}

/* The end (0 or 1) of a stream that KME `kme` serves, or -1. */
static int end_of(const struct sim_stream *s, size_t kme)
{
    if (s->end_kme[0] == kme) {
        return 0;
    }
    return s->end_kme[1] == kme ? 1 : -1;
}

/* A stream id both ends can compute from the URIs (reference_compat). */
static void compat_id(const char *src, const char *dst, struct hx_uuid *id)
{
    const struct hx_iov parts[3] = {{src, strlen(src)}, {"\n", 1}, {dst, strlen(dst)}};
    uint8_t h[32];

    if (hx_hash(HX_MD_SHA256, parts, 3, h) != HX_OK) {
        memset(h, 0, sizeof(h));
    }
    memcpy(id->b, h, 16);
    id->b[6] = (uint8_t)((id->b[6] & 0x0f) | 0x80); /* version 8: custom (RFC 9562) */
    id->b[8] = (uint8_t)((id->b[8] & 0x3f) | 0x80);
}

/* Checks the QoS against the link; on failure writes a counter-proposal into *qos. */
static bool qos_ok(const struct sim_link *l, struct hykex_qos *qos, struct sim_result *r)
{
    bool ok = true;

    if (qos->key_chunk_size == 0 || qos->key_chunk_size > SIM_MAX_CHUNK) {
        set_result(r, HYKEX_STATUS_QOS_NOT_MET,
                   "key_chunk_size %" PRIu32 " is outside 1..%d bytes; counter-proposal in qos",
                   qos->key_chunk_size, SIM_MAX_CHUNK);
        qos->key_chunk_size = qos->key_chunk_size == 0 ? 32 : SIM_MAX_CHUNK;
        ok = false;
    }
    if (l->rate_bps > 0 && (double)qos->min_bps > l->rate_bps) {
        set_result(r, HYKEX_STATUS_QOS_NOT_MET,
                   "min_bps %" PRIu32
                   " is above the link's key rate of %.0f bits/s; "
                   "counter-proposal in qos",
                   qos->min_bps, l->rate_bps);
        qos->min_bps = (uint32_t)l->rate_bps;
        if (qos->max_bps > qos->min_bps) {
            qos->max_bps = qos->min_bps;
        }
        ok = false;
    }
    if (qos->max_bps != 0 && qos->min_bps > qos->max_bps) {
        set_result(r, HYKEX_STATUS_QOS_NOT_MET, "min_bps %" PRIu32 " is above max_bps %" PRIu32,
                   qos->min_bps, qos->max_bps);
        qos->max_bps = qos->min_bps;
        ok = false;
    }
    return ok;
}

void sim_open(struct sim_net *net, size_t kme, const char *src, const char *dst,
              struct hykex_qos *qos, struct hx_uuid *ksid, bool compat, struct sim_result *r)
{
    struct hx_uuid id = *ksid;
    size_t src_kme, dst_kme, peer_kme, link;
    struct sim_stream *s;
    int end;
    double deadline;

    set_result(r, 0, NULL);
    if (strlen(src) >= SIM_MAX_URI || strlen(dst) >= SIM_MAX_URI) {
        set_result(r, HYKEX_STATUS_NO_QKD_CONNECTION, "source or destination longer than %d bytes",
                   SIM_MAX_URI - 1);
        return;
    }
    pthread_mutex_lock(&net->lock);
    if (!resolve_ends(net, kme, src, dst, &src_kme, &dst_kme, r)) {
        goto out;
    }
    if (kme != src_kme && kme != dst_kme) {
        set_result(r, HYKEX_STATUS_NO_QKD_CONNECTION,
                   "KME %s serves neither the source nor the destination node", net->kmes[kme].id);
        goto out;
    }
    peer_kme = kme == src_kme ? dst_kme : src_kme;
    if ((link = link_between(net, src_kme, dst_kme)) == SIZE_MAX) {
        set_result(r, HYKEX_STATUS_NO_QKD_CONNECTION, "no QKD link between %s and %s",
                   net->kmes[src_kme].id, net->kmes[dst_kme].id);
        goto out;
    }
    if (net->links[link].paused) {
        set_result(r, HYKEX_STATUS_NO_QKD_CONNECTION, "QKD link %s is down (paused)",
                   net->links[link].id);
        goto out;
    }
    if (!qos_ok(&net->links[link], qos, r)) {
        goto out;
    }
    if (compat) {
        compat_id(src, dst, &id);
    }
    s = hx_uuid_is_nil(&id) ? NULL : find_stream(net, &id);
    if (s != NULL) {
        end = end_of(s, kme);
        if (s->link != link || end < 0) {
            set_result(r, HYKEX_STATUS_KSID_IN_USE,
                       "key stream id is in use by another pair of nodes");
            goto out;
        }
        if (s->opened[end] && !compat) {
            set_result(r, HYKEX_STATUS_KSID_IN_USE,
                       "key stream id is already open by an application at this KME");
            goto out;
        }
        s->opened[end] = true;
        pthread_cond_broadcast(&net->changed);
    } else {
        if (hx_uuid_is_nil(&id) && hx_uuid_generate(&id) != HX_OK) {
            set_result(r, HYKEX_STATUS_NO_QKD_CONNECTION, "random number generator failed");
            goto out;
        }
        if ((s = new_stream(net)) == NULL) {
            set_result(r, HYKEX_STATUS_NO_QKD_CONNECTION, "too many open key streams (%d)",
                       SIM_MAX_STREAMS);
            goto out;
        }
        s->id = id;
        s->link = link;
        s->end_kme[0] = kme;
        s->end_kme[1] = peer_kme;
        s->opened[0] = true;
        s->qos = *qos;
        s->compat = compat;
        snprintf(s->uri[0], sizeof(s->uri[0]), "%s", src);
        snprintf(s->uri[1], sizeof(s->uri[1]), "%s", dst);
        end = 0;
    }
    *ksid = id;
    *qos = s->qos;
    if (compat || s->opened[1 - end]) {
        set_result(r, 0, NULL);
        goto out;
    }
    /* ETSI 004: OPEN_CONNECT blocks until the peer application connects or the timeout. */
    if (qos->timeout_ms == 0) {
        set_result(r, HYKEX_STATUS_PEER_NOT_CONNECTED,
                   "peer application has not opened the key stream yet");
        goto out;
    }
    deadline = hx_monotime() + qos->timeout_ms / 1000.0;
    while (!s->opened[1 - end] && !net->stopping && s->used && hx_uuid_equal(&s->id, &id)) {
        struct timespec ts;
        double left = deadline - hx_monotime();
        if (left <= 0) {
            break;
        }
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += (time_t)left;
        ts.tv_nsec += (long)((left - (double)(time_t)left) * 1e9);
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&net->changed, &net->lock, &ts);
    }
    if (s->used && hx_uuid_equal(&s->id, &id) && s->opened[1 - end]) {
        set_result(r, 0, NULL);
    } else {
        set_result(r, HYKEX_STATUS_TIMEOUT,
                   "peer application did not open the key stream within %" PRIu32 " ms",
                   qos->timeout_ms);
        if (s->used && hx_uuid_equal(&s->id, &id)) {
            drop_stream(s);
        }
    }
out:
    pthread_mutex_unlock(&net->lock);
}

/* Binary search: the slot of index in s->pos, or where it would go. */
static size_t pos_slot(const struct sim_stream *s, uint32_t index, bool *found)
{
    size_t lo = 0, hi = s->n_pos;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s->pos[mid].index < index) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    *found = lo < s->n_pos && s->pos[lo].index == index;
    return lo;
}

static struct sim_position *pos_insert(struct sim_stream *s, size_t slot, uint32_t index)
{
    if (s->n_pos == s->cap_pos) {
        size_t cap = s->cap_pos ? s->cap_pos * 2 : 16;
        struct sim_position *p;
        if (cap > (1u << 20) || (p = realloc(s->pos, cap * sizeof(*p))) == NULL) {
            return NULL;
        }
        s->pos = p;
        s->cap_pos = cap;
    }
    memmove(&s->pos[slot + 1], &s->pos[slot], (s->n_pos - slot) * sizeof(*s->pos));
    s->n_pos++;
    memset(&s->pos[slot], 0, sizeof(s->pos[slot]));
    s->pos[slot].index = index;
    return &s->pos[slot];
}

/* Forgets the run of positions at the floor that both ends have taken. */
static void pos_compact(struct sim_stream *s)
{
    size_t k = 0;

    while (k < s->n_pos && s->pos[k].index == s->floor + k && s->pos[k].taken == 3) {
        k++;
    }
    if (k > 0) {
        memmove(s->pos, s->pos + k, (s->n_pos - k) * sizeof(*s->pos));
        s->n_pos -= k;
        s->floor += k;
    }
}

void sim_get_key(struct sim_net *net, size_t kme, const struct hx_uuid *ksid, bool has_index,
                 uint32_t *index, uint8_t *key, size_t *key_len, char *meta, size_t meta_cap,
                 size_t *meta_needed, struct sim_result *r)
{
    struct sim_stream *s;
    struct sim_link *l;
    struct sim_position *p = NULL;
    char mbuf[96];
    size_t slot, chunk, mlen;
    uint32_t idx;
    uint64_t age_ms = 0;
    bool found;
    double now = hx_monotime();
    int end;

    *key_len = 0;
    *meta_needed = 0;
    pthread_mutex_lock(&net->lock);
    if ((s = find_stream(net, ksid)) == NULL || (end = end_of(s, kme)) < 0 || !s->opened[end]) {
        set_result(r, HYKEX_STATUS_NO_QKD_CONNECTION,
                   "key stream id is not open at this KME (OPEN_CONNECT first)");
        goto out;
    }
    l = &net->links[s->link];
    if (!s->opened[1 - end] && !s->compat) {
        set_result(r, HYKEX_STATUS_PEER_NOT_CONNECTED_GET,
                   "peer application has not opened the key stream");
        goto out;
    }
    if (l->paused) {
        set_result(r, HYKEX_STATUS_NO_QKD_CONNECTION, "QKD link %s is down (paused)", l->id);
        goto out;
    }
    if (s->compat || !has_index) {
        /* The next position this end has not taken yet. */
        uint64_t next = s->next_index[end] > s->floor ? s->next_index[end] : s->floor;
        slot = pos_slot(s, (uint32_t)next, &found);
        while (found && (s->pos[slot].taken & (1u << end))) {
            next++;
            slot++;
            found = slot < s->n_pos && s->pos[slot].index == next;
        }
        if (next > UINT32_MAX) {
            set_result(r, HYKEX_STATUS_INSUFFICIENT_KEY, "key stream exhausted (2^32 positions)");
            goto out;
        }
        idx = (uint32_t)next;
    } else {
        idx = *index;
    }
    if (idx < s->floor) {
        set_result(r, HYKEX_STATUS_INSUFFICIENT_KEY,
                   "position %" PRIu32 " was already delivered at this KME", idx);
        goto out;
    }
    slot = pos_slot(s, idx, &found);
    if (found) {
        p = &s->pos[slot];
        if (p->taken & (1u << end)) {
            set_result(r, HYKEX_STATUS_INSUFFICIENT_KEY,
                       "position %" PRIu32 " was already delivered at this KME", idx);
            goto out;
        }
        age_ms = (uint64_t)((now - p->first_at) * 1000.0);
    }
    /* Metadata first: status 8 must consume nothing. */
    mlen = (size_t)snprintf(mbuf, sizeof(mbuf), "{\"age\": %" PRIu64 ", \"hops\": 0}", age_ms);
    if (meta_cap < mlen + 1) {
        *meta_needed = mlen + 1;
        set_result(r, HYKEX_STATUS_METADATA_TOO_SMALL,
                   "metadata needs %zu bytes, the buffer has %zu", mlen + 1, meta_cap);
        goto out;
    }
    chunk = s->qos.key_chunk_size;
    if (p == NULL) {
        if (!take_bits(l, (double)chunk * 8)) {
            set_result(r, HYKEX_STATUS_INSUFFICIENT_KEY,
                       "key pool of link %s is empty (%.0f of %.0f bits)", l->id, l->level_bits,
                       l->capacity_bits);
            goto out;
        }
        if ((p = pos_insert(s, slot, idx)) == NULL) {
            set_result(r, HYKEX_STATUS_INSUFFICIENT_KEY, "too many outstanding positions");
            goto out;
        }
        p->first_at = now;
        l->keys_delivered++;
    }
    if (link_key(l, s->id.b, idx, "004", key, chunk) != HX_OK) {
        set_result(r, HYKEX_STATUS_NO_QKD_CONNECTION, "key derivation failed");
        goto out;
    }
    p->taken |= (uint8_t)(1u << end);
    if (net->kmes[kme].corrupt_next) {
        key[0] ^= 0x01; /* fault injection: this end gets a different key */
        net->kmes[kme].corrupt_next = false;
    }
    *key_len = chunk;
    *index = idx;
    memcpy(meta, mbuf, mlen + 1);
    if (idx >= s->next_index[end]) {
        s->next_index[end] = idx + 1;
    }
    pos_compact(s);
    set_result(r, 0, NULL);
out:
    pthread_mutex_unlock(&net->lock);
}

void sim_close(struct sim_net *net, size_t kme, const struct hx_uuid *ksid, struct sim_result *r)
{
    struct sim_stream *s;
    int end;

    pthread_mutex_lock(&net->lock);
    if ((s = find_stream(net, ksid)) == NULL || (end = end_of(s, kme)) < 0 || !s->opened[end]) {
        set_result(r, HYKEX_STATUS_NO_QKD_CONNECTION, "key stream id is not open at this KME");
    } else {
        s->opened[end] = false;
        /* A reference_compat stream stays: reopening the same URIs continues its positions
         * instead of handing out position 0 again. */
        if (!s->opened[1 - end] && !s->compat) {
            drop_stream(s);
        }
        pthread_cond_broadcast(&net->changed);
        set_result(r, 0, NULL);
    }
    pthread_mutex_unlock(&net->lock);
}

/* ---- ETSI 014 ------------------------------------------------------------------------- */

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

/* {"message": msg, "details": [{"message": detail}]} */
static int error_body(int http, char **body, const char *msg, const char *detail)
{
    struct json_object *o = json_object_new_object(), *d;

    json_object_object_add(o, "message", json_object_new_string(msg));
    if (detail != NULL) {
        d = json_object_new_array();
        struct json_object *e = json_object_new_object();
        json_object_object_add(e, "message", json_object_new_string(detail));
        json_object_array_add(d, e);
        json_object_object_add(o, "details", d);
    }
    *body = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
    json_object_put(o);
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
    if ((*link = link_between(net, kme, *other_kme)) == SIZE_MAX) {
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
    refill(l, hx_monotime());
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
    json_object_object_add(o, "max_key_per_request", json_object_new_int(SIM_014_MAX_PER_REQUEST));
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
    if (number < 1 || number > SIM_014_MAX_PER_REQUEST) {
        rc = error_body(400, body, "number is not in the allowed range",
                        "number must be 1..128 (max_key_per_request)");
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
    if (!take_bits(l, (double)number * (double)size_bits)) {
        rc = error_body(503, body, "insufficient key available", l->id);
        goto out;
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
            link_key(l, k->id.b, 0, "014", k->key, k->len) != HX_OK) {
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
    if (n_ids == 0 || n_ids > SIM_014_MAX_PER_REQUEST) {
        rc = error_body(400, body, "key_IDs must list 1..128 keys", NULL);
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
            net->keys014[k] = net->keys014[--net->n_keys014];
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

/* ---- control -------------------------------------------------------------------------- */

static struct sim_link *find_link(struct sim_net *net, const char *id)
{
    for (size_t i = 0; i < net->n_links; i++) {
        if (strcmp(net->links[i].id, id) == 0) {
            return &net->links[i];
        }
    }
    return NULL;
}

static int ctl_reply(char **reply, bool ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int ctl_reply(char **reply, bool ok, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    struct json_object *o = json_object_new_object();

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_object_object_add(o, "ok", json_object_new_boolean(ok));
    json_object_object_add(o, ok ? "message" : "error", json_object_new_string(msg));
    *reply = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
    json_object_put(o);
    return ok ? 0 : 1;
}

int sim_control(struct sim_net *net, const char *line, char **reply)
{
    char verb[16], arg[SIM_MAX_ID + 1];
    int n = sscanf(line, "%15s %64s", verb, arg);
    struct sim_link *l;
    size_t k;
    int rc;

    if (n < 1) {
        return ctl_reply(reply, false, "empty command");
    }
    if (strcmp(verb, "pools") == 0) {
        struct json_object *o = json_object_new_object(), *arr = json_object_new_array();
        size_t streams = 0;
        pthread_mutex_lock(&net->lock);
        for (size_t i = 0; i < net->n_links; i++) {
            struct json_object *e = json_object_new_object();
            l = &net->links[i];
            refill(l, hx_monotime());
            json_object_object_add(e, "id", json_object_new_string(l->id));
            json_object_object_add(e, "a", json_object_new_string(net->kmes[l->a].id));
            json_object_object_add(e, "b", json_object_new_string(net->kmes[l->b].id));
            json_object_object_add(e, "level_bits", json_object_new_int64((int64_t)l->level_bits));
            json_object_object_add(e, "capacity_bits",
                                   json_object_new_int64((int64_t)l->capacity_bits));
            json_object_object_add(e, "rate_bps", json_object_new_int64((int64_t)l->rate_bps));
            json_object_object_add(e, "paused", json_object_new_boolean(l->paused));
            json_object_object_add(e, "keys_delivered",
                                   json_object_new_int64((int64_t)l->keys_delivered));
            json_object_array_add(arr, e);
        }
        for (size_t i = 0; i < SIM_MAX_STREAMS; i++) {
            streams += net->streams[i].used;
        }
        json_object_object_add(o, "ok", json_object_new_boolean(true));
        json_object_object_add(o, "links", arr);
        json_object_object_add(o, "streams", json_object_new_int64((int64_t)streams));
        json_object_object_add(o, "keys014_waiting",
                               json_object_new_int64((int64_t)net->n_keys014));
        pthread_mutex_unlock(&net->lock);
        *reply = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        json_object_put(o);
        return 0;
    }
    if (n < 2) {
        return ctl_reply(reply, false, "'%s' needs an argument (a link or KME id)", verb);
    }
    pthread_mutex_lock(&net->lock);
    if (strcmp(verb, "pause") == 0 || strcmp(verb, "resume") == 0 || strcmp(verb, "drain") == 0) {
        if ((l = find_link(net, arg)) == NULL) {
            rc = ctl_reply(reply, false, "no link '%s'", arg);
        } else {
            refill(l, hx_monotime());
            if (verb[0] == 'd') {
                l->level_bits = 0;
                if (l->rate_bps <= 0) {
                    l->paused = true; /* an unbounded pool can only be emptied by stopping it */
                }
            } else {
                l->paused = verb[0] == 'p';
            }
            rc = ctl_reply(reply, true, "link %s: %s", arg, verb);
        }
    } else if (strcmp(verb, "corrupt") == 0 || strcmp(verb, "drop") == 0) {
        if ((k = find_kme(net, arg)) == SIZE_MAX) {
            rc = ctl_reply(reply, false, "no KME '%s'", arg);
        } else if (verb[0] == 'c') {
            net->kmes[k].corrupt_next = true;
            rc = ctl_reply(reply, true, "KME %s: the next key it delivers is corrupted", arg);
        } else {
            net->kmes[k].drop_epoch = ++net->epoch;
            rc = ctl_reply(reply, true, "KME %s: connections dropped", arg);
            pthread_mutex_unlock(&net->lock);
            if (net->drop_connections != NULL) {
                net->drop_connections(k);
            }
            return rc;
        }
    } else {
        rc = ctl_reply(reply, false,
                       "unknown command '%s' (pause, resume, drain LINK; corrupt, drop KME; pools)",
                       verb);
    }
    pthread_mutex_unlock(&net->lock);
    return rc;
}
