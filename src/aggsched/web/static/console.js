// aggsched console: progressive enhancement only; every page works without it.
(function () {
  "use strict";

  function fetchFragment(url) {
    return fetch(url, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
      .then(function (response) {
        if (response.redirected && new URL(response.url).pathname === "/login") {
          window.location.reload(); // the session ended: the page will ask to sign in
          throw new Error("signed out");
        }
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.text();
      });
  }

  // Live validation of a schedule's expression by the server's parser.
  function cronCheck() {
    var input = document.getElementById("time_expression");
    var zone = document.getElementById("time_zone");
    var out = document.getElementById("cron-feedback");
    if (!input || !out) { return; }
    var timer = null;
    var asked = 0;
    function check() {
      var text = input.value;
      if (!text.trim()) { out.innerHTML = ""; input.removeAttribute("aria-invalid"); return; }
      var ticket = ++asked;
      var params = new URLSearchParams({ time_expression: text, time_zone: zone ? zone.value : "UTC" });
      fetchFragment("/cron/check?" + params.toString()).then(function (html) {
        if (ticket !== asked) { return; } // an older answer arriving late
        out.innerHTML = html;
        var bad = out.querySelector("[data-valid='false']");
        if (bad) { input.setAttribute("aria-invalid", "true"); } else { input.removeAttribute("aria-invalid"); }
      }).catch(function () { /* keep the last answer; the server checks on submit anyway */ });
    }
    function later() { clearTimeout(timer); timer = setTimeout(check, 250); }
    input.addEventListener("input", later);
    if (zone) { zone.addEventListener("change", later); zone.addEventListener("input", later); }
  }

  // A running batch's panel is fetched again every second until the batch ends.
  function livePanel() {
    var panel = document.getElementById("batch-panel");
    if (!panel || panel.getAttribute("data-live") !== "true") { return; }
    var url = panel.getAttribute("data-panel-url");
    function poll() {
      fetchFragment(url).then(function (html) {
        var current = document.getElementById("batch-panel");
        var open = Array.prototype.map.call(current.querySelectorAll("details[open]"), function (d) { return d.id; });
        var holder = document.createElement("div");
        holder.innerHTML = html;
        var fresh = holder.querySelector("#batch-panel");
        if (!fresh) { return; }
        open.forEach(function (id) { var d = id && fresh.querySelector("#" + CSS.escape(id)); if (d) { d.open = true; } });
        current.replaceWith(fresh);
        bindConfirms(fresh);
        if (fresh.getAttribute("data-live") === "true") { setTimeout(poll, 1000); }
      }).catch(function () { setTimeout(poll, 3000); });
    }
    setTimeout(poll, 1000);
  }

  // Forms that destroy something ask first.
  function bindConfirms(root) {
    Array.prototype.forEach.call(root.querySelectorAll("form[data-confirm]"), function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    cronCheck();
    livePanel();
    bindConfirms(document);
  });
})();
