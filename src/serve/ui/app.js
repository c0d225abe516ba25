// inferd's dashboard (served at /ui from the binary). Plain JS, no framework.
//
// Reads: GET /ui/api/stats every second (models, versions, traffic, shadow,
// per-version counters and latency histograms, recent errors) and
// GET /v2/inventory. Writes: only the repository API
// (/v2/repository/models/{m}/traffic, /load, /unload) with the admin token
// the user types, sent as "Authorization: Bearer"; the token lives in this
// page's memory and sessionStorage (gone with the tab), never in a cookie
// or a URL. Everything that comes from a model (names, labels, producer
// strings, error messages) reaches the page through textContent, never as
// HTML.
"use strict";

const POLL_MS = 1000;
const HISTORY = 90; // points per chart line
const COLORS = ["#1f6feb", "#d9480f", "#2f9e44", "#ae3ec9", "#f08c00", "#0c8599", "#e03131", "#5c7cfa"];
const TOKEN_KEY = "inferd.admin_token";

let token = sessionStorage.getItem(TOKEN_KEY) || "";
let previous = null; // the last stats reading: rates and windowed quantiles come from two
const history = new Map(); // "model:version" -> {rps: [], p50: [], p99: [], errors: []}
let lastModelsKey = "";
let editing = false; // a weight input has focus or a typed weight is not applied yet:
let dirty = false;    // the model list is not rebuilt under the user

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function $(id) { return document.getElementById(id); }

async function api(method, path, body, headers) {
  const h = Object.assign({}, headers || {});
  if (path.startsWith("/v2/repository/")) {
    if (!token) throw new Error("enter the admin token to edit");
    h["Authorization"] = "Bearer " + token;
  }
  if (body !== undefined && !(body instanceof Blob) && typeof body !== "string") {
    body = JSON.stringify(body);
    h["Content-Type"] = "application/json";
  }
  const r = await fetch(path, { method, body, headers: h, cache: "no-store", credentials: "omit" });
  const text = await r.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (e) { json = null; }
  if (!r.ok) {
    const message = json && json.error ? json.error : text || r.statusText;
    const err = new Error(r.status + ": " + message);
    err.status = r.status;
    throw err;
  }
  return json;
}

// ---- token ----------------------------------------------------------------

function showToken() {
  $("token-state").textContent = token ? "editing unlocked" : "read-only";
  $("lock").hidden = !token;
  $("unlock").hidden = !!token;
  $("token").hidden = !!token;
  document.body.classList.toggle("admin", !!token);
  lastModelsKey = ""; // redraw the model list with or without its controls
}

async function unlock(ev) {
  ev.preventDefault();
  const given = $("token").value.trim();
  if (!given) return;
  token = given;
  try {
    await api("GET", "/v2/repository/status");
    sessionStorage.setItem(TOKEN_KEY, token);
    $("token").value = "";
    say("token accepted: edits go through the repository API", false);
  } catch (e) {
    token = "";
    say(e.status === 403 ? "wrong token" : e.status === 404 ? "the repository API is off (serve --admin-token)" : e.message, true);
  }
  showToken();
}

function lock() {
  token = "";
  editing = dirty = false;
  sessionStorage.removeItem(TOKEN_KEY);
  showToken();
}

function say(message, bad) {
  const p = $("edit-result");
  p.textContent = message;
  p.className = bad ? "bad" : "muted";
}

// ---- models ---------------------------------------------------------------

