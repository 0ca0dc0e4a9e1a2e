// classify serve: the live microphone page and the upload view. No libraries, nothing remote.
"use strict";

const PALETTE = ["#2866c9", "#e8453c", "#2e9e5b", "#f2a93b", "#8756c9", "#13a3b5", "#c94f9a", "#7a8a1f",
                 "#8c5a3c", "#4d5b6b"];
const $ = (id) => document.getElementById(id);
// what the tests (and curious users, in the console) can read
const state = window.classifyServe = { model: null, live: [], upload: null, errors: [], stream: null,
                                       listeners: [] };  // listeners: functions given each microphone chunk

// ------------------------------------------------------------------------------- helpers
function showError(message) {
  state.errors.push(message);
  const box = $("error");
  box.textContent = message;
  box.hidden = false;
}
function clearError() { $("error").hidden = true; $("error").textContent = ""; }

async function postAudio(body, query) {
  let res;
  try {
    res = await fetch("/api/predict?" + query, {
      method: "POST", body, headers: { "Content-Type": "application/octet-stream" } });
  } catch (e) {
    throw new Error("the server cannot be reached (" + e.message + "); is classify serve still running?");
  }
  let data = null;
  try { data = await res.json(); } catch (e) { /* not JSON: handled below */ }
  if (!res.ok) {
    const why = data && data.error ? data.error : ("HTTP " + res.status);
    throw new Error(why);
  }
  return data;
}

function classColour(name) {
  const i = state.model ? state.model.classes.indexOf(name) : 0;
  return PALETTE[(i < 0 ? 0 : i) % PALETTE.length];
}

function renderLabels(ol, result, k) {
  ol.textContent = "";
  const m = state.model;
  let rows;
  if (m.multi_label) {  // every label above the threshold, then the next best up to k
    const above = new Set(result.above_threshold || []);
    rows = Object.entries(result.probs).sort((a, b) => b[1] - a[1])
      .filter(([c], i) => above.has(c) || i < k).map(([label, prob]) => ({ label, prob, above: above.has(label) }));
  } else {
    rows = result.labels.slice(0, k).map((r, i) => ({ ...r, above: i === 0 }));
  }
  for (const r of rows) {
    const li = document.createElement("li");
    li.dataset.label = r.label;
    li.dataset.prob = String(r.prob);
    if (r.above) li.className = "above";
    const name = document.createElement("span"); name.className = "name"; name.textContent = r.label;
    name.title = r.label;
    const bar = document.createElement("span"); bar.className = "bar";
    const fill = document.createElement("span"); fill.style.width = (100 * r.prob).toFixed(1) + "%";
    fill.style.background = classColour(r.label);
    bar.appendChild(fill);
    const p = document.createElement("span"); p.className = "p"; p.textContent = r.prob.toFixed(3);
    li.append(name, bar, p);
    ol.appendChild(li);
  }
}

function showSpectrogram(img, spec) {
  img.src = "data:image/png;base64," + spec.png;
  img.hidden = false;
}

function wavBytes(samples, sampleRate) {  // mono 16-bit PCM WAV
  const n = samples.length, buf = new ArrayBuffer(44 + 2 * n), v = new DataView(buf);
  const str = (o, s) => { for (let i = 0; i < s.length; i++) v.setUint8(o + i, s.charCodeAt(i)); };
  str(0, "RIFF"); v.setUint32(4, 36 + 2 * n, true); str(8, "WAVE"); str(12, "fmt ");
  v.setUint32(16, 16, true); v.setUint16(20, 1, true); v.setUint16(22, 1, true);
  v.setUint32(24, sampleRate, true); v.setUint32(28, 2 * sampleRate, true);
  v.setUint16(32, 2, true); v.setUint16(34, 16, true); str(36, "data"); v.setUint32(40, 2 * n, true);
  for (let i = 0; i < n; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    v.setInt16(44 + 2 * i, s < 0 ? s * 0x8000 : s * 0x7fff, true);
  }
  return buf;
}

// ------------------------------------------------------------------------------- live
const live = { ctx: null, node: null, source: null, sink: null, timer: null, ring: null, filled: 0, pos: 0,
               inflight: false, skipped: 0, running: false };

