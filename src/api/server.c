/*
 * The northbound ETSI 004 API: the reference's JSON wire format over TCP (and optionally a
 * Unix socket with a uid/gid allow-list), parsed as a stream. One thread per application
 * connection. This file holds the connections: listeners, accept, TLS, reading requests and
 * sending replies; each decoded request goes to handlers.c, which calls the stream service
 * (OPEN_CONNECT and GET_KEY block there). Every malformed or impossible request gets an
 * integer status and a message; the connection stays usable. Replies use the reference's
 * separators (", " and ": ").
 */
#define _GNU_SOURCE /* POLLRDHUP */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "api/etsi014_server.h"
#include "api/handlers.h"
#include "api/server.h"
#include "common/clock.h"
#include "common/json.h"
#include "common/log.h"
#include "daemon/service.h"
#include "net/conn.h"
#include "net/sock.h"
#include "proto/etsi004.h"

struct hxd_api {
    struct hxd *d;                /* the daemon, for the stream service */
    const struct hxd_config *cfg; /* its configuration */
    int tcp_fd, unix_fd, tls_fd;
    pthread_t tcp_thread, unix_thread, tls_thread;
    bool tcp_started, unix_started, tls_started;
    SSL_CTX *tls;                /* the mutual-TLS API (api.tls.*), or NULL */
    struct hxd_014_server *e014; /* the ETSI 014 server (api.etsi014.*), or NULL */
    pthread_mutex_t lock;
    pthread_cond_t idle;
    int *conn_fds;
    pthread_t *threads; /* per slot: the connection's thread, joined before the slot's reuse */
    bool *has_thread;
    size_t n_conns;
    atomic_bool stopping; /* read without the lock by accept threads */
};

struct client {
    struct hxd_api *a;
    int fd; /* conn.fd: for polls that ask whether the application hung up */
    size_t slot;
    char identity[HXD_SVC_MAX_IDENTITY]; /* "uid:N" (Unix), "cert:CN" (mTLS), "" (TCP) */
    struct hx_conn conn;                 /* plain, or TLS on the mutual-TLS API (net/conn.h) */
    bool tls_conn;                       /* accepted on the mutual-TLS listener */
};

/* ---- replies ---- */

static bool send_all(struct client *c, const void *p, size_t n)
{
    return hx_conn_write_all(&c->conn, p, n, HX_DEADLINE_NEVER) == HX_OK;
}

