/*
 * log.c — the line writer behind log.h. One fprintf per record, so lines from
 * the loop thread and the commit worker never interleave mid-line.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static enum gm_log_level log_level = GM_LOG_INFO;
static int64_t (*log_clock)(void);

void gm_log_set_level(enum gm_log_level level) { log_level = level; }

void gm_log_set_clock(int64_t (*now_ms)(void)) { log_clock = now_ms; }

int gm_log_level_parse(const char *s, enum gm_log_level *out) {
  static const char *names[] = {"debug", "info", "warn", "error"};
  for (int i = 0; i < 4; i++) {
    if (strcmp(s, names[i]) == 0) {
      *out = (enum gm_log_level)i;
      return 0;
    }
  }
  return -1;
}

void gm_log(enum gm_log_level level, const char *msg, const char *fmt, ...) {
  static const char *names[] = {"debug", "info", "warn", "error"};
  if (level < log_level)
    return;
  char kv[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(kv, sizeof kv, fmt, ap);
  va_end(ap);
  long long ts = log_clock ? (long long)log_clock() : 0;
  fprintf(stderr, "ts=%lld level=%s msg=\"%s\"%s%s\n", ts, names[level], msg,
          kv[0] ? " " : "", kv);
}
