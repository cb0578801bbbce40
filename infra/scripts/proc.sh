# shellcheck shell=bash
# Process helpers shared by dev.sh and tests/e2e/run.sh (sourced, not run).
#
# The local stack's services run in sessions of their own (setsid), and cargo-lambda starts each
# function in yet another process group, so stopping a process group is not enough: stop_tree
# also finds every descendant by parent pid and stops it.

# descendants PID: every descendant pid of PID, deepest first.
descendants() {
    local child
    for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do
        descendants "$child"
        echo "$child"
    done
}

# stop_tree PID: SIGTERM to PID, its process group and its descendants; SIGKILL to whatever is
# still there after 5 seconds.
stop_tree() {
    local pid=$1 all _
    all="$(descendants "$pid") $pid"
    kill -TERM -- "-$pid" 2>/dev/null || true
    # shellcheck disable=SC2086 # word splitting of the pid list is intended
    kill -TERM $all 2>/dev/null || true
    for _ in $(seq 1 50); do
        # shellcheck disable=SC2086
        kill -0 $all 2>/dev/null || return 0
        sleep 0.1
    done
    # shellcheck disable=SC2086
    kill -KILL $all 2>/dev/null || true
}
