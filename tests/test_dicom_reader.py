"""DICOM modality, headless: pydicom's bundled test files, series written with pydicom, bad input,
rendering for the model, mapping boxes back to slices, de-identification of what is sent.

pydicom's test files are opened by name from its package folder (never through
``get_testdata_file``: that searches online and hangs without network).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from inspector.imaging import CaseReadError
from inspector.inspection import InspectionService
from inspector.model import CaseStatus, Profile, ViewerState
from inspector.plugins import QueryView
from inspector.prompt import compose
from inspector.store import ProjectStore
from plugins.dicom_modality import synthetic

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
PATIENT_NAME = synthetic.FAKE_PATIENT["PatientName"]


def bundled(name: str) -> Path:
    path = TEST_FILES / name
    if not path.is_file():
        pytest.skip(f"pydicom's test file {name} is not installed")
    return path


def pydicom_values(path: Path) -> np.ndarray:
    """Reference: pydicom's own modality LUT output, frames first."""
    from pydicom.pixels import apply_modality_lut

    ds = pydicom.dcmread(path)
    values = apply_modality_lut(ds.pixel_array, ds).astype(np.float64)
    return values[None] if values.ndim == 2 else values


def write_ct_series(
    folder: Path, n: int = 9, size: tuple[int, int] = (128, 128), lesion: tuple[int, ...] = (), **kwargs
) -> np.ndarray:
    hu = synthetic.ct_phantom(n, size, seed=n, lesion_slices=lesion)
    synthetic.write_series(folder, hu, **kwargs)
    return hu


@pytest.fixture
def dicom(registry):
    return registry.modality("dicom")


@pytest.fixture
def series(tmp_path) -> tuple[Path, np.ndarray]:
    folder = tmp_path / "ct_series"
    return folder, write_ct_series(folder, lesion=(6,))


@pytest.fixture
def service(tmp_path, registry):
    store = ProjectStore(tmp_path / "p.anomalens")
    service = InspectionService(store, registry)
    yield service
    service.close()
    store.close()


# ---------------------------------------------------------------------- bundled files


@pytest.mark.parametrize(
    "name, shape, units, window_source",
    [
        ("CT_small.dcm", (1, 128, 128), "HU", "auto"),  # signed 16-bit, rescale intercept -1024
        ("MR_small.dcm", (1, 64, 64), "", "file"),  # signed 16-bit, WindowCenter/Width 600/1600
        ("MR_small_bigendian.dcm", (1, 64, 64), "", "file"),
        ("examples_overlay.dcm", (1, 300, 484), "", "file"),  # 12 bits stored in 16
        ("image_dfl.dcm", (1, 512, 512), "", "auto"),  # 8-bit, deflated transfer syntax
        ("rtdose.dcm", (15, 10, 10), "RELATIVE", "auto"),  # multi-frame, 32-bit, dose grid scaling
    ],
)
def test_bundled_grey_files_match_pydicom_in_modality_units(dicom, name, shape, units, window_source):
    path = bundled(name)
    loaded = dicom.read(path)
    volume = loaded.data
    assert volume.voxels.shape == shape and not volume.is_color
    assert volume.units == units and volume.window_source == window_source
    expected = pydicom_values(path)
    if name == "rtdose.dcm":
        expected = expected * float(pydicom.dcmread(path).DoseGridScaling)
    np.testing.assert_allclose(volume.voxels.astype(np.float64), expected, rtol=1e-5, atol=1e-6)
    json.dumps(loaded.metadata)  # stored in the project file as JSON
    assert loaded.metadata["slices"] == shape[0]


def test_signed_ct_with_rescale_is_in_hounsfield_units(dicom):
    volume = dicom.read(bundled("CT_small.dcm")).data
    raw = pydicom.dcmread(bundled("CT_small.dcm")).pixel_array
    assert raw.dtype == np.int16 and pydicom.dcmread(bundled("CT_small.dcm")).PixelRepresentation == 1
    assert volume.voxels.dtype == np.int16  # exact in int16: half the memory of float32
    np.testing.assert_array_equal(volume.voxels[0], raw.astype(np.int32) - 1024)
    assert volume.slice_values(0).dtype == np.float32


def test_negative_stored_values_with_a_fractional_slope_become_float32(dicom, tmp_path):
    raw = np.linspace(-2000, 2000, 2 * 6 * 5).astype(np.int16).reshape(2, 6, 5)
    path = synthetic.write_multiframe(tmp_path / "pet.dcm", raw, modality="PT", slope=0.25, intercept=10.0)
    volume = dicom.read(path).data
    assert volume.voxels.dtype == np.float32 and volume.voxels.shape == (2, 6, 5)
    np.testing.assert_allclose(volume.voxels, raw * 0.25 + 10.0)
    assert volume.voxels.min() < -400  # the sign survived


