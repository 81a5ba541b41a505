/* The git story in C: an account; a user with git credentials and an SSH key; a policy that
 * allows pushing but denies pushes to main; a repository encrypted under the account's own KMS
 * key; the git server started on background threads; the real `git` pushing a feature branch
 * (accepted), pushing to main (refused, with the reason) and cloning over SSH; then the events
 * and audit records of it. Compiled and run by `make test`: ./git_story WORK_DIR */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* Calls `op` and keeps only the value of `member` (when given) from the JSON output. */
static int call(codekeep_client *client, const char *op, const char *input, const char *member,
                char *value, size_t cap) {
  char *out = NULL;
  if (codekeep_client_call(client, op, input, &out) != CODEKEEP_STATUS_OK) return fail(op);
  if (member) json_get(out, member, value, cap);
  codekeep_string_free(out);
  return 0;
}

/* Runs a shell command; prints the lines of its output that contain `show` (if given). */
static int run(const char *command, const char *show) {
  FILE *p = popen(command, "r");
  if (!p) return -1;
  char line[1024];
  while (fgets(line, sizeof line, p))
    if (show && strstr(line, show)) printf("  %s", line);
  return pclose(p);
}

#define GIT "git -c credential.helper= -c 'credential.helper=!f() { echo username=$DEMO_USER; " \
            "echo password=$DEMO_PASS; }; f' -c user.name=Dev -c user.email=dev@example.com " \
            "-c init.defaultBranch=main"

