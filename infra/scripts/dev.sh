#!/usr/bin/env bash
# `make dev`: the whole stack on this machine, from template.yaml.
#
#   1. moto_server emulates AWS (DynamoDB, S3, SSM) on 127.0.0.1:$LOCAL_AWS_PORT (4566);
#   2. `devstack bootstrap` creates the template's tables and buckets, `devstack seed` the demo data;
#   3. a demo page with a contact form is served on 127.0.0.1:$LOCAL_WEB_PORT (8080);
#   4. a stand-in for Stripe (`devstack stripe`, infra/src/stripe_standin.rs) on
#      127.0.0.1:$LOCAL_STRIPE_PORT (12111): the billing function's checkout and portal sessions,
#      their pages, and the signed webhooks those pages send to the local webhook route;
#   5. `cargo lambda watch` runs the functions on 127.0.0.1:$LOCAL_API_PORT (9000), routed by the
#      committed CargoLambda.toml exactly as the HTTP API routes them in production;
#   6. `devstack outbound` (infra/src/outbound_local.rs) reads the leads table's change stream
#      and the webhook retry queue in the emulator and invokes `outbound` through the local
#      Invoke API, as Lambda's event source mappings do, and serves a webhook sink on
#      127.0.0.1:$LOCAL_SINK_PORT (12112; docs/outbound.md, "Trying it locally").
#
# Ctrl-C (or SIGTERM) stops everything this script started. Running it again starts afresh: the
# emulator keeps its data in memory, and bootstrap and seed are idempotent.
#
# Environment:
#   LOCAL_AWS_PORT, LOCAL_WEB_PORT, LOCAL_API_PORT, LOCAL_STRIPE_PORT, LOCAL_SINK_PORT
#                       ports (4566, 8080, 9000, 12111, 12112; the sink's port is the one the
#                       local stage may deliver webhooks to: WebhookLoopbackPorts, set here)
#   LOCAL_CONCURRENCY   concurrent instances of each function (default 4), as Lambda runs many
#                       containers at once: races between requests are reachable locally
#   LOCAL_PARAMETERS    template parameter overrides, space-separated Name=value, e.g.
#                       "RateLimitPerIpPerMinute=100000 RateLimitPerFormPerMinute=100000" (locally
#                       every request comes from 127.0.0.1); an unknown name fails at start
#   LOCAL_FAULTS        put the fault-injecting proxy (infra/src/faults.rs) between the functions
#                       and the emulator, e.g. "rate=0.2" or
#                       "rate=0.1,seed=7,services=dynamodb+s3,kinds=throttle+lost500"; it listens
#                       on LOCAL_FAULTS_PORT (4567) and logs what it injected to DIR/faults.log.
#                       Unset: the proxy runs with rate=0 (for DynamoDB's transaction idempotency,
#                       which moto lacks). Seeding and bootstrap always go straight to the emulator.
#
# Options (used by the e2e test, tests/e2e/run.sh):
#   --ready-file PATH   when everything answers, write KEY=VALUE lines (URLs, the demo owner's
#                       email and password) to PATH
#   --state-dir DIR     where the generated page, env file and logs go (default: .dev)
#   --no-reload         do not rebuild and restart functions when sources change
#   --quiet             send the functions' output to DIR/lambda.log instead of the terminal
#   --stage NAME        stage whose resource names to use (default: dev)
set -euo pipefail

cd "$(dirname "$0")/../.."
root=$PWD

aws_port=${LOCAL_AWS_PORT:-4566}
web_port=${LOCAL_WEB_PORT:-8080}
api_port=${LOCAL_API_PORT:-9000}
stripe_port=${LOCAL_STRIPE_PORT:-12111}
sink_port=${LOCAL_SINK_PORT:-12112}
# The local stage delivers webhooks to its own sink only (docs/outbound.md): its port is the
# template's WebhookLoopbackPorts, unless the caller names that parameter itself.
case " ${LOCAL_PARAMETERS:-} " in
    *" WebhookLoopbackPorts="*) ;;
    *) export LOCAL_PARAMETERS="${LOCAL_PARAMETERS:+$LOCAL_PARAMETERS }WebhookLoopbackPorts=$sink_port" ;;
esac
concurrency=${LOCAL_CONCURRENCY:-4}
# Without LOCAL_FAULTS the proxy still runs, faulting nothing: it gives TransactWriteItems the
# ClientRequestToken idempotency of DynamoDB that moto lacks. Under load the serialized emulator
# answers in seconds, the SDK's attempt timeout fires and it sends the transaction again; moto
# would apply it twice (a duplicate submission), DynamoDB does not.
faults=${LOCAL_FAULTS:-rate=0}
faults_port=${LOCAL_FAULTS_PORT:-4567}
state_dir=.dev
ready_file=
stage=dev
reload=yes
quiet=no
form_id=demo-contact

