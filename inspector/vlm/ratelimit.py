"""Client-side limits for many requests to one endpoint: concurrency, requests and tokens per minute,
and the retry policy.

Hosted endpoints enforce per-minute request and token quotas and answer 429 when they are exceeded;
staying under them on our side keeps a batch from spending its time in back-off. Everything here is
asyncio-only (one event loop) and cancellable: a cancelled waiter gives its place back.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from typing import Any

from inspector.vlm.client import VlmError


@dataclass
class BatchLimits:
    """What a batch may ask of the endpoint. 0 for a per-minute limit means "no limit"."""

    concurrency: int = 4
    requests_per_minute: float = 0.0
    tokens_per_minute: float = 0.0
    max_attempts: int = 5
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 60.0
    max_retry_after_s: float = 300.0  # a longer Retry-After fails the case instead of stalling the batch

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BatchLimits:
        """Known fields, each converted to its type; ValueError for a value that is not a number or
        out of range (a concurrency below 1, a negative limit), instead of failing mid-batch."""
        defaults = cls()
        values: dict[str, Any] = {}
        for name in cls.__dataclass_fields__:
            if name not in data:
                continue
            kind = type(getattr(defaults, name))
            raw = data[name]
            if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
                raise ValueError(f"batch limit {name}: {raw!r} is not a number")
            try:
                value = kind(float(raw)) if kind is int else kind(raw)
            except (TypeError, ValueError):
                raise ValueError(f"batch limit {name}: {raw!r} is not a number") from None
            if value < 0 or (name in ("concurrency", "max_attempts") and value < 1) or value != value:
                raise ValueError(f"batch limit {name}: {raw!r} is out of range")
            values[name] = value
        return cls(**values)


class RateLimiter:
    """Concurrency slots plus RPM and TPM gates, granted in arrival order (fair).

    Requests per minute are spaced evenly (one every 60/RPM s) rather than allowed in a burst at the
    start of each minute: servers that count over a sliding window answer a burst with 429s.
    Tokens per minute are a bucket refilled continuously; each request takes its estimated tokens
    before it is sent, and `settle` corrects the bucket with the usage the server reports.
    A 429 with Retry-After pauses every new request until then (`pause_for`), not only the one
    that got it: the others would be refused too.
    """

    POLL_S = 0.25

    def __init__(self, limits: BatchLimits, clock=time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._slots = asyncio.Semaphore(max(1, limits.concurrency))
        self._gate = asyncio.Lock()  # FIFO: whoever waits longest goes next
        self._next_start = 0.0
        self._tpm = limits.tokens_per_minute
        self._tokens = float(limits.tokens_per_minute)
        self._refilled_at = clock()
        self._paused_until = 0.0

    def pause_for(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    @contextlib.asynccontextmanager
    async def slot(self, estimated_tokens: int = 0) -> AsyncIterator[None]:
        """Hold a concurrency slot for one request, after the rate gates let it start."""
        async with self._slots:
            async with self._gate:
                await self._wait_rates(estimated_tokens)
            yield

    async def _wait_rates(self, estimated_tokens: int) -> None:
        while True:
            now = self._clock()
            waits = [self._paused_until - now, self._next_start - now]
            if self._tpm > 0:
                self._refill(now)
                need = min(float(estimated_tokens), self._tpm)  # a huge request still goes, alone
                waits.append((need - self._tokens) * 60.0 / self._tpm)
            wait = max(waits)
            if wait <= 0:
                break
            await asyncio.sleep(min(wait, self.POLL_S))  # `settle` may give tokens back meanwhile
        rpm = self.limits.requests_per_minute
        if rpm > 0:
            self._next_start = max(self._next_start, now) + 60.0 / rpm
        if self._tpm > 0:
            self._tokens -= estimated_tokens

    def _refill(self, now: float) -> None:
        self._tokens = min(self._tpm, self._tokens + (now - self._refilled_at) * self._tpm / 60.0)
        self._refilled_at = now

    def settle(self, estimated_tokens: int, actual_tokens: int | None) -> None:
        """Correct the token bucket with the tokens the request really used."""
        if self._tpm > 0 and actual_tokens is not None:
            self._tokens += estimated_tokens - actual_tokens


FATAL_KINDS = frozenset({"auth", "bad_request"})


def is_fatal(error: VlmError) -> bool:
    """Errors that every other case would hit too (key, address, model, quota): stop the batch."""
    return error.kind in FATAL_KINDS or (error.kind == "rate_limited" and not error.retryable)


def retry_delay(error: VlmError, attempt: int, limits: BatchLimits, rng: random.Random | None = None) -> float | None:
    """Seconds to wait before attempt `attempt + 1`, or None when the request must not be retried.

    Retry-After (on 429 and 503) is honoured as given; otherwise exponential back-off with full
    jitter (uniform in [0, min(cap, base * 2**attempt)]), which spreads many clients' retries apart.
    """
    if not error.retryable or attempt >= limits.max_attempts:
        return None
    if error.retry_after is not None and error.status_code in (429, 503):
        return error.retry_after if error.retry_after <= limits.max_retry_after_s else None
    ceiling = min(limits.backoff_cap_s, limits.backoff_base_s * 2 ** (attempt - 1))
    return (rng or random).uniform(0.0, ceiling)
