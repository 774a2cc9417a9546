// The decoder's hand-written fast path against simdjson alone (JsonReader::kSimdjsonOnly): over a
// generated corpus (simulated portal events and mutations of them), both must give the same
// events, field by field, the same rejections with the same details and the same ignored-field
// counts. The corpus is deterministic; the fast path must actually read a good part of it.
#include <doctest/doctest.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "daemon/simulator.h"
#include "detectors/decoder.h"
#include "detectors/decoder_backend.h"
#include "detectors/time.h"
#include "tests/common/decode_text.h"

namespace portalwatch {
namespace {

// ---- A small JSON tree that keeps number tokens as written, to rewrite events in every form ----

struct Json {
  enum class Kind { kObject, kArray, kString, kRaw };  // kRaw: a token written as is
  Kind kind = Kind::kRaw;
  std::string text;  // a string's content (unescaped), or the raw token
  std::vector<std::pair<std::string, Json>> members;
  std::vector<Json> items;

  static Json raw(std::string token) {
    Json j;
    j.text = std::move(token);
    return j;
  }
  static Json string(std::string content) {
    Json j;
    j.kind = Kind::kString;
    j.text = std::move(content);
    return j;
  }
  static Json object() {
    Json j;
    j.kind = Kind::kObject;
    return j;
  }
};

void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// Parses the simulator's output (valid JSON); REQUIREs that it is.
class JsonReaderForTests {
 public:
  explicit JsonReaderForTests(std::string_view s) : s_(s) {}
  Json parse() {
    Json j = value();
    ws();
    REQUIRE(i_ == s_.size());
    return j;
  }

 private:
  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\t' || s_[i_] == '\r'))
      ++i_;
  }
  std::uint32_t hex4() {
    REQUIRE(i_ + 4 <= s_.size());
    const std::uint32_t v =
        static_cast<std::uint32_t>(std::stoul(std::string(s_.substr(i_, 4)), nullptr, 16));
    i_ += 4;
    return v;
  }
  std::string str() {
    REQUIRE(s_[i_] == '"');
    ++i_;
    std::string out;
    while (true) {
      REQUIRE(i_ < s_.size());
      const char c = s_[i_++];
      if (c == '"') return out;
      if (c != '\\') {
        out += c;
        continue;
      }
      const char e = s_[i_++];
      switch (e) {
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          std::uint32_t cp = hex4();
          if (cp >= 0xD800 && cp < 0xDC00 && s_.substr(i_, 2) == "\\u") {
            i_ += 2;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (hex4() - 0xDC00);
          }
          append_utf8(out, cp);
          break;
        }
        default:
          out += e;
          break;  // \" \\ \/
      }
    }
  }
  Json value() {
    ws();
    REQUIRE(i_ < s_.size());
    if (s_[i_] == '"') return Json::string(str());
    if (s_[i_] == '{') {
      Json j = Json::object();
      ++i_;
      ws();
      if (s_[i_] == '}') return ++i_, j;
      while (true) {
        ws();
        std::string key = str();
        ws();
        REQUIRE(s_[i_++] == ':');
        j.members.emplace_back(std::move(key), value());
        ws();
        if (s_[i_++] == '}') return j;
      }
    }
    if (s_[i_] == '[') {
      Json j;
      j.kind = Json::Kind::kArray;
      ++i_;
      ws();
      if (s_[i_] == ']') return ++i_, j;
      while (true) {
        j.items.push_back(value());
        ws();
        if (s_[i_++] == ']') return j;
      }
    }
    const size_t start = i_;
    while (i_ < s_.size() && s_[i_] != ',' && s_[i_] != '}' && s_[i_] != ']' && s_[i_] != ' ') ++i_;
    return Json::raw(std::string(s_.substr(start, i_ - start)));
  }

  std::string_view s_;
  size_t i_ = 0;
};

using Rng = std::mt19937_64;  // fixed by the standard: the same corpus everywhere
size_t pick(Rng& rng, size_t n) { return static_cast<size_t>(rng() % n); }
bool chance(Rng& rng, unsigned percent) { return rng() % 100 < percent; }

// How a tree is written out.
struct Style {
  // 0 none, 1 a space after ':' and ',', 2 newlines and tabs, 3 CRLF and spaces, 4 any byte that
  // looks like white space after ',' (JSON's four, and now and then \f, \v, a NUL or a NBSP)
  int whitespace = 0;
  unsigned escape_percent = 0;  // the share of printable characters written as \u00XX or \/
};

class Writer {
 public:
  Writer(Rng& rng, Style style) : rng_(rng), style_(style) {}
  std::string write(const Json& j) {
    out_.clear();
    value(j, 0);
    return out_;
  }

