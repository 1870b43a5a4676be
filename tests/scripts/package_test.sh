#!/usr/bin/env bash
# Installation and the Debian package, for real:
# - reconcile(1) lists exactly the commands and flags `reconcile --help` and
#   each `reconcile CMD --help` print (parsed here independently of
#   packaging/manpage.py), and groff and man render it without a warning;
# - `cmake --install --prefix DIR` puts every file where README says, and
#   nothing outside DIR;
# - `cpack -G DEB` builds reconcile_<version>_<arch>.deb: its control fields
#   (Depends computed by dpkg-shlibdeps), maintainer scripts, conffiles and
#   files (dpkg-deb -I / -c), extracted with dpkg-x into a scratch root (never
#   installed into this machine's root), whose binary prints its version;
# - `systemd-analyze verify` of the three units against that scratch root
#   prints nothing (warnings count as failures), and `systemd-analyze
#   security --offline` rates the controller's unit;
# - the units' command lines, expanded with the shipped settings, run;
# - the real dpkg installs, upgrades, removes and purges the package in a
#   scratch Debian root (a container), running the maintainer scripts;
# - lintian finds no error in the .deb.
#
# Needs: $RECONCILE, $SOURCE_DIR, $BUILD_DIR (set by CTest), cmake, cpack,
# dpkg-deb, systemd-analyze, groff, man, lintian (scripts/bootstrap.sh), and
# a Docker Engine for the scratch root (started here when missing). Runs only
# its own processes (the controller on a free loopback port, by pid) and
# containers (--rm, no network); writes only under a mktemp folder.
set -uo pipefail

: "${RECONCILE:?}" "${SOURCE_DIR:?}" "${BUILD_DIR:?}"
source "$SOURCE_DIR/tests/scripts/lib.sh"
passed=0
failed=0
work="$(mktemp -d)"
ctl_pid=""
trap '[[ -n "$ctl_pid" ]] && kill "$ctl_pid" 2>/dev/null; rm -rf "$work"' EXIT

for tool in cmake cpack dpkg-deb systemd-analyze groff man lintian gzip; do
  command -v "$tool" >/dev/null 2>&1 || { echo "FAIL - $tool is missing (scripts/bootstrap.sh installs it)"; exit 1; }
done
# The man page is part of the default build; this is a no-op after `make build`.
if ! out="$(cmake --build "$BUILD_DIR" --target reconcile reconcile_manpage 2>&1)"; then
  echo "FAIL - building the man page" && echo "$out" | tail -20; exit 1
fi
version="$("$RECONCILE" --version | awk '{print $2}')"
arch="$(dpkg --print-architecture)"
man_page="$BUILD_DIR/packaging/reconcile.1"

# --- reconcile(1) against --help ---------------------------------------------
# help_commands WORDS...: the subcommands `reconcile WORDS --help` lists, as
# full command paths, recursively.
help_commands() {
  local sub
  for sub in $("$RECONCILE" "$@" --help | awk '/^Subcommands:/ {f = 1; next} /^[A-Za-z]+:/ {f = 0} f && /^  [a-z]/ {print $1}'); do
    echo "$* $sub" | sed 's/^ //'
    help_commands "$@" "$sub"
  done
}
help_flags() {  # help_flags WORDS...: the long flags of `reconcile WORDS --help`
  "$RECONCILE" "$@" --help | awk '/^Options:/ {f = 1; next} /^[A-Za-z]+:/ {f = 0} f && /^  -/ {print $1}' |
    tr ',' '\n' | grep -- '^--' | grep -vxF -e --help -e --version | sort -u
}
# page_section TITLE: the roff lines of `.SS "TITLE"` (or `.SH TITLE`) up to
# the next heading; page_flags: the bold long flags in them.
page_section() {
  awk -v t="$1" '/^\.S[SH] / {h = $0; sub(/^\.S[SH] /, "", h); gsub(/"/, "", h); gsub(/\\-/, "-", h); f = (h == t); next} f' "$man_page"
}
page_flags() {
  page_section "$1" | sed 's/\\-/-/g' | grep -o -- '\\fB--[a-z0-9-]*' | sed 's/^\\fB//' |
    grep -vxF -e --help -e --version | sort -u
}

if [[ -s "$man_page" ]]; then ok "the build wrote reconcile(1)"; else bad "no $man_page"; fi
help_cmds="$(help_commands | sort)"
page_cmds="$(grep '^\.SS "reconcile ' "$man_page" | sed 's/^\.SS "reconcile //; s/"$//; s/\\-/-/g' | sort)"
if [[ -n "$help_cmds" && "$help_cmds" == "$page_cmds" ]]; then
  ok "reconcile(1) has a section for each of the $(wc -l <<<"$help_cmds") commands of --help, and no other"
