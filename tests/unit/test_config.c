/* Unit tests for the config module (core/config*.c): every implemented directive, every error
 * class with its exact file:line, include_dir, units, Debian's default mosquitto.conf and
 * per_listener_settings scope. A case is {name, config text, extra files, expectation}: the text
 * is written to main.conf in a fresh directory under a mkdtemp root, loaded and finished; the
 * expectation is "key=value; key~substring; ..." over the resulting struct config, or
 * "!error substring". {D} in any text is the case's directory, {F} its main.conf.
 * Exits non-zero on any failure. */
#include "config.h"

#include <arpa/inet.h>
#include <ftw.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "unit.h"
#include "util/err.h"

static char root[256];

/* ---- reading fields by name ---- */

enum ftype { F_BOOL, F_TRI, F_U8, F_U16, F_U32, F_U64, F_STR, F_ENUM, F_UINT };

struct field {
    const char *key;
    enum ftype type;
    size_t off;
};

#define CF(f, t)                                                                                   \
    {                                                                                              \
#f, t, offsetof(struct config, f)                                                          \
    }
#define LF(f, t)                                                                                   \
    {                                                                                              \
#f, t, offsetof(struct config_listener, f)                                                 \
    }

static const struct field config_fields[] = {
    CF(per_listener_settings, F_BOOL),
    CF(allow_anonymous, F_TRI),
    CF(password_file, F_STR),
    CF(acl_file, F_STR),
    CF(persistence, F_BOOL),
    CF(persistence_location, F_STR),
    CF(persistent_client_expiration_s, F_U64),
    CF(persistence_fsync, F_ENUM),
    CF(max_inflight_messages, F_U32),
    CF(max_queued_messages, F_U32),
    CF(max_queued_bytes, F_U64),
    CF(max_packet_size, F_U32),
    CF(max_keepalive, F_U16),
    CF(retain_available, F_BOOL),
    CF(message_size_limit, F_U32),
    CF(memory_limit, F_U64),
    CF(allow_zero_length_clientid, F_BOOL),
    CF(sys_interval, F_U32),
    CF(set_tcp_nodelay, F_BOOL),
    CF(max_connections, F_U32),
    CF(log_dest, F_UINT),
    CF(log_file, F_STR),
    CF(log_types, F_UINT),
    CF(connection_messages, F_BOOL),
    CF(max_connect_packet_size, F_U32),
    CF(connect_timeout_ms, F_U32),
    CF(max_subscriptions_per_client, F_U32),
    CF(max_user_properties, F_U32),
    CF(max_user_properties_bytes, F_U32),
    CF(max_retained_messages, F_U32),
    CF(max_retained_bytes, F_U64),
    CF(max_sessions, F_U32),
    CF(slow_consumer_timeout_ms, F_U32),
    CF(connect_rate_per_address, F_U32),
    CF(rules_dir, F_STR),
    CF(rules_dir_explicit, F_BOOL),
    CF(rule_timeout_ms, F_U32),
    CF(rule_memory_limit, F_U64),
    CF(rule_cpu_share, F_U32),
    CF(rule_max_payload, F_U64),
    CF(rule_store_limit, F_U64),
    CF(admin_socket, F_STR),
    CF(http_port, F_U16),
    CF(http_address, F_STR),
};

static const struct field listener_fields[] = {
    LF(port, F_U16),
    LF(address, F_STR),
    LF(protocol, F_ENUM),
    LF(certfile, F_STR),
    LF(keyfile, F_STR),
    LF(cafile, F_STR),
    LF(capath, F_STR),
    LF(crlfile, F_STR),
    LF(tls_version, F_STR),
    LF(ciphers, F_STR),
    LF(ciphers_tls13, F_STR),
    LF(require_certificate, F_BOOL),
    LF(use_identity_as_username, F_BOOL),
    LF(max_connections, F_U32),
    LF(max_qos, F_U8),
    LF(max_topic_alias, F_U16),
    LF(mount_point, F_STR),
    LF(proxy_protocol, F_BOOL),
    LF(allow_anonymous, F_TRI),
    LF(password_file, F_STR),
    LF(acl_file, F_STR),
    LF(file, F_STR),
    LF(line, F_UINT),
};

static bool fmt_field(const struct field *tab, size_t n, const void *base, const char *key,
                      char *out, size_t outlen)
{
    for (size_t i = 0; i < n; i++) {
        const char *p = (const char *)base + tab[i].off;
        if (strcmp(tab[i].key, key))
            continue;
        switch (tab[i].type) {
        case F_BOOL:
            snprintf(out, outlen, "%d", *(const bool *)p);
            break;
        case F_TRI:
            snprintf(out, outlen, "%d", (int)*(const enum config_tristate *)p);
            break;
        case F_ENUM:
            snprintf(out, outlen, "%d", (int)*(const enum config_fsync *)p);
            break;
        case F_U8:
            snprintf(out, outlen, "%u", (unsigned)*(const uint8_t *)p);
            break;
        case F_U16:
            snprintf(out, outlen, "%u", (unsigned)*(const uint16_t *)p);
            break;
        case F_U32:
            snprintf(out, outlen, "%lu", (unsigned long)*(const uint32_t *)p);
            break;
        case F_UINT:
            snprintf(out, outlen, "%u", *(const unsigned *)p);
            break;
        case F_U64:
            snprintf(out, outlen, "%llu", (unsigned long long)*(const uint64_t *)p);
            break;
        case F_STR:
            snprintf(out, outlen, "%s", *(char *const *)p ? *(char *const *)p : "(null)");
            break;
        }
        return true;
    }
    return false;
}

/* Formats the value named key: a struct config field, "listeners", "lN.field", "anon",
 * "anonN", "warnings", "warnN", "sinks", "sinkN.name|type|n|keyI|valI", "plugins", "pluginN",
 * "trusted", "trustedN". */
