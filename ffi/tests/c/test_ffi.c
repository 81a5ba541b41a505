/* C tests of the codekeep ABI. Built with -Wall -Wextra -Werror against include/codekeep.h. */
#define _POSIX_C_SOURCE 200809L
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codekeep.h"
#include "codekeep.h" /* included twice on purpose: the include guard must hold */

static int failures = 0;
#define CHECK(cond)                                                   \
  do {                                                                \
    if (!(cond)) {                                                    \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      failures++;                                                     \
    }                                                                 \
  } while (0)
#define OK(call) CHECK((call) == CODEKEEP_STATUS_OK)

/* Extracts the string value of "name" from flat JSON into out (enough for ids and ARNs). */
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

struct mem { unsigned char *data; size_t len, pos; };

static uint32_t mem_read(void *ud, uint8_t *buf, size_t len, size_t *out_n) {
  struct mem *m = ud;
  size_t n = m->len - m->pos < len ? m->len - m->pos : len;
  memcpy(buf, m->data + m->pos, n);
  m->pos += n;
  *out_n = n;
  return CODEKEEP_STATUS_OK;
}

static uint32_t mem_write(void *ud, const uint8_t *buf, size_t len) {
  struct mem *m = ud;
  unsigned char *grown = realloc(m->data, m->len + len);
  if (!grown) return CODEKEEP_STATUS_INTERNAL;
  m->data = grown;
  memcpy(m->data + m->len, buf, len);
  m->len += len;
  return CODEKEEP_STATUS_OK;
}

static void test_version_and_statuses(void) {
  CHECK(CODEKEEP_VERSION_NUMBER == ((CODEKEEP_VERSION_MAJOR << 16) | (CODEKEEP_VERSION_MINOR << 8) | CODEKEEP_VERSION_PATCH));
  char expect[32];
  snprintf(expect, sizeof expect, "%d.%d.%d", CODEKEEP_VERSION_MAJOR, CODEKEEP_VERSION_MINOR, CODEKEEP_VERSION_PATCH);
  CHECK(strcmp(codekeep_version(), expect) == 0);
  const uint32_t all[] = {CODEKEEP_STATUS_OK, CODEKEEP_STATUS_NULL_ARGUMENT, CODEKEEP_STATUS_INVALID_ARGUMENT,
      CODEKEEP_STATUS_INVALID_UTF8, CODEKEEP_STATUS_BUFFER_TOO_SMALL, CODEKEEP_STATUS_ALREADY_USED,
      CODEKEEP_STATUS_PANIC, CODEKEEP_STATUS_UNSUPPORTED, CODEKEEP_STATUS_INTERNAL, CODEKEEP_STATUS_INVALID_JSON,
      CODEKEEP_STATUS_NOT_FOUND, CODEKEEP_STATUS_ALREADY_EXISTS, CODEKEEP_STATUS_ACCESS_DENIED,
      CODEKEEP_STATUS_CONFLICT, CODEKEEP_STATUS_INVALID_STATE, CODEKEEP_STATUS_LIMIT_EXCEEDED,
      CODEKEEP_STATUS_DECRYPT_FAILED, CODEKEEP_STATUS_KEY_DISABLED, CODEKEEP_STATUS_STORAGE, CODEKEEP_STATUS_IO};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
    const char *s = codekeep_status_str(all[i]);
    CHECK(s != NULL && s[0] != 0 && strcmp(s, "unknown status") != 0);
  }
  CHECK(strcmp(codekeep_status_str(99999), "unknown status") == 0);
}

