// diffexplain serve: the page's only script. Text from runs is always set with textContent,
// never as HTML, so a prompt such as <script> is shown as text and runs nothing.
"use strict";

const $ = (id) => document.getElementById(id);
let current = null;   // the run shown
let polling = null;
let shownWord = null; // [index, word] of the map shown
let maps = null;      // the run's recorded maps: words, time groups, layers, views

function showError(message) { $("error").textContent = message || ""; }

async function json(url, options) {
  const response = await fetch(url, options);
  const body = await response.json();
  if (!response.ok) { throw new Error(body.error || response.statusText); }
  return body;
}

async function loadModels() {
  const { models } = await json("/api/models");
  for (const name of models) {
    const option = document.createElement("option");
    option.textContent = name;
    $("model").appendChild(option);
  }
}

function listLink(list, text, className, href, onClick) {
  const item = document.createElement("li");
  const link = document.createElement("a");
  link.href = href;
  link.className = className;
  link.textContent = text;
  link.addEventListener("click", (event) => { event.preventDefault(); onClick(); });
  item.appendChild(link);
  list.appendChild(item);
  return item;
}

async function loadRuns() {
  const { runs } = await json("/api/runs");
  const list = $("runs");
  list.replaceChildren();
  for (const run of runs) {
    const what = run.request.prompt || "reference insertion (I2AM)";
    const text = `${what} (${run.request.model}, ${run.request.method || "kernelshap"}: ${run.state})`;
    listLink(list, text, "past-run", "#" + run.id, () => showRun(run.id));
  }
}

function showProgress(status) {
  $("progress-section").hidden = status.state !== "running" && status.state !== "queued";
  const total = status.total || 1;
  $("progress").max = total;
  $("progress").value = status.done;
  const eta = status.eta_s == null ? "" : `, about ${Math.ceil(status.eta_s)} s left`;
  $("progress-text").textContent = `${status.state}: ${status.done} / ${status.total} generations${eta}`;
}

async function poll(id) {
  const status = await json(`/api/runs/${id}`);
  showProgress(status);
  if (status.state === "queued" || status.state === "running") {
    polling = setTimeout(() => poll(id), 300);
    return;
  }
  polling = null;
  if (status.state === "done") { await showRun(id); } else { showError(status.message); }
  await loadRuns();
  document.body.dataset.lastState = status.state;  // set last: the page shows the run by now
}

async function showI2am(id) {
  const found = await json(`/api/runs/${id}/i2am`);
  current = id;
  maps = null;
  $("result").hidden = false;
  $("result-title").textContent = "Paint-by-Example insertion: how the reference is used (I2AM)";
  $("image").hidden = false;
  $("image").src = `/api/runs/${id}/image.png`;
  $("heatmap").removeAttribute("src");
  $("heatmap-caption").textContent = "";
  $("map-controls").hidden = true;
  $("words").querySelector("tbody").replaceChildren();
  $("coalitions").replaceChildren();
  $("coalitions-title").hidden = true;
  for (const name of ["r2g", "g2r", "guidance"]) {
    const image = $(`i2am-${name}`);
    image.hidden = !found.maps.includes(name);
    if (found.maps.includes(name)) { image.src = `/api/runs/${id}/i2am/${name}.png`; }
  }
  const guidance = found.imacs_guidance == null ? "" : `, of the guidance difference ${found.imacs_guidance.toFixed(3)}`;
  $("i2am-scores").textContent = `IMACS (lambda 3, against the mask) of reference to generated ${found.imacs_r2g.toFixed(3)}${guidance}`;
  $("i2am").hidden = false;
}

async function showRun(id) {
  const explanation = await json(`/api/runs/${id}/explanation`).catch(() => null);
  if (explanation === null) { await showI2am(id); return; }
  current = id;
  showExplanation(explanation);
  $("image").hidden = false;
  $("image").src = `/api/runs/${id}/image.png`;
  showCoalitions(id);
  maps = await json(`/api/runs/${id}/attention`).catch(() => null);
  $("map-controls").hidden = maps === null;
  if (maps !== null) {
    $("time").max = String(maps.time_groups);
    $("layer").max = String(maps.layers.length);
    $("time").value = "0";
    $("layer").value = "0";
    $("head").value = "0";
    $("view").value = "attention";
    $("view-label").hidden = maps.views.length < 2;
    describeSliders();
  }
}

