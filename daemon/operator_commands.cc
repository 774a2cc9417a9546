#include "daemon/operator_commands.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>

#include <simdjson.h>

#include "daemon/hook_actions.h"
#include "daemon/log.h"
#include "detectors/json_writer.h"
#include "portalwatch_version.h"

namespace portalwatch {

namespace {

void remember(std::deque<std::string>& recent, const std::string& json) {
  recent.push_back(json);
  if (recent.size() > static_cast<std::size_t>(ControlRequest::kMaxLimit)) recent.pop_front();
}

std::string items(const std::deque<std::string>& recent, int limit) {
  std::string out = "{\"items\":[";
  const std::size_t n = std::min(recent.size(), static_cast<std::size_t>(std::max(0, limit)));
  for (std::size_t i = recent.size() - n; i < recent.size(); ++i) {
    if (i != recent.size() - n) out.push_back(',');
    out += recent[i];
  }
  return out + "]}";
}

std::string lockdown_json(const Lockdown& l) {
  std::string out = "{\"scope\":";
  append_json_string(out, l.decision.scope.key());
  out += ",\"action\":";
  append_json_string(out, to_string(l.decision.action));
  out += ",\"since\":\"" + format_rfc3339(l.decision.at) + "\",\"by\":";
  append_json_string(out, l.decision.by);
  out += ",\"reason\":";
  append_json_string(out, l.decision.reason);
  if (l.decision.expires > 0) out += ",\"expires\":\"" + format_rfc3339(l.decision.expires) + "\"";
  out += std::string(",\"dry_run\":") + (l.decision.dry_run ? "true" : "false") + ",\"decision\":";
  append_json_string(out, l.decision.id_string());
  return out + "}";
}

}  // namespace

bool OperatorCommands::start(const ControlConfig& config, std::string& error) {
  if (!config.socket.empty() || config.tcp.enabled) {
    server_ = std::make_unique<ControlServer>(clock_);
    if (!server_->start(config, *this, error)) return false;
    spdlog::info("operator control on {}", config.socket.empty() ? "TCP only" : config.socket);
  }
  started_at_ = clock_.now();
  return true;
}

ControlReply OperatorCommands::handle(const ControlPeer& peer, const ControlRequest& request) {
  auto task = std::make_shared<ControlTask>();
  task->peer = peer;
  task->request = request;
  auto reply = task->reply.get_future();
  {
    std::lock_guard lock(mu_);
    if (stopping_)
      return ControlReply::failure(control_error::kUnavailable, "the daemon is stopping");
    tasks_.push_back(task);
  }
  if (reply.wait_for(std::chrono::seconds(10)) != std::future_status::ready)
    return ControlReply::failure(control_error::kUnavailable,
                                 "the daemon did not answer within 10 s");
  return reply.get();
}

void OperatorCommands::drain() {
  std::vector<std::shared_ptr<ControlTask>> tasks;
  {
    std::lock_guard lock(mu_);
    tasks.swap(tasks_);
  }
  for (auto& t : tasks) t->reply.set_value(execute(t->peer, t->request));
}

void OperatorCommands::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  drain();  // whoever waits gets an answer before the server's stop() waits for them
  if (server_) server_->stop();
  server_.reset();
}

void OperatorCommands::published(ControlStream stream, const std::string& json) {
  remember(stream == ControlStream::kFindings ? recent_findings_ : recent_decisions_, json);
  if (server_) server_->publish(stream, json);
}

std::string OperatorCommands::status_json() {
  const auto& s = engine_.stats();
  const std::vector<std::string> problems = problems_();
  std::string out = "{\"version\":\"" PORTALWATCH_VERSION "\",\"uptime_seconds\":";
  append_json_int(out, (clock_.now() - started_at_) / kSecondMs);
  out += std::string(",\"health\":\"") + (problems.empty() ? "ok" : "degraded") +
         "\",\"health_reasons\":[";
  for (std::size_t i = 0; i < problems.size(); ++i) {
    if (i) out.push_back(',');
    append_json_string(out, problems[i]);
  }
  out += "],\"events_received\":";
  append_json_int(out, static_cast<std::int64_t>(s.received));
  out += ",\"consumer_lag\":";
  append_json_int(out, static_cast<std::int64_t>(metrics_.consumer_lag.Value()));
  out += ",\"lockdowns\":[";
  bool first = true;
  for (const auto& [key, l] : policies_.active()) {
    if (!first) out.push_back(',');
    first = false;
    out += lockdown_json(l);
  }
  out += "],\"silenced\":[";
  first = true;
  for (const auto& x : policies_.silences()) {
    if (x.until <= clock_.now()) continue;
    if (!first) out.push_back(',');
    first = false;
    out += "{\"detector\":";
    append_json_string(out, x.detector);
    out += ",\"until\":\"" + format_rfc3339(x.until) + "\",\"by\":";
    append_json_string(out, x.by);
    out += ",\"reason\":";
    append_json_string(out, x.reason);
    out.push_back('}');
  }
  const std::string findings = items(recent_findings_, 20),
                    decisions = items(recent_decisions_, 20);
  out += "],\"recent_findings\":" + findings.substr(9, findings.size() - 10);
  out += ",\"recent_decisions\":" + decisions.substr(9, decisions.size() - 10);
  return out + "}";
}

