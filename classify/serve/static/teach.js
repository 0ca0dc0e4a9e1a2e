// classify serve --teach: classes, examples recorded from the microphone (count-in, fixed length) or
// uploaded, heard and deleted; Train; the live view then uses the new model. No libraries.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const teach = window.classifyTeach = { state: null, recording: null, shown: false, trained: [] };

  async function api(path, opts) {
    const res = await fetch(path, opts);
    let data = null;
    try { data = await res.json(); } catch (e) { /* not JSON */ }
    if (!res.ok) throw new Error(data && data.error ? data.error : "HTTP " + res.status);
    return data;
  }
  const postJSON = (path, obj) => api(path, { method: "POST", body: JSON.stringify(obj),
                                               headers: { "Content-Type": "application/json" } });
  function status(text) { $("teach-status").textContent = text; }
  function fail(e) { status(""); window.classifyServe.errors.push(e.message); const b = $("error"); b.textContent = "Teach: " + e.message; b.hidden = false; }

  function render(t) {
    teach.state = t;
    $("teach-seconds").textContent = String(t.example_seconds);
    const box = $("teach-classes");
    box.textContent = "";
    for (const c of t.classes) {
      const div = document.createElement("div"); div.className = "teach-class"; div.dataset.name = c.name;
      const head = document.createElement("p");
      const name = document.createElement("input"); name.value = c.name; name.maxLength = 64;
      name.setAttribute("aria-label", "class name");
      name.addEventListener("change", () => postJSON("/api/teach/classes/rename", { old: c.name, new: name.value })
        .then((r) => render(r.teach)).catch(fail));
      const rec = document.createElement("button"); rec.type = "button"; rec.className = "teach-record";
      rec.textContent = "Record " + t.example_seconds + " s"; rec.addEventListener("click", () => record(c.name));
      const up = document.createElement("input"); up.type = "file"; up.accept = "audio/*"; up.multiple = true;
      up.setAttribute("aria-label", "upload examples of " + c.name);
      up.addEventListener("change", async () => { for (const f of up.files) await addExample(c.name, f); });
      const del = document.createElement("button"); del.type = "button"; del.textContent = "Delete class";
      del.addEventListener("click", () => postJSON("/api/teach/classes/delete", { name: c.name })
        .then((r) => render(r.teach)).catch(fail));
      const n = document.createElement("span"); n.className = "count"; n.textContent = c.examples.length + " example(s)";
      head.append(name, " ", rec, " ", up, " ", del, " ", n);
      const ul = document.createElement("ul");
      for (const e of c.examples) {
        const li = document.createElement("li"); li.dataset.id = e.id;
        const a = document.createElement("audio"); a.controls = true; a.preload = "none";
        a.src = "/api/teach/examples/" + encodeURIComponent(e.id);
        const x = document.createElement("button"); x.type = "button"; x.textContent = "\u00d7";
        x.title = "delete this example";
        x.addEventListener("click", () => api("/api/teach/examples/" + encodeURIComponent(e.id), { method: "DELETE" })
          .then((r) => render(r.teach)).catch(fail));
        li.append(a, x); ul.appendChild(li);
      }
      div.append(head, ul); box.appendChild(div);
    }
    const trained = t.runs.length > 0;
    $("teach-zip").hidden = $("teach-onnx").hidden = !trained;
    $("teach-zip").href = "/api/teach/download/run.zip";
    $("teach-onnx").href = "/api/teach/download/model.onnx";
  }

  async function addExample(label, body) {
    status("adding an example of " + label + " ...");
    try {
      const r = await api("/api/teach/examples?label=" + encodeURIComponent(label), {
        method: "POST", body, headers: { "Content-Type": "application/octet-stream" } });
      render(r.teach);
      status("added " + r.example.id + " (" + r.example.seconds.toFixed(1) + " s) to " + label);
    } catch (e) { fail(e); }
  }

  async function record(label) {
    const app = window.classifyServe;
    if (teach.recording) return;
    if (!app.isLive()) await app.startMic();
    if (!app.isLive()) return;
    const seconds = teach.state.example_seconds;
    for (let k = 3; k > 0; k--) { status("recording " + label + " in " + k + " ..."); await new Promise((r) => setTimeout(r, 400)); }
    status("recording " + label + " ...");
    const parts = []; let rate = 48000, n = 0;
    await new Promise((done) => {
      teach.recording = (chunk, sr) => {
        rate = sr; parts.push(Float32Array.from(chunk)); n += chunk.length;
        if (n >= seconds * sr) done();
      };
      app.listeners.push(teach.recording);
    });
    app.listeners.splice(app.listeners.indexOf(teach.recording), 1);
    teach.recording = null;
    const all = new Float32Array(n); let o = 0;
    for (const p of parts) { all.set(p, o); o += p.length; }
    await addExample(label, app.wavBytes(all.subarray(0, Math.round(seconds * rate)), rate));
  }

  async function train() {
    status("training ...");
    const t0 = performance.now();
    try {
      const r = await api("/api/teach/train", { method: "POST" });
      teach.trained.push({ ...r, ms: performance.now() - t0 });
      await window.classifyServe.loadModel();
      status(`trained ${r.run} in ${r.seconds.toFixed(1)} s: ${r.classes.length} classes` +
             (r.accuracy != null ? `, ${(100 * r.accuracy).toFixed(0)}% on ${r.n_valid_clips} held-out examples` : "") +
             (r.unknown_threshold != null ? `, unknown below ${r.unknown_threshold.toFixed(2)}` : "") + "; live now");
    } catch (e) { fail(e); }
  }

  teach.show = function (t) {
    $("teach").hidden = false;
    if (!teach.shown) {
      teach.shown = true;
      $("teach-add").addEventListener("click", () => {
        const name = $("teach-name").value;
        postJSON("/api/teach/classes", { name }).then((r) => { $("teach-name").value = ""; render(r.teach); }).catch(fail);
      });
      $("teach-train").addEventListener("click", train);
    }
    render(t);
  };
})();
