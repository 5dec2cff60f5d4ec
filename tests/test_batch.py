"""Batch inspection against the loopback OpenAI-compatible server, with the real openai client.

A hosted model cannot be used in these tests: the test machine has no network and no API key, and a
hosted service cannot be made to answer 429, 500 or time out on cue. The loopback server
(tests/loopback_vlm.py) is a real HTTP server speaking the same protocol, scripted per request.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time

import pytest
from PIL import Image

from inspector.inspection import InspectionService
from inspector.model import Profile
from inspector.settings import EndpointSettings
from inspector.store import ProjectStore
from inspector.vlm.batch import BatchLimits, Price, PriceTable, resume_batch, run_batch
from inspector.vlm.client import VlmError
from inspector.vlm.ratelimit import RateLimiter, retry_delay
from tests.conftest import textured_image
from tests.loopback_vlm import DEFAULT_REPLY, LoopbackVLM


@pytest.fixture
def project(tmp_path, registry):
    """A project with 8 small image cases and one profile."""
    store = ProjectStore(tmp_path / "p.anomalens")
    service = InspectionService(store, registry)
    profile = store.save_profile(Profile(name="Tile", class_name="tile", normal_standards="Even surface."))
    ids = []
    for i in range(8):
        path = tmp_path / f"c{i}.png"
        Image.fromarray(textured_image(i, (24, 32))).save(path)
        case, _ = service.import_file(path, profile.id)
        ids.append(case.id)
    yield service, ids, (lambda case: profile)
    service.close()
    store.close()


class Timed:
    """A responder that waits `latency_s` and records when each request was handled."""

    def __init__(self, latency_s: float = 0.0) -> None:
        self.latency_s = latency_s
        self.spans: list[tuple[float, float]] = []
        self._lock = threading.Lock()

    def __call__(self, request) -> str:
        start = time.monotonic()
        time.sleep(self.latency_s)
        with self._lock:
            self.spans.append((start, time.monotonic()))
        return DEFAULT_REPLY

    def max_concurrent(self) -> int:
        events = sorted([(s, 1) for s, _ in self.spans] + [(e, -1) for _, e in self.spans])
        level = peak = 0
        for _, delta in events:
            level += delta
            peak = max(peak, level)
        return peak


def _endpoint(server: LoopbackVLM, **kw) -> EndpointSettings:
    return EndpointSettings(base_url=server.base_url, model="loopback-vlm", api_key_env="", timeout_s=5, **kw)


def _fast(**kw) -> BatchLimits:
    return BatchLimits(**{"backoff_base_s": 0.05, "backoff_cap_s": 0.2, **kw})


def _run(service, ids, resolve, endpoint, limits, **kw):
    return asyncio.run(run_batch(service, ids, resolve, endpoint, limits, api_key="k", **kw))


def test_concurrency_limit_is_respected_and_all_cases_get_verdicts(project):
    service, ids, resolve = project
    timed = Timed(0.15)
    with LoopbackVLM(responder=timed) as server:
        started = time.monotonic()
        progress = _run(service, ids, resolve, _endpoint(server), _fast(concurrency=3))
        elapsed = time.monotonic() - started
    assert progress.status == "done" and progress.done == 8 and progress.failed == 0
    assert timed.max_concurrent() == 3
    assert elapsed >= 3 * 0.15  # 8 requests, 3 at a time: at least 3 rounds
    assert all(service.store.latest_verdict(i) is not None for i in ids)


def test_requests_per_minute_spaces_request_starts(project):
    service, ids, resolve = project
    timed = Timed(0.0)
    with LoopbackVLM(responder=timed) as server:
        _run(service, ids[:5], resolve, _endpoint(server), _fast(concurrency=5, requests_per_minute=600))
    starts = sorted(s for s, _ in timed.spans)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    # 600/min: one start every 0.1 s (the margins absorb scheduling jitter between client and server)
    assert len(starts) == 5 and starts[-1] - starts[0] >= 0.35 and min(gaps) >= 0.05


def test_429_with_retry_after_is_waited_for(project):
    service, ids, resolve = project
    timed = Timed(0.0)
    with LoopbackVLM(responder=timed) as server:
        server.enqueue(status=429, retry_after="1")
        started = time.monotonic()
        progress = _run(service, ids[:1], resolve, _endpoint(server), _fast(concurrency=1))
        elapsed = time.monotonic() - started
        statuses = [r.status for r in server.chat_requests]
    assert progress.done == 1 and progress.requests == 2 and statuses == [429, 200]
    assert elapsed >= 1.0  # the jittered back-off (<= 0.2 s here) would have been shorter


def test_500_then_success(project):
    service, ids, resolve = project
    with LoopbackVLM() as server:
        server.enqueue(status=500)
        server.enqueue(status=503)
        progress = _run(service, ids[:1], resolve, _endpoint(server), _fast(concurrency=1))
        statuses = [r.status for r in server.chat_requests]
    assert progress.done == 1 and statuses == [500, 503, 200]
    item = service.store.batch_items(progress.batch_id)[0]
    assert item.attempts == 3 and item.state == "done"


def test_timeout_then_success(project):
    service, ids, resolve = project
    with LoopbackVLM() as server:
        server.enqueue(delay_s=2.0)
        quick = EndpointSettings(base_url=server.base_url, model="loopback-vlm", api_key_env="", timeout_s=0.3)
        progress = _run(service, ids[:1], resolve, quick, _fast(concurrency=1))
        requests = len(server.chat_requests)
    assert progress.done == 1 and progress.requests == 2 and requests == 2


def test_401_stops_the_batch_with_one_message_and_leaves_cases_pending(project):
    service, ids, resolve = project
    with LoopbackVLM(require_key="right-key") as server:
        progress = _run(service, ids, resolve, _endpoint(server), _fast(concurrency=2))
        requests = len(server.chat_requests)
    assert progress.status == "stopped" and "API key" in progress.message and "401" in progress.message
    assert progress.failed == 0 and progress.pending == 8
    assert requests <= 4  # the in-flight ones at most, not one per case
    assert service.store.batch(progress.batch_id).status == "stopped"
    assert len(service.store.unfinished_batches()) == 1


def test_fatal_and_retryable_errors_are_told_apart():
    limits = BatchLimits(max_attempts=3, backoff_base_s=1, backoff_cap_s=4)
    assert retry_delay(VlmError("bad_request", "x", status_code=400), 1, limits) is None
    assert retry_delay(VlmError("rate_limited", "x", retry_after=7, status_code=429), 1, limits) == 7
    assert retry_delay(VlmError("auth", "x", status_code=401), 1, limits) is None
    delays = [retry_delay(VlmError("timeout", "x"), 2, limits) for _ in range(200)]
    assert all(0 <= d <= 2 for d in delays) and max(delays) > 1  # full jitter over [0, base*2]
    assert retry_delay(VlmError("timeout", "x"), 3, limits) is None  # attempts exhausted


def test_cache_hit_makes_no_request_and_gives_identical_verdicts(project):
    service, ids, resolve = project
    with LoopbackVLM() as server:
        first = _run(service, ids, resolve, _endpoint(server), _fast(concurrency=4))
        n_first = len(server.chat_requests)
        before = {i: service.store.latest_verdict(i) for i in ids}
        again = _run(service, ids, resolve, _endpoint(server), _fast(concurrency=4))
        n_again = len(server.chat_requests) - n_first
    assert first.done == 8 and n_first == 8
    assert n_again == 0 and again.requests == 0 and again.cached == 8 and again.done == 8
    for i in ids:
        new = service.store.latest_verdict(i)
        assert (new.anomalous, new.score, new.explanation) == (
            before[i].anomalous,
            before[i].score,
            before[i].explanation,
        )
        assert service.store.answers(i)[-1].status == "cached"


def test_other_model_or_parameters_miss_the_cache(project):
    service, ids, resolve = project
    with LoopbackVLM(models=("loopback-vlm", "other")) as server:
        _run(service, ids[:2], resolve, _endpoint(server), _fast())
        _run(service, ids[:2], resolve, _endpoint(server, temperature=0.5), _fast())
        other = EndpointSettings(base_url=server.base_url, model="other", api_key_env="", timeout_s=5)
        _run(service, ids[:2], resolve, other, _fast())
        _run(service, ids[:2], resolve, _endpoint(server, max_tokens=100), _fast())
        assert len(server.chat_requests) == 8


def test_errors_are_not_cached(project):
    service, ids, resolve = project
    with LoopbackVLM(responder=lambda request: "") as server:  # empty answers are errors
        first = _run(service, ids[:1], resolve, _endpoint(server), _fast(max_attempts=1))
        server.responder = lambda request: DEFAULT_REPLY
        second = _run(service, ids[:1], resolve, _endpoint(server), _fast())
    assert first.failed == 1 and second.done == 1 and second.cached == 0


def test_resume_after_cancel_continues_only_pending_cases(project):
    service, ids, resolve = project
    timed = Timed(0.1)
    with LoopbackVLM(responder=timed) as server:
        seen: list[int] = []

        def cancel_after_three() -> bool:
            return bool(seen) and seen[-1] >= 3

        first = _run(
            service,
            ids,
            resolve,
            _endpoint(server),
            _fast(concurrency=1),
            progress_callback=lambda p: seen.append(p.done),
            is_cancelled=cancel_after_three,
        )
        n_first = len(server.chat_requests)
        assert first.status == "cancelled" and 3 <= first.done < 8 and first.pending == 8 - first.done
        assert service.store.unfinished_batches() == [first.batch_id]
        resumed = asyncio.run(resume_batch(service, first.batch_id, resolve, api_key="k"))
        n_resumed = len(server.chat_requests) - n_first
    done_before = first.done
    assert resumed.status == "done" and resumed.done == 8 and resumed.pending == 0
    # only the pending cases (plus at most the one abandoned in flight) were asked again
    assert n_resumed == 8 - done_before
    assert service.store.unfinished_batches() == []
    assert all(item.state == "done" for item in service.store.batch_items(first.batch_id))


def test_cost_and_token_totals(project):
    service, ids, resolve = project
    with LoopbackVLM() as server:
        prices = PriceTable({"loopback-vlm": Price(input_per_1k=0.5, output_per_1k=2.0)})
        priced = _run(service, ids[:3], resolve, _endpoint(server), _fast(), prices=prices)
        unknown = _run(service, ids[3:5], resolve, _endpoint(server), _fast(), prices=PriceTable())
    answers = [service.store.answers(i)[-1] for i in ids[:3]]
    tokens_in = sum(a.prompt_tokens for a in answers)
    tokens_out = sum(a.completion_tokens for a in answers)
    assert tokens_in > 0 and tokens_out > 0
    assert (priced.tokens_in, priced.tokens_out) == (tokens_in, tokens_out)
    assert priced.cost == pytest.approx(tokens_in / 1000 * 0.5 + tokens_out / 1000 * 2.0)
    assert unknown.cost is None and unknown.tokens_in > 0  # unknown price: unknown cost, not zero
    assert priced.eta_s == 0 or priced.eta_s is None or priced.eta_s >= 0


def test_tokens_per_minute_waits_for_tokens_and_settles_with_usage(monkeypatch):
    sleeps: list[float] = []
    real_sleep = asyncio.sleep

    async def counted_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        await real_sleep(seconds)

    async def scenario() -> tuple[float, list[float], list[float]]:
        limiter = RateLimiter(BatchLimits(concurrency=4, tokens_per_minute=6000))  # 100 tokens/s
        async with limiter.slot(6000):  # the whole bucket
            pass
        started = time.monotonic()
        async with limiter.slot(50):  # waits for 50 tokens to refill: 0.5 s
            pass
        waited, refill_sleeps = time.monotonic() - started, sleeps.copy()
        sleeps.clear()
        limiter.settle(6000, 1000)  # the first request really used 1000: 5000 come back
        async with limiter.slot(4000):
            pass
        return waited, refill_sleeps, sleeps.copy()

    monkeypatch.setattr("inspector.vlm.ratelimit.asyncio.sleep", counted_sleep)
    waited, refill_sleeps, after_settle_sleeps = asyncio.run(scenario())
    assert waited >= 0.4
    assert sum(refill_sleeps) <= 0.5 + 1e-3  # it asked to wait for the 50 tokens only (timing: benchmarks/timings.py)
    assert after_settle_sleeps == []  # the settled tokens were there at once


def test_main_batch_mode_uses_the_engine(tmp_path, registry, monkeypatch, capsys):
    import main
    from inspector import settings as settings_module

    store = ProjectStore(tmp_path / "m.anomalens")
    service = InspectionService(store, registry)
    profile = store.save_profile(Profile(name="Tile", class_name="tile"))
    for i in range(3):
        path = tmp_path / f"m{i}.png"
        Image.fromarray(textured_image(i, (24, 32))).save(path)
        service.import_file(path, profile.id)
    service.close()
    store.close()
    monkeypatch.setenv("ANOMALENS_TEST_KEY", "right-key")
    with LoopbackVLM(require_key="right-key") as server:
        endpoint = EndpointSettings(base_url=server.base_url, model="loopback-vlm", api_key_env="ANOMALENS_TEST_KEY")
        monkeypatch.setattr(settings_module, "load_settings", lambda: settings_module.AppSettings(endpoint=endpoint))
        assert main.main(["--batch", str(tmp_path / "m.anomalens"), "--concurrency", "2"]) == 0
        assert len(server.chat_requests) == 3
    out = capsys.readouterr().out
    assert out.count("\tnormal\t") == 3


def test_a_resumed_batch_asks_with_its_own_prompt_variant(project):
    """An A/B batch interrupted and resumed must not fall back to the default prompt."""
    from inspector.prompt import PromptSwitches

    service, ids, resolve = project
    service.add_reference_array(resolve(None).id, "ref", textured_image(40, (24, 32)))
    # 0.2 s per answer: the cancel (polled every 50 ms) lands long before all eight cases are done
    # (an instant server once finished the whole batch between two polls).
    with LoopbackVLM(responder=Timed(0.2)) as server:
        seen: list[int] = []
        zero_shot = PromptSwitches(references=False, max_references=0, standards=False)
        first = _run(
            service,
            ids,
            resolve,
            _endpoint(server),
            _fast(concurrency=1),
            switches=zero_shot,
            progress_callback=lambda p: seen.append(p.done),
            is_cancelled=lambda: bool(seen) and seen[-1] >= 2,
        )
        assert first.status == "cancelled"
        asyncio.run(resume_batch(service, first.batch_id, resolve, api_key="k"))
        requests = server.chat_requests
    assert len(requests) >= len(ids)
    for request in requests:
        images = [
            part
            for message in request.body["messages"]
            if isinstance(message["content"], list)
            for part in message["content"]
            if part.get("type") == "image_url"
        ]
        text = request.body["messages"][1]["content"][0]["text"]
        assert len(images) == 1 and "Even surface" not in text  # no reference, no standards: the variant
