"""Validated signing keys by certificate-chain URL: fetched once, kept safe from floods.

Whoever signs with a certificate URL (Alexa today, SNS next) names the URL in
the request itself, so an unsigned request chooses what we fetch. This cache
is the one place that makes that cheap and harmless (docs/robustness.md):

- Keys are the URL as its rules normalise it, so spellings of one URL share
  one entry, one fetch and one failure.
- A failed fetch or validation is remembered for a short window (a negative
  cache) and answered again without fetching.
- *Known* URLs - declared by the operator (prefetch, local chains) or having
  verified a genuine signature - keep their entries in their own tier, which
  no flood of other URLs evicts, and their fetches skip the in-flight bound
  that refuses other URLs (single flight already makes that one fetch a URL).

The owner brings what differs per sender: `check_url(url) -> normalised url`
(raising for a URL that breaks its rules, before anything is fetched) and
`validate(pem, now) -> SigningKey`. Times are the owner's injected clock.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from verification.errors import CertFetchFailed, VerificationFailed

#: Entries for URLs that are not known; least recently used goes first.
CACHE_SIZE = 64
#: URLs made known by a genuine signature (operator-declared ones are not counted).
KNOWN_SIZE = 64
#: Remembered failures; a flood of distinct bogus URLs costs one fetch each at most.
FAILURE_CACHE_SIZE = 1024
#: How long a failure is answered without fetching again.
FAILURE_TTL = timedelta(seconds=60)
#: Shorter for known URLs: a prefetch that failed because the network was not up
#: yet must not refuse Alexa for a minute; it still bounds refetches under replay.
KNOWN_FAILURE_TTL = timedelta(seconds=5)
#: Fetches in flight at once for URLs that are not known. A flood of distinct
#: bogus URLs must not tie up every worker thread in 2-second fetches, so past
#: this bound such a URL is refused at once.
MAX_CONCURRENT_FETCHES = 4
#: Header texts whose normalised form is memoised (a warm request skips the parse).
_NORMALISED_MEMO = 256

FETCH_FAILED = "certificate chain could not be fetched"


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A public key whose chain passed validation, and the window it may be used in."""

    key: Any  # the owner's key type (an RSAPublicKey for Alexa and SNS)
    not_before: datetime
    not_after: datetime


@dataclass(frozen=True, slots=True)
class _Failure:
    # The parts, not the exception: its traceback would pin the failed load's frames.
    kind: type[VerificationFailed]
    message: str
    detail: str | None
    at: datetime
    until: datetime


class _NoFetchSlot(CertFetchFailed):
    """Refused for want of capacity: says nothing about the URL, so it is never remembered."""


