/*
 * hykexd's state: the configuration, the peer links, the key streams and the worker pools.
 *
 * Threads: an accept thread per API listener and one thread per application connection (its
 * OPEN_CONNECT blocks in the stream service, daemon/service.c, on `changed` until the peer
 * arrives, its GET_KEY on its stream's `wake` until a key does, and with limits.pace until
 * the key may leave, daemon/pace.h); one I/O thread per peer link
 * (never blocks on disk: daemon/dispatch.c); an initiator pool running key-production batches (they
 * wait for the peer's replies) and a responder pool answering them (never waits on the network, so
 * two nodes' initiators can never starve each other); one writer thread for the store writes a
 * link's frames decide (daemon/pool.c); with metrics.port, one libmicrohttpd thread serving the
 * metrics (daemon/metrics_server.c: d->lock for a status copy per scrape). One mutex guards the
 * streams and the pools' queues; `changed` and `replied` are monotonic condition variables
 * (deadlines from common/clock.h): `changed` is broadcast on every stream change, `replied` on
 * every peer reply and link event.
 */
#ifndef HX_DAEMON_HXD_H
#define HX_DAEMON_HXD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/clock.h"
#include "common/secret.h"
#include "common/uuid.h"
#include "crypto/kem.h"
#include "crypto/sig.h"
#include "daemon/config.h"
#include "daemon/metrics.h"
#include "daemon/pace.h"
#include "hykex/hykex.h"
#include "peer/link.h"
#include "proto/etsi004.h"
#include "proto/peer.h"
#include "proto/uri.h"
#include "source/qkd.h"
#include "source/qkd014.h"
#include "store/store.h"

enum hxd_role {
    HXD_INITIATOR = 0, /* this node is the source URI's node */
    HXD_RESPONDER = 1,
};

/* A key of a committed batch, or (initiator) of a prepared one the peer may not hold yet. */
/* Positions first .. first+count-1 travelled a path with this many relays. */
struct hxd_hops_run {
    uint64_t first, count;
    unsigned relays;
};

struct hxd_key {
    uint64_t pos;
    double ready_at;
    struct hx_secret *key;
    bool prepared; /* never handed out until the responder's ACK (or its answer) */
};

/* Batches of one stream in flight at once: the responder's work overlaps the initiator's. */
#define HXD_PIPELINE 3

/* The initiator's view of one batch in flight: the peer's replies as they arrive. */
struct hxd_inflight {
    bool used;
    uint64_t first;
    uint8_t *resp;
    size_t resp_len;
    bool resp_ready;
    bool want_ack;  /* BATCH_FIN or BATCH_QUERY sent: an ACK now answers this attempt */
    int ack_status; /* -1: waiting */
};

/*
 * A stream's batch authentication keys (docs/peer-protocol.md "Authentication"): each derived
 * from a batch both nodes signed over a direct link, valid on that link only. In the secure
 * heap, wiped when replaced or dropped.
 */
struct hxd_auth_key {
    bool set;
    uint64_t anchor; /* the first position of the signed batch it comes from */
    uint64_t serial; /* the link that batch travelled */
    uint32_t uses;   /* initiator: batches authenticated under it */
    uint8_t key[32];
};
struct hxd_auth {
    struct hxd_auth_key cur; /* initiator: in use; responder: the latest */
    /* initiator: keys offered by signed batches, awaiting the responder's BATCH_AUTH (one per
     * batch in flight); responder: the ones before cur, newest first (batches in flight may
     * still name them) */
    struct hxd_auth_key k[HXD_PIPELINE];
    uint64_t n_offered; /* initiator: offers made, which picks the slot of the next one */
    bool refused;       /* initiator: a BATCH_AUTH did not confirm a key: signed from then on */
};

/* An in-flight batch at the responder, between BATCH_RESP and BATCH_FIN. */
struct hxd_pending {
    uint64_t first;
    uint32_t count;
    uint8_t transcript[32];
    uint8_t tag_i[32];
    /* authenticated by MACs: the initiator's MAC its BATCH_FIN must carry (else a signature) */
    bool mac;
    uint64_t anchor;
    uint8_t mac_i[32];
    /* signed over a direct link: the authentication key the batch gives once committed, and
     * the link it came on (batch_auth.c) */
    struct hx_secret *auth_key;
    uint64_t auth_serial;
    struct hx_secret **keys;
    bool busy; /* a BATCH_FIN for it is being committed (its keys are with that thread) */
};

