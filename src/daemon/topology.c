/* The relay's map of the network and its paths (daemon/topology.h, docs/relay.md). */
#include "daemon/topology.h"

#include <stdlib.h>
#include <string.h>

static int cmp_id(const struct hx_uuid *a, const struct hx_uuid *b)
{
    return memcmp(a->b, b->b, sizeof(a->b));
}

/* The slot of id, or where it would go (*found false). */
static size_t slot_of(const struct hx_topo *t, const struct hx_uuid *id, bool *found)
{
    size_t lo = 0, hi = t->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cmp_id(&t->nodes[mid].id, id);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    *found = false;
    return lo;
}

hx_err hx_topo_init(struct hx_topo *t, const struct hx_uuid *self, size_t max)
{
    memset(t, 0, sizeof(*t));
    if (max == 0) {
        return HX_ERR_INVALID_ARG;
    }
    if ((t->nodes = calloc(max, sizeof(*t->nodes))) == NULL) {
        return HX_ERR_NOMEM;
    }
    t->self = *self;
    t->max = max;
    return HX_OK;
}

void hx_topo_wipe(struct hx_topo *t)
{
    free(t->nodes);
    memset(t, 0, sizeof(*t));
}

const struct hx_topo_node *hx_topo_find(const struct hx_topo *t, const struct hx_uuid *id)
{
    bool found;
    size_t i = slot_of(t, id, &found);

    return found ? &t->nodes[i] : NULL;
}

bool hx_topo_is_newer(const struct hx_topo *t, const struct hx_uuid *origin, uint64_t seq)
{
    const struct hx_topo_node *n = hx_topo_find(t, origin);

    return n == NULL || seq > n->seq;
}

hx_err hx_topo_accept(struct hx_topo *t, const struct hx_peer_topo *m, int64_t now_ms,
                      enum hx_topo_verdict *verdict)
{
    struct hx_topo_node *n;
    bool found;
    size_t i = slot_of(t, &m->origin, &found);

    *verdict = HX_TOPO_STALE;
    if (m->n_neigh > HX_TOPO_MAX_NEIGH) {
        return HX_ERR_INVALID_ARG;
    }
    if (found && m->seq <= t->nodes[i].seq) {
        return HX_OK;
    }
    if (!found) {
        if (t->n >= t->max) {
            return HX_ERR_NOSPACE;
        }
        memmove(&t->nodes[i + 1], &t->nodes[i], (t->n - i) * sizeof(*t->nodes));
        t->n++;
    }
    n = &t->nodes[i];
    memset(n, 0, sizeof(*n));
    n->id = m->origin;
    n->seq = m->seq;
    n->heard_ms = now_ms;
    n->expires_ms =
        hx_uuid_equal(&m->origin, &t->self) ? INT64_MAX : now_ms + (int64_t)m->lifetime_s * 1000;
    n->node_flags = m->node_flags;
    n->n_neigh = m->n_neigh;
    memcpy(n->neigh, m->neigh, m->n_neigh * sizeof(m->neigh[0]));
    *verdict = found ? HX_TOPO_REPLACED : HX_TOPO_NEW;
    return HX_OK;
}

size_t hx_topo_age(struct hx_topo *t, int64_t now_ms)
{
    size_t kept = 0, gone;

    for (size_t i = 0; i < t->n; i++) {
        if (t->nodes[i].expires_ms > now_ms || hx_uuid_equal(&t->nodes[i].id, &t->self)) {
            if (kept != i) {
                t->nodes[kept] = t->nodes[i];
            }
            kept++;
        }
    }
    gone = t->n - kept;
    t->n = kept;
    return gone;
}

static const struct hx_topo_neigh *neigh_of(const struct hx_topo_node *n, const struct hx_uuid *id)
{
    for (size_t i = 0; i < n->n_neigh; i++) {
        if (hx_uuid_equal(&n->neigh[i].node, id)) {
            return &n->neigh[i];
        }
    }
    return NULL;
}

static bool avoided(const struct hx_topo_policy *pol, const struct hx_uuid *id)
{
    for (size_t i = 0; pol != NULL && i < pol->n_avoid; i++) {
        if (hx_uuid_equal(&pol->avoid[i], id)) {
            return true;
        }
    }
    return false;
}

/* Per node of the map during the search. */
struct mark {
    int dist; /* -1: not reached */
    size_t prev;
    uint32_t best; /* bottleneck key estimate of the best path to it */
};

/* Is the chain from a (at its distance) lexicographically before the one from b? Compares the
 * nodes of both paths from the start: the tie-break that makes every node agree. */
