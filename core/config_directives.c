/* The directive table: every Mosquitto 2.0 directive and every tidemq directive with its scope
 * (global, listener, or security: per listener with per_listener_settings) and its handler:
 * implemented, accepted-and-ignored with a warning, or refused. Handlers parse one line's value
 * into struct config; they do no I/O (include_dir's handler lives in config.c). */
#include "config.h"

#include "config_internal.h"
#include "util/alloc.h"
#include "util/err.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MQTT_MAX_PAYLOAD CONFIG_MQTT_MAX_PAYLOAD
#define MQTT_MAX_PACKET CONFIG_MQTT_MAX_PACKET

/* Mosquitto's default listener, made on first use; makedef: this setting makes it exist. */
static struct config_listener *default_listener(struct config_pstate *st, bool makedef)
{
    struct config *c = st->c;

    if (!c->default_listener) {
        c->default_listener = xmalloc(sizeof(*c->default_listener));
        config_listener_init(c->default_listener, 1883, st->file, st->line);
    }
    if (makedef)
        c->default_listener_needed = true;
    return c->default_listener;
}

static struct config_listener *cur_listener(struct config_pstate *st,
                                            const struct config_directive *d)
{
    if (st->cur >= 0)
        return &st->c->listeners[st->cur];
    return default_listener(st, d->flags & D_MAKEDEF);
}

/* ---- generic handlers ---- */

static void *target(struct config_pstate *st, const struct config_directive *d)
{
    switch (d->scope) {
    case SC_GLOBAL:
        return (char *)st->c + d->off;
    case SC_LISTENER:
        return (char *)cur_listener(st, d) + d->loff;
    case SC_SECURITY:
        st->c->security_seen = true;
        if (st->c->per_listener_settings)
            return (char *)cur_listener(st, d) + d->loff;
        return (char *)st->c + d->off;
    case SC_NONE:
        break;
    }
    return NULL;
}

static int set_string(struct config_pstate *st, char **field, const char *v, const char *form)
{
    if (!*v)
        return config_bad(st, form, v);
    if (*field)
        return config_fail(st, "%s: set twice", st->name);
    *field = xstrdup(v);
    return 0;
}

static int h_value(struct config_pstate *st, const struct config_directive *d, char *v)
{
    char form[128];
    const char *f = d->text;
    char *t;
    uint64_t n;
    bool b;
    int rc;

    if (d->kind == K_STR)
        return set_string(st, target(st, d), v, f ? f : "a path");
    if (!f) {
        switch (d->kind) {
        case K_BOOL:
        case K_TRI:
            f = "true or false";
            break;
        case K_SIZE32:
        case K_SIZE64:
            snprintf(form, sizeof(form),
                     "a size from %llu to %llu bytes, optionally with K, M or G (such as 64K)",
                     (unsigned long long)d->lo, (unsigned long long)d->hi);
            f = form;
            break;
        case K_DUR32:
            f = "a duration such as 500ms, 10s, 5min, 1h, 1d or 1w";
            break;
        default:
            snprintf(form, sizeof(form), "an integer from %llu to %llu", (unsigned long long)d->lo,
                     (unsigned long long)d->hi);
            f = form;
            break;
        }
    }
    t = config_one_tok(st, v, f);
    if (!t)
        return TIDE_EINVAL;
    switch (d->kind) {
    case K_BOOL:
    case K_TRI:
        if (!config_parse_bool(t, &b))
            return config_bad(st, f, t);
        if (d->kind == K_BOOL)
            *(bool *)target(st, d) = b;
        else
            *(enum config_tristate *)target(st, d) = b ? CONFIG_TRUE : CONFIG_FALSE;
        return 0;
    case K_SIZE32:
    case K_SIZE64:
        if (!config_parse_size(t, d->hi, &n) || n < d->lo)
            return config_bad(st, f, t);
        break;
    case K_DUR32:
        rc = config_parse_duration_ms(t, d->hi, &n);
        if (rc == CONFIG_DUR_MINUTE_M)
            return config_fail(
                st,
                "%s: '%s': a bare 'm' is ambiguous; write 'min' for minutes ('m' is a "
                "month only in Mosquitto's persistent_client_expiration)",
                st->name, t);
        if (rc < 0 || n < d->lo)
            return config_bad(st, f, t);
        break;
    default:
        if (!config_parse_uint(t, d->lo, d->hi, &n))
            return config_bad(st, f, t);
        break;
    }
    switch (d->kind) {
    case K_U8:
        *(uint8_t *)target(st, d) = (uint8_t)n;
        break;
    case K_U16:
        *(uint16_t *)target(st, d) = (uint16_t)n;
        break;
    case K_SIZE64:
        *(uint64_t *)target(st, d) = n;
        break;
    default:
        *(uint32_t *)target(st, d) = (uint32_t)n;
        break;
    }
    return 0;
}