#define HXD_MAX_OWNER 80

struct hxd_stream {
    bool used;
    char owner[HXD_MAX_OWNER]; /* identity of the application that opened it ("": anyone) */
    struct hx_uuid ksid;
    enum hxd_role role;
    struct hx_uuid peer;
    char src[HX_004_MAX_URI + 1], dst[HX_004_MAX_URI + 1];
    struct hx_uri uri; /* method and sources (from the source URI) */
    struct hykex_qos qos;
    struct hx_qkd_ksid qkd_ksid; /* the KME's id as it gave it; none: no QKD source or not opened */
    char peer_sae[64];           /* ETSI 014: the peer node's SAE id (from STREAM_OPEN / JOIN) */
    uint32_t kme_max_keys;       /* ETSI 014 initiator: the KME's max_key_per_request for peer_sae
                                    (0: not known yet; UINT32_MAX: the KME gives none) */
    bool announced;              /* responder: the initiator's STREAM_OPEN arrived */
    int64_t join_by;             /* responder, announced: dropped unless joined by then (clock.h) */
    bool app_open;               /* the local application holds it open */
    bool peer_app_open;          /* the peer application has opened it (JOIN seen) */
    bool peer_closed;
    bool qkd_open;
    bool restored;     /* restored from the store; its application has not reopened it yet */
    bool peer_removed; /* its peer node was removed from the trusted peers (reload) */
    /* keys */
    struct hxd_key *ready; /* sorted by pos */
    size_t n_ready, cap_ready;
    uint64_t produced;     /* every position below is committed (contiguous watermark) */
    uint64_t next_first;   /* initiator: first position of the next new batch */
    uint64_t qkd_next;     /* initiator: next QKD index (a batch the peer failed burns its keys;
                              one the KME had no key for yet gives them back: qkd_free) */
    uint64_t qkd_reserved; /* initiator, durable store: QKD indices below are reserved in the
                              store (initiator.c asks the KME for none above) */
    struct {
        uint64_t first, count;
    } done_above[4 * HXD_PIPELINE]; /* committed runs above the watermark */
    size_t n_done_above;
    struct {
        uint64_t first;
        uint32_t count;
    } retry[4 * HXD_PIPELINE]; /* initiator: failed batches, queried or made again */
    size_t n_retry;
    struct {
        uint64_t first;
        uint32_t count;
    } qkd_free[4 * HXD_PIPELINE]; /* initiator: QKD ranges taken but not spent (no key yet) */
    size_t n_qkd_free;
    bool qkd_waiting; /* initiator: the KME had no key yet; no new batch until one is made */
    /* KME recovery (qkd_recover.c): the KME lost this node's QKD stream or is away; no batch
     * is made until it is reopened. Attempts run on an initiator worker, one at a time, when
     * qkd_reopen_at has passed (back-off) or at once when the peer node reopens its end. */
    bool qkd_lost;
    bool qkd_reopen_queued;  /* an attempt is queued or running */
    bool qkd_reopen_quiet;   /* the next attempt answers the peer's QKD_REOPEN: none sent back */
    int64_t qkd_reopen_at;   /* clock.h deadline of the next attempt */
    int64_t qkd_peer_next;   /* a peer's QKD_REOPEN starts no attempt before this (a bound) */
    double qkd_backoff_s;    /* the next back-off step */
    uint64_t qkd_reconnects; /* reopen attempts made (STATUS) */
    /* Rerouting a stream whose QKD part is relayed (relay_repath.c): initiator: its pinned path
     * broke; no batch until the QKD links of a new path are open at every node (qkd_open is
     * false meanwhile). Responder: a RELAY_REPATH to answer. */
    bool repath_pending;
    bool repath_queued;         /* an attempt (or the responder's answer) is queued or running */
    int64_t repath_at;          /* clock.h deadline of the next attempt */
    uint32_t repath_epoch;      /* initiator: of the attempt running; responder: of the request */
    uint32_t repath_answer;     /* initiator: epoch answered (0: none yet) */
    uint8_t repath_kind;        /* initiator: the answer (enum hx_repath_kind) */
    struct hx_uuid repath_link; /* responder: the new incoming link's QKD stream id */
    uint64_t reroutes;          /* paths this stream moved to (STATUS) */
    /* The relays on the paths the latest batches travelled, by position (metadata.hops; runs of
     * the same count joined, the newest last; the oldest forgotten). */
    struct hxd_hops_run hops_run[16];
    size_t n_hops_run;
    /* The responder's window (window.c): initiator: no new batch reaches peer_limit (once one
     * is known); responder: the limit it last announced. */
    bool peer_limit_known;
    uint64_t peer_limit;
    uint64_t window_sent;
    uint64_t next_get; /* next position for a GET_KEY without index */
    uint64_t want;     /* highest position an application waits for, + 1 */
    unsigned inflight; /* initiator: batches queued or running */
    unsigned queued;   /* initiator: of those, queued jobs that have not picked a batch yet (at
                          most one: streams take turns in the queue, pool.c) */
    bool failing;      /* the last batch failed */
    int64_t retry_at;  /* initiator: no new batch before this deadline (clock.h); 0: none */
    int fail_status;
    char fail_msg[200];
    uint64_t delivered, confirmed_batches, failed_batches;
    int64_t opened_at; /* Unix time: TTL counts from it */
    /* keys/s over the last minute: produced, sampled every 10 s by hxd_svc_expire */
    struct {
        int64_t t; /* Unix time; 0: empty */
        uint64_t produced;
    } rate[7];
    size_t rate_next;
    /* paced delivery to a draining application (pace.h, limits.pace): fed by stream.c as keys
     * become ready, asked and told by service.c's GET_KEY */
    struct hxd_pace pace;
    /* initiator: the replies of the batches in flight */
    struct hxd_inflight fl[HXD_PIPELINE];
    /* responder: batches awaiting BATCH_FIN */
    struct hxd_pending pending[HXD_PIPELINE];
    /* both: the keys that authenticate batches by MACs (batch_auth.c); NULL until one */
    struct hxd_auth *auth;
};

