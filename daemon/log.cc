#include "daemon/log.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <cstdlib>

#include "detectors/json_writer.h"

namespace portalwatch {

namespace {

// %J: the message as a JSON string literal.
class JsonMessageFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
    std::string s;
    append_json_string(s, std::string_view(msg.payload.data(), msg.payload.size()));
    dest.append(s.data(), s.data() + s.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<JsonMessageFlag>(); }
};

// %k: the syslog priority of the level, for journald's "<N>" line prefixes.
class SyslogPriorityFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
    static constexpr char kPriority[] = {'7', '7', '6', '4', '3', '2', '6'};  // trace..critical, off
    dest.push_back(kPriority[static_cast<int>(msg.level)]);
  }
  std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<SyslogPriorityFlag>(); }
};

}  // namespace

void init_logging(const LogConfig& config) {
  auto logger = spdlog::default_logger();
  if (!logger || logger->sinks().empty() || logger->name() != "portalwatch") {
    logger = std::make_shared<spdlog::logger>("portalwatch", std::make_shared<spdlog::sinks::stderr_sink_mt>());
    spdlog::set_default_logger(logger);
  }
  // journald sets JOURNAL_STREAM for a service's stderr; it timestamps lines itself.
  const bool journald = std::getenv("JOURNAL_STREAM") != nullptr;
  std::string pattern;
  if (config.format == "json") {
    pattern = R"({"time":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","message":%J})";
    if (journald) pattern = "<%k>" + pattern;
  } else {
    pattern = journald ? "<%k>%v" : "%Y-%m-%dT%H:%M:%S.%eZ %l %v";
  }
  auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
  formatter->add_flag<JsonMessageFlag>('J').add_flag<SyslogPriorityFlag>('k').set_pattern(pattern);
  logger->set_formatter(std::move(formatter));
  logger->set_level(spdlog::level::from_str(config.level));
  logger->flush_on(spdlog::level::info);
}

}  // namespace portalwatch
