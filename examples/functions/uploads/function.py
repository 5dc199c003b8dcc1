"""Funker function: remembers the files S3 reports uploaded, and says what came in today.

One process, two faces. The dispatcher sends it every S3 upload (an
`[events.uploads]` rule with `source = "s3"`: docs/events/sns.md's payload, with
`"s3": {"bucket", "key"}` and the key already decoded), and when someone asks
Alexa "what was uploaded today", the UploadsIntent request:

    Three new files in photos today, the latest is red flower.jpg.

State is this process's memory: the last `MAX_UPLOADS` uploads, forgotten
on restart; with several replicas each would remember only its own share,
so the stack runs one. "Today" is the UTC date. Events are idempotent on
their id (`<MessageId>#n`), so SNS's retries never count a file twice.

Run: python examples/functions/uploads/function.py --port 9106
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

MAX_UPLOADS = 100
NONE_YET = "No files have been uploaded yet."


@dataclass(frozen=True)
class Upload:
    id: str
    bucket: str
    key: str
    size: int | None
    at: datetime

    @property
    def name(self) -> str:
        """The key after its last slash: "holiday/red flower.jpg" is "red flower.jpg"."""
        return self.key.rstrip("/").rsplit("/", 1)[-1] or self.key


class Uploads:
    """The last uploads by event id, safe for serve()'s one thread per request."""

    def __init__(self, limit: int = MAX_UPLOADS) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._by_id: OrderedDict[str, Upload] = OrderedDict()

    def remember(self, upload: Upload) -> None:
        with self._lock:
            self._by_id[upload.id] = upload  # the same id again (a retry) replaces itself
            while len(self._by_id) > self.limit:
                self._by_id.popitem(last=False)

    def newest_first(self) -> list[Upload]:
        with self._lock:
            return sorted(self._by_id.values(), key=lambda u: u.at, reverse=True)


UPLOADS = Uploads()


def upload_from_event(payload: dict[str, Any]) -> Upload | None:
    """The upload in an s3 event payload, or None when it carries none."""
    s3 = payload.get("s3")
    bucket = s3.get("bucket") if isinstance(s3, dict) else None
    key = s3.get("key") if isinstance(s3, dict) else None
    event_id = payload.get("id")
    if not all(isinstance(v, str) and v for v in (bucket, key, event_id)):
        return None
    record = payload.get("event") if isinstance(payload.get("event"), dict) else {}
    obj = record.get("s3", {}).get("object", {}) if isinstance(record.get("s3"), dict) else {}
    size = obj.get("size") if isinstance(obj, dict) else None
    return Upload(
        event_id,
        bucket,
        key,
        size if isinstance(size, int) and not isinstance(size, bool) else None,
        _time(payload.get("time")) or datetime.now(UTC),
    )


def today(uploads: list[Upload], now: datetime) -> dict[str, Any]:
    """The spoken answer to UploadsIntent: today's files in the bucket of the latest one."""
    if not uploads:
        return {"speech": NONE_YET, "card": {"title": "Uploads", "content": NONE_YET}}
    latest = uploads[0]
    date = now.astimezone(UTC).date()
    todays = [u for u in uploads if u.at.astimezone(UTC).date() == date]
    if not todays:
        speech = (
            f"No new files today. The last one was {latest.name} in {latest.bucket}, "
            f"on {latest.at:%B} {latest.at.day}."
        )
    else:
        latest = todays[0]
        count = sum(1 for u in todays if u.bucket == latest.bucket)
        if count == 1:
            speech = f"One new file in {latest.bucket} today: {latest.name}."
        else:
            speech = (
                f"{number(count).capitalize()} new files in {latest.bucket} today, "
                f"the latest is {latest.name}."
            )
    card = "\n".join(f"{u.at:%Y-%m-%d %H:%M} UTC  {u.bucket}/{u.key}" for u in uploads[:10])
    return {"speech": speech, "card": {"title": "Uploads", "content": card}}


_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def number(n: int) -> str:
    """0-99 in words ("three", "forty-two"), digits beyond: it is spoken, not read."""
    if 0 <= n < 20:
        return _ONES[n]
    if 20 <= n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + (f"-{_ONES[ones]}" if ones else "")
    return str(n)


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)  # S3's "2030-06-01T11:59:58.412Z"
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def handle(payload: Any) -> Any:
    if isinstance(payload, dict) and "trigger" in payload:  # an event from the dispatcher
        upload = upload_from_event(payload) if payload.get("trigger") == "s3" else None
        if upload is None:
            return {"remembered": None}
        UPLOADS.remember(upload)
        return {"remembered": upload.id}
    return today(UPLOADS.newest_first(), datetime.now(UTC))  # UploadsIntent (or any ask)


def main(argv: Sequence[str] | None = None) -> None:
    # Imported here so `handle` can be imported and tested without the protocol layer.
    from dispatch.funker import run

    run(handle, argv, description="Funker function: S3 uploads, remembered and spoken.")


if __name__ == "__main__":
    main()
