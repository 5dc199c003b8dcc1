// The funker protocol, function side, in one file of Node's standard library only.
//
// A function answers one JSON request per TCP connection: read to the end (the
// dispatcher half-closes its side), answer one JSON value, close. This file is copied
// into each function's folder by `funker-dispatch new function`, so the folder builds
// and runs on its own (`docker build .`), with nothing of the dispatcher installed.
//
// A request must arrive whole within 30 s and be at most 1 MiB. A handler that throws
// (or rejects), and a request that is too slow, too large or not JSON, get no answer:
// the dispatcher then apologises to Alexa, or answers an event's sender 503 so it
// retries. An empty connection is a port probe and gets nothing.
"use strict";

const net = require("net");

const READ_TIMEOUT_MS = 30000;
const MAX_REQUEST_BYTES = 1024 * 1024;

// The intent's slots as name -> spoken value (null when the user gave none).
function slotValues(request) {
  const slots = request?.request?.intent?.slots ?? {};
  return Object.fromEntries(Object.entries(slots).map(([name, slot]) => [name, slot?.value ?? null]));
}

function serve(handler, host = "0.0.0.0", port = 9999) {
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    const chunks = [];
    let size = 0;
    const fail = (why) => {
      console.error(`funker: no answer: ${why}`);
      socket.destroy();
    };
    const timer = setTimeout(() => fail(`the request took over ${READ_TIMEOUT_MS / 1000} s`), READ_TIMEOUT_MS);
    socket.on("error", () => clearTimeout(timer));
    socket.on("data", (chunk) => {
      size += chunk.length;
      if (size > MAX_REQUEST_BYTES) {
        clearTimeout(timer);
        fail(`the request is over ${MAX_REQUEST_BYTES} bytes`);
        return;
      }
      chunks.push(chunk);
    });
    socket.on("end", async () => {
      clearTimeout(timer);
      if (size === 0) return socket.end(); // a port probe
      try {
        const answer = await handler(JSON.parse(Buffer.concat(chunks).toString("utf8")));
        socket.end(JSON.stringify(answer === undefined ? null : answer));
      } catch (error) {
        fail(error && error.stack ? error.stack : String(error));
      }
    });
  });
  // Answers already being written finish; nothing new is accepted.
  process.on("SIGTERM", () => server.close(() => process.exit(0)));
  server.listen(port, host);
  return server;
}

// Serve on $FUNKER_HOST (default 0.0.0.0) and $FUNKER_PORT (default 9999).
function run(handler) {
  return serve(handler, process.env.FUNKER_HOST || "0.0.0.0", Number(process.env.FUNKER_PORT || 9999));
}

module.exports = { run, serve, slotValues };
