// The operator console: polls /api/fleet and /api/models, draws what moves as SVG, and
// sends actions with the operator's token (kept in this tab's sessionStorage only).
"use strict";

const state = { config: { poll_s: 2 }, fleet: null, models: null, selectedVersion: null, selectedJob: null, operator: null };
const $ = (selector, root = document) => root.querySelector(selector);
const TOKEN_KEY = "moodmoji-console-token";
const COLORS = ["#5b8cff", "#f0a531", "#3fb96b", "#ef5b5b", "#b07cff", "#4fc3d9"];

// replaceChildren, leaving out the nulls that optional parts of a view leave.
function put(node, ...children) {
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const fmt = (value, digits = 4) => (value === null || value === undefined ? "–" : Number(value).toPrecision(digits).replace(/\.?0+$/, ""));
const ms = (seconds) => (seconds === null || seconds === undefined ? "–" : `${Math.round(seconds * 1000)} ms`);
function ago(unixSeconds) {
  if (!unixSeconds) return "–";
  const s = Math.max(0, Date.now() / 1000 - unixSeconds);
  if (s < 90) return `${Math.round(s)} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 172800) return `${Math.round(s / 3600)} h ago`;
  return new Date(unixSeconds * 1000).toISOString().slice(0, 16).replace("T", " ") + " UTC";
}
const when = (unixSeconds) => (unixSeconds ? new Date(unixSeconds * 1000).toISOString().slice(0, 19).replace("T", " ") + " UTC" : "–");

async function getJSON(url) {
  const response = await fetch(url, { cache: "no-store" });
  const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

// --- banner and confirmation ------------------------------------------------------

function banner(kind, message, detail) {
  const node = $("#banner");
  node.className = kind;
  put(node, el("span", { id: "banner-text" }, message), detail ? el("pre", {}, detail) : null);
  node.hidden = false;
}

function confirmAction(text) {
  const dialog = $("#confirm");
  $("#confirm-text").textContent = text;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
  });
}

async function act(question, url, options = {}) {
  if (!(await confirmAction(question))) return null;
  const token = sessionStorage.getItem(TOKEN_KEY) || "";
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  if (options.json) headers["Content-Type"] = "application/json";
  let body = {};
  try {
    const response = await fetch(url, { method: "POST", headers, body: options.form || (options.json ? JSON.stringify(options.json) : undefined) });
    body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
    if (response.status === 401) banner("error", `Refused: ${body.error}. Enter an operator token above.`);
    else if (body.error) banner("error", body.error);
    else banner(body.ok ? "ok" : "error", body.message, body.table);
  } catch (error) {
    banner("error", `The console did not answer: ${error.message}`);
  }
  refreshModels();
  refreshActions();
  return body;
}

// --- charts -----------------------------------------------------------------------

function lineChart(svg, series, { xLabel = (x) => x, yLabel = (y) => fmt(y, 3), yMin = null } = {}) {
  const width = svg.clientWidth || 600, height = svg.clientHeight || 180;
  const pad = { left: 48, right: 12, top: 10, bottom: 22 };
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const points = series.flatMap((s) => s.points);
  const ns = "http://www.w3.org/2000/svg";
  const make = (tag, attrs) => { const n = document.createElementNS(ns, tag); for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v); return n; };
  svg.replaceChildren();
  if (points.length === 0) {
    svg.append(Object.assign(make("text", { x: width / 2, y: height / 2, "text-anchor": "middle" }), { textContent: "no data yet" }));
    return;
  }
  const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
  let x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = yMin ?? Math.min(...ys), y1 = Math.max(...ys);
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) { y1 = y0 + 1; }
  const X = (x) => pad.left + ((x - x0) / (x1 - x0)) * (width - pad.left - pad.right);
  const Y = (y) => height - pad.bottom - ((y - y0) / (y1 - y0)) * (height - pad.top - pad.bottom);
  for (const y of [y0, (y0 + y1) / 2, y1]) {
    svg.append(make("line", { x1: pad.left, x2: width - pad.right, y1: Y(y), y2: Y(y), class: "grid" }));
    svg.append(Object.assign(make("text", { x: pad.left - 6, y: Y(y) + 4, "text-anchor": "end" }), { textContent: yLabel(y) }));
  }
  svg.append(make("line", { x1: pad.left, x2: width - pad.right, y1: height - pad.bottom, y2: height - pad.bottom, class: "axis" }));
  svg.append(Object.assign(make("text", { x: pad.left, y: height - 6 }), { textContent: xLabel(x0) }));
  svg.append(Object.assign(make("text", { x: width - pad.right, y: height - 6, "text-anchor": "end" }), { textContent: xLabel(x1) }));
  series.forEach((s, i) => {
    if (!s.points.length) return;
    const d = s.points.map((p, j) => `${j ? "L" : "M"}${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join(" ");
    svg.append(make("path", { d, fill: "none", stroke: s.color || COLORS[i % COLORS.length], "stroke-width": 2 }));
    if (s.points.length === 1) svg.append(make("circle", { cx: X(s.points[0][0]), cy: Y(s.points[0][1]), r: 3, fill: s.color || COLORS[i % COLORS.length] }));
  });
}

