// portalwatchctl's human-readable output: the results of control commands (schemas in README,
// "Operator control") as aligned text. Pure functions of the result JSON; whatever the daemon
// sends, nothing here crashes, and no control character reaches the terminal (finding summaries
// carry user names an attacker chose).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "daemon/control.h"
#include "detectors/time.h"

namespace portalwatch {

struct RenderOptions {
  bool color = false;  ///< ANSI colours for severities and health (a terminal without NO_COLOR)
  TimeMs now = 0;      ///< wall time for "2h ago" / "in 58m"; 0: absolute times only
};

/// What portalwatchctl prints for one result and how it exits.
struct Rendered {
  std::string out;  ///< for stdout
  std::string err;  ///< for stderr
  int exit_code =
      0;  ///< 0, or 1 when the result says the command did not do its job (a failed reload)
};

/// The human-readable form of a successful reply to request.
Rendered render_result(const ControlRequest& request, std::string_view result_json,
                       const RenderOptions& options);

/// One line (with its newline) for a finding, as the demo prints them, or for a decision.
std::string render_finding_line(std::string_view finding_json, const RenderOptions& options);
std::string render_decision_line(std::string_view decision_json, const RenderOptions& options);

/// The items of a findings/decisions result, each as one JSON object (for --json with --follow,
/// and to skip streamed items already listed).
std::vector<std::string> result_items(std::string_view result_json);
/// The "id" of a finding or decision object; empty if none.
std::string item_id(std::string_view item_json);

/// text with every control character (C0, DEL, C1) and every invalid UTF-8 byte replaced by '?'.
std::string terminal_safe(std::string_view text);

}  // namespace portalwatch
