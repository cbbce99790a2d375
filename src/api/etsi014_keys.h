/*
 * The ETSI 014 calls on the SAE pairs' hybrid key streams (the design: etsi014_map.h,
 * docs/etsi014.md; the pairs themselves: etsi014_pairs.h). The calls run on the 014 server's
 * event-loop threads; each takes e->lock only to read a pair's state, and calls the stream
 * service (which waits up to api.etsi014.timeout_ms for keys) without it.
 */
#ifndef HX_API_ETSI014_KEYS_H
#define HX_API_ETSI014_KEYS_H

#include <stddef.h>

#include "common/buf.h"
#include "common/err.h"
#include "proto/etsi014.h"

struct hxd;
struct hxd_014;

/*
 * The three calls: each returns the HTTP status and writes the reply body into w (nothing for
 * 401). caller is the client certificate's common name, other the SAE id of the URL.
 */
int hxd_014_status(struct hxd_014 *e, const char *caller, const char *slave, struct hx_writer *w);
int hxd_014_enc_keys(struct hxd_014 *e, const char *caller, const char *slave,
                     const struct hx_014_key_req *rq, struct hx_writer *w);
int hxd_014_dec_keys(struct hxd_014 *e, const char *caller, const char *master,
                     const struct hx_uuid *ids, size_t n, struct hx_writer *w);

/* A 400 body for a request that did not parse. */
int hxd_014_bad_request(const struct hx_014_problem *p, struct hx_writer *w);

#endif
