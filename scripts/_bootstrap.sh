# shellcheck shell=bash
# Shared set-up for scripts/test and scripts/demo (sourced, not run).
#
# Idempotent: a second run on a set-up machine does nothing but check.  The
# venv is (re)installed only when requirements.lock or pyproject.toml changed
# since the last successful install (their hash is kept in .venv).

CARECALL_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CARECALL_VENV="$CARECALL_ROOT/.venv"
CARECALL_STAMP="$CARECALL_VENV/.carecall-install.sha256"
CARECALL_PG_BIN="${CARECALL_PG_BIN:-/usr/lib/postgresql/15/bin}"
export CARECALL_PG_BIN

_say() { printf '==> %s\n' "$*" >&2; }

_py_ok() {  # is "$1" a Python >= 3.11?
    "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' >/dev/null 2>&1
}

find_python() {
    local cand
    for cand in "${PYTHON:-}" python3.11 python3.12 python3.13 python3; do
        [ -n "$cand" ] && command -v "$cand" >/dev/null 2>&1 && _py_ok "$cand" && {
            command -v "$cand"
            return 0
        }
    done
    return 1
}

bootstrap_venv() {
    cd "$CARECALL_ROOT" || return 1
    if ! _py_ok "$CARECALL_VENV/bin/python"; then
        local py
        py="$(find_python)" || {
            echo "carecall needs Python >= 3.11 (python3.11 or python3 on PATH, or PYTHON=...)" >&2
            return 1
        }
        _say "creating .venv with $py"
        rm -rf "$CARECALL_VENV"
        "$py" -m venv "$CARECALL_VENV" || {
            echo "could not create a venv: install the venv module (Debian: apt-get install python3-venv)" >&2
            return 1
        }
    fi
    local want have
    want="$(cat requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)"
    have="$(cat "$CARECALL_STAMP" 2>/dev/null || true)"
    if [ "$want" != "$have" ]; then
        _say "installing requirements.lock into .venv"
        "$CARECALL_VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
            -r requirements.lock || return 1
        "$CARECALL_VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
            --no-deps -e . || return 1
        printf '%s\n' "$want" >"$CARECALL_STAMP"
    fi
}

ensure_postgres() {
    [ -x "$CARECALL_PG_BIN/initdb" ] && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        _say "installing PostgreSQL 15 server binaries (the tests start a throwaway cluster)"
        DEBIAN_FRONTEND=noninteractive apt-get update -q || return 1
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql-15 || return 1
        [ -x "$CARECALL_PG_BIN/initdb" ] && return 0
    fi
    cat >&2 <<MSG
PostgreSQL 15 server binaries are missing ($CARECALL_PG_BIN/initdb).
The tests start their own throwaway cluster from them. Install them with:
    sudo apt-get install -y postgresql-15
(or set CARECALL_PG_BIN to the bin directory of a PostgreSQL 15 install)
MSG
    return 1
}

ensure_chromium() {
    # the browser tests drive Debian's Chromium through its matching ChromeDriver (Selenium)
    [ -x "${CARECALL_CHROMIUM:-/usr/bin/chromium}" ] && [ -x "${CARECALL_CHROMEDRIVER:-/usr/bin/chromedriver}" ] && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        _say "installing Chromium and ChromeDriver (the browser tests run a headless Chromium)"
        DEBIAN_FRONTEND=noninteractive apt-get update -q || return 1
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver || return 1
        [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] && return 0
    fi
    cat >&2 <<MSG
Chromium and ChromeDriver are missing (/usr/bin/chromium, /usr/bin/chromedriver).
The browser tests run the web consoles in a headless Chromium. Install them with:
    sudo apt-get install -y chromium chromium-driver
(or set CARECALL_CHROMIUM and CARECALL_CHROMEDRIVER to their paths)
MSG
    return 1
}
