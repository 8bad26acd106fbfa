// The page: posts a request to the JSON API, shows the verified slots, f and f' as soon as they are known, polls
// the render's progress, then plays the video. Every user string goes in as text (textContent), never as HTML.
"use strict";

const POLL_MS = 300;
const QUALITY = { l: "480p", m: "720p", h: "1080p" };
const $ = (id) => document.getElementById(id);
let current = null;  // the id of the animation shown
let shown = null;  // and what the API last said of it
let timer = null;

function typeset(element, latex) {
  katex.render(latex, element, { throwOnError: false, displayMode: false });
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

function field(form, name) {
  const value = form.elements[name].value.trim();
  return value === "" ? null : Number(value);
}

async function submit(event) {
  event.preventDefault();
  const form = $("form");
  const body = {
    request: form.elements.request.value,
    quality: form.elements.quality.value,
    format: form.elements.format.value,
    filler: form.elements.filler.value,
    x_min: field(form, "x_min"),
    x_max: field(form, "x_max"),
    x0: field(form, "x0"),
  };
  await post(body);
}

async function post(body) {
  showError("");
  $("make").disabled = true;
  try {
    const response = await fetch("/api/animations", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    const answer = await response.json();
    if (!response.ok) {
      showError(answer.error + (response.status === 429 ? ` (retry in ${response.headers.get("Retry-After")} s)` : ""));
      return;
    }
    follow(answer.id, answer);
  } catch (error) {
    showError(`the server cannot be reached (${error.message})`);
  } finally {
    $("make").disabled = false;
  }
}

function follow(id, known) {
  current = id;
  clearTimeout(timer);
  $("player").replaceChildren();
  if (known) show(known);
  poll();
}

async function poll() {
  const id = current;
  const response = await fetch(`/api/animations/${id}`);
  if (id !== current) return;
  if (!response.ok) { showError((await response.json()).error); return; }
  const job = await response.json();
  show(job);
  if (["queued", "running", "cancelling"].includes(job.status)) {
    timer = setTimeout(poll, POLL_MS);
  } else if (job.status === "done") {
    loadGallery();
  }
}

function show(job) {
  shown = job;
  $("result").dataset.status = job.status;
  $("result").hidden = job.status === "failed";  // its error is said next to the input
  if (job.status === "failed") showError(job.error);
  const filled = job.slots !== null;
  $("f").replaceChildren();
  $("df").replaceChildren();
  if (filled) {
    typeset($("f"), `${job.name}(${job.variable}) = ${job.f_latex}`);
    typeset($("df"), `${job.name}'(${job.variable}) = ${job.derivative_latex}`);
  } else {
    $("f").textContent = job.status === "queued" ? "reading the request ..." : "";
  }
  showNotices(job);
  showDerivation(job);
  showSlots(job);
  showProgress(job);
  showVideo(job);
}

function showNotices(job) {
  const items = [];
  for (const [kind, texts] of [["caution", job.cautions], ["repaired", job.repairs]]) {
    for (const text of texts || []) {
      const item = document.createElement("li");
      item.dataset.kind = kind;
      item.textContent = text;
      items.push(item);
    }
  }
  if (job.status === "cancelled") {
    const item = document.createElement("li");
    item.dataset.kind = "cancelled";
    item.textContent = "this animation was not rendered";
    items.push(item);
  }
  $("notices").replaceChildren(...items);
}

function showDerivation(job) {
  const items = (job.derivation || []).map((line) => {
    const item = document.createElement("li");
    const rule = document.createElement("span");
    rule.className = "rule";
    rule.textContent = line.rule + (line.note ? ` (${line.note})` : "");
    const formula = document.createElement("span");
    typeset(formula, line.latex);
    item.append(rule, formula);
    return item;
  });
  $("derivation").replaceChildren(...items);
}

function showSlots(job) {
  const slots = job.slots || {};
  const rows = Object.entries({
    function: slots.function, variable: slots.variable, name: slots.name,
    window: slots.x_min === undefined ? undefined : `[${slots.x_min}, ${slots.x_max}]`, x0: slots.x0,
    "filled by": job.filled_by, quality: QUALITY[job.quality], format: job.format?.toUpperCase(),
  }).filter(([, value]) => value !== undefined && value !== null).map(([name, value]) => {
    const row = document.createElement("tr");
    const label = document.createElement("td");
    const cell = document.createElement("td");
    label.textContent = name;
    cell.textContent = String(value);
    row.append(label, cell);
    return row;
  });
  $("slots").replaceChildren(...rows);
}

function showProgress(job) {
  const waiting = ["queued", "running", "cancelling"].includes(job.status);
  $("progress").hidden = !waiting;
  if (!waiting) return;
  let phase = "waiting for a render worker";
  if (job.slots === null) phase = "verifying the slots";
  else if (job.status === "cancelling") phase = "cancelling";
  else if (job.status === "running") phase = job.phase ? `rendering ${job.phase}` : "starting Manim";
  $("phase").textContent = phase;
  $("left").textContent = job.seconds_left ? `about ${Math.ceil(job.seconds_left)} s left` : "";
  $("bar").value = job.progress;
}

function showVideo(job) {
  const done = job.status === "done";
  $("downloads").hidden = !done;
  $("command-box").hidden = !job.command;
  $("command").textContent = job.command || "";
  if (!done) return;
  for (const kind of ["video", "scene", "subtitles"]) {
    const link = $(`${kind}-link`);
    link.hidden = !job[`${kind}_url`];
    if (job[`${kind}_url`]) link.href = job[`${kind}_url`];
  }
  $("video-link").textContent = job.format === "gif" ? "GIF" : "Video (MP4)";
  $("gif").hidden = job.format === "gif";
  $("from-gallery").hidden = !job.from_gallery;
  if ($("player").dataset.src === job.video_url && $("player").firstChild) return;
  $("player").dataset.src = job.video_url;
  let media;
  if (job.format === "gif") {
    media = document.createElement("img");
    media.alt = `animation of ${job.slots.function}`;
  } else {
    media = document.createElement("video");
    Object.assign(media, { controls: true, autoplay: true, muted: true, loop: true, playsInline: true });
  }
  media.src = job.video_url;
  $("player").replaceChildren(media);
}

async function loadGallery() {
  const query = encodeURIComponent($("search").value.trim());
  const response = await fetch(`/api/animations?query=${query}`);
  const { animations } = await response.json();
  const items = animations.map((job) => {
    const item = document.createElement("li");
    const request = document.createElement("span");
    request.className = "request";
    request.textContent = job.request;
    const meta = document.createElement("span");
    meta.className = "meta";
    meta.textContent = `${QUALITY[job.quality]} ${job.format.toUpperCase()} · ${new Date(job.created * 1000).toLocaleString()}`;
    item.append(request, meta);
    item.addEventListener("click", () => { showError(""); follow(job.id, job); });
    return item;
  });
  $("entries").replaceChildren(...items);
  $("empty").hidden = items.length > 0;
}

async function cancel() {
  if (current) await fetch(`/api/animations/${current}`, { method: "DELETE" });
}

document.addEventListener("DOMContentLoaded", () => {
  $("form").addEventListener("submit", submit);
  for (const chip of document.querySelectorAll(".chip")) {
    chip.addEventListener("click", () => { $("request").value = chip.textContent; $("request").focus(); });
  }
  $("cancel").addEventListener("click", cancel);
  $("gif").addEventListener("click", () => {  // the same animation as a GIF: its own render (or the gallery's)
    const { request, quality, filler, x_min, x_max, x0 } = shown;
    post({ request, quality, filler, x_min, x_max, x0, format: "gif" });
  });
  $("copy").addEventListener("click", () => navigator.clipboard?.writeText($("command").textContent));
  let searching = null;
  $("search").addEventListener("input", () => { clearTimeout(searching); searching = setTimeout(loadGallery, 200); });
  loadGallery();
});
