#!/usr/bin/env python3
"""portalwatchd run under systemd's notify protocol, with a test socket in systemd's place.

READY=1 once it consumes, WATCHDOG=1 about every half WatchdogSec, and the pings come from the
event loop: when the loop stalls (here its log writes block because nobody reads its stderr, as
when journald is stuck) the pings stop; when the stall ends they come back; STOPPING=1 at SIGTERM.

usage: notify_test.py PORTALWATCHD BOOTSTRAP WORKDIR
"""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

daemon, bootstrap, work = sys.argv[1], sys.argv[2], sys.argv[3]
failures = 0


def check(name, ok, detail=""):
    global failures
    print(("ok   - " if ok else "FAIL - ") + name + ("" if ok else ": " + str(detail)), flush=True)
    if not ok:
        failures += 1


sock_path = os.path.join(work, "notify.sock")
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(sock_path)
messages = []  # (monotonic time, datagram)
lock = threading.Lock()


def listen():
    while True:
        try:
            data = sock.recv(4096)
        except OSError:
            return
        with lock:
            messages.append((time.monotonic(), data.decode(errors="replace")))


threading.Thread(target=listen, daemon=True).start()


def pings_between(t0, t1):
    with lock:
        return [t for t, m in messages if t0 <= t < t1 and "WATCHDOG=1" in m.split("\n")]


def wait_for(word, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with lock:
            if any(word in m.split("\n") for _, m in messages):
                return True
        time.sleep(0.05)
    return False


config = os.path.join(work, "notify.yaml")
with open(config, "w") as f:
    f.write(f"""kafka:
  bootstrap_servers: "{bootstrap}"
  group_id: e2e-notify
  topics: [notify-events]
  alerts_topic: ""
  decisions_topic: ""
metrics:
  enabled: false
control:
  socket: "{work}/notify-ctl.sock"
detectors:
  - type: brute_force
""")

env = dict(os.environ, NOTIFY_SOCKET=sock_path, WATCHDOG_USEC="1000000")
env.pop("JOURNAL_STREAM", None)
# stderr is a pipe this test reads only when it chooses to: while it does not, the pipe fills and
# every log line the daemon writes blocks its event loop.
proc = subprocess.Popen([daemon, "run", "--config", config], env=env, stdout=subprocess.DEVNULL,
                        stderr=subprocess.PIPE)
drained = []


def drain():
    for line in proc.stderr:
        drained.append(line)


try:
    check("READY=1 once consuming", wait_for("READY=1", 30))
    time.sleep(0.2)
    now = time.monotonic()
    time.sleep(3)
    steady = pings_between(now, now + 3)
    check("WATCHDOG=1 about every half WatchdogSec (1 s) while running", 4 <= len(steady) <= 12, len(steady))
    with lock:
        status = [m for _, m in messages if m.startswith("STATUS=") or "\nSTATUS=" in m]
    check("STATUS= lines for systemctl status", bool(status), messages[:3])

    # 400 accounts × 10 failed passwords: 400 findings, each logged as a JSON line of ~450 bytes,
    # several times what the pipe holds.
    now_iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    lines = []
    for a in range(400):
        user = f"notify-victim-{a:03d}"
        for i in range(10):
            ev = {"@timestamp": f"{now_iso}.{i:03d}Z", "event": {"action": "login", "outcome": "failure",
                                                               "reason": "bad_password"},
                  "user": {"name": user}, "source": {"ip": f"203.0.113.{a % 250 + 1}"}}
            lines.append(user + "\t" + json.dumps(ev))
    subprocess.run(["kcat", "-P", "-b", bootstrap, "-t", "notify-events", "-K", "\t"],
                   input=("\n".join(lines) + "\n").encode(), check=True)
    # The loop stalls once the pipe is full; allow it time to get there, then watch three seconds.
    stalled = False
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not stalled:
        t = time.monotonic()
        time.sleep(3)
        stalled = len(pings_between(t, t + 3)) == 0
    check("a stalled event loop stops the watchdog pings (nothing for 3 s)", stalled)
    check("the process is still there (systemd would now restart it)", proc.poll() is None)

    threading.Thread(target=drain, daemon=True).start()
    t = time.monotonic()
    time.sleep(3)
    check("pings come back when the loop runs again", len(pings_between(t, t + 3)) >= 3,
          len(pings_between(t, t + 3)))
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(timeout=30)
    check("SIGTERM: exit 0", rc == 0, rc)
    check("STOPPING=1 at shutdown", wait_for("STOPPING=1", 2))
    findings = sum(1 for l in drained if b"finding {" in l)
    check("every finding was logged once the stall ended (400)", findings == 400, findings)
finally:
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    sock.close()

sys.exit(1 if failures else 0)
