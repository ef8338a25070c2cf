// Asks the api Worker (through web's service binding) whether it is up.
const status = document.getElementById("status");
fetch("/api/status")
  .then((r) => r.json())
  .then((s) => { status.textContent = `API ${s.ok ? "up" : "down"}.`; })
  .catch(() => { status.textContent = "API unreachable."; });
//# sourceMappingURL=app.js.map
