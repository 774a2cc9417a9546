// Integration tests against the embedded broker (librdkafka's mock cluster over real TCP).
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

#include <prometheus/registry.h>

#include <cmath>
#include <fcntl.h>
#include <poll.h>
#include <thread>

#include <librdkafka/rdkafka.h>

#include "daemon/group_lag.h"
#include "daemon/partition_feeds.h"
#include "tests/integration/kafka_harness.h"

namespace portalwatch::test {

namespace {

std::unique_ptr<EmbeddedBroker> start_broker(const std::vector<std::pair<std::string, int>>& topics) {
  std::string error;
  auto b = EmbeddedBroker::start(1, error);
  REQUIRE_MESSAGE(b, error);
  for (const auto& [name, parts] : topics) REQUIRE_MESSAGE(b->create_topic(name, parts, error), error);
  return b;
}

// 12 failed passwords against one account among benign logins: one brute_force finding.
std::vector<std::string> attack_stream(TimeMs t0, int benign) {
  std::vector<std::string> out;
  for (int i = 0; i < benign; ++i)
    out.push_back(login_event(t0 + i * 10, "user" + std::to_string(i), true, "198.51.100." + std::to_string(i % 250 + 1)));
  for (int i = 0; i < 12; ++i) out.push_back(login_event(t0 + benign * 10 + i * 1000, "victim", false, "203.0.113.9"));
  return out;
}

}  // namespace

TEST_CASE("integration: events from the project's producer are consumed, brute_force reaches the alerts topic, offsets are committed") {
  auto broker = start_broker({{"events", 3}, {"alerts", 1}});
  const auto events = attack_stream(SystemClock().now() - 60 * kSecondMs, 88);
  produce_all(broker->bootstrap(), "events", events);

  DaemonThread daemon(test_config(broker->bootstrap(), "events", "pw-it-1"));
  REQUIRE(daemon.wait_processed(events.size(), std::chrono::seconds(30)));
  const auto alerts = consume_some(broker->bootstrap(), "alerts", 1, std::chrono::seconds(20));
  CHECK(daemon.stop() == 0);

  REQUIRE(alerts.size() == 1);
  CHECK(alerts[0].find("\"detector\":\"brute_force\"") != std::string::npos);
  CHECK(alerts[0].find("\"entity\":{\"type\":\"user\",\"value\":\"victim\"}") != std::string::npos);
  CHECK(committed_total(broker->bootstrap(), "pw-it-1", "events", 3) == static_cast<std::int64_t>(events.size()));
}

TEST_CASE("integration: the daemon's wall clock is the one it is given: events a day ahead of it are processed at its now") {
  struct FixedClock final : Clock {
    TimeMs t = 0;
    TimeMs now() const override { return t; }
  } clock;
  const TimeMs now = SystemClock().now();
  clock.t = (now - kDayMs) / kSecondMs * kSecondMs;
  auto broker = start_broker({{"events", 1}, {"alerts", 1}});
  const auto events = attack_stream(now, 20);
  produce_all(broker->bootstrap(), "events", events);

  DaemonThread daemon(test_config(broker->bootstrap(), "events", "pw-it-clock"), &clock);
  REQUIRE(daemon.wait_processed(events.size(), std::chrono::seconds(30)));
  const auto alerts = consume_some(broker->bootstrap(), "alerts", 1, std::chrono::seconds(20));
  CHECK(daemon.stop() == 0);

  REQUIRE(alerts.size() == 1);
  CHECK(alerts[0].find("\"detector\":\"brute_force\"") != std::string::npos);
  // Stamped more than time.max_future_seconds after the daemon's now: processed at its now.
  CHECK(alerts[0].find("\"at\":\"" + format_rfc3339(clock.t) + "\"") != std::string::npos);
}

TEST_CASE("integration: events produced with kcat are consumed and detected") {
  auto broker = start_broker({{"events", 1}, {"alerts", 1}});
  const auto events = attack_stream(SystemClock().now() - 60 * kSecondMs, 20);
  const std::string path = "/tmp/portalwatch-kcat-" + std::to_string(getpid()) + ".jsonl";
  {
    std::ofstream f(path);
    for (const auto& e : events) f << e << "\n";
  }
  const std::string cmd = "kcat -P -b " + broker->bootstrap() + " -t events -l " + path;
  const int rc = std::system(cmd.c_str());
  std::remove(path.c_str());
  REQUIRE_MESSAGE(WIFEXITED(rc), "kcat did not run");
  REQUIRE_MESSAGE(WEXITSTATUS(rc) == 0, "kcat failed (is the kcat package installed?)");

  DaemonThread daemon(test_config(broker->bootstrap(), "events", "pw-it-kcat"));
  REQUIRE(daemon.wait_processed(events.size(), std::chrono::seconds(30)));
  const auto alerts = consume_some(broker->bootstrap(), "alerts", 1, std::chrono::seconds(20));
  CHECK(daemon.stop() == 0);
  REQUIRE(alerts.size() == 1);
  CHECK(alerts[0].find("\"detector\":\"brute_force\"") != std::string::npos);
}

TEST_CASE("integration: a consumer restarted mid-stream resumes at its committed offsets without skipping") {
  auto broker = start_broker({{"events", 2}, {"alerts", 1}});
  const TimeMs t0 = SystemClock().now() - 120 * kSecondMs;
  std::vector<std::string> first, second;
  for (int i = 0; i < 150; ++i) first.push_back(login_event(t0 + i * 100, "a" + std::to_string(i), true, "192.0.2.1"));
  for (int i = 0; i < 150; ++i) second.push_back(login_event(t0 + 20000 + i * 100, "b" + std::to_string(i), true, "192.0.2.2"));

  produce_all(broker->bootstrap(), "events", first);
  std::vector<std::pair<std::int32_t, std::int64_t>> seen;
  {
    DaemonThread daemon(test_config(broker->bootstrap(), "events", "pw-it-restart"));
    REQUIRE(daemon.wait_processed(first.size(), std::chrono::seconds(30)));
    // More arrives while the first consumer is still running; it may or may not get some of it.
    produce_all(broker->bootstrap(), "events", second);
    CHECK(daemon.stop() == 0);
    seen = daemon.processed();
  }
  const std::size_t before_restart = seen.size();
  CHECK(before_restart >= first.size());
  {
    std::map<std::int32_t, std::int64_t> first_done;
    for (const auto& [p, o] : seen) first_done[p] = std::max(first_done[p], o + 1);
    DaemonThread daemon(test_config(broker->bootstrap(), "events", "pw-it-restart"));
    const auto new_to_it = [&] {
      std::size_t n = 0;
      for (const auto& [p, o] : daemon.processed()) n += o >= first_done[p] ? 1 : 0;
      return n;
    };
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (new_to_it() < first.size() + second.size() - before_restart && std::chrono::steady_clock::now() < deadline)
      daemon.wait_processed(daemon.processed().size() + 1, std::chrono::seconds(1));
    REQUIRE(new_to_it() == first.size() + second.size() - before_restart);
    CHECK(daemon.stop() == 0);
    // The successor takes the partitions over as any member would: it reads again from the warm-up
    // offset committed with the group's offsets, rebuilding its windows (those events publish
    // nothing); what is new to it starts where the first one stopped.
    for (const auto& [p, o] : daemon.processed())
      if (o >= first_done[p]) seen.emplace_back(p, o);
  }
  // Every offset of every partition was processed, and (after a clean stop) exactly once.
  std::map<std::int32_t, std::vector<std::int64_t>> by_partition;
  for (const auto& [p, o] : seen) by_partition[p].push_back(o);
  std::size_t total = 0;
  for (auto& [p, offs] : by_partition) {
    std::sort(offs.begin(), offs.end());
    for (std::size_t i = 0; i < offs.size(); ++i) CHECK(offs[i] == static_cast<std::int64_t>(i));
    total += offs.size();
  }
  CHECK(total == first.size() + second.size());
  CHECK(committed_total(broker->bootstrap(), "pw-it-restart", "events", 2) == static_cast<std::int64_t>(total));
}

}  // namespace portalwatch::test

