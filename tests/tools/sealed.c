/*
 * sealed.c — prints a ticket's sealed biometric record as two hex strings,
 * the wrapped data key and the ciphertext, read from a gate's ledger
 * directory (read only; the gate may be running). The erasure tests look for
 * these bytes on the gate's disk before and after an erasure.
 *
 *   sealed LEDGER_DIR TICKET_ID
 *   sealed --find HEX PATH...
 *
 * Exit 0 with the two strings, 1 when the ticket has no record or it is
 * erased already (nothing printed), 2 on a usage or ledger error.
 *
 * --find prints every file under the paths that holds the bytes HEX. It
 * reads only the data of sparse files (a ledger file is as long as its map,
 * mostly holes), which grep would read as gigabytes of zeros.
 */
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "lib/err.h"
#include "ledger/ledger.h"

static void hex(const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    printf("%02x", p[i]);
}

static uint8_t needle[256];
static size_t needle_len;

static bool file_has(const char *path) {
  int fd = open(path, O_RDONLY);
  if (fd < 0)
    return false;
  enum { CHUNK = 1 << 20 };
  static uint8_t buf[CHUNK + sizeof needle];
  bool hit = false;
  off_t end = lseek(fd, 0, SEEK_END);
  for (off_t at = lseek(fd, 0, SEEK_DATA); at >= 0 && at < end && !hit;) {
    off_t hole = lseek(fd, at, SEEK_HOLE);
    if (hole < 0)
      hole = end;
    /* Each read overlaps the last by the needle's length less one. */
    for (off_t o = at; o < hole && !hit; o += CHUNK) {
      size_t want = (size_t)(hole - o) < CHUNK ? (size_t)(hole - o) : CHUNK;
      want += o + (off_t)want < end ? needle_len - 1 : 0;
      ssize_t n = pread(fd, buf, want, o);
      if (n <= 0)
        break;
      hit = memmem(buf, (size_t)n, needle, needle_len) != NULL;
    }
    at = lseek(fd, hole, SEEK_DATA);
  }
  close(fd);
  return hit;
}

static int visit(const char *path, const struct stat *st, int type, struct FTW *ftw) {
  (void)st, (void)ftw;
  if (type == FTW_F && file_has(path))
    printf("%s\n", path);
  return 0;
}

static int find(int argc, char **argv) {
  const char *h = argv[2];
  needle_len = strlen(h) / 2;
  if (needle_len == 0 || needle_len > sizeof needle || strlen(h) % 2 != 0)
    return 2;
  for (size_t i = 0; i < needle_len; i++)
    if (sscanf(h + 2 * i, "%2hhx", &needle[i]) != 1)
      return 2;
  for (int i = 3; i < argc; i++)
    nftw(argv[i], visit, 16, FTW_PHYS);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 3 && strcmp(argv[1], "--find") == 0)
    return find(argc, argv);
  if (argc != 3) {
    fprintf(stderr, "usage: sealed LEDGER_DIR TICKET_ID\n");
    return 2;
  }
  struct ledger_options o = {.map_size = (size_t)1 << 30, .read_only = true};
  struct ledger *l;
  int rc = ledger_open(&l, argv[1], &o);
  if (rc != 0) {
    fprintf(stderr, "sealed: cannot open %s: %s\n", argv[1], gm_err_code(rc));
    return 2;
  }
  struct ledger_rd *rd;
  struct ledger_bio *b = calloc(1, sizeof *b);
  int out = 2;
  if (b != NULL && ledger_rd_begin(l, &rd) == 0) {
    rc = ledger_bio_get(rd, argv[2], b);
    out = 1;
    if (rc == 0 && b->ct_len > 0) {
      hex(b->wrapped, sizeof b->wrapped);
      printf(" ");
      hex(b->ct, b->ct_len);
      printf("\n");
      out = 0;
    }
    ledger_rd_end(rd);
  }
  free(b);
  ledger_close(l);
  return out;
}
