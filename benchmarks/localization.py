"""Benchmark localization on real magnetic tiles: heat maps, region proposals and marks.

Protocol (deterministic, the references as in benchmarks/offline_detector.py):

* The MT_Free file names are sorted and permuted with numpy's ``default_rng(seed)`` (seed 0);
  the first 16 are the references, the next ``--normals`` (100 by default) the normal test
  images. The defect test images are all MT_Blowhole/Break/Crack/Fray/Uneven images (392), each
  with its mask ``<stem>.png`` (white = defect; 4 Uneven masks are empty, so those images only
  add normal pixels).
* Heat maps of the offline detector: image AUROC (raw scores), pixel AUROC (every 2nd pixel in
  each direction, pooled) and AUPRO up to 30 % FPR (every 2nd pixel; see
  inspector/localization/metrics.py), and the time per image.
* Proposals: for every method `inspector.localization.proposals.proposal_methods` offers here
  (and SAM when ``--sam-checkpoint`` is given), on the defect images: the share of ground-truth
  defect components (8-connected) hit by one of the top-5 proposals (IoU >= 0.1, see
  `proposal_recall`), the time per image, and the time `render_marks` takes to draw the marks.
* Selected marks: region precision and recall (`region_precision_recall`) of the hybrid marks
  selected by the offline detector (heat peak >= 0.5), or by a VLM with ``--endpoint URL
  --model NAME`` (the app's Set-of-Mark prompt through the app's client), over all test images.

Run: ``.venv/bin/python benchmarks/localization.py [--data DIR] [--limit N] [--normals 100]``
(``--limit N`` keeps the first N images of each defect class and N normals, for a quick look).
Prints figures, asserts nothing. The default run took about 6 minutes on two CPU cores (heat
maps 3.5 min, the three classical proposal methods with marks 2 min; SAM would add far more).
``--deep-map-only`` measures the heat map of detector version offline-1 for comparison.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.offline_detector import TILE_DEFECTS, choose, images_in, load_mask, load_rgb  # noqa: E402
from inspector.metrics import (  # noqa: E402
    aupro,
    auroc,
    pixel_auroc,
    proposal_recall,
)

TOP_K = 5


def _ms(seconds: list[float]) -> str:
    return f"{np.mean(seconds) * 1000:.0f} ms mean, {np.median(seconds) * 1000:.0f} ms median"


def heatmaps(refs: list[Path], tests: list[Path], is_defect: list[bool], deep_only: bool = False) -> list[np.ndarray]:
    """Fit on the references, score every test image; print the heat-map figures."""
    from inspector.detector.offline import OfflineDetector

    det = OfflineDetector(loc_block=None) if deep_only else OfflineDetector()
    t0 = time.perf_counter()
    det.fit([load_rgb(p) for p in refs])
    print(f"fit on {len(refs)} references: {time.perf_counter() - t0:.1f} s")
    maps, masks, raws, times = [], [], [], []
    for p, defect in zip(tests, is_defect, strict=True):
        image = load_rgb(p)
        t0 = time.perf_counter()
        res = det.score(image)
        times.append(time.perf_counter() - t0)
        maps.append(res.heatmap)
        raws.append(res.raw_score)
        masks.append(load_mask(p, image.shape[:2]) if defect else np.zeros(image.shape[:2], bool))
    sub_maps = [m[::2, ::2] for m in maps]
    sub_masks = [m[::2, ::2] for m in masks]
    print(f"heat map (score + map): {_ms(times)} per image over {len(tests)}")
    print(f"image AUROC: {auroc(np.array(raws), np.array(is_defect)):.4f}")
    print(f"pixel AUROC: {pixel_auroc(sub_maps, sub_masks, subsample=1):.4f}")
    print(f"AUPRO@30%FPR: {aupro(sub_maps, sub_masks, fpr_limit=0.3):.4f}")
    return maps


def _load_methods(heatmap_available: bool, sam_checkpoint: Path | None, sam_model: str) -> dict[str, object]:
    """The proposal methods that can run here; prints why any is skipped."""
    try:
        from inspector.localization.proposals import proposal_methods
    except ImportError as exc:
        print(f"proposals skipped: inspector.localization.proposals is not available ({exc})")
        return {}
    methods: dict[str, object] = dict(proposal_methods(heatmap_available))
    if sam_checkpoint is None:
        print("SAM skipped: no --sam-checkpoint given (no checkpoint is shipped or downloaded)")
    else:
        try:
            from inspector.localization.sam import SamProposals, SamUnavailableError, load_sam
        except ImportError as exc:
            print(f"SAM skipped: inspector.localization.sam is not available ({exc})")
        else:
            try:
                methods["sam"] = SamProposals(load_sam(sam_model, sam_checkpoint))
            except SamUnavailableError as exc:
                print(f"SAM skipped: {exc}")
    return methods


def proposals(defects: list[Path], maps: list[np.ndarray] | None, sam_checkpoint: Path | None, sam_model: str) -> None:
    """Top-k recall of defect components and timings for each available proposal method."""
    methods = _load_methods(maps is not None, sam_checkpoint, sam_model)
    if not methods:
        return
    try:
        from inspector.localization.marks import render_marks
    except ImportError as exc:
        render_marks = None
        print(f"marks skipped: inspector.localization.marks is not available ({exc})")
    images = [load_rgb(p) for p in defects]
    masks = [load_mask(p, im.shape[:2]) for p, im in zip(defects, images, strict=True)]
    for name, method in methods.items():
        found, times, mark_times = [], [], []
        for i, image in enumerate(images):
            heat = maps[i] if maps is not None else None
            t0 = time.perf_counter()
            props = method.propose(image, heatmap=heat)  # type: ignore[attr-defined]
            times.append(time.perf_counter() - t0)
            found.append([p.mask for p in props])
            if render_marks is not None:
                t0 = time.perf_counter()
                render_marks(image, props[:TOP_K])
                mark_times.append(time.perf_counter() - t0)
        rec = proposal_recall(found, masks, top_k=TOP_K)
        counts = [len(f) for f in found]
        line = (
            f"proposals '{name}': top-{TOP_K} recall {rec.recall:.3f} ({rec.n_hit}/{rec.n_components} "
            f"components), top-{TOP_K} precision {rec.precision:.3f}; {np.mean(counts):.1f} proposals "
            f"per image; {_ms(times)} per image"
        )
        if mark_times:
            line += f"; marks {_ms(mark_times)} per image"
        print(line)


def selected_marks(
    tests: list[Path],
    is_defect: list[bool],
    maps: list[np.ndarray],
    endpoint: str | None,
    model: str,
    max_side: int = 1024,
) -> None:
    """Region precision / recall of *selected* marks, over normal and defect images alike.

    Marks are the hybrid proposals (heat-map blobs outlined by segments), drawn as the app draws
    them on the image as sent. Without ``--endpoint`` the selection is the offline detector's own:
    the marks whose heat peak reaches 0.5 (the detector's threshold). With ``--endpoint`` the
    OpenAI-compatible server is asked with the app's Set-of-Mark prompt and its answer's mark
    numbers are the selection (a hosted model is slow and costs money: use ``--limit``).
    """
    import asyncio

    from inspector.localization.mark_answers import parse_mark_answer
    from inspector.localization.proposals import HybridProposals, fit_heatmap
    from inspector.localization.set_of_mark import MarkingPlan, render_marks_that_fit
    from inspector.metrics import region_precision_recall
    from inspector.model import Profile, View, ViewMap
    from inspector.prompt import PromptSwitches, compose, downscale

    client = None
    if endpoint:
        from inspector.settings import EndpointSettings, resolve_api_key
        from inspector.vlm.client import VlmClient

        settings = EndpointSettings(base_url=endpoint, model=model, timeout_s=120)
        client = VlmClient(settings, resolve_api_key(settings))
    profile = Profile(
        name="magnetic tile",
        class_name="magnetic tile",
        normal_standards="An even, finely ground grey surface without holes, cracks, breaks or frays.",
    )
    method = HybridProposals()
    chosen, truths, times, prompts = [], [], [], []
    for path, defect, heat in zip(tests, is_defect, maps, strict=True):
        image = load_rgb(path)
        truths.append(load_mask(path, image.shape[:2]) if defect else np.zeros(image.shape[:2], bool))
        small, _ = downscale(image, max_side)
        small_heat = fit_heatmap(heat, small.shape[:2])
        marked = render_marks_that_fit(small, method.propose(small, heatmap=small_heat))
        chosen.append([m.mask for m in marked.marks if float(small_heat[m.mask].max()) >= 0.5])
        if client is not None:
            view = View("image", image, ViewMap("pixel_scale", {"scale_x": 1.0, "scale_y": 1.0}))
            plan = MarkingPlan("hybrid", [("image", marked.image)], records=marked.mark_map())
            prompts.append(
                (compose(profile, [view], [], PromptSwitches(set_of_mark=True, references=False), marks=plan), marked)
            )

    async def ask_all() -> list[list[np.ndarray]]:
        picked = []
        try:
            for prompt, marked in prompts:
                t0 = time.perf_counter()
                answer = await client.ask(prompt)
                times.append(time.perf_counter() - t0)
                numbers = parse_mark_answer(answer.raw_text, [m.number for m in marked.marks]).selected
                picked.append([marked.mark(n).mask for n in numbers])
        finally:
            await client.aclose()
        return picked

    if client is not None:
        chosen = asyncio.run(ask_all())
    scores = region_precision_recall(chosen, truths)
    who = f"VLM {model} at {endpoint}" if client is not None else "offline detector (heat peak >= 0.5)"
    line = (
        f"selected marks, {who}: region precision {scores.precision:.3f} ({scores.n_correct}/"
        f"{scores.n_selected} selected marks hit a defect), region recall {scores.recall:.3f} "
        f"({scores.n_hit}/{scores.n_components} defect components)"
    )
    if times:
        line += f"; {_ms(times)} per request"
    print(line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=ROOT.parent / "shared" / "data",
        help="folder holding magnetic_tile/ (default: <repo>/../shared/data)",
    )
    parser.add_argument("--seed", type=int, default=0, help="permutation seed for choosing references")
    parser.add_argument("--refs", type=int, default=16, help="number of normal references")
    parser.add_argument("--normals", type=int, default=100, help="normal test images")
    parser.add_argument("--limit", type=int, help="first N images per defect class and N normals (quick run)")
    parser.add_argument("--skip-proposals", action="store_true", help="heat-map figures only")
    parser.add_argument(
        "--deep-map-only",
        action="store_true",
        help="heat map from the stride-32 scoring map alone (the detector before offline-2)",
    )
    parser.add_argument("--sam-checkpoint", type=Path, help="segment-anything checkpoint (never downloaded)")
    parser.add_argument("--sam-model", default="vit_b", help="segment-anything model type of the checkpoint")
    parser.add_argument(
        "--endpoint", help="OpenAI-compatible base URL: select marks with this VLM (key from OPENAI_API_KEY)"
    )
    parser.add_argument("--model", default="gpt-4o", help="model name for --endpoint")
    args = parser.parse_args(argv)

    tile = args.data / "magnetic_tile"
    if not tile.is_dir():
        print(f"error: no magnetic_tile/ under {args.data}; pass --data DIR", file=sys.stderr)
        return 2
    jpg = {".jpg"}  # the .png beside each image is its mask
    n_normals = args.normals if args.limit is None else min(args.normals, args.limit)
    refs, normals = choose(images_in(tile / "MT_Free" / "Imgs", jpg), args.refs, n_normals, args.seed)
    defects = []
    for cls in TILE_DEFECTS:
        files = images_in(tile / cls / "Imgs", jpg)
        defects += files if args.limit is None else files[: args.limit]
    print(f"magnetic_tile: {len(refs)} references, {len(normals)} normal + {len(defects)} defect test images")
    t0 = time.perf_counter()
    maps = heatmaps(refs, normals + defects, [False] * len(normals) + [True] * len(defects), args.deep_map_only)
    print(f"heat maps done in {time.perf_counter() - t0:.0f} s")
    if not args.skip_proposals:
        proposals(defects, maps[len(normals) :], args.sam_checkpoint, args.sam_model)
        selected_marks(
            normals + defects, [False] * len(normals) + [True] * len(defects), maps, args.endpoint, args.model
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
