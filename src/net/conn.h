/*
 * One connection, plain or TLS, the same calls either way (curl's connection filters,
 * docs/internals/CONNECTION-FILTERS.md: the caller neither knows nor cares whether a TLS
 * filter sits on the socket). Two ways to use a connection:
 *
 *  - blocking with a deadline (threaded users: API clients, simulator connections, the QKD
 *    client, handshakes): hx_conn_read_some, hx_conn_read_exact, hx_conn_write_all and the TLS
 *    handshakes wait in poll() until the deadline (common/clock.h, HX_DEADLINE_NEVER: no
 *    limit). Another thread stops a wait with shutdown(c->fd, SHUT_RDWR): the read then ends
 *    with HX_ERR_IO_CLOSED.
 *  - non-blocking (poll loops: the peer link): hx_conn_recv_nb / hx_conn_send_nb never wait and
 *    say which poll event to wait for (TLS may need to write to read, and the other way).
 *
 * Reads are bounded: every read names the capacity of its buffer, and hx_conn_read_exact
 * refuses a length larger than the buffer before reading a byte (a binary header's length
 * field is untrusted). The TLS context (SSL_CTX) belongs to the caller, who sets its versions,
 * certificates and verification; this layer only runs the handshake and the records.
 */
#ifndef HX_NET_CONN_H
#define HX_NET_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "common/err.h"

struct hx_conn {
    int fd;   /* the socket; -1 when none. Callers may poll or shutdown() it, never read it */
    SSL *ssl; /* after a TLS handshake (kept after a failed one, for SSL_get_verify_result) */
};

/* Takes ownership of fd (may be -1). A plain socket is kept blocking (calls that must not wait
 * pass MSG_DONTWAIT); a TLS handshake makes it non-blocking (OpenSSL passes no flags). */
void hx_conn_init(struct hx_conn *c, int fd);
/* Frees the TLS state, closes the socket; safe on a wiped or never-opened connection. */
void hx_conn_wipe(struct hx_conn *c);
/* Sends TLS close_notify without waiting for the answer (best effort, before hx_conn_wipe). */
void hx_conn_tls_close(struct hx_conn *c);

/* TLS handshakes over the connection with ctx, until the deadline. HX_ERR_VERIFY when the
 * handshake fails (the error is on OpenSSL's queue, the verify result on c->ssl),
 * HX_ERR_IO_TIMEOUT, HX_ERR_NOMEM. */
HX_MUST_CHECK hx_err hx_conn_tls_accept(struct hx_conn *c, SSL_CTX *ctx, int64_t deadline);
HX_MUST_CHECK hx_err hx_conn_tls_connect(struct hx_conn *c, SSL_CTX *ctx, int64_t deadline);

/* Blocking with a deadline. HX_ERR_IO_CLOSED: the other side closed (or another thread shut
 * the socket down); HX_ERR_IO_TIMEOUT; HX_ERR_IO: any other failure. */
/* Reads 1..cap bytes (what has arrived) into buf. */
HX_MUST_CHECK hx_err hx_conn_read_some(struct hx_conn *c, void *buf, size_t cap, size_t *got,
                                       int64_t deadline);
/* Reads exactly n bytes into buf (cap bytes); HX_ERR_TOO_LARGE, reading nothing, if n > cap. */
HX_MUST_CHECK hx_err hx_conn_read_exact(struct hx_conn *c, void *buf, size_t cap, size_t n,
                                        int64_t deadline);
/* Writes all n bytes (plain: no SIGPIPE; TLS: the programs ignore SIGPIPE). */
HX_MUST_CHECK hx_err hx_conn_write_all(struct hx_conn *c, const void *p, size_t n,
                                       int64_t deadline);

/* Non-blocking. HX_OK with *got (*put) 0 means "would block": poll c->fd for *want (POLLIN or
 * POLLOUT) first. HX_ERR_IO_CLOSED, HX_ERR_IO as above. */
HX_MUST_CHECK hx_err hx_conn_recv_nb(struct hx_conn *c, void *buf, size_t cap, size_t *got,
                                     short *want);
HX_MUST_CHECK hx_err hx_conn_send_nb(struct hx_conn *c, const void *p, size_t n, size_t *put,
                                     short *want);
/* Bytes already decrypted inside TLS: poll() would not report them, so do not wait for it. */
bool hx_conn_pending(const struct hx_conn *c);

#endif