function legend(series) {
  return el("div", { class: "legend" }, series.map((s, i) => el("span", {}, el("i", { style: `background:${s.color || COLORS[i % COLORS.length]}` }), s.name)));
}

// --- models -----------------------------------------------------------------------

function scoreLine(metrics) {
  return Object.entries(metrics || {}).map(([label, scores]) => `${label} FID ${fmt(scores.fid)} · KID ${fmt(scores.kid, 3)}`).join("  |  ") || "no scores recorded";
}

function renderModels() {
  const view = state.models;
  if (!view) return;
  $("#live-version").textContent = view.active;
  if (!state.selectedVersion || !view.versions.some((v) => v.name === state.selectedVersion)) state.selectedVersion = view.active;
  put($("#version-list"), ...view.versions.slice().reverse().map((v) => el("li", {
    class: `version-row${v.name === state.selectedVersion ? " selected" : ""}`, "data-version": v.name, "data-state": v.state,
    onclick: () => { state.selectedVersion = v.name; renderModels(); },
  }, el("div", {}, el("span", { class: "name" }, v.name), el("span", { class: `badge ${v.state}` }, v.state)), el("div", { class: "sub" }, scoreLine(v.metrics)))));
  const from = $("#retrain-from");
  const choices = view.versions.filter((v) => v.state !== "discarded").map((v) => v.name);
  if (from.dataset.choices !== choices.join(" ")) { // rebuilt only when they change: an open list stays open
    const chosen = from.value;
    put(from, el("option", { value: "" }, "(train the live configuration from scratch)"), choices.map((name) => el("option", { value: name }, name)));
    from.value = chosen;
    from.dataset.choices = choices.join(" ");
  }
  renderVersion(view.versions.find((v) => v.name === state.selectedVersion));
}

function scoresTable(version) {
  const rows = [];
  const isLive = version.state === "live";
  const metricNames = { fid: "FID ↓", kid: "KID ↓", precision: "precision ↑", recall: "recall ↑", class_consistency: "class consistency ↑", domain_is: "domain IS ↑" };
  for (const [label, scores] of Object.entries(version.metrics || {})) {
    for (const [metric, value] of Object.entries(scores)) {
      const live = version.live_scores?.[label]?.[metric];
      rows.push(el("tr", {}, el("td", {}, label), el("td", {}, metricNames[metric] || metric), el("td", { class: "num" }, fmt(value)), isLive ? null : el("td", { class: "num" }, fmt(live))));
    }
  }
  if (!rows.length) return el("p", { class: "muted" }, "No scores recorded (published by hand): promote says it was not compared.");
  return el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "label"), el("th", {}, "metric"), el("th", {}, isLive ? `${version.name} (live)` : version.name), isLive ? null : el("th", {}, `${state.models.active} (live)`))), el("tbody", {}, rows));
}

// One row per setting, one column per label: the labels' configurations side by side.
function configTable(config) {
  const labels = Object.keys(config);
  const keys = [...new Set(labels.flatMap((label) => Object.keys(config[label] || {})))];
  const shown = (value) => (typeof value === "object" && value !== null ? JSON.stringify(value) : String(value));
  return el("div", { class: "scroll" }, el("table", { class: "config" },
    el("thead", {}, el("tr", {}, el("th", {}, "setting"), labels.map((label) => el("th", {}, label)))),
    el("tbody", {}, keys.map((key) => el("tr", {}, el("td", {}, key), labels.map((label) => el("td", { class: "num" }, key in (config[label] || {}) ? shown(config[label][key]) : "–")))))));
}

