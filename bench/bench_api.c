/*
 * bench_api: hykexd from an application's side, through libhykex, on loopback.
 *
 *   bench_api rate A B N METHOD SOURCES       keys/s delivered at A for one stream (both ends open)
 *   bench_api latency A B N                   GET_KEY latency from a filled buffer (p50/p99 us)
 *   bench_api echo N REQ REP                   bare TCP echo of REQ/REP-byte messages (p50/p99 us)
 *   bench_api throughput A B CONNS SECONDS    GET_KEY requests/s over CONNS connections
 *   bench_api open A B N [SOURCES]             OPEN_CONNECT latency on a warm peer link (p50/p99
 * us), and from OPEN_CONNECT to the first key at both ends (first_key_*; SOURCES default
 * ML-KEM-768,QKD)
 *   bench_api streams A B K SECONDS PID_A      K streams open at once: aggregate keys/s produced
 *                                              (STATUS) and node A's RSS growth per stream
 *   bench_api drain A B K SECONDS [SAMPLES]    K streams, an application at each end of each
 *                                              taking keys back to back for SECONDS: GET_KEY
 *                                              latency p50/p99/p99.9/max per end, keys/s, and
 *                                              whether both ends got the same keys; SAMPLES: a
 *                                              file of "seconds latency_us end" per call
 *
 * A and B are HOST:PORT of two nodes' APIs. Prints one JSON object. Used by bench/run.sh.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "hykex/hykex.h"

static const char *node_a = "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa";
static const char *node_b = "bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb";

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void percentiles(double *v, size_t n, double *p50, double *p99)
{
    qsort(v, n, sizeof(*v), cmp_double);
    *p50 = v[n / 2];
    *p99 = v[(size_t)((double)n * 0.99) < n ? (size_t)((double)n * 0.99) : n - 1];
}

/* Prints `, "cdf_us": [...]`: the latencies at 1 %, 2 %, ..., 99 % and 99.9 % (v sorted). */
static void print_cdf(const double *v, size_t n)
{
    printf(", \"cdf_us\": [");
    for (int p = 1; p <= 100; p++) {
        double q = p == 100 ? 0.999 : p / 100.0;
        size_t i = (size_t)(q * (double)n);
        printf("%s%.1f", p > 1 ? ", " : "", v[i < n ? i : n - 1]);
    }
    printf("]");
}

struct opener {
    const char *addr;
    char src[512], dst[512];
    char ksid[HYKEX_KSID_LEN + 1];
    struct hykex *h;
    uint32_t status;
    uint64_t n_get; /* responder side: keys to drain */
};

static void *open_side(void *arg)
{
    struct opener *o = arg;
    struct hykex_qos qos;

    memset(&qos, 0, sizeof(qos));
    qos.key_chunk_size = 32;
    qos.timeout_ms = 20000;
    o->status = 99;
    if (o->h == NULL && hykex_connect(o->addr, &o->h) != 0) {
        return NULL;
    }
    if (hykex_open_connect(o->h, o->src, o->dst, &qos, o->ksid, &o->status) != 0) {
        o->status = 98;
    }
    return NULL;
}

static void *drain(void *arg)
{
    struct opener *o = arg;
    uint8_t key[64];

    for (uint64_t i = 0; i < o->n_get; i++) {
        size_t len = sizeof(key);
        uint32_t st, idx = (uint32_t)i;
        if (hykex_get_key(o->h, o->ksid, &idx, key, &len, NULL, 0, &st) != 0 || st != 0) {
            break;
        }
    }
    return NULL;
}

/* Opens one stream at both nodes; a[0] at A (initiator), a[1] at B. */
static int open_pair(struct opener a[2], const char *A, const char *B, const char *app,
                     const char *method, const char *sources)
{
    pthread_t t[2];

    memset(a, 0, 2 * sizeof(*a));
    for (int i = 0; i < 2; i++) {
        a[i].addr = i == 0 ? A : B;
        snprintf(a[i].src, sizeof(a[i].src), "hybrid://%s@%s?hybridization=%s&key_sources=%s", app,
                 node_a, method, sources);
        snprintf(a[i].dst, sizeof(a[i].dst), "hybrid://%s@%s?hybridization=%s&key_sources=%s", app,
                 node_b, method, sources);
        pthread_create(&t[i], NULL, open_side, &a[i]);
    }
    pthread_join(t[0], NULL);
    pthread_join(t[1], NULL);
    return a[0].status == 0 && a[1].status == 0 ? 0 : -1;
}

