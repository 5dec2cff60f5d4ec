"""The time-series modality, headless: readers, NAB labels, plot views, locating answers, detector, NAB score.

Files are written here with the real libraries (pandas/pyarrow for Parquet, plain text for CSV and
TSV); the NAB corpus comes from ../shared/data through the `shared_data` fixture (skipped when
absent).
"""

from __future__ import annotations

import importlib
import itertools
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from inspector.imaging import CaseReadError
from inspector.inspection import InspectionService
from inspector.model import Profile
from inspector.plugins import OfflineContext, QueryView
from inspector.prompt import compose
from inspector.store import ProjectStore


def _module(name: str):
    """The plugin's helper modules, imported by package path (the plugin uses relative imports only)."""
    return importlib.import_module(f"plugins.timeseries_modality.{name}")


@pytest.fixture
def plugin(registry):
    return registry.modality("time_series")


def _context(options: dict | None = None) -> OfflineContext:
    return OfflineContext(
        references=list,
        image_detector=lambda: None,
        progress=lambda f: None,
        is_cancelled=lambda: False,
        options=options or {},
    )


def _write_csv(path: Path, n: int = 600, spike_at: int | None = 400, sep: str = ",", step_min: int = 10) -> Path:
    rng = np.random.default_rng(3)
    t = np.arange(n)
    values = 20 + 3 * np.sin(2 * np.pi * t / 144) + rng.normal(0, 0.2, n)
    if spike_at is not None:
        values[spike_at] += 15
    stamps = np.datetime64("2024-03-01T00:00") + t * np.timedelta64(step_min, "m")
    lines = [f"timestamp{sep}temperature"]
    lines += [f"{str(s).replace('T', ' ')}{sep}{v:.4f}" for s, v in zip(stamps, values, strict=True)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _queries(views) -> list[QueryView]:
    prompt = compose(Profile(name="p", domain_preset="time_series"), views, [])
    return [QueryView(image, view.view_map) for image, view in zip(prompt.queries, views, strict=True)]


# ---------------------------------------------------------------------------------------------- readers


def test_csv_with_timestamps(plugin, tmp_path):
    loaded = plugin.read(_write_csv(tmp_path / "line.csv"))
    series, meta = loaded.data, loaded.metadata
    assert loaded.modality == "time_series"
    assert series.axis == "datetime" and series.columns == ["temperature"]
    assert series.values.dtype == np.float64 and series.values.shape == (600, 1)
    assert series.time[1] - series.time[0] == 600.0
    assert meta["time_range"] == ["2024-03-01 00:00:00", "2024-03-05 03:50:00"]
    assert meta["sampling"] == "regular" and meta["median_step_text"] == "10 min" and meta["gaps"] == 0
    json.dumps(meta)  # JSON-safe


def test_tsv_parquet_and_no_time_column(plugin, tmp_path):
    import pandas as pd

    tsv = _write_csv(tmp_path / "line.tsv", n=50, spike_at=None, sep="\t")
    assert plugin.read(tsv).data.length == 50 and plugin.read(tsv).metadata["format"] == "tsv"
    frame = pd.DataFrame(
        {
            "when": pd.date_range("2024-01-01", periods=300, freq="1s", tz="Europe/Berlin"),
            "pressure": np.linspace(1, 2, 300),
            "flow": np.arange(300, dtype=np.int32),
        }
    )
    frame.to_parquet(tmp_path / "press.parquet")
    loaded = plugin.read(tmp_path / "press.parquet")
    assert loaded.metadata["format"] == "parquet" and loaded.data.columns == ["pressure", "flow"]
    assert loaded.metadata["time_range"][0] == "2023-12-31 23:00:00"  # converted to UTC
    bare = tmp_path / "bare.csv"
    bare.write_text("a;b\n" + "\n".join(f"{i};{i * 2}" for i in range(40)) + "\n")
    series = plugin.read(bare).data
    assert series.axis == "index" and series.columns == ["a", "b"] and series.time[-1] == 39
    headerless = tmp_path / "headerless.csv"
    headerless.write_text("\n".join(f"{i * 0.5}" for i in range(30)) + "\n")
    assert plugin.read(headerless).data.length == 30


def test_nans_irregular_times_several_columns_and_label_column(plugin, tmp_path):
    path = tmp_path / "irregular.csv"
    seconds = np.cumsum(np.r_[0, np.random.default_rng(1).uniform(1, 5, 199)])
    seconds[120:] += 3600  # a one-hour hole in the recording
    rows = ["time_s,vibration,current,is_anomaly"]
    for i, s in enumerate(seconds):
        vib = "" if i in (10, 11) else f"{np.sin(i / 5):.3f}"
        rows.append(f"{s:.3f},{vib},{'NaN' if i == 50 else i % 7},{1 if 150 <= i <= 160 else 0}")
    path.write_text("\n".join(rows) + "\n")
    loaded = plugin.read(path)
    series, meta = loaded.data, loaded.metadata
    assert series.axis == "numeric" and series.columns == ["vibration", "current"]
    assert meta["nan_counts"] == {"vibration": 2, "current": 1}
    assert meta["sampling"] == "irregular" and meta["gaps"] >= 1
    assert [(w.start, w.end) for w in series.labels] == [(150, 160)]
    assert np.isnan(series.values[10, 0]) and np.isfinite(series.values[12, 0])


def test_unsorted_rows_epoch_column_and_decimal_comma(plugin, tmp_path):
    path = tmp_path / "epoch.csv"
    path.write_text("epoch;value\n1700000600;1,5\n1700000000;2,5\n1700000300;3,5\n")
    loaded = plugin.read(path)
    assert loaded.data.axis == "datetime" and loaded.metadata["sorted_by_time"]
    assert loaded.data.values[:, 0].tolist() == [2.5, 3.5, 1.5]
    assert loaded.metadata["time_range"][0] == "2023-11-14 22:13:20"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"timestamp,value\n", "no data rows"),
        (b"name,comment\nalpha,ok\nbeta,fine\n", "no numeric column"),
        (bytes(range(256)) * 20, "binary data"),
    ],
)
def test_bad_text_input_gives_clear_messages(plugin, tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(CaseReadError) as error:
        plugin.read(path)
    assert message in str(error.value) and "bad.csv" in str(error.value)


def test_bad_parquet_and_service_keeps_the_case(registry, tmp_path):
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1" + b"\x13garbage" * 40)
    with pytest.raises(CaseReadError, match="not a readable Parquet file"):
        registry.modality("time_series").read(broken)
    with ProjectStore(tmp_path / "p.anomalens") as store:
        case, outcome = InspectionService(store, registry).import_file(broken)
        assert outcome == "failed" and "Parquet" in case.error


def test_nab_file_reads_with_its_labels(plugin, shared_data):
    path = shared_data / "nab" / "data" / "realKnownCause" / "nyc_taxi.csv"
    loaded = plugin.read(path)
    series = loaded.data
    table = json.loads((shared_data / "nab" / "labels" / "combined_windows.json").read_text())
    windows = table["realKnownCause/nyc_taxi.csv"]
    assert series.length == 10320 and len(series.labels) == len(windows) == 5
    first = series.labels[0]
    assert loaded.metadata["labels"][0]["times"] == [windows[0][0][:19], windows[0][1][:19]]
    assert series.format_time(series.time[first.start]) == windows[0][0][:19]
    assert "NAB" in loaded.metadata["label_source"]
    assert loaded.metadata["ground_truth"] == "anomalous"


def test_nab_ground_truth_reaches_the_case(registry, shared_data, tmp_path):
    with ProjectStore(tmp_path / "p.anomalens") as store:
        service = InspectionService(store, registry)
        flat, _ = service.import_file(shared_data / "nab" / "data" / "artificialNoAnomaly" / "art_daily_no_noise.csv")
        jumps, _ = service.import_file(shared_data / "nab" / "data" / "artificialWithAnomaly" / "art_daily_jumpsup.csv")
        assert (flat.ground_truth, jumps.ground_truth) == ("normal", "anomalous")
        service.close()


def test_nab_labels_survive_the_embedded_copy(registry, shared_data, tmp_path):
    """The workstation re-reads small cases from a copy in the project: the labels must stay."""
    path = shared_data / "nab" / "data" / "artificialWithAnomaly" / "art_daily_jumpsup.csv"
    with ProjectStore(tmp_path / "p.anomalens") as store:
        service = InspectionService(store, registry)
        case, outcome = service.import_file(path)
        assert outcome == "added" and case.blob_sha256
        service._loaded.clear()  # force a fresh read from the embedded copy
        # as after a restart: nothing remembered from the import (in the module the registry loaded)
        sys.modules["plugins.timeseries_modality.labels"]._REMEMBERED.clear()
        loaded = service.load_case(case)
        assert "nab" not in str(service._unpack_dir).lower()
        assert len(loaded.data.labels) == 1
        assert "NAB" in loaded.metadata["label_source"]
        service.close()


# ---------------------------------------------------------------------------------------------- views


def test_render_windows_overlap_and_map_back(plugin, tmp_path):
    loaded = plugin.read(_write_csv(tmp_path / "long.csv", n=12000, spike_at=None, step_min=1))
    views = plugin.render(loaded, {})
    assert len(views) == 3 and all(v.image.dtype == np.uint8 and v.image.shape[1] == 1024 for v in views)
    spans = [(v.view_map.params["sample_start"], v.view_map.params["sample_end"]) for v in views]
    assert spans[0][0] == 0 and spans[-1][1] == 11999
    assert all(b0 < a1 for (_, a1), (b0, _) in itertools.pairwise(spans))  # overlapping
    assert views[0].label.startswith("window 1 of 3: samples 0-")
    assert views[0].view_map.kind == "sample_range" and views[0].view_map.params["axis"] == "datetime"
    json.dumps(views[0].view_map.to_record())
    chosen = plugin.render(loaded, {"window": [2000, 2999]})
    assert len(chosen) == 1 and chosen[0].label.startswith("samples 2000-2999 (2024-03-02 09:20")
    capped = plugin.render(loaded, {"max_points_per_image": 100, "max_images": 4})
    assert len(capped) == 4
    bad = plugin.render(loaded, {"window": "nonsense"})
    assert bad[0].view_map.params["sample_start"] == 0


def test_plot_draws_the_spike_where_the_map_says(plugin, tmp_path):
    loaded = plugin.read(_write_csv(tmp_path / "spike.csv", n=600, spike_at=400))
    view = plugin.render(loaded, {})[0]
    p = view.view_map.params
    series = loaded.data
    x = p["x_left"] + (series.time[400] - p["t_start"]) / (p["t_end"] - p["t_start"]) * (p["x_right"] - p["x_left"])
    top, bottom = p["panels"][0]["top"], p["panels"][0]["bottom"]
    line = np.all(view.image == (31, 78, 156), axis=2)  # the series colour
    highest_row = {
        col: np.flatnonzero(line[top:bottom, col]).min()
        for col in range(p["x_left"], p["x_right"])
        if line[top:bottom, col].any()
    }
    peak_col = min(highest_row, key=highest_row.get)
    assert abs(peak_col - x) <= 2


def test_locate_ranges_and_boxes(plugin, tmp_path):
    loaded = plugin.read(_write_csv(tmp_path / "loc.csv", n=600))
    views = plugin.render(loaded, {})
    queries = _queries(views)
    region = plugin.locate({"range": ["2024-03-03 18:40", "2024-03-03 19:10"], "unit": "ranges"}, queries, loaded)
    assert region.detail["samples"] == [400, 403]
    assert region.detail["times"] == ["2024-03-03 18:40:00", "2024-03-03 19:10:00"]
    iso = plugin.locate({"range": ["2024-03-03T18:40:00Z", "2024-03-03T18:40:00Z"]}, queries, loaded)
    assert iso.detail["samples"] == [400, 400]
    by_index = plugin.locate({"range": [100, 120]}, queries, loaded)
    assert by_index.detail["samples"] == [100, 120]
    p = views[0].view_map.params

    def x_of(i: int) -> float:
        fraction = (loaded.data.time[i] - p["t_start"]) / (p["t_end"] - p["t_start"])
        return p["x_left"] + fraction * (p["x_right"] - p["x_left"])

    box = plugin.locate({"box": [x_of(300), 60, x_of(350), 120], "view": views[0].label}, queries, loaded)
    assert abs(box.detail["samples"][0] - 300) <= 1 and abs(box.detail["samples"][1] - 350) <= 1
    assert box.detail["column"] == "temperature"
    assert plugin.locate({"range": ["2030-01-01", "2030-01-02"]}, queries, loaded) is None
    assert plugin.locate({"range": ["soon", "later"]}, queries, loaded) is None
    assert plugin.locate({"box": [0, 0, 40, 20], "view": views[0].label}, queries, loaded) is None  # margin
    narrowed = _queries(plugin.render(loaded, {"window": [0, 99]}))
    assert plugin.locate({"range": [300, 310]}, narrowed, loaded) is None  # not what the model was shown


# ---------------------------------------------------------------------------------------------- detector


def test_detector_has_no_look_ahead_and_finds_a_spike():
    detector = _module("detector")
    rng = np.random.default_rng(0)
    x = 5 + np.sin(np.arange(3000) / 20) + rng.normal(0, 0.1, 3000)
    x[2000] += 4
    full = detector.detect(x).scores
    prefix = detector.detect(x[:2100]).scores
    np.testing.assert_allclose(full[:2100], prefix, atol=1e-9)
    assert full[:150].max() == 0  # warm-up
    result = detector.detect(x)
    assert any(a <= 2000 <= b for a, b in result.ranges)
    assert full[2000] > 0.9 and np.median(full[200:]) < 0.1


def test_offline_detect_outcome(plugin, tmp_path):
    path = _write_csv(tmp_path / "od.csv", n=3000, spike_at=2500)
    loaded = plugin.read(path)
    outcome = plugin.offline_detect(loaded, _context())
    assert outcome.anomalous and outcome.score >= 0.5 and outcome.heatmap is None
    assert any(r.detail["samples"][0] <= 2500 <= r.detail["samples"][1] for r in outcome.regions)
    region = outcome.regions[0]
    assert region.detail["times"][0].startswith("2024-03-") and region.detail["column"] == "temperature"
    scores = outcome.details["sample_scores"]
    assert len(scores) == 3000 and outcome.details["sample_scores_step"] == 1 and max(scores) >= 0.5
    json.dumps(outcome.details)
    calm = plugin.read(_write_csv(tmp_path / "calm.csv", n=3000, spike_at=None))
    quiet = plugin.offline_detect(calm, _context())
    assert not quiet.anomalous and quiet.score < 0.5 and "No range" in quiet.explanation


def test_sample_scores_are_pooled_for_long_series():
    detector = _module("detector")
    scores = np.zeros(120_001)
    scores[77_777] = 0.9
    pooled, step = detector.pooled_scores(scores, 50_000)
    assert step == 3 and len(pooled) == 40_001 and pooled[77_777 // 3] == 0.9


# ---------------------------------------------------------------------------------------------- NAB score


def test_nab_scoring_follows_the_published_rules():
    nab = _module("nab_scoring")
    standard = nab.PROFILES["standard"]
    windows = [(500, 599)]
    n = 1000

    def raw(detections: list[int]) -> float:
        scores = np.zeros(n)
        scores[detections] = 1.0
        return nab.score_file(nab.sweep_file("f", "g", scores, windows, standard), 1.0, standard).raw

    assert raw([]) == -1.0  # a missed window costs A_FN
    assert raw([500]) == pytest.approx(1.0)  # detected at the left edge: the full A_TP
    assert raw([599]) == pytest.approx(0.0253, abs=1e-3)  # at the right edge: almost nothing
    assert raw([500, 520]) == pytest.approx(1.0)  # only the earliest detection counts
    assert raw([500, 300]) == pytest.approx(1.0 - 0.11)  # an FP before any window: -A_FP
    assert raw([500, 950]) == pytest.approx(1.0 - 0.11)  # over 3 window widths after: the full -A_FP
    sigma = 2 / (1 + np.exp(5 * (620 - 599) / 99)) - 1  # just after the window: a smaller penalty
    assert raw([500, 620]) == pytest.approx(1.0 + 0.11 * sigma)
    assert raw([500, 100]) == pytest.approx(1.0)  # inside the probationary period: not scored
    scored = [nab.sweep_file("f", "g", np.where(np.arange(n) == 500, 1.0, 0.0), windows, standard)]
    threshold, total = nab.sweep_thresholds(scored, standard).best()
    assert threshold == 1.0 and total == pytest.approx(1.0)
    assert nab.null_total(scored, standard) == -1.0
    assert nab.normalised(total, -1.0, 1.0) == pytest.approx(100.0)
    assert nab.prf(*nab.range_f1([(490, 510), (700, 710)], windows)) == pytest.approx((0.5, 1.0, 2 / 3))


def test_offline_inspection_needs_no_references_and_references_are_plots(registry, tmp_path):
    path = _write_csv(tmp_path / "svc.csv", n=3000, spike_at=2500)
    with ProjectStore(tmp_path / "p.anomalens") as store:
        service = InspectionService(store, registry)
        profile = store.save_profile(
            Profile(
                name="empty",
                modality="time_series",
                domain_preset="time_series",
                settings={"time_series": {"detector": {"min_length": 1}}},
            )
        )
        case, _ = service.import_file(path, profile.id)
        verdict = service.inspect_offline(case, profile)
        assert verdict.anomalous and verdict.details["detector"]["min_length"] == 1
        assert len(store.latest_verdict(case.id).details["sample_scores"]) == 3000
        assert any(r.detail["samples"][0] <= 2500 <= r.detail["samples"][1] for r in verdict.regions)
        assert service.add_reference_file(profile.id, path) == 1
        ((name, rgb, _),) = service.reference_images(profile.id)
        assert name.startswith("svc samples 0-2999") and rgb.shape[1] == 1024
        service.close()
