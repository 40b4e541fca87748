"use strict";
// Run page: KPI cards from the API, then spans and frames over the replay WebSocket.
(function () {
  const token = new URLSearchParams(location.search).get("token") || "";
  const runId = decodeURIComponent(location.pathname.split("/")[2] || "");
  const HEADER_SIZE = 64;
  const MAGIC = "SLF1";
  const CONTENT_TYPES = ["application/octet-stream", "image/png", "image/jpeg", "image/webp", "text/html", "message/rfc822", "text/plain"];
  const TOOL_KINDS = new Set(["tool", "browser", "inbox"]);

  const $ = (id) => document.getElementById(id);
  const viewport = $("viewport");
  const timelineBody = document.querySelector("#timeline tbody");
  const state = {
    spans: new Map(), frames: [], filter: "all", generation: 0, playing: false, live: false,
    startNs: null, endNs: null, currentStep: null, maxStep: 1, objectUrl: null, summaryTimer: null,
  };
  let socket = null;
  let frameChain = Promise.resolve();

  $("run-id").textContent = runId;
  document.title = "Spanline run " + runId;

  // Formatting

  function fmtUsd(value) { return value == null ? "–" : "$" + Number(value).toFixed(4); }
  function fmtSeconds(value) { return value == null ? "–" : Number(value).toFixed(2) + " s"; }
  function fmtInt(value) { return value == null ? "–" : Number(value).toLocaleString("en-US"); }
  function fmtShare(value) { return value == null ? "–" : (100 * value).toFixed(1) + " %"; }
  function fmtVsAvg(value) {
    if (value == null) return "no average yet";
    const percent = Math.round(100 * value);
    return (percent >= 0 ? "+" : "") + percent + " % vs avg";
  }
  function hex(buffer) { return Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, "0")).join(""); }
  function say(text) { $("message").textContent = text; }

  // KPI cards

  function card(key, label, value, text, extra) {
    const div = document.createElement("div");
    div.className = "kpi";
    div.dataset.kpi = key;
    div.dataset.value = value == null ? "" : String(value);
    const title = document.createElement("span");
    title.className = "kpi-label";
    title.textContent = label;
    const main = document.createElement("span");
    main.className = "kpi-value";
    main.textContent = text;
    div.append(title, main);
    if (extra) {
      const small = document.createElement("span");
      small.className = "kpi-extra";
      small.textContent = extra;
      div.appendChild(small);
    }
    return div;
  }

  function renderSummary(s) {
    $("run-agent").textContent = s.agent || "";
    $("run-status").textContent = s.status;
    $("run-status").className = "status " + s.status;
    const tools = Object.entries(s.tool_calls || {}).map(([kind, n]) => kind + " " + n).join(", ") || "none";
    const tokensIn = s.tokens_in ?? s.input_tokens;
    const tokensOut = s.tokens_out ?? s.output_tokens;
    const cards = [
      card("status", "Status", s.status, s.status, s.first_error_step ? "first error at step " + s.first_error_step : ""),
      card("steps", "Steps / planned", s.step_count, fmtInt(s.step_count) + " / " + (s.planned_steps ?? "–")),
      card("elapsed", "Elapsed", s.elapsed_s, fmtSeconds(s.elapsed_s)),
      card("tokens", "Tokens in + out", (tokensIn || 0) + (tokensOut || 0), fmtInt(tokensIn) + " + " + fmtInt(tokensOut)),
      card("cost", "Cost", s.cost_usd, fmtUsd(s.cost_usd),
        "planning " + fmtUsd(s.planning_cost_usd) + " · tools " + fmtUsd(s.tool_cost_usd) + " · " + fmtVsAvg(s.vs_avg)),
      card("tool-calls", "Tool calls", Object.values(s.tool_calls || {}).reduce((a, b) => a + b, 0), tools),
      card("p95", "p95 step latency", s.p95_step_latency_s, fmtSeconds(s.p95_step_latency_s)),
      card("replans", "Replans", s.replan_count, fmtInt(s.replan_count),
        (s.replan_steps || []).length ? "at steps " + s.replan_steps.join(", ") : ""),
      card("errors", "Errors", s.error_count, fmtInt(s.error_count)),
    ];
    const ledger = card("ledger", "Cost ledger", (s.ledger || []).length, (s.ledger || []).length ? "" : "no priced spans");
    const list = document.createElement("table");
    list.className = "ledger";
    for (const entry of s.ledger || []) {
      const tr = document.createElement("tr");
      for (const text of [entry.model, entry.role, fmtUsd(entry.cost_usd), fmtShare(entry.share)]) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.appendChild(td);
      }
      list.appendChild(tr);
    }
    ledger.appendChild(list);
    cards.push(ledger);
    $("kpis").replaceChildren(...cards);
  }

  async function loadSummary() {
    const response = await fetch("/api/runs/" + encodeURIComponent(runId) + "/summary?token=" + encodeURIComponent(token));
    const data = await response.json();
    if (!response.ok) { say(data.message || response.statusText); return null; }
    renderSummary(data);
    return data;
  }

  function scheduleSummary(summary) {
    clearTimeout(state.summaryTimer);
    // A run still in progress changes under the viewer; a finished one does not.
    if (state.live || (summary && summary.status === "running")) {
      state.summaryTimer = setTimeout(async () => scheduleSummary(await loadSummary()), 1000);
    }
  }

  // Timeline

  function spanMatches(span) {
    if (state.filter === "errors") return span.status === "error";
    if (state.filter === "tools") return TOOL_KINDS.has(span.kind);
    return true;
  }

  function callText(span) {
    const args = span.tool_args ? " " + span.tool_args : "";
    return (span.tool_name || span.name) + args;
  }

  function renderTimeline() {
    const spans = Array.from(state.spans.values()).sort((a, b) => a.step - b.step || a.start_ns - b.start_ns);
    const rows = [];
    for (const span of spans) {
      const tr = document.createElement("tr");
      tr.dataset.spanId = span.span_id;
      tr.dataset.step = span.step;
      tr.dataset.kind = span.kind;
      tr.dataset.status = span.status;
      tr.className = "span " + span.kind + (span.status === "error" ? " error" : "") + (span.step === state.currentStep ? " current" : "");
      tr.hidden = !spanMatches(span);
      const cells = [String(span.step), span.kind + " · " + callText(span), fmtSeconds((span.end_ns - span.start_ns) / 1e9), fmtUsd(span.cost_usd)];
      for (const text of cells) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.appendChild(td);
      }
      if (span.error_message) tr.title = span.error_message;
      rows.push(tr);
    }
    timelineBody.replaceChildren(...rows);
    state.maxStep = spans.reduce((max, span) => Math.max(max, span.step), 1);
    $("scrub-step").max = String(state.maxStep);
  }

  function highlightStep(step) {
    state.currentStep = step;
    for (const tr of timelineBody.rows) tr.classList.toggle("current", Number(tr.dataset.step) === step);
    const current = timelineBody.querySelector("tr.current:not([hidden])");
    if (current && state.playing) current.scrollIntoView({ block: "nearest" });
  }

  function showDetail(span) {
    const detail = $("span-detail");
    const a = span.attributes || {};
    const prompt = a["gen_ai.prompt"] ?? a["input.value"] ?? a["llm.prompt"];
    const completion = a["gen_ai.completion"] ?? a["output.value"] ?? a["llm.reply"] ?? a["llm.completion"];
    const parts = [["span", span.name], ["kind", span.kind], ["status", span.status + (span.error_message ? ": " + span.error_message : "")]];
    if (span.model) parts.push(["model", (span.provider || "") + " " + span.model]);
    if (span.tool_args) parts.push(["arguments", span.tool_args]);
    if (prompt != null) parts.push(["prompt", typeof prompt === "string" ? prompt : JSON.stringify(prompt, null, 2)]);
    if (completion != null) parts.push(["completion", typeof completion === "string" ? completion : JSON.stringify(completion, null, 2)]);
    const nodes = [];
    for (const [label, text] of parts) {
      const h = document.createElement("h3");
      h.textContent = label;
      const pre = document.createElement("pre");
      pre.textContent = text;
      pre.dataset.field = label;
      nodes.push(h, pre);
    }
    detail.replaceChildren(...nodes);
    detail.hidden = false;
  }

  function costBreakdown(span) {
    const lines = [["input", span.input_cost_usd], ["cache read", span.cache_read_cost_usd], ["cache write", span.cache_write_cost_usd],
      ["output", span.output_cost_usd], ["reasoning", span.reasoning_cost_usd], ["other", span.other_cost_usd]]
      .filter(([, value]) => value != null).map(([label, value]) => label + ": " + fmtUsd(value));
    const tokens = ["input_tokens", "cache_read_tokens", "output_tokens", "reasoning_tokens"]
      .filter((key) => span[key] != null).map((key) => key.replace("_tokens", "") + " " + fmtInt(span[key]) + " tok");
    const header = "step " + span.step + " · " + (span.model || span.kind) + " · total " + fmtUsd(span.cost_usd) + " (" + span.pricing_status + ")";
    return [header, ...lines, ...tokens].join("\n");
  }

  timelineBody.addEventListener("click", (event) => {
    const tr = event.target.closest("tr");
    if (!tr) return;
    const span = state.spans.get(tr.dataset.spanId);
    if (!span) return;
    showDetail(span);
    send({ type: "seek", step: span.step, id: "row-" + span.step });
  });
  timelineBody.addEventListener("mouseover", (event) => {
    const tr = event.target.closest("tr");
    const span = tr && state.spans.get(tr.dataset.spanId);
    const tooltip = $("tooltip");
    if (!span) { tooltip.hidden = true; return; }
    tooltip.textContent = costBreakdown(span);
    const box = tr.getBoundingClientRect();
    tooltip.style.left = Math.round(box.left + 24 + window.scrollX) + "px";
    tooltip.style.top = Math.round(box.bottom + 4 + window.scrollY) + "px";
    tooltip.hidden = false;
  });
  timelineBody.addEventListener("mouseleave", () => { $("tooltip").hidden = true; });

  for (const button of document.querySelectorAll("[data-filter]")) {
    button.addEventListener("click", () => {
      state.filter = button.dataset.filter;
      for (const other of document.querySelectorAll("[data-filter]")) other.classList.toggle("active", other === button);
      renderTimeline();
    });
  }

  // Frames

  function addFrames(frames) {
    state.frames.push(...frames);
    state.frames.sort((a, b) => a.capture_ns - b.capture_ns || a.seq - b.seq);
    if (state.frames.length) {
      state.startNs = state.frames[0].capture_ns;
      state.endNs = state.frames[state.frames.length - 1].capture_ns;
      $("scrub-time").max = String(Math.max(0, Math.round((state.endNs - state.startNs) / 1e6)));
    }
  }

  function parseHeader(buffer) {
    const view = new DataView(buffer);
    const magic = String.fromCharCode(view.getUint8(0), view.getUint8(1), view.getUint8(2), view.getUint8(3));
    if (magic !== MAGIC) throw new Error("binary message starts with " + JSON.stringify(magic));
    return {
      contentType: CONTENT_TYPES[view.getUint8(4)] || "application/octet-stream",
      flags: view.getUint8(5),
      seq: Number(view.getBigUint64(8)),
      step: view.getUint32(16),
      generation: view.getUint32(20),
      captureNs: Number(view.getBigInt64(24)),
      sha256: hex(buffer.slice(32, 64)),
    };
  }

  async function showFrame(buffer) {
    const header = parseHeader(buffer);
    if (header.generation < state.generation) return; // sent before the latest seek
    const payload = buffer.slice(HEADER_SIZE);
    const indexed = state.frames.find((frame) => frame.seq === header.seq);
    const contentType = header.contentType === "application/octet-stream" && indexed ? indexed.content_type : header.contentType;
    // crypto.subtle exists only in secure contexts; http://127.0.0.1 and https count as secure.
    const actual = window.crypto && crypto.subtle ? hex(await crypto.subtle.digest("SHA-256", payload)) : "";
    const ok = actual === header.sha256;
    for (const id of ["frame-image", "frame-html", "frame-text", "no-frame"]) $(id).hidden = true;
    if (contentType.startsWith("image/")) {
      if (state.objectUrl) URL.revokeObjectURL(state.objectUrl);
      state.objectUrl = URL.createObjectURL(new Blob([payload], { type: contentType }));
      $("frame-image").src = state.objectUrl;
      $("frame-image").hidden = false;
    } else if (contentType === "text/html") {
      $("frame-html").srcdoc = new TextDecoder().decode(payload);
      $("frame-html").hidden = false;
    } else {
      $("frame-text").textContent = new TextDecoder().decode(payload);
      $("frame-text").hidden = false;
    }
    viewport.dataset.frameSha256 = actual;
    viewport.dataset.expectedSha256 = header.sha256;
    viewport.dataset.frameSeq = String(header.seq);
    viewport.dataset.frameStep = String(header.step);
    viewport.dataset.shaOk = String(ok);
    viewport.classList.toggle("mismatch", !ok);
    $("integrity").textContent = ok
      ? "frame " + header.seq + " · sha256 " + actual.slice(0, 16) + "… verified"
      : "SHA-256 MISMATCH on frame " + header.seq + ": expected " + header.sha256 + ", got " + (actual || "no digest (insecure context)");
    $("integrity").className = "integrity " + (ok ? "ok" : "bad");
    highlightStep(header.step);
    if (state.startNs != null) {
      $("scrub-time").value = String(Math.round((header.captureNs - state.startNs) / 1e6));
      $("position").textContent = "step " + header.step + " · +" + ((header.captureNs - state.startNs) / 1e9).toFixed(2) + " s";
    }
    $("scrub-step").value = String(header.step);
  }

  // Socket

  function send(message) {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
  }

  function onMessage(message) {
    switch (message.type) {
      case "opened":
        addFrames(message.frames);
        $("connection").textContent = "connected";
        break;
      case "spans":
        for (const span of message.spans) state.spans.set(span.span_id, span);
        renderTimeline();
        break;
      case "frames":
        addFrames(message.frames);
        break;
      case "seeked":
        state.generation = message.generation;
        break;
      case "state":
        state.playing = message.playing;
        state.live = message.live;
        state.generation = Math.max(state.generation, message.generation);
        $("play").textContent = message.playing ? "Pause" : "Play";
        $("follow").checked = message.live;
        $("speed").value = String(message.speed);
        break;
      case "ended":
        say("end of run");
        break;
      case "error":
        say("error " + message.code + ": " + message.message);
        break;
    }
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(scheme + "//" + location.host + "/ws/runs/" + encodeURIComponent(runId) + "?token=" + encodeURIComponent(token));
    socket.binaryType = "arraybuffer";
    socket.addEventListener("open", () => send({ type: "open", run_id: runId }));
    socket.addEventListener("message", (event) => {
      if (typeof event.data === "string") { onMessage(JSON.parse(event.data)); return; }
      // Frames are shown strictly in arrival order although hashing is asynchronous.
      const buffer = event.data;
      frameChain = frameChain.then(() => showFrame(buffer)).catch((error) => say("frame error: " + error.message));
    });
    socket.addEventListener("close", (event) => {
      $("connection").textContent = "disconnected (" + event.code + (event.reason ? ": " + event.reason : "") + ")";
    });
  }

  // Controls

  $("play").addEventListener("click", () => send({ type: state.playing ? "pause" : "play" }));
  $("speed").addEventListener("change", () => send({ type: "speed", value: Number($("speed").value) }));
  $("follow").addEventListener("change", () => {
    send({ type: "follow", live: $("follow").checked });
    state.live = $("follow").checked;
    scheduleSummary(null);
  });
  $("scrub-time").addEventListener("change", () => {
    if (state.startNs == null) return;
    send({ type: "seek", time_ns: state.startNs + Number($("scrub-time").value) * 1e6 });
  });
  $("scrub-step").addEventListener("change", () => send({ type: "seek", step: Number($("scrub-step").value) }));

  loadSummary().then(scheduleSummary);
  connect();
})();
