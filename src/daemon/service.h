/*
 * The stream service: ETSI 004's OPEN_CONNECT, GET_KEY and CLOSE, and hykex's STATUS, as calls
 * on the daemon's key streams. The API (api/handlers.c) parses a request, calls one of these
 * and writes the reply from the plain result; it never sees a stream, the daemon's lock or its
 * header. Everything a request does to the streams happens here: creating and finding them,
 * ownership, waiting for the peer application or for a key, delivering, closing, TTL, and the
 * store writes that go with it.
 *
 * Threads and lock: each call runs on the caller's thread (one per application connection) and
 * takes d->lock itself; it returns with the lock released. hxd_svc_open and hxd_svc_get block
 * until their deadline (the QoS timeout, else the node's default) on d->changed, a monotonic
 * condition variable. SQLite writes (a stream's row, a delivery), peer messages and the KME's
 * calls run outside the lock. Every outcome carries an ETSI 004 status set in one place
 * (hxd_svc_etsi_status) and a message for people.
 */
#ifndef HX_DAEMON_SERVICE_H
#define HX_DAEMON_SERVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/secret.h"
#include "common/uuid.h"
#include "daemon/config.h"
#include "daemon/relay.h"
#include "hykex/hykex.h"
#include "peer/link.h"
#include "proto/uri.h"

struct hxd;

/* An application's identity: "uid:N" (Unix socket), "cert:CN" (mutual TLS), "" (anyone). */
#define HXD_SVC_MAX_IDENTITY 80
/* The longest URI a stream keeps (ETSI 004 JSON's limit). */
#define HXD_SVC_MAX_URI 1024

/* Why a request failed, as the service sees it; hxd_svc_etsi_status() gives its ETSI status. */
enum hxd_svc_err {
    HXD_SVC_OK = 0,
    HXD_SVC_REFUSED,     /* a request this node cannot serve: URIs, roles, peer, sources, full */
    HXD_SVC_QOS,         /* QoS that cannot be met: a counter-proposal comes with it */
    HXD_SVC_IN_USE,      /* the key stream id is taken */
    HXD_SVC_TIMEOUT,     /* the peer application did not open the stream in time */
    HXD_SVC_NOT_OPEN,    /* not open here, closed meanwhile, or another application's */
    HXD_SVC_METADATA,    /* the client's metadata buffer is too small */
    HXD_SVC_NO_KEY,      /* position delivered or given up, too far ahead, none in time */
    HXD_SVC_PEER_CLOSED, /* the peer application closed the stream */
    HXD_SVC_FAILED,      /* this node could not do it: store, memory, the client went away */
    HXD_SVC_UPSTREAM,    /* the KME, the peer node or a failed batch chose the status */
};

/* The ETSI 004 status of an outcome (HXD_SVC_UPSTREAM: 4; the result carries the real one). */
int hxd_svc_etsi_status(enum hxd_svc_err e);

struct hxd_svc_result {
    enum hxd_svc_err err;
    int status;    /* ETSI 004 status: 0 with HXD_SVC_OK */
    char msg[300]; /* why, for the reply's message; "" with HXD_SVC_OK */
};

/* Has the application hung up while its request waited? (poll its socket) */
typedef bool (*hxd_svc_gone_fn)(void *arg);

struct hxd_svc_open_req {
    const char *source, *destination; /* hybrid:// URIs, at most HXD_SVC_MAX_URI bytes */
    struct hx_uuid ksid;              /* nil: none given (this node or the peer picks one) */
    struct hykex_qos qos;
    const char *identity; /* who opens it; only that identity may use it ("": anyone) */
    hxd_svc_gone_fn gone; /* asked on every wake-up of the wait (at least every 250 ms): a
                           * client gone ends it; NULL: never */
    void *gone_arg;
};

struct hxd_svc_open_res {
    struct hxd_svc_result r;
    struct hx_uuid ksid; /* HXD_SVC_OK: the stream's id */
    bool has_qos;        /* HXD_SVC_QOS: qos is the counter-proposal */
    struct hykex_qos qos;
};

