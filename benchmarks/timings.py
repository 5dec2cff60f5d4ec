"""Latencies that the tests used to bound with wall-clock asserts, printed here instead.

    .venv/bin/python benchmarks/timings.py [--runs 5]
    xvfb-run -a .venv/bin/python benchmarks/timings.py     # with Qt: the worker's cancel too

A test on a loaded CI machine cannot tell "slow" from "broken" by the clock, so the tests keep the
behaviour (the cancel happened before the reply, the reader answered while the decoder held its
lock, the requests overlapped at the server) and this script prints how long each took, next to
the bound the test once asserted. Nothing here fails on a slow figure: read them.

The VLM is the loopback OpenAI-compatible server from tests/ (127.0.0.1, scripted delays).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "xcb" if os.environ.get("DISPLAY") else "offscreen")


def answer_corpus() -> float:
    """tests/test_answers.py: the whole own answer corpus read (was < 0.5 s)."""
    import json

    from inspector.vlm.answers import parse_answer

    corpus = json.loads((ROOT / "tests" / "answer_corpus.json").read_text(encoding="utf-8"))
    started = time.perf_counter()
    for item in corpus:
        parse_answer(item["text"])
    return time.perf_counter() - started


def _client_helpers():
    from tests.test_vlm_client import KEY, _endpoint, _prompt

    return KEY, _endpoint, _prompt


def vlm_timeout() -> float:
    """tests/test_vlm_client.py: a 0.4-s timeout against a 3-s reply, until the error (was < 2.5 s)."""
    from inspector.vlm.client import VlmClient, VlmError
    from tests.loopback_vlm import LoopbackVLM

    key, endpoint, prompt = _client_helpers()

    async def run() -> None:
        async with VlmClient(endpoint(server, timeout_s=0.4), key) as client:
            await client.ask(prompt())

    with LoopbackVLM() as server:
        server.enqueue(delay_s=3)
        started = time.perf_counter()
        try:
            asyncio.run(run())
        except VlmError as error:
            assert error.kind == "timeout", error
        else:
            raise AssertionError("no timeout")
        return time.perf_counter() - started


def vlm_task_cancel() -> float:
    """tests/test_vlm_client.py: cancelling the task of an in-flight request (was < 0.5 s)."""
    from inspector.vlm.client import VlmClient
    from tests.loopback_vlm import LoopbackVLM

    key, endpoint, prompt = _client_helpers()

    async def run(server) -> float:
        async with VlmClient(endpoint(server), key) as client:
            task = asyncio.create_task(client.ask(prompt()))
            while not server.chat_requests:
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.1)
            started = time.perf_counter()
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            return time.perf_counter() - started

    with LoopbackVLM() as server:
        server.enqueue(delay_s=5)
        return asyncio.run(run(server))


def vlm_thread_cancel() -> float:
    """tests/test_vlm_client.py: a GUI thread cancels a worker loop's request, the next is answered (was < 1 s)."""
    from inspector.vlm.client import VlmClient
    from tests.loopback_vlm import LoopbackVLM

    key, endpoint, prompt = _client_helpers()
    loop = asyncio.new_event_loop()
    worker = threading.Thread(target=loop.run_forever, daemon=True)
    worker.start()
    with LoopbackVLM() as server:
        client = VlmClient(endpoint(server), key)
        try:
            server.enqueue(delay_s=5)
            future = asyncio.run_coroutine_threadsafe(client.ask(prompt()), loop)
            deadline = time.monotonic() + 5
            while not server.chat_requests and time.monotonic() < deadline:
                time.sleep(0.02)
            started = time.perf_counter()
            future.cancel()
            asyncio.run_coroutine_threadsafe(client.ask(prompt()), loop).result(timeout=5)
            return time.perf_counter() - started
        finally:
            asyncio.run_coroutine_threadsafe(client.aclose(), loop).result(timeout=5)
            loop.call_soon_threadsafe(loop.stop)
            worker.join(timeout=5)
            loop.close()


def vlm_concurrent() -> float:
    """tests/test_vlm_client.py: three 0.6-s requests at once, all answered (was < 1.5 s; 1.8 s one by one)."""
    from inspector.vlm.client import VlmClient
    from tests.loopback_vlm import LoopbackVLM

    key, endpoint, prompt = _client_helpers()

    async def run(server) -> None:
        async with VlmClient(endpoint(server), key) as client:
            await asyncio.gather(*(client.ask(prompt()) for _ in range(3)))

    with LoopbackVLM() as server:
        for _ in range(3):
            server.enqueue(delay_s=0.6)
        started = time.perf_counter()
        asyncio.run(run(server))
        return time.perf_counter() - started