 private:
  void newline(int depth) {
    if (style_.whitespace == 2) out_ += '\n' + std::string(static_cast<size_t>(depth), '\t');
    if (style_.whitespace == 3) out_ += "\r\n" + std::string(static_cast<size_t>(depth) * 2, ' ');
  }
  void after(char c) {
    out_ += c;
    if (style_.whitespace == 1) out_ += ' ';
    if (style_.whitespace == 4 && chance(rng_, 30)) {
      static const std::vector<std::string> spaces = {
          " ", "\t", "\n", "\r", "  \r\n", "\f", "\v", std::string(1, '\0'), "\xc2\xa0"};
      out_ += spaces[chance(rng_, 90) ? pick(rng_, 5) : pick(rng_, spaces.size())];
    }
  }
  void str(const std::string& s) {
    out_ += '"';
    for (const char ch : s) {
      const auto c = static_cast<unsigned char>(ch);
      char buf[8];
      if (c == '"' || c == '\\') {
        out_ += '\\';
        out_ += ch;
      } else if (c < 0x20) {
        std::snprintf(buf, sizeof buf, "\\u%04x", c);
        out_ += buf;
      } else if (c < 0x80 && style_.escape_percent && chance(rng_, style_.escape_percent)) {
        if (c == '/') {
          out_ += "\\/";
        } else {
          std::snprintf(buf, sizeof buf, chance(rng_, 50) ? "\\u%04x" : "\\u%04X", c);
          out_ += buf;
        }
      } else {
        out_ += ch;
      }
    }
    out_ += '"';
  }
  void value(const Json& j, int depth) {
    switch (j.kind) {
      case Json::Kind::kRaw:
        out_ += j.text;
        return;
      case Json::Kind::kString:
        str(j.text);
        return;
      case Json::Kind::kObject:
        out_ += '{';
        for (size_t i = 0; i < j.members.size(); ++i) {
          if (i) after(',');
          newline(depth + 1);
          str(j.members[i].first);
          after(':');
          value(j.members[i].second, depth + 1);
        }
        if (!j.members.empty()) newline(depth);
        out_ += '}';
        return;
      case Json::Kind::kArray:
        out_ += '[';
        for (size_t i = 0; i < j.items.size(); ++i) {
          if (i) after(',');
          value(j.items[i], depth + 1);
        }
        out_ += ']';
        return;
    }
  }

  Rng& rng_;
  Style style_;
  std::string out_;
};

// ---- Tree mutations ----

// The member at a dotted path, created (as nested objects) when missing; nullptr when a value
// that is not an object is in the way.
Json* at_path(Json& root, std::string_view path) {
  Json* cur = &root;
  while (true) {
    const size_t dot = path.find('.');
    const std::string seg(path.substr(0, dot));
    if (cur->kind != Json::Kind::kObject) return nullptr;
    Json* next = nullptr;
    for (auto& [k, v] : cur->members)
      if (k == seg) next = &v;
    if (!next) {
      cur->members.emplace_back(seg,
                                dot == std::string_view::npos ? Json::raw("null") : Json::object());
      next = &cur->members.back().second;
    }
    if (dot == std::string_view::npos) return next;
    cur = next;
    path.remove_prefix(dot + 1);
  }
}

void set_path(Json& root, std::string_view path, Json value) {
  if (Json* slot = at_path(root, path)) *slot = std::move(value);
}

// Every object in the tree, root first.
void objects(Json& j, std::vector<Json*>& out) {
  if (j.kind == Json::Kind::kObject) out.push_back(&j);
  for (auto& [k, v] : j.members) objects(v, out);
  for (auto& v : j.items) objects(v, out);
}

// Every string value in the tree.
void strings(Json& j, std::vector<Json*>& out) {
  if (j.kind == Json::Kind::kString) out.push_back(&j);
  for (auto& [k, v] : j.members) strings(v, out);
  for (auto& v : j.items) strings(v, out);
}

Json* random_object(Json& root, Rng& rng) {
  std::vector<Json*> all;
  objects(root, all);
  return all[pick(rng, all.size())];
}

// Members that are objects become dotted keys of their parent ("source": {"ip": ..} →
// "source.ip": ..), at one level or all the way down, some or all of them.
void flatten(Json& j, Rng& rng, bool deep) {
  if (j.kind != Json::Kind::kObject) return;
  std::vector<std::pair<std::string, Json>> out;
  for (auto& [k, v] : j.members) {
    if (deep) flatten(v, rng, true);
    if (v.kind == Json::Kind::kObject && !v.members.empty() && chance(rng, 70)) {
      for (auto& [k2, v2] : v.members) out.emplace_back(k + "." + k2, std::move(v2));
    } else {
      out.emplace_back(k, std::move(v));
    }
  }
  j.members = std::move(out);
}

