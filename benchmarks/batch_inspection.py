"""Benchmark batch inspection against the loopback VLM with a fixed simulated latency.

The VLM is the loopback OpenAI-compatible server from tests/ (a real HTTP server on 127.0.0.1,
driven by the real openai client): a hosted model cannot be used here (no network, no API key)
and its latency would not be fixed. Every request takes exactly `--latency` seconds on the server.

Protocol: `--cases` tiny PNG cases (generated, deterministic) in a fresh project; one batch at
`--concurrency`; the ideal time is cases x latency / concurrency; the ratio must be <= 1.2. The
one-at-a-time run (the same engine at concurrency 1) uses a separate project with the first
`--sequential` cases (all of them with `--sequential 0`) and is scaled to the full count. Finally
the same batch is run again: every answer must come from the response cache (0 requests).
The server runs in a child process.

Run: ``.venv/bin/python benchmarks/batch_inspection.py [--cases 500] [--concurrency 16] [--latency 0.2]``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from inspector.inspection import InspectionService  # noqa: E402
from inspector.model import Profile  # noqa: E402
from inspector.plugins import discover  # noqa: E402
from inspector.settings import EndpointSettings  # noqa: E402
from inspector.store import ProjectStore  # noqa: E402
from inspector.vlm.batch import BatchLimits, run_batch  # noqa: E402
from tests.loopback_vlm import DEFAULT_REPLY, LoopbackVLM, _Handler  # noqa: E402


def serve(latency_s: float, conn) -> None:
    """The loopback server, in its own process: a model server does not share our interpreter's
    GIL, and request validation (JSON, base64, PNG decoding) in server threads would otherwise
    slow the engine being measured. Answers "count" with the number of chat requests so far."""
    # Python's http.server writes a reply's headers and body in two small TCP writes; with Nagle's
    # algorithm on, the second waits for the client's delayed ACK (~40 ms on Linux), adding 40 ms
    # to every request. Model servers (uvicorn under vLLM, Ollama's Go server) set TCP_NODELAY.
    _Handler.disable_nagle_algorithm = True

    def slow(request) -> str:
        time.sleep(latency_s)
        return DEFAULT_REPLY

    with LoopbackVLM(responder=slow) as server:
        conn.send(server.base_url)
        while conn.recv() == "count":
            conn.send(len(server.chat_requests))


class RemoteServer:
    def __init__(self, latency_s: float) -> None:
        self._conn, child = multiprocessing.Pipe()
        self._process = multiprocessing.get_context("spawn").Process(target=serve, args=(latency_s, child), daemon=True)
        self._process.start()
        self.base_url: str = self._conn.recv()

    def chat_requests(self) -> int:
        self._conn.send("count")
        return self._conn.recv()

    def stop(self) -> None:
        self._conn.send("stop")
        self._process.join(timeout=10)


def make_pngs(folder: Path, count: int) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = folder / f"case{i:04d}.png"
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def make_project(path: Path, pngs: list[Path], registry) -> tuple[InspectionService, list[int], Profile]:
    store = ProjectStore(path)
    service = InspectionService(store, registry)
    profile = store.save_profile(Profile(name="Tile", class_name="tile", normal_standards="Even surface."))
    ids = []
    for png in pngs:
        case, _ = service.import_file(png, profile.id)
        ids.append(case.id)
    return service, ids, profile


def timed_batch(
    service: InspectionService, ids: list[int], profile: Profile, endpoint: EndpointSettings, concurrency: int
) -> tuple[float, float, object]:
    limits = BatchLimits(concurrency=concurrency)
    started, cpu = time.perf_counter(), time.process_time()
    progress = asyncio.run(run_batch(service, ids, lambda case: profile, endpoint, limits, api_key="none"))
    return time.perf_counter() - started, time.process_time() - cpu, progress


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--sequential", type=int, default=50, help="cases in the one-at-a-time run (0: all)")
    args = parser.parse_args()

    server = RemoteServer(args.latency)
    registry = discover()
    with tempfile.TemporaryDirectory(prefix="anomalens-batch-bench-") as tmp:
        tmp_path = Path(tmp)
        (tmp_path / "cases").mkdir()
        pngs = make_pngs(tmp_path / "cases", args.cases)
        endpoint = EndpointSettings(base_url=server.base_url, model="loopback-vlm", api_key_env="", timeout_s=30)
        service, ids, profile = make_project(tmp_path / "batch.anomalens", pngs, registry)

        ideal = args.cases * args.latency / args.concurrency
        print(f"cases {args.cases}, latency {args.latency:g} s, concurrency {args.concurrency}")
        concurrent_s, cpu_s, progress = timed_batch(service, ids, profile, endpoint, args.concurrency)
        ratio = concurrent_s / ideal
        print(f"ideal (cases x latency / concurrency): {ideal:.2f} s")
        print(
            f"concurrent batch: {concurrent_s:.2f} s, ratio {ratio:.3f} (target <= 1.2); "
            f"done {progress.done}, failed {progress.failed}, requests {progress.requests}, CPU {cpu_s:.2f} s"
        )

        n_seq = args.sequential or args.cases
        seq_service, seq_ids, seq_profile = make_project(tmp_path / "sequential.anomalens", pngs[:n_seq], registry)
        before = server.chat_requests()
        seq_s, _, _ = timed_batch(seq_service, seq_ids, seq_profile, endpoint, 1)
        scaled = seq_s * args.cases / n_seq
        how = "all cases" if n_seq == args.cases else f"first {n_seq} cases, scaled to {args.cases}"
        print(
            f"one at a time ({how}): {seq_s:.2f} s measured, {scaled:.2f} s for {args.cases} cases; "
            f"speed-up {scaled / concurrent_s:.1f}x; requests {server.chat_requests() - before}"
        )

        before = server.chat_requests()
        rerun_s, _, rerun = timed_batch(service, ids, profile, endpoint, args.concurrency)
        requests = server.chat_requests() - before
        print(
            f"identical re-run: {rerun_s:.2f} s, HTTP requests {requests} (must be 0), "
            f"cached {rerun.cached} of {rerun.total}"
        )
        for s in (service, seq_service):
            s.close()
            s.store.close()
        ok = ratio <= 1.2 and requests == 0 and progress.done == args.cases and rerun.cached == args.cases
        server.stop()
        print("PASS" if ok else "FAIL")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
