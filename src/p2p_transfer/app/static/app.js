// p2p-transfer desktop app UI. Plain DOM, no framework, no inline code (CSP).
// Every action is one call to the JSON API (docs/API.md); live state comes from
// one WebSocket whose first message is a full snapshot, then the event stream.
"use strict";

// --- helpers -----------------------------------------------------------------------

const $ = (id) => document.getElementById(id);

/** Build an element: h("div", {class: "x", onclick: fn}, child, "text", ...). */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const SVG_NS = "http://www.w3.org/2000/svg";
const ICON_PATHS = {
  dir: "M3 7a2 2 0 0 1 2-2h4l2 2h8a2 2 0 0 1 2 2v8a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2Z",
  file: "M6 3h8l4 4v14H6Z M14 3v4h4",
  link: "M10 14a4 4 0 0 0 5.7 0l3-3a4 4 0 0 0-5.7-5.7l-1 1M14 10a4 4 0 0 0-5.7 0l-3 3a4 4 0 0 0 5.7 5.7l1-1",
  other: "M12 3a9 9 0 1 0 0 18 9 9 0 0 0 0-18Z",
  up: "M12 19V5m0 0-6 6m6-6 6 6",
  home: "M3 11 12 4l9 7v9h-6v-6H9v6H3Z",
};

function icon(name) {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS(SVG_NS, "path");
  path.setAttribute("d", ICON_PATHS[name] || ICON_PATHS.other);
  svg.append(path);
  return svg;
}

function fmtSize(bytes) {
  if (bytes === null || bytes === undefined) return "";
  let value = bytes;
  for (const unit of ["B", "KiB", "MiB", "GiB", "TiB"]) {
    if (Math.abs(value) < 1024 || unit === "TiB") {
      return unit === "B" ? `${value} B` : `${value.toFixed(1)} ${unit}`;
    }
    value /= 1024;
  }
  return `${bytes} B`;
}

const fmtRate = (rate) => (rate > 0 ? `${fmtSize(Math.round(rate))}/s` : "");

function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) return "";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

function fmtAgo(epoch) {
  if (!epoch) return "";
  const s = Math.max(0, Date.now() / 1000 - epoch);
  if (s < 10) return "just now";
  if (s < 60) return `${Math.round(s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return new Date(epoch * 1000).toLocaleDateString();
}

const fmtDate = (epoch) => new Date(epoch * 1000).toLocaleString([], {
  dateStyle: "medium", timeStyle: "short",
});

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
const shortId = (id) => (id ? `${id.slice(0, 12)}` : "");
const initial = (name) => (name || "?").trim().charAt(0).toUpperCase() || "?";

async function api(method, path, body) {
  const options = { method, headers: {}, credentials: "same-origin" };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  let data = null;
  try { data = await response.json(); } catch (_) { data = null; }
  if (!response.ok) {
    throw new Error((data && data.error) || `${response.status} ${response.statusText}`);
  }
  return data;
}

let toastTimer = 0;
function toast(message) {
  const el = $("toast");
  el.textContent = message;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.hidden = true; }, 4000);
}

function setStatus(el, message, kind) {
  el.textContent = message || "";
  el.classList.toggle("bad", kind === "bad");
  el.classList.toggle("ok", kind === "ok");
}

// Lists are drawn anew on every change (a transfer's progress, the device list's refresh):
// a control that had focus in the old rows gets it back in the new ones by its
// data-focus-key, so the keyboard never falls back to the page's start. One whose row is
// gone (removed, answered) hands focus to the one now in its place, else to the heading
// of the list's card.
function replaceChildren(list, items, emptyEl) {
  const active = document.activeElement;
  const had = active && active !== list && list.contains(active);
  const before = had ? [...list.querySelectorAll("[data-focus-key]")] : [];
  list.replaceChildren(...items);
  if (emptyEl) emptyEl.hidden = items.length > 0;
  if (!had) return;
  const now = [...list.querySelectorAll("[data-focus-key]")];
  const again = now.find((el) => el.dataset.focusKey === active.dataset.focusKey)
    || now[Math.min(Math.max(before.indexOf(active), 0), now.length - 1)];
  if (again) { again.focus(); return; }
  const heading = list.closest(".card")?.querySelector("h2");
  if (heading) { heading.tabIndex = -1; heading.focus(); }
}

async function copyFrom(id) {
  const el = $(id);
  try {
    await navigator.clipboard.writeText(el.value);
  } catch (_) {
    el.select();
    document.execCommand("copy");
  }
  toast("Copied");
}

// --- state ---------------------------------------------------------------------------

const state = {
  node: {},
  settings: {},
  transfers: new Map(),
  prompts: new Map(),
  share: { running: false, files: [] },
  devices: { devices: [], trusted: [], discovery: {} },
  shareActivity: new Map(),
  view: "",
  // Send view: the devices picked (several at once: a send each), and whether the
  // typed ticket/address is one of the targets.
  targets: new Set(),
  ticketChosen: false,
  // Send with a code: the session its panel shows ("" when the panel is closed).
  codeSend: "",
};

// A transfer's state only moves forward. The states are the server's (SessionState), served
// by GET /api/meta in the order a session moves through them, each with its label, its tone
// and whether it is final: this file keeps no list of its own (docs/API.md).
const STATES = new Map();

async function loadMeta() {
  for (let delay = 500; ; delay = Math.min(delay * 2, 8000)) {
    try {
      const meta = await api("GET", "/api/meta");
      for (const info of meta.states) STATES.set(info.name, info);
      return;
    } catch (_) {
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}

// A state as the server describes it (one it does not know: shown by its name, not final).
const stateInfo = (name) => STATES.get(name) || { name, label: name, final: false, tone: "" };
const isFinal = (name) => stateInfo(name).final;

// Whether `value` is the state `name`. This file names a state only here, and only one the
// server serves (tests/test_app.py checks the names; the console says so at run time).
function isState(value, name) {
  if (!STATES.has(name)) console.error(`app.js names a session state the server does not have: ${name}`);
  return value === name;
}

// --- navigation ------------------------------------------------------------------------

const VIEWS = ["devices", "send", "transfers", "incoming", "share", "wan", "settings"];

function showView() {
  const wanted = location.hash.replace("#", "");
  const view = VIEWS.includes(wanted) ? wanted : "devices";
  const changed = view !== state.view;
  if (changed) window.scrollTo(0, 0); // each view opens at its top
  const first = !state.view;
  state.view = view;
  for (const name of VIEWS) $(`view-${name}`).hidden = name !== view;
  // Sent here by an action (Send, "Send to…"): focus would stay on a control of the view
  // just hidden, that is nowhere; the new view's heading takes it.
  if (changed && !first && !isShown(document.activeElement)) focusHeading();
  for (const link of document.querySelectorAll(".nav a")) {
    if (link.dataset.view === view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (view === "devices") loadDevices();
  if (view === "send") { loadDevices(); sendBrowser.load(sendBrowser.path); }
  if (view === "transfers") loadHistory();
  if (view === "wan") loadWan();
  if (view === "settings") fillSettings(true);
}

// Whether an element can hold focus where a person sees it (not hidden, not behind a dialog).
function isShown(el) {
  return Boolean(el) && el !== document.body && el.isConnected && el.getClientRects().length > 0
    && !el.closest("[inert]");
}

// Focus the heading of the view on screen (headings take focus from code only: tabindex -1).
function focusHeading() {
  const heading = document.querySelector(`#view-${state.view} h1`);
  if (heading) heading.focus();
}

// --- modal dialogs ---------------------------------------------------------------------------
// While a dialog is open, the page behind it is inert (nothing there can be reached or
// clicked), Tab and Shift-Tab cycle inside it, and Esc does what its cancelling button does
// (Decline, Cancel, Dismiss). When the last one closes, focus goes back to where it was.

const FOCUSABLE = "button, [href], input, select, textarea, [tabindex]:not([tabindex='-1'])";
const openModals = [];

class Modal {
  constructor(overlay, onEscape) {
    this.overlay = overlay;
    this.onEscape = onEscape;
    this.returnTo = null;
  }

  get open() { return openModals.includes(this); }

  /** Show it (if it is not yet) and put focus on `target`. */
  show(target) {
    if (!this.open) {
      const active = document.activeElement;
      this.returnTo = isShown(active) ? active : null;
      openModals.push(this);
      this.overlay.hidden = false;
      updateInert();
    }
    if (target) target.focus();
  }

  hide() {
    if (!this.open) return;
    openModals.splice(openModals.indexOf(this), 1);
    this.overlay.hidden = true;
    updateInert();
    const top = openModals[openModals.length - 1];
    if (top) {
      if (!top.overlay.contains(document.activeElement)) focusables(top.overlay)[0]?.focus();
    } else if (!isShown(document.activeElement)) {
      if (isShown(this.returnTo)) this.returnTo.focus(); else focusHeading();
    }
    this.returnTo = null;
  }
}

// Only the dialog on top takes input: the app and any dialog under it are inert.
function updateInert() {
  const top = openModals[openModals.length - 1];
  document.querySelector(".app").inert = Boolean(top);
  for (const modal of openModals) modal.overlay.inert = modal !== top;
}

function focusables(root) {
  return [...root.querySelectorAll(FOCUSABLE)].filter((el) => !el.disabled && isShown(el));
}