/* A job for a pool: a batch to make (initiators), a peer message to answer (responders; ksid
 * then names the peer) or a store write (the writer). */
struct hxd_job {
    struct hxd_job *next;
    struct hx_uuid ksid;
    uint8_t type; /* enum hx_peer_type, or enum hxd_write for the writer */
    uint8_t *msg;
    size_t len;
};

struct hxd;
struct hxd_job;
/* What a pool's threads do with a job (no lock held): the initiator's batch, the responder's
 * frames, the writer's rows. Handed to hxd_pools_start by main, so that the pools (pool.c)
 * call nothing above them. */
typedef void (*hxd_job_fn)(struct hxd *d, struct hxd_job *j);

struct hxd_pool {
    hxd_job_fn run;
    pthread_t *threads;
    size_t n;
    struct hxd_job *head, *tail;
    pthread_cond_t wake;
    bool closed; /* stopped: new jobs are refused (before its start they wait in the queue) */
};

/*
 * Test-only misbehaviour, compiled in with HYKEX_FAULT_INJECTION (dev and asan presets, never
 * release) and set from the environment at start-up (hykexd.c): the fault tests make one node
 * a hostile peer and check that the other refuses it.
 */
enum hxd_fault {
    HXD_FAULT_NONE = 0,
    HXD_FAULT_RESP_SIG,    /* responder: BATCH_RESP with a bit of the signature flipped */
    HXD_FAULT_RESP_TAG,    /* responder: ... of the confirmation tag */
    HXD_FAULT_RESP_CT,     /* responder: ... of the first ciphertext */
    HXD_FAULT_RESP_REPLAY, /* responder: the previous BATCH_RESP's body under the new header */
    HXD_FAULT_FIN_SIG,     /* initiator: BATCH_FIN with a bit of the signature flipped */
    HXD_FAULT_FIN_TAG,     /* initiator: ... of the confirmation tag */
    /* the same, only in batches authenticated by MACs (the signed ones stay honest) */
    HXD_FAULT_RESP_MAC,    /* responder: a bit of the MAC flipped */
    HXD_FAULT_RESP_MAC_CT, /* responder: ... of the first ciphertext */
    HXD_FAULT_FIN_MAC,     /* initiator: a bit of the MAC flipped */
};

