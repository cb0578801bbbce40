#!/usr/bin/env bash
# `make load`: the concurrent local stack (dev.sh, LOCAL_CONCURRENCY instances per function) on
# free ports, driven by tests/load/load.py: 2,000 submissions at 50 concurrent with a realistic
# mix, lead lists, exports and a data-subject request alongside; then every acknowledged
# submission is looked for in the table. Prints accepted, rejected by reason, lost, 5xx,
# duplicates and latency percentiles; fails when lost, 5xx or duplicates are not 0.
#
# Environment: LOAD_SUBMISSIONS (2000), LOAD_CONCURRENCY (50), LOAD_DEADLINE_S (600),
#              LOCAL_CONCURRENCY (4), LOAD_PER_FORM_PER_MINUTE (120: one form is flooded past it).
set -euo pipefail

cd "$(dirname "$0")/../.."
root=$PWD

log() { printf 'load: %s\n' "$*" >&2; }
# shellcheck source=infra/scripts/proc.sh
. infra/scripts/proc.sh

bash infra/scripts/venv.sh

load_pid=
stack_cleanup() {
    if [ -n "$load_pid" ]; then
        stop_tree "$load_pid"
    fi
}
trap stack_stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Locally every request comes from 127.0.0.1: the per-IP limit is raised so it does not stand
# for every visitor at once; the per-form limit stays, so the flooded form meets it. The demo
# tenant is on the free tier: its monthly quota is raised so the run measures intake, not it.
concurrency=${LOCAL_CONCURRENCY:-4}
LOCAL_CONCURRENCY=$concurrency \
    LOCAL_PARAMETERS="RateLimitPerIpPerMinute=1000000 RateLimitPerFormPerMinute=${LOAD_PER_FORM_PER_MINUTE:-120} FreeTierMonthlySubmissions=10000000 ${LOCAL_PARAMETERS:-}" \
    stack_start load

# Start every instance of every function before measuring: cargo-lambda starts an instance
# (a `cargo run`) when all running ones are busy, and a request that meets a starting
# instance under load can get the router's own 500 (no function ran): Lambda has no such
# router. $concurrency requests at once per function, twice.
for _ in 1 2; do
    for warm in /v1/me /v1/forms /v1/exports /v1/leads /v1/privacy/requests \
        /v1/forms/none/submissions; do
        warm_pids=()
        for _ in $(seq 1 "$concurrency"); do
            curl -s -o /dev/null --max-time 120 -X GET "$API_BASE$warm" &
            warm_pids+=($!)
        done
        # Only these: the stack runs in the background of this shell too.
        wait "${warm_pids[@]}" || true
    done
done

.venv/bin/python tests/load/load.py &
load_pid=$!
set +e
wait "$load_pid"
status=$?
set -e
load_pid=
exit "$status"