document.addEventListener("keydown", (e) => {
  const top = openModals[openModals.length - 1];
  if (!top) return;
  if (e.key === "Escape") {
    e.preventDefault();
    top.onEscape();
  } else if (e.key === "Tab") {
    const items = focusables(top.overlay);
    const at = items.indexOf(document.activeElement);
    if (!items.length) { e.preventDefault(); return; }
    if (e.shiftKey && at <= 0) { e.preventDefault(); items[items.length - 1].focus(); }
    else if (!e.shiftKey && (at === -1 || at === items.length - 1)) { e.preventDefault(); items[0].focus(); }
  }
});

// --- live events -----------------------------------------------------------------------

let socket = null;
let retryDelay = 500;

function connect() {
  setLinkState("opening");
  socket = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
  socket.addEventListener("open", () => { retryDelay = 500; setLinkState("live"); });
  socket.addEventListener("message", (message) => {
    let event;
    try { event = JSON.parse(message.data); } catch (_) { return; }
    handleEvent(event);
  });
  socket.addEventListener("close", (close) => {
    setLinkState("offline");
    const delay = close.code === 1013 ? 100 : retryDelay;
    retryDelay = Math.min(retryDelay * 2, 8000);
    setTimeout(connect, delay);
  });
}

function setLinkState(kind) {
  const pill = $("link-state");
  pill.dataset.state = kind === "live" ? "live" : kind === "offline" ? "bad" : "warn";
  pill.textContent = kind === "live" ? "live" : kind === "offline" ? "reconnecting…" : "connecting…";
}

const debounced = (fn, ms) => {
  let timer = 0;
  return () => { clearTimeout(timer); timer = setTimeout(fn, ms); };
};
const refreshDevices = debounced(() => loadDevices(), 250);
const refreshWan = debounced(() => { if (state.view === "wan") loadWan(); }, 300);
const refreshHistory = debounced(() => loadHistory(), 300);

const PROMPT_EVENTS = new Set(["offer_prompt", "code_prompt", "code_shown", "upload_prompt",
  "pin_prompt"]);

function handleEvent(event) {
  const name = event.event;
  if (name === "snapshot") {
    state.node = event.node;
    state.settings = event.settings;
    state.transfers = new Map(event.transfers.map((t) => [t.id, t]));
    state.prompts = new Map(event.prompts.map((p) => [p.prompt_id, p]));
    state.share = event.share;
    renderAll();
    renderTexts(event.texts || []);
    return;
  }
  if (PROMPT_EVENTS.has(name)) {
    const isNew = !state.prompts.has(event.prompt_id);
    state.prompts.set(event.prompt_id, event);
    renderPrompts();
    if (isNew) notify(event);
  } else if (name === "prompt_closed") {
    state.prompts.delete(event.prompt_id);
    renderPrompts();
  } else if (name === "transfer") {
    const t = event.transfer;
    state.transfers.set(t.id, t);
    renderTransfers();
    if (t.id === state.codeSend) renderCodeSend();
    if (isFinal(t.state)) refreshHistory();
    refreshWan();
  } else if (name === "settings") {
    const { event: _, ...settings } = event;
    state.settings = settings;
    renderHeader();
    fillSettings(false);
    renderIncomingFacts();
  } else if (name === "share_state") {
    state.share = event;
    renderShare();
  } else if (name === "node_state") {
    state.node = { ...state.node, state: event.state, message: event.message,
      device_name: event.device_name, endpoint_id: event.endpoint_id || state.node.endpoint_id };
    renderHeader();
    refreshWan();
  } else if (name === "ticket") {
    state.node = { ...state.node, ticket: event.ticket, endpoint_id: event.endpoint_id };
    refreshWan();
  } else if (name === "relay") {
    refreshWan();
  } else if (name === "device" || name === "device_lost" || name === "discovery_error"
             || name === "localsend") {
    refreshDevices();
  } else if (name === "text") {
    addText(event);
  } else if (name === "code_receive") {
    codeReceiveState(event);
  } else if (name.startsWith("share_upload_")) {
    shareActivity(event);
  } else if (name === "state") {
    shareUploadState(event);
  } else if (name === "verified") {
    refreshDevices();
  } else if (name === "error" && !event.session) {
    toast(event.message);
  }
}

// --- header and notices -------------------------------------------------------------------

function renderHeader() {
  $("device-name").textContent = state.settings.device_name || state.node.device_name || "";
  const notice = $("global-notice");
  if (state.node.state === "stopped" && state.node.message) {
    notice.textContent = `The node is stopped: ${state.node.message}`;
    notice.hidden = false;
  } else if (state.node.state === "starting") {
    notice.textContent = "The node is restarting…";
    notice.hidden = false;
  } else {
    notice.hidden = true;
  }
}

function renderAll() {
  renderHeader();
  renderTransfers();
  renderPrompts();
  renderShare();
  renderIncomingFacts();
  fillSettings(false);
  if (state.view === "wan") loadWan();
  if (state.view === "devices" || state.view === "send") loadDevices();
  if (state.view === "transfers") loadHistory();
}

// --- devices -------------------------------------------------------------------------------

// How often the device list is asked again while Devices or Send is on screen: LocalSend
// devices come and go without an event (the node drops one LOCALSEND_DEVICE_TTL after it was
// last heard from, docs/API.md), and each row's "seen … ago" moves on.
const DEVICE_REFRESH_MS = 5000;

async function loadDevices() {
  try {
    state.devices = await api("GET", "/api/devices");
  } catch (error) {
    return;
  }
  renderDevices();
  renderTargets();
}

function renderDevices() {
  const { devices, trusted, discovery } = state.devices;
  const note = $("discovery-note");
  if (!discovery.enabled) {
    note.textContent = "LAN discovery is off (--no-discovery).";
  } else if (discovery.error) {
    note.textContent = `LAN discovery: ${discovery.error}`;
  }
  note.hidden = discovery.enabled && !discovery.error;
  if (discovery.localsend_error) {
    note.textContent = discovery.localsend_error;
    note.hidden = false;
  }
  replaceChildren($("device-list"), devices.map((d) => h("li", { class: "row", "data-protocol": d.protocol },
    h("span", { class: "row-icon", text: initial(d.name) }),
    h("span", { class: "row-main" },
      h("span", { class: "row-title" }, h("span", { text: d.name }),
        d.protocol === "localsend" ? h("span", { class: "pill plain", text: "LocalSend" })
          : d.trusted ? h("span", { class: "pill", "data-state": "ok", text: "trusted" })
            : h("span", { class: "pill plain", text: "new" })),
      h("span", { class: "row-meta",
        text: `${deviceId(d)} · ${d.addresses.join(", ")} · seen ${fmtAgo(d.last_seen)}` })),
    h("span", { class: "row-actions" },
      h("button", { type: "button", class: "ghost small", text: "Send to…", "aria-label": `Send to ${d.name}…`,
        "data-focus-key": `send:${d.endpoint_id}`, onclick: () => sendTo(d.endpoint_id) })),
  )), $("device-empty"));
  $("forget-all").hidden = trusted.length === 0;
  replaceChildren($("trusted-list"), trusted.map((p) => h("li", { class: "row", "data-id": p.endpoint_id },
    h("span", { class: "row-icon", text: initial(p.name) }),
    h("span", { class: "row-main" },
      h("span", { class: "row-title" }, h("span", { text: p.name }),
        p.online ? h("span", { class: "pill", "data-state": "live", "data-role": "presence", text: "on this network" })
          : h("span", { class: "pill plain", "data-role": "presence", text: "not on this network" })),
      h("span", { class: "row-meta", text: `${shortId(p.endpoint_id)} · trusted until ${fmtDate(p.expires_at)}` }),
      !p.online && p.reachable ? h("span", { class: "row-meta", text: lastReached(p) }) : null),
    h("span", { class: "row-actions" },
      p.reachable ? h("button", { type: "button", class: "ghost small", text: "Send to…",
        "aria-label": `Send to ${p.name}…`, "data-focus-key": `send:${p.endpoint_id}`,
        onclick: () => sendTo(p.endpoint_id) }) : null,
      h("button", { type: "button", class: "ghost small danger", text: "Forget",
        "aria-label": `Forget ${p.name}`, "data-focus-key": `forget:${p.endpoint_id}`,
        onclick: () => forget(p) })),
  )).concat(lockedRows(state.devices.locked_out || [])), $("trusted-empty"));
}

// Devices locked out after too many failed codes: the user may let one try again.
function lockedRows(locked) {
  return locked.map((k) => h("li", { class: "row", "data-id": k.endpoint_id, "data-role": "locked" },
    h("span", { class: "row-icon", text: "!" }),
    h("span", { class: "row-main" },
      h("span", { class: "row-title" }, h("span", { text: shortId(k.endpoint_id) }),
        h("span", { class: "pill plain", text: "locked out" })),
      h("span", { class: "row-meta", text: `${k.cause === "wrong" ? "too many wrong codes"
        : "too many codes left unanswered"} · ${Math.ceil(k.seconds / 60)} min left` })),
    h("span", { class: "row-actions" },
      h("button", { type: "button", class: "ghost small", text: "Allow again",
        "aria-label": `Allow ${shortId(k.endpoint_id)} to try a code again`,
        onclick: () => unlock(k) }))));
}

async function unlock(locked) {
  try {
    await api("POST", `/api/lockouts/${encodeURIComponent(locked.endpoint_id)}/unlock`);
    toast(`${shortId(locked.endpoint_id)} may try a code again`);
  } catch (error) { toast(error.message); }
  loadDevices();
}

// Where a trusted device that is not announced now was last reached (a send goes there).
function lastReached(p) {
  const where = p.addresses.length ? ` at ${p.addresses[0]}` : "";
  return `last reached${where}${p.reached_at ? `, ${fmtAgo(p.reached_at)}` : ""}`;
}

