// The outbound channel through the local stack that tests/e2e/run.sh started (the `make dev`
// stack: API, functions under cargo lambda watch, the stream poller, the webhook sink): the demo
// owner registers the sink, a submission reaches it signed (checked here with Node's own HMAC,
// not the project's code), the scripted bot that demo_form.test.mjs quarantined is released by
// the owner as a lead, a failing sink is retried and a replay delivers again, and a data-subject
// erasure filed and approved through the API reaches the sink as `lead.erased`; then an API key
// (what a receiver's system reads leads with) lists leads, and gets 401 once revoked.
//
// Environment (from run.sh): API_BASE, SINK_BASE, AWS_ENDPOINT, FORM_ID, DEMO_EMAIL, DEMO_PASSWORD.
// Ends with a plain "N passed, N failed" line; exits non-zero when anything failed.

import { createHmac, timingSafeEqual } from "node:crypto";

const env = (name) => {
  const value = process.env[name];
  if (value === undefined) throw new Error(`${name} is not set (run this through tests/e2e/run.sh)`);
  return value;
};

const API_BASE = env("API_BASE");
const SINK_BASE = env("SINK_BASE");
const FORM_ID = env("FORM_ID");
const AWS_ENDPOINT = env("AWS_ENDPOINT");
const run = Date.now().toString(36);

function assert(condition, message) {
  if (!condition) throw new Error(message);
}

