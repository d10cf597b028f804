#!/usr/bin/env bash
# Prints the path of a Python >= 3.12 for the project's venv (nautilus_trader 1.231 needs one).
#
# Looks, in order, at: $PYTHON_FOR_VENV; python3.13, python3.12 and python3 on the PATH; what
# `uv python find` knows; the copy this script built earlier. Where none exists (Debian 12 ships
# only 3.11) it builds CPython 3.13 once per machine from the next Debian release's source package,
# fetched with apt from the mirror this machine's own apt sources name, into a cache folder outside
# the repository: ${NAUTILUS_LSTM_CACHE:-${XDG_CACHE_HOME:-~/.cache}/nautilus-lstm}. That takes
# about 3.5 minutes on two cores; everything it says goes to stderr, the path alone to stdout.
set -euo pipefail

MIN_MINOR=12
CACHE="${NAUTILUS_LSTM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nautilus-lstm}"
PREFIX="$CACHE/python3.13"

say() { echo "python.sh: $*" >&2; }

# A candidate counts only if it runs (pyenv shims for versions not selected do not) and is new enough.
usable() {
    [ -n "$1" ] && "$1" -c "import sys, venv, ssl, sqlite3, lzma, ctypes; sys.exit(sys.version_info < (3, $MIN_MINOR))" >/dev/null 2>&1
}

found() { command -v "$1" 2>/dev/null || echo "$1"; exit 0; }

if [ -n "${PYTHON_FOR_VENV:-}" ]; then
    usable "$PYTHON_FOR_VENV" && found "$PYTHON_FOR_VENV"
    say "PYTHON_FOR_VENV=$PYTHON_FOR_VENV is not a working Python >= 3.$MIN_MINOR"; exit 1
fi
for candidate in python3.13 python3.12 python3; do
    usable "$candidate" && found "$candidate"
done
if command -v uv >/dev/null 2>&1; then
    candidate=$(uv python find ">=3.$MIN_MINOR" 2>/dev/null || true)
    usable "$candidate" && found "$candidate"
fi
cached() { [ -f "$PREFIX/.complete" ] && usable "$PREFIX/bin/python3.13"; }
cached && found "$PREFIX/bin/python3.13"

# --- Build one. One builder at a time per machine; the others wait and then reuse its result. ---
mkdir -p "$CACHE"
exec 9>"$CACHE/.python-build.lock"
flock 9
cached && found "$PREFIX/bin/python3.13"

fail() {
    say "$*"
    say "Install a Python >= 3.$MIN_MINOR yourself and put it on the PATH (or set PYTHON_FOR_VENV=/path/to/python)."
    exit 1
}
command -v apt-get >/dev/null 2>&1 || fail "no Python >= 3.$MIN_MINOR found and no apt-get to fetch one's source."
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
case "$codename" in
    bookworm) next=trixie ;;
    trixie) next=forky ;;
    *) fail "no Python >= 3.$MIN_MINOR found, and this script only knows how to build one on Debian 12 or 13 (this is '$codename')." ;;
esac
# The archive mirror from the machine's own apt sources (deb822 or one-line format).
mirror=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ && $2 ~ /debian\/?$/ {print $2; exit}')
[ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $2 ~ /debian\/?$/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
[ -n "$mirror" ] || fail "no Debian mirror found in /etc/apt/sources.list*."
for tool in gcc make dpkg-source; do
    command -v "$tool" >/dev/null 2>&1 || fail "building Python needs '$tool' (apt-get install build-essential dpkg-dev)."
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
say "no Python >= 3.$MIN_MINOR on this machine: building CPython 3.13 from Debian $next's source into $PREFIX (once per machine, about 3.5 minutes on 2 cores; log: $CACHE/python-build.log)"
mkdir -p "$work/parts" "$work/lists/partial" "$work/archives/partial" "$work/src"
cat >"$work/parts/next.sources" <<EOF
Types: deb-src
URIs: $mirror
Suites: $next
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
apt_opts=(-q -o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$work/parts"
          -o "Dir::State::Lists=$work/lists" -o "Dir::Cache::Archives=$work/archives"
          -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache=" -o "APT::Sandbox::User=$(id -un)")
{
    apt-get "${apt_opts[@]}" update &&
    (cd "$work/src" && apt-get "${apt_opts[@]}" source --download-only python3.13)
} >"$CACHE/python-build.log" 2>&1 || fail "fetching python3.13's source failed; see $CACHE/python-build.log"
tarball=$(ls "$work"/src/python3.13_*.orig.tar.* | head -n 1)
say "building $(basename "$tarball")"
tar -xf "$tarball" -C "$work/src"
srcdir=$(find "$work/src" -maxdepth 1 -type d -name 'Python-3.13*' | head -n 1)
# Built in place (the prefix is compiled in); .complete marks a finished build.
rm -rf "$PREFIX"
(
    cd "$srcdir" &&
    ./configure --prefix="$PREFIX" --with-ensurepip=install --disable-test-modules &&
    make -j"$(nproc)" &&
    make install
) >>"$CACHE/python-build.log" 2>&1 || fail "building Python failed; see $CACHE/python-build.log"
usable "$PREFIX/bin/python3.13" || fail "the Python built into $PREFIX does not work; see $CACHE/python-build.log"
touch "$PREFIX/.complete"
say "built $("$PREFIX/bin/python3.13" --version)"
found "$PREFIX/bin/python3.13"