function renderModels(models) {
  const key = JSON.stringify(models) + (token ? "1" : "0");
  if (key === lastModelsKey || editing) return;
  lastModelsKey = key;
  const root = $("models");
  root.replaceChildren();
  if (!models.length) root.append(el("p", { class: "muted", text: "no models" }));
  for (const m of models) {
    const box = el("div", { class: "model", "data-model": m.name });
    const policy = m.config || {};
    const shadow = policy.shadow ? `shadow: version ${policy.shadow.version} at ${policy.shadow.percent}%` : "no shadow";
    box.append(el("h3", {}, el("span", { class: "model-name", text: m.name }), " ",
      el("span", { class: "muted small", text: shadow + (m.reason ? " — " + m.reason : "") })));
    const table = el("table", { class: "versions" },
      el("thead", {}, el("tr", {}, ...["version", "state", "weight %", "canary answered", "canary failed", "shadow agreed / disagreed", "sha256"].map(t => el("th", { text: t })))));
    const body = el("tbody");
    for (const v of m.versions || []) {
      const weight = token
        ? el("input", { class: "weight", type: "number", min: "0", max: "100", value: String(v.weight), "data-version": v.version,
            onfocus: () => { editing = true; }, oninput: () => { dirty = editing = true; },
            onblur: () => { editing = dirty; } })
        : el("span", { class: "weight-value", text: String(v.weight) });
      const s = v.shadow || {};
      body.append(el("tr", { "data-version": v.version },
        el("td", { text: v.version }),
        el("td", {}, el("span", { class: "state-" + v.state, text: v.state }), v.reason ? el("div", { class: "muted small", text: v.reason }) : "",
          v.rolled_back ? el("div", { class: "bad small", text: "rolled back: " + v.rolled_back }) : ""),
        el("td", {}, weight),
        el("td", { text: String((v.canary || {}).answered ?? "") }),
        el("td", { text: String((v.canary || {}).failed ?? "") }),
        el("td", { text: `${s.agreed ?? 0} / ${s.disagreed ?? 0}` }),
        el("td", { class: "mono", text: (v.sha256 || "").slice(0, 16) })));
    }
    table.append(body);
    box.append(table);
    if (token) {
      box.append(el("div", { class: "actions" },
        el("button", { type: "button", class: "apply-traffic", onclick: () => applyTraffic(m.name, box) }, "Apply traffic"),
        el("button", { type: "button", class: "load", onclick: () => repositoryCall(m.name, "load") }, "Reload from repository"),
        el("button", { type: "button", class: "unload", onclick: () => repositoryCall(m.name, "unload") }, "Unload")));
    }
    root.append(box);
  }
}

async function applyTraffic(name, box) {
  const traffic = {};
  for (const input of box.querySelectorAll("input.weight")) traffic[input.dataset.version] = Number(input.value);
  editing = dirty = false;
  try {
    await api("POST", `/v2/repository/models/${encodeURIComponent(name)}/traffic`, { traffic });
    say(`traffic of ${name} is now ` + Object.entries(traffic).map(([v, w]) => `${v}: ${w}%`).join(", "), false);
  } catch (e) {
    // a wrong token, weights not summing to 100, another edit running (409): the server's words
    say(`traffic of ${name} not changed: ${e.message}`, true);
  }
  lastModelsKey = "";
  poll();
}

async function repositoryCall(name, call) {
  if (call === "unload" && !confirm(`Unload every version of ${name}?`)) return;
  say(`${call} ${name}…`, false);
  try {
    await api("POST", `/v2/repository/models/${encodeURIComponent(name)}/${call}`, {});
    say(`${call} ${name}: done`, false);
  } catch (e) {
    say(`${call} ${name} failed: ${e.message}`, true);
  }
  lastModelsKey = "";
  poll();
}

// ---- charts ---------------------------------------------------------------

// The q-quantile of the requests counted between two readings of one
// cumulative histogram, interpolated linearly inside the bucket (as
// Prometheus' histogram_quantile does); null when none were counted.
function quantile(q, bounds, now, before) {
  const counts = now.counts.map((c, i) => c - (before ? before.counts[i] : 0));
  const total = counts.reduce((a, b) => a + b, 0);
  if (total <= 0) return null;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    if (seen + counts[i] >= rank && counts[i] > 0) {
      const lower = i === 0 ? 0 : bounds[i - 1];
      const upper = i < bounds.length ? bounds[i] : bounds[bounds.length - 1];
      return lower + (upper - lower) * ((rank - seen) / counts[i]);
    }
    seen += counts[i];
  }
  return bounds[bounds.length - 1];
}

