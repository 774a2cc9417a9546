#include "detectors/sources.h"

namespace portalwatch {

SourcesConfig read_sources_config(MapReader& m) {
  SourcesConfig c;
  c.ipv4_prefix = static_cast<int>(m.get_int("ipv4_prefix", c.ipv4_prefix, 8, 32));
  c.ipv6_prefix = static_cast<int>(m.get_int("ipv6_prefix", c.ipv6_prefix, 16, 128));
  for (const auto& item : m.child("trusted_networks").elements()) {
    MapReader t(item);
    TrustedNetwork net;
    net.name = t.get_string("name", "");
    if (net.name.empty()) item.error("a trusted network needs a name");
    net.threshold_multiplier = t.get_double("threshold_multiplier", net.threshold_multiplier, 1, 1e6);
    const auto cidrs = t.child("cidrs");
    if (!cidrs.defined()) item.error("a trusted network needs cidrs");
    for (const auto& c : cidrs.elements()) {
      const auto text = c.as_string();
      if (!text) continue;
      if (auto n = IpNetwork::parse(*text)) net.networks.push_back(*n);
      else c.error("\"" + *text + "\" is not an address or CIDR network");
    }
    c.trusted_networks.push_back(std::move(net));
  }
  MapReader learn(m.child("learn_shared"));
  c.learn_shared = learn.get_bool("enabled", c.learn_shared);
  c.shared_min_accounts = learn.get_int("min_accounts", c.shared_min_accounts, 2, 1'000'000);
  c.learning_period_ms = learn.get_int("period_seconds", c.learning_period_ms / kSecondMs, 600, 30 * 86400) * kSecondMs;
  c.shared_threshold_multiplier = learn.get_double("threshold_multiplier", c.shared_threshold_multiplier, 1, 1e6);
  c.max_learned_sources = static_cast<std::size_t>(
      learn.get_int("max_sources", static_cast<std::int64_t>(c.max_learned_sources), 16, 100'000'000));
  return c;
}

SourceClassifier::SourceClassifier(SourcesConfig config)
    : config_(std::move(config)),
      learned_("learning_sources", config_.max_learned_sources, config_.learning_period_ms),
      shared_("shared_sources", std::max<std::size_t>(16, config_.max_learned_sources / 10), 2 * config_.learning_period_ms) {}

bool SourceClassifier::reconfigure(const SourcesConfig& next) {
  if (next.ipv4_prefix != config_.ipv4_prefix || next.ipv6_prefix != config_.ipv6_prefix ||
      next.learning_period_ms != config_.learning_period_ms)
    return false;
  config_ = next;
  learned_.set_capacity(config_.max_learned_sources);
  shared_.set_capacity(std::max<std::size_t>(16, config_.max_learned_sources / 10));
  return true;
}

void SourceClassifier::observe(Event& ev, bool classify) {
  ev.source_key = aggregate(ev.source_ip);
  ev.source_key_prefix = static_cast<std::uint8_t>(ev.source_ip.v4 ? config_.ipv4_prefix : config_.ipv6_prefix);
  ev.source_threshold_multiplier = 1;
  ev.source_class = {};
  if (classify) {
    for (const auto& t : config_.trusted_networks) {
      for (const auto& n : t.networks) {
        if (n.contains(ev.source_ip)) {
          ev.source_threshold_multiplier = t.threshold_multiplier;
          ev.source_class = t.name;
          return;  // configured trust wins; nothing to learn
        }
      }
    }
  }
  if (!config_.learn_shared) return;
  learned_.maybe_expire(ev.time);
  shared_.maybe_expire(ev.time);
  const std::int64_t period = ev.time / config_.learning_period_ms;
  if (ev.action == Action::kLogin && ev.outcome == Outcome::kSuccess && !ev.user_name.empty()) {
    Learned& l = learned_.upsert(ev.source_key, ev.time);
    if (l.period != period) {
      l.accounts.clear();
      l.period = period;
    }
    l.accounts.add(ev.folded_user(user_buf_));
    // Enough distinct accounts this period: shared egress for the next one.
    if (l.marked_for != period + 1 && l.accounts.count() >= config_.shared_min_accounts) {
      l.marked_for = period + 1;
      shared_.upsert(ev.source_key, ev.time) = period + 1;
    }
  }
  // Classification asks only the small table of shared sources, which stays in cache.
  if (classify && shared_.size() > 0) {
    const std::int64_t* valid_for = shared_.find(ev.source_key);
    if (valid_for && *valid_for == period) {
      ev.source_threshold_multiplier = config_.shared_threshold_multiplier;
      ev.source_class = "learned_shared";
    }
  }
}

std::vector<TableStats> SourceClassifier::tables() const {
  return {learned_.stats(KeyedTable<Learned, IpAddress, IpHash>::kBytesPerKey),
          shared_.stats(KeyedTable<std::int64_t, IpAddress, IpHash>::kBytesPerKey)};
}

}  // namespace portalwatch