const sheetTimers = {};
function sheetFigure(version, label) {
  const url = `/api/models/${encodeURIComponent(version)}/sheet/${encodeURIComponent(label)}`;
  const holder = el("div", { class: "placeholder" }, "drawing the sheet…");
  const figure = el("figure", {}, el("figcaption", {}, `${label}: ${state.config.sheet_samples || 64} samples, light and dark theme`), holder);
  const key = `${version}/${label}`;
  clearTimeout(sheetTimers[key]);
  const load = async () => {
    try {
      const response = await fetch(url, { cache: "no-store" });
      if (response.status === 202) { sheetTimers[key] = setTimeout(load, 1000); return; }
      if (!response.ok) { const body = await response.json().catch(() => ({})); holder.textContent = body.state || body.error || `HTTP ${response.status}`; return; }
      const blob = await response.blob();
      holder.replaceWith(el("img", { class: "sheet", "data-label": label, "data-version": version, alt: `${label} contact sheet of ${version}`, src: URL.createObjectURL(blob) }));
    } catch (error) { holder.textContent = `could not load: ${error.message}`; }
  };
  load();
  return figure;
}

let shownVersion = null;
function renderVersion(version) {
  const detail = $("#version-detail");
  if (!version) { put(detail, el("p", { class: "muted" }, "No versions in the registry.")); return; }
  const signature = JSON.stringify(version);
  if (shownVersion === signature) return; // unchanged: keep the sheets that are loading
  shownVersion = signature;
  const promoted = version.promoted;
  const facts = [
    version.published_at ? `published ${when(version.published_at)}` : "shipped models",
    promoted ? `${promoted.action === "promote" ? "promoted" : promoted.action} ${when(promoted.at)}${promoted.by ? ` by ${promoted.by}` : ""}${promoted.forced ? " (forced)" : ""}` : null,
    version.requested_by ? `retrain requested by ${version.requested_by}` : null,
    version.lineage?.base ? `trained against ${version.lineage.base}` : null,
    version.discarded_at ? `discarded ${when(version.discarded_at)}${version.discarded_by ? ` by ${version.discarded_by}` : ""}` : null,
  ].filter(Boolean);
  const force = el("input", { type: "checkbox", id: "force-promote" });
  const canPromote = version.state !== "live";
  put(detail, 
    el("div", { class: "panel-head" }, el("h2", {}, version.name, el("span", { class: `badge ${version.state}` }, version.state)), el("span", { class: "muted" }, version.labels.join(", "))),
    el("p", { class: "muted", id: "version-facts" }, facts.join(" · ")),
    el("div", { class: "actions-row" },
      el("button", { id: "promote-btn", disabled: !canPromote, onclick: () => act(`Make ${version.name} live on every worker${force.checked ? " even if it is worse or does not load (forced)" : " if it is no worse than " + state.models.active}?`, `/api/models/${encodeURIComponent(version.name)}/promote`, { json: { force: force.checked } }) }, `Promote ${version.name}`),
      el("label", { class: "inline" }, force, " force"),
      el("button", { id: "discard-btn", class: "danger", disabled: version.state === "live" || version.state === "discarded" || version.name === "default", onclick: () => act(`Discard ${version.name}? It stays in the registry but will not go live unless forced.`, `/api/models/${encodeURIComponent(version.name)}/discard`) }, "Discard")),
    version.worse?.length ? el("p", { class: "warn-text" }, `Worse than the live version: ${version.worse.join("; ")}`) : null,
    el("h2", {}, "Scores"), scoresTable(version),
    el("h2", { style: "margin-top:14px" }, "Contact sheets"),
    el("div", { class: "sheets" }, version.labels.map((label) => sheetFigure(version.name, label))),
    version.files.length ? el("h2", { style: "margin-top:14px" }, "Published with it") : null,
    version.files.length ? el("div", { class: "sheets" }, version.files.map((name) => el("figure", {}, el("figcaption", {}, name), el("img", { src: `/api/models/${encodeURIComponent(version.name)}/files/${name}`, alt: name, style: "max-width:520px" })))) : null,
    el("h2", { style: "margin-top:14px" }, "Training configuration"),
    Object.keys(version.config).length ? configTable(version.config) : el("p", { class: "muted" }, "Not recorded in meta.json (a hand-published version); the checkpoints carry it."),
    Object.keys(version.data).length ? el("pre", {}, JSON.stringify(version.data, null, 1)) : null,
  );
}

