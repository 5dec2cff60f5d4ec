"""Demo samples of the DICOM modality: head-CT-like phantom series with made-up patient tags, and
one real CT slice from pydicom's own test files (found by name, never by pydicom's download-capable
search)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from inspector.model import Profile
from inspector.samples import DemoSet


def samples(folder: Path) -> list[DemoSet]:
    """Write the demo series into `folder` and describe their profile."""
    folder.mkdir(parents=True, exist_ok=True)
    dicom = DemoSet(
        Profile(
            name="Head CT review (demo)",
            class_name="non-contrast head CT (phantom)",
            modality="dicom",
            domain_preset="medical",
            normal_standards=(
                "Symmetric brain parenchyma of even density, two small symmetric ventricles, intact skull."
            ),
            expected_defects="hyperdense focus (haemorrhage)\nmass effect\nmidline shift",
        )
    )
    for seed in (21, 22, 23):
        dicom.references.append(write_ct_series(folder / f"head_ct_reference_{seed}", seed, lesion=False))
    dicom.cases[write_ct_series(folder / "head_ct_normal", 24, lesion=False)] = "normal"
    dicom.cases[write_ct_series(folder / "head_ct_focus", 25, lesion=True)] = "anomalous"
    ct = _ct_test_file()
    if ct is not None:
        dicom.cases[ct] = None  # pydicom's real CT test slice (another body region): no label
    return [dicom]


DEMO_PATIENT = {
    "PatientName": "DEMO^PATIENT",
    "PatientID": "DEMO-0001",
    "PatientBirthDate": "19600101",
    "PatientSex": "O",
    "InstitutionName": "Anomalens demo",
}  # made up: shows the hidden tags


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


def _ct_test_file() -> Path | None:
    """pydicom's bundled CT_small.dcm, found by name (never pydicom's download-capable search)."""
    try:
        import pydicom
    except ImportError:
        return None
    path = Path(pydicom.__file__).parent / "data" / "test_files" / "CT_small.dcm"
    return path if path.is_file() else None
