/* Defaults (config_init), cleanup (config_fini), command-line overrides and config_finish: the
 * default listener, allow_anonymous's resolution and the checks that span directives. No I/O. */
#include "config.h"

#include "config_internal.h"
#include "util/alloc.h"
#include "util/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- listeners ---- */

void config_listener_init(struct config_listener *l, uint16_t port, const char *file, int line)
{
    memset(l, 0, sizeof(*l));
    l->port = port;
    l->protocol = CONFIG_PROTO_MQTT;
    l->max_qos = 2;
    l->max_topic_alias = 10;
    l->allow_anonymous = CONFIG_UNSET;
    l->file = file ? xstrdup(file) : NULL;
    l->line = line;
}

void config_listener_fini(struct config_listener *l)
{
    free(l->address);
    free(l->certfile);
    free(l->keyfile);
    free(l->cafile);
    free(l->capath);
    free(l->crlfile);
    free(l->tls_version);
    free(l->ciphers);
    free(l->ciphers_tls13);
    free(l->mount_point);
    free(l->password_file);
    free(l->acl_file);
    free(l->file);
}

/* ---- the public surface ---- */

void config_init(struct config *c)
{
    memset(c, 0, sizeof(*c));
    c->allow_anonymous = CONFIG_UNSET;
    c->persistence_fsync = CONFIG_FSYNC_EVERYSEC;
    c->max_inflight_messages = 20;
    c->max_queued_messages = 1000;
    c->max_keepalive = 65535;
    c->retain_available = true;
    c->allow_zero_length_clientid = true;
    c->sys_interval = 10;
    c->set_tcp_nodelay = true;
    c->log_dest = 2;
    c->log_types =
        CONFIG_LOG_ERROR | CONFIG_LOG_WARNING | CONFIG_LOG_NOTICE | CONFIG_LOG_INFORMATION;
    c->connection_messages = true;
    c->max_connect_packet_size = 64 * 1024;
    c->connect_timeout_ms = 10000;
    c->max_subscriptions_per_client = 1000;
    c->max_user_properties = 64;
    c->max_user_properties_bytes = 64 * 1024;
    c->max_retained_messages = 100000;
    c->max_retained_bytes = 256ULL * 1024 * 1024;
    c->slow_consumer_timeout_ms = 60000;
    c->rule_timeout_ms = 5;
    c->rule_memory_limit = 32ULL * 1024 * 1024;
    c->rule_cpu_share = 20;
    c->rule_max_payload = 1024 * 1024;
    c->rule_store_limit = 64ULL * 1024 * 1024;
    c->local_only = true;
}

void config_fini(struct config *c)
{
    size_t i, j;

    for (i = 0; i < c->listener_count; i++)
        config_listener_fini(&c->listeners[i]);
    free(c->listeners);
    if (c->default_listener) {
        config_listener_fini(c->default_listener);
        free(c->default_listener);
    }
    free(c->password_file);
    free(c->acl_file);
    free(c->persistence_location);
    free(c->log_file);
    free(c->proxy_trusted);
    free(c->rules_dir);
    free(c->admin_socket);
    free(c->http_address);
    for (i = 0; i < c->sink_count; i++) {
        struct config_sink *s = &c->sinks[i];
        for (j = 0; j < s->n; j++) {
            free(s->keys[j]);
            free(s->values[j]);
        }
        free(s->keys);
        free(s->values);
        free(s->name);
        free(s->type);
        free(s->file);
    }
    free(c->sinks);
    for (i = 0; i < c->plugin_count; i++)
        free(c->plugins[i]);
    free(c->plugins);
    free(c->path);
    for (i = 0; i < c->warning_count; i++)
        free(c->warnings[i]);
    free(c->warnings);
    memset(c, 0, sizeof(*c));
}

void config_override(struct config *c, int port, const char *rules_dir)
{
    if (rules_dir) {
        free(c->rules_dir);
        c->rules_dir = xstrdup(rules_dir);
        c->rules_dir_explicit = true;
    }
    if (port > 0 && port <= 65535) {
        if (!c->default_listener) {
            c->default_listener = xmalloc(sizeof(*c->default_listener));
            config_listener_init(c->default_listener, 1883, NULL, 0);
        }
        /* beside configured listeners, the command line's new listener stays local; a `port`
         * or `bind_address` line keeps its own address */
        if (!c->default_listener_needed && !c->local_only && !c->default_listener->address)
            c->default_listener->address = xstrdup("127.0.0.1");
        c->default_listener->port = (uint16_t)port;
        c->default_listener_needed = true;
    }
}

static int finish_fail(char *err, size_t errlen, const struct config_listener *l, const char *fmt,
                       ...) __attribute__((format(printf, 4, 5)));

