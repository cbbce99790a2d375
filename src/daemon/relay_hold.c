/*
 * Messages held until their origin is on the map (daemon/relay_hold.h).
 */
#include "daemon/relay_hold.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

bool hx_hold_has(const struct hx_hold *h, const struct hx_uuid *origin)
{
    for (size_t i = 0; i < h->n; i++) {
        if (hx_uuid_equal(&h->item[i].origin, origin)) {
            return true;
        }
    }
    return false;
}

hx_err hx_hold_put(struct hx_hold *h, const struct hx_uuid *from, const struct hx_uuid *origin,
                   const uint8_t *p, size_t len, int64_t now_ms)
{
    struct hx_hold_item *it;

    if (len == 0 || h->n >= HX_HOLD_MAX || len > HX_HOLD_BYTES - h->bytes) {
        return HX_ERR_NOSPACE;
    }
    it = &h->item[h->n];
    if ((it->p = malloc(len)) == NULL) {
        return HX_ERR_NOMEM;
    }
    memcpy(it->p, p, len);
    it->len = len;
    it->from = *from;
    it->origin = *origin;
    it->until_ms = now_ms + HX_HOLD_MS;
    h->n++;
    h->bytes += len;
    return HX_OK;
}

bool hx_hold_next(struct hx_hold *h, bool (*known)(void *arg, const struct hx_uuid *origin),
                  void *arg, int64_t now_ms, struct hx_hold_item *out, bool *expired)
{
    for (size_t i = 0; i < h->n; i++) {
        struct hx_hold_item *it = &h->item[i];
        bool over = now_ms >= it->until_ms;
        if (!over && !known(arg, &it->origin)) {
            continue; /* its origin's later messages stay behind it: same origin, same answer */
        }
        *out = *it;
        *expired = over;
        h->bytes -= it->len;
        memmove(it, it + 1, (h->n - i - 1) * sizeof(*it));
        h->n--;
        memset(&h->item[h->n], 0, sizeof(h->item[h->n]));
        return true;
    }
    return false;
}

void hx_hold_item_free(struct hx_hold_item *it)
{
    if (it->p != NULL) {
        OPENSSL_cleanse(it->p, it->len);
        free(it->p);
    }
    it->p = NULL;
    it->len = 0;
}

void hx_hold_wipe(struct hx_hold *h)
{
    for (size_t i = 0; i < h->n; i++) {
        hx_hold_item_free(&h->item[i]);
    }
    memset(h, 0, sizeof(*h));
}
