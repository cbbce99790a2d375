/*
 * Reload and certificate lifetime (reload.h). A reload reads the new configuration into a
 * separate struct, checks it whole (the config table, the certificates as at start-up, the new
 * TLS context and signing key) and only then applies what can change live: the trusted peers
 * (links.c adds, removes, redials), the credentials set (new links use it; links made with the
 * old one are made again one at a time by hxd_reload_tick), the logging settings and the
 * expiry warning. Every other option changed is reported as needing a restart and left as it
 * runs. d->cfg's live fields change under d->lock, the only lock their readers take.
 */
#include "daemon/reload.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/log.h"
#include "daemon/persist.h"
#include "daemon/stream.h"

/* A link to a peer whose certificate expires within this is made again (s). */
#define RENEW_PEER_S 86400
/* Expiry warnings once a day. */
#define EXPIRY_CHECK_MS (86400ull * 1000)

void hxd_links_config_of(const struct hxd *d, const struct hxd_config *cfg,
                         struct hxd_peer_lists *pl, struct hx_links_config *lc)
{
    memset(lc, 0, sizeof(*lc));
    for (size_t i = 0; i < cfg->trusted.n && i < HXD_MAX_PEERS; i++) {
        pl->ids[i] = cfg->trusted.peers[i].uuid;
        pl->hosts[i] = cfg->trusted.peers[i].address.host;
        pl->ports[i] = cfg->trusted.peers[i].address.port;
    }
    lc->self = cfg->uuid;
    lc->ca_path = cfg->ca_path;
    lc->cert_path = cfg->cert_path;
    lc->key_path = cfg->key_path;
    lc->groups = cfg->tls_groups;
    lc->listen_host = cfg->peer.host;
    lc->listen_port = cfg->peer.port;
    /* Outgoing links come from the node's own address: peer_local_address.host when specific,
     * else certificate_config.certificate_ip (a peer identifies us by it: IP SAN). */
    if ((lc->listen_host[0] == '\0' || strcmp(lc->listen_host, "0.0.0.0") == 0 ||
         strcmp(lc->listen_host, "::") == 0) &&
        cfg->certificate_ip[0] != '\0') {
        lc->source_host = cfg->certificate_ip;
    }
    lc->keepalive_s = cfg->keepalive_s;
    lc->reconnect_max_s = cfg->reconnect_max_s;
    lc->peers = pl->ids;
    lc->peer_hosts = pl->hosts;
    lc->peer_ports = pl->ports;
    lc->n_peers = cfg->trusted.n;
    lc->on_frame = hxd_on_frame;
    lc->on_state = hxd_on_link;
    lc->arg = (void *)d;
}

hx_err hxd_check_creds(const struct hxd_config *cfg, char *why, size_t why_len)
{
    struct hxd_peer_lists *pl = calloc(1, sizeof(*pl));
    struct hx_links_config lc;
    struct hx_link_creds_info info;
    struct hx_sig_key *key = NULL;
    hx_err e;

    if (pl == NULL) {
        snprintf(why, why_len, "out of memory");
        return HX_ERR_NOMEM;
    }
    hxd_links_config_of(NULL, cfg, pl, &lc);
    if ((e = hx_link_check_creds(&lc, &info, why, why_len)) == HX_OK &&
        (e = hx_sig_key_load_pem(cfg->key_path, &key)) != HX_OK) {
        snprintf(why, why_len,
                 "key %s: cannot sign batches with it: %s (ML-DSA, ECDSA, Ed25519 or RSA)",
                 cfg->key_path, hx_strerror(e));
    }
    hx_sig_key_free(key);
    free(pl);
    return e;
}

/* The streams with a removed peer end (lock held): production stops, the application's next
 * GET_KEY says why; the unjoined ones go. */
static void end_streams_of(struct hxd *d, const struct hx_uuid *peer)
{
    char id[HX_UUID_STR_LEN + 1];

    hx_uuid_format(peer, id);
    hxd_unjoined_drop(d, peer);
    for (size_t i = 0; i < d->max_streams; i++) {
        struct hxd_stream *s = &d->streams[i];
        if (!s->used || !hx_uuid_equal(&s->peer, peer)) {
            continue;
        }
        s->peer_closed = true;
        s->peer_removed = true;
        s->failing = true;
        s->fail_status = HYKEX_STATUS_PEER_NOT_CONNECTED_GET;
        snprintf(s->fail_msg, sizeof(s->fail_msg),
                 "peer node %s was removed from this node's trusted peers (reload): the key "
                 "stream is closed",
                 id);
        if (!s->app_open) {
            hxd_persist_drop_later(d, &s->ksid);
            hxd_stream_drop(d, s);
        } else {
            hxd_persist_stream_later(d, s);
        }
    }
}

