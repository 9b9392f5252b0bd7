#!/usr/bin/env bash
# `make test`'s pytest. By default one pytest over everything: level 5 (tests/e2e) runs last, and its cluster
# is made in the background from the start (tests/e2e/conftest.py; tests/conftest.py puts the folders without
# latency budgets first, so the cluster's busy minutes fall on them).
#
# TEST_PARALLEL=1, where a Docker engine answers: level 5 in a pytest of its own, started first, while levels
# 1-4 run in the foreground; its output goes to build/e2e/pytest.log and is printed whole once both are done,
# and the exit status is the first failing one's. Level 5 is mostly waiting (rollouts, readiness delays, load
# for a fixed time), so this saves its whole length on a machine with cores to spare. Not the default: on
# this project's 2-core machines the two runs starve each other (measured: a /healthz latency budget and a
# zero-loss rollout failed in the one such run, levels 1-4 took 30% longer).
#
# Usage: hack/test.sh [PYTEST_ARGS...]   (the arguments go to both runs)
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
VENV_PY=${VENV_PY:-$ROOT/.venv/bin/python}

if [[ ${TEST_PARALLEL:-0} != 1 ]] || ! docker_answers; then
    exec "$VENV_PY" -m pytest "$@"
fi

E2E_LOG=build/e2e/pytest.log
mkdir -p "$(dirname "$E2E_LOG")"
log "level 5 (tests/e2e) runs alongside levels 1-4; its output goes to $E2E_LOG and is printed at the end"
# Its own session, so an interrupted make test stops it too (the trap below).
setsid "$VENV_PY" -m pytest tests/e2e -p no:cacheprovider "$@" >"$E2E_LOG" 2>&1 </dev/null &
e2e_pid=$!
trap 'kill -TERM -- -"$e2e_pid" 2>/dev/null; wait "$e2e_pid" 2>/dev/null' INT TERM

"$VENV_PY" -m pytest --ignore=tests/e2e "$@"
rest=$?
if kill -0 "$e2e_pid" 2>/dev/null; then
    log "levels 1-4 done (exit $rest); waiting for level 5"
fi
wait "$e2e_pid"
e2e=$?
trap - INT TERM

echo
echo "=================== level 5 (tests/e2e), run alongside: $E2E_LOG ==================="
cat "$E2E_LOG"
log "levels 1-4: exit $rest; level 5: exit $e2e"
((rest != 0)) && exit "$rest"
exit "$e2e"
