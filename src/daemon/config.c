#include "daemon/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/json.h"
#include "daemon/config014.h"
#include "proto/uri.h"

static const char *const qkd_protocols[] = {"none", "etsi004-json", "etsi004-binary", "etsi014",
                                            NULL};
static const char *const framings[] = {"1.0.1", "2.1.1", NULL};
static const char *const joins[] = {"default", "stream-id", "same-uris", NULL};
static const char *const key_pairs[] = {"per-position", "per-batch", NULL};

static hx_err parse_peer_entry(const char *key, struct json_object *v, struct hxd_peer *p,
                               char *why, size_t why_len)
{
    struct json_object *addr, *host, *port;

    if (hx_uuid_parse(key, strlen(key), &p->uuid) != HX_OK) {
        snprintf(why, why_len, "'%.60s' is not a node UUID", key);
        return HX_ERR_BAD_UUID;
    }
    if (!json_object_is_type(v, json_type_object) || json_object_object_length(v) != 1 ||
        !json_object_object_get_ex(v, "address", &addr) ||
        !json_object_is_type(addr, json_type_object)) {
        snprintf(why, why_len, "%.60s: expected {\"address\": {\"host\": ..., \"port\": ...}}",
                 key);
        return HX_ERR_BAD_TYPE;
    }
    json_object_object_foreach (addr, ak, av) {
        (void)av;
        if (strcmp(ak, "host") != 0 && strcmp(ak, "port") != 0) {
            snprintf(why, why_len, "%.60s.address.%.40s: unknown key (host, port)", key, ak);
            return HX_ERR_UNKNOWN_FIELD;
        }
    }
    if (!json_object_object_get_ex(addr, "host", &host) ||
        !json_object_is_type(host, json_type_string) || json_object_get_string_len(host) == 0 ||
        (size_t)json_object_get_string_len(host) >= sizeof(p->address.host)) {
        snprintf(why, why_len, "%.60s.address.host: expected a host name or address", key);
        return HX_ERR_BAD_VALUE;
    }
    if (!json_object_object_get_ex(addr, "port", &port) ||
        !json_object_is_type(port, json_type_int) || json_object_get_int64(port) < 1 ||
        json_object_get_int64(port) > 65535) {
        snprintf(why, why_len, "%.60s.address.port: expected an integer from 1 to 65535", key);
        return HX_ERR_BAD_VALUE;
    }
    memcpy(p->address.host, json_object_get_string(host),
           (size_t)json_object_get_string_len(host) + 1);
    p->address.port = (uint16_t)json_object_get_int64(port);
    return HX_OK;
}

/* {"<uuid>": {"address": {"host": "...", "port": N}}, ...} — the reference's file format. */
static hx_err parse_peers(struct json_object *v, void *field, char *why, size_t why_len)
{
    struct hxd_peers *ps = field;
    hx_err e;

    if (!json_object_is_type(v, json_type_object)) {
        snprintf(why, why_len, "expected an object of node UUID -> {address}");
        return HX_ERR_BAD_TYPE;
    }
    ps->n = 0;
    json_object_object_foreach (v, key, val) {
        if (ps->n >= HXD_MAX_PEERS) {
            snprintf(why, why_len, "more than %d peers", HXD_MAX_PEERS);
            return HX_ERR_TOO_LARGE;
        }
        if ((e = parse_peer_entry(key, val, &ps->peers[ps->n], why, why_len)) != HX_OK) {
            return e;
        }
        for (size_t i = 0; i < ps->n; i++) {
            if (hx_uuid_equal(&ps->peers[i].uuid, &ps->peers[ps->n].uuid)) {
                snprintf(why, why_len, "%.60s listed twice", key);
                return HX_ERR_BAD_VALUE;
            }
        }
        ps->n++;
    }
    return HX_OK;
}

static struct json_object *print_peers(const void *field)
{
    const struct hxd_peers *ps = field;
    struct json_object *o = json_object_new_object();
    char id[HX_UUID_STR_LEN + 1];

