/*
 * hykex-qkdsim's servers: ETSI 004 JSON and binary listeners (plain TCP or TLS with client
 * certificates), the ETSI 014 HTTPS listener (libmicrohttpd) and the control socket.
 *
 * One thread per connection: OPEN_CONNECT blocks until the peer application arrives, which a
 * thread and the model's condition variable express directly. The simulator's load is small
 * (a handful of daemons and test clients); connections are capped (SIM_MAX_CONNECTIONS) so a
 * flood cannot exhaust threads. hykexd is threads too (poll on its peer links), no event loop.
 */
#ifndef HX_SIM_SERVER_H
#define HX_SIM_SERVER_H

#include "common/err.h"
#include "sim/model.h"

#define SIM_MAX_CONNECTIONS 512

struct sim_server;

HX_MUST_CHECK hx_err sim_server_start(struct sim_net *net, const char *ctl_path,
                                      struct sim_server **out, char *why, size_t why_len);
/* Closes listeners and connections, waits (bounded) for their threads. */
void sim_server_stop(struct sim_server *srv);

/* ETSI 014 (server014.c). */
struct sim_014;
HX_MUST_CHECK hx_err sim_014_start(struct sim_net *net, size_t kme, struct sim_014 **out, char *why,
                                   size_t why_len);
void sim_014_stop(struct sim_014 *s);

/* Sends one control command to a running simulator; prints the reply. Exit status. */
int sim_ctl_client(const char *path, int argc, char **argv);

#endif