/* ---- special handlers ---- */

/* "PORT [ADDRESS]" (listener, http_listener): sets *port and *addr (NULL when absent). */
static int port_and_address(struct config_pstate *st, char *v, uint64_t *port, char **addr)
{
    static const char form[] = "a port from 0 to 65535 and an optional address";
    char *p = config_next_tok(&v);
    *addr = config_next_tok(&v);
    if (!p || (*v && *v != '#'))
        return config_bad(st, form, st->raw);
    if (!config_parse_uint(p, 0, 65535, port))
        return config_bad(st, form, p);
    return 0;
}

static int h_listener(struct config_pstate *st, const struct config_directive *d, char *v)
{
    struct config *c = st->c;
    char *addr;
    uint64_t n;

    (void)d;
    int rc = port_and_address(st, v, &n, &addr);
    if (rc != 0)
        return rc;
    c->listeners = xrealloc(c->listeners, (c->listener_count + 1) * sizeof(*c->listeners));
    config_listener_init(&c->listeners[c->listener_count], (uint16_t)n, st->file, st->line);
    if (addr)
        c->listeners[c->listener_count].address = xstrdup(addr);
    st->cur = (long)c->listener_count++;
    c->local_only = false;
    return 0;
}

static int h_port(struct config_pstate *st, const struct config_directive *d, char *v)
{
    static const char form[] = "a port from 1 to 65535";
    char *t = config_one_tok(st, v, form);
    uint64_t n;

    (void)d;
    if (!t)
        return TIDE_EINVAL;
    if (!config_parse_uint(t, 1, 65535, &n))
        return config_bad(st, form, t);
    default_listener(st, true)->port = (uint16_t)n;
    st->c->local_only = false;
    return 0;
}

static int h_bind_address(struct config_pstate *st, const struct config_directive *d, char *v)
{
    (void)d;
    st->c->local_only = false;
    return set_string(st, &default_listener(st, true)->address, v, "an address");
}

static int h_protocol(struct config_pstate *st, const struct config_directive *d, char *v)
{
    static const char form[] = "mqtt or websockets";
    char *t = config_one_tok(st, v, form);

    if (!t)
        return TIDE_EINVAL;
    if (!strcmp(t, "mqtt"))
        cur_listener(st, d)->protocol = CONFIG_PROTO_MQTT;
    else if (!strcmp(t, "websockets"))
        cur_listener(st, d)->protocol = CONFIG_PROTO_WEBSOCKETS;
    else
        return config_bad(st, form, t);
    return 0;
}

static int h_tls_version(struct config_pstate *st, const struct config_directive *d, char *v)
{
    static const char form[] = "tlsv1.3, tlsv1.2 or tlsv1.1";
    char *t = config_one_tok(st, v, form);

    if (!t)
        return TIDE_EINVAL;
    if (strcmp(t, "tlsv1.3") && strcmp(t, "tlsv1.2") && strcmp(t, "tlsv1.1"))
        return config_bad(st, form, t);
    return set_string(st, &cur_listener(st, d)->tls_version, t, form);
}

