/*
 * The peer link's insides, shared by link.c (links, queues, the I/O loop), link_threads.c (the
 * layer's start and stop, dialling and accepting) and link_tls.c (the TLS context, the handshake
 * and the peer's identity). Not for use outside src/peer/.
 */
#ifndef HX_PEER_LINK_INT_H
#define HX_PEER_LINK_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <openssl/ssl.h>

#include "net/conn.h"
#include "peer/link.h"

/* A dial, and each side's TLS handshake with a trusted peer's address, give up after this
 * long (a lossy link needs retransmissions); a connection from any other address gets
 * UNTRUSTED_HANDSHAKE_MS: a silent one holds an accept slot no longer than that. */
#define HANDSHAKE_MS 10000
#define UNTRUSTED_HANDSHAKE_MS 5000
/* Accept slots: connections in their handshake at once. PER_SOURCE from one address; the last
 * RESERVED only for connections from a trusted peer's configured address, so that a flood
 * from elsewhere never locks the trusted peers out (docs/security.md "Resource model"). */
#define ACCEPT_SLOTS 256
#define ACCEPT_PER_SOURCE 4
#define ACCEPT_RESERVED 32
/* A link that went down sooner than this after coming up did not prove the peer accepts us
 * (TLS 1.3: the server checks our certificate after our side's handshake has finished, so a
 * refusal arrives as the first read): the next dial waits its back-off. */
#define LINK_PROVEN_S 2.0

/* Slots for peers: the trusted peers of the start, and those a reload adds. */
#define HX_LINKS_MAX_SLOTS 256

/* A credentials set (link.h); refs is atomic: links drop theirs from their I/O threads. */
struct hx_link_creds {
    atomic_int refs;
    SSL_CTX *ctx;
    struct hx_sig_key *key;
    uint8_t digest[32]; /* over the files and the groups: tells a changed set */
    int64_t cert_not_after, ca_not_after;
};

struct outbuf {
    struct outbuf *next;
    size_t len, off;
    uint8_t data[];
};

struct hx_link {
    struct hx_links *ls;
    struct hx_uuid peer;
    struct hx_conn io; /* the TLS connection (net/conn.h), non-blocking on the I/O thread */
    struct hx_sig_key *peer_key;
    struct hx_link_creds *creds; /* the set it was made with (a reference) */
    pthread_mutex_t lock;        /* queue, up, refs */
    struct outbuf *head, *tail;
    int wake[2];
    bool up;
    int refs;
    uint64_t serial; /* unique per link made: tells a reconnection from the same link */
    uint8_t *rbuf;
    size_t rlen;
    /* I/O thread only: a frame came from the peer; "peer link up" was logged (the link proved
     * itself: the peer answered, or stayed LINK_PROVEN_S; see announce_link in link.c) */
    bool heard, announced;
};

struct slot {
    struct hx_uuid uuid;
    char host[256];
    uint16_t port;
    struct hx_link *link; /* the up link, holding one reference */
    bool connector;       /* we connect to this peer */
    struct hx_link_info info;
    pthread_t thread;
    bool thread_started;
    bool thread_done; /* the connector has returned (joined before the slot is used again) */
    bool retired;     /* removed by a reload: no longer a trusted peer */
};

struct hx_links {
    struct hx_links_config cfg;
    struct hx_link_creds *creds; /* the current set (under lock); each link holds its own */
    struct slot *slots;          /* HX_LINKS_MAX_SLOTS; they never move */
    size_t n;                    /* slots in use (retired ones among them) */
    size_t refreshing;           /* slot being re-established; SIZE_MAX: none */
    int64_t refresh_until;       /* give up waiting for it then (clock.h) */
    uint64_t reloads;            /* hx_links_update calls: connectors' waits end on a change */
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int listen_fd;
    pthread_t acceptor;
    bool acceptor_started;
    atomic_bool stopping; /* read by every link thread without the lock */
    int handshakes;       /* accept-side handshake threads running */
    /* accept-side threads, joined (reaped when done, all at stop) */
    struct {
        pthread_t t;
        bool used;
        bool done;     /* under ls->lock */
        bool trusted;  /* from a trusted peer's configured address */
        char addr[48]; /* the source address */
    } acc[ACCEPT_SLOTS];
};

/* The slot of a trusted peer (ls->lock held), NULL when it is not one (or no more). */
static inline struct slot *slot_of(struct hx_links *ls, const struct hx_uuid *u)
{
    for (size_t i = 0; i < ls->n; i++) {
        if (!ls->slots[i].retired && hx_uuid_equal(&ls->slots[i].uuid, u)) {
            return &ls->slots[i];
        }
    }
    return NULL;
}

/* Unix time of the certificate's notAfter; 0 when unreadable. */
int64_t hx_link_cert_not_after(const X509 *x);
struct hx_link_creds *hx_link_creds_get(struct hx_link_creds *cr);
/* Starts slot i's connector thread (ls->lock held); false when it could not (link_threads.c). */
bool hx_link_start_connector(struct hx_links *ls, size_t i);
/* Frees a link that was never up (no references left to it). */
void hx_link_free(struct hx_link *l);
/*
 * Registers an identified link, runs it until it ends, unregisters it; returns how long it was
 * up (s). *proven: it proved itself; when not, nothing was logged about it and the caller logs
 * the refusal once (link.c).
 */
double hx_link_serve(struct hx_links *ls, struct hx_link *l, bool *proven);

/* why = "<what>: <the OpenSSL error queue's first error>" (or "failed"); clears the queue. */
void hx_link_ssl_why(char *why, size_t why_len, const char *what);
/*
 * TLS handshake (until deadline, common/clock.h) on fd, which it owns from here on (closed on
 * failure); identifies the peer (its certificate's node UUID, or a trusted peer's address) and
 * returns a link with one reference, not yet up. HX_ERR_VERIFY when the peer is refused.
 */
HX_MUST_CHECK hx_err hx_link_handshake(struct hx_links *ls, int fd, bool client,
                                       const struct hx_uuid *expected, int64_t deadline,
                                       struct hx_link **out);

#endif
