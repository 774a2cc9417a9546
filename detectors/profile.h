// Per-account profiles: what an account normally looks like when it signs in — its devices,
// networks, countries, clients (browser and system families) and hours — each with first and last
// seen and a count, bounded per account (the least recently seen entry gives way) and aged out by
// TTL. Pure data: no I/O. The daemon keeps them in RocksDB (daemon/state_store.h) so they survive
// restarts; behaviour detectors (account_takeover) ask "is this device new to the account?".
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "detectors/event.h"
#include "detectors/user_agent.h"
#include "detectors/window.h"

namespace portalwatch {

/// One remembered attribute of an account (a device, a network...), by a 64-bit key.
struct Seen {
  std::uint64_t key = 0;
  TimeMs first = 0;
  TimeMs last = 0;
  std::uint32_t count = 0;
};

/// A bounded set of Seen entries: the least recently seen one is replaced when full.
template <int N>
struct SeenSet {
  std::array<Seen, N> items{};
  std::uint8_t size = 0;

  const Seen* find(std::uint64_t key) const {
    for (int i = 0; i < size; ++i)
      if (items[static_cast<size_t>(i)].key == key) return &items[static_cast<size_t>(i)];
    return nullptr;
  }
  /// Records key at t; returns true if it was not known.
  bool note(std::uint64_t key, TimeMs t) {
    for (int i = 0; i < size; ++i) {
      Seen& s = items[static_cast<size_t>(i)];
      if (s.key == key) {
        s.last = std::max(s.last, t);
        if (s.count < UINT32_MAX) ++s.count;
        return false;
      }
    }
    int slot = size;
    if (size == N) {
      slot = 0;
      for (int i = 1; i < N; ++i)
        if (items[static_cast<size_t>(i)].last < items[static_cast<size_t>(slot)].last) slot = i;
    } else {
      ++size;
    }
    items[static_cast<size_t>(slot)] = Seen{key, t, t, 1};
    return true;
  }
  /// Forgets entries not seen since before `cutoff`.
  void expire(TimeMs cutoff) {
    int kept = 0;
    for (int i = 0; i < size; ++i)
      if (items[static_cast<size_t>(i)].last >= cutoff)
        items[static_cast<size_t>(kept++)] = items[static_cast<size_t>(i)];
    size = static_cast<std::uint8_t>(kept);
  }
};

/// The keys of a sign-in's attributes, computed once per sign-in (classifying the user agent is the
/// costly part).
struct SignInKeys {
  std::uint64_t device = 0;   ///< 0 when the event has no device id
  std::uint64_t network = 0;
  std::uint64_t country = 0;  ///< 0 when the event has no country
  std::uint64_t client = 0;
  std::size_t hour = 0;       ///< UTC hour of the sign-in
  static SignInKeys of(const Event& ev);
};

struct AccountProfile {
  static constexpr int kDevices = 8, kNetworks = 8, kCountries = 4, kClients = 4;
  static constexpr std::uint8_t kFormat = 1;

  SeenSet<kDevices> devices;
  SeenSet<kNetworks> networks;
  SeenSet<kCountries> countries;
  SeenSet<kClients> clients;
  std::array<std::uint16_t, 24> hours{};  ///< successful sign-ins by UTC hour (saturating)
  std::uint32_t sign_ins = 0;
  TimeMs first_seen = 0;
  TimeMs last_sign_in = 0;
  float last_lat = 0, last_lon = 0;
  bool last_located = false;

  /// What a successful sign-in would be new in, without recording it.
  Novelty novelty(const SignInKeys& keys) const;
  Novelty novelty(const Event& ev) const { return novelty(SignInKeys::of(ev)); }
  /// What a sign-in at t was new in, judged on a profile that already includes it (an event
  /// replayed after a restart): an attribute first seen at or after t was new then. Hours are
  /// not judged.
  Novelty novelty_as_of(const SignInKeys& keys, TimeMs t) const;
  /// Records a successful sign-in (ev gives its time and place); returns its novelty.
  Novelty observe_sign_in(const SignInKeys& keys, const Event& ev);
  Novelty observe_sign_in(const Event& ev) { return observe_sign_in(SignInKeys::of(ev), ev); }
  /// Forgets attributes not seen within ttl of now.
  void expire(TimeMs now, TimeMs ttl);
  bool empty() const { return sign_ins == 0; }

  /// A compact, versioned binary form (the value stored per account).
  std::string encode() const;
  /// nullopt for a value that is truncated, of an unknown format or inconsistent.
  static std::optional<AccountProfile> decode(std::string_view bytes);

  // The keys of an event's attributes.
  static std::uint64_t device_key(const Event& ev);
  static std::uint64_t network_key(const Event& ev);
  static std::uint64_t country_key(const Event& ev);
  static std::uint64_t client_key(const Event& ev);
};

/// Where the engine finds and records account profiles: in memory (replay, tests) or in the
/// daemon's RocksDB store (daemon/state_store.h).
class ProfileBook {
 public:
  virtual ~ProfileBook() = default;
  /// The account's profile (empty if never seen), valid until the next call; now is event time.
  virtual AccountProfile& profile(std::string_view account, TimeMs now) = 0;
  /// The profile returned last for account was modified.
  virtual void changed(std::string_view account) = 0;
  virtual std::vector<TableStats> tables() const { return {}; }
};

/// Profiles in memory, bounded: the least recently seen accounts are forgotten beyond the cap,
/// and an account idle for the TTL is forgotten. Nothing survives the process.
class MemoryProfileBook final : public ProfileBook {
 public:
  MemoryProfileBook(std::size_t max_accounts, TimeMs ttl) : table_("profiles", max_accounts, ttl) {}
  AccountProfile& profile(std::string_view account, TimeMs now) override {
    table_.maybe_expire(now);
    return table_.upsert(account, now);
  }
  void changed(std::string_view) override {}
  std::vector<TableStats> tables() const override {
    return {table_.stats(KeyedTable<AccountProfile>::kBytesPerKey)};
  }

 private:
  KeyedTable<AccountProfile> table_;
};

}  // namespace portalwatch
