#!/usr/bin/env bash
# CTest deploy_systemd: the systemd files in deploy/systemd, checked with systemd's own tools
# (Debian systemd 252, which tools/setup installs; none of them needs systemd running).
#
#   systemd_test.sh SOURCE_DIR PORTALWATCHD PACKAGED_CONFIG MAN_DIR
#
# - `systemd-analyze verify` on the unit. verify checks that ExecStart='s program exists and that
#   the man pages of Documentation= open, so it runs on a copy whose /usr/bin/portalwatchd is the
#   binary just built (nothing else changes), with MANPATH at the man pages just configured.
# - `systemd-analyze security --offline=yes`: the exposure figure is printed and must be at most
#   2.0 (--threshold=20 makes systemd-analyze itself fail above it, too).
# - sysusers.d: the user is made in a scratch root: a system uid, /usr/sbin/nologin.
# - tmpfiles.d: the directories are made in that root, owned by that user, mode 0750.
# - the packaged configuration passes check-config.
set -euo pipefail

src="$1"
portalwatchd="$2"
packaged_config="$3"
man_dir="$4"
unit="$src/deploy/systemd/portalwatch.service"
max_exposure=2.0

fail() { echo "FAIL: $*" >&2; exit 1; }
for tool in systemd-analyze systemd-sysusers systemd-tmpfiles; do
  command -v "$tool" >/dev/null || fail "$tool not found (Debian package systemd; tools/setup installs it)"
done
[ -x "$portalwatchd" ] || fail "$portalwatchd is not built"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "== systemd-analyze verify (ExecStart= pointed at $portalwatchd)"
mkdir -p "$tmp/units" "$tmp/man/man8"
cp "$man_dir"/*.8 "$tmp/man/man8/"
sed "s|/usr/bin/portalwatchd|$portalwatchd|g" "$unit" >"$tmp/units/portalwatch.service"
grep -q "^ExecStart=$portalwatchd run --config /etc/portalwatch/portalwatch.yaml$" "$tmp/units/portalwatch.service" ||
  fail "ExecStart= of the unit is not '/usr/bin/portalwatchd run --config /etc/portalwatch/portalwatch.yaml'"
# verify prints problems as warnings and exits 0 on some of them: any output is a failure.
verify_out="$(MANPATH="$tmp/man" systemd-analyze verify "$tmp/units/portalwatch.service" 2>&1)" ||
  fail "systemd-analyze verify: $verify_out"
[ -z "$verify_out" ] || fail "systemd-analyze verify: $verify_out"
echo "clean"

echo "== systemd-analyze security --offline=yes"
set +e
security_out="$(systemd-analyze security --offline=yes --threshold=20 "$unit" 2>&1)"
security_rc=$?
set -e
printf '%s\n' "$security_out" | grep -E '^✗' || true
exposure="$(printf '%s\n' "$security_out" | sed -n 's/^→ Overall exposure level for portalwatch.service: \([0-9.]*\).*/\1/p')"
[ -n "$exposure" ] || fail "no exposure figure in: $security_out"
echo "exposure: $exposure (at most $max_exposure)"
awk -v e="$exposure" -v m="$max_exposure" 'BEGIN { exit !(e <= m) }' || fail "exposure $exposure is above $max_exposure"
[ "$security_rc" -eq 0 ] || fail "systemd-analyze security exited $security_rc"

echo "== sysusers.d"
root="$tmp/root"
mkdir -p "$root/etc"
systemd-sysusers --root="$root" - <"$src/deploy/systemd/portalwatch.sysusers"
entry="$(grep '^portalwatch:' "$root/etc/passwd")" || fail "sysusers made no portalwatch user"
echo "$entry"
IFS=: read -r _ _ uid gid _ home shell <<<"$entry"
[ "$uid" -lt 1000 ] || fail "uid $uid is not a system uid"
[ "$shell" = /usr/sbin/nologin ] || fail "login shell $shell"
[ "$home" = /var/lib/portalwatch ] || fail "home $home"
grep -q "^portalwatch:x:$gid:" "$root/etc/group" || fail "no portalwatch group with gid $gid"

echo "== tmpfiles.d"
systemd-tmpfiles --root="$root" --create - <"$src/deploy/systemd/portalwatch.tmpfiles"
for d in var/lib/portalwatch var/log/portalwatch; do
  got="$(stat -c '%a %u:%g' "$root/$d")" || fail "/$d not made"
  [ "$got" = "750 $uid:$gid" ] || fail "/$d is $got, expected 750 $uid:$gid"
  echo "/$d $got"
done
# The unit makes the same directories with the same modes (StateDirectory=, LogsDirectory=).
grep -qx 'StateDirectoryMode=0750' "$unit" || fail "StateDirectoryMode= differs from tmpfiles"
grep -qx 'LogsDirectoryMode=0750' "$unit" || fail "LogsDirectoryMode= differs from tmpfiles"

echo "== the packaged configuration agrees with the unit"
"$portalwatchd" check-config "$packaged_config"
grep -qx '  path: /var/lib/portalwatch/state' "$packaged_config" || fail "state.path is not in StateDirectory="
grep -qx '  socket: /run/portalwatch/control.sock' "$packaged_config" || fail "control.socket is not in RuntimeDirectory="
grep -qx '  audit_log: /var/log/portalwatch/audit.jsonl' "$packaged_config" || fail "audit_log is not in LogsDirectory="
echo "ok"
