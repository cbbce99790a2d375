#include "net/conn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "common/clock.h"

static void set_blocking(int fd, bool blocking)
{
    int fl = fcntl(fd, F_GETFL);

    /* Cannot fail on a valid descriptor. */
    if (fl >= 0) {
        (void)fcntl(fd, F_SETFL, blocking ? fl & ~O_NONBLOCK : fl | O_NONBLOCK);
    }
}

/*
 * A plain socket stays blocking: a wait without a deadline is then one recv() or send(), as
 * the API's GET_KEY path had it, and calls that must not wait say MSG_DONTWAIT. OpenSSL reads
 * and writes the socket without flags, so a TLS connection is made non-blocking instead.
 */
void hx_conn_init(struct hx_conn *c, int fd)
{
    c->fd = fd;
    c->ssl = NULL;
    if (fd >= 0) {
        set_blocking(fd, true);
    }
}

void hx_conn_wipe(struct hx_conn *c)
{
    SSL_free(c->ssl);
    c->ssl = NULL;
    if (c->fd >= 0) {
        close(c->fd);
    }
    c->fd = -1;
}

void hx_conn_tls_close(struct hx_conn *c)
{
    if (c->ssl != NULL && SSL_is_init_finished(c->ssl)) {
        (void)SSL_shutdown(c->ssl);
        ERR_clear_error();
    }
}

/* Waits until the socket is ready for want or the deadline passes. */
static hx_err wait_for(const struct hx_conn *c, short want, int64_t deadline)
{
    for (;;) {
        struct pollfd p = {.fd = c->fd, .events = want};
        int n = poll(&p, 1, hx_deadline_poll_ms(deadline));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 || (n > 0 && (p.revents & POLLNVAL) != 0)) {
            return HX_ERR_IO;
        }
        /* POLLHUP and POLLERR count as ready: the next read or write says what happened. */
        return n == 0 ? HX_ERR_IO_TIMEOUT : HX_OK;
    }
}

/* What a failed TLS call means: HX_OK and *want to wait, or the end of the connection. */
static hx_err tls_status(const struct hx_conn *c, int ret, short *want)
{
    switch (SSL_get_error(c->ssl, ret)) {
    case SSL_ERROR_WANT_READ:
        *want = POLLIN;
        return HX_OK;
    case SSL_ERROR_WANT_WRITE:
        *want = POLLOUT;
        return HX_OK;
    case SSL_ERROR_ZERO_RETURN:
        return HX_ERR_IO_CLOSED;
    case SSL_ERROR_SYSCALL:
        /* EOF without close_notify, or a reset: the peer is gone either way. */
        ERR_clear_error();
        return HX_ERR_IO_CLOSED;
    default:
        ERR_clear_error();
        return HX_ERR_IO;
    }
}

static hx_err plain_status(short dir, short *want)
{
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
        *want = dir;
        return HX_OK;
    }
    return errno == ECONNRESET || errno == EPIPE ? HX_ERR_IO_CLOSED : HX_ERR_IO;
}

hx_err hx_conn_recv_nb(struct hx_conn *c, void *buf, size_t cap, size_t *got, short *want)
{
    *got = 0;
    *want = POLLIN;
    if (cap == 0) {
        return HX_OK;
    }
    if (c->ssl != NULL) {
        int ret;
        ERR_clear_error(); /* SSL_get_error reads the queue: nothing stale on it */
        if ((ret = SSL_read_ex(c->ssl, buf, cap, got)) == 1) {
            return HX_OK;
        }
        *got = 0;
        return tls_status(c, ret, want);
    }
    for (;;) {
        ssize_t n = recv(c->fd, buf, cap, MSG_DONTWAIT);
        if (n > 0) {
            *got = (size_t)n;
            return HX_OK;
        }
        if (n == 0) {
            return HX_ERR_IO_CLOSED;
        }
        if (errno != EINTR) {
            return plain_status(POLLIN, want);
        }
    }
}

hx_err hx_conn_send_nb(struct hx_conn *c, const void *p, size_t n, size_t *put, short *want)
{
    *put = 0;
    *want = POLLOUT;
    if (n == 0) {
        return HX_OK;
    }
    if (c->ssl != NULL) {
        int ret;
        ERR_clear_error();
        if ((ret = SSL_write_ex(c->ssl, p, n, put)) == 1) {
            return HX_OK;
        }
        *put = 0;
        return tls_status(c, ret, want);
    }
    for (;;) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w >= 0) {
            *put = (size_t)w;
            return HX_OK;
        }
        if (errno != EINTR) {
            return plain_status(POLLOUT, want);
        }
    }
}