static int h_mount_point(struct config_pstate *st, const struct config_directive *d, char *v)
{
    static const char form[] = "a topic prefix without + or #";

    if (!*v || strpbrk(v, "+#"))
        return config_bad(st, form, v);
    return set_string(st, &cur_listener(st, d)->mount_point, v, form);
}

/* Mosquitto's max_connections is per listener; before any listener tidemq reads it as its own
 * global limit (rather than creating Mosquitto's default listener on every interface). */
static int h_max_connections(struct config_pstate *st, const struct config_directive *d, char *v)
{
    static const char form[] = "-1 (unlimited) or an integer from 0 to 4294967295";
    char *t = config_one_tok(st, v, form);
    uint64_t n = 0;

    (void)d;
    if (!t)
        return TIDE_EINVAL;
    if (strcmp(t, "-1") && !config_parse_uint(t, 0, UINT32_MAX, &n))
        return config_bad(st, form, t);
    if (st->cur >= 0)
        st->c->listeners[st->cur].max_connections = (uint32_t)n;
    else
        st->c->max_connections = (uint32_t)n;
    return 0;
}

static int h_max_inflight(struct config_pstate *st, const struct config_directive *d, char *v)
{
    int rc = h_value(st, d, v);

    if (rc == 0 && st->c->max_inflight_messages == 65535)
        st->c->max_inflight_messages = 0; /* Mosquitto: 65535 means unlimited */
    return rc;
}

static int h_per_listener(struct config_pstate *st, const struct config_directive *d, char *v)
{
    int rc = h_value(st, d, v);

    if (rc == 0 && st->c->per_listener_settings && st->c->security_seen)
        return config_fail(st,
                           "per_listener_settings must come before allow_anonymous, password_file "
                           "and acl_file (as in Mosquitto)");
    return rc;
}

static int h_expiration(struct config_pstate *st, const struct config_directive *d, char *v)
{
    static const char form[] = "a number followed by h, d, w, m (month) or y, such as 14d";
    char *t = config_one_tok(st, v, form);

    (void)d;
    if (!t)
        return TIDE_EINVAL;
    if (!config_parse_expiration(t, &st->c->persistent_client_expiration_s))
        return config_bad(st, form, t);
    return 0;
}

static int h_fsync(struct config_pstate *st, const struct config_directive *d, char *v)
{
    static const char form[] = "always, everysec or no";
    char *t = config_one_tok(st, v, form);

    (void)d;
    if (!t)
        return TIDE_EINVAL;
    if (!strcmp(t, "always"))
        st->c->persistence_fsync = CONFIG_FSYNC_ALWAYS;
    else if (!strcmp(t, "everysec"))
        st->c->persistence_fsync = CONFIG_FSYNC_EVERYSEC;
    else if (!strcmp(t, "no"))
        st->c->persistence_fsync = CONFIG_FSYNC_NO;
    else
        return config_bad(st, form, t);
    return 0;
}

/* log_dest: the first line replaces the default (stderr); later lines add, as in Mosquitto. */
static int h_log_dest(struct config_pstate *st, const struct config_directive *d, char *v)
{
    static const char form[] = "stdout, stderr, file PATH or none";
    struct config *c = st->c;
    char *t = config_next_tok(&v);

    (void)d;
    if (!t)
        return config_bad(st, form, st->raw);
    if (!c->log_dest_set) {
        c->log_dest = 0;
        c->log_dest_set = true;
    }
    if (!strcmp(t, "file")) {
        if (c->log_file)
            return config_fail(st, "log_dest: only one log file may be configured");
        if (!*v)
            return config_bad(st, "file PATH", "file");
        c->log_file = xstrdup(v);
        c->log_dest |= 4;
        return 0;
    }
    if (*v && *v != '#')
        return config_bad(st, form, st->raw);
    if (!strcmp(t, "stdout"))
        c->log_dest |= 1;
    else if (!strcmp(t, "stderr"))
        c->log_dest |= 2;
    else if (!strcmp(t, "none"))
        c->log_dest = 0;
    else if (!strcmp(t, "syslog") || !strcmp(t, "topic") || !strcmp(t, "dlt"))
        config_warn(st, "log_dest %s is not supported by tidemq; ignored", t);
    else
        return config_bad(st, form, t);
    return 0;
}

