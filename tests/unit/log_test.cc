// The daemon's log lines as journald and log shippers see them: syslog priority prefixes under
// systemd, JSON lines when asked, and a limiter that holds back floods and counts them.
#include <doctest/doctest.h>
#include <simdjson.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "daemon/log.h"

using namespace portalwatch;

namespace {

// Runs fn with stderr sent to a file, and returns what was written.
template <typename Fn>
std::string capture_stderr(Fn fn) {
  char path[] = "/tmp/portalwatch-log-test-XXXXXX";
  const int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  std::fflush(stderr);
  const int saved = dup(2);
  dup2(fd, 2);
  fn();
  spdlog::default_logger()->flush();
  std::fflush(stderr);
  dup2(saved, 2);
  close(saved);
  close(fd);
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::remove(path);
  return ss.str();
}

struct JournalStream {
  explicit JournalStream(bool on) {
    if (const char* v = std::getenv("JOURNAL_STREAM")) old = v, had = true;
    if (on) setenv("JOURNAL_STREAM", "8:12345", 1);
    else unsetenv("JOURNAL_STREAM");
  }
  ~JournalStream() {
    if (had) setenv("JOURNAL_STREAM", old.c_str(), 1);
    else unsetenv("JOURNAL_STREAM");
    init_logging(LogConfig{});
  }
  std::string old;
  bool had = false;
};

}  // namespace

TEST_CASE("log: under journald each line starts with its syslog priority and carries no timestamp") {
  JournalStream journal(true);
  init_logging(LogConfig{});
  const std::string out = capture_stderr([] {
    spdlog::info("consuming");
    spdlog::warn("a hook failed");
    spdlog::error("cannot commit");
    spdlog::debug("not shown at level info");
  });
  CHECK(out == "<6>consuming\n<4>a hook failed\n<3>cannot commit\n");
}

TEST_CASE("log: a terminal gets a UTC timestamp and the level") {
  JournalStream journal(false);
  init_logging(LogConfig{});
  const std::string out = capture_stderr([] { spdlog::warn("lag growing"); });
  // 2026-12-23T14:06:02.123Z warning lag growing
  REQUIRE(out.size() > 25);
  CHECK(out[10] == 'T');
  CHECK(out.substr(23, 2) == "Z ");
  CHECK(out.substr(25) == "warning lag growing\n");
}

TEST_CASE("log: JSON lines are valid JSON with the message escaped, priority-prefixed under journald") {
  LogConfig c;
  c.format = "json";
  c.level = "debug";
  for (const bool journald : {false, true}) {
    JournalStream journal(journald);
    init_logging(c);
    const std::string out = capture_stderr([] { spdlog::debug("user \"a\\b\"\tsaid\n\x01 hi"); });
    REQUIRE(!out.empty());
    std::string line = out.substr(0, out.size() - 1);
    if (journald) {
      CHECK(line.rfind("<7>", 0) == 0);
      line = line.substr(3);
    }
    simdjson::dom::parser p;
    simdjson::dom::element e;
    REQUIRE(!p.parse(line).get(e));
    CHECK(std::string_view(e["level"]) == "debug");
    CHECK(std::string_view(e["message"]) == "user \"a\\b\"\tsaid\n\x01 hi");
    CHECK(std::string_view(e["time"]).back() == 'Z');
  }
}

TEST_CASE("log: the limiter lets one line per key per interval through and counts the rest") {
  LogLimiter<3> limiter(std::chrono::hours(1));
  std::uint64_t held = 99;
  CHECK(limiter.allow(0, held));
  CHECK(held == 0);
  for (int i = 0; i < 1000; ++i) CHECK_FALSE(limiter.allow(0, held));
  CHECK(limiter.allow(1, held));  // keys are independent
  LogLimiter<1> every_time(std::chrono::milliseconds(0));
  CHECK(every_time.allow(0, held));
  CHECK(every_time.allow(0, held));
  CHECK(held == 0);
}
