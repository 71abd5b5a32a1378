// The sale page: polls /sale/{product}/button.js (cacheable for 1 s), counts down to the
// server's clock, enables the button when the sale opens, and shows every outcome.
(function () {
  "use strict";
  var params = new URLSearchParams(location.search);
  var product = params.get("product") || "42";
  var $ = function (id) { return document.getElementById(id); };
  var button = $("buy"), message = $("message"), countdown = $("countdown"), tokenInput = $("token");
  $("product-id").textContent = product;
  tokenInput.value = localStorage.getItem("fg_token") || "";
  tokenInput.addEventListener("change", function () { localStorage.setItem("fg_token", tokenInput.value.trim()); });

  var state = null, skew = 0, cooling = false;
  var messages = {
    won: "You got one! Finish your order.",
    duplicate: "You already hold one.",
    sold_out: "Sold out.",
    not_started: "Not open yet.",
    ended: "The sale is over.",
    login_required: "Please sign in first.",
    blacklisted: "This account cannot buy.",
    bad_sale_path: "The sale link is stale; reload the page.",
    captcha_required: "Please solve the check first.",
    unknown_product: "No such product.",
    store_unavailable: "Busy — try again in a moment.",
    origin_unavailable: "Busy — try again in a moment."
  };

  function show(text, kind) { message.textContent = text; message.className = "message " + (kind || ""); }

  function render() {
    if (!state) return;
    var now = Date.now() + skew;
    if (state.ended) { countdown.textContent = "The sale is over."; button.disabled = true; return; }
    if (!state.active) {
      var left = Math.max(0, Math.ceil((state.starts_at_ms - now) / 1000));
      var h = Math.floor(left / 3600), m = Math.floor(left % 3600 / 60), s = left % 60;
      countdown.textContent = "Opens in " + (h ? h + "h " : "") + (h || m ? m + "m " : "") + s + "s";
      button.disabled = true;
      return;
    }
    countdown.textContent = "On sale now";
    button.disabled = cooling;
  }

  window.addEventListener("flashgate:sale", function (e) {
    if (String(e.detail.product) !== String(product)) return;
    state = e.detail;
    skew = state.server_time_ms - Date.now();
    render();
  });

  function poll() {
    var s = document.createElement("script");
    s.src = "/sale/" + encodeURIComponent(product) + "/button.js?t=" + Math.floor(Date.now() / 1000);
    s.onload = s.onerror = function () { s.remove(); };
    document.head.appendChild(s);
  }

  button.addEventListener("click", function () {
    if (!state || !state.buy_path || cooling) return;
    cooling = true; render();
    setTimeout(function () { cooling = false; render(); }, 5000);
    var headers = {};
    var token = tokenInput.value.trim();
    if (token) headers["Authorization"] = "Bearer " + token;
    show("…");
    fetch(state.buy_path, { method: "POST", headers: headers, credentials: "same-origin" })
      .then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (body) {
          var outcome = r.ok ? "won" : (body.outcome || "error");
          if (outcome === "rate_limited") {
            show("Too many tries — retry in " + (r.headers.get("Retry-After") || "a few") + " s.", "lost");
          } else {
            show(messages[outcome] || ("Something went wrong (" + r.status + ")."), outcome === "won" ? "won" : "lost");
          }
        });
      })
      .catch(function () { show("Network error — try again.", "lost"); });
  });

  poll();
  setInterval(poll, 1000);
  setInterval(render, 250);
})();
