/* The ETSI 014 server: HTTPS, mutual TLS 1.3, event loops (etsi014_server.h). */
#include "api/etsi014_server.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/queue.h> /* TAILQ_*, over libevent's key-value lists */
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "api/etsi014_keys.h"
#include "api/etsi014_pairs.h"
#include "common/log.h"
#include "daemon/service.h"
#include "net/sock.h"
#include "proto/etsi014.h"

/* Largest reply: max_key_per_request keys of 8 KiB in base64, with their ids. */
#define REPLY_MAX (16u << 20)
/* Query parameters of one request (dec_keys by GET: one key_ID each). */
#define MAX_PARAMS (HX_014_MAX_KEYS + 1)
/* Connections idle longer than this (s) are closed; also the header/body read timeout. */
#define IDLE_S 30
#define HEADERS_MAX (16 * 1024)

struct loop {
    struct hxd_014_server *s;
    struct event_base *base;
    struct evhttp *http;
    pthread_t thread;
    bool started;
};

struct hxd_014_server {
    struct hxd *d;
    const struct hxd_014_config *c;
    struct hxd_014 *keys;
    SSL_CTX *ctx;
    int fd;
    struct loop *loops;
    size_t n_loops;
};

/* ---- TLS ---- */

static struct bufferevent *new_tls_bev(struct event_base *base, void *arg)
{
    struct hxd_014_server *s = arg;
    SSL *ssl = SSL_new(s->ctx);

    if (ssl == NULL) {
        return NULL;
    }
    return bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                          BEV_OPT_CLOSE_ON_FREE);
}

/* The verified client certificate's one common name, if it is a valid SAE id. */
static bool caller_sae(struct evhttp_request *req, char *out, size_t cap)
{
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    struct bufferevent *bev = conn != NULL ? evhttp_connection_get_bufferevent(conn) : NULL;
    SSL *ssl = bev != NULL ? bufferevent_openssl_get_ssl(bev) : NULL;
    X509 *cert;
    X509_NAME *name;
    int i;

    if (ssl == NULL || (cert = SSL_get0_peer_certificate(ssl)) == NULL ||
        SSL_get_verify_result(ssl) != X509_V_OK || (name = X509_get_subject_name(cert)) == NULL ||
        (i = X509_NAME_get_index_by_NID(name, NID_commonName, -1)) < 0 ||
        X509_NAME_get_index_by_NID(name, NID_commonName, i) >= 0) {
        return false; /* none, or two common names: which one would be the SAE? */
    }
    int n = X509_NAME_get_text_by_NID(name, NID_commonName, out, (int)cap);
    return n > 0 && (size_t)n < cap && strlen(out) == (size_t)n && hx_014_sae_id_ok(out, (size_t)n);
}

