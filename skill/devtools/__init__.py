"""The developer's tools: simulate, dialog, certify, models check, events send (and the console).

Everything here talks to an endpoint as Alexa, SNS, EventBridge or GitHub
would, from the developer's machine; the server imports only the console, and
only when `[console] enabled` (its admin listener serves it).
"""