while [ $# -gt 0 ]; do
    case "$1" in
        --ready-file) ready_file=$2; shift 2 ;;
        --state-dir) state_dir=$2; shift 2 ;;
        --stage) stage=$2; shift 2 ;;
        --no-reload) reload=no; shift ;;
        --quiet) quiet=yes; shift ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "dev.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

aws_endpoint="http://127.0.0.1:$aws_port"
web_origin="http://127.0.0.1:$web_port"
api_base="http://127.0.0.1:$api_port"
stripe_base="http://127.0.0.1:$stripe_port"

log() { printf 'dev.sh: %s\n' "$*" >&2; }

# ---------------------------------------------------------------- process bookkeeping
# Every long-running child gets its own session (setsid), so Ctrl-C in the terminal reaches only
# this script, which then stops each child and everything the child started (cargo-lambda runs
# the functions through cargo; those processes must not outlive it and keep the ports).
pids=()

# shellcheck source=infra/scripts/proc.sh
. infra/scripts/proc.sh

# Long steps (the build, the warm-up) run through `interruptible`: bash holds a trap back until
# the foreground command ends, but a `wait` is cut short by it, so Ctrl-C acts at once.
step_pid=
interruptible() {
    local status=0
    "$@" &
    step_pid=$!
    wait "$step_pid" || status=$?
    step_pid=
    return "$status"
}

