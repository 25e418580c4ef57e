/*
 * checkpoint.c — recovery at start and periodic snapshots (see checkpoint.h).
 */
#include "checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/assert.h"
#include "../lib/err.h"
#include "../lib/log.h"
#include "journal.h"

#define CHECKPOINT_TICK_MS 5000

static void read_boot_id(char out[64]) {
  out[0] = 0;
  FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
  if (f) {
    if (fgets(out, 64, f) == NULL)
      out[0] = 0;
    fclose(f);
  }
  out[strcspn(out, "\r\n")] = 0;
}

static int write_all(int fd, const void *p, size_t n) {
  const uint8_t *b = p;
  for (size_t w = 0; w < n;) {
    ssize_t r = write(fd, b + w, n - w);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return errno == ENOSPC ? GM_EFULL : GM_EIO;
    w += (size_t)r;
  }
  return 0;
}

/* Replaces DIR/NAME atomically and durably: fill() writes NAME.tmp, which is
 * fsynced and renamed over NAME, and the directory is fsynced. A crash at any
 * point leaves either the old file or the new one. */
static int replace_durably(const char *dir, const char *name, int (*fill)(int fd, void *arg),
                           void *arg) {
  char tmp[700], path[700];
  snprintf(tmp, sizeof tmp, "%s/%s.tmp", dir, name);
  snprintf(path, sizeof path, "%s/%s", dir, name);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return GM_EIO;
  int rc = fill(fd, arg);
  if (rc == 0 && fsync(fd) != 0)
    rc = GM_EIO;
  if (close(fd) != 0 && rc == 0)
    rc = GM_EIO;
  if (rc == 0 && rename(tmp, path) != 0)
    rc = GM_EIO;
  if (rc != 0) {
    unlink(tmp);
    return rc;
  }
  int dfd = open(dir, O_RDONLY | O_DIRECTORY);
  if (dfd < 0)
    return GM_EIO;
  rc = fsync(dfd) == 0 ? 0 : GM_EIO;
  close(dfd);
  return rc;
}

struct text {
  const char *p;
  size_t n;
};

static int fill_text(int fd, void *arg) {
  struct text *t = arg;
  return write_all(fd, t->p, t->n);
}

int checkpoint_mark(struct node *n, bool clean) {
  char boot[64], line[100];
  read_boot_id(boot);
  int len = snprintf(line, sizeof line, "%s %s\n", clean ? "clean" : "dirty", boot);
  struct text t = {line, (size_t)len};
  return replace_durably(n->cfg.data_dir, "state", fill_text, &t);
}

static int read_whole(const char *path, struct gm_buf *out) {
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return errno == ENOENT ? GM_ENOTFOUND : GM_EIO;
  char chunk[1 << 16];
  size_t r;
  int rc = 0;
  while (rc == 0 && (r = fread(chunk, 1, sizeof chunk, f)) > 0)
    rc = gm_buf_append(out, chunk, r);
  if (ferror(f))
    rc = GM_EIO;
  fclose(f);
  return rc;
}

struct replay_ctx {
  struct ledger *ledger;
  uint64_t batches;
};

static int replay_apply(void *arg, uint64_t seq, const struct gm_slice *cmds, size_t n) {
  struct replay_ctx *rc = arg;
  struct ledger_result *res = calloc(n ? n : 1, sizeof *res);
  if (res == NULL)
    return GM_ENOMEM;
  int r = ledger_apply_batch_at(rc->ledger, seq, cmds, n, res);
  free(res);
  rc->batches++;
  return r;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
  return remove(path) == 0 ? 0 : -1;
}

/* Deletes dir and everything in it (depth first, not following links). */
static int remove_tree(const char *dir) {
  int r = nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
  return r == 0 || errno == ENOENT ? 0 : GM_EIO;
}

