/* llhttp_spans.h — llhttp 8.1 as the reference tokeniser of a request head, for the tests that
 * hold http_guard.c's one-pass parser to it (tests/test_http_guard.c, tests/fuzz/fuzz_http.c):
 * the method, target and header spans it hands over, collected the way http.c's callbacks do.
 * Static functions only: each test binary gets its own copy. */
#ifndef KX_TESTS_LLHTTP_SPANS_H
#define KX_TESTS_LLHTTP_SPANS_H
#include <llhttp.h>
#include <stddef.h>
#include <string.h>
#include "http_guard.h"

typedef struct {
    const char *method, *target;
    size_t method_len, target_len;
    int n;
    struct {
        const char *name, *value;
        size_t name_len, value_len;
    } h[KX_HTTP_MAX_HEADERS + 1];
} ll_spans_t;

static void ll_add(const char **p, size_t *len, const char *at, size_t n)
{
    if (*p && *p + *len == at) *len += n;
    else *p = at, *len = n;
}
static int ll_method(llhttp_t *h, const char *at, size_t n)
{
    ll_spans_t *s = h->data;
    ll_add(&s->method, &s->method_len, at, n);
    return 0;
}
static int ll_url(llhttp_t *h, const char *at, size_t n)
{
    ll_spans_t *s = h->data;
    ll_add(&s->target, &s->target_len, at, n);
    return 0;
}
static int ll_field(llhttp_t *h, const char *at, size_t n)
{
    ll_spans_t *s = h->data;
    if (s->n >= KX_HTTP_MAX_HEADERS) return -1;
    ll_add(&s->h[s->n].name, &s->h[s->n].name_len, at, n);
    return 0;
}
static int ll_value(llhttp_t *h, const char *at, size_t n)
{
    ll_spans_t *s = h->data;
    ll_add(&s->h[s->n].value, &s->h[s->n].value_len, at, n);
    return 0;
}
static int ll_value_done(llhttp_t *h)
{
    ((ll_spans_t *)h->data)->n++;
    return 0;
}
static int ll_headers_done(llhttp_t *h)
{
    (void)h;
    return 1;
}

/* true when llhttp tokenises head[0..n) (OK, or paused at an upgrade, as http.c accepts). */
static bool ll_tokenise(const char *head, size_t n, ll_spans_t *s)
{
    llhttp_settings_t st;
    llhttp_settings_init(&st);
    st.on_method = ll_method;
    st.on_url = ll_url;
    st.on_header_field = ll_field;
    st.on_header_value = ll_value;
    st.on_header_value_complete = ll_value_done;
    st.on_headers_complete = ll_headers_done;
    llhttp_t p;
    memset(s, 0, sizeof *s);
    llhttp_init(&p, HTTP_REQUEST, &st);
    p.data = s;
    llhttp_errno_t e = llhttp_execute(&p, head, n);
    return (e == HPE_OK || e == HPE_PAUSED_UPGRADE) && s->method && s->target;
}

/* The parser's spans of an accepted head equal llhttp's (0 when they do, else which differs):
 * whenever llhttp tokenises it, and always for the methods http.c takes the spans for. */
static int spans_differ(const char *head, size_t n, const kx_head_parser_t *hp)
{
    ll_spans_t s;
    static const char *const common[] = { "GET", "PUT", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS" };
    bool is_common = false;
    for (size_t i = 0; i < sizeof common / sizeof *common; i++)
        if (hp->method_len == strlen(common[i]) && memcmp(head + hp->method, common[i], hp->method_len) == 0)
            is_common = true;
    if (!ll_tokenise(head, n, &s)) return is_common ? 1 : 0;
    if (s.method != head + hp->method || s.method_len != hp->method_len) return 2;
    if (s.target != head + hp->target || s.target_len != hp->target_len) return 3;
    if (s.n != (int)hp->checks.headers) return 4;
    for (int i = 0; i < s.n; i++) {
        const kx_head_field_t *f = &hp->fields[i];
        if (s.h[i].name != head + f->name || s.h[i].name_len != f->name_len) return 5;
        if (s.h[i].value_len != f->value_len) return 6;
        if (f->value_len && s.h[i].value != head + f->value) return 7;
    }
    return 0;
}

#endif