static void test_errors(void) {
  codekeep_keep *keep = NULL;
  CHECK(codekeep_keep_open_memory(NULL) == CODEKEEP_STATUS_NULL_ARGUMENT);
  size_t n = 0;
  CHECK(codekeep_last_error_message(NULL, 0, &n) == CODEKEEP_STATUS_BUFFER_TOO_SMALL);
  CHECK(n > 0);
  char small[4];
  CHECK(codekeep_last_error_message(small, sizeof small, &n) == CODEKEEP_STATUS_BUFFER_TOO_SMALL);
  CHECK(strlen(small) == 3);
  char big[256];
  OK(codekeep_last_error_message(big, sizeof big, &n));
  CHECK(strlen(big) == n && strstr(big, "NULL") != NULL);

  OK(codekeep_keep_open_memory(&keep));
  codekeep_client *client = NULL;
  CHECK(codekeep_client_new(keep, "kms", "{not json", &client) == CODEKEEP_STATUS_INVALID_JSON);
  CHECK(client == NULL);
  CHECK(codekeep_client_new(keep, "kms", "{\"AccountId\":\"12\"}", &client) == CODEKEEP_STATUS_INVALID_ARGUMENT);
  CHECK(codekeep_client_new(keep, "nope", "{\"Admin\":true}", &client) == CODEKEEP_STATUS_INVALID_ARGUMENT);
  const char bad_utf8[] = {(char)0xff, (char)0xfe, 0};
  CHECK(codekeep_keep_create_account(keep, bad_utf8, &(char *){NULL}) == CODEKEEP_STATUS_INVALID_UTF8);
  codekeep_keep_free(keep);
  codekeep_keep_free(NULL);
  codekeep_client_free(NULL);
  codekeep_string_free(NULL);
  codekeep_bytes_free(NULL);
}

static void test_kms_and_envelope(void) {
  codekeep_keep *keep = NULL;
  OK(codekeep_keep_open_memory(&keep));
  char *account = NULL;
  OK(codekeep_keep_create_account(keep, "c-test", &account));
  char id[64], caller[128];
  json_get(account, "Id", id, sizeof id);
  CHECK(strlen(id) == 12);
  snprintf(caller, sizeof caller, "{\"AccountId\":\"%s\"}", id);
  codekeep_client *kms = NULL;
  OK(codekeep_client_new(keep, "kms", caller, &kms));
  char *out = NULL;
  OK(codekeep_client_call(kms, "CreateKey", "{\"Description\":\"from C\"}", &out));
  char key_id[64];
  json_get(out, "KeyId", key_id, sizeof key_id);
  CHECK(strlen(key_id) == 36);
  codekeep_string_free(out);

  char *missing = NULL;
  CHECK(codekeep_client_call(kms, "DescribeKey", "{\"KeyId\":\"alias/none\"}", &missing) == CODEKEEP_STATUS_NOT_FOUND);
  CHECK(missing == NULL);
  char msg[512];
  size_t n;
  OK(codekeep_last_error_message(msg, sizeof msg, &n));
  CHECK(strncmp(msg, "NotFoundException: ", 19) == 0);

  /* Seal through callbacks, then open through callbacks. */
  struct mem plain = {(unsigned char *)"the quick brown fox jumps over the lazy dog", 43, 0};
  struct mem sealed = {NULL, 0, 0};
  OK(codekeep_envelope_seal_stream(kms, key_id, "{\"repo\":\"r1\"}", mem_read, &plain, mem_write, &sealed));
  CHECK(sealed.len > 43);
  struct mem opened = {NULL, 0, 0};
  OK(codekeep_envelope_open_stream(kms, "{\"repo\":\"r1\"}", mem_read, &sealed, mem_write, &opened));
  CHECK(opened.len == 43 && memcmp(opened.data, plain.data, 43) == 0);
  sealed.pos = 0;
  struct mem wrong = {NULL, 0, 0};
  CHECK(codekeep_envelope_open_stream(kms, "{\"repo\":\"r2\"}", mem_read, &sealed, mem_write, &wrong) == CODEKEEP_STATUS_DECRYPT_FAILED);
  CHECK(wrong.len == 0);
  free(sealed.data);
  free(opened.data);
  free(wrong.data);

  /* Files and range reads. */
  const char *in_path = "build/c-test-plain.txt", *sealed_path = "build/c-test-sealed.bin", *out_path = "build/c-test-opened.txt";
  FILE *f = fopen(in_path, "wb");
  CHECK(f != NULL);
  if (f) {
    for (int i = 0; i < 20000; i++) fprintf(f, "line %05d\n", i);
    fclose(f);
  }
  OK(codekeep_envelope_seal_file(kms, key_id, NULL, in_path, sealed_path));
  OK(codekeep_envelope_open_file(kms, NULL, sealed_path, out_path));
  codekeep_bytes *range = NULL;
  OK(codekeep_envelope_read_range(kms, NULL, sealed_path, 11 * 12345, 11, &range));
  CHECK(codekeep_bytes_len(range) == 11 && memcmp(codekeep_bytes_data(range), "line 12345\n", 11) == 0);
  codekeep_bytes_free(range);

  char input[128];
  snprintf(input, sizeof input, "{\"KeyId\":\"%s\"}", key_id);
  OK(codekeep_client_call(kms, "DisableKey", input, &out));
  codekeep_string_free(out);
  range = NULL;
  CHECK(codekeep_envelope_read_range(kms, NULL, sealed_path, 0, 4, &range) == CODEKEEP_STATUS_KEY_DISABLED);
  CHECK(range == NULL);

  char *report = NULL;
  OK(codekeep_keep_verify_audit_log(keep, &report));
  CHECK(strstr(report, "\"Valid\":true") != NULL);
  codekeep_string_free(report);
  char *checkpoint = NULL;
  OK(codekeep_keep_audit_checkpoint(keep, &checkpoint));
  CHECK(strstr(checkpoint, "\"Signature\"") != NULL);
  codekeep_string_free(checkpoint);
  uint64_t exported = 0;
  OK(codekeep_keep_export_audit_log(keep, "build/c-audit.jsonl", &exported));
  CHECK(exported > 5);
  char *accounts = NULL;
  OK(codekeep_keep_list_accounts(keep, &accounts));
  CHECK(strstr(accounts, id) != NULL);
  codekeep_string_free(accounts);

  codekeep_string_free(account);
  codekeep_client_free(kms);
  codekeep_keep_free(keep);
}

