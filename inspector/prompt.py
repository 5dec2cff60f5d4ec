"""Prompt composition after Cao et al. (2023), "Towards Generic Anomaly Detection and Understanding".

The paper found four kinds of prompt information help a VLM judge anomalies: task information,
class information, normal standards written by an expert, and normal reference images (zero-,
one- or few-shot). Here each kind is a part that can be switched on or off, so that a team can
measure on its own line which parts help (the evaluation groups results by switches and preset).

Domain wording lives in presets (``resources/presets/*.json`` and a modality plugin's
``presets/*.json``, versioned) rather than in code, so
wording changes are visible in the record of every prompt. The machine-readable answer format is
its own switch (`answer_format`, on by default) rather than part of the task text: switching
"task information" off for a study should measure the task description, not turn every answer
into free text that then cannot be scored.

A `ComposedPrompt` is everything that is sent: system text, user text, captions and images. Its
hash identifies the request for caching and auditing; the images are stored by hash.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from inspector.imaging import resize_max_side
from inspector.model import Profile, View, ViewMap
from inspector.paths import resources_dir

if TYPE_CHECKING:
    from inspector.localization.set_of_mark import MarkingPlan

DEFAULT_PRESET = "industrial"
DEFAULT_MAX_SIDE = 1024
_PRESET_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


class PresetError(ValueError):
    """A preset is unknown or its file is incomplete."""


@dataclass
class PromptSwitches:
    """Which of the paper's prompt parts are included (plus the answer format)."""

    task: bool = True
    class_info: bool = True
    standards: bool = True
    references: bool = True
    max_references: int = 1  # 0 = zero-shot
    answer_format: bool = True
    set_of_mark: bool = False  # numbered marks on candidate regions; the model answers with mark numbers

    @property
    def shots(self) -> int:
        """How many reference images may be sent (0 when references are off)."""
        return max(0, self.max_references) if self.references else 0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PromptSwitches:
        known = {k: data[k] for k in asdict(cls()) if k in data}
        return cls(**known)


@dataclass
class PromptImage:
    """An image as sent: PNG bytes, their hash, and the caption that precedes it in the message.

    `scale` is sent size / view size, so that boxes the model returns (in sent pixels) can be
    mapped back to the view and from there, through the view's map, to the case.
    """

    role: str  # "reference", "query", "marked" (the query with marks) or "marked_reference"
    label: str
    png: bytes = field(repr=False)
    sha256: str
    caption: str = ""
    width: int = 0
    height: int = 0
    scale: float = 1.0

    def to_record(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "label": self.label,
            "sha256": self.sha256,
            "caption": self.caption,
            "width": self.width,
            "height": self.height,
            "scale": self.scale,
        }


@dataclass
class ComposedPrompt:
    """Exactly what is sent to the model, and how it was made."""

    system: str
    text: str  # final user text (may be the operator's edited version)
    images: list[PromptImage]  # references first, then the query views
    switches: PromptSwitches
    preset: str
    preset_version: str
    edited: bool  # True when the operator overrode the composed text
    sha256: str = ""
    composed_text: str = ""  # the text as composed, kept for the audit when `edited`
    marks: list[dict[str, Any]] = field(default_factory=list)  # Set-of-Mark: mark -> mask map (sent pixels)
    localization: dict[str, Any] = field(default_factory=dict)  # how the marks were made (method, offline score)
    # view label -> map back to the case: how a box the model draws on a query view becomes a region.
    # Carried with the prompt (stored with its record, without the in-memory arrays); not hashed.
    view_maps: dict[str, ViewMap] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self.sha256:
            self.sha256 = prompt_hash(self.system, self.text, self.images)

    @property
    def references(self) -> list[PromptImage]:
        return [img for img in self.images if img.role == "reference"]

    @property
    def queries(self) -> list[PromptImage]:
        return [img for img in self.images if img.role == "query"]

    def to_record(self) -> dict[str, Any]:
        """JSON-serialisable record for storage; images by hash only (their bytes go to blobs)."""
        return {
            "sha256": self.sha256,
            "system": self.system,
            "text": self.text,
            "composed_text": self.composed_text if self.edited else None,
            "edited": self.edited,
            "images": [img.to_record() for img in self.images],
            "switches": asdict(self.switches),
            "preset": self.preset,
            "preset_version": self.preset_version,
            "marks": self.marks,
            "localization": self.localization,
            "view_maps": {label: view_map.to_record() for label, view_map in self.view_maps.items()},
        }

    def mark_record(self, number: int) -> dict[str, Any] | None:
        """The stored record of mark `number` (box, cropped mask, view), or None if not drawn."""
        return next((m for m in self.marks if int(m.get("mark", -1)) == int(number)), None)


