/* listen.h — listening sockets and accepting connections.
 *
 * Owns: the listener (socket, spare descriptor for EMFILE, accept loop) and the choice of
 * transport per listener. Callers: main.c starts and stops it (drain); the protocol that
 * serves new connections is named by the caller through kx_listen_opts_t.
 * Never: reads a request or writes a response itself: a connection over the cap is handed to
 * opts.refuse, every other one to opts.on_open, which installs its protocol handler. */
#ifndef KX_LISTEN_H
#define KX_LISTEN_H
#include "conn.h"

typedef struct {
    const kx_transport_t *transport;
    /* Installs the protocol on a freshly accepted connection. */
    void (*on_open)(kx_conn_t *c);
    /* Answers (best effort, never blocking) and closes a socket refused at the cap. */
    void (*refuse)(int fd);
} kx_listen_opts_t;

int kx_listen_start(kx_server_t *s, const kx_listen_opts_t *opts, char *err, size_t errcap);
void kx_listen_stop(kx_server_t *s);
int kx_listen_port(const kx_server_t *s);

#endif
