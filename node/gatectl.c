/*
 * gatectl.c — the operators' command line: everything through the HTTP API.
 *
 *   gatectl [--url URL] [--token TOKEN] COMMAND ...
 *
 * The URL comes from --url, $GATE_URL or http://127.0.0.1:8080; the token from
 * --token, $GATE_TOKEN or the file `login` writes ($GATECTL_TOKEN_FILE, default
 * ~/.gatectl-token). Replies are printed as JSON. Exit status: 0 success,
 * 1 an error reply or failure, 2 bad usage, 3 a verdict that did not admit.
 * `qr show`, `pass code` and `keygen` do what a holder's phone app does, for
 * kiosks, tests and demos.
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "../lib/buf.h"
#include "../lib/codec.h"
#include "../lib/err.h"
#include "../lib/mpk.h"
#include "../methods/geofence.h"
#include "../methods/nfc.h"
#include "../methods/pass.h"
#include "../methods/qr.h"
#include "nfc_tool.h"
#include "../raft/secure.h"
#include "cluster.h"
#include "config.h"

#define CSV_BATCH 1000

static const char *base_url;
static const char *token;

static int usage(void) {
  fprintf(stderr,
          "usage: gatectl [--url URL] [--token TOKEN] COMMAND\n"
          "  login USER [--password P]          (or $GATECTL_PASSWORD) saves a token\n"
          "  user add USER ROLE --password P\n"
          "  user me\n"
          "  event create ID NAME --starts MS --ends MS [--policy strict|available] [--budget N]\n"
          "  ticket create EVENT HOLDER [--id ID] [--tier T]\n"
          "  ticket import EVENT FILE.csv        rows: holder[,tier[,id]]\n"
          "  ticket show|methods ID\n"
          "  ticket transfer ID TO_HOLDER | ticket revoke ID [REASON]\n"
          "  qr generate TICKET [--png FILE] [--svg FILE] [--holder-key B64URL] [--ttl S]\n"
          "  qr show CREDENTIAL --holder-secret B64URL [--at MS]\n"
          "  pass generate TICKET\n"
          "  pass code PASS_ID SECRET [--at MS]\n"
          "  verify METHOD (--payload P | --image FILE | --code C | --data JSON)\n"
          "         [--ticket ID] [--gate NAME]\n"
          "  audit [--ticket ID] [--method M] [--gate G] [--limit N]\n"
          "  toggle METHOD on|off | override TICKET admit|reset REASON | rotate-key\n"
          "  incidents | status | health | jwks | keygen\n"
          "  nfc write --device CONNSTRING --ticket ID [--sun]   provision a tag in the field\n"
          "  nfc listen --device CONNSTRING --gate URL [--gate-name NAME]   verify every tap\n"
          "  nfc sun-tap --uid HEX --ctr N --meta-key HEX --file-key HEX   an NTAG 424 tap\n"
          "  geo sign --key SEED_B64URL --ticket ID --lat D --lon D --accuracy M [--at MS]\n"
          "  zone add EVENT ID (--circle LAT,LON,RADIUS_M | --polygon LAT,LON;LAT,LON;...)\n"
          "           [--gate NAME] [--max-accuracy M]\n"
          "  bio status|erase TICKET\n"
          "  cluster status | cluster join-token | cluster leave NODE_ID\n"
          "  cluster join ANY_NODE_CLUSTER_ADDR --token T --node-id N --cluster-listen ADDR\n"
          "               [gated flags...]   checks the token, then runs this gate joined\n");
  return 2;
}

static const char *opt(int argc, char **argv, const char *name) {
  for (int i = 0; i + 1 < argc; i++)
    if (!strcmp(argv[i], name))
      return argv[i + 1];
  return NULL;
}

/* Opens the cluster channel to addr with the token's key, as node `id`:
 * 0 when the peer accepts it (its first frame opens), GM_EAUTH when it
 * hangs up after the handshake (another key), GM_EIO when unreachable. */
static int send_all(int fd, const void *p, size_t n) {
  const uint8_t *b = p;
  while (n > 0) {
    ssize_t w = write(fd, b, n);
    if (w <= 0)
      return -1;
    b += w, n -= (size_t)w;
  }
  return 0;
}

static int recv_all(int fd, void *p, size_t n) {
  uint8_t *b = p;
  while (n > 0) {
    ssize_t r = read(fd, b, n);
    if (r <= 0)
      return -1;
    b += r, n -= (size_t)r;
  }
  return 0;
}

