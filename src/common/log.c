#include "common/log.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* A line longer than this is cut and marked with truncated=true. */
#define LINE_MAX_BYTES 2048

/* The levels and the file change while threads log (hykexd's reload): relaxed atomics. */
static atomic_int current_level = HX_LOG_INFO;
static hx_log_sink_fn sink_fn;
static void *sink_arg;
static bool timestamps = true;
static atomic_int file_fd = -1; /* a second destination (logging_config.filename), its own level */
static atomic_int file_level = HX_LOG_INFO;

#define LOAD(v) atomic_load_explicit(&(v), memory_order_relaxed)

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void hx_log_set_level(enum hx_log_level level)
{
    atomic_store_explicit(&current_level, (int)level, memory_order_relaxed);
}

enum hx_log_level hx_log_get_level(void)
{
    return (enum hx_log_level)LOAD(current_level);
}

bool hx_log_enabled(enum hx_log_level level)
{
    return (int)level <= LOAD(current_level) ||
           (LOAD(file_fd) >= 0 && (int)level <= LOAD(file_level));
}

void hx_log_set_file(int fd, enum hx_log_level level)
{
    atomic_store_explicit(&file_level, (int)level, memory_order_relaxed);
    atomic_store_explicit(&file_fd, fd, memory_order_relaxed);
}

void hx_log_set_sink(hx_log_sink_fn fn, void *arg)
{
    sink_fn = fn;
    sink_arg = arg;
}

void hx_log_set_timestamps(bool on)
{
    timestamps = on;
}

const char *hx_log_level_name(enum hx_log_level level)
{
    if ((unsigned)level < sizeof(level_names) / sizeof(level_names[0])) {
        return level_names[level];
    }
    return "unknown";
}

hx_err hx_log_level_parse(const char *name, enum hx_log_level *out)
{
    static const struct {
        const char *name;
        enum hx_log_level level;
    } names[] = {
        {"error", HX_LOG_ERROR},  {"critical", HX_LOG_ERROR}, {"warn", HX_LOG_WARN},
        {"warning", HX_LOG_WARN}, {"info", HX_LOG_INFO},      {"debug", HX_LOG_DEBUG},
    };

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcasecmp(name, names[i].name) == 0) {
            *out = names[i].level;
            return HX_OK;
        }
    }
    return HX_ERR_BAD_VALUE;
}

/* A bounded line builder: appends until full, then remembers that it was cut. */
struct line {
    char buf[LINE_MAX_BYTES];
    size_t len;
    bool cut;
};

static void put_raw(struct line *l, const char *s, size_t n)
{
    size_t room = sizeof(l->buf) - 1 - l->len;

    if (n > room) {
        n = room;
        l->cut = true;
    }
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void put(struct line *l, const char *s)
{
    put_raw(l, s, strlen(s));
}

static bool needs_quotes(const char *s)
{
    if (*s == '\0') {
        return true;
    }
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c >= 0x7f) {
            return true;
        }
    }
    return false;
}

/* Writes a logfmt value: bare when safe, else quoted with \" \\ \n \t and \xNN escapes. */
static void put_value(struct line *l, const char *s)
{
    char esc[5];

    if (s == NULL) {
        put(l, "(null)");
        return;
    }
    if (!needs_quotes(s)) {
        put(l, s);
        return;
    }
    put(l, "\"");
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            put_raw(l, esc, 2);
        } else if (c == '\n') {
            put(l, "\\n");
        } else if (c == '\t') {
            put(l, "\\t");
        } else if (c < 0x20 || c >= 0x7f) {
            snprintf(esc, sizeof(esc), "\\x%02x", c);
            put(l, esc);
        } else {
            put_raw(l, (const char *)&c, 1);
        }
    }
    put(l, "\"");
}

static void put_field(struct line *l, const char *key, const char *value)
{
    put(l, " ");
    put(l, key);
    put(l, "=");
    put_value(l, value);
}

static void put_timestamp(struct line *l)
{
    struct timespec ts;
    struct tm tm;
    char buf[96];

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(buf, sizeof(buf), "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    put(l, buf);
}

void hx_log_emit(enum hx_log_level level, const char *func, int line_no, const char *msg,
                 const struct hx_log_field *fields)
{
    struct line l;
    char num[32];
    char uuid[HX_UUID_STR_LEN + 1];

    l.len = 0;
    l.cut = false;
    if (timestamps) {
        put_timestamp(&l);
    }
    put(&l, "level=");
    put(&l, hx_log_level_name(level));
    put_field(&l, "func", func);
    snprintf(num, sizeof(num), "%d", line_no);
    put_field(&l, "line", num);
    put_field(&l, "msg", msg);
    for (const struct hx_log_field *f = fields; f != NULL && f->type != HX_LF_END; f++) {
        switch (f->type) {
        case HX_LF_STR:
            put_field(&l, f->key, f->v.s);
            break;
        case HX_LF_I64:
            snprintf(num, sizeof(num), "%" PRId64, f->v.i);
            put_field(&l, f->key, num);
            break;
        case HX_LF_U64:
            snprintf(num, sizeof(num), "%" PRIu64, f->v.u);
            put_field(&l, f->key, num);
            break;
        case HX_LF_BOOL:
            put_field(&l, f->key, f->v.b ? "true" : "false");
            break;
        case HX_LF_UUID:
            if (f->v.uuid != NULL) {
                hx_uuid_format(f->v.uuid, uuid);
                put_field(&l, f->key, uuid);
            } else {
                put_field(&l, f->key, "null");
            }
            break;
        case HX_LF_ERR:
            put_field(&l, f->key, hx_strerror(f->v.err));
            break;
        case HX_LF_END:
            break;
        }
    }
    if (l.cut) {
        /* Make room for the marker by cutting the line shorter. */
        static const char marker[] = " truncated=true";
        l.len = sizeof(l.buf) - 1 - (sizeof(marker) - 1);
        memcpy(l.buf + l.len, marker, sizeof(marker) - 1);
        l.len += sizeof(marker) - 1;
    }
    l.buf[l.len] = '\0';
    if ((int)level <= LOAD(current_level) && sink_fn != NULL) {
        sink_fn(sink_arg, level, l.buf, l.len);
    }
    /* One write(2) per line: lines from several threads never interleave (the file is opened
     * O_APPEND, so neither do lines of several processes sharing it). */
    l.buf[l.len] = '\n';
    if ((int)level <= LOAD(current_level) && sink_fn == NULL &&
        write(STDERR_FILENO, l.buf, l.len + 1) < 0) {
        /* Nowhere left to report it. */
    }
    int fd = LOAD(file_fd);
    if (fd >= 0 && (int)level <= LOAD(file_level) && write(fd, l.buf, l.len + 1) < 0) {
        /* Nowhere left to report it. */
    }
}
