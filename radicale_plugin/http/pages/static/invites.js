// SPDX-License-Identifier: GPL-3.0-or-later
// "My invites": the answer to POST /invites holds the new invite's link and token, shown
// this once only. Show the link, and its QR code: the server makes the SVG from the token
// (POST /invites/qr, the token in the body, never in a URL) and it is shown as an image
// (an SVG in an <img> runs no script). Nothing here puts text into markup.
const root = document.documentElement.dataset.root;

async function showInvite(event) {
  const answer = event.detail;
  if (!answer || !answer.url || !answer.token) return;
  event.preventDefault();  // stay: the link is shown now or never
  const box = document.getElementById("invite-new");
  const link = document.getElementById("invite-link");
  const image = document.getElementById("invite-qr");
  const problem = document.getElementById("invite-qr-error");
  link.value = answer.url;
  box.hidden = false;
  problem.hidden = true;
  try {
    const response = await fetch(root + "/api/v1/invites/qr", {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "Accept": "application/json"},
      body: JSON.stringify({token: answer.token}),
    });
    const qr = await response.json();
    if (!response.ok) throw new Error(qr.error || ("the server answered " + response.status));
    image.src = "data:image/svg+xml;base64," + btoa(qr.svg);
    image.hidden = false;
  } catch (e) {
    problem.textContent = "The QR code could not be made: " + e.message + ". The link works.";
    problem.hidden = false;
  }
  link.focus();
  link.select();
}

const form = document.getElementById("invite-create");
if (form) form.addEventListener("mecard:done", showInvite);

const copy = document.getElementById("invite-copy");
if (copy) copy.addEventListener("click", async () => {
  const link = document.getElementById("invite-link");
  link.select();
  try { await navigator.clipboard.writeText(link.value); copy.textContent = "Copied"; }
  catch (e) { copy.textContent = "Select the link and copy it"; }
});
