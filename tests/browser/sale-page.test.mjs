// The sale page in headless Debian Chromium against the real flashgate binary: the countdown
// and the disabled button before the start, the button enabling at the start (as button.js
// says), a click that solves the proof of work and wins, the 5 s pause after a click, a second
// click that shows the duplicate message, and a signed-out visitor told to sign in; and on a
// sale without captcha, a 429 that says when to retry and keeps the button disabled until then.
// Screenshots go to target/browser/.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import test from "node:test";
import { launchBrowser, loginToken, PHONE, phonePage, SHOTS, startEdge, startOrigin } from "./harness.mjs";

test("a shopper waits for the start, solves the check, wins once and is told of the duplicate", { timeout: 120_000 }, async (t) => {
  fs.mkdirSync(SHOTS, { recursive: true });
  const origin = await startOrigin();
  const edge = await startEdge({ originPort: origin.port, difficulty: 14 });
  const browser = await launchBrowser(t, edge, origin);

  const { page, errors } = await phonePage(browser, edge, "shopper");
  // Everything runs: the sale starts far enough ahead to see the countdown.
  const startsAtMs = await edge.schedule(10_000);
  await page.goto(`${edge.base}/?product=42`);
  const button = page.locator("#buy");
  const message = page.locator("#message");

  // Before the start: a countdown to the server's clock and a disabled button.
  await page.waitForFunction(() => /Opens in \d+:\d\d/.test(document.getElementById("countdown").textContent));
  assert.ok(Date.now() < startsAtMs - 1000, "the page was ready well before the start");
  assert.equal(await button.isDisabled(), true);
  await page.screenshot({ path: path.join(SHOTS, "01-countdown.png") });

  // The button enables when button.js says active: not before the start, soon after it.
  await page.waitForFunction(() => !document.getElementById("buy").disabled, null, { timeout: 20_000, polling: 50 });
  const enabledAt = Date.now();
  assert.ok(enabledAt >= startsAtMs, `enabled ${startsAtMs - enabledAt} ms before the start`);
  assert.ok(enabledAt <= startsAtMs + 3000, `enabled ${enabledAt - startsAtMs} ms after the start`);
  assert.match(await page.locator("#countdown").textContent(), /On sale now/);
  await page.screenshot({ path: path.join(SHOTS, "02-open.png") });

  // One click: disabled at once, the check runs in the worker, the buy wins.
  const clickedAt = Date.now();
  await button.click();
  assert.equal(await button.isDisabled(), true, "disabled right after the click");
  await page.waitForFunction(() => document.getElementById("message").dataset.outcome === "won", null, { timeout: 60_000 });
  assert.match(await message.textContent(), /You got one!.*Order 42-\d+-1\./);
  assert.match(await page.locator("#check").textContent(), /Checked \([\d,.]+ tries/);
  await page.screenshot({ path: path.join(SHOTS, "03-won.png") });
  assert.equal(origin.orders.length, 1, "one order reached the origin");
  assert.equal(origin.orders[0].uid, "shopper");

  // Disabled for 5 s after the click, then usable again.
  if (Date.now() - clickedAt < 4000) assert.equal(await button.isDisabled(), true, "still pausing");
  await page.waitForFunction(() => !document.getElementById("buy").disabled, null, { timeout: 15_000, polling: 50 });
  assert.ok(Date.now() - clickedAt >= 4900, `re-enabled after ${Date.now() - clickedAt} ms`);

  // A second click: a new challenge, solved, and the store says this user already holds one.
  await button.click();
  await page.waitForFunction(() => document.getElementById("message").dataset.outcome === "duplicate", null, { timeout: 60_000 });
  assert.match(await message.textContent(), /already have one.*Order 42-\d+-1\./);
  await page.screenshot({ path: path.join(SHOTS, "04-duplicate.png") });
  assert.equal(origin.orders.length, 1, "the duplicate never reached the origin");

  // Someone not signed in is asked to sign in (the challenge needs a login).
  const anonymous = await (await browser.newContext(PHONE)).newPage();
  await anonymous.goto(`${edge.base}/?product=42`);
  await anonymous.waitForFunction(() => !document.getElementById("buy").disabled, null, { timeout: 10_000 });
  await anonymous.locator("#buy").click();
  await anonymous.waitForFunction(() => document.getElementById("message").dataset.outcome === "login_required");
  assert.match(await anonymous.locator("#message").textContent(), /sign in/);
  await anonymous.screenshot({ path: path.join(SHOTS, "05-sign-in.png") });

  const metrics = await (await fetch(edge.metrics)).text();
  assert.match(metrics, /flashgate_requests_total\{outcome="won",route="buy"\} 1\n/);
  assert.match(metrics, /flashgate_requests_total\{outcome="served",route="challenge"\} 2\n/);
  assert.deepEqual(errors, [], "no script errors on the page");
});

test("a shopper over the rate limit is told when to retry", { timeout: 60_000 }, async (t) => {
  fs.mkdirSync(SHOTS, { recursive: true });
  const origin = await startOrigin();
  const startsAtMs = Date.now() - 60_000;
  const edge = await startEdge({ originPort: origin.port, startsAtMs, captcha: "none", perUid: 1 });
  const browser = await launchBrowser(t, edge, origin);
  const context = await browser.newContext(PHONE);
  const page = await context.newPage();
  // This time the token comes in the URL's fragment, and the page keeps it.
  await page.goto(`${edge.base}/?product=42#token=${loginToken("eager")}`);
  assert.equal(new URL(page.url()).hash, "", "the token is taken out of the address bar");
  const button = page.locator("#buy");
  await page.waitForFunction(() => !document.getElementById("buy").disabled, null, { timeout: 10_000 });
  await button.click();
  await page.waitForFunction(() => document.getElementById("message").dataset.outcome === "won");
  await page.waitForFunction(() => !document.getElementById("buy").disabled, null, { timeout: 15_000 });
  await button.click();
  await page.waitForFunction(() => document.getElementById("message").dataset.outcome === "rate_limited");
  const text = await page.locator("#message").textContent();
  const retry = Number(/retry in (\d+) s/.exec(text)?.[1]);
  assert.ok(retry >= 1 && retry <= 10, text);
  assert.equal(await button.isDisabled(), true, "disabled while the limit lasts");
  assert.match(await button.textContent(), /Buy now \(\d+\)/);
  await page.screenshot({ path: path.join(SHOTS, "06-rate-limited.png") });
  assert.equal(origin.orders.length, 1);
});

test("a buy the shop does not answer says pending, then won once the shop says so", { timeout: 60_000 }, async (t) => {
  fs.mkdirSync(SHOTS, { recursive: true });
  // The shop makes the order and then answers 503: the edge cannot know, the unit stays held,
  // and after settle_after the edge asks the shop, which says it holds the order.
  const origin = await startOrigin({ failFirst: 1 });
  const edge = await startEdge({
    originPort: origin.port,
    originKeys: "timeout: 1s, settle_after: 2s",
    startsAtMs: Date.now() - 60_000,
    captcha: "none",
  });
  const browser = await launchBrowser(t, edge, origin);
  const { page, errors } = await phonePage(browser, edge, "unsure");
  const polls = [];
  page.on("request", (r) => {
    if (r.url().includes("/api/buy/status")) polls.push(Date.now());
  });
  await page.goto(`${edge.base}/?product=42`);
  const button = page.locator("#buy");
  await page.waitForFunction(() => !document.getElementById("buy").disabled, null, { timeout: 10_000 });
  await button.click();
  await page.waitForFunction(() => document.getElementById("message").dataset.outcome === "pending");
  assert.match(await page.locator("#message").textContent(), /being confirmed/);
  assert.equal(await button.isDisabled(), true, "no second buy while it is confirmed");
  assert.equal(await button.textContent(), "Confirming…");
  await page.screenshot({ path: path.join(SHOTS, "07-pending.png") });
  await page.waitForFunction(() => document.getElementById("message").dataset.outcome === "won", null, { timeout: 30_000 });
  const text = await page.locator("#message").textContent();
  assert.ok(text.includes(origin.orders[0].reservation), `the order is named: ${text}`);
  assert.ok(polls.length >= 1, "the page asked the status URL");
  assert.equal(origin.orders.length, 1, "one buy, one order: the page did not buy again");
  await page.screenshot({ path: path.join(SHOTS, "08-pending-won.png") });
  assert.deepEqual(errors, [], "no script errors on the page");
});