void shuffle(Json& j, Rng& rng) {
  for (size_t i = j.members.size(); i > 1; --i)
    std::swap(j.members[i - 1], j.members[pick(rng, i)]);
  for (auto& [k, v] : j.members) shuffle(v, rng);
}

// Numbers and number-like strings in every form, valid and not.
// clang-format off
const std::vector<std::string> kNumberTokens = {
    "0", "-0", "1", "-1", "7", "200", "404", "200.0", "2e2", "2E2", "2e+2", "2E-2", "20e1", "1.5e3",
    "-92.1735", "38.5767", "38.57670000000000001", "90", "90.0", "-90", "90.000001", "180", "-180",
    "180.5", "99", "100", "999", "1000", "99.5", "7018", "7018.0", "4294967295", "4294967296",
    "123456789012345", "1234567890123456", "123456789012345678", "1234567890123456789",
    "12345678901234567890123", "9007199254740993", "0.1", "0.30000000000000004", "1e400", "-1e400",
    "1e-400", "1.7976931348623157e308", "4.9e-324", "1766275200", "1766275200123", "1766275200.5",
    "1e11", "99999999999", "1e14", "100000000000000", "1e15", "-5", "0.000", "01", "-01", "1.", ".5",
    "+1", "-", "1e", "1e+", "0x10", "NaN", "Infinity", "-Infinity", "12abc", "1_000", "--1", "1.2.3"};
const std::vector<std::string> kNumberStrings = {
    "200", " 200", "200 ", "200\t", "2e2", "200.0", "AS7018", "as7018", "As7018", "AS", "AS 7018",
    "7018.0", "-7018", "0", "", "abc", "38.5767", "-92.1735", "91", "1e400", "nan", "inf", "0x1F",
    "4294967296", "1,5"};
const std::vector<std::string> kTimestamps = {
    "2026-12-21T00:00:00Z", "2026-12-21T00:00:00.123Z", "2026-12-21T00:00:00.123456789Z",
    "2026-12-21T00:00:00+01:00", "2026-12-21T00:00:00.5-05:30", "2026-12-21t00:00:00z",
    "2026-12-21 00:00:00Z", "2026-12-21T00:00:00", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z",
    "2026-12-21T24:00:00Z", "2026-12-21T23:59:60Z", "1970-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999Z", "2026-12-21T00:00:00.Z", "", "yesterday"};
const std::vector<std::string> kOtherTokens = {
    "true", "false", "null", "{}", "[]", "[1]", "[\"a\"]", "{\"a\":1}", "{\"ip\":\"10.0.0.1\"}",
    "[[]]", "\"\""};
const std::vector<std::string> kIps = {
    "10.0.0.1", "255.255.255.255", "256.1.1.1", "1.2.3", "01.2.3.4", "1.2.3.4 ", "::1",
    "2001:db8::1", "2001:db8::/64", "::ffff:1.2.3.4", "fe80::1%eth0", "1.2.3.4.5", "", "localhost"};
// clang-format on

// A value of any kind for a field: the mutation that gives wrong types and number forms.
Json any_value(Rng& rng) {
  switch (pick(rng, 6)) {
    case 0:
      return Json::raw(kNumberTokens[pick(rng, kNumberTokens.size())]);
    case 1:
      return Json::string(kNumberStrings[pick(rng, kNumberStrings.size())]);
    case 2:
      return Json::string(kTimestamps[pick(rng, kTimestamps.size())]);
    case 3:
      return Json::string(kIps[pick(rng, kIps.size())]);
    case 4:
      return Json::raw(kOtherTokens[pick(rng, kOtherTokens.size())]);
    default: {
      static const std::vector<std::string> words = {
          "login",        "mfa",          "view",  "logout", "success", "failure",
          "bad_password", "unknown_user", "admin", "JDoe",   ""};
      return Json::string(words[pick(rng, words.size())]);
    }
  }
}

// Text that is not plain ASCII: escapes the writer must write, UTF-8, and bytes that are not UTF-8.
// clang-format off
const std::vector<std::string> kOddPieces = {
    "\"", "\\", "\n", "\t", std::string(1, '\0'), "\x1f", "/", "\xc3\xa9", "\xe6\xbc\xa2",
    "\xf0\x9f\x98\x80", "\xe2\x80\xa8", "\xc3", "\xff", "\xc0\x80", "\xed\xa0\x80",
    "\xf4\x90\x80\x80", "\x7f", "."};
