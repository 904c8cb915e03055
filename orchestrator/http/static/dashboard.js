// floy live dashboard: plain ES2020, no framework, no build step.
//
// Every server string reaches the page through textContent or setAttribute (never
// innerHTML): instance IDs, run IDs and error messages are user input.
//
// The run panel follows GET /v1/deployments/{id}/events. EventSource cannot send an
// Authorization header, so the stream is read with fetch() and parsed here (SseParser).
"use strict";

(() => {
  const TOKEN_KEY = "floy.token";
  const SERVICES_EVERY_MS = 5000;
  const RUNS_EVERY_MS = 2000;
  const HISTORY_LIMIT = 20;
  const RECONNECT_FIRST_MS = 1000;
  const RECONNECT_MAX_MS = 15000;
  // The server sends a keep-alive comment every 15 s: a stream silent for longer than
  // this is considered dead and reopened.
  const STREAM_SILENCE_MS = 45000;
  const TERMINAL = new Set(["completed", "failed", "cancelled"]);
  const STATUS_WORDS = {
    pending: "pending",
    in_progress: "in progress",
    completed: "completed",
    failed: "failed",
    cancelled: "cancelled",
  };
  const VERSION_COLOURS = [
    "#2563eb", "#0d9488", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#65a30d", "#475569",
  ];

  const NO_VERSION_COLOUR = "#b8c1cc"; // instances that run no known version yet

  const $ = (id) => document.getElementById(id);

  // ---------------------------------------------------------------- DOM helpers

  /** Create an element; string/number children become text nodes, never markup. */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === "className") node.className = value;
      else if (name === "text") node.textContent = String(value);
      else if (name.startsWith("on") && typeof value === "function") {
        node.addEventListener(name.slice(2), value);
      } else node.setAttribute(name, value === true ? "" : String(value));
    }
    append(node, children);
    return node;
  }

  function append(node, children) {
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }

  function replaceChildren(node, ...children) {
    while (node.firstChild) node.removeChild(node.firstChild);
    append(node, children);
  }

  function statusWord(status) {
    return STATUS_WORDS[status] || String(status || "unknown");
  }

  /** "2025-01-02T10:11:12.345Z" -> "2025-01-02 10:11:12Z" (the full value goes in title). */
  function shortTime(value) {
    if (!value) return "–";
    const text = String(value);
    const m = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(?:\.\d+)?(Z|[+-]\d{2}:?\d{2})?$/.exec(text);
    return m ? `${m[1]} ${m[2]}${m[3] === "Z" ? "Z" : m[3] || ""}` : text;
  }

  function timeEl(value) {
    return el("time", { datetime: value || undefined, title: value || undefined },
      shortTime(value));
  }

  function badge(status, attrs) {
    return el("span", { className: "badge", "data-status": status, ...(attrs || {}) },
      statusWord(status));
  }

  function compareVersions(a, b) {
    return String(b).localeCompare(String(a), undefined, { numeric: true });
  }

  function sleep(ms, signal) {
    return new Promise((resolve) => {
      if (signal && signal.aborted) { resolve(); return; }
      const timer = setTimeout(resolve, ms);
      if (signal) signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); },
        { once: true });
    });
  }

  // ---------------------------------------------------------------- messages

  let messageSource = "";

  /** Show a message; kind: "error" | "warn" | "info" | "ok"; source: who may clear it. */
  function showMessage(kind, text, source) {
    const box = $("message");
    box.dataset.kind = kind;
    box.dataset.source = source || "";
    messageSource = source || "";
    box.textContent = text;
    box.hidden = false;
  }

  function clearMessage(source) {
    if (source && messageSource !== source) return;
    const box = $("message");
    box.hidden = true;
    box.textContent = "";
    box.dataset.kind = "";
    box.dataset.source = "";
    messageSource = "";
  }

  // ---------------------------------------------------------------- API

  class ApiError extends Error {
    constructor(status, code, message, retryAfter) {
      super(message);
      this.status = status;
      this.code = code;
      this.retryAfter = retryAfter;
    }

    describe() {
      const head = this.status ? `HTTP ${this.status}${this.code ? " " + this.code : ""}` : "";
      return head ? `${head}: ${this.message}` : this.message;
    }
  }

  async function errorFrom(response) {
    let code = "";
    let message = response.statusText || "request failed";
    try {
      const body = await response.json();
      if (body && typeof body === "object") {
        code = typeof body.error === "string" ? body.error : "";
        if (typeof body.message === "string" && body.message) message = body.message;
        if (typeof body.field === "string" && body.field) message += ` (field ${body.field})`;
      }
    } catch (_) {
      // not JSON: keep the status text
    }
    return new ApiError(response.status, code, message, response.headers.get("Retry-After"));
  }

  let session = null; // while signed in: { token, pollers: { name: poller } }

  async function api(method, path, options) {
    const current = session;
    if (!current) throw new ApiError(0, "", "not signed in");
    const headers = { Authorization: `Bearer ${current.token}`, Accept: "application/json" };
    const json = options && options.json;
    if (json !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(path, {
        method, headers, cache: "no-store", signal: (options && options.signal) || undefined,
        body: json === undefined ? undefined : JSON.stringify(json),
      });
    } catch (err) {
      if (err && err.name === "AbortError") throw err;
      throw new ApiError(0, "network", `the API is unreachable (${err && err.message})`);
    }
    if (!response.ok) {
      const error = await errorFrom(response);
      if (current === session && (error.status === 401 || error.status === 429)) {
        authFailed(error);
      }
      throw error;
    }
    const body = await response.json();
    return { status: response.status, body };
  }

  /** A token the server refuses (401) or a client it throttles (429): stop everything. */
  function authFailed(error) {
    if (error.status === 429) {
      showMessage("error", `Too many failed sign-ins from this browser (HTTP 429 ` +
        `rate_limited: ${error.message}).`, "auth");
    } else {
      showMessage("error", `The server refused this token (HTTP 401 unauthenticated: ` +
        `${error.message}). Enter a valid API token.`, "auth");
    }
    signOut({ keepMessage: true });
  }

  /** A token that may not read (403 on a GET, e.g. a heartbeat token). */
  function readForbidden(error) {
    showMessage("error", `This token may not read the dashboard's data (HTTP 403 forbidden: ` +
      `${error.message}). Use a token with the read or deployer role.`, "auth");
    signOut({ keepMessage: true });
  }

  function pollError(what, error) {
    if (!session || (error && error.name === "AbortError")) return;
    if (error instanceof ApiError) {
      if (error.status === 401 || error.status === 429) return; // authFailed handled it
      if (error.status === 403) { readForbidden(error); return; }
      showMessage("warn", `Could not load ${what}: ${error.describe()}. Retrying.`, "poll");
    } else {
      showMessage("warn", `Could not load ${what}: ${error}. Retrying.`, "poll");
    }
  }

  // ---------------------------------------------------------------- pollers

  /** Call fn now and then every everyMs after it finished, while this session lasts. */
  function poll(name, everyMs, fn) {
    const current = session;
    const poller = { running: false, again: false, timer: undefined, tick: null };
    poller.tick = async () => {
      if (current !== session) return;
      clearTimeout(poller.timer);
      if (poller.running) { poller.again = true; return; }
      poller.running = true;
      try {
        await fn();
      } catch (err) {
        pollError(name, err);
      } finally {
        poller.running = false;
      }
      if (current !== session) return;
      if (poller.again) {
        poller.again = false;
        poller.tick();
      } else {
        poller.timer = setTimeout(poller.tick, everyMs);
      }
    };
    current.pollers[name] = poller;
    poller.tick();
  }

  /** Run a poller at once (it then goes on at its own pace). */
  function refreshNow(name) {
    const poller = session && session.pollers[name];
    if (poller) poller.tick();
  }

  // ---------------------------------------------------------------- services

  const state = {
    services: [],
    selectedService: "",
    serviceChosen: false, // true once the user clicked a service
    lastServicesJson: "",
    lastRunsJson: "",
    lastHistoryJson: "",
    askedFor: new Set(), // services loaded ahead of time for a run (once each)
    run: null, // the open run: { id, auto, status, data, stream }
  };

  async function loadServices() {
    const { body } = await api("GET", "/v1/services");
    clearMessage("poll");
    const services = Array.isArray(body.services) ? body.services : [];
    state.services = services;
    if (!state.selectedService && services.length) {
      selectService(services[0].service, false);
    }
    const json = JSON.stringify(services) + "|" + state.selectedService;
    if (json === state.lastServicesJson) return;
    state.lastServicesJson = json;
    renderServices(services);
  }

  function renderServices(services) {
    const box = $("services");
    box.dataset.loaded = "true";
    if (!services.length) {
      replaceChildren(box, el("p", { className: "empty" }, "No services registered yet."));
      return;
    }
    replaceChildren(box, services.map(renderService));
  }

  function renderService(svc) {
    const name = String(svc.service);
    const total = Number(svc.total_instances) || 0;
    const summary = svc.version_summary && typeof svc.version_summary === "object"
      ? svc.version_summary : {};
    const versions = Object.keys(summary).sort(compareVersions);
    const selected = name === state.selectedService;

    const bar = el("div", { className: "dist-bar", role: "img",
      "aria-label": `version distribution of ${name}` });
    const legend = el("ul", { className: "dist-legend" });
    versions.forEach((version, i) => {
      const count = Number(summary[version]) || 0;
      const colour = version === "" ? NO_VERSION_COLOUR
        : VERSION_COLOURS[i % VERSION_COLOURS.length];
      const label = version === "" ? "(none)" : version;
      const segment = el("span", { className: "dist-seg", "data-version": version,
        title: `${label}: ${count} of ${total} instance${total === 1 ? "" : "s"}` });
      segment.style.flexGrow = String(Math.max(count, 0));
      segment.style.backgroundColor = colour;
      bar.appendChild(segment);
      const swatch = el("span", { className: "dot" });
      swatch.style.backgroundColor = colour;
      legend.appendChild(el("li", { "data-version": version, "data-count": count }, swatch,
        el("span", { className: "ver" }, label),
        el("span", { className: "count" }, `× ${count}`)));
    });
    if (!versions.length) bar.appendChild(el("span", { className: "dist-empty" }, "no versions"));

    const drift = Array.isArray(svc.drift) ? svc.drift : [];
    let driftNode;
    if (drift.length) {
      driftNode = el("table", { className: "drift" },
        el("caption", {}, `Drift: ${drift.length} instance` +
          `${drift.length === 1 ? " reports" : "s report"} another version than recorded`),
        el("thead", {}, el("tr", {}, el("th", {}, "instance"), el("th", {}, "recorded"),
          el("th", {}, "observed"), el("th", {}, "seen"))),
        el("tbody", {}, drift.map((d) => el("tr", { "data-drift": d.instance_id },
          el("td", {}, d.instance_id), el("td", {}, d.version || "(none)"),
          el("td", { className: "observed" }, d.observed_version || "(none)"),
          el("td", {}, timeEl(d.observed_at))))));
    } else {
      driftNode = el("p", { className: "no-drift" }, "No drift");
    }

    const card = el("article", {
      className: selected ? "service selected" : "service",
      "data-service": name, tabindex: "0", "aria-current": selected ? "true" : undefined,
      title: `Show the history of ${name}`,
      onclick: () => selectService(name, true),
      onkeydown: (ev) => {
        if (ev.key === "Enter" || ev.key === " ") {
          ev.preventDefault();
          selectService(name, true);
        }
      },
    },
    el("div", { className: "service-head" },
      el("h3", {}, name),
      el("span", { className: "total", "data-total": total },
        `${total} instance${total === 1 ? "" : "s"}`)),
    bar, legend, driftNode,
    svc.last_heartbeat ? el("p", { className: "heartbeat" }, "last heartbeat ",
      timeEl(svc.last_heartbeat)) : null);
    return card;
  }

  function selectService(name, byUser) {
    if (byUser) state.serviceChosen = true;
    if (name === state.selectedService) return;
    state.selectedService = name;
    state.lastHistoryJson = "";
    for (const card of document.querySelectorAll("#services .service")) {
      const on = card.getAttribute("data-service") === name;
      card.classList.toggle("selected", on);
      if (on) card.setAttribute("aria-current", "true"); else card.removeAttribute("aria-current");
    }
    state.lastServicesJson = "";
    $("history-service").textContent = name ? `of ${name}` : "";
    replaceChildren($("history"),
      el("p", { className: "empty" }, `Loading the history of ${name}…`));
    refreshNow("history");
  }

  // ---------------------------------------------------------------- history

  async function loadHistory() {
    const service = state.selectedService;
    if (!service) return;
    const path = `/v1/services/${encodeURIComponent(service)}/history?limit=${HISTORY_LIMIT}`;
    let body;
    try {
      ({ body } = await api("GET", path));
    } catch (err) {
      if (err instanceof ApiError && err.status === 404 && service === state.selectedService) {
        state.lastHistoryJson = "";
        replaceChildren($("history"), el("p", { className: "empty" },
          `No history: ${err.message}`));
        return;
      }
      throw err;
    }
    if (service !== state.selectedService) return;
    const runs = Array.isArray(body.runs) ? body.runs : [];
    const json = service + "|" + JSON.stringify(runs) + "|" + (state.run ? state.run.id : "");
    if (json === state.lastHistoryJson) return;
    state.lastHistoryJson = json;
    renderHistory(service, runs);
  }

  function renderHistory(service, runs) {
    const box = $("history");
    if (!runs.length) {
      replaceChildren(box, el("p", { className: "empty" }, `${service} has no runs yet.`));
      return;
    }
    const head = el("thead", {}, el("tr", {},
      ["Run", "Kind", "Version", "Status", "Created by", "Started", "Done", "Failed",
        "Cancelled", "Total"].map((h, i) => el("th", { className: i >= 6 ? "num" : undefined },
        h))));
    const body = el("tbody", {}, runs.map((r) => {
      const open = state.run && state.run.id === r.run_id;
      return el("tr", { "data-history-run": r.run_id, className: open ? "open" : undefined },
        el("td", {}, el("button", { type: "button", className: "link",
          title: r.error_message ? `${r.run_id}: ${r.error_message}` : `Open ${r.run_id}`,
          onclick: () => openRun(r.run_id, false) }, r.run_id)),
        el("td", {}, r.kind),
        el("td", {}, r.version),
        el("td", {}, badge(r.status, { title: r.error_message || undefined })),
        el("td", {}, r.created_by || "–"),
        el("td", {}, timeEl(r.started_at)),
        el("td", { className: "num", "data-count": "completed" }, r.completed),
        el("td", { className: "num", "data-count": "failed" }, r.failed),
        el("td", { className: "num", "data-count": "cancelled" }, r.cancelled),
        el("td", { className: "num", "data-count": "total" }, r.total));
    }));
    replaceChildren(box, el("table", { className: "history-table" }, head, body));
  }

  // ---------------------------------------------------------------- active runs

  async function loadRuns() {
    const { body } = await api("GET", "/v1/deployments?active=true");
    clearMessage("poll");
    const runs = Array.isArray(body.runs) ? body.runs : [];
    const known = new Set(state.services.map((svc) => svc.service));
    const unknown = runs.filter((r) => r.service && !known.has(r.service) &&
      !state.askedFor.has(r.service));
    if (unknown.length) {
      // a run of a service the panel does not show yet: load the services now
      for (const r of unknown) state.askedFor.add(r.service);
      refreshNow("services");
    }
    const json = JSON.stringify(runs) + "|" + (state.run ? state.run.id : "");
    if (json !== state.lastRunsJson) {
      state.lastRunsJson = json;
      renderRuns(runs);
    }
    // Open the newest active run when none is open, or when the run we opened by
    // ourselves has ended (a run the user opened stays until they choose another).
    const open = state.run;
    if (runs.length && (!open || (open.auto && TERMINAL.has(open.status)))) {
      if (!open || open.id !== runs[0].run_id) openRun(runs[0].run_id, true);
    }
  }

  function renderRuns(runs) {
    const list = $("runs");
    if (!runs.length) {
      replaceChildren(list, el("li", { className: "empty" }, "No deployment is running."));
      return;
    }
    replaceChildren(list, runs.map((r) => {
      const open = state.run && state.run.id === r.run_id;
      const done = (Number(r.completed) || 0) + (Number(r.failed) || 0) +
        (Number(r.cancelled) || 0);
      return el("li", {},
        el("button", { type: "button", className: open ? "run open" : "run",
          "data-run": r.run_id, "aria-pressed": open ? "true" : "false",
          onclick: () => openRun(r.run_id, false) },
        el("span", { className: "run-id" }, r.run_id),
        el("span", { className: "run-what" }, `${r.service || ""} → ${r.version}`),
        badge(r.status),
        el("span", { className: "run-count" }, `${done}/${r.total}`)));
    }));
  }

  // ---------------------------------------------------------------- run panel

  function openRun(id, auto) {
    if (!session) return;
    if (state.run && state.run.id === id) {
      if (!auto) state.run.auto = false;
      return;
    }
    closeRun();
    state.run = { id, auto, status: "", data: null, stream: null };
    try {
      history.replaceState(null, "", `#run=${encodeURIComponent(id)}`);
    } catch (_) {
      // file:// or sandboxed: the hash is only a convenience
    }
    const panel = $("run-panel");
    panel.dataset.runId = id;
    panel.dataset.status = "";
    $("run-title").textContent = `Run ${id}`;
    setRunStatus("", "loading…");
    replaceChildren($("run-meta"));
    replaceChildren($("run-progress"));
    $("run-error").hidden = true;
    replaceChildren($("run-grid"), el("p", { className: "empty" }, "Connecting to the run…"));
    resetCanary();
    updateCancelButton();
    for (const b of document.querySelectorAll("#runs [data-run]")) {
      const on = b.getAttribute("data-run") === id;
      b.classList.toggle("open", on);
      b.setAttribute("aria-pressed", on ? "true" : "false");
    }
    state.run.stream = new RunStream(id, onRunStatus, setStreamState);
    state.run.stream.start();
  }

  function closeRun() {
    if (state.run && state.run.stream) state.run.stream.stop();
    state.run = null;
    const panel = $("run-panel");
    panel.dataset.runId = "";
    panel.dataset.status = "";
    $("run-title").textContent = "Run";
    setRunStatus("", "none open");
    setStreamState("idle", "");
    replaceChildren($("run-meta"));
    replaceChildren($("run-progress"));
    $("run-error").hidden = true;
    replaceChildren($("run-grid"), el("p", { className: "empty" }, "No run open. The newest " +
      "running deployment opens here by itself; click one in the list to open it."));
    resetCanary();
    updateCancelButton();
  }

  function setRunStatus(status, text) {
    const node = $("run-status");
    node.dataset.status = status;
    node.textContent = text || statusWord(status);
  }

  function setStreamState(stateName, text) {
    const node = $("run-stream");
    node.dataset.state = stateName;
    node.textContent = text;
  }

  function onRunStatus(id, data, ended) {
    const run = state.run;
    if (!run || run.id !== id || !data || typeof data !== "object") return;
    const previous = run.status;
    run.data = data;
    run.status = String(data.status || "");
    renderRun(data);
    if (ended) setStreamState("ended", "ended");
    if (TERMINAL.has(run.status) && previous !== run.status) {
      // the history and the services' versions changed: show them now
      state.lastHistoryJson = "";
      refreshNow("history");
      refreshNow("services");
      refreshNow("runs");
    }
    if (!state.serviceChosen && data.service && data.service !== state.selectedService) {
      selectService(String(data.service), false);
    }
  }

  function renderRun(d) {
    const panel = $("run-panel");
    panel.dataset.status = d.status;
    setRunStatus(d.status);
    const kind = d.kind === "rollback" ? "Rollback" : "Deployment";
    $("run-title").textContent = `${kind} ${d.deploy_id}`;

    const meta = [
      ["Run", d.deploy_id],
      ["Service", d.service],
      ["Version", d.version],
      ["Kind", d.kind || "deploy"],
      ["Batch size", d.batch_size],
      ["Max failures", d.max_failures],
      ["Started", timeEl(d.started_at)],
      ["Updated", timeEl(d.updated_at)],
      ["Finished", d.finished_at ? timeEl(d.finished_at) : "–"],
    ];
    if (d.rollback_id) meta.push(["Rollback", d.rollback_id]);
    replaceChildren($("run-meta"), meta.map(([k, v]) => el("div", {},
      el("dt", {}, k), el("dd", { "data-field": k.toLowerCase().replace(/ /g, "_") },
        v === undefined || v === null || v === "" ? "–" : v))));

    const p = d.progress || {};
    const total = Number(p.total) || 0;
    const inProgress = Number(p.in_progress) || 0;
    const waiting = Math.max((Number(p.pending) || 0) - inProgress, 0);
    const parts = [
      ["completed", Number(p.completed) || 0],
      ["in_progress", inProgress],
      ["failed", Number(p.failed) || 0],
      ["cancelled", Number(p.cancelled) || 0],
      ["pending", waiting],
    ];
    const bar = el("div", { className: "progress-bar", role: "img",
      "aria-label": `${Number(p.completed) || 0} of ${total} completed` });
    for (const [status, count] of parts) {
      if (!count) continue;
      const seg = el("span", { "data-status": status, title: `${statusWord(status)}: ${count}` });
      seg.style.flexGrow = String(count);
      bar.appendChild(seg);
    }
    const counters = el("ul", { className: "counters" },
      el("li", { "data-count": "total" }, el("b", {}, total), " total"),
      el("li", { "data-count": "completed" }, el("b", {}, Number(p.completed) || 0), " completed"),
      el("li", { "data-count": "in_progress" }, el("b", {}, inProgress), " in progress"),
      el("li", { "data-count": "pending",
        title: `pending (not finished): ${Number(p.pending) || 0}` },
        el("b", {}, waiting), " waiting"),
      el("li", { "data-count": "failed" }, el("b", {}, Number(p.failed) || 0), " failed"),
      el("li", { "data-count": "cancelled" }, el("b", {}, Number(p.cancelled) || 0), " cancelled"));
    replaceChildren($("run-progress"), bar, counters);

    const err = $("run-error");
    err.dataset.status = d.status;
    err.textContent = d.error_message || "";
    err.hidden = !d.error_message;

    const batches = new Map();
    for (const inst of Array.isArray(d.instances) ? d.instances : []) {
      const n = Number(inst.batch) || 0;
      if (!batches.has(n)) batches.set(n, []);
      batches.get(n).push(inst);
    }
    const rows = [...batches.keys()].sort((a, b) => a - b).map((n) => {
      const items = batches.get(n);
      const done = items.filter((i) => TERMINAL.has(i.status)).length;
      return el("div", { className: "batch", "data-batch": n },
        el("div", { className: "batch-label" }, n ? `Batch ${n}` : "Unbatched",
          el("span", { className: "batch-count" }, `${done}/${items.length}`)),
        el("div", { className: "cells" }, items.map(renderCell)));
    });
    replaceChildren($("run-grid"), rows.length ? rows
      : el("p", { className: "empty" }, "This run has no instances."));
    renderCanary(d);
    updateCancelButton();
  }

  function renderCell(inst) {
    const status = String(inst.status || "pending");
    const attempts = Number(inst.attempts) || 0;
    const lines = [
      `${inst.instance_id}: ${statusWord(status)}`,
      inst.phase ? `phase: ${inst.phase}` : "",
      `attempts: ${attempts}`,
      `version: ${inst.previous_version || inst.current_version || "(none)"} → ` +
        `${inst.target_version}`,
      `running now: ${inst.current_version || "(none)"}`,
      inst.started_at ? `started: ${inst.started_at}` : "",
      inst.completed_at ? `finished: ${inst.completed_at}` : "",
      inst.error_message ? `error: ${inst.error_message}` : "",
    ].filter(Boolean);
    let detail;
    if (status === "in_progress") detail = inst.phase || "starting";
    else if (status === "completed") detail = inst.current_version || inst.target_version;
    else if (status === "pending") detail = "waiting";
    else detail = inst.phase || statusWord(status);
    return el("div", {
      className: "cell", "data-instance": inst.instance_id, "data-status": status,
      "data-phase": inst.phase || "", "data-attempts": attempts, title: lines.join("\n"),
      tabindex: "0",
    },
    el("span", { className: "cell-id" }, inst.instance_id),
    el("span", { className: "cell-detail" }, detail),
    attempts ? el("span", { className: "cell-attempts" }, `attempt ${attempts}`) : null,
    inst.error_message ? el("span", { className: "cell-error" }, inst.error_message) : null);
  }

  // ---------------------------------------------------------------- canary steps

  const SVG_NS = "http://www.w3.org/2000/svg";
  const isPause = (step) => /^pause\b/.test(step);

  /** el() for SVG: attributes through setAttribute, children as text nodes, never markup. */
  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value !== undefined && value !== null && value !== false) {
        node.setAttribute(name, String(value));
      }
    }
    append(node, children);
    return node;
  }

  /** Milliseconds of an RFC 3339 time with any number of fraction digits (NaN if none). */
  function timeMs(value) {
    const m = /^(.+T\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$/i.exec(String(value || ""));
    return m ? Date.parse(m[1] + m[3].toUpperCase()) + Number(m[2] || 0) * 1000 : NaN;
  }

  /** "2025-01-02T10:11:12.345Z" -> "10:11:12Z". */
  function clockTime(value) {
    const short = shortTime(value);
    return short.includes(" ") ? short.slice(short.indexOf(" ") + 1) : short;
  }

  /** The pause written right after the n-th batch of `steps`: "" until promoted, "5m"
   * timed, null none (as orchestrator/domain/steps.py pause_after). */
  function pauseAfter(steps, n) {
    let seen = 0;
    for (let i = 0; i < steps.length; i++) {
      if (isPause(steps[i])) continue;
      seen += 1;
      if (seen === n) return isPause(steps[i + 1] || "") ? steps[i + 1].slice(5).trim() : null;
    }
    return null;
  }

  /** The canary of a status with every field of the type the page relies on, or null. */
  function canaryOf(d) {
    const c = d && d.canary;
    if (!c || typeof c !== "object") return null;
    const list = (v) => (Array.isArray(v) ? v : []);
    return { ...c, steps: list(c.steps).map(String), batches: list(c.batches).map(Number),
      batch: Number(c.batch) || 0, state: String(c.state || ""),
      analysis: c.analysis && typeof c.analysis === "object" ? c.analysis : null,
      measurements: list(c.measurements).filter((m) => m && typeof m === "object"),
      decisions: list(c.decisions).filter((m) => m && typeof m === "object") };
  }

  function batchState(n, items, c) {
    if (items.length && items.every((i) => TERMINAL.has(i.status))) {
      if (items.some((i) => i.status === "failed")) return "failed";
      return items.some((i) => i.status === "completed") ? "done" : "cancelled";
    }
    const current = n === c.batch && c.state === "running";
    return current || items.some((i) => i.status === "in_progress") ? "running" : "pending";
  }

  function gapState(n, c) {
    if (c.batch > n) return "passed";
    if (c.batch === n && (c.state === "paused" || c.state === "analysis")) return "current";
    if (c.full) return "skipped";
    return c.state === "finished" ? "not-reached" : "upcoming";
  }

  /** What sits between batch n and n+1: its analysis gate and its pause. */
  function gapItem(n, c) {
    const pause = pauseAfter(c.steps, n);
    const words = pause === null ? null : pause || "until promoted";
    const where = gapState(n, c);
    const parts = [
      c.analysis ? el("span", { className: "canary-gate" }, "◆ analysis") : null,
      words ? el("span", { className: "canary-pause" }, words) : null, // CSS draws the ⏸
    ].filter(Boolean);
    const label = [c.analysis ? "analysis" : "", words ? `pause ${words}` : ""]
      .filter(Boolean).join(" and ") || "no gate";
    return el("li", { className: "canary-gap", "data-gap": n, "data-pause": words,
      "data-gap-state": where, "aria-label": `after batch ${n}: ${label} (${where})` },
    parts.length ? parts : el("span", { "aria-hidden": "true" }, "→"));
  }

  function canaryStateText(c, status) {
    const total = c.batches.length;
    let text;
    if (c.state === "paused") {
      text = `paused after batch ${c.batch} ` +
        (c.pause_until ? `until ${clockTime(c.pause_until)}` : "until promoted");
    } else if (c.state === "analysis") {
      const taken = c.measurements.filter((m) => Number(m.batch) === c.batch).length;
      const count = c.analysis ? Number(c.analysis.count) || 0 : 0;
      text = `analysing after batch ${c.batch}` +
        (count ? ` (${taken} of ${count} measurements)` : "");
    } else if (c.state === "finished") {
      text = `finished (${statusWord(status)}) after batch ${c.batch} of ${total}`;
    } else {
      text = `running batch ${c.batch || 1} of ${total}`;
    }
    if (c.promoted_by) text += `; promoted${c.full ? " fully" : ""} by ${c.promoted_by}`;
    return text;
  }

  function renderCanary(d) {
    const c = canaryOf(d);
    $("canary").hidden = !c;
    if (!c) return;
    const instances = Array.isArray(d.instances) ? d.instances : [];
    const entries = c.steps.filter((s) => !isPause(s));
    replaceChildren($("canary-strip"), c.batches.flatMap((size, i) => {
      const n = i + 1;
      const st = batchState(n, instances.filter((inst) => Number(inst.batch) === n), c);
      const entry = entries[Math.min(i, entries.length - 1)] || "";
      const what = `${size} instance${size === 1 ? "" : "s"}`;
      return [n > 1 ? gapItem(n - 1, c) : null,
        el("li", { className: "canary-batch", "data-step-batch": n, "data-batch-state": st,
          title: `batch ${n}: ${what} (step ${entry}): ${st}` },
        el("span", { className: "canary-batch-name" }, `Batch ${n}`),
        el("span", { className: "canary-batch-size" }, `${what} · ${st}`))];
    }));

    const node = $("canary-state");
    const text = canaryStateText(c, d.status);
    node.dataset.canaryState = c.state;
    node.title = c.pause_until ? `pause ends at ${c.pause_until}` : "";
    if (node.textContent !== text) node.textContent = text; // aria-live: only real changes

    const paused = c.state === "paused" && !TERMINAL.has(d.status);
    const next = c.batch < c.batches.length ? `batch ${c.batch + 1} of ${c.batches.length}` : "";
    $("canary-banner").textContent = paused ? `Paused after batch ${c.batch}` +
      (c.pause_until ? ` until ${clockTime(c.pause_until)}` : " until promoted") +
      (next ? `: Promote starts ${next}; Promote fully also skips every later pause.` : ".")
      : "";

    const figure = $("canary-analysis");
    figure.hidden = !c.analysis;
    if (c.analysis) {
      const a = c.analysis;
      const bounds = [a.min !== null && a.min !== undefined ? `≥ ${a.min}` : "",
        a.max !== null && a.max !== undefined ? `≤ ${a.max}` : ""].filter(Boolean);
      const failed = c.measurements.filter((m) => !m.ok).length;
      replaceChildren($("canary-analysis-caption"), `Analysis after each batch but the last: ` +
        `${a.count} measurement${Number(a.count) === 1 ? "" : "s"} every ${a.interval} s of `,
      el("code", { title: a.url }, a.query), `, ok when ${bounds.join(" and ") || "present"}` +
        ` (failure limit ${a.failure_limit}). ${c.measurements.length} taken, ${failed} failed.`);
      replaceChildren($("canary-chart"), analysisChart(a, c.measurements));
    }

    $("canary-decisions-title").textContent = `Decisions (${c.decisions.length})`;
    replaceChildren($("canary-decisions-list"), c.decisions.map((x) => el("li",
      { "data-decision": x.kind }, timeEl(x.at), ` batch ${x.batch} `,
      el("b", {}, String(x.kind || "").replace(/_/g, " ")), ` by ${x.actor}`,
      x.message ? `: ${x.message}` : "")));
  }

  const CHART = { w: 520, h: 160, left: 52, right: 58, top: 12, bottom: 26 };

  /** The measurements as an SVG dot-and-line chart over time, thresholds dashed. */
  function analysisChart(analysis, points) {
    if (!points.length) {
      return el("p", { className: "empty", "data-chart": "empty" }, "no measurements yet");
    }
    const { w, h, left, right, top, bottom } = CHART;
    const times = points.map((p) => timeMs(p.at));
    const t0 = Math.min(...times);
    const t1 = Math.max(...times);
    const spread = t1 > t0; // NaN compares false: then the points go by their index
    const x = (i) => left + (w - left - right) * (points.length < 2 ? 0.5
      : spread ? (times[i] - t0) / (t1 - t0) : i / (points.length - 1));
    const number = (v) => typeof v === "number" && Number.isFinite(v);
    const limits = [["min", analysis.min], ["max", analysis.max]].filter(([, v]) => number(v));
    const values = points.map((p) => p.value).filter(number);
    const all = values.concat(limits.map(([, v]) => v));
    let lo = all.length ? Math.min(...all) : 0;
    let hi = all.length ? Math.max(...all) : 1;
    const pad = (hi - lo) * 0.12 || Math.abs(hi) * 0.12 || 1;
    lo -= pad;
    hi += pad;
    const y = (v) => top + (h - top - bottom) * (1 - (v - lo) / (hi - lo));
    const fmt = (v) => String(Number(v.toPrecision(3)));
    const base = h - bottom;
    const chart = svg("svg", { viewBox: `0 0 ${w} ${h}`, class: "chart", role: "img",
      "aria-label": `analysis measurements: ${points.length} values, ` +
        `${points.filter((p) => !p.ok).length} failed` },
    svg("line", { class: "axis", x1: left, y1: top, x2: left, y2: base }),
    svg("line", { class: "axis", x1: left, y1: base, x2: w - right, y2: base }),
    values.length ? [
      svg("text", { class: "tick", x: left - 6, y: y(Math.max(...values)) + 4,
        "text-anchor": "end" }, fmt(Math.max(...values))),
      svg("text", { class: "tick", x: left - 6, y: y(Math.min(...values)) + 4,
        "text-anchor": "end" }, fmt(Math.min(...values)))] : null,
    svg("text", { class: "tick", x: left, y: h - 8 }, clockTime(points[0].at)),
    points.length > 1 ? svg("text", { class: "tick", x: w - right, y: h - 8,
      "text-anchor": "end" }, clockTime(points[points.length - 1].at)) : null,
    limits.flatMap(([name, v]) => [
      svg("line", { class: "threshold", "data-threshold": name, x1: left, y1: y(v),
        x2: w - right, y2: y(v) }, svg("title", {}, `${name} ${v}`)),
      svg("text", { class: "threshold-label", x: w - right + 4, y: y(v) + 4 },
        `${name} ${fmt(v)}`)]),
    svg("polyline", { class: "series", points: points.map((p, i) => (number(p.value)
      ? `${x(i)},${y(p.value)}` : "")).filter(Boolean).join(" ") }),
    points.map((p, i) => {
      const shown = number(p.value) ? fmt(p.value) : "no value";
      const tip = [`batch ${p.batch}: ${shown} at ${p.at}`, p.ok ? "ok" : "failed",
        p.http_status ? `HTTP ${p.http_status}` : "", number(p.seconds) ? `${p.seconds} s` : "",
        p.error ? `error: ${p.error}` : ""].filter(Boolean).join(" · ");
      return svg("circle", { class: "point", "data-point": i, "data-ok": p.ok ? "true" : "false",
        "data-batch": p.batch, "data-value": number(p.value) ? p.value : "",
        cx: x(i), cy: number(p.value) ? y(p.value) : base, r: 4.5, tabindex: 0 },
      svg("title", {}, tip));
    }));
    return chart;
  }

  // ---------------------------------------------------------------- promote / abort

  let canaryBusy = ""; // the ID of the canary button whose request is in flight

  const CANARY_BUTTONS = {
    "promote-run": ["Promote", "Promoting…"],
    "promote-full": ["Promote fully", "Promoting…"],
    "abort-run": ["Abort", "Aborting…"],
  };

  function updateCanaryButtons() {
    const run = state.run;
    const c = run && canaryOf(run.data);
    const live = !!session && !!c && !!run.status && !TERMINAL.has(run.status);
    const paused = live && c.state === "paused";
    for (const [id, [idle, busy]] of Object.entries(CANARY_BUTTONS)) {
      const button = $(id);
      const shown = id === "abort-run" ? live : paused;
      button.hidden = !shown;
      button.disabled = !shown || !!canaryBusy;
      button.textContent = canaryBusy === id ? busy : idle;
    }
    $("abort-rollback").disabled = !live || !!canaryBusy;
    $("canary-actions").hidden = !live;
    $("canary-actions").dataset.paused = String(paused);
    $("canary-banner").hidden = !paused;
  }

  /** POST promote (button "promote-run" or "promote-full") or abort ("abort-run"). */
  async function canaryAction(button) {
    const run = state.run;
    if (!run || canaryBusy || TERMINAL.has(run.status)) return;
    const id = run.id;
    const abort = button === "abort-run";
    const rollback = abort && $("abort-rollback").checked;
    const what = abort ? (rollback ? "Abort with rollback" : "Abort")
      : button === "promote-full" ? "Full promotion" : "Promotion";
    canaryBusy = button;
    run.auto = false; // acted on: it stays open when it ends (e.g. for its rollback to start)
    updateCanaryButtons();
    showMessage("info", `${what} of run ${id}…`, "action");
    try {
      const { status, body } = await api("POST",
        `/v1/deployments/${encodeURIComponent(id)}/${abort ? "abort" : "promote"}`,
        { json: abort ? { rollback } : { full: button === "promote-full" } });
      const c = canaryOf(body);
      if (abort && (status === 202 || (body && body.status === "in_progress"))) {
        showMessage("info", `${what} of run ${id} accepted (HTTP ${status}): the run is ` +
          "still stopping; its status follows below.", "action");
      } else if (abort) {
        const back = body && body.rollback_id ? `; rollback ${body.rollback_id} started` : "";
        showMessage("ok", `Run ${id} aborted: ${statusWord(body && body.status)}${back} ` +
          `(HTTP ${status}).`, "action");
      } else {
        const by = c && c.promoted_by ? ` by ${c.promoted_by}` : "";
        showMessage("ok", `Run ${id} promoted${button === "promote-full" ? " fully" : ""}` +
          `${by} (HTTP ${status}).`, "action");
      }
    } catch (err) {
      if (err instanceof ApiError) {
        if (err.status !== 401 && err.status !== 429) {
          showMessage("error", `${what} of run ${id} refused: ${err.describe()}`, "action");
        }
      } else if (!(err && err.name === "AbortError")) {
        showMessage("error", `${what} of run ${id} failed: ${err}`, "action");
      }
    } finally {
      canaryBusy = "";
      updateCanaryButtons();
    }
  }

  /** No run, or another one: nothing of the last canary stays (the rollback box included). */
  function resetCanary() {
    $("canary").hidden = true;
    $("abort-rollback").checked = false;
    for (const id of ["canary-strip", "canary-chart", "canary-decisions-list"]) {
      replaceChildren($(id));
    }
    $("canary-state").textContent = "";
    $("canary-state").dataset.canaryState = "";
    updateCanaryButtons();
  }

  // ---------------------------------------------------------------- cancel

  let cancelling = false;

  function updateCancelButton() {
    const button = $("cancel-run");
    const run = state.run;
    const live = !!run && !!run.status && !TERMINAL.has(run.status);
    button.disabled = !session || !live || cancelling;
    button.textContent = cancelling ? "Cancelling…" : "Cancel";
    updateCanaryButtons();
  }

  async function cancelRun() {
    const run = state.run;
    if (!run || cancelling || TERMINAL.has(run.status)) return;
    const id = run.id;
    cancelling = true;
    updateCancelButton();
    showMessage("info", `Cancelling run ${id}…`, "action");
    try {
      const { status, body } = await api("POST",
        `/v1/deployments/${encodeURIComponent(id)}/cancel`);
      if (status === 202 || (body && body.status === "in_progress")) {
        showMessage("info", `Cancel of run ${id} accepted (HTTP ${status}): the run is still ` +
          "stopping; its status follows below.", "action");
      } else {
        const at = body && body.cancelled_at ? ` at ${shortTime(body.cancelled_at)}` : "";
        showMessage("ok", `Run ${id} ${statusWord(body && body.status)}${at} (HTTP ${status}).`,
          "action");
      }
    } catch (err) {
      if (err instanceof ApiError) {
        if (err.status !== 401 && err.status !== 429) {
          showMessage("error", `Cancel of run ${id} refused: ${err.describe()}`, "action");
        }
      } else if (!(err && err.name === "AbortError")) {
        showMessage("error", `Cancel of run ${id} failed: ${err}`, "action");
      }
    } finally {
      cancelling = false;
      updateCancelButton();
    }
  }

  // ---------------------------------------------------------------- server-sent events

  /** Incremental parser of a text/event-stream (the WHATWG rules that matter here). */
  class SseParser {
    constructor(onEvent) {
      this.onEvent = onEvent;
      this.buffer = "";
      this.type = "";
      this.data = [];
      this.lastId = "";
      this.retry = 0;
      this.first = true;
    }

    push(text) {
      this.buffer += text;
      if (this.first && this.buffer.length) {
        if (this.buffer.charCodeAt(0) === 0xfeff) this.buffer = this.buffer.slice(1);
        this.first = false;
      }
      let start = 0;
      for (;;) {
        const cr = this.buffer.indexOf("\r", start);
        const lf = this.buffer.indexOf("\n", start);
        if (cr < 0 && lf < 0) break;
        let end;
        let next;
        if (cr >= 0 && (lf < 0 || cr < lf)) {
          // a CR at the very end may be the first half of a CRLF split across chunks
          if (cr === this.buffer.length - 1) break;
          end = cr;
          next = this.buffer[cr + 1] === "\n" ? cr + 2 : cr + 1;
        } else {
          end = lf;
          next = lf + 1;
        }
        this.line(this.buffer.slice(start, end));
        start = next;
      }
      this.buffer = this.buffer.slice(start);
    }

    /** The stream closed: a CR left at the end was a line ending after all. */
    finish() {
      if (this.buffer.endsWith("\r")) this.push("\n");
    }

    line(line) {
      if (line === "") { this.dispatch(); return; }
      if (line[0] === ":") return; // comment (keep-alive)
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value[0] === " ") value = value.slice(1);
      if (field === "event") this.type = value;
      else if (field === "data") this.data.push(value);
      else if (field === "id" && !value.includes("\0")) this.lastId = value;
      else if (field === "retry" && /^\d+$/.test(value)) this.retry = Number(value);
    }

    dispatch() {
      const type = this.type || "message";
      const data = this.data.join("\n");
      const hasData = this.data.length > 0;
      this.type = "";
      this.data = [];
      if (hasData) this.onEvent(type, data);
    }
  }

  /** Follows one run's event stream; reconnects with backoff until the `end` event. */
  class RunStream {
    constructor(runId, onStatus, onState) {
      this.runId = runId;
      this.onStatus = onStatus;
      this.onState = (name, text) => { if (!this.stopped) onState(name, text); };
      this.abort = new AbortController();
      this.ended = false;
      this.lastId = "";
    }

    stop() {
      this.abort.abort();
    }

    get stopped() {
      return this.abort.signal.aborted || !session;
    }

    async start() {
      let delay = RECONNECT_FIRST_MS;
      let attempt = 0;
      while (!this.stopped && !this.ended) {
        attempt += 1;
        let gotEvent = false;
        let fatal = false;
        try {
          gotEvent = await this.once(attempt);
        } catch (err) {
          if (this.stopped) return;
          if (err instanceof ApiError) {
            if (err.status === 401 || err.status === 429) return; // authFailed signed out
            if (err.status === 403) { readForbidden(err); return; }
            if (err.status === 404) {
              showMessage("error", `Run ${this.runId}: ${err.describe()}`, "run");
              fatal = true;
            }
          }
          if (!fatal) this.lastError = err;
        }
        if (this.stopped || this.ended || fatal) {
          if (fatal) this.onState("error", "not found");
          return;
        }
        const run = state.run;
        if (run && run.id === this.runId && TERMINAL.has(run.status) && run.data &&
            run.data.finished_at) {
          // closed without `end`, but the run is over: nothing more will come
          this.onState("ended", "ended");
          return;
        }
        if (gotEvent) delay = RECONNECT_FIRST_MS;
        const why = this.lastError ? ` (${this.lastError.message || this.lastError})` : "";
        this.onState("reconnecting", `stream dropped${why}; reconnecting in ` +
          `${Math.round(delay / 1000)} s`);
        this.lastError = null;
        await sleep(delay, this.abort.signal);
        delay = Math.min(delay * 2, RECONNECT_MAX_MS);
      }
    }

    /** One connection; resolves when it closes (true if any event came), throws on errors. */
    async once(attempt) {
      const current = session;
      const headers = { Authorization: `Bearer ${current.token}`, Accept: "text/event-stream" };
      if (this.lastId) headers["Last-Event-ID"] = this.lastId;
      const connection = new AbortController();
      const onStop = () => connection.abort();
      this.abort.signal.addEventListener("abort", onStop, { once: true });
      let silence = null;
      const arm = () => {
        clearTimeout(silence);
        silence = setTimeout(() => {
          this.lastError = new Error("no data for " + STREAM_SILENCE_MS / 1000 + " s");
          connection.abort();
        }, STREAM_SILENCE_MS);
      };
      this.onState("connecting", attempt > 1 ? "reconnecting…" : "connecting…");
      let gotEvent = false;
      try {
        arm();
        let response;
        try {
          response = await fetch(`/v1/deployments/${encodeURIComponent(this.runId)}/events`, {
            headers, cache: "no-store", signal: connection.signal,
          });
        } catch (err) {
          if (this.stopped) return false;
          throw new Error(err && err.name === "AbortError" ? (this.lastError || err).message
            : `network error: ${err && err.message}`);
        }
        if (!response.ok) {
          const error = await errorFrom(response);
          if (current === session && (error.status === 401 || error.status === 429)) {
            authFailed(error);
          }
          throw error;
        }
        if (!response.body || !response.body.getReader) {
          throw new Error("this browser cannot read a streamed response");
        }
        this.onState("live", "live");
        const reader = response.body.getReader();
        const decoder = new TextDecoder("utf-8");
        const parser = new SseParser((type, data) => {
          if (type !== "status" && type !== "end") return;
          let parsed;
          try {
            parsed = JSON.parse(data);
          } catch (_) {
            return; // a malformed frame: ignore it, the next one carries the whole status
          }
          gotEvent = true;
          if (type === "end") this.ended = true;
          this.onStatus(this.runId, parsed, type === "end");
        });
        try {
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            arm();
            parser.push(decoder.decode(value, { stream: true }));
            if (parser.lastId) this.lastId = parser.lastId;
            if (this.ended || this.stopped) break;
          }
          parser.push(decoder.decode());
          parser.finish();
        } catch (err) {
          if (this.stopped) return gotEvent;
          if (!this.lastError) this.lastError = err;
        } finally {
          try { reader.cancel().catch(() => {}); } catch (_) { /* already closed */ }
        }
        if (this.ended) connection.abort();
        return gotEvent;
      } finally {
        clearTimeout(silence);
        this.abort.signal.removeEventListener("abort", onStop);
      }
    }
  }

  // ---------------------------------------------------------------- sign in / out

  function signIn(token) {
    if (session) signOut({ keepMessage: true, keepToken: true });
    sessionStorage.setItem(TOKEN_KEY, token);
    session = { token, pollers: {} };
    $("token").value = "";
    $("token-form").hidden = true;
    $("signed-in").hidden = false;
    clearMessage();
    replaceChildren($("services"), el("p", { className: "empty" }, "Loading services…"));
    replaceChildren($("runs"), el("li", { className: "empty" }, "Loading runs…"));
    poll("services", SERVICES_EVERY_MS, loadServices);
    poll("runs", RUNS_EVERY_MS, loadRuns);
    poll("history", SERVICES_EVERY_MS, loadHistory);
    const wanted = /^#run=(.+)$/.exec(location.hash);
    if (wanted) {
      try {
        openRun(decodeURIComponent(wanted[1]), false);
      } catch (_) {
        // a malformed hash: ignore it
      }
    }
    updateCancelButton();
  }

  function signOut(options) {
    const opts = options || {};
    const old = session;
    if (old) {
      for (const poller of Object.values(old.pollers)) clearTimeout(poller.timer);
    }
    closeRun();
    session = null;
    if (!opts.keepToken) sessionStorage.removeItem(TOKEN_KEY);
    state.services = [];
    state.selectedService = "";
    state.serviceChosen = false;
    state.askedFor.clear();
    state.lastServicesJson = state.lastRunsJson = state.lastHistoryJson = "";
    $("token-form").hidden = false;
    $("signed-in").hidden = true;
    delete $("services").dataset.loaded;
    replaceChildren($("services"), el("p", { className: "empty" }, "Sign in to see services."));
    replaceChildren($("runs"), el("li", { className: "empty" },
      "Sign in to see running deployments."));
    replaceChildren($("history"), el("p", { className: "empty" },
      "Select a service to see its last runs."));
    $("history-service").textContent = "";
    if (!opts.keepMessage) clearMessage();
    updateCancelButton();
  }

  function init() {
    $("token-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const token = $("token").value.trim();
      if (!token) {
        showMessage("error", "Enter an API token first.", "auth");
        $("token").focus();
        return;
      }
      signIn(token);
    });
    $("sign-out").addEventListener("click", (ev) => {
      ev.preventDefault();
      signOut({});
      try {
        history.replaceState(null, "", location.pathname + location.search);
      } catch (_) {
        // ignore
      }
      showMessage("info", "Signed out: the token was removed from this browser tab.", "auth");
      $("token").focus();
    });
    $("cancel-run").addEventListener("click", () => { cancelRun(); });
    for (const id of Object.keys(CANARY_BUTTONS)) {
      $(id).addEventListener("click", () => { canaryAction(id); });
    }
    const saved = sessionStorage.getItem(TOKEN_KEY);
    if (saved) signIn(saved);
    else $("token").focus();
  }

  // Exposed for debugging in the browser console and for tests of the parser.
  window.floyDashboard = { SseParser };

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