static bool reply(struct client *c, struct json_object *o)
{
    struct hx_writer w;
    hx_err e;
    bool ok;

    hx_writer_init_dynamic(&w, 1u << 20);
    if ((e = hxd_api_dump(o, &w)) != HX_OK) {
        /* Never half a reply: the client would read invalid JSON and wait for the rest. */
        hx_warn("API reply too large to write: connection closed",
                HX_F_STR("error", hx_strerror(e)) HX_F_I64("cap", 1 << 20));
        ok = false;
    } else {
        ok = send_all(c, w.data, w.len);
    }
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

/*
 * What has arrived (plain or TLS), up to n bytes; 0 when the connection ended. No deadline: an
 * idle application may keep its connection; hxd_api_stop ends the wait with shutdown().
 */
static ssize_t client_recv(struct client *c, void *buf, size_t n)
{
    size_t got;

    return hx_conn_read_some(&c->conn, buf, n, &got, HX_DEADLINE_NEVER) == HX_OK ? (ssize_t)got : 0;
}

/*
 * The mutual-TLS API's handshake (10 s at most): TLS 1.3, a client certificate from api.tls.ca
 * required. The application's identity is its certificate's common name.
 */
static bool tls_accept(struct client *c)
{
    char cn[64] = "";
    X509 *cert;

    if (hx_conn_tls_accept(&c->conn, c->a->tls, hx_deadline_in_ms(10000)) != HX_OK ||
        (cert = SSL_get0_peer_certificate(c->conn.ssl)) == NULL ||
        X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof(cn)) <=
            0) {
        long v = c->conn.ssl != NULL ? SSL_get_verify_result(c->conn.ssl) : X509_V_OK;
        char err[160];
        ERR_error_string_n(ERR_peek_last_error(), err, sizeof(err));
        ERR_clear_error();
        hx_warn("API TLS handshake failed",
                HX_F_STR("reason", v != X509_V_OK ? X509_verify_cert_error_string(v) : err));
        return false;
    }
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

    (void)prctl(PR_SET_NAME, "hx-api", 0, 0, 0); /* for top -H, perf, the debugger */
    hx_writer_init_dynamic(&keyw, 1u << 20);
    if (hx_json_stream_new(&lim, &s) != HX_OK) {
        goto out;
    }
    if (c->tls_conn && !tls_accept(c)) {
        goto out;
    }
    while ((n = client_recv(c, buf, sizeof(buf))) > 0) {
        struct hx_004_request req;
        enum hx_004_next next;
        const char *why;
        char msg[340];
        if (hx_json_stream_feed(s, buf, (size_t)n) != HX_OK) {
            break;
        }
        while ((next = hx_004_json_next_request(s, &lim, false, &req, &why, msg, sizeof(msg))) !=
               HX_004_NEED_MORE) {
            struct json_object *r;
            struct hxd_api_caller who = {c->identity, client_gone, c};
            if (next == HX_004_MALFORMED) {
                snprintf(msg, sizeof(msg), "malformed request: %s", why);
                r = hx_004_json_status(HYKEX_STATUS_NO_QKD_CONNECTION, msg);
            } else if (next == HX_004_INVALID) {
                char full[380];
                snprintf(full, sizeof(full), "invalid request: %s", msg);
                r = hx_004_json_status(HYKEX_STATUS_NO_QKD_CONNECTION, full);
            } else {
                r = hxd_api_handle(a->d, &req, &who, &keyw);
            }
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
    hx_conn_wipe(&c->conn);
    free(c);
    return NULL;
}

/* Is id in list, a comma-separated list of decimal ids (api.allow_uids, api.allow_gids)? */
static bool id_listed(const char *list, size_t cap, unsigned long id)
{
    const char *p = list, *end = list + strnlen(list, cap);

    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma != NULL ? comma : end;
        char num[24], *e;
        size_t len = (size_t)(stop - p);
        if (len > 0 && len < sizeof(num)) {
            memcpy(num, p, len);
            num[len] = '\0';
            unsigned long v = strtoul(num, &e, 10);
            if (*e == '\0' && num[0] >= '0' && num[0] <= '9' && v == id) {
                return true;
            }
        }
        p = stop + 1;
    }
    return false;
}

static bool uid_allowed(const struct hxd_api *a, uid_t uid, gid_t gid)
{
    const struct hxd_config *cfg = a->cfg;

    return uid == getuid() || id_listed(cfg->api_allow_uids, sizeof(cfg->api_allow_uids), uid) ||
           id_listed(cfg->api_allow_gids, sizeof(cfg->api_allow_gids), gid);
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
        struct client *c;
        pthread_t t;
        pthread_attr_t attr;
        size_t slot;
        uid_t uid = 0;
        gid_t gid = 0;
        int fd;

        if (hx_net_accept(ac->fd, &fd) != HX_OK) {
            if (a->stopping) {
                break;
            }
            usleep(100000); /* out of descriptors: wait for connections to end */
            continue;
        }
        if (ac->unix_socket &&
            (hx_net_peer_cred(fd, &uid, &gid) != HX_OK || !uid_allowed(a, uid, gid))) {
            hx_warn("API connection refused by the uid/gid allow-list",
                    HX_F_I64("uid", (int64_t)uid));
            close(fd);
            continue;
        }
        if ((c = calloc(1, sizeof(*c))) == NULL) {
            close(fd);
            continue;
        }
        c->a = a;
        hx_conn_init(&c->conn, fd);
        c->fd = fd;
        if (ac->unix_socket) {
            snprintf(c->identity, sizeof(c->identity), "uid:%lu", (unsigned long)uid);
        }
        c->tls_conn = ac->tls;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 256 * 1024);
        /*
         * Slots are shared by the accept threads of every listener: their bookkeeping happens
         * under the lock. Threads are joined, not detached (an exiting thread's OpenSSL state
         * must be gone before the process is); a free slot's thread has cleared its fd under
         * this lock as its last use of it, so joining it here cannot wait for the lock.
         */
        pthread_mutex_lock(&a->lock);
        if (a->stopping || a->n_conns >= a->cfg->max_clients) {
            pthread_mutex_unlock(&a->lock);
            pthread_attr_destroy(&attr);
            hx_conn_wipe(&c->conn);
            free(c);
            continue;
        }
        for (slot = 0; a->conn_fds[slot] >= 0; slot++) {
        }
        if (a->has_thread[slot]) {
            pthread_join(a->threads[slot], NULL);
            a->has_thread[slot] = false;
        }
        c->slot = slot;
        a->conn_fds[slot] = fd;
        a->n_conns++;
        if (pthread_create(&t, &attr, client_main, c) == 0) {
            a->threads[slot] = t;
            a->has_thread[slot] = true;
            c = NULL;
        } else {
            a->conn_fds[slot] = -1;
            a->n_conns--;
        }
        pthread_mutex_unlock(&a->lock);
        if (c != NULL) {
            hx_conn_wipe(&c->conn);
            free(c);
        }
        pthread_attr_destroy(&attr);
    }
    free(ac);
    return NULL;
}