// clang-format on
std::string odd_text(Rng& rng) { return kOddPieces[pick(rng, kOddPieces.size())]; }

// Unknown members of every shape.
Json unknown_value(Rng& rng) {
  switch (pick(rng, 5)) {
    case 0:
      return Json::raw(
          R"({"k":[1,2,{"z":[[],{}]}],"t":true,"f":false,"n":null,"x":-1.5e-3,"s":"a\"b"})");
    case 1:
      return Json::raw(R"([{"ip":"1.2.3.4"},["x",[0.5,1E9]],null,"y",{"user":{"name":"z"}}])");
    case 2: {  // nesting of any depth, to the parser's limits and past the fast path's
      const size_t depth = 1 + pick(rng, 80);
      std::string s;
      for (size_t i = 0; i < depth; ++i) s += chance(rng, 50) ? "[" : "{\"a\":";
      std::string closing;  // in the reverse order of the opening
      for (size_t i = s.size(); i-- > 0;)
        if (s[i] == '[')
          closing += ']';
        else if (s[i] == '{')
          closing += '}';
      return Json::raw(s + "1" + closing);
    }
    case 3:
      return Json::string(odd_text(rng) + "unknown");
    default:
      return Json::raw(kOtherTokens[pick(rng, kOtherTokens.size())]);
  }
}

// user.roles in every shape the contract allows and some it does not.
// clang-format off
const std::vector<std::string> kRoleForms = {
    R"([])", R"(["employee"])", R"(["employee","manager"])",
    R"(["a","b","c","d","e","f","g","h","i","j"])", R"("admin")", R"([1,"a"])", R"(["a",null])",
    R"([["a"]])", R"([{"r":"a"}])", R"(["a\"b","\u00e9"])", R"([ "x" , "y" ])", R"(["a",])", R"([)",
    R"(true)", R"(7)", R"({})"};
// clang-format on
Json roles_value(Rng& rng) { return Json::raw(kRoleForms[pick(rng, kRoleForms.size())]); }

// Every value above, for the systematic part of the corpus.
std::vector<Json> every_value() {
  std::vector<Json> out;
  for (const auto& t : kNumberTokens) out.push_back(Json::raw(t));
  for (const auto& t : kOtherTokens) out.push_back(Json::raw(t));
  for (const auto* list : {&kNumberStrings, &kTimestamps, &kIps})
    for (const auto& t : *list) out.push_back(Json::string(t));
  for (const auto& t : kRoleForms) out.push_back(Json::raw(t));
  for (const auto& t : kOddPieces) out.push_back(Json::string("x" + t + "y"));
  return out;
}

// The contract's field paths, and the remapped ones the remapping decoder reads.
std::vector<std::string> field_paths() {
  std::vector<std::string> out;
  for (size_t i = 0; i < kFieldCount; ++i) out.emplace_back(field_name(static_cast<Field>(i)));
  for (const char* p : {"usr.login", "client.address", "ts", "source", "source.geo.location",
                        "a.b.c.d.e.f.g.h.i.j", "user.id", "labels.attack", "event"})
    out.emplace_back(p);
  return out;
}