static int h_log_type(struct config_pstate *st, const struct config_directive *d, char *v)
{
    static const struct {
        const char *name;
        unsigned bits;
    } types[] = {
        {"error", CONFIG_LOG_ERROR},
        {"warning", CONFIG_LOG_WARNING},
        {"notice", CONFIG_LOG_NOTICE},
        {"information", CONFIG_LOG_INFORMATION},
        {"debug", CONFIG_LOG_DEBUG},
        {"subscribe", CONFIG_LOG_SUBSCRIBE},
        {"unsubscribe", CONFIG_LOG_UNSUBSCRIBE},
        {"websockets", CONFIG_LOG_WEBSOCKETS},
        {"internal", 0},
        {"all", CONFIG_LOG_ALL},
    };
    static const char form[] = "debug, error, warning, notice, information, subscribe, "
                               "unsubscribe, websockets, none or all";
    struct config *c = st->c;
    char *t;
    int seen = 0;

    (void)d;
    if (!c->log_type_set) {
        c->log_types = 0;
        c->log_type_set = true;
    }
    while ((t = config_next_tok(&v))) {
        size_t i;
        seen++;
        if (!strcmp(t, "none")) {
            c->log_types = 0;
            continue;
        }
        for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
            if (!strcmp(t, types[i].name))
                break;
        }
        if (i == sizeof(types) / sizeof(types[0]))
            return config_bad(st, form, t);
        c->log_types |= types[i].bits;
    }
    if (!seen)
        return config_bad(st, form, st->raw);
    return 0;
}

static int h_proxy_trusted(struct config_pstate *st, const struct config_directive *d, char *v)
{
    static const char form[] = "an address or ADDRESS/PREFIX, such as 10.0.0.0/8";
    struct config *c = st->c;
    char *t;
    struct config_proxy_net net;
    int seen = 0;

    (void)d;
    while ((t = config_next_tok(&v))) {
        if (!config_parse_net(t, &net))
            return config_bad(st, form, t);
        c->proxy_trusted =
            xrealloc(c->proxy_trusted, (c->proxy_trusted_count + 1) * sizeof(*c->proxy_trusted));
        c->proxy_trusted[c->proxy_trusted_count++] = net;
        seen++;
    }
    if (!seen)
        return config_bad(st, form, st->raw);
    return 0;
}

static int h_http_listener(struct config_pstate *st, const struct config_directive *d, char *v)
{
    struct config *c = st->c;
    char *addr;
    uint64_t n;

    (void)d;
    int rc = port_and_address(st, v, &n, &addr);
    if (rc != 0)
        return rc;
    if (c->http_port || c->http_address)
        return config_fail(st, "http_listener: set twice");
    c->http_port = (uint16_t)n;
    if (addr)
        c->http_address = xstrdup(addr);
    return 0;
}

/* max_user_properties COUNT [BYTES]: the count and, optionally, the bytes per packet. */
static int h_user_props(struct config_pstate *st, const struct config_directive *d, char *v)
{
    static const char form[] = "a count from 0 to 65535 and an optional size (such as 64K)";
    char *count, *size;
    uint64_t n, bytes;

    (void)d;
    count = config_next_tok(&v);
    size = config_next_tok(&v);
    if (!count || (*v && *v != '#'))
        return config_bad(st, form, st->raw);
    if (!config_parse_uint(count, 0, 65535, &n))
        return config_bad(st, form, count);
    if (size) {
        if (!config_parse_size(size, MQTT_MAX_PACKET, &bytes))
            return config_bad(st, form, size);
        st->c->max_user_properties_bytes = (uint32_t)bytes;
    }
    st->c->max_user_properties = (uint32_t)n;
    return 0;
}