    for (size_t i = 0; i < ps->n; i++) {
        struct json_object *a = json_object_new_object(), *e = json_object_new_object();
        json_object_object_add(a, "host", json_object_new_string(ps->peers[i].address.host));
        json_object_object_add(a, "port", json_object_new_int(ps->peers[i].address.port));
        json_object_object_add(e, "address", a);
        hx_uuid_format(&ps->peers[i].uuid, id);
        json_object_object_add(o, id, e);
    }
    return o;
}

#define C struct hxd_config
static const struct hx_cfg_opt table[] = {
    /* The reference module's keys, unchanged. */
    HX_CFG_OPT_UUID("uuid", C, uuid, NULL, HX_CFG_REQUIRED, "this node's UUID"),
    HX_CFG_OPT_STR("logging_config.console_log_type", C, console_log_type, 1, "\"info\"", 0,
                   "reference: console log level"),
    HX_CFG_OPT_BOOL("logging_config.colorless_console_log", C, colorless_console_log, "true",
                    "reference: no colours (hykex never colours logs)"),
    HX_CFG_OPT_STR("logging_config.file_log_type", C, file_log_type, 1, "\"info\"", 0,
                   "reference: file log level"),
    HX_CFG_OPT_STR("logging_config.filename", C, log_filename, 0, "\"\"", 0,
                   "reference: log file (empty: stderr only)"),
    HX_CFG_OPT_STR("certificate_config.certificate_ip", C, certificate_ip, 0, "\"\"", 0,
                   "reference: this node's address in its certificate"),
    HX_CFG_OPT_STR("certificate_config.cert_authority_path", C, ca_path, 1, NULL, HX_CFG_REQUIRED,
                   "the network CA certificate (PEM)"),
    HX_CFG_OPT_STR("certificate_config.cert_path", C, cert_path, 1, NULL, HX_CFG_REQUIRED,
                   "this node's certificate (PEM)"),
    HX_CFG_OPT_STR("certificate_config.key_path", C, key_path, 1, NULL, HX_CFG_REQUIRED,
                   "this node's private key (PEM, mode 0600)"),
    HX_CFG_OPT_STR("hybridization_server_address.host", C, api.host, 1, "\"127.0.0.1\"", 0,
                   "ETSI 004 API address"),
    HX_CFG_OPT_INT("hybridization_server_address.port", C, api.port, 1, 65535, "65430", 0,
                   "ETSI 004 API port"),
    HX_CFG_OPT_STR("qkd_address.host", C, qkd.host, 0, "\"\"", 0, "the KME's address"),
    HX_CFG_OPT_INT("qkd_address.port", C, qkd.port, 0, 65535, "0", 0,
                   "the KME's port (0: no QKD source)"),
    HX_CFG_OPT_STR("peer_local_address.host", C, peer.host, 1, "\"0.0.0.0\"", 0,
                   "peer link listen address"),
    HX_CFG_OPT_INT("peer_local_address.port", C, peer.port, 1, 65535, "3001", 0,
                   "peer link listen port"),
    /* hykex's own keys. */
    HX_CFG_OPT_ENUM("qkd.protocol", C, qkd_protocol, qkd_protocols, "\"etsi004-json\"",
                    "how to reach the KME: etsi004-json, etsi004-binary, etsi014, none"),
    HX_CFG_OPT_ENUM("qkd.framing", C, qkd_framing, framings, "\"1.0.1\"",
                    "ETSI 004 binary framing of the KME"),
    HX_CFG_OPT_ENUM("qkd.join", C, qkd_join, joins, "\"default\"",
                    "how the responder joins the QKD stream: stream-id or same-uris"),
    HX_CFG_OPT_STR("qkd.tls.cert", C, qkd_tls_cert, 0, "\"\"", 0,
                   "client certificate for the KME (004 binary over TLS, 014)"),
    HX_CFG_OPT_STR("qkd.tls.key", C, qkd_tls_key, 0, "\"\"", 0, "its key (mode 0600)"),
    HX_CFG_OPT_STR("qkd.tls.ca", C, qkd_tls_ca, 0, "\"\"", 0, "CA of the KME's certificate"),
    HX_CFG_OPT_STR("qkd.sae_id", C, qkd_sae_id, 0, "\"\"", 0, "this node's ETSI 014 SAE id"),
    HX_CFG_OPT_STR("qkd.application", C, qkd_application, 1, "\"hykex\"", 0,
                   "application name in the qkd:// URIs"),
    HX_CFG_OPT_INT("qkd.key_bytes", C, qkd_key_bytes, 16, 4096, "32", 0,
                   "QKD key bytes per position"),
    HX_CFG_OPT_INT("qkd.qos.timeout", C, qkd_qos.timeout_ms, 0, 600000, "10000", 0,
                   "ETSI 004 OPEN_CONNECT: ms the KME may wait for the other end (a strict KME "
                   "refuses 0)"),
    HX_CFG_OPT_INT("qkd.qos.min_bps", C, qkd_qos.min_bps, 0, 4294967295LL, "1", 0,
                   "ETSI 004 OPEN_CONNECT: minimum key rate asked for, bit/s"),
    HX_CFG_OPT_INT("qkd.qos.max_bps", C, qkd_qos.max_bps, 0, 4294967295LL, "1000000000", 0,
                   "ETSI 004 OPEN_CONNECT: maximum key rate, bit/s"),
    HX_CFG_OPT_INT("qkd.qos.jitter", C, qkd_qos.jitter, 0, 4294967295LL, "10", 0,
                   "ETSI 004 OPEN_CONNECT: jitter, ms"),
    HX_CFG_OPT_INT("qkd.qos.priority", C, qkd_qos.priority, 0, 4294967295LL, "0", 0,
                   "ETSI 004 OPEN_CONNECT: priority"),
    HX_CFG_OPT_INT("qkd.qos.ttl", C, qkd_qos.ttl, 0, 4294967295LL, "0", 0,
                   "ETSI 004 OPEN_CONNECT: ttl, s (0: none)"),
    HX_CFG_OPT_INT("qkd.pipeline", C, qkd_pipeline, 1, 64, "1", 0,
                   "ETSI 004 GET_KEYs written at once, JSON or binary 1.0.1 (1 for KMEs that "
                   "read one message per recv, as the reference's)"),
    HX_CFG_OPT_STR("api.unix_socket", C, api_unix_socket, 0, "\"\"", 0,
                   "also serve the API on this Unix socket"),
    HX_CFG_OPT_STR("api.allow_uids", C, api_allow_uids, 0, "\"\"", 0,
                   "Unix socket: comma-separated uids allowed (empty: own uid only)"),
    HX_CFG_OPT_STR("api.allow_gids", C, api_allow_gids, 0, "\"\"", 0,
                   "Unix socket: comma-separated gids allowed"),
    HX_CFG_OPT_BOOL("api.allow_remote", C, api_allow_remote, "false",
                    "let the TCP API listen on a non-loopback address"),
    HX_CFG_OPT_STR("api.tls.host", C, api_tls_host, 1, "\"0.0.0.0\"", 0,
                   "address of the mutual-TLS API (with api.tls.port)"),
    HX_CFG_OPT_INT("api.tls.port", C, api_tls_port, 0, 65535, "0", 0,
                   "also serve the API over TLS 1.3 with client certificates (0: off)"),
    HX_CFG_OPT_STR("api.tls.cert", C, api_tls_cert, 0, "\"\"", 0, "the API's server certificate"),
    HX_CFG_OPT_STR("api.tls.key", C, api_tls_key, 0, "\"\"", 0, "its key (mode 0600)"),
    HX_CFG_OPT_STR("api.tls.ca", C, api_tls_ca, 0, "\"\"", 0,
                   "CA of the applications' client certificates"),
    /* ---- ETSI 014 server for applications (config014.c, docs/etsi014.md) ---- */
    HX_CFG_OPT_STR("api.etsi014.host", C, e014.host, 1, "\"127.0.0.1\"", 0,
                   "address of the ETSI 014 server (HTTPS)"),
    HX_CFG_OPT_INT("api.etsi014.port", C, e014.port, 0, 65535, "0", 0,
                   "serve ETSI GS QKD 014 to SAEs on this port (0: off)"),
    HX_CFG_OPT_STR("api.etsi014.cert", C, e014.cert, 0, "\"\"", 0,
                   "the 014 server's certificate (PEM)"),
    HX_CFG_OPT_STR("api.etsi014.key", C, e014.key, 0, "\"\"", 0, "its key (PEM, mode 0600)"),
    HX_CFG_OPT_STR("api.etsi014.ca", C, e014.ca, 0, "\"\"", 0,
                   "CA of the SAEs' client certificates (the SAE id is their common name)"),
    HX_CFG_OPT_CUSTOM("api.etsi014.local_saes", C, e014.local, hxd_014_parse_local,
                      hxd_014_print_local, NULL, "[]", 0, "the SAEs attached to this node"),
    HX_CFG_OPT_CUSTOM("api.etsi014.remote_saes", C, e014.remote, hxd_014_parse_remote,
                      hxd_014_print_remote, NULL, "{}", 0,
                      "SAE id -> UUID of the trusted peer node it is attached to"),
    HX_CFG_OPT_STR("api.etsi014.hybridization", C, e014.method, 1, "\"hkdf-sha256\"", 0,
                   "combiner of the SAE pairs' key streams"),
    HX_CFG_OPT_STR("api.etsi014.key_sources", C, e014.key_sources, 1, "\"QKD,ML-KEM-768\"", 0,
                   "key sources of the SAE pairs' key streams"),
    HX_CFG_OPT_CUSTOM("api.etsi014.pairs", C, e014.pairs, hxd_014_parse_pairs, hxd_014_print_pairs,
                      NULL, "[]", 0,
                      "[{master, slave, hybridization, key_sources}]: one pair's own method and "
                      "sources (both nodes of the pair must say the same)"),
    HX_CFG_OPT_INT("api.etsi014.key_size", C, e014.key_size_bits, 128, 65535 * 8, "256", 0,
                   "key_size (bits, a multiple of 8): the size of a key, and the largest"),
    HX_CFG_OPT_INT("api.etsi014.max_keys_per_request", C, e014.max_keys_per_request, 1,
                   HX_014_MAX_KEYS, "128", 0, "max_key_per_request"),
    HX_CFG_OPT_INT("api.etsi014.timeout_ms", C, e014.timeout_ms, 1, 600000, "5000", 0,
                   "how long enc_keys / dec_keys wait for keys before 503"),
    HX_CFG_OPT_INT("api.etsi014.threads", C, e014.threads, 1, 64, "4", 0,
                   "HTTPS event loops (each serves one request at a time)"),
    /* ---- end of ETSI 014 ---- */
    HX_CFG_OPT_STR("metrics.host", C, metrics.host, 1, "\"127.0.0.1\"", 0,
                   "address of the Prometheus metrics endpoint (docs/metrics.md)"),
    HX_CFG_OPT_INT("metrics.port", C, metrics.port, 0, 65535, "0", 0,
                   "serve GET /metrics on this port (0: off)"),
    HX_CFG_OPT_BOOL("metrics.allow_remote", C, metrics_allow_remote, "false",
                    "let the metrics endpoint listen on a non-loopback address"),
    HX_CFG_OPT_STR("peer.tls_groups", C, tls_groups, 1,
                   "\"X25519MLKEM768:SecP256r1MLKEM768:X25519\"", 0,
                   "TLS 1.3 key exchange groups of the peer link, preferred first"),
    HX_CFG_OPT_INT("peer.keepalive_s", C, keepalive_s, 1, 3600, "5", 0,
                   "peer link keep-alive interval"),
    HX_CFG_OPT_INT("peer.reconnect_max_s", C, reconnect_max_s, 1, 3600, "10", 0,
                   "longest back-off between reconnects"),
    HX_CFG_OPT_BOOL("peer.batch_macs", C, batch_macs, "true",
                    "over a direct link, authenticate batches by MACs under the key of an "
                    "earlier signed batch (about one in 254 signed); false: this node signs every "
                    "batch and takes no MACed one"),
    HX_CFG_OPT_STR("state_dir", C, state_dir, 0, "\"\"", 0,
                   "state directory (durable store; empty: memory only)"),
    HX_CFG_OPT_BOOL("store.fsync", C, store_sync, "false",
                    "fsync every store commit: durable across power loss, not only crashes"),
    HX_CFG_OPT_INT("limits.batch_size", C, batch_size, 1, 1024, "24", 0,
                   "positions per key-production batch"),
    HX_CFG_OPT_INT("limits.batch_max", C, batch_max, 1, 1024, "256", 0,
                   "largest batch: batches double from limits.batch_size, never above it, while "
                   "the stream's ready keys hold two of the doubled size (a stock filling, or an "
                   "application slower than production) and the buffer has room; not from an "
                   "ETSI 014 KME; at most limits.batch_size: no growth"),
    HX_CFG_OPT_ENUM("kem.key_pairs", C, kem_key_pairs, key_pairs, "\"per-position\"",
                    "KEM key pairs: per-position (a fresh pair for every key) or per-batch (one "
                    "pair per batch and source, encapsulated to once per position; both nodes "
                    "must allow it)"),
    HX_CFG_OPT_INT("limits.buffer_depth", C, buffer_depth, 1, 65536, "128", 0,
                   "keys kept ahead of demand per stream, ready or in the batches in flight"),
    HX_CFG_OPT_BOOL("limits.pace", C, pace, "true",
                    "GET_KEY: while an application takes keys faster than they are made, hand "
                    "them out at the production rate instead of a batch at a time"),
    HX_CFG_OPT_INT("limits.initiator_workers", C, initiator_workers, 1, 256, "4", 0,
                   "initiator worker threads: batches this node makes at once over all its "
                   "streams (each waits for the peer's replies)"),
    HX_CFG_OPT_INT("limits.responder_workers", C, responder_workers, 1, 256, "2", 0,
                   "responder worker threads: the peer's batch messages answered at once"),
    HX_CFG_OPT_INT("limits.default_timeout_ms", C, default_timeout_ms, 1, 3600000, "10000", 0,
                   "OPEN_CONNECT / GET_KEY wait when QoS timeout is 0"),
    HX_CFG_OPT_INT("limits.max_timeout_ms", C, max_timeout_ms, 1, 3600000, "60000", 0,
                   "longest OPEN_CONNECT / GET_KEY wait: larger QoS timeouts are cut to it"),
    HX_CFG_OPT_INT("limits.max_unjoined_per_peer", C, max_unjoined, 1, 1000000, "64", 0,
                   "streams a peer node may announce that no local application joined yet; "
                   "each expires after limits.max_timeout_ms"),
    HX_CFG_OPT_INT("limits.status_streams", C, status_streams, 0, 1000, "1000", 0,
                   "streams STATUS lists one by one; the rest are counted by state"),
    HX_CFG_OPT_INT("limits.max_streams", C, max_streams, 1, 1000000, "256", 0, "open key streams"),
    HX_CFG_OPT_INT("limits.secure_heap_mb", C, secure_heap_mb, 1, 1048576, "512", 0,
                   "largest secure heap (MiB) the limits may ask for: streams x (buffer_depth + "
                   "3 batches) x max_key_chunk, else the config is refused"),
    HX_CFG_OPT_INT("limits.max_clients", C, max_clients, 1, 1000000, "4096", 0,
                   "application connections"),
    HX_CFG_OPT_INT("limits.max_key_chunk", C, max_key_chunk, 16, 65535, "4096", 0,
                   "largest key_chunk_size"),
    HX_CFG_OPT_STR("user", C, run_user, 0, "\"\"", 0,
                   "drop to this user after binding (started as root); it then owns state_dir"),
    HX_CFG_OPT_STR("group", C, run_group, 0, "\"\"", 0,
                   "and this group (default: the user's primary group)"),
    HX_CFG_OPT_STR("log_level", C, log_level, 0, "\"\"", 0,
                   "error, warn, info, debug (default: logging_config.console_log_type)"),
    /* Relay across trusted nodes (docs/relay.md): opt-in, nothing changes while off. */
    HX_CFG_OPT_BOOL("relay.enabled", C, relay_enabled, "false",
                    "take part in the relay's topology protocol (docs/relay.md)"),
    HX_CFG_OPT_BOOL("relay.transit", C, relay_transit, "true",
                    "relay other nodes' streams (false: use relays for its own streams only)"),
    HX_CFG_OPT_INT("relay.announce_s", C, relay_announce_s, 1, 600, "10", 0,
                   "seconds between this node's topology announcements (each lives 4 periods)"),
    HX_CFG_OPT_INT("relay.max_nodes", C, relay_max_nodes, 2, 4096, "1024", 0,
                   "nodes the topology map holds"),
    HX_CFG_OPT_INT("relay.max_hops", C, relay_max_hops, 1, 16, "8", 0,
                   "longest relay path, in hops"),
    HX_CFG_OPT_STR("relay.avoid", C, relay_avoid, 0, "\"\"", 0,
                   "comma-separated node UUIDs never to relay through"),
    HX_CFG_OPT_CUSTOM("trusted_peers", C, trusted, parse_peers, print_peers, NULL, "{}", 0,
                      "node UUID -> {address}, as trusted_peers_info.json"),
    /* Day-2 operations: reload and certificate expiry (docs/hykexd.md "Reload"). */
    HX_CFG_OPT_INT("certificate_config.expiry_warning_days", C, cert_warn_days, 0, 3650, "14", 0,
                   "warn (log once a day, hykex status) this many days before this node's, the "
                   "CA's or a peer's certificate expires"),
};
#undef C
#define N (sizeof(table) / sizeof(table[0]))

