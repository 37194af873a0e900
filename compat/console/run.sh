#!/usr/bin/env bash
# Browser tests of gregor's web console (`/ui` on the admin listener, see README "Web console").
#
#   compat/console/run.sh [node --test args...]
#
# Installs Debian's Chromium (pinned below; if the mirror has moved on to a newer security
# update, that one, with a warning: Debian keeps only the current build) and the pinned npm
# packages (playwright-core drives the system Chromium, it downloads no browser; kafkajs seeds
# the data) with `npm ci`. Starts gregor with --admin-listen on free loopback ports, then runs
# test/*.test.js with Node's test runner: each test clicks through console views in headless
# Chromium, with JavaScript on and off, and saves a screenshot of each view to
# compat/console/target/screenshots/ (the test artifacts). The console is gregor's own, so there
# is nothing to calibrate on Apache Kafka: with KAFKA_REFERENCE_LIBS set the suite says so and
# passes without running.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../lib.sh
. "$HERE/../lib.sh"

CHROMIUM_DEB_VERSION="156.0.8078.129-1~deb12u1"

if [ -n "${KAFKA_REFERENCE_LIBS:-}" ]; then
  echo "the web console is gregor's own (Kafka has none): nothing to calibrate"
  exit 0
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "node and npm are not installed (the suite needs Node >= 20)" >&2
  exit 1
fi
if [ ! -x "$GREGOR_BIN" ]; then
  echo "gregor binary not found at $GREGOR_BIN; run cargo build --release or set GREGOR_BIN" >&2
  exit 1
fi

install_chromium() {
  local have
  have="$(dpkg-query -W -f='${Version}' chromium 2>/dev/null || true)"
  [ -n "$have" ] && [ -x /usr/bin/chromium ] && return 0
  echo "installing chromium=$CHROMIUM_DEB_VERSION (Debian)"
  apt_install "chromium=$CHROMIUM_DEB_VERSION" && return 0
  echo "warning: chromium $CHROMIUM_DEB_VERSION is gone from the mirror; installing its current build" >&2
  apt_install chromium
}
install_chromium || { echo "could not install chromium" >&2; exit 1; }
echo "chromium $(dpkg-query -W -f='${Version}' chromium)"

cd "$HERE"
npm_ci_locked || exit 1

ADMIN_PORT="$(gregor_free_port)"
export CONSOLE_URL="http://127.0.0.1:$ADMIN_PORT"
export CONSOLE_SCREENSHOTS="$HERE/target/screenshots"
rm -rf "$CONSOLE_SCREENSHOTS" && mkdir -p "$CONSOLE_SCREENSHOTS"
trap 'gregor_cleanup' EXIT
gregor_start --admin-listen "127.0.0.1:$ADMIN_PORT" || { echo "could not start gregor" >&2; exit 1; }
echo "console suite against gregor ($GREGOR_BIN) at $GREGOR_BOOTSTRAP, console $CONSOLE_URL/ui"

LOG="$(mktemp /tmp/console-compat.XXXXXX)"
start=$(date +%s)
# One file at a time: each test drives one Chromium, and the machine has two cores.
node --test --test-concurrency=1 --test-timeout=120000 \
  --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination="$LOG" \
  "$@" test/*.test.js
status=$?
count() { sed -n "s/^# $1 \([0-9]*\)$/\1/p" "$LOG" | tail -n 1; }
passed=$(count pass) failed=$(count fail)
passed=${passed:-0} failed=${failed:-0}
rm -f "$LOG"
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
  failed=1
  echo "node --test exited with $status"
fi
if [ "$status" -ne 0 ]; then
  echo "the broker's log:"
  tail -n 30 "$GREGOR_DATA.log"
fi
echo
echo "console: $(( $(date +%s) - start )) s; screenshots in $CONSOLE_SCREENSHOTS"
echo "$passed passed, $failed failed"
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ]