std::string OperatorCommands::allowlist_json() const {
  std::string out = "{\"networks\":[";
  for (std::size_t i = 0; i < policies_.allowlist().size(); ++i) {
    const auto& a = policies_.allowlist()[i];
    if (i) out.push_back(',');
    out += "{\"network\":";
    append_json_string(out, a.network.to_string());
    out += ",\"comment\":";
    append_json_string(out, a.comment);
    out += ",\"by\":";
    append_json_string(out, a.by);
    out += ",\"at\":\"" + format_rfc3339(a.at) + "\"}";
  }
  return out + "]}";
}

ControlReply OperatorCommands::execute(const ControlPeer& peer, const ControlRequest& r) {
  const TimeMs now = clock_.now();
  // In a cluster, what the operator is shown includes every change stored before the question,
  // whichever member it was made on: the state topic is read to its end first.
  if (cluster_ && (r.command == ControlCommand::kStatus ||
                   (r.command == ControlCommand::kAllowlist && r.op == AllowlistOp::kList)) &&
      !cluster_->catch_up(std::chrono::seconds(2)))
    spdlog::warn("cluster: the state topic was not read to its end within 2 s; status may be behind");
  switch (r.command) {
    case ControlCommand::kStatus:
      return ControlReply::success(status_json());
    case ControlCommand::kFindings:
      return ControlReply::success(items(recent_findings_, r.limit));
    case ControlCommand::kDecisions:
      return ControlReply::success(items(recent_decisions_, r.limit));
    case ControlCommand::kLockdown: {
      if (!cluster_) return lockdown(r.scope, r.on, peer.user, r.reason, r.ttl_seconds * kSecondMs, now);
      // An "off" names the lockdown in force here, which is the one it ends on every member.
      std::string ends;
      if (!r.on) {
        const auto it = policies_.active().find(PolicyEngine::key_of(DecisionAction::kLockdown, r.scope));
        if (it == policies_.active().end())
          return ControlReply::failure(control_error::kFailed, "no lockdown is on for " + r.scope.key());
        ends = it->second.decision.id_string();
      }
      std::string rec = "{\"op\":\"lockdown\",\"scope\":";
      append_json_string(rec, r.scope.key());
      rec += std::string(",\"on\":") + (r.on ? "true" : "false") + ",\"user\":";
      append_json_string(rec, peer.user);
      rec += ",\"reason\":";
      append_json_string(rec, r.reason);
      rec += ",\"ttl_ms\":" + std::to_string(r.ttl_seconds * kSecondMs) + ",\"at\":" + std::to_string(now);
      if (!ends.empty()) rec += ",\"ends\":\"" + ends + "\"";
      return through_cluster(PolicyEngine::key_of(DecisionAction::kLockdown, r.scope), std::move(rec));
    }
    case ControlCommand::kAllowlist: {
      if (r.op == AllowlistOp::kList) return ControlReply::success(allowlist_json());
      if (!cluster_)
        return r.op == AllowlistOp::kAdd ? allow(r.network, r.comment, peer.operator_name(), now)
                                         : disallow(r.network);
      if (r.op == AllowlistOp::kRemove && std::none_of(policies_.allowlist().begin(), policies_.allowlist().end(),
                                                       [&](const auto& a) { return a.network.to_string() == r.network.to_string(); }))
        return ControlReply::failure(control_error::kFailed, r.network.to_string() + " is not on the allowlist");
      std::string rec = std::string("{\"op\":\"") + (r.op == AllowlistOp::kAdd ? "allow" : "disallow") +
                        "\",\"network\":";
      append_json_string(rec, r.network.to_string());
      rec += ",\"comment\":";
      append_json_string(rec, r.comment);
      rec += ",\"by\":";
      append_json_string(rec, peer.operator_name());
      rec += ",\"at\":" + std::to_string(now);
      return through_cluster("allow " + r.network.to_string(), std::move(rec));
    }
    case ControlCommand::kSilence: {
      const TimeMs until = r.seconds > 0 ? now + r.seconds * kSecondMs : 0;
      if (!cluster_) return silence(r.detector, until, peer.operator_name(), r.reason);
      std::string rec = "{\"op\":\"silence\",\"detector\":";
      append_json_string(rec, r.detector);
      rec += ",\"until\":" + std::to_string(until) + ",\"by\":";
      append_json_string(rec, peer.operator_name());
      rec += ",\"reason\":";
      append_json_string(rec, r.reason);
      rec += ",\"at\":" + std::to_string(now);
      return through_cluster("silence " + r.detector, std::move(rec));
    }
    case ControlCommand::kReload:
      return reload();
  }
  return ControlReply::failure(control_error::kBadRequest, "unknown command");
}

