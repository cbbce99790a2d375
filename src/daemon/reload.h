/*
 * Day-2 operations (docs/hykexd.md "Reload"): the start-up checks of the node's certificate,
 * key and CA; the reload on SIGHUP (config, trusted peers and certificates re-read, checked
 * whole, swapped in, or refused with the node running on); certificate expiry warnings and the
 * re-establishment of links made with a replaced certificate. Main thread only.
 */
#ifndef HX_DAEMON_RELOAD_H
#define HX_DAEMON_RELOAD_H

#include "daemon/hxd.h"

/* The trusted peers as the link layer takes them (they live as long as this struct). */
struct hxd_peer_lists {
    struct hx_uuid ids[HXD_MAX_PEERS];
    const char *hosts[HXD_MAX_PEERS];
    uint16_t ports[HXD_MAX_PEERS];
};

/* The link layer's configuration from cfg (its strings point into cfg and pl). */
void hxd_links_config_of(const struct hxd *d, const struct hxd_config *cfg,
                         struct hxd_peer_lists *pl, struct hx_links_config *lc);
/* What cannot work refuses the start (and --check-config): one reason in why. */
HX_MUST_CHECK hx_err hxd_check_creds(const struct hxd_config *cfg, char *why, size_t why_len);
/* SIGHUP: d->config_path and d->peers_path re-read and applied, or refused (logged). Returns
 * whether the logging settings may have changed (the caller reopens the log file). */
bool hxd_reload(struct hxd *d);
/* Every tick: one link re-established when due; the expiry warnings once a day. */
void hxd_reload_tick(struct hxd *d);

#endif
