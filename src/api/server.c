/*
 * The northbound ETSI 004 API: the reference's JSON wire format over TCP (and optionally a
 * Unix socket with a uid/gid allow-list), parsed as a stream. One thread per application
 * connection. This file holds the connections: listeners, accept, TLS, reading requests and
 * sending replies; each decoded request goes to handlers.c, which calls the stream service
 * (OPEN_CONNECT and GET_KEY block there). Every malformed or impossible request gets an
 * integer status and a message; the connection stays usable. Replies use the reference's
 * separators (", " and ": ").
 */
#define _GNU_SOURCE /* accept4, SO_PEERCRED */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "api/handlers.h"
#include "api/server.h"
#include "common/json.h"
#include "common/log.h"
#include "daemon/service.h"
#include "proto/etsi004.h"

struct hxd_api {
    struct hxd *d;                /* the daemon, for the stream service */
    const struct hxd_config *cfg; /* its configuration */
    int tcp_fd, unix_fd, tls_fd;
    pthread_t tcp_thread, unix_thread, tls_thread;
    bool tcp_started, unix_started, tls_started;
    SSL_CTX *tls; /* the mutual-TLS API (api.tls.*), or NULL */
    pthread_mutex_t lock;
    pthread_cond_t idle;
    int *conn_fds;
    pthread_t *threads; /* per slot: the connection's thread, joined before the slot's reuse */
    bool *has_thread;
    size_t n_conns;
    bool stopping;
};

struct client {
    struct hxd_api *a;
    int fd;
    size_t slot;
    char identity[HXD_SVC_MAX_IDENTITY]; /* "uid:N" (Unix), "cert:CN" (mTLS), "" (TCP) */
    SSL *ssl;                            /* the mutual-TLS API, else NULL */
    bool tls_conn;                       /* accepted on the mutual-TLS listener */
};

/* ---- replies ---- */

static bool send_all(struct client *c, const void *p, size_t n)
{
    const uint8_t *b = p;

    if (c->ssl != NULL) {
        size_t done = 0;
        return n == 0 || (SSL_write_ex(c->ssl, p, n, &done) == 1 && done == n);
    }
    while (n > 0) {
        ssize_t r = send(c->fd, b, n, MSG_NOSIGNAL);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            return false;
        }
        b += r;
        n -= (size_t)r;
    }
    return true;
}

static bool reply(struct client *c, struct json_object *o)
{
    struct hx_writer w;
    bool ok;

    hx_writer_init_dynamic(&w, 1u << 20);
    hxd_api_dump(o, &w);
    ok = send_all(c, w.data, w.len);
    hx_writer_wipe(&w); /* it may hold a key */
    json_object_put(o);
    return ok;
}

/* Has the application closed its end (hung up) while its request waited? (The stream
 * service asks, with the client as arg.) */
static bool client_gone(void *arg)
{
    const struct client *c = arg;
    struct pollfd p = {.fd = c->fd, .events = POLLRDHUP};

    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

/* ---- connections ---- */

/* recv, or SSL_read on the mutual-TLS API. */
static ssize_t client_recv(struct client *c, void *buf, size_t n)
{
    size_t got = 0;

    if (c->ssl == NULL) {
        return recv(c->fd, buf, n, 0);
    }
    return SSL_read_ex(c->ssl, buf, n, &got) == 1 ? (ssize_t)got : 0;
}

/*
 * The mutual-TLS API's handshake (10 s at most): TLS 1.3, a client certificate from api.tls.ca
 * required. The application's identity is its certificate's common name.
 */
static bool tls_accept(struct client *c)
{
    struct timeval tv = {10, 0}, none = {0, 0};
    char cn[64] = "";
    X509 *cert;

    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if ((c->ssl = SSL_new(c->a->tls)) == NULL || SSL_set_fd(c->ssl, c->fd) != 1 ||
        SSL_accept(c->ssl) != 1 || (cert = SSL_get0_peer_certificate(c->ssl)) == NULL ||
        X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof(cn)) <=
            0) {
        long v = c->ssl != NULL ? SSL_get_verify_result(c->ssl) : X509_V_OK;
        char err[160];
        ERR_error_string_n(ERR_peek_last_error(), err, sizeof(err));
        ERR_clear_error();
        hx_warn("API TLS handshake failed",
                HX_F_STR("reason", v != X509_V_OK ? X509_verify_cert_error_string(v) : err));
        return false;
    }
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof(none));
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &none, sizeof(none));
    snprintf(c->identity, sizeof(c->identity), "cert:%s", cn);
    return true;
}

