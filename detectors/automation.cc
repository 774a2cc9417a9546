#include "detectors/automation.h"

#include <algorithm>
#include <cstdio>

namespace portalwatch {

AutomationConfig read_automation_config(MapReader& cfg) {
  AutomationConfig c;
  c.window_ms = cfg.get_int("window_seconds", c.window_ms / kSecondMs, 60, 86400) * kSecondMs;
  c.severity.read(cfg, "severity");
  c.tool_user_agents = cfg.get_string_list("tool_user_agents", c.tool_user_agents);
  for (const auto& p : c.tool_user_agents)
    if (p.empty())
      cfg.child("tool_user_agents").error("an empty pattern would match every user agent");
  if (c.tool_user_agents.size() > 30000)
    cfg.child("tool_user_agents").error("at most 30000 patterns");
  c.missing_user_agent_is_tool =
      cfg.get_bool("missing_user_agent_is_tool", c.missing_user_agent_is_tool);
  c.min_gaps = cfg.get_int("min_gaps", c.min_gaps, 5, 60000);
  c.regular_tolerance_ms = cfg.get_int("regular_tolerance_ms", c.regular_tolerance_ms, 0, 60000);
  c.regular_tolerance = cfg.get_double("regular_tolerance", c.regular_tolerance, 0, 1);
  c.regular_share = cfg.get_double("regular_share", c.regular_share, 0.1, 1);
  c.fast_gap_ms = cfg.get_int("fast_gap_ms", c.fast_gap_ms, 0, 60000);
  c.fast_share = cfg.get_double("fast_share", c.fast_share, 0.1, 1);
  c.cadence_max_accounts = cfg.get_int("cadence_max_accounts", c.cadence_max_accounts, 0, 1000);
  c.max_sources = static_cast<std::size_t>(
      cfg.get_int("max_sources", static_cast<std::int64_t>(c.max_sources), 16, 100'000'000));
  return c;
}

std::unique_ptr<Detector> make_automation(MapReader& cfg, const DetectorCommon& common) {
  return std::make_unique<AutomationDetector>(read_automation_config(cfg), common.name);
}

AutomationDetector::AutomationDetector(AutomationConfig config, std::string name)
    : config_(std::move(config)),
      name_(std::move(name)),
      half_ms_(std::max<TimeMs>(1, config_.window_ms / 2)),
      sources_("sources", config_.max_sources, config_.window_ms) {
  for (auto p : config_.tool_user_agents) {
    for (auto& c : p) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    patterns_.push_back(std::move(p));
  }
}

int AutomationDetector::tool_index(std::string_view ua) {
  if (ua.empty()) return config_.missing_user_agent_is_tool ? kMissingUserAgent : 0;
  // Only the first kCachedBytes are searched for tools: they are the key. The memory keeps each
  // busy user agent's answer, which is otherwise a lower-casing and a pattern search.
  ua = ua.substr(0, kCachedBytes);
  if (const std::int16_t* known = tools_.find(ua)) return *known;
  std::string lower(ua);
  for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  int found = 0;
  for (size_t i = 0; i < patterns_.size() && !found; ++i)
    if (lower.find(patterns_[i]) != std::string::npos) found = static_cast<int>(i) + 1;
  tools_.remember(ua, static_cast<std::int16_t>(found));
  return found;
}

bool AutomationDetector::is_tool(std::string_view user_agent) {
  return tool_index(user_agent) != 0;
}

std::string_view AutomationDetector::tool_name(int index) const {
  if (index == kMissingUserAgent) return "no user agent";
  return index > 0 ? std::string_view(config_.tool_user_agents[static_cast<size_t>(index - 1)])
                   : std::string_view();
}

void AutomationDetector::on_event(const Event& ev, FindingSink& out) {
  Source& s = sources_.upsert(ev.source_key, ev.time);
  const std::int64_t half = ev.time / half_ms_;
  if (half > s.half) {
    for (std::int64_t h = std::max(s.half + 1, half - 1); h <= half; ++h) {
      const auto i = static_cast<size_t>(h % 2);
      s.accounts[i].clear();
      s.requests[i] = s.tool[i] = s.gaps[i] = s.regular[i] = s.fast[i] = 0;
    }
    if (half - s.half >= 2) {  // a quiet window ends the episode
      s.episode.reset();
      s.last = -1;
      s.last_gap = -1;
      s.sample_ua = 0;
    }
    s.half = half;
  } else if (half < s.half - 1) {
    return;
  }
  const auto i = static_cast<size_t>(half % 2);
  auto bump = [](std::uint16_t& c) {
    c = static_cast<std::uint16_t>(std::min<int>(c + 1, 0xFFFF));
  };
  bump(s.requests[i]);
  const int tool = tool_index(ev.user_agent);
  if (tool != 0) {
    bump(s.tool[i]);
    if (s.sample_ua == 0) s.sample_ua = static_cast<std::uint16_t>(tool);
  }
  if (!ev.user_name.empty()) s.accounts[i].add(ev.folded_user(user_buf_));
  if (s.last >= 0 && ev.time >= s.last) {
    const auto gap = static_cast<std::int32_t>(std::min<TimeMs>(ev.time - s.last, 86'400'000));
    bump(s.gaps[i]);
    if (gap < config_.fast_gap_ms) bump(s.fast[i]);
    if (s.last_gap >= 0) {
      const double tolerance =
          std::max<double>(static_cast<double>(config_.regular_tolerance_ms),
                           config_.regular_tolerance * static_cast<double>(gap));
      if (std::abs(gap - s.last_gap) <= tolerance) bump(s.regular[i]);
    }
    s.last_gap = gap;
  }
  s.last = std::max(s.last, ev.time);
  maybe_fire(s, ev, out);
}

void AutomationDetector::maybe_fire(Source& s, const Event& ev, FindingSink& out) {
  const double m = ev.source_threshold_multiplier;
  const std::int64_t requests = s.requests[0] + s.requests[1];
  const std::int64_t lowest = config_.severity.lowest_step();
  if (static_cast<double>(requests) < static_cast<double>(lowest) * m) return;
  const std::int64_t tool = s.tool[0] + s.tool[1];
  const std::int64_t gaps = s.gaps[0] + s.gaps[1];
  const std::int64_t regular = s.regular[0] + s.regular[1];
  const std::int64_t fast = s.fast[0] + s.fast[1];

  std::int64_t automated = tool;
  std::string why = tool ? "tool user agent" : "";
  bool cadence = false;
  if (gaps >= config_.min_gaps && m <= 1.0) {
    DistinctCounter<4> accounts = s.accounts[0];
    accounts.merge(s.accounts[1]);
    if (accounts.count() <= config_.cadence_max_accounts) {
      const double g = static_cast<double>(gaps);
      if (static_cast<double>(regular) >= config_.regular_share * g) {
        cadence = true;
        why = why.empty() ? "regular cadence" : why + " and regular cadence";
      } else if (static_cast<double>(fast) >= config_.fast_share * g) {
        cadence = true;
        why = why.empty() ? "faster than a person" : why + ", faster than a person";
      }
    }
  }
  if (cadence) automated = requests;
  const auto severity =
      config_.severity.at(static_cast<std::int64_t>(static_cast<double>(automated) / m));
  if (!severity) return;
  if (!s.episode.report(*severity, ev.time, config_.window_ms)) return;

  Finding f = make_finding(detector(), name_, *severity, EntityType::kIp, ev.source_key_text(),
                           ev.time, config_.window_ms);
  f.summary = f.entity + " made " + std::to_string(requests) + " requests in " +
              format_duration(config_.window_ms) + " like a script (" + why + ")";
  f.evidence.add("requests", requests);
  f.evidence.add("automated_requests", automated);
  f.evidence.add("tool_user_agent_requests", tool);
  if (s.sample_ua != 0) f.evidence.add("tool", tool_name(s.sample_ua));
  if (!ev.user_agent.empty()) f.evidence.add("user_agent", ev.user_agent.substr(0, 256));
  f.evidence.add("intervals", gaps);
  f.evidence.add("regular_intervals", regular);
  f.evidence.add("fast_intervals", fast);
  if (s.last_gap >= 0) f.evidence.add("last_interval_ms", static_cast<std::int64_t>(s.last_gap));
  if (!ev.user_name.empty()) f.evidence.add("user", ev.user_name);
  if (!ev.source_class.empty()) f.evidence.add("source_class", ev.source_class);
  f.evidence.add("threshold_multiplier", m);
  f.evidence.add("window_seconds", config_.window_ms / kSecondMs);
  out.emit(std::move(f));
}

void AutomationDetector::on_time(TimeMs watermark, FindingSink&) {
  sources_.maybe_expire(watermark);
}

std::vector<TableStats> AutomationDetector::tables() const {
  return {sources_.stats(KeyedTable<Source, IpAddress, IpHash>::kBytesPerKey)};
}

// A reload keeps the counted state unless the new settings change its layout (see Detector).
bool AutomationDetector::adopt_settings(Detector& next) {
  auto* n = dynamic_cast<AutomationDetector*>(&next);
  if (!n || !(config_.window_ms == n->config_.window_ms)) return false;
  config_ = n->config_;
  patterns_ = n->patterns_;
  tools_.clear();  // classifications made with the old patterns
  sources_.set_capacity(config_.max_sources);
  return true;
}

}  // namespace portalwatch
