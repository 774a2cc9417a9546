#include "detectors/engine.h"

#include <algorithm>
#include <map>
#include <stdexcept>

namespace portalwatch {

class Engine::CountingSink final : public FindingSink {
 public:
  CountingSink(Engine& engine, size_t index, FindingSink& out)
      : engine_(engine), index_(index), out_(out) {}
  void emit(Finding&& f) override {
    f.seq = engine_.next_finding_id_++;
    if (engine_.detectors_[index_].common.dry_run) f.dry_run = true;
    ++engine_.stats_.findings;
    ++engine_.counts_[index_].findings[static_cast<size_t>(f.severity)];
    out_.emit(std::move(f));
  }

 private:
  Engine& engine_;
  size_t index_;
  FindingSink& out_;
};

namespace {
// What profiles record of a sign-in.
constexpr FieldSet kProfileFields = field_bit(Field::kDeviceId) | field_bit(Field::kAsNumber) |
                                    field_bit(Field::kGeoCountry) | field_bit(Field::kUserAgent) |
                                    field_bit(Field::kGeoLat) | field_bit(Field::kGeoLon);

bool any_uses_profiles(const std::vector<DetectorInstance>& detectors) {
  for (const auto& d : detectors)
    if (d.detector->uses_profiles()) return true;
  return false;
}

FieldSet fields_used(const std::vector<DetectorInstance>& detectors) {
  FieldSet used = kAlwaysDecodedFields;
  for (const auto& d : detectors) used |= d.detector->fields_used();
  if (any_uses_profiles(detectors)) used |= kProfileFields;
  return used;
}
}  // namespace

Engine::Engine(EngineOptions options, std::vector<DetectorInstance> detectors,
               const Clock* wall_clock, ProfileBook* profiles, Enricher* enricher)
    : options_(std::move(options)),
      detectors_(std::move(detectors)),
      counts_(detectors_.size()),
      wall_clock_(wall_clock),
      decoder_(options_.fields, options_.max_message_bytes, fields_used(detectors_), JsonReader::kFastPathFirst,
               &decoder_counts_),
      sources_(options_.sources),
      given_profiles_(profiles),
      given_enricher_(enricher) {
  configure_from_detectors();
  if (options_.time.reference == TimeOptions::Reference::kWallClock && !wall_clock_)
    throw std::invalid_argument(
        "Engine: a wall clock is required for the wall-clock time reference");
}

// What follows from the set of detectors: source classification, profiles, enrichment.
void Engine::detectors_changed() {
  decoder_.reconfigure(options_.fields, options_.max_message_bytes, fields_used(detectors_));
  ++decoder_generation_;  // the sources' own decoders follow (configure_decoder)
  configure_from_detectors();
}

void Engine::configure_from_detectors() {
  classify_sources_ = false;
  for (const auto& d : detectors_) classify_sources_ |= d.detector->uses_source_class();
  profiles_ = nullptr;
  if (any_uses_profiles(detectors_)) {
    if (!given_profiles_ && !own_profiles_)
      own_profiles_ = std::make_unique<MemoryProfileBook>(options_.profiles.max_accounts,
                                                          options_.profiles.ttl_ms);
    profiles_ = given_profiles_ ? given_profiles_ : own_profiles_.get();
  }
  enrich_fields_ = fields_used(detectors_) & (kGeoFields | kAsFields);
  enricher_ = enrich_fields_ ? given_enricher_ : nullptr;
}

Engine::ReloadReport Engine::reconfigure(const EngineOptions& options, std::vector<DetectorInstance> next) {
  ReloadReport report;
  std::map<std::string, size_t, std::less<>> old_index;
  for (size_t i = 0; i < detectors_.size(); ++i) old_index.emplace(detectors_[i].common.name, i);
  std::vector<DetectorCounts> counts(next.size());
  std::vector<bool> carried(detectors_.size(), false);
  for (size_t i = 0; i < next.size(); ++i) {
    DetectorInstance& n = next[i];
    const auto it = old_index.find(n.common.name);
    if (it == old_index.end()) {
      report.added.push_back(n.common.name);
      continue;
    }
    DetectorInstance& old = detectors_[it->second];
    carried[it->second] = true;
    counts[i] = counts_[it->second];
    if (old.common.type == n.common.type && old.detector->adopt_settings(*n.detector)) {
      n.detector = std::move(old.detector);
      report.kept.push_back(n.common.name);
    } else {
      report.restarted.push_back(n.common.name);
    }
  }
  for (size_t i = 0; i < detectors_.size(); ++i)
    if (!carried[i]) report.removed.push_back(detectors_[i].common.name);

  report.sources_applied = sources_.reconfigure(options.sources);
  options_.fields = options.fields;
  options_.max_message_bytes = options.max_message_bytes;
  options_.time.allowed_lateness_ms = options.time.allowed_lateness_ms;
  options_.time.max_future_ms = options.time.max_future_ms;
  if (report.sources_applied) options_.sources = options.sources;
  detectors_ = std::move(next);
  counts_ = std::move(counts);
  detectors_changed();
  return report;
}

void Engine::restart(std::vector<DetectorInstance> fresh) {
  bool same = fresh.size() == detectors_.size();
  for (size_t i = 0; same && i < fresh.size(); ++i)
    same = fresh[i].common.name == detectors_[i].common.name && fresh[i].common.type == detectors_[i].common.type;
  if (!same) throw std::invalid_argument("Engine::restart: not the same detector instances");
  detectors_ = std::move(fresh);
  sources_ = SourceClassifier(options_.sources);
  max_time_ = kNoTime;
  last_tick_ = kNoTime;
  recent_ = {};
  recent_count_ = 0;
  recent_pos_ = 0;
  detectors_changed();
}

std::unique_ptr<EventDecoder> Engine::make_decoder() {
  return std::make_unique<EventDecoder>(options_.fields, options_.max_message_bytes, fields_used(detectors_),
                                        JsonReader::kFastPathFirst, &decoder_counts_);
}

void Engine::configure_decoder(EventDecoder& decoder) const {
  decoder.reconfigure(options_.fields, options_.max_message_bytes, fields_used(detectors_));
}

Engine::Result Engine::process(std::string_view message, bool padded, FindingSink& out, bool record_profiles) {
  const Result r = decode(decoder_, message, padded, event_);
  if (r.accepted) process_event(event_, out, record_profiles);
  return r;
}

TimeMs Engine::reference_time(TimeMs ts) {
  if (options_.time.reference == TimeOptions::Reference::kWallClock) return wall_clock_->now();
  // Stream reference: the median of the last few raw timestamps. A single forged timestamp
  // never becomes the median; a genuine jump (a quiet night in a replay) is accepted after
  // three events.
  if (recent_count_ == 0) return ts;
  // Insertion sort of at most five values: a fraction of nth_element's cost at this size.
  std::array<TimeMs, kRecent> sorted = recent_;
  for (int i = 1; i < recent_count_; ++i) {
    const TimeMs v = sorted[static_cast<size_t>(i)];
    int j = i;
    for (; j > 0 && sorted[static_cast<size_t>(j - 1)] > v; --j)
      sorted[static_cast<size_t>(j)] = sorted[static_cast<size_t>(j - 1)];
    sorted[static_cast<size_t>(j)] = v;
  }
  return sorted[static_cast<size_t>(recent_count_ / 2)];
}

void Engine::process_event(Event& ev, FindingSink& out, bool record_profiles) {
  ++stats_.received;
  ++stats_.accepted;
  // First, so that source classification, profiles and every detector see the same event.
  if (enricher_) enricher_->enrich(ev, enrich_fields_);
  // Folded once here; most detectors key by the account name.
  ev.user_folded = normalize_user(ev.user_name, user_buf_);
  ev.user_folded_set = true;
  TimeMs t = ev.timestamp;
  const TimeMs reference = reference_time(t);
  if (options_.time.reference == TimeOptions::Reference::kStream) {
    recent_[static_cast<size_t>(recent_pos_)] = t;
    recent_pos_ = (recent_pos_ + 1) % kRecent;
    recent_count_ = std::min(recent_count_ + 1, kRecent);
  }
  if (t > reference + options_.time.max_future_ms) {
    t = reference;
    ++stats_.future_clamped;
  }
  if (max_time_ != kNoTime && t < max_time_ - options_.time.allowed_lateness_ms) {
    t = max_time_ - options_.time.allowed_lateness_ms;
    ++stats_.late_clamped;
  }
  if (max_time_ == kNoTime || t > max_time_) max_time_ = t;
  ev.time = t;
  sources_.observe(ev, classify_sources_);

  // A successful sign-in is judged against the account's profile as it was before it, then
  // recorded in it.
  const bool sign_in = profiles_ && ev.action == Action::kLogin &&
                       ev.outcome == Outcome::kSuccess && !ev.user_name.empty();
  std::string_view account;
  SignInKeys keys;
  if (sign_in) {
    account = ev.user_folded;
    keys = SignInKeys::of(ev);
    const AccountProfile& p = profiles_->profile(account, ev.time);
    ev.profiled = true;
    if (record_profiles) {
      ev.prior_sign_ins = p.sign_ins;
      ev.novelty = p.novelty(keys);
    } else {
      // Replayed after a restart: the stored profile already includes this sign-in (and maybe
      // later ones); judge it as it was then. Its history is at most what is stored before it.
      ev.prior_sign_ins = p.sign_ins > 0 ? p.sign_ins - 1 : 0;
      ev.novelty = p.novelty_as_of(keys, ev.time);
    }
  }

  const TimeMs wm = watermark();
  const bool tick = last_tick_ == kNoTime || wm / kSecondMs != last_tick_ / kSecondMs;
  for (size_t i = 0; i < detectors_.size(); ++i) {
    CountingSink sink(*this, i, out);
    if (tick) detectors_[i].detector->on_time(wm, sink);
    detectors_[i].detector->on_event(ev, sink);
  }
  if (tick) last_tick_ = wm;
  if (sign_in && record_profiles) {
    profiles_->profile(account, ev.time).observe_sign_in(keys, ev);
    profiles_->changed(account);
  }
}

std::vector<TableStats> Engine::tables() const {
  std::vector<TableStats> out = sources_.tables();
  if (profiles_)
    for (const auto& t : profiles_->tables()) out.push_back(t);
  return out;
}

}  // namespace portalwatch
