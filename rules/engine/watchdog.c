/* The wall-clock watchdog: the count hook only sees Lua instructions, so a rule that calls a C
 * function costing milliseconds in a loop (("x"):rep(8e6):upper(), a plain find in a big string)
 * would run a thousand of those calls between two budget checks — seconds of stall. One helper
 * thread watches the running call's wall-clock deadline (the backstop, ten times the budget) and,
 * once it passes while the loop thread keeps spending CPU on that call, sets the VM's count hook
 * to fire on the next instruction, which then aborts the call. lua_sethook is safe from outside
 * the running code (LuaJIT's own interpreter calls it from a signal handler, and every mixed
 * state of its fields is valid).
 *
 * Entering and leaving a call takes no lock: the loop thread publishes the watched call in
 * `slot_*` under a sequence word (`state`, a seqlock: WRITING while the fields change, a new
 * generation after each change), and the thread reads them as a consistent snapshot. To poke,
 * the thread first claims the snapshot's generation (compare-and-swap to POKING); a loop thread
 * that changes the slot while the watched call may be poked (watchdog_leave, or an enter nested
 * in a watched call) sets WRITING with one atomic read-modify-write, which makes any later claim
 * fail, and waits out a claim already made (the poke is one lua_sethook: rare, and short). So a
 * poke only lands on the call it was meant for, while that call is watched, and after
 * watchdog_leave returns the thread never touches that lua_State again: vm_close needs nothing
 * more. An enter from an empty slot (the common case) takes no read-modify-write at all: no
 * claim can exist for a generation that watches nothing.
 *
 * The thread sleeps while no call runs and otherwise until the watched deadline (publishing the
 * time it sleeps until in `waiting_until`); only a call that enters with an earlier deadline than
 * that (the first call after an idle spell, a hook after a long init) wakes it, under the mutex,
 * and marks it woken so the calls before it runs again do not signal it again.
 * Publishing the slot and reading `waiting_until` (loop thread), and publishing `waiting_until`
 * and re-reading `state` (the thread, under the mutex, before it sleeps) are sequentially
 * consistent pairs: either the thread sees the new call before it sleeps or the loop thread sees
 * the time it sleeps until, and signals it once it waits. No call wakes it otherwise.
 *
 * The slot is for calls of one loop thread (nested calls restore the outer one on leave): `cur`
 * is that thread's own copy of what it published. */
#include "engine_internal.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#define ST_WRITING 1u /* the loop thread is changing the slot */
#define ST_POKING 2u  /* the thread claimed this generation and is poking its L */
#define ST_GEN 4u     /* one generation */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static atomic_bool started;
static bool running; /* the thread exists (written before `started`) */

static atomic_uint_fast64_t state;
static _Atomic(lua_State *) slot_L; /* NULL: no call watched */
static _Atomic(lua_Hook) slot_hook;
static atomic_uint_fast64_t slot_deadline, slot_interval;
static atomic_int slot_clock;
static atomic_uint_fast64_t waiting_until; /* when the thread wakes next on its own */

static struct watchdog_slot cur; /* the loop thread's: what it last published */

