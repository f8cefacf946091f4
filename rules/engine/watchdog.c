/* The wall-clock watchdog: the count hook only sees Lua instructions, so a rule that calls a C
 * function costing milliseconds in a loop (("x"):rep(8e6):upper(), a plain find in a big string)
 * would run a thousand of those calls between two budget checks — seconds of stall. One helper
 * thread watches the running call's wall-clock deadline (the backstop, ten times the budget) and,
 * once it passes while the loop thread keeps spending CPU on that call, sets the VM's count hook
 * to fire on the next instruction, which then aborts the call. lua_sethook is safe from outside the running code (LuaJIT's own interpreter calls it from
 * a signal handler, and every mixed state of its fields is valid); the mutex only guarantees the
 * poke lands on the call it was meant for, never on a later one. The thread sleeps while no call
 * runs and otherwise until the watched deadline; a call that enters with an earlier deadline than
 * the one it sleeps for (a hook after a long init) wakes it. */
#include "engine_internal.h"

#include <pthread.h>
#include <stdbool.h>
#include <time.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static bool running;
static uint64_t waiting_until; /* when the thread wakes next on its own (UINT64_MAX: never) */
static struct watchdog_slot slot; /* the call being watched (L NULL: none) */

static uint64_t thread_cpu_ns(clockid_t id)
{
    struct timespec ts;
    if (clock_gettime(id, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *watch(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    for (;;) {
        if (!slot.L || slot.poked) {
            waiting_until = UINT64_MAX;
            pthread_cond_wait(&cv, &mu);
            continue;
        }
        uint64_t now = vm_wall_ns();
        if (now < slot.next_ns) {
            struct timespec ts = {(time_t)(slot.next_ns / 1000000000u),
                                  (long)(slot.next_ns % 1000000000u)};
            waiting_until = slot.next_ns;
            pthread_cond_timedwait(&cv, &mu, &ts);
            continue;
        }
        /* Past the backstop. Poke only a loop thread that spent most of the last interval running
         * this call: one the scheduler put aside (a busy machine) is not stalling anything by
         * itself, and aborting its call would drop a message for nothing. */
        uint64_t cpu = thread_cpu_ns(slot.cpu_clock);
        if (slot.cpu_mark && cpu - slot.cpu_mark >= slot.interval_ns / 2) {
            lua_sethook(slot.L, slot.hook, LUA_MASKCOUNT, 1);
            slot.poked = true;
            continue;
        }
        slot.cpu_mark = cpu;
        slot.next_ns = now + slot.interval_ns;
    }
    return NULL;
}

static void start(void)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* the clock of vm_wall_ns */
    pthread_cond_init(&cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_t t;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    running = pthread_create(&t, &a, watch, NULL) == 0; /* without it: instruction checks only */
    pthread_attr_destroy(&a);
}

void watchdog_enter(lua_State *L, lua_Hook hook, uint64_t deadline_ns, uint64_t budget_ns,
                    struct watchdog_slot *saved)
{
    pthread_once(&once, start);
    clockid_t cpu_clock = CLOCK_THREAD_CPUTIME_ID;
    pthread_getcpuclockid(pthread_self(), &cpu_clock); /* no system call: the tid, encoded */
    pthread_mutex_lock(&mu);
    *saved = slot;
    slot = (struct watchdog_slot){.L = L, .hook = hook, .deadline_ns = deadline_ns,
                                  .next_ns = deadline_ns, .interval_ns = budget_ns,
                                  .cpu_clock = cpu_clock};
    if (running && deadline_ns < waiting_until) /* asleep, or waiting for a later deadline */
        pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
}

void watchdog_leave(const struct watchdog_slot *saved)
{
    pthread_mutex_lock(&mu);
    slot = *saved;
    if (running && slot.L && slot.deadline_ns < waiting_until)
        pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
}
