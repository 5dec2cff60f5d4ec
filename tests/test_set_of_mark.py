"""Set-of-Mark prompts end to end, headless: marks on the sent image, the map stored with the
prompt, the model's mark numbers back to regions of the case, and the hybrid score.

The VLM is the loopback OpenAI-compatible server (tests/loopback_vlm.py): a hosted model cannot be
reached from the test machine. Proposals use the classical segments (no SAM checkpoint exists here;
SAM's own code path is tested with a randomly initialised model in tests/test_sam.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json

import numpy as np
import pytest
from PIL import Image

from inspector.inspection import InspectionError, InspectionService
from inspector.localization.masks import decode_mask, mask_bbox
from inspector.model import ParseStatus, Profile, ScoreSource, ViewerState
from inspector.prompt import PromptSwitches
from inspector.settings import EndpointSettings
from inspector.store import ProjectStore
from tests.conftest import textured_image
from tests.loopback_vlm import LoopbackVLM

SOM = PromptSwitches(set_of_mark=True)


@pytest.fixture
def service(tmp_path, registry):
    store = ProjectStore(tmp_path / "p.anomalens")
    svc = InspectionService(store, registry)
    yield svc
    svc.close()
    store.close()


def _defect_image(size=(300, 400), centre=(120, 260), radii=(28, 40), seed=0) -> tuple[np.ndarray, np.ndarray]:
    """A textured plate with one dark elliptical blot; returns (image, defect mask)."""
    image = textured_image(seed, size).astype(np.int16)
    yy, xx = np.mgrid[: size[0], : size[1]]
    defect = ((yy - centre[0]) / radii[0]) ** 2 + ((xx - centre[1]) / radii[1]) ** 2 <= 1.0
    image[defect] = 25
    return np.clip(image, 0, 255).astype(np.uint8), defect


def _save(path, array):
    Image.fromarray(array).save(path)
    return path


def _mark_over(prompt, defect_sent: np.ndarray) -> dict:
    """The mark record whose mask overlaps the defect most (the test's own reading of the map)."""
    best, best_iou = None, 0.0
    for record in prompt.marks:
        x0, y0, x1, y1 = record["bbox"]
        full = np.zeros_like(defect_sent)
        full[y0:y1, x0:x1] = decode_mask(record["mask"])
        iou = (full & defect_sent).sum() / max(1, (full | defect_sent).sum())
        if iou > best_iou:
            best, best_iou = record, iou
    assert best is not None and best_iou > 0.5, f"no mark covers the defect (best IoU {best_iou:.2f})"
    return best


def _resize_mask(mask: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    return np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize(size_wh, Image.Resampling.NEAREST)) > 127


def test_marked_prompt_layout_and_stored_mark_map(tmp_path, service):
    store = service.store
    profile = store.save_profile(Profile(name="Plate", class_name="steel plate"))
    service.add_reference_file(profile.id, _save(tmp_path / "ref.png", textured_image(3, (300, 400))))
    image, defect = _defect_image()
    case, _ = service.import_file(_save(tmp_path / "case.png", image))
    prompt = service.compose_prompt(case, profile, SOM)

    # The paper's layout: reference, the image to inspect, then the same image with its marks.
    assert [img.role for img in prompt.images] == ["reference", "query", "marked"]
    query, marked = prompt.images[1], prompt.images[2]
    assert (marked.width, marked.height, marked.scale) == (query.width, query.height, query.scale)
    assert "numbered marks" in prompt.text and '"marks"' in prompt.text
    sent_marked = np.asarray(Image.open(io.BytesIO(marked.png)).convert("RGB"))
    sent_query = np.asarray(Image.open(io.BytesIO(query.png)).convert("RGB"))
    assert not np.array_equal(sent_marked, sent_query)  # marks were drawn

    numbers = [r["mark"] for r in prompt.marks]
    assert numbers == list(range(1, len(numbers) + 1)) and 1 <= len(numbers) <= 12
    for record in prompt.marks:
        crop = decode_mask(record["mask"])
        x0, y0, x1, y1 = record["bbox"]
        assert crop.shape == (y1 - y0, x1 - x0)
        assert mask_bbox(crop) == (0, 0, x1 - x0, y1 - y0)  # the crop is tight around the mask
        assert record["view"] == "image"
    _mark_over(prompt, defect)

    # Stored with the prompt: the marked image as a blob and the map in the record.
    prompt_id = service._store_prompt(prompt)
    stored = store.prompt(prompt_id)
    assert [img.role for img in stored.images] == ["reference", "query", "marked"]
    record = stored.record
    assert record["marks"] == json.loads(json.dumps(prompt.marks))
    assert record["localization"]["method"] == "segments"
    assert record["switches"]["set_of_mark"] is True


def test_chosen_mark_becomes_a_region_with_its_mask_in_case_pixels(tmp_path, service):
    """A 1600-px case is sent at 1024 px: the chosen mark must land on the original pixels."""
    store = service.store
    profile = store.save_profile(Profile(name="Plate", class_name="steel plate"))
    image, defect = _defect_image(size=(1000, 1600), centre=(480, 1040), radii=(110, 160), seed=2)
    case, _ = service.import_file(_save(tmp_path / "big.png", image))
    prompt = service.compose_prompt(case, profile, PromptSwitches(set_of_mark=True, references=False))
    sent = prompt.images[-1]
    assert (sent.width, sent.height) == (1024, 640)
    defect_sent = _resize_mask(defect, (sent.width, sent.height))
    chosen = _mark_over(prompt, defect_sent)
    reply = json.dumps(
        {
            "anomalous": True,
            "confidence": 0.8,
            "reason": "dark blot",
            "marks": [{"mark": chosen["mark"], "reason": "dark blot on the plate"}],
        }
    )
    with LoopbackVLM(responder=lambda request: reply) as server:
        endpoint = EndpointSettings(base_url=server.base_url, model="loopback-vlm", timeout_s=10)
        verdict = asyncio.run(service.inspect_with_vlm(case, prompt, endpoint))
        request = server.chat_requests[0]
    assert request.image_sizes == [(1024, 640), (1024, 640)]
    assert len(verdict.regions) == 1
    region = verdict.regions[0]
    assert region.detail["mark"] == chosen["mark"]
    assert region.reason == "dark blot on the plate"
    ys, xs = np.nonzero(defect)
    scale = 1600 / 1024
    # The box is the mark's box scaled back; the defect's own box is within a few sent pixels of it.
    assert region.x0 == pytest.approx(chosen["bbox"][0] * scale)
    assert region.x1 == pytest.approx(chosen["bbox"][2] * scale)
    assert abs(region.x0 - xs.min()) < 12 * scale and abs(region.y1 - (ys.max() + 1)) < 12 * scale
    # The mask, drawn into the region's box, covers the defect in case pixels.
    crop = decode_mask(region.detail["mask"])
    x0, y0, x1, y1 = (round(v) for v in (region.x0, region.y0, region.x1, region.y1))
    full = np.zeros_like(defect)
    full[y0:y1, x0:x1] = _resize_mask(crop, (x1 - x0, y1 - y0))
    assert (full & defect).sum() / (full | defect).sum() > 0.6
    marks = {m["mark"]: m for m in verdict.details["marks"]}
    assert marks[chosen["mark"]]["selected"] and marks[chosen["mark"]]["reason"] == "dark blot on the plate"
    assert sum(m["selected"] for m in marks.values()) == 1
    # Stored and read back.
    again = store.latest_verdict(case.id)
    assert again.regions[0].detail["mark"] == chosen["mark"]
    assert again.details["marks"] == verdict.details["marks"]


def test_the_mark_answer_is_read_once_and_carried_with_the_parsed_answer(tmp_path, service, monkeypatch):
    from inspector.localization import mark_answers

    calls: list[str] = []
    real = mark_answers.parse_mark_answer
    monkeypatch.setattr(mark_answers, "parse_mark_answer", lambda text, valid: calls.append(text) or real(text, valid))
    profile = service.store.save_profile(Profile(name="Plate", class_name="steel plate"))
    image, defect = _defect_image(size=(300, 400), centre=(150, 200), radii=(40, 60), seed=3)
    case, _ = service.import_file(_save(tmp_path / "plate.png", image))
    prompt = service.compose_prompt(case, profile, PromptSwitches(set_of_mark=True, references=False))
    chosen = _mark_over(prompt, _resize_mask(defect, (prompt.images[-1].width, prompt.images[-1].height)))
    reply = json.dumps({"anomalous": True, "confidence": 0.8, "reason": "blot", "marks": [chosen["mark"]]})
    parsed = service.read_answer(prompt, reply)
    assert parsed.marks is not None and parsed.marks.selected == [chosen["mark"]]
    calls.clear()
    with LoopbackVLM(responder=lambda request: reply) as server:
        endpoint = EndpointSettings(base_url=server.base_url, model="loopback-vlm", timeout_s=10)
        verdict = asyncio.run(service.inspect_with_vlm(case, prompt, endpoint))
    assert calls == [reply]  # read once, for the extraction decision and the verdict alike
    assert [r.detail["mark"] for r in verdict.regions] == [chosen["mark"]]
    assert service.read_answer(dataclasses.replace(prompt, localization={}), reply).marks is None  # no marks drawn


def test_free_text_marks_and_none(tmp_path, service):
    store = service.store
    profile = store.save_profile(Profile(name="Plate"))
    image, _ = _defect_image()
    case, _ = service.import_file(_save(tmp_path / "c.png", image))
    prompt = service.compose_prompt(case, profile, PromptSwitches(set_of_mark=True, answer_format=False))
    assert 'say "no mark"' in prompt.text
    n = len(prompt.marks)
    assert n >= 2
    replies = iter([f"Anomalous. Marks 1 and {n} show damage.", "Normal. None of the marks is anomalous."])
    with LoopbackVLM(responder=lambda request: next(replies)) as server:
        endpoint = EndpointSettings(
            base_url=server.base_url, model="loopback-vlm", timeout_s=10, structured_output=False
        )
        first = asyncio.run(service.inspect_with_vlm(case, prompt, endpoint))
        second = asyncio.run(service.inspect_with_vlm(case, prompt, endpoint))
    assert sorted(r.detail["mark"] for r in first.regions) == [1, n]
    assert second.regions == [] and second.details["mark_answer"]["said_none"] is True
    assert second.anomalous is False


def test_operator_drawn_region_is_a_mark(tmp_path, service):
    profile = service.store.save_profile(Profile(name="Plate"))
    image, _ = _defect_image()
    case, _ = service.import_file(_save(tmp_path / "c.png", image))
    prompt = service.compose_prompt(
        case,
        profile,
        PromptSwitches(set_of_mark=True, references=False),
        viewer=ViewerState.from_render_options({"drawn_regions": [[20.0, 30.0, 90.0, 100.0]]}),
    )
    operator = [r for r in prompt.marks if r["source"] == "operator"]
    assert len(operator) == 1
    assert operator[0]["bbox"] == [20, 30, 90, 100]
    assert decode_mask(operator[0]["mask"]).all()  # a drawn rectangle is its whole box


def test_hybrid_marks_come_from_the_heat_map_and_scores_combine(tmp_path, service):
    store = service.store
    profile = store.save_profile(Profile(name="Plate", settings={"localization": {"method": "hybrid"}}))
    for seed in (11, 12, 13, 14):
        service.add_reference_file(profile.id, _save(tmp_path / f"ref{seed}.png", textured_image(seed, (300, 400))))
    image, defect = _defect_image(seed=20)
    case, _ = service.import_file(_save(tmp_path / "c.png", image))
    prompt = service.compose_prompt(case, profile, PromptSwitches(set_of_mark=True, references=False))
    offline = prompt.localization["offline_score"]
    assert prompt.localization["method"] == "hybrid" and offline is not None and offline > 0.5
    assert all(0.0 <= r["offline_peak"] <= 1.0 for r in prompt.marks)
    chosen = _mark_over(prompt, defect)
    replies = iter(
        [
            json.dumps({"anomalous": True, "confidence": 0.9, "reason": "blot", "marks": [chosen["mark"]]}),
            "I cannot tell from these images.",
        ]
    )
    with LoopbackVLM(responder=lambda request: next(replies)) as server:
        endpoint = EndpointSettings(base_url=server.base_url, model="loopback-vlm", timeout_s=10)
        verdict = asyncio.run(service.inspect_with_vlm(case, prompt, endpoint))
        unread = asyncio.run(service.inspect_with_vlm(case, prompt, endpoint))
    assert verdict.score_source == ScoreSource.HYBRID
    assert verdict.score == pytest.approx(0.7 * 0.9 + 0.3 * offline)
    assert verdict.details["hybrid"]["p_vlm"] == pytest.approx(0.9)
    region = verdict.regions[0]
    assert region.score == pytest.approx(0.7 * 0.9 + 0.3 * chosen["offline_peak"])
    # An unreadable answer leaves the offline detector's score and verdict standing.
    assert unread.parse_status == ParseStatus.UNPARSED
    assert unread.score == pytest.approx(offline) and unread.anomalous is (offline >= 0.5)


def test_heat_map_marks_without_references_explain_what_to_do(tmp_path, service):
    profile = service.store.save_profile(Profile(name="Plate", settings={"localization": {"method": "heatmap"}}))
    image, _ = _defect_image()
    case, _ = service.import_file(_save(tmp_path / "c.png", image))
    with pytest.raises(InspectionError, match="normal reference"):
        service.compose_prompt(case, profile, SOM)


def test_sam_without_a_checkpoint_explains_where_to_get_one(tmp_path, service):
    service.mark_settings = {"method": "sam", "sam": {"model_type": "vit_b", "checkpoint": ""}}
    profile = service.store.save_profile(Profile(name="Plate"))
    image, _ = _defect_image()
    case, _ = service.import_file(_save(tmp_path / "c.png", image))
    with pytest.raises(InspectionError, match=r"sam_vit_b_01ec64\.pth"):
        service.compose_prompt(case, profile, SOM)


def test_marks_on_references_variant(tmp_path, service):
    service.mark_settings = {"marks_on_references": True}
    profile = service.store.save_profile(Profile(name="Plate"))
    service.add_reference_file(profile.id, _save(tmp_path / "ref.png", textured_image(3, (300, 400))))
    image, _ = _defect_image()
    case, _ = service.import_file(_save(tmp_path / "c.png", image))
    prompt = service.compose_prompt(case, profile, SOM)
    assert [img.role for img in prompt.images] == ["reference", "marked_reference", "query", "marked"]
    assert "comparison only" in prompt.images[1].caption


def test_marks_map_back_in_every_modality(demo):
    """A chosen mark on each demo modality's view becomes a region in that modality's own terms."""
    from inspector.vlm.answers import parse_answer

    store, service = demo
    expected_detail = {
        "image": set(),
        "dicom": {"slice"},
        "video": {"frames"},
        "point_cloud": {"view", "points", "point_ids"},
        "time_series": {"samples"},
    }
    cases = _one_case_per_modality(store)
    for case in cases:
        profile = store.profile(case.profile_id)
        prompt = service.compose_prompt(case, profile, PromptSwitches(set_of_mark=True, references=False))
        assert prompt.marks, case.modality
        assert [img.role for img in prompt.images][-1] == "marked"
        assert prompt.mark_record(1) is not None
        reply = json.dumps(
            {"anomalous": True, "confidence": 0.7, "reason": "odd", "marks": [{"mark": 1, "reason": "looks wrong"}]}
        )
        verdict = service.verdict_from_answer(case, prompt, parse_answer(reply), reply)
        assert len(verdict.regions) == 1, case.modality
        region = verdict.regions[0]
        assert region.detail["mark"] == 1 and region.reason == "looks wrong"
        assert expected_detail[case.modality] <= set(region.detail), (case.modality, region.detail)
        if case.modality == "point_cloud":
            assert region.detail["points"] > 0
        if case.modality in ("image", "dicom", "video"):
            assert decode_mask(region.detail["mask"]).any()  # the mask travels with the region
    assert {c.modality for c in cases} == set(expected_detail)


def test_offline_regions_carry_their_heat_blob_masks(tmp_path, service, shared_data):
    """Real magnetic tiles: the offline region's mask is its heat blob, not its bounding box."""
    tiles = shared_data / "magnetic_tile"
    store = service.store
    profile = store.save_profile(Profile(name="Tile"))
    for path in sorted((tiles / "MT_Free" / "Imgs").glob("*.jpg"))[:8]:
        service.add_reference_file(profile.id, path)
    for case_path in sorted((tiles / "MT_Break" / "Imgs").glob("*.jpg"))[:10]:  # the first one flagged
        case, _ = service.import_file(case_path)
        verdict = service.inspect_offline(case, profile)
        if verdict.anomalous:
            break
    assert verdict.anomalous, "the detector flagged none of the first ten breaks"
    heat = service.heatmap(store.latest_verdict(case.id))
    truth = np.asarray(Image.open(case_path.with_suffix(".png")).convert("L")) > 127
    assert verdict.regions
    region = verdict.regions[0]
    crop = decode_mask(region.detail["mask"])
    x0, y0, x1, y1 = (int(v) for v in (region.x0, region.y0, region.x1, region.y1))
    assert crop.shape == (y1 - y0, x1 - x0) and mask_bbox(crop) == (0, 0, x1 - x0, y1 - y0)
    # The blob follows the heat map (grown down to 0.25 around a peak above 0.5; stored as 8-bit PNG).
    assert heat[y0:y1, x0:x1][crop].min() >= 0.25 - 1 / 255
    assert heat[y0:y1, x0:x1][crop].max() >= 0.5 - 1 / 255
    assert truth[y0:y1, x0:x1].any()  # on the break
    # Stored and read back with the verdict.
    assert store.latest_verdict(case.id).regions[0].detail["mask"] == region.detail["mask"]


@pytest.mark.gui  # views.verdict_panel imports Qt
def test_marks_summary_tells_the_operator_what_the_answer_did():
    from views.verdict_panel import marks_summary

    details = {
        "marks": [{"mark": 1, "selected": True}, {"mark": 2, "rejected": True}, {"mark": 3}],
        "mark_answer": {"found": True, "unknown": [12], "unplaced": [1], "proposals": "hybrid"},
    }
    text = marks_summary(details)
    assert text.startswith("Set-of-Mark: 3 marks drawn (hybrid)")
    assert "the model chose #1" in text and "called normal #2" in text
    assert "not placeable on the case: #1" in text and "not on the image, ignored: 12" in text
    assert "named no mark" in marks_summary({"marks": [{"mark": 1}], "mark_answer": {"found": False}})
    assert marks_summary({}) == ""


def test_the_preview_and_the_inspection_share_one_marking(tmp_path, service, monkeypatch):
    """Proposals can take a minute (SAM on a CPU): composing again for Inspect must not redo them."""
    import inspector.localization.set_of_mark as som

    calls = []
    real = som.plan_marks
    monkeypatch.setattr(som, "plan_marks", lambda *a, **k: calls.append(1) or real(*a, **k))
    profile = service.store.save_profile(Profile(name="Plate"))
    image, _ = _defect_image()
    case, _ = service.import_file(_save(tmp_path / "c.png", image))
    first = service.compose_prompt(case, profile, SOM)
    again = service.compose_prompt(case, profile, SOM)
    assert len(calls) == 1 and again.sha256 == first.sha256
    service.mark_settings = {"max_marks": 3}  # other settings: other marks
    fewer = service.compose_prompt(case, profile, SOM)
    assert len(calls) == 2 and len(fewer.marks) <= 3
    service.compose_prompt(
        case, profile, SOM, viewer=ViewerState.from_render_options({"drawn_regions": [[5, 5, 40, 40]]})
    )
    assert len(calls) == 3


def test_small_views_carry_fewer_marks(tmp_path, service):
    from inspector.localization.set_of_mark import marks_for_size

    assert marks_for_size((224, 224), {"max_marks": 12}) == 8
    assert marks_for_size((1024, 1024), {"max_marks": 12}) == 12
    assert marks_for_size((1024, 1024), {"max_marks": 5}) == 5
    assert marks_for_size((20, 20), {"max_marks": 12}) == 3
    profile = service.store.save_profile(Profile(name="Plate"))
    image, _ = _defect_image(size=(224, 224), centre=(100, 120), radii=(20, 24))
    case, _ = service.import_file(_save(tmp_path / "small.png", image))
    prompt = service.compose_prompt(case, profile, PromptSwitches(set_of_mark=True, references=False))
    assert 1 <= len(prompt.marks) <= 8


# One wording per modality: free-text answers name marks in many ways (issue 10).
_WORDINGS = {
    "image": 'The region marked as "1" shows a dark blot.',
    "dicom": "Area 1 contains a hyperdense lesion.",
    "video": "Anomalous: the person in the tile labeled '1' is falling.",
    "point_cloud": "Label 1 covers a dent in the surface.",
    "time_series": "Anomalous. Number 1 marks a sudden spike.",
}


def _one_case_per_modality(store, modalities=None):
    """The first readable demo case of each modality (of `modalities`, when given)."""
    from inspector.model import CaseStatus

    seen = {}
    for case in store.cases():
        if case.modality in seen or case.status == CaseStatus.ERROR:
            continue
        if modalities is None or case.modality in modalities:
            seen[case.modality] = case
    return list(seen.values())


@pytest.fixture
def demo(tmp_path, registry):
    from inspector.demo import build_demo_project

    store = build_demo_project(tmp_path / "demo.anomalens", registry)
    service = InspectionService(store, registry)
    yield store, service
    service.close()
    store.close()


def test_free_text_mark_wordings_map_back_in_every_modality(demo):
    from inspector.vlm.answers import parse_answer

    store, service = demo
    cases = _one_case_per_modality(store)
    for case in cases:
        profile = store.profile(case.profile_id)
        prompt = service.compose_prompt(case, profile, PromptSwitches(set_of_mark=True, references=False))
        reply = _WORDINGS[case.modality]
        parsed = parse_answer(reply)
        assert parsed.anomalous is True, (case.modality, reply)
        verdict = service.verdict_from_answer(case, prompt, parsed, reply)
        assert [r.detail["mark"] for r in verdict.regions] == [1], (case.modality, reply)
        assert verdict.details["mark_answer"]["method"].startswith("text")
    assert {c.modality for c in cases} == set(_WORDINGS)


def test_free_text_ranges_map_to_frames_and_samples(demo):
    """Ranges in prose ("frames 3 to 5", "between index 10 and 20") become the modality's regions."""
    from inspector.vlm.answers import parse_answer

    store, service = demo
    replies = {
        "video": ("Anomalous. A cyclist crosses the walkway in frames 3 to 5.", "frames", [3, 5]),
        "time_series": ("There is a sudden spike between index 10 and 20, an anomaly.", "samples", [10, 20]),
    }
    cases = _one_case_per_modality(store, set(replies))
    for case in cases:
        profile = store.profile(case.profile_id)
        prompt = service.compose_prompt(case, profile, PromptSwitches(references=False))
        text, key, expected = replies[case.modality]
        verdict = service.verdict_from_answer(case, prompt, parse_answer(text), text)
        assert verdict.anomalous is True and len(verdict.regions) == 1, case.modality
        assert verdict.regions[0].detail[key] == expected, (case.modality, verdict.regions[0].detail)
    assert {c.modality for c in cases} == set(replies)
