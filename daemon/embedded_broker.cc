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

}  // namespace portalwatch