static void close_pair(struct opener a[2])
{
    for (int i = 0; i < 2; i++) {
        uint32_t st;
        if (a[i].h != NULL) {
            (void)hykex_close(a[i].h, a[i].ksid, &st);
            hykex_disconnect(a[i].h);
        }
    }
}

static int bench_rate(const char *A, const char *B, uint64_t n, const char *method,
                      const char *sources)
{
    struct opener p[2];
    pthread_t t;
    uint8_t key[64];
    double t0, t1;
    uint64_t got = 0;
    char app[32];

    snprintf(app, sizeof(app), "rate%ld", (long)getpid());
    if (open_pair(p, A, B, app, method, sources) != 0) {
        fprintf(stderr, "bench_api: OPEN_CONNECT failed (%u/%u)\n", p[0].status, p[1].status);
        return 1;
    }
    p[1].n_get = n;
    pthread_create(&t, NULL, drain, &p[1]);
    t0 = now();
    for (uint64_t i = 0; i < n; i++) {
        size_t len = sizeof(key);
        uint32_t st, idx = (uint32_t)i;
        if (hykex_get_key(p[0].h, p[0].ksid, &idx, key, &len, NULL, 0, &st) != 0 || st != 0) {
            break;
        }
        got++;
    }
    t1 = now();
    pthread_join(t, NULL);
    close_pair(p);
    printf(
        "{\"bench\": \"rate\", \"method\": \"%s\", \"sources\": \"%s\", \"keys\": %llu, "
        "\"seconds\": %.4f, \"keys_per_s\": %.1f}\n",
        method, sources, (unsigned long long)got, t1 - t0, (double)got / (t1 - t0));
    return got == n ? 0 : 1;
}

static int bench_latency(const char *A, const char *B, uint64_t n)
{
    struct opener p[2];
    double *lat = malloc(n * sizeof(double)), p50, p99;
    uint8_t key[64];
    char app[32];

    snprintf(app, sizeof(app), "lat%ld", (long)getpid());
    if (lat == NULL || open_pair(p, A, B, app, "hkdf", "ML-KEM-768,QKD") != 0) {
        free(lat);
        return 1;
    }
    /* Fill the buffer first: take the last position, which makes production reach it. */
    {
        size_t len = sizeof(key);
        uint32_t st, idx = (uint32_t)(n - 1);
        if (hykex_get_key(p[0].h, p[0].ksid, &idx, key, &len, NULL, 0, &st) != 0 || st != 0) {
            fprintf(stderr, "bench_api: filling the buffer failed (%u)\n", st);
            close_pair(p);
            free(lat);
            return 1;
        }
    }
    for (uint64_t i = 0; i + 1 < n; i++) {
        size_t len = sizeof(key);
        uint32_t st, idx = (uint32_t)i;
        double t0 = now();
        if (hykex_get_key(p[0].h, p[0].ksid, &idx, key, &len, NULL, 0, &st) != 0 || st != 0) {
            break;
        }
        lat[i] = (now() - t0) * 1e6;
    }
    close_pair(p);
    percentiles(lat, n - 1, &p50, &p99);
    printf("{\"bench\": \"latency\", \"calls\": %llu, \"p50_us\": %.1f, \"p99_us\": %.1f",
           (unsigned long long)(n - 1), p50, p99);
    print_cdf(lat, n - 1);
    printf("}\n");
    free(lat);
    return 0;
}

struct echo_arg {
    int fd;
    size_t req, rep;
    uint64_t n;
};

static void *echo_server(void *arg)
{
    struct echo_arg *e = arg;
    int c = accept(e->fd, NULL, NULL), one = 1;
    char *buf = calloc(1, e->req + e->rep);

    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    for (uint64_t i = 0; i < e->n; i++) {
        size_t got = 0;
        while (got < e->req) {
            ssize_t r = recv(c, buf + got, e->req - got, 0);
            if (r <= 0) {
                goto out;
            }
            got += (size_t)r;
        }
        if (send(c, buf, e->rep, 0) != (ssize_t)e->rep) {
            break;
        }
    }
out:
    close(c);
    free(buf);
    return NULL;
}

