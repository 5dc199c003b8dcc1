// An intent and its slots, as the model declares them: sent without matching an utterance.

import { el } from "./dom.js";

export function renderIntentForm(form, model, send) {
  const intents = model.intents;
  const select = el("select", { name: "intent", "aria-label": "Intent" },
    intents.map((intent) => el("option", { value: intent.name }, intent.name)));
  const slots = el("div", { class: "slots" });
  const showSlots = () => {
    const intent = intents.find((i) => i.name === select.value);
    slots.replaceChildren(...(intent?.slots ?? []).map((slot) => {
      const list = `values-${intent.name}-${slot.name}`;
      return el("label", {}, `${slot.name} `, el("span", { class: "muted" }, slot.type),
        el("input", { name: slot.name, list, "data-slot": slot.name, placeholder: slot.values[0] ?? "" }),
        el("datalist", { id: list }, slot.values.map((v) => el("option", { value: v }))));
    }));
    if (!intent?.slots.length) slots.append(el("p", { class: "muted" }, "no slots"));
  };
  select.addEventListener("change", showSlots);
  form.replaceChildren(el("label", {}, "Intent ", select), slots,
    el("button", { type: "submit" }, "Send intent"));
  form.onsubmit = (event) => {
    event.preventDefault();
    const values = {};
    for (const input of slots.querySelectorAll("input[data-slot]")) values[input.dataset.slot] = input.value;
    send({ action: "intent", intent: select.value, slots: values });
  };
  showSlots();
}