cleanup() {
    local status=$? i
    trap - EXIT INT TERM
    # Finish stopping children whatever happens: a failed command must not end the cleanup, nor
    # a closed stderr (e.g. `make dev | tee log` after Ctrl-C, which kills tee too).
    set +e
    trap '' PIPE
    if [ -n "$step_pid" ]; then
        stop_tree "$step_pid"
    fi
    if [ ${#pids[@]} -gt 0 ]; then
        log "stopping..."
        for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
            stop_tree "${pids[$i]}"
        done
        wait 2>/dev/null || true
        # Only when this run wrote it: a run refused at preflight must not touch another's files.
        rm -f "$state_dir/pids"
        [ -n "$ready_file" ] && rm -f "$ready_file"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME LOGFILE COMMAND...: runs COMMAND in its own session; output to LOGFILE, or to the
# terminal when LOGFILE is "-".
start() {
    local name=$1 logfile=$2
    shift 2
    if [ "$logfile" = - ]; then
        setsid "$@" </dev/null &
    else
        setsid "$@" </dev/null >"$logfile" 2>&1 &
    fi
    pids+=("$!")
    # Lets a supervisor (the e2e test) clean up even if this script is killed with SIGKILL.
    echo "$! $name" >>"$state_dir/pids"
}

# wait_for NAME PID SECONDS COMMAND...: polls COMMAND until it succeeds; fails early if PID died.
wait_for() {
    local name=$1 pid=$2 seconds=$3 i
    shift 3
    for ((i = 0; i < seconds * 5; i++)); do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            log "$name exited before it was ready"
            return 1
        fi
        sleep 0.2
    done
    log "$name did not become ready within ${seconds}s"
    return 1
}

port_is_free() {
    # SO_REUSEADDR like the servers themselves, so a port in TIME_WAIT from the previous run counts as free.
    python3 - "$1" <<'EOF'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
EOF
}

port_answers() {
    python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$1"
}

# ---------------------------------------------------------------- preflight
case "$concurrency" in
    '' | *[!0-9]* | 0) log "LOCAL_CONCURRENCY must be a positive number of instances, not '$concurrency'"; exit 2 ;;
esac
for spec in "LOCAL_AWS_PORT:$aws_port" "LOCAL_WEB_PORT:$web_port" "LOCAL_API_PORT:$api_port" \
    "LOCAL_STRIPE_PORT:$stripe_port" "LOCAL_SINK_PORT:$sink_port"; do
    if ! port_is_free "${spec#*:}"; then
        log "port ${spec#*:} is in use (is another 'make dev' running?); choose another with ${spec%%:*}=PORT"
        exit 1
    fi
done

mkdir -p "$state_dir"
state_dir=$(cd "$state_dir" && pwd)
rm -f "$state_dir/pids"
if [ -n "$ready_file" ]; then rm -f "$ready_file"; fi

bash infra/scripts/venv.sh
venv=$root/.venv

# One build for devstack and every function, before anything starts: cargo-lambda then finds the
# functions built and the first request does not wait for a compile. (`--bins` over the default
# members: the functions and infra; the same debug artifacts `cargo test` uses.)
log "building devstack and the functions..."
interruptible cargo build --quiet --bins
devstack="${CARGO_TARGET_DIR:-$root/target}/debug/devstack"

# cargo-lambda routes by the committed CargoLambda.toml; a stale one would answer 404 at paths the
# template has (infra/tests/router_matches_template.rs catches this too, but later).
if ! "$devstack" router | cmp -s - CargoLambda.toml; then
    log "CargoLambda.toml does not match template.yaml's routes; regenerate it with:"
    log "  cargo run -q -p infra --bin devstack -- router > CargoLambda.toml"
    exit 1
fi

# ---------------------------------------------------------------- emulated AWS
log "starting moto_server on $aws_endpoint (log: $state_dir/moto.log)"
start moto "$state_dir/moto.log" "$venv/bin/python" infra/scripts/moto_server.py -H 127.0.0.1 -p "$aws_port"
wait_for moto_server "${pids[-1]}" 60 curl -sf "$aws_endpoint/moto-api/"

"$devstack" bootstrap --endpoint "$aws_endpoint" --stage "$stage" >/dev/null
log "created the template's tables and buckets for stage $stage"
seed=$("$devstack" seed --endpoint "$aws_endpoint" --stage "$stage" --web-origin "$web_origin")
printf '%s\n' "$seed"
demo_email=$(printf '%s\n' "$seed" | sed -n 's/^owner  *//p')
demo_password=$(printf '%s\n' "$seed" | sed -n 's/^password  *//p')
# For infra/scripts/billing-demo.sh: where the API is and who the demo owner is (this run's
# generated password; the state directory stays on this machine).
(umask 077; printf 'API_BASE=%s\nSTRIPE_BASE=%s\nDEMO_EMAIL=%s\nDEMO_PASSWORD=%s\n' "$api_base" \
    "$stripe_base" "$demo_email" "$demo_password" >"$state_dir/demo.env")

# ---------------------------------------------------------------- demo page
www="$state_dir/www"
rm -rf "$www"
mkdir -p "$www"
sed -e "s#{{API_BASE}}#$api_base#g" -e "s#{{FORM_ID}}#$form_id#g" \
    infra/demo/index.html.tmpl >"$www/index.html"
cp infra/demo/thanks.html "$www/thanks.html"
sed -e "s#{{STRIPE_BASE}}#$stripe_base#g" infra/demo/billing.html.tmpl >"$www/billing.html"
log "serving the demo page on $web_origin (log: $state_dir/web.log)"
start web "$state_dir/web.log" python3 -m http.server "$web_port" --bind 127.0.0.1 --directory "$www"
wait_for "demo page server" "${pids[-1]}" 30 curl -sf "$web_origin/"

# ---------------------------------------------------------------- Stripe stand-in
# The billing function's STRIPE_API_BASE_URL points here (never at Stripe from a local stack).
# Its pages' webhooks go to the local webhook route, signed with the local secret.
log "starting the Stripe stand-in on $stripe_base (log: $state_dir/stripe.log)"
start stripe "$state_dir/stripe.log" "$devstack" stripe --port "$stripe_port" \
    --webhook-url "$api_base/v1/billing/webhooks/stripe"
wait_for "Stripe stand-in" "${pids[-1]}" 30 port_answers "$stripe_port"

# ---------------------------------------------------------------- injected faults (optional)
functions_endpoint=$aws_endpoint
if true; then
    if ! port_is_free "$faults_port"; then
        log "port $faults_port is in use; choose another with LOCAL_FAULTS_PORT=PORT"
        exit 1
    fi
    log "starting the fault proxy on 127.0.0.1:$faults_port ($faults; log: $state_dir/faults.log)"
    start faults "$state_dir/faults.log" "$devstack" faults --endpoint "$aws_endpoint" \
        --port "$faults_port" --spec "$faults"
    wait_for "fault proxy" "${pids[-1]}" 30 port_answers "$faults_port"
    functions_endpoint="http://127.0.0.1:$faults_port"
fi

# ---------------------------------------------------------------- functions
"$devstack" env --endpoint "$functions_endpoint" --stage "$stage" >"$state_dir/lambda.env"
# The environment points the functions at the API on its default port (embed snippets, one-click
# unsubscribe links, the DSAR worker's Invoke endpoint); follow LOCAL_API_PORT when it is another.
sed -i "s#=http://127.0.0.1:9000\$#=$api_base#" "$state_dir/lambda.env"
# Likewise the Stripe stand-in, and the demo page Checkout and the portal return to.
sed -i -e "s#=http://127.0.0.1:12111\$#=$stripe_base#" \
    -e "s#http://127.0.0.1:8080/billing.html#$web_origin/billing.html#" "$state_dir/lambda.env"
# Each function runs up to $concurrency instances at once (cargo-lambda starts another when all
# are busy), like Lambda's concurrent containers. The emulator behind them stays serialized: see
# infra/scripts/moto_server.py.
watch_args=(--invoke-address 127.0.0.1 --invoke-port "$api_port" --disable-cors
    --concurrency "$concurrency" --env-file "$state_dir/lambda.env")
if [ "$reload" = no ]; then
    watch_args+=(--ignore-changes)
fi
lambda_log=-
lambda_log_hint="this terminal"
if [ "$quiet" = yes ]; then
    lambda_log="$state_dir/lambda.log"
    lambda_log_hint=$lambda_log
fi
log "starting cargo lambda watch on $api_base, $concurrency instances per function (function log: $lambda_log_hint)"
# From the workspace root, where cargo-lambda reads CargoLambda.toml (router, CORS off).
start lambda "$lambda_log" env PATH="$venv/bin:$PATH" cargo lambda watch "${watch_args[@]}"
wait_for "cargo lambda watch" "${pids[-1]}" 120 port_answers "$api_port"

# cargo-lambda starts a function on its first request (a `cargo run`, which rebuilds if sources
# changed since the build above). Send that first request now, a CORS preflight, so "ready" means
# the function answers. A function that fails to start leaves the request hanging (cargo-lambda
# waits for it to come up), hence the time limit. With reloading on (`make dev`), a failure is
# only reported: the stack stays up and picks up the fix. Without (the e2e test), it is fatal.
log "warming up lead-intake (its first request starts it)..."
interruptible curl -s -o /dev/null -w '%{http_code}' --max-time 300 -X OPTIONS \
    -H "Origin: $web_origin" -H 'Access-Control-Request-Method: POST' \
    "$api_base/v1/forms/$form_id/submissions" >"$state_dir/preflight" || true
preflight=$(cat "$state_dir/preflight")
case "$preflight" in
    2??) log "lead-intake answered its CORS preflight (HTTP $preflight)" ;;
    *)
        log "lead-intake did not answer its CORS preflight (HTTP $preflight); see the function log ($lambda_log_hint)"
        if [ "$reload" = no ]; then
            exit 1
        fi
        ;;
