#!/usr/bin/env python3
"""Every metric and label that the Grafana dashboard and the alert rules query is one the daemon
really exports.

Runs the real `portalwatchd demo` (embedded broker, simulated traffic with attacks, hooks), makes
one operator lockdown through `portalwatchctl` so that decisions are counted too, scrapes /metrics
until every queried metric has appeared (or the demo ends), and then checks, for every PromQL
expression of the dashboard (panel targets, annotations, template variables) and of the rules file:

- each metric name is a sample name in the scrape (so `x_bucket` must be a histogram's bucket);
- each label name in a selector exists on that metric (job and instance come from the scrape), and
  each value it matches with `=` or a regex of plain alternatives (`outcome=~"failure|timeout"`) is
  one the daemon exports for that label;
- each label in `by`/`without`/`on`/`ignoring`/`group_*` exists on some metric of the expression.

Metrics the demo cannot export are listed in NOT_IN_DEMO with the reason and their labels. Before
the real check, a misspelt copy of the dashboard must fail it (the check can fail). Standard library
only. Usage: dashboard_metrics.py PORTALWATCHD PORTALWATCHCTL DASHBOARD.json RULES.yml
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

# Metrics that the demo cannot export, with why and the labels they carry (daemon/metrics.cc).
NOT_IN_DEMO = {
    "portalwatch_geoip_lookups_total": (
        "registered only with a GeoIP database configured; the demo's addresses are invented and it configures none",
        {"database", "result"},
    ),
    "portalwatch_geoip_cache_hits_total": (
        "registered only with a GeoIP database configured; the demo configures none",
        set(),
    ),
}

# Labels Prometheus attaches to every scraped series (the target's), not in the exposition.
TARGET_LABELS = {"job", "instance"}
# Series Prometheus makes itself for each target.
SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}

# Aggregations may be followed by `by (...)` rather than their parenthesis, so they are words here.
AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk",
                "topk", "quantile"}
KEYWORDS = AGGREGATIONS | {"and", "or", "unless", "bool", "offset", "inf", "nan", "atan2", "by", "without", "on",
                           "ignoring", "group_left", "group_right"}
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}

TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<range>\[[^\]]*\])
  | (?P<num>(?:0x[0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)(?:[smhdwy]|ms)?)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>=~|!~|!=|==|>=|<=|[-+*/%^=<>(){},])
""", re.X)

# Grafana's interval variables stand where a duration would; other variables sit inside strings.
GRAFANA_DURATION = re.compile(r"\$__(rate_interval|interval|range)|\$\{__(rate_interval|interval|range)\}")


class Usage:
    """What one expression asks of the scrape."""

    def __init__(self, where, expr):
        self.where = where
        self.expr = expr
        self.metrics = {}        # metric name -> label names used in its selectors
        self.matchers = []       # (metric, label, operator, value) with the value unquoted
        self.grouping = set()    # label names in by/without/on/ignoring/group_*


def tokens(expr):
    expr = GRAFANA_DURATION.sub("5m", expr)
    pos, out = 0, []
    while pos < len(expr):
        m = TOKEN.match(expr, pos)
        if not m:
            raise ValueError(f"cannot read PromQL at {expr[pos:pos + 20]!r}")
        pos = m.end()
        if m.lastgroup != "ws":
            out.append((m.lastgroup, m.group()))
    return out


def analyse(where, expr):
    u = Usage(where, expr)
    toks = tokens(expr)
    i = 0
    while i < len(toks):
        kind, text = toks[i]
        nxt = toks[i + 1][1] if i + 1 < len(toks) else None
        if kind == "ident" and text in GROUPING and nxt == "(":
            i += 2
            while i < len(toks) and toks[i][1] != ")":
                if toks[i][0] == "ident":
                    u.grouping.add(toks[i][1])
                i += 1
        elif kind == "ident" and text == "label_values" and nxt == "(":
            # Grafana: label_values(metric_or_selector, label) or label_values(label).
            depth, j, args = 0, i + 2, [[]]
            while j < len(toks):
                t = toks[j][1]
                if t == ")" and depth == 0:
                    break
                depth += t in "({"
                depth -= t in ")}"
                if t == "," and depth == 0:
                    args.append([])
                else:
                    args[-1].append(toks[j])
                j += 1
            if len(args) == 2:
                sub = analyse(where, " ".join(t for _, t in args[0]))
                for m, labels in sub.metrics.items():
                    u.metrics.setdefault(m, set()).update(labels | {args[1][0][1]})
            i = j
        elif kind == "ident" and nxt == "(":
            pass  # a function or an aggregation
        elif kind == "ident" and text.lower() not in KEYWORDS:
            labels = u.metrics.setdefault(text, set())
            if nxt == "{":
                i += 2
                while i < len(toks) and toks[i][1] != "}":
                    if toks[i][0] == "ident" and i + 2 < len(toks) and toks[i + 1][1] in ("=", "!=", "=~", "!~"):
                        labels.add(toks[i][1])
                        u.matchers.append((text, toks[i][1], toks[i + 1][1], toks[i + 2][1][1:-1]))
                    i += 1
        elif kind == "op" and text == "{":
            raise ValueError(f"{where}: a selector without a metric name: {expr}")
        i += 1
    return u


