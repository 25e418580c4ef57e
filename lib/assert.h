/*
 * assert.h — assertions that stay on in every build.
 *
 * The ledger and the admission path must never run on a broken invariant: a
 * wrong admission is worse than a crashed gate (the others keep admitting).
 * So GM_ASSERT is not compiled out by NDEBUG. It costs one predictable branch.
 */
#ifndef GM_ASSERT_H
#define GM_ASSERT_H

#include <stdio.h>
#include <stdlib.h>

#define GM_ASSERT(cond)                                                   \
  do {                                                                    \
    if (__builtin_expect(!(cond), 0)) {                                   \
      fprintf(stderr, "assertion failed: %s (%s:%d %s)\n", #cond,        \
              __FILE__, __LINE__, __func__);                              \
      abort();                                                            \
    }                                                                     \
  } while (0)

#define GM_UNREACHABLE() GM_ASSERT(0 && "unreachable")

#define GM_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
