/*
 * ETSI GS QKD 014 over HTTPS with mandatory client certificates, on libmicrohttpd (GnuTLS).
 * The caller's SAE id is the common name of its verified client certificate; a request
 * without one gets 401.
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <gnutls/gnutls.h>
#include <openssl/crypto.h>
#include <gnutls/x509.h>
#include <microhttpd.h>

#include "common/config.h"
#include "common/json.h"
#include "common/log.h"
#include "proto/etsi014.h"
#include "sim/server.h"

#define BODY_MAX (64 * 1024)

struct sim_014 {
    struct sim_net *net;
    size_t kme;
    struct MHD_Daemon *d;
    char *cert, *key, *ca;
};

struct request {
    char *body;
    size_t len;
    bool too_large;
};

static enum MHD_Result respond(struct MHD_Connection *conn, int code, char *body)
{
    struct MHD_Response *r;
    enum MHD_Result ret;

    if (body != NULL) {
        r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    } else {
        r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    }
    ret = MHD_queue_response(conn, (unsigned)code, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result bad_request(struct MHD_Connection *conn, const char *msg, const char *detail)
{
    return respond(conn, 400, hx_014_error_json(msg, detail));
}

/*
 * A 400 about a request object: the reply is written before the object is freed, because
 * detail may be one of its member names (json-c owns those strings).
 */
static enum MHD_Result refuse(struct MHD_Connection *conn, struct json_object *req, const char *msg,
                              const char *detail)
{
    enum MHD_Result r = bad_request(conn, msg, detail);

    json_object_put(req);
    return r;
}

/* ETSI GS QKD 014 5.1: request bodies are application/json (parameters may follow). */
static bool body_is_json(struct MHD_Connection *conn)
{
    const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
    static const char want[] = "application/json";
    size_t n = sizeof(want) - 1;

    return ct != NULL && strncasecmp(ct, want, n) == 0 &&
           (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/* Collects every key_ID argument of a GET dec_keys (014 6.4: one or more). */
struct id_args {
    struct hx_uuid *ids;
    size_t n, cap;
    bool bad, too_many;
};

static enum MHD_Result collect_id(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *value)
{
    struct id_args *a = cls;

    (void)kind;
    if (strcmp(key, "key_ID") != 0) {
        return MHD_YES;
    }
    if (a->n == a->cap) {
        a->too_many = true;
        return MHD_NO;
    }
    if (value == NULL || hx_uuid_parse(value, strlen(value), &a->ids[a->n]) != HX_OK) {
        a->bad = true;
        return MHD_NO;
    }
    a->n++;
    return MHD_YES;
}

/* The verified client certificate's common name, or false. */
static bool caller_sae(struct MHD_Connection *conn, char *out, size_t cap)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    gnutls_session_t s;
    const gnutls_datum_t *certs;
    gnutls_x509_crt_t crt;
    unsigned status = 1, n = 0;
    size_t len = cap;
    bool ok = false;

    if (ci == NULL || (s = (gnutls_session_t)ci->tls_session) == NULL) {
        return false;
    }
    if (gnutls_certificate_verify_peers2(s, &status) != 0 || status != 0 ||
        (certs = gnutls_certificate_get_peers(s, &n)) == NULL || n == 0) {
        return false;
    }
    if (gnutls_x509_crt_init(&crt) != 0) {
        return false;
    }
    if (gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) == 0 &&
        gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, out, &len) == 0 &&
        len > 0 && len < cap) {
        out[len] = '\0';
        ok = true;
    }
    gnutls_x509_crt_deinit(crt);
    return ok;
}

static bool parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v;

    if (s == NULL || *s < '0' || *s > '9') {
        return false;
    }
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi) {
        return false;
    }
    *out = v;
    return true;
}

