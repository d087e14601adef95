// errand dashboard: the little that needs a script. Buttons with data-post
// call the /v1 API (with the CSRF token from the page), then the page's
// [data-live] parts are re-read and swapped in; a page with [data-poll]
// refreshes them every few seconds while the tab is visible; the jobs
// page runs bulk actions on selected rows or on the whole filter; the login
// form trades a token for a session.
"use strict";
(function () {
  const POLL_MS = 3000;
  const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || "";
  const flash = (text, isError) => {
    const el = document.getElementById("flash");
    if (!el) return;
    el.textContent = text;
    el.className = isError ? "error" : "";
  };

  // Re-reads this page and swaps in each [data-live] part (matched by id),
  // keeping keyboard focus on the button with the same data-focus-key
  // (`key`: the clicked button's, since disabling it dropped its focus).
  async function refresh(key) {
    const res = await fetch(location.href, { headers: { Accept: "text/html" }, credentials: "same-origin" });
    if (!res.ok) throw new Error(res.status + " " + res.statusText);
    const doc = new DOMParser().parseFromString(await res.text(), "text/html");
    const focusKey = key || document.activeElement?.dataset?.focusKey;
    for (const part of document.querySelectorAll("[data-live][id]")) {
      const fresh = doc.getElementById(part.id);
      if (fresh) part.replaceWith(document.adoptNode(fresh));
    }
    if (focusKey) {
      document.querySelector('[data-focus-key="' + CSS.escape(focusKey) + '"]')?.focus();
    }
  }

  // Reads an API error (problem+json) into one sentence.
  async function problem(res) {
    try {
      const body = await res.json();
      return body.detail || body.title || res.statusText;
    } catch (_) {
      return res.status + " " + res.statusText;
    }
  }

  document.addEventListener("click", async (e) => {
    const button = e.target.closest("button[data-post]");
    if (!button) return;
    button.disabled = true;
    try {
      const headers = {};
      if (csrf()) headers["X-CSRF-Token"] = csrf();
      const init = { method: "POST", headers, credentials: "same-origin" };
      if (button.dataset.body) {
        headers["Content-Type"] = "application/json";
        init.body = button.dataset.body;
      }
      const res = await fetch(button.dataset.post, init);
      if (!res.ok) {
        flash(await problem(res), true);
        button.disabled = false;
        return;
      }
      // A bulk operation (202) is followed until it ends.
      if (res.status === 202) {
        let op = await res.json();
        while (op.state === "running") {
          await new Promise((r) => setTimeout(r, 300));
          op = await (await fetch("/v1/jobs/bulk/" + op.id, { credentials: "same-origin" })).json();
        }
      }
      flash(button.textContent.trim() + ": done");
      await refresh(button.dataset.focusKey);
    } catch (err) {
      flash(String(err), true);
      button.disabled = false;
    }
  });

  // Live update: only while the tab is visible.
  if (document.querySelector("[data-poll]")) {
    let timer = null;
    const tick = async () => {
      timer = null;
      if (document.hidden) return;
      try { await refresh(); } catch (err) { flash("live update: " + err, true); }
      if (!document.hidden) timer = setTimeout(tick, POLL_MS);
    };
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && timer === null) tick();
    });
    timer = setTimeout(tick, POLL_MS);
  }

  // The jobs page's selection and bulk actions: confirmed, started with
  // POST /v1/jobs/bulk, then followed until the operation ends.
  const counter = document.querySelector("[data-selected]");
  if (counter) {
    const boxes = () => [...document.querySelectorAll('input[name="select"]')];
    const chosen = () => boxes().filter((b) => b.checked).map((b) => Number(b.value));
    const update = () => { counter.textContent = chosen().length + " selected"; };
    document.addEventListener("change", (e) => {
      if (e.target.matches("[data-select-all]")) boxes().forEach((b) => { b.checked = e.target.checked; });
      update();
    });
    const bar = document.getElementById("bulk");
    const progress = bar.querySelector("[data-bulk-progress]");
    const show = (op) => {
      progress.textContent = op.action + " #" + op.id + ": " + op.state + ", " + op.matched +
        " matched, " + op.changed + " changed" + (op.error ? " (" + op.error + ")" : "");
    };
    bar.addEventListener("click", async (e) => {
      const button = e.target.closest("button[data-bulk]");
      if (!button) return;
      const action = bar.querySelector("[data-bulk-action]").value;
      const body = { action };
      let what;
      if (button.dataset.bulk === "selected") {
        body.ids = chosen();
        if (body.ids.length === 0) { flash("select jobs first", true); return; }
        what = body.ids.length + " selected job(s)";
      } else {
        body.filter = JSON.parse(bar.dataset.filter);
        what = "every job matching the filter (" + bar.dataset.count + " jobs)";
      }
      if (!window.confirm(action.replace("_", " ") + " " + what + "?")) return;
      const headers = { "Content-Type": "application/json" };
      if (csrf()) headers["X-CSRF-Token"] = csrf();
      const res = await fetch("/v1/jobs/bulk", {
        method: "POST", headers, credentials: "same-origin", body: JSON.stringify(body),
      });
      if (!res.ok) { flash(await problem(res), true); return; }
      let op = await res.json();
      show(op);
      while (op.state === "running") {
        await new Promise((r) => setTimeout(r, 1000));
        const poll = await fetch("/v1/jobs/bulk/" + op.id, { credentials: "same-origin" });
        if (!poll.ok) { flash(await problem(poll), true); return; }
        op = await poll.json();
        show(op);
      }
      flash(action.replace("_", " ") + ": " + op.changed + " job(s) changed", op.state !== "done");
    });
  }

  const login = document.getElementById("login");
  if (login) {
    login.addEventListener("submit", async (e) => {
      e.preventDefault();
      const token = login.querySelector("#token").value.trim();
      const res = await fetch("/v1/session", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        credentials: "same-origin",
        body: JSON.stringify({ token }),
      });
      if (res.ok) location.assign("/");
      else flash(await problem(res), true);
    });
  }
})();