/* A toy key provider for the plumbing test: "wraps" by prefixing the AAD length and AAD and
 * XOR-ing the material; unwrap refuses a different AAD. Real hosts call their KMS or HSM. */
static int provider_frees = 0;
static uint32_t toy_wrap(void *ud, const uint8_t *in, size_t in_len, const uint8_t *aad, size_t aad_len,
                         uint8_t *out, size_t cap, size_t *out_len) {
  (void)ud;
  size_t need = 2 + aad_len + in_len;
  *out_len = need;
  if (need > cap) return CODEKEEP_STATUS_BUFFER_TOO_SMALL;
  out[0] = (uint8_t)(aad_len >> 8);
  out[1] = (uint8_t)aad_len;
  memcpy(out + 2, aad, aad_len);
  for (size_t i = 0; i < in_len; i++) out[2 + aad_len + i] = in[i] ^ 0x5a;
  return CODEKEEP_STATUS_OK;
}
static uint32_t toy_unwrap(void *ud, const uint8_t *in, size_t in_len, const uint8_t *aad, size_t aad_len,
                           uint8_t *out, size_t cap, size_t *out_len) {
  int *fail_all = ud;
  if (*fail_all || in_len < 2) return CODEKEEP_STATUS_DECRYPT_FAILED;
  size_t stored = ((size_t)in[0] << 8) | in[1];
  if (stored != aad_len || in_len < 2 + stored || memcmp(in + 2, aad, aad_len) != 0) return CODEKEEP_STATUS_DECRYPT_FAILED;
  size_t n = in_len - 2 - stored;
  *out_len = n;
  if (n > cap) return CODEKEEP_STATUS_BUFFER_TOO_SMALL;
  for (size_t i = 0; i < n; i++) out[i] = in[2 + stored + i] ^ 0x5a;
  return CODEKEEP_STATUS_OK;
}
static void toy_free(void *ud) {
  (void)ud;
  provider_frees++;
}

