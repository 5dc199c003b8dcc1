"""The server process: granian on two listeners, the bridge to the Flask app, function processes.

Only the command line imports it; it imports the `skill` package's apps and
settings, never the developer's tools (the web console is handed to it).
"""
