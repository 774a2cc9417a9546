// portalwatchctl: the operator's command line for a running portalwatchd, over its control socket
// (or TLS with a token). Exit codes: 0 done, 1 refused or failed (why on stderr), 2 usage error,
// 3 cannot connect.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>

#include "daemon/app.h"
#include "daemon/config.h"
#include "daemon/control_client.h"
#include "daemon/control_protocol.h"
#include "daemon/control_render.h"
#include "daemon/system_clock.h"
#include "detectors/json_writer.h"
#include "portalwatch_version.h"

namespace portalwatch {

namespace {

constexpr int kExitRefused = 1;
constexpr int kExitUsage = 2;
constexpr int kExitConnect = 3;

int usage_error(const std::string& message) {
  std::fprintf(stderr, "portalwatchctl: %s\n", message.c_str());
  return kExitUsage;
}

/// What the command line asked for, as raw text: validated by the protocol's own parser, so the
/// client refuses exactly what the daemon would.
struct Args {
  std::string state, scope, reason, ttl, network, comment, detector, duration;
  int limit = 50;
  bool follow = false;
};

void field(std::string& line, std::string_view key, std::string_view value) {
  line.push_back(',');
  append_json_string(line, key);
  line.push_back(':');
  append_json_string(line, value);
}

void field_raw(std::string& line, std::string_view key, std::string_view json) {
  line.push_back(',');
  append_json_string(line, key);
  line.push_back(':');
  line += json;
}

/// The request line for the chosen command; nullopt (with why) for a usage error.
std::optional<ControlRequest> build_request(const std::string& command,
                                            const std::string& allowlist_op, const Args& a,
                                            std::string& why) {
  std::string line = "{\"command\":";
  append_json_string(line, command);
  if (command == "lockdown") {
    field(line, "state", a.state);
    field(line, "scope", a.scope);
    field(line, "reason", a.reason);
    if (!a.ttl.empty()) {
      if (a.state == "off") {
        why = "--ttl applies only to lockdown on";
        return std::nullopt;
      }
      const auto seconds = parse_duration_seconds(a.ttl, &why);
      if (!seconds) {
        why = "--ttl " + a.ttl + ": " + why;
        return std::nullopt;
      }
      field_raw(line, "ttl_seconds", std::to_string(*seconds));
    }
  } else if (command == "findings" || command == "decisions") {
    field_raw(line, "limit", std::to_string(a.limit));
    if (a.follow) field_raw(line, "follow", "true");
  } else if (command == "allowlist") {
    field(line, "op", allowlist_op);
    if (allowlist_op != "list") field(line, "network", a.network);
    if (!a.comment.empty()) field(line, "comment", a.comment);
  } else if (command == "silence") {
    field(line, "detector", a.detector);
    std::int64_t seconds = 0;
    if (a.duration != "0") {
      const auto parsed = parse_duration_seconds(a.duration, &why);
      if (!parsed) {
        why = "--for " + a.duration + ": " + why;
        return std::nullopt;
      }
      seconds = *parsed;
    }
    field_raw(line, "seconds", std::to_string(seconds));
    if (!a.reason.empty()) field(line, "reason", a.reason);
  }
  line.push_back('}');
  ControlParseResult parsed = parse_control_request(line);
  if (!parsed.request) {
    why = parsed.error;
    return std::nullopt;
  }
  return parsed.request;
}

std::optional<std::string> read_token_file(const std::string& path, std::string& why) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    why = "--token-file " + path + ": cannot read it";
    return std::nullopt;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  std::string token = ss.str();
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) token.pop_back();
  if (token.empty()) {
    why = "--token-file " + path + ": the file is empty";
    return std::nullopt;
  }
  return token;
}

