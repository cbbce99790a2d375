/*
 * ETSI 014: the SAE pairs' key-ID keys in the durable store, and the reset of a pair's stream
 * at the peer (service.h, docs/etsi014.md "Restarts").
 */
#include <string.h>

#include "common/log.h"
#include "daemon/hxd.h"
#include "daemon/service.h"
#include "daemon/stream.h"
#include "store/store.h"

hx_err hxd_svc_014_secret_put(struct hxd *d, const struct hx_uuid *ksid, const uint8_t *k,
                              size_t len)
{
    struct hx_secret *s;
    hx_err e;

    if (d->store == NULL) {
        return HX_OK; /* memory only: nothing outlives the process anyway */
    }
    if ((e = hx_secret_from(k, len, &s)) != HX_OK) {
        return e;
    }
    e = hx_store_put_secret(d->store, ksid, s);
    hx_secret_free(s);
    if (e != HX_OK) {
        __atomic_fetch_add(&d->store_errors, 1, __ATOMIC_RELAXED);
    }
    return e;
}

bool hxd_svc_014_secret_get(struct hxd *d, const struct hx_uuid *ksid, uint8_t *out, size_t len)
{
    struct hx_secret *s = NULL;
    bool ok;

    if (d->store == NULL) {
        return false;
    }
    hx_err e = hx_store_get_secret(d->store, ksid, &s);
    if (e != HX_OK && e != HX_ERR_NOT_FOUND) {
        hx_warn_r(e, "ETSI 014: a pair's key-ID key in the store does not open",
                  HX_F_UUID("stream", ksid));
    }
    ok = e == HX_OK && hx_secret_len(s) == len;
    if (ok) {
        memcpy(out, hx_secret_data(s), len);
    }
    hx_secret_free(s);
    return ok;
}

bool hxd_svc_014_reset(struct hxd *d, const struct hx_uuid *peer, const struct hx_uuid *ksid)
{
    pthread_mutex_lock(&d->lock);
    bool held = hxd_stream_find(d, ksid) != NULL;
    pthread_mutex_unlock(&d->lock);
    if (held) {
        return false;
    }
    hx_ignore(hxd_send_close(d, peer, ksid));
    return true;
}
