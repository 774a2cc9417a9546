// Minimal JSON output helpers: findings and decisions are written by hand for speed and for a
// stable key order; everything that reaches them is escaped here.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace portalwatch {

/// Appends s as a JSON string literal (with quotes). Control characters are escaped; bytes that
/// are not valid UTF-8 are replaced by U+FFFD so the output is always valid JSON.
void append_json_string(std::string& out, std::string_view s);
void append_json_int(std::string& out, std::int64_t v);
/// Finite doubles in shortest round-trip form; NaN and infinities become null.
void append_json_double(std::string& out, double v);

}  // namespace portalwatch
