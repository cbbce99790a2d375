/*
 * What the stream service's files (service.c: GET_KEY, CLOSE; service_open.c: OPEN_CONNECT)
 * share and nothing else sees: the outcome setters and the waits (d->lock held).
 */
#ifndef HX_DAEMON_SERVICE_INT_H
#define HX_DAEMON_SERVICE_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "daemon/hxd.h"
#include "daemon/service.h"

void hxd_svc_succeed(struct hxd_svc_result *r);
void hxd_svc_fail(struct hxd_svc_result *r, enum hxd_svc_err e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A status chosen elsewhere: the KME's answer, the peer node's, a failed batch's. */
void hxd_svc_fail_upstream(struct hxd_svc_result *r, int status, const char *msg);
/* Waits on d->changed until deadline; false when it has passed (or the daemon stops). */
bool hxd_svc_wait_change(struct hxd *d, int64_t deadline);
/* A QoS timeout as a deadline: 0 is the node's default, capped by limits.max_timeout_ms. */
int64_t hxd_svc_deadline_of(const struct hxd *d, uint32_t timeout_ms);
/* hxd_svc_wait_change for an OPEN_CONNECT: also false once its client hung up (*gone set). */
bool hxd_svc_wait_open(struct hxd *d, const struct hxd_svc_open_req *req, int64_t deadline,
                       bool *gone);
/* A stream bound to another application's identity? */
bool hxd_svc_owned_by_another(const struct hxd_stream *s, const char *identity);

#endif
