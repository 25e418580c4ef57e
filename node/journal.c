/*
 * journal.c — the command journal (see journal.h).
 */
#include "journal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/assert.h"
#include "../lib/err.h"
#include "../lib/log.h"

#define JOURNAL_MAGIC 0x314a4d47u /* "GMJ1" */
#define SUM_LEN 16
#define HDR_LEN (4 + 4 + 8 + 4)


static int sync_dir(const char *dir) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY);
  if (fd < 0)
    return GM_EIO;
  int rc = fsync(fd) == 0 ? 0 : GM_EIO;
  close(fd);
  return rc;
}

static void file_path(char *out, size_t cap, const char *dir, uint64_t start) {
  snprintf(out, cap, "%s/%016" PRIx64 ".log", dir, start);
}

int journal_open(struct journal *j, const char *data_dir) {
  return journal_open_named(j, data_dir, "journal", JOURNAL_FILE_PREALLOC);
}

int journal_open_named(struct journal *j, const char *data_dir, const char *name,
                       uint64_t prealloc) {
  memset(j, 0, sizeof *j);
  j->fd = -1;
  j->prealloc = prealloc;
  gm_buf_init(&j->buf);
  if (snprintf(j->dir, sizeof j->dir, "%s/%s", data_dir, name) >= (int)sizeof j->dir)
    return GM_EINVAL;
  if (mkdir(j->dir, 0700) != 0 && errno != EEXIST)
    return GM_EIO;
  return 0;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* The start seqs of the journal files, sorted. */
static int list_files(const char *dir, uint64_t *starts, size_t *n) {
  DIR *d = opendir(dir);
  if (d == NULL)
    return GM_EIO;
  *n = 0;
  struct dirent *e;
  int rc = 0;
  while ((e = readdir(d)) != NULL) {
    uint64_t s;
    char tail[8];
    if (strlen(e->d_name) != 20 || sscanf(e->d_name, "%16" SCNx64 "%4s", &s, tail) != 2 ||
        strcmp(tail, ".log") != 0)
      continue;
    if (*n == JOURNAL_FILES_MAX) {
      rc = GM_ELIMIT;
      break;
    }
    starts[(*n)++] = s;
  }
  closedir(d);
  qsort(starts, *n, sizeof *starts, cmp_u64);
  return rc;
}

/* Reads one file; calls fn for records after `after`. Sets *end to the
 * logical end. Returns GM_EDECODE for a torn tail (with *end at its start). */
static int replay_file(struct journal *j, int fd, uint64_t after, journal_apply_fn fn, void *arg,
                       uint64_t *end) {
  struct stat st;
  if (fstat(fd, &st) != 0)
    return GM_EIO;
  uint64_t size = (uint64_t)st.st_size, off = 0;
  uint8_t hdr[HDR_LEN];
  struct gm_slice *cmds = NULL;
  size_t cmds_cap = 0;
  int rc = 0;
  for (;;) {
    *end = off;
    if (size - off < HDR_LEN)
      break;
    if (pread(fd, hdr, HDR_LEN, (off_t)off) != HDR_LEN) {
      rc = GM_EIO;
      break;
    }
    uint32_t magic = gm_le32_get(hdr), body = gm_le32_get(hdr + 4);
    if (magic == 0)
      break;
    if (magic != JOURNAL_MAGIC || body > JOURNAL_RECORD_MAX || size - off < HDR_LEN + body + SUM_LEN) {
      rc = GM_EDECODE;
      break;
    }
    uint64_t seq = gm_le64_get(hdr + 8);
    uint32_t count = gm_le32_get(hdr + 16);
    gm_buf_reset(&j->buf);
    if ((rc = gm_buf_reserve(&j->buf, HDR_LEN + body + SUM_LEN)) != 0)
      break;
    uint8_t *rec = j->buf.ptr;
    if (pread(fd, rec, HDR_LEN + body + SUM_LEN, (off_t)off) != (ssize_t)(HDR_LEN + body + SUM_LEN)) {
      rc = GM_EIO;
      break;
    }
    uint8_t sum[SUM_LEN];
    crypto_generichash(sum, SUM_LEN, rec, HDR_LEN + body, NULL, 0);
    if (sodium_memcmp(sum, rec + HDR_LEN + body, SUM_LEN) != 0) {
      rc = GM_EDECODE;
      break;
    }
    if (count > cmds_cap) {
      struct gm_slice *p = realloc(cmds, count * sizeof *cmds);
      if (p == NULL) {
        rc = GM_ENOMEM;
        break;
      }
      cmds = p;
      cmds_cap = count;
    }
    uint64_t p = HDR_LEN;
    for (uint32_t i = 0; i < count && rc == 0; i++) {
      if (HDR_LEN + body - p < 4) {
        rc = GM_ECORRUPT;
        break;
      }
      uint32_t len = gm_le32_get(rec + p);
      p += 4;
      if (HDR_LEN + body - p < len) {
        rc = GM_ECORRUPT;
        break;
      }
      cmds[i] = (struct gm_slice){rec + p, len};
      p += len;
    }
    if (rc != 0)
      break;
    if (seq <= j->last_seq && j->last_seq != 0) {
      rc = GM_ECORRUPT; /* seqs only grow */
      break;
    }
    if (seq > after) {
      if (j->last_seq != 0 && seq != j->last_seq + 1 && j->last_seq >= after) {
        rc = GM_ECORRUPT;
        break;
      }
      if ((rc = fn(arg, seq, cmds, count)) != 0)
        break;
    }
    j->last_seq = seq;
    off += HDR_LEN + body + SUM_LEN;
  }
  free(cmds);
  return rc;
}

static int open_file(struct journal *j, uint64_t start, bool create) {
  char path[700];
  file_path(path, sizeof path, j->dir, start);
  int fd = open(path, O_RDWR | (create ? O_CREAT | O_EXCL : 0) | O_CLOEXEC, 0600);
  if (fd < 0)
    return GM_EIO;
  struct stat st;
  if (fstat(fd, &st) != 0) {
    close(fd);
    return GM_EIO;
  }
  /* Preallocation keeps an append from changing the file size, so the
   * fdatasync behind each batch flushes data, not metadata. */
  if ((uint64_t)st.st_size < j->prealloc && posix_fallocate(fd, 0, (off_t)j->prealloc) != 0) {
    close(fd);
    return GM_EFULL;
  }
  if (create && (fsync(fd) != 0 || sync_dir(j->dir) != 0)) {
    close(fd);
    return GM_EIO;
  }
  if (j->fd >= 0)
    close(j->fd);
  j->fd = fd;
  j->file_start = start;
  j->alloc = (uint64_t)st.st_size > j->prealloc ? (uint64_t)st.st_size : j->prealloc;
  j->zeroed = 0; /* not known for a reopened file: zero again from its end */
  return 0;
}

int journal_replay(struct journal *j, uint64_t after, journal_apply_fn fn, void *arg) {
  uint64_t *starts = calloc(JOURNAL_FILES_MAX, sizeof *starts);
  size_t n = 0;
  if (starts == NULL)
    return GM_ENOMEM;
  int rc = list_files(j->dir, starts, &n);
  j->last_seq = 0;
  if (rc == 0 && n > 0 && starts[0] > after + 1) {
    GM_ERROR("journal: the oldest file starts after the ledger's applied seq; batches are "
             "missing", "first=%" PRIu64 " applied=%" PRIu64, starts[0], after);
    rc = GM_ECORRUPT;
  }
  for (size_t i = 0; i < n && rc == 0; i++) {
    char path[700];
    file_path(path, sizeof path, j->dir, starts[i]);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      rc = GM_EIO;
      break;
    }
    if (j->last_seq == 0 && starts[i] > 1)
      j->last_seq = starts[i] - 1; /* older files were dropped after a snapshot */
    uint64_t end = 0;
    rc = replay_file(j, fd, after, fn, arg, &end);
    close(fd);
    bool last = i + 1 == n;
    if (rc == GM_EDECODE && last) {
      GM_WARN("journal: torn record at the tail dropped (never acknowledged)",
              "file=%s offset=%" PRIu64, path, end);
      int wfd = open(path, O_WRONLY | O_CLOEXEC);
      static const uint8_t zeros[4096];
      rc = wfd < 0 || pwrite(wfd, zeros, sizeof zeros, (off_t)end) != sizeof zeros ||
                   fdatasync(wfd) != 0
               ? GM_EIO
               : 0;
      if (wfd >= 0)
        close(wfd);
    } else if (rc == GM_EDECODE) {
      rc = GM_ECORRUPT;
    }
    if (rc == 0 && last) {
      if ((rc = open_file(j, starts[i], false)) == 0)
        j->end = end;
    }
  }
  free(starts);
  if (rc == 0 && j->fd < 0) {
    if (j->last_seq < after)
      j->last_seq = after; /* the ledger is ahead: a fresh journal continues from it */
    if ((rc = open_file(j, j->last_seq + 1, true)) == 0)
      j->end = 0;
  }
  if (rc == 0 && j->last_seq < after) {
    /* The ledger holds batches the journal lost: impossible unless a file was
     * removed by hand. Continue numbering after the ledger. */
    GM_WARN("journal: behind the ledger", "journal=%" PRIu64 " ledger=%" PRIu64, j->last_seq,
            after);
    j->last_seq = after;
  }
  return rc;
}

