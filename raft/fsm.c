/*
 * fsm.c — libraft FSM over the ledger (see fsm.h).
 */
#include "fsm.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/err.h"
#include "../lib/log.h"
#include "entry.h"

int gm_fsm_apply_at(struct gm_fsm *f, uint64_t index, const void *p, size_t n) {
  struct entry_hdr h;
  int rc = entry_decode(p, n, &h, f->cmds, ENTRY_CMDS_MAX);
  if (rc != 0) {
    /* Every gate decodes the same bytes the same way, so skipping keeps them
     * equal; the entry can only come from a gate of another version. */
    GM_ERROR("raft entry does not decode; skipped", "index=%" PRIu64 " len=%zu", index, n);
    return 0;
  }
  if (index <= ledger_applied_seq(f->ledger)) {
    f->skipped_entries++;
    return 0;
  }
  uint64_t erasures = ledger_erasures(f->ledger);
  rc = ledger_apply_batch_at(f->ledger, index, f->cmds, h.count, f->results);
  if (rc != 0) {
    /* Storage failed (map full, I/O): nothing of the entry is in the ledger.
     * Raft must not move past it, or this gate would silently differ. */
    f->last_error = rc;
    GM_ERROR("cannot apply a committed entry", "index=%" PRIu64 " err=%s", index,
             gm_err_code(rc));
    return RAFT_IOERR;
  }
  f->applied_entries++;
  f->applied_bytes += n;
  if (ledger_erasures(f->ledger) != erasures) {
    f->erase_bytes = f->applied_bytes;
    f->erase_index = index;
  }
  if (h.origin == f->node_id && f->on_applied != NULL)
    f->on_applied(f->arg, index, h.token, f->results, h.count);
  if (f->after_apply != NULL)
    f->after_apply(f->arg, index);
  return 0;
}

static int fsm_apply(struct raft_fsm *rf, const struct raft_buffer *buf, void **result) {
  struct gm_fsm *f = rf->data;
  *result = NULL;
  return gm_fsm_apply_at(f, raft_last_applied(f->raft) + 1, buf->base, buf->len);
}

static int snap_write(void *arg, const void *p, size_t n) {
  return gm_buf_append(arg, p, n);
}

static int fsm_snapshot(struct raft_fsm *rf, struct raft_buffer *bufs[], unsigned *n_bufs) {
  struct gm_fsm *f = rf->data;
  if (f->snap_rd != NULL)
    return RAFT_BUSY;
  if (ledger_rd_begin(f->ledger, &f->snap_rd) != 0)
    return RAFT_NOMEM;
  f->snap_index = raft_last_applied(f->raft);
  *bufs = NULL;
  *n_bufs = 0;
  return 0;
}

static int fsm_snapshot_async(struct raft_fsm *rf, struct raft_buffer *bufs[], unsigned *n_bufs) {
  struct gm_fsm *f = rf->data;
  /* libraft 0.22 calls this on the loop: the gate pauses for as long as the
   * serialization takes, which the log reports. */
  uint64_t t0 = f->clock_us ? f->clock_us() : 0;
  gm_buf_init(&f->snap_buf);
  /* Sized once from the ledger's pages: no copies while it grows. */
  if (gm_buf_reserve(&f->snap_buf, (size_t)ledger_size_bytes(f->ledger) + 4096) != 0)
    return RAFT_NOMEM;
  uint8_t hdr[FSM_SNAP_HDR];
  hdr[0] = 'G', hdr[1] = 'M', hdr[2] = 'R', hdr[3] = 'S';
  hdr[4] = 1, hdr[5] = hdr[6] = hdr[7] = 0;
  gm_le64_put(hdr + 8, f->snap_index);
  int rc = gm_buf_append(&f->snap_buf, hdr, sizeof hdr);
  if (rc == 0)
    rc = ledger_snapshot_stream_rd(f->snap_rd, snap_write, &f->snap_buf);
  if (rc != 0) {
    gm_buf_free(&f->snap_buf);
    return RAFT_NOMEM;
  }
  f->snap_out.base = f->snap_buf.ptr;
  f->snap_out.len = f->snap_buf.len;
  uint64_t t1 = f->clock_us ? f->clock_us() : 0;
  GM_INFO("raft snapshot taken", "index=%" PRIu64 " bytes=%zu ms=%" PRIu64, f->snap_index,
          f->snap_buf.len, (t1 - t0) / 1000);
  *bufs = &f->snap_out;
  *n_bufs = 1;
  return 0;
}

