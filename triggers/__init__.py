"""Event triggers (docs/events): deliveries from AWS and GitHub become funker function calls.

One module per sender only parses its verified delivery into plain `Event`
values (`sns.py`; `eventbridge.py`, with `dynamodb.py` for the DynamoDB
stream records a Pipe sends; `github.py`); `rules.py` holds the
`[events.NAME]` rules as data and matches them in one place; `fanout.py`
runs the matched functions in parallel and remembers what succeeded, so a
retry re-runs only what failed; `endpoint.py` ties one HTTP delivery
together, per sender. Verification stays in `verification/`. Plain Python:
no Flask, and never an import of `skill`.
"""
