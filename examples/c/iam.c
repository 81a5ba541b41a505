/* IAM in C: a user in a group with a policy, git credentials and an access key, an allowed and
 * a denied call with the explanation, and a role assumed across accounts with MFA. The TOTP
 * codes come from the small RFC 6238 implementation at the bottom (SHA-1, HMAC, base32),
 * standing in for the user's authenticator app. Compiled and run by `make test`. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codekeep.h"

static void totp(const uint8_t *seed, size_t seed_len, long long unix_seconds, char out[7]);
static size_t seed_from(const char *base64_of_base32, uint8_t *out, size_t cap);

static int fail(const char *what) {
  char msg[1024];
  size_t n = 0;
  codekeep_last_error_message(msg, sizeof msg, &n);
  fprintf(stderr, "%s failed: %s\n", what, msg);
  return 1;
}

/* The string value of the first "name":"..." in `json` (enough for these flat answers). */
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

/* `text` as a JSON string literal body (quotes and backslashes escaped). */
static void json_escape(const char *text, char *out, size_t cap) {
  size_t j = 0;
  for (size_t i = 0; text[i] && j + 2 < cap; i++) {
    if (text[i] == '"' || text[i] == '\\') out[j++] = '\\';
    out[j++] = text[i];
  }
  out[j] = 0;
}

static int call(codekeep_client *client, const char *op, const char *input, char **out) {
  char *ignored = NULL;
  int status = codekeep_client_call(client, op, input, out ? out : &ignored);
  codekeep_string_free(ignored);
  return status != CODEKEEP_STATUS_OK ? fail(op) : 0;
}

