// A funker function as Node funker's handle.js serves one: a half-open-aware TCP
// server that reads the request to its end, writes one JSON value, closes and exits.
// Run as `node node_function.js PORT`; answers {"echo": <request>}.
"use strict";

const net = require("net");

const port = Number(process.argv[2]);

const server = net.createServer({ allowHalfOpen: true }, (socket) => {
  const chunks = [];
  socket.on("data", (chunk) => chunks.push(chunk));
  socket.on("end", () => {
    const args = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    // Like handle.js: one request per process, then stop listening and exit.
    server.close();
    socket.end(JSON.stringify({ echo: args }));
  });
});

server.listen(port, "127.0.0.1");