int main(int argc, char **argv) {
  /* Absolute, since git runs in other directories with the key file named by this path. */
  const char *arg = argc > 1 ? argv[1] : "build/c-git-story";
  char dir[400], cwd[300];
  if (arg[0] == '/') snprintf(dir, sizeof dir, "%s", arg);
  else if (getcwd(cwd, sizeof cwd)) snprintf(dir, sizeof dir, "%s/%s", cwd, arg);
  else return 1;
  char cmd[2048], path[512], account_id[64], caller[128], value[512], input[2048];
  snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", dir, dir);
  if (run(cmd, NULL) != 0) return 1;
  snprintf(path, sizeof path, "%s/keep", dir);
  codekeep_keep *keep = NULL;
  if (codekeep_keep_open(path, &keep)) return fail("open");
  char *account = NULL;
  if (codekeep_keep_create_account(keep, "git-story", &account)) return fail("create account");
  json_get(account, "Id", account_id, sizeof account_id);
  codekeep_string_free(account);
  snprintf(caller, sizeof caller, "{\"AccountId\":\"%s\"}", account_id);
  codekeep_client *iam = NULL, *kms = NULL, *cc = NULL, *trail = NULL;
  if (codekeep_client_new(keep, "iam", caller, &iam) || codekeep_client_new(keep, "kms", caller, &kms) ||
      codekeep_client_new(keep, "codecommit", caller, &cc) ||
      codekeep_client_new(keep, "cloudtrail", caller, &trail))
    return fail("clients");

  /* A user with git credentials, an SSH key, and AWS's "deny pushes to main" policy. */
  if (call(iam, "CreateUser", "{\"UserName\":\"dev\"}", NULL, NULL, 0)) return 1;
  const char *policy =
      "{\\\"Version\\\":\\\"2012-10-17\\\",\\\"Statement\\\":["
      "{\\\"Effect\\\":\\\"Allow\\\",\\\"Action\\\":\\\"codecommit:*\\\",\\\"Resource\\\":\\\"*\\\"},"
      "{\\\"Effect\\\":\\\"Allow\\\",\\\"Action\\\":[\\\"kms:Encrypt\\\",\\\"kms:Decrypt\\\",\\\"kms:GenerateDataKey\\\"],"
      "\\\"Resource\\\":\\\"*\\\",\\\"Condition\\\":{\\\"StringEquals\\\":"
      "{\\\"kms:ViaService\\\":\\\"codecommit.us-east-1.amazonaws.com\\\"}}},"
      "{\\\"Effect\\\":\\\"Deny\\\",\\\"Action\\\":\\\"codecommit:GitPush\\\",\\\"Resource\\\":\\\"*\\\","
      "\\\"Condition\\\":{\\\"StringEqualsIfExists\\\":{\\\"codecommit:References\\\":[\\\"refs/heads/main\\\"]},"
      "\\\"Null\\\":{\\\"codecommit:References\\\":\\\"false\\\"}}}]}";
  snprintf(input, sizeof input,
           "{\"UserName\":\"dev\",\"PolicyName\":\"no-push-to-main\",\"PolicyDocument\":\"%s\"}", policy);
  if (call(iam, "PutUserPolicy", input, NULL, NULL, 0)) return 1;
  char user[128], password[128];
  const char *cred_in = "{\"UserName\":\"dev\",\"ServiceName\":\"codecommit.amazonaws.com\"}";
  char *out = NULL;
  if (codekeep_client_call(iam, "CreateServiceSpecificCredential", cred_in, &out)) return fail("credential");
  json_get(out, "ServiceUserName", user, sizeof user);
  json_get(out, "ServicePassword", password, sizeof password);
  codekeep_string_free(out);
  snprintf(cmd, sizeof cmd, "ssh-keygen -q -t ed25519 -N '' -C dev -f '%s/id_ed25519'", dir);
  if (run(cmd, NULL) != 0) return 1;
  snprintf(path, sizeof path, "%s/id_ed25519.pub", dir);
  FILE *f = fopen(path, "r");
  char public_key[512] = {0};
  if (!f || !fgets(public_key, sizeof public_key, f)) return 1;
  fclose(f);
  public_key[strcspn(public_key, "\n")] = 0;
  char key_id[64];
  snprintf(input, sizeof input, "{\"UserName\":\"dev\",\"SSHPublicKeyBody\":\"%s\"}", public_key);
  if (call(iam, "UploadSSHPublicKey", input, "SSHPublicKeyId", key_id, sizeof key_id)) return 1;
  printf("account %s; user dev with git credentials %s and SSH key %s\n", account_id, user, key_id);

  /* A repository encrypted under the account's own KMS key. */
  char key_arn[256];
  if (call(kms, "CreateKey", "{\"Description\":\"repositories\"}", "Arn", key_arn, sizeof key_arn)) return 1;
  snprintf(input, sizeof input, "{\"repositoryName\":\"web\",\"kmsKeyId\":\"%s\"}", key_arn);
  if (call(cc, "CreateRepository", input, NULL, NULL, 0)) return 1;

  /* The git server, on background threads. */
  codekeep_server *server = NULL;
  if (codekeep_server_start(keep, "{\"Ssh\":\"127.0.0.1:0\"}", &server)) return fail("server");
  char *described = NULL, ssh_addr[64], host_key[256], http_url[256], ssh_url[256];
  if (codekeep_server_describe(server, &described)) return fail("describe");
  json_get(described, "SshAddress", ssh_addr, sizeof ssh_addr);
  json_get(described, "SshHostKey", host_key, sizeof host_key);
  codekeep_string_free(described);
  if (call(cc, "GetRepository", "{\"repositoryName\":\"web\"}", "cloneUrlHttp", http_url, sizeof http_url)) return 1;
  if (call(cc, "GetRepository", "{\"repositoryName\":\"web\"}", "cloneUrlSsh", value, sizeof value)) return 1;
  snprintf(ssh_url, sizeof ssh_url, "ssh://%s@%s", key_id, value + strlen("ssh://"));
  printf("repository web (encrypted under %s)\n  %s\n  %s\n", key_arn, http_url, ssh_url);
  snprintf(path, sizeof path, "%s/known_hosts", dir);
  f = fopen(path, "w");
  if (!f) return 1;
  fprintf(f, "[127.0.0.1]:%s %s\n", strrchr(ssh_addr, ':') + 1, host_key);
  fclose(f);
  char ssh_command[1200];
  snprintf(ssh_command, sizeof ssh_command,
           "ssh -F /dev/null -i %s/id_ed25519 -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile=%s",
           dir, path);
  setenv("GIT_SSH_COMMAND", ssh_command, 1);
  setenv("DEMO_USER", user, 1);
  setenv("DEMO_PASS", password, 1);
  setenv("GIT_TERMINAL_PROMPT", "0", 1);
  unsetenv("GIT_PROTOCOL");

  snprintf(cmd, sizeof cmd,
           "cd '%s' && " GIT " init -q app && cd app && echo '# app' > README.md && " GIT " add README.md && "
           GIT " commit -q -m first && " GIT " checkout -q -b feature 2>&1", dir);
  if (run(cmd, NULL) != 0) return 1;
  snprintf(cmd, sizeof cmd, "cd '%s/app' && " GIT " push -q %s feature 2>&1", dir, http_url);
  if (run(cmd, NULL) != 0) return 1;
  printf("$ git push %s feature\n  accepted\n", http_url);
  printf("$ git push %s feature:main\n", http_url);
  snprintf(cmd, sizeof cmd, "cd '%s/app' && " GIT " push %s feature:main 2>&1", dir, http_url);
  if (run(cmd, "rejected") == 0) return 1; /* the push to main must be refused */
  snprintf(cmd, sizeof cmd, "cd '%s' && " GIT " clone -q %s clone 2>&1 && cat clone/README.md", dir, ssh_url);
  printf("$ git clone %s\n", ssh_url);
  if (run(cmd, "# app") != 0) return 1;

  printf("events (the outbox, EventBridge envelopes):\n");
  char *events = NULL;
  if (codekeep_keep_read_events(keep, "git-story", 100, &events)) return fail("read events");
  int created = 0;
  for (const char *p = events; (p = strstr(p, "\"referenceFullName\":\"")) != NULL; created++) {
    p += 21;
    printf("  CodeCommit Repository State Change %.*s\n", (int)strcspn(p, "\""), p);
  }
  codekeep_string_free(events);
  if (created != 1) return 1;

  printf("audit records (CloudTrail, newest first):");
  if (codekeep_client_call(trail, "LookupEvents", "{\"MaxResults\":12}", &out)) return fail("LookupEvents");
  int pushes = 0;
  for (const char *p = out; (p = strstr(p, "\"EventName\":\"")) != NULL;) {
    p += 13;
    printf(" %.*s", (int)strcspn(p, "\""), p);
    if (strncmp(p, "GitPush\"", 8) == 0) pushes++;
  }
  printf("\n");
  codekeep_string_free(out);
  if (pushes < 2) return 1;

  codekeep_server_stop(server);
  codekeep_client_free(trail);
  codekeep_client_free(cc);
  codekeep_client_free(kms);
  codekeep_client_free(iam);
  codekeep_keep_free(keep);
  return 0;
}
