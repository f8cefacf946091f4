/* Command-line options of tidemq-bench: defaults, parsing, validation and the usage text.
 * Nothing here touches the network. */
#include "bench.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_text[] =
    "usage: tidemq-bench [options]\n"
    "  --host H              broker address (default 127.0.0.1)\n"
    "  --port P              broker port (default 1883)\n"
    "  --scenario S          fan-in | fan-out | pairs | connections (default fan-in)\n"
    "  --publishers N        fan-in publishers (default 8); fan-out: default 1\n"
    "  --subscribers N       fan-out subscribers (default 100); fan-in: default 1\n"
    "  --pairs N             pairs scenario: publisher/subscriber pairs (default 50)\n"
    "  --connections N       connections scenario: idle connections (default 1000)\n"
    "  --qos 0|1|2           publish and subscribe QoS (default 0)\n"
    "  --payload BYTES       payload size, at least 16 (default 64)\n"
    "  --duration SECONDS    measured publishing time, or hold time for connections "
    "(default 10)\n"
    "  --messages N          messages per publisher instead of a duration (capped by "
    "--duration, default 60 then)\n"
    "  --rate R              msgs/s per publisher, 0 = as fast as flow control allows "
    "(default 0)\n"
    "  --inflight N          max unacknowledged QoS 1/2 messages per publisher (default 20)\n"
    "  --protocol 4|5        MQTT 3.1.1 or 5 (default 4)\n"
    "  --broker-pid PID      report the broker's CPU per message and RSS from /proc\n"
    "  --warmup SECONDS      unmeasured publishing before the window (default 1)\n"
    "  --drain SECONDS       max wait for stragglers after publishing stops, <= 5 (default 5)\n"
    "  --wildcard            fan-in: one topic per publisher, subscriber uses a + filter\n"
    "  --json-payload        payload is a JSON object {\"t\":..,\"p\":..,\"s\":..,\"c\":21.25} "
    "(at least 64 bytes)\n"
    "  --connect-timeout S   per connection, until CONNACK/SUBACK (default 10)\n"
    "  --connect-concurrency N  connection attempts in flight at once (default 100)\n"
    "  --keepalive SECONDS   keepalive sent in CONNECT (default 60; pings every 20 s)\n"
    "  --json                print one JSON object instead of the table\n"
    "  -h, --help\n";

enum {
    OPT_HOST = 256,
    OPT_PORT,
    OPT_SCENARIO,
    OPT_PUBLISHERS,
    OPT_SUBSCRIBERS,
    OPT_PAIRS,
    OPT_CONNECTIONS,
    OPT_QOS,
    OPT_PAYLOAD,
    OPT_DURATION,
    OPT_MESSAGES,
    OPT_RATE,
    OPT_INFLIGHT,
    OPT_PROTOCOL,
    OPT_BROKER_PID,
    OPT_JSON,
    OPT_WARMUP,
    OPT_DRAIN,
    OPT_WILDCARD,
    OPT_CONNECT_TIMEOUT,
    OPT_CONNECT_CONCURRENCY,
    OPT_KEEPALIVE,
    OPT_JSON_PAYLOAD,
};

