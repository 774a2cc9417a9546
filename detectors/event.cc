#include "detectors/event.h"

namespace portalwatch {

Action parse_action(std::string_view s) noexcept {
  if (s == "login") return Action::kLogin;
  if (s == "view") return Action::kView;
  if (s == "mfa") return Action::kMfa;
  if (s == "logout") return Action::kLogout;
  if (s == "change") return Action::kChange;
  if (s == "download") return Action::kDownload;
  if (s == "password_reset") return Action::kPasswordReset;
  return Action::kOther;
}

Outcome parse_outcome(std::string_view s) noexcept {
  if (s == "success") return Outcome::kSuccess;
  if (s == "failure") return Outcome::kFailure;
  return Outcome::kUnknown;
}

Reason parse_reason(std::string_view s) noexcept {
  if (s.empty()) return Reason::kNone;
  if (s == "bad_password") return Reason::kBadPassword;
  if (s == "unknown_user") return Reason::kUnknownUser;
  if (s == "locked") return Reason::kLocked;
  if (s == "expired_password") return Reason::kExpiredPassword;
  if (s == "mfa_denied") return Reason::kMfaDenied;
  if (s == "mfa_timeout") return Reason::kMfaTimeout;
  if (s == "forbidden") return Reason::kForbidden;
  return Reason::kOther;
}

std::string_view to_string(Action a) noexcept {
  switch (a) {
    case Action::kLogin: return "login";
    case Action::kMfa: return "mfa";
    case Action::kLogout: return "logout";
    case Action::kPasswordReset: return "password_reset";
    case Action::kView: return "view";
    case Action::kDownload: return "download";
    case Action::kChange: return "change";
    case Action::kOther: break;
  }
  return "other";
}

std::string_view field_name(Field f) noexcept {
  switch (f) {
    case Field::kTimestamp: return "@timestamp";
    case Field::kEventAction: return "event.action";
    case Field::kEventOutcome: return "event.outcome";
    case Field::kEventReason: return "event.reason";
    case Field::kUserName: return "user.name";
    case Field::kUserId: return "user.id";
    case Field::kUserRoles: return "user.roles";
    case Field::kSourceIp: return "source.ip";
    case Field::kGeoCountry: return "source.geo.country_iso_code";
    case Field::kGeoRegion: return "source.geo.region_iso_code";
    case Field::kGeoCity: return "source.geo.city_name";
    case Field::kGeoLat: return "source.geo.location.lat";
    case Field::kGeoLon: return "source.geo.location.lon";
    case Field::kAsNumber: return "source.as.number";
    case Field::kAsOrgName: return "source.as.organization.name";
    case Field::kUserAgent: return "user_agent.original";
    case Field::kDeviceId: return "device.id";
    case Field::kSessionId: return "session.id";
    case Field::kUrlPath: return "url.path";
    case Field::kHttpMethod: return "http.request.method";
    case Field::kHttpStatus: return "http.response.status_code";
    case Field::kPortalApp: return "portal.app";
    case Field::kPortalRecordId: return "portal.record.id";
    case Field::kCount: break;
  }
  return "";
}

void keep_strings(Event& ev, std::string& store) {
  // Every text field of Event: one added there must be added here (the size check below fails
  // until it is looked at).
#if defined(__x86_64__) && defined(__LP64__)
  static_assert(sizeof(Event) == 568, "Event changed: does keep_strings() keep every text field?");
#endif
  std::string_view* const fields[] = {
      &ev.action_text, &ev.reason_text,  &ev.user_name,   &ev.user_folded, &ev.user_id,
      &ev.source_ip_text, &ev.source_class, &ev.geo_country, &ev.geo_region, &ev.geo_city,
      &ev.as_org,      &ev.user_agent,   &ev.device_id,   &ev.session_id,  &ev.url_path,
      &ev.http_method, &ev.app,          &ev.record_id};
  std::size_t total = 0;
  for (const std::string_view* f : fields) total += f->size();
  for (std::uint8_t i = 0; i < ev.role_count; ++i) total += ev.roles[i].size();
  store.clear();
  store.reserve(total);  // no reallocation below: the fields pointed there stay valid
  const auto keep = [&store](std::string_view& v) {
    if (v.empty()) return;
    const std::size_t at = store.size();
    store.append(v);
    v = std::string_view(store.data() + at, v.size());
  };
  for (std::string_view* f : fields) keep(*f);
  for (std::uint8_t i = 0; i < ev.role_count; ++i) keep(ev.roles[i]);
}

std::string_view normalize_user(std::string_view name, std::string& buf) {
  bool has_upper = false;
  for (char c : name)
    if (c >= 'A' && c <= 'Z') {
      has_upper = true;
      break;
    }
  if (!has_upper) return name;
  buf.assign(name);
  for (char& c : buf)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return buf;
}

}  // namespace portalwatch
