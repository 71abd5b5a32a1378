// The sale page. Polls /sale/{product}/button.js (cacheable for 1 s), counts down to the
// server's clock, enables the button only once the script says the sale is active, and after a
// click keeps it disabled for 5 s. A sale with `captcha: pow` first gets a challenge from
// /api/challenge and solves it in a Web Worker (pow-worker.js); the buy then carries
// X-Captcha: <challenge>.<nonce>. Every answer gets a plain message; 429 says when to retry.
// What is on sale (title, price, image) comes once from /api/sale and is set with textContent
// and a checked image URL. A queued sale (its /api/sale says `queue`) first shows "Join the
// queue" (queue.js), the place and the wait; the buy button appears once admitted and the buy
// carries X-Queue-Pass. A buy answered `202 pending` (the shop or the stock store was reached
// but gave no answer: the order may exist) says so, keeps the button disabled, and asks the
// status URL the answer names until it says won or not_won; so does a `409 duplicate` whose
// unit is still `pending`, and one that is `won` names the order.
(function () {
  "use strict";
  var COOLDOWN_MS = 5000;
  var params = new URLSearchParams(location.search);
  var product = params.get("product") || "42";
  var $ = function (id) { return document.getElementById(id); };
  var button = $("buy"), message = $("message"), countdown = $("countdown"), check = $("check");
  var tokenInput = $("token");
  var join = $("join"), queueBox = $("queue"), queueStatus = $("queue-status"), queueEta = $("queue-eta");
  $("title").textContent = "Product " + product;
  document.title = "Flash sale · Product " + product;

  // A login token may arrive in the fragment (#token=...), which is never sent to a server.
  var fromHash = /(?:^|[#&])token=([^&]+)/.exec(location.hash);
  if (fromHash) {
    localStorage.setItem("fg_token", decodeURIComponent(fromHash[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
  tokenInput.value = localStorage.getItem("fg_token") || "";
  tokenInput.addEventListener("change", function () { localStorage.setItem("fg_token", tokenInput.value.trim()); });

  var state = null, skew = null, busy = false, coolUntil = 0, confirming = false;
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
    queue_required: "Your turn in the queue has passed — join the queue again.",
    network: "Network trouble — check your connection and try again.",
    pending: "Your order is being confirmed — please don't buy again; the answer will show here.",
    not_won: "Your order did not go through — the unit went back on sale. You may try again."
  };

  function show(outcome, text) {
    var kind = outcome === "won" ? "won" : outcome === "rate_limited" || outcome === "pending" ? "wait" : outcome ? "lost" : "";
    message.textContent = text;
    message.className = "message " + kind;
    message.setAttribute("data-outcome", outcome || "");
  }

  function serverNow() { return Date.now() + (skew || 0); }

  function pad(n) { return n < 10 ? "0" + n : String(n); }

  function render() {
    renderButton();
    // A queued sale's buy button waits for the turn, whatever the clock says.
    if (queue && !queue.pass() && state && !state.ended) {
      button.disabled = true;
      button.textContent = "Wait for your turn";
    }
  }

  function renderButton() {
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
    button.disabled = busy || confirming || wait > 0;
    button.textContent = confirming ? "Confirming…" : busy ? "Working…" : wait > 0 ? "Buy now (" + wait + ")" : "Buy now";
  }

  window.addEventListener("flashgate:sale", function (e) {
    if (String(e.detail.product) !== String(product)) return;
    state = e.detail;
    // A cached script carries an older server time; the largest estimate is the closest.
    var estimate = state.server_time_ms - Date.now();
    skew = skew === null ? estimate : Math.max(skew, estimate);
    render();
    renderQueue();
  });

  // An image URL the page may load: https, or a file of this site's /static/.
  function imageUrl(value) {
    if (typeof value !== "string" || !value) return null;
    var url;
    try { url = new URL(value, location.href); } catch (e) { return null; }
    if (url.protocol === "https:") return url.href;
    if (url.origin === location.origin && url.pathname.indexOf("/static/") === 0) return url.href;
    return null;
  }

  // What is on sale, from /api/sale (fetched once; cached briefly, with an ETag).
  function describe(info) {
    if (typeof info.title === "string" && info.title) {
      $("title").textContent = info.title;
      document.title = "Flash sale · " + info.title;
    }
    if (typeof info.price === "string") $("price").textContent = info.price;
    var src = imageUrl(info.image);
    if (src) {
      var img = $("image");
      img.alt = $("title").textContent;
      img.onerror = function () { img.hidden = true; };
      img.setAttribute("src", src);
      img.hidden = false;
    }
    if (info.queue) startQueue(info.queue);
  }

  // A network failure is tried again (a queued sale needs its description to offer the queue);
  // a 404 is final: the product is not on sale, and the page says so at the buy.
  function loadSale(triesLeft) {
    fetch("/api/sale?product=" + encodeURIComponent(product), { credentials: "same-origin" })
      .then(function (r) {
        if (r.status === 404) return null;
        if (!r.ok) throw new Error("status " + r.status);
        return r.json();
      })
      .then(function (info) { if (info && String(info.product) === String(product)) describe(info); })
      .catch(function () { if (triesLeft > 0) setTimeout(function () { loadSale(triesLeft - 1); }, 2000); });
  }
  loadSale(10);

  // The waiting room (queue.js), for a sale whose /api/sale has `queue`.
  var queue = null, queueInfo = null;
  var queueText = {
    not_started: "The queue is not open yet — come back at the countdown.",
    login_required: "Please sign in to join the queue.",
    unknown_product: "This product has no queue.",
    rate_limited: "Too many tries — wait a moment.",
    network: "Network trouble — still trying."
  };

  function duration(s) {
    s = Math.max(0, Math.round(s));
    if (s < 60) return s + " s";
    var m = Math.floor(s / 60);
    return m < 60 ? m + " min " + pad(s % 60) + " s" : Math.floor(m / 60) + " h " + pad(m % 60) + " min";
  }

  function renderQueue() {
    if (!queue) return;
    var q = queue.state;
    var over = q.state === "sold_out" || q.state === "closed" || (state && state.ended);
    var admitted = q.state === "admitted" && !!queue.pass();
    var opensAt = queueInfo && typeof queueInfo.opens_at_ms === "number" ? queueInfo.opens_at_ms : 0;
    var text, eta = "";
    if (q.state === "sold_out") text = "Sold out — every unit has found a buyer.";
    else if (q.state === "closed" && q.expired) text = "Your turn passed without a buy.";
    else if (q.state === "closed" || (state && state.ended)) text = "The sale is over.";
    else if (admitted) {
      text = "It's your turn — buy now.";
      eta = "Your turn lasts " + duration((q.pass_until_ms - Date.now()) / 1000) + ".";
    } else if (q.state === "admitted") text = "Checking your turn…";
    else if (q.state === "waiting" && q.position !== null) {
      text = q.position === 0 ? "You are next." : q.position === 1 ? "1 person ahead of you." : q.position.toLocaleString() + " people ahead of you.";
      if (q.eta_s !== null) eta = "Estimated wait: about " + duration(q.eta_s) + ".";
    } else if (q.state === "waiting") text = "Finding your place…";
    else if (opensAt && serverNow() < opensAt) {
      text = "The queue opens in " + duration((opensAt - serverNow()) / 1000) + ".";
    } else text = "Join the queue to get a place.";
    if (q.outcome && queueText[q.outcome]) eta = queueText[q.outcome];
    else if (q.outcome && q.outcome !== "queue_required") eta = "Something went wrong — still trying.";
    if (queueStatus.textContent !== text) queueStatus.textContent = text;
    if (queueEta.textContent !== eta) queueEta.textContent = eta;
    queueBox.className = "queue" + (admitted ? " admitted" : over ? " over" : "");
    queueBox.setAttribute("data-state", q.state);
    var canJoin = q.state === "out" && !over && !(opensAt && serverNow() < opensAt);
    join.hidden = admitted || over || q.state !== "out";
    join.disabled = !canJoin;
    button.hidden = !join.hidden;
    // The pass ran out here: ask the edge where this place stands now.
    if (q.state === "admitted" && !admitted) queue.resume();
  }

  function startQueue(info) {
    if (queue) return;
    queueInfo = info;
    queueBox.hidden = false;
    queue = window.FlashgateQueue(product, authHeaders, function () { renderQueue(); render(); });
    join.addEventListener("click", function () {
      if (join.disabled) return;
      join.disabled = true;
      queue.join();
    });
    renderQueue();
    queue.resume();
  }

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

  // After `202 pending`: ask the status URL (only the edge's own route) until it knows.
  function confirm(url, waitMs) {
    confirming = true;
    render();
    setTimeout(function () {
      fetch(url, { headers: authHeaders(), credentials: "same-origin", cache: "no-store" })
        .then(function (r) {
          return r.json().catch(function () { return {}; }).then(function (body) {
            if (r.ok && (body.outcome === "won" || body.outcome === "not_won")) {
              confirming = false;
              if (body.outcome === "won" && queue) queue.stop();
              var text = messages[body.outcome];
              if (body.outcome === "won" && body.reservation) text += " Order " + body.reservation + ".";
              show(body.outcome, text);
              render();
              return;
            }
            var next = parseInt(body.poll_after_s || (r.headers.get("Retry-After")), 10) || 2;
            confirm(url, Math.min(next, 30) * 1000);
          });
        })
        .catch(function () { confirm(url, 4000); });
    }, waitMs);
  }

  function answer(outcome, response, body) {
    if (outcome === "pending") {
      show(outcome, messages.pending);
      var url = body && typeof body.status === "string" && body.status.indexOf("/api/buy/status?") === 0
        ? body.status : "/api/buy/status?product=" + encodeURIComponent(product);
      confirm(url, (parseInt(body && body.poll_after_s, 10) || 2) * 1000);
      return;
    }
    if (outcome === "duplicate" && body && body.holding === "pending" && typeof body.status === "string" &&
        body.status.indexOf("/api/buy/status?") === 0) {
      // This buyer holds a unit whose order is not confirmed yet: follow it as a pending buy.
      show("pending", messages.pending);
      confirm(body.status, (parseInt(body.poll_after_s, 10) || 2) * 1000);
      return;
    }
    if (outcome === "duplicate" && body && body.holding === "won") {
      show("duplicate", messages.duplicate + (body.reservation ? " Order " + body.reservation + "." : ""));
      return;
    }
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
        var turn = queue && queue.pass();
        if (turn) headers["X-Queue-Pass"] = turn;
        return fetch(path, { method: "POST", headers: headers, credentials: "same-origin" });
      })
      .then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (body) {
          var outcome = r.status === 202 && body.outcome === "pending" ? "pending" : r.ok ? "won" : (body.outcome || "error");
          if (queue && outcome === "queue_required") queue.forget();
          if (queue && (outcome === "won" || outcome === "duplicate" || outcome === "sold_out")) queue.stop();
          answer(outcome, r, body);
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
  setInterval(function () { render(); renderQueue(); }, 200);
})();
