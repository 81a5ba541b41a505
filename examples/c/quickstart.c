/* The codekeep tour in C: account, KMS key, seal a file, read a range, rotate, disable,
 * verify the audit log and show the last events. Compiled and run by `make test`. */
#include <stdio.h>
#include <string.h>

#include "codekeep.h"

static int fail(const char *what) {
  char msg[512];
  size_t n = 0;
  codekeep_last_error_message(msg, sizeof msg, &n);
  fprintf(stderr, "%s failed: %s\n", what, msg);
  return 1;
}

static void json_get(const char *json, const char *name, char *out, size_t cap) {
  char pat[128];
  snprintf(pat, sizeof pat, "\"%s\":\"", name);
  const char *p = strstr(json, pat);
  out[0] = 0;
  if (!p) return;
  p += strlen(pat);
  size_t i = 0;
  while (p[i] && p[i] != '"' && i + 1 < cap) { out[i] = p[i]; i++; }
  out[i] = 0;
}

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : "build/c-quickstart";
  char path[512];
  codekeep_keep *keep = NULL;
  if (codekeep_keep_open(dir, &keep) != CODEKEEP_STATUS_OK) return fail("open");
  printf("opened keep in %s (codekeep %s)\n", dir, codekeep_version());

  char *account = NULL, *out = NULL, id[64], caller[128], key_id[64], input[256];
  if (codekeep_keep_create_account(keep, "quickstart", &account)) return fail("create account");
  json_get(account, "Id", id, sizeof id);
  printf("created account %s\n", id);
  snprintf(caller, sizeof caller, "{\"AccountId\":\"%s\"}", id);
  codekeep_client *kms = NULL;
  if (codekeep_client_new(keep, "kms", caller, &kms)) return fail("kms client");
  if (codekeep_client_call(kms, "CreateKey", "{\"Description\":\"quickstart\"}", &out)) return fail("CreateKey");
  json_get(out, "KeyId", key_id, sizeof key_id);
  codekeep_string_free(out);
  printf("created KMS key %s\n", key_id);

  snprintf(path, sizeof path, "%s/hello.txt", dir);
  FILE *f = fopen(path, "wb");
  if (!f) return 1;
  for (int i = 0; i < 10000; i++) fprintf(f, "hello from C, line %05d\n", i);
  fclose(f);
  char sealed[512];
  snprintf(sealed, sizeof sealed, "%s/hello.sealed", dir);
  const char *ctx = "{\"purpose\":\"quickstart\"}";
  if (codekeep_envelope_seal_file(kms, key_id, ctx, path, sealed)) return fail("seal");
  printf("sealed %s into %s\n", path, sealed);

  codekeep_bytes *range = NULL;
  if (codekeep_envelope_read_range(kms, ctx, sealed, 25 * 5000, 25, &range)) return fail("range read");
  printf("read bytes 125000..125025 back: %.*s", (int)codekeep_bytes_len(range), (const char *)codekeep_bytes_data(range));
  codekeep_bytes_free(range);

  snprintf(input, sizeof input, "{\"KeyId\":\"%s\"}", key_id);
  if (codekeep_client_call(kms, "RotateKeyOnDemand", input, &out)) return fail("rotate");
  codekeep_string_free(out);
  range = NULL;
  if (codekeep_envelope_read_range(kms, ctx, sealed, 0, 24, &range)) return fail("range after rotation");
  printf("rotated the key; old data still opens: %.*s", (int)codekeep_bytes_len(range), (const char *)codekeep_bytes_data(range));
  codekeep_bytes_free(range);

  if (codekeep_client_call(kms, "DisableKey", input, &out)) return fail("disable");
  codekeep_string_free(out);
  range = NULL;
  codekeep_status s = codekeep_envelope_read_range(kms, ctx, sealed, 0, 24, &range);
  char msg[512];
  size_t n;
  codekeep_last_error_message(msg, sizeof msg, &n);
  printf("disabled the key; opening is refused: %s (%s)\n", codekeep_status_str(s), msg);
  if (s != CODEKEEP_STATUS_KEY_DISABLED) return 1;

  char *report = NULL;
  if (codekeep_keep_verify_audit_log(keep, &report)) return fail("verify");
  printf("audit log: %s\n", report);
  codekeep_string_free(report);

  codekeep_client *trail = NULL;
  if (codekeep_client_new(keep, "cloudtrail", caller, &trail)) return fail("cloudtrail client");
  if (codekeep_client_call(trail, "LookupEvents", "{\"MaxResults\":10}", &out)) return fail("LookupEvents");
  printf("last events:");
  const char *p = out;
  while ((p = strstr(p, "\"EventName\":\"")) != NULL) {
    p += 13;
    printf(" %.*s", (int)strcspn(p, "\""), p);
  }
  printf("\n");
  codekeep_string_free(out);
  codekeep_client_free(trail);
  codekeep_string_free(account);
  codekeep_client_free(kms);
  codekeep_keep_free(keep);
  return 0;
}
