/*
 * The ETSI 014 SAE pairs inside the 014 server (etsi014_pairs.c); the calls on them are in
 * etsi014_keys.c. The design: etsi014_map.h and docs/etsi014.md.
 *
 * Threads: one opener thread per ordered SAE pair keeps its stream open (hxd_svc_open, which
 * blocks until the peer node joins or a deadline), takes the stream's position 0 for the
 * key-ID key, and opens it again when a request finds it closed. A manager thread sends this
 * node's SAE_LIST every ANNOUNCE_MS, makes pairs for the SAEs the peers announce, and closes
 * the pairs of a peer that restarted (a new boot id) so that both ends open them anew.
 * e->lock guards the remote SAEs, the pair table and each pair's state; the stream service is
 * never called with it held.
 */
#ifndef HX_API_ETSI014_PAIRS_H
#define HX_API_ETSI014_PAIRS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/etsi014_map.h"
#include "common/err.h"
#include "daemon/service.h"

struct hxd_014_pair {
    struct hxd_014 *e;
    size_t local, remote;
    bool master_local; /* the local SAE is the master: this node initiates the stream */
    struct hx_uuid ksid;
    char src[HXD_SVC_MAX_URI], dst[HXD_SVC_MAX_URI];
    /* under e->lock */
    bool ready;
    uint8_t *kid; /* HXD_014_KID_LEN bytes, secure heap */
    char last_error[200];
    /* enc_keys takes the stream's next positions: one request at a time per pair */
    pthread_mutex_t take;
    bool take_init;
    pthread_t thread;
    bool started;
};

struct hxd_014 {
    struct hxd *d;
    const struct hxd_config *cfg;
    const struct hxd_014_config *c;
    pthread_mutex_t lock;
    pthread_cond_t wake; /* monotonic: a pair broke, or stop */
    atomic_bool stopping;
    /* under lock: the remote SAEs (api.etsi014.remote_saes, then those the peers announced;
     * only ever appended), and their pairs by (local, remote, direction), made with them */
    struct hxd_014_saes remotes;
    struct hxd_014_pair **pairs;
    pthread_t manager;
    bool manager_started;
};

/* Starts the pairs of the configured remote SAEs and the manager (api.etsi014.port set). */
HX_MUST_CHECK hx_err hxd_014_pairs_start(struct hxd *d, struct hxd_014 **out);
/* Stops the threads (after hxd_svc_shutdown, which ends their waits) and frees e; NULL: no-op. */
void hxd_014_pairs_stop(struct hxd_014 *e);

/* The pair of a local and a remote SAE by index (e->lock held); NULL: not made. */
struct hxd_014_pair *hxd_014_pair_at(struct hxd_014 *e, size_t local, size_t remote,
                                     bool master_local);
/* The verdict on a call (etsi014_map.h) and its pair: the caller's and the other SAE's, with
 * the caller as master or as slave. NULL when refused, or when the pair could not be made. */
struct hxd_014_pair *hxd_014_pair_find(struct hxd_014 *e, const char *caller, const char *other,
                                       bool caller_is_master, struct hxd_014_verdict *v);
/* The pair's remote SAE (its entry never moves). */
const struct hxd_014_sae *hxd_014_pair_remote(const struct hxd_014_pair *p);
/* A request found the pair's stream closed: its opener opens it again. */
void hxd_014_pair_broken(struct hxd_014_pair *p);
/* Is the pair's stream open with its key-ID key (enc_keys / dec_keys can serve it)? */
bool hxd_014_pair_ready(struct hxd_014_pair *p);
/* The pair's key-ID key, if its stream is open; else why not (why_len bytes; why may be NULL). */
bool hxd_014_pair_kid(struct hxd_014_pair *p, uint8_t kid[HXD_014_KID_LEN], char *why,
                      size_t why_len);

#endif