async function startMic() {
  clearError();
  $("mic-start").disabled = true;
  try {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      throw new Error("this browser gives no microphone here (open the page from 127.0.0.1 or localhost: a secure context)");
    }
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false, channelCount: 1 } });
    state.stream = stream;
    const ctx = new AudioContext();
    await ctx.audioWorklet.addModule("/static/capture-worklet.js");
    const source = ctx.createMediaStreamSource(stream);
    const node = new AudioWorkletNode(ctx, "capture");
    const sink = ctx.createGain(); sink.gain.value = 0;  // keeps the graph pulling, plays nothing
    source.connect(node); node.connect(sink); sink.connect(ctx.destination);
    const cfg = state.model.live;
    Object.assign(live, { ctx, node, source, sink, ring: new Float32Array(Math.round(cfg.window * ctx.sampleRate)),
                          filled: 0, pos: 0, running: true, inflight: false, skipped: 0 });
    node.port.onmessage = (e) => push(e.data);
    live.timer = setInterval(tick, cfg.hop * 1000);
    await ctx.resume();
    $("mic-stop").disabled = false;
    $("mic-status").textContent = "listening (" + ctx.sampleRate + " Hz); first labels in " + cfg.hop + " s";
  } catch (e) {
    stopMic();
    const msg = e.name === "NotAllowedError" ? "the microphone was refused; allow it in the address bar and try again"
      : e.name === "NotFoundError" ? "no microphone found" : e.message;
    showError("Microphone: " + msg);
  }
}

function push(chunk) {
  const ring = live.ring;
  for (let i = 0; i < chunk.length; i++) {
    ring[live.pos] = chunk[i];
    live.pos = (live.pos + 1) % ring.length;
  }
  live.filled = Math.min(ring.length, live.filled + chunk.length);
  for (const f of state.listeners) f(chunk, live.ctx.sampleRate);
}

function lastWindow() {
  const ring = live.ring, n = live.filled, out = new Float32Array(n);
  const start = (live.pos - n + ring.length) % ring.length;
  for (let i = 0; i < n; i++) out[i] = ring[(start + i) % ring.length];
  return out;
}

async function tick() {
  if (!live.running || live.filled < 0.25 * live.ctx.sampleRate || !state.model.n_models) return;
  if (live.inflight) { live.skipped++; return; }  // never queue: a slow answer skips a hop
  live.inflight = true;
  const samples = lastWindow(), rate = live.ctx.sampleRate, t0 = performance.now();
  try {
    const r = await postAudio(wavBytes(samples, rate), "timeline=false&spectrogram=true");
    if (!live.running) return;
    const entry = { time: Date.now() / 1000, seconds: samples.length / rate, latency_ms: performance.now() - t0,
                    labels: r.labels, probs: r.probs, above_threshold: r.above_threshold || null,
                    label: r.label, score: r.score, unknown: r.unknown };
    state.live.push(entry);
    if (state.live.length > 600) state.live.splice(0, state.live.length - 600);
    renderLabels($("live-labels"), r, state.model.top_k);
    $("live-label").textContent = r.label === undefined ? "" : r.unknown
      ? "unknown (none of these: top score " + r.score.toFixed(2) + " < " + r.unknown_threshold.toFixed(2) + ")"
      : r.label + " (" + r.score.toFixed(2) + ")";
    $("live-label").dataset.label = r.label || "";
    showSpectrogram($("live-spec"), r.spectrogram);
    drawLiveTimeline();
    $("mic-status").textContent = "listening: " + entry.seconds.toFixed(1) + " s window, answer in " +
      entry.latency_ms.toFixed(0) + " ms" + (live.skipped ? ", " + live.skipped + " hop(s) skipped" : "");
    clearError();
  } catch (e) {
    if (live.running) showError("Live: " + e.message);
  } finally {
    live.inflight = false;
  }
}

function stopMic() {
  live.running = false;
  if (live.timer) clearInterval(live.timer);
  live.timer = null;
  try { if (live.source) live.source.disconnect(); if (live.node) live.node.disconnect(); } catch (e) { /* gone */ }
  if (live.node) live.node.port.onmessage = null;
  if (state.stream) state.stream.getTracks().forEach((t) => t.stop());
  if (live.ctx && live.ctx.state !== "closed") live.ctx.close();
  Object.assign(live, { ctx: null, node: null, source: null, sink: null });
  $("mic-start").disabled = !state.model;
  $("mic-stop").disabled = true;
  $("mic-status").textContent = "microphone off";
}

