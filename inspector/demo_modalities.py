"""Demo cases for the non-image modalities, generated on first use (nothing to download).

A sensor series, scanned parts (point clouds), walkway camera clips and head-CT series let an
operator try every viewer with no data of their own. They are synthesised here with fixed seeds
(so the demo is the same everywhere) and written in the formats the readers take (CSV, binary PLY,
MPEG-4, CT series with made-up patient tags); one real CT slice from pydicom's own test files is
added to the CT profile. Generated files go to the user data folder,
not the repository.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from inspector.model import Profile

log = logging.getLogger(__name__)


@dataclass
class DemoSet:
    """One demo profile with its normal references and its cases (name -> ground truth)."""

    profile: Profile
    references: list[Path] = field(default_factory=list)
    cases: dict[Path, str | None] = field(default_factory=dict)  # ground truth, None when unknown


# --------------------------------------------------------------------------------------- series

def write_sensor_series(path: Path, seed: int = 7) -> Path:
    """Two weeks of a 10-minute temperature signal: daily cycle, noise, a spike and a level shift."""
    rng = np.random.default_rng(seed)
    n = 14 * 24 * 6
    t = np.arange(n)
    values = 60 + 4 * np.sin(2 * np.pi * t / 144) + rng.normal(0, 0.4, n)
    values[1200:1206] += 9  # a short overheating spike
    values[1500:1650] += 3.5  # a sustained shift (a fouled cooler)
    values[1900] = np.nan  # a dropped reading
    start = np.datetime64("2026-03-02T00:00")
    stamps = start + t * np.timedelta64(10, "m")
    lines = ["timestamp,temperature_c"]
    lines += [f"{str(s).replace('T', ' ')},{'' if np.isnan(v) else f'{v:.3f}'}"
              for s, v in zip(stamps, values, strict=True)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------- clouds

def _bracket_points(rng: np.random.Generator, n: int, dent: bool) -> np.ndarray:
    """A curved sheet-metal panel (a shallow saddle), optionally with a round dent."""
    x = rng.uniform(-1.0, 1.0, n)
    y = rng.uniform(-0.6, 0.6, n)
    z = 0.15 * x**2 - 0.1 * y**2
    if dent:
        r2 = (x - 0.35) ** 2 + (y + 0.1) ** 2
        z -= 0.12 * np.exp(-r2 / 0.015)
    z += rng.normal(0, 0.002, n)
    return np.stack([x, y, z], axis=1).astype(np.float32)


def write_ply(path: Path, points: np.ndarray) -> Path:
    """Binary little-endian PLY with x, y, z float properties."""
    header = (f"ply\nformat binary_little_endian 1.0\ncomment Anomalens demo part\nelement vertex {len(points)}\n"
              "property float x\nproperty float y\nproperty float z\nend_header\n")
    path.write_bytes(header.encode("ascii") + points.astype("<f4").tobytes())
    return path


# --------------------------------------------------------------------------------------- video

def write_walkway_video(path: Path, seed: int, with_cart: bool, frames: int = 72, walkers: int = 6) -> Path:
    """A top-down walkway: pedestrians (small slow blobs) and, optionally, a fast bright cart."""
    import av

    h, w = 144, 224
    yy, xx = np.mgrid[:h, :w]
    # one fixed camera: the walkway itself is the same in every clip, only the people differ
    ground_noise = np.random.default_rng(0).normal(0, 3, (h, w))
    ground = (110 + 20 * np.sin(xx / 17.0) * np.cos(yy / 23.0) + ground_noise).clip(0, 255)
    rng = np.random.default_rng(seed)
    people = [(rng.uniform(10, w - 10), rng.uniform(20, h - 20), rng.uniform(-0.8, 0.8)) for _ in range(walkers)]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=12)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.bit_rate = 600_000
        for k in range(frames):
            frame = ground.copy()
            for x0, y0, vy in people:
                cy = (y0 + vy * k) % h
                frame[(xx - x0) ** 2 + (yy - cy) ** 2 < 16] = 40
            if with_cart and 30 <= k < 54:
                cx = 10 + (k - 30) * 8
                frame[(abs(xx - cx) < 9) & (abs(yy - 70) < 6)] = 235
            rgb = np.repeat(frame.astype(np.uint8)[:, :, None], 3, axis=2)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


# --------------------------------------------------------------------------------------- CT

DEMO_PATIENT = {"PatientName": "DEMO^PATIENT", "PatientID": "DEMO-0001", "PatientBirthDate": "19600101",
                "PatientSex": "O", "InstitutionName": "Anomalens demo"}  # made up: shows the hidden tags


def write_ct_series(folder: Path, seed: int, lesion: bool, slices: int = 16, size: int = 128) -> Path:
    """A head-CT-like phantom series (one file per slice, int16 with rescale, window tags): skull
    ring, brain, ventricles, noise; with `lesion`, a dense round focus on the central slices."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    centre = (size - 1) / 2.0
    study, series = generate_uid(), generate_uid()
    for k in range(slices):
        taper = 1.0 + 0.6 * ((k - slices / 2) / slices) ** 2
        head = (((yy - centre) / (0.40 * size)) ** 2 + ((xx - centre) / (0.33 * size)) ** 2) * taper
        hu = np.where(head < 1.0, 35.0, -1000.0)
        hu = np.where((head > 0.80) & (head < 1.0), 1200.0, hu)  # skull
        for side in (-1, 1):
            ventricle = ((yy - centre) / (0.10 * size)) ** 2 + ((xx - centre - side * 0.06 * size) / (0.03 * size)) ** 2
            hu = np.where(ventricle < 1.0, 5.0, hu)
        hu += rng.normal(0, 4, hu.shape)
        if lesion and abs(k - slices // 2) <= 2:
            focus = ((yy - centre + 0.12 * size) ** 2 + (xx - centre - 0.12 * size) ** 2) < (0.07 * size) ** 2
            hu[focus] = 75.0  # a small hyperdense focus (as a bleed looks)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = CTImageStorage, meta.MediaStorageSOPInstanceUID, "CT"
        for key, value in DEMO_PATIENT.items():
            setattr(ds, key, value)
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SeriesDescription = study, series, "Demo head CT"
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [0.0, 0.0, 5.0 * k]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing, ds.SliceThickness = [1.5, 1.5], 5.0
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024.0, 1.0, "HU"
        ds.WindowCenter, ds.WindowWidth = 40.0, 80.0
        ds.Rows = ds.Columns = size
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.PixelData = np.clip(np.round(hu + 1024.0), -32768, 32767).astype(np.int16).tobytes()
        ds.save_as(folder / f"IM{k + 1:04d}.dcm", enforce_file_format=True)
    return folder


# --------------------------------------------------------------------------------------- sets

def _ct_test_file() -> Path | None:
    """pydicom's bundled CT_small.dcm, found by name (never pydicom's download-capable search)."""
    try:
        import pydicom
    except ImportError:
        return None
    path = Path(pydicom.__file__).parent / "data" / "test_files" / "CT_small.dcm"
    return path if path.is_file() else None


def demo_sets(folder: Path) -> list[DemoSet]:
    """Write the demo files into `folder` (once) and describe the profiles that use them."""
    folder.mkdir(parents=True, exist_ok=True)
    sets: list[DemoSet] = []
    rng = np.random.default_rng(11)

    series = DemoSet(Profile(
        name="Cooling line sensor (demo)", class_name="coolant temperature", modality="time_series",
        domain_preset="time_series",
        normal_standards="A daily cycle of about ±4 °C around 60 °C, readings every 10 minutes, noise under 1 °C.",
        expected_defects="spikes above the cycle\nsustained level shifts (fouled cooler)\nmissing readings"))
    series.cases[write_sensor_series(folder / "coolant_temperature.csv")] = "anomalous"
    sets.append(series)

    cloud = DemoSet(Profile(
        name="Sheet-metal panel scan (demo)", class_name="curved sheet-metal panel", modality="point_cloud",
        domain_preset="point_cloud",
        normal_standards="A smooth saddle-shaped panel; the surface curves gently and evenly, no sharp changes.",
        expected_defects="dent\nbump\nmissing material"))
    for i in range(3):
        cloud.references.append(write_ply(folder / f"panel_reference_{i}.ply", _bracket_points(rng, 30_000, False)))
    cloud.cases[write_ply(folder / "panel_normal.ply", _bracket_points(rng, 30_000, False))] = "normal"
    cloud.cases[write_ply(folder / "panel_dented.ply", _bracket_points(rng, 30_000, True))] = "anomalous"
    sets.append(cloud)

    video = DemoSet(Profile(
        name="Walkway camera (demo)", class_name="pedestrian walkway", modality="video",
        domain_preset="surveillance",
        normal_standards="Only pedestrians walking at ordinary pace along the walkway.",
        expected_defects="vehicles or carts on the walkway\nrunning\nobjects thrown"))
    for seed in (1, 4, 5, 6):  # busy normal clips: walkers anywhere on the walkway are normal
        video.references.append(write_walkway_video(folder / f"walkway_normal_reference_{seed}.mp4", seed,
                                                    with_cart=False, walkers=16))
    video.cases[write_walkway_video(folder / "walkway_clip_normal.mp4", 2, with_cart=False)] = "normal"
    video.cases[write_walkway_video(folder / "walkway_clip_cart.mp4", 3, with_cart=True)] = "anomalous"
    sets.append(video)

    dicom = DemoSet(Profile(
        name="Head CT review (demo)", class_name="non-contrast head CT (phantom)", modality="dicom",
        domain_preset="medical",
        normal_standards="Symmetric brain parenchyma of even density, two small symmetric ventricles, intact skull.",
        expected_defects="hyperdense focus (haemorrhage)\nmass effect\nmidline shift"))
    for seed in (21, 22, 23):
        dicom.references.append(write_ct_series(folder / f"head_ct_reference_{seed}", seed, lesion=False))
    dicom.cases[write_ct_series(folder / "head_ct_normal", 24, lesion=False)] = "normal"
    dicom.cases[write_ct_series(folder / "head_ct_focus", 25, lesion=True)] = "anomalous"
    ct = _ct_test_file()
    if ct is not None:
        dicom.cases[ct] = None  # pydicom's real CT test slice (another body region): no label
    sets.append(dicom)
    return sets
