// The waiting room of a queued sale, for the sale page (app.js draws it). join() takes a place
// with POST /api/queue?product=ID; the answer's ticket is kept in sessionStorage per product, so
// a reload keeps the place, and GET /api/queue with X-Queue-Ticket is polled every
// poll_after_s. Each answer goes to onChange as {state, position, eta_s, pass, pass_until_ms,
// expired, outcome}: state is "out" (no place yet), "waiting", "admitted", "sold_out" or
// "closed" (the sale is over, or with `expired` this visitor's turn passed unused); outcome is
// why the last call was refused ("not_started", "login_required", ...), else null. Once admitted, pass()
// is the X-Queue-Pass value for the buy. Polling stops at closed and stop().
(function () {
  "use strict";
  var MIN_POLL_S = 1, MAX_POLL_S = 60;

  function key(product) { return "fg_queue_" + product; }

  window.FlashgateQueue = function (product, headers, onChange) {
    var url = "/api/queue?product=" + encodeURIComponent(product);
    var ticket = null;
    try { ticket = sessionStorage.getItem(key(product)); } catch (e) { ticket = null; }
    var q = { state: ticket ? "waiting" : "out", position: null, eta_s: null, pass: null, pass_until_ms: 0, expired: false, outcome: null };
    var timer = null, stopped = false, busy = false;

    function keep(t) {
      ticket = t || null;
      try {
        if (ticket) sessionStorage.setItem(key(product), ticket);
        else sessionStorage.removeItem(key(product));
      } catch (e) { /* private mode: the place lasts as long as the page */ }
    }

    function schedule(seconds) {
      clearTimeout(timer);
      if (stopped || !ticket) return;
      var s = Math.min(MAX_POLL_S, Math.max(MIN_POLL_S, Number(seconds) || MIN_POLL_S));
      timer = setTimeout(poll, s * 1000);
    }

    // One answer of /api/queue (status, parsed body) into q.
    function take(status, body) {
      q.outcome = null;
      if (status === 200 && body && typeof body.state === "string") {
        if (typeof body.ticket === "string" && body.ticket) keep(body.ticket);
        q.state = body.state;
        q.position = typeof body.position === "number" ? body.position : null;
        q.eta_s = typeof body.eta_s === "number" ? body.eta_s : null;
        q.expired = body.expired === true;
        if (body.state === "admitted" && typeof body.pass === "string") {
          q.pass = body.pass;
          q.pass_until_ms = Date.now() + (Number(body.pass_expires_s) || 0) * 1000;
        } else if (body.state !== "admitted") {
          q.pass = null;
        }
        // Sold out keeps polling (slowly, as poll_after_s says): a unit that comes back puts
        // the waiting back in line. Closed is final.
        if (body.state === "closed") {
          stopped = true;
          clearTimeout(timer);
        } else {
          schedule(body.poll_after_s);
        }
      } else {
        var outcome = (body && body.outcome) || (status ? "error" : "network");
        if (outcome === "queue_required") {
          // The ticket is not (or no longer) good: the place is gone, join again.
          keep(null);
          q.state = "out";
          q.pass = null;
        } else if (ticket && outcome !== "login_required") {
          // Keep the place through a passing failure; try again later.
          schedule(5);
        }
        q.outcome = outcome;
      }
      onChange(q);
    }

    function call(method, extra) {
      var h = headers();
      for (var k in extra) h[k] = extra[k];
      busy = true;
      return fetch(url, { method: method, headers: h, credentials: "same-origin", cache: "no-store" })
        .then(function (r) {
          return r.json().catch(function () { return null; }).then(function (body) { take(r.status, body); });
        }, function () { take(0, null); })
        .then(function () { busy = false; });
    }

    function poll() {
      if (stopped || !ticket || busy) return;
      call("GET", { "X-Queue-Ticket": ticket });
    }

    return {
      state: q,
      /** Take a place (or get the one this user has). */
      join: function () { if (!busy) return call("POST", {}); return Promise.resolve(); },
      /** Poll now if a place is held (a reload resumes this way). */
      resume: function () { if (ticket) poll(); },
      /** The X-Queue-Pass value, while admitted and unexpired. */
      pass: function () { return q.state === "admitted" && Date.now() < q.pass_until_ms ? q.pass : null; },
      /** The place was refused at the buy (queue_required): forget it. */
      forget: function () { keep(null); q.state = "out"; q.pass = null; clearTimeout(timer); onChange(q); },
      /** Stop polling (the buy is done). */
      stop: function () { stopped = true; clearTimeout(timer); }
    };
  };
})();
