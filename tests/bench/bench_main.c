/* tidemq-bench: an MQTT load generator. Many client connections from one single-threaded libevent
 * process; measures delivered throughput, loss, end-to-end latency and (with --broker-pid) the
 * broker's CPU per message and memory. This file is the composition root: options, limits, the
 * event loop, the run, the report, and the exit status (0: ran with every connection up; 1: a
 * connection failed or was lost, or the run could not start; 2: usage). */
#include "bench.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

int main(int argc, char **argv)
{
    static struct bench b; /* large (the histogram); zeroed */
    int rc = bench_opts_parse(&b.o, argc, argv);
    if (rc)
        return rc > 0 ? 0 : 2;
    signal(SIGPIPE, SIG_IGN);
    b.nofile = proc_raise_nofile();

    b.base = event_base_new();
    if (!b.base) {
        fprintf(stderr, "tidemq-bench: event_base_new failed\n");
        return 1;
    }
    struct bench_result r;
    rc = bench_run(&b, &r);
    b.ok = rc == 0;
    if (b.o.json)
        bench_report_json(&b, &r);
    else
        bench_report_text(&b, &r);
    fflush(stdout);

    for (unsigned i = 0; i < b.nconns; i++)
        bconn_fini(&b.conns[i]);
    free(b.conns);
    for (unsigned i = 0; i < b.ntopics; i++)
        free(b.topics[i]);
    free(b.topics);
    if (b.tick)
        event_free(b.tick);
    if (b.pinger)
        event_free(b.pinger);
    event_base_free(b.base);
    return rc == 0 ? 0 : 1;
}
