// diffexplain serve: the page's only script. Text from runs is always set with textContent,
// never as HTML, so a prompt such as <script> is shown as text and runs nothing.
"use strict";

const $ = (id) => document.getElementById(id);
let current = null;   // the run shown
let polling = null;

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

async function loadRuns() {
  const { runs } = await json("/api/runs");
  const list = $("runs");
  list.replaceChildren();
  for (const run of runs) {
    const item = document.createElement("li");
    const link = document.createElement("a");
    link.href = "#" + run.id;
    link.className = "past-run";
    link.dataset.run = run.id;
    link.textContent = `${run.request.prompt} (${run.request.model}, ${run.request.method || "kernelshap"}: ${run.state})`;
    link.addEventListener("click", (event) => { event.preventDefault(); showRun(run.id); });
    item.appendChild(link);
    list.appendChild(item);
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

async function showRun(id) {
  const explanation = await json(`/api/runs/${id}/explanation`);
  current = id;
  $("result").hidden = false;
  $("result-title").textContent = `${explanation.method} on “${explanation.metadata.prompt}”`;
  $("image").src = `/api/runs/${id}/image.png`;
  $("heatmap").removeAttribute("src");
  $("heatmap-caption").textContent = "click a word";
  const body = $("words").querySelector("tbody");
  body.replaceChildren();
  const scale = Math.max(...explanation.values.map(Math.abs), 1e-12);
  explanation.features.forEach((word, index) => {
    const row = document.createElement("tr");
    const cells = [word, explanation.values[index].toFixed(4),
      explanation.stderr && explanation.stderr[index] != null ? explanation.stderr[index].toFixed(4) : "",
      explanation.pvalues ? explanation.pvalues[index].toFixed(3) : ""];
    cells.forEach((text, column) => {
      const cell = document.createElement("td");
      if (column === 0) {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "word";
        button.dataset.index = String(index);
        button.textContent = text;
        button.addEventListener("click", () => showWord(index, word));
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
    row.appendChild(bar);
    body.appendChild(row);
  });
}

function showWord(index, word) {
  $("heatmap").src = `/api/runs/${current}/heatmap/${index}`;
  $("heatmap-caption").textContent = `where “${word}” lands`;
}

async function start(event) {
  event.preventDefault();
  showError("");
  const form = new FormData($("run-form"));
  if (!$("source").files.length) { form.delete("source"); }
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
  loadModels().then(loadRuns).catch((error) => showError(error.message));
});
