// reconcile: the program. Flags, wiring, dispatch; nothing else (STYLE.md 12).
#include <algorithm>
#include <iostream>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "builtin/builtin_providers.h"
#include "cmd_approve.h"
#include "cmd_audit.h"
#include "cmd_controller.h"
#include "cmd_import.h"
#include "cmd_promote.h"

#include "cmd_render.h"
#include "commands.h"
#include "console.h"
#include "exec/exec_provider.h"

namespace {

// Bad command lines exit 1 (SPEC.md: 1 = error), never CLI11's own codes,
// and say what was wrong and how to get help, naming the program.
int UsageError(const CLI::App& app, const CLI::ParseError& e) {
  const CLI::App* command = nullptr;
  for (const CLI::App* sub : app.get_subcommands()) command = sub;
  std::string unknown;
  if (command == nullptr) {
    for (const std::string& word : app.remaining()) {
      if (!word.empty() && word[0] != '-') {
        unknown = word;
        break;
      }
    }
  }
  if (!unknown.empty()) {
    std::cerr << "reconcile: unknown command '" << unknown << "'\n";
  } else if (command == nullptr && dynamic_cast<const CLI::RequiredError*>(&e) != nullptr) {
    std::cerr << "reconcile: a command is required\n";
  } else {
    std::cerr << "reconcile" << (command ? " " + command->get_name() : "") << ": " << e.what()
              << "\n";
  }
  std::string name = command ? " " + command->get_name() : std::string(" <command>");
  std::cerr << "Usage: reconcile [global flags]" << name << " [flags]\n"
            << "Run 'reconcile" << (command ? name : "") << " --help' for the "
            << (command ? "flags" : "commands") << ".\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace reconcile::cli;
  // `reconcile --plan DIR` is an alias of `reconcile plan DIR`.
  std::vector<std::string> args(argv + 1, argv + argc);
  for (std::string& a : args) {
    if (a == "--plan") a = "plan";
  }
  std::reverse(args.begin(), args.end());  // CLI11 wants them reversed

  CLI::App app{"reconcile: a declarative reconcile engine for containerized agents", "reconcile"};
  app.require_subcommand(1);
  app.fallthrough();  // global flags also after the command: `apply DIR --state S`
  app.set_version_flag("--version", "reconcile 0.1.0");
  GlobalOptions g;
  std::string positional;
  app.add_option("--source", g.source, "desired-state folder or Git URL")->capture_default_str();
  app.add_option("--state", g.state_dir, "state folder (default: <source>/.reconcile)");
  app.add_option("--secrets", g.secrets_dir, "secrets folder (default: <state>/secrets)");
  app.add_option("--log-format", g.log_format, "text or json")
      ->check(CLI::IsMember({"text", "json"}));
  app.add_flag("-v,--verbose", g.verbosity, "more output (repeatable)");
  bool quiet = false;
  app.add_flag("-q,--quiet", quiet, "only warnings and errors");
  app.add_flag("--no-color", g.no_color, "never use colours");
  app.add_option("--ref", g.ref, "Git: branch, tag or commit id (default: the remote HEAD)");
  app.add_option("--path", g.path, "folder inside the source");
  app.add_option("--max-build-context", g.max_build_context,
                 "largest build context sent to the engine, in bytes (default 268435456)")
      ->check(CLI::Range(static_cast<std::uint64_t>(1), static_cast<std::uint64_t>(1) << 33));
  app.add_option("--git-username", g.git_auth.username, "Git: HTTPS user (SSH: default git)");
  app.add_option("--git-password-file", g.git_auth.password_file,
                 "Git: file holding the HTTPS password or token");
  app.add_option("--git-password-env", g.git_auth.password_env,
                 "Git: environment variable holding the HTTPS password or token");
  app.add_option("--allow-secret-env", g.allow_secret_env,
                 "let secretEnv {env: NAME} read NAME (repeatable; RECONCILE_SECRET_* always "
                 "may; the engine's own credentials never)")
      ->allow_extra_args(false)
      ->type_name("NAME");
  app.add_option("--vault-addr", g.vault.address,
                 "Vault / OpenBao address for secret references {vault: ...} (default VAULT_ADDR)");
  app.add_option("--vault-namespace", g.vault.vault_namespace,
                 "Vault namespace (X-Vault-Namespace; default VAULT_NAMESPACE)");
  app.add_option("--vault-token-file", g.vault.token_file,
                 "file holding the Vault token when VAULT_TOKEN is unset (default ~/.vault-token)");
  app.add_option("--vault-approle-role-id-file", g.vault.role_id_file,
                 "Vault AppRole login: file holding the role_id");
  app.add_option("--vault-approle-secret-id-file", g.vault.secret_id_file,
                 "Vault AppRole login: file holding the secret_id");
  app.add_option("--vault-approle-mount", g.vault.approle_mount,
                 "Vault AppRole auth mount (default approle)");
  app.add_option("--vault-cacert", g.vault.ca_file,
                 "PEM file of the CAs to trust for Vault (default VAULT_CACERT)");
  app.add_option("--sops-age-key-file", g.sops.age_key_files,
                 "age identity file for {sops: ...} secrets (repeatable; default "
                 "SOPS_AGE_KEY_FILE)")
      ->allow_extra_args(false);
  app.add_option("--sops-pgp-key-file", g.sops.pgp_key_files,
                 "OpenPGP secret key file (no passphrase) for {sops: ...} secrets (repeatable)")
      ->allow_extra_args(false);
  app.add_flag("--sops-allow-missing-mac", g.sops.allow_missing_mac,
               "accept SOPS files without a MAC or whose MAC does not match (unsafe)");
  app.add_option("--secret-digest-key", g.secret_digest_key,
                 "key file of the secret values' fingerprints (default "
                 "<state>/keys/secret-digest.key; made when missing)");
  app.add_option("--git-ssh-key", g.git_auth.ssh_key_file, "Git: SSH deploy key file");
  app.add_option("--git-known-hosts", g.git_auth.ssh_known_hosts_file,
                 "Git: known_hosts file for SSH (unknown or changed host keys are refused)");
  auto* verify_commits =
      app.add_option("--verify-commits", g.verify_commits,
                     "Git: apply only commits signed by a trusted key: openpgp (--trusted-keys) "
                     "or ssh (--allowed-signers)")
          ->check(CLI::IsMember({"openpgp", "ssh"}));
  app.add_option("--trusted-keys", g.trusted_keys,
                 "--verify-commits openpgp: file or folder of OpenPGP public keys")
      ->needs(verify_commits);
  app.add_option("--allowed-signers", g.allowed_signers,
                 "--verify-commits ssh: OpenSSH allowed_signers file")
      ->needs(verify_commits);
  app.add_option("--allow-bind", g.allow_bind,
                 "host folder Agents may bind-mount (spec.volumes type bind); repeatable")
      ->allow_extra_args(false)
      ->check([](const std::string& p) -> std::string {
        if (p.empty() || p[0] != '/') return "--allow-bind: '" + p + "' is not an absolute path";
        if (("/" + p + "/").find("/../") != std::string::npos ||
            ("/" + p + "/").find("/./") != std::string::npos) {
          return "--allow-bind: '" + p + "' holds a '.' or '..' segment";
        }
        return "";
      });

  app.add_option("--audit-key", g.audit_key,
                 "Ed25519 private key (PEM) that signs the audit log's entries (README \"Audit "
                 "log\")")
      ->envname("RECONCILE_AUDIT_KEY")
      ->type_name("FILE");

  auto with_source = [&](CLI::App* cmd) {
    cmd->add_option("source", positional, "desired-state folder (same as --source)");
    return cmd;
  };
  auto* validate =
      with_source(app.add_subcommand("validate", "load and validate; print all errors"));
  bool render_json = false;
  auto* render = with_source(app.add_subcommand(
      "render", "print the merged documents of an environment (or a tree), like kustomize build"));
  render->add_flag("--json", render_json, "a JSON array instead of YAML documents");
  PlanFlags plan_flags;
  auto* plan = with_source(app.add_subcommand("plan", "observe and show what would change"));
  plan->add_flag("--json", plan_flags.json, "machine-readable plan");
  plan->add_option("--out", plan_flags.out, "save the plan for `reconcile apply FILE`");
  plan->add_flag("--explain", plan_flags.explain, "also list unchanged agents and why");
  ApplyFlags apply_flags;
  auto* apply = app.add_subcommand("apply", "plan and apply (or apply a saved plan)");
  apply->add_option("source", positional, "desired-state folder, or a saved plan file");
  apply->add_flag("--auto-approve", apply_flags.auto_approve, "do not ask for approval");
  apply->add_flag("--ignore-windows", apply_flags.ignore_windows,
                  "apply although a deploy window blocks (logged, recorded in history)");
  apply->add_option("--parallelism", apply_flags.parallelism, "changes applied at once")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  auto* destroy = with_source(app.add_subcommand("destroy", "delete everything the state owns"));
  destroy->add_flag("--auto-approve", apply_flags.auto_approve, "do not ask for approval");
  destroy->add_option("--parallelism", apply_flags.parallelism, "changes applied at once")
      ->check(CLI::Range(1, 64));
  bool json = false;
  auto* drift = with_source(app.add_subcommand("drift", "compare what runs with the last apply"));
  drift->add_flag("--json", json, "machine-readable report");
  auto* status = with_source(app.add_subcommand("status", "agents, revision, health, endpoints"));
  status->add_flag("--json", json, "machine-readable status");
  auto* history = with_source(app.add_subcommand("history", "list applied revisions"));
  history->add_flag("--json", json, "machine-readable history");
  RollbackFlags rollback_flags;
  auto* rollback = with_source(
      app.add_subcommand("rollback", "re-apply an earlier revision from history and pin it"));
  rollback->add_option("--to", rollback_flags.to,
                       "history serial or revision (default: the revision before the live one)");
  rollback->add_flag("--auto-approve", rollback_flags.auto_approve, "do not ask for approval");
  rollback->add_option("--parallelism", rollback_flags.parallelism, "changes applied at once")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  std::string show_file;
  auto* show = app.add_subcommand("show", "render a saved plan (`plan --out FILE`)");
  show->add_option("plan", show_file, "the saved plan file")->required();
  show->add_flag("--json", json, "the plan as JSON (as `plan --json` prints it)");
  auto* unlock = with_source(app.add_subcommand("unlock", "break a stale state lock"));
  PromoteFlags promote_flags;
  auto* promote = with_source(app.add_subcommand(
      "promote", "write the image digests one environment runs into another's overlay"));
  promote->add_option("--from", promote_flags.from, "the environment that runs them (its name)")
      ->required();
  promote->add_option("--to", promote_flags.to, "the environment to promote to (its name)")
      ->required();
  promote->add_option("--agent", promote_flags.agents,
                      "promote only this agent (repeatable; default: every agent)");
  promote->add_flag("--commit", promote_flags.commit,
                    "commit promoted.yaml on the checkout's current branch");
  promote->add_flag("--push", promote_flags.push,
                    "--commit, then push the branch with the --git-* credentials");
  ControllerFlags cf;
  ApproveFlags approve_flags;
  auto* approve = app.add_subcommand(
      "approve", "approve a plan the controller published for approval (approval: required)");
  approve->add_option("plan_id", approve_flags.id, "the plan's id (or a prefix of 8+ hex digits)")
      ->required();
  approve->add_option("--controller", approve_flags.controller,
                      "approve through the controller's API at this URL (http://host:port)");
  approve->add_option("--token-file", approve_flags.token_file,
                      "file holding the controller's approval token (--approval-token-file)");
  approve->add_option("--by", approve_flags.by, "who approves (default: user@host)");
  auto* controller = app.add_subcommand(
      "controller", "run the GitOps controller: follow a branch, take webhooks, heal drift");
  controller->add_option("--repo", cf.repo, "Git URL or folder to follow (default: --source)");
  controller->add_option("--branch", cf.branch, "branch to follow (default: --ref, else main)");
  controller
      ->add_option("--listen", cf.listen,
                   "HTTP address: 127.0.0.1:8080 (default), :8080 for all interfaces")
      ->capture_default_str();
  controller->add_option("--interval", cf.interval, "ref check interval, jittered by 10%")
      ->capture_default_str();
  controller->add_option("--drift-interval", cf.drift_interval, "drift check interval")
      ->capture_default_str();
  controller->add_option("--webhook-secret-file", cf.webhook_secret_file,
                         "shared secret of the webhooks (GitHub HMAC, GitLab token, generic HMAC)");
  controller
      ->add_option("--status-page", cf.status_page,
                   "the HTML status page on / with live updates on /events: on or off")
      ->check(CLI::IsMember({"on", "off"}))
      ->capture_default_str();
  controller->add_option("--status-token-file", cf.status_token_file,
                         "file holding a token that /, /events and /api/v1/status then need "
                         "(Authorization: Bearer, or ?token=)");
  controller->add_option("--approval-token-file", cf.approval_token_file,
                         "file holding a token that POST /api/v1/plans/<id>/approve needs "
                         "(Authorization: Bearer); without it approvals go through the state "
                         "folder only");
  controller->add_option("--grace", cf.grace, "how long SIGTERM waits for the current pass")
      ->capture_default_str();
  controller->add_option("--parallelism", cf.parallelism, "changes applied at once")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  controller
      ->add_option("--max-retries", cf.max_retries,
                   "retries of a failed revision (with backoff) before waiting for a new "
                   "commit")
      ->check(CLI::Range(0, 1000))
      ->capture_default_str();
  controller
      ->add_option("--heal-budget", cf.heal_budget,
                   "heals per agent per hour (drift.mode: heal); past it drift is reported")
      ->check(CLI::Range(0, 1000))
      ->capture_default_str();
  controller
      ->add_flag("--watch-events", cf.watch_events,
                 "follow the Docker Engine's event stream: a container stopped, killed or "
                 "removed by hand runs a drift pass at once (--watch-events=false: only "
                 "the --drift-interval scan)")
      ->capture_default_str();
  controller->add_flag("--leader-elect", cf.leader_elect,
                       "run as one of several replicas: only the holder of a "
                       "coordination.k8s.io/v1 Lease polls, applies and heals");
  controller
      ->add_option("--leader-elect-lease-duration", cf.lease_duration,
                   "how long followers wait after the last renew they saw before taking "
                   "over (whole seconds)")
      ->capture_default_str();
  controller
      ->add_option("--leader-elect-renew-deadline", cf.renew_deadline,
                   "a leader that could not renew for this long stops applying (must be "
                   "less than the lease duration)")
      ->capture_default_str();
  controller
      ->add_option("--leader-elect-retry-period", cf.retry_period,
                   "how often the leader renews and followers try to acquire")
      ->capture_default_str();
  controller->add_option("--leader-elect-resource-name", cf.lease_name, "the Lease's name")
      ->capture_default_str();
  controller->add_option("--leader-elect-resource-namespace", cf.lease_namespace,
                         "the Lease's namespace (default: the in-cluster or kubeconfig "
                         "context's namespace, else default)");
  controller->add_option("--leader-elect-identity", cf.identity,
                         "this replica's name in the Lease (default: $POD_NAME, else "
                         "hostname_pid)");
  controller->add_option("--kubeconfig", cf.kubeconfig,
                         "kubeconfig for the Lease (default: $KUBECONFIG, in-cluster, "
                         "~/.kube/config, as client-go)");
  controller->add_option("--path", cf.paths,
                         "folder inside the source to follow; repeatable: several environments, "
                         "one fetch for all");
  controller->add_option("--environments", cf.environments_dir,
                         "follow every folder below DIR whose top-level YAML holds an "
                         "Environment (found again at every new revision)");
  controller->add_option("source", positional, "desired-state folder or Git URL (same as --repo)");
  AuditFlags audit_flags;
  auto* audit_cmd = app.add_subcommand("audit", "the hash-chained, signed audit log");
  audit_cmd->require_subcommand(1);
  auto* audit_list = with_source(audit_cmd->add_subcommand(
      "list", "print the audit log's entries (not verified; see `audit verify`)"));
  audit_list->add_flag("--json", audit_flags.json, "the entries as a JSON array");
  audit_list->add_option("--file", audit_flags.file,
                         "an audit log elsewhere (default: the state's)");
  auto* audit_verify = with_source(audit_cmd->add_subcommand(
      "verify", "check the hash chain and every signature; name the first bad entry"));
  audit_verify->add_option("--public-key", audit_flags.public_key,
                           "Ed25519 public key (PEM; default: the --audit-key's)");
  audit_verify->add_option("--file", audit_flags.file,
                           "an audit log elsewhere (default: the state's)");
  std::string kind;
  auto* import_cmd = app.add_subcommand("import", "write reconcile documents from another format");
  import_cmd->require_subcommand(1);
  ImportFlags import_flags;
  auto* import_compose = import_cmd->add_subcommand(
      "compose", "one Agent per service, a docker Target and, for build:, a Registry");
  import_compose->add_option("file", import_flags.file, "the compose file")->required();
  import_compose->add_option("--out", import_flags.out, "folder to write the documents into");
  import_compose->add_flag("--dry-run", import_flags.dry_run,
                           "print the documents instead of writing them");
  import_compose->add_option("--target", import_flags.target, "the Target's name")
      ->capture_default_str();
  import_compose->add_option("--project", import_flags.project,
                             "Compose project name: the prefix of volume and network names "
                             "(default: the file's name:, else its folder's name)");
  import_compose->add_option("--agent-prefix", import_flags.agent_prefix,
                             "prepended to every agent name (service names stay DNS aliases)");

  auto* schema = app.add_subcommand("schema", "print the JSON Schema of a kind");
  schema->add_option("kind", kind, "Agent, Registry or Target")->required();

  try {
    app.parse(args);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return UsageError(app, e);
  }
  if (quiet) g.verbosity = -1;
  SetUpConsole({g.log_format == "json", g.verbosity, g.no_color});
  if (*apply && !positional.empty()) {
    std::error_code ec;
    if (!std::filesystem::is_directory(positional, ec) && !reconcile::IsGitUrl(positional) &&
        std::filesystem::exists(positional, ec)) {
      // A file: a saved plan (or a mistake ReadSavedPlan explains). Source
      // and state stay what the flags say; the plan file never picks them.
      apply_flags.plan_file = positional;
      positional.clear();
    }
  }
  if (!positional.empty()) g.source = positional;

  reconcile::ProviderRegistry registry;
  reconcile::RegisterBuiltinProviders(registry);
  reconcile::exec::ExecOptions exec_options;  // plugins: RECONCILE_PLUGIN_PATH
  exec_options.log = [](const std::string& plugin, const std::string& line) {
    if (plugin.empty()) {
      spdlog::warn("plugins: {}", line);
    } else {
      spdlog::debug("plugin {}: {}", plugin, line);
    }
  };
  reconcile::exec::RegisterExecPlugins(registry, std::move(exec_options));

  if (*controller) {
    if (cf.branch.empty() && g.ref.empty() &&
        reconcile::IsGitUrl(cf.repo.empty() ? g.source : cf.repo)) {
      cf.branch = "main";
    }
    return CmdController(g, registry, cf);  // its own signal handling, on Asio
  }
  InstallStopSignals();
  if (*validate) return CmdValidate(g, registry);
  if (*render) return CmdRender(g, registry, render_json);
  if (*schema) return CmdSchema(kind);
  if (*import_compose) return CmdImportCompose(g, import_flags);
  if (*plan) return CmdPlan(g, registry, plan_flags);
  if (*apply) return CmdApply(g, registry, apply_flags);
  if (*rollback) return CmdRollback(g, registry, rollback_flags);
  if (*show) return CmdShow(show_file, json);
  if (*destroy) return CmdDestroy(g, registry, apply_flags);
  if (*drift) return CmdDrift(g, registry, json);
  if (*status) return CmdStatus(g, registry, json);
  if (*history) return CmdHistory(g, json);
  if (*unlock) return CmdUnlock(g);
  if (*audit_list) return CmdAuditList(g, audit_flags);
  if (*audit_verify) return CmdAuditVerify(g, audit_flags);
  if (*promote) return CmdPromote(g, registry, promote_flags);
  if (*approve) return CmdApprove(g, approve_flags);
  return 1;
}
