// SPDX-License-Identifier: GPL-3.0-or-later
// "Who gets my card": a form with an element [data-rules-from] adds target rules. A select
// gives one rule as it is; a text field gives user names (separated by commas or spaces),
// each prefixed with the attribute's value ("user:"). Runs before mecard.js sends the form
// (capture phase) and hands it the rules as {"add": [...]} through data-json.
document.addEventListener("submit", (event) => {
  const form = event.target;
  const source = form.querySelector("[data-rules-from]");
  if (!source) return;
  const prefix = source.dataset.rulesFrom;
  const parts = prefix ? source.value.split(/[\s,]+/).filter((v) => v) : [source.value];
  form.dataset.json = JSON.stringify({add: parts.map((part) => prefix + part)});
}, true);