class ChainCache:
    """Signing keys by normalised chain URL, with single flight, a negative cache and tiers."""

    def __init__(
        self,
        fetch: Callable[[str], bytes],
        check_url: Callable[[str], str],
        validate: Callable[[bytes, datetime], SigningKey],
        *,
        size: int = CACHE_SIZE,
        known_size: int = KNOWN_SIZE,
        failure_cache_size: int = FAILURE_CACHE_SIZE,
        failure_ttl: timedelta = FAILURE_TTL,
        known_failure_ttl: timedelta = KNOWN_FAILURE_TTL,
        max_concurrent_fetches: int = MAX_CONCURRENT_FETCHES,
    ) -> None:
        self._fetch = fetch
        self._check_url = check_url
        # check_url is pure, so its answers for valid URLs can be memoised; a
        # refusal raises and is never memoised (it is cheap and stays uncached).
        self._memo = functools.lru_cache(maxsize=_NORMALISED_MEMO)(check_url)
        self._validate = validate
        self._size = size
        self._known_size = known_size
        self._failure_cache_size = failure_cache_size
        self._failure_ttl = failure_ttl
        self._known_failure_ttl = known_failure_ttl
        self._lock = threading.Lock()
        self._declared: set[str] = set()  # by the operator; never forgotten
        self._earned: OrderedDict[str, None] = OrderedDict()  # by a genuine signature; oldest first
        self._known_entries: dict[str, SigningKey] = {}
        self._entries: OrderedDict[str, SigningKey] = OrderedDict()
        self._failures: OrderedDict[str, _Failure] = OrderedDict()
        self._loading: dict[str, Future[SigningKey]] = {}
        self._fetch_slots = threading.BoundedSemaphore(max_concurrent_fetches)

    def _normalise(self, url: str) -> str:
        # Anything but text goes to the rules unmemoised: they refuse it, and it may
        # not be hashable.
        return self._memo(url) if isinstance(url, str) else self._check_url(url)

    def is_known(self, url: str) -> bool:
        """Whether `url` (any spelling) is declared or has verified a genuine signature."""
        try:
            normalised = self._normalise(url)
        except VerificationFailed:
            return False
        return normalised in self._declared or normalised in self._earned

    def mark_known(self, urls: Iterable[str]) -> list[str]:
        """Declare URLs known (prefetch, local chains); return them normalised.

        URLs these rules refuse are skipped: they can never be requested here (a
        local chain for another sender's URL, say).
        """
        marked: list[str] = []
        for url in urls:
            try:
                normalised = self._normalise(url)
            except VerificationFailed:
                continue
            with self._lock:
                self._declared.add(normalised)
                self._earned.pop(normalised, None)
                self._promote(normalised)
            marked.append(normalised)
        return marked

    def signature_verified(self, url: str) -> None:
        """`url`'s key just verified a genuine signature: it is known from now on."""
        normalised = self._normalise(url)
        # Checked without the lock: this runs on every accepted request, and a
        # stale "no" only costs taking the lock below once.
        if normalised in self._declared or normalised in self._earned:
            return
        with self._lock:
            if normalised in self._declared or normalised in self._earned:
                return
            self._earned[normalised] = None
            self._promote(normalised)
            while len(self._earned) > self._known_size:
                oldest, _ = self._earned.popitem(last=False)
                entry = self._known_entries.pop(oldest, None)
                if entry is not None:  # back among the unknown, not dropped
                    self._store_unknown(oldest, entry)

    def key(self, url: str, now: datetime) -> SigningKey:
        """The validated key for `url` at `now`: cached, a remembered failure, or fetched once."""
        normalised = self._normalise(url)  # before anything is fetched
        with self._lock:
            known = normalised in self._declared or normalised in self._earned
            entry = self._cached(normalised, known, now)
            if entry is not None:
                return entry
            failure = self._failures.get(normalised)
            if failure is not None:
                if failure.at <= now < failure.until:
                    raise _again(failure)
                del self._failures[normalised]  # past its window (or the clock went back)
            loading = self._loading.get(normalised)
            owner = loading is None
            if owner:
                loading = self._loading[normalised] = Future()
        assert loading is not None
        if not owner:
            try:
                return loading.result()
            except VerificationFailed as exc:
                # A fresh exception per waiter; they must not share one traceback.
                raise type(exc)(exc.message, detail=exc.detail) from None
        try:
            entry = self._load(normalised, known, now)
        except BaseException as exc:
            with self._lock:
                del self._loading[normalised]
                if isinstance(exc, VerificationFailed) and not isinstance(exc, _NoFetchSlot):
                    self._remember_failure(normalised, exc, now)
            loading.set_exception(exc)
            raise
        with self._lock:
            # Cache and release together, so a late arrival sees one or the other.
            if normalised in self._declared or normalised in self._earned:
                self._known_entries[normalised] = entry
            else:
                self._store_unknown(normalised, entry)
            del self._loading[normalised]
        loading.set_result(entry)
        return entry

    def _cached(self, url: str, known: bool, now: datetime) -> SigningKey | None:
        tier: dict[str, SigningKey] = self._known_entries if known else self._entries
        entry = tier.get(url)
        if entry is None:
            return None
        if entry.not_before <= now <= entry.not_after:
            if not known:
                self._entries.move_to_end(url)
            return entry
        del tier[url]  # expired by the clock: fetch and validate again
        return None

    def _load(self, url: str, known: bool, now: datetime) -> SigningKey:
        # Known URLs skip the bound: there are few, and single flight already
        # limits each to one fetch, so bogus fetches can never starve them.
        if not known and not self._fetch_slots.acquire(blocking=False):
            raise _NoFetchSlot(FETCH_FAILED, detail="too many certificate fetches in flight")
        try:
            pem = self._fetch(url)
        except CertFetchFailed as exc:
            # A fetcher's own text names hosts, resolver errors and local paths: that
            # is for the operator log (`detail`); the message stays one fixed sentence.
            raise CertFetchFailed(FETCH_FAILED, detail=exc.detail or exc.message) from None
        except VerificationFailed:
            raise
        except Exception as exc:  # an injected fetcher's own errors are still fetch failures
            detail = f"certificate chain fetch failed: {type(exc).__name__}: {exc}"
            raise CertFetchFailed(FETCH_FAILED, detail=detail) from None
        finally:
            if not known:
                self._fetch_slots.release()
        return self._validate(pem, now)

    def _promote(self, url: str) -> None:
        """Move `url`'s entry into the known tier (with the lock held)."""
        entry = self._entries.pop(url, None)
        if entry is not None:
            self._known_entries[url] = entry
        # A known URL's failure window is the short one; let the next request retry.
        self._failures.pop(url, None)

    def _store_unknown(self, url: str, entry: SigningKey) -> None:
        self._entries[url] = entry
        self._entries.move_to_end(url)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def _remember_failure(self, url: str, error: VerificationFailed, now: datetime) -> None:
        known = url in self._declared or url in self._earned
        window = self._known_failure_ttl if known else self._failure_ttl
        self._failures[url] = _Failure(type(error), error.message, error.detail, now, now + window)
        self._failures.move_to_end(url)
        while len(self._failures) > self._failure_cache_size:
            self._failures.popitem(last=False)


def _again(failure: _Failure) -> VerificationFailed:
    """The remembered failure as a fresh exception, its detail saying it was not refetched."""
    detail = f"{failure.detail or failure.message} (remembered; not fetched again before "
    detail += f"{failure.until.isoformat()})"
    return failure.kind(failure.message, detail=detail)
