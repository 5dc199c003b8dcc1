// Funker function "hostname", in Node: says which host answered, in SSML (short answer form).
//
// The same answer as examples/functions/hostname/function.py, from the Node runtime:
// docker-stack.yml runs this one, so the stack proves a Node function image on the swarm
// while `make run` needs only Python. Behind the swarm's load balancer each replica has
// its own hostname (the container id); it is spelled out character by character.
//
// Run: FUNKER_PORT=9103 node index.js     Build: docker build -t funker-hostname-node .
"use strict";

const os = require("os");
const { run } = require("./protocol");

function escapeXml(text) {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function handle() {
  const host = os.hostname();
  return {
    speech: `<speak>This answer came from <say-as interpret-as="characters">${escapeXml(host)}</say-as>.</speak>`,
    card: { title: "Hostname", text: `This answer came from ${host}.` },
  };
}

if (require.main === module) run(handle);

module.exports = { handle };
