/*
 * hykexd's durable store (persist.c, docs/store.md): opening it and restoring its streams at
 * start-up, writing and deleting stream rows. No-ops without a store (no state_dir); errors are
 * logged here. Batches and deliveries call the store (store/store.h) directly.
 *
 * A row is written in two steps so that no SQLite commit runs under d->lock: copy the stream
 * into a row with the lock held (hxd_persist_row), write it after releasing the lock
 * (hxd_persist_write).
 */
#ifndef HX_DAEMON_PERSIST_H
#define HX_DAEMON_PERSIST_H

#include <stddef.h>
#include <sys/types.h>

#include "common/err.h"
#include "common/uuid.h"
#include "store/store.h"

struct hxd;
struct hxd_stream;

/* Opens the store of cfg.state_dir and restores its streams; HX_OK without a state_dir. */
HX_MUST_CHECK hx_err hxd_persist_open(struct hxd *d, char *why, size_t why_len);
void hxd_persist_close(struct hxd *d);
/* Hands the state directory and the store's files to uid/gid (before dropping privileges). */
HX_MUST_CHECK hx_err hxd_persist_chown(struct hxd *d, uid_t uid, gid_t gid, char *why,
                                       size_t why_len);
/* The stream's row (d->lock held). */
void hxd_persist_row(const struct hxd_stream *s, struct hx_store_stream *row);
/* Writes a row copied by hxd_persist_row (no lock held: it commits). */
hx_err hxd_persist_write(struct hxd *d, const struct hx_store_stream *row);
/*
 * Writes a row copied by hxd_persist_row (no lock held), then looks again under d->lock: a
 * stream dropped meanwhile (its row deleted before ours was written) has its row deleted again,
 * a stream changed meanwhile has its newer row written, until the store holds what memory
 * holds. row is scratch afterwards.
 */
void hxd_persist_settle(struct hxd *d, struct hx_store_stream *row);
/* Both at once, for callers that still hold d->lock while writing. */
hx_err hxd_persist_stream(struct hxd *d, const struct hxd_stream *s);
/* Deletes a stream's row and keys (no lock held). */
void hxd_persist_drop(struct hxd *d, const struct hx_uuid *ksid);

#endif
