/* Shared by the files of the config module only: config.c (reading lines and files),
 * config_directives.c (the directive table and its handlers), config_finish.c (defaults and
 * completion) and config_values.c (value syntax). The value parsers are pure: they read a
 * NUL-terminated token and report whether it had the form; the caller words the message. */
#ifndef TIDE_CONFIG_INTERNAL_H
#define TIDE_CONFIG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config;
struct config_listener;
struct config_proxy_net;

#define CONFIG_MQTT_MAX_PAYLOAD 268435455u
#define CONFIG_MQTT_MAX_PACKET (CONFIG_MQTT_MAX_PAYLOAD + 5u)

/* The state of one file being read. Listener and sink context is per file, as in Mosquitto
 * (an included file starts again at the default listener). */
struct config_pstate {
    struct config *c;
    const char *file;
    int line;
    int level;        /* 0: the main file; include_dir is read only there */
    long cur;         /* index of the current listener; -1: Mosquitto's default listener */
    long sink;        /* index of the current sink; -1: none yet in this file */
    const char *name; /* the directive as written */
    const char *raw;  /* its value as written (handlers cut tokens out of their copy) */
    char *err;
    size_t errlen;
};

/* Where a directive writes (short names: this header is the module's own). */
enum config_scope { SC_NONE, SC_GLOBAL, SC_LISTENER, SC_SECURITY };
enum config_kind {
    K_BOOL,
    K_TRI,
    K_U8,
    K_U16,
    K_U32,
    K_SIZE32,
    K_SIZE64,
    K_DUR32,
    K_STR,
    K_FN,
    K_IGNORE,
    K_REFUSE
};

enum {
    D_PREFIX = 1 << 0,  /* name is a prefix (sink_opt_, bridge_...) */
    D_MAKEDEF = 1 << 1, /* before any listener, makes Mosquitto's default listener exist */
};

struct config_directive;
typedef int (*config_handler_fn)(struct config_pstate *st, const struct config_directive *d,
                                 char *v);

struct config_directive {
    const char *name;
    enum config_scope scope;
    enum config_kind kind;
    size_t off;  /* field in struct config (SC_GLOBAL, SC_SECURITY) */
    size_t loff; /* field in struct config_listener (SC_LISTENER, SC_SECURITY) */
    uint64_t lo, hi;
    const char *text; /* the expected form; for K_IGNORE, why it has no meaning here */
    config_handler_fn fn;
    unsigned flags;
};

/* The directive named name (exact, or by prefix for sink_opt_, bridge_...); NULL if unknown. */
const struct config_directive *config_lookup(const char *name);

/* Writes "file:line: <fmt>" into st's error buffer; returns TIDE_EINVAL. */
int config_fail(struct config_pstate *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* "file:line: NAME: expected FORM, got 'v'" (or "got nothing"); returns TIDE_EINVAL. */
int config_bad(struct config_pstate *st, const char *form, const char *v);
/* Appends "file:line: <fmt>" to config.warnings. */
void config_warn(struct config_pstate *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Cuts the next space-separated token off *v (NUL-terminating it in place); NULL at the end of
 * the line or at a '#' that starts a trailing comment. */
char *config_next_tok(char **v);
/* The only token of v, or NULL after writing "expected FORM" when there is none or more. */
char *config_one_tok(struct config_pstate *st, char *v, const char *form);

/* Fills l with a listener's defaults; copies file (may be NULL). */
void config_listener_init(struct config_listener *l, uint16_t port, const char *file, int line);
/* Frees what l owns (not l). */
void config_listener_fini(struct config_listener *l);

/* The include_dir handler (it reads files, so it lives with the reader in config.c). */
int config_include_dir(struct config_pstate *st, const struct config_directive *d, char *v);

/* A decimal integer in [lo, hi] (no sign, no suffix). */
bool config_parse_uint(const char *s, uint64_t lo, uint64_t hi, uint64_t *out);
/* A byte count: decimal digits with an optional K, M or G (powers of 1024, either case), at most
 * hi. */
bool config_parse_size(const char *s, uint64_t hi, uint64_t *out);
/* `true` / `false` (and Mosquitto's `1` / `0`). */
bool config_parse_bool(const char *s, bool *out);

/* tidemq's durations: digits followed by ms, s, min, h, d or w. Returns 0 and sets *out_ms, or
 * CONFIG_DUR_BAD, or CONFIG_DUR_MINUTE_M for a bare `m` (ambiguous: minute or Mosquitto's
 * month). */
enum { CONFIG_DUR_BAD = -1, CONFIG_DUR_MINUTE_M = -2 };
int config_parse_duration_ms(const char *s, uint64_t hi_ms, uint64_t *out_ms);

/* Mosquitto's persistent_client_expiration: digits followed by h, d, w, m (a month: 30 days)
 * or y (365 days); no seconds. Sets *out_s (at least one hour). */
bool config_parse_expiration(const char *s, uint64_t *out_s);

/* ADDRESS[/PREFIX], IPv4 or IPv6; no prefix means the single address. Host bits must be 0. */
bool config_parse_net(const char *s, struct config_proxy_net *out);

#endif
