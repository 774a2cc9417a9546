#include "daemon/embedded_broker.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

namespace portalwatch {

namespace {
// The mock cluster logs every connection at notice level; keep only warnings and worse.
void quiet_log(const rd_kafka_t*, int level, const char* fac, const char* buf) {
  if (level <= 4) fprintf(stderr, "embedded broker %s: %s\n", fac, buf);
}
}  // namespace

std::unique_ptr<EmbeddedBroker> EmbeddedBroker::start(int brokers, std::string& error) {
  std::unique_ptr<EmbeddedBroker> b(new EmbeddedBroker());
  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set_log_cb(conf, quiet_log);
  b->handle_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
  if (!b->handle_) {
    rd_kafka_conf_destroy(conf);
    error = std::string("cannot start the embedded broker: ") + errstr;
    return nullptr;
  }
  b->cluster_ = rd_kafka_mock_cluster_new(b->handle_, brokers);
  if (!b->cluster_) {
    error = "cannot start the embedded broker (mock cluster)";
    return nullptr;
  }
  b->bootstrap_ = rd_kafka_mock_cluster_bootstraps(b->cluster_);
  return b;
}

EmbeddedBroker::~EmbeddedBroker() {
  if (cluster_) rd_kafka_mock_cluster_destroy(cluster_);
  if (handle_) rd_kafka_destroy(handle_);
}

bool EmbeddedBroker::create_topic(const std::string& name, int partitions, std::string& error) {
  const auto err = rd_kafka_mock_topic_create(cluster_, name.c_str(), partitions, 1);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    error = "cannot create topic " + name + ": " + rd_kafka_err2str(err);
    return false;
  }
  return true;
}

bool EmbeddedBroker::set_broker_down(int id, bool down) {
  return (down ? rd_kafka_mock_broker_set_down(cluster_, id) : rd_kafka_mock_broker_set_up(cluster_, id)) ==
         RD_KAFKA_RESP_ERR_NO_ERROR;
}

bool EmbeddedBroker::set_broker_rtt(int id, int rtt_ms) {
  return rd_kafka_mock_broker_set_rtt(cluster_, id, rtt_ms) == RD_KAFKA_RESP_ERR_NO_ERROR;
}

void EmbeddedBroker::push_request_errors(Api api, const std::vector<int>& errors) {
  std::vector<rd_kafka_resp_err_t> codes;
  for (const int e : errors) codes.push_back(static_cast<rd_kafka_resp_err_t>(e));
  rd_kafka_mock_push_request_errors_array(cluster_, static_cast<std::int16_t>(api), codes.size(), codes.data());
}

bool EmbeddedBroker::set_partition_leader(const std::string& topic, int partition, int id) {
  return rd_kafka_mock_partition_set_leader(cluster_, topic.c_str(), partition, id) == RD_KAFKA_RESP_ERR_NO_ERROR;
}

bool EmbeddedBroker::set_group_coordinator(const std::string& group, int id) {
  return rd_kafka_mock_coordinator_set(cluster_, "group", group.c_str(), id) == RD_KAFKA_RESP_ERR_NO_ERROR;
}

}  // namespace portalwatch