def prompt_hash(system: str, text: str, images: list[PromptImage]) -> str:
    """Hash of everything sent: identical prompts give identical hashes, any change a new one."""
    payload = {
        "system": system,
        "text": text,
        "images": [[img.role, img.caption or img.label, img.sha256] for img in images],
    }
    encoded = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


@dataclass
class Preset:
    """Domain wording for the prompt parts. Templates use ``{name}`` placeholders only."""

    name: str
    version: str
    title: str
    system: str
    task: str
    class_template: str
    standards_template: str
    defects_template: str
    subject_default: str
    reference_intro: str
    reference_caption: str
    query_intro: str
    query_caption: str
    answer_format: str
    # Set-of-Mark wording; optional in preset files (older presets get these defaults).
    marks_intro: str = (
        'The image captioned "Marked image" shows the image to inspect again, with numbered marks drawn on '
        "candidate regions. Decide for each mark whether the region under it is anomalous."
    )
    marks_caption: str = "Marked image: {label}"
    marks_reference_caption: str = (
        "Normal reference {index} with marks R1, R2, …, for comparison only "
        "(answer with the numbers of the image to inspect): {label}"
    )
    marks_answer_format: str = (
        'List the anomalous marks in "marks" as [{"mark": number, "reason": "what is wrong there"}], '
        "or an empty list when no mark covers an anomaly. Point at regions by their mark numbers only."
    )
    marks_answer_text: str = (
        'Start your answer with the single word "Anomalous" or "Normal". Then name the numbers of the '
        'marks that cover an anomaly and say why for each, or say "no mark" when none does.'
    )


_OPTIONAL_PRESET_FIELDS = (
    "marks_intro",
    "marks_caption",
    "marks_reference_caption",
    "marks_answer_format",
    "marks_answer_text",
)
_PRESET_FIELDS = tuple(f for f in Preset.__dataclass_fields__ if f not in _OPTIONAL_PRESET_FIELDS)
_ALL_PRESET_FIELDS = tuple(Preset.__dataclass_fields__)


def presets_dir() -> Path:
    """The bundled presets: the ones every modality may use (industrial, medical, logical, ...)."""
    return resources_dir() / "presets"


# Folders of presets that modality plugins bring (`ModalityPlugin.presets`), in registration order.
_plugin_preset_folders: list[Path] = []


def add_preset_folder(folder: Path) -> None:
    """Make a plugin's presets available by name (the bundled ones win on a clash)."""
    folder = folder.resolve()
    if folder not in _plugin_preset_folders:
        _plugin_preset_folders.append(folder)


def _preset_file(name: str) -> Path | None:
    for folder in (presets_dir(), *_plugin_preset_folders):
        path = folder / f"{name}.json"
        if path.is_file():
            return path
    return None


def available_presets() -> list[str]:
    """Names of the bundled presets and those of the registered plugins, sorted."""
    names = {
        p.stem for folder in (presets_dir(), *_plugin_preset_folders) if folder.is_dir() for p in folder.glob("*.json")
    }
    return sorted(names)


