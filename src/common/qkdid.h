/*
 * A KME's key_stream_id (ETSI GS QKD 004): a UUID in the standard and in the binary dialects,
 * but any string from a JSON-dialect KME (the reference system's KME, and others, issue their
 * own). Kept as the KME gave it: printable ASCII without spaces, 1..HX_QKD_KSID_MAX bytes; an
 * empty id is none. hykex's own stream ids stay struct hx_uuid.
 */
#ifndef HX_COMMON_QKDID_H
#define HX_COMMON_QKDID_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"
#include "common/uuid.h"

#define HX_QKD_KSID_MAX 128

struct hx_qkd_ksid {
    char s[HX_QKD_KSID_MAX + 1]; /* NUL-terminated; "" = none */
};

/*
 * Takes exactly len bytes of s as an id: HX_ERR_TOO_LARGE past HX_QKD_KSID_MAX, HX_ERR_BAD_VALUE
 * for an empty one or a byte outside 0x21..0x7e (why names the fault and the position).
 */
HX_MUST_CHECK hx_err hx_qkd_ksid_set(struct hx_qkd_ksid *out, const char *s, size_t len, char *why,
                                     size_t why_len);
/* The lowercase text of u ("" for the nil UUID). */
void hx_qkd_ksid_from_uuid(struct hx_qkd_ksid *out, const struct hx_uuid *u);
/* true and *out when the id is a UUID in text form (either case). */
bool hx_qkd_ksid_to_uuid(const struct hx_qkd_ksid *id, struct hx_uuid *out);
/* true when the id is exactly the lowercase text of a UUID (what the 16-byte forms carry). */
bool hx_qkd_ksid_is_canonical_uuid(const struct hx_qkd_ksid *id);
bool hx_qkd_ksid_is_none(const struct hx_qkd_ksid *id);
/* Equal as text, or as UUIDs (a KME that answers in upper case names the same stream). */
bool hx_qkd_ksid_equal(const struct hx_qkd_ksid *a, const struct hx_qkd_ksid *b);

#endif