async function forget(pairing) {
  if (!confirm(`Forget ${pairing.name}? It will need a code again next time.`)) return;
  try {
    await api("DELETE", `/api/pairings/${encodeURIComponent(pairing.endpoint_id)}`);
    toast(`Forgot ${pairing.name}`);
  } catch (error) { toast(error.message); }
  loadDevices();
}

// A LocalSend device is named by its model and the fingerprint it announced (not a key of ours).
function deviceId(d) {
  if (d.protocol !== "localsend") return shortId(d.endpoint_id);
  return `LocalSend${d.device_model ? ` · ${d.device_model}` : ""} · ${d.short_id}`;
}

function sendTo(endpointId) {
  state.targets = new Set([endpointId]);
  state.ticketChosen = false;
  location.hash = "#send";
  renderTargets();
  updateSendButton();
}

// --- network check (the doctor) --------------------------------------------------------------

const CHECK_MARKS = { ok: "✓", warn: "!", fail: "✗" };

async function checkNetwork() {
  const button = $("doctor-run");
  button.disabled = true;
  setStatus($("doctor-status"), "Checking the network (takes a few seconds)…");
  try {
    const { checks } = await api("POST", "/api/doctor");
    const failed = checks.filter((c) => c.status === "fail").length;
    const warned = checks.filter((c) => c.status === "warn").length;
    setStatus($("doctor-status"), failed ? `${plural(failed, "problem")} found.`
      : warned ? `No problem, ${plural(warned, "warning")}.` : "All good.", failed ? "bad" : "ok");
    replaceChildren($("doctor-list"), checks.map((c) => h("li", { class: "row check", "data-status": c.status, "data-name": c.name },
      h("span", { class: "row-icon", "aria-hidden": "true", text: CHECK_MARKS[c.status] || "?" }),
      h("span", { class: "row-main" },
        h("span", { class: "row-title" }, h("span", { text: c.name }),
          h("span", { class: "pill", "data-state": c.status === "ok" ? "ok" : c.status === "warn" ? "warn" : "bad", text: c.status })),
        h("span", { class: "check-detail", text: c.detail }),
        c.advice ? h("span", { class: "check-advice", text: `→ ${c.advice}` }) : null))));
  } catch (error) {
    setStatus($("doctor-status"), error.message, "bad");
  }
  button.disabled = false;
}

// --- file browser (Send view and the share picker) ------------------------------------------------

class FileBrowserView {
  constructor(container, hiddenToggle, selection) {
    this.container = container;
    this.hiddenToggle = hiddenToggle;
    this.selection = selection; // Map path -> {path, name, kind, size}
    this.path = null;
    this.onchange = () => {};
    hiddenToggle.addEventListener("change", () => this.load(this.path));
  }

  /** Show the folder `path` (null: home); `focus` says which control takes focus after
   *  ("up", "home", or "first": the first item, as after opening a folder). */
  async load(path, focus) {
    const query = new URLSearchParams();
    if (path) query.set("path", path);
    if (this.hiddenToggle.checked) query.set("hidden", "1");
    let listing;
    try {
      listing = await api("GET", `/api/files?${query}`);
    } catch (error) {
      if (path) { toast(error.message); return this.load(null, focus); }
      this.container.replaceChildren(h("p", { class: "empty", text: error.message }));
      return;
    }
    this.path = listing.path;
    this.listing = listing;
    this.render(listing, focus);
  }

  render(listing, focus) {
    const up = h("button", { type: "button", class: "ghost small", title: "Up one folder", text: "Up",
      "aria-label": "Up one folder", disabled: !listing.parent, onclick: () => this.load(listing.parent, "up") });
    const home = h("button", { type: "button", class: "ghost small", title: "Home folder", text: "Home",
      "aria-label": "Home folder", onclick: () => this.load(null, "home") });
    const crumbs = h("div", { class: "crumbs" }, up, home,
      // The path is isolated left to right inside the right-to-left box that cuts it
      // at its start (so the end stays in view): its slashes stay where they belong.
      h("span", { class: "path", title: listing.path }, h("bdi", { dir: "ltr", text: listing.path })));
    const rows = listing.entries.map((entry) => {
      const selectable = entry.kind === "file" || entry.kind === "dir";
      const box = h("input", { type: "checkbox", "aria-label": `Select ${entry.name}`,
        disabled: !selectable, checked: this.selection.has(entry.path) });
      box.addEventListener("change", () => {
        if (box.checked) this.selection.set(entry.path, entry);
        else this.selection.delete(entry.path);
        this.onchange();
      });
      const name = entry.kind === "dir"
        ? h("button", { type: "button", class: "entry-name", text: entry.name,
            "aria-label": `Open folder ${entry.name}`, onclick: () => this.load(entry.path, "first") })
        : h("span", { class: "entry-name", text: entry.name,
            title: entry.kind === "link" ? "A link to outside the folders the app may use" : entry.name });
      return h("li", { class: "entry", "data-kind": entry.kind, "data-name": entry.name },
        box, icon(entry.kind), name,
        h("span", { class: "entry-size",
          text: entry.kind === "file" ? fmtSize(entry.size) : entry.kind === "link" ? "link" : "" }));
    });
    const list = h("ul", { class: "entries" }, rows);
    if (rows.length === 0) list.append(h("li", { class: "empty", text: "This folder is empty." }));
    if (listing.truncated) {
      list.append(h("li", { class: "empty", text: `Showing ${rows.length} of ${listing.total} items.` }));
    }
    this.container.replaceChildren(crumbs, list);
    // The control that was pressed is gone with the old listing: its place in the new one
    // takes focus (the first item after opening a folder), never the page's start.
    const wanted = focus === "up" && !up.disabled ? up : focus === "home" || focus === "up" ? home
      : focus === "first" ? list.querySelector("input:not(:disabled), button") || up : null;
    if (wanted) wanted.focus();
  }
}

// --- send ----------------------------------------------------------------------------------------

const selection = new Map();
const staged = { batch: null, items: new Map(), uploading: 0 };
const sendBrowser = new FileBrowserView($("send-browser"), $("send-hidden"), selection);
sendBrowser.onchange = () => { renderSelection(); updateSendButton(); };

function renderSelection() {
  const rows = [];
  for (const entry of selection.values()) {
    rows.push(selectionRow(entry.kind === "dir" ? "dir" : "file", entry.name, entry.path,
      entry.kind === "file" ? fmtSize(entry.size) : "folder", () => {
        selection.delete(entry.path);
        sendBrowser.render && sendBrowser.load(sendBrowser.path);
        renderSelection();
        updateSendButton();
      }));
  }
  for (const item of staged.items.values()) {
    rows.push(selectionRow(item.kind, item.name, "dropped here (staged)",
      item.done < item.files ? `uploading ${item.done}/${item.files}` : fmtSize(item.bytes),
      () => dropStaged()));
  }
  replaceChildren($("selection-list"), rows, $("selection-empty"));
}

function selectionRow(kind, name, where, size, onremove) {
  return h("li", { class: "row" },
    h("span", { class: "row-icon" }, icon(kind === "dir" ? "dir" : "file")),
    h("span", { class: "row-main" }, h("span", { class: "row-title" }, h("span", { text: name })),
      h("span", { class: "row-meta", text: `${size} · ${where}` })),
    h("span", { class: "row-actions" },
      h("button", { type: "button", class: "ghost small", text: "Remove", "aria-label": `Remove ${name}`,
        "data-focus-key": `remove:${where}/${name}`, onclick: onremove })));
}

async function dropStaged() {
  if (!staged.batch) return;
  const batch = staged.batch;
  staged.batch = null;
  staged.items.clear();
  renderSelection();
  updateSendButton();
  try { await api("DELETE", `/api/staging/${batch}`); } catch (_) { /* already gone */ }
}

function renderTargets() {
  const choices = [];
  for (const d of state.devices.devices || []) {
    const meta = d.protocol === "localsend" ? deviceId(d)
      : `${shortId(d.endpoint_id)} · ${d.trusted ? "trusted" : "new device"}`;
    choices.push({ id: d.endpoint_id, name: d.name, meta, pill: d.protocol === "localsend" ? "LocalSend" : "LAN" });
  }
  // Trusted devices not announced now: a send waits in the outbox until one answers where
  // it was last reached (at once, if it is there).
  const listed = new Set(choices.map((c) => c.id));
  for (const p of state.devices.trusted || []) {
    if (listed.has(p.endpoint_id) || !p.reachable) continue;
    choices.push({ id: p.endpoint_id, name: p.name,
      meta: `${shortId(p.endpoint_id)} · not on this network: ${lastReached(p)}; a send waits until it answers`,
      pill: "trusted" });
  }
  const known = new Set(choices.map((c) => c.id));
  for (const id of state.targets) if (!known.has(id)) state.targets.delete(id);
  const rows = choices.map((c) => {
    const box = h("input", { type: "checkbox", value: c.id, checked: state.targets.has(c.id),
      "aria-label": `Send to ${c.name}`, "data-focus-key": `target:${c.id}` });
    box.addEventListener("change", () => {
      if (box.checked) state.targets.add(c.id); else state.targets.delete(c.id);
      // Picking a device hides an empty ticket box; picking none brings it back.
      if (!$("ticket-input").value.trim()) state.ticketChosen = false;
      renderTargets();
      updateSendButton();
    });
    return h("label", { class: "target", "data-id": c.id }, box,
      h("span", { class: "row-main" }, h("span", { class: "row-title" }, h("span", { text: c.name })),
        h("span", { class: "row-meta", text: c.meta })),
      h("span", { class: "pill plain", text: c.pill }));
  });
  const ticketBox = h("input", { type: "checkbox", value: "", checked: state.ticketChosen,
    id: "target-ticket", "aria-label": "Send to a ticket or address", "data-focus-key": "target:ticket" });
  ticketBox.addEventListener("change", () => {
    state.ticketChosen = ticketBox.checked;
    renderTargets();
    updateSendButton();
    if (ticketBox.checked) $("ticket-input").focus();
  });
  rows.push(h("label", { class: "target" }, ticketBox,
    h("span", { class: "row-main" }, h("span", { class: "row-title" }, h("span", { text: "A ticket or address" })),
      h("span", { class: "row-meta", text: "Any device: a ticket, HOST:PORT, a device name, or localsend:HOST:PORT" })),
    h("span", { class: "pill plain", text: "WAN" })));
  replaceChildren($("target-list"), rows);
  // The box for a ticket shows while it is ticked, and while no device is: typing there ticks it.
  $("ticket-input").closest(".field").hidden = !state.ticketChosen && state.targets.size > 0;
}