async function call(method, path, { token, body } = {}) {
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(`${API_BASE}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = { raw: text };
  }
  return { status: response.status, json };
}

async function sink(path, method = "GET") {
  const response = await fetch(`${SINK_BASE}${path}`, { method });
  assert(response.ok, `the sink answered ${response.status} to ${method} ${path}`);
  return response.json();
}

/** Polls `probe` until it returns something truthy, or fails after `seconds`. */
async function eventually(what, seconds, probe) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${seconds} s`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/**
 * Checks a `webhook-signature` header (`t=<unix>,v1=<hex>[,v1=<hex>]`) the way a receiver would:
 * HMAC-SHA256 of `<t>.<body>` with the endpoint's secret, compared in constant time, and a
 * timestamp within five minutes.
 */
function verifySignature(header, body, secret) {
  const parts = header.split(",").map((p) => p.split("="));
  const t = parts.find(([k]) => k === "t")?.[1];
  if (!t || Math.abs(Date.now() / 1000 - Number(t)) > 300) return false;
  const expected = createHmac("sha256", secret).update(`${t}.${body}`).digest();
  return parts
    .filter(([k]) => k === "v1")
    .some(([, v]) => {
      const given = Buffer.from(v, "hex");
      return given.length === expected.length && timingSafeEqual(given, expected);
    });
}

/** The emails the emulator's SES accepted (moto's data view; it answers 500 while a table is written, so retried). */
async function sentEmails() {
  for (let attempt = 0; ; attempt++) {
    const response = await fetch(`${AWS_ENDPOINT}/moto-api/data.json`);
    if (response.ok) return ((await response.json()).ses?.Message ?? []);
    if (attempt >= 8) throw new Error(`the emulator's data view answered ${response.status}`);
    await new Promise((resolve) => setTimeout(resolve, 100 * (attempt + 1)));
  }
}

const received = async () => (await sink("/_sink/deliveries")).items;
const receivedEvent = async (type, pred = () => true) =>
  (await received()).find((d) => d.webhook_event === type && d.answered === 200 && pred(JSON.parse(d.body)));

async function submit(email) {
  const { status, json } = await call("POST", `/v1/forms/${FORM_ID}/submissions`, {
    body: { email, name: "Outbound E2E", message: "Hello from the outbound test", consent_marketing: true },
  });
  assert(status === 201, `the submission got ${status}: ${JSON.stringify(json)}`);
  return json;
}

const tests = [];
const test = (name, fn) => tests.push({ name, fn });
const state = {};

test("the demo owner logs in and registers the local sink for every event type", async () => {
  const login = await call("POST", "/v1/auth/login", {
    body: { email: env("DEMO_EMAIL"), password: env("DEMO_PASSWORD") },
  });
  assert(login.status === 200, `login got ${login.status}`);
  state.token = login.json.access_token;
  await sink("/_sink/reset", "POST");
  const { status, json } = await call("POST", "/v1/webhooks", {
    token: state.token,
    body: {
      url: `${SINK_BASE}/hook`,
      event_types: ["submission.created", "lead.created", "lead.erased", "consent.withdrawn"],
    },
  });
  assert(status === 201, `registration got ${status}: ${JSON.stringify(json)}`);
  assert(typeof json.secret === "string" && json.secret.length >= 32, "the secret is answered once");
  state.webhook = json;
  const listed = await call("GET", `/v1/webhooks/${json.id}`, { token: state.token });
  assert(listed.status === 200 && listed.json.secret === undefined, "the secret is never shown again");
});

test("a submission reaches the sink as submission.created, signed so that Node's HMAC verifies it", async () => {
  state.first = await submit(`outbound-${run}-1@example.com`);
  const delivery = await eventually("the signed delivery", 30, () =>
    receivedEvent("submission.created", (e) => e.data.lead_id === state.first.lead_id),
  );
  assert(verifySignature(delivery.webhook_signature, delivery.body, state.webhook.secret), "the signature does not verify");
  assert(!verifySignature(delivery.webhook_signature, delivery.body, "not-the-secret"), "any secret verifies");
  assert(!verifySignature(delivery.webhook_signature, delivery.body.replace("}", ' }'), state.webhook.secret), "a changed body verifies");
  const event = JSON.parse(delivery.body);
  assert(event.id === delivery.webhook_id, "webhook-id is the event's id (dedupe key)");
  assert(event.form_id === FORM_ID && event.data.submission_id === state.first.submission_id, delivery.body);
  assert(!delivery.body.includes("@example.com") && !delivery.body.includes("Hello from"), "the event carries ids, not answers");
  state.firstEventId = event.id;
});

test("the demo owner is emailed about the new lead, without what was submitted", async () => {
  const mail = await eventually("the new-lead email", 30, async () =>
    (await sentEmails()).find(
      (m) =>
        (m.destinations?.ToAddresses ?? []).includes(env("DEMO_EMAIL")) &&
        m.subject === `New lead on your form ${FORM_ID}` &&
        String(m.body).includes(state.first.lead_id),
    ),
  );
  assert(!String(mail.body).includes("Hello from the outbound test"), "the email repeats the answers");
  assert(!String(mail.body).includes(`outbound-${run}-1@`), "the email names the person");
});

test("the scripted bot's quarantined post (demo_form.test.mjs) is listed with its reasons and released by the owner as a lead", async () => {
  const listed = await call("GET", `/v1/forms/${FORM_ID}/quarantine`, { token: state.token });
  assert(listed.status === 200, `the quarantine list got ${listed.status}`);
  const bot = listed.json.items.find((q) => q.fields?.email === "bot@example.com");
  assert(bot, `the bot's post is not in the quarantine: ${JSON.stringify(listed.json.items.map((q) => q.reasons))}`);
  assert(bot.reasons.includes("too_fast") || bot.reasons.includes("pow_replayed"), JSON.stringify(bot.reasons));
  const released = await call("POST", `/v1/forms/${FORM_ID}/quarantine/${bot.id}/release`, { token: state.token });
  assert(released.status === 200, `release got ${released.status}: ${JSON.stringify(released.json)}`);
  const lead = await call("GET", `/v1/leads/${released.json.lead_id}`, { token: state.token });
  assert(lead.status === 200, `the released lead answers ${lead.status}`);
  const again = await call("GET", `/v1/forms/${FORM_ID}/quarantine`, { token: state.token });
  assert(!again.json.items.some((q) => q.id === bot.id), "a released post is still listed");
  await eventually("the released submission at the sink", 30, () =>
    receivedEvent("submission.created", (e) => e.data.lead_id === released.json.lead_id),
  );
});

test("a failing sink: the attempt is logged and retried with backoff, and delivered once the sink recovers", async () => {
  await sink("/_sink/status/500", "POST");
  state.second = await submit(`outbound-${run}-2@example.com`);
  const failed = await eventually("the failed attempt in the delivery log", 30, async () => {
    const { json } = await call("GET", `/v1/webhooks/${state.webhook.id}/deliveries`, { token: state.token });
    return json.items.find((d) => d.event_type === "submission.created" && d.last_status === 500);
  });
  assert(failed.state === "pending" && failed.attempts === 1, JSON.stringify(failed));
  state.secondEventId = failed.id;
  await sink("/_sink/status/200", "POST");
  // The first retry waits 30 to 60 s (a minute, jittered); it comes through the retry queue.
  const retried = await eventually("the retried delivery", 90, async () => {
    const { json } = await call("GET", `/v1/webhooks/${state.webhook.id}/deliveries`, { token: state.token });
    return json.items.find((d) => d.id === state.secondEventId && d.state === "delivered");
  });
  assert(retried.attempts === 2 && retried.last_status === 200, JSON.stringify(retried));
});

test("a replay delivers an event again, with the same id", async () => {
  const before = (await received()).filter((d) => d.webhook_id === state.firstEventId).length;
  const { status, json } = await call(
    "POST",
    `/v1/webhooks/${state.webhook.id}/deliveries/${state.firstEventId}/replay`,
    { token: state.token },
  );
  assert(status === 202 || status === 200, `replay got ${status}: ${JSON.stringify(json)}`);
  await eventually("the replayed delivery", 30, async () =>
    (await received()).filter((d) => d.webhook_id === state.firstEventId && d.answered === 200).length > before,
  );
});

test("an erasure filed and approved through the API reaches the sink as lead.erased", async () => {
  const filed = await call("POST", "/v1/privacy/requests/on-behalf", {
    token: state.token,
    body: { type: "erasure", email: `outbound-${run}-1@example.com`, identity_attested: "existing_relationship" },
  });
  assert(filed.status === 201, `filing got ${filed.status}: ${JSON.stringify(filed.json)}`);
  const approved = await call("POST", `/v1/privacy/requests/${filed.json.request_id}/approve`, {
    token: state.token,
    body: {},
  });
  assert(approved.status === 200, `approval got ${approved.status}: ${JSON.stringify(approved.json)}`);
  const erased = await eventually("lead.erased at the sink", 60, () =>
    receivedEvent("lead.erased", (e) => e.data.lead_id === state.first.lead_id),
  );
  assert(verifySignature(erased.webhook_signature, erased.body, state.webhook.secret), "lead.erased is signed");
  assert(!erased.body.includes("@example.com"), "lead.erased names the lead, not the person");
  const lead = await call("GET", `/v1/leads/${state.first.lead_id}`, { token: state.token });
  assert(lead.status === 404, `the erased lead still answers ${lead.status}`);
});

test("an API key lists leads for the receiver's system, and once revoked gets 401", async () => {
  const stepUp = await call("POST", "/v1/auth/step-up", { token: state.token, body: { password: env("DEMO_PASSWORD") } });
  assert(stepUp.status === 200, `step-up got ${stepUp.status}: ${JSON.stringify(stepUp.json)}`);
  const created = await call("POST", "/v1/api-keys", {
    token: state.token,
    body: { name: "outbound e2e", role: "viewer" },
  });
  assert(created.status === 201, `creating a key got ${created.status}: ${JSON.stringify(created.json)}`);
  const key = created.json.key;
  assert(typeof key === "string" && key.startsWith("lmk_live_"), "the key is answered once, with its prefix");
  const listed = await call("GET", "/v1/leads", { token: key });
  assert(listed.status === 200 && Array.isArray(listed.json.items), `the key listed leads: ${listed.status}`);
  const keys = await call("GET", "/v1/api-keys", { token: state.token });
  assert(keys.json.items.every((k) => k.key === undefined), "a listing never shows a key");
  const revoked = await call("DELETE", `/v1/api-keys/${created.json.id}`, { token: state.token });
  assert(revoked.status === 204, `revoking got ${revoked.status}`);
  const after = await call("GET", "/v1/leads", { token: key });
  assert(after.status === 401, `a revoked key got ${after.status}`);
});

let passed = 0;
let failed = 0;
for (const [index, { name, fn }] of tests.entries()) {
  const started = Date.now();
  try {
    await fn();
    passed++;
    console.log(`ok ${index + 1} - ${name} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  } catch (error) {
    failed++;
    console.log(`not ok ${index + 1} - ${name}\n  ${String(error?.stack ?? error).replaceAll("\n", "\n  ")}`);
  }
}
console.log(`${passed} passed, ${failed} failed`);
process.exitCode = failed === 0 ? 0 : 1;