def load_preset(name: str) -> Preset:
    """Load a preset by name; an unknown name or an incomplete file raises `PresetError`."""
    if not isinstance(name, str) or not _PRESET_NAME.match(name):
        raise PresetError(f"Invalid preset name {name!r}")
    path = _preset_file(name)
    if path is None:
        known = ", ".join(available_presets()) or "none installed"
        raise PresetError(f"Unknown prompt preset {name!r} (available: {known})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PresetError(f"Prompt preset {name!r} cannot be read: {exc}") from exc
    missing = [f for f in _PRESET_FIELDS if not isinstance(data.get(f), str)]
    if missing:
        raise PresetError(f"Prompt preset {name!r} lacks the text fields: {', '.join(missing)}")
    optional = {f: data[f] for f in _OPTIONAL_PRESET_FIELDS if isinstance(data.get(f), str)}
    return Preset(**{f: data[f] for f in _PRESET_FIELDS}, **optional)


def with_profile_overrides(preset: Preset, profile: Profile) -> Preset:
    """The preset with the profile's own wording for some parts (``settings["prompt_overrides"]``:
    preset field -> text, e.g. a plant's own task sentence or answer format). The version says so
    ("1.0+profile"), and since the text changes, so does every prompt's hash."""
    overrides = profile.settings.get("prompt_overrides") if isinstance(profile.settings, dict) else None
    if not isinstance(overrides, dict):
        return preset
    changes = {
        k: v
        for k, v in overrides.items()
        if k in _ALL_PRESET_FIELDS and k not in ("name", "version") and isinstance(v, str)
    }
    if not changes:
        return preset
    return replace(preset, version=f"{preset.version}+profile", **changes)


def reference_names_shown(profile: Profile) -> bool:
    """Whether the model is told the references' names. Off unless the profile says
    ``settings["reference_captions"] = "names"``: a file name can be a patient's name or an order
    number, and the model needs only "Normal reference 2" to compare."""
    settings = profile.settings if isinstance(profile.settings, dict) else {}
    return settings.get("reference_captions") == "names"


def _reference_caption(template: str, index: int, name: str, show_names: bool) -> str:
    """The caption of a reference image: the preset's wording, with the name only when shown."""
    if show_names:
        return _fill(template, index=index, label=name)
    neutral = _fill(template, index=index, label="\0")
    return re.sub(r"\s*[:,(\-–—]*\s*\x00\s*\)?", "", neutral).strip()


def _fill(template: str, **values: Any) -> str:
    """Replace ``{name}`` placeholders we know; other braces (JSON examples) stay as they are."""

    def sub(match: re.Match[str]) -> str:
        key = match.group(1)
        return str(values[key]) if key in values else match.group(0)

    return re.sub(r"\{([a-z_]+)\}", sub, template)


def _as_uint8_rgb_or_gray(image: np.ndarray) -> np.ndarray:
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise ValueError(f"Images sent to the model must be uint8, got {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    elif array.ndim == 3 and array.shape[2] == 4:
        array = array[:, :, :3]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)):
        raise ValueError(f"Expected a gray (H, W) or RGB (H, W, 3) image, got shape {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError("Cannot send an empty image")
    return np.ascontiguousarray(array)


def encode_png(image: np.ndarray) -> bytes:
    """RGB or gray uint8 array → PNG bytes; the same pixels always give the same bytes (no metadata)."""
    array = _as_uint8_rgb_or_gray(image)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", compress_level=6, optimize=False)
    return buffer.getvalue()


def downscale(image: np.ndarray, max_side: int = DEFAULT_MAX_SIDE) -> tuple[np.ndarray, float]:
    """Shrink so the longest side is at most `max_side` (never enlarge); returns (image, scale)."""
    array = _as_uint8_rgb_or_gray(image)
    if max_side <= 0:
        return array, 1.0
    resized = resize_max_side(array, max_side)
    return resized, resized.shape[1] / array.shape[1]


def _prompt_image(role: str, label: str, caption: str, image: np.ndarray, max_side: int) -> PromptImage:
    original_width = np.asarray(image).shape[1]
    small, _ = downscale(image, max_side)
    png = encode_png(small)
    height, width = small.shape[:2]
    return PromptImage(
        role=role,
        label=label,
        png=png,
        sha256=hashlib.sha256(png).hexdigest(),
        caption=caption,
        width=width,
        height=height,
        scale=width / original_width,
    )


def compose(
    profile: Profile,
    views: list[View],
    references: list[tuple[str, np.ndarray]],
    switches: PromptSwitches | None = None,
    preset: str | None = None,
    text_override: str | None = None,
    max_side: int = DEFAULT_MAX_SIDE,
    marks: MarkingPlan | None = None,
) -> ComposedPrompt:
    """Build the prompt for one case from its profile, its views and the profile's references.

    Parts are joined by blank lines in the paper's order: task, class, standards, references,
    then the query and the answer format. `text_override` replaces the composed user text (the
    operator edited it in the prompt panel); images are unaffected.

    With `marks` (Set-of-Mark, `inspector.localization.set_of_mark.plan_marks`) the layout is the
    paper's: each image to inspect, then the same image with its numbered marks; the marks intro
    and the marks answer sentence join the text, and the mark -> mask map is kept with the prompt.
    """
    if not views:
        raise ValueError("A prompt needs at least one view of the case")
    switches = switches or PromptSwitches()
    p = with_profile_overrides(load_preset(preset or profile.domain_preset or DEFAULT_PRESET), profile)

    class_name = profile.class_name.strip()
    subject = class_name if switches.class_info and class_name else p.subject_default
    chosen_refs = references[: switches.shots]

    parts: list[str] = []
    if switches.task:
        parts.append(p.task)
    if switches.class_info and class_name:
        parts.append(_fill(p.class_template, class_name=class_name))
    if switches.standards:
        standards = profile.normal_standards.strip()
        # one defect per line in the profile; a sentence in the prompt ("crack; blowhole; stain")
        defects = "; ".join(
            line.strip().rstrip(".;,") for line in profile.expected_defects.splitlines() if line.strip()
        )
        if standards:
            parts.append(_fill(p.standards_template, standards=standards, class_name=subject))
        if defects:
            parts.append(_fill(p.defects_template, defects=defects, class_name=subject))
    if chosen_refs:
        parts.append(_fill(p.reference_intro, subject=subject))
    parts.append(_fill(p.query_intro, subject=subject))
    if marks is not None:
        parts.append(p.marks_intro)
    if switches.answer_format:
        parts.append(p.answer_format)
    if marks is not None:
        parts.append(p.marks_answer_format if switches.answer_format else p.marks_answer_text)
    composed_text = "\n\n".join(parts)

    show_names = reference_names_shown(profile)
    images = [
        _prompt_image("reference", name, _reference_caption(p.reference_caption, i, name, show_names), array, max_side)
        for i, (name, array) in enumerate(chosen_refs, start=1)
    ]
    if marks is not None:
        marked_refs = dict(marks.marked_references)
        images += [
            _prompt_image(
                "marked_reference",
                name,
                _reference_caption(p.marks_reference_caption, i, name, show_names),
                marked_refs[name],
                max_side,
            )
            for i, (name, _) in enumerate(chosen_refs, start=1)
            if name in marked_refs
        ]
    marked_views = dict(marks.marked) if marks is not None else {}
    for view in views:
        query = _prompt_image("query", view.label, _fill(p.query_caption, label=view.label), view.image, max_side)
        images.append(query)
        if view.label in marked_views:
            # Drawn on the image as sent: same size, so the same scale maps it back to the view.
            marked = _prompt_image(
                "marked", view.label, _fill(p.marks_caption, label=view.label), marked_views[view.label], max_side
            )
            marked.scale = query.scale
            images.append(marked)

    edited = text_override is not None and text_override != composed_text
    return ComposedPrompt(
        system=p.system,
        text=text_override if edited else composed_text,
        images=images,
        switches=switches,
        preset=p.name,
        preset_version=p.version,
        edited=edited,
        composed_text=composed_text,
        marks=list(marks.records) if marks is not None else [],
        localization=marks.record() if marks is not None else {},
        view_maps={view.label: view.view_map for view in views if view.view_map is not None},
    )
