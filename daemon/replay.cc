#include "daemon/replay.h"

#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>

#include "daemon/config.h"
#include "daemon/geoip.h"
#include "daemon/line_reader.h"
#include "daemon/log.h"
#include "daemon/pipeline.h"
#include "daemon/system_clock.h"
#include "detectors/json_writer.h"

namespace portalwatch {

namespace {

// Findings and decisions as JSON lines on stdout, through one large buffer.
class StdoutOutput final : public FindingOutput, public DecisionSink {
 public:
  void publish(const Finding&, const std::string& json, const std::string&) override { write(json); }
  void decide(Decision&& d) override { write(d.to_json()); }
  void flush() {
    if (!buf_.empty()) std::fwrite(buf_.data(), 1, buf_.size(), stdout);
    buf_.clear();
    std::fflush(stdout);
  }

 private:
  void write(const std::string& json) {
    buf_ += json;
    buf_.push_back('\n');
    if (buf_.size() > (1 << 16)) flush();
  }
  std::string buf_;
};

double peak_rss_mib() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;  // ru_maxrss is KiB on Linux
}

class Progress {
 public:
  explicit Progress(bool enabled) : enabled_(enabled && isatty(STDERR_FILENO)) {}
  void update(const std::string& name, std::uint64_t pos, std::uint64_t size, std::uint64_t events, double seconds) {
    if (!enabled_) return;
    const double frac = size ? static_cast<double>(pos) / static_cast<double>(size) : 0.0;
    const int width = 30;
    const int filled = static_cast<int>(frac * width);
    std::string bar(static_cast<size_t>(filled), '#');
    bar.resize(width, '.');
    std::fprintf(stderr, "\r%s [%s] %3.0f%% %llu events %.0f/s ", name.c_str(), bar.c_str(), frac * 100.0,
                 static_cast<unsigned long long>(events), seconds > 0 ? static_cast<double>(events) / seconds : 0.0);
    shown_ = true;
  }
  void clear() {
    if (shown_) std::fprintf(stderr, "\r\033[K");
    shown_ = false;
  }