namespace portalwatch::test {

TEST_CASE("integration: cooperative rebalancing, and rejected messages are counted and copied to the dead-letter topic") {
  auto broker = start_broker({{"events", 2}, {"alerts", 1}, {"dead", 1}});
  auto events = attack_stream(SystemClock().now() - 60 * kSecondMs, 10);
  events.push_back("this is not json");
  events.push_back("{\"event\":{\"action\":\"login\"}}");
  produce_all(broker->bootstrap(), "events", events);

  Config config = test_config(broker->bootstrap(), "events", "pw-it-dlq");
  config.kafka.dead_letter_topic = "dead";
  config.kafka.properties["partition.assignment.strategy"] = "cooperative-sticky";
  DaemonThread daemon(std::move(config));
  REQUIRE(daemon.wait_processed(events.size(), std::chrono::seconds(30)));
  const auto dead = consume_some(broker->bootstrap(), "dead", 2, std::chrono::seconds(20));
  const auto alerts = consume_some(broker->bootstrap(), "alerts", 1, std::chrono::seconds(20));
  CHECK(daemon.stop() == 0);
  REQUIRE(dead.size() == 2);
  CHECK(std::find(dead.begin(), dead.end(), "this is not json") != dead.end());
  CHECK(alerts.size() == 1);
  // Rejected messages are processed too: their offsets are committed like any other.
  CHECK(committed_total(broker->bootstrap(), "pw-it-dlq", "events", 2) == static_cast<std::int64_t>(events.size()));
}

TEST_CASE("integration: the group's lag is measured from its committed offsets over every partition, by a consumer given none") {
  auto broker = start_broker({{"lagged", 3}});
  const auto events = attack_stream(SystemClock().now() - 60 * kSecondMs, 40);
  produce_all(broker->bootstrap(), "lagged", events);
  const auto marks = partition_watermarks(broker->bootstrap(), "lagged", 3);
  REQUIRE(marks[0].second > 1);
  std::int64_t total = 0;
  for (const auto& [low, high] : marks) total += high - low;
  REQUIRE(total == static_cast<std::int64_t>(events.size()));

  // A consumer of the group that never subscribes: nothing is assigned to it.
  std::string err;
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  conf->set("bootstrap.servers", broker->bootstrap(), err);
  conf->set("group.id", "pw-it-group-lag", err);
  std::unique_ptr<RdKafka::KafkaConsumer> c(RdKafka::KafkaConsumer::create(conf.get(), err));
  REQUIRE(c);
  prometheus::Registry registry;
  auto& gauge = prometheus::BuildGauge().Name("lag").Register(registry).Add({});
  auto& unmeasured = prometheus::BuildGauge().Name("unmeasured").Register(registry).Add({});
  const auto probe = [&](std::vector<std::string> topics, bool from_latest, std::string blacklist = "") {
    GroupLagProbe::Options o;
    o.topics = std::move(topics);
    o.from_latest = from_latest;
    o.blacklist = std::move(blacklist);
    o.interval = std::chrono::milliseconds(100);
    return std::make_unique<GroupLagProbe>(*c, std::move(o), gauge, unmeasured);
  };
  auto earliest = probe({"lagged"}, false), latest = probe({"lagged"}, true),
       pattern = probe({"^lag+ed$", "no-such-topic"}, false), excluded = probe({"^lag.*"}, false, "^lagg");
  const auto lag = [](GroupLagProbe& p) {
    std::string error;
    const auto m = p.measure(error);
    INFO(error);
    REQUIRE(m);
    CHECK(m->unmeasured == 0);
    return m->lag;
  };
  CHECK(lag(*earliest) == total);  // nothing committed: from the oldest message
  CHECK(lag(*latest) == 0);        // nothing committed: from the end
  CHECK(lag(*pattern) == total);
  CHECK(lag(*excluded) == 0);      // topic.blacklist

  // The group commits half of partition 0 and all of partition 1.
  std::vector<RdKafka::TopicPartition*> offsets = {RdKafka::TopicPartition::create("lagged", 0, marks[0].second / 2),
                                                   RdKafka::TopicPartition::create("lagged", 1, marks[1].second)};
  REQUIRE(c->commitSync(offsets) == RdKafka::ERR_NO_ERROR);
  RdKafka::TopicPartition::destroy(offsets);
  const std::int64_t waiting = (marks[0].second - marks[0].second / 2) + (marks[2].second - marks[2].first);
  CHECK(lag(*earliest) == waiting);
  CHECK(lag(*latest) == marks[0].second - marks[0].second / 2);
  CHECK(lag(*pattern) == waiting);

  // On its thread: the gauges follow; NaN once the cluster is gone.
  earliest->start();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline && gauge.Value() != static_cast<double>(waiting))
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK(gauge.Value() == static_cast<double>(waiting));
  CHECK(unmeasured.Value() == 0);
  broker.reset();
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline && !std::isnan(gauge.Value()))
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK(std::isnan(gauge.Value()));
  earliest->stop();
}

}  // namespace portalwatch::test