static bool get(const struct config *c, const char *key, char *out, size_t outlen)
{
    char *end;
    unsigned long i;

    if (fmt_field(config_fields, sizeof(config_fields) / sizeof(config_fields[0]), c, key, out,
                  outlen))
        return true;
    if (!strcmp(key, "listeners"))
        return snprintf(out, outlen, "%zu", c->listener_count), true;
    if (!strcmp(key, "warnings"))
        return snprintf(out, outlen, "%zu", c->warning_count), true;
    if (!strcmp(key, "sinks"))
        return snprintf(out, outlen, "%zu", c->sink_count), true;
    if (!strcmp(key, "plugins"))
        return snprintf(out, outlen, "%zu", c->plugin_count), true;
    if (!strcmp(key, "trusted"))
        return snprintf(out, outlen, "%zu", c->proxy_trusted_count), true;
    if (!strcmp(key, "anon"))
        return snprintf(out, outlen, "%d", config_allow_anonymous(c, NULL)), true;
    if (key[0] == 'l' && key[1] >= '0' && key[1] <= '9') {
        i = strtoul(key + 1, &end, 10);
        if (*end != '.' || i >= c->listener_count)
            return false;
        return fmt_field(listener_fields, sizeof(listener_fields) / sizeof(listener_fields[0]),
                         &c->listeners[i], end + 1, out, outlen);
    }
    if (!strncmp(key, "anon", 4)) {
        i = strtoul(key + 4, &end, 10);
        if (*end || i >= c->listener_count)
            return false;
        return snprintf(out, outlen, "%d", config_allow_anonymous(c, &c->listeners[i])), true;
    }
    if (!strncmp(key, "warn", 4)) {
        i = strtoul(key + 4, &end, 10);
        if (*end || i >= c->warning_count)
            return false;
        return snprintf(out, outlen, "%s", c->warnings[i]), true;
    }
    if (!strncmp(key, "plugin", 6)) {
        i = strtoul(key + 6, &end, 10);
        if (*end || i >= c->plugin_count)
            return false;
        return snprintf(out, outlen, "%s", c->plugins[i]), true;
    }
    if (!strncmp(key, "trusted", 7)) {
        const struct config_proxy_net *t;
        char a[INET6_ADDRSTRLEN];
        i = strtoul(key + 7, &end, 10);
        if (*end || i >= c->proxy_trusted_count)
            return false;
        t = &c->proxy_trusted[i];
        inet_ntop(t->family, t->addr, a, sizeof(a));
        return snprintf(out, outlen, "%s/%u", a, (unsigned)t->prefix), true;
    }
    if (!strncmp(key, "sink", 4)) {
        const struct config_sink *s;
        unsigned long j;
        i = strtoul(key + 4, &end, 10);
        if (*end != '.' || i >= c->sink_count)
            return false;
        s = &c->sinks[i];
        end++;
        if (!strcmp(end, "name"))
            return snprintf(out, outlen, "%s", s->name), true;
        if (!strcmp(end, "type"))
            return snprintf(out, outlen, "%s", s->type), true;
        if (!strcmp(end, "n"))
            return snprintf(out, outlen, "%zu", s->n), true;
        if (!strcmp(end, "line"))
            return snprintf(out, outlen, "%d", s->line), true;
        if (!strncmp(end, "key", 3) || !strncmp(end, "val", 3)) {
            bool k = end[0] == 'k';
            j = strtoul(end + 3, &end, 10);
            if (*end || j >= s->n)
                return false;
            return snprintf(out, outlen, "%s", k ? s->keys[j] : s->values[j]), true;
        }
    }
    return false;
}

/* ---- cases ---- */

struct tcase {
    const char *name;
    const char *text;      /* main.conf (NULL: not written) */
    const char *expect;    /* "key=value; key~sub; ..." or "!error substring" */
    const char *extra[14]; /* pairs: path relative to the case dir, content; a path ending in
                             '/' makes a directory */
    int port;              /* config_override */
    const char *rules_dir;
};

#define DEBIAN_CONF                                                                                \
    "# Place your local configuration in /etc/mosquitto/conf.d/\n"                                 \
    "#\n"                                                                                          \
    "# A full description of the configuration file is at\n"                                       \
    "# /usr/share/doc/mosquitto/examples/mosquitto.conf.example\n"                                 \
    "\n"                                                                                           \
    "pid_file /run/mosquitto/mosquitto.pid\n"                                                      \
    "\n"                                                                                           \
    "persistence true\n"                                                                           \
    "persistence_location /var/lib/mosquitto/\n"                                                   \
    "\n"                                                                                           \
    "log_dest file /var/log/mosquitto/mosquitto.log\n"                                             \
    "\n"                                                                                           \
    "include_dir {D}/conf.d\n"

/* C: text and expectation; CX: with extra files; CO: with extra files and overrides */
#define C(name, text, expect)                                                                      \
    {                                                                                              \
        name, text, expect, {NULL}, 0, NULL                                                        \
    }
#define CX(name, text, expect, ...)                                                                \
    {                                                                                              \
        name, text, expect, __VA_ARGS__, 0, NULL                                                   \
    }
#define CO(name, text, expect, extra, port, rules)                                                 \
    {                                                                                              \
        name, text, expect, extra, port, rules                                                     \
    }

