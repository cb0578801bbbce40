"""Load run against a running local stack (infra/scripts/load.sh starts one; `make load`).

2,000 form submissions (LOAD_SUBMISSIONS) at 50 concurrent (LOAD_CONCURRENCY), a realistic mix:
new and returning people, JSON and plain urlencoded posts, some spam (a filled honeypot), some
retried with an Idempotency-Key, and a burst to one form beyond its per-minute limit, while lead
lists, exports and a data-subject request (filed, verified with the emailed code, approved) run
alongside. Then every acknowledged submission is looked for in the emulator's table.

Every request answered 503 with Retry-After is sent again (up to 5 times), as a client does;
run under injected faults with LOCAL_FAULTS (e.g. `LOCAL_FAULTS=rate=0.2 make load`).

Prints: accepted, rejected by reason, lost (must be 0), 5xx (must be 0), duplicates (must be 0),
spam stored (must be 0), p50/p95/p99 latency, and the side traffic's answers. Exits 1 when a
must-be-0 figure is not. Loopback only; bounded in count and in time (LOAD_DEADLINE_S).

Run with the project's virtualenv (.venv, which has boto3 through moto): only the standard
library otherwise.
"""

import concurrent.futures as futures
import http.client
import json
import os
import random
import re
import sys
import threading
import time
import urllib.parse

import boto3

API = os.environ["API_BASE"]
AWS = os.environ["AWS_ENDPOINT"]
STAGE = os.environ["STAGE"]
WEB = os.environ["WEB_URL"]
TOTAL = int(os.environ.get("LOAD_SUBMISSIONS", "2000"))
CONCURRENCY = int(os.environ.get("LOAD_CONCURRENCY", "50"))
DEADLINE_S = float(os.environ.get("LOAD_DEADLINE_S", "600"))
FLOOD_SHARE = 0.175
FORMS = 20
RUN = f"{int(time.time())}"
RNG = random.Random(int(os.environ.get("LOAD_SEED", "7")))

started = time.monotonic()


def remaining():
    return DEADLINE_S - (time.monotonic() - started)


unavailable = [0]  # 503s answered (each then sent again, as a client honouring Retry-After)


def request(method, path, body=None, headers=None, raw=None, content_type="application/json"):
    """One request, sent again (same body, same headers) while it is answered 503 with
    Retry-After, at most 5 times: a client of the API does that, and under injected faults
    (LOCAL_FAULTS) the functions answer 503 when AWS is briefly unavailable."""
    for _ in range(5):
        status, hdrs, payload = request_once(method, path, body, headers, raw, content_type)
        retry_after = {k.lower(): v for k, v in hdrs.items()}.get("retry-after")
        if status != 503 or retry_after is None or remaining() < 5:
            return status, hdrs, payload
        with lock:
            unavailable[0] += 1
        time.sleep(min(float(retry_after), 5.0))
    return status, hdrs, payload


def request_once(method, path, body=None, headers=None, raw=None, content_type="application/json"):
    """One request on its own connection (each thread its own); returns (status, headers, body)."""
    u = urllib.parse.urlsplit(API)
    assert u.hostname in ("127.0.0.1", "localhost"), "loopback only"
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=max(5.0, min(60.0, remaining())))
    h = {"Accept": "application/json"}
    h.update(headers or {})
    data = raw
    if body is not None:
        data = json.dumps(body).encode()
    if data is not None:
        h["Content-Type"] = content_type
    try:
        conn.request(method, path, body=data, headers=h)
        r = conn.getresponse()
        payload = r.read()
        return r.status, dict(r.getheaders()), payload
    finally:
        conn.close()


def js(payload):
    try:
        return json.loads(payload or b"{}")
    except ValueError:
        return {}


# ---------------------------------------------------------------- setup: a token and forms
status, _, b = request(
    "POST", "/v1/auth/login", {"email": os.environ["DEMO_EMAIL"], "password": os.environ["DEMO_PASSWORD"]}
)
assert status == 200, f"login: {status} {b[:200]!r}"
token = js(b)["access_token"]
auth = {"Authorization": f"Bearer {token}"}