else
  bad "the commands of reconcile(1) differ from --help" "$(diff <(echo "$help_cmds") <(echo "$page_cmds"))"
fi
mismatch=""
nflags=0
while read -r cmd; do
  [[ -z "$cmd" ]] && continue
  # shellcheck disable=SC2086
  want="$(help_flags $cmd)"
  got="$(page_flags "reconcile $cmd")"
  nflags=$((nflags + $(grep -c . <<<"$want")))
  [[ "$want" == "$got" ]] || mismatch+="reconcile $cmd: $(diff <(echo "$want") <(echo "$got") | grep '^[<>]' | tr '\n' ' ')"$'\n'
done <<<"$help_cmds"
want="$(help_flags)"
got="$(page_flags "GLOBAL FLAGS")"
[[ "$want" == "$got" ]] || mismatch+="global: $(diff <(echo "$want") <(echo "$got") | grep '^[<>]' | tr '\n' ' ')"$'\n'
if [[ -z "$mismatch" && $nflags -gt 20 ]]; then
  ok "reconcile(1) lists exactly the flags of every command's --help ($nflags) and the $(grep -c . <<<"$want") global ones"
else
  bad "reconcile(1) and --help disagree on flags (< only in --help, > only in the page)" "$mismatch"
fi
if grep -qF "reconcile $version" "$man_page"; then ok "reconcile(1) names version $version"; else bad "reconcile(1) lacks the version $version"; fi
out="$(groff -man -ww -z "$man_page" 2>&1)"
if [[ -z "$out" ]]; then ok "groff -ww renders reconcile(1) without a warning"; else bad "groff warns on reconcile(1)" "$out"; fi
out="$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$man_page" 2>&1 >/dev/null)"
if [[ -z "$out" ]]; then ok "man --warnings renders reconcile(1) without a warning"; else bad "man warns on reconcile(1)" "$out"; fi

# --- cmake --install ------------------------------------------------------------
prefix="$work/prefix"
if out="$(cmake --install "$BUILD_DIR" --prefix "$prefix" 2>&1)"; then
  ok "cmake --install --prefix DIR"
else
  bad "cmake --install failed" "$out"