bool hx_conn_pending(const struct hx_conn *c)
{
    return c->ssl != NULL && SSL_pending(c->ssl) > 0;
}

/* A plain socket with no deadline: one blocking recv (another thread's shutdown() ends it). */
static hx_err plain_read_blocking(struct hx_conn *c, void *buf, size_t cap, size_t *got)
{
    for (;;) {
        ssize_t n = recv(c->fd, buf, cap, 0);
        short want;
        if (n > 0) {
            *got = (size_t)n;
            return HX_OK;
        }
        if (n == 0) {
            return HX_ERR_IO_CLOSED;
        }
        if (errno != EINTR) {
            hx_err r = plain_status(POLLIN, &want);
            return r != HX_OK ? r : HX_ERR_IO; /* EAGAIN: someone made the socket non-blocking */
        }
    }
}

hx_err hx_conn_read_some(struct hx_conn *c, void *buf, size_t cap, size_t *got, int64_t deadline)
{
    hx_err r;
    short want;

    *got = 0;
    if (cap == 0) {
        return HX_ERR_INVALID_ARG;
    }
    if (c->ssl == NULL && deadline == HX_DEADLINE_NEVER) {
        return plain_read_blocking(c, buf, cap, got);
    }
    while ((r = hx_conn_recv_nb(c, buf, cap, got, &want)) == HX_OK && *got == 0) {
        if ((r = wait_for(c, want, deadline)) != HX_OK) {
            return r;
        }
    }
    return r;
}

hx_err hx_conn_read_exact(struct hx_conn *c, void *buf, size_t cap, size_t n, int64_t deadline)
{
    uint8_t *p = buf;
    hx_err r;

    if (n > cap) {
        return HX_ERR_TOO_LARGE;
    }
    while (n > 0) {
        size_t got;
        if ((r = hx_conn_read_some(c, p, n, &got, deadline)) != HX_OK) {
            return r;
        }
        p += got;
        n -= got;
    }
    return HX_OK;
}

hx_err hx_conn_write_all(struct hx_conn *c, const void *p, size_t n, int64_t deadline)
{
    const uint8_t *b = p;

    while (n > 0 && c->ssl == NULL && deadline == HX_DEADLINE_NEVER) {
        ssize_t w = send(c->fd, b, n, MSG_NOSIGNAL);
        short want;
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w < 0) {
            hx_err r = plain_status(POLLOUT, &want);
            return r != HX_OK ? r : HX_ERR_IO;
        }
        b += w;
        n -= (size_t)w;
    }
    while (n > 0) {
        size_t put;
        short want;
        hx_err r = hx_conn_send_nb(c, b, n, &put, &want);
        if (r != HX_OK) {
            return r;
        }
        if (put == 0) {
            if ((r = wait_for(c, want, deadline)) != HX_OK) {
                return r;
            }
            continue;
        }
        b += put;
        n -= put;
    }
    return HX_OK;
}

static hx_err handshake(struct hx_conn *c, SSL_CTX *ctx, bool client, int64_t deadline)
{
    set_blocking(c->fd, false);
    if ((c->ssl = SSL_new(ctx)) == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
        return HX_ERR_NOMEM;
    }
    /* A write that must wait is retried from a queue whose buffers may move (the peer link). */
    SSL_set_mode(c->ssl, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    for (;;) {
        short want;
        hx_err r;
        int ret;
        ERR_clear_error();
        if ((ret = client ? SSL_connect(c->ssl) : SSL_accept(c->ssl)) == 1) {
            return HX_OK;
        }
        int e = SSL_get_error(c->ssl, ret);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
            return HX_ERR_VERIFY; /* the reason stays on OpenSSL's error queue */
        }
        want = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
        if ((r = wait_for(c, want, deadline)) != HX_OK) {
            return r;
        }
    }
}

hx_err hx_conn_tls_accept(struct hx_conn *c, SSL_CTX *ctx, int64_t deadline)
{
    return handshake(c, ctx, false, deadline);
}

hx_err hx_conn_tls_connect(struct hx_conn *c, SSL_CTX *ctx, int64_t deadline)
{
    return handshake(c, ctx, true, deadline);
}