forms = []
for i in range(FORMS + 1):
    status, _, b = request(
        "POST",
        "/v1/forms",
        {"name": f"Load {RUN} {i}", "allowed_origins": [WEB], "redirect_url": f"{WEB}/thanks.html"},
        auth,
    )
    assert status == 201, f"form: {status} {b[:200]!r}"
    forms.append(js(b)["id"])
flood_form, forms = forms[-1], forms[:-1]

# ---------------------------------------------------------------- the submissions
people = [f"load.{RUN}.{i}@example.com" for i in range(int(TOTAL * 0.6))]


def plan():
    """Each submission: (marker, form, email, kind) with kind json | plain | spam | retried."""
    out = []
    flood = int(TOTAL * FLOOD_SHARE)
    for i in range(TOTAL):
        form = flood_form if i < flood else RNG.choice(forms)
        r = RNG.random()
        kind = "spam" if r < 0.05 else "retried" if r < 0.10 else "plain" if r < 0.40 else "json"
        out.append((f"load-{RUN}-{i}", form, RNG.choice(people), kind))
    # The flood comes as a burst early in the run (mixed with ordinary traffic), so that form
    # meets its per-minute limit; the other forms stay under theirs.
    head, tail = out[: 2 * flood], out[2 * flood :]
    RNG.shuffle(head)
    RNG.shuffle(tail)
    return head + tail


lock = threading.Lock()
results = []  # (marker, kind, status, code, seconds)


def submit(item):
    marker, form, email, kind = item
    path = f"/v1/forms/{form}/submissions"
    body = {"email": email, "name": "Load Person", "message": marker}
    headers = {"Origin": WEB}
    if kind == "spam":
        body["_gotcha"] = "http://spam.example"
    t0 = time.monotonic()
    if kind == "plain":
        raw = urllib.parse.urlencode(body).encode()
        status, _, b = request("POST", path, headers=headers, raw=raw, content_type="application/x-www-form-urlencoded")
    elif kind == "retried":
        # A client that lost the first answer sends the same body again under the same key.
        headers["Idempotency-Key"] = f"k-{marker}"
        status, _, b = request("POST", path, body, headers)
        if status < 500:
            status2, _, b2 = request("POST", path, body, headers)
            if status2 >= 500:
                status, b = status2, b2
            elif status == 201 and js(b).get("submission_id") != js(b2).get("submission_id"):
                status, b = 599, b"retry answered another submission id"
    else:
        status, _, b = request("POST", path, body, headers)
    elapsed = time.monotonic() - t0
    code = js(b).get("error", {}).get("code", "") if status >= 400 else ""
    if status >= 500 and b"httpstatuses.com" in (b or b""):
        code = "cargo-lambda router"
    with lock:
        results.append((marker, kind, status, code, elapsed))


side = []  # (what, status)
side_bodies = []  # the answers of failed side requests, to tell whose they are
stop_side = threading.Event()


def side_traffic():
    """Lead lists, exports and one data-subject request, while the submissions run."""
    n = 0
    dsar_done = False
    while not stop_side.is_set() and remaining() > 30:
        n += 1
        status, _, b = request("GET", "/v1/leads?limit=50", headers=auth)
        side.append(("list leads", status))
        if status >= 500:
            side_bodies.append(b[:300])
        if n % 5 == 0:
            status, _, b = request("POST", "/v1/exports", {"format": "csv"}, auth)
            side.append(("export", status))
            if status >= 500:
                side_bodies.append(b[:300])
        if n == 3 and not dsar_done:
            dsar_done = True
            side.append(("data-subject request", data_subject_request()))
        time.sleep(0.5)


def data_subject_request():
    """An access request for one of the people: filed, verified with the code the emulator holds,
    approved by the controller. Returns the approval's status (or the first failing one)."""
    email = people[0]
    status, _, b = request("POST", "/v1/privacy/requests", {"type": "access", "email": email, "form_id": forms[0]})
    if status != 202:
        return status
    request_id = js(b)["request_id"]
    code = None
    for _ in range(20):
        status, _, data = aws_get("/moto-api/data.json")
        if status == 200:
            for m in reversed(js(data).get("ses", {}).get("Message", [])):
                if email in (m.get("destinations", {}).get("ToAddresses") or []):
                    found = re.search(r"\b(\d{6})\b", m.get("body", ""))
                    if found:
                        code = found.group(1)
                        break
        if code:
            break
        time.sleep(0.5)
    if not code:
        return 0
    status, _, b = request("POST", f"/v1/privacy/requests/{request_id}/verify", {"code": code})
    if status != 200:
        return status
    status, _, b = request("POST", f"/v1/privacy/requests/{request_id}/approve", {}, auth)
    return status


