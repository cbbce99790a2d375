/*
 * The metrics endpoint (docs/metrics.md): Prometheus text format 0.0.4 on GET /metrics, served
 * by libmicrohttpd on metrics.host:metrics.port (off unless metrics.port is set; loopback only
 * unless metrics.allow_remote, the API's rule). Started and stopped by hykexd's main.
 */
#ifndef HX_DAEMON_METRICS_SERVER_H
#define HX_DAEMON_METRICS_SERVER_H

#include <stddef.h>

#include "common/err.h"

struct hxd;
struct hxd_metrics_server;

/* Binds and starts serving (*out NULL when metrics.port is 0); why says what failed. */
HX_MUST_CHECK hx_err hxd_metrics_server_start(struct hxd *d, struct hxd_metrics_server **out,
                                              char *why, size_t why_len);
/* Stops serving and frees s; NULL is a no-op. */
void hxd_metrics_server_stop(struct hxd_metrics_server *s);

/* The exposition text of d now (malloc'd, *len bytes), or NULL when out of memory. */
char *hxd_metrics_render(struct hxd *d, size_t *len);

#endif
