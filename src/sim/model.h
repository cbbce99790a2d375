/*
 * The simulated QKD network: KMEs, the links between them with their key pools, ETSI 004 key
 * streams and ETSI 014 stored keys. Every protocol front end (004 JSON, 004 binary, 014) and
 * the control socket call into this one model, under one lock; OPEN_CONNECT waits on its
 * condition variable for the peer application.
 *
 * Key material: each link has a 256-bit seed (from OpenSSL's CSPRNG, or fixed in the config for
 * reproducible tests); the key at (stream id, position, size) is HKDF-SHA256 of it, so both ends
 * of a link hand out identical bytes. The pool is a token bucket of key bits refilled at the
 * link's rate up to its capacity; every key taken from a link is charged to the pool once.
 */
#ifndef HX_SIM_MODEL_H
#define HX_SIM_MODEL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/uuid.h"
#include "hykex/hykex.h"

#define SIM_MAX_ID 64      /* KME, SAE and link ids */
#define SIM_MAX_URI 512    /* ETSI 004 source/destination */
#define SIM_MAX_CHUNK 4096 /* largest key_chunk_size a stream may ask for, bytes */
#define SIM_MAX_SAES 16
#define SIM_MAX_KMES 64
#define SIM_MAX_LINKS 256
#define SIM_MAX_STREAMS 4096
#define SIM_014_MAX_KEY_BITS 8192
#define SIM_014_MIN_KEY_BITS 8
#define SIM_014_DEFAULT_KEY_BITS 256
#define SIM_014_MAX_PER_REQUEST 128
#define SIM_014_MAX_STORED 100000

/* One listener of a KME (filled from the config). */
struct sim_listener {
    bool enabled;
    char host[256];
    uint16_t port;
    /* 004 JSON: the reference module's quirks (same stream id for identical source and
     * destination; GET_KEY ignores index and hands out the next key). */
    bool reference_compat;
    /* 004 binary: framing "1.0.1" (QUBIP) or "2.1.1" (ETSI reference code). */
    int framing;
    /* TLS (004 binary: optional; 014: mandatory), client certificates required. */
    char cert[512], key[512], ca[512];
};

enum sim_framing {
    SIM_FRAMING_101 = 0,
    SIM_FRAMING_211 = 1,
};

struct sim_id_list {
    char ids[SIM_MAX_SAES][SIM_MAX_ID];
    size_t n;
};

/*
 * Quirks of KMEs written by others (docs/qkdsim.md "Profiles"), so that hykexd's tests meet
 * the field: each is a bit of sim_kme.quirks, set by the KME's "profile".
 */
enum sim_quirk {
    /* ETSI 004: OPEN_CONNECT with timeout 0 is refused with status 6, and a QoS whose
     * min_bps, max_bps or jitter is 0 gets status 7 with a counter-proposal (QUBIP). */
    SIM_QUIRK_STRICT_QOS = 1u << 0,
    /* ETSI 004: a key not yet made (empty pool) comes as all zeros with status 0, and the
     * position stays unconsumed (QUBIP). */
    SIM_QUIRK_ZERO_KEYS = 1u << 1,
    /* ETSI 004: this KME gives its end of a stream an id of its own; the second end to open
     * finds the stream by its URIs, and each KME knows only its own id. */
    SIM_QUIRK_OWN_IDS = 1u << 2,
    /* ETSI 014: an empty pool answers 400 "try again later" instead of 503. */
    SIM_QUIRK_TRY_LATER_014 = 1u << 3,
    /* ETSI 014: only the last enc_keys batch of a master/slave pair can be fetched by
     * dec_keys; an enc_keys call forgets the pair's earlier keys. */
    SIM_QUIRK_LAST_BATCH_014 = 1u << 4,
    /* ETSI 004 JSON: the stream ids this KME gives out are not UUIDs ("ks-" and 32 hex
     * digits), and it takes them back in GET_KEY and CLOSE (a JSON-dialect KME is free to). */
    SIM_QUIRK_OPAQUE_IDS = 1u << 5,
};

struct sim_kme {
    char id[SIM_MAX_ID];
    unsigned quirks;     /* enum sim_quirk bits */
    struct hx_uuid node; /* the trusted node this KME serves */
    struct sim_id_list saes;
    struct sim_listener l004_json, l004_bin, l014;
    int64_t max_per_request; /* ETSI 014 max_key_per_request (1..SIM_014_MAX_PER_REQUEST) */
    /* faults */
    bool corrupt_next;   /* flip a bit in the next key this KME delivers */
    uint64_t drop_epoch; /* connections older than this epoch close ("drop all") */
};

struct sim_link {
    char id[SIM_MAX_ID];
    size_t a, b;     /* KME indices */
    double rate_bps; /* 0: unbounded */
    double capacity_bits;
    double level_bits;
    double last_refill; /* monotonic seconds */
    uint8_t seed[32];
    bool paused;
    uint64_t keys_delivered;
};

