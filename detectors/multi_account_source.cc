#include "detectors/multi_account_source.h"

#include <algorithm>
#include <cmath>

namespace portalwatch {

MultiAccountSourceConfig read_multi_account_source_config(MapReader& cfg) {
  MultiAccountSourceConfig c;
  c.window_ms = cfg.get_int("window_seconds", c.window_ms / kSecondMs, 60, 7 * 86400) * kSecondMs;
  c.ip_severity.read(cfg, "ip_severity");
  c.device_severity.read(cfg, "device_severity");
  c.asn_severity.read(cfg, "asn_severity");
  c.by_ip = cfg.get_bool("by_ip", c.by_ip);
  c.by_device = cfg.get_bool("by_device", c.by_device);
  c.by_asn = cfg.get_bool("by_asn", c.by_asn);
  c.history_factor = cfg.get_double("history_factor", c.history_factor, 1, 1000);
  c.new_source_max_devices_per_account = cfg.get_double("new_source_max_devices_per_account",
                                                        c.new_source_max_devices_per_account, 0, 1);
  c.history_period_ms =
      cfg.get_int("history_period_seconds", c.history_period_ms / kSecondMs, 3600, 30 * 86400) *
      kSecondMs;
  if (c.history_period_ms < c.window_ms)
    cfg.child("history_period_seconds").error("must be at least window_seconds");
  c.max_sources = static_cast<std::size_t>(
      cfg.get_int("max_sources", static_cast<std::int64_t>(c.max_sources), 16, 100'000'000));
  c.max_devices = static_cast<std::size_t>(
      cfg.get_int("max_devices", static_cast<std::int64_t>(c.max_devices), 16, 100'000'000));
  c.max_asns = static_cast<std::size_t>(
      cfg.get_int("max_asns", static_cast<std::int64_t>(c.max_asns), 16, 10'000'000));
  return c;
}

std::unique_ptr<Detector> make_multi_account_source(MapReader& cfg, const DetectorCommon& common) {
  return std::make_unique<MultiAccountSourceDetector>(read_multi_account_source_config(cfg),
                                                      common.name);
}

MultiAccountSourceDetector::MultiAccountSourceDetector(MultiAccountSourceConfig config,
                                                       std::string name)
    : config_(std::move(config)),
      name_(std::move(name)),
      half_ms_(std::max<TimeMs>(1, config_.window_ms / 2)),
      // History must outlive the window: a source is remembered for two periods after it was seen.
      sources_("sources", config_.max_sources, 2 * config_.history_period_ms),
      devices_("devices", config_.max_devices, 2 * config_.history_period_ms),
      asns_("asns", config_.max_asns, 2 * config_.history_period_ms) {}

FieldSet MultiAccountSourceDetector::fields_used() const {
  FieldSet f = kAlwaysDecodedFields | field_bit(Field::kDeviceId);
  if (config_.by_asn) f |= field_bit(Field::kAsNumber) | field_bit(Field::kAsOrgName);
  return f;
}

void MultiAccountSourceDetector::on_event(const Event& ev, FindingSink& out) {
  if (ev.action != Action::kLogin || ev.outcome != Outcome::kSuccess || ev.user_name.empty())
    return;
  const std::string_view user = ev.folded_user(user_buf_);
  if (config_.by_ip)
    sign_in(sources_.upsert(ev.source_key, ev.time), EntityType::kIp, {}, config_.ip_severity,
            ev.source_threshold_multiplier, user, ev, out);
  if (config_.by_device && !ev.device_id.empty())
    sign_in(devices_.upsert(ev.device_id, ev.time), EntityType::kDevice, ev.device_id,
            config_.device_severity, 1.0, user, ev, out);
  if (config_.by_asn && ev.as_number != 0)
    sign_in(asns_.upsert(ev.as_number, ev.time), EntityType::kAsn, {}, config_.asn_severity, 1.0,
            user, ev, out);
}

void MultiAccountSourceDetector::sign_in(Source& s, EntityType type, std::string_view entity_key,
                                         const SeverityLadder& ladder, double multiplier,
                                         std::string_view user, const Event& ev, FindingSink& out) {
  // History: the busiest window of the previous period.
  const auto period = static_cast<std::int32_t>(ev.time / config_.history_period_ms);
  if (period > s.period) {
    if (s.history_periods > 0 || s.period_max > 0) {
      s.previous_max = period == s.period + 1 ? s.period_max : 0;
      if (s.history_periods < 255) ++s.history_periods;
    }
    s.period_max = 0;
    s.period = period;
  }
  const std::int64_t half = ev.time / half_ms_;
  if (half > s.half) {
    for (std::int64_t h = std::max(s.half + 1, half - 1); h <= half; ++h) {
      const auto i = static_cast<size_t>(h % 2);
      s.accounts[i].clear();
      s.devices[i].clear();
      s.successes[i] = s.device_sign_ins[i] = 0;
    }
    if (half - s.half >= 2) {  // a quiet window ends the episode
      s.episode.reset();
      s.first_account.clear();
    }
    s.half = half;
  } else if (half < s.half - 1) {
    return;
  }
  const auto i = static_cast<size_t>(half % 2);
  s.accounts[i].add(user);
  if (!ev.device_id.empty()) {
    s.devices[i].add(ev.device_id);
    if (s.device_sign_ins[i] < 0xFFFF) ++s.device_sign_ins[i];
  }
  if (s.successes[i] < 0xFFFF) ++s.successes[i];
  if (s.first_account.empty()) s.first_account.assign(user.substr(0, 64));
  if (s.successes[0] + s.successes[1] < 2) return;  // one account cannot be many

  DistinctCounter<6> merged = s.accounts[0];
  merged.merge(s.accounts[1]);
  const std::int64_t distinct = merged.count();
  const auto severity =
      ladder.at(static_cast<std::int64_t>(static_cast<double>(distinct) / multiplier));
  const double usual = config_.history_factor * static_cast<double>(s.previous_max);
  DistinctCounter<5> devices = s.devices[0];
  devices.merge(s.devices[1]);
  const std::int64_t distinct_devices = devices.count();
  const std::int64_t device_sign_ins = s.device_sign_ins[0] + s.device_sign_ins[1];
  const bool few_devices =
      device_sign_ins == 0 || static_cast<double>(distinct_devices) <=
                                  std::max(1.0, config_.new_source_max_devices_per_account *
                                                    static_cast<double>(device_sign_ins));
  const bool judged = type == EntityType::kDevice || s.history_periods > 0 || few_devices;
  if (!severity || !judged || static_cast<double>(distinct) <= usual) {
    // Learn the source's own level only outside an episode, so an attack cannot raise it.
    if (!s.episode.active())
      s.period_max = static_cast<std::uint16_t>(
          std::max<std::int64_t>(s.period_max, std::min<std::int64_t>(distinct, 0xFFFF)));
    return;
  }
  if (!s.episode.report(*severity, ev.time, config_.window_ms)) return;

  Finding f = make_finding(detector(), name_, *severity, type,
                           type == EntityType::kIp    ? ev.source_key_text()
                           : type == EntityType::kAsn ? std::to_string(ev.as_number)
                                                      : std::string(entity_key),
                           ev.time, config_.window_ms);
  const std::string what = type == EntityType::kIp    ? ""
                           : type == EntityType::kAsn ? "AS"
                                                      : "device ";
  f.summary = what + f.entity + " signed in successfully as about " + std::to_string(distinct) +
              " accounts in " + format_duration(config_.window_ms) +
              (s.history_periods ? " (usually at most " + std::to_string(s.previous_max) + ")"
                                 : " (no history)");
  f.evidence.add("distinct_accounts", distinct);
  f.evidence.add("successes", static_cast<std::int64_t>(s.successes[0] + s.successes[1]));
  if (type != EntityType::kDevice) f.evidence.add("distinct_devices", distinct_devices);
  std::vector<std::string> samples{s.first_account};
  if (user != s.first_account) samples.emplace_back(user);
  f.evidence.add("sample_accounts", samples);
  f.evidence.add("usual_max_accounts", static_cast<std::int64_t>(s.previous_max));
  f.evidence.add("history_periods", static_cast<std::int64_t>(s.history_periods));
  f.evidence.add("history_period_seconds", config_.history_period_ms / kSecondMs);
  if (type == EntityType::kIp && !ev.source_class.empty())
    f.evidence.add("source_class", ev.source_class);
  if (type != EntityType::kIp) f.evidence.add("last_source", ev.source_key_text());
  if (!ev.as_org.empty() && type == EntityType::kAsn) f.evidence.add("as_organization", ev.as_org);
  f.evidence.add("threshold_multiplier", multiplier);
  f.evidence.add("window_seconds", config_.window_ms / kSecondMs);
  out.emit(std::move(f));
}

void MultiAccountSourceDetector::on_time(TimeMs watermark, FindingSink&) {
  sources_.maybe_expire(watermark);
  devices_.maybe_expire(watermark);
  asns_.maybe_expire(watermark);
}

std::vector<TableStats> MultiAccountSourceDetector::tables() const {
  return {sources_.stats(KeyedTable<Source, IpAddress, IpHash>::kBytesPerKey),
          devices_.stats(KeyedTable<Source>::kBytesPerKey),
          asns_.stats(KeyedTable<Source, std::uint32_t, std::hash<std::uint32_t>>::kBytesPerKey)};
}

// A reload keeps the counted state unless the new settings change its layout (see Detector).
bool MultiAccountSourceDetector::adopt_settings(Detector& next) {
  auto* n = dynamic_cast<MultiAccountSourceDetector*>(&next);
  if (!n || !(config_.window_ms == n->config_.window_ms && config_.history_period_ms == n->config_.history_period_ms)) return false;
  config_ = n->config_;
  sources_.set_capacity(config_.max_sources);
  devices_.set_capacity(config_.max_devices);
  asns_.set_capacity(config_.max_asns);
  return true;
}

}  // namespace portalwatch