static const struct tcase cases[] = {
    /* --- file format --- */
    C("empty file: local-only default listener", "",
      "listeners=1; l0.port=1883; l0.address=127.0.0.1; anon=1; anon0=1; warnings=0; "
      "l0.allow_anonymous=1; allow_anonymous=1"),
    C("defaults", "",
      "max_inflight_messages=20; max_queued_messages=1000; max_keepalive=65535; "
      "retain_available=1; allow_zero_length_clientid=1; sys_interval=10; set_tcp_nodelay=1; "
      "log_dest=2; log_types=15; connection_messages=1; persistence=0; persistence_fsync=1; "
      "max_connect_packet_size=65536; connect_timeout_ms=10000; slow_consumer_timeout_ms=60000; "
      "rule_timeout_ms=5; rule_memory_limit=33554432; rule_cpu_share=20; "
      "rule_max_payload=1048576; rule_store_limit=67108864; rules_dir=(null); "
      "rules_dir_explicit=0; l0.max_qos=2; l0.max_topic_alias=10; l0.protocol=0"),
    C("comments, blank lines, CRLF, tabs and trailing spaces",
      "# comment\r\n\r\n   \n\t\npersistence true   \r\n  max_queued_messages\t7\t\r\n#x",
      "persistence=1; max_queued_messages=7"),
    C("a comment after a value", "max_queued_messages 10 # ten\nlistener 1883 # plain",
      "max_queued_messages=10; l0.address=(null)"),
    C("a comment must start the line (Mosquitto)", "persistence true\n  # indented",
      "!{F}:2: a comment must start at the beginning of the line"),
    C("unknown directive", "\n\n# x\nfoo bar", "!{F}:4: unknown directive 'foo'"),
    C("directive names are case-sensitive", "Persistence true",
      "!{F}:1: unknown directive 'Persistence'"),
    C("missing file", NULL, "!{D}/main.conf: cannot open: No such file"),
    CX("a directory is not a config file", NULL, "!{D}/main.conf: cannot read", {"main.conf/"}),
    C("booleans accept 1 and 0 as Mosquitto does", "persistence 1\nretain_available 0",
      "persistence=1; retain_available=0"),
    C("a bad boolean names the form", "persistence yes",
      "!{F}:1: persistence: expected true or false, got 'yes'"),
    C("one value only", "persistence true false",
      "!{F}:1: persistence: expected true or false, got 'true false'"),
    C("a missing value", "persistence", "!{F}:1: persistence: expected true or false, got nothing"),

    /* --- Debian's default /etc/mosquitto/mosquitto.conf --- */
    CX("Debian's default mosquitto.conf loads", DEBIAN_CONF,
       "persistence=1; persistence_location=/var/lib/mosquitto/; log_dest=4; "
       "log_file=/var/log/mosquitto/mosquitto.log; warnings=1; warn0~{F}:6: Mosquitto directive "
       "'pid_file' has no meaning in tidemq and is ignored; listeners=1; l0.address=127.0.0.1; "
       "l0.port=1883; anon=1",
       {"conf.d/README", "Any files placed in this directory that have a .conf ending will be\n"
                         "loaded as config files by the broker. Use this to make your local\n"
                         "config.\n"}),
    CX("Debian's default with a conf.d listener", DEBIAN_CONF,
       "listeners=1; l0.port=8883; l0.address=(null); anon=0; l0.file~conf.d/local.conf",
       {"conf.d/local.conf", "listener 8883\n"}),

    /* --- listeners --- */
    C("two listeners with every listener directive",
      "listener 1883\nlistener 8883 0.0.0.0\ncertfile /c\nkeyfile /k\ncafile /ca\n"
      "capath /cap\ncrlfile /crl\nrequire_certificate true\nuse_identity_as_username true\n"
      "tls_version tlsv1.2\nciphers A:B\nciphers_tls1.3 TLS_AES_128_GCM_SHA256\n"
      "max_connections 100\nmax_qos 1\nmax_topic_alias 5\nmount_point site/\nprotocol mqtt\n"
      "proxy_protocol true\n",
      "listeners=2; l0.port=1883; l0.address=(null); l0.certfile=(null); l0.max_qos=2; "
      "l1.port=8883; l1.address=0.0.0.0; l1.certfile=/c; l1.keyfile=/k; l1.cafile=/ca; "
      "l1.capath=/cap; l1.crlfile=/crl; l1.require_certificate=1; "
      "l1.use_identity_as_username=1; l1.tls_version=tlsv1.2; l1.ciphers=A:B; "
      "l1.ciphers_tls13=TLS_AES_128_GCM_SHA256; l1.max_connections=100; l1.max_qos=1; "
      "l1.max_topic_alias=5; l1.mount_point=site/; l1.protocol=0; l1.proxy_protocol=1; "
      "l0.proxy_protocol=0; l1.line=2; l1.file={F}; anon=0; anon0=0; anon1=0"),
    C("websockets listener is accepted", "listener 9001\nprotocol websockets", "l0.protocol=1"),
    C("maximum_qos is Mosquitto's alias", "listener 1\nmaximum_qos 0", "l0.max_qos=0"),
    C("listener port 0 lets the OS choose", "listener 0 127.0.0.1", "l0.port=0"),
    C("bad protocol", "listener 1\nprotocol mqttsn",
      "!{F}:2: protocol: expected mqtt or websockets, got 'mqttsn'"),
    C("bad max_qos", "listener 1\nmax_qos 3", "!{F}:2: max_qos: expected 0, 1 or 2, got '3'"),
    C("bad max_topic_alias", "listener 1\nmax_topic_alias 65536",
      "!{F}:2: max_topic_alias: expected an integer from 0 to 65535, got '65536'"),
    C("bad listener port", "listener 70000",
      "!{F}:1: listener: expected a port from 0 to 65535 and an optional address, got '70000'"),
    C("listener without a port", "listener",
      "!{F}:1: listener: expected a port from 0 to 65535 and an optional address, got nothing"),
    C("listener with too many values", "listener 1883 0.0.0.0 x",
      "!{F}:1: listener: expected a port from 0 to 65535 and an optional address, got "
      "'1883 0.0.0.0 x'"),
    C("bad tls_version", "listener 1\ntls_version sslv3",
      "!{F}:2: tls_version: expected tlsv1.3, tlsv1.2 or tlsv1.1, got 'sslv3'"),
    C("mount_point without wildcards", "listener 1\nmount_point a/#",
      "!{F}:2: mount_point: expected a topic prefix without + or #, got 'a/#'"),
    C("a string set twice", "listener 1\ncertfile a\ncertfile b", "!{F}:3: certfile: set twice"),
    C("an empty path", "persistence_location   ",
      "!{F}:1: persistence_location: expected a directory, got nothing"),
    C("a path keeps its inner spaces", "persistence_location /var/lib/my dir  \r",
      "persistence_location=/var/lib/my dir"),
    C("max_connections -1 is unlimited", "listener 1\nmax_connections -1", "l0.max_connections=0"),
    C("bad max_connections", "listener 1\nmax_connections -2",
      "!{F}:2: max_connections: expected -1 (unlimited) or an integer from 0 to 4294967295, got "
      "'-2'"),
    C("max_connections before any listener is tidemq's global limit",
      "max_connections 50\nlistener 1883\nmax_connections 7",
      "max_connections=50; listeners=1; l0.max_connections=7"),
    C("duplicate listener", "listener 1883\nlistener 1883",
      "!{F}:2: listener 1883: the same port and address as another listener"),

    /* --- Mosquitto's default listener --- */
    C("port N is the default listener", "port 1884",
      "listeners=1; l0.port=1884; l0.address=(null); anon=0; anon0=0"),
    C("port 0 is refused", "port 0", "!{F}:1: port: expected a port from 1 to 65535, got '0'"),
    C("port and listener", "port 1883\nlistener 8883",
      "listeners=2; l0.port=8883; l1.port=1883; l1.address=(null)"),
    C("bind_address sets the default listener's address", "bind_address 10.0.0.1",
      "listeners=1; l0.port=1883; l0.address=10.0.0.1; anon=0"),
    C("listener directives before any listener go to the default listener",
      "max_qos 1\nlistener 8883",
      "listeners=2; l0.port=8883; l0.max_qos=2; l1.port=1883; l1.max_qos=1; l1.line=1"),
    C("max_topic_alias alone does not make the default listener (Mosquitto)",
      "max_topic_alias 5\nlistener 8883", "listeners=1; l0.port=8883; l0.max_topic_alias=10"),
    C("listener settings with no listener stay local-only", "certfile /c\nkeyfile /k",
      "listeners=1; l0.address=127.0.0.1; l0.certfile=/c; anon=1"),
    CX("an included file starts at the default listener (Mosquitto)",
       "listener 8883\ninclude_dir {D}/d", "listeners=2; l0.max_qos=2; l1.port=1883; l1.max_qos=1",
       {"d/a.conf", "max_qos 1\n"}),

    /* --- TLS consistency at finish --- */
    C("certfile without keyfile", "\nlistener 8883\ncertfile /c",
      "!{F}:2: listener 8883: certfile without keyfile"),
    C("keyfile without certfile", "listener 8883\nkeyfile /k",
      "!{F}:1: listener 8883: keyfile without certfile"),
    C("cafile without a certificate", "listener 8883\ncafile /ca",
      "!{F}:1: listener 8883: cafile needs certfile and keyfile"),
    C("require_certificate needs a CA",
      "listener 8883\ncertfile c\nkeyfile k\n"
      "require_certificate true",
      "!{F}:1: listener 8883: require_certificate needs cafile or capath"),
    C("use_identity_as_username needs require_certificate",
      "listener 8883\ncertfile c\nkeyfile k\ncafile ca\nuse_identity_as_username true",
      "!{F}:1: listener 8883: use_identity_as_username needs require_certificate true"),
    CX("a TLS error names the included file", "include_dir {D}/conf.d",
       "!{D}/conf.d/tls.conf:2: listener 8883: certfile without keyfile",
       {"conf.d/tls.conf", "\nlistener 8883\ncertfile /c\n"}),
    C("the default listener's TLS error names where it began", "port 8883\n\ncertfile /c",
      "!{F}:1: listener 8883: certfile without keyfile"),

    /* --- security and per_listener_settings --- */
    C("allow_anonymous is global", "listener 1883\nlistener 1884\nallow_anonymous true",
      "anon=1; anon0=1; anon1=1; allow_anonymous=1"),
    C("allow_anonymous defaults to false with a listener", "listener 1883", "anon=0; anon0=0"),
    C("an explicit allow_anonymous false is kept in local-only mode", "allow_anonymous false",
      "anon=0; anon0=0; l0.address=127.0.0.1"),
    C("bad allow_anonymous", "allow_anonymous yes",
      "!{F}:1: allow_anonymous: expected true or false, got 'yes'"),
    C("password_file and acl_file are global by default",
      "password_file /p\nacl_file /a\nlistener 1883",
      "password_file=/p; acl_file=/a; l0.password_file=(null); listeners=1"),
    C("per_listener_settings scopes security to the listener",
      "per_listener_settings true\nlistener 1883\nallow_anonymous true\npassword_file /p1\n"
      "listener 1884\nacl_file /a2",
      "per_listener_settings=1; anon0=1; anon1=0; l0.password_file=/p1; l0.acl_file=(null); "
      "l1.acl_file=/a2; l1.password_file=(null); password_file=(null); acl_file=(null); anon=0"),
    C("per_listener_settings must come first", "allow_anonymous true\nper_listener_settings true",
      "!{F}:2: per_listener_settings must come before allow_anonymous"),
    C("per-listener allow_anonymous before any listener is dropped (Mosquitto)",
      "per_listener_settings true\nallow_anonymous true\nlistener 1883", "listeners=1; anon0=0"),
    C("per-listener password_file before any listener makes the default listener",
      "per_listener_settings true\npassword_file /p\nlistener 8883",
      "listeners=2; l1.port=1883; l1.password_file=/p; l0.password_file=(null)"),
    C("per_listener_settings with no listener: local-only, anonymous", "per_listener_settings true",
      "listeners=1; anon0=1; l0.address=127.0.0.1"),

    /* --- persistence and Mosquitto's units --- */
    C("persistence",
      "persistence true\npersistence_location /var/lib/tidemq\n"
      "retained_persistence true",
      "persistence=1; persistence_location=/var/lib/tidemq"),
    C("persistent_client_expiration m is a month", "persistent_client_expiration 2m",
      "persistent_client_expiration_s=5184000"),
    C("persistent_client_expiration h", "persistent_client_expiration 3h",
      "persistent_client_expiration_s=10800"),
    C("persistent_client_expiration d", "persistent_client_expiration 14d",
      "persistent_client_expiration_s=1209600"),
    C("persistent_client_expiration w", "persistent_client_expiration 1w",
      "persistent_client_expiration_s=604800"),
    C("persistent_client_expiration y", "persistent_client_expiration 1y",
      "persistent_client_expiration_s=31536000"),
    C("persistent_client_expiration has no seconds", "persistent_client_expiration 10s",
      "!{F}:1: persistent_client_expiration: expected a number followed by h, d, w, m (month) "
      "or y, such as 14d, got '10s'"),
    C("persistent_client_expiration needs a unit", "persistent_client_expiration 10",
      "!{F}:1: persistent_client_expiration: expected"),
    C("persistent_client_expiration min is not Mosquitto's", "persistent_client_expiration 5min",
      "!{F}:1: persistent_client_expiration: expected"),
    C("persistent_client_expiration 0 is refused", "persistent_client_expiration 0d",
      "!{F}:1: persistent_client_expiration: expected"),
    C("persistence_fsync always", "persistence_fsync always", "persistence_fsync=0"),
    C("persistence_fsync no", "persistence_fsync no", "persistence_fsync=2"),
    C("bad persistence_fsync", "persistence_fsync sometimes",
      "!{F}:1: persistence_fsync: expected always, everysec or no, got 'sometimes'"),

    /* --- Mosquitto's limits --- */
    C("limits",
      "max_inflight_messages 10\nmax_queued_messages 0\nmax_queued_bytes 1M\n"
      "max_packet_size 1K\nmax_keepalive 300\nretain_available false\n"
      "message_size_limit 268435455\nmemory_limit 1G\nallow_zero_length_clientid false\n"
      "sys_interval 0\nset_tcp_nodelay false\nconnection_messages false",
      "max_inflight_messages=10; max_queued_messages=0; max_queued_bytes=1048576; "
      "max_packet_size=1024; max_keepalive=300; retain_available=0; "
      "message_size_limit=268435455; memory_limit=1073741824; allow_zero_length_clientid=0; "
      "sys_interval=0; set_tcp_nodelay=0; connection_messages=0"),
    C("max_inflight_messages 65535 is unlimited", "max_inflight_messages 65535",
      "max_inflight_messages=0"),
    C("max_inflight_messages range", "max_inflight_messages 65536",
      "!{F}:1: max_inflight_messages: expected an integer from 0 to 65535, got '65536'"),
    C("max_packet_size below 20 (Mosquitto)", "max_packet_size 19",
      "!{F}:1: max_packet_size: expected a size from 20 to 268435460 bytes"),
    C("max_keepalive below 10 (Mosquitto)", "max_keepalive 5",
      "!{F}:1: max_keepalive: expected an integer from 10 to 65535, got '5'"),
    C("message_size_limit above MQTT's maximum", "message_size_limit 268435456",
      "!{F}:1: message_size_limit: expected a size from 0 to 268435455 bytes"),
    C("a negative integer", "max_queued_messages -1",
      "!{F}:1: max_queued_messages: expected an integer from 0 to 4294967295, got '-1'"),
    C("an integer overflow", "max_queued_messages 99999999999999999999999",
      "!{F}:1: max_queued_messages: expected an integer"),

    /* --- logging --- */
    C("log_dest adds after replacing the default", "log_dest stdout\nlog_dest stderr",
      "log_dest=3"),
    C("log_dest file", "log_dest file /var/log/tide dir/x.log",
      "log_dest=4; "
      "log_file=/var/log/tide dir/x.log"),
    C("log_dest none", "log_dest stdout\nlog_dest none", "log_dest=0"),
    C("log_dest syslog is ignored with a warning", "log_dest syslog",
      "log_dest=0; warnings=1; warn0~{F}:1: log_dest syslog is not supported by tidemq"),
    C("bad log_dest", "log_dest printer",
      "!{F}:1: log_dest: expected stdout, stderr, file PATH or none, got 'printer'"),
    C("log_dest file without a path", "log_dest file",
      "!{F}:1: log_dest: expected file PATH, got 'file'"),
    C("only one log file", "log_dest file /a\nlog_dest file /b",
      "!{F}:2: log_dest: only one log file may be configured"),
    C("log_type replaces then adds", "log_type error\nlog_type debug", "log_types=17"),
    C("log_type all", "log_type all", "log_types=255"),
    C("log_type several on a line", "log_type subscribe unsubscribe websockets", "log_types=224"),
    C("log_type none", "log_type all\nlog_type none", "log_types=0"),
    C("bad log_type", "log_type chatter", "!{F}:1: log_type: expected debug, error"),

    /* --- include_dir --- */
    CX("include_dir reads *.conf in Mosquitto's order", "include_dir {D}/d/",
       "sinks=6; sink0.name=s00; sink1.name=s01; sink2.name=sA; sink3.name=sa; sink4.name=sB; "
       "sink5.name=sb",
       {"d/b.conf", "sink sb file\n", "d/A.conf", "sink sA file\n", "d/01.conf", "sink s01 file\n",
        "d/a.conf", "sink sa file\n", "d/B.conf", "sink sB file\n", "d/00.conf",
        "sink s00 file\n"}),
    CX("include_dir skips other files and directories", "include_dir {D}/d",
       "sinks=1; sink0.name=s1",
       {"d/z.conf.bak", "bogus\n", "d/sub.conf/", "", "d/1.conf", "sink s1 file\n", "d/.conf",
        "bogus\n"}),
    CX("an error in an included file names it and its line", "persistence true\ninclude_dir {D}/d",
       "!{D}/d/b.conf:2: unknown directive 'bogus'",
       {"d/a.conf", "persistence true\n", "d/b.conf", "# x\nbogus 1\n"}),
    C("include_dir that does not exist", "\ninclude_dir {D}/nope",
      "!{F}:2: include_dir: cannot open '{D}/nope': No such file or directory"),
    C("include_dir without a directory", "include_dir",
      "!{F}:1: include_dir: expected a directory, got nothing"),
    CX("include_dir is read only from the main file (Mosquitto)", "include_dir {D}/d",
       "warnings=1; warn0~{D}/d/a.conf:1: include_dir is read only in the main config file",
       {"d/a.conf", "include_dir {D}/e\n", "e/x.conf", "bogus\n"}),

    /* --- tidemq's durations --- */
    C("durations ms and s", "connect_timeout 500ms\nslow_consumer_timeout 90s",
      "connect_timeout_ms=500; slow_consumer_timeout_ms=90000"),
    C("durations min and h", "connect_timeout 2min\nslow_consumer_timeout 1h",
      "connect_timeout_ms=120000; slow_consumer_timeout_ms=3600000"),
    C("durations d and w", "connect_timeout 1d\nslow_consumer_timeout 1w",
      "connect_timeout_ms=86400000; slow_consumer_timeout_ms=604800000"),
    C("a bare m is refused", "\nconnect_timeout 5m",
      "!{F}:2: connect_timeout: '5m': a bare 'm' is ambiguous; write 'min' for minutes ('m' is a "
      "month only in Mosquitto's persistent_client_expiration)"),
    C("a duration needs a unit", "slow_consumer_timeout 10",
      "!{F}:1: slow_consumer_timeout: expected a duration such as 500ms, 10s, 5min, 1h, 1d or "
      "1w, got '10'"),
    C("a duration out of range", "slow_consumer_timeout 8d",
      "!{F}:1: slow_consumer_timeout: expected a duration"),
    C("a zero duration", "connect_timeout 0s", "!{F}:1: connect_timeout: expected a duration"),
    C("a duration with an unknown unit", "connect_timeout 5y",
      "!{F}:1: connect_timeout: expected a duration"),

    /* --- tidemq's sizes and limits --- */
    C("sizes K M G",
      "max_connect_packet_size 128K\nrule_memory_limit 64M\nrule_max_payload 2m\n"
      "rule_store_limit 1G\nmax_retained_bytes 10g\nmax_user_properties_bytes 4k",
      "max_connect_packet_size=131072; rule_memory_limit=67108864; rule_max_payload=2097152; "
      "rule_store_limit=1073741824; max_retained_bytes=10737418240; "
      "max_user_properties_bytes=4096"),
    C("a bad size suffix", "max_retained_bytes 12X",
      "!{F}:1: max_retained_bytes: expected a size from 0 to 18446744073709551615 bytes, "
      "optionally with K, M or G (such as 64K), got '12X'"),
    C("a fractional size", "rule_max_payload 1.5M", "!{F}:1: rule_max_payload: expected a size"),
    C("a size that overflows", "max_queued_bytes 17179869184G",
      "!{F}:1: max_queued_bytes: expected a size"),
    C("tidemq limits",
      "max_subscriptions_per_client 10\nmax_user_properties 16 8K\nmax_retained_messages 5\n"
      "max_sessions 100\nconnect_rate_per_address 20",
      "max_subscriptions_per_client=10; max_user_properties=16; max_user_properties_bytes=8192; "
      "max_retained_messages=5; max_sessions=100; connect_rate_per_address=20"),
    C("max_user_properties without bytes", "max_user_properties 3",
      "max_user_properties=3; max_user_properties_bytes=65536"),
    C("bad max_user_properties", "max_user_properties many",
      "!{F}:1: max_user_properties: expected a count from 0 to 65535 and an optional size"),

    /* --- rules --- */
    C("rules settings", "rules_dir /srv/rules\nrule_timeout_ms 50\nrule_cpu_share 30%",
      "rules_dir=/srv/rules; rules_dir_explicit=1; rule_timeout_ms=50; rule_cpu_share=30"),
    C("rule_cpu_share range", "rule_cpu_share 0",
      "!{F}:1: rule_cpu_share: expected a percentage from 1 to 100, got '0'"),
    C("rule_cpu_share above 100", "rule_cpu_share 101%",
      "!{F}:1: rule_cpu_share: expected a percentage from 1 to 100, got '101'"),
    C("rule_timeout_ms range", "rule_timeout_ms 0",
      "!{F}:1: rule_timeout_ms: expected an integer from 1 to 60000, got '0'"),
    C("rule_memory_limit minimum", "rule_memory_limit 1K",
      "!{F}:1: rule_memory_limit: expected a size from 65536"),

    /* --- sinks and plugins --- */
    C("sinks with options",
      "sink archive file\nsink_opt_path /var/x\nsink_opt_rotate 10M\nlistener 1883\n"
      "sink hook http\nsink_opt_url http://x/y z",
      "sinks=2; sink0.name=archive; sink0.type=file; sink0.n=2; sink0.key0=path; "
      "sink0.val0=/var/x; sink0.key1=rotate; sink0.val1=10M; sink0.line=1; sink1.name=hook; "
      "sink1.type=http; sink1.n=1; sink1.key0=url; sink1.val0=http://x/y z"),
    C("sink_opt before any sink", "\nsink_opt_path /x",
      "!{F}:2: sink_opt_path: no `sink NAME TYPE` line before it in this file"),
    C("sink name defined twice", "sink a file\nsink a http",
      "!{F}:2: sink: 'a' is already defined at {F}:1"),
    C("sink option set twice", "sink a file\nsink_opt_path x\nsink_opt_path y",
      "!{F}:3: sink_opt_path: set twice for sink 'a'"),
    C("sink option without a key", "sink a file\nsink_opt_ x",
      "!{F}:2: sink_opt_: expected sink_opt_KEY VALUE"),
    C("sink option without a value", "sink a file\nsink_opt_path",
      "!{F}:2: sink_opt_path: expected a value, got nothing"),
    C("sink without a type", "sink a",
      "!{F}:1: sink: expected NAME TYPE (such as: sink archive file), got 'a'"),
    C("sink with a bad name", "sink a/b file", "!{F}:1: sink: name 'a/b' may hold only"),
    C("plugins", "plugin /usr/lib/tidemq/kafka.so\nplugin ./my sink.so",
      "plugins=2; plugin0=/usr/lib/tidemq/kafka.so; plugin1=./my sink.so"),
    C("plugin without a path", "plugin", "!{F}:1: plugin: expected the path of a sink plugin"),

    /* --- admin, proxy --- */
    C("admin_socket and http_listener",
      "admin_socket /run/tidemq.sock\nhttp_listener 9100 127.0.0.1",
      "admin_socket=/run/tidemq.sock; http_port=9100; http_address=127.0.0.1"),
    C("http_listener twice", "http_listener 9100\nhttp_listener 9101",
      "!{F}:2: http_listener: set twice"),
    C("proxy_trusted", "proxy_trusted 10.0.0.0/8 ::1\nproxy_trusted 2001:db8::/32 192.0.2.7",
      "trusted=4; trusted0=10.0.0.0/8; trusted1=::1/128; trusted2=2001:db8::/32; "
      "trusted3=192.0.2.7/32"),
    C("proxy_trusted with host bits", "proxy_trusted 10.0.0.1/8",
      "!{F}:1: proxy_trusted: expected an address or ADDRESS/PREFIX, such as 10.0.0.0/8, got "
      "'10.0.0.1/8'"),
    C("proxy_trusted bad address", "proxy_trusted 300.1.1.1",
      "!{F}:1: proxy_trusted: expected an address"),
    C("proxy_trusted bad prefix", "proxy_trusted ::/129", "!{F}:1: proxy_trusted: expected"),
    C("proxy_protocol is per listener", "listener 1\nproxy_protocol true\nlistener 2",
      "l0.proxy_protocol=1; l1.proxy_protocol=0"),

    /* --- Mosquitto directives ignored or refused --- */
    C("ignored with warnings",
      "user mosquitto\nautosave_interval 1800\nautosave_on_changes false\n"
      "persistence_file mosquitto.db\nlog_timestamp true\nlog_timestamp_format %Y\n"
      "log_facility 5\nwebsockets_log_level 0\nwebsockets_headers_size 1024\nretry_interval 20\n"
      "allow_duplicate_messages false",
      "warnings=11; warn0~{F}:1: Mosquitto directive 'user' has no meaning in tidemq and is "
      "ignored; warn3~{F}:4: Mosquitto directive 'persistence_file'"),
    C("bridge_ refused", "bridge_cafile /x",
      "!{F}:1: Mosquitto directive 'bridge_cafile' is not supported by tidemq"),
    C("connection refused", "\nconnection br1",
      "!{F}:2: Mosquitto directive 'connection' is not supported by tidemq"),
    C("address refused", "address 10.0.0.1:1883",
      "!{F}:1: Mosquitto directive 'address' is not supported by tidemq"),
    C("auth_plugin refused", "auth_plugin /x.so",
      "!{F}:1: Mosquitto directive 'auth_plugin' is not supported by tidemq"),
    C("plugin_opt_ refused", "plugin_opt_db x",
      "!{F}:1: Mosquitto directive 'plugin_opt_db' is not supported by tidemq"),
    C("auth_opt_ refused", "auth_opt_db x",
      "!{F}:1: Mosquitto directive 'auth_opt_db' is not supported by tidemq"),
    C("psk_file refused", "psk_file /p",
      "!{F}:1: Mosquitto directive 'psk_file' is not supported by tidemq"),
    C("upgrade_outgoing_qos refused (the MQTT specification wins)", "upgrade_outgoing_qos true",
      "!{F}:1: Mosquitto directive 'upgrade_outgoing_qos' is not supported by tidemq"),

    /* --- command-line overrides --- */
    CO("-p with no listener stays local", "",
       "listeners=1; l0.port=1999; l0.address=127.0.0.1; "
       "anon=1",
       {NULL}, 1999, NULL),
    CO("-p beside configured listeners adds a local one", "listener 8883",
       "listeners=2; l0.port=8883; l1.port=1999; l1.address=127.0.0.1; anon=0", {NULL}, 1999, NULL),
    CO("-p beside listeners and a dropped default-listener setting stays local",
       "per_listener_settings true\nallow_anonymous true\nlistener 8883",
       "listeners=2; l1.port=1999; l1.address=127.0.0.1; anon1=1; anon0=0", {NULL}, 1999, NULL),
    CO("-p replaces port N", "port 1883", "listeners=1; l0.port=1999; l0.address=(null)", {NULL},
       1999, NULL),
    CO("--rules", "rules_dir /a", "rules_dir=/cli; rules_dir_explicit=1", {NULL}, 0, "/cli"),
};