static bool path_before(const struct hx_topo *t, const struct mark *mk, size_t a, size_t b)
{
    size_t pa[HX_TOPO_MAX_HOPS + 1], pb[HX_TOPO_MAX_HOPS + 1];
    int k = mk[a].dist;

    for (int j = k; j >= 0; j--) {
        pa[j] = a;
        pb[j] = b;
        a = mk[a].prev;
        b = mk[b].prev;
    }
    for (int j = 0; j <= k; j++) {
        int c = cmp_id(&t->nodes[pa[j]].id, &t->nodes[pb[j]].id);
        if (c != 0) {
            return c < 0;
        }
    }
    return false;
}

/* Breadth first from self, one hop count at a time, up to max_hops: a node's best path among
 * the shortest ones is settled once its whole layer has been offered. mk has t->n entries. */
static hx_err search(const struct hx_topo *t, const struct hx_topo_policy *pol, size_t src,
                     struct mark *mk)
{
    unsigned max_hops = pol != NULL && pol->max_hops > 0 && pol->max_hops < HX_TOPO_MAX_HOPS
                            ? pol->max_hops
                            : HX_TOPO_MAX_HOPS;
    size_t *frontier = malloc(t->n * sizeof(*frontier)), *next = malloc(t->n * sizeof(*next));
    size_t n_front = 0, n_next;
    bool found;

    if (frontier == NULL || next == NULL) {
        free(frontier);
        free(next);
        return HX_ERR_NOMEM;
    }
    for (size_t i = 0; i < t->n; i++) {
        mk[i].dist = -1;
    }
    mk[src] = (struct mark){.dist = 0, .prev = src, .best = UINT32_MAX};
    frontier[n_front++] = src;
    for (unsigned d = 1; d <= max_hops && n_front > 0; d++) {
        n_next = 0;
        for (size_t f = 0; f < n_front; f++) {
            const struct hx_topo_node *u = &t->nodes[frontier[f]];
            /* relays only: the path may not go on through an avoided node, or one that does
             * not relay for others */
            if (frontier[f] != src &&
                (avoided(pol, &u->id) || (u->node_flags & HX_TOPO_TRANSIT) == 0)) {
                continue;
            }
            for (size_t k = 0; k < u->n_neigh; k++) {
                const struct hx_topo_neigh *fw = &u->neigh[k], *bw;
                size_t v = slot_of(t, &fw->node, &found);
                uint32_t w, b;
                if (!found || (mk[v].dist >= 0 && mk[v].dist < (int)d) ||
                    (bw = neigh_of(&t->nodes[v], &u->id)) == NULL) {
                    continue; /* unknown, nearer, or the link is not confirmed by both ends */
                }
                if (pol != NULL && pol->need_qkd &&
                    ((fw->flags & HX_TOPO_QKD) == 0 || (bw->flags & HX_TOPO_QKD) == 0)) {
                    continue;
                }
                w = fw->key_avail < bw->key_avail ? fw->key_avail : bw->key_avail;
                b = mk[frontier[f]].best < w ? mk[frontier[f]].best : w;
                if (mk[v].dist < 0) {
                    mk[v] = (struct mark){.dist = (int)d, .prev = frontier[f], .best = b};
                    next[n_next++] = v;
                } else if (b > mk[v].best ||
                           (b == mk[v].best && path_before(t, mk, frontier[f], mk[v].prev))) {
                    mk[v].prev = frontier[f];
                    mk[v].best = b;
                }
            }
        }
        memcpy(frontier, next, n_next * sizeof(*next));
        n_front = n_next;
    }
    free(frontier);
    free(next);
    return HX_OK;
}

static void extract(const struct hx_topo *t, const struct mark *mk, size_t goal,
                    struct hx_topo_path *out)
{
    size_t cur = goal;

    memset(out, 0, sizeof(*out));
    out->hops = (size_t)mk[goal].dist;
    out->key_avail = out->hops == 0 ? 0 : mk[goal].best;
    for (size_t j = out->hops + 1; j-- > 0;) {
        out->node[j] = t->nodes[cur].id;
        cur = mk[cur].prev;
    }
}

hx_err hx_topo_paths(const struct hx_topo *t, const struct hx_topo_policy *pol,
                     struct hx_topo_path *paths, bool *reachable)
{
    struct mark *mk;
    size_t src;
    bool found;
    hx_err r;

