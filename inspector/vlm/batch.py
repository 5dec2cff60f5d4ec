"""Batch inspection: many cases against one VLM endpoint, in the background, resumable.

A batch and the state of each of its cases are stored in the project as they change, so closing
the app (or cancelling) leaves the unfinished cases "pending" and `resume_batch` continues with
exactly those. Per case: compose the prompt (in a worker thread: rendering is CPU work), look the
request up in the response cache, otherwise ask the endpoint within the `RateLimiter` and retry
what a retry can fix; the answer and verdict are stored by `InspectionService.inspect_with_vlm`.
An error every case would hit (a refused key, an unknown model, a bad address, an exhausted quota)
stops the batch with one message instead of failing each case with it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from inspector.inspection import InspectionError, InspectionService
from inspector.model import Case, Profile
from inspector.prompt import ComposedPrompt, PromptSwitches
from inspector.settings import EndpointSettings, resolve_api_key
from inspector.store import ProjectLockedError, StoreError
from inspector.vlm.cache import CachedClient, answer_from_row, cache_key
from inspector.vlm.client import VlmAnswer, VlmClient, VlmError
from inspector.vlm.ratelimit import BatchLimits, RateLimiter, is_fatal, retry_delay

log = logging.getLogger(__name__)

PENDING, DONE, CACHED, FAILED = "pending", "done", "cached", "failed"
TOKENS_PER_IMAGE = 765  # OpenAI's count for a high-detail 1024x1024 image: a safe side estimate
CANCEL_POLL_S = 0.05
# Composing (rendering, PNG encoding) is CPU work under the GIL. A few threads keep ahead of the
# requests; many would take the GIL from the event loop just when it has a request to send.
COMPOSE_THREADS = 1


LOCK_RETRIES = 2  # after the store's own busy timeout, per write of a batch item


@dataclass(frozen=True)
class Price:
    """Price of one model, per 1000 tokens."""

    input_per_1k: float
    output_per_1k: float


@dataclass
class PriceTable:
    """Configurable prices per model name. A model that is not listed has an unknown cost, not zero:
    a local server is free, but a hosted model missing from the table must not look free."""

    prices: dict[str, Price] = field(default_factory=dict)

    def cost(self, model: str, prompt_tokens: int | None, completion_tokens: int | None) -> float | None:
        price = self.prices.get(model)
        if price is None or prompt_tokens is None or completion_tokens is None:
            return None
        return prompt_tokens / 1000 * price.input_per_1k + completion_tokens / 1000 * price.output_per_1k

    @classmethod
    def from_dict(cls, data: dict[str, dict[str, float]]) -> PriceTable:
        return cls(
            {
                model: Price(float(p.get("input_per_1k", 0)), float(p.get("output_per_1k", 0)))
                for model, p in data.items()
            }
        )


@dataclass
class BatchProgress:
    """A snapshot for the progress view. `done` counts every case with a verdict, cached ones too."""

    batch_id: int
    total: int
    done: int = 0
    cached: int = 0
    failed: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float | None = 0.0  # None: some answer's model has no price (or no usage)
    requests: int = 0  # HTTP requests sent in this run, retries included
    elapsed_s: float = 0.0
    eta_s: float | None = None
    status: str = "running"  # running | done | cancelled | stopped
    message: str | None = None  # why the batch stopped early

    @property
    def pending(self) -> int:
        return self.total - self.done - self.failed


def estimate_tokens(prompt: ComposedPrompt, max_tokens: int) -> int:
    """Tokens a request may use, before it is sent (about 4 characters a token, plus the answer)."""
    return (len(prompt.system) + len(prompt.text)) // 4 + TOKENS_PER_IMAGE * len(prompt.images) + max_tokens


def estimate_message_tokens(messages: list[dict[str, Any]], max_tokens: int) -> int:
    """`estimate_tokens` for a whole conversation (the extraction turn sends the prompt again)."""
    text = sum(len(m["content"]) for m in messages if isinstance(m.get("content"), str))
    text += sum(
        len(part.get("text", ""))
        for m in messages
        if isinstance(m.get("content"), list)
        for part in m["content"]
        if isinstance(part, dict) and part.get("type") == "text"
    )
    images = sum(
        1
        for m in messages
        if isinstance(m.get("content"), list)
        for part in m["content"]
        if isinstance(part, dict) and part.get("type") == "image_url"
    )
    return text // 4 + TOKENS_PER_IMAGE * images + max_tokens


class RetryingClient:
    """One case's requests: through the shared limiter, retried per `retry_delay`."""

    def __init__(
        self, client: VlmClient, limiter: RateLimiter, limits: BatchLimits, on_request: Callable[[], None]
    ) -> None:
        self._client = client
        self._limiter = limiter
        self._limits = limits
        self._on_request = on_request
        self.attempts = 0
        self.answers: list[VlmAnswer] = []  # every answer of the case: the verdict, an extraction turn

    @property
    def answer(self) -> VlmAnswer | None:
        """The first answer (the verdict's), or None before it arrived."""
        return self.answers[0] if self.answers else None

    @property
    def structured_output_enabled(self) -> bool:
        return self._client.structured_output_enabled

    def usage(self) -> tuple[int | None, int | None]:
        """Prompt and completion tokens of all the case's answers: the sum of those the server
        reported (None only when it reported none for any answer)."""
        prompt = [a.prompt_tokens for a in self.answers if a.prompt_tokens is not None]
        completion = [a.completion_tokens for a in self.answers if a.completion_tokens is not None]
        return (sum(prompt) if prompt else None, sum(completion) if completion else None)

    async def ask(self, prompt: ComposedPrompt, history: list[dict[str, Any]] | None = None) -> VlmAnswer:
        estimate = estimate_tokens(prompt, self._client.endpoint.max_tokens)
        return await self._send(estimate, lambda: self._client.ask(prompt, history))

    async def extract(self, messages: list[dict[str, Any]], schema: dict[str, Any] | None) -> VlmAnswer:
        """The extraction turn, within the same limits and retries (the images are sent again)."""
        estimate = estimate_message_tokens(messages, self._client.endpoint.max_tokens)
        return await self._send(estimate, lambda: self._client.extract(messages, schema))

    async def _send(self, estimate: int, request: Callable[[], Any]) -> VlmAnswer:
        while True:
            self.attempts += 1
            try:
                async with self._limiter.slot(estimate):
                    self._on_request()
                    answer = await request()
            except VlmError as exc:
                self._limiter.settle(estimate, 0)  # a refused request used no tokens
                delay = None if is_fatal(exc) else retry_delay(exc, self.attempts, self._limits)
                if delay is None:
                    raise
                if exc.status_code == 429 and exc.retry_after is not None:
                    self._limiter.pause_for(delay)  # the other requests would be refused too
                log.info("retrying in %.2f s (attempt %d): %s", delay, self.attempts, exc.user_message)
                await asyncio.sleep(delay)
                continue
            # Let the request waiting for this slot go out before this answer is stored (a few ms
            # of SQLite on the loop): otherwise every slot idles for the storing of the answer before.
            await asyncio.sleep(0)
            used = None if answer.prompt_tokens is None else answer.prompt_tokens + (answer.completion_tokens or 0)
            self._limiter.settle(estimate, used)
            self.answers.append(answer)
            return answer