int main(void) {
  codekeep_keep *keep = NULL;
  if (codekeep_keep_open_memory(&keep)) return fail("open");
  char *acct = NULL, dev[32], prod[32], root[128], input[2048], doc[1024], esc[1024];
  if (codekeep_keep_create_account(keep, "development", &acct)) return fail("account");
  json_get(acct, "Id", dev, sizeof dev);
  codekeep_string_free(acct);
  if (codekeep_keep_create_account(keep, "production", &acct)) return fail("account");
  json_get(acct, "Id", prod, sizeof prod);
  codekeep_string_free(acct);

  codekeep_client *iam = NULL;
  snprintf(root, sizeof root, "{\"AccountId\":\"%s\"}", dev);
  if (codekeep_client_new(keep, "iam", root, &iam)) return fail("iam client");

  /* A user in a group whose policy lets its members read IAM and use KMS. */
  if (call(iam, "CreateGroup", "{\"GroupName\":\"developers\"}", NULL)) return 1;
  json_escape("{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\","
              "\"Action\":[\"iam:Get*\",\"iam:List*\",\"kms:*\"],\"Resource\":\"*\"}]}", esc, sizeof esc);
  snprintf(input, sizeof input, "{\"GroupName\":\"developers\",\"PolicyName\":\"work\",\"PolicyDocument\":\"%s\"}", esc);
  if (call(iam, "PutGroupPolicy", input, NULL)) return 1;
  if (call(iam, "CreateUser", "{\"UserName\":\"alice\"}", NULL)) return 1;
  if (call(iam, "AddUserToGroup", "{\"GroupName\":\"developers\",\"UserName\":\"alice\"}", NULL)) return 1;
  printf("created alice in group developers\n");

  /* Git HTTPS credentials and an access key: their secrets are shown once. */
  char *out = NULL, git_user[128], key_id[64], secret[128], alice[512];
  if (call(iam, "CreateServiceSpecificCredential",
           "{\"UserName\":\"alice\",\"ServiceName\":\"codecommit.amazonaws.com\"}", &out)) return 1;
  json_get(out, "ServiceUserName", git_user, sizeof git_user);
  codekeep_string_free(out);
  printf("git credentials: user %s\n", git_user);
  if (call(iam, "CreateAccessKey", "{\"UserName\":\"alice\"}", &out)) return 1;
  json_get(out, "AccessKeyId", key_id, sizeof key_id);
  json_get(out, "SecretAccessKey", secret, sizeof secret);
  codekeep_string_free(out);
  printf("access key %s\n", key_id);
  snprintf(alice, sizeof alice, "{\"AccessKeyId\":\"%s\",\"SecretAccessKey\":\"%s\"}", key_id, secret);

  /* An allowed call, a denied one, and the explanation. */
  codekeep_client *as_alice = NULL;
  if (codekeep_client_new(keep, "iam", alice, &as_alice)) return fail("alice client");
  if (call(as_alice, "ListUsers", "{}", NULL)) return 1;
  printf("allowed: ListUsers\n");
  if (codekeep_client_call(as_alice, "CreateUser", "{\"UserName\":\"mallory\"}", &out) != CODEKEEP_STATUS_ACCESS_DENIED) {
    fprintf(stderr, "alice must not create users\n");
    return 1;
  }
  char msg[1024];
  size_t n = 0;
  codekeep_last_error_message(msg, sizeof msg, &n);
  printf("denied: %s\n", msg);
  char resource[128];
  snprintf(resource, sizeof resource, "arn:aws:iam::%s:user/mallory", dev);
  if (codekeep_keep_authorize(keep, alice, "iam:CreateUser", resource, NULL, &out)) return fail("authorize");
  printf("explained: %s\n", out);
  codekeep_string_free(out);

  /* Production trusts development, with MFA, for a deploy role. */
  codekeep_client *prod_iam = NULL;
  snprintf(root, sizeof root, "{\"AccountId\":\"%s\"}", prod);
  if (codekeep_client_new(keep, "iam", root, &prod_iam)) return fail("prod iam client");
  snprintf(doc, sizeof doc,
           "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"arn:aws:iam::%s:root\"},"
           "\"Action\":\"sts:AssumeRole\",\"Condition\":{\"Bool\":{\"aws:MultiFactorAuthPresent\":\"true\"}}}]}", dev);
  json_escape(doc, esc, sizeof esc);
  snprintf(input, sizeof input, "{\"RoleName\":\"deploy\",\"AssumeRolePolicyDocument\":\"%s\"}", esc);
  if (call(prod_iam, "CreateRole", input, NULL)) return 1;
  json_escape("{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"kms:*\",\"Resource\":\"*\"}]}",
              esc, sizeof esc);
  snprintf(input, sizeof input, "{\"RoleName\":\"deploy\",\"PolicyName\":\"kms\",\"PolicyDocument\":\"%s\"}", esc);
  if (call(prod_iam, "PutRolePolicy", input, NULL)) return 1;
  char role_arn[128];
  snprintf(role_arn, sizeof role_arn, "arn:aws:iam::%s:role/deploy", prod);
  snprintf(doc, sizeof doc,
           "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"sts:AssumeRole\",\"Resource\":\"%s\"}]}",
           role_arn);
  json_escape(doc, esc, sizeof esc);
  snprintf(input, sizeof input, "{\"UserName\":\"alice\",\"PolicyName\":\"assume-deploy\",\"PolicyDocument\":\"%s\"}", esc);
  if (call(iam, "PutUserPolicy", input, NULL)) return 1;

  /* alice's virtual MFA device, enabled with two consecutive codes from her app. */
  char serial[128], seed_text[256], c1[7], c2[7], c3[7];
  if (call(iam, "CreateVirtualMFADevice", "{\"VirtualMFADeviceName\":\"alice-phone\"}", &out)) return 1;
  json_get(out, "SerialNumber", serial, sizeof serial);
  json_get(out, "Base32StringSeed", seed_text, sizeof seed_text);
  codekeep_string_free(out);
  uint8_t seed[128];
  size_t seed_len = seed_from(seed_text, seed, sizeof seed);
  long long now = (long long)time(NULL);
  totp(seed, seed_len, now - 30, c1);
  totp(seed, seed_len, now, c2);
  totp(seed, seed_len, now + 30, c3);
  snprintf(input, sizeof input,
           "{\"UserName\":\"alice\",\"SerialNumber\":\"%s\",\"AuthenticationCode1\":\"%s\",\"AuthenticationCode2\":\"%s\"}",
           serial, c1, c2);
  if (call(iam, "EnableMFADevice", input, NULL)) return 1;

  codekeep_client *sts = NULL;
  if (codekeep_client_new(keep, "sts", alice, &sts)) return fail("sts client");
  snprintf(input, sizeof input,
           "{\"RoleArn\":\"%s\",\"RoleSessionName\":\"release-42\",\"SerialNumber\":\"%s\",\"TokenCode\":\"%s\"}",
           role_arn, serial, c3);
  if (call(sts, "AssumeRole", input, &out)) return 1;
  char session_arn[256], temp_id[64], temp_secret[128];
  json_get(out, "Arn", session_arn, sizeof session_arn);
  json_get(out, "AccessKeyId", temp_id, sizeof temp_id);
  json_get(out, "SecretAccessKey", temp_secret, sizeof temp_secret);
  const char *token_at = strstr(out, "\"SessionToken\":\"");
  char *session = malloc(strlen(out) + 256);
  if (!token_at || !session) return 1;
  token_at += strlen("\"SessionToken\":\"");
  int token_len = (int)(strchr(token_at, '"') - token_at);
  sprintf(session, "{\"AccessKeyId\":\"%s\",\"SecretAccessKey\":\"%s\",\"SessionToken\":\"%.*s\"}", temp_id,
          temp_secret, token_len, token_at);
  codekeep_string_free(out);
  printf("assumed %s\n", session_arn);

  codekeep_client *prod_kms = NULL;
  if (codekeep_client_new(keep, "kms", session, &prod_kms)) return fail("kms client as the role");
  char key[64];
  if (call(prod_kms, "CreateKey", "{\"Description\":\"created by the deploy role\"}", &out)) return 1;
  json_get(out, "KeyId", key, sizeof key);
  codekeep_string_free(out);
  printf("created KMS key %s in production as the role\n", key);

  free(session);
  codekeep_client_free(prod_kms);
  codekeep_client_free(sts);
  codekeep_client_free(prod_iam);
  codekeep_client_free(as_alice);
  codekeep_client_free(iam);
  codekeep_keep_free(keep);
  return 0;
}

