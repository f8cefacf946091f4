/* The config file (mosquitto.conf format plus tidemq's own directives, see shared CONFIG.md) and
 * command-line overrides, parsed into struct config. Does no I/O beyond reading the files it is
 * asked to read (and include_dir); never logs: errors come back as text "file:line: why", and
 * warnings (accepted-and-ignored Mosquitto directives) are collected in config.warnings. */
#ifndef TIDE_CONFIG_H
#define TIDE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum config_protocol { CONFIG_PROTO_MQTT, CONFIG_PROTO_WEBSOCKETS };
enum config_fsync { CONFIG_FSYNC_ALWAYS, CONFIG_FSYNC_EVERYSEC, CONFIG_FSYNC_NO };

/* log_type bits (Mosquitto's names) */
enum {
    CONFIG_LOG_ERROR = 1 << 0,
    CONFIG_LOG_WARNING = 1 << 1,
    CONFIG_LOG_NOTICE = 1 << 2,
    CONFIG_LOG_INFORMATION = 1 << 3,
    CONFIG_LOG_DEBUG = 1 << 4,
    CONFIG_LOG_SUBSCRIBE = 1 << 5,
    CONFIG_LOG_UNSUBSCRIBE = 1 << 6,
    CONFIG_LOG_WEBSOCKETS = 1 << 7,
    CONFIG_LOG_ALL = 0xff,
};

/* A tri-state for settings whose default depends on others. */
enum config_tristate { CONFIG_UNSET = -1, CONFIG_FALSE = 0, CONFIG_TRUE = 1 };

struct config_listener {
    uint16_t port;             /* 0: let the OS choose (the bound port is logged) */
    char *address;             /* NULL: every interface */
    enum config_protocol protocol;
    char *certfile, *keyfile, *cafile, *capath, *crlfile;
    char *tls_version, *ciphers, *ciphers_tls13;
    bool require_certificate, use_identity_as_username;
    uint32_t max_connections;  /* 0: unlimited (Mosquitto's -1) */
    uint8_t max_qos;           /* default 2 */
    uint16_t max_topic_alias;  /* default 10 */
    char *mount_point;
    bool proxy_protocol;
    /* with per_listener_settings true */
    enum config_tristate allow_anonymous;
    char *password_file, *acl_file;
    /* where it was declared, for messages */
    char *file;
    int line;
};

struct config_proxy_net {
    uint8_t family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    uint8_t prefix;
};

/* A `sink NAME TYPE` block: its `sink_opt_KEY VALUE` lines in file order (keys without the
 * sink_opt_ prefix). Keys are unique within a sink. */
struct config_sink {
    char *name, *type;
    char **keys, **values;
    size_t n;
    /* where it was declared, for messages */
    char *file;
    int line;
};

struct config {
    struct config_listener *listeners;
    size_t listener_count;

    /* security (global unless per_listener_settings) */
    bool per_listener_settings;
    enum config_tristate allow_anonymous; /* finish: true when no listener configured, else false */
    char *password_file, *acl_file;

    /* persistence */
    bool persistence;
    char *persistence_location;
    uint64_t persistent_client_expiration_s; /* 0: never */
    enum config_fsync persistence_fsync;

    /* Mosquitto limits */
    uint32_t max_inflight_messages;   /* 20; 0 = unlimited (65535) */
    uint32_t max_queued_messages;     /* 1000; 0 = unlimited */
    uint64_t max_queued_bytes;        /* 0 = unlimited */
    uint32_t max_packet_size;         /* 0 = the protocol maximum */
    uint16_t max_keepalive;           /* 65535 */
    bool retain_available;            /* true */
    uint32_t message_size_limit;      /* 0 = none */
    uint64_t memory_limit;            /* 0 = none */
    bool allow_zero_length_clientid;  /* true */
    uint32_t sys_interval;            /* seconds, 10; 0 disables $SYS */
    bool set_tcp_nodelay;             /* true (tidemq's default) */
    uint32_t max_connections;         /* global, 0 = unlimited */