void mutate_tree(Json& root, Rng& rng) {
  static const std::vector<std::string> paths = field_paths();
  switch (pick(rng, 12)) {
    case 0:
      flatten(root, rng, false);
      break;
    case 1:
      flatten(root, rng, true);
      break;
    case 2:
      shuffle(root, rng);
      break;
    case 3: {  // a duplicated member, the copy before or after, the same value or another
      Json* obj = random_object(root, rng);
      if (obj->members.empty()) break;
      auto member = obj->members[pick(rng, obj->members.size())];
      if (chance(rng, 50)) member.second = any_value(rng);
      const auto where =
          obj->members.begin() + static_cast<long>(pick(rng, obj->members.size() + 1));
      obj->members.insert(where, std::move(member));
      break;
    }
    case 4:
    case 5:
      set_path(root, paths[pick(rng, paths.size())], any_value(rng));
      break;
    case 6: {  // a field written both nested and dotted
      const std::string& p = paths[pick(rng, paths.size())];
      if (p.find('.') == std::string::npos) break;
      root.members.emplace_back(p, any_value(rng));
      if (chance(rng, 50)) shuffle(root, rng);
      break;
    }
    case 7: {  // an unknown member anywhere
      Json* obj = random_object(root, rng);
      static const std::vector<std::string> keys = {
          "extra", "labels",       "geo", "x.y",         "",
          "user",  "source.extra", "ip",  "@timestamp2", "event.action.sub"};
      obj->members.emplace(
          obj->members.begin() + static_cast<long>(pick(rng, obj->members.size() + 1)),
          keys[pick(rng, keys.size())], unknown_value(rng));
      break;
    }
    case 8:
      set_path(root, "user.roles", roles_value(rng));
      break;
    case 9: {  // text that needs escapes or is not ASCII, in a value or a key
      std::vector<Json*> all;
      strings(root, all);
      if (all.empty()) break;
      Json* s = all[pick(rng, all.size())];
      s->text.insert(pick(rng, s->text.size() + 1), odd_text(rng));
      if (chance(rng, 30)) {
        Json* obj = random_object(root, rng);
        if (!obj->members.empty())
          obj->members[pick(rng, obj->members.size())].first += odd_text(rng);
      }
      break;
    }
    case 10: {  // a number in another form where the contract has one
      static const std::vector<std::string> numeric = {"source.geo.location.lat",
                                                       "source.geo.location.lon",
                                                       "source.as.number",
                                                       "http.response.status_code",
                                                       "@timestamp",
                                                       "user.id",
                                                       "session.id"};
      const std::string& p = numeric[pick(rng, numeric.size())];
      set_path(root, p,
               chance(rng, 70) ? Json::raw(kNumberTokens[pick(rng, kNumberTokens.size())])
                               : Json::string(kNumberStrings[pick(rng, kNumberStrings.size())]));
      break;
    }
    default: {  // a remapped portal's paths
      Json* name = at_path(root, "user.name");
      if (name) set_path(root, "usr.login", *name);
      Json* ip = at_path(root, "source.ip");
      if (ip && chance(rng, 50)) root.members.emplace_back("client.address", *ip);
      Json* ts = at_path(root, "@timestamp");
      if (ts && chance(rng, 50))
        set_path(root, "ts", chance(rng, 50) ? *ts : Json::raw("1766275200123"));
      break;
    }
  }
}

// Byte-level damage to a written message.
void mutate_bytes(std::string& s, Rng& rng) {
  static const std::string structural = "{}[]:,\"\\ .0-eE+tfnu\x80\xff\t\n";
  switch (pick(rng, 4)) {
    case 0:  // truncated
      s.resize(pick(rng, s.size() + 1));
      break;
    case 1:  // flipped bytes
      for (size_t n = 1 + pick(rng, 3); n-- > 0 && !s.empty();) {
        const size_t i = pick(rng, s.size());
        s[i] =
            chance(rng, 50) ? structural[pick(rng, structural.size())] : static_cast<char>(rng());
      }
      break;
    case 2:
      if (!s.empty()) s.erase(pick(rng, s.size()), 1);
      break;
    default:
      s.insert(pick(rng, s.size() + 1), 1, structural[pick(rng, structural.size())]);
      break;
  }
}

// A portal that writes user.name as usr.login, source.ip as client.address and @timestamp as ts
// (sometimes in epoch milliseconds), for the decoder with those paths mapped.
void rename_for_remapped_portal(Json& root, Rng& rng) {
  const auto move = [&root](std::string_view from_parent, std::string_view from_key,
                            std::string_view to, std::optional<Json> replacement = std::nullopt) {
    Json* parent = from_parent.empty() ? &root : nullptr;
    for (auto& [k, v] : root.members)
      if (k == from_parent) parent = &v;
    if (!parent || parent->kind != Json::Kind::kObject) return;
    for (size_t i = 0; i < parent->members.size(); ++i) {
      if (parent->members[i].first != from_key) continue;
      Json value = replacement ? *replacement : std::move(parent->members[i].second);
      parent->members.erase(parent->members.begin() + static_cast<long>(i));
      set_path(root, to, std::move(value));
      return;
    }
  };
  move("user", "name", "usr.login");
  move("source", "ip", "client.address");
  if (chance(rng, 50)) {
    move("", "@timestamp", "ts");
  } else {
    move("", "@timestamp", "ts",
         Json::raw(std::to_string(1766275200123 + static_cast<long>(pick(rng, 1000000)))));
  }
}

// A simulated portal's stream, labelled, attacks from half a second in.
sim::SimulatorOptions portal_stream(std::uint64_t seed) {
  sim::SimulatorOptions o;
  o.seed = seed;
  o.start = *parse_rfc3339("2026-12-21T08:00:00Z");
  o.events_per_second = 400;
  o.label_events = true;
  o.attacks = sim::default_attack_schedule(o.start + 500, 700);
  return o;
}

