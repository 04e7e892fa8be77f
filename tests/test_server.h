/* test_server.h — the process-wide server a cmocka test of the connection layers runs against:
 * the configuration's test defaults (NODE_ENV=test), a fresh event loop, kx_srv pointing at it.
 * Include after cmocka.h; call test_server_start() once, before the first test. */
#ifndef KX_TEST_SERVER_H
#define KX_TEST_SERVER_H
#include <string.h>
#include "config.h"
#include "server.h"

static kx_config_t cfg;
static kx_server_t srv;

static void test_server_start(void)
{
    char err[256];
    kx_config_defaults(&cfg, "test");
    assert_int_equal(kx_config_finish(&cfg, err, sizeof err), KX_OK);
    memset(&srv, 0, sizeof srv);
    srv.loop = ev_loop_new(EVFLAG_AUTO);
    srv.cfg = &cfg;
    kx_srv = &srv;
}

#endif
