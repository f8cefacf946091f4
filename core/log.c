/* Log sinks and line formatting. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "util/err.h"

unsigned log_mask = LOG_ERROR | LOG_WARN | LOG_NOTICE | LOG_INFO;
static unsigned log_dest = 2;
static FILE *log_fp;

int log_open(unsigned dest, const char *file, unsigned mask)
{
    log_dest = dest;
    log_mask = mask;
    if (dest & 4) {
        log_fp = fopen(file, "a");
        if (!log_fp)
            return TIDE_EIO;
        setvbuf(log_fp, NULL, _IOLBF, 0);
    }
    return 0;
}

void log_close(void)
{
    if (log_fp)
        fclose(log_fp);
    log_fp = NULL;
}

static const char *level_name(enum log_level level)
{
    switch (level) {
    case LOG_ERROR: return "error";
    case LOG_WARN: return "warn";
    case LOG_NOTICE: return "notice";
    case LOG_INFO: return "info";
    case LOG_DEBUG: return "debug";
    }
    return "?";
}

void log_write(enum log_level level, const char *subsystem, const char *fmt, ...)
{
    char line[2048];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(line + n, sizeof line - n, ".%03dZ %s [%s] ", (int)(tv.tv_usec / 1000),
                          level_name(level), subsystem);
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
    va_end(ap);
    if (w < 0)
        w = 0;
    n += (size_t)w;
    if (n > sizeof line - 2)
        n = sizeof line - 2;
    line[n++] = '\n';
    line[n] = '\0';
    if (log_dest & 1)
        fputs(line, stdout), fflush(stdout);
    if (log_dest & 2)
        fputs(line, stderr);
    if ((log_dest & 4) && log_fp)
        fputs(line, log_fp);
}