std::vector<std::string> corpus(bool remapped_portal) {
  std::vector<std::string> out = {
      "",
      " ",
      "{}",
      "[]",
      "[1,2]",
      "42",
      "\"x\"",
      "null",
      "true",
      "{} {}",
      "{}garbage",
      "{}\n",
      "\n{}",
      "\xef\xbb\xbf{}",
      "{\"@timestamp\":\"2026-12-21T00:00:00Z\"}",
      "{\"a\":}",
      "{,}",
      "{\"a\" 1}",
      R"({"@timestamp":"2026-12-21T00:00:00Z","event":{"action":"view","outcome":"success"},"source":{"ip":"10.0.0.1"}})",
      R"({"@timestamp":"2026-12-21T00:00:00Z","event":{"action":"login","outcome":"failure"},"source":{"ip":"10.0.0.1"}})",
      R"({"@timestamp":"2026-12-21T00:00:00Z","event":{"action":"login","outcome":"failure","reason":"unknown_user"},"source":{"ip":"10.0.0.1"}})",
  };
  out.emplace_back("{\"a\":1}\0", 8);  // a NUL after the object
  sim::PortalSimulator simulator(portal_stream(7));
  Rng rng(20261221);
  std::string line;
  constexpr int kEvents = 2500;
  for (int n = 0; n < kEvents; ++n) {
    REQUIRE(simulator.next(line) >= 0);
    Json event = JsonReaderForTests(line).parse();
    if (remapped_portal) {
      rename_for_remapped_portal(event, rng);
      line = Writer(rng, Style()).write(event);
    }
    out.push_back(line);
    // The event as written by other producers: whitespace, gratuitous escapes, and rewritten trees.
    for (int variant = 0; variant < 12; ++variant) {
      Json j = event;
      const int mutations = variant == 0 ? 0 : 1 + static_cast<int>(pick(rng, variant < 6 ? 1 : 4));
      for (int m = 0; m < mutations; ++m) mutate_tree(j, rng);
      Style style;
      style.whitespace = static_cast<int>(pick(rng, 5));
      if (chance(rng, 20)) style.escape_percent = 1 + static_cast<unsigned>(pick(rng, 10));
      std::string msg = Writer(rng, style).write(j);
      if (chance(rng, 10))
        msg = (chance(rng, 50) ? " \n" : "") + msg + (chance(rng, 50) ? "\r\n " : "\t");
      if (variant >= 9) mutate_bytes(msg, rng);
      out.push_back(std::move(msg));
    }
    // Every truncation of a few events.
    if (n < 4)
      for (size_t cut = 0; cut < line.size(); ++cut) out.push_back(line.substr(0, cut));
    // Every value in every field of a few events, nested and dotted.
    if (n % 500 == 0) {
      static const std::vector<std::string> paths = field_paths();
      static const std::vector<Json> values = every_value();
      for (const std::string& path : paths) {
        for (const Json& value : values) {
          Json j = event;
          set_path(j, path, value);
          if (n % 1000 == 0) flatten(j, rng, true);
          out.push_back(Writer(rng, Style()).write(j));
        }
        for (size_t r = 0; r < 8; ++r) {
          Json j = event;
          set_path(j, path, unknown_value(rng));
          out.push_back(Writer(rng, Style()).write(j));
        }
      }
    }
  }
  return out;
}

FieldMap remapped_fields(bool odd) {
  FieldMap m;
  m.set(Field::kUserName, "usr.login");
  m.set(Field::kSourceIp, "client.address");
  m.set(Field::kTimestamp, "ts");
  if (odd) {
    m.set(Field::kUserAgent, "source");               // also the parent of other fields' paths
    m.set(Field::kDeviceId, "source.geo.location");   // an object where a string is expected
    m.set(Field::kAsOrgName, "a.b.c.d.e.f.g.h.i.j");  // deeper than the decoder walks
    m.set(Field::kSessionId, "user.id");              // two fields at one path
  }
  return m;
}

struct Counts {
  size_t messages = 0, fast = 0, accepted = 0;
  std::array<size_t, kRejectReasonCount> rejected{};
};

}  // namespace