function chosenTargets() {
  const ticket = state.ticketChosen ? $("ticket-input").value.trim() : "";
  return { devices: [...state.targets], ticket };
}

// A text message's limit, in UTF-8 bytes (MAX_TEXT_BYTES).
const MAX_TEXT_BYTES = 64 * 1024;

// Why what is chosen cannot be sent ("" when it can), said next to the Send button.
function sendProblem(hasItems, text) {
  if (hasItems && text.trim()) return "Send either the text or the files: clear one.";
  if (new TextEncoder().encode(text).length > MAX_TEXT_BYTES) {
    return "The text is over 64 KiB: send it as a file.";
  }
  return "";
}

// What is still missing before Send can be pressed ("" when nothing is), said next to it:
// a disabled button never stands there without a reason.
function sendMissing(hasSomething, count) {
  if (staged.uploading > 0) return "Copying the dropped files…";
  if (!hasSomething && !count) return "Choose files or type a text, and pick where to send it.";
  if (!hasSomething) return "Choose files or type a text to send.";
  if (!count) {
    return state.ticketChosen ? "Paste the receiver's ticket or address, or pick a device."
      : "Pick a device, or paste a ticket or address.";
  }
  return "";
}

function updateSendButton() {
  const hasItems = selection.size > 0 || (staged.batch && staged.items.size > 0);
  const text = $("send-text").value;
  const { devices, ticket } = chosenTargets();
  const count = devices.length + (ticket ? 1 : 0);
  const problem = sendProblem(hasItems, text);
  const missing = problem ? "" : sendMissing(hasItems || Boolean(text.trim()), count);
  const status = $("send-status");
  const reason = problem || missing;
  // The reason replaces only a reason (or nothing): a send's own outcome stays until then.
  if (reason || status.dataset.reason) setStatus(status, reason, problem ? "bad" : "");
  status.dataset.reason = reason;
  const button = $("send-button");
  button.disabled = Boolean(reason);
  const what = text.trim() && !hasItems ? "Send text" : "Send";
  button.textContent = count > 1 ? `${what} to ${count} devices` : what;
  // A code needs something to send, and no device: it is the other device's way in.
  $("send-code-button").disabled = Boolean(problem) || staged.uploading > 0
    || !(hasItems || text.trim()) || Boolean(state.codeSend && !codeSendOver());
}

// What "Send with a code" sends: the same choice as Send, without a device.
function chosenWhat() {
  const text = $("send-text").value;
  const body = text.trim() ? { text } : { paths: [...selection.keys()] };
  if (!body.text && staged.batch && staged.items.size) body.staging = staged.batch;
  return body;
}

function clearChoice() {
  $("send-text").value = "";
  selection.clear();
  staged.batch = null;
  staged.items.clear();
  renderSelection();
  if (sendBrowser.listing) sendBrowser.render(sendBrowser.listing); // no tick stays behind
}

async function sendByCode() {
  const button = $("send-code-button");
  button.disabled = true;
  setStatus($("send-status"), "Asking for a code…");
  try {
    const { transfer } = await api("POST", "/api/send-by-code", chosenWhat());
    state.transfers.set(transfer.id, transfer);
    state.codeSend = transfer.id;
    clearChoice();
    setStatus($("send-status"), "");
    renderCodeSend();
    $("code-send-title").focus();
  } catch (error) {
    setStatus($("send-status"), error.message, "bad");
  }
  updateSendButton();
}

const codeSendOver = () => {
  const t = state.transfers.get(state.codeSend);
  return !t || isFinal(t.state);
};

// The code large, a Copy button and its QR code, then the card of its transfer, which
// moves on as any other (its Cancel cancels the code while nobody used it).
function renderCodeSend() {
  const panel = $("code-send-card");
  const t = state.transfers.get(state.codeSend);
  panel.hidden = !t;
  if (!t) return;
  const code = t.code || "";
  const input = $("send-code");
  if (input.value !== code) input.value = code;
  const qr = $("send-code-qr");
  const src = code ? `/api/transfers/${encodeURIComponent(t.id)}/qr.svg?code=${encodeURIComponent(code)}` : "";
  if (qr.getAttribute("src") !== src && src) qr.src = src;
  qr.hidden = !code || isFinal(t.state);
  $("send-code-command").textContent = `p2p-transfer receive ${code || "…"}`;
  $("code-send-hint").textContent = !code ? (isFinal(t.state) ? "No code was made." : "Asking the code server for a code…")
    : isFinal(t.state) ? "This code is used up." : t.peer_name ? `${t.peer_name} used the code.`
    : "Waiting for the other device to type this code:";
  $("code-send-close").hidden = !isFinal(t.state);
  replaceChildren($("code-send-transfer"), [transferCard(t)]);
  updateSendButton();
}

function closeCodeSend() {
  state.codeSend = "";
  renderCodeSend();
  updateSendButton();
  $("send-title").focus();
}

// Receive with a code: how meeting its sender goes; its offer is then the usual dialog.
async function receiveByCode(e) {
  e.preventDefault();
  const input = $("receive-code-input");
  const status = $("receive-code-status");
  if (!input.value.trim()) {
    setStatus(status, "Type or paste the code the sending device shows.", "bad");
    input.focus();
    return;
  }
  setStatus(status, "Starting…");
  try {
    await api("POST", "/api/receive-by-code", { code: input.value });
    input.value = "";  // the code_receive events say how it goes (they may come first)
  } catch (error) {
    setStatus(status, error.message, "bad");
  }
}

function codeReceiveState(event) {
  const status = $("receive-code-status");
  if (event.step === "looking") setStatus(status, event.message || `Looking for the sender of ${event.code}…`);
  else if (event.step === "met") setStatus(status, `Found the sender of ${event.code}: its offer follows.`, "ok");
  else setStatus(status, event.message, "bad");
}

async function send() {
  const { devices, ticket } = chosenTargets();
  const text = $("send-text").value;
  const body = text.trim() ? { text, devices } : { paths: [...selection.keys()], devices };
  if (ticket) body.to = ticket;
  if (!body.text && staged.batch && staged.items.size) body.staging = staged.batch;
  const button = $("send-button");
  button.disabled = true;
  setStatus($("send-status"), "Starting…");
  try {
    await api("POST", "/api/send", body);
    clearChoice();
    setStatus($("send-status"), "");
    location.hash = "#transfers";
  } catch (error) {
    setStatus($("send-status"), error.message, "bad");
  }
  updateSendButton();
  // Disabled while it started, the button lost focus: a send refused here gives it back.
  if (!isShown(document.activeElement) && state.view === "send") {
    if (button.disabled) focusHeading(); else button.focus();
  }
}

// Dropped files and folders: read with the entries API, uploaded one by one into a staging batch.
async function ensureBatch() {
  if (!staged.batch) staged.batch = (await api("POST", "/api/staging")).batch;
  return staged.batch;
}

function readEntries(reader) {
  return new Promise((resolve, reject) => reader.readEntries(resolve, reject));
}

async function collect(entry, prefix, out) {
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    out.push({ file, path: prefix + entry.name });
  } else if (entry.isDirectory) {
    const reader = entry.createReader();
    for (;;) {
      const batch = await readEntries(reader);
      if (!batch.length) break;
      for (const child of batch) await collect(child, `${prefix}${entry.name}/`, out);
    }
    out.push({ folder: true, path: prefix + entry.name });
  }
}

async function stageFiles(items) {
  // items: [{file, path}] (and {folder: true, path} for folders, empty ones included)
  const files = items.filter((i) => !i.folder);
  let batch;
  try { batch = await ensureBatch(); } catch (error) { toast(error.message); return; }
  const tops = new Map();
  for (const item of items) {
    const top = item.path.split("/")[0];
    const isDir = item.path.includes("/") || item.folder;
    const entry = tops.get(top) || { name: top, kind: isDir ? "dir" : "file", files: 0, done: 0, bytes: 0 };
    if (!item.folder) { entry.files += 1; entry.bytes += item.file.size; }
    tops.set(top, entry);
  }
  for (const entry of tops.values()) staged.items.set(entry.name, entry);
  staged.uploading += 1;
  renderSelection();
  updateSendButton();
  try {
    for (const item of files) {
      const response = await fetch(
        `/api/staging/${batch}/files?path=${encodeURIComponent(item.path)}`,
        { method: "PUT", body: item.file, credentials: "same-origin" });
      if (!response.ok) {
        const data = await response.json().catch(() => ({}));
        throw new Error(data.error || `upload failed (${response.status})`);
      }
      tops.get(item.path.split("/")[0]).done += 1;
      renderSelection();
    }
  } catch (error) {
    toast(error.message);
    for (const name of tops.keys()) staged.items.delete(name);
  } finally {
    staged.uploading -= 1;
    renderSelection();
    updateSendButton();
  }
}

