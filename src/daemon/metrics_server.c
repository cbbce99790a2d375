/*
 * The metrics endpoint (metrics_server.h). One libmicrohttpd thread serves it (at most
 * MAX_CONNECTIONS scrapers at once, each dropped after IDLE_S idle seconds by the library). A
 * scrape takes the same snapshot as hykex status (hxd_svc_status: d->lock for the copy only)
 * and reads metrics.h's counters without a lock; it never touches a key.
 */
#include "daemon/metrics_server.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <microhttpd.h>
#include <openssl/crypto.h>

#include "common/log.h"
#include "daemon/hxd.h"
#include "daemon/metrics.h"
#include "daemon/service.h"
#include "net/sock.h"

#define MAX_CONNECTIONS 16
#define IDLE_S 10

struct hxd_metrics_server {
    struct hxd *d;
    struct MHD_Daemon *mhd;
};

static const char *const state_names[] = {
    [HXD_SVC_PRODUCING] = "producing",
    [HXD_SVC_WAITING_PEER] = "waiting_peer",
    [HXD_SVC_FAILING] = "failing",
    [HXD_SVC_CLOSED_BY_PEER] = "closed_by_peer",
};
#define N_STATES (sizeof(state_names) / sizeof(state_names[0]))

static void head(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void per_peer(FILE *f, const struct hxd_metrics *m, const char *name, const char *help,
                     const uint64_t *counters)
{
    char id[HX_UUID_STR_LEN + 1];

    head(f, name, "counter", help);
    for (size_t i = 0; i < hxd_metrics_n_peers(m); i++) {
        hx_uuid_format(&m->peers[i], id);
        fprintf(f, "%s{peer=\"%s\"} %" PRIu64 "\n", name, id, hxd_metrics_load(&counters[i]));
    }
}

static void kme_histogram(FILE *f, const struct hxd_metrics *m)
{
    const char *n = "hykex_kme_request_duration_seconds";

    head(f, n, "histogram", "Duration of this node's calls to its KME, by ETSI call.");
    for (size_t op = 0; op < HXD_KME_N; op++) {
        const struct hxd_metrics_kme *k = &m->kme[op];
        const char *name = hxd_metrics_kme_names[op];
        uint64_t cum = 0;
        for (size_t b = 0; b <= HXD_METRICS_KME_BUCKETS; b++) {
            cum += hxd_metrics_load(&k->bucket[b]);
            if (b < HXD_METRICS_KME_BUCKETS) {
                fprintf(f, "%s_bucket{op=\"%s\",le=\"%g\"} %" PRIu64 "\n", n, name,
                        hxd_metrics_kme_bounds[b], cum);
            } else {
                fprintf(f, "%s_bucket{op=\"%s\",le=\"+Inf\"} %" PRIu64 "\n", n, name, cum);
            }
        }
        fprintf(f, "%s_sum{op=\"%s\"} %.6f\n", n, name, (double)hxd_metrics_load(&k->sum_us) / 1e6);
        fprintf(f, "%s_count{op=\"%s\"} %" PRIu64 "\n", n, name, cum);
    }
    head(f, "hykex_kme_request_errors_total", "counter",
         "KME calls that failed or did not give the keys asked for, by ETSI call.");
    for (size_t op = 0; op < HXD_KME_N; op++) {
        fprintf(f, "hykex_kme_request_errors_total{op=\"%s\"} %" PRIu64 "\n",
                hxd_metrics_kme_names[op], hxd_metrics_load(&m->kme[op].errors));
    }
}

static void peers(FILE *f, const struct hxd_svc_status *st)
{
    char id[HX_UUID_STR_LEN + 1];

    head(f, "hykex_peer_link_up", "gauge", "1 when the TLS link to the peer node is up.");
    for (size_t i = 0; i < st->n_peers; i++) {
        hx_uuid_format(&st->peers[i].uuid, id);
        fprintf(f, "hykex_peer_link_up{peer=\"%s\"} %d\n", id, st->peers[i].link.up ? 1 : 0);
    }
    head(f, "hykex_peer_links_established_total", "counter",
         "TLS links made to the peer node (each one after the first is a reconnect).");
    for (size_t i = 0; i < st->n_peers; i++) {
        hx_uuid_format(&st->peers[i].uuid, id);
        fprintf(f, "hykex_peer_links_established_total{peer=\"%s\"} %" PRIu64 "\n", id,
                st->peers[i].link.links_made);
    }
    head(f, "hykex_peer_dial_attempts_total", "counter",
         "Connections this node tried to the peer node (the node with the smaller UUID dials).");
    for (size_t i = 0; i < st->n_peers; i++) {
        hx_uuid_format(&st->peers[i].uuid, id);
        fprintf(f, "hykex_peer_dial_attempts_total{peer=\"%s\"} %" PRIu64 "\n", id,
                st->peers[i].link.dials);
    }
    head(f, "hykex_peer_dial_failures_total", "counter",
         "Of those, the ones that made no link (peer down, refused, handshake failed).");
    for (size_t i = 0; i < st->n_peers; i++) {
        hx_uuid_format(&st->peers[i].uuid, id);
        fprintf(f, "hykex_peer_dial_failures_total{peer=\"%s\"} %" PRIu64 "\n", id,
                st->peers[i].link.dial_failures);
    }
    head(f, "hykex_peer_certificate_expiry_timestamp_seconds", "gauge",
         "Expiry (Unix time) of the peer node's certificate, as seen on its last link.");
    for (size_t i = 0; i < st->n_peers; i++) {
        if (st->peers[i].link.cert_not_after != 0) {
            hx_uuid_format(&st->peers[i].uuid, id);
            fprintf(f, "hykex_peer_certificate_expiry_timestamp_seconds{peer=\"%s\"} %" PRId64 "\n",
                    id, st->peers[i].link.cert_not_after);
        }
    }
}

static void streams(FILE *f, const struct hxd_svc_status *st)
{
    uint64_t by_state[N_STATES] = {0}, ready = 0;

    for (size_t i = 0; i < st->n_streams; i++) {
        if ((size_t)st->streams[i].state < N_STATES) {
            by_state[st->streams[i].state]++;
        }
        ready += st->streams[i].ready;
    }
    head(f, "hykex_streams", "gauge", "Open key streams, by state.");
    for (size_t s = 0; s < N_STATES; s++) {
        fprintf(f, "hykex_streams{state=\"%s\"} %" PRIu64 "\n", state_names[s], by_state[s]);
    }
    head(f, "hykex_keys_ready", "gauge", "Keys ready for applications, all streams together.");
    fprintf(f, "hykex_keys_ready %" PRIu64 "\n", ready);
}

static void counters(FILE *f, const struct hxd *d, const struct hxd_svc_status *st)
{
    const struct hxd_metrics *m = &d->metrics;

    per_peer(f, m, "hykex_keys_produced_total",
             "Keys committed at this node (both nodes agreed on them), by peer node.", m->produced);
    per_peer(f, m, "hykex_keys_delivered_total", "Keys handed to applications, by peer node.",
             m->delivered);
    head(f, "hykex_batches_committed_total", "counter", "Key batches committed at this node.");
    fprintf(f, "hykex_batches_committed_total %" PRIu64 "\n", st->batches_ok);
    head(f, "hykex_batches_authenticated_total", "counter",
         "Key batches committed at this node, by how the peer authenticated them: ML-DSA "
         "signatures, or MACs under the key of a signed batch.");
    fprintf(f, "hykex_batches_authenticated_total{by=\"signature\"} %" PRIu64 "\n",
            hxd_metrics_load(&m->authenticated[0]));
    fprintf(f, "hykex_batches_authenticated_total{by=\"mac\"} %" PRIu64 "\n",
            hxd_metrics_load(&m->authenticated[1]));
    head(f, "hykex_batches_failed_total", "counter",
         "Key batches this node initiated that failed, by the phase they failed in.");
    for (size_t c = 0; c < HXD_FAIL_N; c++) {
        fprintf(f, "hykex_batches_failed_total{phase=\"%s\"} %" PRIu64 "\n",
                hxd_metrics_fail_names[c], hxd_metrics_load(&m->failed[c]));
    }
    head(f, "hykex_key_confirmation_mismatches_total", "counter",
         "Batches whose key confirmation tag differed: the nodes derived different keys.");
    fprintf(f, "hykex_key_confirmation_mismatches_total %" PRIu64 "\n", st->confirm_mismatch);
    head(f, "hykex_store_errors_total", "counter", "Failed writes to the durable key store.");
    fprintf(f, "hykex_store_errors_total %" PRIu64 "\n", st->store_errors);
}

char *hxd_metrics_render(struct hxd *d, size_t *len)
{
    struct hxd_svc_status st;
    char *text = NULL;
    FILE *f;

    *len = 0;
    if (hxd_svc_status(d, &st) != HX_OK) {
        return NULL;
    }
    if ((f = open_memstream(&text, len)) == NULL) {
        hxd_svc_status_wipe(&st);
        return NULL;
    }
    head(f, "hykex_build_info", "gauge", "hykexd's version and the OpenSSL it runs on.");
    fprintf(f, "hykex_build_info{version=\"%d.%d.%d\",openssl=\"%s\"} 1\n", HYKEX_VERSION_MAJOR,
            HYKEX_VERSION_MINOR, HYKEX_VERSION_PATCH, OpenSSL_version(OPENSSL_VERSION_STRING));
    if (st.cert_not_after != 0) {
        head(f, "hykex_certificate_expiry_timestamp_seconds", "gauge",
             "Expiry (Unix time) of this node's certificate.");
        fprintf(f, "hykex_certificate_expiry_timestamp_seconds %" PRId64 "\n", st.cert_not_after);
    }
    if (st.ca_not_after != 0) {
        head(f, "hykex_ca_certificate_expiry_timestamp_seconds", "gauge",
             "Expiry (Unix time) of the network CA's certificate.");
        fprintf(f, "hykex_ca_certificate_expiry_timestamp_seconds %" PRId64 "\n", st.ca_not_after);
    }
    head(f, "hykex_start_time_seconds", "gauge", "When hykexd started (Unix time).");
    fprintf(f, "hykex_start_time_seconds %" PRId64 "\n", st.started_at);
    head(f, "hykex_reloads_total", "counter",
         "Reloads (SIGHUP, hykex reload): applied, or refused (the node ran on unchanged).");
    fprintf(f, "hykex_reloads_total{result=\"applied\"} %" PRIu64 "\n", st.reloads);
    fprintf(f, "hykex_reloads_total{result=\"refused\"} %" PRIu64 "\n", st.reloads_refused);
    if (st.kme_last_at != 0) {
        head(f, "hykex_kme_last_request_ok", "gauge",
             "1 when this node's last call to its KME gave what was asked.");
        fprintf(f, "hykex_kme_last_request_ok %d\n", st.kme_last_ok != 0 ? 1 : 0);
        head(f, "hykex_kme_last_request_timestamp_seconds", "gauge",
             "When this node last called its KME (Unix time).");
        fprintf(f, "hykex_kme_last_request_timestamp_seconds %" PRIu64 "\n", st.kme_last_at);
    }
    counters(f, d, &st);
    kme_histogram(f, &d->metrics);
    peers(f, &st);
    streams(f, &st);
    hxd_svc_status_wipe(&st);
    if (fclose(f) != 0) {
        free(text);
        *len = 0;
        return NULL;
    }
    return text;
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned code, const char *type,
                             char *body, size_t len, enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
    enum MHD_Result ret;

    if (r == NULL) {
        if (mode == MHD_RESPMEM_MUST_FREE) {
            free(body);
        }
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    ret = MHD_queue_response(conn, code, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_len, void **state)
{
    static const char not_found[] = "not found: the metrics are at /metrics\n";
    static const char bad_method[] = "method not allowed: GET /metrics\n";
    struct hxd_metrics_server *s = cls;
    size_t len;
    char *text;

    (void)version;
    (void)upload;
    if (*state == NULL) { /* first call: headers only; answer on the next */
        *state = s;
        return MHD_YES;
    }
    if (*upload_len != 0) {
        *upload_len = 0; /* a body is ignored; the reply below refuses the method */
        return MHD_YES;
    }
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
        return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", (char *)bad_method,
                     sizeof(bad_method) - 1, MHD_RESPMEM_PERSISTENT);
    }
    if (strcmp(url, "/metrics") != 0) {
        return reply(conn, MHD_HTTP_NOT_FOUND, "text/plain", (char *)not_found,
                     sizeof(not_found) - 1, MHD_RESPMEM_PERSISTENT);
    }
    if ((text = hxd_metrics_render(s->d, &len)) == NULL) {
        return MHD_NO; /* out of memory: the connection is closed */
    }
    return reply(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text, len,
                 MHD_RESPMEM_MUST_FREE);
}

hx_err hxd_metrics_server_start(struct hxd *d, struct hxd_metrics_server **out, char *why,
                                size_t why_len)
{
    const struct hxd_config *cfg = &d->cfg;
    struct hxd_metrics_server *s;
    int fd = -1, fl;
    hx_err e;

    *out = NULL;
    if (cfg->metrics.port == 0) {
        return HX_OK;
    }
    /* Scrapers on other hosts only when the operator says so (metrics.allow_remote). */
    e = hx_net_listen_tcp(cfg->metrics.host, cfg->metrics.port, 16, !cfg->metrics_allow_remote, &fd,
                          why, why_len);
    if (e == HX_ERR_IO_PERM) {
        snprintf(why, why_len,
                 "metrics.host %s is not loopback: set metrics.allow_remote to serve the metrics "
                 "to other hosts",
                 cfg->metrics.host);
    }
    if (e != HX_OK) {
        return e;
    }
    if ((fl = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
        (s = calloc(1, sizeof(*s))) == NULL) {
        close(fd);
        snprintf(why, why_len, "out of memory");
        return HX_ERR_NOMEM;
    }
    s->d = d;
    s->mhd = MHD_start_daemon(MHD_USE_AUTO_INTERNAL_THREAD, 0, NULL, NULL, handle, s,
                              MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT,
                              (unsigned)MAX_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT,
                              (unsigned)IDLE_S, MHD_OPTION_END);
    if (s->mhd == NULL) {
        close(fd);
        free(s);
        snprintf(why, why_len, "libmicrohttpd could not start on %s:%u", cfg->metrics.host,
                 (unsigned)cfg->metrics.port);
        return HX_ERR_IO;
    }
    hx_info("metrics endpoint serving",
            HX_F_STR("host", cfg->metrics.host) HX_F_U64("port", cfg->metrics.port));
    *out = s;
    return HX_OK;
}

void hxd_metrics_server_stop(struct hxd_metrics_server *s)
{
    if (s == NULL) {
        return;
    }
    MHD_stop_daemon(s->mhd); /* closes the listening socket too */
    free(s);
}
