"""The headless inspection flow: import, compose, ask (loopback VLM), parse, store as results arrive.

The VLM is the loopback OpenAI-compatible server (tests/loopback_vlm.py): a hosted model cannot be
reached from the test machine (no network, no API key).
"""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from PIL import Image

from inspector.inspection import InspectionError, InspectionService
from inspector.model import CaseStatus, ParseStatus, Profile, ScoreSource, VerdictSource
from inspector.settings import EndpointSettings
from inspector.store import ProjectStore
from tests.conftest import textured_image
from tests.loopback_vlm import LoopbackVLM, Reply


@pytest.fixture
def service(tmp_path, registry):
    store = ProjectStore(tmp_path / "p.anomalens")
    yield InspectionService(store, registry)
    store.close()


def _png(path, seed=0, size=(96, 128)):
    Image.fromarray(textured_image(seed, size)).save(path)
    return path


def test_import_adds_good_files_and_records_bad_ones(tmp_path, service):
    good = _png(tmp_path / "a.png")
    copy = tmp_path / "same-bytes.png"
    copy.write_bytes(good.read_bytes())
    broken = tmp_path / "b.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 broken jpeg")
    result = service.import_files([good, copy, broken, tmp_path / "gone.png"])
    assert [c.name for c in result.added] == ["a.png"]
    assert [c.name for c in result.duplicates] == ["a.png"]
    assert sorted(c.name for c in result.failed) == ["b.jpg", "gone.png"]
    failed = {c.name: c for c in result.failed}
    assert failed["b.jpg"].status == CaseStatus.ERROR and "b.jpg" in failed["b.jpg"].error
    assert "cannot be read" in failed["gone.png"].error
    # The good case is embedded: it still opens after the source file is gone.
    good.unlink()
    service._loaded.clear()
    loaded = service.load_case(service.store.case(result.added[0].id))
    assert loaded.data.shape == (96, 128, 3)


def test_vlm_inspection_stores_prompt_answer_and_verdict(tmp_path, service):
    store = service.store
    profile = store.save_profile(
        Profile(name="Tile", class_name="magnetic tile", normal_standards="Even grey surface.")
    )
    service.add_reference_file(profile.id, _png(tmp_path / "ref.png", seed=5))
    case, _ = service.import_file(_png(tmp_path / "case.png", seed=6))
    reply = json.dumps({"anomalous": True, "confidence": 0.7, "reason": "A crack near the edge."})
    with LoopbackVLM(responder=lambda request: Reply(reply, p_anomalous=0.9)) as server:
        endpoint = EndpointSettings(base_url=server.base_url, model="loopback-vlm", timeout_s=10)
        prompt = service.compose_prompt(case, profile)
        verdict = asyncio.run(service.inspect_with_vlm(case, prompt, endpoint))
        request = server.chat_requests[0]
    assert verdict.source == VerdictSource.VLM and verdict.anomalous is True
    assert verdict.score_source == ScoreSource.LOGPROB and verdict.score == pytest.approx(0.9, abs=0.02)
    assert request.image_sizes == [(128, 96), (128, 96)]
    answer = store.answers(case.id)[0]
    assert answer.status == "ok" and json.loads(answer.raw_text)["reason"] == "A crack near the edge."
    assert answer.prompt_tokens is not None
    stored = store.prompt(verdict.prompt_id)
    assert stored.sha256 == prompt.sha256 and "magnetic tile" in stored.user_text
    assert [img.role for img in stored.images] == ["reference", "query"]
    assert store.case(case.id).status == CaseStatus.ANOMALOUS


