/* Events in C: a rule on pushes to `main` that calls an in-process function (a C callback, run
 * on the keep's delivery thread), and a rule on branch deletion that POSTs to a webhook receiver
 * this example starts (a thread listening on 127.0.0.1), which checks the Standard Webhooks
 * signature with codekeep_webhook_verify() before it believes a word. The real `git` makes the
 * push. Compiled and run by `make test`: ./events WORK_DIR */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "codekeep.h"

/* How long the function call and the webhook may take to arrive. */
#define WAIT_MS 20000
/* The largest request the receiver takes. */
#define MAX_REQUEST (1 << 20)

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

/* Calls `op` and keeps only the value of `member` (when given) from the JSON output. */
static int call(codekeep_client *client, const char *op, const char *input, const char *member,
                char *value, size_t cap) {
  char *out = NULL;
  if (codekeep_client_call(client, op, input, &out) != CODEKEEP_STATUS_OK) return fail(op);
  if (member) json_get(out, member, value, cap);
  codekeep_string_free(out);
  return 0;
}

/* Runs a shell command; when it fails, shows what it said (stdout and stderr). */
static int run(const char *command) {
  char full[2200], output[4096] = {0}, line[1024];
  snprintf(full, sizeof full, "( %s ) 2>&1", command);
  FILE *p = popen(full, "r");
  if (!p) {
    perror("popen");
    return -1;
  }
  size_t used = 0;
  while (fgets(line, sizeof line, p)) {
    size_t n = strlen(line);
    if (used + n < sizeof output) {
      memcpy(output + used, line, n + 1);
      used += n;
    }
  }
  int status = pclose(p);
  if (status != 0) fprintf(stderr, "%s\nfailed (status %d):\n%s", command, status, output);
  return status;
}

#define GIT "git -c credential.helper= -c 'credential.helper=!f() { echo username=$DEMO_USER; " \
            "echo password=$DEMO_PASS; }; f' -c user.name=Dev -c user.email=dev@example.com " \
            "-c init.defaultBranch=main"

static void sleep_ms(long ms) {
  struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&t, NULL);
}

/* Waits up to WAIT_MS for `flag` to be set; returns it. */
static int wait_for(atomic_int *flag) {
  for (int waited = 0; waited < WAIT_MS && !atomic_load(flag); waited += 10) sleep_ms(10);
  return atomic_load(flag);
}

/* The function on-push-to-main, called on the keep's delivery thread: keeps the first event
 * it gets (the main thread reads it once `pushed` is set) and counts every call. */
static char pushed_event[16384];
static atomic_int calls;
static atomic_int pushed;

static int32_t on_push_to_main(void *user_data, const char *payload, size_t len) {
  (void)user_data;
  if (atomic_fetch_add(&calls, 1) == 0) {
    size_t n = len < sizeof pushed_event ? len : sizeof pushed_event - 1;
    memcpy(pushed_event, payload, n);
    pushed_event[n] = 0;
    atomic_store(&pushed, 1);
  }
  return 0;
}

/* A webhook receiver on 127.0.0.1: a thread that answers 200 to one request and keeps its
 * webhook-* headers and body (read them once `received` is set). */
struct receiver {
  int listener;
  unsigned port;
  pthread_t thread;
  int running;          /* the thread was started (the main thread's own) */
  atomic_int stop;      /* set by the main thread: give up */
  atomic_int received;  /* set by the thread once the members below are filled */
  char id[256], timestamp[64], signature[1024];
  char *body; /* body_len bytes and a NUL; malloc'd */
  size_t body_len;
};

/* Copies the value of header `name` (matched without case) of request head `head` to `out`. */
static void header_get(const char *head, const char *name, char *out, size_t cap) {
  size_t len = strlen(name);
  out[0] = 0;
  for (const char *line = strstr(head, "\r\n"); line; line = strstr(line, "\r\n")) {
    line += 2;
    if (strncasecmp(line, name, len) != 0 || line[len] != ':') continue;
    const char *v = line + len + 1;
    while (*v == ' ' || *v == '\t') v++;
    size_t n = strcspn(v, "\r\n");
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t')) n--;
    if (n >= cap) n = cap - 1;
    memcpy(out, v, n);
    out[n] = 0;
    return;
  }
}

/* Reads one request (its head, then Content-Length bytes of body) from `conn` and answers
 * 200; 0 when that all worked. */