static hx_err make_ctx(struct hxd_014_server *s, char *why, size_t why_len)
{
    const struct hxd_014_config *c = s->c;
    struct stat st;

    if (stat(c->key, &st) != 0 || (st.st_mode & 077) != 0) {
        snprintf(why, why_len, "api.etsi014.key %s: missing, or readable by others (mode 0600)",
                 c->key);
        return HX_ERR_IO_PERM;
    }
    /* TLS 1.3 only (014 asks for 1.2 or later; 1.3 is what carries the hybrid group), the
     * post-quantum hybrid group first, and a client certificate from the SAEs' CA. */
    if ((s->ctx = SSL_CTX_new(TLS_server_method())) == NULL ||
        SSL_CTX_set_min_proto_version(s->ctx, TLS1_3_VERSION) != 1 ||
        SSL_CTX_set1_groups_list(s->ctx, "X25519MLKEM768:X25519") != 1 ||
        SSL_CTX_use_certificate_chain_file(s->ctx, c->cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(s->ctx, c->key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(s->ctx) != 1 ||
        SSL_CTX_load_verify_locations(s->ctx, c->ca, NULL) != 1) {
        char err[160];
        ERR_error_string_n(ERR_get_error(), err, sizeof(err));
        ERR_clear_error();
        snprintf(why, why_len, "api.etsi014: %s", err);
        return HX_ERR_CONFIG;
    }
    SSL_CTX_set_verify(s->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    /* Every connection proves its certificate afresh: no session cache, no tickets. */
    SSL_CTX_set_options(s->ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(s->ctx, SSL_SESS_CACHE_OFF);
    (void)SSL_CTX_set_num_tickets(s->ctx, 0);
    return HX_OK;
}

/* ---- requests ---- */

/* libevent frees a reply body handed over by reference with this: wiped first (keys). */
static void wipe_body(const void *data, size_t len, void *extra)
{
    size_t alloc = (size_t)(uintptr_t)extra;

    (void)len;
    OPENSSL_clear_free((void *)(uintptr_t)data, alloc);
}

static void reply(struct evhttp_request *req, int code, struct hx_writer *w)
{
    struct evbuffer *out = evhttp_request_get_output_buffer(req);
    const char *reason = code == 200   ? "OK"
                         : code == 400 ? "Bad Request"
                         : code == 401 ? "Unauthorized"
                         : code == 404 ? "Not Found"
                         : code == 405 ? "Method Not Allowed"
                                       : "Service Unavailable";

    if (w != NULL && w->len > 0) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                          "application/json");
        /* The body goes by reference: no copy of a key in libevent's own (unwiped) memory. */
        if (evbuffer_add_reference(out, w->data, w->len, wipe_body, (void *)(uintptr_t)w->alloc) ==
            0) {
            w->data = NULL;
            w->len = w->alloc = 0;
        }
    }
    evhttp_send_reply(req, code, reason, NULL);
}

/* ETSI GS QKD 014 5.1: request bodies are application/json (parameters may follow). */
static bool body_is_json(struct evhttp_request *req)
{
    const char *ct = evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type");
    static const char want[] = "application/json";
    size_t n = sizeof(want) - 1;

    return ct != NULL && strncasecmp(ct, want, n) == 0 &&
           (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/* The query's parameters, decoded by libevent; false when there are too many or it is bad. */
static bool query_params(struct evhttp_request *req, struct evkeyvalq *kv,
                         struct hx_014_param *params, size_t *n)
{
    const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
    const char *q = u != NULL ? evhttp_uri_get_query(u) : NULL;
    struct evkeyval *e;

    *n = 0;
    TAILQ_INIT(kv);
    if (q == NULL || q[0] == '\0') {
        return true;
    }
    if (evhttp_parse_query_str(q, kv) != 0) {
        return false;
    }
    TAILQ_FOREACH(e, kv, next)
    {
        if (*n == MAX_PARAMS) {
            return false;
        }
        params[*n].key = e->key;
        params[*n].value = e->value;
        (*n)++;
    }
    return true;
}

/* The request body, NUL-terminated (HX_014_MAX_BODY at most: evhttp refuses larger). */
static char *request_body(struct evhttp_request *req, size_t *len)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    char *b;

    *len = evbuffer_get_length(in);
    if (*len > HX_014_MAX_BODY || (b = malloc(*len + 1)) == NULL) {
        return NULL;
    }
    if (evbuffer_copyout(in, b, *len) != (ev_ssize_t)*len) {
        free(b);
        return NULL;
    }
    b[*len] = '\0';
    return b;
}

static int enc_keys(struct hxd_014_server *s, struct evhttp_request *req, const char *caller,
                    const char *slave, struct hx_014_param *params, size_t n_params,
                    struct hx_writer *w)
{
    struct hx_014_key_req rq;
    struct hx_014_problem prob = {"", ""};
    hx_err e;

    if (evhttp_request_get_command(req) == EVHTTP_REQ_GET) {
        e = hx_014_parse_key_query(params, n_params, &rq, &prob);
    } else {
        size_t len;
        char *body = request_body(req, &len);
        if (body == NULL) {
            return 503;
        }
        e = hx_014_parse_key_req(body, len, &rq, &prob);
        free(body);
    }
    if (e != HX_OK) {
        return hxd_014_bad_request(&prob, w);
    }
    return hxd_014_enc_keys(s->keys, caller, slave, &rq, w);
}

static int dec_keys(struct hxd_014_server *s, struct evhttp_request *req, const char *caller,
                    const char *master, struct hx_014_param *params, size_t n_params,
                    struct hx_writer *w)
{
    struct hx_uuid *ids = calloc(HX_014_MAX_KEYS, sizeof(*ids));
    struct hx_014_problem prob = {"", ""};
    size_t n = 0;
    hx_err e;
    int rc;

    if (ids == NULL) {
        return 503;
    }
    if (evhttp_request_get_command(req) == EVHTTP_REQ_GET) {
        e = hx_014_parse_key_id_query(params, n_params, ids, HX_014_MAX_KEYS, &n, &prob);
    } else {
        size_t len;
        char *body = request_body(req, &len);
        if (body == NULL) {
            free(ids);
            return 503;
        }
        e = hx_014_parse_key_ids(body, len, ids, HX_014_MAX_KEYS, &n, &prob);
        free(body);
    }
    rc = e != HX_OK ? hxd_014_bad_request(&prob, w)
                    : hxd_014_dec_keys(s->keys, caller, master, ids, n, w);
    free(ids);
    return rc;
}

/* /api/v1/keys/{SAE_ID}/{status|enc_keys|dec_keys} */
static bool split_path(const char *path, char *sae, size_t sae_cap, const char **op)
{
    static const char prefix[] = "/api/v1/keys/";
    const char *p, *slash;

    if (path == NULL || strncmp(path, prefix, sizeof(prefix) - 1) != 0) {
        return false;
    }
    p = path + sizeof(prefix) - 1;
    if ((slash = strchr(p, '/')) == NULL || (size_t)(slash - p) >= sae_cap ||
        !hx_014_sae_id_ok(p, (size_t)(slash - p))) {
        return false;
    }
    memcpy(sae, p, (size_t)(slash - p));
    sae[slash - p] = '\0';
    *op = slash + 1;
    return true;
}

static void handle(struct evhttp_request *req, void *arg)
{
    struct hxd_014_server *s = arg;
    const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    struct hx_014_param *params = NULL;
    struct evkeyvalq kv;
    struct hx_writer w;
    char caller[HX_014_MAX_SAE_ID + 1], sae[HX_014_MAX_SAE_ID + 1];
    const char *op = "";
    size_t n_params = 0;
    int code;

    TAILQ_INIT(&kv);
    hx_writer_init_dynamic(&w, REPLY_MAX);
    if (!caller_sae(req, caller, sizeof(caller))) {
        code = 401;
        goto out;
    }
    if (!split_path(u != NULL ? evhttp_uri_get_path(u) : NULL, sae, sizeof(sae), &op) ||
        (strcmp(op, "status") != 0 && strcmp(op, "enc_keys") != 0 && strcmp(op, "dec_keys") != 0)) {
        code = 404;
        goto out;
    }
    if (cmd != EVHTTP_REQ_GET && (cmd != EVHTTP_REQ_POST || strcmp(op, "status") == 0)) {
        code = 405;
        goto out;
    }
    struct hx_014_problem prob = {"", ""};
    if ((params = calloc(MAX_PARAMS, sizeof(*params))) == NULL) {
        code = 503;
        goto out;
    }
    if (!query_params(req, &kv, params, &n_params)) {
        snprintf(prob.msg, sizeof(prob.msg), "the query string is malformed or too long");
        code = hxd_014_bad_request(&prob, &w);
        goto out;
    }
    if (cmd == EVHTTP_REQ_POST && !body_is_json(req)) {
        snprintf(prob.msg, sizeof(prob.msg),
                 "the request body must be sent as Content-Type: application/json");
        code = hxd_014_bad_request(&prob, &w);
        goto out;
    }
    if (strcmp(op, "status") == 0) {
        code = hxd_014_status(s->keys, caller, sae, &w);
    } else if (strcmp(op, "enc_keys") == 0) {
        code = enc_keys(s, req, caller, sae, params, n_params, &w);
    } else {
        code = dec_keys(s, req, caller, sae, params, n_params, &w);
    }
out:
    hx_debug("ETSI 014 request",
             HX_F_STR("sae", caller) HX_F_STR("call", op) HX_F_I64("http", code));
    reply(req, code, code == 401 ? NULL : &w);
    hx_writer_wipe(&w);
    evhttp_clear_headers(&kv);
    free(params);
}

/* ---- loops ---- */

static void *loop_main(void *arg)
{
    struct loop *l = arg;

    (void)event_base_dispatch(l->base);
    return NULL;
}

static hx_err start_loop(struct hxd_014_server *s, struct loop *l)
{
    struct evconnlistener *lis;
    int fd;

    l->s = s;
    if ((l->base = event_base_new()) == NULL || (l->http = evhttp_new(l->base)) == NULL) {
        return HX_ERR_NOMEM;
    }
    /* Its own descriptor of the one listening socket: the listener closes it when freed. */
    if ((fd = dup(s->fd)) < 0) {
        return HX_ERR_IO;
    }
    if (evutil_make_socket_nonblocking(fd) != 0 ||
        (lis = evconnlistener_new(l->base, NULL, NULL,
                                  LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd)) == NULL) {
        close(fd);
        return HX_ERR_IO;
    }
    if (evhttp_bind_listener(l->http, lis) == NULL) {
        evconnlistener_free(lis);
        return HX_ERR_IO;
    }
    evhttp_set_bevcb(l->http, new_tls_bev, s);
    evhttp_set_gencb(l->http, handle, s);
    evhttp_set_allowed_methods(l->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
    evhttp_set_max_body_size(l->http, HX_014_MAX_BODY);
    evhttp_set_max_headers_size(l->http, HEADERS_MAX);
    evhttp_set_timeout(l->http, IDLE_S);
    evhttp_set_default_content_type(l->http, "application/json");
    l->started = pthread_create(&l->thread, NULL, loop_main, l) == 0;
    return l->started ? HX_OK : HX_ERR_NOMEM;
}

static pthread_once_t threads_once = PTHREAD_ONCE_INIT;
static int threads_rc = -1;

static void use_threads(void)
{
    threads_rc = evthread_use_pthreads(); /* loopbreak from another thread */
}

hx_err hxd_014_server_start(struct hxd *d, struct hxd_014_server **out, char *why, size_t why_len)
{
    const struct hxd_config *cfg = hxd_svc_config(d);
    struct hxd_014_server *s;
    char err[200];
    hx_err e;

    *out = NULL;
    if (cfg->e014.port == 0) {
        return HX_OK;
    }
    pthread_once(&threads_once, use_threads);
    if (threads_rc != 0 || (s = calloc(1, sizeof(*s))) == NULL) {
        return HX_ERR_NOMEM;
    }
    s->d = d;
    s->c = &cfg->e014;
    s->fd = -1;
    if ((e = make_ctx(s, why, why_len)) != HX_OK) {
        hxd_014_server_stop(s);
        return e;
    }
    if ((e = hx_net_listen_tcp(s->c->host, (uint16_t)s->c->port, 256, false, &s->fd, err,
                               sizeof(err))) != HX_OK) {
        snprintf(why, why_len, "api.etsi014 %s:%u: %s", s->c->host, s->c->port, err);
        hxd_014_server_stop(s);
        return e;
    }
    /* A reply's headers and body may leave in two TLS records: without TCP_NODELAY the second
     * waits for the client's delayed ACK (40 ms). Accepted sockets inherit it on Linux. */
    int one = 1;
    if (setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0) {
        hx_warn("ETSI 014 server: TCP_NODELAY not set", HX_NOFIELDS);
    }
    if ((e = hxd_014_pairs_start(d, &s->keys)) != HX_OK) {
        snprintf(why, why_len, "api.etsi014: cannot start the SAE pairs: %s", hx_strerror(e));
        hxd_014_server_stop(s);
        return e;
    }
    s->n_loops = s->c->threads;
    if ((s->loops = calloc(s->n_loops, sizeof(*s->loops))) == NULL) {
        hxd_014_server_stop(s);
        return HX_ERR_NOMEM;
    }
    for (size_t i = 0; i < s->n_loops; i++) {
        if ((e = start_loop(s, &s->loops[i])) != HX_OK) {
            snprintf(why, why_len, "api.etsi014: cannot start an event loop: %s", hx_strerror(e));
            hxd_014_server_stop(s);
            return e;
        }
    }
    hx_info("ETSI 014 server listening",
            HX_F_STR("host", s->c->host) HX_F_U64("port", s->c->port)
                HX_F_U64("local_saes", s->c->local.n) HX_F_U64("remote_saes", s->c->remote.n));
    *out = s;
    return HX_OK;
}

void hxd_014_server_stop(struct hxd_014_server *s)
{
    if (s == NULL) {
        return;
    }
    for (size_t i = 0; s->loops != NULL && i < s->n_loops; i++) {
        if (s->loops[i].started) {
            event_base_loopbreak(s->loops[i].base);
            pthread_join(s->loops[i].thread, NULL);
        }
        if (s->loops[i].http != NULL) {
            evhttp_free(s->loops[i].http);
            /* A connection still open (a keep-alive SAE) is freed by a deferred callback of
             * its TLS bufferevent (its SSL, buffers): run once more, or they leak. */
            (void)event_base_loop(s->loops[i].base, EVLOOP_NONBLOCK);
        }
        if (s->loops[i].base != NULL) {
            event_base_free(s->loops[i].base);
        }
    }
    free(s->loops);
    hxd_014_pairs_stop(s->keys);
    if (s->fd >= 0) {
        close(s->fd);
    }
    SSL_CTX_free(s->ctx);
    free(s);
}
