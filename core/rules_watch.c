/* inotify on the rules directory, read on the event loop, debounced into one callback. */
#include "rules_watch.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <event2/event.h>

#include "broker.h"
#include "log.h"
#include "util/alloc.h"

/* Everything that can change what the directory's *.lua files hold. IN_MODIFY is left out on
 * purpose: a file half written is not worth loading; its IN_CLOSE_WRITE follows. */
#define WATCH_MASK                                                                                 \
    (IN_CREATE | IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_ATTRIB |          \
     IN_DELETE_SELF | IN_MOVE_SELF)

struct rules_watch {
    int fd;
    struct event *rev;      /* the inotify descriptor is readable */
    struct event *debounce; /* fires RULES_WATCH_QUIET_MS after the last event */
    uint64_t first_ms;      /* when the first event of the current burst arrived */
    rules_watch_fn fn;
    void *arg;
};

static void on_debounce(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct rules_watch *w = arg;
    w->first_ms = 0;
    w->fn(w->arg);
}

static void on_events(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct rules_watch *w = arg;
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool any = false;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0)
            break; /* EAGAIN: drained */
        any = true;
    }
    if (!any)
        return;
    uint64_t now = broker_now_ms();
    if (!w->first_ms)
        w->first_ms = now;
    /* each event pushes the reload back, but never past the burst's deadline */
    uint64_t wait = RULES_WATCH_QUIET_MS;
    uint64_t deadline = w->first_ms + RULES_WATCH_MAX_DELAY_MS;
    if (now + wait > deadline)
        wait = deadline > now ? deadline - now : 0;
    struct timeval tv = {(time_t)(wait / 1000), (suseconds_t)(wait % 1000) * 1000};
    evtimer_add(w->debounce, &tv);
}

struct rules_watch *rules_watch_new(struct event_base *base, const char *dir, rules_watch_fn fn,
                                    void *arg)
{
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) {
        log_warn("rules", "cannot watch %s: inotify: %s (reload with SIGHUP)", dir,
                 strerror(errno));
        return NULL;
    }
    if (inotify_add_watch(fd, dir, WATCH_MASK) < 0) {
        log_warn("rules", "cannot watch %s: %s (reload with SIGHUP)", dir, strerror(errno));
        close(fd);
        return NULL;
    }
    struct rules_watch *w = xcalloc(1, sizeof *w);
    w->fd = fd;
    w->fn = fn;
    w->arg = arg;
    w->rev = event_new(base, fd, EV_READ | EV_PERSIST, on_events, w);
    w->debounce = evtimer_new(base, on_debounce, w);
    event_add(w->rev, NULL);
    return w;
}

void rules_watch_free(struct rules_watch *w)
{
    if (!w)
        return;
    event_free(w->rev);
    event_free(w->debounce);
    close(w->fd);
    free(w);
}
