/* What tidemq-bench reads from the operating system: the broker's CPU time and RSS from /proc,
 * its own CPU time, the monotonic clock, and the open-files limit. */
#include "bench.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int read_file(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = '\0';
    return n ? 0 : -1;
}

/* utime + stime of /proc/PID/stat: counted in clock ticks (10 ms), by sampling which side of
 * the kernel each tick lands on. */
static int proc_stat_cpu_ns(pid_t pid, uint64_t *out)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if (read_file(path, buf, sizeof(buf)) < 0)
        return -1;
    /* The command name (field 2) may hold spaces and parentheses: count fields after the
     * last ')'. Field 3 is the state; utime and stime are fields 14 and 15. */
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    unsigned long long utime, stime;
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2)
        return -1;
    long hz = sysconf(_SC_CLK_TCK);
    if (hz <= 0)
        hz = 100;
    *out = (uint64_t)(utime + stime) * (1000000000u / (uint64_t)hz);
    return 0;
}

/* The scheduler's own run time of every thread of pid (the first field of each
 * /proc/PID/task/TID/schedstat, in ns), summed. Tick sampling is too coarse and, in a virtual
 * machine, too erratic for a broker that spends a few per cent of a core (runs of the same
 * traffic differed by 30 %); this is exact. Falls back to /proc/PID/stat without schedstats. */
int proc_cpu_ns(pid_t pid, uint64_t *out)
{
    char path[64], buf[256];
    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    uint64_t sum = 0;
    int threads = 0;
    bool ok = true;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char tpath[96];
        unsigned long long ns;
        snprintf(tpath, sizeof(tpath), "/proc/%d/task/%.32s/schedstat", (int)pid, de->d_name);
        if (read_file(tpath, buf, sizeof(buf)) < 0 || sscanf(buf, "%llu", &ns) != 1) {
            ok = false; /* no schedstats, or the thread just ended */
            continue;
        }
        sum += ns;
        threads++;
    }
    closedir(d);
    if (!ok || !threads)
        return proc_stat_cpu_ns(pid, out);
    *out = sum;
    return 0;
}

int proc_rss_kb(pid_t pid, uint64_t *out)
{
    char path[64], buf[4096];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    if (read_file(path, buf, sizeof(buf)) < 0)
        return -1;
    const char *p = strstr(buf, "\nVmRSS:");
    unsigned long long kb;
    if (!p || sscanf(p + 7, "%llu", &kb) != 1)
        return -1;
    *out = kb;
    return 0;
}

uint64_t proc_self_cpu_ns(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000u +
           (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000u;
}

uint64_t proc_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return 0;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return (uint64_t)rl.rlim_cur;
}
