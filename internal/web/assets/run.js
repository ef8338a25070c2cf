// The run page's live part: while the run goes on, its steps' output and
// status changes are appended as the bot streams them
// (/runs/{id}/events, internal/web/events.go). Text is added as text,
// never as HTML.
(function () {
  "use strict";
  var run = document.getElementById("run");
  if (!run || run.dataset.live !== "true") {
    return;
  }
  var steps = document.getElementById("steps");

  function setStatus(el, status) {
    el.className = el.className.replace(/\bstatus-\S+/g, "").trim() + " status-" + status;
  }

  // step returns the step's <details>, made if the page did not have it
  // yet (it was read before the run planned its steps).
  function step(name) {
    var el = document.getElementById("step-" + name);
    if (el) {
      return el;
    }
    el = document.createElement("details");
    el.id = "step-" + name;
    el.className = "step status-pending";
    var summary = document.createElement("summary");
    var label = document.createElement("span");
    label.className = "name";
    label.textContent = name;
    var badge = document.createElement("span");
    badge.className = "badge status-pending";
    badge.textContent = "pending";
    var when = document.createElement("span");
    when.className = "when";
    summary.append(label, " ", badge, " ", when);
    var pre = document.createElement("pre");
    pre.className = "log";
    pre.id = "log-" + name;
    el.append(summary, pre);
    steps.append(el);
    return el;
  }

  // Relative, like every link of the pages: they work under a proxy that
  // serves the bot below a path.
  var source = new EventSource(run.dataset.run + "/events?after=" + run.dataset.lastId);
  source.addEventListener("log", function (e) {
    var c = JSON.parse(e.data);
    step(c.step);
    document.getElementById("log-" + c.step).append(document.createTextNode(c.text));
  });
  source.addEventListener("step", function (e) {
    var s = JSON.parse(e.data);
    var el = step(s.name);
    setStatus(el, s.status);
    var badge = el.querySelector(".badge");
    badge.textContent = s.status;
    setStatus(badge, s.status);
    el.querySelector(".when").textContent = s.duration || "";
    if (s.status === "running" || s.status === "failed") {
      el.open = true;
    }
    if (s.error && !el.querySelector(".error")) {
      var p = document.createElement("p");
      p.className = "error";
      p.textContent = s.error;
      el.querySelector("summary").after(p);
    }
    var bar = document.querySelector("#bar-" + CSS.escape(s.name) + " .bar");
    if (bar) {
      setStatus(bar, s.status);
    }
  });
  source.addEventListener("end", function (e) {
    var r = JSON.parse(e.data);
    var status = document.getElementById("run-status");
    status.textContent = r.status;
    setStatus(status, r.status);
    setStatus(run, r.status);
    document.getElementById("run-duration").textContent = r.duration;
    run.dataset.live = "false";
    source.close();
  });
})();