async function refreshModels() {
  try { state.models = await getJSON("/api/models"); renderModels(); } catch (error) { banner("error", `Cannot read the registry: ${error.message}`); }
}

// --- fleet: queue, workers, jobs ----------------------------------------------------

function renderQueue(fleet) {
  const t = fleet.traffic;
  const cards = Object.entries(fleet.queue).map(([label, q]) => el("div", { class: "card", "data-label": label },
    el("div", { class: "sub" }, `${label} queue`), el("div", { class: "big" }, q.depth),
    el("div", { class: "sub" }, `${q.waiting} waiting · ${q.pending} with a worker`),
    el("div", { class: `bar${q.depth > fleet.max_length * 0.5 ? " hot" : ""}` }, el("div", { style: `width:${Math.min(100, (100 * q.depth) / fleet.max_length)}%` }))));
  const windowText = t.window_s ? `over the last ${t.window_s < 120 ? Math.round(t.window_s) + " s" : Math.round(t.window_s / 60) + " min"}` : "waiting for data";
  cards.push(
    el("div", { class: "card", id: "card-rps" }, el("div", { class: "sub" }, "requests / s"), el("div", { class: "big" }, t.rps === null ? "–" : fmt(t.rps, 3)), el("div", { class: "sub" }, windowText)),
    el("div", { class: "card", id: "card-p50" }, el("div", { class: "sub" }, "latency p50"), el("div", { class: "big" }, ms(t.p50_s)), el("div", { class: "sub" }, "created → answered")),
    el("div", { class: "card", id: "card-p99" }, el("div", { class: "sub" }, "latency p99"), el("div", { class: "big" }, ms(t.p99_s)), el("div", { class: "sub" }, `${t.requests ?? 0} requests`)),
    el("div", { class: "card" }, el("div", { class: "sub" }, "dead letters"), el("div", { class: "big" }, fleet.dead_letters.length), el("div", { class: "sub" }, "latest 50 kept here")));
  put($("#queue-cards"), ...cards);
  const clock = (x) => new Date(x * 1000).toISOString().slice(11, 19);
  lineChart($("#chart-rps"), [{ name: "requests/s", points: t.series.map((p) => [p.at, p.rps]) }], { xLabel: clock, yMin: 0 });
  const depthSeries = Object.keys(fleet.queue).map((label) => ({ name: label, points: t.series.map((p) => [p.at, p.depth[label] ?? 0]) }));
  put($("#depth-legend"), legend(depthSeries));
  lineChart($("#chart-depth"), depthSeries, { xLabel: clock, yMin: 0, yLabel: (y) => (Number.isInteger(y) ? y : y.toFixed(1)) });
  $("#dead-count").textContent = fleet.dead_letters.length ? `(${fleet.dead_letters.length})` : "(none)";
  put($("#dead-letters tbody"), ...(fleet.dead_letters.length ? fleet.dead_letters.map((d) => el("tr", { class: "dead-letter" },
    el("td", {}, ago(d.at)), el("td", {}, d.label), el("td", { class: "reason" }, d.reason), el("td", { class: "num" }, d.deliveries), el("td", {}, d.worker_id || "–"), el("td", {}, el("code", {}, d.payload))))
    : [el("tr", {}, el("td", { colspan: 6, class: "muted" }, "No dead letters."))]));
}

function renderWorkers(fleet) {
  const silent = fleet.workers.filter((w) => w.silent);
  const count = $("#silent-count");
  count.hidden = silent.length === 0;
  count.textContent = `${silent.length} silent`;
  put($("#workers tbody"), ...(fleet.workers.length ? fleet.workers.map((w) => el("tr", { class: `worker-row${w.silent ? " silent" : ""}`, "data-worker": w.id },
    el("td", {}, el("strong", {}, w.id)), el("td", {}, w.host || "–"), el("td", {}, w.labels.join(", ")),
    el("td", { class: "version" }, w.version || "–"), el("td", {}, [w.device || "–", w.precision ? ` · ${w.precision}` : null].filter(Boolean).join("")), el("td", { class: "num" }, w.max_batch ?? "–"),
    el("td", { class: "num" }, `${w.sampled ?? 0} emojis / ${w.batches ?? 0} batches`), el("td", {}, ago(w.last_seen)),
    el("td", { class: "status" }, w.silent ? `⚠ silent for ${Math.round(w.age_s)} s` : "alive")))
    : [el("tr", {}, el("td", { colspan: 9, class: "muted" }, "No worker has sent a heartbeat since the console started."))]));
}

