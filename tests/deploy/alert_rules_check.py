#!/usr/bin/env python3
"""What promtool does not check about portalwatch's alert rules: every alert has a severity of
critical, warning or info, a summary, a description and a runbook_url whose anchor is the alert's
own heading in the README's runbook; and the unit tests make every alert fire at least once and
check it silent at least once (a benign twin). Standard library only: the files are read line by
line, in the layout they are written in. Usage: alert_rules_check.py RULES.yml TESTS.yml README.md
"""

import re
import sys

SEVERITIES = {"critical", "warning", "info"}


def alerts_of(rules_path):
    alerts, current = {}, None
    with open(rules_path, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"\s*- alert:\s*(\S+)", line)
            if m:
                current = alerts.setdefault(m.group(1), {"annotations": {}})
                continue
            if re.match(r"\s*- (name|record):", line):
                current = None
            if current is None:
                continue
            m = re.match(r"\s+(severity|for):\s*(\S+)", line)
            if m:
                current[m.group(1)] = m.group(2).strip("\"'")
            m = re.match(r"\s+(summary|description|runbook_url):\s*(.+)", line)
            if m:
                current["annotations"][m.group(1)] = m.group(2).strip().strip("\"'")
    return alerts


def tested(tests_path):
    """alert name -> (evaluations where it fires, evaluations where it must not)."""
    fired, quiet = {}, {}
    name = None
    with open(tests_path, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"\s*- alertname:\s*(\S+)", line)
            if m:
                name = m.group(1)
                continue
            m = re.match(r"\s*exp_alerts:\s*(\[\])?\s*$", line)
            if m and name:
                (quiet if m.group(1) else fired)[name] = (quiet if m.group(1) else fired).get(name, 0) + 1
                name = None
    return fired, quiet


def readme_anchors(readme_path):
    """GitHub's and GitLab's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    anchors = set()
    with open(readme_path, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"#{1,6}\s+(.*?)\s*$", line)
            if m:
                anchors.add(re.sub(r"[^\w\- ]", "", m.group(1).lower()).replace(" ", "-"))
    return anchors


def main(argv):
    if len(argv) != 4:
        print(__doc__.strip().split("\n")[-1], file=sys.stderr)
        return 2
    alerts = alerts_of(argv[1])
    fired, quiet = tested(argv[2])
    anchors = readme_anchors(argv[3])
    problems = []
    if not alerts:
        problems.append(f"{argv[1]}: no alert found")
    bases = set()
    for name, a in alerts.items():
        if a.get("severity") not in SEVERITIES:
            problems.append(f"{name}: severity label {a.get('severity')!r}, not one of {sorted(SEVERITIES)}")
        for key in ("summary", "description", "runbook_url"):
            if key not in a["annotations"]:
                problems.append(f"{name}: no {key} annotation")
        url = a["annotations"].get("runbook_url", "")
        base, _, anchor = url.partition("#")
        bases.add(base)
        if anchor != name.lower():
            problems.append(f"{name}: runbook_url should end in #{name.lower()}, not {url!r}")
        elif anchor not in anchors:
            problems.append(f"{name}: the README has no heading for #{anchor} (add '### {name}' to its runbook)")
        if not fired.get(name):
            problems.append(f"{name}: no unit test in {argv[2]} expects it to fire")
        if not quiet.get(name):
            problems.append(f"{name}: no unit test in {argv[2]} expects it silent (a benign twin)")
    if len(bases) > 1:
        problems.append(f"runbook_url bases differ: {sorted(bases)}")
    for name in sorted(set(fired) | set(quiet)):
        if name not in alerts:
            problems.append(f"{argv[2]}: tests alert {name}, which the rules do not have")
    if problems:
        print(f"FAIL: {len(problems)} problem(s):", *problems, sep="\n")
        return 1
    print(f"ok: {len(alerts)} alerts, each with severity, summary, description, runbook entry, "
          "a test that fires it and one that must not")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