static int bench_echo(uint64_t n, size_t req, size_t rep)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    struct echo_arg e = {socket(AF_INET, SOCK_STREAM, 0), req, rep, n};
    pthread_t t;
    int c = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    double *lat = malloc(n * sizeof(double)), p50, p99;
    char *buf = calloc(1, req + rep);

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(e.fd, (struct sockaddr *)&sa, sizeof(sa));
    listen(e.fd, 1);
    getsockname(e.fd, (struct sockaddr *)&sa, &len);
    pthread_create(&t, NULL, echo_server, &e);
    connect(c, (struct sockaddr *)&sa, sizeof(sa));
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    for (uint64_t i = 0; i < n; i++) {
        double t0 = now();
        size_t got = 0;
        if (send(c, buf, req, 0) != (ssize_t)req) {
            break;
        }
        while (got < rep) {
            ssize_t r = recv(c, buf + got, rep - got, 0);
            if (r <= 0) {
                break;
            }
            got += (size_t)r;
        }
        lat[i] = (now() - t0) * 1e6;
    }
    close(c);
    pthread_join(t, NULL);
    close(e.fd);
    percentiles(lat, n, &p50, &p99);
    printf(
        "{\"bench\": \"echo\", \"calls\": %llu, \"request_bytes\": %zu, \"reply_bytes\": %zu, "
        "\"p50_us\": %.1f, \"p99_us\": %.1f",
        (unsigned long long)n, req, rep, p50, p99);
    print_cdf(lat, n);
    printf("}\n");
    free(lat);
    free(buf);
    return 0;
}

struct worker {
    const char *A, *B;
    int id;
    double seconds;
    uint64_t done;
    int ok;
};

static void *throughput_worker(void *arg)
{
    struct worker *w = arg;
    struct opener p[2];
    char app[48];
    uint8_t key[64];
    double end;

    snprintf(app, sizeof(app), "tp%ld-%d", (long)getpid(), w->id);
    if (open_pair(p, w->A, w->B, app, "hkdf", "ML-KEM-768,QKD") != 0) {
        return NULL;
    }
    w->ok = 1;
    end = now() + w->seconds;
    while (now() < end) {
        size_t len = sizeof(key);
        uint32_t st;
        if (hykex_get_key(p[0].h, p[0].ksid, NULL, key, &len, NULL, 0, &st) != 0 || st != 0) {
            w->ok = 0;
            break;
        }
        w->done++;
    }
    close_pair(p);
    return NULL;
}

static int bench_throughput(const char *A, const char *B, int conns, double seconds)
{
    struct worker *w = calloc((size_t)conns, sizeof(*w));
    pthread_t *t = calloc((size_t)conns, sizeof(*t));
    uint64_t total = 0;
    int ok = 0;

    for (int i = 0; i < conns; i++) {
        w[i] = (struct worker){A, B, i, seconds, 0, 0};
        pthread_create(&t[i], NULL, throughput_worker, &w[i]);
    }
    for (int i = 0; i < conns; i++) {
        pthread_join(t[i], NULL);
        total += w[i].done;
        ok += w[i].ok;
    }
    printf(
        "{\"bench\": \"throughput\", \"connections\": %d, \"ok\": %d, \"seconds\": %.2f, "
        "\"requests\": %llu, \"requests_per_s\": %.1f}\n",
        conns, ok, seconds, (unsigned long long)total, (double)total / seconds);
    free(w);
    free(t);
    return ok == conns ? 0 : 1;
}

/* Index 0 at both ends: the key of the stream's first batch. */
static int first_key(struct opener p[2])
{
    for (int i = 0; i < 2; i++) {
        uint8_t key[64];
        size_t len = sizeof(key);
        uint32_t st, idx = 0;
        if (hykex_get_key(p[i].h, p[i].ksid, &idx, key, &len, NULL, 0, &st) != 0 || st != 0) {
            return -1;
        }
    }
    return 0;
}

static int bench_open(const char *A, const char *B, uint64_t n, const char *sources)
{
    double *lat = malloc(n * sizeof(double)), *first = malloc(n * sizeof(double)), p50, p99, f50,
           f99;
    uint64_t done = 0;

    for (uint64_t i = 0; i < n && lat != NULL && first != NULL; i++) {
        struct opener p[2];
        char app[48];
        double t0 = now();
        snprintf(app, sizeof(app), "open%ld-%llu", (long)getpid(), (unsigned long long)i);
        if (open_pair(p, A, B, app, "hkdf", sources) != 0) {
            close_pair(p);
            break;
        }
        lat[done] = (now() - t0) * 1e6;
        if (first_key(p) != 0) {
            close_pair(p);
            break;
        }
        first[done++] = (now() - t0) * 1e6;
        close_pair(p);
    }
    if (done == 0) {
        free(lat);
        free(first);
        return 1;
    }
    percentiles(lat, done, &p50, &p99);
    percentiles(first, done, &f50, &f99);
    printf(
        "{\"bench\": \"open\", \"sources\": \"%s\", \"pairs\": %llu, \"p50_us\": %.1f, "
        "\"p99_us\": %.1f, \"first_key_p50_us\": %.1f, \"first_key_p99_us\": %.1f}\n",
        sources, (unsigned long long)done, p50, p99, f50, f99);
    free(lat);
    free(first);
    return done == n ? 0 : 1;
}

