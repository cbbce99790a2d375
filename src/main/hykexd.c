/*
 * hykexd: the hybridization module of one trusted node.
 *
 *   hykexd -c config.json [-p trusted_peers_info.json] [--check-config] | --help | --version
 *
 * Also reads the reference module's CFGFILE and TRUSTED_PEERS_INFO environment variables.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cmdline.h"
#include "common/log.h"
#include "common/secret.h"
#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "api/server.h"
#include "crypto/kem.h"
#include "daemon/hxd.h"
#include "daemon/metrics_server.h"
#include "daemon/persist.h"
#include "daemon/relay.h"
#include "daemon/reload.h"
#include "daemon/service.h"
#include "daemon/stream.h"

static const char usage_text[] =
    "usage: hykexd -c CONFIG.json [-p TRUSTED_PEERS.json] [--check-config]\n"
    "       (or CFGFILE=CONFIG.json TRUSTED_PEERS_INFO=PEERS.json hykexd)\n"
    "  -c, --config FILE    the node's configuration (docs/hykexd.md, hykexd.json(5))\n"
    "  -p, --peers FILE     the trusted peers (trusted_peers_info.json)\n"
    "      --check-config   check the configuration, print it and exit\n"
    "  -h, --help           this text\n"
    "      --version        the version\n"
    "The hybridization module: serves ETSI 004 OPEN_CONNECT / GET_KEY / CLOSE to applications\n"
    "and derives every key from QKD, ML-KEM and X25519 sources agreed with the peer node.\n"
    "--check-config checks the configuration, the trusted peers and the certificates (they\n"
    "verify against the CA, name this node, are valid now, match the key; the key is mode\n"
    "0600), prints the effective configuration and exits. Prints 'ready' on stdout once\n"
    "serving; SIGTERM or SIGINT stops it; SIGHUP reloads: the config, the trusted peers and\n"
    "the certificates are read again and applied, or refused as a whole (the reason logged,\n"
    "the node running on), and logging_config.filename is reopened (logrotate). Settings\n"
    "that need a restart are logged as such. See docs/hykexd.md.\n";

/* The uid and gid of the `user` / `group` config keys; false (why says) if unknown. */
static bool run_as(const struct hxd_config *cfg, uid_t *uid, gid_t *gid, char *why, size_t why_len)
{
    struct passwd *pw = getpwnam(cfg->run_user);
    struct group *gr;

    if (pw == NULL) {
        snprintf(why, why_len, "user '%s' does not exist", cfg->run_user);
        return false;
    }
    *uid = pw->pw_uid;
    *gid = pw->pw_gid;
    if (cfg->run_group[0] != '\0') {
        if ((gr = getgrnam(cfg->run_group)) == NULL) {
            snprintf(why, why_len, "group '%s' does not exist", cfg->run_group);
            return false;
        }
        *gid = gr->gr_gid;
    }
    return true;
}

/* Drops to uid/gid for good (all threads: glibc applies set*id process-wide). */
static bool drop_privileges(uid_t uid, gid_t gid, char *why, size_t why_len)
{
    if (setgroups(0, NULL) != 0 || setgid(gid) != 0 || setuid(uid) != 0) {
        snprintf(why, why_len, "cannot drop privileges to uid %lu gid %lu", (unsigned long)uid,
                 (unsigned long)gid);
        return false;
    }
    if (uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
        snprintf(why, why_len, "privileges could be regained after dropping them");
        return false;
    }
    return true;
}