function showExplanation(explanation, withMaps = true) {
  $("result").hidden = false;
  $("i2am").hidden = true;
  $("result-title").textContent = `${explanation.method} on “${explanation.metadata.prompt}”`;
  $("heatmap").removeAttribute("src");
  shownWord = null;
  $("heatmap-caption").textContent = withMaps ? "click a word" : "";
  const body = $("words").querySelector("tbody");
  body.replaceChildren();
  const scale = Math.max(...explanation.values.map(Math.abs), 1e-12);
  explanation.features.forEach((word, index) => {
    const row = document.createElement("tr");
    const cells = [word, explanation.values[index].toFixed(4),
      explanation.stderr && explanation.stderr[index] != null ? explanation.stderr[index].toFixed(4) : "",
      explanation.pvalues && explanation.pvalues[index] != null ? explanation.pvalues[index].toFixed(3) : ""];
    cells.forEach((text, column) => {
      const cell = document.createElement("td");
      if (column === 0 && withMaps) {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "word";
        button.dataset.index = String(index);
        button.textContent = text;
        button.addEventListener("click", () => showWord(index, word));
        button.addEventListener("mouseenter", () => showWord(index, word));
        cell.appendChild(button);
      } else {
        cell.textContent = text;
      }
      row.appendChild(cell);
    });
    const bar = document.createElement("td");
    const fill = document.createElement("span");
    fill.className = explanation.values[index] >= 0 ? "bar positive" : "bar negative";
    fill.style.width = `${Math.round(120 * Math.abs(explanation.values[index]) / scale)}px`;
    bar.appendChild(fill);
    const error = explanation.stderr ? explanation.stderr[index] : null;
    if (error != null) {  // the error bar: +- one standard error around the bar's end
      const whisker = document.createElement("span");
      whisker.className = "whisker";
      whisker.style.width = `${Math.max(1, Math.round(2 * 120 * error / scale))}px`;
      whisker.style.marginLeft = `-${Math.round(120 * error / scale)}px`;
      whisker.title = `± ${error.toFixed(4)}`;
      bar.appendChild(whisker);
    }
    if (explanation.pvalues && explanation.pvalues[index] != null && explanation.pvalues[index] < 0.05) {
      const star = document.createElement("span");
      star.className = "significant";
      star.textContent = "*";
      star.title = "p < 0.05";
      bar.appendChild(star);
    }
    row.appendChild(bar);
    body.appendChild(row);
  });
}

async function showCoalitions(id) {
  const grid = $("coalitions");
  grid.replaceChildren();
  const found = await json(`/api/runs/${id}/coalitions`).catch(() => null);
  $("coalitions-title").hidden = found === null;
  if (found === null) { return; }
  for (const coalition of found.coalitions.slice(0, 32)) {
    const figure = document.createElement("figure");
    const image = document.createElement("img");
    image.src = `/api/runs/${id}/coalition/${coalition.index}.png`;
    image.alt = coalition.text || "(empty prompt)";
    image.width = 96;
    image.height = 96;
    const caption = document.createElement("figcaption");
    caption.textContent = coalition.text || "(empty)";
    figure.append(image, caption);
    grid.appendChild(figure);
  }
}

function describeSliders() {
  const time = Number($("time").value), layer = Number($("layer").value);
  $("time-text").textContent = time === 0 ? "all" : String(time - 1);
  $("layer-text").textContent = layer === 0 ? "all" : maps.layers[layer - 1];
  // heads belong to a layer: the head slider steps through the chosen layer's heads
  const heads = layer === 0 ? 0 : maps.heads[layer - 1];
  $("head").disabled = heads === 0;
  $("head").max = String(heads);
  if (Number($("head").value) > heads) { $("head").value = "0"; }
  const head = Number($("head").value);
  $("head-text").textContent = head === 0 ? "all" : String(head - 1);
}

function mapQuery() {
  const time = Number($("time").value), layer = Number($("layer").value), head = Number($("head").value);
  const query = new URLSearchParams({ view: $("view").value });
  if (time > 0) { query.set("time", String(time - 1)); }
  if (layer > 0) { query.set("layer", String(layer - 1)); }
  if (layer > 0 && head > 0) { query.set("head", String(head - 1)); }
  return query.toString();
}

