#!/usr/bin/env bash
# Browser end-to-end test: starts the whole local stack (infra/scripts/dev.sh) on free ports, so it
# never collides with a running `make dev`, then drives the demo form in headless Chromium
# (tests/e2e/demo_form.test.mjs). Everything it started is stopped on the way out, pass or fail.
#
# Installs what it needs when missing: Debian's chromium (needs root, as in CI) and playwright-core
# from package-lock.json (it downloads no browser of its own).
set -euo pipefail

cd "$(dirname "$0")/../.."
root=$PWD
e2e=tests/e2e

log() { printf 'e2e: %s\n' "$*" >&2; }
# shellcheck source=infra/scripts/proc.sh
. infra/scripts/proc.sh

# ---------------------------------------------------------------- tools
chromium=${CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$chromium" ]; then
    if [ "$(id -u)" != 0 ]; then
        log "$chromium is missing; install it with: sudo apt-get install chromium"
        exit 1
    fi
    log "installing Debian's chromium"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq chromium >/dev/null
    if [ ! -x "$chromium" ]; then
        log "chromium installed, but $chromium is still missing (set CHROMIUM to its path)"
        exit 1
    fi
fi

# Reinstall only when the lock file changed since the last install.
if ! cmp -s "$e2e/package-lock.json" "$e2e/node_modules/.package-lock.json" 2>/dev/null; then
    log "installing playwright-core (npm ci)"
    (cd "$e2e" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$e2e/package-lock.json" "$e2e/node_modules/.package-lock.json"
fi

# ---------------------------------------------------------------- stack on free ports
read -r aws_port web_port api_port < <(python3 - <<'EOF'
import socket
# Hold all three open at once so they are distinct; the servers bind them right after.
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
for s in socks:
    s.close()
EOF
)

state_dir="$root/.dev/e2e-$$"
ready_file="$state_dir/ready"
mkdir -p "$state_dir"
dev_pid=
node_pid=

stop_stack() {
    local status=$? pid name _
    trap - EXIT INT TERM
    set +e
    trap '' PIPE
    if [ -n "$node_pid" ]; then
        stop_tree "$node_pid"
    fi
    if [ -n "$dev_pid" ]; then
        log "stopping the stack"
        # dev.sh stops its services itself on SIGTERM...
        kill -TERM "$dev_pid" 2>/dev/null || true
        for _ in $(seq 1 150); do
            kill -0 "$dev_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$dev_pid" 2>/dev/null || true
        # ...and records them, so they are stopped even if dev.sh itself could not do it.
        if [ -f "$state_dir/pids" ]; then
            while read -r pid name; do
                if kill -0 "$pid" 2>/dev/null; then
                    log "stopping leftover $name ($pid)"
                    stop_tree "$pid"
                fi
            done <"$state_dir/pids"
        fi
        wait "$dev_pid" 2>/dev/null || true
    fi
    if [ "$status" = 0 ]; then
        rm -rf "$state_dir"
    else
        log "logs kept in $state_dir"
    fi
    exit "$status"
}
trap stop_stack EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "starting the stack (AWS :$aws_port, web :$web_port, API :$api_port; logs: $state_dir)"
LOCAL_AWS_PORT=$aws_port LOCAL_WEB_PORT=$web_port LOCAL_API_PORT=$api_port \
    bash infra/scripts/dev.sh --ready-file "$ready_file" --state-dir "$state_dir" --no-reload --quiet \
    >"$state_dir/dev.log" 2>&1 &
dev_pid=$!

# Generous: on a fresh checkout dev.sh builds the venv and the binaries first.
for _ in $(seq 1 1800); do
    [ -f "$ready_file" ] && break
    if ! kill -0 "$dev_pid" 2>/dev/null; then
        log "the stack did not start:"
        cat "$state_dir/dev.log" >&2
        exit 1
    fi
    sleep 0.5
done
if [ ! -f "$ready_file" ]; then
    log "the stack was not ready after 15 minutes:"
    cat "$state_dir/dev.log" >&2
    exit 1
fi

# Written by dev.sh: WEB_URL, API_BASE, AWS_ENDPOINT, STAGE, FORM_ID, STATE_DIR.
set -a
# shellcheck disable=SC1090
. "$ready_file"
set +a
export CHROMIUM="$chromium"
export DEVSTACK="${CARGO_TARGET_DIR:-$root/target}/debug/devstack"

log "running $e2e/demo_form.test.mjs"
# In the background and waited for, so that SIGTERM/Ctrl-C reach the trap at once rather than
# after the browser test finishes.
node "$e2e/demo_form.test.mjs" &
node_pid=$!
set +e
wait "$node_pid"
status=$?
set -e
node_pid=
if [ "$status" != 0 ]; then
    log "function log (last 40 lines):"
    tail -n 40 "$state_dir/lambda.log" >&2 || true
fi
exit "$status"