/* The command line: -1 to go on, else the exit code (usage or version printed). */
static int parse_args(int argc, char **argv, const char **config, const char **peers, bool *check)
{
    enum { OPT_CHECK = HX_OPT_FIRST };
    static const struct option options[] = {{"config", required_argument, NULL, 'c'},
                                            {"peers", required_argument, NULL, 'p'},
                                            {"check-config", no_argument, NULL, OPT_CHECK},
                                            HX_CMDLINE_STD_OPTIONS};
    static const struct hx_cmdline cl = {"hykexd", usage_text, "hc:p:", options, 0};
    int ch, ex;

    hx_cmdline_begin();
    while ((ch = hx_cmdline_next(&cl, argc, argv, &ex)) != -1) {
        switch (ch) {
        case -2:
            return ex;
        case 'c':
            *config = optarg;
            break;
        case 'p':
            *peers = optarg;
            break;
        case OPT_CHECK:
            *check = true;
            break;
        }
    }
    if (optind < argc) {
        return hx_cmdline_error(&cl, "takes no operands ('%s' given)", argv[optind]);
    }
    if (*config == NULL) {
        return hx_cmdline_error(&cl, "no configuration: give -c CONFIG.json (or CFGFILE)");
    }
    return -1;
}

/* Test-only misbehaviour (HYKEX_FAULT_PEER, HYKEX_FAULT_DROP_ACK, HYKEX_FAULT_LOSE_FIN_AT; hxd.h,
 * fault.c), compiled in with
 * HYKEX_FAULT_INJECTION only. */
static void fault_from_env(struct hxd *d)
{
#ifdef HYKEX_FAULT_INJECTION
    static const char *const names[] = {
        "",        "resp-sig", "resp-tag", "resp-ct",     "resp-replay",
        "fin-sig", "fin-tag",  "resp-mac", "resp-mac-ct", "fin-mac"};
    const char *v = getenv("HYKEX_FAULT_PEER"), *n = getenv("HYKEX_FAULT_DROP_ACK");
    for (size_t i = 1; v != NULL && i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(v, names[i]) == 0) {
            d->fault = (enum hxd_fault)i;
        }
    }
    const char *lose = getenv("HYKEX_FAULT_LOSE_FIN_AT");
    d->fault_drop_ack = n != NULL ? strtol(n, NULL, 10) : 0;
    d->fault_lose_fin = lose != NULL ? strtoull(lose, NULL, 10) + 1 : 0;
    if (d->fault != HXD_FAULT_NONE || d->fault_drop_ack > 0 || d->fault_lose_fin > 0) {
        fprintf(stderr,
                "hykexd: fault injection on (HYKEX_FAULT_PEER=%s, DROP_ACK=%ld, LOSE_FIN_AT=%s)\n",
                v != NULL ? v : "", d->fault_drop_ack, lose != NULL ? lose : "");
    }
#else
    (void)d;
#endif
}

/* The QKD clients (ETSI 004 and 014) from the configuration. */
static void qkd_clients_init(struct hxd *d)
{
    d->qkd.protocol = d->cfg.qkd_protocol == HXD_QKD_004_BINARY ? 2 : 1;
    d->qkd.framing = d->cfg.qkd_framing;
    snprintf(d->qkd.host, sizeof(d->qkd.host), "%s", d->cfg.qkd.host);
    d->qkd.port = d->cfg.qkd.port;
    snprintf(d->qkd.tls_cert, sizeof(d->qkd.tls_cert), "%s", d->cfg.qkd_tls_cert);
    snprintf(d->qkd.tls_key, sizeof(d->qkd.tls_key), "%s", d->cfg.qkd_tls_key);
    snprintf(d->qkd.tls_ca, sizeof(d->qkd.tls_ca), "%s", d->cfg.qkd_tls_ca);
    d->qkd.timeout_ms = 5000;
    d->qkd.pipeline = d->cfg.qkd_pipeline;
    snprintf(d->qkd014.base_url, sizeof(d->qkd014.base_url), "https://%s:%u", d->cfg.qkd.host,
             d->cfg.qkd.port);
    snprintf(d->qkd014.cert, sizeof(d->qkd014.cert), "%s", d->cfg.qkd_tls_cert);
    snprintf(d->qkd014.key, sizeof(d->qkd014.key), "%s", d->cfg.qkd_tls_key);
    snprintf(d->qkd014.ca, sizeof(d->qkd014.ca), "%s", d->cfg.qkd_tls_ca);
    d->qkd014.timeout_ms = 10000;
}

/* The links to the trusted peers, their frames handed to the batch protocol; the expiries of
 * the certificates they use, for hykex status. */