static const struct option long_opts[] = {
    {"host", required_argument, NULL, OPT_HOST},
    {"port", required_argument, NULL, OPT_PORT},
    {"scenario", required_argument, NULL, OPT_SCENARIO},
    {"publishers", required_argument, NULL, OPT_PUBLISHERS},
    {"subscribers", required_argument, NULL, OPT_SUBSCRIBERS},
    {"pairs", required_argument, NULL, OPT_PAIRS},
    {"connections", required_argument, NULL, OPT_CONNECTIONS},
    {"qos", required_argument, NULL, OPT_QOS},
    {"payload", required_argument, NULL, OPT_PAYLOAD},
    {"duration", required_argument, NULL, OPT_DURATION},
    {"messages", required_argument, NULL, OPT_MESSAGES},
    {"rate", required_argument, NULL, OPT_RATE},
    {"inflight", required_argument, NULL, OPT_INFLIGHT},
    {"protocol", required_argument, NULL, OPT_PROTOCOL},
    {"broker-pid", required_argument, NULL, OPT_BROKER_PID},
    {"json", no_argument, NULL, OPT_JSON},
    {"warmup", required_argument, NULL, OPT_WARMUP},
    {"drain", required_argument, NULL, OPT_DRAIN},
    {"wildcard", no_argument, NULL, OPT_WILDCARD},
    {"connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT},
    {"connect-concurrency", required_argument, NULL, OPT_CONNECT_CONCURRENCY},
    {"keepalive", required_argument, NULL, OPT_KEEPALIVE},
    {"json-payload", no_argument, NULL, OPT_JSON_PAYLOAD},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

const char *bench_scenario_name(enum bench_scenario s)
{
    switch (s) {
    case SCEN_FAN_IN:
        return "fan-in";
    case SCEN_FAN_OUT:
        return "fan-out";
    case SCEN_PAIRS:
        return "pairs";
    case SCEN_CONNECTIONS:
        return "connections";
    }
    return "?";
}

/* Parses an unsigned integer in [lo, hi]; prints an error naming the option otherwise. */
static int parse_uint(const char *name, const char *s, unsigned long long lo, unsigned long long hi,
                      unsigned long long *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v < lo || v > hi) {
        fprintf(stderr, "tidemq-bench: --%s: expected an integer in [%llu, %llu], got '%s'\n", name,
                lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_double(const char *name, const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "tidemq-bench: --%s: expected a number in [%g, %g], got '%s'\n", name, lo,
                hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

static void set_defaults(struct bench_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->host = "127.0.0.1";
    o->port = 1883;
    o->scenario = SCEN_FAN_IN;
    o->pairs = 50;
    o->connections = 1000;
    o->payload = 64;
    o->duration = 10;
    o->inflight = 20;
    o->protocol = 4;
    o->warmup = 1;
    o->drain = 5;
    o->connect_timeout = 10;
    o->connect_concurrency = 100;
    o->keepalive = 60;
}

/* Applies one option; returns 0 or -1 (error printed). */
static int apply(struct bench_opts *o, int opt, const char *arg)
{
    unsigned long long u;
    double d;
    const char *name = NULL;
    for (const struct option *lo = long_opts; lo->name; lo++)
        if (lo->val == opt)
            name = lo->name;

    switch (opt) {
    case OPT_HOST:
        o->host = arg;
        return 0;
    case OPT_PORT:
        if (parse_uint(name, arg, 1, 65535, &u) < 0)
            return -1;
        o->port = (uint16_t)u;
        return 0;
    case OPT_SCENARIO:
        for (int s = SCEN_FAN_IN; s <= SCEN_CONNECTIONS; s++)
            if (!strcmp(arg, bench_scenario_name((enum bench_scenario)s))) {
                o->scenario = (enum bench_scenario)s;
                return 0;
            }
        fprintf(stderr,
                "tidemq-bench: --scenario: expected fan-in, fan-out, pairs or "
                "connections, got '%s'\n",
                arg);
        return -1;
    case OPT_PUBLISHERS:
    case OPT_SUBSCRIBERS:
    case OPT_PAIRS:
    case OPT_CONNECTIONS:
        if (parse_uint(name, arg, 1, 1000000, &u) < 0)
            return -1;
        if (opt == OPT_PUBLISHERS)
            o->publishers = (unsigned)u;
        else if (opt == OPT_SUBSCRIBERS)
            o->subscribers = (unsigned)u;
        else if (opt == OPT_PAIRS)
            o->pairs = (unsigned)u;
        else
            o->connections = (unsigned)u;
        return 0;
    case OPT_QOS:
        if (parse_uint(name, arg, 0, 2, &u) < 0)
            return -1;
        o->qos = (uint8_t)u;
        return 0;
    case OPT_PAYLOAD:
        if (parse_uint(name, arg, 0, 16u << 20, &u) < 0)
            return -1;
        o->payload = (size_t)u;
        return 0;
    case OPT_DURATION:
        if (parse_double(name, arg, 0.1, 3600, &d) < 0)
            return -1;
        o->duration = d;
        o->duration_set = true;
        return 0;
    case OPT_MESSAGES:
        if (parse_uint(name, arg, 1, UINT32_MAX, &u) < 0)
            return -1;
        o->messages = u;
        return 0;
    case OPT_RATE:
        if (parse_double(name, arg, 0, 1e9, &d) < 0)
            return -1;
        o->rate = d;
        return 0;
    case OPT_INFLIGHT:
        if (parse_uint(name, arg, 1, 65535, &u) < 0)
            return -1;
        o->inflight = (unsigned)u;
        return 0;
    case OPT_PROTOCOL:
        if (parse_uint(name, arg, 4, 5, &u) < 0)
            return -1;
        o->protocol = (uint8_t)u;
        return 0;
    case OPT_BROKER_PID:
        if (parse_uint(name, arg, 1, INT32_MAX, &u) < 0)
            return -1;
        o->broker_pid = (pid_t)u;
        return 0;
    case OPT_JSON:
        o->json = true;
        return 0;
    case OPT_WARMUP:
        return parse_double(name, arg, 0, 600, &o->warmup);
    case OPT_DRAIN:
        return parse_double(name, arg, 0, 5, &o->drain);
    case OPT_WILDCARD:
        o->wildcard = true;
        return 0;
    case OPT_JSON_PAYLOAD:
        o->json_payload = true;
        return 0;
    case OPT_CONNECT_TIMEOUT:
        return parse_double(name, arg, 0.1, 600, &o->connect_timeout);
    case OPT_CONNECT_CONCURRENCY:
        if (parse_uint(name, arg, 1, 100000, &u) < 0)
            return -1;
        o->connect_concurrency = (unsigned)u;
        return 0;
    case OPT_KEEPALIVE:
        if (parse_uint(name, arg, 0, 65535, &u) < 0)
            return -1;
        o->keepalive = (unsigned)u;
        return 0;
    }
    return -1;
}

int bench_opts_parse(struct bench_opts *o, int argc, char **argv)
{
    set_defaults(o);
    int opt;
    while ((opt = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
        if (opt == 'h') {
            fputs(usage_text, stdout);
            return 1;
        }
        if (opt == '?' || apply(o, opt, optarg) < 0) {
            fputs(usage_text, stderr);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "tidemq-bench: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }

    switch (o->scenario) {
    case SCEN_FAN_IN:
        if (!o->publishers)
            o->publishers = 8;
        if (!o->subscribers)
            o->subscribers = 1;
        break;
    case SCEN_FAN_OUT:
        if (!o->publishers)
            o->publishers = 1;
        if (!o->subscribers)
            o->subscribers = 100;
        break;
    case SCEN_PAIRS:
        o->publishers = o->subscribers = o->pairs;
        break;
    case SCEN_CONNECTIONS:
        o->publishers = o->subscribers = 0;
        break;
    }
    if (o->scenario != SCEN_CONNECTIONS && o->payload < BENCH_PAYLOAD_MIN) {
        fprintf(stderr, "tidemq-bench: --payload %zu raised to %d (timestamp, publisher, seq)\n",
                o->payload, BENCH_PAYLOAD_MIN);
        o->payload = BENCH_PAYLOAD_MIN;
    }
    if (o->scenario != SCEN_CONNECTIONS && o->json_payload && o->payload < BENCH_JSON_MIN) {
        fprintf(stderr, "tidemq-bench: --payload %zu raised to %d for --json-payload\n",
                o->payload, BENCH_JSON_MIN);
        o->payload = BENCH_JSON_MIN;
    }
    /* --messages ends the run when every publisher is through; --duration still bounds it. */
    if (o->messages && !o->duration_set)
        o->duration = 60;
    return 0;
}