function setupDrop() {
  const zone = $("drop-zone");
  const view = $("view-send");
  view.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  view.addEventListener("dragleave", (e) => {
    if (!view.contains(e.relatedTarget)) zone.classList.remove("over");
  });
  view.addEventListener("drop", async (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    const entries = [...e.dataTransfer.items]
      .map((item) => (item.webkitGetAsEntry ? item.webkitGetAsEntry() : null))
      .filter(Boolean);
    const out = [];
    if (entries.length) {
      for (const entry of entries) await collect(entry, "", out);
    } else {
      for (const file of e.dataTransfer.files) out.push({ file, path: file.name });
    }
    if (out.length) stageFiles(out);
  });
  $("drop-input").addEventListener("change", (e) => {
    const out = [...e.target.files].map((file) => ({ file, path: file.name }));
    e.target.value = "";
    if (out.length) stageFiles(out);
  });
  // A chosen folder comes as its files, each with its path inside ("Album/day 1/a.jpg").
  $("folder-input").addEventListener("change", (e) => {
    const out = [...e.target.files].map((file) => ({ file, path: file.webkitRelativePath || file.name }));
    e.target.value = "";
    if (out.length) stageFiles(out);
    else toast("That folder is empty: nothing to send.");
  });
  $("choose-files").addEventListener("click", () => $("drop-input").click());
  $("choose-folder").addEventListener("click", () => $("folder-input").click());
}

// --- transfers -------------------------------------------------------------------------------------

function stateLabel(t) {
  if (isState(t.state, "queued") && t.direction === "send") {
    // In the outbox: a trusted device that is away (docs/API.md, "The outbox").
    return `Waiting for ${t.peer_name || "the device"} — will send when it is reachable`;
  }
  if (isState(t.state, "waiting")) {
    return t.direction === "send" ? `Waiting for ${t.peer_name} to accept` : "Waiting for your answer";
  }
  if (isState(t.state, "cancelled")) {
    if (t.cancelled_by === "peer") return `Cancelled by ${t.peer_name || "the other device"}`;
    if (t.cancelled_by === "local") return "Cancelled by you";
  }
  return stateInfo(t.state).label;
}

// What was checked, said the same on cards and in the history: LocalSend hashes nothing
// end to end and proves no key, so its transfers are never called verified.
const LOCALSEND_BADGE = "via LocalSend — not verified end to end";

function viaPill(t) {
  if (t.via !== "localsend") return null;
  return h("span", { class: "pill", "data-state": "warn", "data-via": "localsend", text: LOCALSEND_BADGE });
}

function verifiedPill(t) {
  if (!t.verified) return null;
  const how = t.verified === "code" ? "by code" : "paired";
  return h("span", { class: "pill", "data-state": "ok", "data-verified": t.verified, text: `verified (${how})` });
}

// Only a folder that holds what moved is worth opening: a receive that failed or was
// declined before a file arrived wrote nothing (and a send that moved nothing is no news).
const hasFolder = (folder, files) => Boolean(folder) && files > 0;

function transferCard(t) {
  const title = t.direction === "send" ? `To ${t.peer_name || (t.code ? `whoever types ${t.code}` : "…")}`
    : `From ${t.peer_name || "…"}`;
  const what = t.text ? `Text: ${t.names[0] || ""}`
    : t.names.length ? t.names.slice(0, 3).join(", ") + (t.names.length > 3 ? "…" : "") : "";
  // What is known of the size: nothing before the offer (a send that failed to connect
  // shows its reason only, never "0 / 0 files").
  const known = t.files_total > 0 || t.bytes_total > 0;
  // A send in the outbox has read nothing yet: no sizes, no bar, until it starts.
  const queued = isState(t.state, "queued");
  const stats = t.text ? (t.bytes_total ? [`text, ${fmtSize(t.bytes_total)}`] : []) : known ? [
    `${t.files_done} / ${plural(t.files_total, "file")}`,
    `${fmtSize(t.bytes_done)} of ${fmtSize(t.bytes_total)}`,
  ] : isFinal(t.state) || queued ? [] : ["Preparing…"];
  if (!isFinal(t.state) && t.rate) stats.push(fmtRate(t.rate));
  if (!isFinal(t.state) && t.eta !== null && t.eta !== undefined) stats.push(`${fmtDuration(t.eta)} left`);
  if (isFinal(t.state) && t.finished_at && known) stats.push(`took ${fmtDuration(t.finished_at - t.started_at)}`);
  const done = isState(t.state, "done");
  const bar = !t.text && !queued && (known || !isFinal(t.state)) ? h("progress", { max: Math.max(1, t.bytes_total),
    value: done ? Math.max(1, t.bytes_total) : t.bytes_done, "aria-label": `${title} progress` }) : null;
  const files = (t.active || []).map((f) => h("li", {},
    h("span", { class: "name", title: f.path, text: f.path }),
    h("progress", { max: Math.max(1, f.size), value: f.bytes_done }),
    h("span", { class: "pct", text: `${f.size ? Math.floor((100 * f.bytes_done) / f.size) : 100}%` })));
  // Each card's buttons say which transfer they act on (several cards have a Cancel).
  const which = `the ${t.text ? "text" : "transfer"} ${t.direction === "send" ? "to" : "from"} ${t.peer_name || "the other device"}`;
  const actions = [];
  if (!isFinal(t.state)) {
    actions.push(h("button", { type: "button", class: "ghost small danger", text: "Cancel",
      "aria-label": `Cancel ${which}`, "data-focus-key": `cancel:${t.id}`, onclick: () => cancelTransfer(t.id) }));
  } else {
    if (t.can_retry) {
      // Sent again, the receiver offers what it holds: what arrived is not sent twice.
      const verb = t.bytes_done > 0 ? "Resume" : "Retry";
      actions.push(h("button", { type: "button", class: "primary small", "data-action": "retry",
        text: verb, "aria-label": `${verb} ${which}`, "data-focus-key": `retry:${t.id}`,
        onclick: (e) => retryTransfer(t, e.currentTarget) }));
    }
    if (hasFolder(t.folder, t.files_done)) {
      actions.push(h("button", { type: "button", class: "ghost small", text: "Open folder",
        "aria-label": `Open folder of ${which}`, "data-focus-key": `open:${t.id}`,
        onclick: () => openHistoryFolder(t.id) }));
    }
  }
  const message = t.message && !done && !isState(t.state, "cancelled")
    ? h("p", { class: "transfer-message", text: t.message }) : null;
  return h("li", { class: "transfer", "data-id": t.id, "data-state": t.state, "data-direction": t.direction },
    h("div", { class: "transfer-head" },
      h("span", { class: "row-icon", text: t.direction === "send" ? "↑" : "↓" }),
      h("span", { class: "row-main" },
        h("span", { class: "row-title" }, h("span", { text: title })),
        h("span", { class: "row-meta", text: what })),
      h("span", { class: "row-actions" }, actions)),
    h("div", { class: "transfer-badges" },
      h("span", { class: "pill", "data-state": stateInfo(t.state).tone, "data-role": "state", text: stateLabel(t) }),
      verifiedPill(t),
      viaPill(t),
      done && (t.text || t.via !== "localsend") ? h("span", { class: "pill", "data-state": "ok",
        text: t.text ? (t.direction === "send" ? "text delivered" : "text shown in Incoming") : "all files BLAKE3-verified" }) : null,
      t.path ? h("span", { class: "pill plain", text: t.rtt_ms !== null ? `${t.path} · ${Math.round(t.rtt_ms)} ms` : t.path }) : null),
    bar,
    stats.length ? h("div", { class: "transfer-stats" }, stats.map((s) => h("span", { text: s }))) : null,
    files.length ? h("ul", { class: "transfer-files" }, files) : null,
    message);
}

function renderTransfers() {
  // A retried card gives way to the transfer that retries it.
  const all = [...state.transfers.values()].filter((t) => !t.retried_as)
    .sort((a, b) => b.started_at - a.started_at);
  const active = all.filter((t) => !isFinal(t.state));
  // Finished transfers of this session stay on top until the history has them.
  const recent = all.filter((t) => isFinal(t.state) && Date.now() / 1000 - t.finished_at < 600);
  replaceChildren($("transfer-list"), [...active, ...recent].map(transferCard), $("transfer-empty"));
  const badge = $("active-badge");
  badge.textContent = String(active.length);
  badge.hidden = active.length === 0;
}

async function cancelTransfer(id) {
  try { await api("POST", `/api/transfers/${encodeURIComponent(id)}/cancel`); } catch (error) { toast(error.message); }
}

async function retryTransfer(t, button) {
  button.disabled = true;
  try {
    const { transfer } = await api("POST", `/api/transfers/${encodeURIComponent(t.id)}/retry`);
    if (t.code) {
      // A code is good for one try: the retry has a new one, shown where the old one was.
      state.transfers.set(transfer.id, transfer);
      state.codeSend = transfer.id;
      location.hash = "#send";
      renderCodeSend();
      toast("Sending again, with a new code");
    } else {
      toast(`Sending to ${t.peer_name || "the device"} again`);
    }
  } catch (error) {
    toast(error.message);
    button.disabled = false;
  }
}

