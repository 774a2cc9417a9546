#!/usr/bin/env bash
# CTest package: builds the Debian package with CPack, checks what it holds, installs it with apt,
# checks the installed system, and purges it again so the machine is as it was and the test can
# run again.
#
#   package_test.sh BUILD_DIR VERSION
#
# The build and the checks of the .deb run as anyone; installing needs root (skipped otherwise,
# exit 77), and is skipped too when a portalwatch package is already installed (never replace or
# purge an administrator's installation). Run serially: it holds the dpkg lock.
set -euo pipefail

build="$1"
version="$2"
SKIP=77

fail() { echo "FAIL: $*" >&2; exit 1; }
for tool in cpack dpkg-deb dpkg-shlibdeps; do
  command -v "$tool" >/dev/null || fail "$tool not found (Debian packages cmake, dpkg-dev; tools/setup installs them)"
done

# Another apt or dpkg at work (an engineer's tools/setup) is waited for, not failed on.
apt_get() { DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -y -qq "$@"; }

tmp="$(mktemp -d)"
installed_here=no
user_existed=no
getent passwd portalwatch >/dev/null && user_existed=yes
cleanup() {
  if [ "$installed_here" = yes ]; then
    echo "== purging (cleanup)"
    apt_get purge portalwatch >/dev/null 2>&1 || true
    if [ "$user_existed" = no ]; then userdel portalwatch 2>/dev/null || true; groupdel portalwatch 2>/dev/null || true; fi
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

echo "== cpack -G DEB"
cpack --config "$build/CPackConfig.cmake" -G DEB -B "$tmp" >"$tmp/cpack.log" 2>&1 || { cat "$tmp/cpack.log" >&2; fail "cpack failed"; }
arch="$(dpkg --print-architecture)"
deb="$tmp/portalwatch_${version}_${arch}.deb"
[ -f "$deb" ] || { ls -l "$tmp" >&2; fail "no $deb"; }
echo "$(basename "$deb"): $(stat -c %s "$deb") bytes"

echo "== dpkg-deb -I"
dpkg-deb -I "$deb"
field() { dpkg-deb -f "$deb" "$1"; }
[ "$(field Package)" = portalwatch ] || fail "Package: $(field Package)"
[ "$(field Version)" = "$version" ] || fail "Version: $(field Version), expected $version"
[ "$(field Architecture)" = "$arch" ] || fail "Architecture: $(field Architecture)"
depends="$(field Depends)"
for lib in libc6 libstdc++6 librdkafka librocksdb libsystemd0 libssl3 libmaxminddb0 libyaml-cpp; do
  grep -q "$lib" <<<"$depends" || fail "Depends: has no $lib: $depends"
done
grep -q 'systemd | systemd-standalone-sysusers | systemd-sysusers' <<<"$depends" || fail "Depends: has no sysusers provider"
grep -qE '(^|, )lib[a-z0-9+.-]*-dev' <<<"$depends" && fail "Depends: names a -dev package: $depends"
mkdir "$tmp/control"
dpkg-deb -e "$deb" "$tmp/control"
[ "$(cat "$tmp/control/conffiles")" = /etc/portalwatch/portalwatch.yaml ] || fail "conffiles: $(cat "$tmp/control/conffiles")"
for script in postinst prerm postrm; do
  [ -x "$tmp/control/$script" ] || fail "no executable $script"
done

echo "== dpkg-deb -c"
# Every file, exactly: nothing of the tests or benchmarks, nothing missing.
dpkg-deb -c "$deb" | awk '$1 ~ /^-/ { print $6 " " $1 }' | sort >"$tmp/files"
cat "$tmp/files"
cat >"$tmp/expected" <<LIST
./etc/portalwatch/portalwatch.yaml -rw-r--r--
./lib/systemd/system/portalwatch.service -rw-r--r--
./usr/bin/portalwatchctl -rwxr-xr-x
./usr/bin/portalwatchd -rwxr-xr-x
./usr/lib/portalwatch/hooks/idp-revoke-sessions -rwxr-xr-x
./usr/lib/portalwatch/hooks/nginx-maintenance -rwxr-xr-x
./usr/lib/sysusers.d/portalwatch.conf -rw-r--r--
./usr/lib/tmpfiles.d/portalwatch.conf -rw-r--r--
./usr/share/doc/portalwatch/README.md -rw-r--r--
./usr/share/doc/portalwatch/changelog.gz -rw-r--r--
./usr/share/doc/portalwatch/copyright -rw-r--r--
./usr/share/doc/portalwatch/examples/hooks.conf -rw-r--r--
./usr/share/doc/portalwatch/hooks/README.md -rw-r--r--
./usr/share/man/man8/portalwatchctl.8.gz -rw-r--r--
./usr/share/man/man8/portalwatchd.8.gz -rw-r--r--
LIST
sort -o "$tmp/expected" "$tmp/expected"
diff -u "$tmp/expected" "$tmp/files" || fail "the package's files differ from the list above (- expected, + found)"
dpkg-deb -c "$deb" | awk '$2 != "root/root" { bad = 1; print } END { exit bad }' || fail "files not owned by root"

if [ "$(id -u)" -ne 0 ]; then
  echo "SKIP: installing the package needs root (the package was built and its contents checked)"
  exit $SKIP
fi
if dpkg-query -W -f='${Status}' portalwatch 2>/dev/null | grep -q 'install ok'; then
  echo "SKIP: a portalwatch package is installed on this machine; not replacing or purging it" \
       "(the package was built and its contents checked)"
  exit $SKIP
fi
command -v apt-get >/dev/null || fail "no apt-get"

echo "== apt-get install ./$(basename "$deb")"
installed_here=yes
apt_get install "$deb" >"$tmp/apt.log" 2>&1 || { cat "$tmp/apt.log" >&2; fail "apt-get install failed"; }
grep -iE 'warning|error' "$tmp/apt.log" | grep -v 'Download is performed unsandboxed' || true
dpkg-query -W -f='${Status} ${Version}\n' portalwatch

echo "== the installed system"
/usr/bin/portalwatchd --version
/usr/bin/portalwatchd check-config /etc/portalwatch/portalwatch.yaml || fail "check-config of the installed configuration"
entry="$(getent passwd portalwatch)" || fail "no portalwatch user"
echo "$entry"
IFS=: read -r _ _ uid gid _ home shell <<<"$entry"
sys_uid_max="$(awk '$1 == "SYS_UID_MAX" { print $2 }' /etc/login.defs 2>/dev/null)"
[ "$uid" -le "${sys_uid_max:-999}" ] || fail "uid $uid is not a system uid (SYS_UID_MAX ${sys_uid_max:-999})"
[ "$home" = /var/lib/portalwatch ] || fail "home $home"
case "$shell" in /usr/sbin/nologin | /sbin/nologin | /bin/false) ;; *) fail "login shell $shell" ;; esac
[ "$(getent group portalwatch | cut -d: -f3)" = "$gid" ] || fail "no portalwatch group $gid"
check_stat() {
  local got
  got="$(stat -c '%U:%G %a' "$1")" || fail "$1 missing"
  [ "$got" = "$2" ] || fail "$1 is $got, expected $2"
  echo "$1 $got"
}
check_stat /var/lib/portalwatch "portalwatch:portalwatch 750"
check_stat /var/log/portalwatch "portalwatch:portalwatch 750"
check_stat /etc/portalwatch/portalwatch.yaml "root:portalwatch 640"
check_stat /usr/lib/portalwatch/hooks/nginx-maintenance "root:root 755"
man -w portalwatchd || fail "man -w portalwatchd"
man -w portalwatchctl || fail "man -w portalwatchctl"
# The installed unit, as systemd would load it: its program and its man pages are there now.
if command -v systemd-analyze >/dev/null; then
  out="$(systemd-analyze verify /lib/systemd/system/portalwatch.service 2>&1)" || fail "systemd-analyze verify: $out"
  [ -z "$out" ] || fail "systemd-analyze verify: $out"
  echo "systemd-analyze verify /lib/systemd/system/portalwatch.service: clean"
