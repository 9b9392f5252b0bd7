// The demo page: classify dropped or chosen images with the gateway's public API (POST predict, one image;
// POST predict/batch, several) and show each image's top labels as bars. Plain JavaScript, no build step and
// no dependencies. It never parses HTML from strings: the page runs under a Content-Security-Policy that allows
// this file as the only script and requires Trusted Types, which no code here needs.
"use strict";

(() => {
  // The gateway's default MAX_BATCH_SIZE; a gateway configured lower answers with its own error, shown as is.
  const BATCH_SIZE = 32;
  const TOP = 3;
  const MAX_FILES = 200;

  // Plain words for the API's error codes (gateway/errors.py); the API's own message follows them.
  const PLAIN = {
    bad_request: "The classifier could not use this request.",
    invalid_image: "This file is not an image the classifier can read.",
    unsupported_media_type: "This kind of file is not accepted.",
    payload_too_large: "This file is too large for the classifier.",
    forbidden_url: "The classifier may not fetch this address.",
    fetch_failed: "The image could not be downloaded.",
    fetch_timeout: "Downloading the image took too long.",
    overloaded: "The classifier is busy right now.",
    upstream_unavailable: "The model server is not available right now.",
    upstream_timeout: "The model server took too long to answer.",
    contract_mismatch: "The model server runs a model this classifier does not expect.",
    upstream_error: "The model server failed.",
    internal: "The classifier failed unexpectedly.",
  };

  const $ = (id) => document.getElementById(id);
  const input = $("files");
  const drop = $("drop");
  const results = $("results");
  const status = $("status");
  const clear = $("clear");
  const model = $("model");
  const template = $("card");

  // Label names as people write them; a narrow card may wrap them after the slash (a zero-width space).
  const words = (label) => label.replaceAll("_", "/\u200b");

  function card(file) {
    const item = template.content.firstElementChild.cloneNode(true);
    const url = URL.createObjectURL(file);
    const thumb = item.querySelector(".thumb");
    thumb.src = url;
    thumb.alt = file.name;
    thumb.addEventListener("error", () => thumb.classList.add("broken"), { once: true });
    item.querySelector(".name").textContent = file.name;
    item.querySelector(".state").textContent = "Classifying…";
    item.dataset.state = "pending";
    results.append(item);
    return { file, item, url };
  }

  function showResult(entry, result, modelInfo) {
    const { item } = entry;
    const list = item.querySelector(".labels");
    list.replaceChildren();
    const ranked = Object.entries(result.predictions).sort((a, b) => b[1] - a[1]).slice(0, TOP);
    for (const [label, score] of ranked) {
      const row = document.createElement("li");
      row.className = "label";
      row.dataset.label = label;
      const name = document.createElement("span");
      name.className = "label-name";
      name.textContent = words(label);
      const value = document.createElement("span");
      value.className = "label-score";
      value.textContent = `${(score * 100).toFixed(1)}%`;
      const bar = document.createElement("span");
      bar.className = "bar";
      bar.setAttribute("aria-hidden", "true");
      const fill = document.createElement("span");
      fill.className = "fill";
      fill.style.width = `${Math.max(0, Math.min(1, score)) * 100}%`;
      bar.append(fill);
      row.append(name, value, bar);
      list.append(row);
    }
    item.querySelector(".state").textContent = `${words(result.label)}, ${(result.score * 100).toFixed(1)}%`;
    item.dataset.state = "done";
    item.dataset.label = result.label;
    model.textContent = `Model: ${modelInfo.name}, version ${modelInfo.version}`;
  }

  function showError(entry, text) {
    const { item } = entry;
    item.querySelector(".state").textContent = "Not classified";
    const error = item.querySelector(".error");
    error.textContent = text;
    error.hidden = false;
    item.dataset.state = "error";
  }

  // The API answers errors as {"error": {"code", "message"}}; anything else (a proxy's page) gets its status.
  async function explain(response) {
    let code = "";
    let message = "";
    try {
      const body = await response.json();
      code = body.error.code;
      message = body.error.message;
    } catch {
      return { text: `The server answered ${response.status} ${response.statusText} without an explanation.` };
    }
    const retry = response.headers.get("Retry-After");
    const again = retry ? ` Try again in ${retry} second${retry === "1" ? "" : "s"}.` : "";
    const plain = PLAIN[code] || `The classifier refused the request (${code}).`;
    // A batch error names its image ("images[3]: ..."); the card it lands on says which, so the index goes.
    const index = /^images\[(\d+)\]: /.exec(message);
    const detail = index ? message.slice(index[0].length) : message;
    return { text: `${plain}${again} (${detail})`, index: index ? Number(index[1]) : undefined };
  }

  async function post(path, form) {
    try {
      return await fetch(path, { method: "POST", body: form, headers: { Accept: "application/json" } });
    } catch {
      return null;
    }
  }

  const UNREACHABLE = "Could not reach the classifier: check the connection and try again.";

  async function classifyOne(entry) {
    const form = new FormData();
    form.append("file", entry.file, entry.file.name);
    const response = await post("predict", form);
    if (!response) return showError(entry, UNREACHABLE);
    if (!response.ok) return showError(entry, (await explain(response)).text);
    const body = await response.json();
    showResult(entry, body, body.model);
  }

  // One request for the whole chunk; when the API names the image at fault (images[i]), that image gets the
  // error and the others are sent again, so one broken file does not hide the other results.
  async function classifyBatch(entries) {
    let pending = entries;
    while (pending.length > 1) {
      const form = new FormData();
      for (const entry of pending) form.append("files", entry.file, entry.file.name);
      const response = await post("predict/batch", form);
      if (!response) return pending.forEach((entry) => showError(entry, UNREACHABLE));
      if (response.ok) {
        const body = await response.json();
        return pending.forEach((entry, i) => showResult(entry, body.results[i], body.model));
      }
      const { text, index } = await explain(response);
      if (index === undefined || index >= pending.length) return pending.forEach((entry) => showError(entry, text));
      showError(pending[index], text);
      pending = pending.filter((_, i) => i !== index);
    }
    if (pending.length === 1) await classifyOne(pending[0]);
  }

  async function classify(files) {
    const images = Array.from(files).slice(0, MAX_FILES);
    if (!images.length) return;
    const skipped = files.length - images.length;
    const entries = images.map(card);
    clear.hidden = false;
    status.textContent = `Classifying ${entries.length} image${entries.length === 1 ? "" : "s"}…`;
    for (let start = 0; start < entries.length; start += BATCH_SIZE) {
      const chunk = entries.slice(start, start + BATCH_SIZE);
      await (chunk.length === 1 ? classifyOne(chunk[0]) : classifyBatch(chunk));
    }
    const failed = entries.filter((entry) => entry.item.dataset.state === "error").length;
    status.textContent = `Done: ${entries.length - failed} classified, ${failed} not.` +
      (skipped ? ` ${skipped} more were not sent (at most ${MAX_FILES} at once).` : "");
  }

  input.addEventListener("change", () => {
    classify(input.files);
    input.value = "";
  });
  for (const type of ["dragenter", "dragover"]) {
    drop.addEventListener(type, (event) => {
      event.preventDefault();
      drop.classList.add("over");
    });
  }
  for (const type of ["dragleave", "drop"]) {
    drop.addEventListener(type, () => drop.classList.remove("over"));
  }
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    classify(event.dataTransfer.files);
  });
  // A file dropped next to the zone would make the browser navigate away from the page: ignore it.
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());
  clear.addEventListener("click", () => {
    for (const thumb of results.querySelectorAll("img")) URL.revokeObjectURL(thumb.src);
    results.replaceChildren();
    status.textContent = "";
    clear.hidden = true;
    input.focus();
  });
})();
