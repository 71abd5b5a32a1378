// The page's proof of work (static/pow-worker.js) without a browser: its SHA-256 against
// Node's, and the nonce it finds against the one the edge's Rust solver finds.
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import test from "node:test";
import vm from "node:vm";
import { ROOT } from "./harness.mjs";

function load() {
  const scope = { TextEncoder, Math, DataView, Uint8Array, Int32Array, Promise, crypto: globalThis.crypto };
  scope.globalThis = scope;
  vm.runInNewContext(fs.readFileSync(path.join(ROOT, "static", "pow-worker.js"), "utf8"), scope);
  return scope.flashgatePow;
}

test("the fallback SHA-256 matches Node's at every padding boundary", () => {
  const pow = load();
  for (const len of [0, 1, 3, 55, 56, 57, 63, 64, 65, 119, 120, 128, 1000]) {
    const bytes = crypto.randomBytes(len);
    const ours = Buffer.from(pow.sha256(new Uint8Array(bytes))).toString("hex");
    assert.equal(ours, crypto.createHash("sha256").update(bytes).digest("hex"), `length ${len}`);
  }
});

test("both engines find the nonce the Rust solver finds", async () => {
  const pow = load();
  // src/admission/captcha/pow.rs asserts the same: solve("abc-def", 16) == 131983.
  assert.equal(pow.solveJs("abc-def", 16), 131983);
  assert.equal(await pow.solveSubtle("abc-def", 16), 131983);
  const digest = crypto.createHash("sha256").update("abc-def:131983").digest();
  assert.ok(pow.leadingZeroBits(digest) >= 16);
});