static void test_key_provider_callbacks(void) {
  int ok = 0, broken = 1;
  codekeep_keep *keep = NULL;
  OK(codekeep_keep_open_with_key_provider("build/c-provider-keep", toy_wrap, toy_unwrap, &ok, toy_free, &keep));
  char *account = NULL, *out = NULL, id[64], caller[128], key_id[64], input[256];
  OK(codekeep_keep_create_account(keep, "provider", &account));
  json_get(account, "Id", id, sizeof id);
  snprintf(caller, sizeof caller, "{\"AccountId\":\"%s\"}", id);
  codekeep_client *kms = NULL;
  OK(codekeep_client_new(keep, "kms", caller, &kms));
  OK(codekeep_client_call(kms, "CreateKey", "{}", &out));
  json_get(out, "KeyId", key_id, sizeof key_id);
  codekeep_string_free(out);
  snprintf(input, sizeof input, "{\"KeyId\":\"%s\",\"Plaintext\":\"aGVsbG8=\"}", key_id);
  OK(codekeep_client_call(kms, "Encrypt", input, &out));
  codekeep_string_free(out);
  codekeep_client_free(kms);
  codekeep_keep_free(keep);
  codekeep_string_free(account);
  CHECK(provider_frees == 1);
  /* A provider that cannot unwrap this keep's keys is refused at open. */
  keep = NULL;
  CHECK(codekeep_keep_open_with_key_provider("build/c-provider-keep", toy_wrap, toy_unwrap, &broken, toy_free, &keep) == CODEKEEP_STATUS_ACCESS_DENIED);
  CHECK(keep == NULL);
  CHECK(provider_frees == 2);
  CHECK(codekeep_keep_open_with_key_provider(NULL, NULL, toy_unwrap, &ok, toy_free, &keep) == CODEKEEP_STATUS_NULL_ARGUMENT);
  CHECK(provider_frees == 3);
}

static void test_iam_users_and_authorize(void) {
  codekeep_keep *keep = NULL;
  OK(codekeep_keep_open_memory(&keep));
  char *account = NULL;
  OK(codekeep_keep_create_account(keep, "c-iam", &account));
  char id[64], root[128], alice[160];
  json_get(account, "Id", id, sizeof id);
  snprintf(root, sizeof root, "{\"AccountId\":\"%s\"}", id);
  snprintf(alice, sizeof alice, "{\"AccountId\":\"%s\",\"UserName\":\"alice\"}", id);
  codekeep_client *iam = NULL;
  OK(codekeep_client_new(keep, "iam", root, &iam));
  char *out = NULL;
  OK(codekeep_client_call(iam, "CreateUser", "{\"UserName\":\"alice\"}", &out));
  codekeep_string_free(out);
  OK(codekeep_client_call(iam, "PutUserPolicy",
                          "{\"UserName\":\"alice\",\"PolicyName\":\"p\",\"PolicyDocument\":"
                          "\"{\\\"Version\\\":\\\"2012-10-17\\\",\\\"Statement\\\":[{\\\"Effect\\\":\\\"Allow\\\","
                          "\\\"Action\\\":\\\"iam:List*\\\",\\\"Resource\\\":\\\"*\\\"}]}\"}",
                          &out));
  codekeep_string_free(out);

  /* The user's own calls are decided by its policies. */
  codekeep_client *as_alice = NULL;
  OK(codekeep_client_new(keep, "iam", alice, &as_alice));
  OK(codekeep_client_call(as_alice, "ListUsers", "{}", &out));
  codekeep_string_free(out);
  CHECK(codekeep_client_call(as_alice, "CreateUser", "{\"UserName\":\"bob\"}", &out) == CODEKEEP_STATUS_ACCESS_DENIED);
  char msg[512];
  size_t n;
  OK(codekeep_last_error_message(msg, sizeof msg, &n));
  CHECK(strstr(msg, "because no identity-based policy allows the iam:CreateUser action") != NULL);

  /* And explained without being performed. */
  OK(codekeep_keep_authorize(keep, alice, "iam:ListRoles", "*", NULL, &out));
  CHECK(strstr(out, "\"EvalDecision\":\"allowed\"") != NULL);
  codekeep_string_free(out);
  OK(codekeep_keep_authorize(keep, alice, "iam:DeleteUser", "*", "{\"aws:SourceIp\":\"10.0.0.1\"}", &out));
  CHECK(strstr(out, "\"EvalDecision\":\"implicitDeny\"") != NULL);
  codekeep_string_free(out);
  CHECK(codekeep_keep_authorize(keep, alice, "iam:DeleteUser", "*", "[1]", &out) == CODEKEEP_STATUS_INVALID_ARGUMENT);

  codekeep_client_free(as_alice);
  codekeep_client_free(iam);
  codekeep_string_free(account);
  codekeep_keep_free(keep);
}

