// The sale page. Polls /sale/{product}/button.js (cacheable for 1 s), counts down to the
// server's clock, enables the button only once the script says the sale is active, and after a
// click keeps it disabled for 5 s. A sale with `captcha: pow` first gets a challenge from
// /api/challenge and solves it in a Web Worker (pow-worker.js); the buy then carries
// X-Captcha: <challenge>.<nonce>. Every answer gets a plain message; 429 says when to retry.
(function () {
  "use strict";
  var COOLDOWN_MS = 5000;
  var params = new URLSearchParams(location.search);
  var product = params.get("product") || "42";
  var $ = function (id) { return document.getElementById(id); };
  var button = $("buy"), message = $("message"), countdown = $("countdown"), check = $("check");
  var tokenInput = $("token");
  $("product-id").textContent = product;
  document.title = "Flash sale · Product " + product;

  // A login token may arrive in the fragment (#token=...), which is never sent to a server.
  var fromHash = /(?:^|[#&])token=([^&]+)/.exec(location.hash);
  if (fromHash) {
    localStorage.setItem("fg_token", decodeURIComponent(fromHash[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
  tokenInput.value = localStorage.getItem("fg_token") || "";
  tokenInput.addEventListener("change", function () { localStorage.setItem("fg_token", tokenInput.value.trim()); });

  var state = null, skew = null, busy = false, coolUntil = 0;
  var messages = {
    won: "You got one! Finish your order.",
    duplicate: "You already have one — one per customer.",
    sold_out: "Sold out. Every unit has found a buyer.",
    not_started: "Not open yet — wait for the countdown.",
    ended: "The sale is over.",
    login_required: "Please sign in first.",
    blacklisted: "This account cannot buy in this sale.",
    bad_sale_path: "The sale link is stale — reload the page.",
    captcha_required: "The check did not pass — please try again.",
    unknown_product: "This product is not on sale.",
    store_unavailable: "Busy right now — try again in a moment.",
    origin_unavailable: "Busy right now — try again in a moment.",
    captcha_unavailable: "This sale needs the shop's captcha, which is not set up on this page.",
    network: "Network trouble — check your connection and try again."
  };

  function show(outcome, text) {
    var kind = outcome === "won" ? "won" : outcome === "rate_limited" ? "wait" : outcome ? "lost" : "";
    message.textContent = text;
    message.className = "message " + kind;
    message.setAttribute("data-outcome", outcome || "");
  }

  function serverNow() { return Date.now() + (skew || 0); }

  function pad(n) { return n < 10 ? "0" + n : String(n); }

  function render() {
    if (!state) return;
    var now = serverNow();
    if (state.ended) {
      countdown.textContent = "The sale is over.";
      button.disabled = true;
      return;
    }
    if (!state.active) {
      var left = Math.ceil((state.starts_at_ms - now) / 1000);
      if (left > 0) {
        var h = Math.floor(left / 3600), m = Math.floor(left % 3600 / 60), s = left % 60;
        countdown.textContent = "Opens in " + (h ? h + ":" + pad(m) : m) + ":" + pad(s);
      } else {
        countdown.textContent = "Opening…";
      }
      button.disabled = true;
      button.textContent = "Buy now";
      return;
    }
    countdown.textContent = "On sale now";
    var wait = Math.ceil((coolUntil - Date.now()) / 1000);
    button.disabled = busy || wait > 0;
    button.textContent = busy ? "Working…" : wait > 0 ? "Buy now (" + wait + ")" : "Buy now";
  }

  window.addEventListener("flashgate:sale", function (e) {
    if (String(e.detail.product) !== String(product)) return;
    state = e.detail;
    // A cached script carries an older server time; the largest estimate is the closest.
    var estimate = state.server_time_ms - Date.now();
    skew = skew === null ? estimate : Math.max(skew, estimate);
    render();
  });

  function poll() {
    var s = document.createElement("script");
    s.src = "/sale/" + encodeURIComponent(product) + "/button.js?t=" + Math.floor(Date.now() / 1000);
    s.onload = s.onerror = function () { s.remove(); };
    document.head.appendChild(s);
  }

  function authHeaders() {
    var headers = {};
    var token = tokenInput.value.trim();
    if (token) headers["Authorization"] = "Bearer " + token;
    return headers;
  }

  function failure(outcome, response) { return { outcome: outcome, response: response }; }

  var worker = null;
  function solve(challenge, difficulty) {
    return new Promise(function (resolve, reject) {
      if (typeof Worker !== "function") return reject(failure("captcha_unavailable"));
      worker = worker || new Worker("/static/pow-worker.js");
      worker.onmessage = function (e) {
        var m = e.data;
        if (m.type === "progress") {
          check.textContent = "Checking you are not a bot… " + m.tries.toLocaleString() + " tries";
        } else if (m.type === "done") {
          check.textContent = "Checked (" + m.tries.toLocaleString() + " tries, " + (m.ms / 1000).toFixed(1) + " s).";
          resolve(m.nonce);
        } else {
          reject(failure("captcha_required"));
        }
      };
      worker.postMessage({ challenge: challenge, difficulty: difficulty });
    });
  }

  // The X-Captcha value this sale asks for, or null.
  function captcha() {
    if (state.captcha === "pow") {
      check.hidden = false;
      check.textContent = "Checking you are not a bot…";
      return fetch("/api/challenge?product=" + encodeURIComponent(product), { headers: authHeaders(), credentials: "same-origin", cache: "no-store" })
        .then(function (r) {
          return r.json().catch(function () { return {}; }).then(function (body) {
            if (!r.ok) throw failure(body.outcome || "captcha_required", r);
            return solve(body.challenge, body.difficulty).then(function (nonce) { return body.challenge + "." + nonce; });
          });
        });
    }
    if (state.captcha === "token") {
      // The shop's captcha widget provides window.flashgateCaptcha(product) → Promise<pass>.
      if (typeof window.flashgateCaptcha !== "function") return Promise.reject(failure("captcha_unavailable"));
      return Promise.resolve(window.flashgateCaptcha(product));
    }
    return Promise.resolve(null);
  }

  function answer(outcome, response, body) {
    if (outcome === "rate_limited") {
      var retry = parseInt(response && response.headers.get("Retry-After"), 10) || 5;
      coolUntil = Math.max(coolUntil, Date.now() + retry * 1000);
      show(outcome, "Too many tries — retry in " + retry + " s.");
      return;
    }
    var text = messages[outcome] || "Something went wrong (" + (response ? response.status : "?") + ") — try again.";
    if (outcome === "won" && body && body.order) text += " Order " + body.order + ".";
    show(outcome, text);
  }

  button.addEventListener("click", function () {
    if (!state || !state.active || !state.buy_path || busy || Date.now() < coolUntil) return;
    busy = true;
    coolUntil = Date.now() + COOLDOWN_MS;
    show("", "…");
    check.hidden = state.captcha !== "pow";
    render();
    var path = state.buy_path;
    captcha()
      .then(function (pass) {
        var headers = authHeaders();
        if (pass) headers["X-Captcha"] = pass;
        return fetch(path, { method: "POST", headers: headers, credentials: "same-origin" });
      })
      .then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (body) {
          answer(r.ok ? "won" : (body.outcome || "error"), r, body);
        });
      })
      .catch(function (err) {
        if (err && err.outcome) answer(err.outcome, err.response);
        else answer("network");
      })
      .then(function () { busy = false; render(); });
  });

  poll();
  setInterval(poll, 1000);
  setInterval(render, 200);
})();
