// librdkafka's error codes and statistics reduced to broker-health metrics and log lines.
#include <doctest/doctest.h>

#include <librdkafka/rdkafka.h>

#include "daemon/kafka_stats.h"

namespace portalwatch::test {

namespace {

// The shape librdkafka 2.0 writes (trimmed): a bootstrap entry and the logical coordinator beside
// the real brokers, and the unassigned partition -1.
std::string stats(const char* state1, const char* state2, int rtt2_us, int leader0) {
  return std::string(R"({"name":"portalwatch#consumer-1","type":"consumer","brokers":{)") +
         R"("127.0.0.1:40001/bootstrap":{"name":"127.0.0.1:40001/bootstrap","nodeid":-1,"source":"configured","state":"INIT","rtt":{"avg":0,"cnt":0}},)" +
         R"("GroupCoordinator":{"name":"GroupCoordinator","nodeid":-1,"source":"logical","state":"UP","rtt":{"avg":0,"cnt":0}},)" +
         R"("127.0.0.1:40001/1":{"name":"127.0.0.1:40001/1","nodeid":1,"source":"learned","state":")" + state1 +
         R"(","rtt":{"min":90,"max":200,"avg":120,"cnt":12}},)" +
         R"("127.0.0.1:40002/2":{"name":"127.0.0.1:40002/2","nodeid":2,"source":"learned","state":")" + state2 +
         R"(","rtt":{"avg":)" + std::to_string(rtt2_us) + R"(,"cnt":4}}},)" +
         R"("topics":{"events":{"topic":"events","partitions":{"0":{"partition":0,"leader":)" + std::to_string(leader0) +
         R"(},"1":{"partition":1,"leader":2},"-1":{"partition":-1,"leader":-1}}}}})";
}

}  // namespace

TEST_CASE("kafka stats: real brokers only, their states, round-trip times and partition leaders") {
  const auto r = parse_kafka_stats(stats("UP", "UP", 1'500'000, 1));
  REQUIRE(r);
  CHECK(r->client_type == "consumer");
  REQUIRE(r->brokers.size() == 2);
  CHECK(r->brokers[0].node_id == 1);
  CHECK(r->brokers[1].rtt_avg_seconds == doctest::Approx(1.5));
  CHECK(r->leaders.size() == 2);
  CHECK(r->leaders.at({"events", 0}) == 1);
  CHECK_FALSE(parse_kafka_stats("not json"));
  CHECK_FALSE(parse_kafka_stats("{\"brokers\":3}"));
}

TEST_CASE("kafka health: a broker lost and back, a leader move, each said once") {
  KafkaHealth h;
  CHECK(h.update(*parse_kafka_stats(stats("UP", "INIT", 0, 1))).empty());  // first sight is not news
  CHECK(h.brokers_up() == 1);
  CHECK(h.update(*parse_kafka_stats(stats("UP", "UP", 2000, 1))).empty());  // first connection neither
  CHECK(h.brokers_up() == 2);
  CHECK(h.max_rtt_seconds() == doctest::Approx(0.002));
  auto changes = h.update(*parse_kafka_stats(stats("DOWN", "UP", 2000, 1)));
  REQUIRE(changes.size() == 1);
  CHECK(changes[0] == "lost broker 127.0.0.1:40001/1, now DOWN (1 of 2 brokers up)");
  CHECK(h.brokers_up() == 1);
  CHECK(h.update(*parse_kafka_stats(stats("TRY_CONNECT", "UP", 2000, 1))).empty());  // still down: no repeat
  CHECK(h.update(*parse_kafka_stats(stats("UP", "UP", 2000, -1))).size() == 1);      // back; leader in election
  changes = h.update(*parse_kafka_stats(stats("UP", "UP", 2000, 2)));
  REQUIRE(changes.size() == 1);
  CHECK(changes[0] == "events/0: leader moved from broker 1 to 2");
  CHECK(h.leader_changes() == 1);
}

TEST_CASE("kafka health: slow brokers said once, and when they answer in time again") {
  KafkaHealth h(1.0);
  CHECK(h.update(*parse_kafka_stats(stats("UP", "UP", 20'000, 1))).empty());
  auto changes = h.update(*parse_kafka_stats(stats("UP", "UP", 1'500'000, 1)));
  REQUIRE(changes.size() == 1);
  CHECK(changes[0] == "brokers slow: average round-trip time up to 1.50 s");
  CHECK(h.update(*parse_kafka_stats(stats("UP", "UP", 800'000, 1))).empty());  // hysteresis
  changes = h.update(*parse_kafka_stats(stats("UP", "UP", 30'000, 1)));
  REQUIRE(changes.size() == 1);
  CHECK(changes[0] == "brokers answer in time again (average round-trip time 30 ms)");
}

TEST_CASE("kafka errors: codes map to a small fixed set of kinds") {
  CHECK(to_string(classify_kafka_error(RD_KAFKA_RESP_ERR__TRANSPORT)) == "transport");
  CHECK(to_string(classify_kafka_error(RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)) == "all_brokers_down");
  CHECK(to_string(classify_kafka_error(RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT)) == "timed_out");
  CHECK(to_string(classify_kafka_error(RD_KAFKA_RESP_ERR__RESOLVE)) == "resolve");
  CHECK(to_string(classify_kafka_error(RD_KAFKA_RESP_ERR__SSL)) == "auth");
  CHECK(to_string(classify_kafka_error(RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION)) == "other");
}

}  // namespace portalwatch::test
