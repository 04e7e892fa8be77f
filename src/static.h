/* static.h — serving files: the app's static directory and keryx's own pages.
 *
 * Owns: the GET/HEAD answer for one file once static_path.c resolved it beneath root_fd:
 * ETag / Last-Modified / 304, Content-Type, Cache-Control, small files from memory (gzip-able),
 * large ones streamed through the connection. Callers: dispatch.c.
 * Never: follows a path out of root_fd (static_path.c decides), or reads the whole of a large
 * file into memory. */
#ifndef KX_STATIC_H
#define KX_STATIC_H
#include "http.h"

/* path is raw from the request, relative to the static route; 403/400/404 envelopes are
 * answered here. */
void kx_static_serve(kx_conn_t *c, int root_fd, const char *path, size_t len, bool cache);

#endif