def test_multiframe_colour_file_is_a_stack_of_rgb_slices(dicom):
    loaded = dicom.read(bundled("examples_ybr_color.dcm"))  # 30 frames, YBR_FULL_422 JPEG
    volume = loaded.data
    assert volume.voxels.shape == (30, 240, 320, 3) and volume.is_color
    assert loaded.metadata["source"] == "multi-frame file"
    reference = pydicom.dcmread(bundled("examples_ybr_color.dcm")).pixel_array
    np.testing.assert_array_equal(volume.windowed(29), reference[29])
    views = dicom.render(loaded, {})
    assert [v.label for v in views] == ["slice 16/30"] and views[0].view_map.params["slice"] == 15


@pytest.mark.parametrize("name", ["MR_small_RLE.dcm", "MR_small_jp2klossless.dcm"])
def test_compressed_files_with_an_installed_decoder_read_like_the_uncompressed_one(dicom, name):
    plain = dicom.read(bundled("MR_small.dcm")).data.voxels
    np.testing.assert_array_equal(dicom.read(bundled(name)).data.voxels, plain)


def test_compressed_file_without_decoder_names_the_packages(dicom):
    from pydicom.pixels import get_decoder

    path = bundled("MR_small_jpeg_ls_lossless.dcm")
    if get_decoder(pydicom.dcmread(path).file_meta.TransferSyntaxUID).is_available:
        pytest.skip("a JPEG-LS decoder is installed here; see the simulated test")
    with pytest.raises(CaseReadError) as error:
        dicom.read(path)
    message = str(error.value)
    assert message.startswith("MR_small_jpeg_ls_lossless.dcm: the pixels are compressed as JPEG-LS Lossless")
    assert "no decoder for it is installed" in message and "pylibjpeg-libjpeg" in message


def test_missing_decoder_message_when_simulated(dicom, monkeypatch):
    """The message path does not depend on which decoders happen to be installed."""
    import pydicom.pixels

    class Unavailable:
        is_available = False
        missing_dependencies = ("pylibjpeg - requires pylibjpeg>=2.0 and pylibjpeg-openjpeg>=2.0",)

    monkeypatch.setattr(pydicom.pixels, "get_decoder", lambda uid: Unavailable())
    with pytest.raises(CaseReadError, match=r"compressed as JPEG 2000 .*Install pylibjpeg>=2.0 and pylibjpeg-openjpeg"):
        dicom.read(bundled("MR_small_jp2klossless.dcm"))


def test_monochrome1_is_inverted_at_display_only(dicom, tmp_path):
    raw = np.tile(np.arange(0, 4000, 125, dtype=np.uint16), (8, 1))[None]  # 8 x 32, dark to bright
    path = synthetic.write_multiframe(
        tmp_path / "cr.dcm", raw, modality="CR", photometric="MONOCHROME1", bits_stored=12, window=(2000, 4000)
    )
    volume = dicom.read(path).data
    assert volume.invert
    np.testing.assert_array_equal(volume.voxels[0], raw[0])  # values stay values
    shown = volume.windowed(0)
    assert shown[0, 0] > 250 and shown[0, -1] < 10  # low values bright, high values dark


def test_raw_dataset_without_preamble_still_opens(dicom, tmp_path):
    path = synthetic.write_multiframe(tmp_path / "mf.dcm", np.arange(128, dtype=np.int16).reshape(2, 8, 8))
    ds = pydicom.dcmread(path)
    del ds.file_meta
    ds.preamble = None
    raw_path = tmp_path / "old.dcm"
    ds.save_as(raw_path, implicit_vr=True, little_endian=True, enforce_file_format=False)
    assert raw_path.read_bytes()[128:132] != b"DICM"
    volume = dicom.read(raw_path).data
    assert volume.voxels.shape == (2, 8, 8) and int(volume.voxels[1, 0, 0]) == 64


# ---------------------------------------------------------------------- bad input


