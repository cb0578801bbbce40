// Browser test of the demo contact form against the local stack that tests/e2e/run.sh started:
// a visitor with JavaScript (who solves the proof of work, and whose post needs no CORS
// preflight), one without (who falls to the other layers of the spam defence and still
// submits), one who mistypes, a scripted bot that posts at once (quarantined, answered like
// success), and what landed in the emulator.
//
// Environment (from run.sh): WEB_URL, API_BASE, AWS_ENDPOINT, STAGE, DEVSTACK (path of the devstack
// binary), STATE_DIR (screenshots of failures go there), CHROMIUM (default /usr/bin/chromium).
//
// Ends with a plain "N passed, N failed" line; exits non-zero when anything failed.

import { chromium } from "playwright-core";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";

const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined) throw new Error(`${name} is not set (run this through tests/e2e/run.sh)`);
  return value;
};

const WEB_URL = env("WEB_URL");
const API_BASE = env("API_BASE");
const AWS_ENDPOINT = env("AWS_ENDPOINT");
const STAGE = env("STAGE", "dev");
const DEVSTACK = env("DEVSTACK");
const STATE_DIR = env("STATE_DIR", ".");
const CHROMIUM = env("CHROMIUM", "/usr/bin/chromium");
const TIMEOUT_MS = 30_000;

function assert(condition, message) {
  if (!condition) throw new Error(message);
}

/** The field a person finds by its visible label. */
const label = (page, text) => page.getByLabel(text, { exact: true });

async function fillContactForm(page, { email, name, company, phone, message, consent }) {
  await label(page, "Email (required)").fill(email);
  await label(page, "Name").fill(name);
  await label(page, "Company").fill(company);
  await label(page, "Phone").fill(phone);
  await label(page, "Message").fill(message);
  if (consent) await page.getByRole("checkbox", { name: /news and offers/ }).check();
}

/** Items of a table of the emulator whose sort key starts with `prefix`. */
function countItems(table, prefix) {
  const out = execFileSync(
    DEVSTACK,
    ["count-items", "--endpoint", AWS_ENDPOINT, "--stage", STAGE, "--table", table, "--where", `sk^=${prefix}`],
    { encoding: "utf8" },
  );
  return Number.parseInt(out.trim(), 10);
}

/** Submissions stored in the emulator's leads table (sort keys `SUB#…`). */
const storedSubmissions = () => countItems("LeadsTable", "SUB#");
/** Submissions the spam defence quarantined (ops table, sort keys `Q#…`). */
const quarantined = () => countItems("OpsTable", "Q#");

/**
 * CORS preflights lead intake has answered so far: its "request completed" log lines for OPTIONS
 * in the function log (dev.sh --quiet writes STATE_DIR/lambda.log). A preflight is the browser's
 * own request, which the page's request events do not show; the function's log does.
 */
function preflightsAnswered() {
  const log = readFileSync(path.join(STATE_DIR, "lambda.log"), "utf8");
  return log
    .split("\n")
    .filter((line) => line.includes('"request completed"') && line.includes('"method":"OPTIONS"')).length;
}

const tests = [];
const test = (name, fn) => tests.push({ name, fn });

/** A page in a fresh browser context; the runner screenshots it if the test fails, then closes it. */
class Session {
  constructor(browser) {
    this.browser = browser;
    this.contexts = [];
    this.lastPage = null;
  }
  async newPage(options = {}) {
    const context = await this.browser.newContext(options);
    this.contexts.push(context);
    this.lastPage = await context.newPage();
    return this.lastPage;
  }
  async close() {
    for (const context of this.contexts) await context.close();
  }
}

test("with JavaScript: the form posts a CORS-simple form body (no preflight) and shows the submission id", async (session) => {
  const preflightsBefore = preflightsAnswered();
  const page = await session.newPage();
  const posted = [];
  page.on("request", (request) => {
    if (request.method() === "POST" && request.url().startsWith(API_BASE)) posted.push(request);
  });
  await page.goto(`${WEB_URL}/`);
  // The script fetched and solved the form's challenge; a person takes longer than the form's
  // minimum (3 s) to fill it in.
  await page.locator("#contact[data-pow=ready]").waitFor({ timeout: TIMEOUT_MS });
  await page.waitForTimeout(3500);
  await fillContactForm(page, {
    email: "ada@example.com",
    name: "Ada Lovelace",
    company: "Analytical Engines Ltd",
    phone: "+44 20 7946 0958",
    message: "Please call me back about the enterprise plan.",
    consent: true,
  });
  await page.getByRole("button", { name: "Send" }).click();
  const result = page.locator("#result[data-state=success]");
  await result.waitFor({ timeout: TIMEOUT_MS });
  const text = await result.innerText();
  assert(/Thank you/.test(text), `result says: ${text}`);
  assert(/Reference: \S+/.test(text), `result shows no submission id: ${text}`);

  assert(posted.length === 1, `expected one POST to the API, saw ${posted.length}`);
  const request = posted[0];
  assert(
    request.url() === `${API_BASE}/v1/forms/demo-contact/submissions`,
    `posted to ${request.url()}`,
  );
  const headers = await request.allHeaders();
  // A CORS-simple request: a safelisted content type, no header beyond the safelisted ones.
  assert(
    /^application\/x-www-form-urlencoded(;|$)/.test(headers["content-type"]),
    `content-type ${headers["content-type"]}`,
  );
  assert(headers["accept"] === "application/json", `accept ${headers["accept"]}`);
  assert(!("idempotency-key" in headers), "a custom header makes the browser send a preflight");
  const body = new URLSearchParams(request.postData());
  assert(body.get("email") === "ada@example.com", `email ${body.get("email")}`);
  assert(body.get("consent_marketing") === "true", `consent_marketing is ${body.get("consent_marketing")}`);
  assert(body.get("_gotcha") === "", "the honeypot was filled in");
  assert(body.get("_page_url") === `${WEB_URL}/`, `_page_url ${body.get("_page_url")}`);
  assert(body.has("_referrer"), "no _referrer");
  const solution = JSON.parse(Buffer.from(body.get("_altcha") ?? "", "base64").toString());
  assert(
    createHash("sha256").update(solution.salt + solution.number).digest("hex") === solution.challenge,
    `_altcha is not a solved challenge: ${body.get("_altcha")}`,
  );
  const preflights = preflightsAnswered() - preflightsBefore;
  assert(preflights === 0, `lead intake answered ${preflights} CORS preflight(s) for one submission`);
});

