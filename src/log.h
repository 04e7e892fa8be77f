/* log.h — levelled log lines.
 *
 * Owns: the log sink (stdout for the server, stderr for the CLI), level filter, format.
 * Callers: everyone. Cost per line: kx_log formats into a 4 KiB stack buffer (longer lines
 * are cut); kx_log_raw then builds the final line (timestamp, level, JSON escaping) in one heap
 * kx_buf_t, freed before it returns, and writes it with a single write(2) so lines from
 * concurrent processes never interleave. A line below the level allocates nothing.
 * Never: blocks on anything but that write(2). Phrases logged here are stable: tests grep them. */
#ifndef KX_LOG_H
#define KX_LOG_H
#include <stdbool.h>
#include <stddef.h>

typedef enum {
    KX_LOG_TRACE,
    KX_LOG_DEBUG,
    KX_LOG_INFO,
    KX_LOG_WARN,
    KX_LOG_ERROR,
    KX_LOG_FATAL,
    KX_LOG_OFF
} kx_log_level_t;

typedef struct {
    kx_log_level_t level;
    bool timestamps;
    bool colorize;
    bool json;
    int fd; /* 1 or 2 */
} kx_log_opts_t;

void kx_log_configure(const kx_log_opts_t *opts);
bool kx_log_enabled(kx_log_level_t level);
/* Parses "trace".."fatal" (any case). Returns 0 or KX_EINVAL. */
int kx_log_level_parse(const char *s, kx_log_level_t *out);
void kx_log(kx_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Logs a message that is already formatted (may contain '%'). */
void kx_log_raw(kx_log_level_t level, const char *msg, size_t len);

/* One structured field of a JSON log line: a string (str, len), a number or a boolean. */
typedef enum { KX_LOG_FIELD_STR, KX_LOG_FIELD_NUM, KX_LOG_FIELD_BOOL } kx_log_field_type_t;
typedef struct {
    const char *key; /* emitted as given: [A-Za-z0-9_] names only (callers check) */
    kx_log_field_type_t type;
    const char *str;
    size_t len;
    double num; /* KX_LOG_FIELD_NUM; KX_LOG_FIELD_BOOL: 0 false, else true */
} kx_log_field_t;

/* kx_log_raw with fields: in the JSON format they sit beside "message" ({"timestamp","level",
 * "message",<fields>,"pid"}); the text format writes the message alone, byte for byte as
 * kx_log_raw. */
void kx_log_fields(kx_log_level_t level, const char *msg, size_t len, const kx_log_field_t *fields, size_t n);
/* True when lines are written as JSON (LOG_FORMAT=json or LOG_JSON=true). */
bool kx_log_json(void);

#define kx_log_info(...) kx_log(KX_LOG_INFO, __VA_ARGS__)
#define kx_log_warn(...) kx_log(KX_LOG_WARN, __VA_ARGS__)
#define kx_log_error(...) kx_log(KX_LOG_ERROR, __VA_ARGS__)
#define kx_log_debug(...) kx_log(KX_LOG_DEBUG, __VA_ARGS__)

#endif