/* "file:line: listener PORT: why", naming where the listener was declared. */
static int finish_fail(char *err, size_t errlen, const struct config_listener *l, const char *fmt,
                       ...)
{
    va_list ap;
    int n;

    if (!err || !errlen)
        return TIDE_EINVAL;
    if (l->file)
        n = snprintf(err, errlen, "%s:%d: listener %u: ", l->file, l->line, (unsigned)l->port);
    else
        n = snprintf(err, errlen, "listener %u: ", (unsigned)l->port);
    if (n >= 0 && (size_t)n < errlen) {
        va_start(ap, fmt);
        vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return TIDE_EINVAL;
}

static int check_listener(const struct config_listener *l, char *err, size_t errlen)
{
    const char *tls_only[] = {l->cafile,      l->capath,  l->crlfile,
                              l->tls_version, l->ciphers, l->ciphers_tls13};
    const char *tls_names[] = {"cafile",      "capath",  "crlfile",
                               "tls_version", "ciphers", "ciphers_tls1.3"};

    if (l->certfile && !l->keyfile)
        return finish_fail(err, errlen, l, "%s without keyfile", "certfile");
    if (l->keyfile && !l->certfile)
        return finish_fail(err, errlen, l, "%s without certfile", "keyfile");
    if (!l->certfile) {
        /* Mosquitto silently serves plain MQTT here; a half TLS setup is refused instead */
        for (size_t i = 0; i < sizeof(tls_only) / sizeof(tls_only[0]); i++) {
            if (tls_only[i])
                return finish_fail(err, errlen, l, "%s needs certfile and keyfile", tls_names[i]);
        }
        if (l->require_certificate)
            return finish_fail(err, errlen, l, "%s needs certfile and keyfile",
                               "require_certificate");
        if (l->use_identity_as_username)
            return finish_fail(err, errlen, l, "%s needs certfile and keyfile",
                               "use_identity_as_username");
    }
    if (l->tls_version && !strcmp(l->tls_version, "tlsv1.1"))
        /* Mosquitto still offers it; OpenSSL 3 allows TLS 1.1 only at security level 0 */
        return finish_fail(err, errlen, l, "%s",
                           "tls_version tlsv1.1: OpenSSL 3 does not allow TLS 1.1 at its "
                           "default security level; use tlsv1.2 or tlsv1.3");
    if (l->require_certificate && !l->cafile && !l->capath)
        return finish_fail(err, errlen, l, "%s needs cafile or capath", "require_certificate");
    if (l->use_identity_as_username && !l->require_certificate)
        return finish_fail(err, errlen, l, "%s needs require_certificate true",
                           "use_identity_as_username");
    return 0;
}

static bool same_addr(const char *a, const char *b)
{
    if (!a || !b)
        return !a && !b;
    return !strcmp(a, b);
}

int config_finish(struct config *c, char *err, size_t errlen)
{
    struct config_listener *l;
    size_t i, j;
    int rc;

    if (c->finished)
        return 0;
    if (c->default_listener && (c->default_listener_needed || c->listener_count == 0)) {
        /* Mosquitto's default listener exists: move it into listeners */
        c->listeners = xrealloc(c->listeners, (c->listener_count + 1) * sizeof(*c->listeners));
        c->listeners[c->listener_count++] = *c->default_listener;
        free(c->default_listener);
        c->default_listener = NULL;
        l = &c->listeners[c->listener_count - 1];
        if (c->local_only && !l->address)
            l->address = xstrdup("127.0.0.1");
    } else if (c->default_listener) {
        /* only settings that do not make it exist (Mosquitto drops them too) */
        config_listener_fini(c->default_listener);
        free(c->default_listener);
        c->default_listener = NULL;
    }
    if (c->listener_count == 0) {
        c->listeners = xmalloc(sizeof(*c->listeners));
        config_listener_init(&c->listeners[0], 1883, NULL, 0);
        c->listeners[0].address = xstrdup("127.0.0.1");
        c->listener_count = 1;
    }
    /* Mosquitto 2.x: with no listener configured, anonymous clients are allowed (local only);
     * otherwise allow_anonymous defaults to false. An explicit value is kept either way. */
    if (c->allow_anonymous == CONFIG_UNSET)
        c->allow_anonymous = c->local_only ? CONFIG_TRUE : CONFIG_FALSE;
    for (i = 0; i < c->listener_count; i++) {
        l = &c->listeners[i];
        if (l->allow_anonymous == CONFIG_UNSET)
            l->allow_anonymous = c->local_only ? CONFIG_TRUE : CONFIG_FALSE;
        rc = check_listener(l, err, errlen);
        if (rc)
            return rc;
        for (j = 0; j < i; j++) {
            const struct config_listener *o = &c->listeners[j];
            if (l->port && o->port == l->port && same_addr(o->address, l->address))
                return finish_fail(err, errlen, l, "%s",
                                   "the same port and address as "
                                   "another listener");
        }
    }
    c->finished = true;
    return 0;
}

bool config_allow_anonymous(const struct config *c, const struct config_listener *l)
{
    if (c->per_listener_settings && l)
        return l->allow_anonymous == CONFIG_TRUE;
    return c->allow_anonymous == CONFIG_TRUE;
}