namespace portalwatch::test {

namespace {

// A sign-in of an account with its device and network, or any other event of a session.
std::string user_event(TimeMs t, const std::string& user, const std::string& action, const std::string& ip, int asn,
                       const std::string& org, const std::string& device, const std::string& session,
                       const std::string& app = "") {
  std::string j = "{\"@timestamp\":\"" + format_rfc3339(t) + "\",\"event\":{\"action\":\"" + action +
                  "\",\"outcome\":\"success\"},\"user\":{\"name\":\"" + user + "\"},\"source\":{\"ip\":\"" + ip +
                  "\",\"as\":{\"number\":" + std::to_string(asn) + ",\"organization\":{\"name\":\"" + org +
                  "\"}}},\"device\":{\"id\":\"" + device + "\"},\"session\":{\"id\":\"" + session + "\"}";
  if (!app.empty()) j += ",\"portal\":{\"app\":\"" + app + "\",\"record\":{\"id\":\"E0000042\"}}";
  return j + "}";
}

// The same for jdoe42.
std::string account_event(TimeMs t, const std::string& action, const std::string& ip, int asn, const std::string& org,
                          const std::string& device, const std::string& session, const std::string& app = "") {
  return user_event(t, "jdoe42", action, ip, asn, org, device, session, app);
}

}  // namespace

namespace {

// Hears what PartitionFeeds does not give as events: in this stream, nothing.
struct FeedsHandler : PartitionFeeds::Handler {
  int skipped = 0, rejected_count = 0, errors = 0;
  bool skip(const PartitionFeeds::Message&) override { return false; }
  void rejected(const PartitionFeeds::Message&, const Engine::Result&) override { ++rejected_count; }
  void error(const rd_kafka_message_s&) override { ++errors; }
};

// Changes the consumer's assignment by one partition of "feeds", from `offset` when added.
void reassign(rd_kafka_t* rk, std::int32_t partition, bool add, std::int64_t offset = RD_KAFKA_OFFSET_BEGINNING) {
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(list, "feeds", partition)->offset = offset;
  rd_kafka_error_t* e = add ? rd_kafka_incremental_assign(rk, list) : rd_kafka_incremental_unassign(rk, list);
  rd_kafka_topic_partition_list_destroy(list);
  REQUIRE_MESSAGE(!e, (e ? rd_kafka_error_string(e) : ""));
}

}  // namespace

// PartitionFeeds on a real consumer, with the smallest share (64 KiB for each of 4 partitions that
// hold about 200 KiB each): partitions are paused and resumed on the way; one is revoked while
// paused and assigned again from where it was (librdkafka keeps an application's pause across
// assignments: PartitionFeeds must resume it). Every message comes once, in its partition's
// order, and, each partition being in event-time order, all of them in event-time order.
TEST_CASE("integration: partitions paused over their share, one revoked while paused and assigned again: every message once, in event-time order") {
  auto broker = start_broker({{"feeds", 4}});
  constexpr int kPartitions = 4, kPerPartition = 700;
  const TimeMs t0 = SystemClock().now() - 3600 * kSecondMs;
  {
    std::string err;
    std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
    conf->set("bootstrap.servers", broker->bootstrap(), err);
    std::unique_ptr<RdKafka::Producer> p(RdKafka::Producer::create(conf.get(), err));
    REQUIRE(p);
    for (int i = 0; i < kPartitions * kPerPartition; ++i) {
      const std::string m = login_event(t0 + i * 10, "user" + std::to_string(i % 997), true,
                                        "198.51.100." + std::to_string(i % 250 + 1));
      while (p->produce("feeds", i % kPartitions, RdKafka::Producer::RK_MSG_COPY, const_cast<char*>(m.data()),
                        m.size(), nullptr, 0, 0, nullptr, nullptr) == RdKafka::ERR__QUEUE_FULL)
        p->poll(10);
    }
    REQUIRE(p->flush(10000) == RdKafka::ERR_NO_ERROR);
  }
  ConfigResult cfg = load_config(std::nullopt);
  REQUIRE(cfg.config);
  cfg.config->engine.time.reference = TimeOptions::Reference::kStream;
  Engine engine(cfg.config->engine, std::move(cfg.config->detectors), nullptr);

  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  for (const auto& [k, v] : std::map<std::string, std::string>{{"bootstrap.servers", broker->bootstrap()},
                                                               {"group.id", "feeds-test"},
                                                               {"enable.auto.commit", "false"},
                                                               {"enable.partition.eof", "true"},
                                                               {"fetch.wait.max.ms", "10"}})
    REQUIRE(rd_kafka_conf_set(conf, k.c_str(), v.c_str(), errstr, sizeof errstr) == RD_KAFKA_CONF_OK);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
  REQUIRE(rk);
  int wake[2];
  REQUIRE(::pipe2(wake, O_NONBLOCK | O_CLOEXEC) == 0);
  using Clock = std::chrono::steady_clock;
  std::map<int, std::int64_t> next_offset;  // per partition, the offset expected next
  std::size_t received = 0, out_of_order = 0, out_of_time = 0, paused_at_revoke = 0;
  std::uint64_t pauses_before = 0;
  {
    FeedsHandler handler;
    PartitionFeeds feeds(rk, engine, handler, std::chrono::milliseconds(2000), wake[1], 1);
    std::vector<std::pair<std::string, std::int32_t>> all;
    for (int p = 0; p < kPartitions; ++p) {
      reassign(rk, p, true);
      all.emplace_back("feeds", p);
      next_offset[p] = 0;
    }
    feeds.assigned(all, Clock::now());
    TimeMs last_time = 0;
    bool revoked = false;
    const auto deadline = Clock::now() + std::chrono::seconds(60);
    while (received < static_cast<std::size_t>(kPartitions * kPerPartition) && Clock::now() < deadline) {
      while (rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 0)) {
        if (m->rkt && (!m->err || m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)) feeds.route(m, Clock::now());
        else rd_kafka_message_destroy(m);
      }
      feeds.refresh(Clock::now());
      PartitionFeeds::Ready ready;
      Clock::time_point until;
      while (feeds.next(ready, Clock::now(), until)) {
        const int p = ready.message.partition;
        out_of_order += ready.message.offset != next_offset[p];
        next_offset[p] = ready.message.offset + 1;
        out_of_time += ready.event->timestamp < last_time;
        last_time = ready.event->timestamp;
        ++received;
        feeds.done(Clock::now());
        // The first partition seen paused (each holds far more than its share) goes while paused
        // and comes back, from where it was read to. When that happens depends on the pace of the
        // fetches against the merge's (slower under the sanitizers): it is waited for.
        int paused_partition = -1;
        for (int p = 0; p < kPartitions && !revoked; ++p)
          if (feeds.paused("feeds", p)) paused_partition = p;
        if (paused_partition >= 0) {
          pauses_before = feeds.pauses();
          const std::size_t paused = feeds.paused_count();
          feeds.revoked({{"feeds", paused_partition}});
          paused_at_revoke = paused - feeds.paused_count();
          reassign(rk, paused_partition, false);
          reassign(rk, paused_partition, true, next_offset[paused_partition]);
          feeds.assigned({{"feeds", paused_partition}}, Clock::now());
          revoked = true;
          break;
        }
      }
      pollfd pfd{wake[0], POLLIN, 0};
      ::poll(&pfd, 1, 50);
      char buf[256];
      while (::read(wake[0], buf, sizeof buf) > 0) {
      }
    }
    CHECK(handler.rejected_count == 0);
    CHECK(handler.errors == 0);
    REQUIRE_MESSAGE(revoked, "no partition was ever paused");
    CHECK(pauses_before >= 1);
    CHECK(paused_at_revoke == 1);
    CHECK(feeds.held_bytes() == 0);
    CHECK(feeds.paused_count() == 0);
    MESSAGE("PartitionFeeds: " << received << " events, " << feeds.pauses() << " pauses, waits expired "
                               << feeds.waits_expired());
  }
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  ::close(wake[0]);
  ::close(wake[1]);
  CHECK(received == static_cast<std::size_t>(kPartitions * kPerPartition));
  for (int p = 0; p < kPartitions; ++p) CHECK(next_offset[p] == kPerPartition);
  CHECK(out_of_order == 0);
  CHECK(out_of_time == 0);
}