fi
# Not started or enabled by the installation (the configuration needs a Kafka cluster first).
[ ! -e /etc/systemd/system/multi-user.target.wants/portalwatch.service ] || fail "the service was enabled at installation"
set +e
/usr/bin/portalwatchctl status >/dev/null 2>"$tmp/ctl.err"
rc=$?
set -e
[ "$rc" -eq 3 ] || fail "portalwatchctl status with no daemon: exit $rc, expected 3: $(cat "$tmp/ctl.err")"
echo "portalwatchctl status: exit 3 ($(cat "$tmp/ctl.err"))"

echo "== the installed daemon runs as the unit runs it: user portalwatch, no privilege, umask 0077"
# No systemd is PID 1 here, so what the unit's User=, Group=, NoNewPrivileges=, empty
# CapabilityBoundingSet=, UMask= and RuntimeDirectory= do is done by setpriv and install; the
# configuration is the installed one with the broker's address (an embedded broker).
command -v kcat >/dev/null || fail "kcat not found (Debian package kcat; tools/setup installs it)"
/usr/bin/portalwatchd broker --topic portal-events --bootstrap-file "$tmp/boot" >/dev/null 2>&1 &
broker_pid=$!
for _ in $(seq 1 100); do [ -s "$tmp/boot" ] && break; sleep 0.1; done
boot="$(cat "$tmp/boot")"
install -d -o portalwatch -g portalwatch -m 0755 /run/portalwatch
run_cfg=/var/lib/portalwatch/package-test.yaml
sed -e "s|bootstrap_servers: \"127.0.0.1:9092\"|bootstrap_servers: \"$boot\"|" \
    -e 's|listen: "127.0.0.1:9741"|listen: "127.0.0.1:0"|' /etc/portalwatch/portalwatch.yaml >"$run_cfg"