function drawLiveTimeline() {
  // rows: classes that were among the top 3 of any window in the last minute; cell = probability
  const cv = $("live-timeline"), g = cv.getContext("2d"), m = state.model;
  const n = Math.max(1, Math.round(60 / m.live.hop)), recent = state.live.slice(-n);
  const rows = [];
  for (const e of recent) {
    const top = Object.entries(e.probs).sort((a, b) => b[1] - a[1]).slice(0, 3).map(([c]) => c);
    for (const c of top.concat(e.above_threshold || [])) if (!rows.includes(c)) rows.push(c);
  }
  rows.sort((a, b) => m.classes.indexOf(a) - m.classes.indexOf(b));
  const shown = rows.slice(0, 10), labelW = 130, w = cv.width - labelW, rowH = cv.height / Math.max(shown.length, 1);
  g.clearRect(0, 0, cv.width, cv.height);
  g.font = "12px system-ui, sans-serif"; g.textBaseline = "middle";
  const colW = w / n;
  shown.forEach((c, r) => {
    g.fillStyle = "#1d232b";
    g.fillText(c.length > 18 ? c.slice(0, 17) + "…" : c, 4, (r + 0.5) * rowH);
    recent.forEach((e, i) => {
      const p = e.probs[c] || 0, x = labelW + (n - recent.length + i) * colW;
      g.globalAlpha = Math.max(0.04, p);
      g.fillStyle = classColour(c);
      g.fillRect(x, r * rowH + 1, Math.max(1, colW - 1), rowH - 2);
      g.globalAlpha = 1;
    });
  });
}

// ------------------------------------------------------------------------------- upload
async function upload(file) {
  clearError();
  const lim = state.model.limits;
  if (file.size > lim.max_bytes) {
    showError(`Upload: ${file.name} is ${(file.size / 2 ** 20).toFixed(1)} MB; this server takes at most ` +
              `${(lim.max_bytes / 2 ** 20).toFixed(0)} MB`);
    return;
  }
  $("upload-status").textContent = "labelling " + file.name + " …";
  try {
    const r = await postAudio(file, "timeline=true&spectrogram=true");
    state.upload = r;
    renderUpload(file, r);
    $("upload-status").textContent = `${file.name}: ${r.duration.toFixed(2)} s, ${r.windows} window(s), ` +
      `answered in ${r.elapsed_ms.toFixed(0)} ms`;
  } catch (e) {
    state.upload = null;
    $("upload-result").hidden = true;
    $("upload-status").textContent = "";
    showError("Upload " + file.name + ": " + e.message);
  }
}

function renderUpload(file, r) {
  $("upload-result").hidden = false;
  renderLabels($("upload-labels"), r, state.model.top_k);
  const player = $("player");
  if (player.src) URL.revokeObjectURL(player.src);
  player.src = URL.createObjectURL(file);
  showSpectrogram($("upload-spec"), r.spectrogram);
  drawUploadTimeline(r);
  const body = document.querySelector("#timeline-table tbody");
  body.textContent = "";
  for (const row of r.timeline) {
    const tr = document.createElement("tr");
    for (const v of [row.start.toFixed(3), row.end.toFixed(3), row.label, row.prob.toFixed(6)]) {
      const td = document.createElement("td"); td.textContent = v; tr.appendChild(td);
    }
    body.appendChild(tr);
  }
  moveCursors(0);
}