int checkpoint_recover(struct node *n) {
  const char *dd = n->cfg.data_dir;
  char path[700], boot[64];
  read_boot_id(boot);
  snprintf(path, sizeof path, "%s/state", dd);
  struct gm_buf st;
  gm_buf_init(&st);
  bool trusted = true;
  if (read_whole(path, &st) == 0 && st.len > 6) {
    gm_buf_append(&st, "", 1);
    const char *s = (const char *)st.ptr;
    const char *sp = strchr(s, ' ');
    char was[64] = "";
    if (sp)
      snprintf(was, sizeof was, "%.*s", (int)strcspn(sp + 1, "\r\n"), sp + 1);
    if (strncmp(s, "dirty", 5) == 0 && strcmp(was, boot) != 0)
      trusted = false;
  }
  gm_buf_free(&st);

  char ledger_dir[700];
  snprintf(ledger_dir, sizeof ledger_dir, "%s/ledger", dd);
  if (!trusted) {
    GM_WARN(n->cluster_mode ? "unclean shutdown on an earlier boot: rebuilding the ledger "
                              "from the raft snapshot and log"
                            : "unclean shutdown on an earlier boot: rebuilding the ledger from "
                              "snapshot and journal",
            "data_dir=%s", dd);
    if (remove_tree(ledger_dir) != 0)
      return GM_EIO;
  }
  struct ledger_options lo = {.map_size = n->cfg.map_size, .no_sync = true};
  int rc = ledger_open(&n->ledger, ledger_dir, &lo);
  if (rc != 0) {
    GM_ERROR("cannot open ledger", "path=%s err=%s", ledger_dir, gm_err_code(rc));
    return rc;
  }
  if (n->cluster_mode) {
    /* Raft's log and snapshots are the durability point: an untrusted ledger
     * was emptied above and Raft restores and replays it on start. */
    if ((rc = ledger_sync(n->ledger)) != 0)
      return rc;
    return checkpoint_mark(n, false);
  }
  if (!trusted) {
    struct gm_buf snap;
    gm_buf_init(&snap);
    snprintf(path, sizeof path, "%s/snapshot", dd);
    rc = read_whole(path, &snap);
    if (rc == 0)
      rc = ledger_restore(n->ledger, snap.ptr, snap.len);
    else if (rc == GM_ENOTFOUND)
      rc = 0; /* no checkpoint yet: the journal holds everything */
    gm_buf_free(&snap);
    if (rc != 0) {
      GM_ERROR("cannot restore the snapshot", "path=%s err=%s", path, gm_err_code(rc));
      return rc;
    }
  }
  if ((rc = journal_open(&n->journal, dd)) != 0)
    return rc;
  struct replay_ctx rctx = {.ledger = n->ledger};
  uint64_t after = ledger_applied_seq(n->ledger);
  rc = journal_replay(&n->journal, after, replay_apply, &rctx);
  if (rc != 0) {
    GM_ERROR("journal replay failed", "err=%s", gm_err_code(rc));
    return rc;
  }
  if (rctx.batches > 0)
    GM_INFO("journal replayed", "batches=%" PRIu64 " from_seq=%" PRIu64 " to_seq=%" PRIu64,
            rctx.batches, after + 1, n->journal.last_seq);
  if ((rc = ledger_sync(n->ledger)) != 0)
    return rc;
  return checkpoint_mark(n, false);
}

struct snap_work {
  uv_work_t w;
  struct node *n;
  bool purge; /* started for an erasure (node.h) */
  uint64_t through;
  uint64_t new_start;
  int rc;
  size_t bytes;
};

struct snap_file {
  int fd;
  struct ledger *ledger;
  size_t bytes;
};

static int snap_write(void *arg, const void *p, size_t n) {
  struct snap_file *f = arg;
  f->bytes += n;
  return write_all(f->fd, p, n);
}

static int fill_snapshot(int fd, void *arg) {
  struct snap_file *f = arg;
  f->fd = fd;
  return ledger_snapshot_stream(f->ledger, snap_write, f);
}

static int snapshot_to_file(struct node *n, size_t *bytes) {
  struct snap_file f = {.ledger = n->ledger};
  int rc = replace_durably(n->cfg.data_dir, "snapshot", fill_snapshot, &f);
  *bytes = f.bytes;
  return rc;
}