function progress(job) {
  if (!job.total) return null;
  const pct = Math.round((100 * job.done) / job.total);
  return el("div", { class: "bar" }, el("div", { style: `width:${pct}%` }));
}

function renderJobs(fleet) {
  const jobs = fleet.jobs;
  if (!state.selectedJob && jobs.length) state.selectedJob = jobs[0].id;
  put($("#job-list"), ...(jobs.length ? jobs.map((job) => el("li", { class: `job-row${job.id === state.selectedJob ? " selected" : ""}`, "data-job": job.id, onclick: () => { state.selectedJob = job.id; renderJobs(state.fleet); loadJob(); } },
    el("div", {}, el("span", { class: "name" }, job.id), el("span", { class: `badge ${job.state}` }, job.state)),
    el("div", { class: "sub" }, [job.stage, job.detail, job.eta_s ? `ETA ${Math.round(job.eta_s / 60)} min` : null, job.requested_by ? `by ${job.requested_by}` : null].filter(Boolean).join(" · ")),
    progress(job)))
    : [el("li", { class: "muted" }, "No retrain jobs.")]));
}

let jobShown = null;
async function loadJob() {
  const id = state.selectedJob;
  const detail = $("#job-detail");
  if (!id) return;
  const job = (state.fleet?.jobs || []).find((j) => j.id === id) || { id };
  let curves = {};
  try { curves = (await getJSON(`/api/jobs/${encodeURIComponent(id)}`)).curves; } catch { curves = {}; }
  const signature = JSON.stringify([job, curves]);
  if (signature === jobShown) return;
  jobShown = signature;
  const lossSeries = [], metricSeries = [];
  for (const [label, records] of Object.entries(curves)) {
    for (const key of ["loss_d", "loss_g"]) lossSeries.push({ name: `${label} ${key.replace("loss_", "")} loss`, points: records.filter((r) => key in r).map((r) => [r.epoch, r[key]]) });
    metricSeries.push({ name: `${label} FID`, points: records.filter((r) => "fid" in r).map((r) => [r.epoch, r.fid]) });
  }
  const lossSvg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  lossSvg.setAttribute("class", "chart"); lossSvg.id = "chart-loss";
  const fidSvg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  fidSvg.setAttribute("class", "chart"); fidSvg.id = "chart-fid";
  const uploads = el("p", { class: "muted" }, "The upload is not imported yet (or its runner does not share the job folder).");
  if (job.has_upload) {
    fetch(`/api/jobs/${encodeURIComponent(id)}/uploads.png`, { cache: "no-store" }).then(async (response) => {
      if (response.ok) uploads.replaceWith(el("img", { id: "upload-sheet", alt: "the uploaded images", src: URL.createObjectURL(await response.blob()) }));
    }).catch(() => {});
  }
  put(detail, 
    el("div", { class: "panel-head" }, el("h2", {}, `Job ${id}`, el("span", { class: `badge ${job.state}` }, job.state || "?")), el("span", { class: "muted" }, job.version ? `→ ${job.version}` : "")),
    el("p", { class: "muted" }, [job.stage && `stage ${job.stage}`, job.total ? `${job.done}/${job.total} steps` : null, job.detail, job.requested_by && `requested by ${job.requested_by}`, job.from_version && `from ${job.from_version}`].filter(Boolean).join(" · ")),
    progress(job),
    job.state === "failed" ? el("p", { class: "warn-text" }, job.message) : null,
    job.state === "done" && job.message ? el("pre", {}, job.message) : null,
    job.state === "done" && job.version ? el("div", { class: "actions-row" }, el("button", { id: "open-version", onclick: () => { state.selectedVersion = job.version; shownVersion = null; location.hash = "#models"; renderModels(); } }, `Look at ${job.version} (promote or discard it there)`)) : null,
    el("h2", { style: "margin-top:12px" }, "Losses per epoch"), legend(lossSeries), lossSvg,
    metricSeries.some((m) => m.points.length)
      ? [el("h2", { style: "margin-top:12px" }, "FID while training"), legend(metricSeries), fidSvg]
      : el("p", { class: "muted" }, "No FID scored during training (this configuration scores every eval_every epochs, or only at the end)."),
    el("h2", { style: "margin-top:12px" }, "Uploaded images"), uploads);
  lineChart(lossSvg, lossSeries, { xLabel: (x) => `epoch ${Math.round(x)}` });
  lineChart(fidSvg, metricSeries, { xLabel: (x) => `epoch ${Math.round(x)}` });
}

