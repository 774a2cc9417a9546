// A cluster's share-out without a broker: the partition of an owner key (the Java client's, so
// that every member, and anything else that partitions by these keys, agrees), the keys, what is
// held for another member, and the cluster section of the configuration.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "daemon/cluster.h"
#include "daemon/config.h"
#include "daemon/kafka_client.h"
#include "daemon/metrics.h"
#include "detectors/engine.h"

namespace portalwatch {

TEST_CASE("cluster: a key's partition is the Java client's (murmur2, positive part, modulo)") {
  // Apache Kafka's own murmur2 test vectors (clients' UtilsTest): murmur2 as a signed int.
  const std::vector<std::pair<std::string, std::int32_t>> vectors = {
      {"21", -973932308},
      {"foobar", -790332482},
      {"a-little-bit-long-string", -985981536},
      {"a-little-bit-longer-string", -1486304829},
      {"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
      {"abc", 479470107}};
  for (const auto& [key, murmur2] : vectors) {
    INFO(key);
    const auto positive = static_cast<std::int64_t>(static_cast<std::uint32_t>(murmur2) & 0x7fffffffu);
    // A large prime count shows the whole value, a small one what members use.
    CHECK(key_partition(key, 1'000'003) == positive % 1'000'003);
    CHECK(key_partition(key, 12) == positive % 12);
  }
  CHECK(key_partition("anything", 1) == 0);
}

TEST_CASE("cluster: owner keys: a finding's entity, a decision's scope") {
  Finding f = make_finding("brute_force", "brute_force", Severity::kMedium, EntityType::kUser, "jdoe42", 0, 1);
  CHECK(owner_key(f) == "user:jdoe42");
  f.entity_type = EntityType::kIp;
  f.entity = "203.0.113.9";
  CHECK(owner_key(f) == "ip:203.0.113.9");
  Decision d;
  d.scope = *Scope::parse("app:hsa");
  CHECK(owner_key(d) == "app:hsa");
  d.scope = *Scope::parse("global");
  CHECK(owner_key(d) == "global");
}

TEST_CASE("cluster: what is held for another member: released by partition in order, gone once seen published, bounded") {
  EngineOptions eo;
  eo.time.reference = TimeOptions::Reference::kStream;
  Engine engine(eo, {}, nullptr);
  Metrics metrics(engine);
  KafkaClientEvents events(metrics);
  ClusterConfig cc;
  cc.standby_max = 100;
  KafkaConfig kc;
  ClusterShare share(cc, kc, metrics, events);
  CHECK(share.owned_count() == 0);
  CHECK_FALSE(share.owns("user:jdoe42"));  // nothing owned before the group assigns
  auto held = [](int i, std::int32_t partition) {
    ClusterShare::Held h;
    h.id = "f-" + std::to_string(i);
    h.partition = partition;
    return h;
  };
  for (int i = 0; i < 6; ++i) share.hold(held(i, i % 3));
  share.hold(held(4, 1));  // held already: once
  CHECK(share.held() == 6);
  auto one = share.release({1});
  REQUIRE(one.size() == 2);
  CHECK(one[0].id == "f-1");
  CHECK(one[1].id == "f-4");
  CHECK(share.release({1}).empty());
  // Its owner published f-0 (seen on the topic): nothing to hold for it any more, however old.
  share.seen_published("f-0");
  CHECK(share.published_before("f-0"));
  CHECK_FALSE(share.published_before("f-3"));
  auto rest = share.release({0, 2});
  REQUIRE(rest.size() == 3);
  CHECK(rest[0].id == "f-2");
  CHECK(rest[1].id == "f-3");
  CHECK(rest[2].id == "f-5");
  // Seen published before it is made (this member is behind its owner): never held.
  share.seen_published("f-9");
  share.hold(held(9, 0));
  CHECK(share.held() == 0);
  share.seen_published("");  // not a finding's or decision's JSON: nothing
  for (int i = 100; i < 250; ++i) share.hold(held(i, 0));
  CHECK(metrics.cluster_held_dropped.Value() == 50);
  auto bounded = share.release({0});
  REQUIRE(bounded.size() == 100);  // the newest 100
  CHECK(bounded.front().id == "f-150");
  // Ids seen are kept up to 4 x standby_max, the oldest forgotten first.
  for (int i = 0; i < 450; ++i) share.seen_published("g-" + std::to_string(i));
  CHECK_FALSE(share.published_before("f-0"));
  CHECK_FALSE(share.published_before("g-49"));
  CHECK(share.published_before("g-50"));
  CHECK(share.published_before("g-449"));
}

TEST_CASE("cluster: the id a published finding's or decision's JSON begins with") {
  Finding f = make_finding("brute_force", "brute_force", Severity::kMedium, EntityType::kUser, "jdoe42", 0, 1);
  CHECK(published_id(f.to_json()) == f.id_string());
  Decision d;
  d.scope = *Scope::parse("app:hsa");
  CHECK(published_id(d.to_json()) == d.id_string());
  CHECK(published_id("{\"kind\":\"decision\"}").empty());
  CHECK(published_id("").empty());
}

TEST_CASE("cluster: the configuration needs a member name and both output topics, errors with their line") {
  ConfigResult r = load_config_text("cluster:\n  enabled: true\n", "c.yaml");
  REQUIRE(r.config);
  CHECK(r.config->cluster.enabled);
  CHECK(r.config->cluster.state_topic == "portalwatch-state");
  CHECK(r.config->cluster.standby_max == 100'000);
  CHECK_FALSE(load_config_text("cluster: {}\n", "c.yaml").config->cluster.enabled);

  r = load_config_text("kafka:\n  group_instance_id: \"\"\ncluster:\n  enabled: true\n", "c.yaml");
  REQUIRE_FALSE(r.config);
  CHECK(r.errors.find("c.yaml:4:") == 0);
  CHECK(r.errors.find("cluster.enabled") != std::string::npos);
  CHECK(r.errors.find("group_instance_id") != std::string::npos);

  r = load_config_text("kafka:\n  alerts_topic: \"\"\ncluster:\n  enabled: true\n", "c.yaml");
  REQUIRE_FALSE(r.config);
  CHECK(r.errors.find("alerts_topic") != std::string::npos);

  r = load_config_text("cluster:\n  enabled: true\n  state_topic: \"\"\n", "c.yaml");
  REQUIRE_FALSE(r.config);
  CHECK(r.errors.find("c.yaml:3:") == 0);

  r = load_config_text("kafka:\n  alerts_topic: shared\ncluster:\n  enabled: true\n  state_topic: shared\n", "c.yaml");
  REQUIRE_FALSE(r.config);
  CHECK(r.errors.find("c.yaml:5:") == 0);  // a topic read as both would be read as one
  r = load_config_text("kafka:\n  topics: [events]\ncluster:\n  enabled: true\n  state_topic: events\n", "c.yaml");
  REQUIRE_FALSE(r.config);
  CHECK(r.errors.find("kafka.topics") != std::string::npos);

  r = load_config_text("cluster:\n  standby_max: 10\n", "c.yaml");
  REQUIRE_FALSE(r.config);
  CHECK(r.errors.find("cluster.standby_max") != std::string::npos);
}

}  // namespace portalwatch