// The same path as a policy's decision: stored, logged, published (by the member that owns the
// scope, in a cluster), hooks run.
ControlReply OperatorCommands::lockdown(const Scope& scope, bool on, const std::string& user,
                                        const std::string& reason, TimeMs ttl, TimeMs at) {
  auto m = policies_.manual(scope, DecisionAction::kLockdown, on, user, reason, ttl, at);
  if (!m.error.empty()) return ControlReply::failure(control_error::kFailed, m.error);
  if (m.changed) outputs_.decide(Decision(*m.decision));
  return ControlReply::success("{\"decision\":" + m.decision->to_json() +
                               ",\"changed\":" + (m.changed ? "true" : "false") + "}");
}

ControlReply OperatorCommands::allow(const IpNetwork& network, const std::string& comment, const std::string& by,
                                     TimeMs at) {
  policies_.allow({network, comment, by, at});
  const std::string value = comment + '\n' + by + '\n' + std::to_string(at);
  if (!persist_setting("allow/" + network.to_string(), &value))
    return ControlReply::failure(control_error::kFailed, "not stored");
  return ControlReply::success(allowlist_json());
}

ControlReply OperatorCommands::disallow(const IpNetwork& network) {
  if (!policies_.disallow(network))
    return ControlReply::failure(control_error::kFailed, network.to_string() + " is not on the allowlist");
  if (!persist_setting("allow/" + network.to_string(), nullptr))
    return ControlReply::failure(control_error::kFailed, "not stored");
  return ControlReply::success(allowlist_json());
}

ControlReply OperatorCommands::silence(const std::string& detector, TimeMs until, const std::string& by,
                                       const std::string& reason) {
  policies_.silence({detector, until, by, reason});
  const std::string value = std::to_string(until) + '\n' + by + '\n' + reason;
  if (!persist_setting("silence/" + detector, until ? &value : nullptr))
    return ControlReply::failure(control_error::kFailed, "not stored");
  std::string out = "{\"detector\":";
  append_json_string(out, detector);
  out += until ? ",\"until\":\"" + format_rfc3339(until) + "\"}" : ",\"until\":null}";
  return ControlReply::success(out);
}

void OperatorCommands::set_cluster(ClusterShare* cluster) {
  cluster_ = cluster;
  if (cluster_)
    cluster_->set_state_handler(
        [this](std::string_view key, std::string_view value, bool starting) { apply_state(key, value, starting); });
}

// The record carries a request id (this member's name and a number) so that the member that wrote
// it knows its own when it reads it back, and answers with what applying it did. Until then the
// change is in force nowhere, not even here: every member applies the records in the topic's order.
ControlReply OperatorCommands::through_cluster(const std::string& key, std::string record) {
  const std::string request = cluster_->member() + "/" + std::to_string(++requests_);
  record += ",\"request\":";
  append_json_string(record, request);
  record += "}";
  pending_request_ = request;
  pending_reply_.reset();
  std::string error;
  const bool stored = cluster_->write_state(key, record, std::chrono::seconds(5), error);
  pending_request_.clear();
  if (!stored) {
    spdlog::error("cluster: operator change {} ({}): {}", key, request, error);
    return ControlReply::failure(control_error::kFailed, error);
  }
  if (!pending_reply_)  // read back, but not applied (a record this member could not read)
    return ControlReply::failure(control_error::kFailed, "stored, but not applied here");
  ControlReply reply = std::move(*pending_reply_);
  pending_reply_.reset();
  return reply;
}