static int fsm_snapshot_finalize(struct raft_fsm *rf, struct raft_buffer *bufs[],
                                 unsigned *n_bufs) {
  struct gm_fsm *f = rf->data;
  if (f->snap_rd != NULL) {
    ledger_rd_end(f->snap_rd);
    f->snap_rd = NULL;
  }
  gm_buf_free(&f->snap_buf);
  memset(&f->snap_out, 0, sizeof f->snap_out);
  (void)bufs, (void)n_bufs;
  /* libraft 0.22 finalizes after the put completed (or failed). */
  if (f->on_snapshot != NULL)
    f->on_snapshot(f->arg, f->snap_index);
  return 0;
}

static int fsm_restore(struct raft_fsm *rf, struct raft_buffer *buf) {
  struct gm_fsm *f = rf->data;
  const uint8_t *p = buf->base;
  int rc = 0;
  if (buf->len < FSM_SNAP_HDR || memcmp(p, "GMRS", 4) != 0 || p[4] != 1) {
    GM_ERROR("raft snapshot has an unknown format", "len=%zu", buf->len);
    rc = RAFT_MALFORMED;
    goto out;
  }
  uint64_t index = gm_le64_get(p + 8);
  uint64_t have = ledger_applied_seq(f->ledger);
  if (have >= index) {
    GM_INFO("ledger already past the snapshot; kept", "snapshot=%" PRIu64 " ledger=%" PRIu64,
            index, have);
    goto out;
  }
  uint64_t t0 = f->clock_us ? f->clock_us() : 0;
  int lrc = ledger_restore(f->ledger, p + FSM_SNAP_HDR, buf->len - FSM_SNAP_HDR);
  uint64_t t1 = f->clock_us ? f->clock_us() : 0;
  if (lrc != 0) {
    GM_ERROR("raft snapshot restore failed", "err=%s", gm_err_code(lrc));
    rc = lrc == GM_EDECODE ? RAFT_MALFORMED : RAFT_IOERR;
    goto out;
  }
  GM_INFO("ledger restored from a raft snapshot", "index=%" PRIu64 " bytes=%zu ms=%" PRIu64,
          index, buf->len, (t1 - t0) / 1000);
out:
  raft_free(buf->base);
  return rc;
}

int gm_fsm_init(struct gm_fsm *f, struct ledger *ledger, uint64_t node_id) {
  memset(f, 0, sizeof *f);
  f->ledger = ledger;
  f->node_id = node_id;
  f->cmds = calloc(ENTRY_CMDS_MAX, sizeof *f->cmds);
  f->results = calloc(ENTRY_CMDS_MAX, sizeof *f->results);
  if (f->cmds == NULL || f->results == NULL) {
    gm_fsm_close(f);
    return GM_ENOMEM;
  }
  f->fsm.version = 3;
  f->fsm.data = f;
  f->fsm.apply = fsm_apply;
  f->fsm.snapshot = fsm_snapshot;
  f->fsm.snapshot_async = fsm_snapshot_async;
  f->fsm.snapshot_finalize = fsm_snapshot_finalize;
  f->fsm.restore = fsm_restore;
  return 0;
}

void gm_fsm_close(struct gm_fsm *f) {
  if (f->snap_rd != NULL)
    ledger_rd_end(f->snap_rd);
  gm_buf_free(&f->snap_buf);
  free(f->cmds);
  free(f->results);
  f->cmds = NULL;
  f->results = NULL;
  f->snap_rd = NULL;
}
