#!/usr/bin/env bash
# One entry point for a fresh machine: creates .venv, installs what is needed, then
#   deploy/dev.sh demo   → runs `tsunagu demo` on the embedded broker (Tansu, memory-only)
#   deploy/dev.sh test   → ruff, mypy and the whole test suite (embedded broker, SQLite, PostgreSQL)
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
    # Debian's chromium for the browser tests (never `playwright install`).
    if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-ipafont-gothic >/dev/null) \
        || echo "warning: could not install chromium; browser tests will be skipped" >&2
    fi
    echo "== ruff"; .venv/bin/ruff check .
    echo "== mypy"; .venv/bin/mypy
    echo "== pytest"; exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
    ;;
  *)
    echo "usage: deploy/dev.sh demo|test" >&2; exit 2 ;;
esac