esac

# ---------------------------------------------------------------- the outbound channel
# What Lambda's event source mappings do in AWS: the leads table's stream and the retry queue,
# read from the emulator (never through the fault proxy), handed to `outbound` through the
# Invoke API; and the webhook sink the local stage may deliver to.
log "starting the outbound poller and the webhook sink on http://127.0.0.1:$sink_port/hook (log: $state_dir/outbound.log)"
start outbound "$state_dir/outbound.log" "$devstack" outbound --endpoint "$aws_endpoint" \
    --stage "$stage" --invoke "$api_base" --sink-port "$sink_port"
wait_for "webhook sink" "${pids[-1]}" 30 port_answers "$sink_port"

# ---------------------------------------------------------------- ready
cat >&2 <<EOF

  Local stack is up (stage $stage):
    demo page        $web_origin/
    API base         $api_base   (e.g. POST $api_base/v1/forms/$form_id/submissions)
    Lambda invoke    $api_base/2015-03-31/functions/<binary>/invocations
    AWS emulator     $aws_endpoint   (moto_server; state: $aws_endpoint/moto-api/)
    Stripe stand-in  $stripe_base   (checkout and portal pages; calls: $stripe_base/_standin/calls)
    webhook sink     http://127.0.0.1:$sink_port/hook   (register it: POST $api_base/v1/webhooks; received: /_sink/deliveries)
    billing          infra/scripts/billing-demo.sh upgrade pro   (docs/billing.md, "Trying it locally")
    functions use    $functions_endpoint   (fault proxy: $faults)
    logs             $state_dir/

  Ctrl-C stops everything.

EOF

if [ -n "$ready_file" ]; then
    cat >"$ready_file.tmp" <<EOF
WEB_URL=$web_origin
API_BASE=$api_base
AWS_ENDPOINT=$aws_endpoint
STAGE=$stage
FORM_ID=$form_id
STATE_DIR=$state_dir
STRIPE_BASE=$stripe_base
SINK_BASE=http://127.0.0.1:$sink_port
DEMO_EMAIL=$demo_email
DEMO_PASSWORD=$demo_password
EOF
    mv "$ready_file.tmp" "$ready_file"
fi

# Until Ctrl-C, or until one of the services dies (then stop the rest rather than limp on).
set +e
wait -n "${pids[@]}"
status=$?
set -e
log "a service exited (status $status); see the logs in $state_dir/"
exit 1