/* The mutual-TLS API: its context (TLS 1.3, client certificates required) and listener. */
static hx_err start_tls_api(struct hxd_api *a, char *why, size_t why_len)
{
    const struct hxd_config *cfg = a->cfg;
    struct acceptor *ac;
    struct stat st;
    char lerr[200];

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
    /* api.tls.port is checked to be 1..65535 when the configuration is read */
    if (hx_net_listen_tcp(cfg->api_tls_host, (uint16_t)cfg->api_tls_port, 256, false, &a->tls_fd,
                          lerr, sizeof(lerr)) != HX_OK) {
        snprintf(why, why_len, "api.tls %s:%u: %s", cfg->api_tls_host, cfg->api_tls_port, lerr);
        return HX_ERR_IO;
    }
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
    struct acceptor *ac;
    char err[200];
    hx_err e;

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
    if (hx_cond_init_monotonic(&a->idle) != HX_OK) {
        pthread_mutex_destroy(&a->lock);
        free(a->conn_fds);
        free(a->threads);
        free(a->has_thread);
        free(a);
        return HX_ERR_INTERNAL;
    }
    /* Applications on other hosts only when the operator says so (api.allow_remote). */
    e = hx_net_listen_tcp(cfg->api.host, cfg->api.port, 256, !cfg->api_allow_remote, &a->tcp_fd,
                          err, sizeof(err));
    if (e == HX_ERR_CONFIG) {
        snprintf(why, why_len, "hybridization_server_address %s: %s", cfg->api.host, err);
    } else if (e == HX_ERR_IO_PERM) {
        snprintf(why, why_len,
                 "hybridization_server_address %s is not loopback: set api.allow_remote to "
                 "serve applications on other hosts",
                 cfg->api.host);
        e = HX_ERR_CONFIG;
    } else if (e != HX_OK) {
        snprintf(why, why_len, "hybridization_server_address %s:%u: %s", cfg->api.host,
                 cfg->api.port, err);
    }
    if (e != HX_OK) {
        hxd_api_stop(a);
        return e;
    }
    if ((ac = malloc(sizeof(*ac))) == NULL) {
        hxd_api_stop(a);
        return HX_ERR_NOMEM;
    }
    *ac = (struct acceptor){a, a->tcp_fd, false, false};
    a->tcp_started = pthread_create(&a->tcp_thread, NULL, accept_main, ac) == 0;
    if (cfg->api_unix_socket[0] != '\0') {
        /* 0660: the owner and its group connect; the allow-list then checks the peer's ids. */
        if ((e = hx_net_listen_unix(cfg->api_unix_socket, 256, 0117, &a->unix_fd, err,
                                    sizeof(err))) != HX_OK) {
            snprintf(why, why_len, "api.unix_socket %s: %s", cfg->api_unix_socket, err);
            hxd_api_stop(a);
            return e;
        }
        if ((ac = malloc(sizeof(*ac))) == NULL) {
            hxd_api_stop(a);
            return HX_ERR_NOMEM;
        }
        *ac = (struct acceptor){a, a->unix_fd, true, false};
        a->unix_started = pthread_create(&a->unix_thread, NULL, accept_main, ac) == 0;
    }
    if (cfg->api_tls_port != 0) {
        if ((e = start_tls_api(a, why, why_len)) != HX_OK) {
            hxd_api_stop(a);
            return e;
        }
    }
    if ((e = hxd_014_server_start(d, &a->e014, why, why_len)) != HX_OK) {
        hxd_api_stop(a);
        return e;
    }
    *out = a;
    return HX_OK;
}

void hxd_api_stop(struct hxd_api *a)
{
    int64_t deadline = hx_deadline_in_ms(1000);

    if (a == NULL) {
        return;
    }
    hxd_014_server_stop(a->e014);
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
    /* A second for the connection threads to see their sockets shut down and leave. */
    while (a->n_conns > 0 && !hx_cond_wait_until(&a->idle, &a->lock, deadline)) {
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
        /* Connection threads still hold it (and the TLS context): left to the process's end. */
        for (size_t i = 0; a->has_thread != NULL && i < a->cfg->max_clients; i++) {
            if (a->has_thread[i]) {
                pthread_detach(a->threads[i]);
            }
        }
        return;
    }
    SSL_CTX_free(a->tls);
    free(a->conn_fds);
    free(a->threads);
    free(a->has_thread);
    pthread_cond_destroy(&a->idle);
    pthread_mutex_destroy(&a->lock);
    free(a);
}
