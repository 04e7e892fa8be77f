/* log.c — levelled log lines (see log.h). Text format as Keryx:
 * "<ISO timestamp> [<level>] <message>"; JSON format: {"timestamp","level","message",<fields>,"pid"}. */
#include "log.h"
#include "buf.h"
#include <stdarg.h>
#include <stdio.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static kx_log_opts_t g = { KX_LOG_INFO, true, false, false, 1 };

static const char *names[] = { "trace", "debug", "info", "warn", "error", "fatal" };
static const char *colors[] = { "\x1b[90m", "\x1b[36m", "\x1b[32m", "\x1b[33m", "\x1b[31m", "\x1b[35m" };

void kx_log_configure(const kx_log_opts_t *opts)
{
    g = *opts;
}

bool kx_log_enabled(kx_log_level_t level)
{
    return level >= g.level && level < KX_LOG_OFF;
}

int kx_log_level_parse(const char *s, kx_log_level_t *out)
{
    /* Exact names first, by their first letter (all differ): Lua asks core.log_enabled("info")
     * several times on every request and message. */
    for (size_t i = 0; i < KX_ARRAY_LEN(names); i++) {
        if (s[0] == names[i][0] && strcmp(s + 1, names[i] + 1) == 0) {
            *out = (kx_log_level_t)i;
            return KX_OK;
        }
    }
    for (size_t i = 0; i < KX_ARRAY_LEN(names); i++) {
        if (strcasecmp(s, names[i]) == 0) {
            *out = (kx_log_level_t)i;
            return KX_OK;
        }
    }
    return KX_EINVAL;
}

static void iso_now(char *buf, size_t cap)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, cap - n, ".%03ldZ", (long)(tv.tv_usec / 1000));
}

bool kx_log_json(void)
{
    return g.json;
}

static void put_fields(kx_buf_t *b, const kx_log_field_t *f, size_t n)
{
    for (size_t i = 0; i < n; i++, f++) {
        kx_buf_printf(b, ",\"%s\":", f->key);
        if (f->type == KX_LOG_FIELD_STR) {
            kx_buf_puts(b, "\"");
            kx_buf_json_escape(b, f->str, f->len);
            kx_buf_puts(b, "\"");
        } else if (f->type == KX_LOG_FIELD_BOOL) {
            kx_buf_puts(b, f->num != 0 ? "true" : "false");
        } else if (f->num != f->num || f->num > 1e300 || f->num < -1e300) {
            kx_buf_puts(b, "null"); /* JSON has no NaN or infinity */
        } else {
            kx_buf_printf(b, "%.15g", f->num);
        }
    }
}

void kx_log_raw(kx_log_level_t level, const char *msg, size_t len)
{
    kx_log_fields(level, msg, len, NULL, 0);
}

void kx_log_fields(kx_log_level_t level, const char *msg, size_t len, const kx_log_field_t *fields, size_t nf)
{
    if (!kx_log_enabled(level)) return;
    char ts[40] = "";
    if (g.timestamps || g.json) iso_now(ts, sizeof ts);
    kx_buf_t b = KX_BUF_INIT;
    if (g.json) {
        kx_buf_puts(&b, "{\"timestamp\":\"");
        kx_buf_puts(&b, ts);
        kx_buf_printf(&b, "\",\"level\":\"%s\",\"message\":\"", names[level]);
        kx_buf_json_escape(&b, msg, len);
        kx_buf_puts(&b, "\"");
        put_fields(&b, fields, nf);
        kx_buf_printf(&b, ",\"pid\":%d}\n", (int)getpid());
    } else {
        if (g.timestamps) {
            kx_buf_puts(&b, ts);
            kx_buf_puts(&b, " ");
        }
        if (g.colorize) kx_buf_printf(&b, "%s[%s]\x1b[0m ", colors[level], names[level]);
        else kx_buf_printf(&b, "[%s] ", names[level]);
        kx_buf_append(&b, msg, len);
        kx_buf_puts(&b, "\n");
    }
    /* One write(2) per line so lines from concurrent processes never interleave. */
    ssize_t off = 0;
    while ((size_t)off < b.len) {
        ssize_t w = write(g.fd, b.data + off, b.len - (size_t)off);
        if (w <= 0) break;
        off += w;
    }
    kx_buf_free(&b);
}

void kx_log(kx_log_level_t level, const char *fmt, ...)
{
    if (!kx_log_enabled(level)) return;
    char line[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n >= sizeof line) n = sizeof line - 1;
    kx_log_raw(level, line, (size_t)n);
}
