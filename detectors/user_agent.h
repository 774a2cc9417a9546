// User-agent families: which browser on which operating system, from the raw header. Enough to
// tell one client from another (a session moving from Chrome on Windows to Firefox on Linux), not
// a full parser; versions are ignored so a browser update is not a new client.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace portalwatch {

enum class Browser : std::uint8_t {
  kOther,
  kChrome,
  kEdge,
  kFirefox,
  kSafari,
  kSamsung,
  kOpera,
  kTool,
  kNone
};
enum class Os : std::uint8_t { kOther, kWindows, kMac, kIos, kAndroid, kLinux, kChromeOs };

struct UaFamily {
  Browser browser = Browser::kNone;
  Os os = Os::kOther;
  bool operator==(const UaFamily&) const = default;
  /// "Chrome on Windows"
  std::string text() const;
  std::uint16_t packed() const {
    return static_cast<std::uint16_t>(static_cast<int>(browser) << 8 | static_cast<int>(os));
  }
};

UaFamily classify_user_agent(std::string_view user_agent);

}  // namespace portalwatch