static uint64_t thread_cpu_ns(clockid_t id)
{
    struct timespec ts;
    if (clock_gettime(id, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Reads the slot; false while the loop thread is changing it (or changed it meanwhile). */
static bool snapshot(struct watchdog_slot *s, uint64_t *gen)
{
    uint64_t g = atomic_load_explicit(&state, memory_order_acquire);
    if (g & ST_WRITING)
        return false;
    /* acquire: the second read of the word comes after these (no fence: ThreadSanitizer does
     * not model fences; on x86 these are plain loads either way) */
    s->L = atomic_load_explicit(&slot_L, memory_order_acquire);
    s->hook = atomic_load_explicit(&slot_hook, memory_order_acquire);
    s->deadline_ns = atomic_load_explicit(&slot_deadline, memory_order_acquire);
    s->interval_ns = atomic_load_explicit(&slot_interval, memory_order_acquire);
    s->cpu_clock = atomic_load_explicit(&slot_clock, memory_order_acquire);
    *gen = g;
    return atomic_load_explicit(&state, memory_order_relaxed) == g;
}

/* Sets s->L's count hook to fire on its next instruction, if generation gen (whose snapshot s
 * is) is still the one watched; false if it is not (the call left: nothing touched). */
static bool poke(const struct watchdog_slot *s, uint64_t gen)
{
    uint_fast64_t want = gen;
    if (!atomic_compare_exchange_strong_explicit(&state, &want, gen | ST_POKING,
                                                 memory_order_acquire, memory_order_relaxed))
        return false;
    lua_sethook(s->L, s->hook, LUA_MASKCOUNT, 1);
    atomic_fetch_and_explicit(&state, ~(uint_fast64_t)ST_POKING, memory_order_release);
    return true;
}

static void *watch(void *arg)
{
    (void)arg;
    uint64_t gen = UINT64_MAX; /* the generation the fields below are about */
    uint64_t next_ns = 0, cpu_mark = 0;
    bool poked = false;
    pthread_mutex_lock(&mu);
    for (;;) {
        struct watchdog_slot s;
        uint64_t g;
        if (!snapshot(&s, &g)) {
            sched_yield(); /* the loop thread is between two stores */
            continue;
        }
        if (g != gen) {
            gen = g;
            next_ns = s.deadline_ns;
            cpu_mark = 0;
            poked = false;
        }
        uint64_t until = UINT64_MAX;
        if (s.L && !poked) {
            uint64_t now = vm_wall_ns();
            if (now >= next_ns) {
                /* Past the backstop. Poke only a loop thread that spent most of the last
                 * interval running this call: one the scheduler put aside (a busy machine) is
                 * not stalling anything by itself, and aborting its call would drop a message
                 * for nothing. */
                uint64_t cpu = thread_cpu_ns(s.cpu_clock);
                if (cpu_mark && cpu - cpu_mark >= s.interval_ns / 2) {
                    poked = poke(&s, g); /* if the call left meanwhile: look again */
                    continue;
                }
                cpu_mark = cpu;
                next_ns = now + s.interval_ns;
            }
            until = next_ns;
        }
        atomic_store_explicit(&waiting_until, until, memory_order_seq_cst);
        if (atomic_load_explicit(&state, memory_order_seq_cst) != g)
            continue; /* a call entered or left since the snapshot */
        if (until == UINT64_MAX) {
            pthread_cond_wait(&cv, &mu);
        } else {
            struct timespec ts = {(time_t)(until / 1000000000u), (long)(until % 1000000000u)};
            pthread_cond_timedwait(&cv, &mu, &ts);
        }
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
    atomic_store_explicit(&waiting_until, UINT64_MAX, memory_order_relaxed);
    pthread_t t;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    running = pthread_create(&t, &a, watch, NULL) == 0; /* without it: instruction checks only */
    pthread_attr_destroy(&a);
    atomic_store_explicit(&started, true, memory_order_release);
}

/* The calling thread's CPU clock (pthread_getcpuclockid needs no system call, but is a call). */
static clockid_t cpu_clock_of_thread(void)
{
    static _Thread_local bool known;
    static _Thread_local clockid_t id;
    if (!known) {
        id = CLOCK_THREAD_CPUTIME_ID;
        pthread_getcpuclockid(pthread_self(), &id); /* the tid, encoded */
        known = true;
    }
    return id;
}

/* Makes *s the watched call (s->L NULL: none). Inlined: on the path of every call. */
static inline __attribute__((always_inline)) void publish(const struct watchdog_slot *s)
{
    uint_fast64_t g;
    if (cur.L) {
        /* The thread may be poking cur.L: from here on it cannot claim it, and one that did
         * has finished (its lua_sethook happens before what follows) once POKING is clear. */
        g = atomic_fetch_or_explicit(&state, ST_WRITING, memory_order_acquire);
        while (g & ST_POKING) {
            sched_yield();
            g = atomic_load_explicit(&state, memory_order_acquire);
        }
    } else {
        /* Nothing watched: nothing can be claimed, and only this thread changes the word. */
        g = atomic_load_explicit(&state, memory_order_relaxed);
        atomic_store_explicit(&state, g | ST_WRITING, memory_order_relaxed);
    }
    /* release: a reader that sees any of these sees WRITING too (plain stores on x86) */
    atomic_store_explicit(&slot_L, s->L, memory_order_release);
    atomic_store_explicit(&slot_hook, s->hook, memory_order_release);
    atomic_store_explicit(&slot_deadline, s->deadline_ns, memory_order_release);
    atomic_store_explicit(&slot_interval, s->interval_ns, memory_order_release);
    atomic_store_explicit(&slot_clock, s->cpu_clock, memory_order_release);
    cur = *s;
    g = (g & ~(uint_fast64_t)(ST_WRITING | ST_POKING)) + ST_GEN;
    if (!s->L) {
        atomic_store_explicit(&state, g, memory_order_release);
        return;
    }
    atomic_store_explicit(&state, g, memory_order_seq_cst);
    if (running && s->deadline_ns < atomic_load_explicit(&waiting_until, memory_order_seq_cst)) {
        /* Asleep, or waiting for a later deadline: the mutex is free only while it waits (or
         * before it first ran). It looks at the slot again before it sleeps, so until then no
         * other call needs to signal it (0: woken, not yet asleep again). */
        pthread_mutex_lock(&mu);
        atomic_store_explicit(&waiting_until, 0, memory_order_relaxed);
        pthread_cond_signal(&cv);
        pthread_mutex_unlock(&mu);
    }
}

void watchdog_enter(lua_State *L, lua_Hook hook, uint64_t deadline_ns, uint64_t budget_ns,
                    struct watchdog_slot *saved)
{
    if (!atomic_load_explicit(&started, memory_order_acquire))
        pthread_once(&once, start);
    struct watchdog_slot s = {L, hook, deadline_ns, budget_ns, cpu_clock_of_thread()};
    *saved = cur;
    publish(&s);
}

void watchdog_leave(const struct watchdog_slot *saved)
{
    publish(saved);
}
