#include "detectors/time.h"

#include <cstdio>
#include <cstring>

namespace portalwatch {
namespace {

bool digits(std::string_view s, size_t pos, size_t n, int& out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    const char c = s[i];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  out = v;
  return true;
}

bool leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int days_in_month(int y, int m) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && leap(y) ? 29 : kDays[m - 1];
}

}  // namespace

// Howard Hinnant's days_from_civil: days since 1970-01-01 for a proleptic Gregorian date.
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) noexcept {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

void civil_from_days(std::int64_t z, int& y, unsigned& m, unsigned& d) noexcept {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const std::int64_t yy = static_cast<std::int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y = static_cast<int>(yy + (m <= 2));
}

namespace {

// The shape producers write, "2026-12-23T14:03:11.123Z", at fixed positions. Returns false for
// anything else (the general parser then decides). Events come in time order, so the date is
// nearly always the previous call's: its day number is remembered per thread.
bool parse_fixed_utc_millis(std::string_view s, TimeMs& out) noexcept {
  if (s.size() != 24 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
      s[16] != ':' || s[19] != '.' || s[23] != 'Z')
    return false;
  static constexpr int kDigitPositions[] = {0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22};
  for (int i : kDigitPositions)
    if (s[static_cast<size_t>(i)] < '0' || s[static_cast<size_t>(i)] > '9') return false;
  auto two = [&s](size_t i) { return (s[i] - '0') * 10 + (s[i + 1] - '0'); };
  const int hour = two(11), minute = two(14);
  int second = two(17);
  if (hour > 23 || minute > 59 || second > 60) return false;
  struct DateCache {
    char text[10] = {};
    std::int64_t days = 0;
  };
  thread_local DateCache cache;
  if (std::memcmp(cache.text, s.data(), 10) != 0) {
    const int year = two(0) * 100 + two(2), month = two(5), day = two(8);
    if (month < 1 || month > 12 || day < 1 || day > days_in_month(year, month)) return false;
    cache.days = days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
    std::memcpy(cache.text, s.data(), 10);
  }
  if (second == 60) second = 59;  // a leap second is folded into the second before it
  const int millis = (s[20] - '0') * 100 + (s[21] - '0') * 10 + (s[22] - '0');
  out = (cache.days * 86400 + hour * 3600 + minute * 60 + second) * 1000 + millis;
  return true;
}

}  // namespace

std::optional<TimeMs> parse_rfc3339(std::string_view s) noexcept {
  if (TimeMs fast; parse_fixed_utc_millis(s, fast)) return fast;
  // YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)
  int year, month, day, hour, minute, second;
  if (s.size() < 20) return std::nullopt;
  if (!digits(s, 0, 4, year) || s[4] != '-' || !digits(s, 5, 2, month) || s[7] != '-' ||
      !digits(s, 8, 2, day))
    return std::nullopt;
  if (s[10] != 'T' && s[10] != 't' && s[10] != ' ') return std::nullopt;
  if (!digits(s, 11, 2, hour) || s[13] != ':' || !digits(s, 14, 2, minute) || s[16] != ':' ||
      !digits(s, 17, 2, second))
    return std::nullopt;
  if (month < 1 || month > 12 || day < 1 || day > days_in_month(year, month) || hour > 23 ||
      minute > 59 || second > 60)
    return std::nullopt;
  size_t pos = 19;
  int millis = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    const size_t start = pos;
    int scale = 100;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      millis += (s[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == start || pos - start > 9) return std::nullopt;
  }
  if (pos >= s.size()) return std::nullopt;
  int offset_minutes = 0;
  if (s[pos] == 'Z' || s[pos] == 'z') {
    ++pos;
  } else if (s[pos] == '+' || s[pos] == '-') {
    int oh, om;
    if (!digits(s, pos + 1, 2, oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
        !digits(s, pos + 4, 2, om) || oh > 23 || om > 59)
      return std::nullopt;
    offset_minutes = (oh * 60 + om) * (s[pos] == '-' ? -1 : 1);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;
  if (second == 60) second = 59;  // a leap second is folded into the second before it
  const std::int64_t days = days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
  const std::int64_t secs = days * 86400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
  return secs * 1000 + millis;
}

void append_rfc3339(std::string& out, TimeMs t) {
  std::int64_t days = t / kDayMs;
  std::int64_t rem = t % kDayMs;
  if (rem < 0) {
    rem += kDayMs;
    --days;
  }
  int y;
  unsigned m, d;
  civil_from_days(days, y, m, d);
  const int ms = static_cast<int>(rem % 1000);
  const int secs = static_cast<int>(rem / 1000);
  char buf[40];
  const int n = std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ", y, m, d,
                              secs / 3600, (secs / 60) % 60, secs % 60, ms);
  out.append(buf, static_cast<size_t>(n));
}

std::string format_rfc3339(TimeMs t) {
  std::string s;
  append_rfc3339(s, t);
  return s;
}

std::string format_duration(TimeMs d) {
  if (d < 0) return "-" + format_duration(-d);
  if (d < kSecondMs) return std::to_string(d) + "ms";
  std::int64_t secs = d / kSecondMs;
  std::string out;
  if (secs >= 86400 && secs % 3600 == 0) {
    const auto days = secs / 86400;
    out += std::to_string(days) + "d";
    secs -= days * 86400;
  }
  if (secs >= 3600) {
    out += std::to_string(secs / 3600) + "h";
    secs %= 3600;
  }
  if (secs >= 60) {
    out += std::to_string(secs / 60) + "m";
    secs %= 60;
  }
  if (secs > 0 || out.empty()) out += std::to_string(secs) + "s";
  return out;
}

}  // namespace portalwatch
