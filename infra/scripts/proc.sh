# shellcheck shell=bash
# Process helpers shared by dev.sh and the scripts that run a whole stack (sourced, not run).
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

# ---------------------------------------------------------------- a whole stack, for a test
# Used by tests/e2e/run.sh, tests/contract/run.sh and infra/scripts/load.sh: the local stack
# (dev.sh) on free ports, so it never collides with a running `make dev`, stopped on the way
# out whatever happens. The caller sets `log`, and may add its own cleanup in `stack_cleanup`.
#
#   stack_start NAME            starts it under $root/.dev/NAME-$$ and waits until it is ready
#                               (dev.sh's environment comes from the caller's: LOCAL_*);
#                               then the ready file's variables (API_BASE, ...) are exported
#   trap stack_stop EXIT        stops it; logs kept when the exit status is not 0

stack_pid=
stack_state_dir=

# stack_ports: six distinct free loopback ports, held open at once so they differ.
stack_ports() {
    python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(6)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
for s in socks:
    s.close()
PY
}

stack_start() {
    local name=$1 aws_port web_port api_port faults_port stripe_port sink_port ready_file
    read -r aws_port web_port api_port faults_port stripe_port sink_port < <(stack_ports)
    stack_state_dir="$root/.dev/$name-$$"
    ready_file="$stack_state_dir/ready"
    mkdir -p "$stack_state_dir"
    log "starting the stack (AWS :$aws_port, web :$web_port, API :$api_port; logs: $stack_state_dir)"
    LOCAL_AWS_PORT=$aws_port LOCAL_WEB_PORT=$web_port LOCAL_API_PORT=$api_port \
        LOCAL_FAULTS_PORT=$faults_port LOCAL_STRIPE_PORT=$stripe_port LOCAL_SINK_PORT=$sink_port \
        bash infra/scripts/dev.sh --ready-file "$ready_file" --state-dir "$stack_state_dir" \
        --no-reload --quiet >"$stack_state_dir/dev.log" 2>&1 &
    stack_pid=$!
    # Generous: on a fresh checkout dev.sh builds the venv and the binaries first.
    local _
    for _ in $(seq 1 1800); do
        [ -f "$ready_file" ] && break
        if ! kill -0 "$stack_pid" 2>/dev/null; then
            log "the stack did not start:"
            cat "$stack_state_dir/dev.log" >&2
            return 1
        fi
        sleep 0.5
    done
    if [ ! -f "$ready_file" ]; then
        log "the stack was not ready after 15 minutes:"
        cat "$stack_state_dir/dev.log" >&2
        return 1
    fi
    # Written by dev.sh: WEB_URL, API_BASE, AWS_ENDPOINT, STAGE, FORM_ID, STATE_DIR, STRIPE_BASE,
    # DEMO_*.
    set -a
    # shellcheck disable=SC1090
    . "$ready_file"
    set +a
}

# The caller's own cleanup (a browser, a load run), run first by stack_stop.
stack_cleanup() { :; }

stack_stop() {
    local status=$? pid name _
    trap - EXIT INT TERM
    set +e
    trap '' PIPE
    stack_cleanup
    if [ -n "$stack_pid" ]; then
        log "stopping the stack"
        # dev.sh stops its services itself on SIGTERM...
        kill -TERM "$stack_pid" 2>/dev/null || true
        for _ in $(seq 1 150); do
            kill -0 "$stack_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$stack_pid" 2>/dev/null || true
        # ...and records them, so they are stopped even if dev.sh itself could not do it.
        if [ -f "$stack_state_dir/pids" ]; then
            while read -r pid name; do
                if kill -0 "$pid" 2>/dev/null; then
                    log "stopping leftover $name ($pid)"
                    stop_tree "$pid"
                fi
            done <"$stack_state_dir/pids"
        fi
        wait "$stack_pid" 2>/dev/null || true
        if [ "$status" = 0 ]; then
            rm -rf "$stack_state_dir"
        else
            log "logs kept in $stack_state_dir"
        fi
    fi
    exit "$status"
}
