#!/usr/bin/env bash
# Shared runner of the Python compat suites: compat/python-common/run-pytest.sh SUITE_DIR [pytest args...]
#
#   called by compat/<client>/run.sh
#
# Creates .venv here from requirements.txt (again only when that file changes), then runs pytest;
# the exit status is pytest's. GREGOR_BIN picks the broker binary (default: target/release/gregor
# of this checkout). To check the tests against Apache Kafka instead, point KAFKA_REFERENCE_LIBS
# at a directory holding the kafka_2.13 jar and its dependencies (see compat_support.py).
set -euo pipefail

HERE="$(cd "$1" && pwd)"; shift
VENV="$HERE/.venv"
PYTHON="${PYTHON:-python3}"
STAMP="$VENV/requirements.sha256"
WANT="$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)"

make_venv() {
  rm -rf "$VENV"
  if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
    # Debian ships venv/ensurepip separately.
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
      rm -rf "$VENV"
      "$PYTHON" -m venv "$VENV"
    else
      echo "python3 -m venv failed; install python3-venv" >&2
      exit 1
    fi
  fi
  "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$HERE/requirements.txt"
  echo "$WANT" >"$STAMP"
}

if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  echo "Installing $HERE/requirements.txt into $VENV" >&2
  make_venv
fi

cd "$HERE"
exec "$VENV/bin/python" -m pytest "$@"