TEST_CASE("integration: account profiles survive a restart in the RocksDB store") {
  auto broker = start_broker({{"events", 2}, {"alerts", 1}});
  char tmpl[] = "/tmp/portalwatch-it-profiles-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  const TimeMs t0 = SystemClock().now() - 30 * kMinuteMs;
  // Twelve ordinary sign-ins from the usual laptop at home.
  std::vector<std::string> history;
  for (int i = 0; i < 12; ++i)
    history.push_back(account_event(t0 + i * 1000, "login", "73.12.9.4", 7922, "Comcast", "d-laptop", "s-" + std::to_string(i)));
  produce_all(broker->bootstrap(), "events", history);
  Config c = test_config(broker->bootstrap(), "events", "pw-it-profiles");
  c.state.path = dir + "/state";
  {
    DaemonThread daemon(std::move(c));
    REQUIRE(daemon.wait_processed(history.size(), std::chrono::seconds(30)));
    CHECK(daemon.stop() == 0);
  }
  // After the restart: a sign-in from a hosting provider and a direct-deposit change.
  const TimeMs t1 = t0 + 20 * kMinuteMs;
  const std::vector<std::string> takeover = {
      account_event(t1, "login", "159.203.9.9", 14061, "DigitalOcean, LLC", "d-thief", "s-thief"),
      account_event(t1 + 60'000, "change", "159.203.9.9", 14061, "DigitalOcean, LLC", "d-thief", "s-thief",
                    "direct_deposit")};
  produce_all(broker->bootstrap(), "events", takeover);
  Config c2 = test_config(broker->bootstrap(), "events", "pw-it-profiles");
  c2.state.path = dir + "/state";
  DaemonThread daemon(std::move(c2));
  REQUIRE(daemon.wait_processed(takeover.size(), std::chrono::seconds(30)));
  const auto alerts = consume_some(broker->bootstrap(), "alerts", 1, std::chrono::seconds(20));
  CHECK(daemon.stop() == 0);
  std::filesystem::remove_all(dir);
  REQUIRE(alerts.size() == 1);
  CHECK(alerts[0].find("\"detector\":\"account_takeover\"") != std::string::npos);
  CHECK(alerts[0].find("\"severity\":\"critical\"") != std::string::npos);
  // The profile from before the restart: twelve sign-ins, and the laptop and home network known,
  // so the thief's device and network are new to it.
  CHECK(alerts[0].find("\"prior_sign_ins\":12") != std::string::npos);
  CHECK(alerts[0].find("new_device_and_network") != std::string::npos);
}

