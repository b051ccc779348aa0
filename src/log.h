/*
 * log: one line per event on stderr, "orcd <UTC time> <level> <message>". Thread-safe (one write per
 * line). Levels below the threshold set by log_set_level are dropped.
 *
 * Also the stop-at-once checks for programmer errors and failed system calls at start-up (DIE, CHECK):
 * file:line and the failing expression, then exit(1). Never for untrusted input.
 */
#ifndef ORCD_LOG_H
#define ORCD_LOG_H

typedef enum LogLevel { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR } LogLevel;

void log_set_level(LogLevel level);

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
void log_msg(LogLevel level, const char *fmt, ...);

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#if defined(__GNUC__)
__attribute__((noreturn, format(printf, 3, 4)))
#endif
void log_die(const char *file, int line, const char *fmt, ...);

#define DIE(...) log_die(__FILE__, __LINE__, __VA_ARGS__)
#define CHECK(cond)                                                                                        \
    do {                                                                                                   \
        if (!(cond)) DIE("check failed: %s", #cond);                                                       \
    } while (0)

#endif
