#include "detectors/user_agent.h"

#include <array>

namespace portalwatch {

namespace {

bool has(std::string_view ua, std::string_view token) {
  return ua.find(token) != std::string_view::npos;
}

}  // namespace

UaFamily classify_user_agent(std::string_view ua) {
  UaFamily f;
  if (ua.empty()) return f;
  // Operating system, most specific first (iOS and Android also say "like Mac OS X" and "Linux").
  if (has(ua, "iPhone") || has(ua, "iPad") || has(ua, "iPod"))
    f.os = Os::kIos;
  else if (has(ua, "Android"))
    f.os = Os::kAndroid;
  else if (has(ua, "CrOS"))
    f.os = Os::kChromeOs;
  else if (has(ua, "Windows"))
    f.os = Os::kWindows;
  else if (has(ua, "Mac OS X") || has(ua, "Macintosh"))
    f.os = Os::kMac;
  else if (has(ua, "Linux") || has(ua, "X11"))
    f.os = Os::kLinux;
  // Browser: the tokens of forks come before the engines they also name.
  if (!ua.starts_with("Mozilla/"))
    f.browser = Browser::kTool;
  else if (has(ua, "Edg/") || has(ua, "EdgA/") || has(ua, "EdgiOS/"))
    f.browser = Browser::kEdge;
  else if (has(ua, "OPR/"))
    f.browser = Browser::kOpera;
  else if (has(ua, "SamsungBrowser/"))
    f.browser = Browser::kSamsung;
  else if (has(ua, "Firefox/") || has(ua, "FxiOS/"))
    f.browser = Browser::kFirefox;
  else if (has(ua, "Chrome/") || has(ua, "CriOS/"))
    f.browser = Browser::kChrome;
  else if (has(ua, "Safari/"))
    f.browser = Browser::kSafari;
  else
    f.browser = Browser::kOther;
  return f;
}

std::string UaFamily::text() const {
  static constexpr std::array<const char*, 9> kBrowsers{
      "other browser",    "Chrome", "Edge",   "Firefox",      "Safari",
      "Samsung Internet", "Opera",  "a tool", "no user agent"};
  static constexpr std::array<const char*, 7> kOs{"another system", "Windows", "macOS",   "iOS",
                                                  "Android",        "Linux",   "ChromeOS"};
  return std::string(kBrowsers[static_cast<size_t>(browser)]) + " on " +
         kOs[static_cast<size_t>(os)];
}

}  // namespace portalwatch
