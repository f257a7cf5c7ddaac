// SPDX-License-Identifier: GPL-3.0-or-later
// The pages' one script: a form with data-api="/call" is sent to the JSON API as
// application/json (the API's same-origin check applies), with the browser's own login.
// Answers: an error is shown inside the form that caused it; on success the form's
// "mecard:done" event carries the answer (a page script may handle it and call
// preventDefault), else the page goes to data-next or reloads.
const root = document.documentElement.dataset.root;

function value(element) {
  const kind = element.dataset.type || "";
  if (element.type === "checkbox" && kind !== "list") return element.checked;
  if (kind === "int") return element.value === "" ? null : parseInt(element.value, 10);
  if (kind === "lines") return element.value.split(/[\n,]/).map((v) => v.trim()).filter((v) => v);
  if (kind === "null-if-empty" && element.value === "") return null;
  // a datetime-local input is the person's own clock: the API gets it as UTC
  if (kind === "local-time") {
    return element.value === "" ? null : new Date(element.value).toISOString();
  }
  return element.value;
}

function collect(form, submitter) {
  const data = {};
  for (const element of form.elements) {
    if (!element.name || element.disabled || element.tagName === "BUTTON") continue;
    if (element.type === "radio" && !element.checked) continue;
    if (element.dataset.type === "list") {
      data[element.name] = data[element.name] || [];
      if (element.checked) data[element.name].push(element.value);
      continue;
    }
    data[element.name] = value(element);
  }
  if (submitter && submitter.name) data[submitter.name] = submitter.dataset.type === "json"
    ? JSON.parse(submitter.value) : submitter.value;
  if (form.dataset.json) Object.assign(data, JSON.parse(form.dataset.json));
  return data;
}

function showError(form, text) {
  let box = form.querySelector(".error");
  if (!box) {
    box = document.createElement("p");
    box.className = "error";
    form.append(box);
  }
  box.setAttribute("role", "alert");
  box.textContent = text;  // text, never markup
  box.hidden = false;
}

async function send(event) {
  const form = event.target.closest("form[data-api]");
  if (!form) return;
  event.preventDefault();
  const submitter = event.submitter;
  const call = submitter && submitter.dataset.api ? submitter.dataset.api : form.dataset.api;
  if (submitter && submitter.dataset.confirm && !window.confirm(submitter.dataset.confirm)) return;
  for (const button of form.querySelectorAll("button")) button.disabled = true;
  try {
    const response = await fetch(root + "/api/v1" + call, {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "Accept": "application/json"},
      body: JSON.stringify(collect(form, submitter)),
    });
    let answer = {};
    try { answer = await response.json(); } catch (e) { answer = {}; }
    if (!response.ok) {
      showError(form, answer.error || ("The server answered " + response.status));
      return;
    }
    const done = new CustomEvent("mecard:done", {detail: answer, cancelable: true});
    if (!form.dispatchEvent(done)) return;
    const next = (submitter && submitter.dataset.next) || form.dataset.next;
    if (next) window.location.assign(root + next); else window.location.reload();
  } catch (e) {
    showError(form, "Could not reach the server: " + e.message);
  } finally {
    for (const button of form.querySelectorAll("button")) button.disabled = false;
  }
}

document.addEventListener("submit", send);
