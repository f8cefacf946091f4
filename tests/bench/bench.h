/* Shared declarations of tidemq-bench, the load generator: options, the run state, one client
 * connection, and the functions the bench_*.c files offer each other. Only tests/bench/ includes
 * this header. Everything runs on one thread and one event_base; nothing here is thread-safe. */
#ifndef TIDE_BENCH_H
#define TIDE_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "util/buf.h"

struct event;
struct event_base;

/* --- options (bench_opts.c) --- */

enum bench_scenario { SCEN_FAN_IN, SCEN_FAN_OUT, SCEN_PAIRS, SCEN_CONNECTIONS };

struct bench_opts {
    const char *host;
    uint16_t port;
    enum bench_scenario scenario;
    unsigned publishers, subscribers, pairs, connections;
    uint8_t qos;
    uint8_t protocol; /* 4 (3.1.1) or 5 */
    size_t payload;   /* bytes, at least BENCH_PAYLOAD_MIN */
    double duration;  /* seconds of measured publishing (or holding, for connections) */
    bool duration_set;
    uint64_t messages; /* per publisher, 0: publish for `duration` */
    double rate;       /* msgs/s per publisher, 0: as fast as flow control allows */
    unsigned inflight; /* max unacknowledged QoS 1/2 PUBLISHes per publisher */
    pid_t broker_pid;  /* 0: no broker figures */
    bool json;
    double warmup;                /* seconds of unmeasured publishing before the window */
    double drain;                 /* max seconds to wait for stragglers after publishing stops */
    double connect_timeout;       /* seconds for one connection to get its CONNACK (and SUBACK) */
    unsigned connect_concurrency; /* connection attempts in progress at once */
    unsigned keepalive;           /* seconds, sent in CONNECT */
    bool wildcard;                /* fan-in: one topic per publisher, the subscriber uses `+` */
    bool json_payload;            /* payload is a JSON object (see BENCH_JSON_MIN) */
};

/* Fills o from argv. Returns 0, 1 when --help was printed, or -1 after printing an error. */
int bench_opts_parse(struct bench_opts *o, int argc, char **argv);
const char *bench_scenario_name(enum bench_scenario s);

/* --- latency histogram (bench_stats.c) --- */

#define HIST_SUB_BITS 6
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_BUCKETS ((64 - HIST_SUB_BITS + 1) * HIST_SUB)

/* Log-linear histogram of nanosecond values: ~1.5% relative precision, fixed size, no
 * allocation. */
struct bench_hist {
    uint64_t count[HIST_BUCKETS];
    uint64_t total;
    uint64_t min, max;
};

void hist_init(struct bench_hist *h);
void hist_add(struct bench_hist *h, uint64_t v);
/* The value at quantile q (0..1), as the midpoint of its bucket; 0 when empty. */
uint64_t hist_quantile(const struct bench_hist *h, double q);

/* --- /proc and process limits (bench_proc.c) --- */

/* utime+stime of pid in nanoseconds (clock-tick resolution). Returns 0 or -1. */
int proc_cpu_ns(pid_t pid, uint64_t *out);
/* VmRSS of pid in kB. Returns 0 or -1. */
int proc_rss_kb(pid_t pid, uint64_t *out);
/* This process's user+system CPU in nanoseconds. */
uint64_t proc_self_cpu_ns(void);
/* Raises RLIMIT_NOFILE's soft limit to the hard limit; returns the new soft limit. */
uint64_t proc_raise_nofile(void);
/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t now_ns(void);

/* --- one client connection (bench_client.c) --- */

enum bconn_role { ROLE_PUB, ROLE_SUB, ROLE_IDLE };

enum bconn_state {
    CS_QUEUED,  /* not started yet */
    CS_TCP,     /* non-blocking connect() in progress */
    CS_CONNACK, /* CONNECT sent */
    CS_SUBACK,  /* SUBSCRIBE sent */
    CS_READY,
    CS_FAILED, /* never became ready */
    CS_LOST,   /* was ready, then closed by the broker or an error */
    CS_CLOSED, /* closed by us at the end */
};

