/*
 * hykex-qkdsim: a QKD network simulator speaking ETSI 004 (JSON and binary) and ETSI 014.
 *
 *   hykex-qkdsim -c network.json [--ctl SOCKET] [--log-level LEVEL]
 *   hykex-qkdsim --check-config -c network.json
 *   hykex-qkdsim ctl SOCKET <pause|resume|drain LINK | corrupt|drop KME | pools>
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/secret.h"
#include "sim/model.h"
#include "sim/server.h"

static const char usage_text[] =
    "usage: hykex-qkdsim -c NETWORK.json [--ctl SOCKET] [--log-level error|warn|info|debug]\n"
    "       hykex-qkdsim --check-config -c NETWORK.json\n"
    "       hykex-qkdsim ctl SOCKET pause|resume|drain LINK\n"
    "       hykex-qkdsim ctl SOCKET corrupt|drop KME\n"
    "       hykex-qkdsim ctl SOCKET pools\n"
    "Simulates KMEs and the QKD links between them (docs/qkdsim.md). Serves ETSI 004 JSON,\n"
    "ETSI 004 binary (1.0.1 or 2.1.1 framing, optional TLS with client certificates) and ETSI\n"
    "014 (HTTPS, client certificates) per KME as NETWORK.json says. Prints 'ready' on stdout\n"
    "once every listener is up; SIGTERM or SIGINT stops it.\n";

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

int main(int argc, char **argv)
{
    const char *config = NULL, *ctl = NULL;
    bool check = false;
    struct sim_net net;
    struct sim_server *srv = NULL;
    char why[512];
    sigset_t sigs;
    int sig;

    if (argc >= 2 && strcmp(argv[1], "ctl") == 0) {
        if (argc < 4) {
            fputs(usage_text, stderr);
            return 2;
        }
        return sim_ctl_client(argv[2], argc - 3, argv + 3);
    }
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc) {
            config = argv[++i];
        } else if (strcmp(argv[i], "--ctl") == 0 && i + 1 < argc) {
            ctl = argv[++i];
        } else if (strcmp(argv[i], "--log-level") == 0 && i + 1 < argc) {
            enum hx_log_level lvl;
            if (hx_log_level_parse(argv[++i], &lvl) != HX_OK) {
                fprintf(stderr, "hykex-qkdsim: unknown log level '%s'\n", argv[i]);
                return 2;
            }
            hx_log_set_level(lvl);
        } else if (strcmp(argv[i], "--check-config") == 0) {
            check = true;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(usage_text, stdout);
            return 0;
        } else {
            fprintf(stderr, "hykex-qkdsim: unknown argument '%s'\n%s", argv[i], usage_text);
            return 2;
        }
    }
    if (config == NULL) {
        fputs(usage_text, stderr);
        return 2;
    }
    if (hx_secret_heap_init(1u << 20) != HX_OK) {
        hx_warn("no secure heap (mlock limit?); keys on the normal heap", HX_NOFIELDS);
    }
    if (sim_net_load(&net, config, why, sizeof(why)) != HX_OK) {
        fprintf(stderr, "hykex-qkdsim: %s\n", why);
        return 1;
    }
    if (check) {
        print_network(&net);
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