static hx_err start_links(struct hxd *d, char *why, size_t why_len)
{
    struct hxd_peer_lists *pl = calloc(1, sizeof(*pl));
    struct hx_links_config lc;
    struct hx_link_creds_info ci;
    hx_err e;

    if (pl == NULL) {
        snprintf(why, why_len, "out of memory");
        return HX_ERR_NOMEM;
    }
    hxd_links_config_of(d, &d->cfg, pl, &lc);
    e = hx_links_start(&lc, &d->links, why, why_len); /* the lists are copied into its slots */
    free(pl);
    if (e == HX_OK) {
        hx_links_creds_info(d->links, &ci);
        d->cert_not_after = ci.cert_not_after;
        d->ca_not_after = ci.ca_not_after;
    }
    return e;
}

/* Serving: "ready" on stdout, then the periodic work until SIGINT or SIGTERM (returned). */
/*
 * logging_config.filename: a log file at file_log_type, mode 0600 (keys are never logged, but
 * stream ids and peers are nobody else's business). Opened O_APPEND; on SIGHUP the same fd is
 * pointed at a freshly opened file of that name (dup2), so that logrotate can move it away.
 */
static int log_fd = -1;

/*
 * Where logging_config.filename goes. A relative name (the original's "hybrid.log") is put in
 * systemd's LogsDirectory ($LOGS_DIRECTORY) when hykexd runs under it, else in state_dir (made
 * 0700 if missing, as the store would), else the working directory as the original did: a
 * service's working directory (/etc/hykex) is not writable.
 */
static bool log_path(const struct hxd_config *cfg, char *out, size_t cap)
{
    const char *dir = getenv("LOGS_DIRECTORY"), *colon;
    size_t dlen;
    int n;

    if (cfg->log_filename[0] == '/') {
        n = snprintf(out, cap, "%s", cfg->log_filename);
        return n > 0 && (size_t)n < cap;
    }
    if (dir == NULL || dir[0] == '\0') {
        dir = cfg->state_dir[0] != '\0' ? cfg->state_dir : NULL;
        if (dir != NULL && mkdir(dir, 0700) != 0 && errno != EEXIST) {
            dir = NULL;
        }
    }
    if (dir == NULL) {
        n = snprintf(out, cap, "%s", cfg->log_filename);
        return n > 0 && (size_t)n < cap;
    }
    colon = strchr(dir, ':'); /* LOGS_DIRECTORY may list several: the first */
    dlen = colon != NULL ? (size_t)(colon - dir) : strlen(dir);
    n = snprintf(out, cap, "%.*s/%s", (int)dlen, dir, cfg->log_filename);
    return n > 0 && (size_t)n < cap;
}

static bool open_log_file(const struct hxd_config *cfg, char *why, size_t why_len)
{
    char path[HXD_MAX_PATH * 2 + 2];
    enum hx_log_level lvl;
    int fd;

    if (cfg->log_filename[0] == '\0') {
        return true;
    }
    if (hx_log_level_parse(cfg->file_log_type, &lvl) != HX_OK) {
        snprintf(why, why_len, "logging_config.file_log_type: unknown level '%s'",
                 cfg->file_log_type);
        return false;
    }
    if (!log_path(cfg, path, sizeof(path))) {
        snprintf(why, why_len, "logging_config.filename: path too long");
        return false;
    }
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 || fchmod(fd, 0600) != 0) {
        snprintf(why, why_len, "logging_config.filename: cannot open %.400s for appending", path);
        if (fd >= 0) {
            close(fd);
        }
        return false;
    }
    if (log_fd < 0) {
        log_fd = fd;
        hx_log_set_file(log_fd, lvl);
        hx_debug("log file open", HX_F_STR("file", path) HX_F_STR("level", hx_log_level_name(lvl)));
    } else if (dup2(fd, log_fd) >= 0) {
        close(fd);
        hx_log_set_file(log_fd, lvl); /* a reload may have changed the level */
    } else {
        close(fd);
        snprintf(why, why_len, "logging_config.filename: cannot reopen %s", cfg->log_filename);
        return false;
    }
    return true;
}

