/* listen.h — listening sockets and accepting connections.
 *
 * Owns: the listener (socket, spare descriptor for EMFILE, accept loop) and the choice of
 * transport per listener. Callers: server.c starts and stops it (drain); supervisor.c binds
 * the workers' SO_REUSEPORT sockets (kx_listen_bind) that each worker adopts
 * (kx_listen_adopt); the protocol that serves new connections is named by the caller through
 * kx_listen_opts_t. kx_listen_stop closes this process's descriptor only: a socket a worker
 * inherited stays open, with its accept queue, in the supervisor and the worker replacing it.
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

/* KX_LISTEN_REUSEPORT: SO_REUSEPORT, so several sockets share the port and the kernel spreads
 * connections over the accept queues of those that listen. KX_LISTEN_DEFER: bind only; the
 * socket listens (and so receives connections) once kx_listen_adopt takes it. */
enum { KX_LISTEN_REUSEPORT = 1, KX_LISTEN_DEFER = 2 };
/* Binds host (WEB_SERVER_HOST) and port and listens (unless KX_LISTEN_DEFER); returns the
 * descriptor (non-blocking, close-on-exec) or a negative KX_E* with err filled. */
int kx_listen_bind(const char *host, int port, int flags, char *err, size_t errcap);
/* Accepts on fd (a socket from kx_listen_bind, maybe inherited) with the given protocol. */
int kx_listen_adopt(kx_server_t *s, int fd, const kx_listen_opts_t *opts, char *err, size_t errcap);
/* kx_listen_bind on WEB_SERVER_HOST:WEB_SERVER_PORT, then kx_listen_adopt. */
int kx_listen_start(kx_server_t *s, const kx_listen_opts_t *opts, char *err, size_t errcap);
/* The local port of a listening socket, or -1. */
int kx_listen_fd_port(int fd);
void kx_listen_stop(kx_server_t *s);
int kx_listen_port(const kx_server_t *s);

#endif
