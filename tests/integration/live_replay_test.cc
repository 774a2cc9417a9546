// Live equals replay (issue 16): `portalwatchd run` consuming a Kafka topic must publish exactly the
// findings and decisions that `portalwatchd replay` prints for the same events, whatever the
// partitions, the backlog, restarts or assignments in several steps.
//
// One shared set-up: `portalwatchd simulate` writes two and a half simulated days with one attack
// of every kind the simulator makes; the whole file is produced to a 32-partition topic, keyed by
// user name, before any daemon starts (a backlog); `portalwatchd replay` of the file is the
// reference. Then three variants each run the real daemon on a fresh consumer group, state store
// and alerts/decisions topics, and compare what it published with the reference:
//   - backlog: one daemon reads the whole backlog;
//   - killed: the same, killed with SIGKILL at about 30% and 60% and restarted each time;
//   - two steps: a plain consumer of the same group holds half the partitions (not reading, not
//     committing) while the daemon reads the other half, then leaves them to it.
// Findings are compared as the multiset of (detector, name, entity, severity, at) and decisions as
// the multiset of (action, state, scope, at); then their ids, which come from what identifies them
// (for a finding its summary too, which tells its counts): a finding of replay and its live
// counterpart have one id.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "daemon/config.h"
#include "daemon/embedded_broker.h"
#include "daemon/simulator.h"
#include "detectors/time.h"
#include "tests/integration/daemon_process.h"
#include "tests/integration/kafka_harness.h"

extern char** environ;