async function loadHistory() {
  let data;
  try { data = await api("GET", "/api/history?limit=100"); } catch (_) { return; }
  replaceChildren($("history-list"), data.history.map((e) => {
    const verb = e.direction === "send" ? "Sent to" : "Received from";
    const outcome = stateInfo(e.state).label;
    // A text is no file: "text · 140 B", never "0 files · 140 B".
    const meta = [
      ...(e.text ? ["text", fmtSize(e.bytes_total)]
        : e.files || e.bytes_total ? [plural(e.files, "file"), fmtSize(e.bytes_total)] : []),
      fmtAgo(e.finished_at),
      ...(e.via === "localsend" ? [LOCALSEND_BADGE] : e.verified ? ["verified"] : []),
      ...(e.message && !isState(e.state, "done") ? [e.message] : []),
    ];
    return h("li", { class: "row", "data-id": e.id, "data-state": e.state },
      h("span", { class: "row-icon", text: e.direction === "send" ? "↑" : "↓" }),
      h("span", { class: "row-main" },
        h("span", { class: "row-title" }, h("span", { text: `${verb} ${e.peer_name}` }),
          h("span", { class: "pill", "data-state": stateInfo(e.state).tone, text: outcome })),
        h("span", { class: "row-meta", title: meta.join(" · "), text: meta.join(" · ") })),
      h("span", { class: "row-actions" },
        hasFolder(e.folder, e.files) ? h("button", { type: "button", class: "ghost small", text: "Open folder",
          "aria-label": `Open folder of what was ${verb.toLowerCase()} ${e.peer_name}, ${fmtAgo(e.finished_at)}`,
          "data-focus-key": `history-open:${e.id}`, onclick: () => openHistoryFolder(e.id) }) : null));
  }), $("history-empty"));
}

async function openHistoryFolder(id) {
  try {
    const result = await api("POST", `/api/history/${encodeURIComponent(id)}/open`);
    toast(`Opened ${result.opened}`);
  } catch (error) { toast(error.message); }
}

async function openDownloads() {
  try {
    const result = await api("POST", "/api/open-downloads");
    toast(`Opened ${result.opened}`);
  } catch (error) { toast(error.message); }
}

// --- prompts: the dialog and the Incoming view ---------------------------------------------------------

function promptTitle(p) {
  switch (p.event) {
    case "offer_prompt":
      if (p.text) return `${p.from} wants to send you a text message`;
      return `${p.from} wants to send you ${plural(p.files, "file")}`;
    case "code_prompt": return `Enter the code shown on ${p.peer_name}`;
    case "pin_prompt": return `${p.retry ? "Wrong PIN. " : ""}Enter the PIN for ${p.peer_name}`;
    case "code_shown": return `Verification code for ${p.peer_name}`;
    case "upload_prompt": return `A browser wants to upload ${p.file_name}`;
    default: return "Request";
  }
}

// Who uploads through the share, as far as the app knows: "Chrome on Android at 192.168.1.7".
const browserAt = (e) => (e.browser ? `${e.browser} at ${e.client}` : e.client);

// A code as people read it: "026 767" (the API and events carry the bare digits).
const fmtCode = (code) => `${code.slice(0, 3)} ${code.slice(3)}`;

// "attempt 2 of 5" once a code has been wrong before, else "".
const attemptText = (p) => (p.attempt > 1 && p.max_attempts ? `attempt ${p.attempt} of ${p.max_attempts}` : "");

function promptMeta(p) {
  switch (p.event) {
    case "offer_prompt":
      if (p.via === "localsend") {
        const what = p.text ? "" : `${fmtSize(p.bytes)} · `;
        return `${what}via LocalSend${p.device_model ? ` · ${p.device_model}` : ""} · ${p.sender_id.slice(0, 8).toUpperCase()} · LocalSend does not prove who sends`;
      }
      return `${fmtSize(p.bytes)}${p.folders ? ` · ${plural(p.folders, "folder")}` : ""} · ${p.verified === "pairing" ? "trusted device" : "verified just now by code"} · ${shortId(p.sender_id)}`;
    case "pin_prompt": return "This LocalSend device asks for the PIN set on it.";
    case "code_prompt": // after a wrong code the dialog's status says so, with the attempt
      return `The receiver shows a 6-digit code; type it to verify it is really them.${attemptText(p) && !p.retry ? ` (${attemptText(p)})` : ""}`;
    case "code_shown": return attemptText(p)
      ? `${p.peer_name} typed a wrong code; the code stays the same (${attemptText(p)}).`
      : `Type this code on ${p.peer_name} (device ${shortId(p.peer_id)}).`;
    case "upload_prompt": return `${fmtSize(p.file_size)} from ${browserAt(p)}`;
    default: return "";
  }
}

async function answer(promptId, body, statusEl) {
  try {
    await api("POST", `/api/prompts/${encodeURIComponent(promptId)}`, body);
  } catch (error) {
    if (statusEl) setStatus(statusEl, error.message, "bad");
    else toast(error.message);
  }
}

function promptActions(p, statusEl, codeInput) {
  const id = p.prompt_id;
  // The first button is the one that says no (Esc presses it; the dialog opens on it,
  // as the terminal's y/N defaults to N).
  if (p.event === "offer_prompt" || p.event === "upload_prompt") {
    return [
      h("button", { type: "button", class: "ghost", text: "Decline", "data-role": "cancel",
        onclick: () => answer(id, { accept: false }, statusEl) }),
      h("button", { type: "button", class: "primary", text: "Accept",
        onclick: () => answer(id, { accept: true }, statusEl) }),
    ];
  }
  if (p.event === "code_prompt" || p.event === "pin_prompt") {
    return [
      h("button", { type: "button", class: "ghost", text: "Cancel", "data-role": "cancel",
        onclick: () => cancelTransfer(p.transfer) }),
      h("button", { type: "submit", class: "primary", text: p.event === "pin_prompt" ? "Send PIN" : "Verify" }),
    ];
  }
  return [h("button", { type: "button", class: "ghost", text: "Dismiss", "data-role": "cancel",
    onclick: () => answer(id, { dismiss: true }, statusEl) })];
}

function deadlineText(p) {
  const left = Math.max(0, Math.round(p.deadline - Date.now() / 1000));
  return `${fmtDuration(left)} left`;
}

let dialogPrompt = null;
// The deadline of the question on screen: a renewed prompt (a wrong code) has a new one.
let dialogDeadline = null;
// Esc answers the question on screen as its first button does (Decline, Cancel, Dismiss).
const promptModal = new Modal($("dialog-overlay"), () => {
  const cancel = $("dialog").querySelector('[data-role="cancel"]');
  if (cancel && !cancel.disabled) cancel.click();
});

function renderDialog() {
  const overlay = $("dialog-overlay");
  const pending = [...state.prompts.values()];
  const p = pending[0];
  if (!p) {
    promptModal.hide();
    dialogPrompt = null;
    return;
  }
  if (dialogPrompt === p.prompt_id && dialogDeadline === p.deadline && promptModal.open) {
    const count = overlay.querySelector(".count");
    if (count) count.textContent = pending.length > 1 ? `1 of ${pending.length}` : "";
    return; // same question: keep what the user typed
  }
  dialogPrompt = p.prompt_id;
  dialogDeadline = p.deadline;
  const status = h("p", { class: "status", role: "status" });
  const dialog = $("dialog");
  dialog.dataset.promptKind = p.event.replace("_prompt", "");
  dialog.dataset.promptId = p.prompt_id;
  const kickers = { offer_prompt: p.via === "localsend" ? "Incoming via LocalSend"
    : p.text ? "Incoming text" : "Incoming files",
    code_prompt: "Verify the receiver", code_shown: "New device", upload_prompt: "Browser upload",
    pin_prompt: "LocalSend PIN" };
  const body = [
    h("div", { class: "card-head" },
      h("span", { class: "kicker", text: kickers[p.event] || "" }),
      h("span", { class: "count", text: pending.length > 1 ? `1 of ${pending.length}` : "" })),
    h("h2", { id: "dialog-title", text: promptTitle(p) }),
    h("p", { class: "muted", text: promptMeta(p) }),
  ];
  let codeInput = null;
  if (p.event === "code_shown") {
    body.push(h("div", { class: "code-digits", id: "shown-code", "aria-label": `Code ${p.code.split("").join(" ")}`,
      text: fmtCode(p.code) }));
  }
  if (p.event === "offer_prompt" && p.text && p.preview) {
    body.push(h("blockquote", { class: "text-preview", text: p.preview }));
  }
  if (p.event === "offer_prompt" && p.sample.length) {
    body.push(h("ul", { class: "sample" }, p.sample.map((name) => h("li", { text: name })),
      p.files > p.sample.length ? h("li", { class: "muted", text: `and ${p.files - p.sample.length} more` }) : null));
  }
  if (p.event === "code_prompt") {
    codeInput = h("input", { type: "text", id: "code-input", class: "code-input", inputmode: "numeric",
      autocomplete: "one-time-code", maxlength: "16", placeholder: "6 digits", "aria-label": "Verification code" });
    body.push(codeInput);
  }
  if (p.event === "pin_prompt") {
    codeInput = h("input", { type: "password", id: "pin-input", class: "code-input",
      autocomplete: "off", maxlength: "64", "aria-label": "PIN" });
    body.push(codeInput);
  }
  body.push(h("p", { class: "deadline", text: deadlineText(p) }), status);
  const actions = h("div", { class: "actions" }, promptActions(p, status, codeInput));
  if (p.event === "code_prompt" || p.event === "pin_prompt") {
    const form = h("form", { novalidate: true }, body, actions);
    const verify = actions.querySelector("button[type=submit]");
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      if (p.event === "pin_prompt") {
        answer(p.prompt_id, { pin: codeInput.value }, status);
        return;
      }
      // The prompt stays open while the receiver checks the code (2 s for a wrong one);
      // a wrong code comes back as the same prompt, renewed.
      verify.disabled = true;
      setStatus(status, "Checking the code…");
      await answer(p.prompt_id, { code: codeInput.value }, status);
      if (status.classList.contains("bad")) verify.disabled = false;
    });
    dialog.replaceChildren(form);
    if (p.retry) {
      setStatus(status, p.event === "pin_prompt" ? "That PIN was wrong."
        : `That code was wrong (${attemptText(p)}).`, "bad");
    }
  } else {
    dialog.replaceChildren(...body, actions);
  }
  promptModal.show(codeInput || actions.querySelector('[data-role="cancel"]'));
}

