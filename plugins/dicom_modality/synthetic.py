"""Synthetic CT-like DICOM series written with pydicom, for tests, benchmarks and demos.

No real patient data may be bundled with the application, and pydicom's own test files hold no
multi-slice series, so series are generated: an elliptic body of soft tissue with a bone ring and
two lungs, noise, optionally a bright lesion on some slices, stored as real CT Image Storage files
(int16 with rescale intercept -1024, window tags, patient tags with made-up values). File names are
shuffled and instance numbers run against the slice position, so a reader has to sort by position.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

FAKE_PATIENT = {
    "PatientName": "TESTPATIENT^SYNTHETIC",
    "PatientID": "SYN-0042",
    "PatientBirthDate": "19700101",
    "PatientSex": "O",
    "AccessionNumber": "ACC-SYN-1",
    "InstitutionName": "Synthetic Test Hospital",
    "ReferringPhysicianName": "REFERRER^TEST",
    "StudyDate": "20240102",
}


def ct_phantom(
    n_slices: int,
    size: tuple[int, int] = (128, 128),
    seed: int = 0,
    lesion_slices: Sequence[int] = (),
    lesion_hu: float = 300.0,
) -> np.ndarray:
    """(N, H, W) int16 Hounsfield units: air, body, bone ring, lungs, noise; a disc on `lesion_slices`.

    Each slice's top-left pixel is set to ``-1000 + 2 * k`` (k = slice index) so tests can check
    the order slices were sorted in.
    """
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    body = ((yy - cy) / (0.42 * h)) ** 2 + ((xx - cx) / (0.45 * w)) ** 2
    lungs = [((yy - cy) / (0.25 * h)) ** 2 + ((xx - cx - side * 0.2 * w) / (0.13 * w)) ** 2 for side in (-1, 1)]
    lesion = ((yy - cy - 0.05 * h) ** 2 + (xx - cx) ** 2) < (0.06 * min(h, w)) ** 2
    volume = np.empty((n_slices, h, w), np.int16)  # built slice by slice: a 300-slice 512 px series stays small
    for k in range(n_slices):
        shrink = 1.0 + 0.15 * abs(k - n_slices / 2) / max(1, n_slices)
        image = np.where(body * shrink < 1.0, 40.0, -1000.0)
        image = np.where((body * shrink > 0.82) & (body * shrink < 1.0), 700.0, image)
        for lung in lungs:
            image = np.where(lung < 1.0, -820.0, image)
        image += rng.normal(0, 12, (h, w))
        if k in lesion_slices:
            image[lesion] = lesion_hu
        image[0, 0] = -1000 + 2 * k
        volume[k] = np.clip(np.round(image), -1024, 3071)
    return volume


def _base_dataset(sop_class: str, modality: str, patient: dict[str, Any] | None) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    for key, value in (FAKE_PATIENT if patient is None else patient).items():
        setattr(ds, key, value)
    return ds


def _set_pixels(ds: Dataset, raw: np.ndarray, photometric: str, bits_stored: int) -> None:
    ds.Rows, ds.Columns = int(raw.shape[-2]), int(raw.shape[-1])
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 1 if raw.dtype == np.int16 else 0
    ds.PixelData = np.ascontiguousarray(raw).tobytes()


def write_series(
    folder: Path,
    hu: np.ndarray,
    *,
    spacing: tuple[float, float, float] = (2.5, 0.7, 0.7),
    window: tuple[float, float] | None = (40.0, 400.0),
    intercept: float = -1024.0,
    slope: float = 1.0,
    photometric: str = "MONOCHROME2",
    series_uid: str | None = None,
    study_uid: str | None = None,
    patient: dict[str, Any] | None = None,
    description: str = "Synthetic CT",
    seed: int = 0,
) -> list[Path]:
    """Write one file per slice of `hu` (Hounsfield units) as a CT series; returns the paths.

    Stored values are ``(hu - intercept) / slope`` as int16; slice k lies at z = k * spacing[0]
    while instance numbers count down and file names are shuffled.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or generate_uid()
    study_uid = study_uid or generate_uid()
    n = hu.shape[0]
    names = np.random.default_rng(seed).permutation(n)
    paths = []
    for k in range(n):
        ds = _base_dataset(CTImageStorage, "CT", patient)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.SeriesDescription = description
        ds.SeriesNumber = 3
        ds.InstanceNumber = n - k
        ds.ImagePositionPatient = [0.0, 0.0, float(k * spacing[0])]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing = [spacing[1], spacing[2]]
        ds.SliceThickness = spacing[0]
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = intercept, slope, "HU"
        if window is not None:
            ds.WindowCenter, ds.WindowWidth = window
        raw = np.round((hu[k].astype(np.float64) - intercept) / slope).astype(np.int16)
        _set_pixels(ds, raw, photometric, 16)
        path = folder / f"IM{int(names[k]):05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def write_multiframe(
    path: Path,
    raw: np.ndarray,
    *,
    modality: str = "MR",
    photometric: str = "MONOCHROME2",
    bits_stored: int = 16,
    slope: float | None = None,
    intercept: float | None = None,
    window: tuple[float, float] | None = None,
    patient: dict[str, Any] | None = None,
) -> Path:
    """A single (multi-)frame file of raw stored values (N, H, W) int16 or uint16, as Secondary Capture."""
    from pydicom.uid import SecondaryCaptureImageStorage

    ds = _base_dataset(SecondaryCaptureImageStorage, modality, patient)
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    if raw.shape[0] > 1:
        ds.NumberOfFrames = raw.shape[0]
    if slope is not None or intercept is not None:
        ds.RescaleSlope, ds.RescaleIntercept = slope or 1.0, intercept or 0.0
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    _set_pixels(ds, raw, photometric, bits_stored)
    ds.save_as(path, enforce_file_format=True)
    return Path(path)