/// After the reply to a follow request: prints streamed items until the daemon ends the stream.
int follow(ControlClient& client, bool json, const RenderOptions& options,
           std::set<std::string> already_shown) {
  for (;;) {
    const auto line = client.read_line(std::nullopt);
    if (!line) {
      std::fputs("portalwatchctl: the daemon closed the connection\n", stderr);
      return kExitConnect;
    }
    const ControlStreamLine item = parse_control_stream_line(*line);
    if (item.kind == ControlStreamLine::Kind::kError) {
      std::fprintf(stderr, "portalwatchctl: %s: %s\n", terminal_safe(item.error_code).c_str(),
                   terminal_safe(item.error_message).c_str());
      return kExitRefused;
    }
    if (item.kind != ControlStreamLine::Kind::kItem) continue;
    // An item published while the daemon assembled the reply may come twice.
    if (already_shown.erase(item_id(item.item_json)) > 0) continue;
    if (json) {
      std::printf("%s\n", item.item_json.c_str());
    } else {
      const std::string text = item.stream == ControlStream::kFindings
                                   ? render_finding_line(item.item_json, options)
                                   : render_decision_line(item.item_json, options);
      std::fputs(text.c_str(), stdout);
    }
    std::fflush(stdout);
  }
}

}  // namespace