static int token_check(const char *addr, const uint8_t key[32], uint32_t id, const char *self) {
  char host[128];
  int port;
  struct sockaddr_in sa = {.sin_family = AF_INET};
  if (node_addr_parse(addr, host, sizeof host, &port) != 0 || inet_pton(AF_INET, host, &sa.sin_addr) != 1)
    return GM_EINVAL;
  sa.sin_port = htons((uint16_t)port);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct timeval tv = {.tv_sec = 5};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    if (fd >= 0)
      close(fd);
    return GM_EIO;
  }
  struct sec_hs hs;
  struct sec_chan ch;
  uint8_t hello[SEC_HELLO_LEN], in[SEC_HELLO_LEN + SEC_HEADER_LEN], header[SEC_HEADER_LEN];
  sec_hs_init(&hs, true);
  sec_hs_hello(&hs, hello);
  int rc = GM_EIO;
  if (send_all(fd, hello, sizeof hello) != 0 || recv_all(fd, in, sizeof in) != 0)
    goto out;
  if (sec_hs_finish(&hs, in, key, &ch, header) != 0 || sec_chan_rx_start(&ch, in + SEC_HELLO_LEN) != 0)
    goto out;
  /* Our hello message (kind 2 = RPC), framed as the gate frames it. */
  struct mpk_w w;
  mpk_w_init(&w);
  mpk_map(&w, 3);
  mpk_kv_u64(&w, "k", 2);
  mpk_kv_u64(&w, "id", id);
  mpk_kv_str(&w, "a", self);
  uint8_t plain[512], frame[512 + SEC_OVERHEAD];
  size_t n = w.sb.size;
  plain[0] = (uint8_t)n, plain[1] = (uint8_t)(n >> 8), plain[2] = plain[3] = 0;
  memcpy(plain + 4, w.sb.data, n);
  mpk_w_free(&w);
  sec_seal(&ch, plain, 4 + n, frame);
  if (send_all(fd, header, sizeof header) != 0 || send_all(fd, frame, 4 + n + SEC_OVERHEAD) != 0)
    goto out;
  uint8_t lenb[4];
  rc = GM_EAUTH; /* the peer hangs up on a frame it cannot open */
  if (recv_all(fd, lenb, 4) != 0)
    goto out;
  size_t clen = (size_t)lenb[0] | (size_t)lenb[1] << 8 | (size_t)lenb[2] << 16 | (size_t)lenb[3] << 24;
  uint8_t *buf = clen < 65536 ? malloc(4 + clen) : NULL;
  size_t mlen;
  if (buf != NULL) {
    memcpy(buf, lenb, 4);
    if (recv_all(fd, buf + 4, clen) == 0 && sec_open(&ch, buf, 4 + clen, buf + 4, &mlen) == 0)
      rc = 0;
    free(buf);
  }
out:
  close(fd);
  return rc;
}

static int cmd_cluster_join(int argc, char **argv) {
  const char *peer = argc >= 3 ? argv[2] : NULL, *tok = opt(argc, argv, "--token");
  const char *id = opt(argc, argv, "--node-id"), *self = opt(argc, argv, "--cluster-listen");
  uint8_t key[32];
  if (peer == NULL || tok == NULL || id == NULL || self == NULL)
    return usage();
  if (cluster_token_key(tok, key) != 0) {
    fprintf(stderr, "gatectl: the join token is malformed (expected gmj1.<43 characters>)\n");
    return 2;
  }
  int rc = token_check(peer, key, (uint32_t)atol(id), self);
  sodium_memzero(key, sizeof key);
  if (rc == GM_EAUTH) {
    fprintf(stderr, "gatectl: %s refused the join token: it does not match the cluster key\n", peer);
    return 1;
  }
  if (rc != 0) {
    fprintf(stderr, "gatectl: cannot reach the cluster port %s\n", peer);
    return 1;
  }
  fprintf(stderr, "gatectl: token accepted by %s; starting this gate as node %s\n", peer, id);
  /* gated beside gatectl, with the join flags and everything else given. */
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 16);
  if (n <= 0)
    return 1;
  exe[n] = 0;
  char *slash = strrchr(exe, '/');
  strcpy(slash ? slash + 1 : exe, "gated");
  char **av = calloc((size_t)argc + 8, sizeof *av);
  int k = 0;
  av[k++] = exe;
  av[k++] = "--join";
  av[k++] = (char *)peer;
  for (int i = 3; i < argc; i++)
    av[k++] = !strcmp(argv[i], "--token") ? "--join-token" : argv[i];
  execv(exe, av);
  perror("gatectl: exec gated");
  return 1;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t on_body(char *p, size_t sz, size_t n, void *arg) {
  return gm_buf_append(arg, p, sz * n) == 0 ? sz * n : 0;
}