    /* logging */
    unsigned log_dest;     /* bits: 1 stdout, 2 stderr, 4 file; default stderr */
    char *log_file;
    unsigned log_types;    /* CONFIG_LOG_* bits; default error|warning|notice|information */
    bool connection_messages; /* true */

    /* tidemq's own limits */
    uint32_t max_connect_packet_size; /* 64K */
    uint32_t connect_timeout_ms;      /* 10000 */
    uint32_t max_subscriptions_per_client; /* 0 = unlimited; default 1000 */
    uint32_t max_user_properties;     /* count per packet, default 64 */
    uint32_t max_user_properties_bytes; /* per packet, default 64K */
    uint32_t max_retained_messages;   /* 0 = unlimited; default 100000 */
    uint64_t max_retained_bytes;      /* 0 = unlimited; default 256M */
    uint32_t max_sessions;            /* 0 = unlimited */
    uint32_t slow_consumer_timeout_ms; /* 60000 */
    uint32_t connect_rate_per_address; /* per second, 0 = off */
    struct config_proxy_net *proxy_trusted;
    size_t proxy_trusted_count;

    /* rules */
    char *rules_dir;          /* NULL: "rules" beside the config file, or ./rules */
    bool rules_dir_explicit;  /* set in the file or on the command line: must exist */
    uint32_t rule_timeout_ms;  /* 5 */
    uint64_t rule_memory_limit; /* 32M */
    uint32_t rule_cpu_share;   /* percent, 20 */
    uint64_t rule_max_payload; /* 1M */
    uint64_t rule_store_limit; /* 64M */

    /* admin */
    char *admin_socket;
    uint16_t http_port;
    char *http_address;

    /* sinks (`sink` + `sink_opt_*`) and sink plugins (`plugin PATH`), in file order */
    struct config_sink *sinks;
    size_t sink_count;
    char **plugins;
    size_t plugin_count;

    /* Parser state, read and written only by the config module. Mosquitto's implicit default
     * listener takes `port`, `bind_address` and the listener directives that come before the
     * first `listener` line of a file; config_finish adds it to listeners when one of them made
     * it exist (the rule of Mosquitto's config__parse_args). local_only: no listener, port or
     * bind_address line was read (Mosquitto 2.x local-only mode). */
    struct config_listener *default_listener;
    bool default_listener_needed;
    bool local_only;
    bool security_seen; /* per_listener_settings must come before these */
    bool log_dest_set, log_type_set;
    bool finished;

    /* where the config came from (NULL: none) */
    char *path;
    /* accepted-and-ignored directives: "file:line: warning" lines */
    char **warnings;
    size_t warning_count;
};

/* Fills c with the defaults above (no listeners). */
void config_init(struct config *c);
/* Frees everything c owns. */
void config_fini(struct config *c);

/* Reads a config file into c (on top of what is there). On error returns TIDE_EINVAL and writes
 * "file:line: what was expected" into err. Unknown directives, bad values and unsupported
 * Mosquitto directives are errors; Mosquitto directives with no meaning here are warnings. */
int config_load_file(struct config *c, const char *path, char *err, size_t errlen);

/* As config_load_file, for text already in memory (len bytes, not NUL-terminated); name stands
 * for the file in messages. Borrows text. include_dir in it is read from the file system. */
int config_load_buffer(struct config *c, const char *name, const char *text, size_t len,
                       char *err, size_t errlen);

/* Applies command-line overrides: port > 0 replaces the default listener's port (adding the
 * default listener 127.0.0.1 if none is configured); rules_dir (may be NULL) sets rules_dir.
 * Call it after config_load_file and before config_finish. Borrows rules_dir (copies it). */
void config_override(struct config *c, int port, const char *rules_dir);

/* Completes c after loading: adds the default listener (127.0.0.1:1883, anonymous allowed, as
 * Mosquitto 2.x does with no listener) when none is configured, resolves allow_anonymous, checks
 * cross-directive consistency (a TLS listener needs certfile and keyfile...). Returns 0 or
 * TIDE_EINVAL with err filled. */
int config_finish(struct config *c, char *err, size_t errlen);

/* Returns the listener-effective value for a per-listener-capable setting. */
bool config_allow_anonymous(const struct config *c, const struct config_listener *l);

#endif