    if (t->n == 0) {
        return HX_OK;
    }
    for (size_t i = 0; i < t->n; i++) {
        reachable[i] = false;
    }
    src = slot_of(t, &t->self, &found);
    if (!found) {
        return HX_OK;
    }
    if ((mk = malloc(t->n * sizeof(*mk))) == NULL) {
        return HX_ERR_NOMEM;
    }
    if ((r = search(t, pol, src, mk)) == HX_OK) {
        for (size_t i = 0; i < t->n; i++) {
            if ((reachable[i] = mk[i].dist >= 0)) {
                extract(t, mk, i, &paths[i]);
            }
        }
    }
    free(mk);
    return r;
}

hx_err hx_topo_path(const struct hx_topo *t, const struct hx_uuid *dst,
                    const struct hx_topo_policy *pol, struct hx_topo_path *out)
{
    struct mark *mk;
    size_t src, goal;
    bool found;
    hx_err r;

    memset(out, 0, sizeof(*out));
    src = slot_of(t, &t->self, &found);
    if (!found || t->n == 0) {
        return HX_ERR_NOT_FOUND;
    }
    goal = slot_of(t, dst, &found);
    if (!found) {
        return HX_ERR_NOT_FOUND;
    }
    if ((mk = malloc(t->n * sizeof(*mk))) == NULL) {
        return HX_ERR_NOMEM;
    }
    if ((r = search(t, pol, src, mk)) == HX_OK) {
        if (mk[goal].dist < 0) {
            r = HX_ERR_NOT_FOUND;
        } else {
            extract(t, mk, goal, out);
        }
    }
    free(mk);
    return r;
}

bool hx_topo_path_valid(const struct hx_topo *t, const struct hx_topo_path *path, bool need_qkd)
{
    for (size_t i = 0; i < path->hops; i++) {
        const struct hx_topo_node *a = hx_topo_find(t, &path->node[i]);
        const struct hx_topo_node *b = hx_topo_find(t, &path->node[i + 1]);
        const struct hx_topo_neigh *ab = a != NULL ? neigh_of(a, &path->node[i + 1]) : NULL;
        const struct hx_topo_neigh *ba = b != NULL ? neigh_of(b, &path->node[i]) : NULL;
        if (ab == NULL || ba == NULL ||
            (need_qkd && ((ab->flags & HX_TOPO_QKD) == 0 || (ba->flags & HX_TOPO_QKD) == 0))) {
            return false;
        }
    }
    return true;
}

hx_err hx_topo_keep_init(struct hx_topo_keep *k, size_t max)
{
    memset(k, 0, sizeof(*k));
    if (max == 0) {
        return HX_ERR_INVALID_ARG;
    }
    if ((k->a = calloc(max, sizeof(*k->a))) == NULL) {
        return HX_ERR_NOMEM;
    }
    k->max = max;
    return HX_OK;
}

void hx_topo_keep_wipe(struct hx_topo_keep *k)
{
    for (size_t i = 0; i < k->n; i++) {
        free(k->a[i].p);
    }
    free(k->a);
    memset(k, 0, sizeof(*k));
}

hx_err hx_topo_keep_put(struct hx_topo_keep *k, const struct hx_uuid *origin, uint64_t seq,
                        const uint8_t *p, size_t len)
{
    struct hx_topo_kept *a = NULL;
    uint8_t *copy;

    if (k->a == NULL) {
        return HX_ERR_STATE; /* not initialised, or wiped */
    }
    for (size_t i = 0; i < k->n && a == NULL; i++) {
        a = hx_uuid_equal(&k->a[i].origin, origin) ? &k->a[i] : NULL;
    }
    if (a == NULL && k->n >= k->max) {
        return HX_ERR_NOSPACE;
    }
    if ((copy = malloc(len > 0 ? len : 1)) == NULL) {
        return HX_ERR_NOMEM;
    }
    memcpy(copy, p, len);
    if (a == NULL) {
        a = &k->a[k->n++];
        *a = (struct hx_topo_kept){.origin = *origin};
    }
    free(a->p);
    a->p = copy;
    a->len = len;
    a->seq = seq;
    return HX_OK;
}

void hx_topo_keep_prune(struct hx_topo_keep *k, const struct hx_topo *t)
{
    size_t n = 0;

    for (size_t i = 0; i < k->n; i++) {
        const struct hx_topo_node *node = hx_topo_find(t, &k->a[i].origin);
        if (node != NULL && node->seq == k->a[i].seq) {
            k->a[n++] = k->a[i];
        } else {
            free(k->a[i].p);
        }
    }
    k->n = n;
}
