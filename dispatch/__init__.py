"""The funker protocol, intent routing and function-output mapping (no ASK SDK, no Flask)."""