function record(stats) {
  const seconds = previous ? stats.time - previous.time : 0;
  const before = new Map((previous ? previous.series : []).map(s => [s.model + ":" + s.version, s]));
  for (const s of stats.series) {
    const id = s.model + ":" + s.version;
    if (!history.has(id)) history.set(id, { rps: [], p50: [], p99: [], errors: [] });
    const h = history.get(id);
    const b = before.get(id);
    if (!previous || seconds <= 0) continue;
    const push = (list, v) => { list.push(v); if (list.length > HISTORY) list.shift(); };
    push(h.rps, (s.requests - (b ? b.requests : 0)) / seconds);
    push(h.errors, (s.errors - (b ? b.errors : 0)) / seconds);
    const p50 = quantile(0.5, stats.latency_bounds, s.latency, b && b.latency);
    const p99 = quantile(0.99, stats.latency_bounds, s.latency, b && b.latency);
    push(h.p50, p50 === null ? null : p50 * 1000);
    push(h.p99, p99 === null ? null : p99 * 1000);
  }
  previous = stats;
}

function draw(canvasId, field) {
  const canvas = $(canvasId);
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 28;
  ctx.clearRect(0, 0, w, h);
  let max = 0;
  for (const series of history.values()) for (const v of series[field]) if (v !== null && v > max) max = v;
  max = max > 0 ? max * 1.15 : 1;
  ctx.strokeStyle = "#d9dde5";
  ctx.fillStyle = "#6b7280";
  ctx.font = "11px sans-serif";
  for (let i = 0; i <= 2; i++) {
    const y = pad / 2 + (h - pad) * i / 2;
    ctx.beginPath(); ctx.moveTo(pad, y); ctx.lineTo(w, y); ctx.stroke();
    ctx.fillText((max * (1 - i / 2)).toPrecision(2), 2, y + 4);
  }
  let n = 0;
  for (const [id, series] of history) {
    const points = series[field];
    ctx.strokeStyle = COLORS[n++ % COLORS.length];
    ctx.lineWidth = 2;
    ctx.beginPath();
    let drawing = false;
    points.forEach((v, i) => {
      if (v === null) { drawing = false; return; }
      const x = pad + (w - pad) * (i + HISTORY - points.length) / (HISTORY - 1);
      const y = pad / 2 + (h - pad) * (1 - v / max);
      if (drawing) ctx.lineTo(x, y); else ctx.moveTo(x, y);
      drawing = true;
    });
    ctx.stroke();
  }
  canvas.dataset.points = String([...history.values()].reduce((a, s) => a + s[field].length, 0));
}

function renderLegend() {
  const ul = $("legend");
  ul.replaceChildren();
  let n = 0;
  for (const [id, series] of history) {
    const swatch = el("span", { class: "swatch" });
    swatch.style.background = COLORS[n++ % COLORS.length];
    const last = series.rps.length ? series.rps[series.rps.length - 1] : 0;
    ul.append(el("li", {}, swatch, el("span", { class: "legend-name", text: id }), ` ${last.toFixed(1)} req/s`));
  }
}

// ---- errors, inventory ------------------------------------------------------

function renderErrors(errors) {
  const body = $("errors").tBodies[0];
  body.replaceChildren();
  for (const e of errors.slice(0, 20)) {
    body.append(el("tr", {},
      el("td", { text: new Date(e.time * 1000).toLocaleTimeString() }),
      el("td", { class: "bad", text: String(e.status) }),
      el("td", { class: "mono", text: `${e.method} ${e.path}` }),
      el("td", { text: e.model ? `${e.model}:${e.version}` : "" }),
      el("td", { text: e.message })));
  }
  if (!errors.length) body.append(el("tr", {}, el("td", { colspan: "5", class: "muted", text: "none" })));
}

function describe(value) {
  if (value === null || value === undefined) return "—";
  if (typeof value !== "object") return String(value);
  return Object.entries(value).map(([k, v]) => `${k}: ${typeof v === "object" && v !== null ? JSON.stringify(v) : v}`).join(", ");
}