/*
 * OPEN_CONNECT: checks the URIs (this node must be exactly one end; the other a trusted peer),
 * sources and QoS; reopens a stream restored after a restart; as the source node creates the
 * stream, opens its QKD stream, announces it and waits for the peer application; as the
 * destination waits for the source node's announcement and joins it. Blocks until the QoS
 * timeout at most (cut to limits.max_timeout_ms), or until the client hangs up: then the stream
 * is dropped here and at the peer node.
 */
void hxd_svc_open(struct hxd *d, const struct hxd_svc_open_req *req, struct hxd_svc_open_res *res);

struct hxd_svc_get_req {
    struct hx_uuid ksid;
    bool has_index; /* false: the next position not handed out by a GET_KEY */
    uint64_t index;
    bool metadata_too_small; /* the client cannot take the smallest metadata: status 8 */
    const char *identity;
    hxd_svc_gone_fn gone; /* asked after a wait, before a key is taken; NULL: never */
    void *gone_arg;
    bool pace; /* with limits.pace: a key may be held until the stream's pace lets it go
                * (daemon/pace.h); ETSI 004's GET_KEY, one key per call */
};

struct hxd_svc_get_res {
    struct hxd_svc_result r;
    /* HXD_SVC_OK: the key (delivered and recorded; the caller frees it, which wipes it), its
     * position, how long it was ready (ms), and what made it (static names) */
    struct hx_secret *key;
    uint64_t index;
    uint64_t age_ms;
    const char *method;
    const char *sources[HX_URI_MAX_SOURCES];
    size_t n_sources;
    unsigned hops; /* relays between the two nodes on the current path (0: direct) */
};

/*
 * GET_KEY: the key at a position of a stream this identity opened, waiting for it until the
 * stream's QoS timeout. A key leaves at most once, also across a crash: its delivery is
 * recorded in the store before it is returned.
 */
void hxd_svc_get(struct hxd *d, const struct hxd_svc_get_req *req, struct hxd_svc_get_res *res);

/* CLOSE: ends the stream here (its unused keys wiped, its row deleted), tells the peer node
 * and closes its QKD stream. */
void hxd_svc_close(struct hxd *d, const struct hx_uuid *ksid, const char *identity,
                   struct hxd_svc_result *res);

enum hxd_svc_state {
    HXD_SVC_PRODUCING = 0,
    HXD_SVC_WAITING_PEER, /* the peer application has not opened it yet */
    HXD_SVC_FAILING,      /* the last batch failed (last_error says why) */
    HXD_SVC_CLOSED_BY_PEER,
};

struct hxd_svc_stream_info {
    struct hx_uuid ksid, peer;
    bool initiator;
    const char *method;
    const char *sources[HX_URI_MAX_SOURCES];
    size_t n_sources;
    uint64_t ready, prepared, buffer_depth, produced, delivered, next_index, failed_batches;
    enum hxd_svc_state state;
    bool failing;         /* the last batch failed (also when closed by the peer since) */
    char last_error[200]; /* failing: why */
    bool restored;
    int64_t opened_at; /* Unix time */
    double keys_per_s; /* produced over the last minute (since opened, when younger) */
    /* field2 (KME recovery, flow control): reopen attempts of its QKD stream (qkd_recover.c) */
    uint64_t qkd_reconnects;
    /* paths its relayed QKD part moved to (relay_repath.c) */
    uint64_t reroutes;
};

struct hxd_svc_peer_info {
    struct hx_uuid uuid;
    struct hx_link_info link; /* zeros when the link layer does not know the peer */
};

enum hxd_svc_store {
    HXD_SVC_STORE_MEMORY = 0,
    HXD_SVC_STORE_DURABLE,
    HXD_SVC_STORE_FSYNC,
};

