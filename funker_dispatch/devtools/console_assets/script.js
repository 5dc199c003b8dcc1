// dialog --script files: the session saved as one utterance a line, and replayed as
// `funker-dispatch dialog --script` plays one (one session; it stops when the skill ends
// the session; the session is ended when the lines run out).

import { download, el } from "./dom.js";

export function scriptText(lines, locale) {
  return [
    "# funker-dispatch dialog script, saved by the console",
    `# replay: funker-dispatch dialog --script FILE --locale ${locale}`,
    ...lines,
    "",
  ].join("\n");
}

// Blank lines and # comments are skipped, as dialog's script_lines does.
export function scriptLines(text) {
  return text.split(/\r?\n/).map((line) => line.trim()).filter((line) => line && !line.startsWith("#"));
}

export function wireScripts(conversation) {
  document.getElementById("save-script").addEventListener("click", () => {
    const lines = conversation.scriptLines();
    download("dialog.txt", scriptText(lines, conversation.locale()), "text/plain");
  });
  const input = document.getElementById("load-script");
  input.addEventListener("change", async () => {
    const file = input.files[0];
    if (!file) return;
    const lines = scriptLines(await file.text());
    input.value = "";
    await replay(conversation, lines, file.name);
  });
}

export async function replay(conversation, lines, name) {
  conversation.newSession(`replaying ${name}: ${lines.length} utterance(s)`);
  let played = 0;
  for (const line of lines) {
    const result = await conversation.say(line);
    played += 1;
    if (result === null) return;  // the console itself failed: said under the tabs
    if (result.session?.ended) {
      const left = lines.length - played;
      if (left) conversation.turns.append(el("li", { class: "divider" }, `the session ended; ${left} utterance(s) not played`));
      return;
    }
  }
  // Out of lines with the session open: the user walked away, as dialog reports it.
  if (played && conversation.session) await conversation.turn({ action: "end" });
}