static void *client_main(void *arg)
{
    static const struct hx_json_limits lim = {
        .max_message = 64 * 1024, .max_depth = 8, .max_string = 4096, .max_members = 64};
    struct client *c = arg;
    struct hxd_api *a = c->a;
    struct hx_json_stream *s = NULL;
    struct hx_writer keyw; /* a GET_KEY reply: up to ~4 bytes of text per key byte */
    uint8_t buf[16384];
    ssize_t n;

    hx_writer_init_dynamic(&keyw, 1u << 20);
    if (hx_json_stream_new(&lim, &s) != HX_OK) {
        goto out;
    }
    if (c->tls_conn && !tls_accept(c)) {
        goto out;
    }
    while ((n = client_recv(c, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR)) {
        struct json_object *o;
        enum hx_json_event ev;
        const char *why;
        hx_err e;
        if (n < 0) {
            continue;
        }
        if (hx_json_stream_feed(s, buf, (size_t)n) != HX_OK) {
            break;
        }
        while ((ev = hx_json_stream_next(s, &o, &e, &why)) != HX_JSON_NEED_MORE) {
            struct hx_004_request req;
            struct json_object *r;
            char msg[340];
            if (ev == HX_JSON_ERROR) {
                snprintf(msg, sizeof(msg), "malformed request: %s", why);
                r = hx_004_json_status(HYKEX_STATUS_NO_QKD_CONNECTION, msg);
            } else if (hx_004_json_decode_request(o, &req, msg, sizeof(msg)) != HX_OK) {
                char full[380];
                snprintf(full, sizeof(full), "invalid request: %s", msg);
                r = hx_004_json_status(HYKEX_STATUS_NO_QKD_CONNECTION, full);
            } else {
                struct hxd_api_caller who = {c->identity, client_gone, c};
                r = hxd_api_handle(a->d, &req, &who, &keyw);
            }
            json_object_put(o);
            bool sent = r != NULL ? reply(c, r) : send_all(c, keyw.data, keyw.len);
            hx_writer_reset(&keyw); /* wipes the key's reply */
            if (!sent) {
                goto out;
            }
        }
    }
out:
    hx_writer_wipe(&keyw);
    hx_json_stream_free(s);
    pthread_mutex_lock(&a->lock);
    a->conn_fds[c->slot] = -1;
    a->n_conns--;
    pthread_cond_broadcast(&a->idle);
    pthread_mutex_unlock(&a->lock);
    SSL_free(c->ssl);
    close(c->fd);
    free(c);
    return NULL;
}

static bool uid_allowed(const struct hxd_api *a, uid_t uid, gid_t gid)
{
    const struct hxd_config *cfg = a->cfg;
    char list[256], *save = NULL, *tok;

    if (uid == getuid()) {
        return true;
    }
    for (int pass = 0; pass < 2; pass++) {
        memcpy(list, pass == 0 ? cfg->api_allow_uids : cfg->api_allow_gids, sizeof(list));
        for (tok = strtok_r(list, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
            char *end;
            unsigned long v = strtoul(tok, &end, 10);
            if (*end == '\0' && end != tok && v == (pass == 0 ? uid : gid)) {
                return true;
            }
        }
    }
    return false;
}

struct acceptor {
    struct hxd_api *a;
    int fd;
    bool unix_socket;
    bool tls;
};

static void *accept_main(void *arg)
{
    struct acceptor *ac = arg;
    struct hxd_api *a = ac->a;

    for (;;) {
        int fd = accept4(ac->fd, NULL, NULL, SOCK_CLOEXEC), one = 1;
        struct client *c;
        pthread_t t;
        pthread_attr_t attr;
        size_t slot;

        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }
            if (a->stopping) {
                break;
            }
            usleep(100000);
            continue;
        }
        struct ucred cred;
        memset(&cred, 0, sizeof(cred));
        if (ac->unix_socket) {
            socklen_t len = sizeof(cred);
            if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
                !uid_allowed(a, cred.uid, cred.gid)) {
                hx_warn("API connection refused by the uid/gid allow-list",
                        HX_F_I64("uid", (int64_t)cred.uid));
                close(fd);
                continue;
            }
        } else {
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        }
        pthread_mutex_lock(&a->lock);
        if (a->stopping || a->n_conns >= a->cfg->max_clients) {
            pthread_mutex_unlock(&a->lock);
            close(fd);
            continue;
        }
        for (slot = 0; a->conn_fds[slot] >= 0; slot++) {
        }
        a->conn_fds[slot] = fd;
        a->n_conns++;
        pthread_mutex_unlock(&a->lock);
        /* Threads are joined, not detached: an exiting thread's OpenSSL state must be gone
         * before the process is. The slot's previous thread has finished its work. */
        if (a->has_thread[slot]) {
            pthread_join(a->threads[slot], NULL);
            a->has_thread[slot] = false;
        }
        if ((c = calloc(1, sizeof(*c))) == NULL) {
            close(fd);
            continue;
        }
        c->a = a;
        c->fd = fd;
        c->slot = slot;
        if (ac->unix_socket) {
            snprintf(c->identity, sizeof(c->identity), "uid:%lu", (unsigned long)cred.uid);
        }
        c->tls_conn = ac->tls;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 256 * 1024);
        if (pthread_create(&t, &attr, client_main, c) == 0) {
            a->threads[slot] = t;
            a->has_thread[slot] = true;
        } else {
            pthread_mutex_lock(&a->lock);
            a->conn_fds[slot] = -1;
            a->n_conns--;
            pthread_mutex_unlock(&a->lock);
            close(fd);
            free(c);
        }
        pthread_attr_destroy(&attr);
    }
    free(ac);
    return NULL;
}