function renderPrompts() {
  const pending = [...state.prompts.values()];
  replaceChildren($("prompt-list"), pending.map((p) => h("li", { class: "prompt-item", "data-kind": p.event },
    h("span", { class: "row-icon", text: p.event === "code_shown" ? "#" : p.event === "code_prompt" ? "?" : "↓" }),
    h("span", { class: "row-main" },
      h("span", { class: "row-title" }, h("span", { text: promptTitle(p) })),
      h("span", { class: "row-meta", text: p.event === "code_shown" ? `Code ${fmtCode(p.code)} · ${deadlineText(p)}` : `${promptMeta(p)} · ${deadlineText(p)}` })),
    h("span", { class: "row-actions" },
      p.event === "code_prompt" || p.event === "pin_prompt"
        ? h("button", { type: "button", class: "primary small", text: p.event === "pin_prompt" ? "Enter PIN" : "Enter code",
          "aria-label": `${p.event === "pin_prompt" ? "Enter PIN" : "Enter code"} for ${p.peer_name}`,
          onclick: () => { dialogPrompt = null; renderDialog(); } })
        : promptActions(p, null, null).map((b) => {
          // One row per request: each button names the request it answers.
          b.classList.add("small");
          b.setAttribute("aria-label", `${b.textContent}: ${promptTitle(p)}`);
          b.dataset.focusKey = `${p.prompt_id}:${b.textContent}`;
          return b;
        })),
  )), $("prompt-empty"));
  const badge = $("prompt-badge");
  badge.textContent = String(pending.length);
  badge.hidden = pending.length === 0;
  // The tab's title counts what waits for an answer, as mail apps do: "(1) p2p-transfer".
  document.title = pending.length ? `(${pending.length}) ${APP_TITLE}` : APP_TITLE;
  for (const [id, shown] of notifications) {
    if (!state.prompts.has(id)) { shown.close(); notifications.delete(id); }
  }
  renderDialog();
}

// --- notifications: an offer or a code while this tab is in the background ----------------------------

const APP_TITLE = "p2p-transfer";
// What is notified, by prompt ID: closed once answered (here or in another tab).
const notifications = new Map();
const notificationsSupported = () => "Notification" in window;
// Whether the person is looking at this tab (another window or tab: notify instead).
let pageFocused = document.hasFocus();
window.addEventListener("focus", () => { pageFocused = true; });
window.addEventListener("blur", () => { pageFocused = false; });

function notify(p) {
  if (!notificationsSupported() || Notification.permission !== "granted") return;
  if (document.visibilityState === "visible" && pageFocused) return; // the dialog shows it
  const shown = new Notification(promptTitle(p), {
    body: p.event === "code_shown" ? `Code ${fmtCode(p.code)}` : promptMeta(p),
    tag: p.prompt_id, icon: "/static/icon.svg", requireInteraction: p.event !== "code_shown",
  });
  shown.addEventListener("click", () => { window.focus(); shown.close(); });
  notifications.set(p.prompt_id, shown);
}

function renderNotifyState() {
  const button = $("notify-on");
  let text;
  if (!notificationsSupported()) text = "This browser cannot show notifications.";
  else if (Notification.permission === "granted") text = "On: offers and codes are notified while this tab is in the background.";
  else if (Notification.permission === "denied") text = "Blocked in this browser's site settings.";
  else text = "Off: offers are only shown in this tab.";
  $("notify-state").textContent = text;
  button.hidden = !notificationsSupported() || Notification.permission !== "default";
}

async function askToNotify() {
  try { await Notification.requestPermission(); } catch (_) { /* an old browser: no promise */ }
  renderNotifyState();
}

function tickDeadlines() {
  for (const el of document.querySelectorAll("#dialog .deadline")) {
    const p = state.prompts.get($("dialog").dataset.promptId);
    if (p) el.textContent = deadlineText(p);
  }
}

function renderIncomingFacts() {
  renderNotifyState();
  $("incoming-folder").textContent = state.settings.download_dir || "";
  $("incoming-auto").textContent = state.settings.auto_accept_trusted
    ? "Offers are accepted without asking" : "You are asked about every offer";
}

// --- share ----------------------------------------------------------------------------------------------

function renderShare() {
  const s = state.share;
  $("share-pill").dataset.state = s.running ? "on" : "off";
  $("share-pill").textContent = s.running ? "sharing" : "stopped";
  $("share-running").hidden = !s.running;
  $("share-toggle").textContent = s.running ? "Stop sharing" : "Start sharing";
  $("share-toggle").className = s.running ? "ghost danger" : "primary";
  const notice = $("share-notice");
  notice.textContent = s.notice || "";
  notice.hidden = !s.notice;
  if (s.running) {
    if ($("share-url").value !== s.url) {
      $("share-url").value = s.url;
      $("share-qr").src = `/api/share/qr.svg?u=${encodeURIComponent(s.url.slice(-8))}`;
    }
    $("share-folder").textContent = `Uploads are saved to ${s.upload_dir}.`;
  }
  replaceChildren($("share-files"), (s.files || []).map((path) => {
    const name = path.split("/").pop();
    return h("li", { class: "row" },
      h("span", { class: "row-icon" }, icon("file")),
      h("span", { class: "row-main" }, h("span", { class: "row-title" }, h("span", { text: name })),
        h("span", { class: "row-meta", title: path, text: path })),
      h("span", { class: "row-actions" },
        h("button", { type: "button", class: "ghost small", text: "Remove", "aria-label": `Remove ${name}`,
          "data-focus-key": `share-remove:${path}`,
          onclick: () => setShareFiles(s.files.filter((p) => p !== path)) })));
  }), $("share-files-empty"));
  renderShareActivity();
}

async function toggleShare() {
  const button = $("share-toggle");
  button.disabled = true;
  try {
    await api("POST", state.share.running ? "/api/share/stop" : "/api/share/start", {});
  } catch (error) { toast(error.message); }
  button.disabled = false;
}

async function setShareFiles(paths) {
  try {
    state.share = await api("PUT", "/api/share/files", { paths });
    renderShare();
  } catch (error) { toast(error.message); }
}

function shareActivity(event) {
  const id = event.request_id;
  // Its state (the row's data-state) is its session's, from the server's `state` events.
  const entry = state.shareActivity.get(id)
    || { name: event.file_name, size: event.file_size || 0, status: "", state: "", session: event.session };
  switch (event.event) {
    case "share_upload_request": entry.status = `asking you · ${browserAt(event)}`; break;
    case "share_upload_accepted": entry.status = "accepted"; break;
    case "share_upload_progress":
      entry.status = `${fmtSize(event.received_bytes)} of ${fmtSize(event.file_size)} · ${fmtRate(event.rate)}`; break;
    case "share_upload_complete": entry.status = `saved as ${event.path} · ${fmtSize(event.size)}`; break;
    case "share_upload_failed": entry.status = `failed: ${event.message}`; break;
    case "share_upload_rejected": entry.status = `not accepted: ${event.reason}`; break;
    default: break;
  }
  state.shareActivity.delete(id);
  state.shareActivity.set(id, entry);
  while (state.shareActivity.size > 20) state.shareActivity.delete(state.shareActivity.keys().next().value);
  renderShareActivity();
}

// A share upload moved on: its row shows the state its session is in now.
function shareUploadState(event) {
  for (const entry of state.shareActivity.values()) {
    if (entry.session === event.session) {
      entry.state = event.state;
      renderShareActivity();
      return;
    }
  }
}

function renderShareActivity() {
  const rows = [...state.shareActivity.values()].reverse().map((e) => h("li", { class: "row", "data-state": e.state },
    h("span", { class: "row-icon", text: "↑" }),
    h("span", { class: "row-main" }, h("span", { class: "row-title" }, h("span", { text: e.name })),
      h("span", { class: "row-meta", text: e.status }))));
  replaceChildren($("share-activity"), rows, $("share-activity-empty"));
}

const pickerSelection = new Map();
const pickerBrowser = new FileBrowserView($("picker-browser"), $("picker-hidden"), pickerSelection);
pickerBrowser.onchange = () => {
  setStatus($("picker-status"), pickerSelection.size ? `${pickerSelection.size} selected` : "");
};

// The picker opens on itself (its title is read out); Tab goes to its first control.
const pickerModal = new Modal($("picker-overlay"), () => pickerModal.hide());

function openPicker() {
  pickerSelection.clear();
  setStatus($("picker-status"), "");
  pickerModal.show($("picker-dialog"));
  pickerBrowser.load(pickerBrowser.path);
}

async function finishPicker() {
  const paths = [...new Set([...(state.share.files || []), ...pickerSelection.keys()])];
  pickerModal.hide();
  if (pickerSelection.size) await setShareFiles(paths);
}

// --- WAN --------------------------------------------------------------------------------------------------

