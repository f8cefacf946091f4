/* `tidemq serve`: parses the command line and config, raises the descriptor limit, wires the
 * broker to an event loop and signals, runs it, and tears it down. */
#include "cmd.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <event2/event.h>

#include "auth.h"
#include "broker.h"
#include "config.h"
#include "log.h"
#include "rules_host.h"

static unsigned log_mask_of(unsigned types)
{
    unsigned m = 0;
    if (types & CONFIG_LOG_ERROR)
        m |= LOG_ERROR;
    if (types & CONFIG_LOG_WARNING)
        m |= LOG_WARN;
    if (types & CONFIG_LOG_NOTICE)
        m |= LOG_NOTICE;
    if (types & (CONFIG_LOG_INFORMATION | CONFIG_LOG_SUBSCRIBE | CONFIG_LOG_UNSUBSCRIBE))
        m |= LOG_INFO;
    if (types & CONFIG_LOG_DEBUG)
        m |= LOG_DEBUG;
    return m;
}

/* Raises the descriptor soft limit to the hard limit; returns the capacity. */
static uint64_t raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return (uint64_t)rl.rlim_cur;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    struct broker *b = arg;
    if (sig == SIGHUP) {
        log_notice("broker", "SIGHUP: reloading the password and ACL files");
        auth_reload(b);
        broker_reload_tls(b);
        if (b->rules)
            rules_host_reload(b->rules, "SIGHUP");
        return;
    }
    broker_shutdown(b);
}

/* Directives the parser understands but this build does not serve yet: refused, never silently
 * ignored (a security setting that is not enforced would be a hole). Returns the
 * name of the first one configured, or NULL. */
static const char *unserved_directive(const struct config *cfg)
{
    if (cfg->sink_count)
        return "sink";
    if (cfg->plugin_count)
        return "plugin";
    if (cfg->admin_socket)
        return "admin_socket";
    if (cfg->http_port)
        return "http_listener";
    return NULL;
}

int cmd_serve(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"port", required_argument, NULL, 'p'},
        {"verbose", no_argument, NULL, 'v'},      {"rules", required_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    const char *config_path = NULL, *rules_dir = NULL;
    int port = 0, verbose = 0, opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:p:vr:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'c': config_path = optarg; break;
        case 'p':
            port = atoi(optarg);
            if (port <= 0 || port > 65535) {
                fprintf(stderr, "tidemq: -p: expected a port 1-65535, got '%s'\n", optarg);
                return 2;
            }
            break;
        case 'v': verbose = 1; break;
        case 'r': rules_dir = optarg; break;
        case 'h':
            printf("usage: tidemq [serve] [-c FILE] [-p PORT] [-v] [--rules DIR]\n");
            return 0;
        default: return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "tidemq: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }

    struct config cfg;
    char err[512];
    config_init(&cfg);
    if (config_path && config_load_file(&cfg, config_path, err, sizeof err) < 0) {
        fprintf(stderr, "tidemq: %s\n", err);
        config_fini(&cfg);
        return 1;
    }
    config_override(&cfg, port, rules_dir);
    if (config_finish(&cfg, err, sizeof err) < 0) {
        fprintf(stderr, "tidemq: %s\n", err);
        config_fini(&cfg);
        return 1;
    }
    unsigned dest = cfg.log_dest, mask = log_mask_of(cfg.log_types);
    if (verbose) {
        dest |= 2;
        mask = LOG_ERROR | LOG_WARN | LOG_NOTICE | LOG_INFO | LOG_DEBUG;
    }
    if (log_open(dest, cfg.log_file, mask) < 0) {
        fprintf(stderr, "tidemq: cannot open log file %s\n", cfg.log_file);
        config_fini(&cfg);
        return 1;
    }
    for (size_t i = 0; i < cfg.warning_count; i++)
        log_warn("config", "%s", cfg.warnings[i]);
    const char *unserved = unserved_directive(&cfg);
    if (unserved) {
        log_error("config", "%s: %s is not supported by this build of tidemq yet",
                  cfg.path ? cfg.path : "-", unserved);
        config_fini(&cfg);
        log_close();
        return 1;
    }
    if (cfg.persistence)
        log_warn("config", "persistence: this build keeps sessions and retained messages in "
                           "memory only; nothing is written to %s",
                 cfg.persistence_location ? cfg.persistence_location : "disk");

    signal(SIGPIPE, SIG_IGN);
    /* A SIGHUP that arrives before the event loop's handler is installed (right after the
     * listeners open) must not kill the broker: ignore it until then. */
    signal(SIGHUP, SIG_IGN);
    uint64_t capacity = raise_fd_limit();
    /* A connection that yields for fairness after a few full reads re-activates its own read
     * event (conn.c read_again); libevent would run it again before polling anyone else, so
     * it checks for new events (and timers) after every 64 callbacks. */
    struct event_config *ecfg = event_config_new();
    struct event_base *base = NULL;
    if (ecfg && event_config_set_max_dispatch_interval(ecfg, NULL, 64, 0) == 0)
        base = event_base_new_with_config(ecfg);
    if (ecfg)
        event_config_free(ecfg);
    if (!base) {
        log_error("broker", "cannot create the event loop");
        config_fini(&cfg);
        return 1;
    }
    /* the rules load before any listener opens: a bundle that fails stops the broker here */
    struct rules_host *rules = rules_host_new(&cfg, base);
    if (!rules) {
        event_base_free(base);
        config_fini(&cfg);
        log_close();
        return 1;
    }
    struct broker *b = broker_new(&cfg, base);
    if (!b) {
        rules_host_free(rules);
        event_base_free(base);
        config_fini(&cfg);
        log_close();
        return 1;
    }
    b->fd_capacity = capacity;
    rules_host_attach(rules, b);
    log_notice("broker", "tidemq %s running; file descriptor capacity %llu", TIDEMQ_VERSION,
               (unsigned long long)capacity);
    struct event *sigs[3];
    int signums[3] = {SIGTERM, SIGINT, SIGHUP};
    for (int i = 0; i < 3; i++) {
        sigs[i] = evsignal_new(base, signums[i], on_signal, b);
        evsignal_add(sigs[i], NULL);
    }
    event_base_dispatch(base);
    log_notice("broker", "stopped");
    for (int i = 0; i < 3; i++)
        event_free(sigs[i]);
    broker_free(b);
    rules_host_free(rules); /* after the sessions: they free their rule attrs through it */
    event_base_free(base);
    config_fini(&cfg);
    log_close();
    return 0;
}
