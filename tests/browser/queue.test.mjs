// The waiting room on the sale page, in headless Debian Chromium against the real flashgate
// binary: a shopper joins the queue before the start behind other visitors, sees the position
// move as the queue lets people through (1 a second), keeps the place across a reload, is let
// through, and buys — the buy carries the queue's pass and the proof of work, and the
// recording origin sees exactly that one buy. Screenshots go to target/browser/.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import test from "node:test";
import { launchBrowser, loginToken, PHONE, phonePage, SHOTS, startEdge, startOrigin } from "./harness.mjs";

const AHEAD = 4;

test("a shopper joins the queue before the start, moves up, is let through and buys", { timeout: 120_000 }, async (t) => {
  fs.mkdirSync(SHOTS, { recursive: true });
  const origin = await startOrigin();
  const edge = await startEdge({
    originPort: origin.port,
    stock: 20,
    captcha: "pow",
    difficulty: 10,
    show: "title: Queued phone, price: '¥99.00', queue: { mode: fifo, prequeue: 1m, admit_per_second: 1, pass_ttl: 2m }",
  });
  const browser = await launchBrowser(t, edge, origin);

  // Everything runs: the sale starts with time to join before it.
  const startsAtMs = await edge.schedule(12_000);
  // The sale says it is queued, and from when joining is open.
  const info = await (await fetch(`${edge.base}/api/sale?product=42`)).json();
  assert.deepEqual(info.queue, { mode: "fifo", opens_at_ms: startsAtMs - 60_000, admit_per_second: 1, pass_ttl_s: 120 });

  // Others join first, over plain HTTP: they are ahead of the shopper and never buy.
  for (let i = 0; i < AHEAD; i++) {
    const r = await fetch(`${edge.base}/api/queue?product=42`, { method: "POST", headers: { Authorization: `Bearer ${loginToken(`early-${i}`)}` } });
    const body = await r.json();
    assert.equal(r.status, 200, JSON.stringify(body));
    assert.equal(body.state, "waiting");
    assert.equal(body.position, i, "fifo: each joiner behind the ones before");
  }

  const { page, errors } = await phonePage(browser, edge, "queued-shopper");
  const requests = [];
  page.on("request", (r) => {
    if (r.url().includes("/api/queue") || r.url().includes("/buy/")) requests.push({ method: r.method(), url: r.url(), headers: r.headers() });
  });
  await page.goto(`${edge.base}/?product=42`);

  // Before the start: the title, the queue box, "Join the queue" in the buy button's place.
  const join = page.locator("#join");
  const buy = page.locator("#buy");
  const status = page.locator("#queue-status");
  await join.waitFor({ state: "visible" });
  assert.equal(await page.locator("#title").textContent(), "Queued phone");
  assert.equal(await buy.isHidden(), true, "no buy button before a place in the queue");
  assert.equal(await status.getAttribute("aria-live"), "polite");
  const joinBox = await join.boundingBox();
  await page.screenshot({ path: path.join(SHOTS, "20-queue-join.png") });
  assert.ok(Date.now() < startsAtMs - 2000, "joining well before the start");

  await join.click();
  await page.waitForFunction((n) => document.getElementById("queue-status").textContent === `${n} people ahead of you.`, AHEAD);
  assert.match(await page.locator("#queue-eta").textContent(), /^Estimated wait: about \d+ s\.$/);
  assert.equal(await join.isHidden(), true);
  assert.equal(await buy.textContent(), "Wait for your turn", "the buy button holds the place, disabled");
  assert.equal(await buy.isDisabled(), true);
  const ticket = await page.evaluate(() => sessionStorage.getItem("fg_queue_42"));
  assert.ok(ticket && ticket.length > 20, "the ticket is kept for this tab");
  await page.screenshot({ path: path.join(SHOTS, "21-queue-waiting.png") });

  // A reload keeps the place: no new join, the same ticket polled.
  const joinsBefore = requests.filter((r) => r.method === "POST").length;
  await page.reload();
  await page.waitForFunction((n) => document.getElementById("queue-status").textContent === `${n} people ahead of you.`, AHEAD);
  assert.equal(requests.filter((r) => r.method === "POST").length, joinsBefore, "the reload did not join again");
  const poll = requests.filter((r) => r.method === "GET" && r.url.includes("/api/queue")).at(-1);
  assert.equal(poll.headers["x-queue-ticket"], ticket);

  // From the start the queue lets one a second through: the position goes down to the turn.
  const seen = new Set();
  const layout = [];
  const deadline = Date.now() + 40_000;
  while (!(await page.evaluate(() => document.getElementById("queue").dataset.state === "admitted"))) {
    assert.ok(Date.now() < deadline, `not let through; saw ${[...seen]}`);
    seen.add(await status.textContent());
    layout.push(await page.locator("#queue").boundingBox());
    await page.waitForTimeout(100);
  }
  const positions = [...seen].map((s) => /^(\d+) people|^(1) person|^You are (next)/.exec(s)).filter(Boolean);
  assert.ok(positions.length >= 3, `the position moved: ${[...seen].join(" | ")}`);
  assert.equal(new Set(layout.map((b) => b.height)).size, 1, "the queue box kept its height while the position changed");
  assert.ok(Date.now() >= startsAtMs, "let through only from the start");

  // Let through: the buy button takes the join button's place, and buying wins.
  await page.waitForFunction(() => !document.getElementById("buy").disabled && !document.getElementById("buy").hidden, null, { timeout: 10_000 });
  assert.equal(await status.textContent(), "It's your turn — buy now.");
  const buyBox = await buy.boundingBox();
  assert.equal(buyBox.y, joinBox.y, "the buy button is where the join button was");
  await page.screenshot({ path: path.join(SHOTS, "22-queue-admitted.png") });
  await buy.click();
  await page.waitForFunction(() => document.getElementById("message").dataset.outcome === "won", null, { timeout: 60_000 });
  await page.screenshot({ path: path.join(SHOTS, "23-queue-won.png") });

  const buys = requests.filter((r) => r.url.includes("/buy/"));
  assert.equal(buys.length, 1);
  assert.ok(buys[0].headers["x-queue-pass"], "the buy carried the pass");
  assert.match(buys[0].headers["x-captcha"], /^.+\.\d+$/, "and the proof of work");
  assert.equal(origin.orders.length, 1, "exactly that buy reached the origin");
  assert.equal(origin.orders[0].uid, "queued-shopper");

  // The pass is what let it through: the same buy without it is refused at the edge (the
  // captcha is checked locally before the pass; its single use is claimed only after).
  const r = await fetch(buys[0].url, { method: "POST", headers: { Authorization: `Bearer ${loginToken("queued-shopper")}`, "X-Captcha": buys[0].headers["x-captcha"] } });
  assert.equal(r.status, 403);
  assert.equal((await r.json()).outcome, "queue_required");
  assert.equal(origin.orders.length, 1);
  assert.deepEqual(errors, [], "no script errors on the page");
});

