// The sale page's proof of work, in a Web Worker so the page stays responsive while it runs.
// Asked {challenge, difficulty}, it finds the smallest decimal nonce such that SHA-256 of the
// UTF-8 string "<challenge>:<nonce>" starts with `difficulty` zero bits, and answers
// {type: "done", nonce, tries, ms, engine}; on the way it reports {type: "progress", tries}.
//
// It hashes with crypto.subtle.digest, in batches so the promise overhead is shared. Browsers
// offer crypto.subtle only to secure contexts (https:, localhost); on a plain-http page it
// falls back to the SHA-256 below (FIPS 180-4), which gives the same digests.
"use strict";

(function (scope) {
  // Round constants and initial hash: the first 32 bits of the fractional parts of the cube
  // roots of the first 64 primes, and of the square roots of the first 8 (FIPS 180-4, 4.2.2).
  var PRIMES = [];
  for (var n = 2; PRIMES.length < 64; n++) {
    var prime = true;
    for (var d = 2; d * d <= n; d++) if (n % d === 0) { prime = false; break; }
    if (prime) PRIMES.push(n);
  }
  function frac32(x) { return ((x - Math.floor(x)) * 4294967296) >>> 0; }
  var K = new Int32Array(PRIMES.map(function (p) { return frac32(Math.cbrt(p)); }));
  var H0 = PRIMES.slice(0, 8).map(function (p) { return frac32(Math.sqrt(p)) | 0; });
  var W = new Int32Array(64);

  function ror(x, n) { return (x >>> n) | (x << (32 - n)); }

  // SHA-256 of a Uint8Array, as a Uint8Array of 32 bytes.
  function sha256(msg) {
    var len = msg.length;
    var blocks = (len + 9 + 63) >> 6;
    var buf = new Uint8Array(blocks * 64);
    buf.set(msg);
    buf[len] = 0x80;
    var view = new DataView(buf.buffer);
    view.setUint32(buf.length - 8, Math.floor(len / 0x20000000));
    view.setUint32(buf.length - 4, (len << 3) >>> 0);
    var h = H0.slice();
    for (var off = 0; off < buf.length; off += 64) {
      for (var t = 0; t < 16; t++) W[t] = view.getInt32(off + 4 * t);
      for (t = 16; t < 64; t++) {
        var w15 = W[t - 15], w2 = W[t - 2];
        var s0 = ror(w15, 7) ^ ror(w15, 18) ^ (w15 >>> 3);
        var s1 = ror(w2, 17) ^ ror(w2, 19) ^ (w2 >>> 10);
        W[t] = (W[t - 16] + s0 + W[t - 7] + s1) | 0;
      }
      var a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
      for (t = 0; t < 64; t++) {
        var t1 = (k + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + ((e & f) ^ (~e & g)) + K[t] + W[t]) | 0;
        var t2 = ((ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) | 0;
        k = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b; b = a; a = (t1 + t2) | 0;
      }
      h[0] = (h[0] + a) | 0; h[1] = (h[1] + b) | 0; h[2] = (h[2] + c) | 0; h[3] = (h[3] + d) | 0;
      h[4] = (h[4] + e) | 0; h[5] = (h[5] + f) | 0; h[6] = (h[6] + g) | 0; h[7] = (h[7] + k) | 0;
    }
    var out = new Uint8Array(32);
    var outView = new DataView(out.buffer);
    for (var i = 0; i < 8; i++) outView.setInt32(4 * i, h[i]);
    return out;
  }

  function leadingZeroBits(bytes) {
    var bits = 0;
    for (var i = 0; i < bytes.length; i++) {
      if (bytes[i] === 0) { bits += 8; continue; }
      return bits + Math.clz32(bytes[i]) - 24;
    }
    return bits;
  }

  var encoder = new TextEncoder();
  var PROGRESS_EVERY = 16384;
  var BATCH = 256;

  // Pure JavaScript: synchronous, one hash at a time.
  function solveJs(challenge, difficulty, progress) {
    var prefix = challenge + ":";
    for (var nonce = 0; ; nonce++) {
      if (leadingZeroBits(sha256(encoder.encode(prefix + nonce))) >= difficulty) return nonce;
      if (progress && nonce % PROGRESS_EVERY === 0 && nonce) progress(nonce);
    }
  }

  // crypto.subtle: BATCH digests in flight at once; the smallest passing nonce of a batch wins.
  function solveSubtle(challenge, difficulty, progress) {
    var prefix = challenge + ":";
    function batch(from) {
      var digests = [];
      for (var i = 0; i < BATCH; i++) {
        digests.push(scope.crypto.subtle.digest("SHA-256", encoder.encode(prefix + (from + i))));
      }
      return Promise.all(digests).then(function (hashes) {
        for (var i = 0; i < hashes.length; i++) {
          if (leadingZeroBits(new Uint8Array(hashes[i])) >= difficulty) return from + i;
        }
        if (progress && (from + BATCH) % PROGRESS_EVERY === 0) progress(from + BATCH);
        return batch(from + BATCH);
      });
    }
    return batch(0);
  }

  var api = { sha256: sha256, leadingZeroBits: leadingZeroBits, solveJs: solveJs, solveSubtle: solveSubtle };
  scope.flashgatePow = api;

  // In a worker: answer the page.
  if (typeof scope.postMessage === "function" && typeof scope.document === "undefined" && typeof scope.importScripts === "function") {
    scope.onmessage = function (event) {
      var job = event.data || {};
      var started = Date.now();
      var subtle = !job.pureJs && scope.crypto && scope.crypto.subtle;
      var progress = function (tries) { scope.postMessage({ type: "progress", tries: tries }); };
      var solving = subtle
        ? solveSubtle(job.challenge, job.difficulty, progress)
        : Promise.resolve().then(function () { return solveJs(job.challenge, job.difficulty, progress); });
      solving.then(function (nonce) {
        scope.postMessage({ type: "done", nonce: nonce, tries: nonce + 1, ms: Date.now() - started, engine: subtle ? "subtle" : "js" });
      }, function (err) {
        scope.postMessage({ type: "error", message: String(err) });
      });
    };
  }
})(typeof self !== "undefined" ? self : globalThis);
