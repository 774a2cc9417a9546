// `portalwatchd replay`: the configured detectors over JSONL files or stdin, in event time.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace portalwatch {

struct ReplayOptions {
  std::optional<std::string> config_path;  ///< none: the built-in default configuration
  std::vector<std::string> inputs;         ///< files (.jsonl or .jsonl.gz) or "-" for stdin
  bool progress = true;                    ///< a progress bar when stderr is a terminal
  std::string summary_format = "text";     ///< text or json, on stderr
};

/// Returns the process exit code: 0 ok, 1 an input could not be read, 2 bad configuration.
int run_replay(const ReplayOptions& options);

}  // namespace portalwatch
