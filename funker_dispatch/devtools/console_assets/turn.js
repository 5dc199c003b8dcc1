// One turn of the conversation: what was understood, what Alexa says and shows, the
// server's own trace, and the signed request and response (editable, re-sendable).

import { download, el, pretty } from "./dom.js";

// What Alexa said by the dialog model (a slot's or a confirmation's prompt) without
// asking the skill: no request, no trace.
export function renderPrompt(turn, { locale }) {
  return el("li", { class: "turn ok", dataset: { part: "dialog-prompt" } },
    turn.said ? el("p", { class: "you" }, el("b", {}, "you"), " ", turn.said) : null,
    turn.speech ? speech(turn.speech, locale) : null,
    el("p", { class: "muted" }, "a prompt of the dialog model; nothing was sent to the skill"));
}

// `resend(turn, body, resign)` sends an edited request; `locale` is the voice to speak in.
export function renderTurn(turn, { resend, locale }) {
  const item = el("li", { class: `turn ${turn.ok ? "ok" : "refused"}`, dataset: { status: turn.status } },
    turn.said
      ? el("p", { class: "you" }, el("b", {}, "you"), " ", turn.said)
      : el("p", { class: "muted", dataset: { part: "sent-by-alexa" } }, "sent by Alexa, by the dialog model"),
    understood(turn),
    turn.progressive.map((text) =>
      el("p", { class: "alexa progressive", dataset: { part: "progressive" } },
        el("b", {}, "alexa"), " ", el("span", { class: "tag" }, "progressive"), " ", text)),
    turn.refusal ? refusal(turn) : null,
    turn.speech ? speech(turn.speech, locale) : null,
    turn.card ? card(turn.card) : null,
    turn.reprompt && !turn.ends_session
      ? el("p", { class: "muted", dataset: { part: "reprompt" } }, `reprompt: ${turn.reprompt}`)
      : null,
    turn.status === 200
      ? el("p", { class: "muted", dataset: { part: "session-end" } },
        turn.ends_session ? "session ended by the skill"
          : turn.session.ended ? "session ended" : "session stays open")
      : null,
    traceLine(turn.trace),
    skillIo(turn, resend));
  return item;
}

function understood(turn) {
  const what = turn.understood;
  const parts = [what.type ?? "(no request type)"];
  if (what.intent) parts.push(what.intent);
  return el("div", { class: "understood", dataset: { part: "understood" } },
    el("span", { class: "intent" }, parts.join(" · ")),
    what.slots.map(slotChip),
    turn.sample ? el("span", { class: "muted" }, ` matched “${turn.sample}”`) : null,
    turn.nearest && turn.nearest.length ? nearestSamples(turn.nearest) : null);
}

// No sample matched (Alexa's fallback was sent): the samples that came closest.
function nearestSamples(nearest) {
  return el("div", { class: "muted", dataset: { part: "nearest" } },
    "no sample matched; nearest: ",
    el("ul", {}, nearest.map((n) => el("li", {}, `${n.sample} `, el("span", { class: "muted" }, n.intent)))));
}

function slotChip(slot) {
  const text = [`${slot.name} = ${slot.value === undefined || slot.value === null ? "(empty)" : `“${slot.value}”`}`];
  if (slot.resolution) {
    const r = slot.resolution;
    text.push(r.status === "ER_SUCCESS_MATCH" ? `→ ${r.name}${r.id ? ` (id ${r.id})` : ""}` : "→ no match");
    text.push(r.status);
  }
  return el("span", { class: "chip", dataset: { part: "slot" } }, text.join(" "));
}

function refusal(turn) {
  const reason = turn.refusal.error ?? "refused";
  return el("p", { class: "refusal", dataset: { part: "refusal", reason } },
    el("b", {}, `HTTP ${turn.status} ${reason}`), " ", turn.refusal.message ?? "");
}

function speech(text, locale) {
  const play = el("button", {
    type: "button", class: "play", "aria-label": "Play the speech",
    onclick: () => {
      // The server sends the spoken text with SSML's tags already taken out.
      window.speechSynthesis.cancel();
      const utterance = new SpeechSynthesisUtterance(text);
      utterance.lang = locale();
      window.speechSynthesis.speak(utterance);
    },
  }, "▶ Play");
  return el("p", { class: "alexa", dataset: { part: "speech" } },
    el("b", {}, "alexa"), " ", el("span", { class: "spoken" }, text), " ",
    "speechSynthesis" in window ? play : null);
}