/* Copies the options a reload applies into the running configuration (d->lock held). */
static void apply_live(struct hxd_config *run, const struct hxd_config *nc)
{
    memcpy(run->console_log_type, nc->console_log_type, sizeof(run->console_log_type));
    run->colorless_console_log = nc->colorless_console_log;
    memcpy(run->file_log_type, nc->file_log_type, sizeof(run->file_log_type));
    memcpy(run->log_filename, nc->log_filename, sizeof(run->log_filename));
    memcpy(run->log_level, nc->log_level, sizeof(run->log_level));
    memcpy(run->ca_path, nc->ca_path, sizeof(run->ca_path));
    memcpy(run->cert_path, nc->cert_path, sizeof(run->cert_path));
    memcpy(run->key_path, nc->key_path, sizeof(run->key_path));
    memcpy(run->tls_groups, nc->tls_groups, sizeof(run->tls_groups));
    run->trusted = nc->trusted;
    run->self_listed = nc->self_listed;
    run->cert_warn_days = nc->cert_warn_days;
}

static void refuse(struct hxd *d, const char *why)
{
    hx_warn("reload refused: the node keeps running on its current configuration",
            HX_F_STR("config", d->config_path) HX_F_STR("why", why));
    pthread_mutex_lock(&d->lock);
    d->reloads_refused++;
    d->last_reload_at = hx_walltime();
    snprintf(d->last_reload, sizeof(d->last_reload), "refused: %.380s", why);
    pthread_cond_broadcast(&d->changed); /* a RELOAD request waits for the outcome */
    pthread_mutex_unlock(&d->lock);
}

/* "a, b, c" of the names (live or not) into out. */
static void join_names(const char **names, const bool *live, size_t n, bool want, char *out,
                       size_t cap)
{
    size_t off = 0;

    out[0] = '\0';
    for (size_t i = 0; i < n && off < cap; i++) {
        if (live[i] == want) {
            int k = snprintf(out + off, cap - off, "%s%s", off > 0 ? ", " : "", names[i]);
            off += k > 0 ? (size_t)k : 0;
        }
    }
}

bool hxd_reload(struct hxd *d)
{
    struct hxd_config *nc = calloc(1, sizeof(*nc));
    struct hxd_peer_lists *pl = calloc(1, sizeof(*pl));
    struct hx_link_creds *creds = NULL;
    struct hx_links_config lc;
    struct hx_link_creds_info ci;
    struct hx_uuid removed[HXD_MAX_PEERS];
    const char *names[128];
    bool live[128], swapped = false, logs = false;
    char why[600], applied[700], restart[700];
    size_t n, n_removed = 0, added = 0;
    enum hx_log_level lvl;

    hx_info("reload: reading the configuration again (SIGHUP)",
            HX_F_STR("config", d->config_path)
                HX_F_STR("peers", d->peers_path != NULL ? d->peers_path : ""));
    if (nc == NULL || pl == NULL) {
        refuse(d, "out of memory");
        goto out;
    }
    if (hxd_config_load(nc, d->config_path, d->peers_path, why, sizeof(why)) != HX_OK) {
        refuse(d, why);
        goto out;
    }
    if (!hx_uuid_equal(&nc->uuid, &d->cfg.uuid)) {
        refuse(d, "uuid: a node's UUID cannot change while it runs (restart it)");
        goto out;
    }
    if (hx_log_level_parse(nc->log_level, &lvl) != HX_OK ||
        (nc->log_filename[0] != '\0' && hx_log_level_parse(nc->file_log_type, &lvl) != HX_OK)) {
        refuse(d, "log_level / logging_config: unknown level (error, warn, info, debug)");
        goto out;
    }
    /* The certificates as at start-up, then the context and key the new links will use. */
    hxd_links_config_of(d, nc, pl, &lc);
    if (hx_link_creds_new(&lc, &creds, why, sizeof(why)) != HX_OK) {
        refuse(d, why);
        goto out;
    }
    n = hxd_config_changed(&d->cfg, nc, names, live, sizeof(names) / sizeof(names[0]));
    n = n < sizeof(names) / sizeof(names[0]) ? n : sizeof(names) / sizeof(names[0]);
    for (size_t i = 0; i < d->cfg.trusted.n; i++) {
        if (hxd_config_peer(nc, &d->cfg.trusted.peers[i].uuid) == NULL) {
            removed[n_removed++] = d->cfg.trusted.peers[i].uuid;
        }
    }
    for (size_t i = 0; i < nc->trusted.n; i++) {
        added += hxd_config_peer(&d->cfg, &nc->trusted.peers[i].uuid) == NULL;
    }
    if (hx_links_update(d->links, &lc, creds, &swapped) != HX_OK) {
        refuse(d,
               "trusted_peers: more peers added than the running node has slots for "
               "(restart it)");
        goto out;
    }
    hx_links_creds_info(d->links, &ci);
    hxd_metrics_add_peers(&d->metrics, nc);
    pthread_mutex_lock(&d->lock);
    apply_live(&d->cfg, nc);
    for (size_t i = 0; i < n_removed; i++) {
        end_streams_of(d, &removed[i]);
    }
    d->cert_not_after = ci.cert_not_after;
    d->ca_not_after = ci.ca_not_after;
    d->next_expiry_check = 0; /* warn about the new set at the next tick */
    d->expiry_looks = 0;
    pthread_cond_broadcast(&d->changed);
    pthread_cond_broadcast(&d->replied);
    pthread_mutex_unlock(&d->lock);
    if (hx_log_level_parse(d->cfg.log_level, &lvl) == HX_OK) {
        hx_log_set_level(lvl);
    }
    join_names(names, live, n, true, applied, sizeof(applied));
    join_names(names, live, n, false, restart, sizeof(restart));
    for (size_t i = 0; i < n; i++) {
        logs = logs || (live[i] && strncmp(names[i], "logging_config.", 15) == 0);
    }
    if (restart[0] != '\0') {
        hx_warn("reload: these settings need a restart and keep their running values",
                HX_F_STR("needs_restart", restart));
    }
    hx_info("reload applied",
            HX_F_STR("changed", applied[0] != '\0' ? applied : "nothing")
                HX_F_U64("peers_added", added) HX_F_U64("peers_removed", n_removed)
                    HX_F_STR("certificates", swapped ? "replaced" : "unchanged")
                        HX_F_STR("needs_restart", restart));
    pthread_mutex_lock(&d->lock);
    d->reloads++;
    d->last_reload_at = hx_walltime();
    snprintf(d->last_reload, sizeof(d->last_reload), "applied: %.180s%s%.180s",
             applied[0] != '\0' ? applied : "nothing changed",
             restart[0] != '\0' ? "; needs a restart: " : "", restart);
    pthread_cond_broadcast(&d->changed); /* a RELOAD request waits for the outcome */
    pthread_mutex_unlock(&d->lock);
out:
    free(pl);
    if (nc != NULL) {
        OPENSSL_cleanse(nc, sizeof(*nc));
    }
    free(nc);
    return logs;
}