/* A process's resident set in KiB (/proc), or -1. */
static long rss_kib(long pid)
{
    char path[64], line[256];
    long kib = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%ld/status", pid);
    if ((f = fopen(path, "r")) == NULL) {
        return -1;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kib = strtol(line + 6, NULL, 10);
        }
    }
    fclose(f);
    return kib;
}

/* Sums a counter of every stream in a node's STATUS; -1 on error. */
static long long status_sum(struct hykex *h, const char *field)
{
    char *reply = NULL;
    struct json_object *o, *streams, *v;
    long long sum = -1;

    if (hykex_raw_call(h, "{\"command\": \"STATUS\"}", &reply) != 0) {
        return -1;
    }
    if ((o = json_tokener_parse(reply)) != NULL &&
        json_object_object_get_ex(o, "streams", &streams)) {
        sum = 0;
        for (size_t i = 0; i < json_object_array_length(streams); i++) {
            if (json_object_object_get_ex(json_object_array_get_idx(streams, i), field, &v)) {
                sum += json_object_get_int64(v);
            }
        }
    }
    json_object_put(o);
    free(reply);
    return sum;
}

/* K streams open at once over one connection per node; production measured from STATUS. */
static int bench_streams(const char *A, const char *B, uint64_t k, double seconds, long pid_a)
{
    struct opener *p = calloc(k, 2 * sizeof(*p));
    struct hykex *ha = NULL, *hb = NULL;
    long rss0 = rss_kib(pid_a), rss1;
    long long prod0, prod1, ready;
    uint64_t opened = 0;
    double t0, t1;
    int rc = 1;

    if (p == NULL || hykex_connect(A, &ha) != 0 || hykex_connect(B, &hb) != 0) {
        fprintf(stderr, "bench_api: cannot connect\n");
        goto out;
    }
    for (; opened < k; opened++) {
        struct opener *o = &p[2 * opened];
        pthread_t t;
        for (int i = 0; i < 2; i++) {
            o[i].addr = i == 0 ? A : B;
            o[i].h = i == 0 ? ha : hb;
            snprintf(o[i].src, sizeof(o[i].src),
                     "hybrid://s%ld-%llu@%s?hybridization=hkdf&key_sources=ML-KEM-768,QKD",
                     (long)getpid(), (unsigned long long)opened, node_a);
            snprintf(o[i].dst, sizeof(o[i].dst),
                     "hybrid://s%ld-%llu@%s?hybridization=hkdf&key_sources=ML-KEM-768,QKD",
                     (long)getpid(), (unsigned long long)opened, node_b);
        }
        pthread_create(&t, NULL, open_side, &o[1]);
        open_side(&o[0]);
        pthread_join(t, NULL);
        if (o[0].status != 0 || o[1].status != 0) {
            fprintf(stderr, "bench_api: OPEN_CONNECT %llu failed (%u/%u)\n",
                    (unsigned long long)opened, o[0].status, o[1].status);
            goto out;
        }
    }
    prod0 = status_sum(ha, "produced");
    t0 = now();
    {
        struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
        while (nanosleep(&ts, &ts) != 0) {
        }
    }
    prod1 = status_sum(ha, "produced");
    t1 = now();
    ready = status_sum(ha, "ready");
    rss1 = rss_kib(pid_a);
    if (prod0 < 0 || prod1 < 0 || ready < 0 || rss0 < 0 || rss1 < 0) {
        fprintf(stderr, "bench_api: STATUS or /proc failed\n");
        goto out;
    }
    printf(
        "{\"bench\": \"streams\", \"streams\": %llu, \"seconds\": %.2f, "
        "\"keys_per_s\": %.1f, \"ready_keys\": %lld, \"rss_growth_kib\": %ld, "
        "\"rss_kib_per_stream\": %.2f}\n",
        (unsigned long long)k, t1 - t0, (double)(prod1 - prod0) / (t1 - t0), ready, rss1 - rss0,
        (double)(rss1 - rss0) / (double)k);
    rc = 0;
out:
    for (uint64_t i = 0; i < opened; i++) {
        uint32_t st;
        (void)hykex_close(ha, p[2 * i].ksid, &st);
        (void)hykex_close(hb, p[2 * i + 1].ksid, &st);
    }
    if (ha != NULL) {
        hykex_disconnect(ha);
    }
    if (hb != NULL) {
        hykex_disconnect(hb);
    }
    free(p);
    return rc;
}