namespace portalwatch::test {

namespace {

using SteadyClock = std::chrono::steady_clock;

// The stream: 80,000 events of a 3,000-employee workforce at 0.9 events/s at the weekday peak
// (about 2.5 days of event time, about 55 MB). The embedded broker keeps only about 5 MiB per
// partition: 32 partitions hold about 1.7 MB each (checked below: every low watermark is 0).
constexpr std::uint64_t kEvents = 80'000;
constexpr int kPartitions = 32;
constexpr const char* kStart = "2026-11-02T00:00:00Z";  // a Monday; in the past: see below
constexpr const char* kTopic = "events";
constexpr std::size_t kExamples = 10;
constexpr int kBatch = 50;          // messages per produced batch
constexpr int kKilledRttMs = 80;    // the broker's answers delayed this much while a kill is due
constexpr int kTwoStepsRttMs = 300;  // likewise while the second assignment is on its way

double seconds_since(SteadyClock::time_point t0) {
  return std::chrono::duration<double>(SteadyClock::now() - t0).count();
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> lines_of(const std::string& path) {
  std::vector<std::string> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(std::move(line));
  return out;
}

// Runs `args` (args[0] an absolute path, no shell) with stdout and stderr to files; its exit code,
// or -1 when it did not exit normally.
int run_command(const std::vector<std::string>& args, const std::string& out, const std::string& err) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<std::string> copy = args;
  std::vector<char*> argv;
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, copy[0].c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return -1;
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// The default configuration with some top-level sections replaced (each override is the whole
// section, its key line included). Sections not named keep the shipped text byte for byte, so the
// detectors, policies and time settings of every configuration here are the shipped defaults.
std::string default_config_with(const std::map<std::string, std::string>& overrides) {
  std::string out, section;
  std::istringstream in{std::string(default_config_text())};
  std::set<std::string> replaced;
  for (std::string line; std::getline(in, line);) {
    const bool top_level = !line.empty() && line[0] != ' ' && line[0] != '#' && line.find(':') != std::string::npos;
    if (top_level) section = line.substr(0, line.find(':'));
    const auto o = overrides.find(section);
    if (o == overrides.end()) {
      out += line + "\n";
    } else if (top_level) {
      out += o->second;
      replaced.insert(section);
    }
  }
  for (const auto& [name, text] : overrides) REQUIRE_MESSAGE(replaced.count(name), "no section " << name);
  return out;
}

// ---- what is compared ---------------------------------------------------------------------------

// The part of a finding or decision after `"key":{` (the entity or scope object).
std::string object_after(const std::string& json, const std::string& key) {
  const auto at = json.find("\"" + key + "\":{");
  return at == std::string::npos ? std::string() : json.substr(at, json.find('}', at) - at + 1);
}

bool is_decision(const std::string& json) { return json.find("\"kind\":\"decision\"") != std::string::npos; }

// "detector[/name]": the instance (a configured name only when it differs from the detector).
std::string instance_of(const std::string& finding) {
  // "name" comes right after "detector" when present; evidence may hold a key "name" too.
  const auto severity = finding.find("\"severity\":");
  const auto name = finding.find("\"name\":");
  const std::string n = name != std::string::npos && name < severity ? field(finding, "name") : std::string();
  return field(finding, "detector") + (n.empty() ? "" : "/" + n);
}

// detector[/name] entity-type:value severity at
std::string finding_key(const std::string& f) {
  const std::string entity = object_after(f, "entity");
  return instance_of(f) + " " + field(entity, "type") + ":" + field(entity, "value") + " " + field(f, "severity") +
         " at " + field(f, "at");
}

// action state scope-type:value at
std::string decision_key(const std::string& d) {
  const std::string scope = object_after(d, "scope");
  return field(d, "action") + " " + field(d, "state") + " " + field(scope, "type") + ":" + field(scope, "value") +
         " at " + field(d, "at");
}

using Multiset = std::map<std::string, int>;

// What one side has more of than the other, key by key (a key twice on one side and once on the
// other is one difference).
std::vector<std::string> excess(const Multiset& a, const Multiset& b) {
  std::vector<std::string> out;
  for (const auto& [k, n] : a) {
    const auto it = b.find(k);
    for (int i = it == b.end() ? 0 : it->second; i < n; ++i) out.push_back(k);
  }
  return out;
}

std::string examples(const std::vector<std::string>& keys) {
  std::string out;
  for (std::size_t i = 0; i < keys.size() && i < kExamples; ++i) out += "\n    " + keys[i];
  if (keys.size() > kExamples) out += "\n    ... " + std::to_string(keys.size() - kExamples) + " more";
  return out;
}

// "instance: N only live, M only replay; ..." for the differing findings.
std::string by_instance(const std::vector<std::string>& only_live, const std::vector<std::string>& only_replay) {
  std::map<std::string, std::pair<int, int>> n;
  for (const auto& k : only_live) ++n[k.substr(0, k.find(' '))].first;
  for (const auto& k : only_replay) ++n[k.substr(0, k.find(' '))].second;
  std::string out;
  for (const auto& [instance, c] : n)
    out += (out.empty() ? "" : "; ") + instance + " " + std::to_string(c.first) + " only live, " +
           std::to_string(c.second) + " only replay";
  return out.empty() ? "none" : out;
}

// ---- the shared set-up ----------------------------------------------------------------------------

struct Shared {
  std::unique_ptr<EmbeddedBroker> broker;
  std::string dir, events_file;
  std::size_t events = 0;
  TimeMs first = 0, last = 0;       // event time of the stream's first and last events
  std::size_t inversions = 0;       // events stamped earlier than the one before them in the file
  std::vector<std::string> replay_findings, replay_decisions;
  std::string replay_summary;       // replay's --summary json
  double setup_seconds = 0;

  ~Shared() {
    broker.reset();
    if (!dir.empty() && !getenv("PW_KEEP_TMP")) std::filesystem::remove_all(dir);
  }
};

std::unique_ptr<Shared> make_shared_setup() {
  const auto t0 = SteadyClock::now();
  auto s = std::make_unique<Shared>();
  char tmpl[] = "/tmp/portalwatch-live-replay-XXXXXX";
  REQUIRE(mkdtemp(tmpl));
  s->dir = tmpl;
  s->events_file = s->dir + "/events.jsonl";

  // Every attack kind, spread over the first day (simulate spaces them by events / rate). The
  // stream lies in the past, as a backlog does: the daemon's "now" is the wall clock, and events
  // stamped ahead of it would be clamped as future.
  const std::string truth = s->dir + "/truth.jsonl";
  REQUIRE(run_command({PORTALWATCHD_PATH, "simulate", "-n", std::to_string(kEvents), "--rate", "0.9", "--employees",
                       "3000", "--seed", "16", "--start", kStart, "-o", s->events_file, "--truth", truth},
                      s->dir + "/simulate.out", s->dir + "/simulate.err") == 0);
  std::set<std::string> kinds;
  for (const auto& label : lines_of(truth)) kinds.insert(field(label, "attack"));
  for (std::size_t k = 0; k < sim::kAttackKindCount; ++k)
    CHECK_MESSAGE(kinds.count(std::string(sim::to_string(static_cast<sim::AttackKind>(k)))),
                  "no " << sim::to_string(static_cast<sim::AttackKind>(k)) << " attack in the stream");

  // The simulator writes events in non-decreasing event time (PortalSimulator::next), so the file
  // and each partition (a subsequence) are sorted: measured here rather than assumed.
  const std::vector<std::string> lines = lines_of(s->events_file);
  s->events = lines.size();
  REQUIRE(s->events == kEvents);
  TimeMs previous = 0;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const auto t = parse_rfc3339(field(lines[i], "@timestamp"));
    REQUIRE_MESSAGE(t, "line " << i + 1 << " has no @timestamp");
    if (i == 0) s->first = *t;
    if (i > 0 && *t < previous) ++s->inversions;
    previous = std::max(previous, *t);
  }
  s->last = previous;
  REQUIRE_MESSAGE(s->last - s->first >= 2 * kDayMs, "the stream covers less than two days");

  // The whole file as a backlog, keyed by user name as production is (user_key; an event without
  // a user name has no key). Nothing dropped: every partition still starts at offset 0 and the
  // partitions hold every line.
  std::string error;
  s->broker = EmbeddedBroker::start(1, error);
  REQUIRE_MESSAGE(s->broker, error);
  REQUIRE_MESSAGE(s->broker->create_topic(kTopic, kPartitions, error), error);
  // In small batches: the embedded broker answers a fetch with one batch per partition, so with
  // its answers delayed (set_broker_rtt) the killed variant's daemon reads at a pace that lets the
  // kills land mid-stream; the messages and their order are the same either way.
  produce_all(s->broker->bootstrap(), kTopic, lines, {{"batch.num.messages", std::to_string(kBatch)}});
  const auto marks = partition_watermarks(s->broker->bootstrap(), kTopic, kPartitions);
  std::int64_t held = 0, fewest = INT64_MAX, most = 0;
  for (int p = 0; p < kPartitions; ++p) {
    CHECK_MESSAGE(marks[p].first == 0, "partition " << p << " dropped its first " << marks[p].first
                                                    << " messages (the embedded broker's retention)");
    held += marks[p].second - marks[p].first;
    fewest = std::min(fewest, marks[p].second);
    most = std::max(most, marks[p].second);
  }
  REQUIRE_MESSAGE(held == static_cast<std::int64_t>(s->events), held << " messages held for " << s->events << " lines");

  // The reference: replay of the same file with the same detectors, policies and time settings.
  const std::string replay_config = s->dir + "/replay.yaml";
  std::ofstream(replay_config) << default_config_with({});
  const std::string out = s->dir + "/replay.out", err = s->dir + "/replay.err";
  REQUIRE(run_command({PORTALWATCHD_PATH, "replay", "--no-progress", "--summary", "json", "--config", replay_config,
                       s->events_file},
                      out, err) == 0);
  for (auto& line : lines_of(out)) (is_decision(line) ? s->replay_decisions : s->replay_findings).push_back(line);
  for (const auto& line : lines_of(err))
    if (!line.empty() && line[0] == '{') s->replay_summary = line;
  REQUIRE_MESSAGE(!s->replay_summary.empty(), slurp(err));
  REQUIRE(field(s->replay_summary, "events_read") == std::to_string(s->events));
  s->setup_seconds = seconds_since(t0);
  MESSAGE("live equals replay, set-up: " << s->events << " events from " << format_rfc3339(s->first) << " to "
                                         << format_rfc3339(s->last) << " (" << kinds.size() << " attack kinds), "
                                         << s->inversions << " out of event-time order in the file; "
                                         << kPartitions << " partitions of " << fewest << " to " << most
                                         << " messages; replay: " << s->replay_findings.size() << " findings, "
                                         << s->replay_decisions.size() << " decisions, "
                                         << field(s->replay_summary, "late_clamped") << " late and "
                                         << field(s->replay_summary, "future_clamped")
                                         << " future timestamps clamped; set-up took " << s->setup_seconds << " s");
  return s;
}

Shared& shared() {
  static std::unique_ptr<Shared> s;
  if (!s) s = make_shared_setup();
  return *s;
}

// ---- one variant: a daemon of its own ------------------------------------------------------------

// A daemon's configuration, state store, metrics port, topics and hook record, apart from every
// other variant's.
struct LiveRun {
  std::string name, group, alerts, decisions, config, log, hooks;
  int port = 0;
};

// kafka_extra: more lines of the kafka section. member: a cluster member of that name (cluster.h),
// whose state topic (state-NAME) and alerts and decisions topics the caller creates; its hook
// record is the cluster's (each member appends to it); r.group is its own consumer group.
LiveRun make_run(const Shared& s, const std::string& name, const std::string& kafka_extra = "",
                 const std::string& member = "") {
  LiveRun r;
  const std::string file = member.empty() ? name : name + "-" + member;
  r.name = file;
  r.group = "live-replay-" + name;
  r.alerts = "alerts-" + name;
  r.decisions = "decisions-" + name;
  r.config = s.dir + "/" + file + ".yaml";
  r.log = s.dir + "/" + file + ".log";
  r.hooks = s.dir + "/" + name + "-hook-runs.jsonl";
  r.port = free_port();
  std::string error;
  if (member.empty()) {
    REQUIRE_MESSAGE(s.broker->create_topic(r.alerts, 1, error), error);
    REQUIRE_MESSAGE(s.broker->create_topic(r.decisions, 1, error), error);
  }
  const std::string group_id = r.group;
  if (!member.empty()) r.group += "." + member;  // where the member commits (cluster.h)
  // Warm-up after a restart covers the whole stream. The daemon rebuilds its detectors' windows by
  // reading state.warmup_minutes of event time again (default 60), but the shipped detectors keep
  // state far longer than an hour: enumeration_daily's day, the shared-egress sources and
  // multi_account_source's history learned over the *previous* day, impossible_travel's week of
  // last sign-ins, failure_spike's and credential_stuffing's baselines learned from the start.
  // Only a warm-up from the stream's first event gives a restarted daemon the state replay has.
  const TimeMs warmup_minutes = (s.last - s.first) / kMinuteMs + 60;
  REQUIRE(warmup_minutes <= 7 * 24 * 60);  // the configuration's limit
  std::ofstream(r.config) << default_config_with(
      {{"kafka", "kafka:\n  bootstrap_servers: \"" + s.broker->bootstrap() + "\"\n  group_id: " + group_id +
                     (member.empty() ? "" : "\n  group_instance_id: " + member) + "\n  topics: [" + kTopic + "]\n  alerts_topic: " + r.alerts + "\n  decisions_topic: " +
                     r.decisions +
                     "\n  dead_letter_topic: \"\"\n  commit_interval_ms: 200\n  poll_timeout_ms: 100\n" + kafka_extra +
                     "  properties:\n    session.timeout.ms: \"3000\"\n    heartbeat.interval.ms: \"300\"\n"
                     "    partition.assignment.strategy: cooperative-sticky\n"},
       {"cluster", member.empty() ? "cluster:\n  enabled: false\n"
                                  : "cluster:\n  enabled: true\n  state_topic: state-" + name + "\n"},
       {"state", "state:\n  path: \"" + s.dir + "/" + file + "-state\"\n  block_cache_mib: 16\n  warmup_minutes: " +
                     std::to_string(warmup_minutes) + "\n"},
       {"metrics", "metrics:\n  enabled: true\n  listen: \"127.0.0.1:" + std::to_string(r.port) + "\"\n"},
       {"control", "control:\n  socket: \"\"\n"},
       {"hooks", "hooks:\n  - name: record\n    type: exec\n    on: {states: [on]}\n    argv: [/usr/bin/tee, -a, \"" +
                     r.hooks + "\"]\n"}});
  return r;
}

// What one run of the daemon (one process) showed on /metrics, last scraped.
struct RunMetrics {
  double received = 0, warmup = 0, late = 0;
  static RunMetrics of(const std::string& m) {
    return {std::max(0.0, metric(m, "portalwatch_events_received_total")),
            std::max(0.0, metric(m, "portalwatch_events_warmup_total")),
            std::max(0.0, metric(m, "portalwatch_events_time_clamped_total{kind=\"late\"}"))};
  }
  double fresh() const { return received - warmup; }  // events this run processed for the first time
};

// Waits until the daemon holds every partition, the group has committed every event (the daemon
// commits only what it processed and delivered) and its lag is 0; its metrics then, once they
// have settled (the daemon copies its counters to /metrics every 250 ms).
std::string wait_caught_up(const Shared& s, const LiveRun& r, std::chrono::seconds timeout) {
  const auto deadline = SteadyClock::now() + timeout;
  std::string m;
  std::int64_t committed = -1;
  while (SteadyClock::now() < deadline) {
    m = scrape(r.port);
    if (metric(m, "portalwatch_kafka_assigned_partitions") == kPartitions &&
        metric(m, "portalwatch_consumer_lag_messages") == 0) {
      committed = committed_total(s.broker->bootstrap(), r.group, kTopic, kPartitions);
      if (committed == static_cast<std::int64_t>(s.events)) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (committed != static_cast<std::int64_t>(s.events))
    FAIL("the daemon did not catch up: " << committed << " of " << s.events << " committed; log " << r.log);
  // Settled: the same counts in two scrapes more than one copy interval apart.
  RunMetrics before = RunMetrics::of(m);
  auto since = SteadyClock::now();
  while (SteadyClock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    m = scrape(r.port);
    const RunMetrics now = RunMetrics::of(m);
    if (now.received != before.received || now.warmup != before.warmup || now.late != before.late) {
      before = now;
      since = SteadyClock::now();
    } else if (SteadyClock::now() - since > std::chrono::milliseconds(300)) {
      return m;
    }
  }
  FAIL("the daemon's metrics did not settle; log " << r.log);
  return m;
}

void stop_daemon(pid_t pid, const LiveRun& r) {
  REQUIRE(kill(pid, SIGTERM) == 0);
  int status = 0;
  waitpid(pid, &status, 0);
  CHECK_MESSAGE(WIFEXITED(status),
                "died of signal " << (WIFSIGNALED(status) ? WTERMSIG(status) : 0) << "; log " << r.log);
  CHECK_MESSAGE(WEXITSTATUS(status) == 0, "log " << r.log);
}

// Compares what the variant's daemon(s) published with replay, prints the figures and checks.
// Whether a difference (a finding's or a decision's key, see finding_key and decision_key) is one
// the daemon made while it read only part of the partitions, up to stream time `until`: a decision,
// or a finding about an entity other than a user (events are keyed by user name, so a user's events
// were all in the daemon's partitions; a source's, a network's or the portal's were not).
bool partial_view(const std::string& key, TimeMs until, bool finding) {
  const auto at_pos = key.rfind(" at ");
  const auto at = at_pos == std::string::npos ? std::nullopt : parse_rfc3339(key.substr(at_pos + 4));
  if (!at || *at > until) return false;
  const auto entity = key.find(' ');
  return !finding || key.compare(entity + 1, 5, "user:") != 0;
}

// Moves the differences partial_view() explains from `diffs` to `explained`.
void set_apart_partial(std::vector<std::string>& diffs, std::vector<std::string>& explained, TimeMs until,
                       bool finding) {
  std::vector<std::string> rest;
  for (auto& k : diffs) (partial_view(k, until, finding) ? explained : rest).push_back(std::move(k));
  diffs = std::move(rest);
}

// partial_until: the stream time up to which the daemon read only part of the partitions (the
// two-step variant): differences partial_view() explains are reported, not failed; anything else
// (a finding about a user, anything after it, a finding of replay missing live) fails.
void compare_with_replay(const Shared& s, const LiveRun& r, const std::vector<RunMetrics>& runs, double seconds,
                         const std::string& notes, TimeMs partial_until = std::numeric_limits<TimeMs>::min()) {
  const std::vector<std::string> findings = read_topic(s.broker->bootstrap(), r.alerts, 1);
  const std::vector<std::string> decisions = read_topic(s.broker->bootstrap(), r.decisions, 1);
  const std::vector<std::string> hook_runs = lines_of(r.hooks);

  // Findings: every finding of the alerts topic counts, once per id. A finding published twice
  // under two ids is a difference. The same message sent again with the same id after a crash (the
  // outbox resends what the broker had not confirmed: at-least-once delivery, which a consumer of
  // the topic undoes by id) is counted apart; an id that names two different findings fails.
  Multiset live_f, replay_f;
  std::map<std::string, std::string> by_id;
  std::size_t same_id_again = 0;
  for (const auto& f : findings) {
    const auto [it, fresh] = by_id.emplace(field(f, "id"), finding_key(f));
    if (fresh) {
      ++live_f[finding_key(f)];
      continue;
    }
    ++same_id_again;
    CHECK_MESSAGE(it->second == finding_key(f), "id " << it->first << " names two findings");
  }
  std::set<std::string> replay_ids;
  for (const auto& f : s.replay_findings) {
    ++replay_f[finding_key(f)];
    replay_ids.insert(field(f, "id"));
  }
  // Published live with the key of a finding of replay, yet another id: the same attack seen
  // with other counts.
  std::vector<std::string> other_id;
  for (const auto& [id, key] : by_id)
    if (!replay_ids.count(id) && replay_f.count(key)) other_id.push_back(key + " " + id);
  auto only_live = excess(live_f, replay_f), only_replay = excess(replay_f, live_f);
  std::vector<std::string> partial_f, partial_d;
  set_apart_partial(only_live, partial_f, partial_until, true);

  // Decisions, likewise once per id. Once the input is idle (every partition read to its end) live
  // time goes on by the wall clock, while replay's ends with the file: a decision stamped after the
  // stream's last event (a lockdown ending by its duration on the wall clock) has no counterpart in
  // replay, so those are reported apart and not compared. The stream lies in the past, so the wall
  // clock would be far ahead of event time were it used during the backlog.
  Multiset live_d, replay_d;
  std::vector<std::string> live_after, replay_after;
  std::size_t decisions_again = 0;
  std::map<std::string, std::string> decision_by_id;
  auto split = [&](const std::vector<std::string>& all, Multiset& within, std::vector<std::string>& after) {
    for (const auto& d : all) {
      if (&all == &decisions) {
        const auto [it, fresh] = decision_by_id.emplace(field(d, "id"), decision_key(d));
        if (!fresh) {
          ++decisions_again;
          CHECK_MESSAGE(it->second == decision_key(d), "id " << it->first << " names two decisions");
          continue;
        }
      }
      const auto at = parse_rfc3339(field(d, "at"));
      if (at && *at > s.last) after.push_back(decision_key(d));
      else ++within[decision_key(d)];
    }
  };
  split(decisions, live_d, live_after);
  split(s.replay_decisions, replay_d, replay_after);
  std::set<std::string> replay_decision_ids;
  for (const auto& d : s.replay_decisions) replay_decision_ids.insert(field(d, "id"));
  std::vector<std::string> decision_other_id;
  for (const auto& [id, key] : decision_by_id)
    if (!replay_decision_ids.count(id) && replay_d.count(key)) decision_other_id.push_back(key + " " + id);
  auto d_only_live = excess(live_d, replay_d), d_only_replay = excess(replay_d, live_d);
  set_apart_partial(d_only_live, partial_d, partial_until, false);
  set_apart_partial(d_only_replay, partial_d, partial_until, false);
  std::size_t d_compared = 0;
  for (const auto& [k, n] : replay_d) d_compared += static_cast<std::size_t>(n);

  // Hooks: each "on" decision acted on once.
  Multiset hooked;
  std::map<std::string, int> hooked_ids;
  std::vector<std::string> hooked_twice;
  for (const auto& h : hook_runs) {
    if (++hooked[decision_key(h)] == 2) hooked_twice.push_back(decision_key(h));
    ++hooked_ids[field(h, "id")];
  }
  Multiset live_on;
  std::set<std::string> on_ids;
  for (const auto& d : decisions)
    if (field(d, "state") == "on" && on_ids.insert(field(d, "id")).second) ++live_on[decision_key(d)];
  const auto on_not_hooked = excess(live_on, hooked), hooked_not_published = excess(hooked, live_on);

  double late = 0, warmup = 0;
  std::string per_run;
  for (const auto& m : runs) {
    late += m.late;
    warmup += m.warmup;
    per_run += (per_run.empty() ? "" : ", ") + std::to_string(static_cast<long>(m.received)) + " received (" +
               std::to_string(static_cast<long>(m.warmup)) + " warm-up, " + std::to_string(static_cast<long>(m.late)) +
               " late)";
  }
  std::size_t f_compared = 0;
  for (const auto& [k, n] : replay_f) {
    const auto it = live_f.find(k);
    f_compared += static_cast<std::size_t>(std::min(n, it == live_f.end() ? 0 : it->second));
  }

  MESSAGE("live equals replay [" << r.name << "] " << notes << "\n  " << seconds << " s; " << s.events
          << " events; runs: " << per_run << "\n  findings: replay " << s.replay_findings.size() << ", live "
          << findings.size() << " (" << same_id_again << " delivered again with the same id); " << f_compared
          << " equal, " << only_live.size() << " only in live, " << only_replay.size() << " only in replay; "
          << other_id.size() << " with replay's key and another id (decisions: " << decision_other_id.size() << ")"
          << (partial_f.empty() && partial_d.empty()
                  ? std::string()
                  : "\n  made while the daemon read only part of the partitions (up to " +
                        format_rfc3339(partial_until) + "), reported, not failed: " +
                        std::to_string(partial_f.size()) + " findings only in live (" +
                        by_instance(partial_f, {}) + "), " + std::to_string(partial_d.size()) +
                        " decisions different" + examples(partial_f) + examples(partial_d))
          << "\n  differences by detector: " << by_instance(only_live, only_replay)
          << "\n  decisions up to the last event: replay " << d_compared << ", live "
          << decisions.size() - live_after.size() << "; " << d_only_live.size() << " only in live, "
          << d_only_replay.size() << " only in replay (" << decisions_again
          << " delivered again with the same id); after the last event (not compared): live "
          << live_after.size() << ", replay " << replay_after.size() << "\n  hook runs " << hook_runs.size()
          << " for " << live_on.size() << " \"on\" decisions published (" << hooked_twice.size()
          << " run twice, " << on_not_hooked.size() << " not run, " << hooked_not_published.size()
          << " run for no published decision)\n  portalwatch_events_time_clamped_total{kind=\"late\"} " << late
          << ", portalwatch_events_warmup_total " << warmup
          << (only_live.empty() ? "" : "\n  findings only in live:" + examples(only_live))
          << (only_replay.empty() ? "" : "\n  findings only in replay:" + examples(only_replay))
          << (d_only_live.empty() ? "" : "\n  decisions only in live:" + examples(d_only_live))
          << (d_only_replay.empty() ? "" : "\n  decisions only in replay:" + examples(d_only_replay))
          << (live_after.empty() ? "" : "\n  live decisions after the last event:" + examples(live_after))
          << (hooked_twice.empty() ? "" : "\n  hooks run twice:" + examples(hooked_twice))
          << (other_id.empty() ? "" : "\n  findings with another id:" + examples(other_id))
          << (decision_other_id.empty() ? "" : "\n  decisions with another id:" + examples(decision_other_id)));

  CHECK_MESSAGE(only_live.empty(), "findings published live that replay does not give; log " << r.log);
  CHECK_MESSAGE(only_replay.empty(), "findings of replay not published live; log " << r.log);
  CHECK(d_only_live.empty());
  CHECK(d_only_replay.empty());
  // Ids: equal wherever the daemon saw what replay saw (with partitions assigned in two steps, a
  // finding about a source or the portal can carry other counts; reported above).
  if (partial_until == std::numeric_limits<TimeMs>::min()) {
    CHECK_MESSAGE(other_id.empty(), "findings equal to replay's under another id");
    CHECK_MESSAGE(decision_other_id.empty(), "decisions equal to replay's under another id");
  }
  CHECK(replay_after.empty());
  CHECK_MESSAGE(hooked_twice.empty(), "an \"on\" decision acted on twice");
  CHECK(on_not_hooked.empty());
  CHECK(hooked_not_published.empty());
  // Each partition is in event-time order (the file is: s.inversions == 0), so a daemon that
  // merges its partitions by event time never sees an event older than its watermark. Replay's own
  // late count is no guide here: it comes from its stream-time reference ("now" is the median of
  // the last five timestamps), which after a quiet night's gap of more than max_future_seconds
  // places the next events at that median, sometimes below the watermark; live's "now" is the wall
  // clock. Were the file not sorted, live could not do better than replay of it.
  const double allowed_late = s.inversions == 0 ? 0 : std::atof(field(s.replay_summary, "late_clamped").c_str());
  CHECK_MESSAGE(late <= allowed_late, late << " events placed at the watermark live");
}

// A librdkafka consumer of the group that takes partitions and holds them: assigned, paused at
// once (nothing fetched is delivered), never committed.
class HoldingConsumer final : public RdKafka::RebalanceCb {
 public:
  HoldingConsumer(const std::string& bootstrap, const std::string& group) {
    std::string err;
    std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
    for (const auto& [k, v] : std::map<std::string, std::string>{
             {"bootstrap.servers", bootstrap},
             {"group.id", group},
             {"enable.auto.commit", "false"},
             {"enable.auto.offset.store", "false"},
             {"auto.offset.reset", "earliest"},
             {"partition.assignment.strategy", "cooperative-sticky"},  // as the daemon's configuration
             {"session.timeout.ms", "3000"},
             {"heartbeat.interval.ms", "300"}})
      REQUIRE_MESSAGE(conf->set(k, v, err) == RdKafka::Conf::CONF_OK, k << ": " << err);
    REQUIRE(conf->set("rebalance_cb", static_cast<RdKafka::RebalanceCb*>(this), err) == RdKafka::Conf::CONF_OK);
    consumer_.reset(RdKafka::KafkaConsumer::create(conf.get(), err));
    REQUIRE_MESSAGE(consumer_, err);
    REQUIRE(consumer_->subscribe({kTopic}) == RdKafka::ERR_NO_ERROR);
  }
  ~HoldingConsumer() override { close(); }

  /// Serves the group (rebalances) for this long; counts messages delivered (none are expected).
  void poll_for(std::chrono::milliseconds d) {
    const auto until = SteadyClock::now() + d;
    while (SteadyClock::now() < until) {
      std::unique_ptr<RdKafka::Message> m(consumer_->consume(20));
      if (m->err() == RdKafka::ERR_NO_ERROR) ++delivered_;
    }
  }
  void close() {
    if (!consumer_) return;
    consumer_->close();
    consumer_.reset();
  }
  const std::set<int>& held() const { return held_; }
  std::size_t delivered() const { return delivered_; }

  void rebalance_cb(RdKafka::KafkaConsumer* c, RdKafka::ErrorCode err,
                    std::vector<RdKafka::TopicPartition*>& parts) override {
    const bool cooperative = c->rebalance_protocol() == "COOPERATIVE";
    if (err == RdKafka::ERR__ASSIGN_PARTITIONS) {
      if (cooperative) delete c->incremental_assign(parts);
      else c->assign(parts);
      c->pause(parts);
      for (auto* p : parts) held_.insert(p->partition());
    } else {
      if (cooperative) delete c->incremental_unassign(parts);
      else c->unassign();
      for (auto* p : parts) held_.erase(p->partition());
      if (!cooperative) held_.clear();
    }
  }

 private:
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  std::set<int> held_;
  std::size_t delivered_ = 0;
};

// A cluster of `members` daemons (cluster.h): one state topic of kStatePartitions partitions, one
// alerts and one decisions topic, one hook record; each member its own configuration, state,
// metrics port, log and consumer group.
constexpr int kStatePartitions = 8;

std::vector<LiveRun> make_cluster(const Shared& s, const std::string& name, int members,
                                  const std::string& kafka_extra = "") {
  std::string error;
  for (const auto& [topic, partitions] : std::vector<std::pair<std::string, int>>{
           {"alerts-" + name, 1}, {"decisions-" + name, 1}, {"state-" + name, kStatePartitions}})
    REQUIRE_MESSAGE(s.broker->create_topic(topic, partitions, error), error);
  std::vector<LiveRun> runs;
  for (int i = 0; i < members; ++i) runs.push_back(make_run(s, name, kafka_extra, "m" + std::to_string(i + 1)));
  return runs;
}

// Waits until the members own every partition of the state topic between them, each at least one.
void wait_shared_out(const std::vector<LiveRun>& members, std::chrono::seconds timeout,
                     int partitions = kStatePartitions) {
  const auto deadline = SteadyClock::now() + timeout;
  std::string owned;
  while (SteadyClock::now() < deadline) {
    double total = 0;
    bool each = true;
    owned.clear();
    for (const auto& r : members) {
      const double n = metric(scrape(r.port), "portalwatch_cluster_owned_partitions");
      owned += (owned.empty() ? "" : " + ") + std::to_string(static_cast<int>(n));
      total += std::max(0.0, n);
      each = each && n >= 1;
    }
    if (each && total == partitions) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  FAIL("the members own " << owned << " of " << partitions << " partitions; log " << members[0].log);
}

}  // namespace

TEST_CASE("integration: live equals replay: a backlog over 32 partitions read by one daemon") {
  const Shared& s = shared();
  const auto t0 = SteadyClock::now();
  // Small buffers (4 MiB over 32 partitions: a share of 128 KiB, about 180 of the 2,000 to 3,500
  // events each partition holds): partitions are paused and resumed over and over on the way, and
  // nothing is lost, read twice or read out of order.
  const LiveRun r = make_run(s, "backlog", "  buffer_mb: 4\n");
  const pid_t pid = spawn_daemon(r.config, r.log);
  const std::string m = wait_caught_up(s, r, std::chrono::seconds(120));
  stop_daemon(pid, r);
  const double pauses = metric(m, "portalwatch_kafka_partition_pauses_total");
  CHECK_MESSAGE(pauses >= kPartitions, "partitions paused " << pauses << " times");
  CHECK(metric(m, "portalwatch_kafka_buffered_bytes") == 0);  // all of it processed
  compare_with_replay(s, r, {RunMetrics::of(m)}, seconds_since(t0),
                      "(one daemon, the whole backlog, partitions paused " +
                          std::to_string(static_cast<long>(pauses)) + " times)");
}

TEST_CASE("integration: live equals replay: the daemon killed with SIGKILL twice mid-stream and restarted") {
  const Shared& s = shared();
  const auto t0 = SteadyClock::now();
  const LiveRun r = make_run(s, "killed");
  // Unpaced, the daemon reads the whole backlog in about a second, between two updates of its
  // metrics (every 250 ms): the broker's answers are delayed until the last kill so that each kill
  // lands near its mark (a fetch brings at most kBatch events of each partition).
  REQUIRE(s.broker->set_broker_rtt(1, kKilledRttMs));
  struct RttReset {
    const Shared& s;
    ~RttReset() { s.broker->set_broker_rtt(1, 0); }
  } rtt_reset{s};
  std::vector<RunMetrics> runs;
  std::string notes;
  pid_t pid = spawn_daemon(r.config, r.log);
  // The first run is killed once it has read 30% of the stream, the second at 60%. After a restart
  // the daemon reads every partition again from its first event (the warm-up covers the whole
  // stream), so a run's received count is how far it has come; the second must also have read
  // events that are new to it (beyond the stored position, not counted as warm-up).
  for (int k = 0; k < 2; ++k) {
    const double mark = 0.3 * (k + 1) * static_cast<double>(s.events);
    const double fresh_needed = 0.05 * static_cast<double>(s.events);
    const auto deadline = SteadyClock::now() + std::chrono::seconds(60);
    RunMetrics seen;
    while (SteadyClock::now() < deadline) {
      seen = RunMetrics::of(scrape(r.port));
      if (seen.received >= mark && seen.fresh() >= fresh_needed) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    REQUIRE_MESSAGE((seen.received >= mark && seen.fresh() >= fresh_needed),
                    "run " << k + 1 << " read only " << seen.received << " events; log " << r.log);
    REQUIRE(kill(pid, SIGKILL) == 0);
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status));
    runs.push_back(seen);
    const std::int64_t committed = committed_total(s.broker->bootstrap(), r.group, kTopic, kPartitions);
    notes += std::string(k ? "; " : "(") + "kill " + std::to_string(k + 1) + " at " +
             std::to_string(static_cast<long>(seen.received)) + " events read (" +
             std::to_string(static_cast<long>(seen.fresh())) + " new), " + std::to_string(committed) + " committed";
    // A kill after the daemon had finished would test nothing.
    CHECK_MESSAGE(committed < static_cast<std::int64_t>(s.events), "kill " << k + 1 << " came after the end");
    pid = spawn_daemon(r.config, r.log);
  }
  s.broker->set_broker_rtt(1, 0);
  const std::string m = wait_caught_up(s, r, std::chrono::seconds(120));
  stop_daemon(pid, r);
  runs.push_back(RunMetrics::of(m));
  compare_with_replay(s, r, runs, seconds_since(t0),
                      notes + "; the killed runs' counters as last scraped before the kill)");
}

// Partitions assigned after the daemon has moved on bring events older than its stream time: the
// daemon starts detection again and reads the partitions it held again from their warm-up points,
// merged in event-time order with the new ones (KafkaSource's restart_if_late()).
TEST_CASE("integration: live equals replay: partitions assigned to the daemon in two steps") {
  const Shared& s = shared();
  const auto t0 = SteadyClock::now();
  const LiveRun r = make_run(s, "two-steps");
  // A plain consumer of the same group takes every partition first, then shares them with the
  // daemon (cooperative-sticky: about half each), holds its share without reading or committing,
  // and leaves: the daemon gets the rest in a second assignment.
  HoldingConsumer holder(s.broker->bootstrap(), r.group);
  auto deadline = SteadyClock::now() + std::chrono::seconds(30);
  while (SteadyClock::now() < deadline && holder.held().size() != kPartitions)
    holder.poll_for(std::chrono::milliseconds(100));
  REQUIRE_MESSAGE(holder.held().size() == kPartitions, "the plain consumer holds " << holder.held().size());
  const pid_t pid = spawn_daemon(r.config, r.log);
  double daemon_held = 0;
  deadline = SteadyClock::now() + std::chrono::seconds(30);
  while (SteadyClock::now() < deadline) {
    holder.poll_for(std::chrono::milliseconds(100));
    daemon_held = metric(scrape(r.port), "portalwatch_kafka_assigned_partitions");
    if (daemon_held >= 1 && daemon_held + static_cast<double>(holder.held().size()) == kPartitions) break;
  }
  REQUIRE_MESSAGE(daemon_held >= 1, "the daemon got no partition; log " << r.log);
  const std::size_t first_share = static_cast<std::size_t>(daemon_held), held_back = holder.held().size();
  // Its share is held while the daemon reads its own partitions, slowed down (as in the killed
  // variant) so that the second assignment comes when it has read part of them (it goes on
  // reading while the group rebalances).
  REQUIRE(s.broker->set_broker_rtt(1, kTwoStepsRttMs));
  struct RttReset {
    const Shared& s;
    ~RttReset() { s.broker->set_broker_rtt(1, 0); }
  } rtt_reset{s};
  const double first_mark = 0.1 * static_cast<double>(s.events) * static_cast<double>(first_share) / kPartitions;
  deadline = SteadyClock::now() + std::chrono::seconds(60);
  std::string before_m;
  while (SteadyClock::now() < deadline) {
    holder.poll_for(std::chrono::milliseconds(20));
    before_m = scrape(r.port);
    if (RunMetrics::of(before_m).received >= first_mark) break;
  }
  const RunMetrics before_second = RunMetrics::of(before_m);
  REQUIRE_MESSAGE(before_second.received >= first_mark, "the daemon read only " << before_second.received);
  const auto committed = committed_offsets(s.broker->bootstrap(), r.group, kTopic, kPartitions);
  for (const int p : holder.held()) CHECK_MESSAGE(committed[static_cast<std::size_t>(p)] < 0, "partition " << p);
  const std::size_t delivered_to_holder = holder.delivered();
  holder.close();
  s.broker->set_broker_rtt(1, 0);
  const std::string m = wait_caught_up(s, r, std::chrono::seconds(120));
  stop_daemon(pid, r);
  // How far the daemon's stream time had come on its share alone: it says so when it starts
  // detection again with every partition.
  const std::vector<std::string> log = lines_of(r.log);
  const std::string said = "detection starts again at stream time ";
  std::optional<TimeMs> partial_until;
  for (const auto& line : log)
    if (const auto at = line.find(said); at != std::string::npos)
      partial_until = parse_rfc3339(line.substr(at + said.size(), line.find(';', at) - at - said.size()));
  REQUIRE_MESSAGE(partial_until, "the daemon did not start detection again; log " << r.log);
  compare_with_replay(s, r, {RunMetrics::of(m)}, seconds_since(t0),
                      "(first assignment " + std::to_string(first_share) + " partitions, " +
                          std::to_string(held_back) + " held back, " +
                          std::to_string(static_cast<long>(before_second.received)) +
                          " events processed when it was asked for; " + std::to_string(delivered_to_holder) +
                          " messages reached the plain consumer)",
                      *partial_until);
}

}  // namespace portalwatch::test

namespace portalwatch::test {

// Several members (cluster.h): every member reads the whole backlog and detects everything; each
// finding and decision is published by the member that owns its key's partition of the state
// topic. One member is killed with SIGKILL mid-stream: the other takes its partitions over once
// the group notices (session.timeout.ms, 3 s here) and publishes what was held for them; the
// killed member restarts under its name and gets partitions back. The alerts and decisions
// topics, together, must be replay's, each finding and decision once (by id), each "on"
// decision's hook run once by one member.
TEST_CASE("integration: live equals replay: a cluster of two members, one killed with SIGKILL mid-stream and restarted") {
  const Shared& s = shared();
  const auto t0 = SteadyClock::now();
  std::vector<LiveRun> members = make_cluster(s, "cluster2", 2);
  REQUIRE(s.broker->set_broker_rtt(1, kKilledRttMs));  // slow enough for the kill to land mid-stream
  struct RttReset {
    const Shared& s;
    ~RttReset() { s.broker->set_broker_rtt(1, 0); }
  } rtt_reset{s};
  std::vector<pid_t> pids;
  for (const auto& r : members) pids.push_back(spawn_daemon(r.config, r.log));
  wait_shared_out(members, std::chrono::seconds(30));
  // The second member is killed once it has read 40% of the stream.
  const double mark = 0.4 * static_cast<double>(s.events);
  RunMetrics seen;
  const auto deadline = SteadyClock::now() + std::chrono::seconds(60);
  while (SteadyClock::now() < deadline) {
    seen = RunMetrics::of(scrape(members[1].port));
    if (seen.received >= mark) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  REQUIRE_MESSAGE(seen.received >= mark, "member 2 read only " << seen.received << "; log " << members[1].log);
  REQUIRE(kill(pids[1], SIGKILL) == 0);
  int status = 0;
  waitpid(pids[1], &status, 0);
  CHECK(WIFSIGNALED(status));
  const std::int64_t committed = committed_total(s.broker->bootstrap(), members[1].group, kTopic, kPartitions);
  CHECK_MESSAGE(committed < static_cast<std::int64_t>(s.events), "the kill came after the end");
  // The survivor takes every partition over once the group notices.
  const auto takeover_from = SteadyClock::now();
  double survivor_owned = 0;
  while (SteadyClock::now() - takeover_from < std::chrono::seconds(30)) {
    survivor_owned = metric(scrape(members[0].port), "portalwatch_cluster_owned_partitions");
    if (survivor_owned == kStatePartitions) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const double takeover_seconds = seconds_since(takeover_from);
  CHECK_MESSAGE(survivor_owned == kStatePartitions, "the survivor owns " << survivor_owned << "; log " << members[0].log);
  pids[1] = spawn_daemon(members[1].config, members[1].log);
  s.broker->set_broker_rtt(1, 0);
  wait_shared_out(members, std::chrono::seconds(30));
  std::vector<RunMetrics> runs{seen};
  double taken_over = 0, published_before = 0, held = 0;
  for (std::size_t i = 0; i < members.size(); ++i) {
    const std::string m = wait_caught_up(s, members[i], std::chrono::seconds(120));
    runs.push_back(RunMetrics::of(m));
    taken_over += metric(m, "portalwatch_cluster_taken_over_total{kind=\"finding\"}") +
                  metric(m, "portalwatch_cluster_taken_over_total{kind=\"decision\"}");
    published_before += metric(m, "portalwatch_cluster_published_before_total{kind=\"finding\"}") +
                        metric(m, "portalwatch_cluster_published_before_total{kind=\"decision\"}");
    held += metric(m, "portalwatch_cluster_held{kind=\"finding\"}");
  }
  for (std::size_t i = 0; i < members.size(); ++i) stop_daemon(pids[i], members[i]);
  LiveRun all = members[0];
  all.name = "cluster2";
  all.log = members[0].log + " and " + members[1].log;
  compare_with_replay(s, all, runs, seconds_since(t0),
                      "(two members; member 2 killed at " + std::to_string(static_cast<long>(seen.received)) +
                          " events read, " + std::to_string(committed) +
                          " committed; the survivor owned every partition " + std::to_string(takeover_seconds) +
                          " s after the kill; published at takeovers " + std::to_string(static_cast<long>(taken_over)) +
                          ", not published again " + std::to_string(static_cast<long>(published_before)) +
                          ", findings held at the end " + std::to_string(static_cast<long>(held)) + ")");
}

// Four members read the backlog together, none killed: the work is shared out, nothing is lost or
// published twice.
TEST_CASE("integration: live equals replay: a cluster of four members") {
  const Shared& s = shared();
  const auto t0 = SteadyClock::now();
  std::vector<LiveRun> members = make_cluster(s, "cluster4", 4);
  std::vector<pid_t> pids;
  for (const auto& r : members) pids.push_back(spawn_daemon(r.config, r.log));
  wait_shared_out(members, std::chrono::seconds(30));
  std::vector<RunMetrics> runs;
  std::string owned;
  for (const auto& r : members) {
    const std::string m = wait_caught_up(s, r, std::chrono::seconds(180));
    runs.push_back(RunMetrics::of(m));
    owned += (owned.empty() ? "" : "/") +
             std::to_string(static_cast<int>(metric(m, "portalwatch_cluster_owned_partitions")));
  }
  for (std::size_t i = 0; i < members.size(); ++i) stop_daemon(pids[i], members[i]);
  LiveRun all = members[0];
  all.name = "cluster4";
  all.log = s.dir + "/cluster4-m*.log";
  compare_with_replay(s, all, runs, seconds_since(t0), "(four members owning " + owned + " partitions)");
}

}  // namespace portalwatch::test

namespace portalwatch::test {

namespace {

struct CtlRun {
  int code = -1;
  std::string out;
};

// The real portalwatchctl against a member's control socket (args: fixed words, no user input).
CtlRun ctl(const Shared& s, const std::string& socket, const std::string& args) {
  const std::string out = s.dir + "/ctl.out";
  const std::string cmd = std::string("NO_COLOR=1 '") + PORTALWATCHCTL_PATH + "' --socket '" + socket + "' " + args +
                          " > '" + out + "' 2>&1";
  const int status = std::system(cmd.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(out)};
}

}  // namespace

// The operator's changes in a cluster (cluster.h): stored on the state topic, read back and
// applied by every member in the topic's order. A lockdown made on one member is listed on the
// other and released there; each decision is published once and its hook run once, by the member
// that owns its scope; a member that starts with no state of its own reads the changes so far from
// the topic (and runs no hook again).
TEST_CASE("integration: a cluster shares the operator's changes: made on one member, listed and undone on another") {
  const Shared& s = shared();
  constexpr int kOpsStatePartitions = 4;
  std::string error;
  for (const auto& [topic, partitions] : std::vector<std::pair<std::string, int>>{
           {"ops-events", 2}, {"alerts-ops", 1}, {"decisions-ops", 1}, {"state-ops", kOpsStatePartitions}})
    REQUIRE_MESSAGE(s.broker->create_topic(topic, partitions, error), error);
  const std::string hooks = s.dir + "/ops-hook-runs.jsonl";
  std::vector<LiveRun> members;
  std::vector<std::string> sockets;
  for (const std::string m : {"m1", "m2"}) {
    LiveRun r;
    r.name = "ops-" + m;
    r.group = "ops." + m;
    r.alerts = "alerts-ops";
    r.decisions = "decisions-ops";
    r.config = s.dir + "/ops-" + m + ".yaml";
    r.log = s.dir + "/ops-" + m + ".log";
    r.hooks = hooks;
    r.port = free_port();
    sockets.push_back(s.dir + "/ops-" + m + ".sock");
    std::ofstream(r.config) << default_config_with(
        {{"kafka", "kafka:\n  bootstrap_servers: \"" + s.broker->bootstrap() + "\"\n  group_id: ops\n"
                   "  group_instance_id: " + m + "\n  topics: [ops-events]\n  alerts_topic: alerts-ops\n"
                   "  decisions_topic: decisions-ops\n  dead_letter_topic: \"\"\n  properties:\n"
                   "    session.timeout.ms: \"3000\"\n    heartbeat.interval.ms: \"300\"\n"},
         {"cluster", "cluster:\n  enabled: true\n  state_topic: state-ops\n"},
         {"state", "state:\n  path: \"" + s.dir + "/ops-" + m + "-state\"\n  block_cache_mib: 16\n"},
         {"metrics", "metrics:\n  enabled: true\n  listen: \"127.0.0.1:" + std::to_string(r.port) + "\"\n"},
         {"control", "control:\n  socket: \"" + sockets.back() + "\"\n"},
         {"hooks", "hooks:\n  - name: record\n    type: exec\n    argv: [/usr/bin/tee, -a, \"" + hooks + "\"]\n"}});
    members.push_back(r);
  }
  std::vector<pid_t> pids;
  for (const auto& r : members) pids.push_back(spawn_daemon(r.config, r.log));
  wait_shared_out(members, std::chrono::seconds(30), kOpsStatePartitions);

  CtlRun r = ctl(s, sockets[0], "lockdown on --scope app:hsa --reason 'takeovers on hsa'");
  REQUIRE_MESSAGE(r.code == 0, r.out);
  CHECK(r.out.find("app:hsa: lockdown on") != std::string::npos);
  r = ctl(s, sockets[1], "--json status");  // the other member lists it
  CHECK_MESSAGE(r.out.find("\"scope\":\"app:hsa\"") != std::string::npos, r.out);
  r = ctl(s, sockets[1], "allowlist add 10.1.0.0/16 --comment offices");
  REQUIRE_MESSAGE(r.code == 0, r.out);
  r = ctl(s, sockets[0], "--json allowlist list");
  CHECK_MESSAGE(r.out.find("10.1.0.0/16") != std::string::npos, r.out);
  r = ctl(s, sockets[1], "silence password_spray --for 30m --reason 'pen test'");
  REQUIRE_MESSAGE(r.code == 0, r.out);
  r = ctl(s, sockets[1], "lockdown off --scope app:hsa --reason cleared");  // released on the other member
  REQUIRE_MESSAGE(r.code == 0, r.out);
  r = ctl(s, sockets[0], "--json status");
  CHECK_MESSAGE(r.out.find("\"scope\":\"app:hsa\"") == std::string::npos, r.out);
  CHECK_MESSAGE(r.out.find("password_spray") != std::string::npos, r.out);
  r = ctl(s, sockets[0], "lockdown off --scope app:hsa --reason again");  // nothing on any more
  CHECK(r.code != 0);
  CHECK_MESSAGE(r.out.find("no lockdown is on") != std::string::npos, r.out);

  // Each decision once on the decisions topic, each hook run once (by the member that owns app:hsa).
  auto hook_runs = [&] { return lines_of(hooks); };
  auto deadline = SteadyClock::now() + std::chrono::seconds(10);
  while (SteadyClock::now() < deadline && hook_runs().size() < 2) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // a second run would come now
  const auto runs = hook_runs();
  REQUIRE(runs.size() == 2);
  CHECK(field(runs[0], "state") == "on");
  CHECK(field(runs[1], "state") == "off");
  const auto decisions = read_topic(s.broker->bootstrap(), "decisions-ops", 1);
  REQUIRE(decisions.size() == 2);
  CHECK(field(decisions[0], "id") == field(runs[0], "id"));
  CHECK(field(decisions[1], "id") == field(runs[1], "id"));

  // The first member starts again with no state of its own: the changes so far come from the
  // topic; no hook runs again.
  stop_daemon(pids[0], members[0]);
  std::filesystem::remove_all(s.dir + "/ops-m1-state");
  pids[0] = spawn_daemon(members[0].config, members[0].log);
  wait_shared_out(members, std::chrono::seconds(30), kOpsStatePartitions);
  r = ctl(s, sockets[0], "--json allowlist list");
  CHECK_MESSAGE(r.out.find("10.1.0.0/16") != std::string::npos, r.out);
  r = ctl(s, sockets[0], "--json status");
  CHECK_MESSAGE(r.out.find("password_spray") != std::string::npos, r.out);
  CHECK_MESSAGE(r.out.find("\"scope\":\"app:hsa\"") == std::string::npos, r.out);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  CHECK(hook_runs().size() == 2);
  CHECK(read_topic(s.broker->bootstrap(), "decisions-ops", 1).size() == 2);
  for (std::size_t i = 0; i < members.size(); ++i) stop_daemon(pids[i], members[i]);
  MESSAGE("cluster operator changes: lockdown on via m1, listed and released via m2, allowlist and silence via m2 "
          "seen on m1 and on m1 restarted without state; 2 decisions published, 2 hook runs");
}

}  // namespace portalwatch::test