 private:
  bool enabled_;
  bool shown_ = false;
};

// "city 812 found, 3 not_found, 0 error; asn ...; cache hits 790" / its JSON object.
std::string geoip_summary(const GeoIp& geoip, bool json) {
  const GeoIpStats& g = geoip.stats();
  std::string out = json ? "{" : "";
  for (size_t k = 0; k < kGeoDatabaseKindCount; ++k) {
    const std::string kind(to_string(static_cast<GeoDatabaseKind>(k)));
    if (json) {
      append_json_string(out, kind);
      out += ":{";
    } else {
      out += kind;
    }
    for (size_t r = 0; r < kGeoLookupResultCount; ++r) {
      const std::string result(to_string(static_cast<GeoLookupResult>(r)));
      if (json) {
        if (r) out.push_back(',');
        append_json_string(out, result);
        out.push_back(':');
        append_json_int(out, static_cast<std::int64_t>(g.lookups[k][r]));
      } else {
        out += (r ? ", " : " ") + std::to_string(g.lookups[k][r]) + " " + result;
      }
    }
    out += json ? "}," : "; ";
  }
  if (json) {
    out += "\"cache_hits\":";
    append_json_int(out, static_cast<std::int64_t>(g.cache_hits));
    out += "}";
  } else {
    out += "cache hits " + std::to_string(g.cache_hits);
  }
  return out;
}

// Keyed state at the end: every table of the engine (shared sources, profiles) and its detectors.
struct StateTotals {
  std::uint64_t keys = 0, capacity = 0, evictions = 0;
};
StateTotals state_totals(const Engine& engine) {
  StateTotals t;
  auto add = [&](const std::vector<TableStats>& tables) {
    for (const auto& s : tables) {
      t.keys += s.keys;
      t.capacity += s.capacity;
      t.evictions += s.evictions;
    }
  };
  add(engine.tables());
  for (const auto& d : engine.detectors()) add(d.detector->tables());
  return t;
}

void print_summary(const Pipeline& pipeline, const GeoIp* geoip, std::size_t files, double seconds,
                   const std::string& format) {
  const Engine& engine = pipeline.engine();
  const PolicyEngine& policies = pipeline.policies();
  const EngineStats& s = engine.stats();
  const StateTotals state = state_totals(engine);
  const double rate = seconds > 0 ? static_cast<double>(s.received) / seconds : 0.0;
  if (format == "json") {
    std::string out = "{\"events_read\":";
    append_json_int(out, static_cast<std::int64_t>(s.received));
    out += ",\"events_accepted\":";
    append_json_int(out, static_cast<std::int64_t>(s.accepted));
    out += ",\"rejected\":{";
    for (size_t r = 0; r < kRejectReasonCount; ++r) {
      if (r) out.push_back(',');
      append_json_string(out, to_string(static_cast<RejectReason>(r)));
      out.push_back(':');
      append_json_int(out, static_cast<std::int64_t>(s.rejected[r]));
    }
    out += "},\"late_clamped\":";
    append_json_int(out, static_cast<std::int64_t>(s.late_clamped));
    out += ",\"future_clamped\":";
    append_json_int(out, static_cast<std::int64_t>(s.future_clamped));
    out += ",\"findings\":{";
    for (size_t i = 0; i < engine.detectors().size(); ++i) {
      std::uint64_t n = 0;
      for (auto c : engine.detector_counts()[i].findings) n += c;
      if (i) out.push_back(',');
      append_json_string(out, engine.detectors()[i].common.name);
      out.push_back(':');
      append_json_int(out, static_cast<std::int64_t>(n));
    }
    out += "},\"repeats_suppressed\":";
    append_json_int(out, static_cast<std::int64_t>(pipeline.stats().suppressed_repeat));
    out += ",\"decisions\":";
    append_json_int(out, static_cast<std::int64_t>(policies.stats().decisions));
    out += ",\"seconds\":";
    append_json_double(out, seconds);
    out += ",\"events_per_second\":";
    append_json_double(out, rate);
    out += ",\"peak_rss_mib\":";
    append_json_double(out, peak_rss_mib());
    out += ",\"state\":{\"keys\":";
    append_json_int(out, static_cast<std::int64_t>(state.keys));
    out += ",\"capacity\":";
    append_json_int(out, static_cast<std::int64_t>(state.capacity));
    out += ",\"evictions\":";
    append_json_int(out, static_cast<std::int64_t>(state.evictions));
    out += '}';
    if (geoip) out += ",\"geoip_lookups\":" + geoip_summary(*geoip, true);
    out += "}\n";
    std::fputs(out.c_str(), stderr);
    return;
  }
  std::fprintf(stderr, "replay: %llu events read from %zu input%s in %.2f s (%.0f events/s), peak RSS %.1f MiB\n",
               static_cast<unsigned long long>(s.received), files, files == 1 ? "" : "s", seconds, rate, peak_rss_mib());
  std::string rejected;
  for (size_t r = 0; r < kRejectReasonCount; ++r) {
    if (!s.rejected[r]) continue;
    rejected += (rejected.empty() ? "" : ", ") + std::string(to_string(static_cast<RejectReason>(r))) + " " +
                std::to_string(s.rejected[r]);
  }
  std::fprintf(stderr, "  accepted %llu, rejected %llu%s%s%s\n", static_cast<unsigned long long>(s.accepted),
               static_cast<unsigned long long>(s.rejected_total()), rejected.empty() ? "" : " (", rejected.c_str(),
               rejected.empty() ? "" : ")");
  std::fprintf(stderr, "  event time: %llu late events placed at the watermark, %llu future timestamps clamped\n",
               static_cast<unsigned long long>(s.late_clamped), static_cast<unsigned long long>(s.future_clamped));
  if (geoip) std::fprintf(stderr, "  geoip lookups: %s\n", geoip_summary(*geoip, false).c_str());
  std::fprintf(stderr, "  keyed state: %llu keys in tables of %llu, %llu evicted\n",
               static_cast<unsigned long long>(state.keys), static_cast<unsigned long long>(state.capacity),
               static_cast<unsigned long long>(state.evictions));
  std::fprintf(stderr, "  findings %llu (%llu published, %llu repeating one published in its window)\n",
               static_cast<unsigned long long>(s.findings), static_cast<unsigned long long>(pipeline.stats().published),
               static_cast<unsigned long long>(pipeline.stats().suppressed_repeat));
  for (size_t i = 0; i < engine.detectors().size(); ++i) {
    const auto& counts = engine.detector_counts()[i].findings;
    std::uint64_t n = 0;
    std::string by;
    for (size_t sev = 0; sev < kSeverityCount; ++sev) {
      n += counts[sev];
      if (counts[sev])
        by += (by.empty() ? "" : ", ") + std::string(to_string(static_cast<Severity>(sev))) + " " + std::to_string(counts[sev]);
    }
    std::fprintf(stderr, "    %-24s %llu%s%s%s\n", engine.detectors()[i].common.name.c_str(),
                 static_cast<unsigned long long>(n), by.empty() ? "" : " (", by.c_str(), by.empty() ? "" : ")");
  }
  std::fprintf(stderr, "  decisions %llu (%zu lockdown%s in force at the end)\n",
               static_cast<unsigned long long>(policies.stats().decisions), policies.active().size(),
               policies.active().size() == 1 ? "" : "s");
}

}  // namespace