static int h_percent(struct config_pstate *st, const struct config_directive *d, char *v)
{
    static const char form[] = "a percentage from 1 to 100";
    char *t = config_one_tok(st, v, form);
    size_t len;
    uint64_t n;

    (void)d;
    if (!t)
        return TIDE_EINVAL;
    len = strlen(t);
    if (len > 1 && t[len - 1] == '%')
        t[len - 1] = '\0';
    if (!config_parse_uint(t, 1, 100, &n))
        return config_bad(st, form, t);
    st->c->rule_cpu_share = (uint32_t)n;
    return 0;
}

static int h_rules_dir(struct config_pstate *st, const struct config_directive *d, char *v)
{
    (void)d;
    st->c->rules_dir_explicit = true;
    return set_string(st, &st->c->rules_dir, v, "a directory");
}

static int h_plugin(struct config_pstate *st, const struct config_directive *d, char *v)
{
    struct config *c = st->c;

    (void)d;
    if (!*v)
        return config_bad(st, "the path of a sink plugin (.so)", v);
    c->plugins = xrealloc(c->plugins, (c->plugin_count + 1) * sizeof(*c->plugins));
    c->plugins[c->plugin_count++] = xstrdup(v);
    return 0;
}

static bool sink_name_ok(const char *s)
{
    for (; *s; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-' || *s == '.'))
            return false;
    }
    return true;
}

static int h_sink(struct config_pstate *st, const struct config_directive *d, char *v)
{
    static const char form[] = "NAME TYPE (such as: sink archive file)";
    struct config *c = st->c;
    struct config_sink *s;
    char *name, *type;

    (void)d;
    name = config_next_tok(&v);
    type = config_next_tok(&v);
    if (!name || !type || (*v && *v != '#'))
        return config_bad(st, form, st->raw);
    if (!sink_name_ok(name))
        return config_fail(
            st, "sink: name '%.100s' may hold only letters, digits, '_', '-' and '.'", name);
    for (size_t i = 0; i < c->sink_count; i++) {
        if (!strcmp(c->sinks[i].name, name))
            return config_fail(st, "sink: '%s' is already defined at %s:%d", name, c->sinks[i].file,
                               c->sinks[i].line);
    }
    c->sinks = xrealloc(c->sinks, (c->sink_count + 1) * sizeof(*c->sinks));
    s = &c->sinks[c->sink_count];
    memset(s, 0, sizeof(*s));
    s->name = xstrdup(name);
    s->type = xstrdup(type);
    s->file = xstrdup(st->file);
    s->line = st->line;
    st->sink = (long)c->sink_count++;
    return 0;
}

static int h_sink_opt(struct config_pstate *st, const struct config_directive *d, char *v)
{
    struct config_sink *s;
    const char *key = st->name + strlen(d->name);

    if (st->sink < 0)
        return config_fail(st, "%s: no `sink NAME TYPE` line before it in this file", st->name);
    if (!*key)
        return config_fail(st, "%s: expected sink_opt_KEY VALUE", st->name);
    if (!*v)
        return config_bad(st, "a value", v);
    s = &st->c->sinks[st->sink];
    for (size_t i = 0; i < s->n; i++) {
        if (!strcmp(s->keys[i], key))
            return config_fail(st, "%s: set twice for sink '%s'", st->name, s->name);
    }
    s->keys = xrealloc(s->keys, (s->n + 1) * sizeof(*s->keys));
    s->values = xrealloc(s->values, (s->n + 1) * sizeof(*s->values));
    s->keys[s->n] = xstrdup(key);
    s->values[s->n] = xstrdup(v);
    s->n++;
    return 0;
}

/* ---- the table ---- */