/* Sends a request; returns the HTTP status (0 on transport failure) and the
 * parsed reply in *out (NULL if not JSON). */
static long request(const char *method, const char *path, json_t *body, json_t **out) {
  CURL *c = curl_easy_init();
  struct gm_buf resp;
  gm_buf_init(&resp);
  char url[2048], auth[4200];
  snprintf(url, sizeof url, "%s%s", base_url, path);
  struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
  if (token) {
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    h = curl_slist_append(h, auth);
  }
  char *payload = body ? json_dumps(body, JSON_COMPACT) : NULL;
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  if (payload)
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, payload);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
  long status = 0;
  CURLcode cc = curl_easy_perform(c);
  if (cc != CURLE_OK)
    fprintf(stderr, "gatectl: %s %s: %s\n", method, url, curl_easy_strerror(cc));
  else
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  *out = resp.len ? json_loadb((const char *)resp.ptr, resp.len, 0, NULL) : NULL;
  if (*out == NULL && resp.len)
    fprintf(stderr, "%.*s\n", (int)resp.len, resp.ptr);
  free(payload);
  json_decref(body);
  curl_slist_free_all(h);
  curl_easy_cleanup(c);
  gm_buf_free(&resp);
  return status;
}

static int print_reply(long status, json_t *j) {
  if (j) {
    json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    putchar('\n');
  }
  json_decref(j);
  return status >= 200 && status < 300 ? 0 : 1;
}

static int call(const char *method, const char *path, json_t *body) {
  json_t *j;
  long st = request(method, path, body, &j);
  return print_reply(st, j);
}

static const char *token_file(char *buf, size_t cap) {
  const char *f = getenv("GATECTL_TOKEN_FILE");
  if (f)
    return f;
  snprintf(buf, cap, "%s/.gatectl-token", getenv("HOME") ? getenv("HOME") : ".");
  return buf;
}

static char *load_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    fprintf(stderr, "gatectl: %s: %s\n", path, strerror(errno));
    return NULL;
  }
  struct gm_buf b;
  gm_buf_init(&b);
  char chunk[65536];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
    gm_buf_append(&b, chunk, n);
  fclose(f);
  gm_buf_append(&b, "", 1);
  *len = b.len - 1;
  return (char *)gm_buf_steal(&b, NULL);
}

static int save_file(const char *path, const void *p, size_t n) {
  FILE *f = fopen(path, "wb");
  if (f == NULL || fwrite(p, 1, n, f) != n) {
    fprintf(stderr, "gatectl: %s: %s\n", path, strerror(errno));
    if (f)
      fclose(f);
    return 1;
  }
  return fclose(f) == 0 ? 0 : 1;
}

static int cmd_login(int argc, char **argv) {
  if (argc < 2)
    return usage();
  const char *pw = opt(argc, argv, "--password");
  if (pw == NULL)
    pw = getenv("GATECTL_PASSWORD");
  if (pw == NULL) {
    fprintf(stderr, "gatectl: give --password or set GATECTL_PASSWORD\n");
    return 2;
  }
  json_t *j;
  long st = request("POST", "/auth/login",
                    json_pack("{s:s, s:s}", "username", argv[1], "password", pw), &j);
  const char *tok = json_string_value(json_object_get(j, "token"));
  if (st == 200 && tok) {
    char buf[512];
    const char *tf = token_file(buf, sizeof buf);
    if (save_file(tf, tok, strlen(tok)) != 0) {
      json_decref(j);
      return 1;
    }
    fprintf(stderr, "token saved to %s\n", tf);
  }
  return print_reply(st, j);
}

static int cmd_import(const char *event, const char *path) {
  FILE *f = fopen(path, "r");
  if (f == NULL) {
    fprintf(stderr, "gatectl: %s: %s\n", path, strerror(errno));
    return 1;
  }
  char line[1024];
  json_t *batch = json_array();
  long total = 0, lineno = 0;
  int rc = 0;
  for (;;) {
    bool eof = fgets(line, sizeof line, f) == NULL;
    if (!eof) {
      lineno++;
      line[strcspn(line, "\r\n")] = 0;
      if (line[0] == 0 || line[0] == '#')
        continue;
      char *save, *holder = strtok_r(line, ",", &save);
      char *tier = strtok_r(NULL, ",", &save), *id = strtok_r(NULL, ",", &save);
      json_t *t = json_pack("{s:s, s:s}", "event_id", event, "holder", holder);
      if (tier && *tier)
        json_object_set_new(t, "tier", json_string(tier));
      if (id && *id)
        json_object_set_new(t, "id", json_string(id));
      json_array_append_new(batch, t);
    }
    if (json_array_size(batch) == CSV_BATCH || (eof && json_array_size(batch) > 0)) {
      json_t *j;
      size_t n = json_array_size(batch);
      long st = request("POST", "/tickets/batch", json_pack("{s:o}", "tickets", batch), &j);
      batch = json_array();
      if (st != 201) {
        fprintf(stderr, "gatectl: batch ending at line %ld refused\n", lineno);
        print_reply(st, j);
        rc = 1;
        break;
      }
      json_decref(j);
      total += (long)n;
    }
    if (eof)
      break;
  }
  json_decref(batch);
  fclose(f);
  printf("{\"created\": %ld}\n", total);
  return rc;
}