def test_bad_files_give_clear_messages_and_do_not_stop_the_import(tmp_path, service):
    truncated = tmp_path / "MR_truncated.dcm"
    shutil.copy(bundled("MR_truncated.dcm"), truncated)
    not_dicom = tmp_path / "scan.dcm"
    not_dicom.write_bytes(b"Patient notes, not an image\n" * 40)
    header_only = tmp_path / "cut.dcm"
    header_only.write_bytes(bundled("CT_small.dcm").read_bytes()[:2000])
    report = tmp_path / "report.dcm"
    shutil.copy(bundled("reportsi.dcm"), report)
    good = tmp_path / "CT_small.dcm"
    shutil.copy(bundled("CT_small.dcm"), good)
    result = service.import_files([truncated, not_dicom, header_only, report, good])
    errors = {c.name: c.error for c in result.failed}
    assert errors["MR_truncated.dcm"].startswith("MR_truncated.dcm: the file ends early (truncated)")
    assert "8130 of 8192 bytes" in errors["MR_truncated.dcm"]
    assert errors["scan.dcm"].startswith("scan.dcm: not a DICOM file")
    assert "truncated" in errors["cut.dcm"]
    assert "holds no image (Basic Text SR Storage)" in errors["report.dcm"]
    assert [c.name for c in result.added] == ["CT_small.dcm"]
    assert all(c.status == CaseStatus.ERROR for c in result.failed)


def test_folder_of_only_broken_files_is_one_clear_error(tmp_path, dicom):
    folder = tmp_path / "broken"
    folder.mkdir()
    shutil.copy(bundled("MR_truncated.dcm"), folder / "a.dcm")
    with pytest.raises(CaseReadError, match=r"broken: none of the series' images could be decoded.*truncated"):
        dicom.read(folder)


# ---------------------------------------------------------------------- series folders


def test_series_folder_is_one_case_sorted_by_position(tmp_path, registry, series):
    folder, hu = series
    assert registry.expand_paths([tmp_path]) == [folder]  # the folder is a case, not its files
    plugin = registry.modality_for_path(folder)
    loaded = plugin.read(folder)
    volume = loaded.data
    assert volume.voxels.shape == (9, 128, 128) and volume.voxels.dtype == np.int16
    # Instance numbers count down and file names are shuffled: position wins.
    assert [int(v) for v in volume.voxels[:, 0, 0]] == [-1000 + 2 * k for k in range(9)]
    np.testing.assert_array_equal(volume.voxels, hu)
    assert volume.spacing == pytest.approx((2.5, 0.7, 0.7))
    assert volume.window == (40.0, 400.0) and volume.window_source == "file" and volume.units == "HU"
    meta = loaded.metadata
    assert meta["sorted_by"] == "position along the slice normal" and meta["files"] == 9
    assert meta["patient"]["PatientName"] == PATIENT_NAME and meta["patient"]["PatientID"] == "SYN-0042"
    assert "StudyDate" in meta["patient"] and "SeriesInstanceUID" in meta["patient"]
    outside = json.dumps({k: v for k, v in meta.items() if k != "patient"})
    assert "SYNTHETIC" not in outside and "SYN-0042" not in outside and "20240102" not in outside


def test_folder_with_two_series_a_localizer_junk_and_a_broken_file(tmp_path, dicom):
    folder = tmp_path / "mixed"
    write_ct_series(folder, n=6)
    scout = tmp_path / "scout"
    synthetic.write_series(scout, synthetic.ct_phantom(2, (128, 128), seed=5), description="Scout", seed=3)
    for path in scout.iterdir():
        shutil.move(path, folder / f"SC_{path.name}")
    first = sorted(folder.glob("IM*.dcm"))[0]
    localizer = pydicom.dcmread(first)  # same series, another size
    localizer.Rows, localizer.Columns = 64, 96
    localizer.PixelData = np.zeros((64, 96), np.int16).tobytes()
    localizer.save_as(folder / "LOC.dcm", enforce_file_format=True)
    (folder / "notes.txt").write_text("acquired on the new scanner")
    (folder / "IM09999.dcm").write_bytes(first.read_bytes()[:-500])
    loaded = dicom.read(folder)
    volume, meta = loaded.data, loaded.metadata
    assert volume.n_slices == 6
    notes = " ".join(meta["notes"])
    assert "holds 2 series; the largest (8 files) is shown" in notes
    assert "1 image(s) of another size" in notes and "LOC.dcm" in notes
    assert "1 file(s) could not be read" in notes and "IM09999.dcm: the file ends early (truncated)" in notes
    # the other series by number, not by its description (free text, hidden like patient data)
    assert meta["other_series"] == [{"files": 2, "modality": "CT", "series_number": 3}]