#define OFF(f) offsetof(struct config, f)
#define LOFF(f) offsetof(struct config_listener, f)
#define G(n, k, f, lo, hi, text)                                                                   \
    {                                                                                              \
        n, SC_GLOBAL, k, OFF(f), 0, lo, hi, text, h_value, 0                                       \
    }
#define L(n, k, f, lo, hi, text, fl)                                                               \
    {                                                                                              \
        n, SC_LISTENER, k, 0, LOFF(f), lo, hi, text, h_value, fl                                   \
    }
#define SEC(n, k, f, fl)                                                                           \
    {                                                                                              \
        n, SC_SECURITY, k, OFF(f), LOFF(f), 0, 0, NULL, h_value, fl                                \
    }
#define FN(n, scope, fn, fl)                                                                       \
    {                                                                                              \
        n, scope, K_FN, 0, 0, 0, 0, NULL, fn, fl                                                   \
    }
#define FNV(n, k, f, lo, hi, fn)                                                                   \
    {                                                                                              \
        n, SC_GLOBAL, k, OFF(f), 0, lo, hi, NULL, fn, 0                                            \
    }
#define IGNORE(n, why)                                                                             \
    {                                                                                              \
        n, SC_NONE, K_IGNORE, 0, 0, 0, 0, why, NULL, 0                                             \
    }
#define REFUSE(n, fl)                                                                              \
    {                                                                                              \
        n, SC_NONE, K_REFUSE, 0, 0, 0, 0, NULL, NULL, fl                                           \
    }

#define DAY_MS (86400000ULL)

