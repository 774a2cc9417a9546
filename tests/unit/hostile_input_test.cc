// The hostile input corpus (tests/data/hostile): every line ends the way its file's name says,
// counted by reason, never thrown or crashed on, through every default detector. Plus what is too
// large to keep as a file: a 10 MB message and 100,000 distinct user names a second.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

#include "daemon/config.h"
#include "detectors/engine.h"

namespace portalwatch {

namespace {

struct Discard final : FindingSink {
  std::size_t findings = 0;
  void emit(Finding&&) override { ++findings; }
};

Engine default_engine() {
  ConfigResult r = load_config(std::nullopt);
  REQUIRE(r.config);
  r.config->engine.time.reference = TimeOptions::Reference::kStream;
  return Engine(r.config->engine, std::move(r.config->detectors), nullptr);
}

}  // namespace

TEST_CASE("hostile input: every case in the corpus ends as its name says") {
  Engine engine = default_engine();
  Discard out;
  std::size_t files = 0, lines = 0;
  for (const auto& entry : std::filesystem::directory_iterator(std::string(PORTALWATCH_SOURCE_DIR) + "/tests/data/hostile")) {
    const std::string name = entry.path().filename().string();
    if (entry.path().extension() != ".jsonl") continue;
    const std::string expected = name.substr(0, name.find("--"));
    std::ifstream in(entry.path(), std::ios::binary);
    std::string line;
    ++files;
    while (std::getline(in, line)) {
      ++lines;
      Engine::Result r{};
      CHECK_NOTHROW(r = engine.process(line, false, out));
      const std::string got = r.accepted ? "accepted" : std::string(to_string(r.reason));
      CHECK_MESSAGE(got == expected, name << ": a line ended " << got << " (" << r.detail << ")");
    }
  }
  CHECK(files >= 15);
  MESSAGE(files << " files, " << lines << " lines; rejected " << engine.stats().rejected_total());
}

TEST_CASE("hostile input: a 10 MB message is rejected as oversize, the next one is read") {
  Engine engine = default_engine();
  Discard out;
  std::string huge = "{\"@timestamp\":\"2026-12-23T14:00:00Z\",\"event\":{\"action\":\"login\",\"outcome\":\"failure\"},"
                     "\"user\":{\"name\":\"";
  huge.append(10u << 20, 'a');
  huge += "\"},\"source\":{\"ip\":\"198.51.100.7\"}}";
  const Engine::Result r = engine.process(huge, false, out);
  CHECK_FALSE(r.accepted);
  CHECK(r.reason == RejectReason::kOversize);
  CHECK(engine.process("{\"@timestamp\":\"2026-12-23T14:00:00Z\",\"event\":{\"action\":\"login\",\"outcome\":\"failure\"},"
                       "\"user\":{\"name\":\"a\"},\"source\":{\"ip\":\"198.51.100.7\"}}",
                       false, out)
            .accepted);
}

TEST_CASE("hostile input: 100,000 distinct user names a second keep every table within its cap") {
  Engine engine = default_engine();
  Discard out;
  const TimeMs t0 = *parse_rfc3339("2026-12-23T14:00:00Z");
  std::string line;
  for (int i = 0; i < 300'000; ++i) {  // three seconds of it
    line = "{\"@timestamp\":\"" + format_rfc3339(t0 + i / 100) +
           "\",\"event\":{\"action\":\"login\",\"outcome\":\"failure\",\"reason\":\"unknown_user\"},\"user\":{\"name\":\"u" +
           std::to_string(i) + "\"},\"source\":{\"ip\":\"203.0." + std::to_string(i % 250) + "." +
           std::to_string(1 + (i / 250) % 250) + "\"}}";
    REQUIRE(engine.process(line, false, out).accepted);
  }
  for (const auto& d : engine.detectors())
    for (const auto& t : d.detector->tables()) CHECK_MESSAGE(t.keys <= t.capacity, d.common.name << "/" << t.table);
  for (const auto& t : engine.tables()) CHECK(t.keys <= t.capacity);
}

}  // namespace portalwatch
