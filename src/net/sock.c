#define _GNU_SOURCE /* accept4, IP_BIND_ADDRESS_NO_PORT, SO_PEERCRED */
#include "net/sock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/clock.h"

static void set_nodelay(int fd)
{
    int one = 1;

    /* Fails harmlessly on a Unix socket: small requests and replies must not wait for Nagle. */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

bool hx_net_is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
    }
    return false;
}

static bool is_wildcard(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        return ((const struct sockaddr_in *)sa)->sin_addr.s_addr == htonl(INADDR_ANY);
    }
    if (sa->sa_family == AF_INET6) {
        return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)sa)->sin6_addr);
    }
    return false;
}

static int resolve(const char *host, uint16_t port, bool passive, struct addrinfo **res)
{
    struct addrinfo hints;
    char ports[8];

    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = passive ? AI_PASSIVE : 0;
    snprintf(ports, sizeof(ports), "%u", port);
    return getaddrinfo(host, ports, &hints, res);
}

hx_err hx_net_listen_tcp(const char *host, uint16_t port, int backlog, bool loopback_only, int *out,
                         char *why, size_t why_len)
{
    struct addrinfo *res = NULL;
    int fd = -1, one = 1, rc;
    hx_err r;

    *out = -1;
    if ((rc = resolve(host, port, true, &res)) != 0) {
        snprintf(why, why_len, "%s", gai_strerror(rc));
        return HX_ERR_CONFIG;
    }
    if (loopback_only && !hx_net_is_loopback(res->ai_addr)) {
        snprintf(why, why_len, "not a loopback address");
        r = HX_ERR_IO_PERM;
        goto out;
    }
    if ((fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, backlog) != 0) {
        snprintf(why, why_len, "%s", strerror(errno));
        r = HX_ERR_IO;
        goto out;
    }
    *out = fd;
    fd = -1;
    r = HX_OK;
out:
    if (fd >= 0) {
        close(fd);
    }
    freeaddrinfo(res);
    return r;
}

static hx_err unix_address(const char *path, struct sockaddr_un *sa, char *why, size_t why_len)
{
    size_t len = strlen(path);

    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (len >= sizeof(sa->sun_path)) {
        snprintf(why, why_len, "socket path too long");
        return HX_ERR_CONFIG;
    }
    memcpy(sa->sun_path, path, len + 1);
    return HX_OK;
}

hx_err hx_net_listen_unix(const char *path, int backlog, mode_t mask, int *out, char *why,
                          size_t why_len)
{
    struct sockaddr_un sa;
    mode_t old;
    hx_err r;
    int fd;

    *out = -1;
    if ((r = unix_address(path, &sa, why, why_len)) != HX_OK) {
        return r;
    }
    unlink(path);
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
        snprintf(why, why_len, "%s", strerror(errno));
        return HX_ERR_IO;
    }
    /* The socket file's mode is fixed at bind: who may connect is decided here. */
    old = umask(mask);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, backlog) != 0) {
        umask(old);
        snprintf(why, why_len, "%s", strerror(errno));
        close(fd);
        return HX_ERR_IO;
    }
    umask(old);
    *out = fd;
    return HX_OK;
}

hx_err hx_net_accept(int listen_fd, int *out)
{
    struct sockaddr_storage sa;

    *out = -1;
    for (;;) {
        socklen_t len = sizeof(sa);
        memset(&sa, 0, sizeof(sa));
        int fd = accept4(listen_fd, (struct sockaddr *)&sa, &len, SOCK_CLOEXEC);
        if (fd >= 0) {
            if (sa.ss_family == AF_INET || sa.ss_family == AF_INET6) {
                set_nodelay(fd);
            }
            *out = fd;
            return HX_OK;
        }
        if (errno == EINTR || errno == ECONNABORTED) {
            continue;
        }
        /* shutdown() of the listener makes accept fail with EINVAL (Linux). */
        return errno == EINVAL || errno == EBADF ? HX_ERR_IO_CLOSED : HX_ERR_IO;
    }
}

/* Waits for a non-blocking connect to finish; 0 or an errno. */
static int connect_wait(int fd, int64_t deadline)
{
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int err = 0, n = poll(&p, 1, hx_deadline_poll_ms(deadline));
        socklen_t len = sizeof(err);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return errno;
        }
        if (n == 0) {
            return ETIMEDOUT;
        }
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
            return errno;
        }
        return err;
    }
}

/* The source address of family fam among src (NULL: none to bind; wildcards are none). */
static const struct addrinfo *source_for(const struct addrinfo *src, int fam, bool *missing)
{
    *missing = false;
    for (; src != NULL; src = src->ai_next) {
        if (src->ai_family == fam) {
            return is_wildcard(src->ai_addr) ? NULL : src;
        }
    }
    *missing = true;
    return NULL;
}

