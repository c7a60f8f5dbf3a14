// The studio's little script. Every page works without it; it adds:
// live send progress, a collect's progress, and the scroll position kept
// across the form posts that edit the week (each answers with a redirect to the page).
"use strict";

(function () {
  const KEY = "studio-scroll:" + location.pathname;

  document.addEventListener("submit", function (event) {
    const form = event.target;
    if (form.method === "post" && form.action.indexOf("/edit") !== -1) {
      sessionStorage.setItem(KEY, String(window.scrollY));
    }
  });

  window.addEventListener("DOMContentLoaded", function () {
    const saved = sessionStorage.getItem(KEY);
    if (saved !== null && !location.hash) {
      sessionStorage.removeItem(KEY);
      window.scrollTo(0, Number(saved));
    }

    const box = document.querySelector("[data-progress]");
    if (box) watchProgress(box);

    const job = document.querySelector("[data-collect]");
    if (job) watchCollect(job);
  });

  // Typing not yet saved: a finished collect must not reload the page over it.
  let dirty = false;
  document.addEventListener("input", function () { dirty = true; });

  function watchCollect(job) {
    const tick = function () {
      fetch(job.dataset.collect, { credentials: "same-origin", cache: "no-store" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (state) {
          if (!state) return;
          if (state.running) {
            job.textContent = "Collecting… " + state.summary;
            setTimeout(tick, 2000);
          } else if (!dirty) {
            location.reload();
          } else {
            job.textContent = (state.error ? "Collect failed: " + state.error
              : "Collected: " + state.summary) + ". Save your changes, then reload to see the new stories.";
          }
        })
        .catch(function () { setTimeout(tick, 5000); });
    };
    setTimeout(tick, 2000);
  }

  function watchProgress(box) {
    const url = box.dataset.progress;
    const bar = box.querySelector("progress");
    const set = function (name, value) {
      const el = box.querySelector('[data-field="' + name + '"]');
      if (el) el.textContent = value;
    };
    let wasRunning = box.dataset.running === "1";
    const tick = function () {
      fetch(url, { credentials: "same-origin", cache: "no-store" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (p) {
          if (!p) return;
          bar.value = p.percent;
          bar.textContent = p.percent + "%";
          set("percent", p.percent);
          set("sent", p.sent);
          set("failed", p.failed);
          set("pending", p.pending);
          set("rate", p.rate.toFixed(1));
          set("eta", p.eta_seconds === null ? "–" : p.eta_seconds + " s");
          if (p.running) {
            set("state", "A send of " + p.week + " is running. Another cannot start until it ends.");
          } else if (p.error) {
            set("state", "Stopped: " + p.error);
          } else if (p.summary) {
            set("state", "Finished: " + p.summary + ".");
          } else if (p.sent || p.failed) {
            set("state", "Not running.");
          }
          box.dataset.running = p.running ? "1" : "0";
          if (p.running || !wasRunning) {
            wasRunning = wasRunning || p.running;
            if (p.running) setTimeout(tick, 1000);
          }
        })
        .catch(function () { setTimeout(tick, 3000); });
    };
    tick();
  }
})();
