/* Watches the rules directory with inotify so an edit is live within a second: file creation,
 * close after write, renames in and out (editors that write a temporary file and rename it),
 * deletion and permission changes. Events are debounced (a burst of them gives one call) but never
 * delayed past RULES_WATCH_MAX_DELAY_MS after the first. Knows nothing of rules: it calls back.
 * Loop thread only. */
#ifndef TIDE_RULES_WATCH_H
#define TIDE_RULES_WATCH_H

struct event_base;
struct rules_watch;

/* Quiet time after the last event before the callback runs, and the most the first event waits. */
#define RULES_WATCH_QUIET_MS 100
#define RULES_WATCH_MAX_DELAY_MS 400

typedef void (*rules_watch_fn)(void *arg);

/* Starts watching dir; fn(arg) runs on the loop after changes. Returns NULL (after logging why)
 * when the directory cannot be watched: reloads then come only from SIGHUP. */
struct rules_watch *rules_watch_new(struct event_base *base, const char *dir, rules_watch_fn fn,
                                    void *arg);
void rules_watch_free(struct rules_watch *w);

#endif
