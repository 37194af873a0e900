#!/usr/bin/env bash
# Runs the aiokafka compat suite against gregor: compat/aiokafka/run.sh [pytest args...]
# The venv, pinned from requirements.txt, and pytest run are shared with the other Python suites.
exec bash "$(dirname "${BASH_SOURCE[0]}")/../python-common/run-pytest.sh" "$(dirname "${BASH_SOURCE[0]}")" "$@"