static int receive_one(struct receiver *r, int conn) {
  struct timeval timeout = {5, 0};
  if (setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout) != 0) return -1;
  size_t cap = 8192, used = 0, head_len = 0, length = 0;
  char *buf = malloc(cap), *grown = NULL, *body = NULL;
  int result = -1;
  if (!buf) return -1;
  while (head_len == 0 || used < head_len + length) {
    if (used + 1 == cap) {
      if (cap >= MAX_REQUEST || !(grown = realloc(buf, cap * 2))) goto out;
      buf = grown;
      cap *= 2;
    }
    ssize_t n = recv(conn, buf + used, cap - used - 1, 0);
    if (n <= 0) goto out; /* closed early, timed out or failed */
    used += (size_t)n;
    buf[used] = 0;
    char *end = head_len == 0 ? strstr(buf, "\r\n\r\n") : NULL;
    if (end) {
      head_len = (size_t)(end - buf) + 4;
      char saved = buf[head_len], value[32];
      buf[head_len] = 0; /* the head alone, for a moment */
      header_get(buf, "content-length", value, sizeof value);
      header_get(buf, "webhook-id", r->id, sizeof r->id);
      header_get(buf, "webhook-timestamp", r->timestamp, sizeof r->timestamp);
      header_get(buf, "webhook-signature", r->signature, sizeof r->signature);
      buf[head_len] = saved;
      length = strtoul(value, NULL, 10);
      if (length > MAX_REQUEST) goto out;
    }
  }
  static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
  if (send(conn, ok, sizeof ok - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof ok - 1)) goto out;
  if (!(body = malloc(length + 1))) goto out;
  memcpy(body, buf + head_len, length);
  body[length] = 0;
  free(r->body);
  r->body = body;
  r->body_len = length;
  result = 0;
out:
  free(buf);
  return result;
}

static void *receive(void *arg) {
  struct receiver *r = arg;
  while (!atomic_load(&r->stop)) {
    struct pollfd p = {.fd = r->listener, .events = POLLIN};
    int ready = poll(&p, 1, 100); /* short, to see `stop` soon */
    if (ready < 0 && errno != EINTR) break;
    if (ready <= 0) continue;
    int conn = accept(r->listener, NULL, NULL);
    if (conn < 0) continue;
    int done = receive_one(r, conn) == 0;
    close(conn);
    if (done) {
      atomic_store(&r->received, 1);
      break;
    }
  }
  return NULL;
}

static int receiver_start(struct receiver *r) {
  struct sockaddr_in address;
  socklen_t len = sizeof address;
  memset(&address, 0, sizeof address);
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0; /* any free port */
  r->listener = socket(AF_INET, SOCK_STREAM, 0);
  if (r->listener < 0 || fcntl(r->listener, F_SETFD, FD_CLOEXEC) != 0 ||
      bind(r->listener, (struct sockaddr *)&address, sizeof address) != 0 || listen(r->listener, 8) != 0 ||
      getsockname(r->listener, (struct sockaddr *)&address, &len) != 0) {
    perror("receiver");
    return 1;
  }
  r->port = ntohs(address.sin_port);
  if (pthread_create(&r->thread, NULL, receive, r) != 0) {
    fprintf(stderr, "receiver: cannot start its thread\n");
    return 1;
  }
  r->running = 1;
  return 0;
}

static void receiver_stop(struct receiver *r) {
  atomic_store(&r->stop, 1);
  if (r->running) pthread_join(r->thread, NULL);
  r->running = 0;
  if (r->listener >= 0) close(r->listener);
  r->listener = -1;
  free(r->body);
  r->body = NULL;
}

/* What main frees, however the story ends. */
struct resources {
  codekeep_keep *keep;
  codekeep_client *iam, *cc, *events;
  codekeep_server *server;
  struct receiver hooks;
};

