// automation (entity: ip): scripted clients. Two signs, either enough:
//  - tool user agents (curl, python-requests, Go-http-client, headless browsers...), matched
//    case-insensitively as substrings from a configurable list;
//  - non-human cadence: inter-arrival times that repeat to within a few percent (a polling loop),
//    or that are consistently faster than a person can click.
// Cadence is judged only for a source carrying at most a couple of accounts: the interleaved
// requests of an office NAT are neither regular nor one client's, and shared egress is held to its
// own thresholds. Severity grows with the automated requests in the window.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "detectors/detector.h"
#include "detectors/distinct_counter.h"
#include "detectors/severity_ladder.h"
#include "detectors/text_memo.h"

namespace portalwatch {

struct AutomationConfig {
  TimeMs window_ms = 10 * kMinuteMs;
  /// Automated requests from one source in the window, by severity.
  SeverityLadder severity{0, 30, 300, 3000};
  std::vector<std::string> tool_user_agents{
      "curl/",          "wget/",          "python-requests", "python-urllib", "python-httpx",
      "aiohttp",        "go-http-client", "java/",           "okhttp",        "apache-httpclient",
      "libwww-perl",    "scrapy",         "node-fetch",      "axios/",        "undici",
      "headlesschrome", "phantomjs",      "selenium",        "puppeteer",     "playwright",
      "postmanruntime", "httpie",         "powershell/",     "winhttp"};
  /// Requests without any User-Agent count as tool requests.
  bool missing_user_agent_is_tool = true;
  /// Cadence is judged after this many inter-arrival gaps in the window.
  std::int64_t min_gaps = 30;
  /// A gap within max(regular_tolerance_ms, regular_tolerance × gap) of the previous one is
  /// regular.
  TimeMs regular_tolerance_ms = 50;
  double regular_tolerance = 0.05;
  /// Share of regular gaps that makes a polling loop.
  double regular_share = 0.8;
  /// A gap shorter than this is faster than a person; fast_share of them is a script.
  TimeMs fast_gap_ms = 250;
  double fast_share = 0.8;
  /// Cadence is not judged for a source with more distinct accounts than this in the window.
  std::int64_t cadence_max_accounts = 2;
  std::size_t max_sources = 500'000;
};

AutomationConfig read_automation_config(MapReader& cfg);
std::unique_ptr<Detector> make_automation(MapReader& cfg, const DetectorCommon& common);

class AutomationDetector final : public Detector {
 public:
  AutomationDetector(AutomationConfig config, std::string name);
  std::string_view detector() const override { return "automation"; }
  void on_event(const Event& ev, FindingSink& out) override;
  void on_time(TimeMs watermark, FindingSink& out) override;
  FieldSet fields_used() const override {
    return kAlwaysDecodedFields | field_bit(Field::kUserAgent);
  }
  bool uses_source_class() const override { return true; }
  std::vector<TableStats> tables() const override;
  bool adopt_settings(Detector& next) override;

  /// Whether a User-Agent is a listed tool (cached by hash).
  bool is_tool(std::string_view user_agent);

  struct Source {
    std::array<DistinctCounter<4>, 2> accounts;  // 16 registers each
    std::array<std::uint16_t, 2> requests{};
    std::array<std::uint16_t, 2> tool{};
    std::array<std::uint16_t, 2> gaps{};
    std::array<std::uint16_t, 2> regular{};
    std::array<std::uint16_t, 2> fast{};
    std::int64_t half = 0;
    TimeMs last = -1;
    std::int32_t last_gap = -1;
    Episode episode;
    std::uint16_t sample_ua = 0;  // the first tool seen this episode (see tool_index)
  };

 private:
  static constexpr int kMissingUserAgent = 0x7FFF;
  static constexpr size_t kCachedBytes = 512;  // what is searched for tools
  /// 0: not a tool; i + 1: tool_user_agents[i] matched; kMissingUserAgent: none sent (and that
  /// counts as a tool).
  int tool_index(std::string_view user_agent);
  std::string_view tool_name(int index) const;
  void maybe_fire(Source& s, const Event& ev, FindingSink& out);

  AutomationConfig config_;
  std::string name_;
  TimeMs half_ms_;
  std::vector<std::string> patterns_;  // lower-cased tool_user_agents
  TextMemo<std::int16_t, 512> tools_;  // tool_index of user agents seen (their first kCachedBytes)
  KeyedTable<Source, IpAddress, IpHash> sources_;
  std::string user_buf_;
};

}  // namespace portalwatch