uint32_t hxd_config_batch_top(const struct hxd_config *cfg)
{
    uint64_t n = cfg->batch_size;

    while (2 * n <= cfg->batch_max && 3 * 2 * n <= cfg->buffer_depth) {
        n *= 2;
    }
    return (uint32_t)n;
}

hx_err hxd_config_load(struct hxd_config *cfg, const char *config_path, const char *peers_path,
                       char *why, size_t why_len)
{
    static const struct hx_json_limits lim = {
        .max_message = 1u << 20, .max_depth = 8, .max_string = 4096, .max_members = 4096};
    struct json_object *root = NULL, *qkd_obj = NULL;
    char *text = NULL, reason[256];
    size_t len;
    bool qkd_given;
    hx_err e;

    memset(cfg, 0, sizeof(*cfg));
    if ((e = hx_cfg_load_file(table, N, cfg, config_path, why, why_len)) != HX_OK) {
        return e;
    }
    /* Re-read to see whether qkd.protocol was given: a reference config (qkd_address only)
     * means ETSI 004 JSON, one without qkd_address means no QKD source. */
    if (hx_read_file(config_path, 1u << 20, &text, &len) == HX_OK &&
        hx_json_parse_object(text, len, &lim, &root, reason, sizeof(reason)) == HX_OK) {
        struct json_object *p;
        qkd_given = json_object_object_get_ex(root, "qkd", &qkd_obj) &&
                    json_object_object_get_ex(qkd_obj, "protocol", &p);
        if (!qkd_given && cfg->qkd.port == 0) {
            cfg->qkd_protocol = HXD_QKD_NONE;
        }
    }
    json_object_put(root);
    free(text);
    if (cfg->qkd_protocol != HXD_QKD_NONE && cfg->qkd_protocol != HXD_QKD_014 &&
        (cfg->qkd.port == 0 || cfg->qkd.host[0] == '\0')) {
        snprintf(why, why_len, "%s: key 'qkd_address': needed for qkd.protocol %s", config_path,
                 qkd_protocols[cfg->qkd_protocol]);
        return HX_ERR_CONFIG;
    }
    if (cfg->qkd_protocol == HXD_QKD_014 &&
        (cfg->qkd_sae_id[0] == '\0' || cfg->qkd_tls_cert[0] == '\0' ||
         cfg->qkd_tls_key[0] == '\0' || cfg->qkd_tls_ca[0] == '\0' || cfg->qkd.port == 0)) {
        snprintf(why, why_len,
                 "%s: key 'qkd': etsi014 needs qkd_address, qkd.sae_id and "
                 "qkd.tls cert, key and ca",
                 config_path);
        return HX_ERR_CONFIG;
    }
    if (peers_path != NULL && peers_path[0] != '\0') {
        struct hxd_peers extra;
        memset(&extra, 0, sizeof(extra));
        text = NULL;
        root = NULL;
        if ((e = hx_read_file(peers_path, 1u << 20, &text, &len)) != HX_OK) {
            snprintf(why, why_len, "%s: cannot read: %s", peers_path, hx_strerror(e));
            return e;
        }
        e = hx_json_parse_object(text, len, &lim, &root, reason, sizeof(reason));
        free(text);
        if (e != HX_OK) {
            snprintf(why, why_len, "%s: %s", peers_path, reason);
            return e;
        }
        e = parse_peers(root, &extra, reason, sizeof(reason));
        json_object_put(root);
        if (e != HX_OK) {
            snprintf(why, why_len, "%s: %s", peers_path, reason);
            return e;
        }
        for (size_t i = 0; i < extra.n; i++) {
            if (hxd_config_peer(cfg, &extra.peers[i].uuid) != NULL) {
                snprintf(why, why_len, "%s: a peer is listed in both files", peers_path);
                return HX_ERR_CONFIG;
            }
            if (cfg->trusted.n >= HXD_MAX_PEERS) {
                snprintf(why, why_len, "%s: more than %d peers", peers_path, HXD_MAX_PEERS);
                return HX_ERR_CONFIG;
            }
            cfg->trusted.peers[cfg->trusted.n++] = extra.peers[i];
        }
    }
    /* The original's trusted_peers_info.json lists every node of the network, this one
     * included: that entry is not a peer, and is dropped (hykexd says so once at start). */
    for (size_t i = 0; i < cfg->trusted.n; i++) {
        if (hx_uuid_equal(&cfg->trusted.peers[i].uuid, &cfg->uuid)) {
            cfg->self_listed = true;
            cfg->trusted.peers[i] = cfg->trusted.peers[--cfg->trusted.n];
            break;
        }
    }
    if ((e = hxd_014_config_check(cfg, config_path, why, why_len)) != HX_OK) {
        return e;
    }
    if (cfg->log_level[0] == '\0') {
        memcpy(cfg->log_level, cfg->console_log_type, sizeof(cfg->log_level));
    }
    return HX_OK;
}