/* The git server starts on free ports, describes itself, refuses bad configuration, and
 * answers HTTP on the address it reports. */
static void test_server(void) {
  codekeep_keep *keep = NULL;
  OK(codekeep_keep_open_memory(&keep));
  codekeep_server *server = NULL;
  CHECK(codekeep_server_start(keep, "{\"Http\": 7}", &server) == CODEKEEP_STATUS_INVALID_ARGUMENT);
  CHECK(codekeep_server_start(keep, "{\"Nope\": null}", &server) == CODEKEEP_STATUS_INVALID_ARGUMENT);
  CHECK(codekeep_server_start(keep, "not json", &server) == CODEKEEP_STATUS_INVALID_JSON);
  CHECK(server == NULL);
  OK(codekeep_server_start(keep, "{\"Http\": \"127.0.0.1:0\", \"Ssh\": \"127.0.0.1:0\"}", &server));
  char *json = NULL;
  OK(codekeep_server_describe(server, &json));
  char http[64], ssh[64], host_key[128];
  json_get(json, "HttpAddress", http, sizeof http);
  json_get(json, "SshAddress", ssh, sizeof ssh);
  json_get(json, "SshHostKey", host_key, sizeof host_key);
  CHECK(strncmp(http, "127.0.0.1:", 10) == 0);
  CHECK(strncmp(ssh, "127.0.0.1:", 10) == 0);
  CHECK(strncmp(host_key, "ssh-ed25519 ", 12) == 0);
  codekeep_string_free(json);
  CHECK(codekeep_server_describe(NULL, &json) == CODEKEEP_STATUS_NULL_ARGUMENT);
  codekeep_server_stop(server);

  /* Compaction and CodeCommit limits of an account. */
  char *account = NULL, id[64], caller[128], *out = NULL;
  OK(codekeep_keep_create_account(keep, "limits", &account));
  json_get(account, "Id", id, sizeof id);
  codekeep_string_free(account);
  snprintf(caller, sizeof caller, "{\"AccountId\":\"%s\"}", id);
  codekeep_client *cc = NULL;
  OK(codekeep_client_new(keep, "codecommit", caller, &cc));
  OK(codekeep_client_call(cc, "CreateRepository", "{\"repositoryName\":\"one\"}", &out));
  codekeep_string_free(out);
  OK(codekeep_keep_compact_repository(keep, id, "one", NULL, &out));
  CHECK(strstr(out, "\"PacksBefore\":0") != NULL);
  codekeep_string_free(out);
  CHECK(codekeep_keep_compact_repository(keep, id, "one", "{\"GraceSeconds\":-1}", &out) ==
        CODEKEEP_STATUS_INVALID_ARGUMENT);
  CHECK(codekeep_keep_compact_repository(keep, id, "nope", NULL, &out) == CODEKEEP_STATUS_NOT_FOUND);
  OK(codekeep_keep_set_codecommit_limits(keep, id, "{\"MaxRepositories\":1}", &out));
  CHECK(strstr(out, "\"MaxRepositories\":1") != NULL);
  codekeep_string_free(out);
  CHECK(codekeep_keep_set_codecommit_limits(keep, id, "{\"Nope\":1}", &out) == CODEKEEP_STATUS_INVALID_ARGUMENT);
  CHECK(codekeep_client_call(cc, "CreateRepository", "{\"repositoryName\":\"two\"}", &out) ==
        CODEKEEP_STATUS_LIMIT_EXCEEDED);
  codekeep_client_free(cc);
  codekeep_server_stop(NULL);
  codekeep_keep_free(keep);
}

