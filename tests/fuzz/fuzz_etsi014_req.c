/*
 * hykexd's ETSI 014 request parsers (proto/etsi014.c) on arbitrary bytes. Byte 0 picks one:
 * 0 the enc_keys POST body, 1 the dec_keys POST body, 2 the enc_keys GET query, 3 the dec_keys
 * GET query (parameters as "key=value" lines, as the HTTP library hands them over), 4 the peer
 * message that carries a node's SAEs (SAE_LIST, proto/peer.c: what it accepts encodes to the
 * same bytes), 5 the SAE lists of the configuration (api.etsi014.local_saes as "l",
 * remote_saes as "r" in a JSON object: what they accept is within their limits). The rest is
 * the input. Every accepted request is checked against its limits; the key
 * IDs of an accepted dec_keys request go through the reply writer and back through hykexd's own 014
 * client parser (source/qkd014.c), which must read the same ids and key bytes.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "daemon/config014.h"
#include "proto/etsi014.h"
#include "proto/peer.h"
#include "source/qkd014.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_IDS 64
#define MAX_PARAMS 70

static void round_trip(const struct hx_uuid *ids, size_t n)
{
    struct hx_writer w;
    struct hx_uuid back[MAX_IDS];
    uint8_t key[16], got[MAX_IDS * 16];
    char msg[200];

    hx_writer_init_dynamic(&w, 1u << 20);
    if (hx_014_write_keys_begin(&w) != HX_OK) {
        abort();
    }
    for (size_t i = 0; i < n; i++) {
        memset(key, (int)i, sizeof(key));
        if (hx_014_write_keys_add(&w, i == 0, &ids[i], key, sizeof(key)) != HX_OK) {
            abort();
        }
    }
    if (hx_014_write_keys_end(&w) != HX_OK ||
        hx_qkd014_parse_keys((const char *)w.data, w.len, (uint32_t)n, sizeof(key), got, back,
                             false, msg, sizeof(msg)) != HX_OK) {
        abort();
    }
    for (size_t i = 0; i < n; i++) {
        memset(key, (int)i, sizeof(key));
        if (!hx_uuid_equal(&ids[i], &back[i]) || memcmp(got + i * 16, key, 16) != 0) {
            abort();
        }
    }
    hx_writer_wipe(&w);
}

static void sae_list(const uint8_t *p, size_t len)
{
    static struct hx_peer_sae_list m;
    struct hx_writer w;

    if (hx_peer_decode_sae_list(p, len, &m) != HX_OK) {
        return;
    }
    hx_writer_init_dynamic(&w, len + 16);
    if (m.n > HX_PEER_MAX_SAES || hx_peer_encode_sae_list(&w, &m) != HX_OK || w.len != len ||
        (len > 0 && memcmp(w.data, p, len) != 0)) {
        abort();
    }
    for (size_t i = 0; i < m.n; i++) {
        if (strnlen(m.ids[i], sizeof(m.ids[i])) == sizeof(m.ids[i])) {
            abort();
        }
    }
    hx_writer_wipe(&w);
}

static void config_lists(const char *text, size_t len)
{
    static const struct hx_json_limits lim = {
        .max_message = 1u << 20, .max_depth = 8, .max_string = 4096, .max_members = 4096};
    static struct hxd_014_saes l;
    struct json_object *o = NULL, *v;
    char why[300];

    if (hx_json_parse_object(text, len, &lim, &o, why, sizeof(why)) != HX_OK) {
        return;
    }
    if (json_object_object_get_ex(o, "l", &v) &&
        hxd_014_parse_local(v, &l, why, sizeof(why)) == HX_OK) {
        for (size_t i = 0; i < l.n; i++) {
            if (l.n > HXD_014_MAX_SAES || !hx_014_sae_id_ok(l.saes[i].id, strlen(l.saes[i].id))) {
                abort();
            }
        }
        json_object_put(hxd_014_print_local(&l));
    }
    if (json_object_object_get_ex(o, "r", &v) &&
        hxd_014_parse_remote(v, &l, why, sizeof(why)) == HX_OK) {
        for (size_t i = 0; i < l.n; i++) {
            if (l.n > HXD_014_MAX_SAES || !hx_014_sae_id_ok(l.saes[i].id, strlen(l.saes[i].id))) {
                abort();
            }
        }
        json_object_put(hxd_014_print_remote(&l));
    }
    json_object_put(o);
}

/* "k=v\n" lines into params (in place in text); false when there are too many. */
static size_t split_params(char *text, struct hx_014_param *params)
{
    size_t n = 0;
    char *line = text;

    while (line != NULL && *line != '\0' && n < MAX_PARAMS) {
        char *nl = strchr(line, '\n'), *eq;
        if (nl != NULL) {
            *nl = '\0';
        }
        eq = strchr(line, '=');
        if (eq != NULL) {
            *eq = '\0';
            params[n].key = line;
            params[n].value = eq + 1;
        } else {
            params[n].key = line;
            params[n].value = "";
        }
        n++;
        line = nl != NULL ? nl + 1 : NULL;
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct hx_014_key_req rq;
    struct hx_014_problem prob = {"", ""};
    struct hx_014_param params[MAX_PARAMS];
    struct hx_uuid ids[MAX_IDS];
    size_t n = 0;
    char *text;

    if (size < 1) {
        return 0;
    }
    if ((text = malloc(size)) == NULL) {
        abort();
    }
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    switch (data[0] % 6) {
    case 5:
        config_lists(text, size - 1);
        break;
    case 4:
        sae_list(data + 1, size - 1);
        break;
    case 0:
        if (hx_014_parse_key_req(text, size - 1, &rq, &prob) == HX_OK &&
            (rq.number > (1u << 30) || rq.size_bits > (1u << 30))) {
            abort();
        }
        break;
    case 1:
        if (hx_014_parse_key_ids(text, size - 1, ids, MAX_IDS, &n, &prob) == HX_OK) {
            if (n == 0 || n > MAX_IDS) {
                abort();
            }
            round_trip(ids, n);
        }
        break;
    case 2:
        if (hx_014_parse_key_query(params, split_params(text, params), &rq, &prob) == HX_OK &&
            (rq.number > (1u << 30) || rq.size_bits > (1u << 30))) {
            abort();
        }
        break;
    case 3:
        if (hx_014_parse_key_id_query(params, split_params(text, params), ids, MAX_IDS, &n,
                                      &prob) == HX_OK) {
            if (n == 0 || n > MAX_IDS) {
                abort();
            }
            round_trip(ids, n);
        }
        break;
    }
    free(text);
    return 0;
}