/* ---- the authenticator app: SHA-1 (FIPS 180-4), HMAC (RFC 2104), TOTP (RFC 6238) ---- */

static uint32_t rol(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

static void sha1(const uint8_t *data, size_t len, uint8_t out[20]) {
  uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
  size_t total = ((len + 8) / 64 + 1) * 64;
  uint8_t *msg = calloc(total, 1);
  if (!msg) return;
  memcpy(msg, data, len);
  msg[len] = 0x80;
  uint64_t bits = (uint64_t)len * 8;
  for (int i = 0; i < 8; i++) msg[total - 1 - i] = (uint8_t)(bits >> (8 * i));
  for (size_t block = 0; block < total; block += 64) {
    uint32_t w[80];
    for (int i = 0; i < 16; i++)
      w[i] = (uint32_t)msg[block + 4 * i] << 24 | (uint32_t)msg[block + 4 * i + 1] << 16 |
             (uint32_t)msg[block + 4 * i + 2] << 8 | msg[block + 4 * i + 3];
    for (int i = 16; i < 80; i++) w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; i++) {
      uint32_t f, k;
      if (i < 20) { f = (b & c) | (~b & d); k = 0x5A827999; }
      else if (i < 40) { f = b ^ c ^ d; k = 0x6ED9EBA1; }
      else if (i < 60) { f = (b & c) | (b & d) | (c & d); k = 0x8F1BBCDC; }
      else { f = b ^ c ^ d; k = 0xCA62C1D6; }
      uint32_t t = rol(a, 5) + f + e + k + w[i];
      e = d; d = c; c = rol(b, 30); b = a; a = t;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e;
  }
  free(msg);
  for (int i = 0; i < 20; i++) out[i] = (uint8_t)(h[i / 4] >> (24 - 8 * (i % 4)));
}

static void hmac_sha1(const uint8_t *key, size_t key_len, const uint8_t *data, size_t len, uint8_t out[20]) {
  uint8_t k[64] = {0}, inner[64 + 64], outer[64 + 20], digest[20];
  if (key_len > 64) { sha1(key, key_len, k); } else { memcpy(k, key, key_len); }
  for (int i = 0; i < 64; i++) { inner[i] = k[i] ^ 0x36; outer[i] = k[i] ^ 0x5c; }
  memcpy(inner + 64, data, len);
  sha1(inner, 64 + len, digest);
  memcpy(outer + 64, digest, 20);
  sha1(outer, 64 + 20, out);
}

static void totp(const uint8_t *seed, size_t seed_len, long long unix_seconds, char out[7]) {
  uint64_t step = (uint64_t)(unix_seconds / 30);
  uint8_t counter[8], mac[20];
  for (int i = 0; i < 8; i++) counter[i] = (uint8_t)(step >> (56 - 8 * i));
  hmac_sha1(seed, seed_len, counter, 8, mac);
  int offset = mac[19] & 0x0f;
  uint32_t word = ((uint32_t)(mac[offset] & 0x7f) << 24) | (uint32_t)mac[offset + 1] << 16 |
                  (uint32_t)mac[offset + 2] << 8 | mac[offset + 3];
  snprintf(out, 7, "%06u", word % 1000000);
}

/* IAM's Base32StringSeed is the base32 text of the seed, base64-encoded in JSON. */
static size_t seed_from(const char *b64, uint8_t *out, size_t cap) {
  static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  char text[256];
  size_t t = 0;
  uint32_t buffer = 0;
  int bits = 0;
  for (size_t i = 0; b64[i] && b64[i] != '='; i++) {
    const char *p = strchr(B64, b64[i]);
    if (!p) continue;
    buffer = (buffer << 6) | (uint32_t)(p - B64);
    bits += 6;
    if (bits >= 8 && t + 1 < sizeof text) { bits -= 8; text[t++] = (char)((buffer >> bits) & 0xff); }
  }
  size_t n = 0;
  buffer = 0;
  bits = 0;
  for (size_t i = 0; i < t; i++) {
    char c = text[i];
    uint32_t v = (c >= 'A' && c <= 'Z') ? (uint32_t)(c - 'A') : (c >= '2' && c <= '7') ? (uint32_t)(c - '2' + 26) : 99;
    if (v == 99) continue;
    buffer = (buffer << 5) | v;
    bits += 5;
    if (bits >= 8 && n < cap) { bits -= 8; out[n++] = (uint8_t)((buffer >> bits) & 0xff); }
  }
  return n;
}
