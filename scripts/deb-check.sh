#!/usr/bin/env bash
# Builds the xdplb .deb with cargo-deb, installs it on this machine (CI's is a
# throwaway; run as root), checks what it installed — the binary answers
# --help, the unit is there and `systemd-analyze verify` finds nothing to say
# about it, the configuration is a conffile, the man page is there — then
# removes the package again, also when a check fails.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $(id -u) -ne 0 ]]; then
  echo "scripts/deb-check.sh: run as root (it installs the package with dpkg)" >&2
  exit 1
fi
if ! command -v cargo-deb >/dev/null 2>&1; then
  echo "== cargo install --locked cargo-deb"
  cargo install --locked cargo-deb
fi
if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "scripts/deb-check.sh: systemd-analyze missing (Debian package: systemd)" >&2
  exit 1
fi

fail() {
  echo "deb-check: FAIL: $*" >&2
  exit 1
}

echo "== cargo build --release -p xdplb"
cargo build --release --locked -p xdplb
echo "== cargo deb -p xdplb --no-build"
out=$(mktemp -d)
cleanup() {
  if dpkg-query -W -f='${Status}' xdplb 2>/dev/null | grep -q "ok installed"; then
    dpkg --purge xdplb >/dev/null || echo "deb-check: could not purge xdplb" >&2
  fi
  rm -rf "$out"
}
trap cleanup EXIT
# --strip: the release profile keeps line tables for backtraces; the package
# need not carry them.
cargo deb -p xdplb --no-build --strip --output "$out"
deb=$(ls "$out"/xdplb_*.deb)
echo "built $deb ($(du -h "$deb" | cut -f1))"

contents=$(dpkg-deb --contents "$deb")
for path in ./usr/bin/xdplb ./usr/lib/systemd/system/xdplb.service ./etc/xdplb/xdplb.toml \
  ./usr/share/man/man8/xdplb.8.gz ./usr/share/doc/xdplb/README.md; do
  grep -q " $path\$" <<<"$contents" || fail "$path is not in the package:"$'\n'"$contents"
done
dpkg-deb --info "$deb" conffiles | grep -qx /etc/xdplb/xdplb.toml ||
  fail "/etc/xdplb/xdplb.toml is not a conffile"

echo "== dpkg -i"
if dpkg-query -W -f='${Status}' xdplb 2>/dev/null | grep -q "ok installed"; then
  fail "an xdplb package is already installed here; remove it first (dpkg --purge xdplb)"
fi
dpkg -i "$deb"

echo "== checks on the installed package"
/usr/bin/xdplb --help | grep -q "Usage: xdplb" || fail "/usr/bin/xdplb --help prints no usage"
unit=/usr/lib/systemd/system/xdplb.service
[[ -f $unit ]] || fail "$unit not installed"
cmp -s "$unit" packaging/xdplb.service || fail "$unit differs from packaging/xdplb.service"
cmp -s /etc/xdplb/xdplb.toml configs/single-lb.toml || fail "/etc/xdplb/xdplb.toml is not configs/single-lb.toml"
# verify prints nothing for a clean unit; unknown keys are only warnings, so
# any output counts as a failure.
verify=$(systemd-analyze verify --man=no "$unit" 2>&1) || fail "systemd-analyze verify: $verify"
[[ -z $verify ]] || fail "systemd-analyze verify $unit:"$'\n'"$verify"
unshare --net /usr/bin/xdplb check-config /etc/xdplb/xdplb.toml >/dev/null ||
  fail "xdplb check-config rejects the installed configuration (in an empty network namespace: no live checks)"
man -w xdplb >/dev/null 2>&1 || [[ -f /usr/share/man/man8/xdplb.8.gz ]] || fail "no man page"
gzip -dc /usr/share/man/man8/xdplb.8.gz | grep -q '^\.TH XDPLB 8' || fail "man page is not roff"
# Installed disabled: nothing links it into a target.
[[ ! -e /etc/systemd/system/multi-user.target.wants/xdplb.service ]] ||
  fail "the unit was enabled on install"

echo "== dpkg -r"
dpkg -r xdplb
[[ ! -e /usr/bin/xdplb ]] || fail "/usr/bin/xdplb left after dpkg -r"
[[ ! -e $unit ]] || fail "$unit left after dpkg -r"
dpkg --purge xdplb
[[ ! -e /etc/xdplb/xdplb.toml ]] || fail "/etc/xdplb/xdplb.toml left after dpkg --purge"
echo "deb-check: ok"
