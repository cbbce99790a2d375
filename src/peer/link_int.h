/*
 * The peer link's insides, shared by link.c (links, queues, the I/O loop, dialling and
 * accepting) and link_tls.c (the TLS context, the handshake and the peer's identity). Not for
 * use outside src/peer/.
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
    pthread_mutex_t lock; /* queue, up, refs */
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
};

struct hx_links {
    struct hx_links_config cfg;
    SSL_CTX *ctx;
    struct slot *slots;
    size_t n;
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

static inline struct slot *slot_of(struct hx_links *ls, const struct hx_uuid *u)
{
    for (size_t i = 0; i < ls->n; i++) {
        if (hx_uuid_equal(&ls->slots[i].uuid, u)) {
            return &ls->slots[i];
        }
    }
    return NULL;
}

/* The TLS 1.3 context of the links: our certificate, the network CA, peer.tls_groups. */
HX_MUST_CHECK hx_err hx_link_tls_ctx(const struct hx_links_config *c, SSL_CTX **out, char *why,
                                     size_t why_len);
/*
 * TLS handshake (until deadline, common/clock.h) on fd, which it owns from here on (closed on
 * failure); identifies the peer (its certificate's node UUID, or a trusted peer's address) and
 * returns a link with one reference, not yet up. HX_ERR_VERIFY when the peer is refused.
 */
HX_MUST_CHECK hx_err hx_link_handshake(struct hx_links *ls, int fd, bool client,
                                       const struct hx_uuid *expected, int64_t deadline,
                                       struct hx_link **out);

#endif
