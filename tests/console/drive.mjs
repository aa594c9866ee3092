// Drives Alonzo's web console in Debian's headless Chromium through playwright-core, for
// tests/test_console.py. Input: one JSON object in CONSOLE_TEST (base URL, credentials, the
// function and queue the test created, where to save screenshots). Every expectation that
// fails throws, so the process exits non-zero with the reason; on success it prints a JSON
// summary. Never downloads a browser: it runs /usr/bin/chromium.
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const cfg = JSON.parse(process.env.CONSOLE_TEST);
const base = cfg.base + "/_alonzo/console";
const shots = cfg.screenshots;
mkdirSync(shots, { recursive: true });

function expect(cond, what) {
  if (!cond) throw new Error("expectation failed: " + what);
}

const userData = mkdtempSync(join(tmpdir(), "alonzo-console-chromium-"));
const context = await chromium.launchPersistentContext(userData, {
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
  viewport: { width: 1360, height: 900 },
});
context.setDefaultTimeout(15000);
const problems = [];
const summary = { steps: [] };
const step = (name) => { summary.steps.push(name); };

try {
  const page = context.pages()[0] || (await context.newPage());
  // Script errors and Content-Security-Policy violations show up as console errors.
  page.on("console", (msg) => { if (msg.type() === "error") problems.push(msg.text()); });
  page.on("pageerror", (err) => problems.push(String(err)));
  const shot = (name) => page.screenshot({ path: join(shots, name + ".png"), fullPage: true });

  // Unauthenticated: the console sends the browser to the login page.
  await page.goto(base + "/");
  expect(page.url().startsWith(base + "/login"), "unauthenticated page redirects to login, got " + page.url());
  await shot("login");
  step("redirected to login");

  // A wrong secret is refused.
  await page.fill("#access_key_id", cfg.key);
  await page.fill("#secret_access_key", cfg.secret + "x");
  await Promise.all([page.waitForURL(/error=1/), page.click("#login")]);
  expect(await page.isVisible("#login-error"), "the wrong secret is reported");
  await shot("login-refused");
  step("wrong secret refused");

  // The right one lands on the functions list, which shows the test's function.
  await page.fill("#access_key_id", cfg.key);
  await page.fill("#secret_access_key", cfg.secret);
  await Promise.all([page.waitForURL(base + "/"), page.click("#login")]);
  const link = page.locator("#functions a.fn-link", { hasText: cfg.function });
  await link.waitFor();
  await shot("functions");
  step("logged in, function listed");

  // The function's page: invoke it from the payload editor.
  await Promise.all([page.waitForURL(/\/functions\//), link.click()]);
  expect((await page.textContent("#configuration")).includes(cfg.runtime), "configuration shows the runtime");
  await page.fill("#invoke-payload", JSON.stringify({ marker: cfg.marker }, null, 2));
  await page.click("#invoke-button");
  await page.locator("#invoke-status.good").waitFor({ timeout: 30000 });
  const result = await page.textContent("#invoke-result");
  expect(result.includes(cfg.marker), "the result shows the function's answer: " + result);
  const tail = await page.textContent("#invoke-log");
  expect(tail.includes("REPORT RequestId"), "the log tail shows the REPORT line: " + tail);
  step("invoked from the page");

  // Its log line appears in the live tail, as text (the function also logs markup).
  const line = page.locator(".log-events .ev", { hasText: "console-line " + cfg.marker });
  await line.waitFor({ timeout: 15000 });
  const markup = page.locator(".log-events .ev", { hasText: "<b>not bold</b>" });
  await markup.first().waitFor();
  expect((await page.locator(".log-events b").count()) === 0, "log lines are text, never markup");
  step("log line in the live tail");

  // The charts count the invocation (they refresh themselves every 5 s).
  await page.waitForFunction(
    () => parseInt(document.querySelector("#chart-invocations")?.dataset.total || "0", 10) >= 1,
    null, { timeout: 15000 });
  expect((await page.locator("#chart-invocations rect").count()) >= 1, "a bar for the invocation");
  await shot("function");
  step("invocation counted in the charts");

  // Usage and cost count it too.
  await page.click("nav >> text=Usage & cost");
  const row = page.locator(`#usage tr[data-function="${cfg.function}"] td.requests`);
  await row.waitFor();
  const requests = parseInt(await row.textContent(), 10);
  expect(requests >= 1, "usage counts the invocation, got " + requests);
  summary.usageRequests = requests;
  await shot("usage");
  step("usage counted");

  // Live concurrency: the warm environment of the function.
  await page.click("nav >> text=Concurrency");
  await page.locator("#concurrency td", { hasText: cfg.function }).first().waitFor();
  // It refreshes itself.
  await page.waitForResponse((r) => r.url().endsWith("/api/concurrency") && r.status() === 200, { timeout: 6000 });
  await page.locator("#concurrency td", { hasText: cfg.function }).first().waitFor();
  await shot("concurrency");
  step("concurrency view");

  // The log viewer: search with a filter pattern.
  await page.goto(base + "/logs?group=" + encodeURIComponent("/aws/lambda/" + cfg.function)
    + "&filter=" + encodeURIComponent('"console-line ' + cfg.marker + '"'));
  await page.locator(".log-events .ev", { hasText: cfg.marker }).first().waitFor();
  const shown = await page.locator(".log-events .ev").count();
  expect(shown === 1, "the filter keeps only the matching line, got " + shown);
  await shot("logs");
  await page.fill("#log-filter", "no-such-term-" + cfg.marker);
  await Promise.all([page.waitForURL(/no-such-term/), page.click("#log-search")]);
  expect((await page.locator(".log-events .ev").count()) === 0, "a filter matching nothing shows nothing");
  step("log search");

  // Queues and their depths.
  await page.click("nav >> text=Queues");
  const depth = page.locator(`#queues tr[data-queue="${cfg.queue}"] td.visible`);
  await depth.waitFor();
  await page.waitForResponse((r) => r.url().endsWith("/api/queues") && r.status() === 200, { timeout: 6000 });
  expect((await depth.textContent()).trim() === String(cfg.queueDepth),
    "queue depth " + (await depth.textContent()) + " != " + cfg.queueDepth);
  await shot("queues");
  step("queue depth");

  // A phone-sized window still works (the navigation wraps, tables scroll).
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(base + "/");
  await page.locator("#functions").waitFor();
  await shot("functions-mobile");
  await page.setViewportSize({ width: 1360, height: 900 });
  step("responsive");

  expect(problems.length === 0, "no script errors or CSP violations: " + JSON.stringify(problems));

  // Logout, then everything is refused (the refused fetch below logs an error by design).
  await Promise.all([page.waitForURL(/\/login/), page.click("#logout")]);
  await page.goto(base + "/queues");
  expect(page.url().startsWith(base + "/login"), "after logout pages redirect to login, got " + page.url());
  const status = await page.evaluate(async (url) => (await fetch(url)).status, base + "/api/concurrency");
  expect(status === 401, "after logout data endpoints answer 401, got " + status);
  step("logged out and refused");
  console.log(JSON.stringify(summary));
} finally {
  await context.close();
  rmSync(userData, { recursive: true, force: true });
}