/* Payload layout (host byte order: sender and receiver are the same machine):
 * [0,8) CLOCK_MONOTONIC ns at send, [8,12) publisher index | BENCH_WARMUP_BIT, [12,16) sequence. */
#define BENCH_PAYLOAD_MIN 16
#define BENCH_WARMUP_BIT 0x80000000u
/* With --json-payload the same three figures travel as hex strings in a JSON object a rule can
 * decode, change and encode again (any key order, any extra keys):
 * {"t":"<16 hex>","p":"<8 hex>","s":"<8 hex>","c":21.25} (64 bytes; longer payloads add an "x"
 * string of padding). */
#define BENCH_JSON_MIN 64

struct bconn {
    struct bench *b;
    int fd;
    struct event *ev_read, *ev_write;
    enum bconn_role role;
    enum bconn_state state;
    unsigned idx;        /* index within its role */
    bool write_armed;    /* ev_write pending: output waits for the socket */
    uint64_t started_ns; /* when the attempt began (connect timeout) */

    uint8_t *in; /* received bytes not yet parsed: in[0..in_len) */
    size_t in_len, in_cap;
    struct buf out; /* bytes to send: out.data[out_off..out.len) */
    size_t out_off;

    const char *topic; /* publish topic or subscription filter; owned by struct bench */

    /* publisher */
    struct buf tmpl;         /* one encoded PUBLISH, patched per message */
    size_t pid_off, pay_off; /* offsets of the packet id and the payload in tmpl */
    size_t json_t, json_p, json_s; /* --json-payload: offsets of the hex digits in the payload */
    uint16_t *free_ids;      /* stack of unused packet ids 1..inflight */
    unsigned free_n;
    uint8_t *id_state; /* per packet id: ID_* below */
    uint32_t seq;      /* next measured sequence number */
    uint32_t warm_seq;
    uint64_t phase_sent; /* sent in the current phase (rate pacing) */
    bool done;           /* --messages reached */

    /* subscriber */
    uint32_t *next_seq; /* per tracked publisher: the sequence expected next */
    unsigned track_n;
    uint64_t received; /* measured messages received */
};

#define ID_FREE 0
#define ID_WAIT_ACK 1  /* PUBLISH sent, waiting for PUBACK or PUBREC */
#define ID_WAIT_COMP 2 /* PUBREL sent, waiting for PUBCOMP */
#define ID_WARMUP 0x80 /* flag: sent during warm-up */

/* Allocates the connection's buffers (by role) and, for publishers, encodes its PUBLISH
 * template. The struct is owned by the caller (an array in struct bench). */
void bconn_init(struct bconn *c, struct bench *b, enum bconn_role role, unsigned idx,
                const char *topic);
void bconn_fini(struct bconn *c);
/* Starts the non-blocking connect. On immediate failure marks the connection CS_FAILED and
 * calls bench_conn_resolved. */
void bconn_start(struct bconn *c);
/* Fails a connection still in progress (timeout). */
void bconn_fail(struct bconn *c, const char *why);
/* Publisher: appends as many PUBLISHes as the phase, rate, inflight window and batch allow,
 * then sends. */
void bconn_pump(struct bconn *c);
void bconn_ping(struct bconn *c);
/* Sends DISCONNECT (best effort) and closes the socket. */
void bconn_close(struct bconn *c);

/* --- the run (bench_run.c) --- */

/* CONNECT: opening connections. SETTLE: connections scenario, before the RSS sample.
 * WARMUP: unmeasured publishing. WARM_DRAIN: waits for the warm-up's messages, so none of their
 * work falls into the window. MEASURE: the window (the hold, for connections). DRAIN: waits for
 * the window's messages. */
enum bench_phase { PH_CONNECT, PH_SETTLE, PH_WARMUP, PH_WARM_DRAIN, PH_MEASURE, PH_DRAIN, PH_DONE };

