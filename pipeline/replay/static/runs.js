"use strict";
// Runs list: needs a list token ("spanline replay token '*'") in the page URL.
(function () {
  const token = new URLSearchParams(location.search).get("token") || "";
  const body = document.querySelector("#runs tbody");
  const message = document.getElementById("message");

  function fmtUsd(value) { return value == null ? "–" : "$" + Number(value).toFixed(4); }
  function fmtDuration(seconds) { return seconds == null ? "–" : Number(seconds).toFixed(1) + " s"; }
  function cell(text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  async function load() {
    const form = new FormData(document.getElementById("filters"));
    const params = new URLSearchParams({ token });
    for (const [key, value] of form) if (value) params.set(key, value);
    message.textContent = "loading…";
    const response = await fetch("/api/runs?" + params.toString());
    const data = await response.json();
    if (!response.ok) { message.textContent = data.message || response.statusText; return; }
    body.replaceChildren();
    for (const run of data.runs) {
      const tr = document.createElement("tr");
      tr.dataset.runId = run.run_id;
      tr.dataset.status = run.status;
      const link = document.createElement("a");
      link.href = "/runs/" + encodeURIComponent(run.run_id) + "?token=" + encodeURIComponent(run.token);
      link.textContent = run.run_id;
      const first = document.createElement("td");
      first.appendChild(link);
      tr.append(first, cell(run.agent), cell(run.status, "status " + run.status), cell(String(run.step_count ?? "–")),
        cell(fmtDuration(run.elapsed_s)), cell(((run.tokens_in || 0) + (run.tokens_out || 0)).toLocaleString()),
        cell(fmtUsd(run.cost_usd)), cell(String(run.error_count ?? 0), run.error_count ? "errors" : ""));
      body.appendChild(tr);
    }
    message.textContent = data.runs.length + " runs";
  }

  document.getElementById("filters").addEventListener("submit", (event) => { event.preventDefault(); load(); });
  load();
})();
