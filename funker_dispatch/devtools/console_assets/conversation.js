// The conversation panel: utterances, launch / end / new session, turns, session state.
// The session (ids, `new`, attributes) lives in the page and goes with every turn, as
// Alexa keeps it: the server builds and signs each request from it.

import { call, problem } from "./api.js";
import { el, pretty } from "./dom.js";
import { noMatch, renderPrompt, renderTurn } from "./turn.js";

export class Conversation {
  constructor(locale) {
    this.locale = locale;  // () => the locale chosen now
    this.session = null;   // null: the next turn starts a new session
    this.lines = [];       // this session's dialog --script lines
    this.lastLines = [];   // the ended session's, until the next one says something
    this.turns = document.getElementById("turns");
    this.state = document.getElementById("session-state");
    document.getElementById("say").addEventListener("submit", (event) => {
      event.preventDefault();
      const input = document.getElementById("utterance");
      const utterance = input.value.trim();
      if (!utterance) return;
      input.value = "";
      this.say(utterance);
    });
    document.getElementById("launch").addEventListener("click", () => this.turn({ action: "launch" }));
    document.getElementById("end").addEventListener("click", () =>
      this.session ? this.turn({ action: "end" }) : problem("No session is open to end."));
    document.getElementById("new-session").addEventListener("click", () => this.newSession());
  }

  say(utterance) {
    return this.turn({ action: "say", utterance });
  }

  newSession(note = "new session") {
    if (this.lines.length) this.lastLines = this.lines;
    this.session = null;
    this.lines = [];
    this.turns.append(el("li", { class: "divider" }, note));
    this.showState();
  }

  // Sends one turn; resolves to the turn (or the no-match answer), or null on an API error.
  async turn(asked) {
    problem(null);
    const pending = el("li", { class: "turn pending" }, el("p", { class: "you" }, el("b", {}, "you"), " ",
      asked.utterance ?? `(${asked.action === "intent" ? asked.intent : asked.action})`), el("p", { class: "muted" }, "…"));
    this.turns.append(pending);
    try {
      const result = await call("turn", { ...asked, locale: this.locale(), session: this.session });
      if (result.no_match) {
        pending.replaceWith(noMatch(result.no_match));
        this.lines.push(asked.utterance);  // dialog goes on past a line that matches nothing
        return result;
      }
      this.show(result, pending);
      return result;
    } catch (error) {
      pending.remove();
      problem(error);
      return null;
    }
  }

  async resend(turn, body, resign) {
    problem(null);
    try {
      const result = await call("send", {
        locale: this.locale(), session: this.session, body, resign, headers: turn.request.headers,
      });
      this.show(result);
      return result;
    } catch (error) {
      problem(error);
      return null;
    }
  }

  show(result, pending) {
    const options = { resend: (t, b, r) => this.resend(t, b, r), locale: this.locale };
    const item = result.by_alexa ? renderPrompt(result, options) : renderTurn(result, options);
    if (pending) pending.replaceWith(item);
    else this.turns.append(item);
    // What followed without the user: the dialog model's prompt, or Alexa's own request.
    let last = item;
    for (const next of result.then ?? []) {
      last = next.by_alexa ? renderPrompt(next, options) : renderTurn(next, options);
      this.turns.append(last);
    }
    last.scrollIntoView({ block: "nearest" });
    if (this.lines.length === 0) this.lastLines = [];
    if (result.script) this.lines.push(result.script);
    this.session = result.session;
    if (result.session.ended) this.newSession("the session ended");
    else this.showState();
  }

  showState() {
    if (!this.session) {
      this.state.textContent = "No session open: the next turn starts one.";
      return;
    }
    const id = this.session.session_id;
    this.state.replaceChildren(`Session …${id.slice(-8)}, attributes `,
      el("code", { dataset: { part: "attributes" } }, pretty(this.session.attributes)));
  }

  // The open session's lines, else those of the session that just ended.
  scriptLines() {
    return this.lines.length ? this.lines : this.lastLines;
  }
}
