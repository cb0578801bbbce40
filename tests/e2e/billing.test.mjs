// Self-serve billing through the local stack that tests/e2e/run.sh started (the `make dev` stack
// with its Stripe stand-in): the demo owner upgrades to pro through a Checkout Session and the
// stand-in's "Pay", sees the new quota, changes plan in the portal stand-in, cancels at the
// period's end, resumes, and cancels at once; each step is read back from
// GET /v1/billing/subscription. The stand-in's webhook deliveries must all be answered 2xx.
//
// Environment (from run.sh): API_BASE, DEMO_EMAIL, DEMO_PASSWORD.
// Ends with a plain "N passed, N failed" line; exits non-zero when anything failed.

const env = (name) => {
  const value = process.env[name];
  if (value === undefined) throw new Error(`${name} is not set (run this through tests/e2e/run.sh)`);
  return value;
};

const API_BASE = env("API_BASE");

function assert(condition, message) {
  if (!condition) throw new Error(message);
}

const state = {};

async function api(method, path, body) {
  const response = await fetch(`${API_BASE}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${state.token}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await response.json();
  assert(response.ok, `${method} ${path} answered ${response.status}: ${JSON.stringify(json)}`);
  return json;
}

/** Presses a button of a stand-in page (a form post); every webhook it sent must have been taken. */
async function press(url, form = "") {
  const response = await fetch(url, {
    method: "POST",
    headers: { accept: "application/json", "content-type": "application/x-www-form-urlencoded" },
    body: form,
  });
  const json = await response.json();
  assert(response.ok, `the stand-in answered ${response.status} to ${url}: ${JSON.stringify(json)}`);
  for (const d of json.deliveries) {
    assert(d.status >= 200 && d.status < 300, `webhook ${d.event_type} answered ${d.status} ${d.outcome ?? ""}`);
  }
  return json.deliveries.map((d) => d.event_type);
}

const subscription = () => api("GET", "/v1/billing/subscription");

const tests = [];
const test = (name, fn) => tests.push({ name, fn });

test("the demo workspace starts on the free plan", async () => {
  const login = await fetch(`${API_BASE}/v1/auth/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email: env("DEMO_EMAIL"), password: env("DEMO_PASSWORD") }),
  });
  assert(login.status === 200, `login got ${login.status}`);
  state.token = (await login.json()).access_token;
  const s = await subscription();
  assert(s.plan === "free" && s.status === null, JSON.stringify(s));
  state.freeQuota = s.usage.quota;
});

test("checkout and the stand-in's Pay: the plan is pro and the quota is pro's", async () => {
  const { url } = await api("POST", "/v1/billing/checkout", { plan: "pro", interval: "month" });
  const again = await api("POST", "/v1/billing/checkout", { plan: "pro", interval: "month" });
  assert(again.url === url, "a double click made a second checkout session");
  const events = await press(`${url}/complete`);
  for (const e of ["checkout.session.completed", "customer.subscription.created", "invoice.paid"]) {
    assert(events.includes(e), `the stand-in did not send ${e}: ${events}`);
  }
  const s = await subscription();
  assert(s.plan === "pro" && s.status === "active", JSON.stringify(s));
  assert(s.usage.quota > state.freeQuota, `pro's quota ${s.usage.quota} is not above free's ${state.freeQuota}`);
  state.proQuota = s.usage.quota;
});

test("a plan change in the portal: starter, and starter's quota", async () => {
  const { url } = await api("POST", "/v1/billing/portal");
  await press(`${url}/plan`, "plan=starter&interval=month");
  const s = await subscription();
  assert(s.plan === "starter" && s.status === "active", JSON.stringify(s));
  assert(s.usage.quota < state.proQuota, `starter's quota ${s.usage.quota} is not below pro's`);
});

test("cancel at the period's end, then resume", async () => {
  const { url } = await api("POST", "/v1/billing/portal");
  await press(`${url}/cancel`);
  let s = await subscription();
  assert(s.cancel_at_period_end === true && s.cancel_at, JSON.stringify(s));
  assert(s.plan === "starter", "the plan holds until the period ends");
  await press(`${url}/resume`);
  s = await subscription();
  assert(s.cancel_at_period_end === false, JSON.stringify(s));
});

test("cancel now: the subscription ends, with a grace period", async () => {
  const { url } = await api("POST", "/v1/billing/portal");
  await press(`${url}/cancel_now`);
  const s = await subscription();
  assert(s.status === "canceled" && s.grace_until, JSON.stringify(s));
});

let passed = 0;
let failed = 0;
for (const [index, { name, fn }] of tests.entries()) {
  try {
    await fn();
    passed++;
    console.log(`ok ${index + 1} - ${name}`);
  } catch (error) {
    failed++;
    console.log(`not ok ${index + 1} - ${name}\n  ${String(error?.stack ?? error).replaceAll("\n", "\n  ")}`);
  }
}
console.log(`${passed} passed, ${failed} failed`);
process.exitCode = failed === 0 ? 0 : 1;