static void snap_run(uv_work_t *w) {
  struct snap_work *sw = w->data;
  sw->rc = snapshot_to_file(sw->n, &sw->bytes);
  /* The snapshot holds every batch up to at least `through`: the journal
   * files before the rotation are no longer needed for recovery. */
  if (sw->rc == 0)
    sw->rc = journal_drop_through(sw->n->cfg.data_dir, sw->through, sw->new_start);
}

static void snap_done(uv_work_t *w, int status) {
  struct snap_work *sw = w->data;
  struct node *n = sw->n;
  n->snap_running = false;
  n->last_checkpoint_ms = node_now_ms();
  if (sw->rc == 0) {
    n->last_snapshot_bytes = sw->bytes;
    n->purge_done += sw->purge;
    GM_INFO("checkpoint written", "through_seq=%" PRIu64 " bytes=%zu", sw->through, sw->bytes);
  } else {
    GM_ERROR("checkpoint failed; the journal is kept", "err=%s", gm_err_code(sw->rc));
    if (sw->purge) { /* the next checkpoint takes its place */
      n->purge_started--;
      n->purge_wanted = true;
    }
  }
  free(sw);
  node_maybe_stopped(n);
}

static void on_rotated(void *arg, uint64_t through, uint64_t new_start) {
  struct node *n = arg;
  struct snap_work *sw = calloc(1, sizeof *sw);
  if (sw == NULL)
    return;
  sw->n = n;
  if (n->purge_wanted) {
    sw->purge = true;
    n->purge_wanted = false;
    n->purge_started++;
  }
  sw->through = through;
  sw->new_start = new_start;
  sw->w.data = sw;
  n->snap_running = true;
  if (uv_queue_work(n->loop, &sw->w, snap_run, snap_done) != 0) {
    n->snap_running = false;
    if (sw->purge) {
      n->purge_started--;
      n->purge_wanted = true;
    }
    free(sw);
  }
}

static void on_tick(uv_timer_t *t) {
  struct node *n = t->data;
  struct journal *j = &n->journal;
  if (n->purge_wanted) {
    checkpoint_now(n);
    return;
  }
  if (n->snap_running || n->stopping || j->bytes_since_rotate == 0)
    return;
  int64_t now = node_now_ms();
  /* Due when the journal has grown past both the configured size and the
   * last snapshot (so rewriting the whole ledger costs at most one byte per
   * journal byte), or when the interval has passed. */
  uint64_t size_due = n->cfg.checkpoint_journal_bytes > n->last_snapshot_bytes
                          ? n->cfg.checkpoint_journal_bytes
                          : n->last_snapshot_bytes;
  bool due = j->bytes_since_rotate >= size_due ||
             now - n->last_checkpoint_ms >= n->cfg.checkpoint_interval_ms;
  if (due)
    checkpoint_now(n);
}

void checkpoint_now(struct node *n) {
  struct journal *j = &n->journal;
  if (n->snap_running || n->stopping || n->commit.rotate_requested)
    return;
  if (commit_idle(&n->commit)) {
    /* No batch on the worker: rotate here. */
    uint64_t through = j->last_seq;
    if (journal_rotate(j) == 0)
      on_rotated(n, through, j->file_start);
  } else {
    n->commit.rotate_requested = true;
  }
}

void checkpoint_start(struct node *n) {
  n->commit.on_rotated = on_rotated;
  n->commit.on_rotated_arg = n;
  n->last_checkpoint_ms = node_now_ms();
  /* Until the first snapshot of this run, the ledger's size stands in for
   * the last snapshot's, so a big ledger is not rewritten after a small
   * journal. */
  n->last_snapshot_bytes = ledger_size_bytes(n->ledger);
  uv_timer_init(n->loop, &n->ckpt_timer);
  n->ckpt_timer.data = n;
  uv_timer_start(&n->ckpt_timer, on_tick, CHECKPOINT_TICK_MS, CHECKPOINT_TICK_MS);
}

void checkpoint_stop(struct node *n) {
  if (n->ckpt_timer.loop)
    uv_timer_stop(&n->ckpt_timer);
}