async function refreshFleet() {
  try {
    const fleet = await getJSON("/api/fleet");
    state.fleet = fleet;
    $("#poll-state").textContent = fleet.error ? fleet.error : `updated ${new Date().toISOString().slice(11, 19)} UTC`;
    $("#poll-state").className = fleet.error ? "warn-text" : "muted";
    renderQueue(fleet);
    renderWorkers(fleet);
    renderJobs(fleet);
    if (location.hash === "#retrain") loadJob();
  } catch (error) {
    $("#poll-state").textContent = `console unreachable: ${error.message}`;
    $("#poll-state").className = "warn-text";
  }
}

async function refreshActions() {
  try {
    const entries = await getJSON("/api/actions");
    put($("#action-log tbody"), ...(entries.length ? entries.map((a) => el("tr", { class: "action-row" }, el("td", {}, when(a.at)), el("td", {}, a.by), el("td", {}, a.action + (a.version ? ` ${a.version}` : "") + (a.forced ? " (forced)" : "")), el("td", { class: a.ok ? "" : "warn-text" }, a.message)))
      : [el("tr", {}, el("td", { colspan: 4, class: "muted" }, "Nothing yet."))]));
  } catch { /* the banner shows registry errors; the log can wait for the next poll */ }
}

// --- token, tabs, start -----------------------------------------------------------

async function checkToken() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const shown = $("#operator");
  if (!token) { shown.textContent = state.config.read_only ? "read-only console" : "not signed in"; return; }
  const response = await fetch("/api/whoami", { headers: { Authorization: `Bearer ${token}` } });
  const body = await response.json().catch(() => ({}));
  if (response.ok) { shown.textContent = `operator: ${body.operator}`; shown.className = ""; }
  else { shown.textContent = "token refused"; shown.className = "warn-text"; banner("error", `Refused: ${body.error || response.status}`); }
}

let lastView = null;
function showView() {
  const view = (location.hash || "#models").slice(1);
  if (lastView !== null && view !== lastView) $("#banner").hidden = true; // a result belongs to its view
  lastView = view;
  for (const section of document.querySelectorAll(".view")) section.hidden = section.id !== `view-${view}`;
  for (const tab of document.querySelectorAll("#tabs a")) tab.classList.toggle("active", tab.dataset.view === view);
  if (state.fleet) { renderQueue(state.fleet); renderWorkers(state.fleet); }
  if (view === "retrain") loadJob();
}

async function start() {
  $("#token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("#token-input").value.trim();
    if (value) sessionStorage.setItem(TOKEN_KEY, value); else sessionStorage.removeItem(TOKEN_KEY);
    $("#token-input").value = "";
    $("#banner").hidden = true;
    checkToken();
  });
  $("#rollback-btn").addEventListener("click", () => {
    const previous = state.models?.previous;
    act(previous ? `Roll back from ${state.models.active} to ${previous}, the version the last promotion replaced?` : "Roll back? No promotion is recorded, so there may be nothing to go back to.", "/api/rollback");
  });
  $("#retrain-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    const file = $("#retrain-upload").files[0];
    if (!file) { banner("error", "Choose a .zip of images first."); return; }
    act(`Queue a retrain on ${file.name} (${Math.round(file.size / 1024)} kB)?`, "/api/retrain", { form }).then(refreshFleet);
  });
  window.addEventListener("hashchange", showView);
  try { state.config = await getJSON("/api/config"); } catch { /* defaults */ }
  showView();
  await Promise.all([refreshModels(), refreshFleet(), refreshActions(), checkToken()]);
  setInterval(() => { refreshFleet(); refreshModels(); refreshActions(); }, state.config.poll_s * 1000);
}

start();