test("without JavaScript: the plain form post lands on thanks.html (303)", async (session) => {
  const page = await session.newPage({ javaScriptEnabled: false });
  await page.goto(`${WEB_URL}/`);
  await fillContactForm(page, {
    email: "grace@example.com",
    name: "Grace Hopper",
    company: "Compilers Inc",
    phone: "+1 202 555 0143",
    message: "No script here.",
    consent: false,
  });
  const [response] = await Promise.all([
    page.waitForNavigation({ url: `${WEB_URL}/thanks.html`, timeout: TIMEOUT_MS }),
    page.getByRole("button", { name: "Send" }).click(),
  ]);
  assert(response && response.ok(), `thanks.html answered ${response && response.status()}`);
  const redirectedFrom = response.request().redirectedFrom();
  assert(redirectedFrom, "thanks.html was not reached through a redirect");
  const apiResponse = await redirectedFrom.response();
  assert(apiResponse.status() === 303, `the API answered ${apiResponse.status()}, not 303`);
  const heading = await page.getByRole("heading", { level: 1 }).innerText();
  assert(heading === "Thank you", `thanks page heading: ${heading}`);
});

test("with JavaScript: a mistyped email shows the API's field error beside the field", async (session) => {
  const page = await session.newPage();
  await page.goto(`${WEB_URL}/`);
  await label(page, "Email (required)").fill("not-an-email");
  await page.getByRole("button", { name: "Send" }).click();
  await page.locator("#result[data-state=error]").waitFor({ timeout: TIMEOUT_MS });
  const email = label(page, "Email (required)");
  assert((await email.getAttribute("aria-invalid")) === "true", "email is not marked invalid");
  const fieldError = page.locator("#email-error");
  assert(await fieldError.isVisible(), "no error message beside the email field");
  assert((await fieldError.innerText()).trim() !== "", "the email error message is empty");
});

test("a scripted bot that solves the challenge and posts at once is answered like a person and quarantined", async () => {
  const response = await fetch(`${API_BASE}/v1/forms/demo-contact/challenge`);
  assert(response.status === 200, `the challenge route answered ${response.status}`);
  const challenge = await response.json();
  let number = 0;
  while (createHash("sha256").update(challenge.salt + number).digest("hex") !== challenge.challenge) {
    number++;
    assert(number <= challenge.maxnumber, "the challenge has no solution up to its maxnumber");
  }
  const altcha = Buffer.from(JSON.stringify({ ...challenge, number, maxnumber: undefined })).toString("base64");
  const post = () =>
    fetch(`${API_BASE}/v1/forms/demo-contact/submissions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: "bot@example.com", message: "Buy now", _altcha: altcha }),
    });
  const first = await post();
  const answer = await first.json();
  assert(first.status === 201, `the bot got ${first.status}: ${JSON.stringify(answer)}`);
  assert(/^sb-/.test(answer.submission_id) && /^ld-/.test(answer.lead_id), JSON.stringify(answer));
  // Its replay of the same solution: the same answer again, kept apart too.
  const replay = await post();
  assert(replay.status === 201, `the replay got ${replay.status}`);
  assert(quarantined() === 2, `expected 2 quarantined submissions, found ${quarantined()}`);
});

test("the emulator holds exactly the two accepted submissions", async () => {
  const count = storedSubmissions();
  assert(count === 2, `expected 2 submissions in the leads table, found ${count}`);
});

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  // Playwright gives every launch a new, empty user-data-dir of its own. The flags keep Chromium
  // off the network (this machine reaches none but localhost) and off the GPU.
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});

let passed = 0;
let failed = 0;
try {
  for (const [index, { name, fn }] of tests.entries()) {
    const session = new Session(browser);
    try {
      await fn(session);
      passed++;
      console.log(`ok ${index + 1} - ${name}`);
    } catch (error) {
      failed++;
      console.log(`not ok ${index + 1} - ${name}\n  ${String(error?.stack ?? error).replaceAll("\n", "\n  ")}`);
      if (session.lastPage) {
        const file = path.join(STATE_DIR, `e2e-failure-${index + 1}.png`);
        await session.lastPage.screenshot({ path: file, fullPage: true }).catch(() => {});
        console.log(`  screenshot: ${file}`);
      }
    } finally {
      await session.close();
    }
  }
} finally {
  await browser.close();
}

console.log(`${passed} passed, ${failed} failed`);
process.exitCode = failed === 0 ? 0 : 1;