def test_which_folders_are_claimed(tmp_path, dicom):
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    shutil.copy(bundled("CT_small.dcm"), mixed / "a.dcm")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(mixed / "b.png")
    tree = tmp_path / "study"
    write_ct_series(tree / "series1", n=2)
    side = tmp_path / "with_side_files"
    write_ct_series(side, n=2)
    (side / "DICOMDIR").write_bytes(b"\0" * 128 + b"DICM")
    (side / "readme.txt").write_text("x")
    assert not dicom.claims_folder(mixed)
    assert not dicom.claims_folder(tree) and dicom.claims_folder(tree / "series1")
    assert dicom.claims_folder(side) and dicom.read(side).data.n_slices == 2


# ---------------------------------------------------------------------- views for the model


def _queries(views, profile=None):
    prompt = compose(profile or Profile(name="p", domain_preset="medical"), views, [])
    return prompt, [QueryView(image, view.view_map) for image, view in zip(prompt.queries, views, strict=True)]


def test_default_view_is_the_middle_slice_with_the_default_window(dicom, series):
    folder, hu = series
    loaded = dicom.read(folder)
    (view,) = dicom.render(loaded, {})
    assert view.label == "slice 5/9, W 400 L 40"
    assert view.image.shape == (384, 384, 3) and view.image.dtype == np.uint8  # 128 px enlarged for the model
    params = view.view_map.params
    assert view.view_map.kind == "slice" and params["slice"] == 4 and params["case_size"] == [128, 128]
    assert params["scale_x"] == pytest.approx(1 / 3)
    expected = np.clip((hu[4].astype(np.float32) - (40 - 200)) * 255 / 400, 0, 255).astype(np.uint8)
    small = np.asarray(Image.fromarray(view.image[:, :, 0]).resize((128, 128), Image.Resampling.BOX))
    assert np.abs(small.astype(int) - expected.astype(int)).mean() < 6
    (again,) = dicom.render(loaded, {"slice": 4, "window": [40, 400]})
    np.testing.assert_array_equal(again.image, view.image)  # what the viewer sends by default


def test_options_choose_slices_and_window(dicom, series):
    loaded = dicom.read(series[0])
    (lung,) = dicom.render(loaded, {"slice": 2, "window": [-600, 1500]})
    assert lung.label == "slice 3/9, W 1500 L -600" and lung.view_map.params["window"] == [-600, 1500]
    several = dicom.render(loaded, {"slice": 0, "slices": [7, 1, 99]})
    assert [v.view_map.params["slice"] for v in several] == [1, 7, 8]
    spread = dicom.render(loaded, {"slices": 3})
    assert [v.view_map.params["slice"] for v in spread] == [2, 4, 6]
    (junk,) = dicom.render(loaded, {"slice": "x", "window": "wide"})
    assert junk.view_map.params["slice"] == 4 and junk.view_map.params["window"] == [40, 400]


def test_boxes_on_a_sent_slice_become_regions_in_slice_pixels(dicom, series):
    loaded = dicom.read(series[0])
    views = dicom.render(loaded, {"slices": [2, 6]})
    _, queries = _queries(views)
    label = views[1].label
    region = dicom.locate({"box": [120, 60, 240, 180], "view": label, "label": "lesion"}, queries, loaded)
    assert region.detail == {"slice": 6} and region.label == "lesion"
    assert (region.x0, region.y0, region.x1, region.y1) == pytest.approx((40, 20, 80, 60))
    # a model that writes only "slice 7" still means the seventh slice
    echoed = dicom.locate({"box": [0, 0, 30, 30], "view": "Image to inspect: slice 7"}, queries, loaded)
    assert echoed.detail == {"slice": 6} and echoed.x1 == pytest.approx(10)
    assert dicom.locate({"box": [0, 0, 30, 30]}, queries, loaded) is None  # two views: which one?
    assert dicom.locate({"box": [0, 0, 30, 30], "view": "slice 4"}, queries, loaded) is None  # not sent
    assert dicom.locate({"range": [2, 5], "unit": "ranges"}, queries, loaded) is None


def test_non_square_pixels_are_resampled_and_mapped_back(dicom, tmp_path):
    folder = tmp_path / "aniso"
    write_ct_series(folder, n=3, size=(100, 200), spacing=(3.0, 1.0, 0.5))  # pixels twice as tall as wide
    loaded = dicom.read(folder)
    assert loaded.data.pixel_aspect == pytest.approx(2.0)
    (view,) = dicom.render(loaded, {})
    assert view.image.shape[:2] == (384, 384)  # 200 x 100 px of 0.5 x 1.0 mm is square in mm
    _, queries = _queries([view])
    region = dicom.locate({"box": [0, 192, 192, 384]}, queries, loaded)
    assert (region.x0, region.y0, region.x1, region.y1) == pytest.approx((0, 50, 100, 100))


