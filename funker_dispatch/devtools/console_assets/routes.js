// The routing table, and resolve probes of every route's host.

import { call, problem } from "./api.js";
import { el, ms, table } from "./dom.js";

export function wireRoutes() {
  document.getElementById("routes-refresh").addEventListener("click", () => show(false));
  document.getElementById("routes-probe").addEventListener("click", () => show(true));
  return show(false);
}

async function show(probe) {
  problem(null);
  const box = document.getElementById("routes-table");
  try {
    const answer = await call(probe ? "routes?probe=1" : "routes");
    const columns = ["intent / request type", "host", "port", "source"];
    if (answer.probed) columns.push("resolves", "addresses", "resolve", "connect", "error");
    const rows = answer.intents.map((row) => {
      const builtIn = row.source === "built-in";
      const cells = [row.name, builtIn ? "(answered by the dispatcher)" : row.host,
        row.port === null ? "–" : String(row.port), row.source];
      if (answer.probed && builtIn) {
        cells.push("–", "–", "–", "–", "");
      } else if (answer.probed) {
        cells.push(el("span", { class: `outcome ${row.resolves ? "ok" : "failed"}` }, row.resolves ? "yes" : "no"),
          String(row.addresses), ms(row.resolve_ms),
          "connects" in row ? `${row.connects ? "yes" : "no"} ${ms(row.connect_ms)}` : "–", row.error ?? "");
      }
      return cells;
    });
    box.replaceChildren(table(columns, rows));
  } catch (error) {
    problem(error);
  }
}
