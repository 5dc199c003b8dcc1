"""The routed custom intents as MCP tools, for Alexa+ and any MCP client (docs/mcp.md).

- `catalog`: one tool per routed custom intent, its input schema from the model's slots;
- `call`: a tool call as the IntentRequest envelope Alexa would send, and the reply as a
  tool result;
- `auth`: bearer tokens (static, or access tokens the dispatcher issues by client
  credentials), the OAuth metadata documents, the token endpoint;
- `protocol`: the official `mcp` SDK's Streamable HTTP server, driven from a Flask view;
- `view`: the thin Flask views on the public listener.
"""
