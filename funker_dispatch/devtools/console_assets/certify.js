// Certify against this endpoint: what Amazon's functional test sends, and each verdict.

import { call, problem } from "./api.js";
import { el, table } from "./dom.js";

export function wireCertify() {
  const button = document.getElementById("certify-run");
  button.addEventListener("click", async () => {
    problem(null);
    const box = document.getElementById("certify-result");
    button.disabled = true;
    box.replaceChildren(el("p", { class: "muted" }, "running…"));
    try {
      box.replaceChildren(...report(await call("certify", {})).filter(Boolean));
    } catch (error) {
      box.replaceChildren();
      problem(error);
    } finally {
      button.disabled = false;
    }
  });
}

function report(answer) {
  const counts = {};
  for (const r of answer.results) counts[r.verdict] = (counts[r.verdict] ?? 0) + 1;
  const rows = answer.results.map((r) => [r.check, r.expected, r.status === null ? "–" : String(r.status),
    el("span", { class: `outcome verdict-${r.verdict.replace(" ", "-")}` }, r.verdict), r.detail]);
  return [
    el("p", {}, `certify ${answer.url}: `,
      el("b", { dataset: { part: "certify-summary" } }, Object.entries(counts).map(([v, n]) => `${n} ${v}`).join(", "))),
    table(["check", "want", "got", "result", "detail"], rows),
    answer.trusts ? null : el("p", { class: "refusal" },
      "The endpoint does not trust the development CA: checks that need a valid signature prove nothing."),
    answer.stopped ? el("p", { class: "refusal" }, `Stopped at “${answer.stopped.check}”: ${answer.stopped.error}`) : null,
  ];
}