def test_nothing_identifying_is_sent_to_the_model(dicom, series, tmp_path):
    loaded = dicom.read(series[0])
    profile = Profile(name="Head CT", class_name="non-contrast head CT", domain_preset="medical")
    prompt, _ = _queries(dicom.render(loaded, {"slices": 3}), profile)
    sent = prompt.system + prompt.text + json.dumps(prompt.to_record())
    for value in loaded.metadata["patient"].values():
        assert len(str(value)) < 4 or str(value) not in sent  # ("O" for sex is in any text)
    for image in prompt.images:  # PNGs without text chunks: pixels only
        assert b"tEXt" not in image.png and b"iTXt" not in image.png and PATIENT_NAME.encode() not in image.png
    assert prompt.preset == "medical"
    assert dicom.default_preset == "medical"


def test_reference_images_are_the_windowed_middle_slice(dicom, series):
    loaded = dicom.read(series[0])
    ((name, image),) = dicom.reference_images(loaded)
    # never the file or folder name: it goes into captions and is often the patient's name or number
    assert name == "DICOM reference, slice 5/9" and "ct_series" not in name
    np.testing.assert_array_equal(image, dicom.render(loaded, {})[0].image)


def test_service_composes_the_viewer_slice_and_stores_deidentified_metadata(service, series):
    case, outcome = service.import_file(series[0])
    assert outcome == "added" and case.modality == "dicom" and case.metadata["source_kind"] == "folder"
    profile = service.store.save_profile(
        Profile(name="CT", class_name="chest CT", domain_preset="medical", modality="dicom")
    )
    prompt = service.compose_prompt(
        case, profile, viewer=ViewerState.from_render_options({"slice": 6, "window": [-600, 1500]})
    )
    assert [img.label for img in prompt.queries] == ["slice 7/9, W 1500 L -600"]
    stored = service.store.case(case.id)
    assert stored.metadata["patient"]["PatientName"] == PATIENT_NAME  # kept, but apart
    assert PATIENT_NAME not in json.dumps(stored.metadata["tags"])


def test_offline_detector_scores_the_middle_slice_and_says_which(service, tmp_path):
    normal = tmp_path / "normal"
    write_ct_series(normal, n=3, size=(96, 96))
    sick = tmp_path / "sick"
    write_ct_series(sick, n=3, size=(96, 96), lesion=(1,))
    profile = service.store.save_profile(Profile(name="CT", domain_preset="medical", modality="dicom"))
    assert service.add_reference_file(profile.id, normal) == 1
    case, _ = service.import_file(sick)
    verdict = service.inspect_offline(case, profile)
    assert verdict.details["slice"] == 1 and verdict.details["slice_scores"].keys() == {"1"}
    assert verdict.explanation.startswith("Slice 2/3:")
    heat = service.heatmap(verdict)
    assert heat.shape == (96, 96)  # in slice pixels, whatever size the detector saw
    assert all(r.detail["slice"] == 1 and r.x1 <= 96 and r.y1 <= 96 for r in verdict.regions)


def test_offline_detector_scores_the_slice_the_viewer_shows(service, tmp_path):
    normal = tmp_path / "normal"
    write_ct_series(normal, n=3, size=(96, 96))
    sick = tmp_path / "sick"
    write_ct_series(sick, n=3, size=(96, 96), lesion=(2,))
    profile = service.store.save_profile(Profile(name="CT", domain_preset="medical", modality="dicom"))
    service.add_reference_file(profile.id, normal)
    case, _ = service.import_file(sick)
    verdict = service.inspect_offline(
        case, profile, viewer=ViewerState.from_render_options({"slice": 2, "window": [40, 400]})
    )
    assert verdict.details["slice"] == 2 and verdict.details["slice_scores"].keys() == {"2"}
    assert verdict.explanation.startswith("Slice 3/3:")


# ---------------------------------------------------------------------- neighbours: start-up, medical PNG/JPEG


def test_loading_plugins_and_checking_folders_does_not_import_pydicom(tmp_path):
    import subprocess
    import sys

    folder = tmp_path / "series"
    write_ct_series(folder, n=2, size=(16, 16))
    code = (
        "import sys; from inspector.plugins import discover; registry = discover(); "
        f"assert registry.folder_modality(__import__('pathlib').Path({str(folder)!r})).name == 'dicom'; "
        "print('pydicom' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_medical_jpegs_stay_with_the_image_modality(registry, shared_data):
    tumour = shared_data / "brain_mri" / "yes"
    first = sorted(tumour.iterdir())[0]
    assert registry.modality_for_path(first).name == "image"
    assert not registry.modality("dicom").claims_folder(tumour)