static int cmd_qr_generate(int argc, char **argv) {
  char path[512];
  snprintf(path, sizeof path, "/tickets/%s/methods/qr/generate", argv[2]);
  json_t *params = json_object();
  const char *hk = opt(argc, argv, "--holder-key"), *ttl = opt(argc, argv, "--ttl");
  if (hk)
    json_object_set_new(params, "holder_key", json_string(hk));
  if (ttl)
    json_object_set_new(params, "ttl_s", json_integer(atoi(ttl)));
  json_t *j;
  long st = request("POST", path, params, &j);
  if (st == 200) {
    const char *png = json_string_value(json_object_get(j, "png_base64"));
    const char *svg = json_string_value(json_object_get(j, "svg"));
    const char *png_out = opt(argc, argv, "--png"), *svg_out = opt(argc, argv, "--svg");
    if (png && png_out) {
      size_t cap = strlen(png);
      uint8_t *bin = malloc(cap);
      long n = gm_b64_decode(bin, cap, png, strlen(png));
      int rc = n < 0 || save_file(png_out, bin, (size_t)n) != 0;
      free(bin);
      if (rc)
        return 1;
    }
    if (svg && svg_out && save_file(svg_out, svg, strlen(svg)) != 0)
      return 1;
    json_object_del(j, "png_base64");
    json_object_del(j, "svg");
  }
  return print_reply(st, j);
}

static int cmd_keygen(void) {
  uint8_t pk[32], sk[64];
  char p64[64], s64[128];
  crypto_sign_keypair(pk, sk);
  gm_b64url_encode(p64, sizeof p64, pk, sizeof pk);
  gm_b64url_encode(s64, sizeof s64, sk, sizeof sk);
  printf("{\"public_key\": \"%s\", \"secret_key\": \"%s\"}\n", p64, s64);
  return 0;
}

static int cmd_qr_show(int argc, char **argv) {
  const char *sec = opt(argc, argv, "--holder-secret"), *at = opt(argc, argv, "--at");
  uint8_t sk[64];
  if (argc < 3 || sec == NULL || gm_b64url_decode(sk, sizeof sk, sec, strlen(sec)) != 64) {
    fprintf(stderr, "gatectl: qr show CREDENTIAL --holder-secret B64URL (64-byte key)\n");
    return 2;
  }
  int64_t t = at ? atoll(at) : now_ms();
  char out[QR_TEXT_MAX];
  if (qr_holder_show(out, sizeof out, argv[2], sk, (uint32_t)(t / 1000)) != 0) {
    fprintf(stderr, "gatectl: that is not a holder credential\n");
    return 1;
  }
  printf("%s\n", out);
  return 0;
}

static int cmd_pass_code(int argc, char **argv) {
  const char *at = opt(argc, argv, "--at");
  uint8_t secret[PASS_SECRET_LEN];
  if (argc < 4 || strlen(argv[2]) != PASS_ID_HEX ||
      gm_b64url_decode(secret, sizeof secret, argv[3], strlen(argv[3])) != PASS_SECRET_LEN) {
    fprintf(stderr, "gatectl: pass code PASS_ID SECRET (as pass generate printed them)\n");
    return 2;
  }
  const char *period_s = getenv("GATE_PASS_PERIOD_S");
  uint64_t period = period_s ? (uint64_t)atoll(period_s) : 15;
  int64_t t = at ? atoll(at) : now_ms();
  char code[PASS_CODE_MAX + 1];
  pass_code_make(code, secret, argv[2], (uint64_t)(t / 1000) / period);
  printf("%s\n", code);
  return 0;
}

