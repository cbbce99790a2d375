#include "common/config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/json.h"
#include "common/uuid.h"

#define CONFIG_FILE_MAX (1024 * 1024)

static const struct hx_json_limits config_limits = {
    .max_message = CONFIG_FILE_MAX,
    .max_depth = 8,
    .max_string = 4096,
    .max_members = 4096,
};

static hx_err set_int(const struct hx_cfg_opt *o, void *field, struct json_object *v, char *why,
                      size_t why_len)
{
    int64_t i;

    if (!json_object_is_type(v, json_type_int)) {
        snprintf(why, why_len, "expected an integer, got %s",
                 json_type_to_name(json_object_get_type(v)));
        return HX_ERR_BAD_TYPE;
    }
    errno = 0;
    i = json_object_get_int64(v);
    /* json-c saturates: a value at the int64 edge may have been larger. */
    if ((i == INT64_MAX && json_object_get_uint64(v) > (uint64_t)INT64_MAX) || i < o->min ||
        i > o->max) {
        snprintf(why, why_len, "%s is outside the range %lld..%lld", json_object_get_string(v),
                 (long long)o->min, (long long)o->max);
        return HX_ERR_BAD_VALUE;
    }
    switch (o->size) {
    case 1: {
        uint8_t x = (uint8_t)i;
        memcpy(field, &x, 1);
        break;
    }
    case 2: {
        uint16_t x = (uint16_t)i;
        memcpy(field, &x, 2);
        break;
    }
    case 4: {
        uint32_t x = (uint32_t)i;
        memcpy(field, &x, 4);
        break;
    }
    case 8:
        memcpy(field, &i, 8);
        break;
    default:
        snprintf(why, why_len, "bad table entry (integer of %zu bytes)", o->size);
        return HX_ERR_INTERNAL;
    }
    return HX_OK;
}

static int64_t get_int(const struct hx_cfg_opt *o, const void *field)
{
    switch (o->size) {
    case 1: {
        uint8_t x;
        memcpy(&x, field, 1);
        return o->min < 0 ? (int64_t)(int8_t)x : (int64_t)x;
    }
    case 2: {
        uint16_t x;
        memcpy(&x, field, 2);
        return o->min < 0 ? (int64_t)(int16_t)x : (int64_t)x;
    }
    case 4: {
        uint32_t x;
        memcpy(&x, field, 4);
        return o->min < 0 ? (int64_t)(int32_t)x : (int64_t)x;
    }
    default: {
        int64_t x;
        memcpy(&x, field, 8);
        return x;
    }
    }
}

static hx_err set_value(const struct hx_cfg_opt *o, void *target, struct json_object *v, char *why,
                        size_t why_len)
{
    void *field = (char *)target + o->offset;
    const char *s;
    size_t len;

    switch (o->type) {
    case HX_CFG_STR:
        if (!json_object_is_type(v, json_type_string)) {
            snprintf(why, why_len, "expected a string, got %s",
                     json_type_to_name(json_object_get_type(v)));
            return HX_ERR_BAD_TYPE;
        }
        s = json_object_get_string(v);
        len = (size_t)json_object_get_string_len(v);
        if (len >= o->size || memchr(s, 0, len) != NULL) {
            snprintf(why, why_len, "string longer than %zu bytes or with a NUL", o->size - 1);
            return HX_ERR_BAD_VALUE;
        }
        if ((int64_t)len < o->min) {
            snprintf(why, why_len, "must have at least %lld characters", (long long)o->min);
            return HX_ERR_BAD_VALUE;
        }
        memcpy(field, s, len + 1);
        return HX_OK;
    case HX_CFG_INT:
        return set_int(o, field, v, why, why_len);
    case HX_CFG_BOOL:
        if (!json_object_is_type(v, json_type_boolean)) {
            snprintf(why, why_len, "expected true or false, got %s",
                     json_type_to_name(json_object_get_type(v)));
            return HX_ERR_BAD_TYPE;
        }
        *(bool *)field = json_object_get_boolean(v) != 0;
        return HX_OK;
    case HX_CFG_ENUM:
        if (!json_object_is_type(v, json_type_string)) {
            snprintf(why, why_len, "expected a string, got %s",
                     json_type_to_name(json_object_get_type(v)));
            return HX_ERR_BAD_TYPE;
        }
        s = json_object_get_string(v);
        for (int i = 0; o->choices[i] != NULL; i++) {
            if (strcasecmp(s, o->choices[i]) == 0) {
                *(int *)field = i;
                return HX_OK;
            }
        }
        {
            size_t off = (size_t)snprintf(why, why_len, "'%s' is not one of", s);
            for (int i = 0; o->choices[i] != NULL && off < why_len; i++) {
                off += (size_t)snprintf(why + off, why_len - off, "%s%s", i ? ", " : " ",
                                        o->choices[i]);
            }
        }
        return HX_ERR_BAD_VALUE;
    case HX_CFG_UUID:
        if (!json_object_is_type(v, json_type_string)) {
            snprintf(why, why_len, "expected a UUID string, got %s",
                     json_type_to_name(json_object_get_type(v)));
            return HX_ERR_BAD_TYPE;
        }
        if (hx_uuid_parse(json_object_get_string(v), (size_t)json_object_get_string_len(v),
                          field) != HX_OK) {
            snprintf(why, why_len, "not a UUID of the form 8-4-4-4-12 hex digits");
            return HX_ERR_BAD_UUID;
        }
        return HX_OK;
    case HX_CFG_CUSTOM:
        if (o->free_fn != NULL) {
            o->free_fn(field);
        }
        return o->parse(v, field, why, why_len);
    }
    snprintf(why, why_len, "bad table entry");
    return HX_ERR_INTERNAL;
}

