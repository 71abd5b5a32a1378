// What the browser tests need around the page: the real flashgate binary on free ports with a
// generated config, a tiny recording origin, and HS256 login tokens. Everything on 127.0.0.1.
import { spawn } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const LOGIN_SECRET = "browser-login-secret-0123456789abcdef-01";
export const EDGE_SECRET = "browser-edge-secret-0123456789abcdef-0123";
export const SHOTS = path.join(ROOT, "target", "browser");

/** A port nothing listens on right now. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** The flashgate binary: $FLASHGATE_BIN, else the newer of target/debug and target/release. */
export function binary() {
  if (process.env.FLASHGATE_BIN) return process.env.FLASHGATE_BIN;
  const built = ["debug", "release"]
    .map((p) => path.join(ROOT, "target", p, "flashgate"))
    .filter((p) => fs.existsSync(p))
    .sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs);
  if (!built.length) throw new Error("build flashgate first (cargo build)");
  return built[0];
}

const b64url = (data) => Buffer.from(data).toString("base64url");

/** An HS256 login token for `uid`, as the shop's login service would mint it. */
export function loginToken(uid, ttlSecs = 3600) {
  const head = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const body = b64url(JSON.stringify({ sub: uid, exp: Math.floor(Date.now() / 1000) + ttlSecs }));
  const mac = crypto.createHmac("sha256", LOGIN_SECRET).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${mac}`;
}

/** The origin: answers every POST like an order backend and records what it received. With
 * `failFirst` it makes the order of the first that many buys but answers them `503` (as a shop
 * that crashed after its commit would), and answers the edge's settlement question
 * (`GET /orders/{reservation}`) `200 found` for every order it made. */
export async function startOrigin({ failFirst = 0 } = {}) {
  const orders = [];
  const server = http.createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      res.setHeader("content-type", "application/json");
      if (req.method === "GET") {
        const id = decodeURIComponent(req.url.split("/").pop());
        const found = orders.some((o) => o.reservation === id);
        res.writeHead(found ? 200 : 404);
        res.end(JSON.stringify({ outcome: found ? "found" : "not_found" }));
        return;
      }
      const reservation = req.headers["x-flashgate-reservation"] || "";
      orders.push({ method: req.method, url: req.url, uid: req.headers["x-flashgate-uid"], reservation });
      if (orders.length <= failFirst) {
        res.writeHead(503);
        res.end(JSON.stringify({ error: "the shop's database went away" }));
        return;
      }
      res.writeHead(200);
      res.end(JSON.stringify({ outcome: "won", order: reservation }));
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { port: server.address().port, orders, close: () => new Promise((r) => server.close(r)) };
}

/** `ms` as the config writes times (whole seconds). */
export const rfc3339 = (ms) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");

/** Start `flashgate run` with one sale (product 42; `show` adds fields to it, e.g. title, and
 * `moreSales` adds YAML lines under `sales:`); resolves once both listeners answer.
 *
 * A test that watches the start passes no `startsAtMs`: the sale is written an hour ahead, and
 * the test calls `edge.schedule(inMs)` once its browser and page are ready, so the time it has
 * before the start is its own, however long the machine took to start everything. */
export async function startEdge({ originPort, originKeys = "", startsAtMs = Date.now() + 3600_000, stock = 5, captcha = "pow", difficulty = 12, perUid = 50, show = "", moreSales = [], lengthMs = 3600_000, staticDir = path.join(ROOT, "static") }) {
  const [listen, admin] = [await freePort(), await freePort()];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "flashgate-browser-"));
  const config = path.join(dir, "flashgate.yaml");
  const write = (startsAtMs) => fs.writeFileSync(config, [
    `listen: 127.0.0.1:${listen}`,
    `admin_listen: 127.0.0.1:${admin}`,
    "threads: 1",
    "secrets: { login: '${FLASHGATE_LOGIN_SECRET}', edge: '${FLASHGATE_EDGE_SECRET}' }",
    `origin: { url: 'http://127.0.0.1:${originPort}', path: /orders${originKeys ? ", " + originKeys : ""} }`,
    "store: { kind: memory }",
    `static_dir: '${staticDir}'`,
    "catalog: { products: [1-100] }",
    "sales:",
    `  - { product: 42, stock: ${stock}, starts_at: '${rfc3339(startsAtMs)}', ends_at: '${rfc3339(startsAtMs + lengthMs)}', captcha: ${captcha}${show ? ", " + show : ""} }`,
    ...moreSales,
    "limits:",
    `  - { name: per-uid, key: uid, requests: ${perUid}, per: 10s, expected_keys: 1000 }`,
    `captcha: { difficulty: ${difficulty}, max_difficulty: ${difficulty + 4} }`,
    "",
  ].join("\n"));
  write(startsAtMs);
  const log = fs.openSync(path.join(dir, "edge.log"), "w");
  const child = spawn(binary(), ["run", "--config", config], {
    env: { ...process.env, FLASHGATE_LOGIN_SECRET: LOGIN_SECRET, FLASHGATE_EDGE_SECRET: EDGE_SECRET, RUST_LOG: "warn" },
    stdio: ["ignore", "ignore", log],
  });
  const base = `http://127.0.0.1:${listen}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error("flashgate exited: " + fs.readFileSync(path.join(dir, "edge.log"), "utf8"));
    try {
      const [a, b] = await Promise.all([fetch(`http://127.0.0.1:${admin}/healthz`), fetch(`${base}/static/app.css`)]);
      if (a.ok && b.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error("flashgate did not start");
    await new Promise((r) => setTimeout(r, 50));
  }
  const metrics = `http://127.0.0.1:${admin}/metrics`;
  const reloads = async () => {
    const page = await (await fetch(metrics)).text();
    const count = (result) => Number((new RegExp(`^flashgate_reloads_total\\{result="${result}"\\} (\\d+)`, "m").exec(page) || [0, 0])[1]);
    return { ok: count("ok"), refused: count("refused") };
  };
  return {
    base,
    metrics,
    startsAtMs,
    /** Move the sale to start `inMs` from now (whole seconds, as the file holds them): rewrite
     * the file and reload it (SIGHUP); resolves with the new start once the edge runs it. */
    async schedule(inMs) {
      const before = await reloads();
      this.startsAtMs = Math.ceil((Date.now() + inMs) / 1000) * 1000;
      write(this.startsAtMs);
      child.kill("SIGHUP");
      const deadline = Date.now() + 60_000;
      for (;;) {
        const now = await reloads();
        if (now.ok > before.ok) return this.startsAtMs;
        if (now.refused > before.refused) throw new Error("reload refused: " + fs.readFileSync(path.join(dir, "edge.log"), "utf8"));
        if (Date.now() > deadline) throw new Error("no reload: " + fs.readFileSync(path.join(dir, "edge.log"), "utf8"));
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    stop() {
      child.kill("SIGKILL");
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** How Debian's Chromium is started: headless, no sandbox (root in CI), nothing fetched. */
const LAUNCH = {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
};

/** A phone's screen, as the page is mostly seen on sale day. */
export const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };

/** Chromium for test `t`: when the test ends the browser is closed, then `edge` stopped,
 * `origin` closed and `more` run (whatever else the test made). */
export async function launchBrowser(t, edge, origin, more = () => {}) {
  const browser = await chromium.launch(LAUNCH);
  t.after(async () => {
    await browser.close();
    edge.stop();
    await origin.close();
    more();
  });
  return browser;
}

/** A phone-sized page in a new context of `browser`, signed in to `edge` as `uid` (the login
 * cookie; none when `uid` is empty), with the script errors it raises collected in `errors`. */
export async function phonePage(browser, edge, uid = "") {
  const context = await browser.newContext(PHONE);
  if (uid) {
    await context.addCookies([{ name: "fg_session", value: loginToken(uid), url: edge.base }]);
  }
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  return { page, errors };
}