/* ---- running a case ---- */

/* Replaces {D} and {F}. Returns a new string. */
static char *expand(const char *s, const char *dir)
{
    size_t cap = strlen(s) * 2 + strlen(dir) * 8 + 64, n = 0;
    char *out = malloc(cap);

    while (*s) {
        const char *rep = NULL;
        if (!strncmp(s, "{D}", 3))
            rep = dir;
        if (rep || !strncmp(s, "{F}", 3)) {
            int k = rep ? snprintf(out + n, cap - n, "%s", rep)
                        : snprintf(out + n, cap - n, "%s/main.conf", dir);
            n += (size_t)k;
            s += 3;
            if (n + strlen(dir) + 16 >= cap) {
                cap *= 2;
                out = realloc(out, cap);
            }
            continue;
        }
        if (n + 2 >= cap) {
            cap *= 2;
            out = realloc(out, cap);
        }
        out[n++] = *s++;
    }
    out[n] = '\0';
    return out;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(2);
    }
    fputs(text, f);
    fclose(f);
}

/* Writes rel (creating its parent directories) under dir. */
static void put(const char *dir, const char *rel, const char *text)
{
    char path[1024];
    size_t len;

    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    for (char *p = path + strlen(dir) + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(path, 0700);
            *p = '/';
        }
    }
    len = strlen(path);
    if (path[len - 1] == '/')
        return;
    char *t = expand(text, dir);
    write_file(path, t);
    free(t);
}