hx_err hx_cfg_defaults(const struct hx_cfg_opt *table, size_t n, void *target, char *why,
                       size_t why_len)
{
    char reason[256];

    for (size_t i = 0; i < n; i++) {
        const struct hx_cfg_opt *o = &table[i];
        struct json_object *v;
        hx_err e;

        if (o->def == NULL) {
            continue;
        }
        if ((v = json_tokener_parse(o->def)) == NULL && strcmp(o->def, "null") != 0) {
            snprintf(why, why_len, "built-in default of '%s' is not JSON", o->name);
            return HX_ERR_INTERNAL;
        }
        e = set_value(o, target, v, reason, sizeof(reason));
        json_object_put(v);
        if (e != HX_OK) {
            snprintf(why, why_len, "built-in default of '%s': %s", o->name, reason);
            return HX_ERR_INTERNAL;
        }
    }
    return HX_OK;
}

/* Is some option below the object at prefix (prefix + "." + ...)? */
static bool has_children(const struct hx_cfg_opt *table, size_t n, const char *prefix)
{
    size_t pl = strlen(prefix);

    for (size_t i = 0; i < n; i++) {
        if (strncmp(table[i].name, prefix, pl) == 0 && table[i].name[pl] == '.') {
            return true;
        }
    }
    return false;
}

static const struct hx_cfg_opt *find_opt(const struct hx_cfg_opt *table, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(table[i].name, name) == 0) {
            return &table[i];
        }
    }
    return NULL;
}

struct apply_ctx {
    const struct hx_cfg_opt *table;
    size_t n;
    void *target;
    const char *source;
    bool *seen;
    char *why;
    size_t why_len;
};

static hx_err apply_object(struct apply_ctx *c, struct json_object *obj, const char *prefix)
{
    char path[256], reason[256];
    hx_err e;

    json_object_object_foreach (obj, key, val) {
        const struct hx_cfg_opt *o;
        int w = prefix[0] != '\0' ? snprintf(path, sizeof(path), "%s.%s", prefix, key)
                                  : snprintf(path, sizeof(path), "%s", key);

        if (w < 0 || (size_t)w >= sizeof(path)) {
            snprintf(c->why, c->why_len, "%s: key '%.64s...': name too long", c->source, path);
            return HX_ERR_UNKNOWN_FIELD;
        }
        if ((o = find_opt(c->table, c->n, path)) != NULL) {
            if ((e = set_value(o, c->target, val, reason, sizeof(reason))) != HX_OK) {
                snprintf(c->why, c->why_len, "%s: key '%s': %s", c->source, path, reason);
                return e;
            }
            c->seen[o - c->table] = true;
            continue;
        }
        if (has_children(c->table, c->n, path)) {
            if (!json_object_is_type(val, json_type_object)) {
                snprintf(c->why, c->why_len, "%s: key '%s': expected an object, got %s", c->source,
                         path, json_type_to_name(json_object_get_type(val)));
                return HX_ERR_BAD_TYPE;
            }
            if ((e = apply_object(c, val, path)) != HX_OK) {
                return e;
            }
            continue;
        }
        snprintf(c->why, c->why_len, "%s: key '%s': unknown key", c->source, path);
        return HX_ERR_UNKNOWN_FIELD;
    }
    return HX_OK;
}

hx_err hx_cfg_apply(const struct hx_cfg_opt *table, size_t n, void *target,
                    struct json_object *root, const char *source, char *why, size_t why_len)
{
    struct apply_ctx c = {table, n, target, source, NULL, why, why_len};
    hx_err e;

    if (!json_object_is_type(root, json_type_object)) {
        snprintf(why, why_len, "%s: expected a JSON object at the top", source);
        return HX_ERR_BAD_TYPE;
    }
    if ((c.seen = calloc(n > 0 ? n : 1, sizeof(bool))) == NULL) {
        return HX_ERR_NOMEM;
    }
    if ((e = apply_object(&c, root, "")) != HX_OK) {
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if ((table[i].flags & HX_CFG_REQUIRED) && !c.seen[i]) {
            snprintf(why, why_len, "%s: key '%s': required key missing (%s)", source, table[i].name,
                     table[i].help != NULL ? table[i].help : "no default");
            e = HX_ERR_MISSING_FIELD;
            goto out;
        }
    }
    e = HX_OK;
out:
    free(c.seen);
    return e;
}

