/* The nurse console's small behaviours (no inline script: the CSP allows none).
   - time in state and the wrap-up countdown tick every second; they count on the server's clock
     (each element carries the server's `now` when it was rendered), not the browser's;
   - when the call panel changes (a call pops, the file shows, an error summary), focus moves to what
     appeared (its [data-focus] element), so a keyboard or screen-reader user lands on it. */
(function () {
  "use strict";

  function skew(el) {
    if (el.dataset.skew === undefined) {
      var server = Date.parse(el.dataset.now);
      el.dataset.skew = String(isNaN(server) ? 0 : server - Date.now());
    }
    return Number(el.dataset.skew);
  }

  function minutesSeconds(ms) {
    var s = Math.max(0, Math.round(ms / 1000));
    var m = Math.floor(s / 60);
    var r = s % 60;
    return m + ":" + (r < 10 ? "0" : "") + r;
  }

  function tick() {
    document.querySelectorAll(".elapsed[data-since]").forEach(function (el) {
      var since = Date.parse(el.dataset.since);
      if (!isNaN(since)) {
        el.textContent = "(" + minutesSeconds(Date.now() + skew(el) - since) + ")";
      }
    });
    document.querySelectorAll(".countdown[data-deadline]").forEach(function (el) {
      var deadline = Date.parse(el.dataset.deadline);
      if (!isNaN(deadline)) {
        el.textContent = minutesSeconds(deadline - (Date.now() + skew(el)));
      }
    });
  }

  function focusNew(root) {
    var target = root.querySelector("[data-focus]");
    if (target) {
      target.focus();
    } else if (!document.activeElement || document.activeElement === document.body) {
      // what had the focus went with the old panel (her call is over): back to her state, not lost
      var state = document.getElementById("state-title");
      if (state) {
        state.focus();
      }
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    tick();
    window.setInterval(tick, 1000);
    var panel = document.getElementById("console-call");
    if (panel && window.MutationObserver) {
      new MutationObserver(function () {
        tick();
        focusNew(panel);
      }).observe(panel, { childList: true });
    }
    ["console-state", "console-line"].forEach(function (id) {
      var el = document.getElementById(id);
      if (el && window.MutationObserver) {
        new MutationObserver(tick).observe(el, { childList: true });
      }
    });
  });
})();