/* A C function as an event target: counts calls, keeps the last payload, fails the first. */
struct calls { atomic_int n; atomic_int freed; char last[4096]; };

static int32_t on_event(void *ud, const char *payload, size_t len) {
  struct calls *c = ud;
  int n = atomic_fetch_add(&c->n, 1);
  if (len < sizeof c->last) memcpy(c->last, payload, len + 1);
  return n == 0 ? 7 : 0; /* the first call fails: the delivery is retried */
}

static void free_calls(void *ud) { atomic_store(&((struct calls *)ud)->freed, 1); }

static void sleep_ms(long ms) {
  struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&t, NULL);
}

static void test_functions_and_webhooks(void) {
  codekeep_keep *keep = NULL;
  OK(codekeep_keep_open_memory(&keep));
  char *account = NULL;
  OK(codekeep_keep_create_account(keep, "c-events", &account));
  char id[64], root[128];
  json_get(account, "Id", id, sizeof id);
  snprintf(root, sizeof root, "{\"AccountId\":\"%s\"}", id);

  static struct calls calls;
  atomic_init(&calls.n, 0);
  atomic_init(&calls.freed, 0);
  CHECK(codekeep_keep_register_function(keep, id, "bad name!", on_event, &calls, free_calls) == CODEKEEP_STATUS_INVALID_ARGUMENT);
  CHECK(atomic_load(&calls.freed) == 1); /* freed on failure too */
  atomic_store(&calls.freed, 0);
  CHECK(codekeep_keep_register_function(keep, id, "f", NULL, NULL, NULL) == CODEKEEP_STATUS_NULL_ARGUMENT);
  OK(codekeep_keep_register_function(keep, id, "on-push", on_event, &calls, free_calls));

  codekeep_client *events = NULL;
  OK(codekeep_client_new(keep, "events", root, &events));
  char *out = NULL;
  OK(codekeep_client_call(events, "PutRule",
                          "{\"Name\":\"r\",\"EventPattern\":\"{\\\"source\\\":[\\\"c.app\\\"]}\"}", &out));
  codekeep_string_free(out);
  char targets[512];
  snprintf(targets, sizeof targets,
           "{\"Rule\":\"r\",\"Targets\":[{\"Id\":\"c\",\"Arn\":\"arn:aws:lambda:us-east-1:%s:function:on-push\"}]}", id);
  OK(codekeep_client_call(events, "PutTargets", targets, &out));
  codekeep_string_free(out);
  OK(codekeep_client_call(events, "PutEvents",
                          "{\"Entries\":[{\"Source\":\"c.app\",\"DetailType\":\"t\",\"Detail\":\"{\\\"n\\\":42}\"}]}", &out));
  codekeep_string_free(out);
  /* The first call fails; the retry (about a second later) succeeds. */
  for (int i = 0; i < 1000 && atomic_load(&calls.n) < 2; i++) sleep_ms(10);
  CHECK(atomic_load(&calls.n) == 2);
  CHECK(strstr(calls.last, "\"n\":42") != NULL);
  CHECK(strstr(calls.last, "\"source\":\"c.app\"") != NULL);
  int removed = 0;
  OK(codekeep_keep_remove_function(keep, id, "on-push", &removed));
  CHECK(removed == 1);
  CHECK(atomic_load(&calls.freed) == 1);
  OK(codekeep_keep_remove_function(keep, id, "on-push", &removed));
  CHECK(removed == 0);
  OK(codekeep_keep_dead_letters(keep, "arn:aws:sqs:us-east-1:111122223333:q", &out));
  CHECK(strcmp(out, "[]") == 0);
  codekeep_string_free(out);

  /* A topic fills an application queue the host reads. */
  codekeep_client *sns = NULL;
  OK(codekeep_client_new(keep, "sns", root, &sns));
  OK(codekeep_client_call(sns, "CreateTopic", "{\"Name\":\"t\"}", &out));
  char topic[160], call[512];
  json_get(out, "TopicArn", topic, sizeof topic);
  codekeep_string_free(out);
  snprintf(call, sizeof call, "{\"TopicArn\":\"%s\",\"Protocol\":\"application\",\"Endpoint\":\"q\"}", topic);
  OK(codekeep_client_call(sns, "Subscribe", call, &out));
  codekeep_string_free(out);
  snprintf(call, sizeof call, "{\"TopicArn\":\"%s\",\"Message\":\"hello from C\"}", topic);
  OK(codekeep_client_call(sns, "Publish", call, &out));
  codekeep_string_free(out);
  char *queued = NULL;
  for (int i = 0; i < 1000; i++) {
    OK(codekeep_keep_application_messages(keep, id, "q", 10, &queued));
    if (strstr(queued, "hello from C")) break;
    codekeep_string_free(queued);
    queued = NULL;
    sleep_ms(10);
  }
  CHECK(queued != NULL);
  if (queued) {
    char handle[256];
    json_get(queued, "ReceiptHandle", handle, sizeof handle);
    int deleted = 0;
    OK(codekeep_keep_delete_application_message(keep, id, "q", handle, &deleted));
    CHECK(deleted == 1);
    codekeep_string_free(queued);
  }
  codekeep_client_free(sns);

  /* Webhook settings and the receiver's check (Standard Webhooks' published example). */
  CHECK(codekeep_keep_configure_webhooks(keep, "{\"hosts\": [\"a*b\"]}") == CODEKEEP_STATUS_INVALID_ARGUMENT);
  CHECK(codekeep_keep_configure_webhooks(keep, "{\"hosts\": 1}") == CODEKEEP_STATUS_INVALID_ARGUMENT);
  OK(codekeep_keep_configure_webhooks(keep, "{\"hosts\": [\"127.0.0.1\"], \"networks\": [\"127.0.0.0/8\"], \"timeout_ms\": 2000}"));
  const char *secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
  const char *body = "{\"test\": 2432232314}";
  const char *sig = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
  OK(codekeep_webhook_verify(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", sig,
                             (const uint8_t *)body, strlen(body), 1614265330, 300));
  CHECK(codekeep_webhook_verify(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", sig,
                                (const uint8_t *)"{}", 2, 1614265330, 300) == CODEKEEP_STATUS_ACCESS_DENIED);
  /* 0 means now: the 2021 timestamp is far outside the tolerance. */
  CHECK(codekeep_webhook_verify(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", sig,
                                (const uint8_t *)body, strlen(body), 0, 300) == CODEKEEP_STATUS_ACCESS_DENIED);
  CHECK(codekeep_webhook_verify("whsec_%%", "id", "1", sig, NULL, 0, 1, 300) == CODEKEEP_STATUS_INVALID_ARGUMENT);

  codekeep_client_free(events);
  codekeep_string_free(account);
  codekeep_keep_free(keep);
}

int main(void) {
  test_version_and_statuses();
  test_errors();
  test_kms_and_envelope();
  test_key_provider_callbacks();
  test_iam_users_and_authorize();
  test_server();
  test_functions_and_webhooks();
  if (failures) {
    fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  printf("c tests: all checks passed\n");
  return 0;
}