def dashboard_expressions(path):
    with open(path, encoding="utf-8") as f:
        dash = json.load(f)  # also the JSON syntax check
    found = []

    def walk(node, where):
        if isinstance(node, dict):
            title = node.get("title") or node.get("name") or where
            for key, value in node.items():
                if key == "expr" and isinstance(value, str) and value.strip():
                    found.append((f"{path}: {title}", value))
                elif key == "query" and isinstance(value, str) and "label_values" in value:
                    found.append((f"{path}: variable {title}", value))
                else:
                    walk(value, title)
        elif isinstance(node, list):
            for item in node:
                walk(item, where)

    walk(dash, "dashboard")
    if not found:
        raise ValueError(f"{path}: no PromQL expression found")
    return found


def rule_expressions(path):
    """The `expr:` values of a rules file (plain, quoted, or a `|`/`>` block), without a YAML library."""
    found, alert = [], None
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"\s*-\s*(alert|record):\s*(\S+)", line)
        if m:
            alert = m.group(2)
        m = re.match(r"(\s*)expr:\s*(.*)$", line)
        if m:
            indent, rest = len(m.group(1)), m.group(2).strip()
            if rest[:1] in ("|", ">"):
                body = []
                i += 1
                while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
                    body.append(lines[i].strip())
                    i += 1
                found.append((f"{path}: {alert}", " ".join(body)))
                continue
            if rest[:1] in ("'", '"'):
                rest = rest[1:-1]
            found.append((f"{path}: {alert}", rest))
        i += 1
    alerts = sum(1 for line in lines if re.match(r"\s*-\s*(alert|record):", line))
    if len(found) != alerts or not found:
        raise ValueError(f"{path}: read {len(found)} expressions for {alerts} rules")
    return found


SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+\S+")


LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')
PLAIN_ALTERNATIVES = re.compile(r"^[A-Za-z0-9_.:-]+(\|[A-Za-z0-9_.:-]+)*$")


def parse_scrape(text, exported):
    """exported: sample name -> label name -> the values seen."""
    for line in text.splitlines():
        m = SAMPLE.match(line)
        if m:
            labels = exported.setdefault(m.group(1), {})
            for name, value in LABEL.findall(m.group(2) or ""):
                labels.setdefault(name, set()).add(value)


def check(usages, exported):
    """Returns the problems found, one line each."""
    known = {name: set(labels) for name, labels in exported.items()}
    for name, (_, labels) in NOT_IN_DEMO.items():
        known.setdefault(name, labels)
    problems = []
    for u in usages:
        available = set(TARGET_LABELS)
        for metric, labels in u.metrics.items():
            if metric in SYNTHETIC:
                available |= labels
                continue
            if metric not in known:
                problems.append(f"{u.where}: metric {metric} is not exported by portalwatchd\n    in: {u.expr}")
                continue
            have = known[metric] | TARGET_LABELS
            available |= have
            for label in sorted(labels - have):
                problems.append(f"{u.where}: {metric} has no label {label} (it has: {', '.join(sorted(known[metric])) or 'none'})\n    in: {u.expr}")
        for label in sorted(u.grouping - available):
            problems.append(f"{u.where}: no metric of the expression has the label {label} used in by/on/...\n    in: {u.expr}")
        for metric, label, op, value in u.matchers:
            seen = exported.get(metric, {}).get(label)
            if seen is None or label in TARGET_LABELS or op not in ("=", "=~") or "$" in value:
                continue
            if op == "=~" and not PLAIN_ALTERNATIVES.match(value):
                continue
            for v in sorted(set(value.split("|")) - seen):
                problems.append(f"{u.where}: {metric} never has {label}=\"{v}\" (it has: {', '.join(sorted(seen))})\n    in: {u.expr}")
    return problems


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.read().decode("utf-8")


