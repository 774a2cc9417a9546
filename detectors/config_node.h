// Typed, validating reads of YAML configuration with errors that name file, line, column and key
// path, all collected at once. Unknown keys are errors.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace portalwatch {

struct Diagnostic {
  int line = 0;    ///< 1-based; 0 when unknown
  int column = 0;  ///< 1-based
  std::string key_path;  ///< "detectors[0].window_seconds"
  std::string message;
};

/// All errors found in one configuration source.
class Diagnostics {
 public:
  /// file names the source in messages; text (optional) lets messages quote the offending line.
  explicit Diagnostics(std::string file = "<config>", std::string_view text = {});
  void error(const YAML::Mark& mark, std::string key_path, std::string message);
  bool ok() const { return errors_.empty(); }
  const std::vector<Diagnostic>& errors() const { return errors_; }
  const std::string& file() const { return file_; }
  /// "file:line:col: key: message" lines, each followed by the quoted source line and a caret.
  std::string format() const;

 private:
  std::string file_;
  std::vector<std::string> lines_;
  std::vector<Diagnostic> errors_;
};

/// A node of the configuration tree with its key path, for error messages.
class ConfigNode {
 public:
  // yaml-cpp hands out "invalid" nodes for missing keys, which throw on most calls; they are kept
  // here as plain undefined nodes.
  ConfigNode(YAML::Node node, std::string path, Diagnostics& diags)
      : node_(node.IsDefined() ? std::move(node) : YAML::Node(YAML::NodeType::Undefined)),
        path_(std::move(path)),
        diags_(&diags) {}

  bool defined() const { return node_.IsDefined() && !node_.IsNull(); }
  bool is_map() const { return node_.IsMap(); }
  bool is_sequence() const { return node_.IsSequence(); }
  const YAML::Node& yaml() const { return node_; }
  const std::string& path() const { return path_; }
  Diagnostics& diags() const { return *diags_; }
  YAML::Mark mark() const { return node_.Mark(); }
  void error(std::string message) const { diags_->error(node_.Mark(), path_, std::move(message)); }

  /// The elements of a sequence ("path[i]"); an error if this is defined and not a sequence.
  std::vector<ConfigNode> elements() const;
  /// Scalar conversions; each reports a type error and returns nullopt on failure.
  std::optional<std::string> as_string() const;
  std::optional<std::int64_t> as_int(std::int64_t min = std::numeric_limits<std::int64_t>::min(),
                                     std::int64_t max = std::numeric_limits<std::int64_t>::max()) const;
  std::optional<double> as_double(double min, double max) const;
  std::optional<bool> as_bool() const;
  std::optional<std::vector<std::string>> as_string_list() const;

 private:
  YAML::Node node_;
  std::string path_;
  Diagnostics* diags_;
};

/// Reads the keys of one mapping. Every key read is remembered; finish() (or the destructor)
/// reports each key that nobody asked for as an unknown key, with a suggestion when one is close.
class MapReader {
 public:
  /// An undefined or null node reads as an empty mapping (every value takes its default).
  explicit MapReader(const ConfigNode& node);
  ~MapReader() { finish(); }
  MapReader(const MapReader&) = delete;
  MapReader& operator=(const MapReader&) = delete;

  /// The child node for key (possibly undefined); marks key as known.
  ConfigNode child(std::string_view key);
  bool has(std::string_view key);

  std::string get_string(std::string_view key, std::string def);
  std::int64_t get_int(std::string_view key, std::int64_t def,
                       std::int64_t min = std::numeric_limits<std::int64_t>::min(),
                       std::int64_t max = std::numeric_limits<std::int64_t>::max());
  double get_double(std::string_view key, double def, double min, double max);
  bool get_bool(std::string_view key, bool def);
  std::vector<std::string> get_string_list(std::string_view key, std::vector<std::string> def = {});
  /// A string restricted to a fixed set of words.
  std::string get_enum(std::string_view key, std::string def, const std::vector<std::string>& allowed);

  /// Marks every remaining key as known (for maps whose keys are data, e.g. properties).
  void accept_all_keys();
  void finish();
  const ConfigNode& node() const { return node_; }

 private:
  ConfigNode node_;
  std::set<std::string, std::less<>> known_;
  bool finished_ = false;
};

/// The closest of candidates to word (edit distance ≤ 2), for "did you mean" hints.
std::optional<std::string> closest_word(std::string_view word, const std::vector<std::string>& candidates);

}  // namespace portalwatch