grep -q "$boot" "$run_cfg" || fail "could not point the configuration at the embedded broker"
chown root:portalwatch "$run_cfg"
chmod 0640 "$run_cfg"
(umask 0077 && exec setpriv --reuid=portalwatch --regid=portalwatch --init-groups --no-new-privs \
   --inh-caps=-all --ambient-caps=-all --bounding-set=-all \
   /usr/bin/portalwatchd run --config "$run_cfg") 2>"$tmp/run.log" &
run_pid=$!
for _ in $(seq 1 150); do [ -S /run/portalwatch/control.sock ] && break; sleep 0.1; done
python3 - <<'PY' | kcat -P -b "$boot" -t portal-events -K $'\t'
import json, datetime
now = datetime.datetime.now(datetime.timezone.utc)
for i in range(12):
    t = (now + datetime.timedelta(milliseconds=i)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    print("pkg-victim\t" + json.dumps({"@timestamp": t, "event": {"action": "login", "outcome": "failure", "reason": "bad_password"},
          "user": {"name": "pkg-victim"}, "source": {"ip": "203.0.113.81"}}))
PY
for _ in $(seq 1 150); do grep -q '"detector":"brute_force"' "$tmp/run.log" && break; sleep 0.1; done
grep -q '"detector":"brute_force"' "$tmp/run.log" || { cat "$tmp/run.log" >&2; fail "the daemon run as portalwatch found nothing"; }
[ "$(ps -o user= -p "$run_pid")" = portalwatch ] || fail "the daemon runs as $(ps -o user= -p "$run_pid")"
grep -qE '^CapEff:\s+0+$' "/proc/$run_pid/status" || fail "the daemon has capabilities: $(grep Cap "/proc/$run_pid/status")"
grep -qE '^NoNewPrivs:\s+1$' "/proc/$run_pid/status" || fail "no_new_privs is not set"
[ "$(stat -c %U /var/lib/portalwatch/state)" = portalwatch ] || fail "the state store is not portalwatch's"
/usr/bin/portalwatchctl status >"$tmp/status.txt" 2>&1 || { cat "$tmp/status.txt" >&2; fail "portalwatchctl status as root"; }
if setpriv --reuid=nobody --regid=nogroup --clear-groups /usr/bin/portalwatchctl status >/dev/null 2>&1; then
  fail "a user outside the portalwatch group could use the control socket"
fi
kill -TERM "$run_pid"
wait "$run_pid" || fail "the daemon run as portalwatch did not exit 0 on SIGTERM"
kill -TERM "$broker_pid"; wait "$broker_pid" 2>/dev/null || true
rm -f "$run_cfg"
rm -rf /run/portalwatch
echo "ran as portalwatch (uid $uid), CapEff 0, NoNewPrivs 1: consumed, found the brute force, answered root's portalwatchctl and refused nobody's"

echo "== the configuration is a conffile: a local change survives reinstalling"
echo "# changed by the package test" >>/etc/portalwatch/portalwatch.yaml
apt_get install --reinstall -o Dpkg::Options::=--force-confold "$deb" >"$tmp/apt.log" 2>&1 ||
  { cat "$tmp/apt.log" >&2; fail "reinstalling failed"; }
tail -n 1 /etc/portalwatch/portalwatch.yaml | grep -qx '# changed by the package test' || fail "the local change was lost"
check_stat /etc/portalwatch/portalwatch.yaml "root:portalwatch 640"

echo "== apt-get purge portalwatch"
apt_get purge portalwatch >"$tmp/apt.log" 2>&1 || { cat "$tmp/apt.log" >&2; fail "apt-get purge failed"; }
installed_here=no
for gone in /usr/bin/portalwatchd /usr/bin/portalwatchctl /etc/portalwatch /var/lib/portalwatch /var/log/portalwatch \
            /lib/systemd/system/portalwatch.service /usr/lib/portalwatch /usr/share/doc/portalwatch; do
  [ ! -e "$gone" ] || fail "$gone is still there after purge"
done
if dpkg-query -W -f='${Status}' portalwatch 2>/dev/null | grep -q 'install ok'; then fail "still installed"; fi
# The postrm leaves the system user (as Debian packages do); this test made it, so it removes it.
if [ "$user_existed" = no ]; then
  userdel portalwatch
  getent group portalwatch >/dev/null && groupdel portalwatch
fi
echo "ok: built, installed, checked and purged $(basename "$deb")"
