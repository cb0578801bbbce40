#!/usr/bin/env bash
# Browser end-to-end test: starts the whole local stack (infra/scripts/dev.sh) on free ports, so it
# never collides with a running `make dev`, then drives the demo form in headless Chromium
# (tests/e2e/demo_form.test.mjs), then the outbound channel through the same stack's API, stream
# poller and webhook sink (tests/e2e/outbound.test.mjs), then self-serve billing through its Stripe
# stand-in (tests/e2e/billing.test.mjs). Everything it started is stopped on the way out, pass or
# fail.
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
node_pid=
stack_cleanup() {
    if [ -n "$node_pid" ]; then
        stop_tree "$node_pid"
    fi
}
trap stack_stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
stack_start e2e
state_dir=$stack_state_dir
export CHROMIUM="$chromium"
export DEVSTACK="${CARGO_TARGET_DIR:-$root/target}/debug/devstack"

# Each script in the background and waited for, so that SIGTERM/Ctrl-C reach the trap at once
# rather than after the script finishes. The browser test runs first: it counts what the emulator
# holds.
status=0
for script in demo_form.test.mjs outbound.test.mjs billing.test.mjs; do
    log "running $e2e/$script"
    node "$e2e/$script" &
    node_pid=$!
    set +e
    wait "$node_pid"
    status=$?
    set -e
    node_pid=
    if [ "$status" != 0 ]; then
        log "function log (last 40 lines):"
        tail -n 40 "$state_dir/lambda.log" >&2 || true
        log "outbound poller log (last 20 lines):"
        tail -n 20 "$state_dir/outbound.log" >&2 || true
        break
    fi
done
exit "$status"