static int serve(struct hxd *d, const sigset_t *sigs)
{
    char id[HX_UUID_STR_LEN + 1];
    int sig;

    hx_uuid_format(&d->cfg.uuid, id);
    hx_info("hykexd ready", HX_F_STR("node", id) HX_F_STR("api", d->cfg.api.host) HX_F_U64(
                                "api_port", d->cfg.api.port) HX_F_U64("peers", d->cfg.trusted.n));
    printf("ready\n");
    fflush(stdout);
    /* Every 200 ms streams whose back-off is over resume; once a second streams whose TTL has
     * passed are wiped. */
    for (unsigned tick = 0;; tick++) {
        struct timespec fifth = {0, 200000000};
        if ((sig = sigtimedwait(sigs, NULL, &fifth)) == SIGHUP) {
            char why[600];
            (void)hxd_reload(d); /* daemon/reload.c: applied, or refused and logged */
            if (!open_log_file(&d->cfg, why, sizeof(why))) {
                hx_warn("log file not reopened: still writing to the old one",
                        HX_F_STR("why", why));
            } else {
                hx_info("log file reopened", HX_F_STR("file", d->cfg.log_filename));
            }
        } else if (sig > 0) {
            return sig;
        }
        hxd_unjoined_expire(d); /* announced by a peer, never joined in time */
        hxd_qkd_reopen_tick(d); /* KME recovery: reopen attempts that are due */
        hxd_streams_tick(d);
        hxd_relay_tick(d);  /* relay.enabled only: topology announcements */
        hxd_repath_tick(d); /* relayed QKD streams whose path broke: rerouted */
        hxd_reload_tick(d); /* links made with a replaced certificate; expiry warnings */
        if (tick % 5 == 4) {
            hxd_svc_expire(d);
        }
    }
}

/* An allocation in the secure heap: a power of two, at least 32 bytes (its buddy allocator). */
static uint64_t heap_slot(uint64_t n)
{
    uint64_t slot = 32;

    while (slot < n) {
        slot <<= 1;
    }
    return slot;
}

/*
 * The secure heap the limits need, as a power of two: every stream holding its buffer
 * (limits.buffer_depth keys) and the batches in flight (HXD_PIPELINE x limits.batch_size;
 * a grown batch stays within the buffer), each key of limits.max_key_chunk bytes, and its batch
 * authentication keys (struct hxd_auth and one per pending batch, batch_auth.c), plus the
 * workers' scratch (the largest batch's QKD bytes and KEM secrets per pool thread,
 * hxd_config_batch_top, limits.initiator_workers + limits.responder_workers of them)
 * and 1 MiB for OpenSSL's own. False when it is above limits.secure_heap_mb: why then gives
 * the arithmetic.
 */
static bool secure_heap_size(const struct hxd_config *c, size_t *size, char *why, size_t why_len)
{
    uint64_t slot = heap_slot(c->max_key_chunk), per_stream, keys, scratch, need, heap = 1;
    uint64_t cap = (uint64_t)c->secure_heap_mb << 20;
    uint64_t auth = heap_slot(sizeof(struct hxd_auth)) + HXD_PIPELINE * heap_slot(32);

    per_stream = (uint64_t)c->buffer_depth + (uint64_t)HXD_PIPELINE * c->batch_size;
    keys = (uint64_t)c->max_streams * (per_stream * slot + auth);
    /* per position in flight: its key, QKD bytes, KEM secrets, and one KEM secret key as large
     * as Classic McEliece's (a key pair per position; per batch it is far less) */
    scratch = ((uint64_t)c->initiator_workers + c->responder_workers) * hxd_config_batch_top(c) *
                  (slot + heap_slot(c->qkd_key_bytes) + 256 + heap_slot(HX_KEM_MAX_SECRET_KEY)) +
              (1u << 20);
    need = keys + scratch;
    while (heap < need) {
        heap <<= 1;
    }
    if (heap > cap || heap > SIZE_MAX / 2) {
        snprintf(why, why_len,
                 "limits: the secure heap would need %" PRIu32
                 " streams (limits.max_streams) x %" PRIu64 " keys (limits.buffer_depth %" PRIu32
                 " + %d batches of limits.batch_size %" PRIu32 ") x %" PRIu64
                 " bytes (limits.max_key_chunk %" PRIu32 ", as the heap allocates it), + %" PRIu64
                 " bytes of authentication keys each,"
                 " = %" PRIu64 " bytes + %" PRIu64 " scratch = %" PRIu64
                 " MiB as a power of two, above limits.secure_heap_mb %" PRIu32
                 ": lower those limits or raise limits.secure_heap_mb",
                 c->max_streams, per_stream, c->buffer_depth, HXD_PIPELINE, c->batch_size, slot,
                 c->max_key_chunk, auth, keys, scratch, heap >> 20, c->secure_heap_mb);
        return false;
    }
    *size = (size_t)heap;
    return true;
}

