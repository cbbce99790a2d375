/*
 * Logging: one logfmt line per event on stderr (or a sink set by tests), with level, function
 * and line (OpenSSH error_fr, Redis serverLog).
 *
 *   hx_info("peer connected", HX_F_STR("peer", name) HX_F_U64("streams", n));
 *   hx_error_r(r, "batch rejected", HX_F_UUID("stream", &id) HX_F_U64("index", i));
 *   hx_debug("tick", HX_NOFIELDS);
 *
 * Fields are typed, and there is deliberately no field type for bytes or for a struct
 * hx_secret: there is no way to log a key. String values are escaped; bytes outside printable
 * ASCII are written as \xNN escapes so a log line is always one line.
 */
#ifndef HX_COMMON_LOG_H
#define HX_COMMON_LOG_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "common/uuid.h"

enum hx_log_level {
    HX_LOG_ERROR = 0,
    HX_LOG_WARN,
    HX_LOG_INFO,
    HX_LOG_DEBUG,
};

enum hx_log_field_type {
    HX_LF_END = 0,
    HX_LF_STR,
    HX_LF_I64,
    HX_LF_U64,
    HX_LF_BOOL,
    HX_LF_UUID,
    HX_LF_ERR,
};

struct hx_log_field {
    const char *key;
    enum hx_log_field_type type;
    union {
        const char *s;
        int64_t i;
        uint64_t u;
        bool b;
        const struct hx_uuid *uuid;
        hx_err err;
    } v;
};

/* Each field macro ends with a comma: list them one after another without separators. */
#define HX_F_STR(k, x) {.key = (k), .type = HX_LF_STR, .v.s = (x)},
#define HX_F_I64(k, x) {.key = (k), .type = HX_LF_I64, .v.i = (int64_t)(x)},
#define HX_F_U64(k, x) {.key = (k), .type = HX_LF_U64, .v.u = (uint64_t)(x)},
#define HX_F_BOOL(k, x) {.key = (k), .type = HX_LF_BOOL, .v.b = (x)},
#define HX_F_UUID(k, x) {.key = (k), .type = HX_LF_UUID, .v.uuid = (x)},
#define HX_F_ERR(x) {.key = "err", .type = HX_LF_ERR, .v.err = (x)},
#define HX_NOFIELDS

/* Variadic only so that the braces and commas of the field list pass through unharmed. */
#define HX_LOG_AT(level, msg, ...)                                           \
    do {                                                                     \
        if (hx_log_enabled(level)) {                                         \
            const struct hx_log_field hx_log_fields_[] = {                   \
                __VA_ARGS__{.key = NULL, .type = HX_LF_END}};                \
            hx_log_emit((level), __func__, __LINE__, (msg), hx_log_fields_); \
        }                                                                    \
    } while (0)

#define hx_error(msg, ...) HX_LOG_AT(HX_LOG_ERROR, msg, __VA_ARGS__)
#define hx_warn(msg, ...) HX_LOG_AT(HX_LOG_WARN, msg, __VA_ARGS__)
#define hx_info(msg, ...) HX_LOG_AT(HX_LOG_INFO, msg, __VA_ARGS__)
#define hx_debug(msg, ...) HX_LOG_AT(HX_LOG_DEBUG, msg, __VA_ARGS__)
/* The same, with err=<hx_strerror(r)> appended. */
#define hx_error_r(r, msg, ...) HX_LOG_AT(HX_LOG_ERROR, msg, __VA_ARGS__ HX_F_ERR(r))
#define hx_warn_r(r, msg, ...) HX_LOG_AT(HX_LOG_WARN, msg, __VA_ARGS__ HX_F_ERR(r))

/* Receives each finished line (without the newline). */
typedef void (*hx_log_sink_fn)(void *arg, enum hx_log_level level, const char *line, size_t len);

void hx_log_set_level(enum hx_log_level level);
enum hx_log_level hx_log_get_level(void);
bool hx_log_enabled(enum hx_log_level level);
/* NULL sink: back to stderr. */
void hx_log_set_sink(hx_log_sink_fn fn, void *arg);
/*
 * Also writes every line at or below level to fd (a log file opened O_APPEND; -1: none). The
 * console level (hx_log_set_level) and the file's are independent. Replace the file under a
 * running process with dup2 onto the same fd (hykexd does on SIGHUP).
 */
void hx_log_set_file(int fd, enum hx_log_level level);
/* Omit the timestamp (stable output for tests and for journald, which stamps lines itself). */
void hx_log_set_timestamps(bool on);
/* "error", "warn", "info", "debug" (also "warning", and the reference's "critical"). */
HX_MUST_CHECK hx_err hx_log_level_parse(const char *name, enum hx_log_level *out);
const char *hx_log_level_name(enum hx_log_level level);

void hx_log_emit(enum hx_log_level level, const char *func, int line, const char *msg,
                 const struct hx_log_field *fields);

#endif