/* One warning per certificate that expires within the threshold (or has expired). */
static void warn_expiry(const char *what, const char *peer, int64_t not_after, int64_t now,
                        int64_t ahead)
{
    char when[32];
    struct tm tm;
    time_t t = (time_t)not_after;

    if (not_after == 0 || not_after - now > ahead || gmtime_r(&t, &tm) == NULL) {
        return;
    }
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (not_after <= now) {
        hx_error("certificate has expired",
                 HX_F_STR("certificate", what) HX_F_STR("peer", peer) HX_F_STR("expired", when));
    } else {
        hx_warn("certificate expires soon: replace it and send SIGHUP (docs/hykexd.md)",
                HX_F_STR("certificate", what) HX_F_STR("peer", peer) HX_F_STR("expires", when)
                    HX_F_I64("days_left", (not_after - now) / 86400));
    }
}

void hxd_reload_tick(struct hxd *d)
{
    int64_t now = hx_walltime(), ahead, own, ca;
    struct hxd_peers peers;
    char id[HX_UUID_STR_LEN + 1];

    (void)hx_links_refresh(d->links, RENEW_PEER_S);
    if (d->next_expiry_check != 0 && !hx_deadline_passed(d->next_expiry_check)) {
        return;
    }
    /* the first look after a start or a reload comes before the peers' links are up: look
     * again a minute later for their certificates, then daily */
    d->next_expiry_check = hx_deadline_in_ms(d->expiry_looks++ > 0 ? EXPIRY_CHECK_MS : 60000);
    pthread_mutex_lock(&d->lock);
    ahead = (int64_t)d->cfg.cert_warn_days * 86400;
    own = d->cert_not_after;
    ca = d->ca_not_after;
    peers = d->cfg.trusted;
    pthread_mutex_unlock(&d->lock);
    warn_expiry("this node's", "", own, now, ahead);
    warn_expiry("the CA's", "", ca, now, ahead);
    for (size_t i = 0; i < peers.n; i++) {
        struct hx_link_info li;
        if (hx_links_info(d->links, &peers.peers[i].uuid, &li) == HX_OK) {
            hx_uuid_format(&peers.peers[i].uuid, id);
            warn_expiry("a peer's (as seen on its link)", id, li.cert_not_after, now, ahead);
        }
    }
}
