#!/usr/bin/env bash
# One entry point for a fresh machine: creates .venv, installs what is needed, then
#   deploy/dev.sh demo   → runs `tsunagu demo` on the embedded broker (Tansu, memory-only)
#   deploy/dev.sh test   → ruff, mypy and the whole test suite (embedded broker, SQLite, PostgreSQL);
#                          installs chromium and a Japanese font with apt when missing
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-demo}
shift || true

pick_python() {
  for p in "${PYTHON:-}" python3.11 python3.12 python3.13 python3; do
    [ -n "$p" ] || continue
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
      echo "$p"; return 0
    fi
  done
  echo "tsunagu needs Python >= 3.11" >&2; return 1
}

if [ ! -x .venv/bin/python ]; then
  "$(pick_python)" -m venv .venv
fi
PIP=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)

case "$what" in
  demo)
    "${PIP[@]}" -e .
    exec .venv/bin/tsunagu demo "$@"
    ;;
  test)
    "${PIP[@]}" -e '.[test]'
    # PostgreSQL on 127.0.0.1:5432 (trust auth, database test) for the dual-database tests.
    if command -v pg_isready >/dev/null 2>&1 && ! pg_isready -q -h 127.0.0.1 -p 5432; then
      if command -v pg_ctlcluster >/dev/null 2>&1; then
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
      fi
    fi
    # Debian's chromium and a CJK font for the browser tests (never `playwright install`):
    # installed with apt when missing; without them the test run stops here.
    need=()
    command -v chromium >/dev/null 2>&1 || need+=(chromium)
    if ! { command -v fc-list >/dev/null 2>&1 && [ -n "$(fc-list :lang=ja family 2>/dev/null)" ]; }; then
      need+=(fonts-noto-cjk)
    fi
    if [ ${#need[@]} -gt 0 ]; then
      echo "== apt-get install ${need[*]} (needed by the browser tests)"
      sudo=()
      [ "$(id -u)" = 0 ] || sudo=(sudo)
      if ! command -v apt-get >/dev/null 2>&1 \
        || ! "${sudo[@]}" apt-get update -qq \
        || ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null; then
        echo "error: could not install ${need[*]} with apt-get; install them (as root: apt-get install ${need[*]}) and re-run" >&2
        exit 1
      fi
      command -v chromium >/dev/null 2>&1 || { echo "error: apt-get ran but there is still no chromium" >&2; exit 1; }
    fi
    echo "== ruff"; .venv/bin/ruff check .
    echo "== mypy"; .venv/bin/mypy
    echo "== pytest"; exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
    ;;
  *)
    echo "usage: deploy/dev.sh demo|test" >&2; exit 2 ;;
esac
