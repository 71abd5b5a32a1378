// What is on sale, in headless Debian Chromium against the real flashgate binary: a sale's
// title, price and image from the config (sales[].title, price, image) shown on the page, the
// title holding markup, quotes and non-ASCII shown as text and never run; the image served
// under its content-hashed name; a sale without them falls back to "Product N". Also the JSON
// of GET /api/sale itself (serde-escaped, ETag, 304). Screenshots go to target/browser/.
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import test from "node:test";
import { launchBrowser, phonePage, ROOT, SHOTS, startEdge, startOrigin } from "./harness.mjs";

// Markup that would run if it were ever parsed as HTML, quotes of both kinds, non-ASCII.
const TITLE = `<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script> "Ünïcode" 手机 'Pro' & co`;
const PRICE = "¥99.00";
const SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="80" height="40"><rect width="80" height="40" fill="#3949ab"/></svg>`;

/** static/ copied into a temporary directory with an image at img/test-phone.svg. */
function staticWithImage() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "flashgate-static-"));
  fs.cpSync(path.join(ROOT, "static"), dir, { recursive: true });
  fs.mkdirSync(path.join(dir, "img"), { recursive: true });
  fs.writeFileSync(path.join(dir, "img", "test-phone.svg"), SVG);
  return dir;
}

test("the page shows the sale's title, price and image, as text", { timeout: 60_000 }, async (t) => {
  fs.mkdirSync(SHOTS, { recursive: true });
  const origin = await startOrigin();
  const staticDir = staticWithImage();
  const startsAtMs = Math.ceil((Date.now() + 600_000) / 1000) * 1000;
  const starts = new Date(startsAtMs).toISOString().replace(/\.\d{3}Z$/, "Z");
  const ends = new Date(startsAtMs + 3600_000).toISOString().replace(/\.\d{3}Z$/, "Z");
  const edge = await startEdge({
    originPort: origin.port,
    startsAtMs,
    captcha: "none",
    staticDir,
    // JSON strings are YAML double-quoted scalars.
    show: `title: ${JSON.stringify(TITLE)}, price: ${JSON.stringify(PRICE)}, image: img/test-phone.svg`,
    moreSales: [`  - { product: 7, stock: 1, starts_at: '${starts}', ends_at: '${ends}' }`],
  });
  const browser = await launchBrowser(t, edge, origin, () => fs.rmSync(staticDir, { recursive: true, force: true }));

  // The endpoint: serde JSON, the title byte for byte, the image by its hashed name, an ETag.
  const r = await fetch(`${edge.base}/api/sale?product=42`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get("content-type"), /^application\/json/);
  assert.equal(r.headers.get("cache-control"), "public, max-age=5");
  const info = await r.json();
  assert.equal(info.title, TITLE);
  assert.equal(info.price, PRICE);
  assert.equal(info.starts_at_ms, startsAtMs);
  assert.equal(info.captcha, "none");
  assert.match(info.image, /^\/static\/img\/test-phone\.[0-9a-f]{10}\.svg$/);
  const etag = r.headers.get("etag");
  assert.match(etag, /^"[0-9a-f]{24}"$/);
  const again = await fetch(`${edge.base}/api/sale?product=42`, { headers: { "If-None-Match": etag } });
  assert.equal(again.status, 304);
  const img = await fetch(edge.base + info.image);
  assert.equal(img.status, 200);
  assert.match(img.headers.get("cache-control"), /immutable/);
  assert.equal(await img.text(), SVG);
  for (const [query, status, outcome] of [["product=43", 404, "unknown_product"], ["product=x", 404, "unknown_product"], ["", 404, "unknown_product"]]) {
    const bad = await fetch(`${edge.base}/api/sale?${query}`);
    assert.equal(bad.status, status, query);
    assert.equal((await bad.json()).outcome, outcome, query);
  }

  const { page, errors } = await phonePage(browser, edge);
  await page.goto(`${edge.base}/?product=42`);
  await page.waitForFunction(() => document.getElementById("price").textContent !== "");
  await page.waitForFunction(() => document.getElementById("image").complete && !document.getElementById("image").hidden);

  assert.equal(await page.locator("#title").textContent(), TITLE);
  assert.equal(await page.locator("#title").evaluate((h) => h.children.length), 0, "the title is text, not markup");
  assert.equal(await page.evaluate(() => document.querySelectorAll("[onerror], main script").length), 0, "no element came from the title");
  assert.equal(await page.evaluate(() => window.__pwned), undefined, "nothing in the title ran");
  assert.equal(await page.title(), `Flash sale · ${TITLE}`);
  assert.equal(await page.locator("#price").textContent(), PRICE);
  const image = page.locator("#image");
  assert.equal(await image.getAttribute("src"), edge.base + info.image);
  assert.equal(await image.getAttribute("alt"), TITLE);
  assert.equal(await image.evaluate((i) => i.naturalWidth), 80, "the image loaded");
  const box = await image.boundingBox();
  assert.ok(box.width > 300 && box.height > 100, `the image fills the picture box (${JSON.stringify(box)})`);
  assert.equal(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), true, "no sideways scroll on a phone");
  await page.screenshot({ path: path.join(SHOTS, "10-showcase.png") });

  // A sale without them: "Product 7", no price, no image.
  const plain = await page.context().newPage();
  plain.on("pageerror", (e) => errors.push(String(e)));
  await plain.goto(`${edge.base}/?product=7`);
  await plain.waitForFunction(() => /Opens in/.test(document.getElementById("countdown").textContent));
  const plainInfo = await (await fetch(`${edge.base}/api/sale?product=7`)).json();
  assert.deepEqual([plainInfo.title, plainInfo.price, plainInfo.image], [null, null, null]);
  assert.equal(await plain.locator("#title").textContent(), "Product 7");
  assert.equal(await plain.locator("#price").textContent(), "");
  assert.equal(await plain.locator("#image").isHidden(), true);
  await plain.screenshot({ path: path.join(SHOTS, "11-plain.png") });
  assert.deepEqual(errors, [], "no script errors on the page");
});