TEST_CASE("integration: a takeover whose sign-in came before a restart and whose money change came after is found once") {
  auto broker = start_broker({{"events", 2}, {"alerts", 1}});
  char tmpl[] = "/tmp/portalwatch-it-warmup-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  const TimeMs t0 = SystemClock().now() - 30 * kMinuteMs;
  std::vector<std::string> before;
  for (int i = 0; i < 12; ++i)
    before.push_back(account_event(t0 + i * 1000, "login", "73.12.9.4", 7922, "Comcast", "d-laptop", "s-" + std::to_string(i)));
  // The thief signs in from a hosting provider; the daemon stops before anything else happens.
  const TimeMs t1 = t0 + 20 * kMinuteMs;
  before.push_back(account_event(t1, "login", "159.203.9.9", 14061, "DigitalOcean, LLC", "d-thief", "s-thief"));
  produce_all(broker->bootstrap(), "events", before);
  Config c = test_config(broker->bootstrap(), "events", "pw-it-warmup");
  c.state.path = dir + "/state";
  {
    DaemonThread daemon(std::move(c));
    REQUIRE(daemon.wait_processed(before.size(), std::chrono::seconds(30)));
    CHECK(daemon.stop() == 0);
  }
  // After the restart, the same session changes the direct deposit. The restarted daemon reads the
  // stored warm-up period again (the sign-in is in it, judged against the profile as it was then)
  // and knows the session is suspect; it publishes nothing for what it re-reads.
  produce_all(broker->bootstrap(), "events",
              {account_event(t1 + 60'000, "change", "159.203.9.9", 14061, "DigitalOcean, LLC", "d-thief", "s-thief",
                             "direct_deposit")});
  Config c2 = test_config(broker->bootstrap(), "events", "pw-it-warmup");
  c2.state.path = dir + "/state";
  DaemonThread daemon(std::move(c2));
  REQUIRE(daemon.wait_processed(before.size() + 1, std::chrono::seconds(30)));
  const auto alerts = consume_some(broker->bootstrap(), "alerts", 2, std::chrono::seconds(10));
  CHECK(daemon.stop() == 0);
  std::filesystem::remove_all(dir);
  REQUIRE(alerts.size() == 1);
  CHECK(alerts[0].find("\"detector\":\"account_takeover\"") != std::string::npos);
  CHECK(alerts[0].find("\"severity\":\"critical\"") != std::string::npos);
  CHECK(alerts[0].find("\"prior_sign_ins\":12") != std::string::npos);
  CHECK(alerts[0].find("new_device_and_network") != std::string::npos);
}

}  // namespace portalwatch::test