async function loadInventory() {
  try {
    const inv = await api("GET", "/v2/inventory");
    const body = $("inventory").tBodies[0];
    body.replaceChildren();
    for (const m of inv.models || []) {
      const golden = m.golden_samples ? describe(m.golden_samples) : "none";
      body.append(el("tr", {},
        el("td", { text: m.name }), el("td", { text: m.version }),
        el("td", { class: "mono", title: m.sha256 || "", text: (m.sha256 || "").slice(0, 16) }),
        el("td", { text: describe(m.opsets) }),
        el("td", { text: describe(m.producer) }),
        el("td", { text: describe(m.training_environment) }),
        el("td", { text: golden }),
        el("td", { text: m.loaded_at || "" })));
    }
  } catch (e) {
    say("inventory: " + e.message, true);
  }
}

// ---- try it -------------------------------------------------------------------

function renderTryModels(models) {
  const select = $("try-model");
  const names = models.map(m => m.name);
  if ([...select.options].map(o => o.value).join("\n") === names.join("\n")) return;
  const chosen = select.value;
  select.replaceChildren(...names.map(n => el("option", { value: n, text: n })));
  if (names.includes(chosen)) select.value = chosen;
}

async function tryIt(ev) {
  ev.preventDefault();
  const model = $("try-model").value;
  const file = $("try-image").files[0];
  const k = Math.max(1, Math.min(100, Number($("try-topk").value) || 5));
  const out = $("try-output");
  const table = $("try-topk-table");
  table.hidden = true;
  out.textContent = "…";
  try {
    let answer;
    const path = `/v2/models/${encodeURIComponent(model)}/infer`;
    if (file) {
      const type = file.type === "image/png" || file.type === "image/jpeg" ? file.type : "image/jpeg";
      answer = await api("POST", `${path}?top_k=${k}`, file, { "Content-Type": type });
    } else {
      const text = $("try-json").value.trim();
      if (!text) throw new Error("choose an image or write a V2 JSON request");
      let request;
      try { request = JSON.parse(text); } catch (e) { throw new Error("the JSON request does not parse: " + e.message); }
      answer = await api("POST", path, request);
    }
    const top = answer && answer.parameters && answer.parameters.top_k;
    if (top) {
      const body = table.tBodies[0];
      body.replaceChildren(...top.map((t, i) => el("tr", {},
        el("td", { text: String(i + 1) }), el("td", { class: "top-label", text: t.label ?? "" }),
        el("td", { text: String(t.index) }), el("td", { text: t.probability.toFixed(4) }))));
      table.hidden = false;
    }
    out.textContent = `answered by ${answer.model_name}:${answer.model_version}\n` + JSON.stringify(answer.outputs, null, 1).slice(0, 4000);
  } catch (e) {
    out.textContent = e.message;
  }
}

// ---- polling --------------------------------------------------------------------

async function poll() {
  try {
    const stats = await api("GET", "/ui/api/stats");
    $("server-state").textContent = `up ${Math.round(stats.uptime_seconds)} s · model control ${stats.model_control}` +
      (stats.repository_api ? "" : " · repository API off (read-only)");
    record(stats);
    renderModels(stats.models);
    renderTryModels(stats.models);
    renderErrors(stats.recent_errors);
    for (const [id, field] of [["chart-rps", "rps"], ["chart-p50", "p50"], ["chart-p99", "p99"], ["chart-errors", "errors"]]) draw(id, field);
    renderLegend();
    document.body.dataset.polls = String(Number(document.body.dataset.polls || 0) + 1);
  } catch (e) {
    $("server-state").textContent = "server unreachable: " + e.message;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("token-form").addEventListener("submit", unlock);
  $("lock").addEventListener("click", lock);
  $("try-form").addEventListener("submit", tryIt);
  showToken();
  poll();
  loadInventory();
  setInterval(poll, POLL_MS);
  setInterval(loadInventory, 15000);
});
