/*
 * err.c — lookups into the X-macro error table of err.h.
 */
#include "err.h"

const char *gm_err_code(int rc) {
  switch (rc) {
  case GM_OK:
    return "ok";
#define GM__ERR_CODE(name, value, code, msg) \
  case GM_E##name:                           \
    return code;
    GM_ERR_TABLE(GM__ERR_CODE)
#undef GM__ERR_CODE
  }
  return "unknown_error";
}

const char *gm_err_msg(int rc) {
  switch (rc) {
  case GM_OK:
    return "success";
#define GM__ERR_MSG(name, value, code, msg) \
  case GM_E##name:                          \
    return msg;
    GM_ERR_TABLE(GM__ERR_MSG)
#undef GM__ERR_MSG
  }
  return "unknown error";
}