static bool is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
    }
    return false;
}

/* The mutual-TLS API: its context (TLS 1.3, client certificates required) and listener. */
static hx_err start_tls_api(struct hxd_api *a, char *why, size_t why_len)
{
    const struct hxd_config *cfg = a->cfg;
    struct addrinfo hints, *res = NULL;
    struct acceptor *ac;
    struct stat st;
    char port[8];
    int one = 1;

    if (cfg->api_tls_cert[0] == '\0' || cfg->api_tls_key[0] == '\0' || cfg->api_tls_ca[0] == '\0') {
        snprintf(why, why_len, "api.tls.port needs api.tls.cert, api.tls.key and api.tls.ca");
        return HX_ERR_CONFIG;
    }
    if (stat(cfg->api_tls_key, &st) != 0 || (st.st_mode & 077) != 0) {
        snprintf(why, why_len, "api.tls.key %s: missing, or readable by others (mode 0600)",
                 cfg->api_tls_key);
        return HX_ERR_IO_PERM;
    }
    if ((a->tls = SSL_CTX_new(TLS_server_method())) == NULL ||
        SSL_CTX_set_min_proto_version(a->tls, TLS1_3_VERSION) != 1 ||
        SSL_CTX_use_certificate_chain_file(a->tls, cfg->api_tls_cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(a->tls, cfg->api_tls_key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(a->tls) != 1 ||
        SSL_CTX_load_verify_locations(a->tls, cfg->api_tls_ca, NULL) != 1) {
        char err[160];
        ERR_error_string_n(ERR_get_error(), err, sizeof(err));
        ERR_clear_error();
        snprintf(why, why_len, "api.tls: %s", err);
        return HX_ERR_CONFIG;
    }
    SSL_CTX_set_verify(a->tls, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    snprintf(port, sizeof(port), "%u", cfg->api_tls_port);
    if (getaddrinfo(cfg->api_tls_host, port, &hints, &res) != 0 ||
        (a->tls_fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
        setsockopt(a->tls_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(a->tls_fd, res->ai_addr, res->ai_addrlen) != 0 || listen(a->tls_fd, 256) != 0) {
        snprintf(why, why_len, "api.tls %s:%u: %s", cfg->api_tls_host, cfg->api_tls_port,
                 strerror(errno));
        if (res != NULL) {
            freeaddrinfo(res);
        }
        return HX_ERR_IO;
    }
    freeaddrinfo(res);
    if ((ac = malloc(sizeof(*ac))) == NULL) {
        return HX_ERR_NOMEM;
    }
    *ac = (struct acceptor){a, a->tls_fd, false, true};
    a->tls_started = pthread_create(&a->tls_thread, NULL, accept_main, ac) == 0;
    return HX_OK;
}

hx_err hxd_api_start(struct hxd *d, struct hxd_api **out, char *why, size_t why_len)
{
    const struct hxd_config *cfg = hxd_svc_config(d);
    struct hxd_api *a = calloc(1, sizeof(*a));
    struct addrinfo hints, *res = NULL;
    struct acceptor *ac;
    char port[8];
    int one = 1, rc;

    *out = NULL;
    if (a == NULL || (a->conn_fds = malloc(cfg->max_clients * sizeof(int))) == NULL ||
        (a->threads = calloc(cfg->max_clients, sizeof(pthread_t))) == NULL ||
        (a->has_thread = calloc(cfg->max_clients, sizeof(bool))) == NULL) {
        if (a != NULL) {
            free(a->conn_fds);
            free(a->threads);
        }
        free(a);
        return HX_ERR_NOMEM;
    }
    for (size_t i = 0; i < cfg->max_clients; i++) {
        a->conn_fds[i] = -1;
    }
    a->d = d;
    a->cfg = cfg;
    a->tcp_fd = a->unix_fd = a->tls_fd = -1;
    pthread_mutex_init(&a->lock, NULL);
    pthread_cond_init(&a->idle, NULL);
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    snprintf(port, sizeof(port), "%u", cfg->api.port);
    if ((rc = getaddrinfo(cfg->api.host, port, &hints, &res)) != 0) {
        snprintf(why, why_len, "hybridization_server_address %s: %s", cfg->api.host,
                 gai_strerror(rc));
        hxd_api_stop(a);
        return HX_ERR_CONFIG;
    }
    if (!is_loopback(res->ai_addr) && !cfg->api_allow_remote) {
        snprintf(why, why_len,
                 "hybridization_server_address %s is not loopback: set api.allow_remote to "
                 "serve applications on other hosts",
                 cfg->api.host);
        freeaddrinfo(res);
        hxd_api_stop(a);
        return HX_ERR_CONFIG;
    }
    if ((a->tcp_fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
        setsockopt(a->tcp_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(a->tcp_fd, res->ai_addr, res->ai_addrlen) != 0 || listen(a->tcp_fd, 256) != 0) {
        snprintf(why, why_len, "hybridization_server_address %s:%u: %s", cfg->api.host,
                 cfg->api.port, strerror(errno));
        freeaddrinfo(res);
        hxd_api_stop(a);
        return HX_ERR_IO;
    }
    freeaddrinfo(res);
    if ((ac = malloc(sizeof(*ac))) == NULL) {
        hxd_api_stop(a);
        return HX_ERR_NOMEM;
    }
    *ac = (struct acceptor){a, a->tcp_fd, false, false};
    a->tcp_started = pthread_create(&a->tcp_thread, NULL, accept_main, ac) == 0;
    if (cfg->api_unix_socket[0] != '\0') {
        struct sockaddr_un sa;
        mode_t old;
        memset(&sa, 0, sizeof(sa));
        sa.sun_family = AF_UNIX;
        memcpy(sa.sun_path, cfg->api_unix_socket, strlen(cfg->api_unix_socket) + 1);
        unlink(sa.sun_path);
        old = umask(0117);
        if ((a->unix_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
            bind(a->unix_fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
            listen(a->unix_fd, 256) != 0) {
            umask(old);
            snprintf(why, why_len, "api.unix_socket %s: %s", sa.sun_path, strerror(errno));
            hxd_api_stop(a);
            return HX_ERR_IO;
        }
        umask(old);
        if ((ac = malloc(sizeof(*ac))) == NULL) {
            hxd_api_stop(a);
            return HX_ERR_NOMEM;
        }
        *ac = (struct acceptor){a, a->unix_fd, true, false};
        a->unix_started = pthread_create(&a->unix_thread, NULL, accept_main, ac) == 0;
    }
    if (cfg->api_tls_port != 0) {
        hx_err e = start_tls_api(a, why, why_len);
        if (e != HX_OK) {
            hxd_api_stop(a);
            return e;
        }
    }
    *out = a;
    return HX_OK;
}

void hxd_api_stop(struct hxd_api *a)
{
    struct timespec deadline;

    if (a == NULL) {
        return;
    }
    a->stopping = true;
    if (a->tcp_fd >= 0) {
        shutdown(a->tcp_fd, SHUT_RDWR);
    }
    if (a->unix_fd >= 0) {
        shutdown(a->unix_fd, SHUT_RDWR);
    }
    if (a->tls_fd >= 0) {
        shutdown(a->tls_fd, SHUT_RDWR);
    }
    if (a->tls_started) {
        pthread_join(a->tls_thread, NULL);
    }
    if (a->tcp_started) {
        pthread_join(a->tcp_thread, NULL);
    }
    if (a->unix_started) {
        pthread_join(a->unix_thread, NULL);
    }
    pthread_mutex_lock(&a->lock);
    for (size_t i = 0; a->conn_fds != NULL && i < a->cfg->max_clients; i++) {
        if (a->conn_fds[i] >= 0) {
            shutdown(a->conn_fds[i], SHUT_RDWR);
        }
    }
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 1;
    while (a->n_conns > 0 && pthread_cond_timedwait(&a->idle, &a->lock, &deadline) != ETIMEDOUT) {
    }
    bool idle = a->n_conns == 0;
    pthread_mutex_unlock(&a->lock);
    for (size_t i = 0; idle && a->has_thread != NULL && i < a->cfg->max_clients; i++) {
        if (a->has_thread[i]) {
            pthread_join(a->threads[i], NULL);
        }
    }
    if (a->tcp_fd >= 0) {
        close(a->tcp_fd);
    }
    if (a->unix_fd >= 0) {
        close(a->unix_fd);
        unlink(a->cfg->api_unix_socket);
    }
    if (a->tls_fd >= 0) {
        close(a->tls_fd);
    }
    if (!idle) {
        return; /* connection threads still hold it (and the TLS context) */
    }
    SSL_CTX_free(a->tls);
    free(a->conn_fds);
    free(a->threads);
    free(a->has_thread);
    pthread_cond_destroy(&a->idle);
    pthread_mutex_destroy(&a->lock);
    free(a);
}
