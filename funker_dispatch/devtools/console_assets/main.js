// The console page: tabs, the locale, and each panel wired to the one JSON API.

import { call, problem } from "./api.js";
import { el } from "./dom.js";
import { wireCertify } from "./certify.js";
import { Conversation } from "./conversation.js";
import { wireEvents } from "./events.js";
import { wireMcp } from "./mcp.js";
import { renderIntentForm } from "./intentform.js";
import { wireRoutes } from "./routes.js";
import { wireScripts } from "./script.js";

const localeSelect = document.getElementById("locale");
const conversation = new Conversation(() => localeSelect.value);

function wireTabs() {
  const buttons = document.querySelectorAll("nav.tabs button");
  for (const button of buttons) {
    button.addEventListener("click", () => {
      for (const other of buttons) {
        const chosen = other === button;
        other.setAttribute("aria-pressed", String(chosen));
        document.getElementById(other.dataset.tab).hidden = !chosen;
      }
    });
  }
}

async function loadModel(locale) {
  const model = await call(`model${locale ? `?locale=${encodeURIComponent(locale)}` : ""}`);
  if (!localeSelect.options.length) {
    localeSelect.replaceChildren(...model.locales.map((l) => el("option", { value: l }, l)));
  }
  localeSelect.value = model.locale;
  document.getElementById("endpoint").textContent =
    `${model.endpoint} · skill ${model.application_id} · “${model.invocation_name}”`;
  document.getElementById("suggestions").replaceChildren(
    ...model.suggestions.map((s) => el("option", { value: s })));
  renderIntentForm(document.getElementById("intent-form"), model, (asked) => conversation.turn(asked));
}

async function start() {
  wireTabs();
  wireScripts(conversation);
  wireCertify();
  localeSelect.addEventListener("change", async () => {
    try {
      await loadModel(localeSelect.value);
      conversation.newSession(`locale ${localeSelect.value}: new session`);
    } catch (error) {
      problem(error);
    }
  });
  try {
    await loadModel(null);
    await Promise.all([wireEvents(), wireRoutes(), wireMcp()]);
    document.body.dataset.ready = "true";  // for people and tests alike: everything is loaded
  } catch (error) {
    problem(error);
  }
}

start();