def run_demo(portalwatchd, portalwatchctl, wanted, work):
    """Scrapes the demo until every wanted metric appeared; returns the union of every scrape."""
    out_path = os.path.join(work, "demo.out")
    with open(out_path, "w") as out, open(os.path.join(work, "demo.err"), "w") as err:
        demo = subprocess.Popen([portalwatchd, "demo", "--duration", "90", "--metrics-listen", "127.0.0.1:0"],
                                stdout=out, stderr=err, start_new_session=True)
    exported, port, socket, locked, released = {}, None, None, False, False
    try:
        deadline = time.monotonic() + 85
        while time.monotonic() < deadline and demo.poll() is None:
            time.sleep(0.5)
            with open(out_path) as f:
                text = f.read()
            if port is None:
                m = re.search(r"metrics: http://127\.0\.0\.1:(\d+)/metrics", text)
                port = m and int(m.group(1))
            if socket is None:
                m = re.search(r"portalwatchctl --socket (\S+) status", text)
                socket = m and m.group(1)
            if not port:
                continue
            try:
                parse_scrape(scrape(port), exported)
            except OSError:
                continue
            if socket and not locked and "portalwatch_events_received_total" in exported:
                # An operator's decision, on and off, through the real client: counted in
                # portalwatch_decisions_total and carried out by the demo's hooks.
                ctl = [portalwatchctl, "--socket", socket, "lockdown"]
                scope = ["--scope", "ip:192.0.2.77", "--reason", "dashboard_metrics test"]
                subprocess.run(ctl + ["on"] + scope + ["--ttl", "10m"], check=True, stdout=subprocess.DEVNULL)
                subprocess.run(ctl + ["off"] + scope, check=True, stdout=subprocess.DEVNULL)
                locked = True
                continue
            if locked and not released:
                released = True  # one more scrape after the decisions
                continue
            if locked and wanted <= set(exported):
                break
    finally:
        if demo.poll() is None:
            os.kill(demo.pid, signal.SIGTERM)
        try:
            demo.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
    # The demo keeps its hooks' files and its socket in a directory of its own, which it leaves.
    if socket and os.path.basename(os.path.dirname(socket)).startswith("portalwatch-demo-"):
        shutil.rmtree(os.path.dirname(socket), ignore_errors=True)
    if not port:
        raise RuntimeError(f"the demo never printed its metrics address; its output is in {work}")
    if not locked:
        raise RuntimeError(f"could not make an operator lockdown in the demo; its output is in {work}")
    return exported


def main(argv):
    if len(argv) != 5:
        print(__doc__.strip().split("\n")[-1], file=sys.stderr)
        return 2
    portalwatchd, portalwatchctl, dashboard, rules = argv[1:]
    exprs = dashboard_expressions(dashboard) + rule_expressions(rules)
    usages = [analyse(where, expr) for where, expr in exprs]
    wanted = {m for u in usages for m in u.metrics} - SYNTHETIC - set(NOT_IN_DEMO)
    print(f"{len(exprs)} expressions ({len(dashboard_expressions(dashboard))} in the dashboard), "
          f"{len(wanted)} metrics the demo must export; metrics not in the demo: "
          + "; ".join(f"{m} ({why})" for m, (why, _) in NOT_IN_DEMO.items()))

    with tempfile.TemporaryDirectory(prefix="dashboard-metrics-") as work:
        exported = run_demo(portalwatchd, portalwatchctl, wanted, work)

        # The check can fail: a misspelt metric and a label no metric has in a copy of the dashboard, and a
        # label value the daemon never exports.
        with open(dashboard, encoding="utf-8") as f:
            broken = f.read().replace("portalwatch_events_received_total", "portalwatch_event_received_total", 1)
            broken = broken.replace("sum by (reason)", "sum by (reasons)", 1)
        broken_path = os.path.join(work, "misspelt-dashboard.json")
        with open(broken_path, "w", encoding="utf-8") as f:
            f.write(broken)
        caught = check([analyse(w, e) for w, e in dashboard_expressions(broken_path)]
                       + [analyse("self-check", 'portalwatch_hook_runs_total{outcome="failed"}')], exported)
        for wrong in ("portalwatch_event_received_total", "label reasons", 'outcome="failed"'):
            if not any(wrong in p for p in caught):
                print(f"FAIL: the check did not catch {wrong} (misspelt on purpose); it said:", *caught, sep="\n")
                return 1

        problems = check(usages, exported)
    unused = sorted(m for m in exported if m.startswith("portalwatch_")
                    and not any(m in u.metrics for u in usages))
    if unused:
        print("exported but queried nowhere (fine, for the record): " + ", ".join(unused))
    if problems:
        print(f"FAIL: {len(problems)} problem(s):", *problems, sep="\n")
        return 1
    print(f"ok: every metric and label of {len(exprs)} expressions is exported by portalwatchd demo")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