static int story(const char *dir, struct resources *res) {
  char cmd[2048], path[512], account_id[64], caller[128], input[2048], *out = NULL;
  snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", dir, dir);
  if (run(cmd) != 0) return 1;
  snprintf(path, sizeof path, "%s/keep", dir);
  if (codekeep_keep_open(path, &res->keep)) return fail("open");
  if (codekeep_keep_create_account(res->keep, "events-demo", &out)) return fail("create account");
  json_get(out, "Id", account_id, sizeof account_id);
  codekeep_string_free(out);
  snprintf(caller, sizeof caller, "{\"AccountId\":\"%s\"}", account_id);
  if (codekeep_client_new(res->keep, "iam", caller, &res->iam) ||
      codekeep_client_new(res->keep, "codecommit", caller, &res->cc) ||
      codekeep_client_new(res->keep, "events", caller, &res->events))
    return fail("clients");

  /* A user with git credentials who may do anything in CodeCommit; a repository; the server. */
  if (call(res->iam, "CreateUser", "{\"UserName\":\"dev\"}", NULL, NULL, 0)) return 1;
  if (call(res->iam, "PutUserPolicy",
           "{\"UserName\":\"dev\",\"PolicyName\":\"git\",\"PolicyDocument\":"
           "\"{\\\"Version\\\":\\\"2012-10-17\\\",\\\"Statement\\\":[{\\\"Effect\\\":\\\"Allow\\\","
           "\\\"Action\\\":\\\"codecommit:*\\\",\\\"Resource\\\":\\\"*\\\"}]}\"}",
           NULL, NULL, 0))
    return 1;
  char user[128], password[128];
  if (codekeep_client_call(res->iam, "CreateServiceSpecificCredential",
                           "{\"UserName\":\"dev\",\"ServiceName\":\"codecommit.amazonaws.com\"}", &out))
    return fail("CreateServiceSpecificCredential");
  json_get(out, "ServiceUserName", user, sizeof user);
  json_get(out, "ServicePassword", password, sizeof password);
  codekeep_string_free(out);
  if (call(res->cc, "CreateRepository", "{\"repositoryName\":\"web\"}", NULL, NULL, 0)) return 1;
  if (codekeep_server_start(res->keep, NULL, &res->server)) return fail("server");
  char url[256];
  if (call(res->cc, "GetRepository", "{\"repositoryName\":\"web\"}", "cloneUrlHttp", url, sizeof url)) return 1;

  /* Rule 1: pushes to main call an in-process function. */
  if (codekeep_keep_register_function(res->keep, account_id, "on-push-to-main", on_push_to_main, NULL, NULL))
    return fail("register function");
  if (call(res->events, "PutRule",
           "{\"Name\":\"push-to-main\",\"EventPattern\":\"{\\\"source\\\":[\\\"aws.codecommit\\\"],"
           "\\\"detail-type\\\":[\\\"CodeCommit Repository State Change\\\"],"
           "\\\"detail\\\":{\\\"referenceType\\\":[\\\"branch\\\"],\\\"referenceName\\\":[\\\"main\\\"],"
           "\\\"event\\\":[\\\"referenceCreated\\\",\\\"referenceUpdated\\\"]}}\"}",
           NULL, NULL, 0))
    return 1;
  snprintf(input, sizeof input,
           "{\"Rule\":\"push-to-main\",\"Targets\":[{\"Id\":\"function\","
           "\"Arn\":\"arn:aws:lambda:us-east-1:%s:function:on-push-to-main\"}]}",
           account_id);
  if (call(res->events, "PutTargets", input, NULL, NULL, 0)) return 1;
  printf("rule push-to-main -> function on-push-to-main\n");

  /* Rule 2: branch deletions go to a webhook receiver (loopback must be allowed by name). */
  if (receiver_start(&res->hooks)) return 1;
  if (codekeep_keep_configure_webhooks(res->keep, "{\"hosts\":[\"127.0.0.1\"],\"networks\":[\"127.0.0.0/8\"]}"))
    return fail("configure webhooks");
  char endpoint[64], destination[256], secret[256];
  snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%u/hooks", res->hooks.port);
  snprintf(input, sizeof input, "{\"Name\":\"receiver\",\"HttpMethod\":\"POST\",\"InvocationEndpoint\":\"%s\"}",
           endpoint);
  if (codekeep_client_call(res->events, "CreateApiDestination", input, &out)) return fail("CreateApiDestination");
  json_get(out, "ApiDestinationArn", destination, sizeof destination);
  json_get(out, "SigningSecret", secret, sizeof secret);
  codekeep_string_free(out);
  if (call(res->events, "PutRule",
           "{\"Name\":\"branch-deleted\",\"EventPattern\":\"{\\\"source\\\":[\\\"aws.codecommit\\\"],"
           "\\\"detail\\\":{\\\"event\\\":[\\\"referenceDeleted\\\"],\\\"referenceType\\\":[\\\"branch\\\"]}}\"}",
           NULL, NULL, 0))
    return 1;
  snprintf(input, sizeof input,
           "{\"Rule\":\"branch-deleted\",\"Targets\":[{\"Id\":\"webhook\",\"Arn\":\"%s\","
           "\"RetryPolicy\":{\"MaximumRetryAttempts\":3}}]}",
           destination);
  if (call(res->events, "PutTargets", input, NULL, NULL, 0)) return 1;
  printf("rule branch-deleted -> webhook %s (signed)\n", endpoint);

  /* The real git pushes main and a feature branch (main made these variables before any thread
   * started: now only their values change). */
  setenv("DEMO_USER", user, 1);
  setenv("DEMO_PASS", password, 1);
  snprintf(cmd, sizeof cmd, "cd '%s' && " GIT " init -q app", dir);
  if (run(cmd) != 0) return 1;
  snprintf(path, sizeof path, "%s/app/README.md", dir);
  FILE *f = fopen(path, "w");
  if (!f) {
    perror(path);
    return 1;
  }
  fputs("# app\n", f);
  if (fclose(f) != 0) return 1;
  snprintf(cmd, sizeof cmd, "cd '%s/app' && " GIT " add README.md && " GIT " commit -q -m first", dir);
  if (run(cmd) != 0) return 1;
  snprintf(cmd, sizeof cmd, "cd '%s/app' && " GIT " push -q %s main main:feature", dir, url);
  if (run(cmd) != 0) return 1;
  printf("$ git push %s main main:feature\n", url);
  if (!wait_for(&pushed)) {
    fprintf(stderr, "on-push-to-main was not called within %d s\n", WAIT_MS / 1000);
    return 1;
  }
  char detail_type[128], event[64], reference[256], commit[64];
  json_get(pushed_event, "detail-type", detail_type, sizeof detail_type);
  json_get(pushed_event, "event", event, sizeof event);
  json_get(pushed_event, "referenceFullName", reference, sizeof reference);
  json_get(pushed_event, "commitId", commit, sizeof commit);
  printf("  function on-push-to-main called: %s %s %s at %s\n", detail_type, event, reference, commit);
  if (strcmp(reference, "refs/heads/main") != 0) {
    fprintf(stderr, "on-push-to-main got an event of %s\n", reference);
    return 1;
  }

  /* Deleting the feature branch posts to the receiver. */
  if (call(res->cc, "DeleteBranch", "{\"repositoryName\":\"web\",\"branchName\":\"feature\"}", NULL, NULL, 0))
    return 1;
  printf("DeleteBranch feature\n");
  if (!wait_for(&res->hooks.received)) {
    fprintf(stderr, "no webhook arrived within %d s\n", WAIT_MS / 1000);
    return 1;
  }
  const struct receiver *hook = &res->hooks;
  if (codekeep_webhook_verify(secret, hook->id, hook->timestamp, hook->signature, (const uint8_t *)hook->body,
                              hook->body_len, 0, 300))
    return fail("webhook signature check");
  json_get(hook->body, "event", event, sizeof event);
  json_get(hook->body, "referenceFullName", reference, sizeof reference);
  printf("  webhook received, signature verified: %s %s\n", event, reference);
  if (strcmp(event, "referenceDeleted") != 0 || strcmp(reference, "refs/heads/feature") != 0) {
    fprintf(stderr, "the webhook carried %s %s\n", event, reference);
    return 1;
  }
  return 0;
}

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : "build/c-events";
  /* git's environment, changed while this process is single-threaded: the keep's, the
   * server's and the receiver's threads may read the environment later. */
  setenv("DEMO_USER", "", 1);
  setenv("DEMO_PASS", "", 1);
  setenv("GIT_TERMINAL_PROMPT", "0", 1);
  unsetenv("GIT_PROTOCOL");
  struct resources res = {.hooks = {.listener = -1}};
  atomic_init(&res.hooks.stop, 0);
  atomic_init(&res.hooks.received, 0);
  int result = story(dir, &res);
  codekeep_server_stop(res.server);
  receiver_stop(&res.hooks);
  codekeep_client_free(res.events);
  codekeep_client_free(res.cc);
  codekeep_client_free(res.iam);
  codekeep_keep_free(res.keep);
  return result;
}
