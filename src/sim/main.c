/*
 * hykex-qkdsim: a QKD network simulator speaking ETSI 004 (JSON and binary) and ETSI 014.
 *
 *   hykex-qkdsim -c network.json [--ctl SOCKET] [--log-level LEVEL]
 *   hykex-qkdsim --check-config [--json] -c network.json
 *   hykex-qkdsim ctl SOCKET <pause|resume|drain LINK | corrupt|drop KME | pools>
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "common/cmdline.h"
#include "common/log.h"
#include "common/secret.h"
#include "sim/model.h"
#include "sim/server.h"

static const char usage_text[] =
    "usage: hykex-qkdsim -c NETWORK.json [--ctl SOCKET] [--log-level error|warn|info|debug]\n"
    "       hykex-qkdsim --check-config [--json] -c NETWORK.json\n"
    "       hykex-qkdsim ctl SOCKET pause|resume|drain LINK\n"
    "       hykex-qkdsim ctl SOCKET corrupt|drop KME\n"
    "       hykex-qkdsim ctl SOCKET pools\n"
    "  -c, --config FILE    the network: KMEs, links, listeners (docs/qkdsim.md)\n"
    "      --ctl SOCKET     listen for control commands on this Unix socket\n"
    "      --log-level L    error, warn, info or debug\n"
    "      --check-config   check NETWORK.json, print the network and exit\n"
    "  -j, --json           with --check-config: the network as JSON\n"
    "  -h, --help           this text\n"
    "      --version        the version\n"
    "Simulates KMEs and the QKD links between them (docs/qkdsim.md). Serves ETSI 004 JSON,\n"
    "ETSI 004 binary (1.0.1 or 2.1.1 framing, optional TLS with client certificates) and ETSI\n"
    "014 (HTTPS, client certificates) per KME as NETWORK.json says. Prints 'ready' on stdout\n"
    "once every listener is up; SIGTERM or SIGINT stops it.\n";

static struct json_object *listener_json(const struct sim_listener *l, bool binary)
{
    struct json_object *o = json_object_new_object();

    json_object_object_add(o, "host", json_object_new_string(l->host));
    json_object_object_add(o, "port", json_object_new_int(l->port));
    if (binary) {
        json_object_object_add(
            o, "framing",
            json_object_new_string(l->framing == SIM_FRAMING_101 ? "1.0.1" : "2.1.1"));
    }
    json_object_object_add(o, "tls", json_object_new_boolean(l->cert[0] != '\0'));
    return o;
}

/* --check-config --json: the network as the simulator understood it, for scripts. */
static void print_network_json(const struct sim_net *net)
{
    struct json_object *root = json_object_new_object(), *kmes = json_object_new_array(),
                       *links = json_object_new_array();

    for (size_t i = 0; i < net->n_kmes; i++) {
        const struct sim_kme *k = &net->kmes[i];
        struct json_object *o = json_object_new_object(), *saes = json_object_new_array();
        char node[HX_UUID_STR_LEN + 1], names[160];
        hx_uuid_format(&k->node, node);
        json_object_object_add(o, "id", json_object_new_string(k->id));
        json_object_object_add(o, "node", json_object_new_string(node));
        if (k->l004_json.enabled) {
            struct json_object *l = listener_json(&k->l004_json, false);
            json_object_object_add(l, "reference_compat",
                                   json_object_new_boolean(k->l004_json.reference_compat));
            json_object_object_add(o, "etsi004_json", l);
        }
        if (k->l004_bin.enabled) {
            json_object_object_add(o, "etsi004_binary", listener_json(&k->l004_bin, true));
        }
        if (k->l014.enabled) {
            json_object_object_add(o, "etsi014", listener_json(&k->l014, false));
        }
        for (size_t s = 0; s < k->saes.n; s++) {
            json_object_array_add(saes, json_object_new_string(k->saes.ids[s]));
        }
        json_object_object_add(o, "saes", saes);
        sim_profile_format(k->quirks, names, sizeof(names));
        json_object_object_add(o, "profile", json_object_new_string(k->quirks ? names : ""));
        json_object_array_add(kmes, o);
    }
    for (size_t i = 0; i < net->n_links; i++) {
        const struct sim_link *l = &net->links[i];
        struct json_object *o = json_object_new_object(), *ends = json_object_new_array();
        json_object_object_add(o, "id", json_object_new_string(l->id));
        json_object_array_add(ends, json_object_new_string(net->kmes[l->a].id));
        json_object_array_add(ends, json_object_new_string(net->kmes[l->b].id));
        json_object_object_add(o, "kmes", ends);
        json_object_object_add(o, "rate_bps", json_object_new_double(l->rate_bps));
        json_object_object_add(o, "capacity_bits", json_object_new_double(l->capacity_bits));
        json_object_array_add(links, o);
    }
    json_object_object_add(root, "kmes", kmes);
    json_object_object_add(root, "links", links);
    printf("%s\n",
           json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                    JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(root);
}

static void print_network(const struct sim_net *net)
{
    for (size_t i = 0; i < net->n_kmes; i++) {
        const struct sim_kme *k = &net->kmes[i];
        char node[HX_UUID_STR_LEN + 1];
        hx_uuid_format(&k->node, node);
        printf("kme %s node %s", k->id, node);
        if (k->l004_json.enabled) {
            printf(" 004-json %s:%u%s", k->l004_json.host, k->l004_json.port,
                   k->l004_json.reference_compat ? " (reference_compat)" : "");
        }
        if (k->l004_bin.enabled) {
            printf(" 004-binary %s:%u framing %s%s", k->l004_bin.host, k->l004_bin.port,
                   k->l004_bin.framing == SIM_FRAMING_101 ? "1.0.1" : "2.1.1",
                   k->l004_bin.cert[0] ? " tls" : "");
        }
        if (k->l014.enabled) {
            printf(" 014 https://%s:%u", k->l014.host, k->l014.port);
        }
        for (size_t s = 0; s < k->saes.n; s++) {
            printf("%s%s", s == 0 ? " saes " : ",", k->saes.ids[s]);
        }
        if (k->quirks != 0) {
            char names[160];
            sim_profile_format(k->quirks, names, sizeof(names));
            printf(" profile %s", names);
        }
        printf("\n");
    }
    for (size_t i = 0; i < net->n_links; i++) {
        const struct sim_link *l = &net->links[i];
        printf("link %s %s-%s rate %.0f bit/s capacity %.0f bits\n", l->id, net->kmes[l->a].id,
               net->kmes[l->b].id, l->rate_bps, l->capacity_bits);
    }
}

static const char ctl_usage[] =
    "usage: hykex-qkdsim ctl SOCKET pause|resume|drain LINK\n"
    "       hykex-qkdsim ctl SOCKET corrupt|drop KME\n"
    "       hykex-qkdsim ctl SOCKET pools\n"
    "Sends one command to a running simulator's control socket (--ctl) and prints its JSON\n"
    "reply: pause, resume or drain a link's key pool; corrupt the next key of a KME or drop its\n"
    "connections; pools prints every link's pool.\n"
    "  -h, --help           this text\n"
    "      --version        the version\n";

/* hykex-qkdsim ctl SOCKET VERB [ARG] */
static int ctl_main(int argc, char **argv)
{
    static const struct option options[] = {HX_CMDLINE_STD_OPTIONS};
    static const struct hx_cmdline cl = {"hykex-qkdsim ctl", ctl_usage, "h", options, 0};
    int ch, ex;

    hx_cmdline_begin();
    while ((ch = hx_cmdline_next(&cl, argc, argv, &ex)) != -1) {
        if (ch == -2) {
            return ex;
        }
    }
    if (argc - optind < 2 || argc - optind > 3) {
        return hx_cmdline_error(&cl, "give SOCKET and a command (%d operands given)",
                                argc - optind);
    }
    return sim_ctl_client(argv[optind], argc - optind - 1, argv + optind + 1);
}

/* The command line: -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, const char **config, const char **ctl, bool *check,
                      bool *json)
{
    enum { OPT_CTL = HX_OPT_FIRST, OPT_LOG_LEVEL, OPT_CHECK };
    static const struct option options[] = {{"config", required_argument, NULL, 'c'},
                                            {"ctl", required_argument, NULL, OPT_CTL},
                                            {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
                                            {"check-config", no_argument, NULL, OPT_CHECK},
                                            {"json", no_argument, NULL, 'j'},
                                            HX_CMDLINE_STD_OPTIONS};
    static const struct hx_cmdline cl = {"hykex-qkdsim", usage_text, "hc:j", options, 1};
    enum hx_log_level lvl;
    int ch, ex;

    hx_cmdline_begin();
    while ((ch = hx_cmdline_next(&cl, argc, argv, &ex)) != -1) {
        switch (ch) {
        case -2:
            return ex;
        case 'c':
            *config = optarg;
            break;
        case OPT_CTL:
            *ctl = optarg;
            break;
        case OPT_LOG_LEVEL:
            if (hx_log_level_parse(optarg, &lvl) != HX_OK) {
                return hx_cmdline_error(&cl, "unknown log level '%s' (error, warn, info, debug)",
                                        optarg);
            }
            hx_log_set_level(lvl);
            break;
        case OPT_CHECK:
            *check = true;
            break;
        case 'j':
            *json = true;
            break;
        }
    }
    if (optind < argc && strcmp(argv[optind], "ctl") == 0) {
        return ctl_main(argc - optind, argv + optind);
    }
    if (optind < argc) {
        return hx_cmdline_error(&cl, "unknown command '%s' (only ctl)", argv[optind]);
    }
    if (*config == NULL) {
        return hx_cmdline_error(&cl, "no network: give -c NETWORK.json");
    }
    if (*json && !*check) {
        return hx_cmdline_error(&cl, "--json goes with --check-config");
    }
    return -1;
}

int main(int argc, char **argv)
{
    const char *config = NULL, *ctl = NULL;
    bool check = false, json = false;
    struct sim_net net;
    struct sim_server *srv = NULL;
    char why[512];
    sigset_t sigs;
    int sig;

    int rc;

    if ((rc = parse_args(argc, argv, &config, &ctl, &check, &json)) >= 0) {
        return rc;
    }
    if (hx_secret_heap_init(1u << 20) != HX_OK) {
        hx_warn("no secure heap (mlock limit?); keys on the normal heap", HX_NOFIELDS);
    }
    if (sim_net_load(&net, config, why, sizeof(why)) != HX_OK) {
        fprintf(stderr, "hykex-qkdsim: %s\n", why);
        return 1;
    }
    if (check) {
        if (json) {
            print_network_json(&net);
        } else {
            print_network(&net);
        }
        sim_net_free(&net);
        return 0;
    }
    /* Signals go to this thread only (sigwait below); a closed socket is an error, not a kill. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (sim_server_start(&net, ctl, &srv, why, sizeof(why)) != HX_OK) {
        fprintf(stderr, "hykex-qkdsim: %s\n", why);
        sim_net_free(&net);
        return 1;
    }
    hx_info("simulator up", HX_F_U64("kmes", net.n_kmes) HX_F_U64("links", net.n_links));
    printf("ready\n");
    fflush(stdout);
    sigwait(&sigs, &sig);
    hx_info("stopping", HX_F_I64("signal", sig));
    sim_server_stop(srv);
    sim_net_free(&net);
    return 0;
}