static int cmd_verify(int argc, char **argv) {
  const char *method = argv[1];
  json_t *pd = NULL;
  const char *v;
  if ((v = opt(argc, argv, "--payload")))
    pd = json_pack("{s:s}", "payload", v);
  else if ((v = opt(argc, argv, "--code")))
    pd = json_pack("{s:s}", "code", v);
  else if ((v = opt(argc, argv, "--data")))
    pd = json_loads(v, 0, NULL);
  else if ((v = opt(argc, argv, "--image"))) {
    size_t n;
    char *img = load_file(v, &n);
    if (img == NULL)
      return 1;
    size_t cap = n / 3 * 4 + 8;
    char *b64 = malloc(cap);
    gm_b64_encode(b64, cap, (uint8_t *)img, n);
    pd = json_pack("{s:s}", "image_base64", b64);
    free(img);
    free(b64);
  }
  if (pd == NULL)
    return usage();
  json_t *body = json_pack("{s:o}", "presented_data", pd);
  if ((v = opt(argc, argv, "--gate")))
    json_object_set_new(body, "gate", json_string(v));
  const char *ticket = opt(argc, argv, "--ticket");
  char path[512];
  if (ticket)
    snprintf(path, sizeof path, "/tickets/%s/methods/%s/verify", ticket, method);
  else {
    snprintf(path, sizeof path, "/verify");
    json_object_set_new(body, "method", json_string(method));
  }
  json_t *j;
  long st = request("POST", path, body, &j);
  int admitted = json_is_true(json_object_get(j, "admitted"));
  int rc = print_reply(st, j);
  return rc != 0 ? rc : admitted ? 0 : 3;
}

/* The kiosk: waits for a blank tag on the reader, maps its UID to the
 * ticket through the API, writes the signed record as NDEF from page 4. */
static int cmd_nfc_write(int argc, char **argv) {
  const char *dev = opt(argc, argv, "--device"), *ticket = opt(argc, argv, "--ticket");
  if (dev == NULL || ticket == NULL)
    return usage();
  char err[256];
  struct nfctool *t;
  if (nfctool_open(dev, &t, err, sizeof err) != 0) {
    fprintf(stderr, "gatectl: %s\n", err);
    return 1;
  }
  uint8_t uid[10];
  size_t ul;
  fprintf(stderr, "gatectl: hold a tag on the reader at %s\n", dev);
  int rc = nfctool_wait_tag(t, uid, &ul, 30000);
  if (rc != 0) {
    fprintf(stderr, "gatectl: no tag on the reader at %s: %s\n", dev, gm_err_msg(rc));
    nfctool_close(t);
    return 1;
  }
  char uidhex[21], path[256];
  gm_hex(uidhex, uid, ul);
  snprintf(path, sizeof path, "/tickets/%s/methods/nfc/generate", ticket);
  json_t *body = json_pack("{s:s}", "uid", uidhex);
  for (int i = 0; i < argc; i++)
    if (!strcmp(argv[i], "--sun"))
      json_object_set_new(body, "sun", json_true());
  json_t *j;
  long st = request("POST", path, body, &j);
  const char *memhex = j ? json_string_value(json_object_get(j, "ndef_t2")) : NULL;
  uint8_t mem[512];
  long ml = memhex ? gm_unhex(mem, sizeof mem, memhex, strlen(memhex)) : -1;
  rc = st == 200 && ml > 0 ? nfctool_write_t2(t, mem, (size_t)ml) : GM_EIO;
  if (st == 200 && rc != 0)
    fprintf(stderr, "gatectl: tag %s is mapped but writing its record failed; tap it again\n",
            uidhex);
  nfctool_close(t);
  print_reply(st, j);
  return rc == 0 ? 0 : 1;
}

/* The scanner: every tap read from the reader goes to POST /verify. */
static int cmd_nfc_listen(int argc, char **argv) {
  const char *dev = opt(argc, argv, "--device"), *gate = opt(argc, argv, "--gate");
  if (dev == NULL || gate == NULL)
    return usage();
  base_url = gate;
  char err[256];
  struct nfctool *t;
  if (nfctool_open(dev, &t, err, sizeof err) != 0) {
    fprintf(stderr, "gatectl: %s\n", err);
    return 1;
  }
  for (;;) {
    uint8_t uid[10], mem[1024];
    size_t ul, ml;
    if (nfctool_wait_tag(t, uid, &ul, -1) != 0)
      break;
    char uidhex[21];
    gm_hex(uidhex, uid, ul);
    json_t *pd = json_pack("{s:s}", "uid", uidhex);
    const uint8_t *ndef;
    size_t nl, count;
    struct ndef_record recs[8];
    if (nfctool_read_t2(t, mem, sizeof mem, &ml) == 0 &&
        ndef_t2_unwrap(mem, ml, &ndef, &nl) == 0 && ndef_decode(ndef, nl, recs, 8, &count) == 0)
      for (size_t i = 0; i < count; i++)
        if (recs[i].tnf == 0x04 && recs[i].type_len == sizeof NFC_NDEF_TYPE - 1 &&
            memcmp(recs[i].type, NFC_NDEF_TYPE, recs[i].type_len) == 0 &&
            recs[i].payload_len <= NFC_RECORD_MAX) {
          char b64[2 * NFC_RECORD_MAX];
          gm_b64url_encode(b64, sizeof b64, recs[i].payload, recs[i].payload_len);
          json_object_set_new(pd, "record", json_string(b64));
        }
    json_t *body = json_pack("{s:s, s:o}", "method", "nfc", "presented_data", pd);
    const char *name = opt(argc, argv, "--gate-name");
    if (name)
      json_object_set_new(body, "gate", json_string(name));
    call("POST", "/verify", body);
    fflush(stdout);
    nfctool_wait_removed(t);
  }
  nfctool_close(t);
  return 1;
}