def aws_get(path):
    u = urllib.parse.urlsplit(AWS)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, None, r.read()
    finally:
        conn.close()


submissions = plan()
side_thread = threading.Thread(target=side_traffic, daemon=True)
side_thread.start()
t_start = time.monotonic()
with futures.ThreadPoolExecutor(max_workers=CONCURRENCY) as pool:
    pending = [pool.submit(submit, s) for s in submissions]
    for f in futures.as_completed(pending, timeout=max(1.0, remaining())):
        exc = f.exception()
        if exc is not None:
            with lock:
                results.append(("?", "error", 0, type(exc).__name__, 0.0))
wall = time.monotonic() - t_start
stop_side.set()
side_thread.join(timeout=60)

# ---------------------------------------------------------------- what was stored
dynamo = boto3.client(
    "dynamodb",
    endpoint_url=AWS,
    region_name="us-east-1",
    aws_access_key_id="test",
    aws_secret_access_key="test",
)
stored = {}
pages = dynamo.get_paginator("scan").paginate(
    TableName=f"lead-platform-{STAGE}-leads",
    FilterExpression="begins_with(sk, :s)",
    ExpressionAttributeValues={":s": {"S": "SUB#"}},
    ProjectionExpression="#f",
    ExpressionAttributeNames={"#f": "fields"},
)
for page in pages:
    for it in page["Items"]:
        m = it.get("fields", {}).get("M", {}).get("message", {}).get("S", "")
        if m.startswith(f"load-{RUN}-"):
            stored[m] = stored.get(m, 0) + 1

acked = {r[0] for r in results if r[1] != "spam" and r[2] in (201, 303)}
spam_acked = {r[0] for r in results if r[1] == "spam" and r[2] in (201, 303)}
lost = sorted(acked - set(stored))
duplicates = sorted(m for m, c in stored.items() if c > 1)
spam_stored = sorted(spam_acked & set(stored))
server_errors = [r for r in results if r[2] >= 500 or r[2] == 0]
side_errors = [s for s in side if s[1] >= 500 or s[1] == 0]

reasons = {}
for r in results:
    if r[2] >= 400 or r[2] == 0:
        key = f"{r[2]} {r[3]}".strip()
        reasons[key] = reasons.get(key, 0) + 1
lat = sorted(r[4] for r in results if r[4] > 0)


def pct(p):
    return lat[min(len(lat) - 1, int(p / 100 * len(lat)))] * 1000 if lat else 0.0


side_summary = {}
for what, status in side:
    side_summary.setdefault(what, {}).setdefault(status, 0)
    side_summary[what][status] += 1

print(f"load: {len(results)} submissions at {CONCURRENCY} concurrent in {wall:.1f} s ({len(results) / wall:.0f}/s)")
print(f"  accepted (stored):      {len(acked)}")
print(f"  spam (answered 201, discarded): {len(spam_acked)}")
for k, v in sorted(reasons.items()):
    print(f"  rejected {k}: {v}")
print(f"  lost:                   {len(lost)}")
print(f"  5xx / no answer:        {len(server_errors)}")
print(f"  503 then sent again:    {unavailable[0]}")
print(f"  duplicates:             {len(duplicates)}")
print(f"  spam stored:            {len(spam_stored)}")
print(f"  latency p50/p95/p99:    {pct(50):.0f} / {pct(95):.0f} / {pct(99):.0f} ms")
for what, counts in side_summary.items():
    print(f"  alongside, {what}: " + ", ".join(f"{n} x {s}" for s, n in sorted(counts.items())))

bad = len(lost) + len(server_errors) + len(duplicates) + len(spam_stored) + len(side_errors)
if bad:
    print(f"load: FAILED (lost {lost[:5]}, 5xx {server_errors[:5]}, duplicates {duplicates[:5]}, "
          f"spam stored {spam_stored[:5]}, side errors {side_errors[:5]} {side_bodies[:3]})", file=sys.stderr)
    sys.exit(1)