function card(card) {
  const type = card.type ?? "Simple";
  const image = card.image?.largeImageUrl ?? card.image?.smallImageUrl;
  const body = type === "Standard" ? card.text : type === "Simple" ? card.content : null;
  return el("figure", { class: "card", dataset: { part: "card", type } },
    el("figcaption", {}, card.title ?? `${type} card`, " ", el("span", { class: "tag" }, type)),
    // Alexa shows card images from https only; the page's policy allows nothing else.
    type === "Standard" && typeof image === "string" && image.startsWith("https://")
      ? el("img", { src: image, alt: `${card.title ?? "card"} image`, referrerpolicy: "no-referrer" })
      : null,
    body ? el("p", { class: "card-text" }, body) : null,
    type === "LinkAccount" ? el("p", {}, "Link your account in the Alexa app.") : null,
    type === "AskForPermissionsConsent"
      ? el("p", {}, `Asks for: ${(card.permissions ?? []).join(", ")}`)
      : null);
}

function ms(value) {
  return value === null || value === undefined ? "–" : `${value} ms`;
}

function traceLine(trace) {
  if (!trace) {
    return el("p", { class: "trace muted", dataset: { part: "trace" } },
      "no trace: the server sent none for this request");
  }
  // The record's own values, as the server logged them (milliseconds to two places).
  const cells = [
    ["route", "route", trace.route
      ?? (trace.outcome === "rejected" ? "(refused before routing)" : "(none: answered by the dispatcher)")],
    ["function", "function", trace.function ?? "–"],
    ["verify_ms", "verify", ms(trace.verify_ms)],
    ["function_ms", "in function", ms(trace.function_ms)],
    ["total_ms", "total", ms(trace.total_ms)],
    ["outcome", "outcome", trace.outcome],
    ["reason", "reason", trace.reason ?? "–"],
  ];
  // Why a function gave no answer, as the server's warning line says it.
  if (trace.detail) cells.push(["detail", "detail", trace.detail]);
  return el("dl", { class: "trace", dataset: { part: "trace" }, title: "the server's own request record" },
    cells.map(([field, name, value]) => el("div", { dataset: { field } }, el("dt", {}, name), el("dd", {}, value))));
}

function skillIo(turn, resend) {
  const editor = el("textarea", { class: "request-body", spellcheck: "false", rows: 14, "aria-label": "Signed request" });
  editor.value = turn.request.body;
  const headers = Object.entries(turn.request.headers)
    .map(([name, value]) => el("div", { class: "header" }, el("code", {}, name), ": ", el("code", {}, value)));
  const response = turn.response.json ? pretty(turn.response.json) : turn.response.body;
  const requestId = turn.trace?.request_id ?? "request";
  return el("details", { class: "io" },
    el("summary", {}, "Skill I/O"),
    el("div", { class: "io-grid" },
      el("div", {},
        el("h3", {}, "Request, signed"),
        headers,
        editor,
        el("div", { class: "buttons" },
          el("button", { type: "button", class: "send-as-is", onclick: () => resend(turn, editor.value, false) },
            "Send as is (old signature)"),
          el("button", { type: "button", class: "resign", onclick: () => resend(turn, editor.value, true) },
            "Re-sign and send"),
          el("button", { type: "button", onclick: () => download(`${requestId}.request.json`, editor.value) },
            "Download request"))),
      el("div", {},
        el("h3", {}, `Response, HTTP ${turn.status}`),
        el("pre", { class: "response-body" }, response),
        el("div", { class: "buttons" },
          el("button", { type: "button", onclick: () => download(`${requestId}.response.json`, response) },
            "Download response")))));
}

export function noMatch(result) {
  return el("li", { class: "turn refused", dataset: { part: "no-match" } },
    el("p", { class: "you" }, el("b", {}, "you"), " ", result.utterance),
    el("p", { class: "refusal" }, el("b", {}, "no match"), " nearest samples:"),
    el("ul", {}, result.nearest.map((n) => el("li", {}, `${n.sample} `, el("span", { class: "muted" }, n.intent)))));
}