fi
outside="$(grep -F 'Installing: ' <<<"$out" | grep -vF "Installing: $prefix/" || true)"
if [[ -z "$outside" ]]; then ok "cmake --install writes nothing outside the prefix"; else bad "installed outside the prefix" "$outside"; fi
expected=(
  bin/reconcile
  share/man/man1/reconcile.1.gz
  lib/systemd/system/reconcile-controller.service
  lib/systemd/system/reconcile-drift.service
  lib/systemd/system/reconcile-drift.timer
  etc/default/reconcile
  share/doc/reconcile/README.md
  share/doc/reconcile/reference.md
  share/doc/reconcile/copyright
  share/doc/reconcile/changelog.gz
  share/doc/reconcile/examples/quickstart/hello.yaml
)
for s in "$SOURCE_DIR"/schemas/*.schema.json; do expected+=("share/reconcile/schemas/$(basename "$s")"); done
missing=""
for f in "${expected[@]}"; do [[ -f "$prefix/$f" ]] || missing+="$f "; done
if [[ -z "$missing" ]]; then ok "the install tree has all ${#expected[@]} expected files"; else bad "missing from the install tree: $missing"; fi
if [[ -x "$prefix/share/doc/reconcile/examples/plugins/reconcile-provider-localfile" ]]; then
  ok "the example plugin stays executable"
else
  bad "the example plugin lost its mode"
fi
if [[ "$("$prefix/bin/reconcile" --version)" == "reconcile $version" ]]; then ok "the installed binary runs"; else bad "the installed binary does not run"; fi

# --- cpack -G DEB -------------------------------------------------------------
t0=$(date +%s%N)
if out="$(cd "$work" && cpack -G DEB --config "$BUILD_DIR/CPackConfig.cmake" -B "$work/deb" 2>&1)"; then
  ok "cpack -G DEB ($(( ($(date +%s%N) - t0) / 1000000 )) ms)"
else
  bad "cpack -G DEB failed" "$out"
fi
deb="$work/deb/reconcile_${version}_${arch}.deb"
if [[ -f "$deb" ]]; then
  ok "the package is $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB)"
else
  bad "no $deb" "$(ls "$work/deb" 2>&1)"
  echo "$passed passed, $failed failed"
  exit 1
fi
field() { dpkg-deb -f "$deb" "$1"; }
[[ "$(field Package)" == reconcile ]] && ok "Package: reconcile" || bad "Package: $(field Package)"
[[ "$(field Version)" == "$version" ]] && ok "Version: $version" || bad "Version: $(field Version)"
[[ "$(field Architecture)" == "$arch" ]] && ok "Architecture: $arch" || bad "Architecture: $(field Architecture)"
depends="$(field Depends)"
echo "# Depends: $depends"
for lib in libc6 libgit2-1.5 libyaml-cpp0.7 libssl3 libstdc++6 adduser; do
  names="$(sed 's/, /\n/g' <<<"$depends" | awk '{print $1}')"
  if grep -qxF -- "$lib" <<<"$names"; then ok "Depends names $lib"; else bad "Depends lacks $lib" "$depends"; fi
done
if grep -qE 'libc6 \(>= [0-9.]+\)' <<<"$depends"; then ok "Depends carries versions from the shlibs (dpkg-shlibdeps)"; else bad "Depends has no computed versions" "$depends"; fi
info="$(dpkg-deb -I "$deb")"
for s in postinst prerm postrm conffiles; do contains "the control archive holds $s" " $s" "$info"; done
ctl="$work/control"
dpkg-deb -e "$deb" "$ctl"
if [[ "$(cat "$ctl/conffiles")" == /etc/default/reconcile ]]; then ok "/etc/default/reconcile is a conffile"; else bad "conffiles: $(cat "$ctl/conffiles")"; fi
for s in postinst prerm postrm; do
  if out="$(sh -n "$ctl/$s" 2>&1)"; then ok "$s parses (sh -n)"; else bad "$s does not parse" "$out"; fi
done
contains "postinst creates the system user reconcile" "adduser --system --group" "$(cat "$ctl/postinst")"
contains "postrm purge removes /var/lib/reconcile" "rm -rf /var/lib/reconcile" "$(cat "$ctl/postrm")"

contents="$(dpkg-deb -c "$deb")"
root="$work/root"
dpkg-deb -x "$deb" "$root"
missing=""
for f in "${expected[@]}"; do
  case "$f" in
    etc/*) p="/$f" ;;
    *) p="/usr/$f" ;;
  esac
  [[ -f "$root$p" ]] || missing+="$p "
  grep -qF " .$p" <<<"$contents" || missing+="(listing) $p "
done
if [[ -z "$missing" ]]; then ok "the package holds all ${#expected[@]} files at their Debian paths"; else bad "missing from the package: $missing" "$contents"; fi
owners="$(awk '{print $2}' <<<"$contents" | sort -u | tr '\n' ' ')"
if [[ "$owners" == "root/root " ]]; then ok "every file in the package belongs to root/root"; else bad "owners in the package: $owners"; fi
if [[ "$("$root/usr/bin/reconcile" --version)" == "reconcile $version" ]]; then
  ok "the extracted binary runs: $("$root/usr/bin/reconcile" --version)"
else
  bad "the extracted binary does not print 'reconcile $version'"
fi
kind="$(file "$root/usr/bin/reconcile")"
if [[ "$kind" == *", stripped"* ]]; then
  ok "the packaged binary is stripped ($(du -k "$root/usr/bin/reconcile" | cut -f1) KiB)"
else
  bad "the packaged binary is not stripped" "$(file "$root/usr/bin/reconcile")"
fi

# --- systemd-analyze ---------------------------------------------------------------
# verify checks what the units name: ExecStart's binary (here the extracted
# one: the units are copied with /usr/bin/reconcile pointing into the scratch
# root), the man page of Documentation= (MANPATH: the extracted one), the
# targets they order against (this machine's). It prints nothing when all is
# well; anything printed fails the check.
unitdir="$work/units"
mkdir -p "$unitdir"
units=(reconcile-controller.service reconcile-drift.service reconcile-drift.timer)
for u in "${units[@]}"; do
  if [[ -f "$root/lib/systemd/system/$u" ]]; then src="$root/lib/systemd/system/$u"; else src="$root/usr/lib/systemd/system/$u"; fi
  sed "s#/usr/bin/reconcile#$root/usr/bin/reconcile#g" "$src" >"$unitdir/$u"
done
verify() { (cd "$unitdir" && MANPATH="$root/usr/share/man" SYSTEMD_LOG_LEVEL=notice systemd-analyze verify "$@" 2>&1); }
out="$(verify "${units[@]/#/./}")"
code=$?
if [[ $code -eq 0 && -z "$out" ]]; then
  ok "systemd-analyze verify: the three units, no warning"
else
  bad "systemd-analyze verify (exit $code) printed" "$out"
fi
# The same check must fail on a unit with a mistake, and on a missing page.
sed 's/^ProtectSystem=strict/ProtectSystem=strictest/' "$unitdir/reconcile-controller.service" \
  >"$unitdir/reconcile-broken.service"
out="$(verify ./reconcile-broken.service)"
if [[ -n "$out" ]]; then ok "systemd-analyze verify reports a broken unit"; else bad "systemd-analyze verify accepts a broken unit"; fi
rm -f "$unitdir/reconcile-broken.service"
out="$(cd "$unitdir" && MANPATH="$work/nowhere" systemd-analyze verify ./reconcile-controller.service 2>&1)"
contains "systemd-analyze verify checks the unit's man page" "reconcile(1)" "$out"
unit="$(cat "$unitdir/reconcile-controller.service")"
for line in User=reconcile ProtectSystem=strict ProtectHome=yes PrivateTmp=yes NoNewPrivileges=yes \
  StateDirectory=reconcile ReadWritePaths=/var/lib/reconcile 'CapabilityBoundingSet=' \
  SystemCallFilter=@system-service 'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6' \
  EnvironmentFile=/etc/default/reconcile KillSignal=SIGTERM SupplementaryGroups=docker; do
  if grep -qxF -- "$line" <<<"$unit"; then ok "the controller unit has $line"; else bad "the controller unit lacks $line"; fi
done
# TimeoutStopSec above the controller's --grace default (from --help).
grace="$("$RECONCILE" controller --help | grep -oE -- '--grace TEXT=[0-9]+s' | grep -oE '[0-9]+')"
stop="$(grep -oE '^TimeoutStopSec=[0-9]+' <<<"$unit" | cut -d= -f2)"
if [[ -n "$grace" && -n "$stop" && $stop -gt $grace ]]; then
  ok "TimeoutStopSec=${stop}s is above --grace ${grace}s"
else
  bad "TimeoutStopSec '$stop' is not above --grace '$grace'"
fi
grep -qxF 'OnCalendar=hourly' "$unitdir/reconcile-drift.timer" &&
  ok "the drift timer runs hourly" || bad "the drift timer has no OnCalendar=hourly"
grep -qF ' drift $RECONCILE_DRIFT_FLAGS' "$unitdir/reconcile-drift.service" &&
  ok "the drift service runs reconcile drift" || bad "the drift service does not run reconcile drift"
out="$(cd "$unitdir" && systemd-analyze security --offline=yes ./reconcile-controller.service 2>&1)"
exposure="$(grep -oE 'Overall exposure level for [^:]*: [0-9.]+' <<<"$out" | grep -oE '[0-9.]+$')"
if [[ -n "$exposure" ]] && awk -v e="$exposure" 'BEGIN {exit !(e <= 2.5)}'; then
  ok "systemd-analyze security: the controller's exposure is $exposure (of 10; 'OK' below 3)"
else
  bad "systemd-analyze security: exposure '$exposure' (want <= 2.5)" "$(tail -5 <<<"$out")"
fi

# --- the units' command lines, with the shipped /etc/default/reconcile ---------------
# ExecStartPre and ExecStart of both services, expanded as systemd does
# (${VAR} one word, $VAR split on blanks, $$ a dollar) with the variables of
# the packaged /etc/default/reconcile, run for real: the extracted binary,
# --state pointed at a scratch folder, RECONCILE_SOURCE at a folder tree,
# the controller's --listen port at a free one, an empty tree. A rotten flag in the shipped
# settings or a unit fails here.
exec_words() {  # exec_words UNIT KEY: the words of KEY= (ExecStart), one a line
  local line word v w
  line="$(sed -n "s/^$2=//p" "$1")"
  for word in $line; do
    case "$word" in
      '${'*'}') v="${word:2:-1}"; printf '%s\n' "${!v}" ;;
      '$'*) v="${word:1}"; for w in ${!v}; do printf '%s\n' "$w"; done ;;
      /var/lib/reconcile) printf '%s\n' "$work/unit-state" ;;
      *) printf '%s\n' "$word" ;;
    esac
  done
}
set -a
# shellcheck disable=SC1091
source "$root/etc/default/reconcile"
set +a
pre="$(sed -n "s/^ExecStartPre=\/bin\/sh -c '\(.*\)'$/\1/p" "$unitdir/reconcile-controller.service" | sed 's/\$\$/$/g')"
out="$(RECONCILE_SOURCE="" sh -c "$pre" 2>&1)"
code=$?
if [[ $code -ne 0 ]] && grep -qF "/etc/default/reconcile: RECONCILE_SOURCE is not set" <<<"$out"; then
  ok "with the shipped settings (no RECONCILE_SOURCE) the unit refuses to start, naming the file and variable"
else
  bad "ExecStartPre with an empty RECONCILE_SOURCE: exit $code" "$out"
fi
# An empty tree: nothing to deploy (the controller's passes touch no engine).
mkdir -p "$work/tree" "$work/unit-state"
export RECONCILE_SOURCE="$work/tree"
if RECONCILE_SOURCE="$work/tree" sh -c "$pre"; then ok "with RECONCILE_SOURCE set, ExecStartPre passes"; else bad "ExecStartPre refuses a set RECONCILE_SOURCE"; fi
mapfile -t drift_cmd < <(exec_words "$unitdir/reconcile-drift.service" ExecStart)
out="$("${drift_cmd[@]}" 2>&1)"
code=$?
if [[ $code -eq 0 ]] && grep -qF "No drift" <<<"$out"; then
  ok "the drift unit's command line runs (${drift_cmd[*]/#$root/} → exit 0, no drift)"
else
  bad "the drift unit's command line: exit $code" "${drift_cmd[*]}"$'\n'"$out"
fi
unit_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
RECONCILE_CONTROLLER_FLAGS="${RECONCILE_CONTROLLER_FLAGS/127.0.0.1:8080/127.0.0.1:$unit_port}"
mapfile -t ctl_cmd < <(exec_words "$unitdir/reconcile-controller.service" ExecStart)
"${ctl_cmd[@]}" >"$work/unit-controller.log" 2>&1 &
ctl_pid=$!
ready=""
for _ in $(seq 100); do
  if curl -fsS "http://127.0.0.1:$unit_port/readyz" >/dev/null 2>&1; then ready=yes; break; fi
  kill -0 "$ctl_pid" 2>/dev/null || break
  sleep 0.2
done
if [[ -n "$ready" ]]; then
  ok "the controller unit's command line runs with the shipped flags and is ready"
else
  bad "the controller unit's command line did not get ready" "${ctl_cmd[*]}"$'\n'"$(tail -20 "$work/unit-controller.log")"
fi
kill -TERM "$ctl_pid" 2>/dev/null
wait "$ctl_pid"
code=$?
ctl_pid=""
if [[ $code -eq 0 ]]; then ok "SIGTERM (KillSignal=) stops it with exit 0"; else bad "the controller exited $code on SIGTERM" "$(tail -20 "$work/unit-controller.log")"; fi
unset RECONCILE_SOURCE

# --- dpkg -i, reinstall, remove, purge in a scratch Debian root -------------------
# A container whose root is tests/fixtures/debian-rootfs.py's tree (this
# machine's dpkg, adduser, passwd, coreutils, ...; imported once per set of
# package versions), no network: the real dpkg runs the real maintainer
# scripts there. --force-depends: the sandbox's dpkg database is empty (the
# libraries the binary needs are not registered there; Depends was checked
# above).
if bash "$SOURCE_DIR/scripts/ensure-dockerd.sh" >/dev/null; then
  pkgs=(dash coreutils dpkg tar perl-base adduser passwd login libc-bin debianutils sed grep findutils diffutils)
  fixture="$SOURCE_DIR/tests/fixtures/debian-rootfs.py"
  key="$( (dpkg-query -W "${pkgs[@]}"; cat "$fixture") | sha256sum | cut -c1-16)"
  sandbox="reconcile/test-debian-root:$key"
  if ! docker image inspect "$sandbox" >/dev/null 2>&1; then
    # Older sandboxes (other package versions) go first.
    docker images --format '{{.Repository}}:{{.Tag}}' reconcile/test-debian-root |
      xargs -r docker rmi >/dev/null 2>&1
    python3 "$fixture" "$work/debian-root.tar" "${pkgs[@]}" &&
      docker import "$work/debian-root.tar" "$sandbox" >/dev/null
    rm -f "$work/debian-root.tar"
  fi
  out="$(docker run --rm --network none -v "$deb:/tmp/reconcile.deb:ro" "$sandbox" /bin/sh -c '
    fact() { echo "fact $1=$2"; }
    dpkg -i --force-depends /tmp/reconcile.deb >/tmp/log 2>&1; fact install $?
    fact user "$(getent passwd reconcile | cut -d: -f1,6,7)"
    fact group "$(getent group reconcile | cut -d: -f1)"
    fact system_uid "$(test "$(id -u reconcile)" -lt 1000 && echo yes)"
    fact state "$(stat -c "%U:%G %a" /var/lib/reconcile)"
    fact binary "$(stat -c "%U:%G %a" /usr/bin/reconcile)"
    fact status "$(dpkg-query -W -f "\${Status}" reconcile)"
    echo "# edited" >>/etc/default/reconcile
    echo "{}" >/var/lib/reconcile/state.json
    dpkg -i --force-depends /tmp/reconcile.deb >>/tmp/log 2>&1; fact reinstall $?
    fact conffile_kept "$(grep -c "^# edited" /etc/default/reconcile)"
    fact users "$(grep -c "^reconcile:" /etc/passwd)"
    dpkg --remove --force-depends reconcile >>/tmp/log 2>&1; fact remove $?
    fact removed_binary "$(test -e /usr/bin/reconcile && echo present || echo gone)"
    fact state_after_remove "$(test -f /var/lib/reconcile/state.json && echo kept || echo gone)"
    fact conffile_after_remove "$(test -f /etc/default/reconcile && echo kept || echo gone)"
    dpkg --purge reconcile >>/tmp/log 2>&1; fact purge $?
    fact state_after_purge "$(test -e /var/lib/reconcile && echo kept || echo gone)"
    fact conffile_after_purge "$(test -e /etc/default/reconcile && echo kept || echo gone)"
    fact user_after_purge "$(getent passwd reconcile >/dev/null && echo kept || echo gone)"
    sed "s/^/log: /" /tmp/log' 2>&1)"
  fact() { sed -n "s/^fact $1=//p" <<<"$out"; }
  check_fact() {  # check_fact NAME WANT DESCRIPTION
    if [[ "$(fact "$1")" == "$2" ]]; then ok "scratch root: $3"; else bad "scratch root: $3: $1='$(fact "$1")', want '$2'" "$(grep '^log: ' <<<"$out" | tail -15)"; fi
  }
  check_fact install 0 "dpkg -i installs the package (postinst ran)"
  check_fact user "reconcile:/var/lib/reconcile:/usr/sbin/nologin" "postinst created the user reconcile (home /var/lib/reconcile, no login shell)"
  check_fact group reconcile "postinst created the group reconcile"
  check_fact system_uid yes "reconcile is a system user (uid < 1000)"
  check_fact state "reconcile:reconcile 750" "/var/lib/reconcile is reconcile's, mode 0750"
  check_fact binary "root:root 755" "/usr/bin/reconcile is root's, mode 0755"
  check_fact status "install ok installed" "dpkg records the package as installed"
  check_fact reinstall 0 "a second dpkg -i (upgrade path) succeeds"
  check_fact conffile_kept 1 "the upgrade keeps an edited /etc/default/reconcile"
  check_fact users 1 "the upgrade creates no second user"
  check_fact remove 0 "dpkg --remove succeeds"
  check_fact removed_binary gone "remove deletes the binary"
  check_fact state_after_remove kept "remove keeps the state"
  check_fact conffile_after_remove kept "remove keeps /etc/default/reconcile"
  check_fact purge 0 "dpkg --purge succeeds (postrm purge ran)"
  check_fact state_after_purge gone "purge deletes /var/lib/reconcile"
  check_fact conffile_after_purge gone "purge deletes /etc/default/reconcile"
  check_fact user_after_purge kept "purge leaves the system user (Debian's convention)"
else
  bad "no Docker Engine for the scratch-root install (scripts/ensure-dockerd.sh)"
fi

# --- lintian -----------------------------------------------------------------------
out="$(lintian --no-tag-display-limit "$deb" 2>&1)"
errors="$(grep -E '^E: ' <<<"$out" || true)"
warnings="$(grep -E '^W: ' <<<"$out" || true)"
if [[ -z "$errors" ]]; then
  ok "lintian: no error ($(grep -c . <<<"$warnings") warnings)"
else
  bad "lintian reports errors" "$errors"
fi
[[ -n "$warnings" ]] && sed 's/^/# lintian: /' <<<"$warnings"

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