static int cmd_nfc_sun_tap(int argc, char **argv) {
  const char *u = opt(argc, argv, "--uid"), *c = opt(argc, argv, "--ctr"),
             *mk = opt(argc, argv, "--meta-key"), *fk = opt(argc, argv, "--file-key");
  uint8_t uid[7], meta[16], file[16], pad[5], enc[16], mac[8];
  if (u == NULL || c == NULL || mk == NULL || fk == NULL ||
      gm_unhex(uid, 7, u, strlen(u)) != 7 || gm_unhex(meta, 16, mk, strlen(mk)) != 16 ||
      gm_unhex(file, 16, fk, strlen(fk)) != 16)
    return usage();
  randombytes_buf(pad, sizeof pad);
  if (nfc_sun_tap(meta, file, uid, (uint32_t)strtoul(c, NULL, 10), pad, enc, mac) != 0)
    return 1;
  char eh[33], mh[17];
  gm_hex(eh, enc, 16);
  gm_hex(mh, mac, 8);
  printf("{\"picc_data\":\"%s\",\"cmac\":\"%s\"}\n", eh, mh);
  return 0;
}

/* What the client SDK does on entering a zone: sign the position report. */
static int cmd_geo_sign(int argc, char **argv) {
  const char *k = opt(argc, argv, "--key"), *tk = opt(argc, argv, "--ticket"),
             *la = opt(argc, argv, "--lat"), *lo = opt(argc, argv, "--lon"),
             *ac = opt(argc, argv, "--accuracy"), *at = opt(argc, argv, "--at");
  uint8_t seed[32], pk[32], sk[64], sig[64];
  if (k == NULL || tk == NULL || la == NULL || lo == NULL || ac == NULL ||
      gm_b64url_decode(seed, sizeof seed, k, strlen(k)) != 32)
    return usage();
  crypto_sign_seed_keypair(pk, sk, seed);
  char msg[GEO_MSG_MAX];
  int64_t ts = at ? atoll(at) : now_ms();
  size_t n = geo_message(msg, tk, strtod(la, NULL), strtod(lo, NULL), strtod(ac, NULL), ts);
  crypto_sign_detached(sig, NULL, (const uint8_t *)msg, n, sk);
  char s64[100];
  gm_b64url_encode(s64, sizeof s64, sig, sizeof sig);
  printf("{\"signature\":\"%s\",\"timestamp_ms\":%lld}\n", s64, (long long)ts);
  sodium_memzero(sk, sizeof sk);
  return 0;
}

static int cmd_zone_add(int argc, char **argv) {
  const char *circle = opt(argc, argv, "--circle"), *poly = opt(argc, argv, "--polygon");
  json_t *b = json_pack("{s:s}", "id", argv[3]);
  if (opt(argc, argv, "--gate"))
    json_object_set_new(b, "gate", json_string(opt(argc, argv, "--gate")));
  if (opt(argc, argv, "--max-accuracy"))
    json_object_set_new(b, "max_accuracy_m", json_integer(atoll(opt(argc, argv, "--max-accuracy"))));
  if (circle) {
    double lat, lon, r;
    if (sscanf(circle, "%lf,%lf,%lf", &lat, &lon, &r) != 3) {
      json_decref(b);
      return usage();
    }
    json_object_set_new(b, "circle", json_pack("{s:f, s:f, s:I}", "lat", lat, "lon", lon,
                                               "radius_m", (json_int_t)r));
  } else if (poly) {
    json_t *pts = json_array();
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", poly);
    for (char *save, *p = strtok_r(buf, ";", &save); p; p = strtok_r(NULL, ";", &save)) {
      double lat, lon;
      if (sscanf(p, "%lf,%lf", &lat, &lon) == 2)
        json_array_append_new(pts, json_pack("[f, f]", lat, lon));
    }
    json_object_set_new(b, "polygon", pts);
  }
  char path[256];
  snprintf(path, sizeof path, "/events/%s/zones", argv[2]);
  return call("POST", path, b);
}