/* A stream the initiator gave up before this node's application opened it (STREAM_JOIN with
 * a status, initiator -> responder): its reason, for that application (docs/peer-protocol.md). */
#define HXD_REFUSED_KEEP 8
#define HXD_REFUSED_S 60
struct hxd_refused {
    struct hx_uuid ksid;
    char src[HX_004_MAX_URI + 1], dst[HX_004_MAX_URI + 1];
    int status;
    char msg[200];
    int64_t until; /* deadline (clock.h); 0: empty */
};

struct hxd_keystash;

struct hxd {
    struct hxd_config cfg;
    struct hxd_refused refused[HXD_REFUSED_KEEP]; /* ring, under lock */
    size_t refused_next;
    enum hxd_fault fault;    /* HYKEX_FAULT_PEER */
    long fault_drop_ack;     /* HYKEX_FAULT_DROP_ACK: the n-th committed batch's ACK is lost */
    uint64_t fault_lose_fin; /* HYKEX_FAULT_LOSE_FIN_AT: that position + 1 (0: off); under lock */
    bool fault_fin_lost;     /* ... lost: no ACK until the initiator's next BATCH_QUERY */
    uint8_t *fault_last;     /* HXD_FAULT_RESP_REPLAY: the previous BATCH_RESP */
    size_t fault_last_len;
    struct hx_links *links;
    struct hx_sig_key *sig_key;
    struct hx_qkd_client qkd;
    struct hx_qkd014 qkd014;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    /* a peer's reply or a link event, for initiator workers waiting on a deadline (monotonic:
     * daemon/pool.c makes it at start; broadcast by daemon/dispatch.c) */
    pthread_cond_t replied;
    struct hxd_stream *streams;
    size_t max_streams;
    /* per stream slot: the GET_KEYs waiting for that stream's keys (stream.c), so that a batch
     * wakes its own stream's applications, not every waiting one (`changed` is for the rest) */
    pthread_cond_t *wake;
    int32_t *index; /* open addressing: slot + 1, 0 empty, -1 deleted */
    size_t index_mask, index_deleted;
    /* initiators make batches, responders answer them, the writer (one thread, FIFO) does the
     * store writes decided on a peer link's I/O thread (daemon/pool.c) */
    struct hxd_pool initiators, responders, writer;
    /* ML-KEM key pairs made ahead by waiting initiator workers (keystash.h); NULL: none */
    struct hxd_keystash *stash;
    struct hx_store *store; /* NULL: memory only (no state_dir) */
    atomic_bool stopping;   /* read without the lock by every thread */
    atomic_uint getters;    /* GET_KEY calls in progress (hxd_svc_get), read without the lock */
    atomic_bool latency;    /* few GET_KEY calls in progress (hxd_latency_mode) */
    /* counters for status and tests */
    uint64_t batches_ok, batches_failed, confirm_mismatch, store_errors;
    int64_t cert_not_after; /* this node's certificate expiry (Unix time; 0: unknown) */
    /* day-2 operations (daemon/reload.c; the main thread writes, STATUS reads, under lock) */
    const char *config_path, *peers_path; /* what a reload reads again */
    int64_t started_at;                   /* Unix time */
    int64_t ca_not_after;                 /* the CA certificate's expiry */
    uint64_t reloads, reloads_refused;
    int64_t last_reload_at;    /* Unix time; 0: never */
    char last_reload[400];     /* what the last reload applied, or why it was refused */
    int64_t next_expiry_check; /* clock.h deadline of the next expiry warning; 0: at once */
    unsigned expiry_looks; /* since the start or the last reload: the first two a minute apart */
    /* lock-free counters for the metrics endpoint (metrics.h) */
    struct hxd_metrics metrics;
    /* the relay's topology protocol (daemon/relay.h); NULL unless relay.enabled */
    struct hxd_relay *relay;
    /* ETSI 014: the SAEs each trusted peer announced (SAE_LIST), by trusted-peer index, under
     * lock (etsi014_peers.c) */
    struct hxd_014_learned {
        bool has;
        struct hx_peer_sae_list list;
    } e014_learned[HXD_MAX_PEERS];
    struct hx_uuid e014_boot; /* this start's boot id in SAE_LIST (random, under lock) */
};