static void expect_values(const struct config *c, const char *name, const char *spec,
                          const char *dir)
{
    char *all = expand(spec, dir), *save = NULL, *item;

    for (item = strtok_r(all, ";", &save); item; item = strtok_r(NULL, ";", &save)) {
        char key[128], got[1024];
        const char *want;
        char *op;
        bool sub;

        while (*item == ' ')
            item++;
        op = strpbrk(item, "=~");
        if (!op) {
            FAIL("%s: bad expectation '%s'", name, item);
            continue;
        }
        sub = *op == '~';
        snprintf(key, sizeof(key), "%.*s", (int)(op - item), item);
        want = op + 1;
        if (!get(c, key, got, sizeof(got))) {
            FAIL("%s: no value '%s'", name, key);
            continue;
        }
        if (sub)
            CHECK(strstr(got, want) != NULL, "%s: '%s' does not contain '%s'", name, got, want);
        else
            CHECK_STR(got, want, "%s: %s", name, key);
    }
    free(all);
}

static void run_case(const struct tcase *t, unsigned idx)
{
    char dir[512], path[600], err[512] = "";
    struct config c;
    int rc;

    snprintf(dir, sizeof(dir), "%s/c%u", root, idx);
    mkdir(dir, 0700);
    for (size_t i = 0; i + 1 < sizeof(t->extra) / sizeof(t->extra[0]) && t->extra[i]; i += 2)
        put(dir, t->extra[i], t->extra[i + 1] ? t->extra[i + 1] : "");
    snprintf(path, sizeof(path), "%s/main.conf", dir);
    if (t->text)
        put(dir, "main.conf", t->text);

    config_init(&c);
    rc = config_load_file(&c, path, err, sizeof(err));
    if (rc == 0) {
        config_override(&c, t->port, t->rules_dir);
        rc = config_finish(&c, err, sizeof(err));
    }
    if (t->expect[0] == '!') {
        char *want = expand(t->expect + 1, dir);
        CHECK(rc == TIDE_EINVAL && strstr(err, want), "%s: error '%s', want '%s'", t->name, err,
              want);
        free(want);
    } else if (rc) {
        FAIL("%s: unexpected error '%s'", t->name, err);
    } else {
        expect_values(&c, t->name, t->expect, dir);
    }
    config_fini(&c);
}

