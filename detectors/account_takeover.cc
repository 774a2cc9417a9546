#include "detectors/account_takeover.h"

#include "detectors/distinct_counter.h"

namespace portalwatch {

AccountTakeoverConfig read_account_takeover_config(MapReader& cfg) {
  AccountTakeoverConfig c;
  c.window_ms = cfg.get_int("window_seconds", c.window_ms / kSecondMs, 60, 7 * 86400) * kSecondMs;
  c.min_history = cfg.get_int("min_history", c.min_history, 1, 1000);
  c.money_apps = cfg.get_string_list("money_apps", c.money_apps);
  c.savings_apps = cfg.get_string_list("savings_apps", c.savings_apps);
  c.hosting_networks = cfg.get_string_list("hosting_networks", c.hosting_networks);
  c.vpn_providers = cfg.get_string_list("vpn_providers", c.vpn_providers);
  lower_patterns(c.hosting_networks);
  lower_patterns(c.vpn_providers);
  c.failures_before_success =
      cfg.get_int("failures_before_success", c.failures_before_success, 1, 1'000'000);
  c.failure_window_ms =
      cfg.get_int("failure_window_seconds", c.failure_window_ms / kSecondMs, 60, 86400) * kSecondMs;
  c.max_accounts = static_cast<std::size_t>(
      cfg.get_int("max_accounts", static_cast<std::int64_t>(c.max_accounts), 16, 100'000'000));
  return c;
}

std::unique_ptr<Detector> make_account_takeover(MapReader& cfg, const DetectorCommon& common) {
  return std::make_unique<AccountTakeoverDetector>(read_account_takeover_config(cfg), common.name);
}

AccountTakeoverDetector::AccountTakeoverDetector(AccountTakeoverConfig config, std::string name)
    : config_(std::move(config)),
      orgs_({config_.hosting_networks, config_.vpn_providers}),
      name_(std::move(name)),
      failure_span_(std::max<TimeMs>(1, config_.failure_window_ms / kBuckets)),
      suspects_("suspects", config_.max_accounts, config_.window_ms),
      failures_("failures", config_.max_accounts, config_.failure_window_ms) {}

FieldSet AccountTakeoverDetector::fields_used() const {
  return kAlwaysDecodedFields | field_bit(Field::kPortalApp) | field_bit(Field::kSessionId) |
         field_bit(Field::kAsNumber) | field_bit(Field::kAsOrgName) | field_bit(Field::kDeviceId) |
         field_bit(Field::kGeoCountry);
}

bool AccountTakeoverDetector::in(const std::vector<std::string>& apps, std::string_view app) const {
  if (app.empty()) return false;
  for (const auto& a : apps)
    if (a == app) return true;
  return false;
}

void AccountTakeoverDetector::on_event(const Event& ev, FindingSink& out) {
  if (ev.user_name.empty()) return;
  if (ev.action == Action::kLogin) {
    const std::string_view user = ev.folded_user(user_buf_);
    if (ev.outcome == Outcome::kFailure && ev.reason != portalwatch::Reason::kUnknownUser) {
      failures_.upsert(user, ev.time).count.add(ev.time, failure_span_);
      return;
    }
    if (ev.outcome != Outcome::kSuccess) return;
    std::uint8_t reasons = 0;
    const bool history = ev.profiled && ev.prior_sign_ins >= config_.min_history;
    if (history && ev.novelty.device && ev.novelty.network) reasons |= kNewDeviceAndNetwork;
    if (history && ev.novelty.country) reasons |= kNewCountry;
    const unsigned org_kinds = orgs_.kinds(ev.as_org);
    if (org_kinds & kHosting)
      reasons |= kHostingNetwork;
    else if (history && ev.novelty.network && (org_kinds & kVpn))
      reasons |= kVpnProvider;
    std::int64_t failed = 0;
    if (const Failures* f = failures_.find(user)) failed = f->count.total(ev.time, failure_span_);
    if (failed >= config_.failures_before_success) reasons |= kAfterFailures;
    if (!reasons) return;
    Suspect& s = suspects_.upsert(user, ev.time);
    s = Suspect{};
    s.at = ev.time;
    s.source = ev.source_ip;
    s.asn = ev.as_number;
    s.session = ev.session_id.empty() ? 0 : hash_bytes(ev.session_id) | 1;
    s.prior_sign_ins = ev.prior_sign_ins;
    s.reasons = reasons;
    s.failures = static_cast<std::uint8_t>(std::min<std::int64_t>(failed, 255));
    return;
  }

  const bool change = ev.action == Action::kChange && in(config_.money_apps, ev.app);
  const bool read = (ev.action == Action::kView || ev.action == Action::kDownload) &&
                    in(config_.savings_apps, ev.app);
  if (!change && !read) return;
  if (ev.outcome == Outcome::kFailure) return;
  const std::string_view user = ev.folded_user(user_buf_);
  Suspect* s = suspects_.find(user);
  if (!s || ev.time - s->at > config_.window_ms || ev.time < s->at) return;
  // The owner may be signed in too: only the suspicious sign-in's own session counts.
  const std::uint64_t session = ev.session_id.empty() ? 0 : hash_bytes(ev.session_id) | 1;
  if (s->session && session && s->session != session) return;
  // A hosting provider, a new country or a burst of failures first are strong signs; a new device
  // on a new network or a VPN is also a new phone or a careful employee, so it needs a money
  // change.
  const bool strong = s->reasons & (kHostingNetwork | kNewCountry | kAfterFailures);
  if (!strong && !change) return;
  const Severity severity =
      change ? (strong ? Severity::kCritical : Severity::kHigh) : Severity::kHigh;
  if (!s->episode.report(severity, ev.time, config_.window_ms)) return;

  Finding f = make_finding(detector(), name_, severity, EntityType::kUser, std::string(user),
                           ev.time, ev.time - s->at);
  std::vector<std::string> why;
  if (s->reasons & kNewDeviceAndNetwork) why.emplace_back("new_device_and_network");
  if (s->reasons & kHostingNetwork) why.emplace_back("hosting_network");
  if (s->reasons & kVpnProvider) why.emplace_back("vpn_provider");
  if (s->reasons & kNewCountry) why.emplace_back("new_country");
  if (s->reasons & kAfterFailures) why.emplace_back("after_failed_passwords");
  std::string reasons_text;
  for (const auto& w : why) reasons_text += (reasons_text.empty() ? "" : ", ") + w;
  f.summary = f.entity + " signed in from " + s->source.to_string() + " (" + reasons_text +
              ") and " + (change ? "changed " : "read ") + std::string(ev.app) + " " +
              format_duration(ev.time - s->at) + " later";
  f.evidence.add("reasons", why);
  f.evidence.add("sign_in_source", s->source.to_string());
  f.evidence.add("sign_in_asn", static_cast<std::int64_t>(s->asn));
  f.evidence.add("sign_in_at", format_rfc3339(s->at));
  f.evidence.add("prior_sign_ins", static_cast<std::int64_t>(s->prior_sign_ins));
  if (s->reasons & kAfterFailures)
    f.evidence.add("failed_passwords_before", static_cast<std::int64_t>(s->failures));
  f.evidence.add("action", to_string(ev.action));
  f.evidence.add("app", ev.app);
  f.evidence.add("money_could_move", change);
  if (!ev.session_id.empty()) f.evidence.add("session", ev.session_id);
  f.evidence.add("window_seconds", config_.window_ms / kSecondMs);
  out.emit(std::move(f));
}

void AccountTakeoverDetector::on_time(TimeMs watermark, FindingSink&) {
  suspects_.maybe_expire(watermark);
  failures_.maybe_expire(watermark);
}

std::vector<TableStats> AccountTakeoverDetector::tables() const {
  return {suspects_.stats(KeyedTable<Suspect>::kBytesPerKey),
          failures_.stats(KeyedTable<Failures>::kBytesPerKey)};
}

// A reload keeps the counted state unless the new settings change its layout (see Detector).
bool AccountTakeoverDetector::adopt_settings(Detector& next) {
  auto* n = dynamic_cast<AccountTakeoverDetector*>(&next);
  if (!n || !(config_.window_ms == n->config_.window_ms && config_.failure_window_ms == n->config_.failure_window_ms)) return false;
  config_ = n->config_;
  orgs_ = OrgClassifier({config_.hosting_networks, config_.vpn_providers});
  suspects_.set_capacity(config_.max_accounts);
  failures_.set_capacity(config_.max_accounts);
  return true;
}

}  // namespace portalwatch
