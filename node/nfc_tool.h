/*
 * nfc_tool.h — a tag reader/writer through libnfc, for gatectl's kiosk and
 * listener commands. Errors come back with a message naming the connstring.
 */
#ifndef GM_NFC_TOOL_H
#define GM_NFC_TOOL_H

#include <stddef.h>
#include <stdint.h>

struct nfctool;

int nfctool_open(const char *connstring, struct nfctool **out, char *err, size_t errlen);
void nfctool_close(struct nfctool *t);
/* Waits for an ISO 14443-A tag (timeout_ms < 0: for ever); its UID. */
int nfctool_wait_tag(struct nfctool *t, uint8_t uid[10], size_t *uid_len, int timeout_ms);
int nfctool_wait_removed(struct nfctool *t);
/* Type 2 tag memory from page 4. */
int nfctool_write_t2(struct nfctool *t, const uint8_t *mem, size_t n);
int nfctool_read_t2(struct nfctool *t, uint8_t *mem, size_t cap, size_t *n);

#endif