namespace portalwatch::test {

TEST_CASE("integration: a policy's lockdown reaches the decisions topic and survives a restart without a second decision") {
  auto broker = start_broker({{"events", 2}, {"alerts", 1}, {"decisions", 1}});
  char tmpl[] = "/tmp/portalwatch-it-decisions-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  const TimeMs t0 = SystemClock().now() - 40 * kMinuteMs;
  // Three accounts with history, each taken over from a hosting provider and used on hsa.
  auto takeovers = [&](const std::string& prefix, TimeMs at) {
    std::vector<std::string> out;
    for (int u = 0; u < 3; ++u) {
      const std::string user = prefix + std::to_string(u);
      for (int i = 0; i < 12; ++i)
        out.push_back(user_event(at + i * 1000, user, "login", "73.12.9." + std::to_string(u + 1), 7922, "Comcast",
                                 "d-" + user, "s-" + user + std::to_string(i)));
      const TimeMs t = at + 5 * kMinuteMs + u * kMinuteMs;
      out.push_back(user_event(t, user, "login", "159.203.9.9", 14061, "DigitalOcean, LLC", "d-thief", "s-t" + user));
      out.push_back(user_event(t + 30'000, user, "view", "159.203.9.9", 14061, "DigitalOcean, LLC", "d-thief",
                               "s-t" + user, "hsa"));
    }
    return out;
  };
  const auto first = takeovers("ann", t0);
  produce_all(broker->bootstrap(), "events", first);
  Config c = test_config(broker->bootstrap(), "events", "pw-it-decisions");
  c.kafka.decisions_topic = "decisions";
  c.state.path = dir + "/state";
  c.decisions.log = dir + "/decisions.jsonl";
  {
    DaemonThread daemon(std::move(c));
    REQUIRE(daemon.wait_processed(first.size(), std::chrono::seconds(30)));
    const auto decisions = consume_some(broker->bootstrap(), "decisions", 1, std::chrono::seconds(15));
    CHECK(daemon.stop() == 0);
    REQUIRE(decisions.size() == 1);
    CHECK(decisions[0].find("\"action\":\"lockdown\",\"state\":\"on\",\"scope\":{\"type\":\"app\",\"value\":\"hsa\"}") !=
          std::string::npos);
    CHECK(decisions[0].find("\"by\":\"policy:savings-accounts-under-attack\"") != std::string::npos);
  }
  // After the restart the lockdown is known: three more takeovers on hsa make no second decision.
  const auto second = takeovers("bob", t0 + 10 * kMinuteMs);
  produce_all(broker->bootstrap(), "events", second);
  Config c2 = test_config(broker->bootstrap(), "events", "pw-it-decisions");
  c2.kafka.decisions_topic = "decisions";
  c2.state.path = dir + "/state";
  c2.decisions.log = dir + "/decisions.jsonl";
  DaemonThread daemon(std::move(c2));
  REQUIRE(daemon.wait_processed(first.size() + second.size(), std::chrono::seconds(30)));
  const auto decisions = consume_some(broker->bootstrap(), "decisions", 2, std::chrono::seconds(8));
  CHECK(daemon.stop() == 0);
  CHECK(decisions.size() == 1);
  std::ifstream log(dir + "/decisions.jsonl");
  std::string line;
  int lines = 0;
  while (std::getline(log, line)) ++lines;
  CHECK(lines == 1);
  std::filesystem::remove_all(dir);
}

}  // namespace portalwatch::test