struct bench_result {
    uint64_t sent, acked, expected, delivered, dropped, out_of_order;
    uint64_t warm_sent, warm_delivered;
    double publish_s;       /* measured publishing time */
    double window_s;        /* the throughput/CPU window (see struct bench) */
    uint64_t win_delivered; /* copies received in the window */
    double deliver_s;       /* publishing start to the last measured delivery */
    double delivered_per_s; /* win_delivered / window_s */
    double sent_per_s;
    uint64_t lat_p50_ns, lat_p99_ns, lat_p999_ns, lat_max_ns;
    bool have_cpu, have_rss;
    double broker_cpu_s, broker_cpu_us_per_msg;
    uint64_t broker_rss_kb;
    double bench_cpu_pct;
    /* connections scenario */
    unsigned attempted, connected, failed, lost;
    double connect_s;
    uint64_t rss_before_kb, rss_after_kb;
    double rss_per_conn_bytes;
    uint64_t nofile;
};

struct bench {
    struct bench_opts o;
    struct event_base *base;
    struct sockaddr_storage addr; /* the broker, resolved once */
    socklen_t addrlen;
    char tag[64];         /* client id and topic prefix, unique per run */
    struct event *tick;   /* housekeeping: phases, timeouts, pacing */
    struct event *pinger; /* PINGREQ to every live connection */
    enum bench_phase phase;
    uint64_t phase_ns;    /* when the current phase began */
    uint64_t deadline_ns; /* hard stop for the whole run */

    struct bconn *conns; /* subscribers first, then publishers (or idle connections) */
    unsigned nconns, nsubs, npubs;
    char **topics; /* owned */
    unsigned ntopics;
    uint32_t copies_per_msg; /* subscribers that receive each message */

    unsigned next_start; /* next conns[] index to start */
    unsigned pending;    /* attempts in progress */
    bool starting;       /* inside start_more() */
    unsigned resolved, ready, failed, lost;
    uint64_t connect_begin_ns, connect_end_ns;

    /* counters: measured messages only unless named warm_ */
    uint64_t sent, acked, delivered, out_of_order, warm_sent, warm_acked, warm_delivered;
    uint64_t bad_payloads; /* --json-payload: copies whose fields could not be read */
    uint64_t last_progress_ns; /* last delivery or acknowledgement */
    uint64_t last_delivery_ns;
    unsigned pubs_done;
    struct bench_hist hist;

    uint64_t measure_ns, measure_end_ns, end_ns; /* measured publishing, and the run's end */
    /* The window over which throughput and CPU are taken: the measured publishing time (with
     * --messages, through the drain). Every copy a subscriber receives inside it counts,
     * warm-up stragglers included, so the figure is the broker's sustained delivery rate. */
    bool counting;
    uint64_t win_begin_ns, win_end_ns, win_delivered;
    uint64_t cpu0_ns, cpu1_ns, self_cpu0_ns, self_cpu1_ns;
    bool have_cpu;
    uint64_t rss_before_kb, rss_after_kb, rss_end_kb;
    bool have_rss_before, have_rss_after, have_rss_end;
    uint64_t nofile;

    bool ok;         /* bench_run returned 0 */
    char error[256]; /* first error seen, for the report */
    unsigned error_count;
};

/* Builds the connections for the scenario, runs the loop to the end and fills r.
 * Returns 0 if the run completed with every connection up, -1 if it could not be set up or a
 * connection failed or was lost (r and b->error still describe what happened). */
int bench_run(struct bench *b, struct bench_result *r);
/* Called by bench_client.c when a connection attempt ends (ready or failed). */
void bench_conn_resolved(struct bench *b, struct bconn *c);
/* Called when a ready connection is lost. */
void bench_conn_lost(struct bench *b, struct bconn *c, const char *why);
/* Records an error message (the first is kept, all are counted). */
void bench_error(struct bench *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* --- output (bench_report.c) --- */

void bench_report_text(const struct bench *b, const struct bench_result *r);
void bench_report_json(const struct bench *b, const struct bench_result *r);

#endif
