// Planned portal traffic streamed in real time into the embedded broker, for the tests that run
// the real daemon: each event is stamped with the wall-clock moment it is produced, keyed by user.
#pragma once

#include <librdkafka/rdkafkacpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "daemon/system_clock.h"
#include "detectors/time.h"
#include "tests/integration/kafka_harness.h"

namespace portalwatch::test {

struct Timed {
  TimeMs at;  // offset from the start of the stream
  std::string json;
};

/// An event of the contract; `t` is a placeholder (0) that stream_plan() replaces when it sends it.
inline std::string event(TimeMs t, const std::string& user, const std::string& action, const std::string& outcome,
                         const std::string& ip, int asn, const std::string& org, const std::string& device,
                         const std::string& session, const std::string& app = "") {
  std::string j = "{\"@timestamp\":\"" + format_rfc3339(t) + "\",\"event\":{\"action\":\"" + action +
                  "\",\"outcome\":\"" + outcome + "\"" + (outcome == "failure" ? ",\"reason\":\"bad_password\"" : "") +
                  "},\"user\":{\"name\":\"" + user + "\"},\"source\":{\"ip\":\"" + ip + "\",\"as\":{\"number\":" +
                  std::to_string(asn) + ",\"organization\":{\"name\":\"" + org + "\"}}},\"device\":{\"id\":\"" + device +
                  "\"},\"session\":{\"id\":\"" + session + "\"}";
  if (!app.empty()) j += ",\"portal\":{\"app\":\"" + app + "\",\"record\":{\"id\":\"" + user + "\"}}";
  return j + "}";
}

/// Sends the plan (sorted by `at`) in real time, each event stamped with its wall-clock time and
/// keyed by its user. Idempotent, so that broker faults neither duplicate nor reorder an event; a
/// message whose delivery still fails (the retries of librdkafka exhausted by injected errors) is
/// sent again after the stream, so every event of the plan is in the topic once. Counts what it
/// handed to librdkafka in `sent`; returns whether everything was delivered, and in `resent` how
/// many had to be sent again.
inline bool stream_plan(const std::string& bootstrap, const std::string& topic, std::vector<Timed>& plan,
                        std::atomic<std::size_t>& sent, std::size_t* resent = nullptr,
                        std::chrono::seconds flush_timeout = std::chrono::seconds(60)) {
  struct Failed : RdKafka::DeliveryReportCb {
    std::vector<std::pair<std::string, std::string>> messages;  // key, value
    void dr_cb(RdKafka::Message& m) override {
      if (m.err() != RdKafka::ERR_NO_ERROR)
        messages.emplace_back(m.key() ? *m.key() : std::string(), std::string(static_cast<const char*>(m.payload()), m.len()));
    }
  } failed;
  std::string err;
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  conf->set("bootstrap.servers", bootstrap, err);
  conf->set("linger.ms", "5", err);
  conf->set("enable.idempotence", "true", err);
  conf->set("dr_cb", &failed, err);
  std::unique_ptr<RdKafka::Producer> p(RdKafka::Producer::create(conf.get(), err));
  if (!p) return false;
  auto send = [&](const std::string& key, std::string& value) {
    while (p->produce(topic, RdKafka::Topic::PARTITION_UA, RdKafka::Producer::RK_MSG_COPY, value.data(), value.size(),
                      key.data(), key.size(), 0, nullptr, nullptr) == RdKafka::ERR__QUEUE_FULL)
      p->poll(10);
  };
  const TimeMs t0 = SystemClock().now();
  const std::string placeholder = format_rfc3339(0);
  for (auto& e : plan) {
    while (SystemClock().now() < t0 + e.at) {
      p->poll(0);
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    const std::string stamp = format_rfc3339(t0 + e.at);
    e.json.replace(e.json.find(placeholder), stamp.size(), stamp);
    send(user_key(e.json), e.json);
    sent.fetch_add(1);
  }
  const int timeout_ms = static_cast<int>(std::chrono::milliseconds(flush_timeout).count());
  bool ok = p->flush(timeout_ms) == RdKafka::ERR_NO_ERROR;
  for (int round = 0; ok && !failed.messages.empty() && round < 5; ++round) {
    auto again = std::move(failed.messages);
    failed.messages.clear();
    if (resent) *resent += again.size();
    for (auto& [key, value] : again) send(key, value);
    ok = p->flush(timeout_ms) == RdKafka::ERR_NO_ERROR;
  }
  return ok && failed.messages.empty();
}

/// Ordinary users r0, r1...: `sign_ins` sign-ins each at random moments of the stream, each followed
/// by ten paystub views 30 ms apart, from their own laptop and home address.
template <class Rng>
void add_ordinary_users(std::vector<Timed>& plan, int users, int sign_ins, TimeMs stream_ms, Rng& rng) {
  int session = 0;
  for (int u = 0; u < users; ++u) {
    const std::string user = "r" + std::to_string(u), ip = "73.20." + std::to_string(u) + ".5";
    for (int i = 0; i < sign_ins; ++i) {
      const TimeMs at = std::uniform_int_distribution<TimeMs>(0, stream_ms - 500)(rng);
      const std::string s = "s" + std::to_string(++session);
      plan.push_back({at, event(0, user, "login", "success", ip, 7922, "Comcast", "d-" + user, s)});
      for (int v = 0; v < 10; ++v)
        plan.push_back({at + 10 + v * 30, event(0, user, "view", "success", ip, 7922, "Comcast", "d-" + user, s, "paystub")});
    }
  }
}

/// A brute-force attack on account b<n> from its own address: 12 failed passwords `step_ms` apart.
inline void add_brute_force(std::vector<Timed>& plan, int n, TimeMs start, TimeMs step_ms) {
  for (int i = 0; i < 12; ++i)
    plan.push_back({start + i * step_ms, event(0, "b" + std::to_string(n), "login", "failure",
                                               "203.0.113." + std::to_string(n + 1), 64500, "Example Net", "d-x", "")});
}

inline void sort_plan(std::vector<Timed>& plan) {
  std::stable_sort(plan.begin(), plan.end(), [](const Timed& a, const Timed& b) { return a.at < b.at; });
}

}  // namespace portalwatch::test