static enum MHD_Result enc_keys(struct sim_014 *s, struct MHD_Connection *conn, const char *method,
                                const char *caller, const char *slave, const struct request *rq)
{
    long number = 1, size = SIM_014_DEFAULT_KEY_BITS;
    char *body = NULL;
    int code;

    if (strcmp(method, "GET") == 0) {
        const char *n = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "number");
        const char *z = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "size");
        if ((n != NULL && !parse_long(n, 0, 1L << 30, &number)) ||
            (z != NULL && !parse_long(z, 0, 1L << 30, &size))) {
            return bad_request(conn, "number and size must be non-negative integers", NULL);
        }
    } else {
        static const struct hx_json_limits lim = {
            .max_message = BODY_MAX, .max_depth = 6, .max_string = 1024, .max_members = 256};
        struct json_object *o = NULL, *v;
        char why[200];
        if (hx_json_parse_object(rq->body, rq->len, &lim, &o, why, sizeof(why)) != HX_OK) {
            return bad_request(conn, "request body is not a JSON object", why);
        }
        json_object_object_foreach (o, k, val) {
            if (strcmp(k, "number") == 0 || strcmp(k, "size") == 0) {
                if (!json_object_is_type(val, json_type_int) || json_object_get_int64(val) < 0 ||
                    json_object_get_int64(val) > (1L << 30)) {
                    return refuse(conn, o, "number and size must be non-negative integers", k);
                }
            } else if (strcmp(k, "additional_slave_SAE_IDs") == 0 ||
                       strcmp(k, "extension_mandatory") == 0) {
                if (!json_object_is_type(val, json_type_array)) {
                    return refuse(conn, o, "expected a list", k);
                }
                if (json_object_array_length(val) > 0) {
                    return refuse(conn, o,
                                  k[0] == 'a' ? "additional slave SAEs are not supported "
                                                "(max_SAE_ID_count is 0)"
                                              : "mandatory extensions are not supported",
                                  k);
                }
            } else if (strcmp(k, "extension_optional") != 0) {
                return refuse(conn, o, "unknown field in the key request", k);
            }
        }
        if (json_object_object_get_ex(o, "number", &v)) {
            number = (long)json_object_get_int64(v);
        }
        if (json_object_object_get_ex(o, "size", &v)) {
            size = (long)json_object_get_int64(v);
        }
        json_object_put(o);
    }
    code = sim_014_enc_keys(s->net, s->kme, caller, slave, number, size, &body);
    return respond(conn, code, body);
}