function drawUploadTimeline(r) {
  const cv = $("upload-timeline"), g = cv.getContext("2d"), classes = state.model.classes;
  const top = r.labels.slice(0, 5).map((x) => x.label), dur = Math.max(r.duration, 1e-3);
  const pad = 4, h = cv.height - 2 * pad;
  g.clearRect(0, 0, cv.width, cv.height);
  g.strokeStyle = "#e6e9ee"; g.lineWidth = 1;
  for (const y of [0, 0.5, 1]) { g.beginPath(); g.moveTo(0, pad + h * (1 - y)); g.lineTo(cv.width, pad + h * (1 - y)); g.stroke(); }
  if (state.model.multi_label && state.model.threshold != null) {
    g.setLineDash([4, 4]); g.strokeStyle = "#999";
    const y = pad + h * (1 - state.model.threshold);
    g.beginPath(); g.moveTo(0, y); g.lineTo(cv.width, y); g.stroke(); g.setLineDash([]);
  }
  for (const c of top) {
    const j = classes.indexOf(c);
    g.strokeStyle = classColour(c); g.lineWidth = 2; g.beginPath();
    r.timeline.forEach((row, i) => {
      const x = cv.width * ((row.start + row.end) / 2) / dur, y = pad + h * (1 - row.probs[j]);
      if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
    });
    if (r.timeline.length === 1) g.arc(cv.width * (r.timeline[0].start + r.timeline[0].end) / 2 / dur,
                                       pad + h * (1 - r.timeline[0].probs[j]), 3, 0, 2 * Math.PI);
    g.stroke();
  }
  const legend = $("upload-legend");
  legend.textContent = "";
  for (const c of top) {
    const s = document.createElement("span"), i = document.createElement("i");
    i.style.background = classColour(c); s.append(i, document.createTextNode(c)); legend.appendChild(s);
  }
}

function moveCursors(t) {
  const r = state.upload;
  if (!r) return;
  const spec = r.spectrogram, specSeconds = spec.width * spec.seconds_per_column;
  for (const [id, total] of [["spec-cursor", specSeconds], ["tl-cursor", r.duration]]) {
    const el = $(id);
    el.style.display = "block";
    el.style.left = Math.min(100, 100 * t / Math.max(total, 1e-3)).toFixed(3) + "%";
  }
}

function seekFrom(track, total) {
  return (e) => {
    const box = track.getBoundingClientRect(), player = $("player");
    if (!state.upload || !player.src) return;
    player.currentTime = Math.max(0, (e.clientX - box.left) / box.width * total());
    moveCursors(player.currentTime);
  };
}

// ------------------------------------------------------------------------------- start
function followPlayback() {
  const player = $("player");
  let raf = 0;
  const step = () => { moveCursors(player.currentTime); raf = requestAnimationFrame(step); };
  player.addEventListener("play", () => { cancelAnimationFrame(raf); raf = requestAnimationFrame(step); });
  player.addEventListener("pause", () => { cancelAnimationFrame(raf); moveCursors(player.currentTime); });
  player.addEventListener("seeked", () => moveCursors(player.currentTime));
  player.addEventListener("ended", () => cancelAnimationFrame(raf));
  $("spec-track").addEventListener("click", seekFrom($("spec-track"), () =>
    state.upload.spectrogram.width * state.upload.spectrogram.seconds_per_column));
  $("tl-track").addEventListener("click", seekFrom($("tl-track"), () => state.upload.duration));
}

async function init() {
  $("mic-start").addEventListener("click", startMic);
  $("mic-stop").addEventListener("click", stopMic);
  $("file").addEventListener("change", (e) => { if (e.target.files.length) upload(e.target.files[0]); });
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault(); drop.classList.remove("over");
    if (e.dataTransfer.files.length) upload(e.dataTransfer.files[0]);
  });
  followPlayback();
  await loadModel();
  document.documentElement.classList.add("ready");
}

async function loadModel() {
  try {
    const res = await fetch("/api/model");
    if (!res.ok) throw new Error("HTTP " + res.status);
    const m = state.model = await res.json();
    $("mic-start").disabled = !!live.running;
    if (m.teach && window.classifyTeach) window.classifyTeach.show(m.teach);
    if (!m.n_models) { $("model-line").textContent = "teach mode: no model yet (teach two classes, then Train)"; return; }
    const kind = m.multi_label ? `multi-label, threshold ${m.threshold.toFixed(2)}` : "single-label";
    $("model-line").textContent = `${m.classes.length} classes (${kind}), ${m.n_models} model(s); ` +
      `the model reads ${m.model_window_seconds.toFixed(2)} s windows at ${m.spectrogram.sr} Hz; ` +
      `live: the last ${m.live.window} s every ${m.live.hop} s` +
      (m.unknown_threshold != null ? `; unknown below ${m.unknown_threshold.toFixed(2)}` : "");
  } catch (e) {
    showError("Cannot read the model description from the server: " + e.message);
  }
}
state.loadModel = loadModel;
state.startMic = startMic;
state.isLive = () => live.running;
state.wavBytes = wavBytes;

init();