int journal_append(struct journal *j, const struct gm_slice *cmds, size_t n, uint64_t *seq) {
  GM_ASSERT(j->fd >= 0);
  uint64_t body = 0;
  for (size_t i = 0; i < n; i++)
    body += 4 + cmds[i].len;
  if (body > JOURNAL_RECORD_MAX)
    return GM_ETOOBIG;
  gm_buf_reset(&j->buf);
  int rc = gm_buf_reserve(&j->buf, HDR_LEN + body + SUM_LEN);
  if (rc != 0)
    return rc;
  uint8_t *p = j->buf.ptr;
  uint64_t s = j->last_seq + 1;
  gm_le32_put(p, JOURNAL_MAGIC);
  gm_le32_put(p + 4, (uint32_t)body);
  gm_le64_put(p + 8, s);
  gm_le32_put(p + 16, (uint32_t)n);
  size_t off = HDR_LEN;
  for (size_t i = 0; i < n; i++) {
    gm_le32_put(p + off, (uint32_t)cmds[i].len);
    memcpy(p + off + 4, cmds[i].ptr, cmds[i].len);
    off += 4 + cmds[i].len;
  }
  crypto_generichash(p + off, SUM_LEN, p, off, NULL, 0);
  size_t len = off + SUM_LEN;
  if (j->end + len > j->alloc) {
    /* Grow in preallocation steps; a new step is metadata, synced below. */
    uint64_t want = j->alloc + ((len / j->prealloc) + 1) * j->prealloc;
    if (posix_fallocate(j->fd, 0, (off_t)want) != 0)
      return GM_EFULL;
    j->alloc = want;
  }
  if (j->end + len > j->zeroed) {
    static const uint8_t zeros[64 << 10];
    uint64_t from = j->zeroed > j->end ? j->zeroed : j->end;
    uint64_t to = j->end + len + JOURNAL_ZERO_STEP;
    to = to > j->alloc ? j->alloc : to;
    for (uint64_t o = from; o < to;) {
      size_t chunk = to - o < sizeof zeros ? (size_t)(to - o) : sizeof zeros;
      ssize_t r = pwrite(j->fd, zeros, chunk, (off_t)o);
      if (r < 0 && errno == EINTR)
        continue;
      if (r <= 0)
        return errno == ENOSPC ? GM_EFULL : GM_EIO;
      o += (uint64_t)r;
    }
    j->zeroed = to;
  }
  for (size_t w = 0; w < len;) {
    ssize_t r = pwrite(j->fd, p + w, len - w, (off_t)(j->end + w));
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return errno == ENOSPC ? GM_EFULL : GM_EIO;
    w += (size_t)r;
  }
  if (fdatasync(j->fd) != 0)
    return GM_EIO;
  j->end += len;
  j->bytes_since_rotate += len;
  j->last_seq = s;
  *seq = s;
  return 0;
}