static enum MHD_Result dec_keys(struct sim_014 *s, struct MHD_Connection *conn, const char *method,
                                const char *caller, const char *master, const struct request *rq)
{
    struct hx_uuid ids[SIM_014_MAX_PER_REQUEST];
    size_t n = 0;
    char *body = NULL;
    int code;

    if (strcmp(method, "GET") == 0) {
        struct id_args a = {.ids = ids, .cap = SIM_014_MAX_PER_REQUEST};
        MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect_id, &a);
        if (a.too_many) {
            return bad_request(conn, "at most 128 key_ID parameters", NULL);
        }
        if (a.bad || a.n == 0) {
            return bad_request(conn, "each key_ID must be a UUID", NULL);
        }
        n = a.n;
    } else {
        static const struct hx_json_limits lim = {
            .max_message = BODY_MAX, .max_depth = 6, .max_string = 1024, .max_members = 256};
        struct json_object *o = NULL, *list;
        char why[200];
        if (hx_json_parse_object(rq->body, rq->len, &lim, &o, why, sizeof(why)) != HX_OK) {
            return bad_request(conn, "request body is not a JSON object", why);
        }
        if (!json_object_object_get_ex(o, "key_IDs", &list) ||
            !json_object_is_type(list, json_type_array) || json_object_array_length(list) == 0 ||
            json_object_array_length(list) > SIM_014_MAX_PER_REQUEST) {
            return refuse(conn, o, "key_IDs must list 1..128 key IDs", NULL);
        }
        for (n = 0; n < json_object_array_length(list); n++) {
            struct json_object *e = json_object_array_get_idx(list, n), *id;
            if (!json_object_is_type(e, json_type_object) ||
                !json_object_object_get_ex(e, "key_ID", &id) ||
                !json_object_is_type(id, json_type_string) ||
                hx_uuid_parse(json_object_get_string(id), (size_t)json_object_get_string_len(id),
                              &ids[n]) != HX_OK) {
                return refuse(conn, o, "each key_IDs element needs a key_ID UUID", NULL);
            }
        }
        json_object_put(o);
    }
    code = sim_014_dec_keys(s->net, s->kme, caller, master, ids, n, &body);
    return respond(conn, code, body);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **con_cls)
{
    struct sim_014 *s = cls;
    struct request *rq = *con_cls;
    char caller[SIM_MAX_ID], sae[SIM_MAX_ID], op[16];
    static const char prefix[] = "/api/v1/keys/";
    const char *p, *slash;
    char *body = NULL;

    (void)version;
    if (rq == NULL) {
        if ((rq = calloc(1, sizeof(*rq))) == NULL) {
            return MHD_NO;
        }
        *con_cls = rq;
        return MHD_YES;
    }
    if (*upload_size > 0) {
        if (rq->len + *upload_size > BODY_MAX) {
            rq->too_large = true;
        } else {
            char *nb = realloc(rq->body, rq->len + *upload_size + 1);
            if (nb == NULL) {
                return MHD_NO;
            }
            rq->body = nb;
            memcpy(rq->body + rq->len, upload, *upload_size);
            rq->len += *upload_size;
            rq->body[rq->len] = '\0';
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (!caller_sae(conn, caller, sizeof(caller))) {
        return respond(conn, 401, NULL);
    }
    if (rq->too_large) {
        return bad_request(conn, "request body larger than 64 KiB", NULL);
    }
    if (strncmp(url, prefix, sizeof(prefix) - 1) != 0 ||
        (slash = strchr(p = url + sizeof(prefix) - 1, '/')) == NULL || slash == p ||
        (size_t)(slash - p) >= sizeof(sae) || strlen(slash + 1) >= sizeof(op)) {
        return respond(conn, 404, NULL);
    }
    memcpy(sae, p, (size_t)(slash - p));
    sae[slash - p] = '\0';
    memcpy(op, slash + 1, strlen(slash + 1) + 1);
    if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0) {
        return respond(conn, 405, NULL);
    }
    if (strcmp(method, "POST") == 0 && !body_is_json(conn)) {
        return bad_request(conn, "the request body must be sent as Content-Type: application/json",
                           NULL);
    }
    if (strcmp(op, "status") == 0 && strcmp(method, "GET") == 0) {
        int code = sim_014_status(s->net, s->kme, caller, sae, &body);
        return respond(conn, code, body);
    }
    if (strcmp(op, "enc_keys") == 0) {
        return enc_keys(s, conn, method, caller, sae, rq);
    }
    if (strcmp(op, "dec_keys") == 0) {
        return dec_keys(s, conn, method, caller, sae, rq);
    }
    return respond(conn, 404, NULL);
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    struct request *rq = *con_cls;

    (void)cls;
    (void)conn;
    (void)toe;
    if (rq != NULL) {
        free(rq->body);
        free(rq);
        *con_cls = NULL;
    }
}

static void free_files(struct sim_014 *s)
{
    if (s->key != NULL) {
        OPENSSL_cleanse(s->key, strlen(s->key));
    }
    free(s->cert);
    free(s->key);
    free(s->ca);
}

hx_err sim_014_start(struct sim_net *net, size_t kme, struct sim_014 **out, char *why,
                     size_t why_len)
{
    const struct sim_listener *l = &net->kmes[kme].l014;
    struct sim_014 *s = calloc(1, sizeof(*s));
    struct addrinfo hints, *res = NULL;
    size_t len;
    char port[8];
    int rc;

    *out = NULL;
    if (s == NULL) {
        return HX_ERR_NOMEM;
    }
    s->net = net;
    s->kme = kme;
    if (hx_read_file(l->cert, 1u << 20, &s->cert, &len) != HX_OK ||
        hx_read_file(l->key, 1u << 20, &s->key, &len) != HX_OK ||
        hx_read_file(l->ca, 1u << 20, &s->ca, &len) != HX_OK) {
        snprintf(why, why_len, "KME %s: cannot read etsi014 cert, key or ca", net->kmes[kme].id);
        free_files(s);
        free(s);
        return HX_ERR_CONFIG;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    snprintf(port, sizeof(port), "%u", l->port);
    if ((rc = getaddrinfo(l->host, port, &hints, &res)) != 0) {
        snprintf(why, why_len, "KME %s: etsi014 %s: %s", net->kmes[kme].id, l->host,
                 gai_strerror(rc));
        free_files(s);
        free(s);
        return HX_ERR_CONFIG;
    }
    s->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                                MHD_USE_TLS | (res->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0),
                            l->port, NULL, NULL, handler, s, MHD_OPTION_SOCK_ADDR, res->ai_addr,
                            MHD_OPTION_HTTPS_MEM_CERT, s->cert, MHD_OPTION_HTTPS_MEM_KEY, s->key,
                            MHD_OPTION_HTTPS_MEM_TRUST, s->ca, MHD_OPTION_CONNECTION_LIMIT,
                            (unsigned)256, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
                            MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
                            MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1, MHD_OPTION_END);
    freeaddrinfo(res);
    if (s->d == NULL) {
        snprintf(why, why_len,
                 "KME %s: cannot start the ETSI 014 server on %s:%u (address in "
                 "use, or a certificate GnuTLS cannot use: ETSI 014 needs RSA or "
                 "ECDSA certificates here)",
                 net->kmes[kme].id, l->host, l->port);
        free_files(s);
        free(s);
        return HX_ERR_IO;
    }
    *out = s;
    return HX_OK;
}

void sim_014_stop(struct sim_014 *s)
{
    if (s == NULL) {
        return;
    }
    MHD_stop_daemon(s->d);
    free_files(s);
    free(s);
}