/* One attempt at one address; 0 and *out, or an errno. */
static int dial_one(const struct addrinfo *ai, const struct addrinfo *src, int64_t deadline,
                    int *out)
{
    int fd, one = 1, err = 0;

    if ((fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0) {
        return errno;
    }
    /* Many short connections (QKD requests): their TIME_WAIT ports must not block a bind. */
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (src != NULL) {
        /* Pick the port at connect(), not bind(): bind alone would reserve one per socket. */
        (void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        if (bind(fd, src->ai_addr, src->ai_addrlen) != 0) {
            err = errno;
            goto fail;
        }
    }
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 &&
        (errno != EINPROGRESS || (err = connect_wait(fd, deadline)) != 0)) {
        err = err != 0 ? err : errno;
        goto fail;
    }
    set_nodelay(fd);
    *out = fd;
    return 0;
fail:
    close(fd);
    return err;
}

hx_err hx_net_dial_tcp(const char *host, uint16_t port, const char *source, int64_t deadline,
                       int *out, char *why, size_t why_len)
{
    struct addrinfo *res = NULL, *src = NULL;
    int rc, err = EHOSTUNREACH;
    hx_err r = HX_ERR_IO;

    *out = -1;
    if ((rc = resolve(host, port, false, &res)) != 0) {
        snprintf(why, why_len, "cannot resolve %s: %s", host, gai_strerror(rc));
        return HX_ERR_CONFIG;
    }
    if (source != NULL && source[0] != '\0' && (rc = resolve(source, 0, true, &src)) != 0) {
        snprintf(why, why_len, "cannot resolve source address %s: %s", source, gai_strerror(rc));
        r = HX_ERR_CONFIG;
        goto out;
    }
    for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        bool missing;
        const struct addrinfo *s = source_for(src, ai->ai_family, &missing);
        if (src != NULL && missing) {
            err = EAFNOSUPPORT; /* no source address of this family: try the next */
            continue;
        }
        if ((err = dial_one(ai, s, deadline, out)) == 0) {
            r = HX_OK;
            goto out;
        }
        if (err == ETIMEDOUT && hx_deadline_passed(deadline)) {
            break;
        }
    }
    snprintf(why, why_len, "%s", strerror(err));
    r = err == ETIMEDOUT ? HX_ERR_IO_TIMEOUT : HX_ERR_IO;
out:
    freeaddrinfo(res);
    if (src != NULL) {
        freeaddrinfo(src);
    }
    return r;
}

hx_err hx_net_dial_unix(const char *path, int *out, char *why, size_t why_len)
{
    struct sockaddr_un sa;
    hx_err r;
    int fd;

    *out = -1;
    if ((r = unix_address(path, &sa, why, why_len)) != HX_OK) {
        return r;
    }
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
        connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        snprintf(why, why_len, "%s", strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return HX_ERR_IO;
    }
    *out = fd;
    return HX_OK;
}

hx_err hx_net_peer_cred(int fd, uid_t *uid, gid_t *gid)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);

    memset(&cred, 0, sizeof(cred));
    *uid = (uid_t)-1;
    *gid = (gid_t)-1;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
        return HX_ERR_IO;
    }
    *uid = cred.uid;
    *gid = cred.gid;
    return HX_OK;
}

bool hx_net_peer_ip(int fd, char *buf, size_t len)
{
    struct sockaddr_storage sa;
    socklen_t sl = sizeof(sa);
    const void *a;

    memset(&sa, 0, sizeof(sa));
    if (getpeername(fd, (struct sockaddr *)&sa, &sl) != 0) {
        return false;
    }
    if (sa.ss_family == AF_INET) {
        a = &((const struct sockaddr_in *)&sa)->sin_addr;
    } else if (sa.ss_family == AF_INET6) {
        a = &((const struct sockaddr_in6 *)&sa)->sin6_addr;
    } else {
        return false;
    }
    return inet_ntop(sa.ss_family, a, buf, (socklen_t)len) != NULL;
}

/* ---- back-off ---- */

void hx_backoff_init(struct hx_backoff *b, double min_s, double max_s)
{
    b->min_s = min_s;
    b->max_s = max_s > min_s ? max_s : min_s;
    b->cur_s = b->min_s;
    /* Jitter needs no secret, only differing seeds: the clock and the struct's address. */
    b->rng = (uint64_t)hx_monotime_ns() ^ (uint64_t)(uintptr_t)b ^ 0x9e3779b97f4a7c15ULL;
}

void hx_backoff_reset(struct hx_backoff *b)
{
    b->cur_s = b->min_s;
}

double hx_backoff_next(struct hx_backoff *b)
{
    double d, frac;

    /* xorshift64 */
    b->rng ^= b->rng << 13;
    b->rng ^= b->rng >> 7;
    b->rng ^= b->rng << 17;
    frac = (double)(b->rng >> 11) / (double)(1ULL << 53);
    d = b->cur_s * (0.5 + 0.5 * frac);
    b->cur_s = b->cur_s * 2 > b->max_s ? b->max_s : b->cur_s * 2;
    return d;
}