/* One delivered position at one end. */
struct sim_position {
    uint32_t index;
    double first_at; /* when either end first took it (for metadata age) */
    uint8_t taken;   /* bit 0: end A took it, bit 1: end B */
};

struct sim_stream {
    bool used;
    struct hx_uuid id;    /* the stream's id (and the salt of its keys) */
    struct hx_uuid alias; /* SIM_QUIRK_OWN_IDS: end 1's own id; nil: none */
    size_t link;
    size_t end_kme[2]; /* [0] opened first (initiator side), [1] the other end */
    bool opened[2];
    char uri[2][SIM_MAX_URI]; /* source, destination as first given */
    struct hykex_qos qos;
    uint32_t next_index[2];
    uint64_t floor;           /* every index below was taken at both ends */
    struct sim_position *pos; /* indices >= floor taken by at least one end, sorted */
    size_t n_pos, cap_pos;
    bool compat;
};

/* An ETSI 014 key waiting for its slave SAE. */
struct sim_key014 {
    struct hx_uuid id;
    size_t kme; /* where it waits (the slave's KME) */
    char master[SIM_MAX_ID], slave[SIM_MAX_ID];
    uint8_t *key;
    size_t len;
};

struct sim_net {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    struct sim_kme *kmes;
    size_t n_kmes;
    struct sim_link *links;
    size_t n_links;
    struct sim_stream *streams; /* SIM_MAX_STREAMS slots */
    struct sim_key014 *keys014;
    size_t n_keys014, cap_keys014;
    uint64_t epoch;
    bool stopping;
    /* Set by the servers: closes every connection to a KME ("drop" fault). */
    void (*drop_connections)(size_t kme);
};

/* Result of a model call: an ETSI 004 status and, when not 0, a message naming the problem. */
struct sim_result {
    int status;
    char message[200];
};

HX_MUST_CHECK hx_err sim_net_load(struct sim_net *net, const char *path, char *why, size_t why_len);
void sim_net_free(struct sim_net *net);
/* Wakes every waiter and makes further waits return at once. */
void sim_net_stop(struct sim_net *net);
/* The names of the single quirks in `quirks`, comma-separated ("" for none). */
void sim_profile_format(unsigned quirks, char *out, size_t cap);
/* SIM_QUIRK_OPAQUE_IDS: a stream id as such a KME gives it out ("ks-" and 32 hex digits, no
 * UUID form), and back (false: not one it gave out). */
#define SIM_OPAQUE_ID_LEN 35
void sim_opaque_format(const struct hx_uuid *id, char out[SIM_OPAQUE_ID_LEN + 1]);
bool sim_opaque_parse(const char *text, struct hx_uuid *id);
size_t sim_kme_find_by_node(const struct sim_net *net, const struct hx_uuid *node);

/*
 * ETSI 004 OPEN_CONNECT at KME `kme`. *ksid: nil = make one (returned), else the stream to join
 * or to create under that id. qos is in/out (a counter-proposal with status 7). timeout_ms
 * 0 = do not wait (status 1 when the peer is not there yet). compat: reference_compat listener.
 */
void sim_open(struct sim_net *net, size_t kme, const char *src, const char *dst,
              struct hykex_qos *qos, struct hx_uuid *ksid, bool compat, struct sim_result *r);
/*
 * ETSI 004 GET_KEY. *index: in = wanted position (has_index), out = the position delivered.
 * key gets qos.key_chunk_size bytes (cap >= SIM_MAX_CHUNK). meta gets the metadata JSON;
 * meta_cap is the caller's metadata capacity: status 8 with *meta_needed when too small.
 */
void sim_get_key(struct sim_net *net, size_t kme, const struct hx_uuid *ksid, bool has_index,
                 uint32_t *index, uint8_t *key, size_t *key_len, char *meta, size_t meta_cap,
                 size_t *meta_needed, struct sim_result *r);
void sim_close(struct sim_net *net, size_t kme, const struct hx_uuid *ksid, struct sim_result *r);

/* ETSI 014. Return an HTTP status; body (JSON) into *body (malloc'd). */
int sim_014_status(struct sim_net *net, size_t kme, const char *caller, const char *slave,
                   char **body);
int sim_014_enc_keys(struct sim_net *net, size_t kme, const char *caller, const char *slave,
                     long number, long size_bits, char **body);
int sim_014_dec_keys(struct sim_net *net, size_t kme, const char *caller, const char *master,
                     const struct hx_uuid *ids, size_t n_ids, char **body);

/* Control: "pause LINK", "resume LINK", "drain LINK", "corrupt KME", "drop KME", "pools". */
int sim_control(struct sim_net *net, const char *line, char **reply);

#endif