/* ---- the draining application ---- */

/* One end of one stream: GET_KEY back to back, each call's start and latency kept. */
struct drainer {
    struct opener *o;
    double t0, end;
    size_t n, cap;
    double *at, *lat; /* start (s after t0) and latency (us) of call i */
    uint8_t *keys;    /* 32 bytes per call: the ends are compared afterwards */
    int ok;
};

static pthread_barrier_t drain_go;

static void *drain_end(void *arg)
{
    struct drainer *w = arg;

    pthread_barrier_wait(&drain_go);
    while (now() < w->t0) { /* every end starts at t0 (the plot's time 0) */
        usleep(1000);
    }
    w->ok = 1;
    while (now() < w->end) {
        uint8_t key[64];
        size_t len = sizeof(key);
        uint32_t st, idx = (uint32_t)w->n;
        double t0;
        if (w->n == w->cap) {
            size_t cap = w->cap ? 2 * w->cap : 4096;
            double *at = realloc(w->at, cap * sizeof(double));
            double *lat = at != NULL ? realloc(w->lat, cap * sizeof(double)) : NULL;
            uint8_t *keys = lat != NULL ? realloc(w->keys, cap * 32) : NULL;
            if (at != NULL) {
                w->at = at;
            }
            if (lat != NULL) {
                w->lat = lat;
            }
            if (keys == NULL) {
                w->ok = 0;
                break;
            }
            w->keys = keys;
            w->cap = cap;
        }
        t0 = now();
        if (hykex_get_key(w->o->h, w->o->ksid, &idx, key, &len, NULL, 0, &st) != 0 || st != 0 ||
            len != 32) {
            fprintf(stderr, "bench_api: GET_KEY %zu failed (status %u)\n", w->n, st);
            w->ok = 0;
            break;
        }
        w->at[w->n] = t0 - w->t0;
        w->lat[w->n] = (now() - t0) * 1e6;
        memcpy(w->keys + 32 * w->n, key, 32);
        w->n++;
    }
    return NULL;
}

/* Prints `"NAME": {p50, p99, p99.9, max}` of every call at one end (all its streams). */
static void print_tail(const char *name, struct drainer *w, uint64_t k, int end)
{
    size_t n = 0, j = 0;
    double *v;

    for (uint64_t i = 0; i < k; i++) {
        n += w[2 * i + (uint64_t)end].n;
    }
    if ((v = malloc((n ? n : 1) * sizeof(double))) == NULL) {
        return;
    }
    for (uint64_t i = 0; i < k; i++) {
        struct drainer *x = &w[2 * i + (uint64_t)end];
        memcpy(v + j, x->lat, x->n * sizeof(double));
        j += x->n;
    }
    qsort(v, n, sizeof(*v), cmp_double);
#define PCT(q) (n ? v[(size_t)((q) * (double)n) < n ? (size_t)((q) * (double)n) : n - 1] : 0.0)
    printf(
        ", \"%s\": {\"calls\": %zu, \"p50_us\": %.1f, \"p99_us\": %.1f, \"p999_us\": %.1f, "
        "\"max_us\": %.1f}",
        name, n, PCT(0.5), PCT(0.99), PCT(0.999), n ? v[n - 1] : 0.0);
#undef PCT
    free(v);
}

