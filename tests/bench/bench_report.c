/* tidemq-bench's output: a human-readable table, or one flat JSON object (flat so that
 * scripts/bench can read fields with grep). Reads the result; changes nothing. */
#include "bench.h"

#include <stdio.h>

static double ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

/* Writes s as a JSON string body (the error text is ours, but may quote a broker's words). */
static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

void bench_report_text(const struct bench *b, const struct bench_result *r)
{
    const struct bench_opts *o = &b->o;
    printf("tidemq-bench %s  broker=%s:%u protocol=%u", bench_scenario_name(o->scenario), o->host,
           o->port, o->protocol);
    if (o->scenario == SCEN_CONNECTIONS) {
        printf(" connections=%u hold=%.1fs\n", o->connections, o->duration);
        printf("  %-22s %u of %u (failed %u, lost during hold %u)\n", "connected", r->connected,
               o->connections, r->failed, r->lost);
        printf("  %-22s %.2f s (%.0f conn/s)\n", "connect time", r->connect_s,
               r->connect_s > 0 ? r->connected / r->connect_s : 0.0);
        if (b->have_rss_before && b->have_rss_after) {
            printf("  %-22s %llu kB -> %llu kB\n", "broker RSS",
                   (unsigned long long)r->rss_before_kb, (unsigned long long)r->rss_after_kb);
            printf("  %-22s %.0f bytes\n", "broker RSS/connection", r->rss_per_conn_bytes);
        }
    } else if (!b->measure_ns) {
        printf(" qos=%u publishers=%u subscribers=%u\n  not measured: %s\n", o->qos, b->npubs,
               b->nsubs, b->error);
    } else {
        printf(" qos=%u publishers=%u subscribers=%u payload=%zuB", o->qos, b->npubs, b->nsubs,
               o->payload);
        if (o->rate > 0)
            printf(" rate=%g/s", o->rate);
        if (o->qos)
            printf(" inflight=%u", o->inflight);
        printf("\n");
        printf("  %-22s %.2f s (warm-up %.1f s: %llu sent, %llu delivered)\n", "publishing",
               r->publish_s, o->warmup, (unsigned long long)r->warm_sent,
               (unsigned long long)r->warm_delivered);
        printf("  %-22s %llu (%.0f msgs/s)\n", "sent", (unsigned long long)r->sent, r->sent_per_s);
        if (o->qos)
            printf("  %-22s %llu\n", "acknowledged", (unsigned long long)r->acked);
        printf("  %-22s %llu of %llu expected\n", "delivered", (unsigned long long)r->delivered,
               (unsigned long long)r->expected);
        printf("  %-22s %llu\n", "dropped", (unsigned long long)r->dropped);
        if (r->out_of_order)
            printf("  %-22s %llu\n", "duplicate/out of order", (unsigned long long)r->out_of_order);
        printf("  %-22s %.0f (%llu copies received in the %.2f s window; last measured one at "
               "%.2f s)\n",
               "delivered msgs/s", r->delivered_per_s, (unsigned long long)r->win_delivered,
               r->window_s, r->deliver_s);
        printf("  %-22s %.3f / %.3f ms (p99.9 %.3f, max %.3f)\n", "latency p50/p99",
               ms(r->lat_p50_ns), ms(r->lat_p99_ns), ms(r->lat_p999_ns), ms(r->lat_max_ns));
        if (r->have_cpu)
            printf("  %-22s %.2f s in the window = %.3f us/delivered msg\n", "broker CPU",
                   r->broker_cpu_s, r->broker_cpu_us_per_msg);
        printf("  %-22s %.0f %% of a core (window)\n", "bench CPU", r->bench_cpu_pct);
    }
    if (r->have_rss)
        printf("  %-22s %llu kB\n", "broker RSS at end", (unsigned long long)r->broker_rss_kb);
    if (b->error_count)
        printf("  %-22s %u (first: %s)\n", "errors", b->error_count, b->error);
}

void bench_report_json(const struct bench *b, const struct bench_result *r)
{
    const struct bench_opts *o = &b->o;
    printf("{\"scenario\":\"%s\",\"protocol\":%u,\"qos\":%u", bench_scenario_name(o->scenario),
           o->protocol, o->qos);
    if (o->scenario == SCEN_CONNECTIONS) {
        printf(",\"connections\":%u,\"hold_s\":%.3f,\"connected\":%u,\"failed\":%u,\"lost\":%u"
               ",\"connect_s\":%.3f,\"nofile\":%llu",
               o->connections, o->duration, r->connected, r->failed, r->lost, r->connect_s,
               (unsigned long long)r->nofile);
        if (b->have_rss_before && b->have_rss_after)
            printf(",\"broker_rss_before_kb\":%llu,\"broker_rss_after_kb\":%llu"
                   ",\"broker_rss_per_conn_bytes\":%.1f",
                   (unsigned long long)r->rss_before_kb, (unsigned long long)r->rss_after_kb,
                   r->rss_per_conn_bytes);
    } else {
        printf(",\"publishers\":%u,\"subscribers\":%u,\"payload\":%zu,\"rate\":%g,\"inflight\":%u"
               ",\"publish_s\":%.3f,\"window_s\":%.3f,\"window_delivered\":%llu"
               ",\"deliver_s\":%.3f,\"sent\":%llu,\"acked\":%llu"
               ",\"expected\":%llu,\"delivered\":%llu,\"dropped\":%llu,\"out_of_order\":%llu"
               ",\"warmup_sent\":%llu,\"warmup_delivered\":%llu"
               ",\"sent_per_s\":%.1f,\"delivered_per_s\":%.1f"
               ",\"latency_p50_us\":%.1f,\"latency_p99_us\":%.1f,\"latency_p999_us\":%.1f"
               ",\"latency_max_us\":%.1f,\"bench_cpu_pct\":%.1f",
               b->npubs, b->nsubs, o->payload, o->rate, o->inflight, r->publish_s, r->window_s,
               (unsigned long long)r->win_delivered, r->deliver_s, (unsigned long long)r->sent,
               (unsigned long long)r->acked, (unsigned long long)r->expected,
               (unsigned long long)r->delivered, (unsigned long long)r->dropped,
               (unsigned long long)r->out_of_order, (unsigned long long)r->warm_sent,
               (unsigned long long)r->warm_delivered, r->sent_per_s, r->delivered_per_s,
               (double)r->lat_p50_ns / 1e3, (double)r->lat_p99_ns / 1e3,
               (double)r->lat_p999_ns / 1e3, (double)r->lat_max_ns / 1e3, r->bench_cpu_pct);
        if (r->have_cpu)
            printf(",\"broker_cpu_s\":%.3f,\"broker_cpu_us_per_msg\":%.4f", r->broker_cpu_s,
                   r->broker_cpu_us_per_msg);
    }
    if (r->have_rss)
        printf(",\"broker_rss_kb\":%llu", (unsigned long long)r->broker_rss_kb);
    if (o->json_payload)
        printf(",\"json_payload\":true,\"bad_payloads\":%llu",
               (unsigned long long)b->bad_payloads);
    printf(",\"errors\":%u,\"error\":", b->error_count);
    json_str(b->error);
    printf(",\"ok\":%s}\n", b->ok ? "true" : "false");
}
