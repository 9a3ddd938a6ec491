// p2p-transfer share page. Uploads: one WebSocket, files one after the other, as in
// docs/SHARE.md. Downloads: plain links. No inline code, no third-party code.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const base = location.pathname.endsWith("/") ? location.pathname : location.pathname + "/";
  const wsUrl = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + base + "ws";
  // Bytes the browser may hold unsent before we wait; keeps memory flat on phones.
  const HIGH_WATER = 4 * 1024 * 1024;
  const POLL_MS = 8;
  let chunkSize = 256 * 1024;

  const items = [];
  let sending = false;
  let channel = null;

  // --- formatting -----------------------------------------------------------
  // IEC units, as the terminal says them (p2p_transfer/units.py format_size): 3.0 MiB.
  function formatSize(bytes) {
    if (bytes == null) return "";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let value = bytes;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
    if (unit === 0) return Math.floor(value) + " B";
    return value.toFixed(value < 100 ? 1 : 0) + " " + units[unit];
  }
  function formatDuration(seconds) {
    if (!isFinite(seconds)) return "";
    if (seconds < 60) return Math.max(1, Math.round(seconds)) + " s";
    const minutes = Math.floor(seconds / 60);
    return minutes + " min " + Math.round(seconds % 60) + " s";
  }
  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text != null) node.textContent = text;
    return node;
  }
  function showNotice(text) {
    const notice = $("notice");
    notice.textContent = text;
    notice.hidden = !text;
  }

  // --- the socket -------------------------------------------------------------
  // Wraps a WebSocket as "await the next message"; a close rejects every wait.
  class Channel {
    constructor(url) {
      this.ws = new WebSocket(url);
      this.ws.binaryType = "arraybuffer";
      this.messages = [];
      this.waiters = [];
      this.closed = false;
      this.closeReason = "";
      this.opened = new Promise((resolve, reject) => {
        this.ws.addEventListener("open", () => resolve());
        this.ws.addEventListener("close", () => reject(new Error("Could not connect to the device.")));
      });
      this.opened.catch(() => {});
      this.ws.addEventListener("message", (event) => {
        let msg;
        try { msg = JSON.parse(event.data); } catch { return; }
        const waiter = this.waiters.shift();
        if (waiter) waiter.resolve(msg); else this.messages.push(msg);
      });
      this.ws.addEventListener("close", (event) => {
        this.closed = true;
        this.closeReason = event.reason || (event.code === 1006 ? "the connection was lost" : "");
        for (const waiter of this.waiters.splice(0)) waiter.reject(this.closedError());
      });
    }
    closedError() {
      return new Error("Connection lost" + (this.closeReason ? ": " + this.closeReason : "") + ".");
    }
    next() {
      if (this.messages.length) return Promise.resolve(this.messages.shift());
      if (this.closed) return Promise.reject(this.closedError());
      return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
    }
    send(data) { this.ws.send(data); }
    close() { if (!this.closed) this.ws.close(1000, "done"); }
  }

  async function openChannel() {
    if (channel && !channel.closed) return channel;
    channel = new Channel(wsUrl);
    await channel.opened;
    return channel;
  }

  // --- the upload list --------------------------------------------------------
  function addFiles(fileList) {
    for (const file of fileList) {
      const item = { file, state: "queued", received: 0, started: 0, aborted: false };
      const row = el("li", "file");
      const info = el("div", "file-info");
      info.append(el("span", "file-name", file.name), el("span", "file-meta", formatSize(file.size)));
      const remove = el("button", "remove", "Remove");
      remove.type = "button";
      remove.setAttribute("aria-label", "Remove " + file.name);
      remove.addEventListener("click", () => {
        const at = items.indexOf(item);
        items.splice(at, 1);
        row.remove();
        refresh();
        focusAfterRemoval(at);
      });
      const bar = el("progress");
      bar.max = 1;
      bar.value = 0;
      bar.hidden = true;
      const status = el("div", "file-status", "Ready to send");
      row.append(info, remove, bar, status);
      Object.assign(item, { row, bar, status, remove });
      items.push(item);
      $("upload-list").append(row);
    }
    refresh();
  }

  // The row whose Remove was pressed is gone: the next row's Remove takes focus (else the
  // one before, else the file chooser), never the page's start.
  function focusAfterRemoval(at) {
    const removable = (i) => i && !i.remove.hidden;
    const next = items.slice(at).find(removable) || items.slice(0, at).reverse().find(removable);
    if (next) next.remove.focus(); else $("file-input").focus();
  }

  function setState(item, state, text) {
    item.state = state;
    item.row.dataset.state = state;
    item.status.textContent = text;
    item.remove.hidden = state !== "queued";
    item.bar.hidden = state === "queued" || state === "rejected" || state === "timeout";
    if (state === "done") item.bar.value = 1;
    refresh();
  }

  function refresh() {
    const queued = items.filter((i) => i.state === "queued");
    const finished = items.filter((i) => ["done", "rejected", "timeout", "failed"].includes(i.state));
    // While files go one by one, a file not yet asked about waits for the one before it.
    let ahead = null;
    for (const item of items) {
      if (item.state === "queued") {
        item.status.textContent = sending && ahead ? "Queued behind " + ahead.file.name : "Ready to send";
      }
      if (!finished.includes(item)) ahead = item;
    }
    const sendButton = $("send-button");
    // aria-disabled, not disabled: a focused button that becomes disabled drops focus to
    // the page's start; this one keeps it (its clicks do nothing meanwhile).
    sendButton.setAttribute("aria-disabled", String(sending || queued.length === 0));
    sendButton.textContent = sending ? "Sending…" : queued.length > 1 ? "Send " + queued.length + " files" : "Send";
    $("clear-button").hidden = sending || finished.length === 0;
    const done = items.filter((i) => i.state === "done").length;
    const total = queued.reduce((sum, i) => sum + i.file.size, 0);
    let summary = "";
    if (queued.length && !sending) summary = queued.length + (queued.length === 1 ? " file, " : " files, ") + formatSize(total);
    else if (items.length) summary = done + " of " + items.length + " sent";
    $("summary").textContent = summary;
  }

  function showProgress(item) {
    const size = item.file.size;
    item.bar.value = size ? item.received / size : 1;
    const elapsed = (performance.now() - item.started) / 1000;
    const rate = elapsed > 0 ? item.received / elapsed : 0;
    const pct = size ? Math.floor((100 * item.received) / size) : 100;
    let text = pct + "%";
    if (rate > 0) {
      text += " · " + formatSize(rate) + "/s";
      if (item.received < size) text += " · " + formatDuration((size - item.received) / rate) + " left";
    }
    item.status.textContent = text;
  }

  // --- sending ---------------------------------------------------------------
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  async function sendBytes(ch, item) {
    const file = item.file;
    for (let offset = 0; offset < file.size; offset += chunkSize) {
      if (item.aborted || ch.closed) return;
      const buffer = await file.slice(offset, offset + chunkSize).arrayBuffer();
      while (ch.ws.bufferedAmount > HIGH_WATER && !ch.closed && !item.aborted) await sleep(POLL_MS);
      if (item.aborted || ch.closed) return;
      ch.send(buffer);
    }
  }

  const DEFAULT_DECLINE = "The owner declined this file.";

  function rejectionText(answer) {
    if (answer.code === "timeout") return "Timed out: the owner did not answer in time";
    if (answer.code === "declined" || !answer.code) {
      const custom = answer.reason && answer.reason !== DEFAULT_DECLINE ? ": " + answer.reason : "";
      return "Declined by the owner" + custom;
    }
    return answer.reason || "Refused by the device";
  }

  async function uploadOne(item) {
    let ch;
    try {
      ch = await openChannel();
    } catch (err) {
      setState(item, "failed", "Failed: " + err.message);
      return;
    }
    setState(item, "asking", "Waiting for the owner to accept…");
    ch.send(JSON.stringify({ type: "file_info", file_name: item.file.name, file_size: item.file.size }));
    try {
      const answer = await ch.next();
      if (answer.type === "rejected") {
        setState(item, answer.code === "timeout" ? "timeout" : "rejected", rejectionText(answer));
        return;
      }
      if (answer.type === "error") throw new Error(answer.message);
      if (answer.type !== "accepted") throw new Error("unexpected reply from the device");
      item.started = performance.now();
      setState(item, "sending", "Starting…");
      const sender = sendBytes(ch, item);
      for (;;) {
        const msg = await ch.next();
        if (msg.type === "progress") {
          item.received = msg.received_bytes;
          showProgress(item);
        } else if (msg.type === "complete") {
          item.received = item.file.size;
          const seconds = (performance.now() - item.started) / 1000;
          // A speed means something only for files big enough to outlast the round trips.
          const rate = seconds > 0 && item.file.size >= 1048576 ? " · " + formatSize(item.file.size / seconds) + "/s" : "";
          setState(item, "done", "Sent ✓" + rate);
          break;
        } else if (msg.type === "error") {
          throw new Error(msg.message);
        }
      }
      await sender;
    } catch (err) {
      item.aborted = true;
      let message = err && err.message ? err.message : String(err);
      if (message && !/[.!?]$/.test(message)) message += ".";
      setState(item, "failed", "Failed: " + message.charAt(0).toUpperCase() + message.slice(1));
    }
  }

  let wakeLock = null;
  async function keepAwake(on) {
    try {
      if (on && navigator.wakeLock) wakeLock = await navigator.wakeLock.request("screen");
      else if (!on && wakeLock) { await wakeLock.release(); wakeLock = null; }
    } catch { wakeLock = null; }
  }

  async function sendAll() {
    if (sending || $("send-button").getAttribute("aria-disabled") === "true") return;
    sending = true;
    refresh();
    keepAwake(true);
    try {
      let item;
      while ((item = items.find((i) => i.state === "queued"))) await uploadOne(item);
    } finally {
      if (channel) channel.close();
      channel = null;
      sending = false;
      keepAwake(false);
      refresh();
    }
  }

  // --- downloads ----------------------------------------------------------------
  function showDownloads(files) {
    const list = $("download-list");
    list.replaceChildren();
    for (const entry of files) {
      const row = el("li", "file");
      const info = el("div", "file-info");
      let meta = entry.missing ? "No longer available" : formatSize(entry.size);
      if (entry.kind === "folder" && !entry.missing) meta = "Folder · " + entry.files + (entry.files === 1 ? " file · " : " files · ") + meta;
      info.append(el("span", "file-name", entry.name), el("span", "file-meta", meta));
      const folder = entry.kind === "folder";
      const link = el("a", "button", folder ? "Download zip" : "Download");
      link.href = entry.url;
      link.setAttribute("download", "");
      // The name read out starts with the words on the link (WCAG 2.5.3), then says which.
      link.setAttribute("aria-label", folder
        ? "Download zip of " + entry.name.replace(/\.zip$/i, "")
        : "Download " + entry.name);
      row.append(info, link);
      list.append(row);
    }
    $("download-card").hidden = files.length === 0;
  }

  // --- start ---------------------------------------------------------------------
  async function start() {
    let info;
    try {
      const response = await fetch(base + "api/info", { cache: "no-store" });
      if (!response.ok) throw new Error("HTTP " + response.status);
      info = await response.json();
    } catch {
      showNotice("Could not reach the device. Check that you are on the same network and that the share is still running.");
      return;
    }
    if (info.device_name) {
      $("title").textContent = info.upload.enabled ? "Send files to " + info.device_name : "Files from " + info.device_name;
    }
    chunkSize = info.upload.chunk_size || chunkSize;
    $("upload-card").hidden = !info.upload.enabled;
    if (info.upload.max_size != null) $("limit-hint").textContent = "Up to " + formatSize(info.upload.max_size) + " per file";
    showDownloads(info.files);
  }

  const input = $("file-input");
  input.addEventListener("change", () => {
    addFiles(input.files);
    input.value = "";
  });
  $("send-button").addEventListener("click", sendAll);
  $("clear-button").addEventListener("click", () => {
    for (const item of items.filter((i) => ["done", "rejected", "timeout", "failed"].includes(i.state))) {
      items.splice(items.indexOf(item), 1);
      item.row.remove();
    }
    refresh();
    $("file-input").focus(); // the button is gone now
  });

  const drop = $("drop");
  for (const type of ["dragenter", "dragover"]) {
    drop.addEventListener(type, (event) => { event.preventDefault(); drop.classList.add("over"); });
  }
  for (const type of ["dragleave", "drop"]) {
    drop.addEventListener(type, () => drop.classList.remove("over"));
  }
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    if (event.dataTransfer && event.dataTransfer.files.length) addFiles(event.dataTransfer.files);
  });
  // A file dropped next to the zone must not make the browser leave the page.
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());
  window.addEventListener("beforeunload", (event) => {
    if (sending) { event.preventDefault(); event.returnValue = ""; }
  });

  start();
})();
