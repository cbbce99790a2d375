/*
 * Sockets below every connection of hykex: listen (TCP, Unix), accept, dial (with an optional
 * source address and a deadline), the peer's address, and a reconnect back-off. The model is
 * curl's socket filter (lib/cf-socket.c): one place that knows getaddrinfo, SOCK_CLOEXEC,
 * TCP_NODELAY and non-blocking connect, so that the API server, the simulator, the QKD client
 * and the peer link do not each carry a copy. Bytes over a socket (plain or TLS) are conn.h's.
 *
 * This layer sits below daemon/, api/, sim/, source/ and peer/: it includes only common/ and
 * the C library. Error texts in why carry the OS's or the resolver's words only; callers
 * prefix them with the configuration key that named the address.
 */
#ifndef HX_NET_SOCK_H
#define HX_NET_SOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "common/err.h"

/*
 * A listening TCP socket on host:port (SO_REUSEADDR, close-on-exec). loopback_only refuses a
 * host that does not resolve to a loopback address, before binding. Errors: HX_ERR_CONFIG
 * (host does not resolve: why is the resolver's text), HX_ERR_IO_PERM (not loopback),
 * HX_ERR_IO (socket, bind or listen failed: why is strerror).
 */
HX_MUST_CHECK hx_err hx_net_listen_tcp(const char *host, uint16_t port, int backlog,
                                       bool loopback_only, int *out, char *why, size_t why_len);
/*
 * A listening Unix socket at path (an old socket file there is removed first), created under
 * umask(mask) so that its mode says who may connect. HX_ERR_CONFIG when path is too long.
 */
HX_MUST_CHECK hx_err hx_net_listen_unix(const char *path, int backlog, mode_t mask, int *out,
                                        char *why, size_t why_len);
/*
 * Accepts one connection (close-on-exec; TCP_NODELAY on TCP), retrying EINTR and aborted
 * connections. HX_ERR_IO_CLOSED once the listener is shut down (the way to stop an accept
 * thread: shutdown(fd, SHUT_RDWR)); HX_ERR_IO otherwise (out of descriptors...: wait, retry).
 */
HX_MUST_CHECK hx_err hx_net_accept(int listen_fd, int *out);
/*
 * Connects to host:port, trying each resolved address until one answers or the deadline
 * (common/clock.h) passes. source, when not NULL, empty or a wildcard (0.0.0.0, ::), is bound
 * as the local address first, so that the other side sees this node's own address (two nodes
 * on one host). The socket comes back close-on-exec, TCP_NODELAY, for hx_conn_init.
 * HX_ERR_CONFIG: host or source does not resolve; HX_ERR_IO_TIMEOUT; HX_ERR_IO (refused...).
 */
HX_MUST_CHECK hx_err hx_net_dial_tcp(const char *host, uint16_t port, const char *source,
                                     int64_t deadline, int *out, char *why, size_t why_len);
/* Connects to the Unix socket at path (blocking). */
HX_MUST_CHECK hx_err hx_net_dial_unix(const char *path, int *out, char *why, size_t why_len);

bool hx_net_is_loopback(const struct sockaddr *sa);
/* The uid and gid of the process at the other end of a Unix socket (SO_PEERCRED). */
HX_MUST_CHECK hx_err hx_net_peer_cred(int fd, uid_t *uid, gid_t *gid);
/* The connected peer's IP address as text ("127.0.0.2", "::1"); false when unknown. */
bool hx_net_peer_ip(int fd, char *buf, size_t len);

/*
 * Reconnect back-off: each hx_backoff_next() returns a delay drawn from [cur/2, cur] (jitter,
 * so that many nodes restarted together do not redial in step) and doubles cur, up to max_s.
 * hx_backoff_reset() after a connection proved itself, not merely after connect().
 */
struct hx_backoff {
    double min_s, max_s, cur_s;
    uint64_t rng;
};

void hx_backoff_init(struct hx_backoff *b, double min_s, double max_s);
void hx_backoff_reset(struct hx_backoff *b);
double hx_backoff_next(struct hx_backoff *b);

#endif