// Records come from the state topic, which anything with write access to it can write to: each
// field is checked as the control protocol checks a request's (one line of bounded text, numbers
// in range); a record that fails is not applied, and said so in the log.
void OperatorCommands::apply_state(std::string_view key, std::string_view value, bool starting) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  std::string_view op, request;
  ControlReply reply = ControlReply::failure(control_error::kFailed, "not a change portalwatch knows");
  bool valid = true;
  const auto text = [&](const char* k) {
    std::string_view v;
    if (doc[k].get_string().get(v)) return std::string();
    if (v.size() > ControlRequest::kMaxTextBytes ||
        std::any_of(v.begin(), v.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }))
      valid = false;
    return std::string(v);
  };
  const auto number = [&](const char* k, std::int64_t min, std::int64_t max) {
    std::int64_t v = 0;
    if (doc[k].get_int64().get(v) || v < min || v > max) valid = false;
    return v;
  };
  constexpr std::int64_t kYear = 366 * kDayMs;
  const TimeMs now = clock_.now();
  if (!parser.parse(value.data(), value.size()).get(doc) && !doc["op"].get_string().get(op)) {
    if (doc["request"].get_string().get(request)) request = {};
    const TimeMs at = number("at", 1, now + kDayMs);
    if (op == "lockdown") {
      const auto scope = Scope::parse(text("scope"));
      bool on = false;
      const std::string user = text("user"), reason = text("reason"), ends = text("ends");
      const TimeMs ttl = number("ttl_ms", 0, kYear);
      if (doc["on"].get_bool().get(on)) valid = false;
      const auto it = scope ? policies_.active().find(PolicyEngine::key_of(DecisionAction::kLockdown, *scope))
                            : policies_.active().end();
      if (!scope || !valid) {
        reply = ControlReply::failure(control_error::kFailed, "a record with a field out of range");
      } else if (on && starting && ttl > 0 && at + ttl <= now) {
        // Expired before this member started: nothing to put on (it ended on every member).
        reply = ControlReply::success("{}");
      } else if (!on && !ends.empty() && (it == policies_.active().end() || it->second.decision.id_string() != ends)) {
        // An "off" ends the lockdown the operator saw, not one made since (here or, applied
        // again at a restart, long after).
        reply = ControlReply::failure(control_error::kFailed, "the lockdown it ends (" + ends + ") is not in force");
      } else {
        reply = lockdown(*scope, on, user, reason, ttl, at);
      }
    } else if (op == "allow" || op == "disallow") {
      const auto net = IpNetwork::parse(text("network"));
      const std::string comment = text("comment"), by = text("by");
      if (net && valid)
        reply = op == "allow" ? allow(*net, comment, by, at) : disallow(*net);
    } else if (op == "silence") {
      const std::string detector = text("detector"), by = text("by"), reason = text("reason");
      const TimeMs until = number("until", 0, now + kYear);
      if (valid && !detector.empty()) reply = silence(detector, until, by, reason);
    }
  }
  if (!request.empty() && request == pending_request_) {
    pending_reply_ = std::move(reply);
    return;
  }
  if (!reply.ok && !starting)
    spdlog::warn("cluster: the state topic's record {} was not applied: {}", escape_for_log(key),
                 reply.error_message);
  else if (reply.ok && !starting)
    spdlog::info("cluster: applied {} from the state topic", escape_for_log(key));
}

bool OperatorCommands::persist_setting(const std::string& name, const std::string* value) {
  if (!store_) return true;  // in memory only, as everything else without a state store
  std::string error;
  if (store_->write_setting(name, value, error)) return true;
  metrics_.state_write_failures.Increment();
  spdlog::error("{}", error);
  return false;
}

void OperatorCommands::restore_settings() {
  const auto split = [](const std::string& v) {
    std::vector<std::string> parts;
    std::size_t from = 0;
    for (std::size_t nl; (nl = v.find('\n', from)) != std::string::npos; from = nl + 1)
      parts.push_back(v.substr(from, nl - from));
    parts.push_back(v.substr(from));
    return parts;
  };
  for (const auto& [name, value] : store_->settings("allow/")) {
    const auto net = IpNetwork::parse(name.substr(6));
    const auto p = split(value);
    if (net && p.size() == 3) policies_.allow({*net, p[0], p[1], std::atoll(p[2].c_str())});
  }
  for (const auto& [name, value] : store_->settings("silence/")) {
    const auto p = split(value);
    if (p.size() == 3) policies_.silence({name.substr(8), std::atoll(p[0].c_str()), p[1], p[2]});
  }
  if (!policies_.allowlist().empty() || !policies_.silences().empty())
    spdlog::info("{} allowlisted network(s), {} silenced detector(s) restored",
                 policies_.allowlist().size(), policies_.silences().size());
}