/** The state button.js carries (the buy path once the sale is open). */
async function saleState(base) {
  const script = await (await fetch(`${base}/sale/42/button.js?t=${Date.now()}`)).text();
  return JSON.parse(/\}\)\((\{.*\})\);\s*$/s.exec(script)[1]);
}

test("the queue says plainly when it is not open yet, sold out, and over", { timeout: 120_000 }, async (t) => {
  fs.mkdirSync(SHOTS, { recursive: true });
  const origin = await startOrigin();
  // Joining opens 4 s before the start; the sale lasts 8 s; one unit.
  const edge = await startEdge({
    originPort: origin.port,
    lengthMs: 8_000,
    stock: 1,
    captcha: "none",
    show: "queue: { mode: fifo, prequeue: 4s, admit_per_second: 1 }",
  });
  const browser = await launchBrowser(t, edge, origin);
  const { page, errors } = await phonePage(browser, edge, "second");
  // Everything runs: the pre-queue opens 5 s from now.
  const startsAtMs = await edge.schedule(9_000);
  const opensAtMs = startsAtMs - 4_000;
  const endsAtMs = startsAtMs + 8_000;
  await page.goto(`${edge.base}/?product=42`);
  const join = page.locator("#join");
  const status = page.locator("#queue-status");

  // Before the pre-queue opens: the button is there but disabled, with when it opens.
  await page.waitForFunction(() => /^The queue opens in \d+ s\.$/.test(document.getElementById("queue-status").textContent));
  assert.ok(Date.now() < opensAtMs, "checked before the opening");
  assert.equal(await join.isDisabled(), true);
  const early = await fetch(`${edge.base}/api/queue?product=42`, { method: "POST", headers: { Authorization: `Bearer ${loginToken("eager")}` } });
  assert.equal(early.status, 403);
  assert.equal((await early.json()).outcome, "not_started");
  await page.screenshot({ path: path.join(SHOTS, "24-queue-not-open.png") });

  // From the opening: someone else joins first, then the shopper, one behind.
  await page.waitForFunction(() => !document.getElementById("join").disabled, null, { timeout: 10_000, polling: 50 });
  assert.ok(Date.now() >= opensAtMs - 300, `enabled ${opensAtMs - Date.now()} ms before the opening`);
  const first = await fetch(`${edge.base}/api/queue?product=42`, { method: "POST", headers: { Authorization: `Bearer ${loginToken("first")}` } });
  const firstPlace = await first.json();
  assert.equal(firstPlace.position, 0);
  await join.click();
  await page.waitForFunction(() => document.getElementById("queue-status").textContent === "1 person ahead of you.");

  // The first one is let through at the start and buys the only unit with the pass.
  let turn = firstPlace;
  const deadline = Date.now() + 20_000;
  while (turn.state !== "admitted") {
    assert.ok(Date.now() < deadline, `first never let through: ${JSON.stringify(turn)}`);
    await new Promise((r) => setTimeout(r, 200));
    const r = await fetch(`${edge.base}/api/queue?product=42`, { headers: { Authorization: `Bearer ${loginToken("first")}`, "X-Queue-Ticket": firstPlace.ticket } });
    turn = await r.json();
  }
  const { buy_path: buyPath } = await saleState(edge.base);
  const bought = await fetch(edge.base + buyPath, { method: "POST", headers: { Authorization: `Bearer ${loginToken("first")}`, "X-Queue-Pass": turn.pass } });
  assert.equal(bought.status, 200);
  assert.equal(origin.orders.length, 1);

  // The shopper is told it is sold out, and no buy button is offered.
  await page.waitForFunction(() => document.getElementById("queue").dataset.state === "sold_out", null, { timeout: 20_000 });
  assert.equal(await status.textContent(), "Sold out — every unit has found a buyer.");
  assert.equal(await page.locator("#buy").isDisabled(), true);
  assert.equal(await join.isHidden(), true);
  await page.screenshot({ path: path.join(SHOTS, "25-queue-sold-out.png") });

  // After the end, a visitor who had no place is told the sale is over.
  await new Promise((r) => setTimeout(r, Math.max(0, endsAtMs - Date.now() + 500)));
  const late = await (await browser.newContext(PHONE)).newPage();
  late.on("pageerror", (e) => errors.push(String(e)));
  await late.goto(`${edge.base}/?product=42`);
  await late.waitForFunction(() => document.getElementById("queue-status").textContent === "The sale is over.");
  assert.equal(await late.locator("#join").isHidden(), true);
  assert.equal(await late.locator("#buy").isDisabled(), true);
  // And the edge says closed to a place held past the end.
  const closed = await fetch(`${edge.base}/api/queue?product=42`, { headers: { Authorization: `Bearer ${loginToken("first")}`, "X-Queue-Ticket": firstPlace.ticket } });
  assert.equal((await closed.json()).state, "closed");
  await late.screenshot({ path: path.join(SHOTS, "26-queue-over.png") });
  assert.equal(origin.orders.length, 1);
  assert.deepEqual(errors, [], "no script errors on the page");
});
