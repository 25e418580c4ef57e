/*
 * log.h — structured logging: one line per record, key=value pairs.
 *
 *   ts=1732435200123 level=info msg="listening" addr=127.0.0.1:8080
 *
 * The timestamp comes from a clock the process installs (gm_log_set_clock);
 * the deterministic core never installs one, so log lines from the simulator
 * carry the simulated time. Values containing spaces or quotes are quoted.
 */
#ifndef GM_LOG_H
#define GM_LOG_H

#include <stdint.h>

enum gm_log_level { GM_LOG_DEBUG, GM_LOG_INFO, GM_LOG_WARN, GM_LOG_ERROR };

void gm_log_set_level(enum gm_log_level level);
int gm_log_level_parse(const char *s, enum gm_log_level *out);
void gm_log_set_clock(int64_t (*now_ms)(void));

/* fmt is a sequence of already formatted key=value pairs after the message,
 * e.g. gm_log(GM_LOG_INFO, "listening", "addr=%s", addr). */
void gm_log(enum gm_log_level level, const char *msg, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define GM_DEBUG(msg, ...) gm_log(GM_LOG_DEBUG, msg, __VA_ARGS__)
#define GM_INFO(msg, ...) gm_log(GM_LOG_INFO, msg, __VA_ARGS__)
#define GM_WARN(msg, ...) gm_log(GM_LOG_WARN, msg, __VA_ARGS__)
#define GM_ERROR(msg, ...) gm_log(GM_LOG_ERROR, msg, __VA_ARGS__)

#endif
