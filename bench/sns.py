"""What verifying one SNS delivery costs, warm and cold: prints figures, asserts nothing.

In process, no server and no network: `SnsVerifier.verify(headers, body)` on
a dev-CA-signed Notification (an S3 event, ~1.3 KB, as `events send s3`
builds it), its chain mapped to the local file as `[verification.local_chains]`
maps it.

  warm v2 / v1   the chain validated and cached: parse, checks, string to
                 sign, one RSA PKCS#1 v1.5 verify (SHA256 / SHA1)
  forged         the same message with its Message changed (refused, sns-signature)
  cold           a fresh verifier each time: the chain read and path-validated too

Each figure is the median over --rounds of the mean of --messages calls.

Run: .venv/bin/python bench/sns.py [--messages 2000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from funker_dispatch.devtools.eventsend import notification, s3_notification  # noqa: E402
from verification import DevCA, SnsVerifier  # noqa: E402
from verification.devca import local_chains_fetcher  # noqa: E402
from verification.errors import SnsVerificationFailed  # noqa: E402

TOPIC = "arn:aws:sns:us-east-1:123456789012:funker-dispatch-bench"
HEADERS = {"x-amz-sns-message-type": "Notification"}


def per_call_us(call: Callable[[], object], count: int, rounds: int) -> float:
    means = []
    for _ in range(rounds):
        began = time.perf_counter()
        for _ in range(count):
            call()
        means.append((time.perf_counter() - began) / count * 1e6)
    return statistics.median(means)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000, help="calls per round")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        ca = DevCA.load_or_create(home)
        fetch = local_chains_fetcher({ca.sns_chain_url: ca.sns_chain_path}, fallback=None)

        def verifier() -> SnsVerifier:
            return SnsVerifier(roots=[ca.root], fetch=fetch, topics=[TOPIC])

        now = datetime.now(UTC)
        message = notification(
            TOPIC,
            json.dumps(
                s3_notification(
                    "photos", "red flower.jpg", "ObjectCreated:Put", 1024, "us-east-1", now
                )
            ),
            now,
            subject="Amazon S3 Notification",
        )
        bodies = {v: json.dumps(ca.sign_sns(message, version=v)).encode() for v in ("1", "2")}
        forged = json.loads(bodies["2"])
        forged["Message"] = forged["Message"].replace("photos", "forged")
        forged_body = json.dumps(forged).encode()
        warm = verifier()
        warm.verify(HEADERS, bodies["2"])  # the chain fetched and validated once

        def refuse() -> None:
            with contextlib.suppress(SnsVerificationFailed):
                warm.verify(HEADERS, forged_body)

        rows = [
            ("warm v2 (SHA256withRSA)", lambda: warm.verify(HEADERS, bodies["2"]), args.messages),
            ("warm v1 (SHA1withRSA)", lambda: warm.verify(HEADERS, bodies["1"]), args.messages),
            ("forged (refused)", refuse, args.messages),
            (
                "cold (chain validated)",
                lambda: verifier().verify(HEADERS, bodies["2"]),
                max(1, args.messages // 20),
            ),
        ]
        print(
            f"SnsVerifier.verify, {len(bodies['2'])}-byte Notification, "
            f"median of {args.rounds} rounds"
        )
        for name, call, count in rows:
            print(f"  {name:<26} {per_call_us(call, count, args.rounds):9.1f} µs/message")


if __name__ == "__main__":
    main()