int journal_rotate(struct journal *j) {
  int rc = open_file(j, j->last_seq + 1, true);
  if (rc == 0) {
    j->end = 0;
    j->bytes_since_rotate = 0;
  }
  return rc;
}

int journal_drop_through(const char *data_dir, uint64_t through, uint64_t open_file_start) {
  char dir[620];
  snprintf(dir, sizeof dir, "%s/journal", data_dir);
  return journal_drop_through_dir(dir, through, open_file_start);
}

int journal_drop_through_dir(const char *dir, uint64_t through, uint64_t open_file_start) {
  uint64_t *starts = calloc(JOURNAL_FILES_MAX, sizeof *starts);
  size_t n = 0;
  if (starts == NULL)
    return GM_ENOMEM;
  int rc = list_files(dir, starts, &n);
  /* File i holds seqs [starts[i], starts[i+1]); it can go when that range
   * ends at or before `through` and it is not the file being appended. */
  for (size_t i = 0; i + 1 < n && rc == 0; i++) {
    if (starts[i] == open_file_start || starts[i + 1] - 1 > through)
      break;
    char path[700];
    file_path(path, sizeof path, dir, starts[i]);
    if (unlink(path) != 0)
      rc = GM_EIO;
  }
  if (rc == 0)
    rc = sync_dir(dir);
  free(starts);
  return rc;
}

void journal_close(struct journal *j) {
  if (j->dir[0] == 0)
    return; /* never opened */
  if (j->fd >= 0)
    close(j->fd);
  j->fd = -1;
  gm_buf_free(&j->buf);
}
