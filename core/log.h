/* The broker log: one line per event, "time level [subsystem] message key=value ...", to stderr,
 * stdout and/or a file. Loop thread only. The macros check the level before evaluating arguments. */
#ifndef TIDE_LOG_H
#define TIDE_LOG_H

#include <stdbool.h>

enum log_level { LOG_ERROR = 1, LOG_WARN = 2, LOG_NOTICE = 4, LOG_INFO = 8, LOG_DEBUG = 16 };

extern unsigned log_mask; /* enabled levels (bits of enum log_level) */

/* dest bits: 1 stdout, 2 stderr, 4 file. Returns 0, or TIDE_EIO if the file cannot be opened. */
int log_open(unsigned dest, const char *file, unsigned mask);
void log_close(void);

void log_write(enum log_level level, const char *subsystem, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_at(lvl, sub, ...)                                                                      \
    do {                                                                                           \
        if (log_mask & (lvl))                                                                      \
            log_write((lvl), (sub), __VA_ARGS__);                                                  \
    } while (0)
#define log_error(sub, ...) log_at(LOG_ERROR, sub, __VA_ARGS__)
#define log_warn(sub, ...) log_at(LOG_WARN, sub, __VA_ARGS__)
#define log_notice(sub, ...) log_at(LOG_NOTICE, sub, __VA_ARGS__)
#define log_info(sub, ...) log_at(LOG_INFO, sub, __VA_ARGS__)
#define log_debug(sub, ...) log_at(LOG_DEBUG, sub, __VA_ARGS__)

#endif
