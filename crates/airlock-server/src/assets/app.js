// Airlock review UI: follows a run's live stream, counts down approval expiries, notices queue
// changes, and asks before destructive buttons. Streamed text is inserted with textContent only:
// it comes from web pages and models and is never parsed as HTML.
"use strict";
(function () {
  var SVG = "http://www.w3.org/2000/svg";

  function words(ms) {
    var s = Math.max(0, Math.floor(ms / 1000));
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
    return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  }

  // Countdowns: data-left-ms is relative to when the page was rendered.
  var loaded = Date.now();
  function tick() {
    document.querySelectorAll("[data-left-ms]").forEach(function (el) {
      var left = Number(el.getAttribute("data-left-ms")) - (Date.now() - loaded);
      el.textContent = left > 0 ? "expires in " + words(left) : "expired — the run was told no";
      if (left <= 0) el.classList.add("t-bad");
    });
  }
  tick();
  setInterval(tick, 1000);

  // Confirmation for forms that stop runs or remove people.
  document.querySelectorAll("form[data-confirm]").forEach(function (f) {
    f.addEventListener("submit", function (e) {
      if (!window.confirm(f.getAttribute("data-confirm"))) e.preventDefault();
    });
  });

  // The approval queue: tell the reviewer when requests arrive or leave, without reloading
  // under their fingers while they type a reason.
  var queue = document.getElementById("queue");
  if (queue) {
    var known = queue.getAttribute("data-ids") || "";
    setInterval(function () {
      fetch("/api/approvals", { credentials: "same-origin", headers: { accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (list) {
          if (!list) return;
          var ids = list.map(function (r) { return r.id; }).sort().join(",");
          if (ids !== known) document.getElementById("queue-changed").hidden = false;
        })
        .catch(function () {});
    }, 3000);
  }

  // The live run page.
  var timeline = document.getElementById("timeline");
  if (timeline && timeline.getAttribute("data-stream")) {
    timeline.scrollTop = timeline.scrollHeight;
    var figure = document.querySelector("#live-shot figure");
    var es = new EventSource(timeline.getAttribute("data-stream"));
    es.addEventListener("item", function (e) {
      var it = JSON.parse(e.data);
      var li = document.createElement("li");
      li.className = "t-" + it.tone;
      var st = document.createElement("span");
      st.className = "st";
      st.textContent = it.step == null ? "" : "#" + it.step;
      var tx = document.createElement("span");
      tx.className = "tx";
      tx.textContent = it.text;
      li.appendChild(st);
      li.appendChild(tx);
      timeline.appendChild(li);
      timeline.scrollTop = timeline.scrollHeight;
      var step = document.getElementById("live-step");
      if (step && it.step != null && Number(step.textContent) < it.step) step.textContent = String(it.step);
      var wait = document.getElementById("live-wait");
      if (wait && it.kind === "approval_requested") wait.hidden = false;
      if (wait && it.kind === "approval") wait.hidden = true;
    });
    es.addEventListener("shot", function (e) {
      if (!figure) return;
      var s = JSON.parse(e.data);
      var img = figure.querySelector("image");
      if (img) img.setAttribute("href", s.src);
      figure.querySelectorAll("g.marker").forEach(function (g) { g.remove(); });
      var cap = figure.querySelector("figcaption .cap");
      if (cap) cap.textContent = s.caption;
      var full = figure.querySelector("figcaption a");
      if (full) full.setAttribute("href", s.src);
    });
    es.addEventListener("marker", function (e) {
      var svg = figure && figure.querySelector("svg");
      if (!svg) return;
      var m = JSON.parse(e.data);
      var g = document.createElementNS(SVG, "g");
      g.setAttribute("class", "marker");
      var r = 26, t = 38, x = m.x, y = m.y;
      var ticks = "M" + (x - t) + " " + y + "H" + (x - r) + "M" + (x + r) + " " + y + "H" + (x + t) +
        "M" + x + " " + (y - t) + "V" + (y - r) + "M" + x + " " + (y + r) + "V" + (y + t);
      ["mk-halo", "mk-ring"].forEach(function (cls) {
        var path = document.createElementNS(SVG, "path");
        path.setAttribute("class", cls);
        path.setAttribute("d", ticks);
        g.appendChild(path);
        var circle = document.createElementNS(SVG, "circle");
        circle.setAttribute("class", cls);
        circle.setAttribute("cx", String(x));
        circle.setAttribute("cy", String(y));
        circle.setAttribute("r", String(r));
        g.appendChild(circle);
      });
      var dot = document.createElementNS(SVG, "circle");
      dot.setAttribute("class", "mk-dot");
      dot.setAttribute("cx", String(x));
      dot.setAttribute("cy", String(y));
      dot.setAttribute("r", "2.5");
      g.appendChild(dot);
      svg.appendChild(g);
    });
    es.addEventListener("end", function () {
      es.close();
      setTimeout(function () { window.location.reload(); }, 800);
    });
  }
})();