char *hxd_config_dump(const struct hxd_config *cfg)
{
    struct json_object *o = hx_cfg_to_json(table, N, cfg);
    char *s;

    if (o == NULL) {
        return NULL;
    }
    s = strdup(json_object_to_json_string_ext(
        o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
    return s;
}

/* What a reload applies; every other option needs a restart (docs/hykexd.md "Reload"). */
static const char *const live_options[] = {
    "logging_config.console_log_type",
    "logging_config.colorless_console_log",
    "logging_config.file_log_type",
    "logging_config.filename",
    "log_level",
    "certificate_config.cert_authority_path",
    "certificate_config.cert_path",
    "certificate_config.key_path",
    "peer.tls_groups",
    "trusted_peers",
    "certificate_config.expiry_warning_days",
};

size_t hxd_config_changed(const struct hxd_config *a, const struct hxd_config *b,
                          const char **names, bool *live, size_t cap)
{
    size_t n = 0;

    for (size_t i = 0; i < N; i++) {
        const struct hx_cfg_opt *o = &table[i];
        if (memcmp((const char *)a + o->offset, (const char *)b + o->offset, o->size) == 0) {
            continue;
        }
        if (n < cap) {
            names[n] = o->name;
            live[n] = false;
            for (size_t k = 0; k < sizeof(live_options) / sizeof(live_options[0]); k++) {
                live[n] = live[n] || strcmp(live_options[k], o->name) == 0;
            }
        }
        n++;
    }
    return n;
}

const struct hxd_peer *hxd_config_peer(const struct hxd_config *cfg, const struct hx_uuid *uuid)
{
    for (size_t i = 0; i < cfg->trusted.n; i++) {
        if (hx_uuid_equal(&cfg->trusted.peers[i].uuid, uuid)) {
            return &cfg->trusted.peers[i];
        }
    }
    return NULL;
}

/* ---- api.etsi014: the checks across options, made once the whole configuration is read ---- */

/* A pair stream's method and sources, parsed as the stream service will parse them, so that a
 * typo stops the start, not every request. key names the option. */
static hx_err check_method(const struct hxd_config *cfg, const char *path, const char *key,
                           const char *method, const char *key_sources, char *why, size_t why_len)
{
    char uri[400], reason[300], node[HX_UUID_STR_LEN + 1];
    struct hx_uri u;

    hx_uuid_format(&cfg->uuid, node);
    snprintf(uri, sizeof(uri), "hybrid://etsi014@%s?hybridization=%s&key_sources=%s", node, method,
             key_sources);
    if (hx_uri_parse(uri, &u, reason, sizeof(reason)) != HX_OK) {
        snprintf(why, why_len, "%s: key '%s': %s", path, key, reason);
        return HX_ERR_CONFIG;
    }
    for (size_t i = 0; i < u.n_sources; i++) {
        if (u.sources[i] == HX_SRC_QKD && cfg->qkd_protocol == HXD_QKD_NONE) {
            snprintf(why, why_len,
                     "%s: key '%s': QKD, but this node has no QKD source (qkd_address)", path, key);
            return HX_ERR_CONFIG;
        }
    }
    return HX_OK;
}

static bool is_local(const struct hxd_014_config *c, const char *id)
{
    for (size_t i = 0; i < c->local.n; i++) {
        if (strcmp(c->local.saes[i].id, id) == 0) {
            return true;
        }
    }
    return false;
}

hx_err hxd_014_config_check(const struct hxd_config *cfg, const char *path, char *why,
                            size_t why_len)
{
    const struct hxd_014_config *c = &cfg->e014;
    char node[HX_UUID_STR_LEN + 1];

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
    hx_err e =
        check_method(cfg, path, "api.etsi014.key_sources", c->method, c->key_sources, why, why_len);
    for (size_t i = 0; i < c->pairs.n && e == HX_OK; i++) {
        const struct hxd_014_override *o = &c->pairs.o[i];
        const char *method, *sources;
        char key[200];
        snprintf(key, sizeof(key), "api.etsi014.pairs[%zu] (%s -> %s)", i, o->master, o->slave);
        if (is_local(c, o->master) == is_local(c, o->slave)) {
            snprintf(why, why_len,
                     "%s: key '%s': one SAE of the pair must be local here, the other remote", path,
                     key);
            return HX_ERR_CONFIG;
        }
        hxd_014_pair_method(c, o->master, o->slave, &method, &sources);
        e = check_method(cfg, path, key, method, sources, why, why_len);
    }
    return e;
}
