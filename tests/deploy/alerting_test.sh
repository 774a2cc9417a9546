#!/bin/bash
# CTest alert_rules: the Prometheus rules are valid (promtool check rules), behave as their unit
# tests say (promtool test rules), and each alert carries what on-call needs (alert_rules_check.py).
# Usage: alerting_test.sh PROMTOOL SOURCE_DIR   (PROMTOOL empty: not installed)
set -u
PROMTOOL=$1
SRC=$2
if [ -z "$PROMTOOL" ] || [ ! -x "$PROMTOOL" ]; then
  echo "FAIL: promtool not found; it is in the Debian package prometheus, which tools/setup installs" >&2
  exit 1
fi
rc=0
"$PROMTOOL" check rules "$SRC/deploy/prometheus/portalwatch-alerts.yml" || rc=1
# promtool finds the rules file relative to the test file.
"$PROMTOOL" test rules "$SRC/deploy/prometheus/portalwatch-alerts.test.yml" || rc=1
python3 "$SRC/tests/deploy/alert_rules_check.py" "$SRC/deploy/prometheus/portalwatch-alerts.yml" \
  "$SRC/deploy/prometheus/portalwatch-alerts.test.yml" "$SRC/README.md" || rc=1
exit $rc