/* Core dumps off, the secure heap, this node's signing key and certificate expiry. */
static bool guard_secrets(struct hxd *d, size_t heap)
{
    /* Secrets stay out of core dumps and other processes' reach. */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    {
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
    }
    if (hx_secret_heap_init(heap) != HX_OK) {
        fprintf(stderr, "hykexd: cannot set up the secure heap of %zu bytes (limits.*)\n", heap);
        return false;
    }
    hx_info("secure heap", HX_F_U64("bytes", heap));
    if (!hx_secret_heap_locked()) {
        hx_warn(
            "secure heap not locked in memory: keys may be swapped out (RLIMIT_MEMLOCK is "
            "below the heap's size: raise it, e.g. systemd LimitMEMLOCK, or lower the limits.*)",
            HX_F_U64("bytes", heap));
    }
    if (hx_sig_key_load_pem(d->cfg.key_path, &d->sig_key) != HX_OK) {
        fprintf(stderr,
                "hykexd: %s: cannot load an ML-DSA private key (mode 0600 required; "
                "batch signatures need an ML-DSA certificate key)\n",
                d->cfg.key_path);
        return false;
    }
    return true;
}

int main(int argc, char **argv)
{
    const char *config = getenv("CFGFILE"), *peers = getenv("TRUSTED_PEERS_INFO");
    bool check = false;
    struct hxd *d = calloc(1, sizeof(*d));
    struct hxd_api *api = NULL;
    struct hxd_metrics_server *metrics = NULL;
    char why[600];
    size_t heap = 0;
    enum hx_log_level lvl;
    sigset_t sigs;
    int sig, rc = 1;

    if (d == NULL) {
        return 1;
    }
    if ((rc = parse_args(argc, argv, &config, &peers, &check)) >= 0) {
        free(d);
        return rc;
    }
    rc = 1;
    if (hxd_config_load(&d->cfg, config, peers, why, sizeof(why)) != HX_OK) {
        fprintf(stderr, "hykexd: %s\n", why);
        free(d);
        return 1;
    }
    if (!secure_heap_size(&d->cfg, &heap, why, sizeof(why))) {
        fprintf(stderr, "hykexd: %s: %s\n", config, why);
        free(d);
        return 1;
    }
    /* What cannot work stops here, --check-config included (as sshd -t). */
    if (hx_log_level_parse(d->cfg.log_level, &lvl) != HX_OK) {
        fprintf(stderr,
                "hykexd: %s: key 'log_level' (or logging_config.console_log_type): unknown "
                "level '%s' (error, warn, info, debug)\n",
                config, d->cfg.log_level);
        free(d);
        return 1;
    }
    if (hxd_check_creds(&d->cfg, why, sizeof(why)) != HX_OK) {
        fprintf(stderr, "hykexd: %s: %s\n", config, why);
        free(d);
        return 1;
    }
    d->config_path = config;
    d->peers_path = peers;
    d->started_at = hx_walltime();
    if (check) {
        char *text = hxd_config_dump(&d->cfg);
        printf("%s\n", text != NULL ? text : "{}");
        free(text);
        free(d);
        return 0;
    }
    fault_from_env(d);
    hxd_metrics_init(&d->metrics, &d->cfg);
    hx_log_set_level(lvl); /* checked above */
    if (!open_log_file(&d->cfg, why, sizeof(why))) {
        fprintf(stderr, "hykexd: %s\n", why);
        goto out;
    }
    if (d->cfg.self_listed) {
        char self[HX_UUID_STR_LEN + 1];
        hx_uuid_format(&d->cfg.uuid, self);
        hx_info("this node's own entry in the trusted peers is not a peer: ignored",
                HX_F_STR("node", self));
    }
    if (!guard_secrets(d, heap)) {
        goto out;
    }
    qkd_clients_init(d);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    d->max_streams = d->cfg.max_streams;
    if (hxd_streams_init(d) != HX_OK) {
        goto out;
    }
    pthread_mutex_init(&d->lock, NULL);
    /* Monotonic: every wait on it has a deadline from common/clock.h. */
    if (hx_cond_init_monotonic(&d->changed) != HX_OK) {
        fprintf(stderr, "hykexd: cannot make a monotonic condition variable\n");
        goto out;
    }
    uid_t run_uid = 0;
    gid_t run_gid = 0;
    bool drop = d->cfg.run_user[0] != '\0';
    if (drop && !run_as(&d->cfg, &run_uid, &run_gid, why, sizeof(why))) {
        fprintf(stderr, "hykexd: %s\n", why);
        goto out;
    }
    if (drop && geteuid() != 0 && geteuid() != run_uid) {
        fprintf(stderr, "hykexd: 'user' is set: start as root (or as that user)\n");
        goto out;
    }
    if (hxd_persist_open(d, why, sizeof(why)) != HX_OK ||
        (drop && geteuid() == 0 &&
         hxd_persist_chown(d, run_uid, run_gid, why, sizeof(why)) != HX_OK)) {
        fprintf(stderr, "hykexd: store: %s\n", why);
        goto out;
    }

    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    hxd_pools_start(d, d->cfg.initiator_workers, hxd_initiator_job, d->cfg.responder_workers,
                    hxd_responder_job);
    /* before the links: their I/O threads read d->relay */
    if (hxd_relay_start(d, hxd_on_peer_frame, why, sizeof(why)) != HX_OK) {
        fprintf(stderr, "hykexd: relay: %s\n", why);
        goto stop;
    }
    if (start_links(d, why, sizeof(why)) != HX_OK) {
        fprintf(stderr, "hykexd: peer link: %s\n", why);
        goto stop;
    }
    if (hxd_api_start(d, &api, why, sizeof(why)) != HX_OK) {
        fprintf(stderr, "hykexd: API: %s\n", why);
        goto stop;
    }
    if (hxd_metrics_server_start(d, &metrics, why, sizeof(why)) != HX_OK) {
        fprintf(stderr, "hykexd: metrics: %s\n", why);
        goto stop;
    }
    /* Sockets bound, keys and store open: the rest runs unprivileged. */
    if (drop && geteuid() == 0) {
        if (!drop_privileges(run_uid, run_gid, why, sizeof(why))) {
            fprintf(stderr, "hykexd: %s\n", why);
            goto stop;
        }
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0); /* set*id may reset it */
        hx_info("privileges dropped", HX_F_STR("user", d->cfg.run_user) HX_F_U64("uid", run_uid)
                                          HX_F_U64("gid", run_gid));
    }
    sig = serve(d, &sigs);
    hx_info("stopping", HX_F_I64("signal", sig));
    rc = 0;
stop:
    hxd_metrics_server_stop(metrics);
    hxd_svc_shutdown(d);
    hxd_api_stop(api);
    hxd_pools_stop(d);
    hx_links_stop(d->links);
    hxd_relay_stop(d);
    for (size_t i = 0; d->streams != NULL && i < d->max_streams; i++) {
        if (d->streams[i].used) {
            hxd_stream_drop(d, &d->streams[i]);
        }
    }
    hxd_persist_close(d);
    free(d->fault_last);
out:
    hxd_streams_free(d);
    hx_sig_key_free(d->sig_key);
    curl_global_cleanup();
    OPENSSL_cleanse(d, sizeof(*d));
    free(d);
    return rc;
}