/* ---- every Mosquitto 2.0 directive is classified ---- */

/* The directives of mosquitto.conf(5) for 2.0 and the aliases its parser accepts. */
static const char *const mosquitto_directives[] = {
    "acl_file",
    "address",
    "addresses",
    "allow_anonymous",
    "allow_duplicate_messages",
    "allow_zero_length_clientid",
    "auth_opt_x",
    "auth_plugin",
    "auth_plugin_deny_special_chars",
    "auto_id_prefix",
    "autosave_interval",
    "autosave_on_changes",
    "bind_address",
    "bind_interface",
    "bridge_alpn",
    "bridge_attempt_unsubscribe",
    "bridge_bind_address",
    "bridge_cafile",
    "bridge_capath",
    "bridge_certfile",
    "bridge_identity",
    "bridge_insecure",
    "bridge_keyfile",
    "bridge_max_packet_size",
    "bridge_outgoing_retain",
    "bridge_protocol_version",
    "bridge_psk",
    "bridge_require_ocsp",
    "bridge_tls_version",
    "cafile",
    "capath",
    "certfile",
    "check_retain_source",
    "ciphers",
    "ciphers_tls1.3",
    "cleansession",
    "clientid",
    "clientid_prefixes",
    "connection",
    "connection_messages",
    "crlfile",
    "dhparamfile",
    "http_dir",
    "idle_timeout",
    "include_dir",
    "keepalive_interval",
    "keyfile",
    "listener",
    "local_cleansession",
    "local_clientid",
    "local_password",
    "local_username",
    "log_dest",
    "log_facility",
    "log_timestamp",
    "log_timestamp_format",
    "log_type",
    "max_connections",
    "max_inflight_bytes",
    "max_inflight_messages",
    "max_keepalive",
    "max_packet_size",
    "max_qos",
    "max_queued_bytes",
    "max_queued_messages",
    "max_topic_alias",
    "maximum_qos",
    "memory_limit",
    "message_size_limit",
    "mount_point",
    "notification_topic",
    "notifications",
    "notifications_local_only",
    "password",
    "password_file",
    "per_listener_settings",
    "persistence",
    "persistence_file",
    "persistence_location",
    "persistent_client_expiration",
    "pid_file",
    "plugin",
    "plugin_opt_x",
    "port",
    "protocol",
    "psk_file",
    "psk_hint",
    "queue_qos0_messages",
    "remote_clientid",
    "remote_password",
    "remote_username",
    "require_certificate",
    "restart_timeout",
    "retain_available",
    "retained_persistence",
    "retry_interval",
    "round_robin",
    "set_tcp_nodelay",
    "socket_domain",
    "start_type",
    "sys_interval",
    "threshold",
    "tls_engine",
    "tls_engine_kpass_sha1",
    "tls_keyform",
    "tls_version",
    "topic",
    "try_private",
    "upgrade_outgoing_qos",
    "use_identity_as_username",
    "use_subject_as_username",
    "use_username_as_clientid",
    "user",
    "username",
    "websockets_headers_size",
    "websockets_log_level",
};

