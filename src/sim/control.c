/* The simulator's control socket commands (model.h sim_control). */
#include "sim/model_priv.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdarg.h>
#include <string.h>

#include <json-c/json.h>
#include <openssl/crypto.h>

static struct sim_link *find_link(struct sim_net *net, const char *id)
{
    for (size_t i = 0; i < net->n_links; i++) {
        if (strcmp(net->links[i].id, id) == 0) {
            return &net->links[i];
        }
    }
    return NULL;
}

static int ctl_reply(char **reply, bool ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int ctl_reply(char **reply, bool ok, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    struct json_object *o = json_object_new_object();

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_object_object_add(o, "ok", json_object_new_boolean(ok));
    json_object_object_add(o, ok ? "message" : "error", json_object_new_string(msg));
    *reply = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
    json_object_put(o);
    return ok ? 0 : 1;
}

int sim_control(struct sim_net *net, const char *line, char **reply)
{
    char verb[16], arg[SIM_MAX_ID + 1];
    int n = sscanf(line, "%15s %64s", verb, arg);
    struct sim_link *l;
    size_t k;
    int rc;

    if (n < 1) {
        return ctl_reply(reply, false, "empty command");
    }
    if (strcmp(verb, "pools") == 0) {
        struct json_object *o = json_object_new_object(), *arr = json_object_new_array();
        size_t streams = 0;
        pthread_mutex_lock(&net->lock);
        for (size_t i = 0; i < net->n_links; i++) {
            struct json_object *e = json_object_new_object();
            l = &net->links[i];
            sim_refill(l, hx_monotime());
            json_object_object_add(e, "id", json_object_new_string(l->id));
            json_object_object_add(e, "a", json_object_new_string(net->kmes[l->a].id));
            json_object_object_add(e, "b", json_object_new_string(net->kmes[l->b].id));
            json_object_object_add(e, "level_bits", json_object_new_int64((int64_t)l->level_bits));
            json_object_object_add(e, "capacity_bits",
                                   json_object_new_int64((int64_t)l->capacity_bits));
            json_object_object_add(e, "rate_bps", json_object_new_int64((int64_t)l->rate_bps));
            json_object_object_add(e, "paused", json_object_new_boolean(l->paused));
            json_object_object_add(e, "keys_delivered",
                                   json_object_new_int64((int64_t)l->keys_delivered));
            json_object_array_add(arr, e);
        }
        for (size_t i = 0; i < SIM_MAX_STREAMS; i++) {
            streams += net->streams[i].used;
        }
        json_object_object_add(o, "ok", json_object_new_boolean(true));
        json_object_object_add(o, "links", arr);
        json_object_object_add(o, "streams", json_object_new_int64((int64_t)streams));
        json_object_object_add(o, "keys014_waiting",
                               json_object_new_int64((int64_t)net->n_keys014));
        pthread_mutex_unlock(&net->lock);
        *reply = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        json_object_put(o);
        return 0;
    }
    if (n < 2) {
        return ctl_reply(reply, false, "'%s' needs an argument (a link or KME id)", verb);
    }
    pthread_mutex_lock(&net->lock);
    if (strcmp(verb, "pause") == 0 || strcmp(verb, "resume") == 0 || strcmp(verb, "drain") == 0) {
        if ((l = find_link(net, arg)) == NULL) {
            rc = ctl_reply(reply, false, "no link '%s'", arg);
        } else {
            sim_refill(l, hx_monotime());
            if (verb[0] == 'd') {
                l->level_bits = 0;
                if (l->rate_bps <= 0) {
                    l->paused = true; /* an unbounded pool can only be emptied by stopping it */
                }
            } else {
                l->paused = verb[0] == 'p';
            }
            rc = ctl_reply(reply, true, "link %s: %s", arg, verb);
        }
    } else if (strcmp(verb, "corrupt") == 0 || strcmp(verb, "drop") == 0) {
        if ((k = sim_kme_find(net, arg)) == SIZE_MAX) {
            rc = ctl_reply(reply, false, "no KME '%s'", arg);
        } else if (verb[0] == 'c') {
            net->kmes[k].corrupt_next = true;
            rc = ctl_reply(reply, true, "KME %s: the next key it delivers is corrupted", arg);
        } else {
            net->kmes[k].drop_epoch = ++net->epoch;
            rc = ctl_reply(reply, true, "KME %s: connections dropped", arg);
            pthread_mutex_unlock(&net->lock);
            if (net->drop_connections != NULL) {
                net->drop_connections(k);
            }
            return rc;
        }
    } else {
        rc = ctl_reply(reply, false,
                       "unknown command '%s' (pause, resume, drain LINK; corrupt, drop KME; pools)",
                       verb);
    }
    pthread_mutex_unlock(&net->lock);
    return rc;
}