struct hxd_svc_status {
    struct hx_uuid node;
    int64_t cert_not_after; /* Unix time; 0: unknown */
    int64_t ca_not_after;   /* the CA's */
    uint32_t cert_warn_days;
    int64_t started_at; /* Unix time */
    uint64_t reloads, reloads_refused;
    int64_t last_reload_at; /* 0: never */
    char last_reload[400];
    bool kme_configured;
    uint64_t kme_last_at, kme_last_us, kme_last_ok; /* the last KME call (metrics.h) */
    enum hxd_svc_store store;
    struct hxd_svc_peer_info *peers; /* the trusted peers, in configuration order */
    size_t n_peers;
    struct hxd_svc_stream_info *streams; /* the streams in table order */
    size_t n_streams;
    uint64_t batches_ok, batches_failed, confirm_mismatch, store_errors;
    struct hxd_relay_view *relay; /* the relay's map and paths; NULL unless relay.enabled */
};

/*
 * RELOAD (hykex reload): only for identity "uid:N" with N the daemon's uid or 0 (its Unix
 * socket); raises SIGHUP at the daemon and waits (30 s at most) for that reload's outcome:
 * applied (result says what) or refused (res says why).
 */
void hxd_svc_reload(struct hxd *d, const char *identity, struct hxd_svc_result *res, char *result,
                    size_t cap);

/* A snapshot of the node for operators (hykex status); release it with hxd_svc_status_wipe. */
HX_MUST_CHECK hx_err hxd_svc_status(struct hxd *d, struct hxd_svc_status *out);
void hxd_svc_status_wipe(struct hxd_svc_status *st);

/* Wipes the established streams whose QoS TTL has passed since they were opened (wall clock:
 * opened_at survives restarts); a GET_KEY waiting on one answers "closed". Main loop. */
void hxd_svc_expire(struct hxd *d);
/* Shutdown: every call waiting (OPEN_CONNECT, GET_KEY) returns now, and later ones at once, so
 * that the API's connection threads can leave before the API stops (main, on SIGTERM). */
void hxd_svc_shutdown(struct hxd *d);

/* ---- ETSI 014: SAEs over the peer links (daemon/etsi014_peers.c, docs/etsi014.md) ---- */
/* Sends this node's api.etsi014.local_saes (SAE_LIST) to every trusted peer whose link is up. */
void hxd_svc_014_announce(struct hxd *d);
/* The SAEs the peers announced, each with its node, into out (at most cap); how many. An SAE
 * announced by two peers (the first claim stands), or that is local here, is left out. */
size_t hxd_svc_014_learned(struct hxd *d, struct hxd_014_sae *out, size_t cap);
/* Whether the peer's last SAE_LIST names sae. */
bool hxd_svc_014_announced(struct hxd *d, const struct hx_uuid *peer, const char *sae);
/* The boot id of the peer's last SAE_LIST (it changes when the peer restarts); false: none
 * yet. */
bool hxd_svc_014_peer_boot(struct hxd *d, const struct hx_uuid *peer, struct hx_uuid *boot);

/* ETSI 014 pairs across restarts (daemon/etsi014_kid.c): a pair stream's key-ID key kept sealed
 * in the durable store (a no-op without state_dir; an error is counted in store_errors) ... */
HX_MUST_CHECK hx_err hxd_svc_014_secret_put(struct hxd *d, const struct hx_uuid *ksid,
                                            const uint8_t *k, size_t len);
/* ... and read back into out (exactly len bytes): false when none is kept. */
bool hxd_svc_014_secret_get(struct hxd *d, const struct hx_uuid *ksid, uint8_t *out, size_t len);
/* Tells the peer to close its end of a stream this node does not hold (a pair this node lost
 * with a restart); false, and nothing sent, when this node holds the stream. */
bool hxd_svc_014_reset(struct hxd *d, const struct hx_uuid *peer, const struct hx_uuid *ksid);

/* The node's configuration, for the API's listeners. */
const struct hxd_config *hxd_svc_config(const struct hxd *d);

#endif