static void test_every_mosquitto_directive(void)
{
    for (size_t i = 0; i < sizeof(mosquitto_directives) / sizeof(mosquitto_directives[0]); i++) {
        struct config c;
        char line[128], err[512] = "";

        config_init(&c);
        snprintf(line, sizeof(line), "%s", mosquitto_directives[i]);
        config_load_buffer(&c, "x.conf", line, strlen(line), err, sizeof(err));
        CHECK(!strstr(err, "unknown directive"), "%s: is unknown: '%s'", mosquitto_directives[i],
              err);
        config_fini(&c);
    }
}

/* ---- the in-memory entry point ---- */

static void test_buffer(void)
{
    static const char text[] = "persistence true\nmax_qos 1\0bogus";
    struct config c;
    char err[256] = "";
    int rc;

    config_init(&c);
    rc = config_load_buffer(&c, "mem", text, 16, err, sizeof(err));
    CHECK(rc == 0 && c.persistence, "load_buffer: rc %d %s", rc, err);
    rc = config_load_buffer(&c, "mem", text, sizeof(text) - 1, err, sizeof(err));
    CHECK(rc == TIDE_EINVAL && !strcmp(err, "mem:2: NUL byte in the line"), "NUL byte: got '%s'",
          err);
    config_fini(&c);

    /* a tiny error buffer is truncated, never overrun */
    config_init(&c);
    rc = config_load_buffer(&c, "mem", "foo", 3, err, 8);
    CHECK(rc == TIDE_EINVAL && !strcmp(err, "mem:1: "), "small err buffer: got '%s'", err);
    rc = config_load_buffer(&c, "mem", "foo", 3, NULL, 0);
    CHECK_EQ(rc, TIDE_EINVAL, "NULL err buffer");
    config_fini(&c);

    /* finish twice is harmless; finish without load gives the local default */
    config_init(&c);
    CHECK(config_finish(&c, err, sizeof(err)) == 0 && config_finish(&c, err, sizeof(err)) == 0 &&
              c.listener_count == 1,
          "finish twice: %s", err);
    config_fini(&c);
}

static int rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");

    snprintf(root, sizeof(root), "%s/test_config.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 2;
    }
    for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        run_case(&cases[i], i);
    test_every_mosquitto_directive();
    test_buffer();
    nftw(root, rm, 16, FTW_DEPTH | FTW_PHYS);
    return unit_finish();
}