def video_cached_behind_decoder() -> float:
    """tests/test_video_modality.py: `cached` while a worker holds the decoder (was < 0.5 s)."""
    from inspector.plugins import discover
    from tests.test_video_modality import write_video

    video = discover().modality("video")
    with tempfile.TemporaryDirectory() as folder:
        source = video.read(write_video(Path(folder) / "clip.mp4", frames=30)).data
        source.frame(3)
        decoding, release = threading.Event(), threading.Event()

        def long_decode() -> None:
            with source._lock:
                decoding.set()
                release.wait(5)

        worker = threading.Thread(target=long_decode)
        worker.start()
        decoding.wait(5)
        started = time.perf_counter()
        try:
            source.cached(3)
            source.cached(20)
            return time.perf_counter() - started
        finally:
            release.set()
            worker.join()


def rate_limiter() -> tuple[float, float]:
    """tests/test_batch.py: wait for 50 tokens at 100 tokens/s (was 0.4-1.0 s), then after settle (was < 0.1 s)."""
    from inspector.vlm.ratelimit import BatchLimits, RateLimiter

    async def scenario() -> tuple[float, float]:
        limiter = RateLimiter(BatchLimits(concurrency=4, tokens_per_minute=6000))
        async with limiter.slot(6000):
            pass
        started = time.monotonic()
        async with limiter.slot(50):
            pass
        waited = time.monotonic() - started
        limiter.settle(6000, 1000)
        started = time.monotonic()
        async with limiter.slot(4000):
            pass
        return waited, time.monotonic() - started

    return asyncio.run(scenario())


def worker_cancel() -> float | None:
    """tests/test_workers.py: cancelling a job that awaits (was < 1 s); the window's Esc goes this way
    (tests/test_gui_workflow.py once bounded Esc to the cancelled state at 2 s). None without Qt."""
    try:
        from PySide6.QtCore import QCoreApplication, QEventLoop, QTimer

        from views.workers import AsyncRunner
    except ImportError:
        return None
    app = QCoreApplication.instance() or QCoreApplication([])
    runner = AsyncRunner()
    runner.start_and_wait()
    try:

        async def slow(job) -> None:
            await asyncio.sleep(30)

        job = runner.submit("slow", slow)
        loop = QEventLoop()
        QTimer.singleShot(100, loop.quit)
        loop.exec()
        done = QEventLoop()
        runner.cancelled_job.connect(lambda _id: done.quit())
        QTimer.singleShot(5000, done.quit)
        started = time.perf_counter()
        job.cancel()
        done.exec()
        return time.perf_counter() - started
    finally:
        runner.shutdown()
        del app


def _figures(name: str, bound: str, measure: Callable[[], float | None], runs: int) -> None:
    values = [measure() for _ in range(runs)]
    if any(v is None for v in values):
        print(f"{name:<48} (skipped: Qt not importable)")
        return
    print(f"{name:<48} median {statistics.median(values):7.3f} s   max {max(values):7.3f} s   (test bound was {bound})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    runs = max(1, args.runs)
    print(f"{runs} runs each")
    _figures("answer corpus read", "< 0.5 s", answer_corpus, runs)
    _figures("VLM timeout 0.4 s reported", "< 2.5 s", vlm_timeout, runs)
    _figures("VLM task cancel returns", "< 0.5 s", vlm_task_cancel, runs)
    _figures("VLM cancel from a thread + next answer", "< 1.0 s", vlm_thread_cancel, runs)
    _figures("VLM three 0.6-s requests at once", "< 1.5 s", vlm_concurrent, runs)
    _figures("video cached() behind a decoder", "< 0.5 s", video_cached_behind_decoder, runs)
    limiter = [rate_limiter() for _ in range(runs)]
    _figures("rate limiter: wait for 50 tokens", "0.4-1.0 s", iter([w for w, _ in limiter]).__next__, runs)
    _figures("rate limiter: after settle", "< 0.1 s", iter([a for _, a in limiter]).__next__, runs)
    _figures("worker: cancel an awaiting job (Esc)", "< 1.0 s", worker_cancel, runs)


if __name__ == "__main__":
    main()