static int cmd_audit(int argc, char **argv) {
  char path[1024] = "/audits/usage?x=1";
  const char *keys[] = {"--ticket", "--method", "--gate", "--limit", "--since"};
  const char *qs[] = {"ticket", "method", "gate", "limit", "since_ms"};
  for (int i = 0; i < 5; i++) {
    const char *v = opt(argc, argv, keys[i]);
    if (v) {
      char *esc = curl_easy_escape(NULL, v, 0);
      size_t len = strlen(path);
      snprintf(path + len, sizeof path - len, "&%s=%s", qs[i], esc);
      curl_free(esc);
    }
  }
  return call("GET", path, NULL);
}

int main(int argc, char **argv) {
  int i = 1;
  base_url = getenv("GATE_URL") ? getenv("GATE_URL") : "http://127.0.0.1:8080";
  token = getenv("GATE_TOKEN");
  for (; i + 1 < argc && argv[i][0] == '-' && argv[i][1] == '-'; i += 2) {
    if (!strcmp(argv[i], "--url"))
      base_url = argv[i + 1];
    else if (!strcmp(argv[i], "--token"))
      token = argv[i + 1];
    else
      return usage();
  }
  argc -= i;
  argv += i;
  if (argc < 1)
    return usage();
  curl_global_init(CURL_GLOBAL_DEFAULT);
  if (sodium_init() < 0)
    return 1;
  char tbuf[4096], fbuf[512];
  if (token == NULL && strcmp(argv[0], "login") != 0) {
    FILE *f = fopen(token_file(fbuf, sizeof fbuf), "r");
    if (f) {
      size_t n = fread(tbuf, 1, sizeof tbuf - 1, f);
      fclose(f);
      tbuf[n] = 0;
      tbuf[strcspn(tbuf, "\r\n")] = 0;
      token = tbuf;
    }
  }
  const char *c = argv[0], *sub = argc > 1 ? argv[1] : "";
  char path[1024];
  int rc;
  if (!strcmp(c, "login"))
    rc = cmd_login(argc, argv);
  else if (!strcmp(c, "user") && !strcmp(sub, "add") && argc >= 4 &&
           opt(argc, argv, "--password"))
    rc = call("POST", "/users",
              json_pack("{s:s, s:s, s:s}", "username", argv[2], "role", argv[3], "password",
                        opt(argc, argv, "--password")));
  else if (!strcmp(c, "user") && !strcmp(sub, "me"))
    rc = call("GET", "/users/me", NULL);
  else if (!strcmp(c, "event") && !strcmp(sub, "create") && argc >= 4 &&
           opt(argc, argv, "--starts") && opt(argc, argv, "--ends")) {
    json_t *b = json_pack("{s:s, s:s, s:I, s:I}", "id", argv[2], "name", argv[3], "starts_ms",
                          (json_int_t)atoll(opt(argc, argv, "--starts")), "ends_ms",
                          (json_int_t)atoll(opt(argc, argv, "--ends")));
    if (opt(argc, argv, "--policy"))
      json_object_set_new(b, "offline_policy", json_string(opt(argc, argv, "--policy")));
    if (opt(argc, argv, "--budget"))
      json_object_set_new(b, "offline_budget", json_integer(atoll(opt(argc, argv, "--budget"))));
    rc = call("POST", "/events", b);
  } else if (!strcmp(c, "ticket") && !strcmp(sub, "create") && argc >= 4) {
    json_t *b = json_pack("{s:s, s:s}", "event_id", argv[2], "holder", argv[3]);
    if (opt(argc, argv, "--id"))
      json_object_set_new(b, "id", json_string(opt(argc, argv, "--id")));
    if (opt(argc, argv, "--tier"))
      json_object_set_new(b, "tier", json_string(opt(argc, argv, "--tier")));
    rc = call("POST", "/tickets/", b);
  } else if (!strcmp(c, "ticket") && !strcmp(sub, "import") && argc >= 4)
    rc = cmd_import(argv[2], argv[3]);
  else if (!strcmp(c, "ticket") && !strcmp(sub, "show") && argc >= 3) {
    snprintf(path, sizeof path, "/tickets/%s", argv[2]);
    rc = call("GET", path, NULL);
  } else if (!strcmp(c, "ticket") && !strcmp(sub, "methods") && argc >= 3) {
    snprintf(path, sizeof path, "/tickets/%s/methods", argv[2]);
    rc = call("GET", path, NULL);
  } else if (!strcmp(c, "ticket") && !strcmp(sub, "transfer") && argc >= 4) {
    snprintf(path, sizeof path, "/tickets/%s/transfer", argv[2]);
    rc = call("POST", path, json_pack("{s:s}", "to_holder", argv[3]));
  } else if (!strcmp(c, "ticket") && !strcmp(sub, "revoke") && argc >= 3) {
    snprintf(path, sizeof path, "/tickets/%s/revoke", argv[2]);
    rc = call("POST", path, json_pack("{s:s}", "reason", argc >= 4 ? argv[3] : ""));
  } else if (!strcmp(c, "qr") && !strcmp(sub, "generate") && argc >= 3)
    rc = cmd_qr_generate(argc, argv);
  else if (!strcmp(c, "qr") && !strcmp(sub, "show"))
    rc = cmd_qr_show(argc, argv);
  else if (!strcmp(c, "pass") && !strcmp(sub, "generate") && argc >= 3) {
    snprintf(path, sizeof path, "/tickets/%s/methods/pass/generate", argv[2]);
    rc = call("POST", path, NULL);
  } else if (!strcmp(c, "pass") && !strcmp(sub, "code"))
    rc = cmd_pass_code(argc, argv);
  else if (!strcmp(c, "verify") && argc >= 3)
    rc = cmd_verify(argc, argv);
  else if (!strcmp(c, "audit"))
    rc = cmd_audit(argc, argv);
  else if (!strcmp(c, "toggle") && argc >= 3) {
    snprintf(path, sizeof path, "/admin/methods/%s/toggle", argv[1]);
    rc = call("POST", path, json_pack("{s:b}", "enabled", !strcmp(argv[2], "on")));
  } else if (!strcmp(c, "override") && argc >= 4) {
    snprintf(path, sizeof path, "/admin/tickets/%s/override", argv[1]);
    rc = call("POST", path, json_pack("{s:s, s:s}", "action", argv[2], "reason", argv[3]));
  } else if (!strcmp(c, "rotate-key"))
    rc = call("POST", "/admin/keys/rotate", NULL);
  else if (!strcmp(c, "incidents"))
    rc = call("GET", "/incidents", NULL);
  else if (!strcmp(c, "status"))
    rc = call("GET", "/cluster/status", NULL);
  else if (!strcmp(c, "health"))
    rc = call("GET", "/healthz", NULL);
  else if (!strcmp(c, "jwks"))
    rc = call("GET", "/.well-known/jwks.json", NULL);
  else if (!strcmp(c, "keygen"))
    rc = cmd_keygen();
  else if (!strcmp(c, "nfc") && !strcmp(sub, "write"))
    rc = cmd_nfc_write(argc, argv);
  else if (!strcmp(c, "nfc") && !strcmp(sub, "listen"))
    rc = cmd_nfc_listen(argc, argv);
  else if (!strcmp(c, "nfc") && !strcmp(sub, "sun-tap"))
    rc = cmd_nfc_sun_tap(argc, argv);
  else if (!strcmp(c, "geo") && !strcmp(sub, "sign"))
    rc = cmd_geo_sign(argc, argv);
  else if (!strcmp(c, "zone") && !strcmp(sub, "add") && argc >= 4)
    rc = cmd_zone_add(argc, argv);
  else if (!strcmp(c, "bio") && (!strcmp(sub, "status") || !strcmp(sub, "erase")) &&
           argc >= 3) {
    snprintf(path, sizeof path, "/tickets/%s/methods/biometric", argv[2]);
    rc = call(!strcmp(sub, "status") ? "GET" : "DELETE", path, NULL);
  }
  else if (!strcmp(c, "cluster") && !strcmp(sub, "status"))
    rc = call("GET", "/cluster/status", NULL);
  else if (!strcmp(c, "cluster") && !strcmp(sub, "join-token"))
    rc = call("GET", "/cluster/join-token", NULL);
  else if (!strcmp(c, "cluster") && !strcmp(sub, "leave") && argc >= 3)
    rc = call("POST", "/cluster/leave", json_pack("{s:I}", "node_id", (json_int_t)atoll(argv[2])));
  else if (!strcmp(c, "cluster") && !strcmp(sub, "join"))
    rc = cmd_cluster_join(argc, argv);
  else
    rc = usage();
  curl_global_cleanup();
  return rc;
}