int portalwatchctl_main(int argc, char** argv) {
  CLI::App app{
      "portalwatchctl: operator control of a running portalwatchd, over its control socket"};
  app.set_version_flag("--version", std::string("portalwatchctl ") + PORTALWATCH_VERSION);
  app.require_subcommand(1);
  app.fallthrough();  // the global options may also follow the command
  app.footer(
      "Exit codes: 0 done, 1 refused or failed (the reason on stderr), 2 usage error, 3 cannot "
      "connect.\n"
      "Whoever can connect to the socket is an operator: its mode and group (control.socket_mode,\n"
      "control.socket_group) decide who. Every request is audited with your uid.");

  std::string socket_path, config_path, tcp, token_file, ca_file;
  bool json = false;
  double timeout_seconds = 30;
  auto* socket_opt = app.add_option(
      "--socket,-s", socket_path,
      "Control socket (default: control.socket of --config, else " + ControlConfig{}.socket + ")");
  auto* config_opt =
      app.add_option("--config,-c", config_path, "Take the socket from this configuration file")
          ->check(CLI::ExistingFile);
  socket_opt->excludes(config_opt);
  app.add_flag("--json", json,
               "Print the daemon's result as JSON (with --follow: one JSON object per item)");
  auto* tcp_opt = app.add_option(
      "--tcp", tcp, "A remote daemon's control.tcp.listen, HOST:PORT (TLS, with --token-file)");
  tcp_opt->excludes(socket_opt)->excludes(config_opt);
  app.add_option("--token-file", token_file,
                 "File holding the token (control.tcp.token_file) for --tcp")
      ->needs(tcp_opt);
  app.add_option("--ca-file", ca_file,
                 "PEM certificate(s) to verify the daemon's TLS certificate with")
      ->needs(tcp_opt)
      ->check(CLI::ExistingFile);
  app.add_option("--timeout", timeout_seconds, "Seconds to wait for the daemon (default 30)")
      ->check(CLI::Range(1.0, 3600.0));

  Args a;
  app.add_subcommand(
      "status",
      "Lockdowns on, silenced detectors, recent findings and decisions, consumer lag, health");

  auto* lockdown = app.add_subcommand(
      "lockdown", "Turn a lockdown on or off (recorded with your user name and reason)");
  lockdown->add_option("state", a.state, "on or off")
      ->required()
      ->check(CLI::IsMember({"on", "off"}));
  lockdown->add_option("--scope", a.scope, "global, app:NAME, user:NAME or ip:ADDRESS")->required();
  lockdown->add_option("--reason", a.reason, "Why (recorded with the decision; required)")
      ->required();
  lockdown->add_option("--ttl", a.ttl, "on: lift it by itself after this long (30m, 2h, 1d)");

  for (const auto& [name, what] : {std::pair{"findings", "Recent findings, newest last"},
                                   std::pair{"decisions", "Recent decisions, newest last"}}) {
    auto* sub = app.add_subcommand(name, what);
    sub->add_option("--limit,-n", a.limit, "How many (0-1000, default 50)")
        ->check(CLI::Range(0, 1000));
    sub->add_flag("--follow,-f", a.follow, "Then print new ones as they come, until interrupted");
  }

  auto* allowlist = app.add_subcommand("allowlist", "Networks that are never locked down");
  allowlist->require_subcommand(1);
  auto* allow_add = allowlist->add_subcommand("add", "Add a network (ADDRESS or ADDRESS/PREFIX)");
  allow_add->add_option("network", a.network, "e.g. 10.1.0.0/16")->required();
  allow_add->add_option("--comment", a.comment, "Why it is trusted");
  auto* allow_remove = allowlist->add_subcommand("remove", "Remove a network");
  allow_remove->add_option("network", a.network, "as listed")->required();
  allowlist->add_subcommand("list", "List the networks");

  auto* silence =
      app.add_subcommand("silence", "Let a detector's findings lead to no decision for a while");
  silence->add_option("detector", a.detector, "Detector name (as in findings), e.g. password_spray")
      ->required();
  silence->add_option("--for", a.duration, "How long: 30m, 2h, 1d; 0 lifts the silence")
      ->required();
  silence->add_option("--reason", a.reason, "Why (recorded)");

  app.add_subcommand("reload",
                     "Re-read the configuration file (a configuration with errors is not applied)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : kExitUsage;
  }

  const CLI::App* chosen = app.get_subcommands().front();
  const std::string command = chosen->get_name();
  std::string allowlist_op;
  if (command == "allowlist") allowlist_op = chosen->get_subcommands().front()->get_name();
  std::string why;
  const auto request = build_request(command, allowlist_op, a, why);
  if (!request) return usage_error("invalid request: " + why);

  const auto timeout = ControlClient::Timeout(static_cast<std::int64_t>(timeout_seconds * 1000));
  ControlConnectError connect_error;
  std::unique_ptr<ControlClient> client;
  if (!tcp.empty()) {
    if (token_file.empty()) return usage_error("--tcp needs --token-file");
    const auto token = read_token_file(token_file, why);
    if (!token) return usage_error(why);
    client =
        ControlClient::connect_tcp(tcp, ControlTlsOptions{ca_file}, *token, connect_error, timeout);
  } else {
    if (socket_path.empty() && !config_path.empty()) {
      const ConfigResult loaded = load_config_file(config_path);
      if (!loaded.config) {
        std::fputs(loaded.errors.c_str(), stderr);
        return kExitUsage;
      }
      socket_path = loaded.config->control.socket;
      if (socket_path.empty())
        return usage_error(config_path +
                           ": control.socket is empty: that daemon has no control socket");
    }
    if (socket_path.empty()) socket_path = ControlConfig{}.socket;
    client = ControlClient::connect_unix(socket_path, connect_error, timeout);
  }
  if (!client) {
    std::fprintf(stderr, "portalwatchctl: %s\n", connect_error.message.c_str());
    return kExitConnect;
  }

  const ControlReply reply = client->call(*request, timeout);
  if (!reply.ok) {
    std::fprintf(stderr, "portalwatchctl: %s: %s%s\n", command.c_str(),
                 reply.error_code == kControlDisconnected
                     ? ""
                     : (terminal_safe(reply.error_code) + ": ").c_str(),
                 terminal_safe(reply.error_message).c_str());
    return reply.error_code == kControlDisconnected ? kExitConnect : kExitRefused;
  }

  RenderOptions options;
  options.color = ::isatty(STDOUT_FILENO) && std::getenv("NO_COLOR") == nullptr;
  options.now = SystemClock().now();
  const Rendered rendered = render_result(*request, reply.result_json, options);
  std::set<std::string> listed;
  if (request->follow) {
    for (const auto& item : result_items(reply.result_json)) {
      listed.insert(item_id(item));
      if (json) std::printf("%s\n", item.c_str());
    }
  }
  if (json && !request->follow) std::printf("%s\n", reply.result_json.c_str());
  if (!json) std::fputs(rendered.out.c_str(), stdout);
  std::fputs(rendered.err.c_str(), stderr);
  std::fflush(stdout);
  if (request->follow) return follow(*client, json, options, std::move(listed));
  return rendered.exit_code;
}

}  // namespace portalwatch

int main(int argc, char** argv) { return portalwatch::portalwatchctl_main(argc, argv); }