def test_vlm_failures_are_stored_and_reported(tmp_path, service):
    store = service.store
    profile = store.save_profile(Profile(name="P", class_name="part"))
    case, _ = service.import_file(_png(tmp_path / "c.png"))
    with LoopbackVLM(responder=lambda request: "I cannot help with that request.") as server:
        endpoint = EndpointSettings(base_url=server.base_url, model="loopback-vlm", timeout_s=0.5)
        prompt = service.compose_prompt(case, profile)
        verdict = asyncio.run(service.inspect_with_vlm(case, prompt, endpoint))
        assert verdict.parse_status == ParseStatus.UNPARSED and verdict.anomalous is None
        server.enqueue(delay_s=3)
        with pytest.raises(InspectionError, match=r"(?i)time"):
            asyncio.run(service.inspect_with_vlm(case, prompt, endpoint))
        server.enqueue(status=429, retry_after="7")
        with pytest.raises(InspectionError):
            asyncio.run(service.inspect_with_vlm(case, prompt, endpoint))
    statuses = [a.status for a in store.answers(case.id)]
    assert statuses == ["ok", "error", "error"]
    assert store.case(case.id).status == CaseStatus.UNDECIDED


def test_offline_inspection_scores_a_defect_above_a_normal(tmp_path, service):
    store = service.store
    profile = store.save_profile(Profile(name="P", class_name="panel"))
    for seed in range(3):
        service.add_reference_file(profile.id, _png(tmp_path / f"ref{seed}.png", seed=seed, size=(128, 128)))
    normal, _ = service.import_file(_png(tmp_path / "normal.png", seed=9, size=(128, 128)))
    damaged = textured_image(10, (128, 128))
    damaged[60:68, 10:118] = 0
    Image.fromarray(damaged).save(tmp_path / "damaged.png")
    defect, _ = service.import_file(tmp_path / "damaged.png")
    v_normal = service.inspect_offline(normal, profile)
    v_defect = service.inspect_offline(defect, profile)
    assert v_defect.score > v_normal.score
    assert v_defect.source == VerdictSource.OFFLINE and v_defect.score_source == ScoreSource.OFFLINE_CALIBRATED
    heat = service.heatmap(store.latest_verdict(defect.id))
    assert heat.shape == (128, 128) and heat[58:70, 10:118].mean() > heat[:40].mean()
    assert np.isfinite(v_normal.score)


def test_offline_inspection_without_references_explains_what_to_do(tmp_path, service):
    profile = service.store.save_profile(Profile(name="Empty", class_name="panel"))
    case, _ = service.import_file(_png(tmp_path / "c.png"))
    with pytest.raises(InspectionError, match="Add at least one normal reference"):
        service.inspect_offline(case, profile)


def test_boxes_from_the_model_map_back_to_case_pixels(tmp_path, service):
    """The model sees a 1024-px view of a 2048-px case: its boxes must land on the original pixels."""
    store = service.store
    profile = store.save_profile(Profile(name="P", class_name="sheet"))
    big = tmp_path / "big.png"
    Image.fromarray(textured_image(4, (1024, 2048))).save(big)
    case, _ = service.import_file(big)
    reply = json.dumps(
        {
            "anomalous": True,
            "confidence": 0.9,
            "reason": "dent",
            "regions": [
                {"view": "image", "box": [100, 50, 200, 150], "label": "dent"},
                {"view": "not-sent", "box": [1, 1, 5, 5]},
                {"box": "somewhere"},
            ],
        }
    )
    with LoopbackVLM(responder=lambda request: reply) as server:
        endpoint = EndpointSettings(base_url=server.base_url, model="loopback-vlm", timeout_s=10)
        prompt = service.compose_prompt(case, profile)
        verdict = asyncio.run(service.inspect_with_vlm(case, prompt, endpoint))
        assert server.chat_requests[0].image_sizes == [(1024, 512)]
    assert len(verdict.regions) == 1
    region = verdict.regions[0]
    assert (region.x0, region.y0, region.x1, region.y1) == pytest.approx((200, 100, 400, 300))
    assert region.label == "dent"
    assert store.latest_verdict(case.id).regions[0].x1 == pytest.approx(400)
