#!/usr/bin/env bash
# CTest deploy_man_pages: the hand-written man pages (deploy/man, with the version filled in at
# configure time) against the executables they describe.
#
#   man_pages_test.sh MAN_DIR VERSION PORTALWATCHD PORTALWATCHCTL
#
# - groff (and man-db) format each page with every warning on and say nothing;
# - every command of `--help` (and of each command's --help, nested ones too) is the tag of an
#   entry in the page, and every option is the tag of one (`-c, --config FILE`);
# - the page names the version being built.
set -euo pipefail

man_dir="$1"
version="$2"
shift 2

fail() { echo "FAIL: $*" >&2; exit 1; }
command -v groff >/dev/null || fail "groff not found (Debian package groff-base; tools/setup installs it)"
command -v man >/dev/null || fail "man not found (Debian package man-db; tools/setup installs it)"

# The page as plain text: no hyphenation, long lines, no bold/underline.
render() { groff -man -Tutf8 -rHY=0 -rLL=300n -P-cbou "$1"; }

# Options (short and long, comma-separated; CLI11 shows a flag's default as {false}) and
# commands of one --help text.
help_options() { sed -n '/^Options:/,/^$/p' | sed -n 's/^  \(-[^ ]*\).*/\1/p' | sed 's/{[^}]*}//'; }
help_commands() { sed -n '/^Subcommands:/,/^$/p' | sed -n 's/^  \([a-z][a-z-]*\) .*/\1/p'; }

errors=0
check_page() {
  local exe="$1" name page text
  name="$(basename "$exe")"
  page="$man_dir/$name.8"
  [ -f "$page" ] || fail "no man page $page"
  echo "== $name.8"

  local warnings
  warnings="$(groff -man -Tutf8 -ww -z "$page" 2>&1)"
  [ -z "$warnings" ] || { echo "groff warnings:" >&2; echo "$warnings" >&2; errors=$((errors + 1)); }
  warnings="$(MANWIDTH=80 man --warnings -E UTF-8 -l "$page" 2>&1 >/dev/null)"
  [ -z "$warnings" ] || { echo "man warnings:" >&2; echo "$warnings" >&2; errors=$((errors + 1)); }
  grep -q "^\.TH .*\"portalwatch $version\"" "$page" || { echo "$page: .TH does not name portalwatch $version" >&2; errors=$((errors + 1)); }

  text="$(render "$page")"
  # Breadth-first over the command tree: "" (the executable itself), "run", "allowlist add"...
  local queue=("") path help opt short long sub
  while [ ${#queue[@]} -gt 0 ]; do
    path="${queue[0]}"
    queue=("${queue[@]:1}")
    # shellcheck disable=SC2086 # the path is words
    help="$("$exe" $path --help)"
    if [ -n "$path" ]; then
      # A command is the tag of an entry: an indented line that starts with it ("allowlist add
      # NETWORK", "findings, decisions [...]").
      local last="${path##* }" parent=""
      [ "$path" != "$last" ] && parent="${path% *} "
      if ! grep -qE "^ +(([a-z-]+, )*)${parent}${last}([ ,]|$)" <<<"$text"; then
        echo "$name.8: no entry for the command '$path'" >&2
        errors=$((errors + 1))
      fi
    fi
    while IFS= read -r opt; do
      [ -n "$opt" ] || continue
      short=""
      long="$opt"
      if [[ "$opt" == *,* ]]; then short="${opt%%,*}"; long="${opt#*,}"; fi
      local pattern="^ +${long}( |$)"
      [ -n "$short" ] && pattern="^ +${short}, ${long}( |$)"
      if ! grep -qE -- "$pattern" <<<"$text"; then
        echo "$name.8: no entry for '${short:+$short, }$long' (${path:-global} option)" >&2
        errors=$((errors + 1))
      fi
    done < <(help_options <<<"$help")
    while IFS= read -r sub; do
      [ -n "$sub" ] && queue+=("${path:+$path }$sub")
    done < <(help_commands <<<"$help")
  done
}

for exe in "$@"; do check_page "$exe"; done
[ "$errors" -eq 0 ] || fail "$errors problem(s) in the man pages"
echo "ok: every command and option of $* is in its man page"
