/*
 * hykexd's configuration: the reference module's config.json and trusted_peers_info.json keys,
 * unchanged, plus hykex's own (docs/config.md). One table; unknown keys are errors.
 */
#ifndef HX_DAEMON_CONFIG_H
#define HX_DAEMON_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "common/err.h"
#include "common/uuid.h"
#include "daemon/config014.h" /* struct hxd_014_config (api.etsi014) */

#define HXD_MAX_PEERS 64
/* HXD_MAX_HOST and HXD_MAX_PATH: daemon/config014.h (its struct uses them too) */

struct hxd_addr {
    char host[HXD_MAX_HOST];
    uint16_t port;
};

struct hxd_peer {
    struct hx_uuid uuid;
    struct hxd_addr address;
};

struct hxd_peers {
    struct hxd_peer peers[HXD_MAX_PEERS];
    size_t n;
};

enum hxd_qkd_protocol {
    HXD_QKD_NONE = 0,
    HXD_QKD_004_JSON,
    HXD_QKD_004_BINARY,
    HXD_QKD_014,
};

enum hxd_qkd_join {
    HXD_JOIN_DEFAULT = 0, /* per protocol: 004 = join the initiator's stream id */
    HXD_JOIN_STREAM_ID,   /* the responder opens with the initiator's QKD stream id */
    HXD_JOIN_SAME_URIS,   /* both open their own and rely on identical URIs (reference QKD node) */
};

/* KEM key pairs of a batch (kem.key_pairs; docs/peer-protocol.md). */
enum hxd_key_pairs {
    HXD_KEY_PAIRS_PER_POSITION = 0, /* a fresh key pair for every position */
    HXD_KEY_PAIRS_PER_BATCH,        /* one per batch and KEM source, encapsulated to count times */
};

struct hxd_config {
    struct hx_uuid uuid;
    /* reference: logging_config */
    char console_log_type[16];
    bool colorless_console_log;
    char file_log_type[16];
    char log_filename[HXD_MAX_PATH];
    /* reference: certificate_config */
    char certificate_ip[HXD_MAX_HOST];
    char ca_path[HXD_MAX_PATH];
    char cert_path[HXD_MAX_PATH];
    char key_path[HXD_MAX_PATH];
    /* reference: addresses */
    struct hxd_addr api;  /* hybridization_server_address */
    struct hxd_addr qkd;  /* qkd_address */
    struct hxd_addr peer; /* peer_local_address */
    /* hykex: QKD */
    int qkd_protocol; /* enum hxd_qkd_protocol; default: 004 JSON when qkd_address is set */
    int qkd_framing;  /* 004 binary: 0 = 1.0.1, 1 = 2.1.1 */
    int qkd_join;     /* enum hxd_qkd_join */
    char qkd_tls_cert[HXD_MAX_PATH], qkd_tls_key[HXD_MAX_PATH], qkd_tls_ca[HXD_MAX_PATH];
    char qkd_sae_id[64];
    char qkd_application[64];
    uint32_t qkd_key_bytes;
    uint32_t qkd_pipeline;
    struct {
        uint32_t timeout_ms, min_bps, max_bps, jitter, priority, ttl;
    } qkd_qos; /* what OPEN_CONNECT asks the KME for (key_chunk_size: qkd_key_bytes) */
    /* hykex: API */
    char api_unix_socket[108];
    char api_allow_uids[256];
    char api_allow_gids[256];
    bool api_allow_remote;
    /* hykex: metrics endpoint (docs/metrics.md) */
    struct hxd_addr metrics; /* port 0: off */
    bool metrics_allow_remote;
    char api_tls_host[256];
    uint32_t api_tls_port;
    char api_tls_cert[HXD_MAX_PATH], api_tls_key[HXD_MAX_PATH], api_tls_ca[HXD_MAX_PATH];
    struct hxd_014_config e014; /* hykex: the ETSI 014 server (api.etsi014) */
    /* hykex: peer link */
    char tls_groups[256];
    uint32_t keepalive_s;
    uint32_t reconnect_max_s;
    bool batch_macs; /* batches MACed under a signed batch's key (batch_auth.c) */
    /* hykex: production and limits */
    char state_dir[HXD_MAX_PATH];
    bool store_sync;
    uint32_t batch_size;
    uint32_t batch_max; /* batches grow up to it while keys are stocked (stream.h) */
    int kem_key_pairs;  /* enum hxd_key_pairs */
    uint32_t buffer_depth;
    bool pace; /* GET_KEY releases keys at the production rate to a draining application */
    uint32_t initiator_workers; /* batches this node makes at once, over all its streams */
    uint32_t responder_workers; /* the peer's batch messages answered at once */
    uint32_t default_timeout_ms;
    uint32_t max_timeout_ms; /* QoS timeouts are cut to it */
    uint32_t max_unjoined;   /* streams a peer may announce that are not joined here */
    uint32_t status_streams; /* STATUS lists this many streams, summarises the rest */
    uint32_t secure_heap_mb; /* the secure heap the limits may need, at most */
    uint32_t max_streams;
    uint32_t max_clients;
    uint32_t max_key_chunk;
    char log_level[16];
    char run_user[64], run_group[64]; /* privileges dropped to these after binding */
    /* hykex: relay across trusted nodes (docs/relay.md); off by default */
    bool relay_enabled;
    bool relay_transit;        /* relay other nodes' messages (else only its own streams) */
    uint32_t relay_announce_s; /* announcement period; lifetime 4 periods */
    uint32_t relay_max_nodes;  /* nodes the map holds */
    uint32_t relay_max_hops;   /* longest path shown or used */
    char relay_avoid[1024];    /* comma-separated node UUIDs never to relay through */
    /* trusted peers (inline "trusted_peers", or trusted_peers_info.json) */
    struct hxd_peers trusted;
    bool self_listed; /* this node's own entry was in the list, and was dropped */
    /* hykex: day-2 operations (docs/hykexd.md "Reload") */
    uint32_t cert_warn_days; /* warn this many days ahead of a certificate's expiry */
};

/*
 * Loads config_path (required) and peers_path (optional: the reference's separate file;
 * NULL = none). why gets "<file>: key '<path>': <reason>" on failure.
 */
HX_MUST_CHECK hx_err hxd_config_load(struct hxd_config *cfg, const char *config_path,
                                     const char *peers_path, char *why, size_t why_len);
/*
 * The largest batch a stream may reach (daemon/stream.h hxd_stream_batch_size): limits.batch_size
 * doubled while the double is within limits.batch_max and three of it within
 * limits.buffer_depth (a batch grows to m only while m fits beside 2 m keys ready). What the
 * secure heap's scratch, the key pairs made ahead and a restart's retries are sized for.
 */
uint32_t hxd_config_batch_top(const struct hxd_config *cfg);
/* The effective configuration as JSON text (malloc'd). */
char *hxd_config_dump(const struct hxd_config *cfg);
/*
 * The options whose values differ between a and b (their dotted names, at most cap; returns how
 * many differ), and whether each can change while hykexd runs (SIGHUP, docs/hykexd.md).
 */
size_t hxd_config_changed(const struct hxd_config *a, const struct hxd_config *b,
                          const char **names, bool *live, size_t cap);
const struct hxd_peer *hxd_config_peer(const struct hxd_config *cfg, const struct hx_uuid *uuid);
/* With api.etsi014.port set: everything it needs, consistent; why names the key. */
HX_MUST_CHECK hx_err hxd_014_config_check(const struct hxd_config *cfg, const char *path, char *why,
                                          size_t why_len);

#endif
