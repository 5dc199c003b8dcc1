"""The developer's tools: simulate, dialog, certify, models check, events send, the web console.

Everything here talks to an endpoint as Alexa, SNS, EventBridge or GitHub
would, from the developer's machine. The server never imports it: the
command line hands the console to the server's admin listener when
`[console] enabled`.
"""