TEST_CASE("decoder: the fast path decodes exactly as simdjson alone, over a generated corpus") {
  const std::vector<std::string> contract_corpus = corpus(false);
  const std::vector<std::string> remapped_corpus = corpus(true);
  struct Setting {
    const char* name;
    const std::vector<std::string>& messages;
    FieldMap fields;
    std::size_t max_bytes;
    FieldSet decoded;
    bool typical;  // most messages decode, by either path (checked below)
  };
  const std::vector<Setting> settings = {
      {"contract, every field", contract_corpus, FieldMap(), 65536, kAllFields, true},
      {"contract, required fields only", contract_corpus, FieldMap(), 65536, kAlwaysDecodedFields,
       true},
      {"remapped portal", remapped_corpus, remapped_fields(false), 65536, kAllFields, true},
      {"remapped portal, odd paths", remapped_corpus, remapped_fields(true), 65536, kAllFields,
       false},
      {"contract, odd paths", contract_corpus, remapped_fields(true), 65536, kAllFields, false},
      {"max_message_bytes 800", contract_corpus, FieldMap(), 800, kAllFields, false},
  };
  for (const Setting& s : settings) {
    const std::string setting = s.name;
    CAPTURE(setting);
    const std::vector<std::string>& messages = s.messages;
    EventDecoder fast(s.fields, s.max_bytes, s.decoded, JsonReader::kFastPathFirst);
    EventDecoder simd(s.fields, s.max_bytes, s.decoded, JsonReader::kSimdjsonOnly);
    Counts c;
    size_t differences = 0;
    for (size_t i = 0; i < messages.size(); ++i) {
      const std::string& msg = messages[i];
      const bool padded = i % 2 == 1;
      const char filler = i % 4 == 1 ? '"' : ' ';
      const std::uint64_t fast_before = fast.stats().fast_path_decoded;
      const std::string a = testing::decode_as_text(fast, msg, padded, filler);
      const std::string b = testing::decode_as_text(simd, msg, padded, filler);
      ++c.messages;
      c.fast += fast.stats().fast_path_decoded - fast_before;
      if (b.rfind("rejected ", 0) == 0) {
        for (size_t r = 0; r < kRejectReasonCount; ++r)
          if (b.rfind("rejected " + std::string(to_string(static_cast<RejectReason>(r))) + ":",
                      0) == 0)
            ++c.rejected[r];
      } else {
        ++c.accepted;
      }
      if (a != b && ++differences <= 5) {
        INFO("message " << i << ": " << msg);
        INFO("fast path:     " << a);
        INFO("simdjson only: " << b);
        FAIL_CHECK("the fast path and simdjson disagree");
      }
    }
    CHECK(differences == 0);
    CHECK(simd.stats().fast_path_decoded == 0);
    INFO(setting << ": " << c.messages << " messages, " << c.fast << " by the fast path, "
                 << c.accepted << " accepted");
    // The corpus is not vacuous: both paths and every outcome are exercised.
    CHECK(c.messages > 30000);
    CHECK(c.fast > 0);
    if (!s.typical) continue;
    CHECK(c.fast > c.messages / 6);
    CHECK(c.messages - c.fast > c.messages / 5);
    CHECK(c.accepted > c.messages / 4);
    for (RejectReason r :
         {RejectReason::kNotJson, RejectReason::kNotObject, RejectReason::kMissingField,
          RejectReason::kBadTimestamp, RejectReason::kInvalidField}) {
      CAPTURE(to_string(r));
      CHECK(c.rejected[static_cast<size_t>(r)] > 0);
    }
  }
}