function redraw() {
  if (maps !== null) { describeSliders(); }
  if (shownWord !== null) { showWord(shownWord[0], shownWord[1]); }
}

function showWord(index, word) {
  shownWord = [index, word];
  $("heatmap").src = `/api/runs/${current}/heatmap/${index}?${mapQuery()}`;
  $("heatmap-caption").textContent = `where “${word}” lands`;
}

async function loadAudits() {
  const { audits } = await json("/api/audits");
  $("audits-section").hidden = audits.length === 0;
  const list = $("audits");
  list.replaceChildren();
  for (const audit of audits) {
    listLink(list, `${audit.name}: ${audit.n_prompts} prompts (${audit.method})`, "audit-link", "#audit-" + audit.name,
      () => showAudit(audit.name));
  }
}

let auditWords = [];
let auditSort = { key: "mean", descending: true };

function drawAuditWords() {
  const { key, descending } = auditSort;
  const rows = [...auditWords].sort((a, b) => {
    const order = key === "word" ? String(a.word).localeCompare(String(b.word)) : a[key] - b[key];
    return descending ? -order : order;
  });
  const body = $("audit-words").querySelector("tbody");
  body.replaceChildren();
  for (const row of rows) {
    const line = document.createElement("tr");
    for (const text of [row.word, row.mean.toFixed(3), row.std.toFixed(3), String(row.count)]) {
      const cell = document.createElement("td");
      cell.textContent = text;
      line.appendChild(cell);
    }
    body.appendChild(line);
  }
  $("audit-words").dataset.sorted = `${key}:${descending ? "desc" : "asc"}`;
}

async function showAudit(name) {
  const { summary, prompts } = await json(`/api/audits/${encodeURIComponent(name)}`);
  $("audit").hidden = false;
  $("audit-title").textContent = `${name}: ${summary.n_prompts} prompts, ${summary.method}`;
  auditWords = summary.words;
  drawAuditWords();
  const list = $("audit-prompts");
  list.replaceChildren();
  for (const prompt of prompts) {
    const item = listLink(list, prompt.prompt, "audit-prompt", `#audit-${name}-${prompt.index}`, async () => {
      const explanation = await json(`/api/audits/${encodeURIComponent(name)}/prompts/${prompt.index}`);
      current = null;
      maps = null;
      $("image").hidden = true;
      $("map-controls").hidden = true;
      $("coalitions").replaceChildren();
      $("coalitions-title").hidden = true;
      showExplanation(explanation, false);
    });
    item.value = prompt.index;
  }
}

async function start(event) {
  event.preventDefault();
  showError("");
  const form = new FormData($("run-form"));
  for (const key of ["source", "mask", "reference"]) { if (!$(key).files.length) { form.delete(key); } }
  for (const key of ["budget"]) { if (!form.get(key)) { form.delete(key); } }
  try {
    const status = await json("/api/runs", { method: "POST", body: form });
    showProgress(status);
    if (polling) { clearTimeout(polling); }
    poll(status.id);
  } catch (error) {
    showError(error.message);
    document.body.dataset.lastState = "refused";
  }
}

async function cancel() {
  const running = document.querySelector("#progress-text").textContent;
  const list = await json("/api/runs");
  const active = list.runs.find((run) => run.state === "running" || run.state === "queued");
  if (active && running) { await json(`/api/runs/${active.id}/cancel`, { method: "POST" }); }
}

document.addEventListener("DOMContentLoaded", () => {
  $("run-form").addEventListener("submit", start);
  $("cancel").addEventListener("click", cancel);
  for (const id of ["time", "layer", "head", "view"]) { $(id).addEventListener("input", redraw); }
  for (const header of document.querySelectorAll("#audit-words th")) {
    header.addEventListener("click", () => {
      const key = header.dataset.key;
      auditSort = { key, descending: auditSort.key === key ? !auditSort.descending : key !== "word" };
      drawAuditWords();
    });
  }
  loadModels().then(loadRuns).then(loadAudits).catch((error) => showError(error.message));
});
