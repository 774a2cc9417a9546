#include "detectors/enumeration.h"

#include <algorithm>
#include <charconv>

namespace portalwatch {

EnumerationConfig read_enumeration_config(MapReader& cfg) {
  EnumerationConfig c;
  c.window_ms = cfg.get_int("window_seconds", c.window_ms / kSecondMs, 60, 7 * 86400) * kSecondMs;
  c.severity.read(cfg, "severity");
  const ConfigNode roles = cfg.child("role_limits");
  if (roles.defined()) {
    if (!roles.is_map()) {
      roles.error(
          "expected a mapping of role name to severity steps, e.g. {hr_admin: {medium: 250}}");
    } else {
      c.role_limits.clear();
      MapReader m(roles);
      for (const auto& kv : roles.yaml()) {
        const auto role = kv.first.as<std::string>();
        RoleLimit limit{role, {}};
        limit.severity.read(m, role);
        c.role_limits.push_back(std::move(limit));
      }
      if (c.role_limits.size() > 250) roles.error("at most 250 roles can have their own limits");
    }
  }
  c.sequential_walks = cfg.get_bool("sequential_walks", c.sequential_walks);
  c.sequential.read(cfg, "sequential");
  const ConfigNode entities = cfg.child("entities");
  if (entities.defined()) {
    c.by_ip = c.by_session = c.by_user = false;
    for (const auto& e : entities.elements()) {
      const auto word = e.as_string();
      if (!word) continue;
      if (*word == "ip")
        c.by_ip = true;
      else if (*word == "session")
        c.by_session = true;
      else if (*word == "user")
        c.by_user = true;
      else
        e.error("unknown entity \"" + *word + "\" (one of ip, session, user)");
    }
  }
  c.apps = cfg.get_string_list("apps", c.apps);
  c.max_readers = static_cast<std::size_t>(
      cfg.get_int("max_readers", static_cast<std::int64_t>(c.max_readers), 16, 100'000'000));
  c.max_privileged_accounts = static_cast<std::size_t>(
      cfg.get_int("max_privileged_accounts", static_cast<std::int64_t>(c.max_privileged_accounts),
                  16, 10'000'000));
  return c;
}

std::unique_ptr<Detector> make_enumeration(MapReader& cfg, const DetectorCommon& common) {
  return std::make_unique<EnumerationDetector>(read_enumeration_config(cfg), common.name);
}

EnumerationDetector::EnumerationDetector(EnumerationConfig config, std::string name)
    : config_(std::move(config)),
      name_(std::move(name)),
      half_ms_(std::max<TimeMs>(1, config_.window_ms / 2)),
      ips_("ips", config_.max_readers, config_.window_ms),
      sessions_("sessions", config_.max_readers, config_.window_ms),
      users_("users", config_.max_readers, config_.window_ms),
      // A role outlives any window: remembered for a day after the account was last seen.
      privileged_("privileged_accounts", config_.max_privileged_accounts,
                  std::max(config_.window_ms, kDayMs)) {}

FieldSet EnumerationDetector::fields_used() const {
  FieldSet f = kAlwaysDecodedFields | field_bit(Field::kPortalRecordId) |
               field_bit(Field::kUserId) | field_bit(Field::kUserRoles) |
               field_bit(Field::kHttpStatus);
  if (config_.by_session) f |= field_bit(Field::kSessionId);
  if (!config_.apps.empty()) f |= field_bit(Field::kPortalApp);
  return f;
}

namespace {

// The number at the end of a record id ("E0099871" → 99871), or -1.
std::int64_t trailing_number(std::string_view id) {
  size_t i = id.size();
  while (i > 0 && id[i - 1] >= '0' && id[i - 1] <= '9') --i;
  if (i == id.size() || id.size() - i > 18) return -1;
  std::int64_t n = 0;
  std::from_chars(id.data() + i, id.data() + id.size(), n);
  return n;
}

}  // namespace

std::uint8_t EnumerationDetector::role_of(const Event& ev, std::string_view user) {
  if (config_.role_limits.empty()) return 0;
  if (ev.role_count > 0) {
    std::uint8_t role = 0;
    for (size_t i = 0; i < config_.role_limits.size() && !role; ++i)
      if (ev.has_role(config_.role_limits[i].role)) role = static_cast<std::uint8_t>(i + 1);
    if (!user.empty()) {
      if (role) {
        privileged_.upsert(user, ev.time) = role;
      } else if (privileged_.size() > 0 && privileged_.find(user)) {
        privileged_.upsert(user, ev.time) = 0;  // the role was taken away
      }
    }
    return role;
  }
  if (user.empty() || privileged_.size() == 0) return 0;
  const std::uint8_t* role = privileged_.find(user);
  return role ? *role : 0;
}

void EnumerationDetector::on_event(const Event& ev, FindingSink& out) {
  const std::string_view user = ev.folded_user(user_buf_);
  // Roles are learned wherever they appear (most portals log them at sign-in).
  const bool has_roles = ev.role_count > 0 && !config_.role_limits.empty();
  std::uint8_t role = has_roles ? role_of(ev, user) : 0;
  if (ev.record_id.empty() || (ev.action != Action::kView && ev.action != Action::kDownload))
    return;
  if (ev.outcome == Outcome::kFailure && ev.http_status != 404)
    return;                                                       // refused: nothing was read
  if (!ev.user_id.empty() && ev.record_id == ev.user_id) return;  // one's own record
  if (!config_.apps.empty() &&
      std::find(config_.apps.begin(), config_.apps.end(), ev.app) == config_.apps.end())
    return;
  const std::int64_t number = config_.sequential_walks ? trailing_number(ev.record_id) : -1;
  // The account's reader remembers its role; the table of privileged accounts is asked only for
  // a reader not seen before (or when readers are not kept by account).
  Reader* by_user = config_.by_user && !user.empty() ? users_.find(user, ev.time) : nullptr;
  if (!has_roles) role = by_user ? by_user->role : role_of(ev, user);
  if (config_.by_session && !ev.session_id.empty())
    read(&sessions_, nullptr, EntityType::kSession, ev.session_id, ev, role, 1.0, number, out);
  if (config_.by_user && !user.empty()) {
    Reader& r = by_user ? *by_user : users_.upsert(user, ev.time);
    record(r, ev, role, number);
    maybe_fire(r, EntityType::kUser, user, ev, 1.0, out);
  }
  // A privileged reader is judged on its account and session; by address, everyone else is.
  if (config_.by_ip && role == 0)
    read(nullptr, &ips_, EntityType::kIp, {}, ev, 0, ev.source_threshold_multiplier, number, out);
}

void EnumerationDetector::read(KeyedTable<Reader>* strings,
                               KeyedTable<Reader, IpAddress, IpHash>* ips, EntityType type,
                               std::string_view key, const Event& ev, std::uint8_t role,
                               double multiplier, std::int64_t number, FindingSink& out) {
  Reader& r = strings ? strings->upsert(key, ev.time) : ips->upsert(ev.source_key, ev.time);
  record(r, ev, role, number);
  maybe_fire(r, type, key, ev, multiplier, out);
}

void EnumerationDetector::record(Reader& r, const Event& ev, std::uint8_t role,
                                 std::int64_t number) const {
  const std::int64_t half = ev.time / half_ms_;
  if (half > r.half) {
    for (std::int64_t h = std::max(r.half + 1, half - 1); h <= half; ++h) {
      const auto i = static_cast<size_t>(h % 2);
      r.records[i].clear();
      r.readers[i].clear();
      r.views[i] = r.not_found[i] = 0;
    }
    if (half - r.half >= 2) {  // a quiet window ends the episode
      r.episode.reset();
      r.first_record.clear();
      r.best_run = 0;
    }
    r.half = half;
  } else if (half < r.half - 1) {
    return;  // older than the window
  }
  const auto i = static_cast<size_t>(half % 2);
  r.records[i].add(ev.record_id);
  if (!ev.user_name.empty()) r.readers[i].add(ev.user_name);
  ++r.views[i];
  if (ev.http_status == 404) ++r.not_found[i];
  r.role = role;
  if (r.first_record.empty()) r.first_record.assign(ev.record_id.substr(0, 64));
  if (number >= 0) {
    const std::int64_t step = number - r.last_number;
    if (r.last_number >= 0 && (step == 1 || step == -1))
      ++r.run;
    else if (step != 0)
      r.run = 0;
    r.last_number = number;
    r.best_run = std::max(r.best_run, r.run);
  }
}

void EnumerationDetector::maybe_fire(Reader& r, EntityType type, std::string_view key,
                                     const Event& ev, double multiplier, FindingSink& out) {
  const SeverityLadder& ladder =
      r.role ? config_.role_limits[r.role - 1].severity : config_.severity;
  const std::int64_t views = r.views[0] + r.views[1];
  const auto lowest = static_cast<double>(ladder.lowest_step()) * multiplier;
  const bool walk = config_.sequential_walks &&
                    r.run + 1 >= static_cast<std::uint32_t>(config_.sequential.lowest_step());
  if (static_cast<double>(views) < lowest && !walk)
    return;  // cheap pre-check before merging sketches
  DistinctCounter<6> merged = r.records[0];
  merged.merge(r.records[1]);
  const std::int64_t distinct = std::min<std::int64_t>(merged.count(), views);
  std::int64_t readers = 1;
  if (type == EntityType::kIp) {
    DistinctCounter<4> accounts = r.readers[0];
    accounts.merge(r.readers[1]);
    readers = std::max<std::int64_t>(1, accounts.count());
  }
  const double per_reader = static_cast<double>(distinct) / static_cast<double>(readers);
  auto severity = ladder.at(static_cast<std::int64_t>(per_reader / multiplier));
  if (config_.sequential_walks) {
    const auto seq = config_.sequential.at(static_cast<std::int64_t>(r.run) + 1);
    if (seq && (!severity || *seq > *severity)) severity = seq;
  }
  if (!severity) return;
  if (!r.episode.report(*severity, ev.time, config_.window_ms)) return;

  const std::int64_t not_found = r.not_found[0] + r.not_found[1];
  Finding f = make_finding(detector(), name_, *severity, type,
                           type == EntityType::kIp ? ev.source_key_text() : std::string(key),
                           ev.time, config_.window_ms);
  f.summary = f.entity + " read about " + std::to_string(distinct) + " other people's records in " +
              format_duration(config_.window_ms);
  if (r.best_run + 1 >= 3)
    f.summary += ", " + std::to_string(r.best_run + 1) + " consecutive ids at best";
  if (not_found) f.summary += ", " + std::to_string(not_found) + " not found";
  f.evidence.add("distinct_records", distinct);
  f.evidence.add("views", views);
  f.evidence.add("not_found", not_found);
  if (type == EntityType::kIp) f.evidence.add("accounts_reading", readers);
  f.evidence.add("sequential_run", static_cast<std::int64_t>(r.run) + 1);
  f.evidence.add("longest_sequential_run", static_cast<std::int64_t>(r.best_run) + 1);
  f.evidence.add("sample_records",
                 std::vector<std::string>{r.first_record, std::string(ev.record_id.substr(0, 64))});
  if (r.role) f.evidence.add("role_limits", config_.role_limits[r.role - 1].role);
  if (!ev.app.empty()) f.evidence.add("app", ev.app);
  if (type != EntityType::kUser && !ev.user_name.empty()) f.evidence.add("user", ev.user_name);
  if (type == EntityType::kIp && !ev.source_class.empty())
    f.evidence.add("source_class", ev.source_class);
  f.evidence.add("threshold", ladder.lowest_step());
  f.evidence.add("threshold_multiplier", multiplier);
  f.evidence.add("window_seconds", config_.window_ms / kSecondMs);
  out.emit(std::move(f));
}

void EnumerationDetector::on_time(TimeMs watermark, FindingSink&) {
  ips_.maybe_expire(watermark);
  sessions_.maybe_expire(watermark);
  users_.maybe_expire(watermark);
  privileged_.maybe_expire(watermark);
}

std::vector<TableStats> EnumerationDetector::tables() const {
  return {ips_.stats(KeyedTable<Reader, IpAddress, IpHash>::kBytesPerKey),
          sessions_.stats(KeyedTable<Reader>::kBytesPerKey),
          users_.stats(KeyedTable<Reader>::kBytesPerKey),
          privileged_.stats(KeyedTable<std::uint8_t>::kBytesPerKey)};
}

// A reload keeps the counted state unless the new settings change its layout (see Detector).
bool EnumerationDetector::adopt_settings(Detector& next) {
  auto* n = dynamic_cast<EnumerationDetector*>(&next);
  if (!n || !(config_.window_ms == n->config_.window_ms)) return false;
  config_ = n->config_;
  ips_.set_capacity(config_.max_readers);
  sessions_.set_capacity(config_.max_readers);
  users_.set_capacity(config_.max_readers);
  privileged_.set_capacity(config_.max_privileged_accounts);
  return true;
}

}  // namespace portalwatch