async function loadWan() {
  let wan;
  try { wan = await api("GET", "/api/wan"); } catch (_) { return; }
  if (wan.ticket && $("wan-ticket").value !== wan.ticket) {
    $("wan-ticket").value = wan.ticket;
    $("wan-qr").src = `/api/wan/qr.svg?t=${encodeURIComponent(wan.ticket.slice(-8))}`;
  }
  $("wan-id").textContent = wan.endpoint_id || "";
  $("wan-addresses").textContent = (wan.addresses || []).join(", ") || "none";
  const relay = wan.relay;
  const select = $("relay-select");
  if (document.activeElement !== select && document.activeElement !== $("relay-url")) {
    select.value = relay.setting === "off" || relay.setting === "default" ? relay.setting : "custom";
    $("relay-url").value = select.value === "custom" ? relay.setting : "";
    $("relay-url").hidden = select.value !== "custom";
  }
  if (relay.setting === "off") setStatus($("relay-status"), "Relay off: peers need a direct address.");
  else if (relay.connected === null) setStatus($("relay-status"), "Connecting to the relay…");
  else setStatus($("relay-status"), relay.message, relay.connected ? "ok" : "bad");
  replaceChildren($("connection-list"), wan.connections.map((c) => h("li", { class: "row" },
    h("span", { class: "row-icon", text: c.direction === "send" ? "↑" : "↓" }),
    h("span", { class: "row-main" }, h("span", { class: "row-title" }, h("span", { text: c.peer_name })),
      h("span", { class: "row-meta", text: `${shortId(c.peer_id)} · ${c.direction}` })),
    h("span", { class: "row-actions" },
      h("span", { class: "pill", "data-state": c.path === "direct" ? "ok" : c.path === "relay" ? "warn" : "",
        text: c.rtt_ms !== null ? `${c.path} · ${Math.round(c.rtt_ms)} ms` : c.path })))), $("connection-empty"));
}

async function saveRelay() {
  const select = $("relay-select");
  const relay = select.value === "custom" ? $("relay-url").value.trim() : select.value;
  setStatus($("relay-status"), "Restarting the node…");
  try {
    await api("PUT", "/api/settings", { relay });
    loadWan();
  } catch (error) { setStatus($("relay-status"), error.message, "bad"); }
}

let checkedTicket = "";
async function checkTicket() {
  const ticket = $("connect-ticket").value;
  const facts = $("connect-facts");
  $("connect-send").disabled = true;
  facts.hidden = true;
  try {
    const info = await api("POST", "/api/tickets/inspect", { ticket });
    checkedTicket = ticket;
    facts.replaceChildren(
      h("dt", { text: "Device" }), h("dd", { text: info.is_self ? `${info.name} (this device)` : info.name }),
      h("dt", { text: "Endpoint ID" }), h("dd", { class: "mono", text: info.endpoint_id }),
      h("dt", { text: "Addresses" }), h("dd", { class: "mono", text: info.addresses.join(", ") || "none" }),
      h("dt", { text: "Relay" }), h("dd", { class: "mono", text: info.relay_url || "none" }),
      h("dt", { text: "Trusted" }), h("dd", { text: info.trusted ? "yes: no code needed" : "no: the receiver will show a code" }));
    facts.hidden = false;
    setStatus($("connect-status"), "Valid ticket", "ok");
    $("connect-send").disabled = info.is_self;
  } catch (error) {
    setStatus($("connect-status"), error.message, "bad");
  }
}

function sendToTicket() {
  state.targets.clear();
  state.ticketChosen = true;
  $("ticket-input").value = checkedTicket;
  location.hash = "#send";
  renderTargets();
  updateSendButton();
}

// --- text messages (LocalSend; later our own send --text) --------------------------------------------------

const TEXTS_SHOWN = 20;
let texts = [];

function renderTexts(list) {
  texts = list.slice(-TEXTS_SHOWN);
  drawTexts();
}

function addText(event) {
  texts = [...texts, event].slice(-TEXTS_SHOWN);
  drawTexts();
  toast(`Text from ${event.from}`);
}

// One card per message, newest first: who sent it, how, the text as text (never HTML), a Copy button.
function drawTexts() {
  $("text-card").hidden = texts.length === 0;
  $("text-list").replaceChildren(...[...texts].reverse().map((t) => {
    const status = h("span", { class: "status", role: "status" });
    return h("li", { class: "text-message", "data-session": t.session },
      h("div", { class: "row-title" }, h("span", { text: `From ${t.from}` }),
        t.via === "localsend" ? h("span", { class: "pill plain", text: "LocalSend" }) : null),
      h("pre", { class: "text-body", text: t.text }),
      h("div", { class: "actions" }, status,
        h("button", { type: "button", class: "ghost small", text: "Copy",
          "aria-label": `Copy the text from ${t.from}`, onclick: async () => {
            try {
              await navigator.clipboard.writeText(t.text);
              setStatus(status, "Copied.", "ok");
            } catch (_) {
              setStatus(status, "Select the text and copy it.", "bad");
            }
          } })));
  }));
}

// --- settings -----------------------------------------------------------------------------------------------

let settingsDirty = false;

function fillSettings(force) {
  if (settingsDirty && !force) return;
  const s = state.settings;
  if (!s || !s.device_name) return;
  $("set-device-name").value = s.device_name;
  $("set-download-dir").value = s.download_dir;
  $("set-auto-accept").checked = s.auto_accept_trusted;
  $("set-pairing-hours").value = String(Math.round(s.pairing_lifetime_hours * 100) / 100);
  $("set-parallel").value = String(s.parallel_files);
  $("set-localsend").checked = s.localsend;
  $("set-localsend-port").value = String(s.localsend_port);
  $("set-localsend-pin").value = s.localsend_pin;
  $("set-mailbox").value = s.mailbox || "";
  settingsDirty = false;
}

async function saveSettings(e) {
  e.preventDefault();
  const s = state.settings;
  const wanted = {
    device_name: $("set-device-name").value.trim(),
    download_dir: $("set-download-dir").value.trim(),
    auto_accept_trusted: $("set-auto-accept").checked,
    pairing_lifetime_hours: Number($("set-pairing-hours").value),
    parallel_files: Number($("set-parallel").value),
    localsend: $("set-localsend").checked,
    localsend_port: Number($("set-localsend-port").value),
    localsend_pin: $("set-localsend-pin").value.trim(),
    mailbox: $("set-mailbox").value.trim(),
  };
  const changes = {};
  for (const [key, value] of Object.entries(wanted)) if (value !== s[key]) changes[key] = value;
  if (!Object.keys(changes).length) { setStatus($("settings-status"), "Nothing changed."); return; }
  setStatus($("settings-status"), changes.device_name ? "Saving and restarting the node…" : "Saving…");
  try {
    state.settings = await api("PUT", "/api/settings", changes);
    settingsDirty = false;
    fillSettings(true);
    renderHeader();
    setStatus($("settings-status"), "Saved.", "ok");
  } catch (error) {
    setStatus($("settings-status"), error.message, "bad");
  }
}

// --- wiring -------------------------------------------------------------------------------------------------

function wire() {
  window.addEventListener("hashchange", showView);
  $("devices-refresh").addEventListener("click", loadDevices);
  $("doctor-run").addEventListener("click", checkNetwork);
  $("notify-on").addEventListener("click", askToNotify);
  $("forget-all").addEventListener("click", async () => {
    if (!confirm("Forget every trusted device?")) return;
    try { await api("DELETE", "/api/pairings"); } catch (error) { toast(error.message); }
    loadDevices();
  });
  $("ticket-input").addEventListener("input", () => {
    const typed = Boolean($("ticket-input").value.trim());
    if (typed !== state.ticketChosen) {
      state.ticketChosen = typed;
      renderTargets();
    }
    updateSendButton();
  });
  $("send-button").addEventListener("click", send);
  $("send-code-button").addEventListener("click", sendByCode);
  $("code-send-close").addEventListener("click", closeCodeSend);
  $("receive-code-form").addEventListener("submit", receiveByCode);
  $("send-text").addEventListener("input", updateSendButton);
  $("open-downloads").addEventListener("click", openDownloads);
  $("settings-open-downloads").addEventListener("click", openDownloads);
  $("clear-history").addEventListener("click", async () => {
    if (!confirm("Clear the transfer history?")) return;
    try { await api("DELETE", "/api/history"); } catch (error) { toast(error.message); }
    loadHistory();
  });
  $("share-toggle").addEventListener("click", toggleShare);
  $("share-add").addEventListener("click", openPicker);
  $("picker-cancel").addEventListener("click", () => pickerModal.hide());
  $("picker-done").addEventListener("click", finishPicker);
  for (const button of document.querySelectorAll("[data-copy]")) {
    button.addEventListener("click", () => copyFrom(button.dataset.copy));
  }
  $("relay-select").addEventListener("change", () => {
    $("relay-url").hidden = $("relay-select").value !== "custom";
  });
  $("relay-save").addEventListener("click", saveRelay);
  $("connect-check").addEventListener("click", checkTicket);
  $("connect-send").addEventListener("click", sendToTicket);
  $("settings-form").addEventListener("submit", saveSettings);
  $("settings-form").addEventListener("input", () => { settingsDirty = true; });
  setupDrop();
  setInterval(tickDeadlines, 1000);
  setInterval(() => {
    if (!document.hidden && (state.view === "devices" || state.view === "send")) loadDevices();
  }, DEVICE_REFRESH_MS);
}

wire();
renderTargets();
renderSelection();
updateSendButton();
loadMeta().then(() => {
  showView();
  connect();
});
