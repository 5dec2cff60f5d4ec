"""DICOM tags -> JSON-safe case metadata, with patient-identifying data kept apart.

The case metadata is stored in the project file and shown in the viewer's tag panel. Everything
that identifies a patient (names, IDs, dates, institution, UIDs) goes under the separate key
``"patient"`` so that the viewer hides it by default and anything that leaves the application
(images sent to a model, exports) can leave it out by dropping one key. Rendered images never carry
text taken from tags.
"""

from __future__ import annotations

from typing import Any

PATIENT_KEY = "patient"

# Identifying attributes (after the DICOM PS3.15 basic de-identification profile, the common ones).
IDENTIFYING_TAGS: tuple[str, ...] = (
    "PatientName",
    "PatientID",
    "OtherPatientIDs",
    "PatientBirthDate",
    "PatientBirthTime",
    "PatientSex",
    "PatientAge",
    "PatientWeight",
    "PatientSize",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "EthnicGroup",
    "IssuerOfPatientID",
    "AccessionNumber",
    "StudyID",
    "InstitutionName",
    "InstitutionAddress",
    "InstitutionalDepartmentName",
    "ReferringPhysicianName",
    "PerformingPhysicianName",
    "OperatorsName",
    "PhysiciansOfRecord",
    "NameOfPhysiciansReadingStudy",
    "RequestingPhysician",
    "StationName",
    "DeviceSerialNumber",
    "StudyDate",
    "SeriesDate",
    "AcquisitionDate",
    "ContentDate",
    "StudyTime",
    "SeriesTime",
    "AcquisitionTime",
    "ContentTime",
    "AcquisitionDateTime",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "FrameOfReferenceUID",
    # free text that sites fill with names, dates of birth or order numbers (PS3.15: removed or
    # replaced by the basic profile)
    "StudyDescription",
    "SeriesDescription",
    "ProtocolName",
    "ImageComments",
    "PatientComments",
    "AdditionalPatientHistory",
    "Occupation",
    "RequestedProcedureDescription",
    "PerformedProcedureStepDescription",
)

# Non-identifying attributes worth showing to the operator, in display order.
KEY_TAGS: tuple[str, ...] = (
    "Modality",
    "SeriesNumber",
    "BodyPartExamined",
    "ImageType",
    "Manufacturer",
    "ManufacturerModelName",
    "MagneticFieldStrength",
    "KVP",
    "ConvolutionKernel",
    "SliceThickness",
    "SpacingBetweenSlices",
    "PixelSpacing",
    "PatientPosition",
    "Rows",
    "Columns",
    "NumberOfFrames",
    "PhotometricInterpretation",
    "BitsAllocated",
    "BitsStored",
    "PixelRepresentation",
    "RescaleSlope",
    "RescaleIntercept",
    "RescaleType",
    "WindowCenter",
    "WindowWidth",
    "WindowCenterWidthExplanation",
    "BurnedInAnnotation",
    "LossyImageCompression",
)


def json_value(value: Any) -> Any:
    """A pydicom element value as JSON: numbers, strings and lists of them; None for binary data.

    pydicom's DSfloat, IS and UID subclass float, int and str; they are turned into the plain types
    so the stored JSON does not depend on pydicom.
    """
    if value is None or isinstance(value, bytes | bytearray | memoryview):
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if value == value else None  # NaN is not JSON
    if isinstance(value, str):
        return str(value)
    if type(value).__name__ == "Sequence":
        return None  # sequences are not shown; the tags we need are read explicitly
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        items = [json_value(v) for v in value]
        return [v for v in items if v is not None]
    return str(value)


def tag_values(dataset: Any, keywords: tuple[str, ...]) -> dict[str, Any]:
    """The present, non-empty, JSON-safe values of `keywords` in a dataset."""
    out: dict[str, Any] = {}
    for keyword in keywords:
        try:
            value = json_value(dataset.get(keyword))
        except Exception:  # noqa: BLE001 - one malformed value must not hide the others
            continue
        if value in (None, "", []):
            continue
        out[keyword] = value
    return out


def case_metadata(dataset: Any) -> dict[str, Any]:
    """Key tags for the tag panel plus the identifying ones under ``"patient"``."""
    metadata = {"tags": tag_values(dataset, KEY_TAGS)}
    sop_class = dataset.get("SOPClassUID")
    if sop_class is not None and getattr(sop_class, "name", ""):
        metadata["tags"]["SOPClass"] = str(sop_class.name)
    transfer = getattr(getattr(dataset, "file_meta", None), "TransferSyntaxUID", None)
    if transfer is not None:
        metadata["transfer_syntax"] = str(getattr(transfer, "name", transfer))
    metadata[PATIENT_KEY] = tag_values(dataset, IDENTIFYING_TAGS)
    return metadata
