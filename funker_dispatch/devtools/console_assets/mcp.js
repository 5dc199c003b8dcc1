// The MCP tab: the tools the endpoint serves, and a call of one, through the official
// MCP client the console runs server-side (the page never holds the token).

import { call, problem } from "./api.js";
import { el, pretty } from "./dom.js";

export async function wireMcp() {
  const box = document.getElementById("mcp-tools");
  const answer = await call("mcp-tools");
  if (!answer.enabled) {
    box.replaceChildren(el("p", { class: "muted" },
      "MCP is off: [mcp] enabled = true serves the routed intents as tools on POST /mcp."));
    return;
  }
  document.getElementById("mcp-endpoint").textContent = answer.url;
  box.replaceChildren(...answer.tools.map(toolForm));
}

function toolForm(tool) {
  const schema = tool.inputSchema ?? {};
  const required = new Set(schema.required ?? []);
  const result = el("div", { class: "result", "aria-live": "polite" });
  const fields = Object.entries(schema.properties ?? {}).map(([name, prop]) => {
    const values = prop.enum ?? prop.examples ?? [];
    const list = `mcp-${tool.name}-${name}`;
    return el("label", {}, `${name}${required.has(name) ? "" : " (optional)"} `,
      el("input", { name, list, required: required.has(name), placeholder: prop.description ?? "" }),
      el("datalist", { id: list }, values.map((v) => el("option", { value: v }))));
  });
  const form = el("form", { class: "event-form", dataset: { tool: tool.name } },
    el("h3", {}, tool.name),
    el("p", { class: "muted" }, tool.description ?? ""),
    fields,
    el("button", { type: "submit" }, "Call"),
    result);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    problem(null);
    const args = {};
    for (const input of form.querySelectorAll("input")) {
      if (input.value.trim()) args[input.name] = input.value;
    }
    try {
      const answer = await call("mcp-call", { tool: tool.name, arguments: args });
      result.replaceChildren(...shown(answer));
    } catch (error) {
      problem(error);
    }
  });
  return form;
}

function shown(answer) {
  if (answer.failure) return [el("p", { class: "outcome failed" }, answer.failure)];
  const outcome = answer.result.isError ? "tool error" : "answered";
  const text = (answer.result.content ?? []).filter((c) => c.type === "text").map((c) => c.text);
  return [
    el("p", {}, el("span", { class: `outcome ${answer.result.isError ? "failed" : "ok"}` }, outcome),
      " ", el("span", { class: "mcp-speech" }, text.join(" "))),
    el("details", {}, el("summary", {}, "Tool call and result (JSON)"),
      el("pre", {}, pretty({ tool: answer.tool, arguments: answer.arguments })),
      el("pre", {}, pretty(answer.result))),
  ];
}
