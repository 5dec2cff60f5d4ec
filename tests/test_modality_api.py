"""The plugin API the non-image modalities build on, exercised with a small test modality.

The test modality ("strip") is a real plugin discovered from a temporary plugins folder: a folder
of numbered .strip files is one case, its views use their own map kind, it brings its own offline
detector and turns a normal case into reference images. That covers what DICOM series, frame
folders, point clouds and series need from the core, independently of those plugins.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import textwrap

import numpy as np
import pytest
from PIL import Image

from inspector.inspection import InspectionService
from inspector.model import Profile, Region, Verdict, VerdictSource, ViewerState
from inspector.plugins import discover
from inspector.settings import EndpointSettings
from inspector.store import ProjectStore
from inspector.store.schema import MIGRATIONS
from inspector.vlm.answers import parse_answer
from tests.conftest import textured_image
from tests.loopback_vlm import LoopbackVLM, Reply

STRIP_PLUGIN = '''
"""Test modality: a folder of numbered .strip files (numpy arrays) is one case."""
from pathlib import Path

import numpy as np
from inspector.imaging import CaseReadError
from inspector.locate import box_in_view
from inspector.model import LoadedCase, Region, View, ViewMap
from inspector.plugins import ModalityPlugin, OfflineOutcome

PLUGIN_API_VERSION = 1
READS = []  # paths read, for the tests


def claims_folder(folder):
    return any(p.suffix == ".strip" for p in folder.iterdir())


def read(path):
    READS.append(path)
    if not path.is_dir():
        raise CaseReadError(f"{path.name}: a strip case is a folder")
    strips = []
    for p in sorted(path.glob("strip_*.strip")):
        with p.open("rb") as fh:
            strips.append(np.load(fh))
    if not strips:
        raise CaseReadError(f"{path.name}: the folder holds no strips")
    metadata = {"strips": len(strips)}
    labels = path.parent / "labels.txt"  # a sidecar beside the case, as NAB and Ped2 have
    if labels.is_file():
        metadata["ground_truth"] = labels.read_text().strip()
        metadata["labelled_strips"] = [1]
    return LoadedCase("strip", strips, metadata)


def render(loaded, options):
    index = int(options.get("strip", 0))
    image = loaded.data[index]
    return [View(f"strip {index}", image, ViewMap("strip", {"strip": index}))]


def locate(item, queries, loaded):
    if "range" in item:
        a, b = (int(v) for v in item["range"])
        if not 0 <= a <= b < len(loaded.data):
            return None
        return Region(0, 0, 0, 0, detail={"strips": [a, b]}, reason=item.get("reason", ""))
    found = box_in_view(item, queries)
    if found is None:
        return None
    query, (x0, y0, x1, y1) = found
    return Region(x0, y0, x1, y1, detail={"strip": query.view_map.params["strip"]})


def offline_detect(loaded, context):
    refs = context.references()
    means = [float(rgb.mean()) for _, rgb in refs]
    scores = [abs(float(s.mean()) - np.mean(means)) for s in loaded.data]
    context.progress(1.0)
    worst = int(np.argmax(scores))
    heat = np.zeros(loaded.data[worst].shape[:2], np.float32)
    return OfflineOutcome(anomalous=max(scores) > 20, score=min(1.0, max(scores) / 40),
                          explanation=f"strip {worst} differs most", heatmap=heat,
                          details={"strip_scores": np.asarray(scores), "heatmap_strip": worst},
                          regions=[Region(0, 0, 1, 1, detail={"strips": [worst, worst]})],
                          summary="mean difference", model="strip means")


def reference_images(loaded):
    return [(f"strip {i}", s) for i, s in enumerate(loaded.data)]


def register(registry):
    registry.register_modality(ModalityPlugin(
        name="strip", title="Strips", extensions=(), read=read, render=render, locate=locate,
        offline_detect=offline_detect, reference_images=reference_images, claims_folder=claims_folder,
    ))
'''


@pytest.fixture
def strip_registry(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plugins")
    (folder / "strip_modality.py").write_text(textwrap.dedent(STRIP_PLUGIN))
    from inspector.paths import bundled_plugins_dir

    registry = discover([bundled_plugins_dir(), folder])
    assert "strip" in registry.modalities, registry.errors
    return registry


@pytest.fixture
def service(tmp_path, strip_registry):
    store = ProjectStore(tmp_path / "p.anomalens")
    service = InspectionService(store, strip_registry)
    yield service
    service.close()
    store.close()


def _strip_folder(root, name, brightness=(120, 120, 120)):
    folder = root / name
    folder.mkdir()
    for i, level in enumerate(brightness):
        image = np.clip(textured_image(i, (40, 60)).astype(int) - 120 + level, 0, 255).astype(np.uint8)
        with (folder / f"strip_{i:02d}.strip").open("wb") as fh:
            np.save(fh, image)
    return folder


def test_a_claimed_folder_is_one_case_and_other_folders_are_expanded(tmp_path, strip_registry):
    series = _strip_folder(tmp_path, "series")
    loose = tmp_path / "loose"
    loose.mkdir()
    Image.fromarray(textured_image(1, (20, 20))).save(loose / "a.png")
    (loose / ".hidden.png").write_bytes(b"x")
    nested = _strip_folder(loose, "nested")
    expanded = strip_registry.expand_paths([series, loose])
    assert expanded == [series, loose / "a.png", nested]
    assert strip_registry.modality_for_path(series).name == "strip"


def test_folder_case_is_embedded_and_reads_after_the_folder_is_gone(tmp_path, service):
    series = _strip_folder(tmp_path, "series")
    case, outcome = service.import_file(series)
    assert outcome == "added" and case.modality == "strip" and case.metadata["strips"] == 3
    assert case.metadata["source_kind"] == "folder" and case.blob_sha256
    # The same folder again is a duplicate; a changed strip is a new case.
    assert service.import_file(series)[1] == "duplicate"
    for file in series.iterdir():
        file.unlink()
    series.rmdir()
    service._loaded.clear()
    loaded = service.load_case(service.store.case(case.id))
    assert len(loaded.data) == 3 and loaded.data[0].shape == (40, 60, 3)


def test_labels_found_at_import_become_ground_truth_and_survive_the_embedded_copy(tmp_path, service):
    root = tmp_path / "dataset"
    root.mkdir()
    (root / "labels.txt").write_text("anomalous\n")
    case, _ = service.import_file(_strip_folder(root, "case"))
    assert case.ground_truth == "anomalous"
    assert service.store.case(case.id).ground_truth == "anomalous"
    service._loaded.clear()  # read again from the embedded copy, where no sidecar is found
    loaded = service.load_case(service.store.case(case.id))
    assert loaded.metadata["labelled_strips"] == [1] and loaded.metadata["strips"] == 3
    assert "source_kind" not in loaded.metadata


def test_concurrent_loads_of_one_case_decode_it_once(tmp_path, service):
    import sys
    import threading

    case, _ = service.import_file(_strip_folder(tmp_path, "series"))
    reads = sys.modules["anomalens_plugin_strip_modality"].READS
    service._loaded.clear()
    reads.clear()
    stored = service.store.case(case.id)
    results, start = [], threading.Barrier(4)

    def load() -> None:
        start.wait()
        results.append(service.load_case(stored))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(reads) == 1 and len({id(r) for r in results}) == 1
    assert not list(reads[0].parent.parent.glob(".unpacking-*"))  # no half-unpacked copies left


def test_files_over_the_embedding_limit_are_hashed_not_held(tmp_path, monkeypatch, registry):
    import hashlib

    from PIL import Image

    import inspector.inspection as inspection

    monkeypatch.setattr(inspection, "EMBED_LIMIT_BYTES", 1000)
    path = tmp_path / "big.png"
    Image.fromarray(textured_image(3, (80, 80))).save(path)
    assert path.stat().st_size > 1000
    with ProjectStore(tmp_path / "p.anomalens") as store:
        service = InspectionService(store, registry)
        case, outcome = service.import_file(path)
        assert outcome == "added" and case.blob_sha256 is None
        assert case.source_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
        assert service.import_file(path)[1] == "duplicate"
        service._loaded.clear()
        assert service.load_case(store.case(case.id)).data.shape == (80, 80, 3)  # read from its place
        service.close()


def test_embedded_folder_with_escaping_names_is_refused(tmp_path, service):
    import io
    import zipfile

    from inspector.inspection import InspectionError

    series = _strip_folder(tmp_path, "series")
    case, _ = service.import_file(series)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("../../evil.png", b"x")
    store = service.store
    with store.transaction():
        store.conn.execute("UPDATE blobs SET data = ? WHERE sha256 = ?", (buffer.getvalue(), case.blob_sha256))
    service._loaded.clear()
    with pytest.raises(InspectionError, match="not a safe path"):
        service.load_case(store.case(case.id))
    assert not (tmp_path / "evil.png").exists()


def test_unclaimed_folder_and_missing_folder_fail_clearly(tmp_path, service):
    empty = tmp_path / "nothing-here"
    empty.mkdir()
    case, outcome = service.import_file(empty)
    assert outcome == "failed" and "no modality reads this folder" in case.error


def test_modality_offline_detector_result_is_stored_with_details(tmp_path, service):
    profile = service.store.save_profile(Profile(name="strips", modality="strip"))
    reference = _strip_folder(tmp_path, "normal")
    assert service.add_reference_file(profile.id, reference) == 3  # reference_images: one per strip
    case, _ = service.import_file(_strip_folder(tmp_path, "case", brightness=(120, 190, 120)))
    progress = []
    verdict = service.inspect_offline(case, profile, progress=progress.append)
    assert verdict.source == VerdictSource.OFFLINE and verdict.anomalous is True
    assert verdict.model == "strip means" and progress == [1.0]
    stored = service.store.latest_verdict(case.id)
    assert stored.details["heatmap_strip"] == 1
    assert np.argmax(stored.details["strip_scores"]) == 1  # numpy arrays stored as JSON lists
    assert stored.regions[0].detail == {"strips": [1, 1]}
    assert service.heatmap(stored).shape == (40, 60)


def test_references_remember_the_file_they_came_from(tmp_path, service):
    from PIL import Image

    profile = service.store.save_profile(Profile(name="strips", modality="strip"))
    service.add_reference_file(profile.id, _strip_folder(tmp_path, "normal_a"))
    service.add_reference_file(profile.id, _strip_folder(tmp_path, "normal_b", brightness=(110, 125, 118)))
    photo = tmp_path / "photo.png"
    Image.fromarray(textured_image(9, (20, 20))).save(photo)
    service.add_reference_file(profile.id, photo)
    refs = service.store.references(profile.id)
    sources = [ref.source for ref in refs]
    assert len(refs) == 7 and sources[6] is None  # a plain image is its own source
    assert len(set(sources[:3])) == 1 and len(set(sources[3:6])) == 1 and sources[0] != sources[3]
    assert "normal_a" not in sources[0]  # an id, not the name (names can identify patients)
    # what a modality's own detector gets, aligned with the reference images
    seen = {}

    def remember(loaded, context):
        seen["sources"] = context.reference_sources()
        seen["count"] = len(context.references())
        from inspector.plugins import OfflineOutcome

        return OfflineOutcome(False, 0.1, "ok")

    service.registry.modality("strip").offline_detect = remember
    case, _ = service.import_file(_strip_folder(tmp_path, "case"))
    service.inspect_offline(case, profile)
    assert seen["count"] == 7 and seen["sources"][:6] == sources[:6] and seen["sources"][6] == refs[6].blob_sha256


def test_answer_boxes_and_ranges_reach_the_modality_locator(tmp_path, service):
    """The loopback server stands in for a hosted VLM (no network here); the real client asks it."""
    profile = service.store.save_profile(Profile(name="strips", modality="strip"))
    case, _ = service.import_file(_strip_folder(tmp_path, "case"))
    answer = {
        "anomalous": True,
        "confidence": 0.9,
        "reason": "strip 2 is darker",
        "regions": [{"view": "strip 2", "box": [6, 4, 30, 20]}, {"view": "strip 9", "box": [1, 1, 5, 5]}],
        "ranges": [[1, 2], [5, 9], {"start": 0, "end": 0, "reason": "edge"}],
    }
    with LoopbackVLM(responder=lambda request: Reply(json.dumps(answer))) as server:
        prompt = service.compose_prompt(case, profile, viewer=ViewerState.from_render_options({"strip": 2}))
        assert [img.label for img in prompt.queries] == ["strip 2"]
        endpoint = EndpointSettings(base_url=server.base_url, model="loopback", timeout_s=10)
        verdict = asyncio.run(service.inspect_with_vlm(case, prompt, endpoint))
    details = [r.detail for r in verdict.regions]
    # the box on the view it names; the box on a view never sent and the out-of-range range are dropped
    assert details == [{"strip": 2}, {"strips": [1, 2]}, {"strips": [0, 0]}]
    assert verdict.regions[2].reason == "edge"
    box = verdict.regions[0]
    assert (box.x0, box.y0, box.x1, box.y1) == (6, 4, 30, 20)
    assert service.store.latest_verdict(case.id).regions[1].detail == {"strips": [1, 2]}


def test_profile_render_settings_reach_the_renderer_and_viewer_options_win(tmp_path, service):
    profile = service.store.save_profile(Profile(name="strips", modality="strip", settings={"render": {"strip": 1}}))
    case, _ = service.import_file(_strip_folder(tmp_path, "case"))
    assert [i.label for i in service.compose_prompt(case, profile).queries] == ["strip 1"]
    prompt = service.compose_prompt(case, profile, viewer=ViewerState.from_render_options({"strip": 2}))
    assert [i.label for i in prompt.queries] == ["strip 2"]


def test_region_detail_survives_a_round_trip_and_old_regions_still_read():
    region = Region(1, 2, 3, 4, score=0.5, detail={"frames": [3, 9]})
    assert Region.from_dict(json.loads(json.dumps(region.to_dict()))) == region
    old = {"x0": 1, "y0": 2, "x1": 3, "y1": 4, "score": 0.1, "label": "", "reason": ""}
    assert Region.from_dict(old).detail == {}


def test_v2_project_gains_verdict_details(tmp_path):
    path = tmp_path / "old.anomalens"
    import sqlite_utils

    db = sqlite_utils.Database(path)
    from inspector.store.schema import APPLICATION_ID

    for migration in MIGRATIONS[:2]:
        migration(db)
    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    db.execute("PRAGMA user_version = 2")
    db.conn.commit()
    db.conn.close()
    with ProjectStore(path) as store:
        from inspector.model import Case, ScoreSource

        case = store.add_case(Case(name="c", modality="image", source_path="/x", source_sha256="0" * 64))
        store.save_verdict(
            Verdict(
                case_id=case.id,
                source=VerdictSource.OFFLINE,
                anomalous=False,
                score=0.1,
                score_source=ScoreSource.OFFLINE_CALIBRATED,
                details={"frame_scores": [0.1]},
            )
        )
        assert store.latest_verdict(case.id).details == {"frame_scores": [0.1]}
    columns = {row[1] for row in sqlite3.connect(path).execute("PRAGMA table_info(verdicts)")}
    assert "details_json" in columns


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ('{"anomalous": true, "frames": [30, 60]}', [{"range": [30, 60], "unit": "frames"}]),
        (
            '{"anomalous": true, "frames": [[1, 2], [7, 7]]}',
            [{"range": [1, 2], "unit": "frames"}, {"range": [7, 7], "unit": "frames"}],
        ),
        (
            '{"anomalous": true, "ranges": [{"start": "2014-02-01 10:00", "end": "2014-02-01 12:00", '
            '"reason": "spike"}]}',
            [{"range": ["2014-02-01 10:00", "2014-02-01 12:00"], "unit": "ranges", "reason": "spike"}],
        ),
        (
            '{"anomalous": true, "time_ranges": [{"range": [5, 9]}, [3], "nonsense", [null, 4]]}',
            [{"range": [5, 9], "unit": "time_ranges"}],
        ),
        ('{"anomalous": false, "ranges": []}', []),
    ],
)
def test_ranges_are_read_from_json_answers(answer, expected):
    assert parse_answer(answer).regions == expected


@pytest.mark.gui  # the verdict panel's module imports Qt
@pytest.mark.parametrize(
    ("detail", "box", "expected"),
    [
        ({"slice": 12}, (1, 2, 30, 40), "on slice 12 at (1, 2)–(30, 40)"),
        ({"frames": [30, 61]}, (0, 0, 0, 0), "in frames 30–61"),
        ({"frames": [7, 7]}, (0, 0, 0, 0), "in frame 7"),
        (
            {"samples": [100, 250], "times": ["2014-02-01 10:00", "2014-02-01 12:00"]},
            (0, 0, 0, 0),
            "from 2014-02-01 10:00 to 2014-02-01 12:00",
        ),
        ({"samples": [100, 250]}, (0, 0, 0, 0), "in samples 100–250"),
        ({"points": 5312, "view": "view 2"}, (3, 4, 50, 60), "covering 5312 points (view 2) at (3, 4)–(50, 60)"),
        ({}, (0, 0, 0, 0), "(no location)"),
    ],
)
def test_the_verdict_panel_says_where_a_region_is_in_modality_terms(detail, box, expected):
    from views.verdict_panel import where

    assert where(Region(*box, detail=detail)) == expected
