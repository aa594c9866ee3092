// Alonzo console: the little behaviour the server-rendered pages need. Fragments fetched for
// refresh are rendered (and escaped) by the server; everything else this script shows is set
// as text, never as markup. Served from the console itself (CSP: script-src 'self').
"use strict";
(function () {
  const body = document.body;
  const csrf = body.dataset.csrf || "";
  const prefix = body.dataset.prefix || "/_alonzo/console";

  function toLogin() {
    window.location.href = prefix + "/login?next=" + encodeURIComponent(window.location.pathname + window.location.search);
  }

  async function get(url) {
    const res = await fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html, application/json" } });
    if (res.status === 401) { toLogin(); throw new Error("logged out"); }
    if (!res.ok) throw new Error("HTTP " + res.status);
    return res;
  }

  // Panels that refresh themselves: <div data-refresh="url" data-interval="ms">.
  const refreshers = [];
  document.querySelectorAll("[data-refresh]").forEach(function (el) {
    const refresh = async function () {
      try {
        const res = await get(el.dataset.refresh);
        el.innerHTML = await res.text();
        el.classList.remove("stale");
      } catch (e) { el.classList.add("stale"); }
    };
    refreshers.push(refresh);
    const every = parseInt(el.dataset.interval || "5000", 10);
    setInterval(function () { if (!document.hidden) refresh(); }, every);
  });

  // Log viewers with live tail.
  const viewers = [];
  document.querySelectorAll(".log-viewer").forEach(function (viewer) {
    const out = viewer.querySelector(".log-events");
    const toggle = viewer.querySelector(".live-tail");
    const seen = new Set();
    out.querySelectorAll(".ev").forEach(function (ev) { seen.add(ev.dataset.id); });
    const poll = async function () {
      const params = new URLSearchParams({ group: viewer.dataset.group, filter: viewer.dataset.filter || "", after: viewer.dataset.after || "0" });
      try {
        const res = await get(prefix + "/api/logs?" + params.toString());
        const data = await res.json();
        const atBottom = out.scrollHeight - out.scrollTop - out.clientHeight < 40;
        let added = 0;
        data.events.forEach(function (e) {
          if (seen.has(e.id)) return;
          seen.add(e.id);
          const line = document.createElement("div");
          line.className = "ev new";
          line.dataset.id = e.id;
          const ts = document.createElement("span");
          ts.className = "ts";
          ts.textContent = e.time;
          const msg = document.createElement("span");
          msg.className = "msg";
          msg.textContent = e.message;
          line.append(ts, " ", msg);
          out.append(line);
          viewer.dataset.after = String(Math.max(parseInt(viewer.dataset.after || "0", 10), e.timestamp));
          added++;
        });
        if (added > 0) {
          const empty = out.querySelector(".empty");
          if (empty) empty.remove();
          while (out.children.length > 2000) out.firstElementChild.remove();
          if (atBottom) out.scrollTop = out.scrollHeight;
        }
        viewer.classList.remove("stale");
      } catch (e) { viewer.classList.add("stale"); }
    };
    viewers.push(poll);
    out.scrollTop = out.scrollHeight;
    setInterval(function () { if (toggle.checked && !document.hidden) poll(); }, 1500);
  });

  // Invoking a function from its page.
  const form = document.getElementById("invoke-form");
  if (form) {
    const result = document.getElementById("invoke-result");
    const log = document.getElementById("invoke-log");
    const status = document.getElementById("invoke-status");
    const button = document.getElementById("invoke-button");
    form.addEventListener("submit", async function (event) {
      event.preventDefault();
      const payload = document.getElementById("invoke-payload").value;
      try { JSON.parse(payload); } catch (e) {
        status.className = "bad";
        status.textContent = "The event is not valid JSON: " + e.message;
        return;
      }
      button.disabled = true;
      status.className = "muted";
      status.textContent = "Invoking…";
      const started = performance.now();
      try {
        const res = await fetch(prefix + "/api/invoke", {
          method: "POST",
          credentials: "same-origin",
          headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
          body: JSON.stringify({ function: form.dataset.function, qualifier: document.getElementById("invoke-qualifier").value, payload: payload }),
        });
        if (res.status === 401) { toLogin(); return; }
        const data = await res.json();
        const ms = Math.round(performance.now() - started);
        if (!res.ok) {
          status.className = "bad";
          status.textContent = (data.__type || "Error") + " (HTTP " + res.status + ")";
          result.textContent = data.message || data.Message || JSON.stringify(data);
          log.textContent = "";
          return;
        }
        let shown = data.Payload;
        try { shown = JSON.stringify(JSON.parse(data.Payload), null, 2); } catch (e) { /* not JSON: as is */ }
        result.textContent = shown;
        log.textContent = data.LogTail;
        if (data.FunctionError) {
          status.className = "bad";
          status.textContent = "Function error (" + data.FunctionError + ") · version " + data.ExecutedVersion + " · " + ms + " ms";
        } else {
          status.className = "good";
          status.textContent = "Succeeded · version " + data.ExecutedVersion + " · " + ms + " ms";
        }
        viewers.forEach(function (poll) { poll(); });
        refreshers.forEach(function (refresh) { refresh(); });
      } catch (e) {
        status.className = "bad";
        status.textContent = "The request failed: " + e.message;
      } finally {
        button.disabled = false;
      }
    });
  }
})();