hx_err hx_read_file(const char *path, size_t max, char **out, size_t *out_len)
{
    struct stat st;
    char *buf = NULL;
    size_t got = 0;
    ssize_t r;
    int fd;
    hx_err e;

    *out = NULL;
    *out_len = 0;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0) {
        return errno == ENOENT ? HX_ERR_IO_NOT_FOUND : errno == EACCES ? HX_ERR_IO_PERM : HX_ERR_IO;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        e = HX_ERR_IO;
        goto out;
    }
    if ((uint64_t)st.st_size > max) {
        e = HX_ERR_TOO_LARGE;
        goto out;
    }
    /* Read up to max + 1 regardless of st_size: the file may grow while we read. */
    if ((buf = malloc(max + 1)) == NULL) {
        e = HX_ERR_NOMEM;
        goto out;
    }
    while (got <= max) {
        r = read(fd, buf + got, max + 1 - got);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            e = HX_ERR_IO;
            goto out;
        }
        if (r == 0) {
            break;
        }
        got += (size_t)r;
    }
    if (got > max) {
        e = HX_ERR_TOO_LARGE;
        goto out;
    }
    buf[got] = '\0';
    *out = buf;
    *out_len = got;
    buf = NULL;
    e = HX_OK;
out:
    free(buf);
    close(fd);
    return e;
}

hx_err hx_cfg_load_file(const struct hx_cfg_opt *table, size_t n, void *target, const char *path,
                        char *why, size_t why_len)
{
    struct json_object *root = NULL;
    char *text = NULL;
    char reason[200];
    size_t len;
    hx_err e;

    if ((e = hx_cfg_defaults(table, n, target, why, why_len)) != HX_OK) {
        return e;
    }
    if ((e = hx_read_file(path, CONFIG_FILE_MAX, &text, &len)) != HX_OK) {
        snprintf(why, why_len, "%s: cannot read: %s", path, hx_strerror(e));
        return e;
    }
    if ((e = hx_json_parse_object(text, len, &config_limits, &root, reason, sizeof(reason))) !=
        HX_OK) {
        snprintf(why, why_len, "%s: %s", path, reason);
        goto out;
    }
    e = hx_cfg_apply(table, n, target, root, path, why, why_len);
out:
    json_object_put(root);
    free(text);
    return e;
}

/* Finds or makes the object at a dotted prefix inside root. */
static struct json_object *object_at(struct json_object *root, const char *name, const char **leaf)
{
    struct json_object *cur = root, *next;
    const char *p = name, *dot;
    char part[128];

    while ((dot = strchr(p, '.')) != NULL) {
        size_t l = (size_t)(dot - p);
        if (l >= sizeof(part)) {
            return NULL;
        }
        memcpy(part, p, l);
        part[l] = '\0';
        if (!json_object_object_get_ex(cur, part, &next)) {
            next = json_object_new_object();
            if (next == NULL || json_object_object_add(cur, part, next) != 0) {
                return NULL;
            }
        }
        cur = next;
        p = dot + 1;
    }
    *leaf = p;
    return cur;
}

static struct json_object *value_json(const struct hx_cfg_opt *o, const void *target)
{
    const void *field = (const char *)target + o->offset;
    char text[HX_UUID_STR_LEN + 1];

    if (o->flags & HX_CFG_SECRET) {
        return json_object_new_string("<redacted>");
    }
    switch (o->type) {
    case HX_CFG_STR:
        return json_object_new_string(field);
    case HX_CFG_INT:
        return json_object_new_int64(get_int(o, field));
    case HX_CFG_BOOL:
        return json_object_new_boolean(*(const bool *)field);
    case HX_CFG_ENUM:
        return json_object_new_string(o->choices[*(const int *)field]);
    case HX_CFG_UUID:
        hx_uuid_format(field, text);
        return json_object_new_string(text);
    case HX_CFG_CUSTOM:
        return o->print != NULL ? o->print(field) : NULL;
    }
    return NULL;
}

struct json_object *hx_cfg_to_json(const struct hx_cfg_opt *table, size_t n, const void *target)
{
    struct json_object *root = json_object_new_object();

    if (root == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        const char *leaf;
        struct json_object *parent = object_at(root, table[i].name, &leaf);
        if (parent == NULL || json_object_object_add(parent, leaf, value_json(&table[i], target))) {
            json_object_put(root);
            return NULL;
        }
    }
    return root;
}

void hx_cfg_free(const struct hx_cfg_opt *table, size_t n, void *target)
{
    for (size_t i = 0; i < n; i++) {
        if (table[i].type == HX_CFG_CUSTOM && table[i].free_fn != NULL) {
            table[i].free_fn((char *)target + table[i].offset);
        }
    }
}
