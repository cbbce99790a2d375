/*
 * What the simulator's model files share and nothing else sees: the result setter and the
 * pools of the links (model.c), used by the ETSI 004 (model004.c), ETSI 014 (model014.c) and
 * control (control.c) parts. Call with net->lock held unless said otherwise.
 */
#ifndef HX_SIM_MODEL_PRIV_H
#define HX_SIM_MODEL_PRIV_H

#include "sim/model.h"

void sim_set_result(struct sim_result *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Brings a link's pool up to `now` (monotonic seconds) at its rate. */
void sim_refill(struct sim_link *l, double now);
/* Takes bits from the pool; false when there are not that many. */
bool sim_take_bits(struct sim_link *l, double bits);
/* The KME with this id, or SIZE_MAX. */
size_t sim_kme_find(const struct sim_net *net, const char *id);
/* The link between KMEs a and b, or SIZE_MAX. */
size_t sim_link_between(const struct sim_net *net, size_t a, size_t b);
/* The key at (salt, index) of a link: HKDF-SHA256(seed, salt, "hykex-qkdsim/1" || index). */
HX_MUST_CHECK hx_err sim_link_key(const struct sim_link *l, const uint8_t salt[16], uint32_t index,
                                  const char *kind, uint8_t *out, size_t len);

#endif