/* Signs with the key of the certificate the link to peer was made with (the one the peer
 * verifies with; d->sig_key when no link is up). */
HX_MUST_CHECK hx_err hxd_sign(struct hxd *d, const struct hx_uuid *peer, const char *ctx,
                              const uint8_t *msg, size_t len, uint8_t *sig, size_t cap,
                              size_t *sig_len);

/* batches (batch.c) */
/* Resumes streams whose back-off after a failed batch is over, and refills idle initiator
 * streams (restored ones too) without waiting for demand (main loop, every 200 ms). */
void hxd_streams_tick(struct hxd *d);
/* Queues production for a stream that needs keys (initiator side). */
void hxd_stream_kick(struct hxd *d, struct hxd_stream *s);

/* jobs and pools (pool.c), frames (dispatch.c); the batch protocol is daemon/batch.h */
void hxd_pools_start(struct hxd *d, size_t n_initiators, hxd_job_fn initiate, size_t n_responders,
                     hxd_job_fn respond);
/* The pools' job functions (initiator.c, responder.c). */
void hxd_initiator_job(struct hxd *d, struct hxd_job *j);
void hxd_responder_job(struct hxd *d, struct hxd_job *j);
void hxd_pools_stop(struct hxd *d);
void hxd_on_frame(void *arg, struct hx_link *l, uint8_t type, const uint8_t *p, size_t len);
void hxd_on_link(void *arg, struct hx_link *l, bool up);
/* A stream or batch message from peer, over its link or (relay.enabled) over relays. */
void hxd_on_peer_frame(struct hxd *d, const struct hx_uuid *peer, uint8_t type, const uint8_t *p,
                       size_t len);
/* Sends a peer message about a stream (no lock held). Encoders: proto/peer.h. */
hx_err hxd_send(struct hxd *d, const struct hx_uuid *peer, uint8_t type, const uint8_t *p,
                size_t len);
/* STREAM_OPEN / STREAM_CLOSE / STREAM_JOIN for the API (no lock held) */
hx_err hxd_send_open(struct hxd *d, const struct hxd_stream *s);
hx_err hxd_send_close(struct hxd *d, const struct hx_uuid *peer, const struct hx_uuid *ksid);
hx_err hxd_send_join(struct hxd *d, const struct hx_uuid *peer, const struct hx_uuid *ksid,
                     uint32_t status, const char *msg);
/* Drops the streams announced by a peer and never joined here once their time is up (main
 * loop, lock held), or all of that peer's when peer is given (its link went down). */
void hxd_unjoined_drop(struct hxd *d, const struct hx_uuid *peer);
/* hxd_unjoined_drop(d, NULL) with the lock taken (main loop, every 200 ms). */
void hxd_unjoined_expire(struct hxd *d);
/* true when this node's QKD source is ETSI 014 (no QKD streams to open). */
bool hxd_qkd_is_014(const struct hxd *d);
/* Opens the QKD stream at this node's KME (qkd_open.c; initiator: new id; responder: the
 * initiator's). */
hx_err hxd_qkd_open(struct hxd *d, struct hxd_stream *copy, int *status, char *msg, size_t msg_len);
/* The same; quiet: nothing logged (the caller logs once per back-off step); *kme_status: the
 * KME's own answer (UINT32_MAX when it was not reached). */
hx_err hxd_qkd_open_ex(struct hxd *d, struct hxd_stream *copy, bool quiet, uint32_t *kme_status,
                       int *status, char *msg, size_t msg_len);
