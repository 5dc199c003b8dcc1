"""funker-dispatch as a program: its command line, its server process and the developer's tools.

`cli` is the composition root (the `funker-dispatch` console script), above
`devtools/` (simulate, dialog, certify, models check, events send, the web
console) and `server/` (granian, the bridge to the Flask app, the function
processes). They build on the import packages below them: `skill` (the Alexa
skill, its Flask apps and settings), `triggers`, `dispatch`, `verification`.
"""