// Reload: the configuration file is read and checked whole (an error anywhere changes nothing).
// Then, between two events: the detectors take their new settings keeping their windows and
// tables where the state's layout allows (Engine::reconfigure), and so do the input, time and
// sources settings; the response side (policies, hooks, the decision log and dry-run) is swapped
// in keeping lockdowns, the allowlist and silences; the log format and level change. A decision
// log that cannot be opened refuses the reload as an error in the file does. Kafka, the
// state store, profiles, metrics, control and GeoIP keep the settings they started with. The
// configuration is read, and its detectors and policies built, by load_config as at start-up;
// Engine::reconfigure and PolicyEngine::reconfigure swap them in with the running state, and the
// hooks, the decision log and the log are set up by the start-up functions themselves
// (HookCoordinator::configure, DaemonOutputs::open_decision_log, init_logging).
ControlReply OperatorCommands::reload() {
  if (config_.source.empty() || config_.source[0] == '<')
    return ControlReply::failure(control_error::kFailed,
                                 "started with the built-in configuration: no file to re-read");
  ConfigResult loaded = load_config(config_.source);
  if (!loaded.config) {
    spdlog::error("reload refused, the configuration in force stays:\n{}", loaded.errors);
    return ControlReply::failure(
        control_error::kFailed, "the configuration has errors; nothing changed:\n" + loaded.errors);
  }
  Config& next = *loaded.config;
  // The one part of the new configuration that can still fail is opening its decision log: first,
  // so that a reload naming a file the daemon cannot write is refused with nothing changed (the
  // log in use stays) rather than turning the decision log off.
  std::string error;
  if (!outputs_.open_decision_log(next.decisions.log, error)) {
    spdlog::error("reload refused, the configuration in force stays: {}", error);
    return ControlReply::failure(control_error::kFailed,
                                 "the configuration cannot be applied; nothing changed: " + error);
  }

  metrics_.sync(engine_);  // counted under the old set of instances first
  const Engine::ReloadReport detectors =
      engine_.reconfigure(next.engine, std::move(next.detectors));
  metrics_.rebind_detectors(engine_);
  SourcesConfig sources_in_force = std::move(config_.engine.sources);
  config_.engine = next.engine;
  config_.text = next.text;  // the detectors as KafkaSource::restart_if_late() builds them again
  if (!detectors.sources_applied) config_.engine.sources = std::move(sources_in_force);

  policies_.reconfigure(std::move(next.policies), next.decisions.dry_run);
  config_.hooks = next.hooks;
  hooks_.configure(config_.hooks, "when the hooks were reloaded");
  config_.decisions = next.decisions;  // its log was opened above
  init_logging(next.log);
  config_.log = next.log;

  const auto names = [](const std::vector<std::string>& v) {
    std::string out;
    for (const auto& n : v) out += (out.empty() ? "" : ", ") + n;
    return out.empty() ? std::string("none") : out;
  };
  spdlog::warn(
      "configuration reloaded from {}: detectors with new settings and their state kept: {}; "
      "restarted "
      "(type or window changed): {}; added: {}; removed: {}; {} policies, {} hooks{}",
      config_.source, names(detectors.kept), names(detectors.restarted), names(detectors.added),
      names(detectors.removed), policies_.policies().size(), config_.hooks.size(),
      detectors.sources_applied
          ? ""
          : "; sources: new prefixes or learning period take effect at restart");
  const auto json_names = [](const std::vector<std::string>& v) {
    std::string out = "[";
    for (size_t i = 0; i < v.size(); ++i) {
      if (i) out.push_back(',');
      append_json_string(out, v[i]);
    }
    return out + "]";
  };
  std::string out =
      "{\"reloaded\":true,\"errors\":[],\"applied\":[\"detectors\",\"input\",\"time\",";
  if (detectors.sources_applied) out += "\"sources\",";
  out += "\"policies\",\"hooks\",\"decisions\",\"log\"],\"detectors\":{\"kept\":" +
         json_names(detectors.kept) + ",\"restarted\":" + json_names(detectors.restarted) +
         ",\"added\":" + json_names(detectors.added) +
         ",\"removed\":" + json_names(detectors.removed) + "},\"unchanged_until_restart\":[";
  if (!detectors.sources_applied) out += "\"sources\",";
  out += "\"kafka\",\"state\",\"profiles\",\"metrics\",\"control\",\"geoip\"]}";
  return ControlReply::success(out);
}

}  // namespace portalwatch
