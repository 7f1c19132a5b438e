#!/usr/bin/env bash
# setup.sh - install everything briefd needs to build, run and test on Debian/Ubuntu.
# Idempotent: safe to run again; it only installs what is missing.
# Packages come from the distribution's archive only (llhttp from Debian 13 on Debian 12,
# pinned low so nothing else is pulled from it).
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

# python3-yaml: the build converts docs/openapi.yaml to the JSON served at /openapi.json
BUILD_PKGS="build-essential cmake pkg-config libuv1-dev libcurl4-openssl-dev libssl-dev libcjson-dev libhiredis-dev libjemalloc-dev python3 python3-yaml"
RUN_PKGS="redis-server redis-tools"
TEST_PKGS="clang libclang-rt-14-dev curl jq prometheus pmccabe redis-sentinel stunnel4 openssl"
BENCH_PKGS="wrk"  # bench/bench_overhead.py drives HTTP with it

want=""
for p in $BUILD_PKGS $RUN_PKGS $TEST_PKGS $BENCH_PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || want="$want $p"
done
need_llhttp=0
[ -f /usr/include/llhttp.h ] || need_llhttp=1

if [ -n "$want" ] || [ "$need_llhttp" = 1 ]; then
    $SUDO apt-get update -qq
fi
if [ -n "$want" ]; then
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -qq --no-install-recommends $want
fi

if [ "$need_llhttp" = 1 ]; then
    cand=$(apt-cache policy libllhttp-dev 2>/dev/null | awk '/Candidate:/ {print $2}')
    if [ -z "$cand" ] || [ "$cand" = "(none)" ]; then
        # Debian 12: take exactly libllhttp-dev from Debian 13 with a low pin.
        . /etc/os-release
        if [ "${ID:-}" != "debian" ]; then
            echo "setup.sh: no libllhttp-dev candidate on ${PRETTY_NAME:-this system}; install llhttp >= 9 by hand" >&2
            exit 1
        fi
        $SUDO tee /etc/apt/sources.list.d/trixie-llhttp.sources >/dev/null <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
        $SUDO tee /etc/apt/preferences.d/trixie-llhttp >/dev/null <<'PIN'
Package: *
Pin: release n=trixie
Pin-Priority: 100
PIN
        $SUDO apt-get update -qq
        $SUDO apt-get install -y -qq --no-install-recommends -t trixie libllhttp-dev
    else
        $SUDO apt-get install -y -qq --no-install-recommends libllhttp-dev
    fi
fi

# --- dashboard: Node.js/npm for the page's npm packages, chromium for its browser test ---
# chart.js (embedded into briefd at build time by cmake/embed.cmake) and playwright-core (drives
# chromium in tests/integration/test_dashboard.py) come from package-lock.json via `npm ci`.
dash_want=""
command -v node >/dev/null 2>&1 || dash_want="$dash_want nodejs"
command -v npm >/dev/null 2>&1 || dash_want="$dash_want npm"
dpkg-query -W -f='${Status}' chromium 2>/dev/null | grep -q "install ok installed" || dash_want="$dash_want chromium"
if [ -n "$dash_want" ]; then
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -qq --no-install-recommends $dash_want
fi
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -L "$repo_root/node_modules" ]; then
    # a checkout sharing another's packages (a git worktree with a symlink): npm ci would
    # empty the shared directory for everyone - leave it to the checkout that owns it
    echo "setup.sh: node_modules is a symlink; not running npm ci here"
elif [ ! -d "$repo_root/node_modules" ] || [ "$repo_root/package-lock.json" -nt "$repo_root/node_modules" ]; then
    (cd "$repo_root" && npm ci --no-audit --no-fund)
    touch "$repo_root/node_modules"
fi
# --- end dashboard ---
echo "setup.sh: all dependencies present"