TEST_CASE("decoder: documents read by their shape decode exactly as simdjson alone") {
  // A producer's stream: the same few kinds of document (sign-ins, views, MFA, changes) written
  // the same way, so that most are read by the shapes of earlier ones; among them the same events
  // changed in one place each (a value of another type or length, a key more or less, white
  // space, damaged bytes), which leave the shapes at every point a shape can be left.
  sim::PortalSimulator simulator(portal_stream(11));
  Rng rng(20261124);
  std::vector<std::string> messages;
  std::string line;
  for (int n = 0; n < 6000; ++n) {
    REQUIRE(simulator.next(line) >= 0);
    messages.push_back(line);
    if (n % 4 != 3) continue;
    Json j = JsonReaderForTests(line).parse();
    std::string changed;
    switch (pick(rng, 4)) {
      case 0:
        mutate_tree(j, rng);
        changed = Writer(rng, Style()).write(j);
        break;
      case 1: {
        static const std::vector<std::string> paths = field_paths();
        static const std::vector<Json> values = every_value();
        set_path(j, paths[pick(rng, paths.size())], values[pick(rng, values.size())]);
        changed = Writer(rng, Style()).write(j);
        break;
      }
      case 2:
        changed = line;
        mutate_bytes(changed, rng);
        break;
      default: {
        Style style;
        style.whitespace = 1 + static_cast<int>(pick(rng, 3));
        changed = Writer(rng, style).write(j);
        break;
      }
    }
    messages.push_back(std::move(changed));
  }
  
  for (const FieldSet decoded : {kAllFields, kAlwaysDecodedFields}) {
    EventDecoder fast(FieldMap(), 65536, decoded, JsonReader::kFastPathFirst);
    EventDecoder simd(FieldMap(), 65536, decoded, JsonReader::kSimdjsonOnly);
    size_t differences = 0;
    for (size_t i = 0; i < messages.size(); ++i) {
      const std::string a = testing::decode_as_text(fast, messages[i], i % 2 == 1, ' ');
      const std::string b = testing::decode_as_text(simd, messages[i], i % 2 == 1, ' ');
      if (a != b && ++differences <= 5) {
        INFO("message " << i << ": " << messages[i]);
        INFO("fast path:     " << a);
        INFO("simdjson only: " << b);
        FAIL_CHECK("the shape path and simdjson disagree");
      }
    }
    CHECK(differences == 0);
    const DecoderStats& st = fast.stats();
    INFO(messages.size() << " messages, " << st.fast_path_decoded << " by the fast path, "
                         << st.shape_decoded << " of them by their shapes");
    // Most of the producer's stream is read by its shapes; not every changed message is.
    CHECK(st.shape_decoded > messages.size() * 6 / 10);
    CHECK(st.fast_path_decoded - st.shape_decoded > messages.size() / 40);
    CHECK(st.fast_path_decoded < messages.size());
  }
  // The fast path compiled for any x86-64 (its literals compared 16 bytes at a time) reads the
  // same as the one for AVX2 (32 at a time), on a machine that has AVX2.
  if (!__builtin_cpu_supports("avx2")) return;
  DecoderStats generic_stats, haswell_stats;
  const auto generic = decoder_generic::make_backend(FieldMap(), 65536, kAllFields, &generic_stats);
  const auto haswell = decoder_haswell::make_backend(FieldMap(), 65536, kAllFields, &haswell_stats);
  size_t differences = 0;
  for (size_t i = 0; i < messages.size(); ++i) {
    Event a, b;
    const std::string x = testing::describe_decode(generic->decode(messages[i], false, a), a);
    const std::string y = testing::describe_decode(haswell->decode(messages[i], false, b), b);
    if (x != y && ++differences <= 5) {
      INFO("message " << i << ": " << messages[i]);
      INFO("generic: " << x);
      INFO("haswell: " << y);
      FAIL_CHECK("the two kernels' fast paths disagree");
    }
  }
  CHECK(differences == 0);
  CHECK(generic_stats.shape_decoded > messages.size() * 6 / 10);
  CHECK(generic_stats.shape_decoded == haswell_stats.shape_decoded);
}

TEST_CASE("decoder: coordinates and other numbers read by the fast path are simdjson's to the last bit") {
  // Decimals of 1 to 17 digits, signs, leading zeros after the point, integers: the fast path's
  // own conversion (up to 15 digits) and from_chars (beyond) against simdjson's.
  Rng rng(20261124);
  EventDecoder fast(FieldMap(), 65536, kAllFields, JsonReader::kFastPathFirst);
  EventDecoder simd(FieldMap(), 65536, kAllFields, JsonReader::kSimdjsonOnly);
  // A number whose integer part is below `below`, with frac_digits after the point.
  const auto number = [&rng](std::uint64_t below, int frac_digits) {
    std::string n = (chance(rng, 50) ? "-" : "") + std::to_string(rng() % below);
    if (frac_digits > 0) {
      n += '.';
      for (int i = 0; i < frac_digits; ++i) n += static_cast<char>('0' + pick(rng, 10));
    }
    return n;
  };
  size_t differences = 0, accepted = 0;
  for (int i = 0; i < 20000; ++i) {
    const std::string msg =
        R"({"@timestamp":"2026-12-21T00:00:00Z","event":{"action":"login","outcome":"success"},"user":{"name":"a"},)"
        R"("source":{"ip":"10.0.0.1","geo":{"location":{"lat":)" + number(90, static_cast<int>(pick(rng, 17))) +
        R"(,"lon":)" + number(180, static_cast<int>(pick(rng, 17))) + R"(}},"as":{"number":)" +
        std::to_string(1 + rng() % 4294967295ull) + R"(}},"http":{"response":{"status_code":)" +
        std::to_string(100 + pick(rng, 900)) + "}}}";
    const std::string a = testing::decode_as_text(fast, msg, false);
    const std::string b = testing::decode_as_text(simd, msg, false);
    accepted += b.find("has_geo=1:1") != std::string::npos;
    if (a != b && ++differences <= 5) {
      INFO(msg);
      INFO("fast path:     " << a);
      INFO("simdjson only: " << b);
      FAIL_CHECK("the fast path and simdjson read a number differently");
    }
  }
  CHECK(differences == 0);
  CHECK(fast.stats().fast_path_decoded > 15000);
  CHECK(accepted > 10000);
}

}  // namespace portalwatch