static int bench_drain(const char *A, const char *B, uint64_t k, double seconds,
                       const char *samples)
{
    struct opener *p = calloc(k, 2 * sizeof(*p));
    struct drainer *w = calloc(k, 2 * sizeof(*w));
    pthread_t *t = calloc(k, 2 * sizeof(*t));
    uint64_t opened = 0, taken_a = 0, mismatch = 0, ok = 0;
    double t0;
    int rc = 1;

    if (p == NULL || w == NULL || t == NULL) {
        goto out;
    }
    for (; opened < k; opened++) {
        char app[48];
        snprintf(app, sizeof(app), "dr%ld-%llu", (long)getpid(), (unsigned long long)opened);
        if (open_pair(&p[2 * opened], A, B, app, "hkdf", "ML-KEM-768,QKD") != 0) {
            fprintf(stderr, "bench_api: OPEN_CONNECT %llu failed\n", (unsigned long long)opened);
            close_pair(&p[2 * opened]);
            goto out;
        }
    }
    pthread_barrier_init(&drain_go, NULL, (unsigned)(2 * k + 1));
    t0 = now() + 0.05;
    for (uint64_t i = 0; i < 2 * k; i++) {
        w[i].o = &p[i];
        w[i].t0 = t0;
        w[i].end = t0 + seconds;
        pthread_create(&t[i], NULL, drain_end, &w[i]);
    }
    pthread_barrier_wait(&drain_go);
    for (uint64_t i = 0; i < 2 * k; i++) {
        pthread_join(t[i], NULL);
    }
    pthread_barrier_destroy(&drain_go);
    for (uint64_t i = 0; i < k; i++) {
        struct drainer *a = &w[2 * i], *b = &w[2 * i + 1];
        size_t both = a->n < b->n ? a->n : b->n;
        taken_a += a->n;
        ok += (uint64_t)(a->ok + b->ok);
        for (size_t j = 0; j < both; j++) {
            mismatch += memcmp(a->keys + 32 * j, b->keys + 32 * j, 32) != 0;
        }
    }
    printf(
        "{\"bench\": \"drain\", \"streams\": %llu, \"seconds\": %.2f, \"keys_per_s\": %.1f, "
        "\"mismatched_keys\": %llu, \"ends_ok\": %llu",
        (unsigned long long)k, seconds, (double)taken_a / seconds, (unsigned long long)mismatch,
        (unsigned long long)ok);
    print_tail("A", w, k, 0);
    print_tail("B", w, k, 1);
    printf("}\n");
    if (samples != NULL) {
        FILE *f = fopen(samples, "w");
        for (uint64_t i = 0; f != NULL && i < 2 * k; i++) {
            for (size_t j = 0; j < w[i].n; j++) {
                fprintf(f, "%.6f %.1f %c\n", w[i].at[j], w[i].lat[j], i % 2 ? 'B' : 'A');
            }
        }
        if (f != NULL) {
            fclose(f);
        }
    }
    rc = mismatch == 0 && ok == 2 * k ? 0 : 1;
out:
    for (uint64_t i = 0; i < opened; i++) {
        close_pair(&p[2 * i]);
    }
    for (uint64_t i = 0; w != NULL && i < 2 * k; i++) {
        free(w[i].at);
        free(w[i].lat);
        free(w[i].keys);
    }
    free(p);
    free(w);
    free(t);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc >= 6 && strcmp(argv[1], "drain") == 0) {
        return bench_drain(argv[2], argv[3], strtoull(argv[4], NULL, 10), strtod(argv[5], NULL),
                           argc >= 7 ? argv[6] : NULL);
    }
    if (argc >= 7 && strcmp(argv[1], "streams") == 0) {
        return bench_streams(argv[2], argv[3], strtoull(argv[4], NULL, 10), strtod(argv[5], NULL),
                             strtol(argv[6], NULL, 10));
    }
    if (argc >= 7 && strcmp(argv[1], "rate") == 0) {
        return bench_rate(argv[2], argv[3], strtoull(argv[4], NULL, 10), argv[5], argv[6]);
    }
    if (argc >= 5 && strcmp(argv[1], "latency") == 0) {
        return bench_latency(argv[2], argv[3], strtoull(argv[4], NULL, 10));
    }
    if (argc >= 5 && strcmp(argv[1], "echo") == 0) {
        return bench_echo(strtoull(argv[2], NULL, 10), strtoul(argv[3], NULL, 10),
                          strtoul(argv[4], NULL, 10));
    }
    if (argc >= 6 && strcmp(argv[1], "throughput") == 0) {
        return bench_throughput(argv[2], argv[3], (int)strtol(argv[4], NULL, 10),
                                strtod(argv[5], NULL));
    }
    if (argc >= 5 && strcmp(argv[1], "open") == 0) {
        return bench_open(argv[2], argv[3], strtoull(argv[4], NULL, 10),
                          argc >= 6 ? argv[5] : "ML-KEM-768,QKD");
    }
    fprintf(stderr, "usage: see the comment at the top of bench/bench_api.c\n");
    return 2;
}