int run_replay(const ReplayOptions& options) {
  ConfigResult loaded = load_config(options.config_path);
  if (!loaded.config) {
    std::fputs(loaded.errors.c_str(), stderr);
    return 2;
  }
  Config& config = *loaded.config;
  init_logging(config.log);
  // Replayed files are history: "now" for the future-timestamp check is the stream's own time.
  config.engine.time.reference = TimeOptions::Reference::kStream;
  const std::size_t max_bytes = config.engine.max_message_bytes;
  std::string error;
  const auto geoip = start_geoip(config, SystemClock(), error);
  if (!error.empty()) {
    spdlog::critical("{}", error);
    return 2;
  }
  Engine engine(config.engine, std::move(config.detectors), nullptr, nullptr, geoip.get());

  std::vector<std::string> inputs = options.inputs;
  if (inputs.empty()) inputs.push_back("-");
  // The daemon's pipeline, printing what it publishes: findings (after the same repeat filter) and
  // decisions (no hook runs).
  PolicyEngine policies(std::move(config.policies), config.decisions.dry_run);
  FindingLedger ledger;
  StdoutOutput out;
  Pipeline pipeline(engine, policies, ledger, out, out);
  Progress progress(options.progress);
  LogLimiter<kRejectReasonCount + 1> limiter(std::chrono::seconds(std::max(0, config.log.reject_log_interval_seconds)));
  int status = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (const auto& path : inputs) {
    auto reader = LineReader::open(path, max_bytes, error);
    if (!reader) {
      progress.clear();
      spdlog::error("{}", error);
      status = 1;
      continue;
    }
    LineReader::Line line;
    std::uint64_t since_update = 0;
    while (reader->next(line)) {
      // The reader skips an oversize line without buffering it whole; it is counted all the same.
      const Engine::Result r = line.oversize ? pipeline.reject(RejectReason::kOversize, "line larger than input.max_message_bytes")
                                             : pipeline.process(line.text, true);
      if (!r.accepted) {
        std::uint64_t suppressed = 0;
        if (limiter.allow(static_cast<size_t>(r.reason), suppressed)) {
          progress.clear();
          spdlog::warn("{}:{}: rejected ({}): {}{}", path, line.number, to_string(r.reason), r.detail,
                       suppressed ? fmt::format(" [{} similar suppressed]", suppressed) : "");
        }
      }
      if (++since_update == 65536) {
        since_update = 0;
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        progress.update(path, reader->position(), reader->size(), engine.stats().received, secs);
      }
    }
    if (!reader->error().empty()) {
      progress.clear();
      spdlog::error("{}: read error after line {}: {}", path, line.number, reader->error());
      status = 1;
    }
  }
  out.flush();
  progress.clear();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  print_summary(pipeline, geoip.get(), inputs.size(), seconds, options.summary_format);
  return status;
}

}  // namespace portalwatch
