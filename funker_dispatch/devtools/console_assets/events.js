// Test events: one form per trigger kind, built from what `events send` would send; the
// answer lists every rule matched and its function's outcome.

import { call, problem } from "./api.js";
import { download, el, pretty, table } from "./dom.js";

export async function wireEvents() {
  const { kinds } = await call("events");
  const buttons = document.getElementById("event-kinds");
  const choose = (kind) => {
    for (const button of buttons.children) button.setAttribute("aria-pressed", String(button.dataset.kind === kind.kind));
    renderForm(kind);
  };
  buttons.replaceChildren(...kinds.map((kind) =>
    el("button", { type: "button", dataset: { kind: kind.kind }, "aria-pressed": "false", onclick: () => choose(kind) },
      kind.title)));
  choose(kinds[0]);
}

function renderForm(kind) {
  const form = document.getElementById("event-form");
  const inputs = kind.fields.map((field) => {
    let input;
    if (field.choices.length) {
      input = el("select", { name: field.name }, field.choices.map((c) => el("option", { value: c, selected: c === field.value }, c)));
    } else if (field.input === "json") {
      input = el("textarea", { name: field.name, rows: 3, spellcheck: "false", placeholder: "JSON (empty: the sample's)" });
      input.value = field.value;
    } else {
      input = el("input", { name: field.name, type: field.input === "number" ? "number" : "text", value: field.value });
    }
    // In words; the `events send` option that does the same is the hint.
    return el("label", { title: `events send ${field.option}` }, el("span", {}, field.label), input);
  });
  form.replaceChildren(
    el("p", { class: "muted wide" }, `POST ${kind.endpoint}`, kind.enabled ? "" : " — not configured on this server"),
    ...inputs,
    el("button", { type: "submit", disabled: !kind.enabled }, `Send ${kind.title}`));
  form.onsubmit = async (event) => {
    event.preventDefault();
    const fields = {};
    for (const input of form.querySelectorAll("[name]")) fields[input.name] = input.value;
    await send(kind, fields);
  };
  document.getElementById("event-result").replaceChildren();
}

async function send(kind, fields) {
  problem(null);
  const box = document.getElementById("event-result");
  box.replaceChildren(el("p", { class: "muted" }, "sending…"));
  try {
    box.replaceChildren(result(await call("event", { kind: kind.kind, fields })));
  } catch (error) {
    box.replaceChildren();
    problem(error);
  }
}

// The server's trace (its record of the delivery) carries each rule's function answer;
// the sender's own answer never does (docs/events/index.md).
function answerOf(trace, rule, index) {
  const traced = Array.isArray(trace?.rules) ? trace.rules[index] : null;
  if (!traced || traced.name !== rule.name) return "–";
  return traced.answer ?? (rule.outcome === "ok" ? "(no answer shown)" : "–");
}

function result(answer) {
  const rules = Array.isArray(answer.result?.rules) ? answer.result.rules : [];
  const refused = answer.result?.error;
  const body = answer.result ? pretty(answer.result) : "(not JSON)";
  return el("div", { class: "event-answer", dataset: { status: answer.status } },
    el("p", {}, el("b", {}, answer.described), ` (id ${answer.id})`),
    el("p", { class: refused ? "refusal" : "", dataset: { part: "event-summary" } },
      answer.report[0] ?? `HTTP ${answer.status}`),
    rules.length
      ? table(["rule", "outcome", "reason", "id", "function's answer"],
        rules.map((r, i) => [r.name, el("span", { class: `outcome ${r.outcome}` }, r.outcome), r.reason ?? "–", r.id ?? "",
          el("code", { dataset: { part: "function-answer" } }, answerOf(answer.trace, r, i))]))
      : null,
    el("details", { class: "io" }, el("summary", {}, "Delivery I/O"),
      el("div", { class: "io-grid" },
        el("div", {}, el("h3", {}, `Request to ${answer.url}`),
          Object.entries(answer.request.headers).map(([n, v]) => el("div", { class: "header" }, el("code", {}, n), ": ", el("code", {}, v))),
          el("pre", {}, answer.request.body),
          el("button", { type: "button", onclick: () => download(`${answer.id}.event.json`, answer.request.body) }, "Download request")),
        el("div", {}, el("h3", {}, `Answer, HTTP ${answer.status}`), el("pre", {}, body),
          el("button", { type: "button", onclick: () => download(`${answer.id}.answer.json`, body) }, "Download answer")))));
}
