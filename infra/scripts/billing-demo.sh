#!/usr/bin/env bash
# The self-serve billing loop from the command line, against a running `make dev`: what the web
# app's billing page does, with the Stripe stand-in's buttons pressed for you.
#
#   infra/scripts/billing-demo.sh status                       GET /v1/billing/subscription
#   infra/scripts/billing-demo.sh upgrade PLAN [INTERVAL]      POST /v1/billing/checkout, then "Pay"
#   infra/scripts/billing-demo.sh checkout PLAN [INTERVAL]     only print the checkout URL (open it)
#   infra/scripts/billing-demo.sh portal                       only print the portal URL (open it)
#   infra/scripts/billing-demo.sh change PLAN [INTERVAL]       POST /v1/billing/portal, then switch plan
#   infra/scripts/billing-demo.sh cancel | cancel-now | resume POST /v1/billing/portal, then that button
#   infra/scripts/billing-demo.sh renew [pay|fail]             the period ends: the renewal is paid, or its
#                                                              payment fails (dunning: past_due, the
#                                                              billing email; the 4th failure: unpaid)
#
# PLAN: starter or pro (the local plans table); INTERVAL: month (default) or year. Each step
# prints the webhook deliveries it caused and then the subscription. Logs in as the demo owner
# with this run's password (.dev/demo.env, written by dev.sh; STATE_DIR picks another directory).
set -euo pipefail

cd "$(dirname "$0")/../.."
state_dir=${STATE_DIR:-.dev}
if [ ! -f "$state_dir/demo.env" ]; then
    echo "billing-demo: no $state_dir/demo.env: is \`make dev\` running?" >&2
    exit 1
fi
# shellcheck disable=SC1091
. "$state_dir/demo.env"
stripe_base=${STRIPE_BASE:-http://127.0.0.1:${LOCAL_STRIPE_PORT:-12111}}

json() { python3 -c 'import json,sys; v=json.load(sys.stdin)
for k in sys.argv[1].split("."): v=v[k]
print(v)' "$1"; }

token=$(curl -sf -H 'content-type: application/json' \
    -d "$(printf '{"email":"%s","password":"%s"}' "$DEMO_EMAIL" "$DEMO_PASSWORD")" \
    "$API_BASE/v1/auth/login" | json access_token)

api() { # METHOD PATH [BODY]
    local out status
    out=$(mktemp)
    status=$(curl -s -o "$out" -w '%{http_code}' -X "$1" -H "authorization: Bearer $token" \
        -H 'content-type: application/json' ${3:+-d "$3"} "$API_BASE$2")
    if [ "${status:0:1}" != 2 ]; then
        echo "billing-demo: $1 $2 answered $status: $(cat "$out")" >&2
        rm -f "$out"
        exit 1
    fi
    cat "$out"
    rm -f "$out"
}

# press URL [FORM]: a button of a stand-in page; prints the deliveries.
press() {
    curl -sf -H 'accept: application/json' -d "${2:-}" "$1" | python3 -c '
import json, sys
for d in json.load(sys.stdin)["deliveries"]:
    print("  webhook %-34s -> %s %s" % (d["event_type"], d["status"], d["outcome"] or ""))'
}

status() {
    api GET /v1/billing/subscription | python3 -c '
import json, sys
s = json.load(sys.stdin)
u = s["usage"]
print("plan %s (%s, %s), quota %s/month, used %s, seats %s" % (s["plan"],
      s["status"] or "no subscription", s["standing"], u["quota"], u["submissions"],
      s["entitlements"]["seats"]))
if s["cancel_at_period_end"]:
    print("cancels at %s" % s["cancel_at"])
if s["grace_until"]:
    print("grace until %s" % s["grace_until"])
if s["payment_failing"]:
    print("payment failing: billing members emailed; the plan stops %d days after the retries end"
          % s["grace_days"])
if s["proration"]:
    p = s["proration"]
    print("prorated plan change: %s %s (invoice %s)" % (p["amount_paid"], p["currency"], p["invoice_id"]))'
}

checkout_url() { api POST /v1/billing/checkout "{\"plan\":\"$1\",\"interval\":\"${2:-month}\"}" | json url; }
portal_url() { api POST /v1/billing/portal | json url; }

case "${1:-status}" in
    status) status ;;
    checkout) checkout_url "${2:?plan}" "${3:-month}" ;;
    portal) portal_url ;;
    upgrade)
        url=$(checkout_url "${2:?plan}" "${3:-month}")
        echo "checkout $url"
        press "$url/complete"
        status
        ;;
    change)
        url=$(portal_url)
        echo "portal $url"
        press "$url/plan" "plan=${2:?plan}&interval=${3:-month}"
        status
        ;;
    renew)
        press "$stripe_base/_standin/tenants/demo-tenant/renew" "outcome=${2:-pay}"
        status
        ;;
    cancel | cancel-now | resume)
        url=$(portal_url)
        echo "portal $url"
        press "$url/${1//-/_}"
        status
        ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2 ;;
esac