ProfileResolver = Callable[[Case], Profile]
ProgressCallback = Callable[[BatchProgress], None]


class BatchRunner:
    """Runs the pending items of one stored batch. Use `run_batch` / `resume_batch`."""

    def __init__(
        self,
        service: InspectionService,
        batch_id: int,
        profile_resolver: ProfileResolver,
        endpoint: EndpointSettings,
        limits: BatchLimits,
        prices: PriceTable | None = None,
        progress_callback: ProgressCallback | None = None,
        is_cancelled: Callable[[], bool] | None = None,
        api_key: str | None = None,
        switches: PromptSwitches | None = None,
    ) -> None:
        self.service = service
        self.switches = switches  # the prompt variant (None: the defaults); A/B runs differ here
        self.store = service.store
        self.batch_id = batch_id
        self.profile_resolver = profile_resolver
        self.endpoint = endpoint
        self.limits = limits
        self.prices = prices or PriceTable()
        self.progress_callback = progress_callback
        self.is_cancelled = is_cancelled or (lambda: False)
        self.api_key = api_key
        self._fatal: str | None = None
        self._composer: ThreadPoolExecutor | None = None
        self._finished_this_run = 0
        self._started = 0.0
        items = self.store.batch_items(batch_id)
        self.progress = BatchProgress(batch_id=batch_id, total=len(items))
        for item in items:
            self._count(item.state, item.model, item.prompt_tokens, item.completion_tokens)
        self._pending = [(item.position, item.case_id) for item in items if item.state == PENDING]

    # -- bookkeeping -------------------------------------------------------------------------

    def _count(self, state: str, model: str | None, prompt_tokens: int | None, completion_tokens: int | None) -> None:
        p = self.progress
        if state in (DONE, CACHED):
            p.done += 1
        if state == CACHED:
            p.cached += 1
        if state == FAILED:
            p.failed += 1
        # a cached case costs nothing, unless its extraction turn had to be asked now
        if state == DONE or (state == CACHED and prompt_tokens is not None):
            p.tokens_in += prompt_tokens or 0
            p.tokens_out += completion_tokens or 0
            cost = self.prices.cost(model or self.endpoint.model, prompt_tokens, completion_tokens)
            p.cost = None if cost is None or p.cost is None else p.cost + cost

    def _finish_item(
        self, position: int, cache_key: str | None = None, answer_id: int | None = None, **fields: Any
    ) -> None:
        """Record an item's outcome; a project file locked by another program is tried again (each try
        waits the store's busy timeout) before the lock stops the batch."""
        for attempt in range(LOCK_RETRIES + 1):
            try:
                self.store.finish_batch_item(self.batch_id, position, fields, cache_key, answer_id)
                break
            except ProjectLockedError:
                if attempt == LOCK_RETRIES:
                    raise
        self._count(fields["state"], fields.get("model"), fields.get("prompt_tokens"), fields.get("completion_tokens"))
        self._finished_this_run += 1
        self._report()

    def _report(self) -> None:
        p = self.progress
        p.elapsed_s = time.perf_counter() - self._started
        rate = self._finished_this_run / p.elapsed_s if p.elapsed_s > 0 else 0.0
        p.eta_s = p.pending / rate if rate > 0 else None
        if self.progress_callback is not None:
            try:
                self.progress_callback(p)
            except Exception:  # a broken progress view must not stop the batch
                log.exception("batch progress callback failed")

    def _count_request(self) -> None:
        self.progress.requests += 1

    # -- running -----------------------------------------------------------------------------

    async def run(self) -> BatchProgress:
        self._started = time.perf_counter()
        self.store.update_batch(self.batch_id, status="running", message=None)
        self._report()
        queue: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
        for item in self._pending:
            queue.put_nowait(item)
        client = VlmClient(self.endpoint, self.api_key if self.api_key is not None else resolve_api_key(self.endpoint))
        limiter = RateLimiter(self.limits)
        # More workers than request slots: the next cases are composed while requests are in flight.
        n_workers = min(len(self._pending), max(1, self.limits.concurrency) * 2)
        self._composer = ThreadPoolExecutor(COMPOSE_THREADS, thread_name_prefix="batch-compose")
        workers = [asyncio.create_task(self._worker(queue, client, limiter)) for _ in range(n_workers)]
        cancelled = False
        try:
            while not all(w.done() for w in workers):
                if self._fatal is not None or self.is_cancelled():
                    cancelled = self._fatal is None
                    break
                await asyncio.wait(workers, timeout=CANCEL_POLL_S)
        finally:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            await client.aclose()
            self._composer.shutdown(wait=False, cancel_futures=True)
        p = self.progress
        p.status = "stopped" if self._fatal else "cancelled" if cancelled else "done"
        p.message = self._fatal
        try:
            self.store.update_batch(self.batch_id, status=p.status, message=p.message)
        except StoreError:  # still locked: the items say what is pending, the status follows on resume
            log.warning("batch %d: its final status could not be stored", self.batch_id)
        self._report()
        return p

    async def _worker(self, queue: asyncio.Queue[tuple[int, int]], client: VlmClient, limiter: RateLimiter) -> None:
        while self._fatal is None:
            try:
                position, case_id = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            try:
                await self._one(position, case_id, client, limiter)
            except StoreError as exc:  # the project file is locked or full: nothing more can be stored
                log.warning("batch %d stopped on the project file: %s", self.batch_id, exc)
                self._stop_on_store(exc)
                return
            except Exception as exc:  # a bug in one case: this case fails, visibly (logged), the rest go on
                log.exception("batch item %d (case %d) failed", position, case_id)
                try:
                    self._finish_item(position, state=FAILED, error=getattr(exc, "user_message", None) or str(exc))
                except StoreError as store_exc:
                    self._stop_on_store(store_exc)
                    return

    def _stop_on_store(self, exc: StoreError) -> None:
        """Stop the batch honestly: what could not be stored stays pending, to be resumed."""
        if self._fatal is None:
            self._fatal = (
                f"{exc.user_message} The batch stopped; the cases not yet stored stay pending and continue "
                "when the batch is resumed."
            )

    async def _one(self, position: int, case_id: int, client: VlmClient, limiter: RateLimiter) -> None:
        try:
            case = self.store.case(case_id)
            profile = self.profile_resolver(case)
            loop = asyncio.get_running_loop()
            prompt = await loop.run_in_executor(
                self._composer, self.service.compose_prompt, case, profile, self.switches
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a case that cannot be read or rendered fails alone
            message = getattr(exc, "user_message", None) or str(exc) or type(exc).__name__
            self._finish_item(position, state=FAILED, error=message)
            return
        key = cache_key(self.endpoint, prompt)
        row = self.store.cached_answer(key)
        asker = RetryingClient(client, limiter, self.limits, self._count_request)
        if row is not None:
            # an extraction turn stored with the cached answer is reused too; one missing is asked
            turn = self.store.extraction_of(row.id)
            cached = CachedClient(
                answer_from_row(row),
                answer_from_row(turn) if turn else None,
                fallback=asker,
                source_answer_id=row.id,
            )
            verdict = await self.service.inspect_with_vlm(case, prompt, self.endpoint, client=cached)
            assert verdict.answer_id is not None
            self.store.set_answer_status(verdict.answer_id, "cached")
            prompt_tokens, completion_tokens = asker.usage() if asker.answers else (None, None)
            self._finish_item(
                position,
                state=CACHED,
                verdict_id=verdict.id,
                model=row.model,
                attempts=asker.attempts,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
            )
            return
        try:
            verdict = await self.service.inspect_with_vlm(case, prompt, self.endpoint, client=asker)
        except InspectionError as exc:
            cause = exc.__cause__
            if isinstance(cause, VlmError) and is_fatal(cause):
                if self._fatal is None:
                    self._fatal = cause.user_message
                return  # left pending: resumable once the settings are fixed
            self._finish_item(position, state=FAILED, error=str(exc), attempts=asker.attempts)
            return
        assert verdict.answer_id is not None and asker.answer is not None
        answer = asker.answer
        prompt_tokens, completion_tokens = asker.usage()  # an extraction turn's tokens count too
        self._finish_item(
            position,
            key,
            verdict.answer_id,
            state=DONE,
            verdict_id=verdict.id,
            model=answer.model or self.endpoint.model,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            attempts=asker.attempts,
        )


def create_batch(
    service: InspectionService,
    case_ids: list[int],
    endpoint: EndpointSettings,
    limits: BatchLimits,
    switches: PromptSwitches | None = None,
) -> int:
    """Store a new batch (all items pending); nothing is sent yet. The prompt variant is stored with
    the limits (``prompt_switches``) so a resumed A/B batch asks what it asked before."""
    settings = limits.to_dict()
    if switches is not None:
        settings["prompt_switches"] = asdict(switches)
    return service.store.create_batch(list(case_ids), asdict(endpoint), settings)


async def run_batch(
    service: InspectionService,
    case_ids: list[int],
    profile_resolver: ProfileResolver,
    endpoint: EndpointSettings,
    limits: BatchLimits | None = None,
    progress_callback: ProgressCallback | None = None,
    is_cancelled: Callable[[], bool] | None = None,
    prices: PriceTable | None = None,
    api_key: str | None = None,
    switches: PromptSwitches | None = None,
) -> BatchProgress:
    """Create a batch for `case_ids` and run it. Returns the final progress (status, counts, message).
    `switches` choose the prompt variant (an A/B comparison runs two batches that differ in them or
    in the endpoint's model)."""
    if not endpoint.configured:
        raise InspectionError("Batch inspection with a VLM needs an endpoint address and model in Settings.")
    limits = limits or BatchLimits()
    batch_id = create_batch(service, case_ids, endpoint, limits, switches)
    # a new batch runs as any stored one does (its variant is read back from what was just stored)
    return await resume_batch(
        service, batch_id, profile_resolver, endpoint, limits, progress_callback, is_cancelled, prices, api_key
    )


async def resume_batch(
    service: InspectionService,
    batch_id: int,
    profile_resolver: ProfileResolver,
    endpoint: EndpointSettings | None = None,
    limits: BatchLimits | None = None,
    progress_callback: ProgressCallback | None = None,
    is_cancelled: Callable[[], bool] | None = None,
    prices: PriceTable | None = None,
    api_key: str | None = None,
) -> BatchProgress:
    """Continue the pending items of a stored batch, with its stored settings unless others are given
    (e.g. a corrected key or address after the batch stopped on it)."""
    stored = service.store.batch(batch_id)
    endpoint = endpoint or EndpointSettings.from_dict(stored.endpoint)
    limits = limits or BatchLimits.from_dict(stored.limits)
    switches_data = stored.limits.get("prompt_switches")
    switches = PromptSwitches.from_dict(switches_data) if isinstance(switches_data, dict) else None
    runner = BatchRunner(
        service,
        batch_id,
        profile_resolver,
        endpoint,
        limits,
        prices,
        progress_callback,
        is_cancelled,
        api_key,
        switches,
    )
    return await runner.run()