/*
 * KME recovery (qkd_recover.c). hxd_qkd_lost: a GET_KEY at this node's KME found the QKD stream
 * gone (status 4) or the KME away (no answer): the stream stops producing and reopens it (lock
 * held). hxd_qkd_reopen_tick: queues the attempts that are due (main loop, every 200 ms beside
 * hxd_streams_tick; takes the lock).
 * hxd_qkd_reopen_run: one attempt (an initiator worker, no lock). hxd_qkd_on_peer_reopen: the
 * peer node reopens its end: this node reopens its own at once (link thread, lock held).
 */
void hxd_qkd_lost(struct hxd *d, struct hxd_stream *s, const char *why);
void hxd_qkd_reopen_tick(struct hxd *d);
void hxd_qkd_reopen_run(struct hxd *d, const struct hx_uuid *ksid);
void hxd_qkd_on_peer_reopen(struct hxd *d, struct hxd_stream *s);

/*
 * Rerouting a stream whose QKD part is relayed (relay_repath.c, docs/relay.md "Rerouting a
 * stream with QKD"). hxd_repath_tick: main loop, every 200 ms: streams whose pinned QKD path
 * lost a link get an attempt queued. hxd_repath_run: the initiator's attempt, or the
 * responder's answer (an initiator worker, no lock). hxd_repath_on_msg: a RELAY_REPATH that
 * arrived over relays (I/O thread, no lock held).
 */
void hxd_repath_tick(struct hxd *d);
void hxd_repath_run(struct hxd *d, const struct hx_uuid *ksid);
void hxd_repath_on_msg(struct hxd *d, const struct hx_uuid *peer, const uint8_t *p, size_t len);
/*
 * The responder's window (window.c; all with the lock held). hxd_window_announce: the
 * responder sends STREAM_WINDOW when it is due (force: always). hxd_window_announce_peer: to
 * a peer whose link came up. hxd_window_on_update: a STREAM_WINDOW arrived at the initiator.
 * The initiator's checks against the limit it heard are in stream.h (hxd_window_allows,
 * hxd_window_cut).
 */
void hxd_window_announce(struct hxd *d, struct hxd_stream *s, bool force);
void hxd_window_announce_peer(struct hxd *d, const struct hx_uuid *peer);
void hxd_window_on_update(struct hxd *d, struct hxd_stream *s, const uint8_t *p, size_t len);
/* The reason a peer node gave up the stream ksid (nil: by src and dst URIs) before this node's
 * application opened it, once (lock held); false: none. */
bool hxd_refused_find(struct hxd *d, const struct hx_uuid *ksid, const char *src, const char *dst,
                      int *status, char *msg, size_t msg_len);

/* The same through the writer thread (lock held; never blocks on the disk): the row is copied
 * now and written in order with every other write queued here. Without a running writer (at
 * shutdown) they write at once. */
void hxd_persist_stream_later(struct hxd *d, const struct hxd_stream *s);
void hxd_persist_drop_later(struct hxd *d, const struct hx_uuid *ksid);

/*
 * Whether few applications are taking keys at this node now (set at each GET_KEY by
 * hxd_svc_get: on at HXD_LATENCY_ON GET_KEY calls in progress or fewer, off at HXD_LATENCY_OFF
 * or more, unchanged between, so that a count around the limit does not flip it at every
 * call). While on, the crypto workers ask for a long time slice and the threads serving
 * GET_KEY for a short one (common/sched.h), so that a woken GET_KEY, and its application,
 * preempt crypto: one stream draining, p99 2.8-2.9 -> 2.0-2.1 ms with the slices (the reserve
 * of two batches in both). While off, the threads keep the kernel's default slice: preempting
 * crypto at every wake-up of many applications cost 64 draining streams 9 % of their keys/s
 * (docs/performance.md, "fourth round").
 */
#define HXD_LATENCY_ON 4
#define HXD_LATENCY_OFF 8
static inline bool hxd_latency_mode(struct hxd *d)
{
    return atomic_load_explicit(&d->latency, memory_order_relaxed);
}

#endif