static const struct config_directive directives[] = {
    /* Mosquitto 2.0, implemented: listeners */
    FN("listener", SC_GLOBAL, h_listener, 0),
    FN("port", SC_GLOBAL, h_port, 0),
    FN("bind_address", SC_GLOBAL, h_bind_address, 0),
    FN("protocol", SC_LISTENER, h_protocol, D_MAKEDEF),
    L("certfile", K_STR, certfile, 0, 0, NULL, D_MAKEDEF),
    L("keyfile", K_STR, keyfile, 0, 0, NULL, D_MAKEDEF),
    L("cafile", K_STR, cafile, 0, 0, NULL, D_MAKEDEF),
    L("capath", K_STR, capath, 0, 0, "a directory", D_MAKEDEF),
    L("crlfile", K_STR, crlfile, 0, 0, NULL, D_MAKEDEF),
    L("require_certificate", K_BOOL, require_certificate, 0, 0, NULL, D_MAKEDEF),
    L("use_identity_as_username", K_BOOL, use_identity_as_username, 0, 0, NULL, D_MAKEDEF),
    FN("tls_version", SC_LISTENER, h_tls_version, D_MAKEDEF),
    L("ciphers", K_STR, ciphers, 0, 0, "a cipher list", D_MAKEDEF),
    L("ciphers_tls1.3", K_STR, ciphers_tls13, 0, 0, "a cipher list", D_MAKEDEF),
    FN("max_connections", SC_LISTENER, h_max_connections, 0),
    L("max_qos", K_U8, max_qos, 0, 2, "0, 1 or 2", D_MAKEDEF),
    L("maximum_qos", K_U8, max_qos, 0, 2, "0, 1 or 2", D_MAKEDEF), /* Mosquitto's alias */
    L("max_topic_alias", K_U16, max_topic_alias, 0, 65535, NULL, 0),
    FN("mount_point", SC_LISTENER, h_mount_point, D_MAKEDEF),
    /* security: global, or per listener with per_listener_settings true */
    {"per_listener_settings", SC_GLOBAL, K_BOOL, OFF(per_listener_settings), 0, 0, 0, NULL,
     h_per_listener, 0},
    SEC("allow_anonymous", K_TRI, allow_anonymous, 0),
    SEC("password_file", K_STR, password_file, D_MAKEDEF),
    SEC("acl_file", K_STR, acl_file, 0),
    /* persistence */
    G("persistence", K_BOOL, persistence, 0, 0, NULL),
    G("retained_persistence", K_BOOL, persistence, 0, 0, NULL), /* Mosquitto's alias */
    G("persistence_location", K_STR, persistence_location, 0, 0, "a directory"),
    FN("persistent_client_expiration", SC_GLOBAL, h_expiration, 0),
    /* limits */
    FNV("max_inflight_messages", K_U32, max_inflight_messages, 0, 65535, h_max_inflight),
    G("max_queued_messages", K_U32, max_queued_messages, 0, UINT32_MAX, NULL),
    G("max_queued_bytes", K_SIZE64, max_queued_bytes, 0, UINT64_MAX, NULL),
    G("max_packet_size", K_SIZE32, max_packet_size, 20, MQTT_MAX_PACKET, NULL),
    G("max_keepalive", K_U16, max_keepalive, 10, 65535, NULL),
    G("retain_available", K_BOOL, retain_available, 0, 0, NULL),
    G("message_size_limit", K_SIZE32, message_size_limit, 0, MQTT_MAX_PAYLOAD, NULL),
    G("memory_limit", K_SIZE64, memory_limit, 0, UINT64_MAX, NULL),
    G("allow_zero_length_clientid", K_BOOL, allow_zero_length_clientid, 0, 0, NULL),
    G("sys_interval", K_U32, sys_interval, 0, 31536000, NULL),
    G("set_tcp_nodelay", K_BOOL, set_tcp_nodelay, 0, 0, NULL),
    /* logging and files */
    FN("log_dest", SC_GLOBAL, h_log_dest, 0),
    FN("log_type", SC_GLOBAL, h_log_type, 0),
    G("connection_messages", K_BOOL, connection_messages, 0, 0, NULL),
    FN("include_dir", SC_GLOBAL, config_include_dir, 0),

    /* Mosquitto 2.0, accepted and ignored with a warning: no meaning in tidemq */
    IGNORE("pid_file", "tidemq writes no pid file; let the service manager track it"),
    IGNORE("user", "tidemq does not change user; start it as the user it should run as"),
    IGNORE("autosave_interval", "tidemq appends to its log as it goes (see persistence_fsync)"),
    IGNORE("autosave_on_changes", "tidemq appends to its log as it goes (see persistence_fsync)"),
    IGNORE("persistence_file", "tidemq keeps its own files in persistence_location"),
    IGNORE("log_facility", "tidemq does not log to syslog"),
    IGNORE("log_timestamp", "tidemq's log lines always start with a timestamp"),
    IGNORE("log_timestamp_format", "tidemq's log lines always start with a timestamp"),
    IGNORE("websockets_log_level", "it configures libwebsockets, which tidemq does not use"),
    IGNORE("websockets_headers_size", "it configures libwebsockets, which tidemq does not use"),
    IGNORE("retry_interval", "Mosquitto itself no longer uses it"),
    IGNORE("allow_duplicate_messages", "Mosquitto 2.0 deprecates it and always allows them"),

    /* Mosquitto 2.0, refused */
    REFUSE("auth_plugin", 0),
    REFUSE("auth_plugin_deny_special_chars", 0),
    REFUSE("auth_opt_", D_PREFIX),
    REFUSE("plugin_opt_", D_PREFIX),
    REFUSE("auto_id_prefix", 0),
    REFUSE("bind_interface", 0),
    REFUSE("check_retain_source", 0),
    REFUSE("clientid_prefixes", 0),
    REFUSE("dhparamfile", 0),
    REFUSE("http_dir", 0),
    REFUSE("max_inflight_bytes", 0),
    REFUSE("psk_file", 0),
    REFUSE("psk_hint", 0),
    REFUSE("queue_qos0_messages", 0),
    REFUSE("socket_domain", 0),
    REFUSE("tls_engine", 0),
    REFUSE("tls_engine_kpass_sha1", 0),
    REFUSE("tls_keyform", 0),
    REFUSE("upgrade_outgoing_qos", 0),
    REFUSE("use_subject_as_username", 0),
    REFUSE("use_username_as_clientid", 0),
    /* bridges */
    REFUSE("connection", 0),
    REFUSE("address", 0),
    REFUSE("addresses", 0),
    REFUSE("bridge_", D_PREFIX),
    REFUSE("cleansession", 0),
    REFUSE("local_cleansession", 0),
    REFUSE("clientid", 0),
    REFUSE("remote_clientid", 0),
    REFUSE("local_clientid", 0),
    REFUSE("username", 0),
    REFUSE("remote_username", 0),
    REFUSE("local_username", 0),
    REFUSE("password", 0),
    REFUSE("remote_password", 0),
    REFUSE("local_password", 0),
    REFUSE("idle_timeout", 0),
    REFUSE("keepalive_interval", 0),
    REFUSE("notifications", 0),
    REFUSE("notifications_local_only", 0),
    REFUSE("notification_topic", 0),
    REFUSE("restart_timeout", 0),
    REFUSE("round_robin", 0),
    REFUSE("start_type", 0),
    REFUSE("threshold", 0),
    REFUSE("topic", 0),
    REFUSE("try_private", 0),

    /* tidemq's own */
    FN("rules_dir", SC_GLOBAL, h_rules_dir, 0),
    G("rule_timeout_ms", K_U32, rule_timeout_ms, 1, 60000, NULL),
    G("rule_memory_limit", K_SIZE64, rule_memory_limit, 65536, 1ULL << 40, NULL),
    FN("rule_cpu_share", SC_GLOBAL, h_percent, 0),
    G("rule_max_payload", K_SIZE64, rule_max_payload, 0, MQTT_MAX_PAYLOAD, NULL),
    G("rule_store_limit", K_SIZE64, rule_store_limit, 0, 1ULL << 40, NULL),
    FN("persistence_fsync", SC_GLOBAL, h_fsync, 0),
    FN("sink", SC_GLOBAL, h_sink, 0),
    FN("sink_opt_", SC_GLOBAL, h_sink_opt, D_PREFIX),
    FN("plugin", SC_GLOBAL, h_plugin, 0),
    G("admin_socket", K_STR, admin_socket, 0, 0, NULL),
    FN("http_listener", SC_GLOBAL, h_http_listener, 0),
    G("max_connect_packet_size", K_SIZE32, max_connect_packet_size, 64, MQTT_MAX_PACKET, NULL),
    G("connect_timeout", K_DUR32, connect_timeout_ms, 1, DAY_MS, NULL),
    G("max_subscriptions_per_client", K_U32, max_subscriptions_per_client, 0, UINT32_MAX, NULL),
    FN("max_user_properties", SC_GLOBAL, h_user_props, 0),
    G("max_user_properties_bytes", K_SIZE32, max_user_properties_bytes, 0, MQTT_MAX_PACKET, NULL),
    G("max_retained_messages", K_U32, max_retained_messages, 0, UINT32_MAX, NULL),
    G("max_retained_bytes", K_SIZE64, max_retained_bytes, 0, UINT64_MAX, NULL),
    G("max_sessions", K_U32, max_sessions, 0, UINT32_MAX, NULL),
    G("slow_consumer_timeout", K_DUR32, slow_consumer_timeout_ms, 1, 7 * DAY_MS, NULL),
    G("connect_rate_per_address", K_U32, connect_rate_per_address, 0, UINT32_MAX, NULL),
    L("proxy_protocol", K_BOOL, proxy_protocol, 0, 0, NULL, D_MAKEDEF),
    FN("proxy_trusted", SC_GLOBAL, h_proxy_trusted, 0),
};

const struct config_directive *config_lookup(const char *name)
{
    for (size_t i = 0; i < sizeof(directives) / sizeof(directives[0]); i++) {
        const struct config_directive *d = &directives[i];
        if (d->flags & D_PREFIX ? !strncmp(name, d->name, strlen(d->name)) : !strcmp(name, d->name))
            return d;
    }
    return NULL;
}
